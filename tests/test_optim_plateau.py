"""``reduce_on_plateau`` against ``optax.contrib.reduce_on_plateau``: both fed the same losses through
``update(..., value=loss)``, the updates and every field of the state compared at every call."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.contrib
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import fnlearn.optim as fo
from fnlearn.errors import FnlearnError

CALLS = 120
PARAMS = {"w": jnp.ones((2, 3)), "b": jnp.zeros(3)}
SETTINGS = {
    "defaults": {},
    "busy": {
        "factor": 0.5,
        "patience": 2,
        "rtol": 0.0,
        "atol": 0.05,
        "cooldown": 2,
        "accumulation_size": 3,
        "min_scale": 0.05,
    },
    # Losses that are multiples of 0.5 land exactly on best − atol: "improved" must be strict.
    "ties": {"factor": 0.5, "patience": 1, "rtol": 0.0, "atol": 0.5, "cooldown": 1},
}


def side_by_side(options):
    """A compiled ``losses -> (our states, optax's states, our updates, optax's updates)`` over CALLS calls."""
    ours, theirs = fo.reduce_on_plateau(**options), optax.contrib.reduce_on_plateau(**options)
    grads = jax.tree.map(jnp.ones_like, PARAMS)

    def step(carry, loss):
        s, r = carry
        u, s = ours.update(grads, s, PARAMS, value=loss)
        v, r = theirs.update(grads, r, PARAMS, value=loss)
        return (s, r), (s, r, u, v)

    return jax.jit(lambda losses: jax.lax.scan(step, (ours.init(PARAMS), theirs.init(PARAMS)), losses)[1])


RUNS = {name: side_by_side(options) for name, options in SETTINGS.items()}

# Losses that fall, stall, wobble and repeat, as a validation loss does.
losses_strategy = arrays(
    np.float32, CALLS, elements=st.sampled_from([0.5, 0.9, 1.0, 1.0, 1.01, 1.2, 1.5, 2.0, 3.0])
)


@settings(max_examples=30, deadline=None)
@given(losses=losses_strategy, decay=st.sampled_from([1.0, 0.995, 0.98]))
def test_same_scale_and_state_as_optax_at_every_call(losses, decay):
    losses = losses * decay ** np.arange(CALLS, dtype=np.float32)  # a downward trend under the noise
    for name, run in RUNS.items():
        s, r, u, v = run(jnp.asarray(losses))
        for field in fo.ReduceLROnPlateauState._fields:
            np.testing.assert_array_equal(getattr(s, field), getattr(r, field), err_msg=f"{name}: {field}")
        chex.assert_trees_all_equal(u, v)


def test_the_busy_setting_reduces_cools_down_and_stops_at_min_scale():
    """A loss that never improves after the first mean: with accumulation 3, patience 2 and cooldown
    2 the scale halves every 3·(2 + 2) = 12 calls after the first reduction, down to min_scale."""
    losses = np.full(CALLS, 1.0, np.float32)
    s, r, _, _ = RUNS["busy"](jnp.asarray(losses))
    changes = np.flatnonzero(np.diff(np.r_[1.0, s.scale]))
    np.testing.assert_array_equal(changes, [8, 20, 32, 44, 56])  # 0-based calls: the 9th, then every 12th
    assert float(s.scale[-1]) == pytest.approx(0.05) and float(np.min(s.scale)) == pytest.approx(0.05)
    np.testing.assert_array_equal(s.scale, r.scale)


def test_bfloat16_parameters_keep_bfloat16_updates_and_losses_use_the_widest_dtype():
    params = {"w": jnp.ones(3, jnp.bfloat16), "b": jnp.zeros(2, jnp.float32)}
    ours, theirs = fo.reduce_on_plateau(), optax.contrib.reduce_on_plateau()
    s, r = ours.init(params), theirs.init(params)
    assert s.scale.dtype == r.scale.dtype == jnp.bfloat16
    assert s.best_value.dtype == r.best_value.dtype == jnp.float32
    grads = jax.tree.map(jnp.ones_like, params)
    u, _ = jax.jit(ours.update)(grads, s, params, value=1.0)
    assert u["w"].dtype == jnp.bfloat16


def test_the_loss_is_required_and_the_error_says_how_to_give_it():
    tx = fo.reduce_on_plateau()
    with pytest.raises(FnlearnError, match=r"value=loss.*fnlearn.optim.chain"):
        tx.update(PARAMS, tx.init(PARAMS), PARAMS)
    inside_optax = optax.chain(optax.scale(1.0), fo.reduce_on_plateau())
    with pytest.raises(FnlearnError, match="GradientTransformationExtraArgs"):
        inside_optax.update(PARAMS, inside_optax.init(PARAMS), PARAMS, value=1.0)


@pytest.mark.parametrize(
    "options, name",
    [
        ({"factor": 1.0}, "factor"),
        ({"factor": 0.0}, "factor"),
        ({"rtol": -1e-4}, "rtol"),
        ({"rtol": 0.0, "atol": 0.0}, "rtol"),
        ({"rtol": 1.5}, "rtol"),
        ({"patience": -1}, "patience"),
        ({"cooldown": 1.5}, "cooldown"),
        ({"accumulation_size": 0}, "accumulation_size"),
        ({"min_scale": -0.1}, "min_scale"),
    ],
)
def test_bad_arguments_raise_at_construction_naming_the_argument(options, name):
    with pytest.raises(FnlearnError, match=name):
        fo.reduce_on_plateau(**options)
