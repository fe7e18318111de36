"""Claims 11 and 12 (linear regions, backpropagation by hand).

The counting and the hand-written gradients are checked against independent references first
(the library's own forward pass, closed forms, a fine grid, jax.grad, finite differences); then each
experiment runs in --quick mode and its JSON must show the claim. (The notebooks: test_notebooks.py.)
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from experiment_loader import load  # tests/ is on sys.path
from hypothesis import given, settings
from hypothesis import strategies as st

import fnlearn as fl

lr = load("linear_regions")
bp = load("backprop_by_hand")


def random_net(K, D, seed, bias_std=1.0):
    model = lr.build(K, D, b_init=fl.init.normal(bias_std))
    return model, jax.tree.map(np.asarray, model.init(jax.random.key(seed))[0])


# ------------------------------------------------------------------------------------------------
# linear regions: the counter against references


def test_forward_equals_the_library():
    model, params = random_net(3, 5, 0)
    x = np.linspace(-3, 3, 41)
    zs, f = lr.forward(params, x)
    state = model.init(jax.random.key(0))[1]
    ref = [
        np.asarray(h)
        for name, h in fl.nn.intermediates(model, params, state, x[:, None].astype(np.float32))
        if name.startswith("dense_")
    ]
    assert len(zs) == len(ref) == 3
    for z, r in zip(zs, ref, strict=True):
        np.testing.assert_allclose(z, r, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        f,
        np.asarray(model.apply(params, state, x[:, None].astype(np.float32))[0])[:, 0],
        rtol=1e-5,
        atol=1e-5,
    )


@pytest.mark.parametrize("D", [1, 3, 8])
def test_shallow_network_matches_the_closed_form(D):
    """K = 1: the kinks are exactly the points −b_d/w_d, so on ℝ there are D + 1 regions."""
    _, params = random_net(1, D, D)
    w, b = params[0][0]["w"][0].astype(np.float64), params[0][0]["b"].astype(np.float64)
    np.testing.assert_allclose(lr.kinks(params), np.sort(-b / w), rtol=1e-12)
    assert lr.count_regions(params)["activation_regions"] == D + 1
    inside = np.sum((-b / w > -0.5) & (-b / w < 0.5))
    assert lr.count_regions(params, -0.5, 0.5)["activation_regions"] == inside + 1


def test_exact_count_equals_a_fine_grid():
    """Where no region is narrower than the grid spacing, the grid sees every pattern change."""
    checked = 0
    grid = jnp.linspace(-2.0, 2.0, 2**18)
    model = lr.build(3, 6)
    grid_count = jax.jit(lambda p: lr.grid_activation_regions(model, p, grid))
    for seed in range(6):
        _, params = random_net(3, 6, seed)
        exact = lr.count_regions(params, -2.0, 2.0)
        t = np.asarray(exact["kinks"])
        if t.size > 1 and np.diff(t).min() < 4 * float(grid[1] - grid[0]):
            continue
        assert int(grid_count(params)) == exact["activation_regions"]
        checked += 1
    assert checked >= 3


def test_zero_biases_give_at_most_two_regions():
    """With fnlearn's default zero biases, f(cx) = c·f(x) for c > 0: one kink at 0 at most."""
    for seed in range(4):
        model = lr.build(4, 8)
        params = jax.tree.map(np.asarray, model.init(jax.random.key(seed))[0])
        assert lr.count_regions(params)["linear_regions"] <= 2
        assert np.all(np.abs(lr.kinks(params)) < 1e-12)


@pytest.mark.parametrize(("K", "D"), [(1, 3), (2, 3), (3, 2), (2, 5)])
def test_sawtooth_reaches_D_to_the_K(K, D):
    assert lr.sawtooth_regions(K, D) == D**K


@settings(max_examples=15, deadline=None)
@given(
    K=st.integers(1, 4),
    D=st.integers(1, 6),
    seed=st.integers(0, 10_000),
    bias_std=st.sampled_from([0.1, 1.0, 3.0]),
)
def test_counts_never_exceed_the_bound(K, D, seed, bias_std):
    _, params = random_net(K, D, seed, bias_std)
    c = lr.count_regions(params)
    assert c["linear_regions"] <= c["activation_regions"] <= (D + 1) ** K


@pytest.mark.parametrize(("K", "D"), [(1, 3), (2, 4), (3, 7), (5, 16)])
def test_parameter_count_is_the_notes_formula(K, D):
    params = lr.build(K, D).init(jax.random.key(0))[0]
    assert fl.tree.num_params(params) == 3 * D + 1 + (K - 1) * D * (D + 1) == lr.param_count_formula(K, D)


def test_linear_regions_quick(tmp_path):
    results = lr.main(["--quick", "--out", str(tmp_path)])
    assert (tmp_path / "linear_regions.png").stat().st_size > 10_000
    saved = json.loads((tmp_path / "linear_regions.json").read_text())
    assert saved["all_within_bound"] and saved["param_formula_matches_mlp"]
    rows = {(c["K"], c["D"]): c for c in saved["configs"]}
    for (K, D), c in rows.items():
        assert c["sawtooth_01"] == D**K
        assert c["init_zero_bias_R_linear"]["max"] <= 2
        if K == 1:  # every unit has a kink somewhere on ℝ: the bound D + 1 is reached
            assert c["init_random_bias_R_activation"]["min"] == D + 1
    # measured: random and trained networks stay far below (D + 1)^K once K ≥ 2
    assert rows[(3, 8)]["init_random_bias_R_linear"]["max"] < 0.1 * rows[(3, 8)]["bound"]
    assert rows[(2, 8)]["trained_01_linear"]["max"] < rows[(2, 8)]["bound"]
    check = rows[(3, 8)]["grid_vs_exact_01"]
    assert all(g <= e for g, e in zip(check["grid"], check["exact"], strict=True))
    assert results["example"]["kinks"] == saved["example"]["kinks"]


# ------------------------------------------------------------------------------------------------
# backpropagation by hand


@jax.jit
def toy_three_ways(key):
    """The toy problem's gradient: hand backward pass, jax.grad, the notes' closed form of ∂L/∂ω₀."""
    phi, x, y = jax.tree.map(lambda a: a.astype(jnp.float64), bp.random_toy_problem(key))
    return (
        bp.toy_backward(phi, x, y, bp.toy_forward(phi, x)),
        jax.grad(bp.toy_loss)(phi, x, y),
        bp.notes_d_omega0(phi, x, y),
    )


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**30))
def test_toy_backward_equals_jax_grad(seed):
    with jax.enable_x64(True):
        hand, auto, closed = toy_three_ways(jax.random.key(seed))
        np.testing.assert_allclose(hand["beta"], auto["beta"], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(hand["omega"], auto["omega"], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(closed, auto["omega"][0], rtol=1e-10, atol=1e-12)


def test_toy_backward_against_finite_differences():
    with jax.enable_x64(True):
        phi, x, y = bp.random_toy_problem(jax.random.key(3))
        phi = jax.tree.map(lambda a: a.astype(jnp.float64), phi)
        x, y = x.astype(jnp.float64), y.astype(jnp.float64)
        hand = bp.toy_backward(phi, x, y, bp.toy_forward(phi, x))
        loss = jax.jit(bp.toy_loss)
        for group in ("beta", "omega"):
            for k in range(4):
                e = np.eye(4)[k] * 1e-6
                up = loss(phi | {group: phi[group] + e}, x, y)
                down = loss(phi | {group: phi[group] - e}, x, y)
                np.testing.assert_allclose((up - down) / 2e-6, hand[group][k], rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize(
    ("sizes", "activation"), [([3, 2], "relu"), ([4, 8, 8, 2], "relu"), ([5, 16, 16, 3], "tanh")]
)
def test_mlp_backward_equals_jax_grad_and_finite_differences(sizes, activation):
    with jax.enable_x64(True):
        model = fl.nn.mlp(sizes, activation=activation)
        params, state = model.init(jax.random.key(0))
        params = bp.with_random_biases(
            jax.random.key(1), jax.tree.map(lambda p: p.astype(jnp.float64), params)
        )
        x = jax.random.normal(jax.random.key(2), (7, sizes[0]), jnp.float64)
        y = jax.random.normal(jax.random.key(3), (7, sizes[-1]), jnp.float64)
        hand = jax.jit(bp.mlp_backward, static_argnums=3)(params, x, y, activation)
        loss = jax.jit(bp.mlp_loss(model, state))
        auto = jax.jit(jax.grad(loss))(params, x, y)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12), hand, auto)
        flat_g, _ = bp.ravel_pytree(hand)
        flat_p, unravel = bp.ravel_pytree(params)
        v = jax.random.normal(jax.random.key(4), flat_p.shape, jnp.float64)
        fd = (loss(unravel(flat_p + 1e-6 * v), x, y) - loss(unravel(flat_p - 1e-6 * v), x, y)) / 2e-6
        np.testing.assert_allclose(fd, v @ flat_g, rtol=1e-6)


def test_backprop_by_hand_quick(tmp_path):
    bp.main(["--quick", "--out", str(tmp_path)])
    assert (tmp_path / "backprop_by_hand.png").stat().st_size > 10_000
    saved = json.loads((tmp_path / "backprop_by_hand.json").read_text())
    toy, toy64 = saved["toy"]["comparison"], saved["toy"]["comparison_float64"]
    assert max(toy["max_rel_err_beta"], toy["max_rel_err_omega"]) < 1e-5
    assert (
        max(toy64["max_rel_err_beta"], toy64["max_rel_err_omega"], toy64["max_rel_err_notes_omega0"]) < 1e-9
    )
    for run in saved["mlp"]:
        assert run["max_rel_err"] < (1e-5 if run["dtype"] == "float32" else 1e-12)
    fd = saved["finite_differences"]
    assert fd["best_rel_err"] < 1e-6 and fd["coordinate_rel_err_eps_1e-6"] < 1e-5
    errs = fd["max_rel_err"]  # V-shaped in ε: the best ε is neither the largest nor the smallest
    assert errs[0] > 100 * fd["best_rel_err"] and errs[-1] > 10 * fd["best_rel_err"]
