"""``multi_steps`` against ``optax.MultiSteps``: 200 calls side by side in one compiled scan, comparing
the updates, the counters (mini_step, gradient_step), the accumulated gradients and the inner states."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import fnlearn.optim as fo
from fnlearn.errors import FnlearnError

STEPS = 200


def params0():
    return {"w": jnp.linspace(-1.0, 1.0, 6).reshape(3, 2), "b": jnp.zeros(2)}


def random_grads(seed=0):
    """One gradient per call, normal noise times 10^u, u ~ U(−2, 1) per call and leaf."""
    rng = np.random.default_rng(seed)

    def draw(x):
        scale = 10.0 ** rng.uniform(-2, 1, size=(STEPS,) + (1,) * x.ndim)
        return jnp.asarray(rng.standard_normal((STEPS,) + x.shape) * scale, jnp.float32)

    return jax.tree.map(draw, params0())


def every_k(gradient_step):
    """A batch size that varies: 1, 2, 3, 4, 1, 2, ... mini-steps per update."""
    return 1 + gradient_step % 4


PAIRS = {
    # fnlearn's wrapper around fnlearn's Adam with a schedule, against optax's around optax's.
    "adam_schedule_varying_k": (
        fo.multi_steps(fo.adam(fo.cosine_decay_schedule(0.05, 60)), every_k),
        optax.MultiSteps(optax.adam(optax.cosine_decay_schedule(0.05, 60)), every_k_schedule=every_k),
    ),
    # The same inner optimizer in both wrappers, summing instead of averaging: whole states comparable.
    "same_inner_sum": (
        fo.multi_steps(fo.adamw(fo.linear_schedule(0.05, 0.0, 80), weight_decay=0.1), 3, use_grad_mean=False),
        optax.MultiSteps(
            fo.adamw(fo.linear_schedule(0.05, 0.0, 80), weight_decay=0.1), 3, use_grad_mean=False
        ),
    ),
}


def run_side_by_side():
    """Both wrappers of every pair, each applying its own updates to its own parameters."""

    def step(carry, g):
        out = {}
        for name, (ours, theirs) in PAIRS.items():
            (p, s), (q, r) = carry[name]
            u, s = ours.update(g, s, p)
            v, r = theirs.update(g, r, q)
            p, q = fo.apply_updates(p, u), optax.apply_updates(q, v)
            out[name] = ((p, s), (q, r))
        return out, out

    init = {
        name: ((params0(), ours.init(params0())), (params0(), theirs.init(params0())))
        for name, (ours, theirs) in PAIRS.items()
    }
    return jax.lax.scan(step, init, random_grads())[1]


def test_multi_steps_equals_optax_multisteps_at_every_call():
    trajectories = jax.jit(run_side_by_side)()
    for name, ((p, s), (q, r)) in trajectories.items():
        np.testing.assert_array_equal(s.mini_step, r.mini_step, err_msg=name)
        np.testing.assert_array_equal(s.gradient_step, r.gradient_step, err_msg=name)
        chex.assert_trees_all_close(p, q, rtol=1e-6, atol=1e-8, custom_message=name)
        chex.assert_trees_all_close(s.acc_grads, r.acc_grads, rtol=1e-6, atol=1e-8, custom_message=name)
    # The counting itself: k = 1, 2, 3, 4, 1, ... gives mini_step 0 | 1 0 | 1 2 0 | 1 2 3 0 | 0 ...
    (_, s), (_, r) = trajectories["adam_schedule_varying_k"]
    expected = np.concatenate([np.r_[1:k, 0] for k in [every_k(i) for i in range(STEPS)]])[:STEPS]
    np.testing.assert_array_equal(s.mini_step, expected)
    assert int(s.gradient_step[-1]) == int((expected == 0).sum()) == 80
    # Inner states: fnlearn's Adam against optax's, and the schedule's count.
    ours_adam, ours_rate = s.inner_opt_state
    theirs_adam, theirs_schedule = r.inner_opt_state
    chex.assert_trees_all_close(tuple(ours_adam), tuple(theirs_adam), rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(ours_rate.count, theirs_schedule.count)
    np.testing.assert_allclose(
        ours_rate.learning_rate[-1], optax.cosine_decay_schedule(0.05, 60)(79), rtol=1e-6
    )
    (_, s), (_, r) = trajectories["same_inner_sum"]
    chex.assert_trees_all_close(s.inner_opt_state, r.inner_opt_state, rtol=1e-6, atol=1e-9)


def test_only_every_kth_call_moves_the_parameters():
    tx = fo.multi_steps(fo.sgd(1.0), 3)
    params = {"x": jnp.zeros(2)}
    state, update = tx.init(params), jax.jit(tx.update)
    grads = [jnp.array([1.0, 2.0]), jnp.array([3.0, 4.0]), jnp.array([5.0, 0.0])]
    for i, g in enumerate(grads):
        u, state = update({"x": g}, state, params)
        expected = -np.mean(grads, axis=0) if i == 2 else np.zeros(2)
        np.testing.assert_allclose(u["x"], expected, rtol=1e-6)
    assert int(state.mini_step) == 0 and int(state.gradient_step) == 1
    assert float(fo.learning_rate(state)) == 1.0


def test_extra_arguments_reach_the_inner_optimizer():
    """reduce_on_plateau inside multi_steps sees each call's loss (on the calls it is updated)."""
    tx = fo.multi_steps(fo.chain(fo.sgd(0.1), fo.reduce_on_plateau(factor=0.5, patience=1)), 2)
    params = {"x": jnp.ones(2)}
    state, update = tx.init(params), jax.jit(tx.update)
    for loss in [1.0, 1.0, 2.0, 2.0]:  # judged on calls 2 and 4: 1.0 (best), then 2.0 (plateau)
        _, state = update({"x": jnp.ones(2)}, state, params, value=loss)
    assert float(state.inner_opt_state[1].scale) == 0.5


@pytest.mark.parametrize("bad", [0, -2, 2.5, True, "4"])
def test_every_k_must_be_a_positive_int_or_a_schedule(bad):
    with pytest.raises(FnlearnError, match="every_k"):
        fo.multi_steps(fo.sgd(0.1), bad)


def test_bfloat16_gradients_keep_their_dtype_and_the_accumulator_stays_float32():
    tx = fo.multi_steps(fo.adam(0.1), 2)
    params = {"x": jnp.ones(3, jnp.bfloat16)}
    state, update = tx.init(params), jax.jit(tx.update)
    for _ in range(2):
        u, state = update({"x": jnp.full(3, 0.5, jnp.bfloat16)}, state, params)
        assert u["x"].dtype == jnp.bfloat16 and state.acc_grads["x"].dtype == jnp.float32
