"""Second-order methods for small problems, and a loop that runs any optimizer to a tolerance.

Both methods need the loss itself, not only its gradient, so they take ``loss_fn(params) -> scalar``
at construction (close over the data). They are still gradient transformations: ``update`` takes
the gradient at ``params`` and returns the step, so they chain, jit and log like the others.
Parameters may be any pytree; internally they are flattened to one vector θ of n entries.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from fnlearn import checks
from fnlearn.errors import FnlearnError
from fnlearn.optim.base import (
    GradientTransformation,
    apply_updates,
    chain,
    safe_increment,
)
from fnlearn.optim.transforms import scale_by_learning_rate

__all__ = ["MinimizeResult", "lbfgs", "minimize", "newton", "scale_by_newton"]


def _check_loss_fn(owner, loss_fn):
    if not callable(loss_fn):
        raise FnlearnError(
            f"{owner}: loss_fn must be a function params -> scalar loss, got {checks.show(loss_fn)}."
        )


def _need_params(params, owner):
    if params is None:
        raise FnlearnError(f"{owner} needs the parameters: call update(grads, state, params).")


class ScaleByNewtonState(NamedTuple):
    """Update count t."""

    count: jax.Array


def scale_by_newton(loss_fn, damping: float = 0.0) -> GradientTransformation:
    """u = (H + λ·I)⁻¹·g with H = ∇²L(θ) the exact Hessian from ``jax.hessian`` (n × n)."""
    _check_loss_fn("scale_by_newton", loss_fn)
    checks.nonneg("scale_by_newton", "damping", damping)

    def init_fn(params):
        del params
        return ScaleByNewtonState(jnp.zeros([], jnp.int32))

    def update_fn(updates, state, params=None):
        _need_params(params, "scale_by_newton")
        theta, unravel = ravel_pytree(params)
        g, _ = ravel_pytree(updates)
        hessian = jax.hessian(lambda x: loss_fn(unravel(x)))(theta)
        hessian = hessian + damping * jnp.eye(theta.size, dtype=hessian.dtype)
        return unravel(jnp.linalg.solve(hessian, g)), ScaleByNewtonState(safe_increment(state.count))

    return GradientTransformation(init_fn, update_fn)


def newton(loss_fn, learning_rate=1.0, damping: float = 0.0) -> GradientTransformation:
    """Damped Newton: θ ← θ − γ·(H + λ·I)⁻¹·∇L(θ). γ may be a schedule; λ > 0 guards an
    ill-conditioned or indefinite Hessian. Cost O(n³) per step: for small problems only."""
    checks.rate("newton", "learning_rate", learning_rate)
    checks.nonneg("newton", "damping", damping)
    return chain(scale_by_newton(loss_fn, damping), scale_by_learning_rate(learning_rate))


class LbfgsState(NamedTuple):
    """``count``: updates done. ``theta``/``grad``: the flat θ and ∇L of the previous update.
    ``s``, ``y`` (memory × n) and ``rho`` (memory): the ring buffer of the last curvature pairs
    s = θ_{k+1} − θ_k, y = g_{k+1} − g_k, ρ = 1/(sᵀy); ``pairs``: pairs stored so far.
    ``step_size``: the step α the line search accepted last."""

    count: jax.Array
    theta: jax.Array
    grad: jax.Array
    s: jax.Array
    y: jax.Array
    rho: jax.Array
    pairs: jax.Array
    step_size: jax.Array


def _two_loop(g, s, y, rho, pairs, memory):
    """d = −H_k·g by the L-BFGS two-loop recursion (Nocedal & Wright, Algorithm 7.4).

    H₀ = γ·I with γ = sᵀy/yᵀy of the newest pair. Slots beyond the stored pairs are skipped.
    """
    stored = jnp.minimum(pairs, memory)
    newest = (pairs - 1) % memory

    def slot(i):  # i = 0 is the newest pair
        return (newest - i) % memory, i < stored

    def backward(i, carry):
        q, alphas = carry
        j, valid = slot(i)
        a = jnp.where(valid, rho[j] * jnp.dot(s[j], q), 0.0)
        return q - a * y[j], alphas.at[i].set(a)

    q, alphas = jax.lax.fori_loop(0, memory, backward, (g, jnp.zeros(memory, g.dtype)))
    yy = jnp.dot(y[newest], y[newest])
    gamma = jnp.where(stored > 0, jnp.dot(s[newest], y[newest]) / jnp.where(yy > 0, yy, 1.0), 1.0)

    def forward(k, r):
        i = memory - 1 - k  # oldest first
        j, valid = slot(i)
        b = rho[j] * jnp.dot(y[j], r)
        return jnp.where(valid, r + s[j] * (alphas[i] - b), r)

    return -jax.lax.fori_loop(0, memory, forward, gamma * q)


def _weak_wolfe(loss_fn, unravel, theta, direction, slope, first_step, c1, c2, max_steps):
    """A step α meeting the weak Wolfe conditions, by bracketing and bisection (Lewis & Overton):

        L(θ + α·d) ≤ L(θ) + c₁·α·∇Lᵀd       (sufficient decrease)
        ∇L(θ + α·d)ᵀd ≥ c₂·∇Lᵀd              (curvature, so that sᵀy > 0)

    Too long (decrease fails): shrink towards the bracket's low end; too short (curvature fails):
    double, or bisect once an upper end is known. Stops after ``max_steps`` trials.
    """
    value_and_grad = jax.value_and_grad(lambda x: loss_fn(unravel(x)))
    f0 = loss_fn(unravel(theta))

    def verdict(alpha):
        f, g = value_and_grad(theta + alpha * direction)
        too_long = ~(f <= f0 + c1 * alpha * slope)  # NaN counts as too long
        too_short = jnp.dot(g, direction) < c2 * slope
        return too_long, too_short

    def searching(carry):
        _, _, _, k, too_long, too_short = carry
        return (too_long | too_short) & (k < max_steps)

    def refine(carry):
        alpha, low, high, k, too_long, _ = carry
        low = jnp.where(too_long, low, alpha)
        high = jnp.where(too_long, alpha, high)
        alpha = jnp.where(jnp.isinf(high), 2 * low, (low + high) / 2)
        return (alpha, low, high, k + 1, *verdict(alpha))

    alpha = jnp.asarray(first_step, theta.dtype)
    start = (alpha, jnp.zeros_like(alpha), jnp.full_like(alpha, jnp.inf), 0, *verdict(alpha))
    alpha, low, _, _, too_long, _ = jax.lax.while_loop(searching, refine, start)
    return jnp.where(too_long, low, alpha)  # never return a step that increases the loss


def lbfgs(
    loss_fn,
    learning_rate: float = 1.0,
    memory_size: int = 10,
    max_linesearch_steps: int = 30,
    c1: float = 1e-4,
    c2: float = 0.9,
) -> GradientTransformation:
    """L-BFGS with a weak-Wolfe line search::

        d = −H_k·∇L(θ)          (two-loop recursion over the last ``memory_size`` pairs)
        α: L(θ + α·d) ≤ L(θ) + c₁·α·∇Lᵀd  and  ∇L(θ + α·d)ᵀd ≥ c₂·∇Lᵀd   (first trial α₀)
        θ ← θ + α·d

    α₀ = ``learning_rate``. The curvature condition keeps sᵀy > 0, so the inverse-Hessian
    estimate stays positive definite; a pair with sᵀy ≤ 0 (a failed search) is not stored, and if
    d is not a descent direction the step falls back to d = −∇L.
    """
    _check_loss_fn("lbfgs", loss_fn)
    checks.positive("lbfgs", "learning_rate", learning_rate, "It is the first step tried by the line search.")
    checks.positive_int("lbfgs", "memory_size", memory_size, "For example memory_size=10.")
    checks.positive_int("lbfgs", "max_linesearch_steps", max_linesearch_steps)
    checks.open_unit_interval("lbfgs", "c1", c1)
    checks.open_unit_interval("lbfgs", "c2", c2)
    if not c1 < c2:
        raise FnlearnError(f"lbfgs: need 0 < c1 < c2 < 1 for a Wolfe line search, got c1={c1!r}, c2={c2!r}.")

    def init_fn(params):
        theta, _ = ravel_pytree(params)
        zeros = jnp.zeros((memory_size, theta.size), theta.dtype)
        return LbfgsState(
            count=jnp.zeros([], jnp.int32),
            theta=jnp.zeros_like(theta),
            grad=jnp.zeros_like(theta),
            s=zeros,
            y=zeros,
            rho=jnp.zeros(memory_size, theta.dtype),
            pairs=jnp.zeros([], jnp.int32),
            step_size=jnp.asarray(learning_rate, theta.dtype),
        )

    def update_fn(updates, state, params=None):
        _need_params(params, "lbfgs")
        theta, unravel = ravel_pytree(params)
        g, _ = ravel_pytree(updates)
        s, y = theta - state.theta, g - state.grad
        sy = jnp.dot(s, y)
        store = (state.count > 0) & (sy > 1e-10 * jnp.sqrt(jnp.dot(s, s) * jnp.dot(y, y)))
        slot = state.pairs % memory_size
        mem_s = jnp.where(store, state.s.at[slot].set(s), state.s)
        mem_y = jnp.where(store, state.y.at[slot].set(y), state.y)
        rho = jnp.where(store, state.rho.at[slot].set(1.0 / jnp.where(store, sy, 1.0)), state.rho)
        pairs = state.pairs + store.astype(jnp.int32)

        direction = _two_loop(g, mem_s, mem_y, rho, pairs, memory_size)
        slope = jnp.dot(g, direction)
        direction = jnp.where(slope < 0, direction, -g)
        slope = jnp.where(slope < 0, slope, -jnp.dot(g, g))
        alpha = _weak_wolfe(
            loss_fn, unravel, theta, direction, slope, learning_rate, c1, c2, max_linesearch_steps
        )
        new_state = LbfgsState(safe_increment(state.count), theta, g, mem_s, mem_y, rho, pairs, alpha)
        return unravel(alpha * direction), new_state

    return GradientTransformation(init_fn, update_fn)


class MinimizeResult(NamedTuple):
    """Where ``minimize`` stopped: parameters, steps taken, ‖∇L‖ and L there."""

    params: Any
    steps: jax.Array
    grad_norm: jax.Array
    loss: jax.Array


def minimize(
    loss_fn, params, optimizer: GradientTransformation, tol: float = 1e-6, max_steps: int = 1000
) -> MinimizeResult:
    """Run ``optimizer`` on full-batch ∇L until ‖∇L(θ)‖₂ ≤ tol or ``max_steps``, in one jitted loop.

    ‖·‖ is the norm of all leaves as one vector, in the parameters' own precision.
    """
    _check_loss_fn("minimize", loss_fn)
    checks.nonneg("minimize", "tol", tol)
    checks.positive_int("minimize", "max_steps", max_steps)
    if not (callable(getattr(optimizer, "init", None)) and callable(getattr(optimizer, "update", None))):
        raise FnlearnError(
            f"minimize: optimizer must be a gradient transformation (init and update), got {checks.show(optimizer)}; "
            "e.g. fnlearn.optim.lbfgs(loss_fn)."
        )
    value_and_grad = jax.value_and_grad(loss_fn)

    def norm(tree):
        return jnp.sqrt(sum(jnp.vdot(x, x) for x in jax.tree_util.tree_leaves(tree)))

    def keep_going(carry):
        step, _, _, grads, _ = carry
        return (norm(grads) > tol) & (step < max_steps)

    def step_once(carry):
        step, params, state, grads, _ = carry
        updates, state = optimizer.update(grads, state, params)
        params = apply_updates(params, updates)
        loss, grads = value_and_grad(params)
        return step + 1, params, state, grads, loss

    @jax.jit
    def run(params):
        loss, grads = value_and_grad(params)
        carry = (jnp.zeros([], jnp.int32), params, optimizer.init(params), grads, loss)
        return jax.lax.while_loop(keep_going, step_once, carry)

    steps, params, _, grads, loss = run(params)
    return MinimizeResult(params, steps, norm(grads), loss)
