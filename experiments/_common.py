"""What the experiment scripts share: the command line, sibling imports, the full-batch loop, mean ± std.

Every script in ``experiments/`` defines ``run(quick) -> dict`` (the numbers), ``plot(result, path)``
(the figure) and ``report(result)`` (prints the numbers that matter), and ends with

    if __name__ == "__main__":
        main(run, plot, report)

``python experiments/NAME.py [--quick] [--out DIR]`` then writes ``DIR/NAME.png`` and ``DIR/NAME.json``
(default DIR: ``out/NAME``). The scripts import this module as ``_common``: Python puts a script's
own folder first on ``sys.path``, and the tests put ``experiments/`` there too.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

from fnlearn.optim import apply_updates

HERE = Path(__file__).resolve().parent


# ------------------------------------------------------------------------------ the command line


def parse(name: str, description: str, argv=None) -> argparse.Namespace:
    """``--quick`` (the smaller CI run the tests check) and ``--out DIR`` (default ``out/NAME``)."""
    parser = argparse.ArgumentParser(prog=f"{name}.py", description=description)
    parser.add_argument(
        "--out", type=Path, default=Path("out") / name, help=f"output folder (default out/{name})"
    )
    parser.add_argument(
        "--quick", action="store_true", help="the smaller run the tests check (fewer seeds/steps)"
    )
    return parser.parse_args(argv)


def public(value):
    """``value`` without the dict keys (at any depth) that start with "_": what a script's ``run``
    passes to its ``plot`` only (arrays, curves), not part of its numbers."""
    if isinstance(value, dict):
        return {k: public(v) for k, v in value.items() if not (isinstance(k, str) and k.startswith("_"))}
    if isinstance(value, list | tuple):
        return [public(v) for v in value]
    return value


def write_json(result: dict, path: Path) -> None:
    """``public(result)`` as strict JSON (NaN and ±inf refused: scripts store None instead)."""
    path.write_text(json.dumps(public(result), indent=1, allow_nan=False))


def script_name(run: Callable) -> str:
    """NAME of the script experiments/NAME.py that defines ``run`` (also when it runs as __main__)."""
    return Path(sys.modules[run.__module__].__file__).stem


def main(run: Callable, plot: Callable, report: Callable, argv=None) -> dict:
    """Parse ``--quick``/``--out``, compute ``run(quick)``, draw ``NAME.png``, write ``NAME.json``,
    ``report(result)`` and print the time taken; return the result (for the tests)."""
    name = script_name(run)
    doc = sys.modules[run.__module__].__doc__ or name
    args = parse(name, doc.strip().splitlines()[0], argv)
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    result = run(args.quick)
    plot(result, args.out / f"{name}.png")
    write_json(result, args.out / f"{name}.json")
    report(result)
    print(f"wrote {args.out}/{name}.{{png,json}} in {time.perf_counter() - start:.1f} s")
    return result


# ------------------------------------------------------------------------------ sibling scripts


def sibling(name: str):
    """experiments/NAME.py as a module (the scripts are not a package), loaded once and kept in
    ``sys.modules`` under NAME so that its dataclasses and later imports resolve to the same module."""
    path = HERE / f"{name}.py"
    module = sys.modules.get(name)
    if module is not None and Path(getattr(module, "__file__", "") or "").resolve() == path:
        return module
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------------------------ the full-batch loop


class Step(NamedTuple):
    """One update, for ``descend``'s ``record``: θ_t, L(θ_t), g_t, u_t and θ_{t+1} = θ_t + u_t."""

    params: Any
    loss: Any
    grads: Any
    updates: Any
    next_params: Any


def _loss_and_grads(loss, gradient, params, model_state, key):
    """(L(θ), g, model state) for one step of ``descend``."""
    args = (params,) if key is None else (params, key)
    if model_state is not None:
        (value, model_state), grads = jax.value_and_grad(loss, has_aux=True)(params, model_state)
    elif gradient is None:
        value, grads = jax.value_and_grad(loss)(*args)
    else:
        value, grads = loss(*args), gradient(*args)
    return value, grads, model_state


def descend(
    loss: Callable,
    optimizer,
    params,
    steps: int | None = None,
    *,
    state=None,
    keys=None,
    gradient: Callable | None = None,
    record: Callable[[Step], Any] = lambda s: s.loss,
):
    """``steps`` updates of ``optimizer`` (any GradientTransformation: fnlearn's or optax's) as ONE
    ``lax.scan`` (jit, vmap or compile the caller's function around it):

        g_t = ∇L(θ_t),   (u_t, s_{t+1}) = optimizer.update(g_t, s_t, θ_t),   θ_{t+1} = θ_t + u_t.

    ``loss(θ) -> L`` on the whole training set. With ``state`` it is ``loss(θ, state) -> (L, state')``
    and the model state (BatchNorm's running statistics) is carried from step to step. With ``keys``
    (one per step; ``steps`` is then their number) it is ``loss(θ, key) -> L`` on the mini-batch the
    key draws: stochastic gradient descent on the same loop. ``gradient`` (same arguments as ``loss``)
    replaces jax's gradient where the script wants its own (a quadratic's Aθ, a rescaled mini-batch
    gradient). ``record(Step)`` picks what each step keeps; by default L(θ_t), the loss before the update.

    Returns ``(θ_T, records)`` (records stacked over the steps), or ``(θ_T, state_T, records)`` with
    ``state``.

    Why a scan (fit's driver rule, docs/speed.md): every experiment that descends trains dense
    layers, whose steps run faster inside a scan than as jitted steps called from Python (fit's
    probe measures the small MLP's scan ~2.8× faster on XLA:CPU), and callers vmap and jit around
    it, which only a scan allows. Convolutions are the exception (slower inside a loop body on
    XLA:CPU, jax-ml/jax#12868): the one convolutional experiment, init_variance's CNN part, drives
    a jitted layer from Python instead.
    """

    def step(carry, key):
        params, opt_state, model_state = carry
        value, grads, model_state = _loss_and_grads(loss, gradient, params, model_state, key)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        following = apply_updates(params, updates)
        return (following, opt_state, model_state), record(Step(params, value, grads, updates, following))

    length = None if keys is not None else steps
    (params, _, state_out), records = jax.lax.scan(
        step, (params, optimizer.init(params), state), keys, length
    )
    return (params, records) if state is None else (params, state_out, records)


# ------------------------------------------------------------------------------ mean ± std


def mean_std(values, axis: int | None = None) -> dict:
    """{"mean": m̄, "std": s} over ``axis`` (all values by default), floats or lists of floats.

    s is the SAMPLE standard deviation, s² = Σ(vᵢ − m̄)²/(n − 1) (ddof = 1), the same as
    ``fnlearn compare`` reports for the seeds of a run; it is None when n < 2 (no spread to
    estimate). Non-finite entries are kept as they are; callers filter first where they can occur.
    """
    values = np.asarray(values, np.float64)
    n = values.size if axis is None else values.shape[axis]
    mean = values.mean(axis=axis)
    std = values.std(axis=axis, ddof=1) if n > 1 else None
    as_json = lambda a: None if a is None else (a.tolist() if np.ndim(a) else float(a))  # noqa: E731
    return {"mean": as_json(mean), "std": as_json(std)}


def sample_std(values) -> float | None:
    """s = √(Σ(vᵢ − m̄)²/(n − 1)) of a flat list (None for fewer than two values): ``mean_std``'s std."""
    return mean_std(values)["std"]


def pm(stats: dict, spec: str = ".3f") -> str:
    """ "m̄ ± s" of a ``mean_std`` dict in the format ``spec`` ("m̄" alone when s is None)."""
    mean = format(stats["mean"], spec)
    return mean if stats["std"] is None else f"{mean} ± {format(stats['std'], spec)}"
