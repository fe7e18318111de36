"""Learning-rate schedules: functions ``count -> rate``, count 0 on the first update (optax's rule).

Names and arguments follow optax where optax has the schedule; ``inverse_sqrt_schedule`` and
``linear_warmup`` are the notes' schedules that optax lacks. Every schedule is plain ``jnp``
arithmetic, so it runs inside ``jit`` on a traced count.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax.numpy as jnp

from fnlearn import checks, registry
from fnlearn.errors import FnlearnError

__all__ = [
    "constant_schedule",
    "polynomial_schedule",
    "linear_schedule",
    "piecewise_constant_schedule",
    "exponential_decay",
    "cosine_decay_schedule",
    "warmup_cosine_decay_schedule",
    "join_schedules",
    "inverse_sqrt_schedule",
    "linear_warmup",
    "get",
    "names",
]

Schedule = Callable[[jnp.ndarray], jnp.ndarray]


def _finite(owner: str, **values) -> None:
    """Every value (a rate, a factor, an exponent) a finite number; None where allowed is skipped."""
    for name, value in values.items():
        checks.finite(owner, name, value)


def _integers(owner: str, **values) -> None:
    """Every value a whole number of steps (optax's meaning for <= 0 applies where documented)."""
    for name, value in values.items():
        checks.integer(owner, name, value)


def constant_schedule(value: float) -> Schedule:
    """α_t = α."""
    _finite("constant_schedule", value=value)
    return lambda count: value


def polynomial_schedule(
    init_value, end_value, power, transition_steps: int, transition_begin: int = 0
) -> Schedule:
    """α_t = (α₀ − α_end)·(1 − τ/T)^p + α_end, τ = clip(t − t_begin, 0, T).

    ``transition_steps <= 0`` gives the constant α₀, as in optax.
    """
    _finite("polynomial_schedule", init_value=init_value, end_value=end_value, power=power)
    _integers("polynomial_schedule", transition_steps=transition_steps, transition_begin=transition_begin)
    if transition_steps <= 0:
        return constant_schedule(init_value)
    transition_begin = max(transition_begin, 0)

    def schedule(count):
        tau = jnp.clip(count - transition_begin, 0, transition_steps)
        frac = 1 - tau / transition_steps
        return (init_value - end_value) * (frac**power) + end_value

    return schedule


def linear_schedule(init_value, end_value, transition_steps: int, transition_begin: int = 0) -> Schedule:
    """α_t = α₀ + (α_end − α₀)·τ/T; the notes' linear decay α₀·(1 − t/T) is ``end_value=0``."""
    _finite("linear_schedule", init_value=init_value, end_value=end_value)
    _integers("linear_schedule", transition_steps=transition_steps, transition_begin=transition_begin)
    return polynomial_schedule(init_value, end_value, 1, transition_steps, transition_begin)


def piecewise_constant_schedule(
    init_value, boundaries_and_scales: dict[int, float] | None = None
) -> Schedule:
    """α_t = α₀·Π_{b ≤ t} s_b: multiply by s_b from count b on.

    The notes' step decay (×0.1 after epochs 30, 60, 90 with E steps per epoch) is
    ``piecewise_constant_schedule(α₀, {30*E: 0.1, 60*E: 0.1, 90*E: 0.1})``.
    """
    owner = "piecewise_constant_schedule"
    _finite(owner, init_value=init_value)
    if boundaries_and_scales is not None and not isinstance(boundaries_and_scales, dict):
        raise FnlearnError(
            f"{owner}: boundaries_and_scales must be a dict step -> factor such as {{30: 0.1}}, "
            f"got {checks.show(boundaries_and_scales)}."
        )
    items = list((boundaries_and_scales or {}).items())
    for boundary, factor in items:
        checks.integer(owner, "a boundary in boundaries_and_scales", boundary, "Boundaries are step counts.")
        checks.nonneg(
            owner,
            f"boundaries_and_scales[{boundary}]",
            factor,
            "For example {30: 0.1} multiplies by 0.1 from step 30 on.",
        )
    items = sorted(items)

    def schedule(count):
        value = init_value
        for boundary, factor in items:
            after = jnp.maximum(0.0, jnp.sign(boundary - count))
            value = value * after + (1 - after) * factor * value
        return value

    return schedule


def exponential_decay(
    init_value,
    transition_steps: int,
    decay_rate: float,
    transition_begin: int = 0,
    staircase: bool = False,
    end_value=None,
) -> Schedule:
    """α_t = α₀·r^{(t − t_begin)/T} (exponent floored with ``staircase``), α₀ before t_begin.

    ``end_value`` bounds the value (a floor when r < 1, a ceiling when r > 1).
    """
    owner = "exponential_decay"
    _finite(owner, init_value=init_value)
    _integers(owner, transition_steps=transition_steps, transition_begin=transition_begin)
    checks.nonneg(owner, "decay_rate", decay_rate)
    checks.boolean(owner, "staircase", staircase)
    if end_value is not None:
        _finite(owner, end_value=end_value)
    if transition_steps <= 0 or decay_rate == 0:
        return constant_schedule(init_value)
    transition_begin = max(transition_begin, 0)
    bound = jnp.maximum if decay_rate < 1.0 else jnp.minimum

    def schedule(count):
        shifted = count - transition_begin
        p = shifted / transition_steps
        if staircase:
            p = jnp.floor(p)
        value = jnp.where(shifted <= 0, init_value, init_value * jnp.power(decay_rate, p))
        return value if end_value is None else bound(value, end_value)

    return schedule


def cosine_decay_schedule(
    init_value, decay_steps: int, alpha: float = 0.0, exponent: float = 1.0
) -> Schedule:
    """α_t = α₀·((1 − a)·c_t^e + a), c_t = ½·(1 + cos(π·min(t, T)/T)).

    With a = 0, e = 1 this is the notes' α_t = ½·α₀·(1 + cos(πt/T)).
    """
    owner = "cosine_decay_schedule"
    _finite(owner, init_value=init_value, alpha=alpha, exponent=exponent)
    checks.positive_int(
        owner, "decay_steps", decay_steps, "It is the number of steps T, e.g. decay_steps=10_000."
    )
    steps = float(decay_steps)

    def schedule(count):
        count = float(count) if isinstance(count, int) else count
        t = jnp.minimum(count, steps)
        cosine = 0.5 * (1 + jnp.cos(jnp.pi * t / steps))
        return init_value * ((1 - alpha) * cosine**exponent + alpha)

    return schedule


def join_schedules(schedules: Sequence[Schedule], boundaries: Sequence[int]) -> Schedule:
    """Schedule i runs from boundary i − 1 on, seeing the count relative to that boundary."""
    schedules, boundaries = list(schedules), list(boundaries)
    for i, schedule in enumerate(schedules):
        if not callable(schedule):
            raise FnlearnError(
                f"join_schedules: schedules[{i}] must be a schedule count -> value, got "
                f"{checks.show(schedule)}."
            )
    for boundary in boundaries:
        checks.integer("join_schedules", "every boundary", boundary, "Boundaries are step counts.")
    if len(boundaries) != len(schedules) - 1:
        raise FnlearnError(
            f"join_schedules: {len(schedules)} schedules need {len(schedules) - 1} boundaries, "
            f"got {len(boundaries)}: {list(boundaries)}."
        )

    def schedule(count):
        value = schedules[0](count)
        for boundary, following in zip(boundaries, schedules[1:], strict=True):
            value = jnp.where(count < boundary, value, following(count - boundary))
        return value

    return schedule


def warmup_cosine_decay_schedule(
    init_value,
    peak_value,
    warmup_steps: int,
    decay_steps: int,
    end_value=0.0,
    exponent: float = 1.0,
) -> Schedule:
    """Linear from α_init to α_peak over the warmup, then cosine decay to α_end at ``decay_steps``.

    ``decay_steps`` includes the warmup, as in optax.
    """
    owner = "warmup_cosine_decay_schedule"
    _finite(owner, init_value=init_value, peak_value=peak_value, end_value=end_value, exponent=exponent)
    warmup_steps = checks.nonneg_int(owner, "warmup_steps", warmup_steps)
    checks.int_at_least(
        owner, "decay_steps", decay_steps, warmup_steps + 1, "It counts the warmup steps too, as in optax."
    )
    alpha = 0.0 if peak_value == 0.0 else end_value / peak_value
    return join_schedules(
        [
            linear_schedule(init_value, peak_value, warmup_steps),
            cosine_decay_schedule(peak_value, decay_steps - warmup_steps, alpha, exponent),
        ],
        [warmup_steps],
    )


def inverse_sqrt_schedule(init_value, warmup_steps: int = 0, timescale: float = 1.0) -> Schedule:
    """Linear warmup 0 → α₀ over ``warmup_steps``, then α_t = α₀/√(1 + (t − w)/τ).

    With τ = 1 this is the notes' α₀/√t counting t = 1, 2, … from the end of the warmup.
    """
    _finite("inverse_sqrt_schedule", init_value=init_value)
    checks.nonneg_int("inverse_sqrt_schedule", "warmup_steps", warmup_steps)
    checks.positive("inverse_sqrt_schedule", "timescale", timescale)
    decay = lambda count: init_value * (1 + count / timescale) ** -0.5  # noqa: E731
    return linear_warmup(decay, warmup_steps) if warmup_steps > 0 else decay


def linear_warmup(schedule: Schedule, warmup_steps: int, init_value: float = 0.0) -> Schedule:
    """Put a linear warmup in front of any schedule: α_init → schedule(0) over w steps, then
    α_t = schedule(t − w)."""
    if not callable(schedule):
        raise FnlearnError(
            f"linear_warmup: schedule must be a schedule count -> value, got {checks.show(schedule)}."
        )
    checks.nonneg_int("linear_warmup", "warmup_steps", warmup_steps)
    _finite("linear_warmup", init_value=init_value)
    if warmup_steps == 0:
        return schedule
    peak = schedule(0)
    ramp = lambda count: init_value + (peak - init_value) * jnp.clip(count / warmup_steps, 0, 1)  # noqa: E731
    return join_schedules([ramp, schedule], [warmup_steps])


# The one table the config system reads: name -> factory. Written out, never filled by imports.
SCHEDULES = {
    "constant": constant_schedule,
    "polynomial": polynomial_schedule,
    "linear": linear_schedule,
    "piecewise_constant": piecewise_constant_schedule,
    "exponential_decay": exponential_decay,
    "cosine_decay": cosine_decay_schedule,
    "warmup_cosine_decay": warmup_cosine_decay_schedule,
    "inverse_sqrt": inverse_sqrt_schedule,
}


def names() -> list[str]:
    """The schedule names ``get`` knows, sorted."""
    return sorted(SCHEDULES)


def get(name: str, **options) -> Schedule:
    """Build a schedule by name: ``get("cosine_decay", init_value=0.1, decay_steps=1000)``.

    ``join_schedules`` and ``linear_warmup`` take schedules as arguments and are used from Python.
    """
    return registry.build("schedule", SCHEDULES, name, options)
