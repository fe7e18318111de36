"""The optimizer protocol: compiles once, stable state dtypes, clear errors, registry, logging hooks."""

from __future__ import annotations

import logging

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import fnlearn.optim as fo
from fnlearn.errors import FnlearnError
from fnlearn.optim.hyperparams import find_hyperparams, set_hyperparam


def params_of(dtype=jnp.float32):
    return {
        "layer": {"w": jnp.ones((4, 3), dtype), "b": jnp.zeros((3,), dtype)},
        "scale": jnp.asarray(0.5, dtype),
    }


def grads_of(params):
    return jax.tree_util.tree_map(lambda x: jnp.full_like(x, 0.25), params)


EVERY_OPTIMIZER = {
    "sgd": fo.sgd(0.1),
    "sgd_nesterov": fo.sgd(0.1, momentum=0.9, nesterov=True),
    "ema_momentum": fo.ema_momentum(0.1),
    "adagrad": fo.adagrad(0.1),
    "rmsprop_centered_momentum": fo.rmsprop(0.1, centered=True, momentum=0.9),
    "adam_scheduled": fo.adam(fo.schedules.warmup_cosine_decay_schedule(0.0, 0.1, 5, 50)),
    "nadam": fo.nadam(0.1),
    "adamw_masked": fo.adamw(0.1, mask=lambda p: jax.tree_util.tree_map(lambda x: x.ndim > 1, p)),
    "amsgrad": fo.amsgrad(0.1),
    "lion": fo.lion(0.1),
    "guarded_clipped": fo.apply_if_finite(
        fo.chain(fo.clip_by_global_norm(1.0), fo.add_l1_decay(1e-3), fo.sgd(0.1)), 3
    ),
}


@pytest.mark.parametrize("optimizer", EVERY_OPTIMIZER.values(), ids=EVERY_OPTIMIZER.keys())
def test_update_compiles_once_and_keeps_state_shapes_and_dtypes(optimizer):
    traces = []

    @jax.jit
    def step(params, state):
        traces.append(None)  # runs only while tracing
        updates, state = optimizer.update(grads_of(params), state, params)
        return fo.apply_updates(params, updates), state

    params = params_of()
    state0 = optimizer.init(params)
    p1, s1 = step(params, state0)
    p2, s2 = step(p1, s1)
    step(p2, s2)
    assert len(traces) == 1
    chex.assert_trees_all_equal_shapes_and_dtypes(s1, s2)
    chex.assert_trees_all_equal_shapes_and_dtypes(state0, s1)
    chex.assert_trees_all_equal_shapes_and_dtypes(p2, params)


@pytest.mark.parametrize("optimizer", EVERY_OPTIMIZER.values(), ids=EVERY_OPTIMIZER.keys())
def test_bfloat16_parameters_stay_bfloat16(optimizer):
    params = params_of(jnp.bfloat16)
    state = optimizer.init(params)
    for _ in range(3):
        updates, new_state = optimizer.update(grads_of(params), state, params)
        chex.assert_trees_all_equal_dtypes(updates, params)
        chex.assert_trees_all_equal_shapes_and_dtypes(new_state, state)
        params, state = fo.apply_updates(params, updates), new_state
    chex.assert_trees_all_equal_dtypes(params, params_of(jnp.bfloat16))
    assert all(np.isfinite(np.asarray(x, np.float32)).all() for x in jax.tree_util.tree_leaves(params))


@pytest.mark.parametrize(
    "build,argument",
    [
        (lambda: fo.sgd(-0.1), "learning_rate"),
        (lambda: fo.sgd(0.1, momentum=1.0), "momentum"),
        (lambda: fo.rmsprop(0.1, momentum=-0.1), "momentum"),
        (lambda: fo.rmsprop(0.1, decay=1.5), "decay"),
        (lambda: fo.adam(0.1, b1=1.0), "b1"),
        (lambda: fo.adam(0.1, b2=-0.5), "b2"),
        (lambda: fo.adam(0.1, eps=-1e-8), "eps"),
        (lambda: fo.adamw(0.1, weight_decay=-1.0), "weight_decay"),
        (lambda: fo.lion(0.1, b2=1.2), "b2"),
        (lambda: fo.ema_momentum(0.1, beta=1.0), "beta"),
        (lambda: fo.adagrad(-1.0), "learning_rate"),
        (lambda: fo.adagrad(0.1, initial_accumulator_value=-1.0), "initial_accumulator_value"),
        (lambda: fo.clip_by_global_norm(-1.0), "max_norm"),
        (lambda: fo.trace(decay=1.0), "decay"),
        (lambda: fo.lbfgs(lambda p: 0.0, memory_size=0), "memory_size"),
        (lambda: fo.chain(fo.sgd(0.1), "adam"), "gradient transformation"),
    ],
)
def test_bad_arguments_raise_at_construction_naming_the_argument(build, argument):
    with pytest.raises(FnlearnError, match=argument):
        build()


@pytest.mark.parametrize(
    "mask",
    [{"layer": True}, {"layer": {"w": True}, "scale": False}, lambda p: [True, False]],
    ids=["missing_key", "missing_leaf", "callable_wrong_tree"],
)
def test_mask_not_matching_the_parameters_raises_at_init(mask):
    optimizer = fo.adamw(0.1, mask=mask)
    with pytest.raises(FnlearnError, match="mask") as info:
        optimizer.init(params_of())
    assert "layer/w" in str(info.value)  # lists the parameter leaves to help fix it


def test_mask_with_array_leaves_raises_at_init():
    """A mask decides the program's structure, so its leaves must be Python bools."""
    optimizer = fo.adamw(0.1, mask=lambda p: jax.tree_util.tree_map(lambda x: jnp.asarray(x.ndim > 1), p))
    with pytest.raises(FnlearnError, match="mask leaves must be Python bools"):
        optimizer.init(params_of())


def test_weight_decay_without_params_is_a_clear_error():
    optimizer = fo.adamw(0.1)
    params = params_of()
    with pytest.raises(FnlearnError, match="params"):
        optimizer.update(grads_of(params), optimizer.init(params))


def test_registry_builds_the_same_optimizer_and_rejects_unknown_names_and_options():
    params = params_of()
    ours = fo.get("adamw", learning_rate=0.1, b2=0.99)
    direct = fo.adamw(0.1, b2=0.99)
    u1, _ = ours.update(grads_of(params), ours.init(params), params)
    u2, _ = direct.update(grads_of(params), direct.init(params), params)
    chex.assert_trees_all_close(u1, u2)
    assert fo.names() == sorted(fo.OPTIMIZERS)
    assert {"sgd", "adam", "adamw", "rmsprop", "adagrad", "amsgrad", "lion", "ema_momentum"} <= set(
        fo.names()
    )
    with pytest.raises(FnlearnError, match="Did you mean 'adam'"):
        fo.get("adma", learning_rate=0.1)
    with pytest.raises(FnlearnError, match="learning_rate"):
        fo.get("adam", lr=0.1)


def test_learning_rate_is_readable_however_the_optimizer_is_nested():
    """The rate of the latest update, from fnlearn chains, apply_if_finite, optax.chain and MultiSteps."""
    schedule = fo.schedules.linear_schedule(1.0, 0.0, 10)
    params = params_of()
    wrapped = {
        "plain": fo.sgd(schedule),
        "guarded": fo.apply_if_finite(fo.adam(schedule), 2),
        "optax_chain": optax.chain(optax.clip(1.0), fo.rmsprop(schedule, momentum=0.5)),
        "multisteps": optax.MultiSteps(fo.adamw(schedule), every_k_schedule=1).gradient_transformation(),
    }
    for name, optimizer in wrapped.items():
        state = optimizer.init(params)
        assert float(fo.learning_rate(state)) == pytest.approx(1.0), name
        for step in range(3):
            _, state = jax.jit(optimizer.update)(grads_of(params), state, params)
            assert float(fo.learning_rate(state)) == pytest.approx(schedule(step)), name
    assert fo.learning_rate(optax.adam(0.1).init(params)) is None
    assert fo.skipped_steps(fo.sgd(0.1).init(params)) is None


def test_scale_by_learning_rate_is_optax_with_a_readable_state():
    params, grads = params_of(), grads_of(params_of())
    for rate in (0.3, fo.schedules.exponential_decay(0.3, 2, 0.5)):
        ours, theirs = fo.scale_by_learning_rate(rate), optax.scale_by_learning_rate(rate)
        s, r = ours.init(params), theirs.init(params)
        for _ in range(4):
            u, s = ours.update(grads, s, params)
            v, r = theirs.update(grads, r, params)
            chex.assert_trees_all_close(u, v)
        assert int(s.count) == 4


@pytest.mark.parametrize("factory", [fo.adam, optax.adam], ids=["fnlearn_adam", "optax_adam"])
def test_set_hyperparam_changes_the_rate_used_without_recompiling(factory, caplog):
    """What ReduceLROnPlateau does between epochs: the next update uses the new rate, the compiled
    update is reused (the new array is placed like the old one), and learning_rate() reports it,
    also for an optax optimizer inside inject_hyperparams."""
    params, grads = params_of(), grads_of(params_of())
    tx = fo.inject_hyperparams(factory)(learning_rate=0.1)
    state, update = jax.jit(tx.init)(params), jax.jit(tx.update)  # placed as TrainState.create places it
    with jax.log_compiles(), caplog.at_level(logging.WARNING):
        _, state = update(grads, state, params)
        lowered = set_hyperparam(state, "learning_rate", 0.05)
        u, lowered = update(grads, lowered, params)
    assert sum("Compiling jit(update_fn)" in r.getMessage() for r in caplog.records) == 1
    assert float(fo.learning_rate(lowered)) == pytest.approx(0.05)
    assert float(find_hyperparams(state)["learning_rate"]) == pytest.approx(0.1)  # the old state is untouched
    expected, _ = factory(0.05).update(grads, state.inner_state, params)
    chex.assert_trees_all_close(u, expected, rtol=1e-6)
    with pytest.raises(FnlearnError, match="inject_hyperparams"):
        set_hyperparam(fo.adam(0.1).init(params), "learning_rate", 0.05)
