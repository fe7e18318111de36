"""What ``fit``, ``evaluate`` and ``fl.replicas`` accept, checked before anything is compiled: one
clear error naming the argument for each usual mistake in the state, the data or a number.

Sequence models (outputs (T, K) per example, like ``nn.gpt``) take targets [n, T] (one class id per
position) and may take integer token ids x [n, T]."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fnlearn import checks
from fnlearn import data as fldata
from fnlearn.callbacks import Callback
from fnlearn.errors import FnlearnError
from fnlearn.train import Objective, TrainState

__all__ = ["check_arrays", "check_fit_arguments", "check_length", "check_pair", "check_state"]


def check_arrays(
    state: TrainState, x, y, obj: Objective, *, name: str, batch_size: int | None = None
) -> None:
    """One clear error for the usual mistakes in (x, y), before any compilation. With a
    distribution head the head judges the targets (class ids, counts, reals), else the dataset rules do."""
    x = _token_ids_as_floats(state, x)
    if obj.head is None:
        x_np, y_np = fldata.check_dataset(x, y, name=name)
    else:
        x_np, y_np = fldata.check_inputs(x, y, name=name)
    expected = tuple(state.model.input_shape)
    if tuple(x_np.shape[1:]) != expected:
        raise FnlearnError(
            f"{name}: x has examples of shape {tuple(x_np.shape[1:])}, but the model takes {expected}. "
            f"Build the model for this data (the first entry of mlp's sizes is the input width)."
        )
    if obj.head is not None:
        positions = _check_positions(state, y_np, name)
        per_position = y_np.reshape(
            (-1, *y_np.shape[1 + len(positions) :])
        )  # [n·T, ...]: what the head reads
        obj.head.check_targets(per_position, state.model.output_shape[-1])
    if batch_size is not None and not 0 < batch_size <= len(x_np):
        raise FnlearnError(
            f"{name}: batch_size={batch_size} but the data has {len(x_np)} examples. "
            f"Use a batch size between 1 and {len(x_np)}."
        )


def _token_ids_as_floats(state: TrainState, x):
    """Integer x is accepted for a sequence model (outputs (T, ..., K), like the GPT's token ids
    [n, T]): checked as the floats it equals. Other models want floating x (see check_inputs)."""
    dtype = getattr(x, "dtype", None)
    if dtype is None or not np.issubdtype(dtype, np.integer) or len(state.model.output_shape) < 2:
        return x
    return np.asarray(x, np.float64)


def _check_positions(state: TrainState, y, name: str) -> tuple:
    """A sequence model's outputs (T..., K) want targets with those positions, y [n, T..., ...];
    returns the positions (T...), () for one output row per example."""
    positions = tuple(state.model.output_shape[:-1])
    if positions and tuple(y.shape[1 : 1 + len(positions)]) != positions:
        raise FnlearnError(
            f"{name}: y has targets of shape {tuple(y.shape[1:])} per example, but the model outputs "
            f"{tuple(state.model.output_shape)}: expected one target per position, y of shape "
            f"[n, {', '.join(map(str, positions))}] (class ids) or with a last axis of targets per position."
        )
    return positions


def check_state(state, owner: str) -> None:
    """``state`` is a ``TrainState`` (``fl.TrainState.create(model, tx, key)``)."""
    if not isinstance(state, TrainState):
        raise FnlearnError(
            f"{owner}: state must be a fl.TrainState (fl.TrainState.create(model, tx, key)), got {checks.show(state)}."
        )


def check_pair(data, owner: str, name: str):
    """``data`` is a pair ``(x, y)``; returns it as a tuple."""
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise FnlearnError(f"{owner}: {name} must be a pair (x, y) of arrays, got {checks.show(data)}.")
    return tuple(data)


def check_length(owner: str, epochs, steps) -> None:
    """Exactly one of ``epochs`` and ``steps``, a positive integer."""
    if (epochs is None) == (steps is None):
        raise FnlearnError(f"{owner} needs exactly one of epochs=... or steps=... (how long to train).")
    if epochs is not None:
        checks.positive_int(owner, "epochs", epochs)
    if steps is not None:
        checks.positive_int(owner, "steps", steps)


def check_fit_arguments(args: dict) -> None:
    """fit's scalar arguments, each by its rule, before anything else runs."""
    check_state(args["state"], "fit")
    check_length("fit", args["epochs"], args["steps"])
    for name in ("batch_size", "eval_every", "eval_batch_size", "keep_checkpoints"):
        checks.positive_int("fit", name, args[name])
    for name in ("log_every", "checkpoint_every"):
        if args[name] is not None:
            checks.positive_int("fit", name, args[name], "None switches it off.")
    for name in ("drop_last", "log_norms", "resume"):
        checks.boolean("fit", name, args[name])
    if args["progress"] is not None:
        checks.boolean("fit", "progress", args["progress"], "None shows it when stderr is a terminal.")
    for name in ("penalty", "augment"):
        if args[name] is not None and not callable(args[name]):
            raise FnlearnError(f"fit: {name} must be a function or None, got {checks.show(args[name])}.")
    callbacks = args["callbacks"]
    if not isinstance(callbacks, (list, tuple)) or not all(isinstance(cb, Callback) for cb in callbacks):
        raise FnlearnError(
            f"fit: callbacks must be a list of fl.callbacks.Callback objects, got {checks.show(args['callbacks'])}."
        )
    if args["run_dir"] is not None and not isinstance(args["run_dir"], (str, Path)):
        raise FnlearnError(
            f"fit: run_dir must be a directory name or None, got {checks.show(args['run_dir'])}."
        )
    if args["best_metric"] is not None and not isinstance(args["best_metric"], str):
        raise FnlearnError(
            "fit: best_metric must be a metric name such as 'val_loss', got "
            f"{checks.show(args['best_metric'])}."
        )
