"""Rules that several modules must apply the same way, each in one home.

* ``higher_is_better``: accuracy-like metrics are maximised; losses and errors (loss, nll, mse, mae,
  ece) are minimised. Early stopping's default mode, the best checkpoint, the best values in
  tables and summaries.
* ``improved``: whether a value improves on the best so far by more than ``min_delta``.
* ``LATEST_VALUE``: the logged quantities whose summary over an epoch is their last value (the
  learning rate, the count of skipped steps), where every other metric is averaged.
* ``with_perplexity``: where a record holds a sequence model's metrics (``{p}sequence_accuracy``
  and ``{p}loss`` for a prefix p such as ``val_``), ``{p}perplexity`` = exp({p}loss), exp of the
  mean token NLL, added after averaging (the mean of exps is not the exp of the mean).
* ``flat_config``: a nested config table as ``{"section.key": JSON text}``; two configs are the
  same run when their flat forms are equal. Option tables (``*.options``, ``sweep.grid``) are
  single values: their entries are not config keys of their own.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping

__all__ = ["LATEST_VALUE", "flat_config", "higher_is_better", "improved", "with_perplexity"]

LATEST_VALUE = ("learning_rate", "skipped_steps")


def higher_is_better(metric: str) -> bool:
    """True for accuracy-like metrics (their name says so); losses and errors are minimised."""
    return "accuracy" in metric


def improved(value: float, best: float | None, *, maximise: bool, min_delta: float = 0.0) -> bool:
    """``value`` beats ``best`` by more than ``min_delta`` (any finite value beats None)."""
    if best is None:
        return True
    return value > best + min_delta if maximise else value < best - min_delta


def with_perplexity(record: Mapping) -> dict:
    """``record`` plus ``{p}perplexity = exp({p}loss)`` for every ``{p}sequence_accuracy`` in it whose
    ``{p}loss`` is there (sequence metrics; the loss is the mean token NLL). exp overflows to inf."""
    out = dict(record)
    for key in record:
        prefix = key[: -len("sequence_accuracy")]
        loss = record.get(prefix + "loss")
        if key.endswith("sequence_accuracy") and isinstance(loss, (int, float)):
            out[prefix + "perplexity"] = math.exp(loss) if loss < 700 else math.inf
    return out


def flat_config(table: Mapping, prefix: str = "") -> dict[str, str]:
    """``{"optimizer.learning_rate": "0.001", "optimizer.options": "{...}", ...}``."""
    flat = {}
    for key, value in table.items():
        if isinstance(value, Mapping) and not key.endswith(("options", "grid")):
            flat.update(flat_config(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = json.dumps(value, sort_keys=True)
    return flat
