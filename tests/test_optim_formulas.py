"""The lecture notes' update rules, written out in numpy, against fnlearn's optimizers.

Each reference is the formula as the notes state it (float64, plain loops); fnlearn runs in float64
too, so the paths must agree to ~1e-12 over 100 steps on an ill-conditioned quadratic.
"""

from __future__ import annotations

import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings

import fnlearn.optim as fo

STEPS = 100
A = np.array([[3.0, 1.0, 0.0], [1.0, 2.0, 0.5], [0.0, 0.5, 0.2]])  # SPD, condition number ~ 30
B = np.array([1.0, -2.0, 0.5])
THETA0 = np.array([1.5, -0.5, 2.0])


def grad_np(theta):
    """∇L for L(θ) = ½·θᵀAθ − bᵀθ."""
    return A @ theta - B


def fnlearn_path(optimizer, steps=STEPS):
    """θ_1 … θ_steps of ``optimizer`` on the quadratic, in float64, one jitted scan."""
    with jax.enable_x64(True):
        a, b = jnp.asarray(A), jnp.asarray(B)

        def step(carry, _):
            theta, state = carry
            updates, state = optimizer.update(a @ theta - b, state, theta)
            theta = fo.apply_updates(theta, updates)
            return (theta, state), theta

        theta0 = jnp.asarray(THETA0)
        path = jax.jit(lambda: jax.lax.scan(step, (theta0, optimizer.init(theta0)), None, length=steps)[1])()
        return np.asarray(path)


def notes_sgd(eta):
    """θ ← θ − η·∇L."""
    theta, path = THETA0.copy(), []
    for _ in range(STEPS):
        theta = theta - eta * grad_np(theta)
        path.append(theta)
    return np.array(path)


def notes_momentum_velocity(eta, gamma):
    """v ← γ·v + η·∇L; θ ← θ − v  (lr inside the velocity)."""
    theta, v, path = THETA0.copy(), np.zeros(3), []
    for _ in range(STEPS):
        v = gamma * v + eta * grad_np(theta)
        theta = theta - v
        path.append(theta)
    return np.array(path)


def notes_momentum_damped(eta, beta):
    """m ← β·m + (1 − β)·∇L; θ ← θ − η·m  (the weighted-average form)."""
    theta, m, path = THETA0.copy(), np.zeros(3), []
    for _ in range(STEPS):
        m = beta * m + (1 - beta) * grad_np(theta)
        theta = theta - eta * m
        path.append(theta)
    return np.array(path)


def notes_nesterov(eta, gamma):
    """v ← γ·v + η·∇L(θ − γ·v); θ ← θ − v. Returns the look-ahead points θ − γ·v."""
    theta, v, path = THETA0.copy(), np.zeros(3), []
    for _ in range(STEPS):
        v = gamma * v + eta * grad_np(theta - gamma * v)
        theta = theta - v
        path.append(theta - gamma * v)
    return np.array(path)


def notes_adagrad(eta, eps):
    """G ← G + ∇L²; θ ← θ − η·∇L/√(G + ε)."""
    theta, G, path = THETA0.copy(), np.zeros(3), []
    for _ in range(STEPS):
        g = grad_np(theta)
        G = G + g**2
        theta = theta - eta * g / np.sqrt(G + eps)
        path.append(theta)
    return np.array(path)


def notes_rmsprop(eta, gamma, eps):
    """v ← γ·v + (1 − γ)·∇L²; θ ← θ − η·∇L/√(v + ε)."""
    theta, v, path = THETA0.copy(), np.zeros(3), []
    for _ in range(STEPS):
        g = grad_np(theta)
        v = gamma * v + (1 - gamma) * g**2
        theta = theta - eta * g / np.sqrt(v + eps)
        path.append(theta)
    return np.array(path)


def notes_adam(eta, beta, gamma, eps):
    """m, v moving averages of ∇L and ∇L²; m̃ = m/(1 − β^t), ṽ = v/(1 − γ^t); θ ← θ − η·m̃/(√ṽ + ε)."""
    theta, m, v, path = THETA0.copy(), np.zeros(3), np.zeros(3), []
    for t in range(1, STEPS + 1):
        g = grad_np(theta)
        m = beta * m + (1 - beta) * g
        v = gamma * v + (1 - gamma) * g**2
        m_tilde, v_tilde = m / (1 - beta**t), v / (1 - gamma**t)
        theta = theta - eta * m_tilde / (np.sqrt(v_tilde) + eps)
        path.append(theta)
    return np.array(path)


CASES = [
    ("sgd", fo.sgd(0.1), notes_sgd(0.1)),
    ("momentum_velocity", fo.sgd(0.05, momentum=0.8), notes_momentum_velocity(0.05, 0.8)),
    ("momentum_damped", fo.ema_momentum(0.2, beta=0.8), notes_momentum_damped(0.2, 0.8)),
    ("nesterov", fo.sgd(0.05, momentum=0.8, nesterov=True), notes_nesterov(0.05, 0.8)),
    ("adagrad", fo.adagrad(0.3, initial_accumulator_value=0.0, eps=1e-7), notes_adagrad(0.3, 1e-7)),
    ("rmsprop", fo.rmsprop(0.02, decay=0.9, eps=1e-8), notes_rmsprop(0.02, 0.9, 1e-8)),
    ("adam", fo.adam(0.05, b1=0.9, b2=0.999, eps=1e-8), notes_adam(0.05, 0.9, 0.999, 1e-8)),
]


@pytest.mark.parametrize("optimizer,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_notes_formula_in_numpy_gives_the_same_path(optimizer, expected):
    np.testing.assert_allclose(fnlearn_path(optimizer), expected, rtol=1e-10, atol=1e-12)


def test_notes_worked_example_normalised_step():
    """m = [3, −2, 5], v = [9, 4, 25] → m/(√v + ε) = [1, −1, 1]: with β₁ = β₂ = 0 Adam's moments
    after one step are exactly g and g², and the step is the notes' normalised gradient."""
    g = jnp.array([3.0, -2.0, 5.0])
    adam = fo.scale_by_adam(b1=0.0, b2=0.0, eps=1e-8)
    step, state = adam.update(g, adam.init(g))
    np.testing.assert_array_equal(state.mu, [3.0, -2.0, 5.0])
    np.testing.assert_array_equal(state.nu, [9.0, 4.0, 25.0])
    np.testing.assert_allclose(step, [1.0, -1.0, 1.0], rtol=1e-7)


@settings(max_examples=15, deadline=None)
@given(
    beta=st.floats(0.0, 0.99),
    eta=st.floats(1e-3, 1.0),
    seed=st.integers(0, 2**16),
)
def test_damped_momentum_is_heavy_ball_with_scaled_rate(beta, eta, seed):
    """m ← β·m + (1 − β)·g, θ ← θ − η·m follows the path of sgd(η·(1 − β), momentum=β)."""
    with jax.enable_x64(True):
        grads = np.random.default_rng(seed).standard_normal((20, 4))
        theta_a = theta_b = jnp.zeros(4)
        damped, heavy = fo.ema_momentum(eta, beta=beta), fo.sgd(eta * (1 - beta), momentum=beta)
        state_a, state_b = damped.init(theta_a), heavy.init(theta_b)
        for g in grads:
            u, state_a = damped.update(jnp.asarray(g), state_a)
            theta_a = theta_a + u
            u, state_b = heavy.update(jnp.asarray(g), state_b)
            theta_b = theta_b + u
            np.testing.assert_allclose(theta_a, theta_b, rtol=1e-9, atol=1e-12)


@settings(max_examples=15, deadline=None)
@given(scale=st.floats(1e-3, 1e3), seed=st.integers(0, 2**16))
def test_adam_step_is_invariant_to_gradient_scale(scale, seed):
    """With ε = 0, m̂/√v̂ is unchanged when every gradient is multiplied by c > 0."""
    with jax.enable_x64(True):
        grads = jnp.asarray(np.random.default_rng(seed).standard_normal((10, 5)))
        adam = fo.scale_by_adam(eps=0.0)
        s1 = s2 = adam.init(grads[0])
        for g in grads:
            u1, s1 = adam.update(g, s1)
            u2, s2 = adam.update(scale * g, s2)
            np.testing.assert_allclose(u1, u2, rtol=1e-9)


def test_l1_decay_adds_the_gradient_of_the_l1_penalty():
    """u = g + λ·sign(θ) equals g + ∇(λ·‖θ‖₁) from jax.grad (θ away from 0), on masked leaves only."""
    params = {"w": jnp.array([[0.5, -1.0], [2.0, -0.1]]), "b": jnp.array([0.3, -0.7])}
    grads = jax.tree_util.tree_map(jnp.ones_like, params)
    penalty = lambda p: 0.01 * jnp.sum(jnp.abs(p["w"]))  # noqa: E731
    l1 = fo.add_l1_decay(0.01, mask={"w": True, "b": False})
    updates, _ = l1.update(grads, l1.init(params), params)
    expected = jax.tree_util.tree_map(jnp.add, grads, jax.grad(penalty)(params))
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-7), updates, expected)
