"""optax's extra-arguments protocol: every fnlearn transform takes ``update(g, s, p, **extra_args)``,
``chain`` and the wrappers hand the extra arguments to every member that takes them, and optax
transforms of both kinds (with and without extra-args support) compose with fnlearn's both ways."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.contrib
import pytest

import fnlearn.optim as fo
from fnlearn.errors import FnlearnError

PARAMS = {"w": jnp.array([[1.0, -2.0], [0.5, 3.0]]), "b": jnp.array([0.1, -0.2])}
GRADS = jax.tree.map(lambda x: 0.3 * x + 0.05, PARAMS)

# Every optimizer and building block fnlearn exports, as one would build them.
EVERY_TRANSFORM = {
    **{name: factory(0.1) for name, factory in fo.OPTIMIZERS.items()},
    "scale": fo.scale(0.5),
    "scale_by_learning_rate": fo.scale_by_learning_rate(fo.schedules.linear_schedule(0.1, 0.0, 10)),
    "trace": fo.trace(0.9, nesterov=True),
    "ema": fo.ema(0.9),
    "scale_by_rss": fo.scale_by_rss(),
    "scale_by_rms": fo.scale_by_rms(),
    "scale_by_stddev": fo.scale_by_stddev(),
    "scale_by_adam": fo.scale_by_adam(),
    "scale_by_amsgrad": fo.scale_by_amsgrad(),
    "scale_by_lion": fo.scale_by_lion(),
    "add_decayed_weights": fo.add_decayed_weights(1e-2),
    "add_l1_decay": fo.add_l1_decay(1e-2),
    "clip": fo.clip(0.2),
    "clip_by_global_norm": fo.clip_by_global_norm(0.2),
    "apply_if_finite": fo.apply_if_finite(fo.adam(0.1), 2),
    "identity": fo.identity(),
    "inject_hyperparams": fo.inject_hyperparams(fo.adamw)(learning_rate=0.1, weight_decay=1e-2),
    "multi_steps": fo.multi_steps(fo.sgd(0.1, momentum=0.9), 2),
    "newton": fo.newton(lambda p: jnp.sum(p["w"] ** 2) + jnp.sum(p["b"] ** 4), damping=1.0),
    "lbfgs": fo.lbfgs(lambda p: jnp.sum(p["w"] ** 2) + jnp.sum(p["b"] ** 4)),
}


def test_every_fnlearn_transform_takes_and_ignores_unknown_extra_arguments():
    """optax's alias_test ``test_optimizers_accept_extra_args``, for every transform fnlearn has:
    inside jit, unknown keywords (and ``value``, which none of these reads) change nothing."""

    def both():
        out = {}
        for name, tx in EVERY_TRANSFORM.items():
            state = tx.init(PARAMS)
            plain = tx.update(GRADS, state, PARAMS)
            out[name] = plain, tx.update(GRADS, state, PARAMS, unexpected_extra_arg=1, value=jnp.float32(2.0))
        return out

    for name, (plain, extra) in jax.jit(both)().items():  # one program for all: one compilation
        assert isinstance(EVERY_TRANSFORM[name], fo.GradientTransformationExtraArgs), name
        chex.assert_trees_all_equal(extra, plain, custom_message=name)


def recording(name, seen):
    """An fnlearn transform that needs the extra argument ``value`` and records what it got."""

    def update_fn(updates, state, params=None, *, value, **extra_args):
        seen.append((name, value, sorted(extra_args)))
        return jax.tree.map(lambda g: g * value, updates), state

    return fo.GradientTransformation(lambda params: fo.EmptyState(), update_fn)


def test_chain_and_wrappers_hand_extra_arguments_to_every_member_that_takes_them():
    seen = []
    tx = fo.chain(
        optax.clip(10.0),  # an optax transform without extra-args support: gets none, still works
        recording("first", seen),
        fo.chain(fo.scale(1.0), recording("nested", seen)),
        fo.apply_if_finite(recording("guarded", seen), 1),
        fo.inject_hyperparams(
            lambda learning_rate: fo.chain(recording("injected", seen), fo.sgd(learning_rate))
        )(learning_rate=0.5),
    )
    updates, _ = tx.update(GRADS, tx.init(PARAMS), PARAMS, value=2.0, other="x")
    names = [name for name, _, _ in seen]
    assert names == ["first", "nested", "guarded", "injected"]
    assert all(value == 2.0 and extra == ["other"] for _, value, extra in seen)
    chex.assert_trees_all_close(updates, jax.tree.map(lambda g: -0.5 * 16 * g, GRADS))


def test_optax_transform_with_extra_args_inside_fnlearn_chain_equals_optax_chain():
    """optax's own reduce_on_plateau (a GradientTransformationExtraArgs) gets ``value`` from fnlearn's
    chain exactly as from optax's."""
    plateau = {"factor": 0.5, "patience": 1, "accumulation_size": 1}
    ours = fo.chain(fo.sgd(0.1), optax.contrib.reduce_on_plateau(**plateau))
    theirs = optax.chain(optax.sgd(0.1), optax.contrib.reduce_on_plateau(**plateau))
    s, r = ours.init(PARAMS), theirs.init(PARAMS)
    for loss in [3.0, 2.0, 2.5, 2.5, 2.6, 1.0, 1.5]:
        u, s = ours.update(GRADS, s, PARAMS, value=loss)
        v, r = theirs.update(GRADS, r, PARAMS, value=loss)
        chex.assert_trees_all_close(u, v)
    assert float(s[1].scale) == float(r[1].scale) == 0.5**4  # 2.5, 2.5, 2.6 and 1.5 did not improve


def test_fnlearn_transform_in_optax_chain_gets_extra_arguments_once_marked_as_optax_extra_args():
    """optax's chain decides by class: an fnlearn transform gets no extra arguments from it, unless
    handed over as optax.GradientTransformationExtraArgs(*tx)."""
    seen = []
    plain = optax.chain(optax.scale(1.0), fo.sgd(0.1))
    plain.update(GRADS, plain.init(PARAMS), PARAMS, value=1.0)  # fnlearn's sgd ignores it: fine
    marked = optax.chain(
        optax.scale(1.0), optax.GradientTransformationExtraArgs(*recording("in optax", seen))
    )
    marked.update(GRADS, marked.init(PARAMS), PARAMS, value=3.0)
    assert seen == [("in optax", 3.0, [])]


def test_one_class_carries_the_protocol():
    tx = fo.adam(0.1)
    assert fo.GradientTransformationExtraArgs is fo.GradientTransformation
    # Rebuilding wraps nothing twice: same update function through the constructor, _replace and pytrees.
    assert fo.GradientTransformation(*tx).update is tx.update
    assert tx._replace(init=tx.init).update is tx.update
    assert jax.tree.unflatten(jax.tree.structure(tx), jax.tree.leaves(tx)).update is tx.update
    # A hand-written update without **extra_args is wrapped; one with them is kept as it is.
    narrow = fo.GradientTransformation(lambda p: (), lambda u, s, p=None: (u, s))
    assert narrow.update(1.0, (), None, value=2.0) == (1.0, ())
    seen = []
    wide = recording("wide", seen)
    assert fo.GradientTransformation(*wide).update is wide.update
    # An optax transform keeps or loses its extra arguments by its own signature.
    assert fo.with_extra_args_support(tx) is tx
    optax_plain = fo.with_extra_args_support(optax.clip(1.0))
    optax_plain.update(GRADS, optax_plain.init(PARAMS), PARAMS, value=1.0)
    optax_extra = fo.with_extra_args_support(optax.contrib.reduce_on_plateau())
    with pytest.raises(TypeError, match="value"):  # it takes **extra_args, so it gets them: here none
        optax_extra.update(GRADS, optax_extra.init(PARAMS), PARAMS)


def test_chain_still_names_a_non_transform():
    with pytest.raises(FnlearnError, match="argument 1 is int"):
        fo.chain(fo.sgd(0.1), 3)


def test_optax_top_level_schedule_names_resolve_from_fnlearn_optim():
    """``optax.cosine_decay_schedule`` → ``fl.optim.cosine_decay_schedule`` is a one-word change."""
    shared = [name for name in fo.schedules.__all__ if hasattr(optax, name)]
    assert len(shared) == 8
    for name in shared:
        assert getattr(fo, name) is getattr(fo.schedules, name), name
        assert name in fo.__all__
    np.testing.assert_allclose(
        fo.cosine_decay_schedule(0.1, 100)(30), optax.cosine_decay_schedule(0.1, 100)(30)
    )
