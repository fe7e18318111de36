"""Schedules: values against optax's over counts 0…400 and against the notes' formulas."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from fnlearn.errors import FnlearnError
from fnlearn.optim import schedules as fs

COUNTS = jnp.arange(401)

SAME_AS_OPTAX = [
    ("constant", fs.constant_schedule(0.1), optax.constant_schedule(0.1)),
    ("linear", fs.linear_schedule(0.1, 0.01, 300, 50), optax.linear_schedule(0.1, 0.01, 300, 50)),
    ("linear_no_steps", fs.linear_schedule(0.1, 0.01, 0), optax.linear_schedule(0.1, 0.01, 0)),
    (
        "polynomial",
        fs.polynomial_schedule(1.0, 0.1, 0.5, 250, 10),
        optax.polynomial_schedule(1.0, 0.1, 0.5, 250, 10),
    ),
    (
        "piecewise_constant",
        fs.piecewise_constant_schedule(0.1, {90: 0.1, 30: 0.1, 60: 0.5}),
        optax.piecewise_constant_schedule(0.1, {90: 0.1, 30: 0.1, 60: 0.5}),
    ),
    ("exponential", fs.exponential_decay(0.1, 50, 0.5), optax.exponential_decay(0.1, 50, 0.5)),
    (
        "exponential_staircase_floor",
        fs.exponential_decay(0.1, 50, 0.5, transition_begin=20, staircase=True, end_value=0.01),
        optax.exponential_decay(0.1, 50, 0.5, transition_begin=20, staircase=True, end_value=0.01),
    ),
    (
        "exponential_growth_ceiling",
        fs.exponential_decay(0.1, 50, 1.5, end_value=0.5),
        optax.exponential_decay(0.1, 50, 1.5, end_value=0.5),
    ),
    ("cosine", fs.cosine_decay_schedule(0.1, 300), optax.cosine_decay_schedule(0.1, 300)),
    (
        "cosine_alpha_exponent",
        fs.cosine_decay_schedule(0.1, 300, alpha=0.2, exponent=2.0),
        optax.cosine_decay_schedule(0.1, 300, alpha=0.2, exponent=2.0),
    ),
    (
        "warmup_cosine",
        fs.warmup_cosine_decay_schedule(0.0, 0.1, 40, 360, end_value=1e-3),
        optax.warmup_cosine_decay_schedule(0.0, 0.1, 40, 360, end_value=1e-3),
    ),
    (
        "join",
        fs.join_schedules([fs.linear_schedule(0.0, 0.1, 20), fs.exponential_decay(0.1, 30, 0.8)], [20]),
        optax.join_schedules(
            [optax.linear_schedule(0.0, 0.1, 20), optax.exponential_decay(0.1, 30, 0.8)], [20]
        ),
    ),
]


@pytest.mark.parametrize("ours,theirs", [c[1:] for c in SAME_AS_OPTAX], ids=[c[0] for c in SAME_AS_OPTAX])
def test_schedule_values_equal_optax(ours, theirs):
    values = jax.jit(lambda c: (jax.vmap(ours)(c), jax.vmap(theirs)(c)))(COUNTS)
    np.testing.assert_allclose(*values, rtol=1e-5, atol=1e-7)


def test_notes_step_decay():
    """×0.1 after epochs 30, 60, 90 (E = 10 steps per epoch): α₀·0.1^(number of boundaries passed)."""
    epochs_steps = 10
    schedule = fs.piecewise_constant_schedule(
        0.5, {30 * epochs_steps: 0.1, 60 * epochs_steps: 0.1, 90 * epochs_steps: 0.1}
    )
    counts = np.arange(1200)
    passed = sum(counts >= b * epochs_steps for b in (30, 60, 90))
    np.testing.assert_allclose(jax.vmap(schedule)(jnp.asarray(counts)), 0.5 * 0.1**passed, rtol=1e-5)


def test_notes_cosine_linear_and_inverse_sqrt():
    """α_t = ½·α₀·(1 + cos(πt/T)); α_t = α₀·(1 − t/T); α_t = α₀/√t with t = 1, 2, … after warmup."""
    T, a0 = 250, 0.3
    t = np.arange(T + 1)
    np.testing.assert_allclose(
        jax.vmap(fs.cosine_decay_schedule(a0, T))(t),
        0.5 * a0 * (1 + np.cos(np.pi * t / T)),
        rtol=1e-5,
        atol=1e-7,
    )
    np.testing.assert_allclose(
        jax.vmap(fs.linear_schedule(a0, 0.0, T))(t), a0 * (1 - t / T), rtol=1e-5, atol=1e-7
    )
    w = 20
    inv = jax.vmap(fs.inverse_sqrt_schedule(a0, warmup_steps=w))(jnp.arange(400))
    np.testing.assert_allclose(inv[:w], a0 * np.arange(w) / w, rtol=1e-6)
    np.testing.assert_allclose(inv[w:], a0 / np.sqrt(np.arange(1, 400 - w + 1)), rtol=1e-6)


def test_linear_warmup_in_front_of_any_schedule():
    """0 → schedule(0) linearly over w steps, then schedule(t − w): optax's join of the same pieces."""
    base = fs.exponential_decay(0.2, 10, 0.9)
    ours = jax.vmap(fs.linear_warmup(base, 30))(COUNTS)
    theirs = jax.vmap(
        optax.join_schedules(
            [optax.linear_schedule(0.0, 0.2, 30), optax.exponential_decay(0.2, 10, 0.9)], [30]
        )
    )(COUNTS)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-7)
    assert fs.linear_warmup(base, 0) is base


def test_registry_builds_by_name_and_rejects_unknown_names_and_options():
    by_name = fs.get("cosine_decay", init_value=0.1, decay_steps=100)
    np.testing.assert_allclose(
        jax.vmap(by_name)(COUNTS), jax.vmap(fs.cosine_decay_schedule(0.1, 100))(COUNTS)
    )
    assert set(fs.names()) >= {
        "constant",
        "cosine_decay",
        "warmup_cosine_decay",
        "inverse_sqrt",
        "piecewise_constant",
    }
    with pytest.raises(FnlearnError, match="Did you mean 'cosine_decay'"):
        fs.get("cosine_decya", init_value=0.1, decay_steps=100)
    with pytest.raises(FnlearnError, match="decay_step"):
        fs.get("cosine_decay", init_value=0.1, decay_step=100)


@pytest.mark.parametrize(
    "build,argument",
    [
        (lambda: fs.cosine_decay_schedule(0.1, 0), "decay_steps"),
        (lambda: fs.piecewise_constant_schedule(0.1, {10: -0.5}), "boundaries_and_scales"),
        (lambda: fs.join_schedules([fs.constant_schedule(1.0)] * 2, [1, 2]), "boundaries"),
        (lambda: fs.linear_warmup(fs.constant_schedule(1.0), -1), "warmup_steps"),
        (lambda: fs.inverse_sqrt_schedule(0.1, timescale=0.0), "timescale"),
    ],
)
def test_bad_schedule_arguments_raise_naming_the_argument(build, argument):
    with pytest.raises(FnlearnError, match=argument):
        build()
