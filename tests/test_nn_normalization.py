"""fnlearn.nn's normalisation layers on images and sequences, against numpy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnlearn import nn
from fnlearn.errors import FnlearnError

KEY = jax.random.key(0)
RNG = np.random.default_rng(0)


def _random_scale_shift(params, channels):
    return {k: jnp.asarray(RNG.normal(size=channels), jnp.float32) for k in params}


def test_batch_norm_on_images_normalises_each_channel_over_batch_and_pixels():
    layer = nn.batch_norm(momentum=0.5, eps=1e-3)
    _, params, state = layer.init(KEY, (4, 5, 3))
    params = _random_scale_shift(params, 3)
    x = (RNG.normal(size=(6, 4, 5, 3)) * [1.0, 3.0, 0.2] + [0.0, -2.0, 5.0]).astype(np.float32)
    y, new_state = layer.apply(params, state, jnp.asarray(x), train=True)
    mean, var = x.mean((0, 1, 2)), x.var((0, 1, 2))  # one statistic per channel
    x_hat = (x - mean) / np.sqrt(var + 1e-3)
    np.testing.assert_allclose(y, params["scale"] * x_hat + params["shift"], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(new_state["mean"], 0.5 * mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(new_state["var"], 0.5 + 0.5 * var, rtol=1e-5)
    y_eval, _ = layer.apply(params, new_state, jnp.asarray(x))
    x_hat = (x - 0.5 * mean) / np.sqrt(0.5 + 0.5 * var + 1e-3)
    np.testing.assert_allclose(y_eval, params["scale"] * x_hat + params["shift"], rtol=1e-4, atol=1e-4)


def test_rms_norm_matches_numpy():
    layer = nn.rms_norm(eps=1e-6)
    _, params, state = layer.init(KEY, (7, 6))
    assert set(params) == {"scale"}
    scale = RNG.normal(size=6)
    x = RNG.normal(1.0, 3.0, size=(2, 7, 6))
    y, _ = layer.apply({"scale": jnp.asarray(scale, jnp.float32)}, state, jnp.asarray(x, jnp.float32))
    np.testing.assert_allclose(
        y, scale * x / np.sqrt((x**2).mean(-1, keepdims=True) + 1e-6), rtol=1e-4, atol=1e-5
    )


@pytest.mark.parametrize("groups", [1, 2, 6])
def test_group_norm_matches_numpy_on_images(groups):
    layer = nn.group_norm(groups, eps=1e-5)
    _, params, state = layer.init(KEY, (3, 4, 6))
    params = _random_scale_shift(params, 6)
    x = RNG.normal(2.0, 3.0, size=(5, 3, 4, 6))
    grouped = x.reshape(5, 3, 4, groups, 6 // groups)
    mean = grouped.mean((1, 2, 4), keepdims=True)
    var = grouped.var((1, 2, 4), keepdims=True)
    x_hat = ((grouped - mean) / np.sqrt(var + 1e-5)).reshape(x.shape)
    for train in (True, False):  # no batch statistics: the same in training and evaluation
        y, _ = layer.apply(params, state, jnp.asarray(x, jnp.float32), train=train)
        np.testing.assert_allclose(y, params["scale"] * x_hat + params["shift"], rtol=1e-4, atol=1e-4)


def test_group_norm_needs_groups_that_divide_the_channels():
    with pytest.raises(FnlearnError, match="6 channels cannot be split into num_groups=4"):
        nn.build(nn.group_norm(4), (3, 3, 6))
    with pytest.raises(FnlearnError, match="num_groups must be a positive int"):
        nn.group_norm(0)
