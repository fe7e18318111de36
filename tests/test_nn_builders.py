"""fnlearn.nn's builders beyond mlp: cnn and gpt, their shapes, parameter counts, init, causality, training."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnlearn as fl
from fnlearn import nn
from fnlearn.errors import FnlearnError

KEY = jax.random.key(0)


def _num_params(model):
    params, _ = jax.eval_shape(model.init, KEY)
    return fl.tree.num_params(params)


def _layer_outputs(model, batch_shape):
    """[(name, output shape)] of every leaf layer, traced (``eval_shape``) rather than run."""
    names = []

    def run(x):
        params, state = model.init(KEY)
        outputs = nn.intermediates(model, params, state, x)
        names.extend(name for name, _ in outputs)
        return [h for _, h in outputs]

    shapes = jax.eval_shape(run, jax.ShapeDtypeStruct(batch_shape, jnp.float32))
    return [(name, h.shape) for name, h in zip(names, shapes, strict=True)]


# --------------------------------------------------------------------------------------------
# cnn


def test_cnn_shapes_and_parameter_count_by_hand():
    model = nn.cnn((8, 8, 1), channels=(4, 6), dense=(16,), num_outputs=3)
    assert model.input_shape == (8, 8, 1) and model.output_shape == (3,)
    # conv 3·3·1·4 + 4, conv 3·3·4·6 + 6, two pools 8 → 4 → 2 so flatten gives 2·2·6 = 24,
    # dense 24·16 + 16, output 16·3 + 3
    assert _num_params(model) == 40 + 222 + 400 + 51
    assert _layer_outputs(model, (5, 8, 8, 1)) == [
        ("conv_0", (5, 8, 8, 4)),
        ("relu", (5, 8, 8, 4)),
        ("max_pool", (5, 4, 4, 4)),
        ("conv_1", (5, 4, 4, 6)),
        ("relu", (5, 4, 4, 6)),
        ("max_pool", (5, 2, 2, 6)),
        ("flatten", (5, 24)),
        ("dense_0", (5, 16)),
        ("relu", (5, 16)),
        ("output", (5, 3)),
    ]


def test_cnn_1d_with_batch_norm_and_no_dense_layers():
    model = nn.cnn((12, 2), channels=(3,), kernel_size=5, pool=3, dense=(), num_outputs=2, norm="batch_norm")
    # conv 5·2·3 + 3, batch-norm scale and shift 2·3, pool 12 → 4 so flatten gives 12, output 12·2 + 2
    assert _num_params(model) == 33 + 6 + 26
    _, new_state = jax.eval_shape(
        lambda x: model.apply(*model.init(KEY), x, train=True), jnp.ones((4, 12, 2))
    )
    assert new_state[0][1]["mean"].shape == (3,)  # one running mean per channel


@pytest.mark.parametrize(
    "activation, variance", [("relu", 2 / 400), ("tanh", (5 / 3) ** 2 * 2 / (400 + 3200))]
)
def test_cnn_conv_init_follows_the_activation_over_the_receptive_field(activation, variance):
    """fan_in = 5·5·16 = 400, fan_out = 5·5·128 = 3200: He for relu, Xavier for tanh."""
    model = nn.cnn(
        (6, 6, 16), channels=(128,), kernel_size=5, pool=None, dense=(), num_outputs=1, activation=activation
    )
    w = np.asarray(jax.jit(lambda k: model.init(k)[0][0][0]["w"])(KEY), np.float64)  # the conv kernel only
    assert w.shape == (5, 5, 16, 128)
    assert abs(w.var() - variance) < 5 * variance * math.sqrt(2 / w.size)


def test_cnn_mistakes():
    with pytest.raises(FnlearnError, match="Did you mean 'relu'"):
        nn.cnn((8, 8, 1), num_outputs=2, activation="rellu")
    with pytest.raises(FnlearnError, match="Did you mean 'batch_norm'"):
        nn.cnn((8, 8, 1), num_outputs=2, norm="batchnorm")
    with pytest.raises(FnlearnError, match="max_pool: a window of 2 .* larger than the padded input"):
        nn.cnn((4, 4, 1), channels=(2, 2, 2), num_outputs=2)  # 4 → 2 → 1 → nothing left to pool
    with pytest.raises(FnlearnError, match=r"channels-last .* got shape \(8,\)"):
        nn.cnn((8,), num_outputs=2)


def test_cnn_training_reduces_the_loss():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 6, 6, 1)).astype(np.float32)
    y = (x[:, :, :3].mean((1, 2, 3)) > x[:, :, 3:].mean((1, 2, 3))).astype(np.int32)
    model = nn.cnn((6, 6, 1), channels=(4,), dense=(8,), num_outputs=2)
    state = fl.TrainState.create(model, fl.optim.adam(1e-2), KEY)
    _, history = fl.fit(state, (x, y), loss=fl.distributions.get("categorical"), epochs=8, batch_size=16)
    assert history[-1]["train_loss"] < 0.7 * history[0]["train_loss"]


# --------------------------------------------------------------------------------------------
# gpt


def _gpt_count(vocab, max_len, width, depth):
    """Embeddings V·W + L·W; per block two norms 2·2W, attention 4(W² + W), MLP (4W² + 4W) + (4W² + W);
    the final norm 2W and the logits W·V + V."""
    block = 2 * 2 * width + 4 * (width**2 + width) + (4 * width**2 + 4 * width) + (4 * width**2 + width)
    return vocab * width + max_len * width + depth * block + 2 * width + width * vocab + vocab


def test_gpt_shapes_and_parameter_count_by_hand():
    model = nn.gpt(11, 7, width=16, depth=2, num_heads=2)
    assert model.input_shape == (7,) and model.output_shape == (7, 11)
    assert _num_params(model) == _gpt_count(11, 7, 16, 2) == 7067
    assert _layer_outputs(model, (3, 7)) == [
        ("token_embedding", (3, 7, 16)),
        ("positional_embedding", (3, 7, 16)),
        ("block_0", (3, 7, 16)),
        ("block_1", (3, 7, 16)),
        ("layer_norm", (3, 7, 16)),
        ("logits", (3, 7, 11)),
    ]


def test_gpt_is_causal():
    model = nn.gpt(9, 6, width=8, depth=2, num_heads=2)
    rng = np.random.default_rng(0)  # random parameters without compiling the random initialisers
    shapes = jax.eval_shape(model.init, KEY)
    params, state = jax.tree.map(lambda s: jnp.asarray(rng.normal(size=s.shape) * 0.5, s.dtype), shapes)
    apply = jax.jit(lambda tokens: model.apply(params, state, tokens)[0])
    tokens = rng.integers(0, 9, size=(3, 6))
    logits = apply(tokens)
    for t in range(5):
        changed = tokens.copy()
        changed[:, t + 1] = (changed[:, t + 1] + 1 + np.arange(3)) % 9
        changed_logits = apply(changed)
        np.testing.assert_allclose(changed_logits[:, : t + 1], logits[:, : t + 1], rtol=1e-5, atol=1e-6)
        assert not np.allclose(changed_logits[:, t + 1], logits[:, t + 1])


def _next_token_nll(logits, y, weights):
    """Mean over the weighted examples of the mean over positions of −log softmax(logits)[y_t]."""
    log_p = jax.nn.log_softmax(logits, axis=-1)
    per_position = -jnp.take_along_axis(log_p, y.astype(jnp.int32)[..., None], axis=-1)[..., 0]
    return jnp.sum(weights * per_position.mean(-1)) / jnp.sum(weights)


def test_gpt_training_reduces_the_next_token_loss():
    """Counting sequences x_t = (x_0 + t) mod 5: the next token is x_t + 1, learnable from x_t alone.
    fit checks that x is floating, so the ids are passed as whole floats (the embedding casts them)."""
    start = np.random.default_rng(2).integers(0, 5, size=(64, 1))
    tokens = ((start + np.arange(7)) % 5).astype(np.float32)
    x, y = tokens[:, :-1], tokens[:, 1:]
    model = nn.gpt(5, 6, width=16, depth=1, num_heads=2)
    state = fl.TrainState.create(model, fl.optim.adam(1e-2), KEY)
    _, history = fl.fit(state, (x, y), loss=_next_token_nll, epochs=8, batch_size=16)
    assert history[0]["train_loss"] > 1.0 and history[-1]["train_loss"] < 0.5 * history[0]["train_loss"]


def test_gpt_mistakes():
    with pytest.raises(FnlearnError, match="D divisible by num_heads=3"):
        nn.gpt(10, 4, width=16, num_heads=3)
    with pytest.raises(FnlearnError, match="vocab_size must be a positive int"):
        nn.gpt(0, 4)


def test_builders_registry_is_an_explicit_table():
    assert nn.BUILDERS == {"mlp": nn.mlp, "cnn": nn.cnn, "gpt": nn.gpt}
