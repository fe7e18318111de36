"""Rules that several modules must apply the same way, each in one home.

* ``higher_is_better``: accuracy-like metrics are maximised; losses and errors (loss, nll, mse, mae,
  ece) are minimised. Early stopping's default mode, the best checkpoint, the best values in
  tables and summaries.
* ``improved``: whether a value improves on the best so far by more than ``min_delta``.
* ``LATEST_VALUE``: the logged quantities whose summary over an epoch is their last value (the
  learning rate, the count of skipped steps), where every other metric is averaged.
* ``flat_config``: a nested config table as ``{"section.key": JSON text}``; two configs are the
  same run when their flat forms are equal. Option tables (``*.options``, ``sweep.grid``) are
  single values: their entries are not config keys of their own.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

__all__ = ["LATEST_VALUE", "flat_config", "higher_is_better", "improved"]

LATEST_VALUE = ("learning_rate", "skipped_steps")


def higher_is_better(metric: str) -> bool:
    """True for accuracy-like metrics (their name says so); losses and errors are minimised."""
    return "accuracy" in metric


def improved(value: float, best: float | None, *, maximise: bool, min_delta: float = 0.0) -> bool:
    """``value`` beats ``best`` by more than ``min_delta`` (any finite value beats None)."""
    if best is None:
        return True
    return value > best + min_delta if maximise else value < best - min_delta


def flat_config(table: Mapping, prefix: str = "") -> dict[str, str]:
    """``{"optimizer.learning_rate": "0.001", "optimizer.options": "{...}", ...}``."""
    flat = {}
    for key, value in table.items():
        if isinstance(value, Mapping) and not key.endswith(("options", "grid")):
            flat.update(flat_config(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = json.dumps(value, sort_keys=True)
    return flat
