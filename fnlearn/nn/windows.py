"""The arithmetic of sliding windows, shared by convolution and pooling.

Along one spatial axis of size n, a window of k taps spaced by a dilation d covers
k_eff = d·(k − 1) + 1 positions; with (low, high) padding and stride s it fits

    out = ⌊(n + low + high − k_eff) / s⌋ + 1

times. "VALID" pads nothing; "SAME" pads k_eff − 1 in total (or less) so that out = ⌈n / s⌉, the
extra position at the high end, as ``jax.lax.padtype_to_pads`` does.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax

from fnlearn.errors import FnlearnError

__all__ = ["check_padding", "explicit_pads", "output_sizes"]

Pads = tuple[tuple[int, int], ...]

_PADDING_HELP = (
    'Use "SAME", "VALID", an int (the same on both sides of every axis), '
    "or one (low, high) pair per spatial axis."
)


def check_padding(layer: str, padding):
    """``padding`` in canonical form ("SAME", "VALID", an int, or a tuple of pairs), or the error."""
    if isinstance(padding, str):
        if padding.upper() not in ("SAME", "VALID"):
            raise FnlearnError(f"{layer}: unknown padding {padding!r}. {_PADDING_HELP}")
        return padding.upper()
    if isinstance(padding, int) and not isinstance(padding, bool):
        if padding < 0:
            raise FnlearnError(f"{layer}: padding must be >= 0, got {padding}. {_PADDING_HELP}")
        return padding
    if isinstance(padding, Sequence) and all(_is_pair(p) for p in padding):
        return tuple((int(lo), int(hi)) for lo, hi in padding)
    raise FnlearnError(f"{layer}: padding={padding!r} is not understood. {_PADDING_HELP}")


def _is_pair(p) -> bool:
    return (
        isinstance(p, Sequence)
        and len(p) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in p)
    )


def explicit_pads(
    layer: str,
    padding,
    spatial: Sequence[int],
    window: Sequence[int],
    strides: Sequence[int],
    dilation: Sequence[int],
) -> Pads:
    """The (low, high) pads per spatial axis that ``padding`` (canonical form) stands for."""
    rank = len(spatial)
    if isinstance(padding, str):
        effective = [d * (k - 1) + 1 for k, d in zip(window, dilation, strict=True)]
        return tuple(tuple(p) for p in jax.lax.padtype_to_pads(spatial, effective, strides, padding))
    if isinstance(padding, int):
        return ((padding, padding),) * rank
    if len(padding) != rank:
        raise FnlearnError(
            f"{layer}: padding={padding} has {len(padding)} (low, high) pairs but the input has "
            f"{rank} spatial axes {tuple(spatial)}. Give one pair per spatial axis."
        )
    return padding


def output_sizes(
    layer: str,
    spatial: Sequence[int],
    window: Sequence[int],
    strides: Sequence[int],
    dilation: Sequence[int],
    pads: Pads,
) -> tuple[int, ...]:
    """⌊(n + low + high − k_eff)/s⌋ + 1 per axis; the error when a window does not fit once."""
    sizes = []
    for n, k, s, d, (lo, hi) in zip(spatial, window, strides, dilation, pads, strict=True):
        k_eff = d * (k - 1) + 1
        if n + lo + hi < k_eff:
            raise FnlearnError(
                f"{layer}: a window of {k} (spanning {k_eff} with dilation {d}) is larger than the padded "
                f"input ({n} + {lo} + {hi} = {n + lo + hi}) along a spatial axis of the input "
                f'{tuple(spatial)}. Use a smaller kernel or window, more padding, or padding="SAME".'
            )
        sizes.append((n + lo + hi - k_eff) // s + 1)
    return tuple(sizes)
