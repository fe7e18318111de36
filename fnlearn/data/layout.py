"""How an image dataset's examples are shaped: flat rows for dense models, images for convolutions.

=========== =========================== ==================================================
layout      x                           for
=========== =========================== ==================================================
``flat``    [n, H·W·C], row-major       ``nn.mlp`` (the default of every loader)
``image``   [n, H, W, C], channels-last ``nn.cnn``; (H, W) images get C = 1
=========== =========================== ==================================================

The two hold the same numbers in the same order: ``x_image.reshape(n, -1) == x_flat``. A
dataset's ``image_shape`` says how one example is an image: (H, W) or (H, W, C) for a flat
layout, exactly ``x.shape[1:]`` = (H, W, C) for the image layout. Splits, standardisation and
augmentation work on either; standardisation is per pixel (per entry of ``x.shape[1:]``) in
both, so the two layouts standardise to the same numbers.
"""

from __future__ import annotations

import dataclasses

from fnlearn.data.dataset import Dataset
from fnlearn.errors import FnlearnError, did_you_mean

__all__ = ["LAYOUTS", "check_layout", "image_layout_shape", "to_layout"]

LAYOUTS = ("flat", "image")


def check_layout(owner: str, layout) -> str:
    """``layout`` is one of ``LAYOUTS``; returns it."""
    if not isinstance(layout, str) or layout not in LAYOUTS:
        hint = did_you_mean(layout, LAYOUTS) if isinstance(layout, str) else ""
        raise FnlearnError(
            f"{owner}: layout={layout!r}, expected 'flat' (rows [n, H·W·C], for an MLP) or 'image' "
            f"([n, H, W, C], for a CNN).{hint}"
        )
    return layout


def image_layout_shape(owner: str, image_shape) -> tuple[int, int, int]:
    """(H, W, C) of an image shape (H, W) or (H, W, C): one channel when none is given."""
    shape = tuple(image_shape or ())
    if len(shape) not in (2, 3):
        raise FnlearnError(
            f"{owner}: layout='image' needs images of shape (H, W) or (H, W, C), but the image_shape is "
            f"{image_shape!r}. Pass image_shape=(H, W) or (H, W, C), e.g. (28, 28)."
        )
    return (*shape, 1) if len(shape) == 2 else shape


def to_layout(dataset: Dataset, layout: str) -> Dataset:
    """``dataset`` with x in ``layout``: ``"flat"`` [n, H·W·C] or ``"image"`` [n, H, W, C].

    A flat (H, W) image dataset becomes [n, H, W, 1] with image_shape (H, W, 1); back to flat it
    keeps image_shape (H, W, 1). The values and their order never change.
    """
    check_layout(dataset.name, layout)
    if layout == "flat":
        x = dataset.x.reshape(len(dataset), -1)
        return dataset if x.shape == dataset.x.shape else dataset.with_arrays(x, dataset.y)
    if dataset.image_shape is None:
        raise FnlearnError(
            f"{dataset.name}: layout='image' needs the shape of one image, but this dataset has no image_shape "
            f"(x examples of shape {dataset.x.shape[1:]}). Give it one, e.g. "
            f"fnlearn.data.from_arrays(x, y, ..., image_shape=(28, 28)), or keep layout='flat'."
        )
    shape = image_layout_shape(dataset.name, dataset.image_shape)
    return dataclasses.replace(dataset, x=dataset.x.reshape(len(dataset), *shape), image_shape=shape)
