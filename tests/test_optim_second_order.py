"""Newton and L-BFGS against scipy.optimize.minimize on Rosenbrock and a logistic regression."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize

import fnlearn.optim as fo


def rosenbrock(p):
    """L(x, y) = (1 − x)² + 100·(y − x²)², minimum 0 at (1, 1)."""
    return (1 - p["x"]) ** 2 + 100 * (p["y"] - p["x"] ** 2) ** 2


def logistic_problem():
    """Mean logistic loss with a small L2 penalty (unique, finite optimum), params {"w", "b"}."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 4))
    y = (X @ np.array([1.5, -2.0, 0.5, 0.0]) + 0.3 + rng.standard_normal(200) > 0).astype(float)

    def loss(p):
        logits = jnp.asarray(X) @ p["w"] + p["b"]
        nll = jnp.mean(jnp.logaddexp(0.0, logits) - jnp.asarray(y) * logits)
        return nll + 0.01 * jnp.sum(p["w"] ** 2)

    return loss, {"w": jnp.zeros(4), "b": jnp.asarray(0.0)}


def scipy_optimum(loss, params0):
    """scipy's BFGS to gtol 1e-10 on the flattened problem."""
    flat0, unravel = jax.flatten_util.ravel_pytree(params0)
    f = jax.jit(lambda x: loss(unravel(x)))
    g = jax.jit(jax.grad(lambda x: loss(unravel(x))))
    res = scipy.optimize.minimize(
        lambda x: float(f(x)),
        np.asarray(flat0),
        jac=lambda x: np.asarray(g(x)),
        method="BFGS",
        options={"gtol": 1e-10},
    )
    return res.x


PROBLEMS = {
    "rosenbrock": lambda: (rosenbrock, {"x": jnp.asarray(-1.2), "y": jnp.asarray(1.0)}),
    "logistic": logistic_problem,
}


@pytest.mark.parametrize("problem", PROBLEMS, ids=PROBLEMS)
@pytest.mark.parametrize("method", ["newton", "lbfgs"])
def test_reaches_scipys_optimum(problem, method):
    with jax.enable_x64(True):
        loss, params0 = PROBLEMS[problem]()
        params0 = jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float64), params0)
        optimizer = fo.newton(loss) if method == "newton" else fo.lbfgs(loss)
        result = fo.minimize(loss, params0, optimizer, tol=1e-9, max_steps=500)
        expected = scipy_optimum(loss, params0)
        found, _ = jax.flatten_util.ravel_pytree(result.params)
        assert float(result.grad_norm) <= 1e-9
        assert int(result.steps) < 500
        np.testing.assert_allclose(found, expected, rtol=1e-6, atol=1e-7)
        if problem == "rosenbrock":
            np.testing.assert_allclose(found, [1.0, 1.0], rtol=1e-7)


def test_newton_solves_a_quadratic_in_one_step():
    """For L = ½θᵀAθ − bᵀθ, θ − H⁻¹∇L = A⁻¹b exactly (the Hessian is A)."""
    with jax.enable_x64(True):
        A = jnp.array([[4.0, 1.0], [1.0, 3.0]])
        b = jnp.array([1.0, 2.0])
        loss = lambda p: 0.5 * p @ A @ p - b @ p  # noqa: E731
        newton = fo.newton(loss)
        theta = jnp.array([5.0, -7.0])
        step, _ = newton.update(jax.grad(loss)(theta), newton.init(theta), theta)
        np.testing.assert_allclose(theta + step, np.linalg.solve(np.asarray(A), np.asarray(b)), rtol=1e-12)


def test_damped_newton_takes_a_shorter_step():
    """θ ← θ − γ·(H + λI)⁻¹∇L, checked against numpy for γ = 0.5, λ = 2."""
    with jax.enable_x64(True):
        theta = {"x": jnp.asarray(-1.2), "y": jnp.asarray(1.0)}
        g = jax.grad(rosenbrock)(theta)
        H = np.asarray(jax.hessian(lambda v: rosenbrock({"x": v[0], "y": v[1]}))(jnp.array([-1.2, 1.0])))
        newton = fo.newton(rosenbrock, learning_rate=0.5, damping=2.0)
        step, _ = newton.update(g, newton.init(theta), theta)
        expected = -0.5 * np.linalg.solve(H + 2.0 * np.eye(2), [float(g["x"]), float(g["y"])])
        np.testing.assert_allclose([step["x"], step["y"]], expected, rtol=1e-12)
