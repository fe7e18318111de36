"""Sequence targets: heads over token axes, per-token NLL with weights and masks, sequence metrics,
and fit/evaluate on token ids [n, T] with next-token targets [n, T]."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special, stats

import fnlearn as fl
from fnlearn import data, losses, rules
from fnlearn.distributions import get
from fnlearn.errors import FnlearnError
from fnlearn.inputs import check_arrays
from fnlearn.train import objective

N, T, K = 3, 4, 5


def _logits(seed=0, shape=(N, T, K)):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def _ids(seed=1, shape=(N, T), k=K):
    return np.random.default_rng(seed).integers(0, k, size=shape)


def test_categorical_log_prob_is_per_token_and_equals_scipy():
    z, y = _logits(), _ids()
    log_prob = np.asarray(get("categorical").log_prob(z, y))
    assert log_prob.shape == (N, T)
    z64 = z.astype(np.float64)
    probs = special.softmax(z64, axis=-1)
    expected = np.array(
        [[stats.multinomial.logpmf(np.eye(K)[y[i, t]], 1, probs[i, t]) for t in range(T)] for i in range(N)]
    )
    np.testing.assert_allclose(log_prob, expected, rtol=1e-5, atol=1e-5)
    one_hot = np.eye(K, dtype=np.float32)[y]  # one-hot targets [n, T, K] give the same
    np.testing.assert_allclose(get("categorical").log_prob(z, one_hot), log_prob, rtol=1e-6)


@pytest.mark.parametrize(
    ("name", "reference"),
    [
        ("gaussian", lambda out, y: stats.norm.logpdf(y, out[..., 0], 1.0)),
        ("bernoulli", lambda out, y: stats.bernoulli.logpmf(y, special.expit(out[..., 0]))),
        ("poisson", lambda out, y: stats.poisson.logpmf(y, np.exp(out[..., 0]))),
    ],
)
def test_elementwise_heads_take_one_target_per_token(name, reference):
    head = get(name)
    out = _logits(2, (N, T, 1))
    y = _ids(3, (N, T), 2).astype(np.float32)  # 0/1: valid for all three
    np.testing.assert_allclose(
        head.log_prob(out, y), reference(out.astype(np.float64), y), rtol=1e-5, atol=1e-5
    )


def test_the_gaussian_mixture_takes_one_target_per_token():
    head = get("gaussian_mixture", components=2)
    out = _logits(4, (N, T, head.num_outputs(1)))
    y = _logits(5, (N, T))
    w = special.softmax(out[..., :2].astype(np.float64), axis=-1)
    sd = np.sqrt(np.logaddexp(0, out[..., 4:].astype(np.float64)) + 1e-6)
    expected = np.log(np.sum(w * stats.norm.pdf(y[..., None], out[..., 2:4], sd), axis=-1))
    np.testing.assert_allclose(get("gaussian_mixture", components=2).log_prob(out, y), expected, rtol=1e-4)


def test_categorical_host_check_reads_token_ids_and_one_hot_rows():
    head = get("categorical")
    head.check_targets(_ids(), K)  # [n, T] ids
    head.check_targets(np.eye(K)[_ids()], K)  # [n, T, K] one-hot
    head.check_targets(np.eye(K, dtype=np.int64)[[0, 2, 4]], K)  # [n, K] one-hot rows, as before
    with pytest.raises(FnlearnError, match=r"class ids in \[0, 5\)"):
        head.check_targets(_ids(k=7), K)
    with pytest.raises(FnlearnError, match="expects 3 raw outputs"):  # one-hot of the wrong width, as before
        head.check_targets(np.eye(3, dtype=np.int64)[[0, 1, 2]], K)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    per_token=st.booleans(),
)
def test_nll_is_the_weighted_mean_over_tokens(seed, per_token):
    rng = np.random.default_rng(seed)
    z, y = _logits(seed), _ids(seed + 1)
    shape = (N, T) if per_token else (N,)
    w = rng.integers(0, 3, size=shape).astype(np.float32)  # 0 = masked out
    token_nll = -special.log_softmax(z.astype(np.float64), axis=-1)[np.arange(N)[:, None], np.arange(T), y]
    full = np.broadcast_to(w if per_token else w[:, None], (N, T))
    expected = (full * token_nll).sum() / full.sum() if full.sum() else 0.0
    head = get("categorical")
    assert float(losses.nll(head)(z, y, w)) == pytest.approx(expected, rel=1e-5, abs=1e-6)
    assert float(losses.nll(head, "sum")(z, y, w)) == pytest.approx(
        (full * token_nll).sum(), rel=1e-5, abs=1e-5
    )
    np.testing.assert_allclose(losses.nll(head, "none")(z, y, w), full * token_nll, rtol=1e-5, atol=1e-6)
    if full.sum():
        assert float(losses.perplexity(head)(z, y, w)) == pytest.approx(math.exp(expected), rel=1e-5)


def test_weights_of_another_shape_are_one_line():
    with pytest.raises(
        FnlearnError, match=r"weights of shape \(4,\) do not match .* or one per token \(shape \(3, 4\)\)"
    ):
        losses.nll(get("categorical"))(_logits(), _ids(), jnp.ones(4))


def test_token_and_sequence_accuracy():
    z = _logits()
    y = np.argmax(z, axis=-1)
    y[0, 1] = (y[0, 1] + 1) % K  # example 0 has one wrong token
    w = np.array([1.0, 1.0, 0.0], np.float32)
    assert float(losses.accuracy(z, y)) == pytest.approx(1 - 1 / (N * T))
    assert float(losses.accuracy(z, y, w)) == pytest.approx(1 - 1 / (2 * T))
    assert float(losses.sequence_accuracy(z, y)) == pytest.approx(2 / 3)
    assert float(losses.sequence_accuracy(z, y, w)) == pytest.approx(1 / 2)
    per = losses.per_example(get("categorical").metrics(z, y))
    np.testing.assert_allclose(per["accuracy"], [1 - 1 / T, 1, 1])
    np.testing.assert_allclose(per["sequence_accuracy"], [0, 1, 1])
    flat = losses.per_example(get("categorical").metrics(z[:, 0], y[:, 0]))  # one label per example
    assert set(flat) == {"accuracy"}


def test_perplexity_is_added_where_sequence_metrics_are():
    record = {"train_loss": 1.0, "train_sequence_accuracy": 0.5, "val_loss": 2.0, "val_accuracy": 0.1}
    out = rules.with_perplexity(record)
    assert out["train_perplexity"] == pytest.approx(math.e) and "val_perplexity" not in out
    assert rules.with_perplexity({"loss": 1e4, "sequence_accuracy": 0.0})["perplexity"] == math.inf
    assert not rules.higher_is_better("val_perplexity") and rules.higher_is_better("val_sequence_accuracy")


def _sequence_model(vocab=K, length=T):
    """A cheap sequence model: token embedding → dense logits, (T,) ids → (T, vocab)."""
    layer = fl.nn.serial(fl.nn.embedding(vocab, 6), fl.nn.dense(vocab))
    return fl.nn.build(layer, (length,))


def test_fit_and_evaluate_take_token_ids_and_next_token_targets():
    x = _ids(7, (10, T))  # integer token ids
    y = (x + 1) % K  # a learnable per-token rule
    state = fl.TrainState.create(
        _sequence_model(), fl.optim.get("adam", learning_rate=0.05), jax.random.key(0)
    )
    head = get("categorical")
    state, history = fl.fit(state, (x, y), loss=head, epochs=3, batch_size=4, eval=(x, y), eval_batch_size=3)
    last = history[-1]
    assert {"train_sequence_accuracy", "train_perplexity", "val_sequence_accuracy", "val_perplexity"} <= set(
        last
    )
    measured = fl.evaluate(state, (x, y), head, batch_size=3)  # 10 = 3 + 3 + 3 + 1 (padded)
    logits, _ = state.model.apply(state.params, state.model_state, jnp.asarray(x, jnp.float32))
    logits = np.asarray(logits, np.float64)
    token_nll = -special.log_softmax(logits, axis=-1)[np.arange(10)[:, None], np.arange(T), y]
    right = logits.argmax(-1) == y
    assert measured["loss"] == pytest.approx(token_nll.mean(), rel=1e-4)
    assert measured["perplexity"] == pytest.approx(math.exp(token_nll.mean()), rel=1e-4)
    assert measured["accuracy"] == pytest.approx(right.mean()) and measured[
        "sequence_accuracy"
    ] == pytest.approx(right.all(1).mean())
    assert history[-1]["train_loss"] < history[0]["train_loss"] and measured["loss"] > 0.01


def test_targets_without_the_models_positions_are_one_line():
    state = fl.TrainState.create(_sequence_model(), fl.optim.get("sgd", learning_rate=0.1), jax.random.key(0))
    obj = objective(get("categorical"))
    with pytest.raises(
        FnlearnError,
        match=r"^train: y has targets of shape \(3,\) per example, but the model outputs \(4, 5\)",
    ):
        check_arrays(state, _ids(0, (6, T)), _ids(0, (6, 3)), obj, name="train")
    mlp = fl.TrainState.create(fl.nn.mlp([T, 5]), fl.optim.get("sgd", learning_rate=0.1), jax.random.key(0))
    with pytest.raises(FnlearnError, match="x has dtype int64, expected a floating dtype"):
        check_arrays(
            mlp, _ids(0, (6, T)), _ids(0, (6,)), obj, name="train"
        )  # token ids only for sequence models


def test_datasets_hold_sequence_targets():
    x = _ids(0, (6, T)).astype(np.float32)
    ds = data.from_arrays(
        x, np.roll(x, -1, axis=1), task="classification", num_classes=K, vocab="abcde", name="seq"
    )
    assert ds.y.shape == (6, T) and ds.vocab == tuple("abcde")
    parts = data.split(
        ds, val=0.5, test=0.0, seed=0
    )  # not stratified: one label per example is needed for that
    assert len(parts.train) + len(parts.val) == 6
    with pytest.raises(FnlearnError, match="stratify=True needs one class label per example"):
        data.split(ds, val=0.5, test=0.0, stratify=True)
    with pytest.raises(FnlearnError, match=r"class labels y have shape \(6, 3\), expected \[n\]"):
        data.from_arrays(x, np.eye(3, dtype=int)[[0, 1, 2, 0, 1, 2]], task="classification")
    with pytest.raises(FnlearnError, match="vocab must hold one string per token id"):
        data.from_arrays(x, x, task="classification", num_classes=K, vocab="abc")
