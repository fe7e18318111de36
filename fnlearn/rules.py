"""Rules that several modules must apply the same way, each in one home.

* ``flat_config``: a nested config table as ``{"section.key": JSON text}``; two configs are the
  same run when their flat forms are equal. Option tables (``*.options``, ``sweep.grid``) are
  single values: their entries are not config keys of their own.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

__all__ = ["flat_config"]


def flat_config(table: Mapping, prefix: str = "") -> dict[str, str]:
    """``{"optimizer.learning_rate": "0.001", "optimizer.options": "{...}", ...}``."""
    flat = {}
    for key, value in table.items():
        if isinstance(value, Mapping) and not key.endswith(("options", "grid")):
            flat.update(flat_config(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = json.dumps(value, sort_keys=True)
    return flat
