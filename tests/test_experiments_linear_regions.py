"""experiments/linear_regions.py: the region counter against independent references (the library's
own forward pass, the closed form of a shallow network, a fine grid, the (D + 1)^K bound, a sawtooth
that reaches D^K), then the script in --quick mode, whose JSON must show the claim."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from experiment_loader import load, run_quick  # tests/ is on sys.path
from hypothesis import given, settings
from hypothesis import strategies as st

import fnlearn as fl

lr = load("linear_regions")


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
    saved = run_quick("linear_regions", tmp_path)
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
