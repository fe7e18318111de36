"""Every dataset fnlearn can load by name, in one explicit table.

``load(name, **options)`` calls the loader listed for ``name`` with its options;
``options(name)`` gives the options a dataset accepts and their defaults (what a config may set
under ``data.options``). Nothing registers itself on import: to add a dataset, add a line here.
"""

from __future__ import annotations

from collections.abc import Callable

from fnlearn import registry
from fnlearn.data import embedded, files, idx, sequences, synthetic
from fnlearn.data.dataset import Dataset

__all__ = ["DEFAULT", "load", "names", "options"]

DEFAULT = "digits"

_LOADERS: dict[str, Callable[..., Dataset]] = {
    # embedded, from scikit-learn
    "digits": embedded.digits,
    "iris": embedded.iris,
    "breast_cancer": embedded.breast_cancer,
    "wine": embedded.wine,
    "diabetes": embedded.diabetes,
    # IDX files in a local directory
    "mnist": idx.mnist,
    "fashion_mnist": idx.fashion_mnist,
    # the user's own files
    "csv": files.csv,
    "npz": files.npz,
    # synthetic, from the lecture notes
    "regression_1d": synthetic.regression_1d,
    "gabor": synthetic.gabor,
    "heteroscedastic": synthetic.heteroscedastic,
    "two_moons": synthetic.two_moons,
    "spirals": synthetic.spirals,
    # sequences: next-token data for a GPT
    "text": sequences.text,
    "sort": sequences.sort,
    "addition": sequences.addition,
    "copy": sequences.copy,
}


def names() -> list[str]:
    """The names ``load`` accepts, sorted."""
    return sorted(_LOADERS)


def options(name: str) -> dict[str, object]:
    """The options dataset ``name`` accepts, each with its default value."""
    return registry.options(registry.lookup("dataset", _LOADERS, name))


def load(name: str = DEFAULT, **kwargs) -> Dataset:
    """The dataset ``name`` (see ``names()``), built with ``kwargs`` from ``options(name)``."""
    return registry.build("dataset", _LOADERS, name, kwargs)
