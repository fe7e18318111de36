"""fnlearn.nn's conv, pooling and reshaping layers against lax and float64 numpy loops."""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fnlearn import init, nn
from fnlearn.errors import FnlearnError

KEY = jax.random.key(0)
LAX_SPECS = {1: ("NWC", "WIO", "NWC"), 2: ("NHWC", "HWIO", "NHWC")}


# --------------------------------------------------------------------------------------------
# float64 numpy references


def _same_pads(n, k_eff, s):
    """TensorFlow's SAME rule: total padding so that out = ceil(n / s), the odd one at the high end."""
    total = max((math.ceil(n / s) - 1) * s + k_eff - n, 0)
    return total // 2, total - total // 2


def _np_pads(padding, spatial, window, strides, dilation):
    if padding == "VALID":
        return [(0, 0)] * len(spatial)
    if padding == "SAME":
        return [_same_pads(n, d * (k - 1) + 1, s) for n, k, s, d in zip(spatial, window, strides, dilation)]
    if isinstance(padding, int):
        return [(padding, padding)] * len(spatial)
    return [tuple(p) for p in padding]


def _np_conv(x, w, b, strides, pads, dilation, groups):
    """y[p, f] = b[f] + Σ_q Σ_c x_pad[p·s + q·d, g·C/G + c] · W[q, c, f], one output position at a time."""
    rank = w.ndim - 2
    kernel, c_group, features = w.shape[:rank], w.shape[-2], w.shape[-1]
    f_group = features // groups
    xp = np.pad(x, [(0, 0), *pads, (0, 0)])
    out = [(xp.shape[1 + i] - (dilation[i] * (kernel[i] - 1) + 1)) // strides[i] + 1 for i in range(rank)]
    y = np.zeros((x.shape[0], *out, features))
    for p in itertools.product(*map(range, out)):
        for q in itertools.product(*map(range, kernel)):
            patch = xp[(slice(None), *(p[i] * strides[i] + q[i] * dilation[i] for i in range(rank)))]
            for g in range(groups):
                outs = slice(g * f_group, (g + 1) * f_group)
                y[(slice(None), *p, outs)] += patch[:, g * c_group : (g + 1) * c_group] @ w[q][:, outs]
    return y + b


def _np_pool(x, window, strides, pads, how, count_include_pad=True):
    """Max or mean of every window of x (batch, *spatial, C); padding is −∞ for max, 0 for mean."""
    rank = x.ndim - 2
    fill = -np.inf if how == "max" else 0.0
    xp = np.pad(x, [(0, 0), *pads, (0, 0)], constant_values=fill)
    real = np.pad(np.ones(x.shape[1:-1]), pads)  # 1 where a window sees the input, 0 on padding
    out = [(xp.shape[1 + i] - window[i]) // strides[i] + 1 for i in range(rank)]
    y = np.zeros((x.shape[0], *out, x.shape[-1]))
    for p in itertools.product(*map(range, out)):
        region = tuple(slice(p[i] * strides[i], p[i] * strides[i] + window[i]) for i in range(rank))
        values = xp[(slice(None), *region)].reshape(x.shape[0], -1, x.shape[-1])
        if how == "max":
            y[(slice(None), *p)] = values.max(1)
        else:
            y[(slice(None), *p)] = values.sum(1) / (
                math.prod(window) if count_include_pad else real[region].sum()
            )
    return y


# --------------------------------------------------------------------------------------------
# conv against lax and numpy


@st.composite
def conv_cases(draw, rank):
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(rank))
    strides = tuple(draw(st.integers(1, 3)) for _ in range(rank))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(rank))
    spatial = tuple(d * (k - 1) + 1 + draw(st.integers(0, 3)) for k, d in zip(kernel, dilation))
    padding = draw(
        st.one_of(
            st.sampled_from(["SAME", "VALID"]),
            st.integers(0, 2),
            st.tuples(*[st.tuples(st.integers(0, 2), st.integers(0, 2)) for _ in range(rank)]),
        )
    )
    groups = draw(st.integers(1, 3))
    channels, features = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    return kernel, strides, dilation, spatial, padding, groups, channels, features


def _check_conv_case(case, seed):
    """The layer against lax (same explicit pads, found by numpy) and the float64 numpy loop.

    Parameters are drawn with numpy and the output shape comes from ``build`` (traced, not run):
    an eager ``init`` would compile a random-number program for every drawn shape.
    """
    kernel, strides, dilation, spatial, padding, groups, channels, features = case
    layer = nn.conv(features, kernel, strides=strides, padding=padding, dilation=dilation, groups=groups)
    out_shape = nn.build(layer, (*spatial, channels)).output_shape
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(2, *spatial, channels))
    w = rng.normal(size=(*kernel, channels // groups, features))
    b = rng.normal(size=features)
    params = {"w": jnp.asarray(w, jnp.float32), "b": jnp.asarray(b, jnp.float32)}
    y, _ = layer.apply(params, {}, jnp.asarray(x, jnp.float32))
    assert y.shape == (2, *out_shape)
    pads = _np_pads(padding, spatial, kernel, strides, dilation)
    reference = (
        jax.lax.conv_general_dilated(
            jnp.asarray(x, jnp.float32),
            params["w"],
            strides,
            tuple(pads),
            rhs_dilation=dilation,
            dimension_numbers=LAX_SPECS[len(spatial)],
            feature_group_count=groups,
        )
        + params["b"]
    )
    np.testing.assert_allclose(y, reference, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(y, _np_conv(x, w, b, strides, pads, dilation, groups), rtol=1e-4, atol=1e-4)


@settings(max_examples=20, deadline=None)
@given(case=conv_cases(1), seed=st.integers(0, 2**16))
def test_conv_1d_equals_lax_and_a_numpy_loop(case, seed):
    _check_conv_case(case, seed)


@settings(max_examples=20, deadline=None)
@given(case=conv_cases(2), seed=st.integers(0, 2**16))
def test_conv_2d_equals_lax_and_a_numpy_loop(case, seed):
    _check_conv_case(case, seed)


def test_conv_3d_and_extra_batch_axes():
    layer = nn.conv(3, (2, 3, 2), padding="VALID")
    assert nn.build(layer, (4, 5, 3, 2)).output_shape == (3, 3, 2, 3)
    rng = np.random.default_rng(0)
    params = {
        "w": jnp.asarray(rng.normal(size=(2, 3, 2, 2, 3)), jnp.float32),
        "b": jnp.asarray(rng.normal(size=3), jnp.float32),
    }
    x = jnp.asarray(rng.normal(size=(2, 2, 4, 5, 3, 2)), jnp.float32)  # two leading batch axes
    y, _ = layer.apply(params, {}, x)
    reference = (
        jax.lax.conv_general_dilated(
            x.reshape(4, 4, 5, 3, 2),
            params["w"],
            (1, 1, 1),
            "VALID",
            dimension_numbers=("NDHWC", "DHWIO", "NDHWC"),
        )
        + params["b"]
    )
    np.testing.assert_allclose(y, reference.reshape(2, 2, 3, 3, 2, 3), rtol=1e-5, atol=1e-5)


def test_conv_default_init_has_the_receptive_field_variance():
    """Var(w) = 1/fan_in with fan_in = Π kernel · C_in/groups: here 5·5·(8/2) = 100."""
    _, params, _ = nn.conv(256, 5, groups=2).init(KEY, (9, 9, 8))
    w = np.asarray(params["w"], np.float64)
    assert w.shape == (5, 5, 4, 256)
    assert init.compute_fans(w.shape) == (100, 5 * 5 * 256)
    variance = 1 / 100
    assert abs(w.var() - variance) < 5 * variance * math.sqrt(2 / w.size)
    assert abs(w.mean()) < 5 * math.sqrt(variance / w.size)
    np.testing.assert_array_equal(params["b"], np.zeros(256))


def test_conv_argument_mistakes_are_one_clear_error():
    with pytest.raises(
        FnlearnError, match="groups=3 must divide the number of input channels, but there are 4"
    ):
        nn.build(nn.conv(6, 3, groups=3), (5, 5, 4))
    with pytest.raises(FnlearnError, match="groups=2 must divide the number of features, but there are 3"):
        nn.build(nn.conv(3, 3, groups=2), (5, 5, 4))
    with pytest.raises(
        FnlearnError, match=r"window of 5 .* larger than the padded input \(4 \+ 0 \+ 0 = 4\)"
    ):
        nn.build(nn.conv(2, 5, padding="VALID"), (4, 4, 1))
    with pytest.raises(FnlearnError, match="spanning 5 with dilation 2"):
        nn.build(nn.conv(2, 3, dilation=2, padding=((0, 0), (0, 0))), (4, 9, 1))
    with pytest.raises(
        FnlearnError, match=r"kernel_size=\(3, 3, 3\) has 3 entries but the input has 2 spatial"
    ):
        nn.build(nn.conv(2, (3, 3, 3)), (8, 8, 1))
    with pytest.raises(FnlearnError, match=r"channels-last .* got shape \(8,\)"):
        nn.build(nn.conv(2, 3), (8,))
    with pytest.raises(FnlearnError, match="unknown padding 'same-ish'"):
        nn.conv(2, 3, padding="same-ish")
    with pytest.raises(FnlearnError, match="padding must be >= 0"):
        nn.conv(2, 3, padding=-1)
    with pytest.raises(FnlearnError, match="strides must be a positive int"):
        nn.build(nn.conv(2, 3, strides=0), (8, 1))
    with pytest.raises(FnlearnError, match="features must be a positive int"):
        nn.conv(0, 3)
    with pytest.raises(FnlearnError, match=r"kernel_size must be an int or a sequence of 2 ints, got 2.5"):
        nn.build(nn.conv(2, 2.5), (8, 8, 1))
    # numpy integers (from an array or a config) are as good as Python ints
    assert nn.build(nn.conv(np.int64(2), np.int64(3), strides=(np.int32(2), 1)), (8, 8, 1)).output_shape == (
        4,
        8,
        2,
    )
    params = {"w": jnp.ones((3, 3, 3, 2)), "b": jnp.zeros(2)}
    with pytest.raises(FnlearnError, match=r"expects a batch of examples .* 3 channels.*\(2, 6, 6, 4\)"):
        nn.conv(2, 3).apply(params, {}, jnp.ones((2, 6, 6, 4)))


# --------------------------------------------------------------------------------------------
# pooling and reshaping against numpy


@st.composite
def pool_cases(draw):
    rank = draw(st.integers(1, 2))
    window = tuple(draw(st.integers(1, 3)) for _ in range(rank))
    strides = draw(st.one_of(st.none(), st.tuples(*[st.integers(1, 3)] * rank)))
    spatial = tuple(k + draw(st.integers(0, 3)) for k in window)
    padding = draw(st.sampled_from(["SAME", "VALID", 1] if min(window) > 1 else ["SAME", "VALID"]))
    return window, strides, spatial, padding


@settings(max_examples=20, deadline=None)
@given(case=pool_cases(), seed=st.integers(0, 2**16))
def test_pooling_equals_numpy(case, seed):
    window, strides, spatial, padding = case
    x = np.random.default_rng(seed).normal(size=(2, *spatial, 3))
    s = window if strides is None else strides
    pads = _np_pads(padding, spatial, window, s, (1,) * len(window))
    layers = {
        ("max", True): nn.max_pool(window, strides, padding),
        ("mean", True): nn.avg_pool(window, strides, padding),
        ("mean", False): nn.avg_pool(window, strides, padding, count_include_pad=False),
    }
    # the three layers in one program: one compilation per drawn shape instead of one per operation
    ys = jax.jit(lambda x: [layer.apply({}, {}, x)[0] for layer in layers.values()])(
        jnp.asarray(x, jnp.float32)
    )
    for ((how, include), layer), y in zip(layers.items(), ys, strict=True):
        assert y.shape == (2, *nn.build(layer, (*spatial, 3)).output_shape)
        np.testing.assert_allclose(y, _np_pool(x, window, s, pads, how, include), rtol=1e-5, atol=1e-6)


def test_avg_pool_counts_padding_as_zeros_by_default():
    x = jnp.ones((1, 3, 3, 1))
    y, _ = nn.avg_pool(3, strides=1, padding="SAME").apply({}, {}, x)
    assert float(y[0, 0, 0, 0]) == pytest.approx(4 / 9)  # a corner window holds 4 real ones
    y, _ = nn.avg_pool(3, strides=1, padding="SAME", count_include_pad=False).apply({}, {}, x)
    np.testing.assert_allclose(y, 1.0)


def test_global_avg_pool_flatten_and_reshape():
    x = np.random.default_rng(0).normal(size=(2, 4, 5, 3)).astype(np.float32)
    assert nn.build(nn.global_avg_pool(), (4, 5, 3)).output_shape == (3,)
    np.testing.assert_allclose(
        nn.global_avg_pool().apply({}, {}, jnp.asarray(x))[0], x.mean((1, 2)), rtol=1e-5
    )
    assert nn.build(nn.flatten(), (4, 5, 3)).output_shape == (60,)
    np.testing.assert_array_equal(nn.flatten().apply({}, {}, jnp.asarray(x))[0], x.reshape(2, 60))
    assert nn.build(nn.reshape((-1, 3)), (4, 5, 3)).output_shape == (20, 3)
    np.testing.assert_array_equal(nn.reshape((20, -1)).apply({}, {}, jnp.asarray(x))[0], x.reshape(2, 20, 3))
    with pytest.raises(
        FnlearnError, match=r"shape \(4, 5, 3\) \(60 entries\) cannot be reshaped to \(7, -1\)"
    ):
        nn.build(nn.reshape((7, -1)), (4, 5, 3))
    with pytest.raises(FnlearnError, match=r"window of 3 .* larger than the padded input"):
        nn.build(nn.max_pool(3), (2, 2, 1))
    with pytest.raises(FnlearnError, match=r"padding \(2, 2\) .* not smaller than the window 2"):
        nn.build(nn.avg_pool(2, padding=2), (4, 4, 1))
