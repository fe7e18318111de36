"""fnlearn.nn against numpy references, finite differences and the lecture notes' claims."""

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.flatten_util import ravel_pytree

from fnlearn import init, nn, tree
from fnlearn.errors import FnlearnError

KEY = jax.random.key(0)


# --------------------------------------------------------------------------------------------
# normalisation layers against numpy


def _np_normalise(x, mean, var, eps, scale, shift):
    return scale * (x - mean) / np.sqrt(var + eps) + shift


def test_batch_norm_matches_numpy_in_train_and_eval():
    layer = nn.batch_norm(momentum=0.8, eps=1e-3)
    shape, params, state = layer.init(KEY, (5,))
    rng = np.random.default_rng(0)
    params = {
        "scale": jnp.asarray(rng.normal(size=5), jnp.float32),
        "shift": jnp.asarray(rng.normal(size=5), jnp.float32),
    }
    running_mean, running_var = np.zeros(5), np.ones(5)
    for _ in range(3):
        x = rng.normal(2.0, 3.0, size=(16, 5)).astype(np.float32)
        y, state = layer.apply(params, state, jnp.asarray(x), train=True)
        mean, var = x.mean(0), x.var(0)  # biased variance, as flax
        np.testing.assert_allclose(
            y, _np_normalise(x, mean, var, 1e-3, params["scale"], params["shift"]), rtol=1e-4, atol=1e-5
        )
        running_mean = 0.8 * running_mean + 0.2 * mean
        running_var = 0.8 * running_var + 0.2 * var
        np.testing.assert_allclose(state["mean"], running_mean, rtol=1e-5)
        np.testing.assert_allclose(state["var"], running_var, rtol=1e-5)
    x = rng.normal(size=(7, 5)).astype(np.float32)
    y_eval, state_after = layer.apply(params, state, jnp.asarray(x), train=False)
    np.testing.assert_allclose(
        y_eval,
        _np_normalise(x, running_mean, running_var, 1e-3, params["scale"], params["shift"]),
        rtol=1e-4,
        atol=1e-5,
    )
    chex.assert_trees_all_equal(state_after, state)  # evaluation never moves the running statistics


def test_layer_norm_matches_numpy():
    layer = nn.layer_norm(eps=1e-5)
    _, params, state = layer.init(KEY, (6,))
    rng = np.random.default_rng(1)
    params = {
        "scale": jnp.asarray(rng.normal(size=6), jnp.float32),
        "shift": jnp.asarray(rng.normal(size=6), jnp.float32),
    }
    x = rng.normal(1.0, 4.0, size=(3, 4, 6)).astype(np.float32)
    for train in (True, False):
        y, _ = layer.apply(params, state, jnp.asarray(x), train=train)
        expected = _np_normalise(
            x, x.mean(-1, keepdims=True), x.var(-1, keepdims=True), 1e-5, params["scale"], params["shift"]
        )
        np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------------------------
# dropout


def test_dropout_keeps_the_expectation_and_scales_kept_units():
    rate = 0.3
    layer = nn.dropout(rate)
    x = jnp.linspace(0.5, 2.0, 1000).reshape(10, 100)
    keys = jax.random.split(KEY, 400)
    _, _, state = layer.init(KEY, (100,))
    ys = jax.vmap(lambda k: layer.apply({}, state, x, train=True, key=k)[0])(keys)
    kept = ys != 0
    # kept units are x / (1 - rate), exactly
    np.testing.assert_allclose(jnp.where(kept, ys, 0), jnp.where(kept, x / (1 - rate), 0), rtol=1e-6)
    n = kept.size
    assert abs(1 - float(kept.mean()) - rate) < 5 * math.sqrt(rate * (1 - rate) / n)
    # E[y] = x: the mean over 400 masks is within sampling error of x everywhere
    se = np.asarray(x) * math.sqrt(rate / (1 - rate) / len(keys))
    assert np.all(np.abs(np.asarray(ys.mean(0)) - np.asarray(x)) < 5 * se)


def test_dropout_is_identity_in_evaluation_and_needs_a_key_in_training():
    layer = nn.dropout(0.5)
    _, _, state = layer.init(KEY, (3,))
    x = jnp.ones((4, 3))
    y, _ = layer.apply({}, state, x, train=False)
    chex.assert_trees_all_equal(y, x)
    with pytest.raises(FnlearnError, match="needs a PRNG key"):
        layer.apply({}, state, x, train=True)
    with pytest.raises(FnlearnError, match=r"\[0, 1\)"):
        nn.dropout(1.0)


# --------------------------------------------------------------------------------------------
# gradients against central finite differences (float64)

GRAD_MODELS = {
    "relu_mlp": lambda: nn.mlp([3, 5, 4, 2], activation="relu"),
    "tanh_layer_norm": lambda: nn.mlp([3, 5, 5, 2], activation="tanh", norm="layer_norm", residual=True),
    "gelu_batch_norm": lambda: nn.mlp([3, 6, 2], activation="gelu", norm="batch_norm"),
    **{act: (lambda act=act: nn.mlp([3, 4, 2], activation=act)) for act in nn.ACTIVATIONS if act != "relu"},
}


@pytest.mark.parametrize("name", GRAD_MODELS)
def test_grad_matches_central_differences(name):
    with jax.enable_x64(True):
        model = GRAD_MODELS[name]()
        params, state = model.init(KEY)
        params = jax.tree.map(lambda p: p.astype(jnp.float64) + 0.1, params)  # move off zero biases
        state = jax.tree.map(lambda s: s.astype(jnp.float64), state)
        rng = np.random.default_rng(2)
        x = jnp.asarray(rng.normal(size=(8, 3)))
        target = jnp.asarray(rng.normal(size=(8, 2)))

        def loss(p):
            y, _ = model.apply(p, state, x, train=True)
            return jnp.sum((y - target) ** 2)

        grads = jax.grad(loss)(params)
        flat, unravel = ravel_pytree(params)
        flat_grads, _ = ravel_pytree(grads)
        eps = 1e-6
        for direction in rng.normal(size=(6, flat.size)):
            d = jnp.asarray(direction)
            fd = (loss(unravel(flat + eps * d)) - loss(unravel(flat - eps * d))) / (2 * eps)
            np.testing.assert_allclose(jnp.dot(flat_grads, d), fd, rtol=1e-6, atol=1e-7)


# --------------------------------------------------------------------------------------------
# parameter count: the notes' formula


@settings(max_examples=25, deadline=None)
@given(depth=st.integers(1, 6), width=st.integers(1, 40))
def test_parameter_count_matches_the_notes(depth, width):
    model = nn.mlp([1] + [width] * depth + [1])
    params, _ = jax.eval_shape(model.init, KEY)
    assert tree.num_params(params) == 3 * width + 1 + (depth - 1) * width * (width + 1)


# --------------------------------------------------------------------------------------------
# signal propagation: the notes' claim, tested statistically over 16 vmapped initialisations.
# 20 layers are enough to tell the rules apart (He: E[h²] last/first 0.91-1.05 here; a gain off by
# √2 would give 2^±19) and compile in 40% of the time 50 layers take (experiments/init_variance.py
# runs 50 in its full mode). The two tests share one worker, so the program compiles once.

DEPTH, WIDTH, SEEDS = 20, 256, 16


@jax.jit
def _pre_activation_second_moments(weight_std):
    """E[h²] of the pre-activations of every hidden layer, for each of 16 initialisations.

    ``weight_std=None`` uses He initialisation; a number uses N(0, weight_std²) weights.
    """
    x = jax.random.normal(jax.random.key(1), (32, WIDTH))

    def moments(key, w_init):
        model = nn.mlp([WIDTH] * (DEPTH + 1) + [1], w_init=w_init)
        params, state = model.init(key)
        outs = nn.intermediates(model, params, state, x)
        return jnp.stack([jnp.mean(h**2) for name, h in outs if name.startswith("dense_")])

    keys = jax.random.split(KEY, SEEDS)
    he = jax.vmap(lambda k: moments(k, init.he_normal()))(keys)
    # N(0, s²) for a traced s: scale unit-normal weights, so one compilation serves every s
    fixed = jax.vmap(
        lambda k, s: moments(k, lambda kk, shape, dtype=jnp.float32: s * init.normal(1.0)(kk, shape, dtype)),
        in_axes=(None, 0),
    )
    return he, jax.vmap(fixed, in_axes=(0, None))(keys, weight_std)


@pytest.mark.xdist_group("signal_propagation")
def test_he_initialisation_keeps_the_signal_of_a_deep_relu_network():
    he, _ = _pre_activation_second_moments(jnp.array([0.01, 1.0]))
    assert he.shape == (SEEDS, DEPTH)
    mean = np.asarray(he).mean(0)
    ratio = mean / mean[0]
    assert np.all((ratio > 1 / 3) & (ratio < 3)), ratio


@pytest.mark.xdist_group("signal_propagation")
def test_small_and_large_fixed_variances_make_the_signal_vanish_or_explode():
    _, fixed = _pre_activation_second_moments(jnp.array([0.01, 1.0]))
    small, large = np.asarray(fixed).mean(0)
    assert small[-1] < 1e-20 * small[0]  # ×(256·1e-4/2) ≈ 0.013 per layer
    with np.errstate(invalid="ignore"):
        assert np.nanmax(large / large[0]) > 1e20  # ×128 per layer, until float32 overflows to inf


# --------------------------------------------------------------------------------------------
# the builder, combinators and transformations


@pytest.mark.parametrize(
    "activation, variance",
    [
        ("relu", 2 / 500),
        ("leaky_relu", 2 / (1 + 0.01**2) / 500),
        ("tanh", (5 / 3) ** 2 * 2 / (500 + 400)),
        ("sigmoid", 2 / (500 + 400)),
        ("selu", 1 / 500),
        ("identity", 1 / 500),
    ],
)
def test_mlp_default_init_follows_the_activation(activation, variance):
    params, _ = nn.mlp([500, 400, 3], activation=activation).init(KEY)
    w = np.asarray(params[0][0]["w"], np.float64)
    se = variance * math.sqrt(2 / w.size)
    assert abs(w.var() - variance) < 5 * se


def test_mlp_structure_and_shapes():
    model = nn.mlp([4, 8, 8, 3], norm="batch_norm", dropout=0.1, residual=True)
    params, state = model.init(KEY)
    assert model.input_shape == (4,) and model.output_shape == (3,)
    # first block 4→8 cannot be residual, the second 8→8 is
    names = [name for name, _ in nn.intermediates(model, params, state, jnp.ones((2, 4)))]
    assert names == ["dense_0", "batch_norm", "relu", "dropout", "residual(block_1)", "output"]
    y, new_state = model.apply(params, state, jnp.ones((2, 4)), train=True, key=KEY)
    chex.assert_shape(y, (2, 3))
    chex.assert_trees_all_equal_structs(new_state, state)


def test_vmap_over_init_keys_gives_a_stack_of_independent_models():
    model = nn.mlp([3, 16, 2])
    stacked, _ = jax.vmap(model.init)(jax.random.split(KEY, 4))
    chex.assert_tree_shape_prefix(stacked, (4,))
    w = stacked[0][0]["w"]
    assert not np.allclose(w[0], w[1])
    single, _ = model.init(jax.random.split(KEY, 4)[2])
    chex.assert_trees_all_close(jax.tree.map(lambda a: a[2], stacked), single)


def test_apply_under_jit_grad_and_vmap():
    model = nn.mlp([3, 8, 2], norm="batch_norm", dropout=0.2)
    params, state = model.init(KEY)
    x = jax.random.normal(KEY, (5, 3))
    eager, _ = model.apply(params, state, x, train=True, key=KEY)
    jitted, _ = jax.jit(lambda p, s, x, k: model.apply(p, s, x, train=True, key=k))(params, state, x, KEY)
    chex.assert_trees_all_close(eager, jitted, rtol=1e-5)
    grads = jax.grad(lambda p: jnp.sum(model.apply(p, state, x, train=True, key=KEY)[0]))(params)
    chex.assert_trees_all_equal_shapes(grads, params)
    batched = jax.vmap(lambda xi: model.apply(params, state, xi)[0])(x[:, None, :])
    chex.assert_trees_all_close(batched[:, 0], model.apply(params, state, x)[0], rtol=1e-5)


def test_wrong_input_width_names_the_layer_and_shapes():
    model = nn.mlp([4, 8, 3])
    params, state = model.init(KEY)
    with pytest.raises(FnlearnError, match=r"shape \(2, 5\).*\(4,\)"):
        model.apply(params, state, jnp.ones((2, 5)))
    inner = nn.build(nn.serial(nn.dense(8, name="first"), nn.dense(3, name="second")), 4)
    p, s = inner.init(KEY)
    p[1] = {"w": jnp.ones((7, 3)), "b": jnp.zeros(3)}  # a weight from some other model
    with pytest.raises(FnlearnError, match=r"layer 'second' expects inputs of width 7.*\(2, 8\)"):
        inner.apply(p, s, jnp.ones((2, 4)))


def test_residual_needs_a_shape_preserving_block():
    with pytest.raises(FnlearnError, match=r"maps \(4,\) to \(6,\)"):
        nn.build(nn.residual(nn.dense(6)), 4)
    model = nn.build(nn.residual(nn.serial(nn.dense(4), nn.tanh())), 4)
    params, state = model.init(KEY)
    x = jnp.arange(8.0).reshape(2, 4)
    y, _ = model.apply(params, state, x)
    inner, _ = model.layer.sublayers[0].apply(params, state, x)
    chex.assert_trees_all_close(y, x + inner)


def test_unknown_names_suggest_the_known_ones():
    with pytest.raises(FnlearnError, match="Did you mean 'relu'"):
        nn.mlp([2, 3, 1], activation="rulu")
    with pytest.raises(FnlearnError, match="Did you mean 'batch_norm'"):
        nn.mlp([2, 3, 1], norm="batchnorm")
    with pytest.raises(FnlearnError, match="at least two positive"):
        nn.mlp([3])
