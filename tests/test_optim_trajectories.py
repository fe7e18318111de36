"""fnlearn's optimizers against optax's, side by side for 200 jitted steps.

Each case runs both optimizers inside one ``lax.scan`` on two problems at once:
  * a nested pytree (matrix, vector, scalar) fed the same random gradients of varied scale
    (10⁻³ … 10², changing every step and every leaf), so the transforms see identical inputs;
  * a small MLP's mean-squared loss, each optimizer following its own real gradients.
The parameters must agree at every step to float32 tolerance.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import fnlearn.optim as fo
from fnlearn.optim import schedules as fs

STEPS = 200


def nested_params():
    k1, k2 = jax.random.split(jax.random.PRNGKey(0))
    return {
        "layer": {"w": jax.random.normal(k1, (4, 3)), "b": jax.random.normal(k2, (3,))},
        "scale": jnp.asarray(0.5),
    }


def random_grads(steps=STEPS, seed=1):
    """One gradient per step for ``nested_params()``: normal noise times 10^u, u ~ U(−3, 2), drawn
    per step and per leaf. Made once in numpy and fed to the scan, so no RNG is compiled."""
    rng = np.random.default_rng(seed)

    def draw(x):
        scale = 10.0 ** rng.uniform(-3, 2, size=(steps,) + (1,) * np.ndim(x))
        return jnp.asarray(rng.standard_normal((steps,) + np.shape(x)) * scale, jnp.float32)

    return jax.tree_util.tree_map(draw, nested_params())


def mlp_problem():
    kx, k1, k2 = jax.random.split(jax.random.PRNGKey(2), 3)
    x = jax.random.normal(kx, (32, 3))
    y = jnp.sin(x.sum(axis=1))
    params = {
        "hidden": {"w": jax.random.normal(k1, (3, 16)) / jnp.sqrt(3.0), "b": jnp.zeros(16)},
        "out": {"w": jax.random.normal(k2, (16,)) / 4.0, "b": jnp.asarray(0.0)},
    }

    def loss(p):
        h = jnp.tanh(x @ p["hidden"]["w"] + p["hidden"]["b"])
        return jnp.mean((h @ p["out"]["w"] + p["out"]["b"] - y) ** 2)

    return params, loss


def compile_fast(fn):
    """``jax.jit(fn)`` compiled with XLA's backend optimisations off: a third less compile time
    for these small scans, which run in milliseconds either way. Both optimizers sit in the same
    compiled program, so the comparison is unaffected."""
    return jax.jit(fn).lower().compile({"xla_backend_optimization_level": 0})


def run_side_by_side(ours, theirs, steps=STEPS):
    """Trajectories (stacked over steps) of both optimizers on both problems."""
    p0 = nested_params()
    q0, loss = mlp_problem()
    # One vmapped gradient for both MLP trajectories keeps the compiled graph small.
    grad_pair = jax.vmap(jax.grad(loss))

    def step(carry, g):
        p_ours, s_ours, p_ref, s_ref, q_ours, r_ours, q_ref, r_ref = carry
        u, s_ours = ours.update(g, s_ours, p_ours)
        p_ours = fo.apply_updates(p_ours, u)
        u, s_ref = theirs.update(g, s_ref, p_ref)
        p_ref = optax.apply_updates(p_ref, u)
        pair = jax.tree_util.tree_map(lambda a, b: jnp.stack([a, b]), q_ours, q_ref)
        g_pair = grad_pair(pair)
        u, r_ours = ours.update(jax.tree_util.tree_map(lambda x: x[0], g_pair), r_ours, q_ours)
        q_ours = fo.apply_updates(q_ours, u)
        u, r_ref = theirs.update(jax.tree_util.tree_map(lambda x: x[1], g_pair), r_ref, q_ref)
        q_ref = optax.apply_updates(q_ref, u)
        carry = (p_ours, s_ours, p_ref, s_ref, q_ours, r_ours, q_ref, r_ref)
        return carry, (p_ours, p_ref, q_ours, q_ref, loss(q_ours))

    def run():
        carry = (p0, ours.init(p0), p0, theirs.init(p0), q0, ours.init(q0), q0, theirs.init(q0))
        return jax.lax.scan(step, carry, random_grads(steps))[1]

    return compile_fast(run)()


def assert_same_paths(ours, theirs):
    p_ours, p_ref, q_ours, q_ref, mlp_loss = run_side_by_side(ours, theirs)
    kw = dict(rtol=2e-5, atol=2e-6)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, **kw), p_ours, p_ref)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, **kw), q_ours, q_ref)
    assert np.all(np.isfinite(mlp_loss))
    return mlp_loss


def decay_matrices(params):
    return jax.tree_util.tree_map(lambda x: x.ndim > 1, params)


# (id, fnlearn optimizer, optax optimizer). Learning rates are kept small enough that the MLP
# loss stays finite for every optimizer.
CASES = [
    ("sgd", fo.sgd(0.05), optax.sgd(0.05)),
    ("sgd_momentum", fo.sgd(0.02, momentum=0.9), optax.sgd(0.02, momentum=0.9)),
    (
        "sgd_nesterov",
        fo.sgd(0.02, momentum=0.9, nesterov=True),
        optax.sgd(0.02, momentum=0.9, nesterov=True),
    ),
    (
        "ema_momentum",
        fo.ema_momentum(0.1, beta=0.8),
        optax.chain(optax.ema(0.8, debias=False), optax.scale_by_learning_rate(0.1)),
    ),
    ("adagrad", fo.adagrad(0.05), optax.adagrad(0.05)),
    (
        "adagrad_zero_init",
        fo.adagrad(0.05, initial_accumulator_value=0.0),
        optax.adagrad(0.05, initial_accumulator_value=0.0),
    ),
    ("rmsprop", fo.rmsprop(0.003), optax.rmsprop(0.003)),
    (
        "rmsprop_eps_outside",
        fo.rmsprop(0.003, eps_in_sqrt=False),
        optax.rmsprop(0.003, eps_in_sqrt=False),
    ),
    ("rmsprop_centered", fo.rmsprop(0.003, centered=True), optax.rmsprop(0.003, centered=True)),
    ("rmsprop_momentum", fo.rmsprop(0.001, momentum=0.9), optax.rmsprop(0.001, momentum=0.9)),
    (
        "rmsprop_centered_nesterov",
        fo.rmsprop(0.001, centered=True, momentum=0.9, nesterov=True, initial_scale=0.1),
        optax.rmsprop(0.001, centered=True, momentum=0.9, nesterov=True, initial_scale=0.1),
    ),
    (
        "rmsprop_bias_corrected",
        fo.rmsprop(0.003, bias_correction=True, centered=True),
        optax.rmsprop(0.003, bias_correction=True, centered=True),
    ),
    ("adam", fo.adam(0.01), optax.adam(0.01)),
    (
        "adam_eps_root",
        fo.adam(0.01, b1=0.8, b2=0.99, eps=1e-6, eps_root=1e-8),
        optax.adam(0.01, b1=0.8, b2=0.99, eps=1e-6, eps_root=1e-8),
    ),
    ("nadam", fo.nadam(0.01), optax.nadam(0.01)),
    ("adamw", fo.adamw(0.01, weight_decay=0.1), optax.adamw(0.01, weight_decay=0.1)),
    (
        "adamw_mask_fn",
        fo.adamw(0.01, weight_decay=0.1, mask=decay_matrices),
        optax.adamw(0.01, weight_decay=0.1, mask=decay_matrices),
    ),
    (
        "adamw_mask_prefix",
        fo.adamw(0.01, weight_decay=0.1, mask=lambda p: {k: k in ("layer", "hidden") for k in p}),
        optax.adamw(0.01, weight_decay=0.1, mask=lambda p: {k: k in ("layer", "hidden") for k in p}),
    ),
    ("amsgrad", fo.amsgrad(0.01), optax.amsgrad(0.01)),
    ("lion", fo.lion(0.001), optax.lion(0.001)),
    (
        "clip_then_sgd",
        fo.chain(fo.clip_by_global_norm(1.0), fo.clip(0.3), fo.sgd(0.05, momentum=0.5)),
        optax.chain(optax.clip_by_global_norm(1.0), optax.clip(0.3), optax.sgd(0.05, momentum=0.5)),
    ),
    (
        "scheduled_weight_decay",
        fo.chain(fo.add_decayed_weights(optax.linear_schedule(0.1, 0.0, 150)), fo.scale(-0.02)),
        optax.chain(optax.add_decayed_weights(optax.linear_schedule(0.1, 0.0, 150)), optax.scale(-0.02)),
    ),
    # Composition both ways.
    (
        "fnlearn_inside_optax_chain",
        optax.chain(optax.clip_by_global_norm(2.0), fo.adam(0.01)),
        optax.chain(optax.clip_by_global_norm(2.0), optax.adam(0.01)),
    ),
    (
        "fnlearn_inside_optax_multisteps",
        optax.MultiSteps(fo.adamw(0.01), every_k_schedule=3).gradient_transformation(),
        optax.MultiSteps(optax.adamw(0.01), every_k_schedule=3).gradient_transformation(),
    ),
    (
        "optax_inside_fnlearn_chain",
        fo.chain(
            optax.clip_by_global_norm(2.0),
            fo.scale_by_adam(),
            optax.add_decayed_weights(1e-2),
            fo.scale_by_learning_rate(0.01),
        ),
        optax.chain(
            optax.clip_by_global_norm(2.0),
            optax.scale_by_adam(),
            optax.add_decayed_weights(1e-2),
            optax.scale_by_learning_rate(0.01),
        ),
    ),
]


@pytest.mark.parametrize("ours,theirs", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_same_parameters_as_optax_at_every_step(ours, theirs):
    assert_same_paths(ours, theirs)


# Every schedule drives SGD with momentum, fnlearn's schedule in fnlearn's optimizer against
# optax's schedule in optax's optimizer. Our own two (inverse sqrt, linear warmup) are compared
# with the same curve assembled from optax's pieces.
SCHEDULE_PAIRS = [
    ("constant", fs.constant_schedule(0.03), optax.constant_schedule(0.03)),
    (
        "linear",
        fs.linear_schedule(0.05, 0.001, 150, 20),
        optax.linear_schedule(0.05, 0.001, 150, 20),
    ),
    (
        "polynomial",
        fs.polynomial_schedule(0.05, 0.001, 2.0, 150),
        optax.polynomial_schedule(0.05, 0.001, 2.0, 150),
    ),
    (
        "piecewise_constant",
        fs.piecewise_constant_schedule(0.05, {30: 0.1, 60: 0.1, 90: 0.1}),
        optax.piecewise_constant_schedule(0.05, {30: 0.1, 60: 0.1, 90: 0.1}),
    ),
    (
        "exponential_decay",
        fs.exponential_decay(0.05, 20, 0.7, transition_begin=10, staircase=True, end_value=0.005),
        optax.exponential_decay(0.05, 20, 0.7, transition_begin=10, staircase=True, end_value=0.005),
    ),
    (
        "cosine_decay",
        fs.cosine_decay_schedule(0.05, 150, alpha=0.1),
        optax.cosine_decay_schedule(0.05, 150, alpha=0.1),
    ),
    (
        "warmup_cosine_decay",
        fs.warmup_cosine_decay_schedule(0.0, 0.05, 20, 180, end_value=0.001),
        optax.warmup_cosine_decay_schedule(0.0, 0.05, 20, 180, end_value=0.001),
    ),
    (
        "join",
        fs.join_schedules([fs.constant_schedule(0.05), fs.linear_schedule(0.05, 0.0, 100)], [50]),
        optax.join_schedules([optax.constant_schedule(0.05), optax.linear_schedule(0.05, 0.0, 100)], [50]),
    ),
    (
        "inverse_sqrt",
        fs.inverse_sqrt_schedule(0.05, warmup_steps=10),
        optax.join_schedules(
            [optax.linear_schedule(0.0, 0.05, 10), lambda c: 0.05 * jax.lax.rsqrt(1.0 + c)], [10]
        ),
    ),
    (
        "linear_warmup",
        fs.linear_warmup(fs.cosine_decay_schedule(0.05, 100), 25),
        optax.join_schedules(
            [optax.linear_schedule(0.0, 0.05, 25), optax.cosine_decay_schedule(0.05, 100)], [25]
        ),
    ),
]


@pytest.mark.parametrize("ours,theirs", [c[1:] for c in SCHEDULE_PAIRS], ids=[c[0] for c in SCHEDULE_PAIRS])
def test_scheduled_sgd_same_parameters_as_optax_at_every_step(ours, theirs):
    assert_same_paths(fo.sgd(ours, momentum=0.9), optax.sgd(theirs, momentum=0.9))


def test_apply_if_finite_skips_and_counts_like_optax():
    """NaN/inf gradients on a fixed pattern of steps: same parameters as optax and the skip count
    that the pattern implies (a non-finite update is let through after 2 in a row)."""
    p0 = nested_params()
    bad = np.zeros(STEPS, bool)
    bad[np.arange(3, STEPS, 17)] = True  # isolated bad steps: skipped
    bad[[100, 101, 102]] = True  # three in a row: the third is let through by max_consecutive_errors=2
    ours = fo.apply_if_finite(fo.adam(fo.schedules.cosine_decay_schedule(0.01, STEPS)), 2)
    theirs = optax.apply_if_finite(optax.adam(optax.cosine_decay_schedule(0.01, STEPS)), 2)
    poison = jnp.where(jnp.asarray(bad), jnp.nan, 0.0)

    def step(carry, inputs):
        p, s, q, r = carry
        g, nan = inputs
        g = {**g, "scale": g["scale"] + nan}
        u, s = ours.update(g, s, p)
        p = fo.apply_updates(p, u)
        u, r = theirs.update(g, r, q)
        q = optax.apply_updates(q, u)
        return (p, s, q, r), (p, q, fo.learning_rate(s), fo.skipped_steps(s))

    def run():
        return jax.lax.scan(step, (p0, ours.init(p0), p0, theirs.init(p0)), (random_grads(), poison))

    (_, state, _, ref_state), (p, q, rates, skipped) = compile_fast(run)()
    # After the let-through at step 102 the scalar leaf is NaN in both (NaN == NaN here).
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6), p, q)
    assert np.isfinite(p["layer"]["w"]).all() and np.isnan(p["scale"][102:]).all()
    expected_skips = np.cumsum(bad) - np.cumsum(np.arange(STEPS) == 102)
    np.testing.assert_array_equal(skipped, expected_skips)
    assert int(state.total_notfinite) == int(ref_state.total_notfinite) == bad.sum()
    assert int(state.notfinite_count) == int(ref_state.notfinite_count)
    # The logged rate is the schedule at the inner optimizer's own count, which skipped steps freeze.
    inner_count = np.cumsum(~bad | (np.arange(STEPS) == 102)) - 1
    np.testing.assert_allclose(rates, optax.cosine_decay_schedule(0.01, STEPS)(inner_count), rtol=1e-5)


def test_complex_parameters_follow_optax():
    """Second moments of complex gradients are |g|² (real), as in optax: 50 steps on a complex
    quadratic, every adaptive optimizer against optax's, in one compiled scan."""
    pairs = {
        "adagrad": (fo.adagrad(0.1), optax.adagrad(0.1)),
        "rmsprop_centered": (fo.rmsprop(0.01, centered=True), optax.rmsprop(0.01, centered=True)),
        "adam": (fo.adam(0.05), optax.adam(0.05)),
        "amsgrad": (fo.amsgrad(0.05), optax.amsgrad(0.05)),
        "clipped_sgd": (
            fo.chain(fo.clip_by_global_norm(0.5), fo.sgd(0.1)),
            optax.chain(optax.clip_by_global_norm(0.5), optax.sgd(0.1)),
        ),
    }
    target = jnp.array([1 + 1j, -2 + 0.5j, 0.3 - 1j], jnp.complex64)

    def loss(p):
        return jnp.sum(jnp.abs(p - target) ** 2)

    p0 = jnp.zeros(3, jnp.complex64)

    def run():
        def step(carry, _):
            new = {}
            for name, (ours, theirs) in pairs.items():
                (p, s), (q, r) = carry[name]
                u, s = ours.update(jnp.conj(jax.grad(loss)(p)), s, p)
                v, r = theirs.update(jnp.conj(jax.grad(loss)(q)), r, q)
                new[name] = ((fo.apply_updates(p, u), s), (optax.apply_updates(q, v), r))
            return new, {name: (c[0][0], c[1][0]) for name, c in new.items()}

        init = {name: ((p0, o.init(p0)), (p0, t.init(p0))) for name, (o, t) in pairs.items()}
        return jax.lax.scan(step, init, None, length=50)[1]

    for name, (p, q) in compile_fast(run)().items():
        np.testing.assert_allclose(p, q, rtol=2e-5, atol=2e-6, err_msg=name)
        assert p.dtype == jnp.complex64
