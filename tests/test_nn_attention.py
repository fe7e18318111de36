"""fnlearn.nn's attention, transformer block and embeddings against float64 numpy references."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special

from fnlearn import nn
from fnlearn.errors import FnlearnError

KEY = jax.random.key(0)
B, T, D, H = 2, 5, 8, 2


def _np_params(rng, width=D):
    """Random float64 attention parameters (biases too, so that a misplaced bias shows)."""
    return {
        p: {"w": rng.normal(size=(width, width)) / math.sqrt(width), "b": rng.normal(size=width)}
        for p in ("query", "key", "value", "out")
    }


def _as_f32(tree):
    return jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), tree)


def _np_attention(x, params, num_heads, causal):
    """concat_h softmax(Q_h K_hᵀ/√d + M) V_h · W_o + b_o, one head at a time, in float64."""
    _, t, width = x.shape
    d = width // num_heads
    q, k, v = (x @ params[p]["w"] + params[p]["b"] for p in ("query", "key", "value"))
    heads = []
    for h in range(num_heads):
        cols = slice(h * d, (h + 1) * d)
        scores = q[..., cols] @ np.swapaxes(k[..., cols], -1, -2) / math.sqrt(d)
        if causal:
            scores = np.where(np.tril(np.ones((t, t), bool)), scores, -np.inf)
        weights = np.exp(scores - scores.max(-1, keepdims=True))
        weights /= weights.sum(-1, keepdims=True)
        heads.append(weights @ v[..., cols])
    return np.concatenate(heads, -1) @ params["out"]["w"] + params["out"]["b"]


# --------------------------------------------------------------------------------------------
# attention


@pytest.mark.parametrize("causal", [False, True])
def test_attention_equals_numpy(causal):
    rng = np.random.default_rng(1)
    params, x = _np_params(rng), rng.normal(size=(B, T, D))
    layer = nn.multi_head_attention(H, causal=causal)
    y, _ = layer.apply(_as_f32(params), {}, jnp.asarray(x, jnp.float32))
    np.testing.assert_allclose(y, _np_attention(x, params, H, causal), rtol=1e-4, atol=1e-5)


def test_attention_params_have_the_documented_shapes():
    model = nn.build(nn.multi_head_attention(H), (T, D))
    params, state = jax.eval_shape(model.init, KEY)
    assert model.output_shape == (T, D) and state == {}
    expected = {p: {"w": (D, D), "b": (D,)} for p in ("query", "key", "value", "out")}
    assert jax.tree.map(jnp.shape, params) == expected


def test_attention_without_mask_is_permutation_equivariant():
    rng = np.random.default_rng(2)
    params, x = _as_f32(_np_params(rng)), jnp.asarray(rng.normal(size=(B, T, D)), jnp.float32)
    layer = nn.multi_head_attention(H)
    perm = rng.permutation(T)
    y, _ = layer.apply(params, {}, x)
    y_perm, _ = layer.apply(params, {}, x[:, perm])
    np.testing.assert_allclose(y_perm, y[:, perm], rtol=1e-5, atol=1e-6)


def test_causal_attention_never_lets_a_later_token_change_an_earlier_output():
    rng = np.random.default_rng(3)
    params, x = _as_f32(_np_params(rng)), rng.normal(size=(B, T, D))
    layer = nn.multi_head_attention(H, causal=True)
    y, _ = layer.apply(params, {}, jnp.asarray(x, jnp.float32))
    for t in range(T - 1):
        changed = x.copy()
        changed[:, t + 1 :] = rng.normal(size=changed[:, t + 1 :].shape) * 10
        y_changed, _ = layer.apply(params, {}, jnp.asarray(changed, jnp.float32))
        np.testing.assert_allclose(y_changed[:, : t + 1], y[:, : t + 1], rtol=1e-6, atol=1e-6)
        assert not np.allclose(y_changed[:, t + 1], y[:, t + 1])


def test_attention_softmax_runs_in_float32_for_bfloat16():
    scores = jnp.asarray(np.random.default_rng(4).normal(size=(3, 4, 4)) * 8, jnp.bfloat16)
    for causal in (False, True):
        weights = nn.attention.attention_weights(scores, causal)
        assert weights.dtype == jnp.bfloat16
        mask = np.tril(np.ones((4, 4), bool)) if causal else np.ones((4, 4), bool)
        expected = jax.nn.softmax(jnp.where(mask, scores.astype(jnp.float32), -jnp.inf), axis=-1)
        expected = expected.astype(jnp.bfloat16)
        np.testing.assert_array_equal(np.asarray(weights, np.float32), np.asarray(expected, np.float32))
    rng = np.random.default_rng(5)
    params, x = _np_params(rng), rng.normal(size=(B, T, D))
    y, _ = nn.multi_head_attention(H, causal=True).apply(
        jax.tree.map(lambda a: jnp.asarray(a, jnp.bfloat16), params), {}, jnp.asarray(x, jnp.bfloat16)
    )
    assert y.dtype == jnp.bfloat16
    np.testing.assert_allclose(
        np.asarray(y, np.float32), _np_attention(x, params, H, True), rtol=0.1, atol=0.1
    )


def test_attention_dropout_drops_weights_in_training_only_and_needs_a_key():
    layer = nn.multi_head_attention(H, dropout=0.5)
    state = jax.jit(lambda k: layer.init(k, (T, D))[2])(KEY)  # the state only: no random weights compiled
    assert float(state["rate"]) == 0.5  # in state, where replicas can vary it
    rng = np.random.default_rng(8)
    params, x = _as_f32(_np_params(rng)), jnp.asarray(rng.normal(size=(B, T, D)), jnp.float32)
    evaluation, _ = layer.apply(params, state, x)
    plain, _ = nn.multi_head_attention(H).apply(params, {}, x)
    np.testing.assert_allclose(evaluation, plain, rtol=1e-6)
    trained, _ = layer.apply(params, state, x, train=True, key=KEY)
    assert not np.allclose(trained, evaluation)
    with pytest.raises(FnlearnError, match="attention needs a PRNG key"):
        layer.apply(params, state, x, train=True)


def test_attention_argument_mistakes():
    with pytest.raises(FnlearnError, match=r"D divisible by num_heads=3, got shape \(5, 8\)"):
        nn.build(nn.multi_head_attention(3), (T, D))
    with pytest.raises(FnlearnError, match=r"sequences \(T, D\).*got shape \(8,\)"):
        nn.build(nn.multi_head_attention(2), (D,))
    with pytest.raises(FnlearnError, match=r"\[0, 1\)"):
        nn.multi_head_attention(2, dropout=1.0)


# --------------------------------------------------------------------------------------------
# the transformer block: the pre-norm composition, written out in numpy


def _np_layer_norm(x, p, eps=1e-5):
    return p["scale"] * (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + eps) + p["shift"]


def _np_gelu(x):
    return 0.5 * x * (1 + scipy.special.erf(x / math.sqrt(2)))


def test_transformer_block_is_pre_norm_attention_then_mlp_each_residual():
    model = nn.build(nn.transformer_block(H, mlp_ratio=3, causal=True), (T, D))
    assert model.output_shape == (T, D)
    params, state = jax.eval_shape(model.init, KEY)
    rng = np.random.default_rng(6)
    params = jax.tree.map(
        lambda a: rng.normal(size=a.shape) / math.sqrt(a.shape[0] if a.ndim == 2 else 1), params
    )
    (ln1, attention), (ln2, mlp_in, _, mlp_out) = params
    assert mlp_in["w"].shape == (D, 3 * D) and mlp_out["w"].shape == (3 * D, D)
    x = rng.normal(size=(B, T, D))
    h = x + _np_attention(_np_layer_norm(x, ln1), attention, H, causal=True)
    expected = h + _np_gelu(_np_layer_norm(h, ln2) @ mlp_in["w"] + mlp_in["b"]) @ mlp_out["w"] + mlp_out["b"]
    y, _ = model.apply(_as_f32(params), state, jnp.asarray(x, jnp.float32))
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)


def test_transformer_block_with_rms_norm_and_its_mistakes():
    params, _ = jax.eval_shape(nn.build(nn.transformer_block(H, norm="rms_norm"), (T, D)).init, KEY)
    assert set(params[0][0]) == set(params[1][0]) == {"scale"}
    with pytest.raises(FnlearnError, match="unknown transformer norm 'batch_norm'"):
        nn.transformer_block(H, norm="batch_norm")
    with pytest.raises(FnlearnError, match=r"sequences \(T, D\), got shape \(4, 4, 8\)"):
        nn.build(nn.transformer_block(H), (4, 4, 8))


# --------------------------------------------------------------------------------------------
# embeddings


def test_embedding_looks_up_rows_for_integer_and_whole_float_ids():
    layer = nn.embedding(7, 3)
    model = nn.build(layer, (T,))
    assert model.output_shape == (T, 3) and jax.eval_shape(model.init, KEY)[0]["embedding"].shape == (7, 3)
    rng = np.random.default_rng(7)
    ids, table = rng.integers(0, 7, size=(B, T)), rng.normal(size=(7, 3)).astype(np.float32)
    params = {"embedding": jnp.asarray(table)}
    for given in (ids, ids.astype(np.float32)):
        y, _ = layer.apply(params, {}, jnp.asarray(given))
        np.testing.assert_array_equal(y, table[ids])


def test_embedding_ids_out_of_range_raise_eagerly_and_give_nan_rows_under_jit():
    layer = nn.embedding(7, 3)
    params = {"embedding": jnp.ones((7, 3))}
    for bad in ([[0, 7, 1]], [[0, -1, 1]], [[0.5, 1.0, 2.0]]):
        with pytest.raises(FnlearnError, match=r"whole numbers in \[0, 7\)"):
            layer.apply(params, {}, jnp.asarray(bad))
    y, _ = jax.jit(lambda p, ids: layer.apply(p, {}, ids))(params, jnp.asarray([[0, 7, -1]]))
    assert np.isfinite(y[0, 0]).all() and np.isnan(y[0, 1:]).all()


def test_default_embedding_init_has_variance_one_over_features():
    _, params, _ = nn.embedding(4000, 64).init(KEY, (1,))
    table = np.asarray(params["embedding"], np.float64)
    assert abs(table.var() - 1 / 64) < 5 * (1 / 64) * math.sqrt(2 / table.size)


def test_positional_embedding_adds_the_first_rows():
    layer = nn.positional_embedding(9)
    assert jax.eval_shape(nn.build(layer, (T, D)).init, KEY)[0]["embedding"].shape == (9, D)
    rng = np.random.default_rng(9)
    params = {"embedding": jnp.asarray(rng.normal(size=(9, D)), jnp.float32)}
    x = jnp.asarray(rng.normal(size=(B, T, D)), jnp.float32)
    y, _ = layer.apply(params, {}, x)
    np.testing.assert_allclose(y, x + params["embedding"][:T], rtol=1e-6)
    with pytest.raises(FnlearnError, match=r"T <= max_len = 9, got shape \(10, 8\)"):
        nn.build(layer, (10, D))
    with pytest.raises(FnlearnError, match="sequences of length 10 are longer than max_len = 9"):
        layer.apply(params, {}, jnp.zeros((1, 10, D)))


def test_sinusoidal_positions_follow_the_formula():
    x = np.zeros((1, 6, 5), np.float32)
    y, _ = nn.sinusoidal_positions().apply({}, {}, jnp.asarray(x))
    expected = np.zeros((6, 5))
    for t in range(6):
        for i in range(5):
            angle = t / 10_000 ** (2 * (i // 2) / 5)
            expected[t, i] = math.sin(angle) if i % 2 == 0 else math.cos(angle)
    np.testing.assert_allclose(y[0], expected, rtol=1e-5, atol=1e-6)
