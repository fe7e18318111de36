"""experiments/backprop_by_hand.py: the hand-written backward passes (the notes' toy function and an
MLP) against jax.grad and finite differences, then the script in --quick mode, whose JSON must show
the claim."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from experiment_loader import load, run_quick  # tests/ is on sys.path
from hypothesis import given, settings
from hypothesis import strategies as st

import fnlearn as fl

bp = load("backprop_by_hand")


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
    saved = run_quick("backprop_by_hand", tmp_path)
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
