"""Convolution over 1, 2 or 3 channels-last spatial axes, as ``jax.lax.conv_general_dilated``.

For an input x of shape (*spatial, C_in) and a kernel W of shape (*kernel_size, C_in/G, F) (lax's
and flax's ``HWIO`` layout), output position p of feature f in group g = ⌊f·G/F⌋ is

    y[p, f] = b[f] + Σ_q Σ_{c < C_in/G} x_pad[p·s + q·d, g·C_in/G + c] · W[q, c, f]

with q running over the kernel's taps, s the strides, d the dilation and x_pad the padded input.
"""

from __future__ import annotations

import jax

from fnlearn import init as initializers
from fnlearn.errors import FnlearnError
from fnlearn.nn.base import Layer, per_axis, positive_int, spatial_rank
from fnlearn.nn.windows import check_padding, explicit_pads, output_sizes

__all__ = ["conv"]

_SPATIAL = "DHW"  # letters for the spatial axes in lax's dimension numbers (1-D "W", 2-D "HW", 3-D "DHW")


def _dimension_numbers(rank: int) -> tuple[str, str, str]:
    """Channels-last input and output, HWIO kernel: ("NHWC", "HWIO", "NHWC") for rank 2."""
    spatial = _SPATIAL[-rank:]
    return f"N{spatial}C", f"{spatial}IO", f"N{spatial}C"


def _check_groups(name: str, in_channels: int, features: int, groups: int, in_shape) -> None:
    for what, count in (("input channels", in_channels), ("features", features)):
        if count % groups:
            raise FnlearnError(
                f"{name}: groups={groups} must divide the number of {what}, but there are {count} "
                f"(input shape {tuple(in_shape)}, features={features}). Choose groups dividing both "
                f"{in_channels} and {features}."
            )


def conv(
    features: int,
    kernel_size,
    *,
    strides=1,
    padding="SAME",
    dilation=1,
    groups: int = 1,
    w_init=None,
    b_init=None,
    use_bias: bool = True,
    name: str = "conv",
) -> Layer:
    """A convolution with ``features`` output channels; the spatial rank comes from the input shape.

    ``kernel_size``, ``strides`` and ``dilation`` are ints (the same for every spatial axis) or one
    int per axis. ``padding`` is "SAME" (output size ⌈n/s⌉), "VALID" (no padding), an int, or one
    (low, high) pair per axis. ``groups`` splits the input channels and the features into that many
    groups convolved separately (``groups = C_in`` with ``features = C_in`` is a depthwise conv).

    Params: ``w`` of shape (*kernel_size, C_in/groups, features) and ``b`` of shape (features,).
    ``w_init`` defaults to LeCun normal over the receptive field, Var(w) = 1/fan_in with
    fan_in = Π kernel_size · C_in/groups (``init.compute_fans`` on the HWIO shape; its fan_out,
    Π kernel_size · features, ignores the groups, as flax and PyTorch do).
    """
    features = positive_int(name, "features", features)
    groups = positive_int(name, "groups", groups)
    padding = check_padding(name, padding)
    w_init = w_init or initializers.lecun_normal()
    b_init = b_init or initializers.zeros()

    def geometry(spatial, rank):
        kernel = per_axis(name, "kernel_size", kernel_size, rank)
        s = per_axis(name, "strides", strides, rank)
        d = per_axis(name, "dilation", dilation, rank)
        return kernel, s, d, explicit_pads(name, padding, spatial, kernel, s, d)

    def init(key, in_shape):
        rank = spatial_rank(name, in_shape)
        in_channels = in_shape[-1]
        _check_groups(name, in_channels, features, groups, in_shape)
        kernel, s, d, pads = geometry(in_shape[:-1], rank)
        out_spatial = output_sizes(name, in_shape[:-1], kernel, s, d, pads)
        w_key, b_key = jax.random.split(key)
        params = {"w": w_init(w_key, (*kernel, in_channels // groups, features))}
        if use_bias:
            params["b"] = b_init(b_key, (features,))
        return (*out_spatial, features), params, {}

    def apply(params, state, x, *, train=False, key=None):
        del train, key
        w = params["w"]
        rank = w.ndim - 2
        example = x.shape[-rank - 1 :]
        if x.ndim < rank + 2 or example[-1] != w.shape[-2] * groups:
            raise FnlearnError(
                f"layer {name!r} expects a batch of examples (*{rank} spatial axes, {w.shape[-2] * groups} "
                f"channels) for its kernel of shape {w.shape}, got inputs of shape {x.shape}."
            )
        _, s, d, pads = geometry(example[:-1], rank)
        y = jax.lax.conv_general_dilated(
            x.reshape(-1, *example),
            w,
            window_strides=s,
            padding=pads,
            rhs_dilation=d,
            dimension_numbers=_dimension_numbers(rank),
            feature_group_count=groups,
        )
        y = y.reshape(*x.shape[: -rank - 1], *y.shape[1:])
        return (y + params["b"] if use_bias else y), state

    return Layer(name, init, apply)
