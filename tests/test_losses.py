"""Losses, penalties and metrics against optax, scikit-learn, finite differences and numpy loops."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.special
import sklearn.metrics as skm
from hypothesis import given, settings
from hypothesis import strategies as hs
from jax.test_util import check_grads

from fnlearn import distributions as D
from fnlearn import losses as L
from fnlearn import nn
from fnlearn.errors import FnlearnError


def rng(seed=0):
    return np.random.default_rng(seed)


# ----------------------------------------------------------------------------------------------
# nll: reductions and weights


def test_reductions_match_per_example_log_prob():
    head = D.gaussian(scale="learned")
    r = rng(0)
    o, y = jnp.asarray(r.normal(size=(8, 2)), jnp.float32), jnp.asarray(r.normal(size=8), jnp.float32)
    per_example = -head.log_prob(o, y)
    chex.assert_shape(L.nll(head, "none")(o, y), (8,))
    np.testing.assert_allclose(L.nll(head, "none")(o, y), per_example, rtol=1e-6)
    np.testing.assert_allclose(L.nll(head, "sum")(o, y), np.sum(per_example), rtol=1e-6)
    np.testing.assert_allclose(L.nll(head)(o, y), np.mean(per_example), rtol=1e-6)
    w = jnp.asarray(r.uniform(size=8), jnp.float32)
    np.testing.assert_allclose(L.nll(head)(o, y, w), np.sum(w * per_example) / np.sum(w), rtol=1e-5)
    np.testing.assert_allclose(L.nll(head, "sum")(o, y, w), np.sum(w * per_example), rtol=1e-5)
    np.testing.assert_allclose(L.nll(head, "none")(o, y, w), w * per_example, rtol=1e-6)


def test_zero_weight_padding_changes_nothing_including_gradients():
    head = D.categorical()
    r = rng(1)
    logits = jnp.asarray(r.normal(size=(6, 4)), jnp.float32)
    labels = jnp.asarray(r.integers(0, 4, 6))
    padded_logits = jnp.concatenate([logits, 1e3 * jnp.ones((2, 4))])  # junk in the padding rows
    padded_labels = jnp.concatenate([labels, jnp.zeros(2, labels.dtype)])
    w = jnp.asarray([1.0] * 6 + [0.0] * 2)
    loss = L.nll(head)
    np.testing.assert_allclose(loss(padded_logits, padded_labels, w), loss(logits, labels), rtol=1e-6)
    g = jax.grad(loss)(logits, labels)
    g_padded = jax.grad(loss)(padded_logits, padded_labels, w)
    np.testing.assert_allclose(g_padded[:6], g, rtol=1e-5, atol=1e-8)
    np.testing.assert_array_equal(g_padded[6:], 0.0)
    assert float(loss(logits, labels, jnp.zeros(6))) == 0.0  # an all-padding batch gives 0, not NaN


@settings(max_examples=10, deadline=None)
@given(
    counts=hs.lists(hs.integers(0, 3), min_size=2, max_size=6).filter(lambda c: sum(c) > 0),
    seed=hs.integers(0, 999),
)
def test_integer_weights_equal_repeated_rows(counts, seed):
    """mean_w(ℓ) with wᵢ ∈ ℕ is the plain mean over the data with row i repeated wᵢ times."""
    r = rng(seed)
    head = D.laplace(scale="learned")
    o = r.normal(size=(len(counts), 2)).astype(np.float32)
    y = r.normal(size=len(counts)).astype(np.float32)
    loss = jax.jit(L.nll(head))
    weighted = loss(o, y, np.asarray(counts, np.float32))
    repeat = np.repeat(np.arange(len(counts)), counts)
    np.testing.assert_allclose(weighted, loss(o[repeat], y[repeat]), rtol=1e-5)


def test_nll_gradients_match_finite_differences():
    with jax.enable_x64(True):
        r = rng(2)
        for head, width in [
            (D.gaussian(scale="learned"), 4),
            (D.student_t(df="learned"), 6),
            (D.von_mises(), 4),
            (D.gaussian_mixture(2), 10),
        ]:
            o = jnp.asarray(r.normal(size=(5, width)))
            y = jnp.asarray(r.normal(size=(5, 2)))
            loss = jax.jit(lambda o, head=head, y=y: L.nll(head)(o, y))
            check_grads(loss, (o,), order=1, modes=["rev"], atol=1e-5, rtol=1e-5)


def test_nll_rejects_bad_arguments():
    with pytest.raises(FnlearnError, match="Did you mean 'mean'"):
        L.nll(D.gaussian(), reduction="meen")
    with pytest.raises(FnlearnError, match="needs a distribution head"):
        L.nll("gaussian")
    with pytest.raises(FnlearnError, match=r"weights of shape \(3,\) do not match"):
        L.nll(D.gaussian())(jnp.zeros((4, 1)), jnp.zeros(4), jnp.ones(3))


# ----------------------------------------------------------------------------------------------
# Penalties


def mlp_params():
    params, _ = nn.mlp([3, 5, 2], norm="layer_norm").init(jax.random.PRNGKey(0))
    # Give every leaf (biases and norm parameters included) a non-trivial value.
    leaves, treedef = jax.tree_util.tree_flatten(params)
    r = rng(3)
    return jax.tree_util.tree_unflatten(
        treedef, [jnp.asarray(r.normal(size=x.shape), jnp.float32) for x in leaves]
    )


def test_weights_only_masks_biases_and_norm_parameters():
    params = mlp_params()
    flat, _ = jax.tree_util.tree_flatten_with_path(L.weights_only(params))
    kept = {jax.tree_util.keystr(path) for path, keep in flat if keep}
    dropped = {jax.tree_util.keystr(path) for path, keep in flat if not keep}
    assert kept and all(k.endswith("['w']") for k in kept)
    assert dropped and all(k.endswith(("['b']", "['scale']", "['shift']")) for k in dropped)


def test_penalty_values_follow_the_stated_conventions():
    params = mlp_params()
    leaves = [np.asarray(x, np.float64) for x in jax.tree_util.tree_leaves(params)]
    np.testing.assert_allclose(L.l2(0.3)(params), 0.3 * 0.5 * sum(np.sum(x**2) for x in leaves), rtol=1e-5)
    np.testing.assert_allclose(L.l1(0.3)(params), 0.3 * sum(np.sum(np.abs(x)) for x in leaves), rtol=1e-5)
    np.testing.assert_allclose(
        L.elastic_net(0.2, 0.7)(params), L.l1(0.2)(params) + L.l2(0.7)(params), rtol=1e-6
    )
    mask = L.weights_only(params)
    masked = [
        np.asarray(x) for x, m in zip(jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(mask)) if m
    ]
    np.testing.assert_allclose(L.l2(1.0, mask)(params), 0.5 * sum(np.sum(x**2) for x in masked), rtol=1e-5)
    np.testing.assert_allclose(L.l2(1.0, L.weights_only)(params), L.l2(1.0, mask)(params), rtol=1e-6)


@pytest.mark.parametrize("mask", [None, L.weights_only])
def test_l2_gradient_is_optax_weight_decay(mask):
    """∇(λ·½Σw²) = λ·w: exactly what optax.add_decayed_weights adds, with the same mask."""
    params = mlp_params()
    grad = jax.grad(L.l2(0.1, mask))(params)
    decay = optax.add_decayed_weights(0.1, mask=mask)
    want, _ = decay.update(jax.tree_util.tree_map(jnp.zeros_like, params), decay.init(params), params)
    chex.assert_trees_all_close(grad, want, rtol=1e-6)


def test_penalties_work_under_jit_and_reject_bad_masks():
    params = mlp_params()
    np.testing.assert_allclose(
        jax.jit(L.l1(0.5, L.weights_only))(params), L.l1(0.5, L.weights_only)(params), rtol=1e-6
    )
    with pytest.raises(FnlearnError, match="structure of the parameters"):
        L.l2(1.0, mask={"w": True})(params)
    with pytest.raises(FnlearnError, match="strength must be a finite number >= 0"):
        L.l1(-1.0)


# ----------------------------------------------------------------------------------------------
# Metrics against scikit-learn


def classification_data(seed=4, n=200, k=5):
    r = rng(seed)
    logits = r.normal(size=(n, k)).astype(np.float32) * 2
    labels = r.integers(0, k, n)
    weights = r.uniform(size=n).astype(np.float32)
    return logits, labels, weights


def test_accuracy_matches_sklearn():
    logits, labels, w = classification_data()
    pred = logits.argmax(-1)
    np.testing.assert_allclose(L.accuracy(logits, labels), skm.accuracy_score(labels, pred), rtol=1e-6)
    np.testing.assert_allclose(
        L.accuracy(logits, labels, w), skm.accuracy_score(labels, pred, sample_weight=w), rtol=1e-5
    )
    np.testing.assert_allclose(
        L.accuracy(logits, np.eye(5)[labels]), skm.accuracy_score(labels, pred), rtol=1e-6
    )
    binary = logits[:, :1]
    y01 = (labels > 2).astype(int)
    np.testing.assert_allclose(L.accuracy(binary, y01), skm.accuracy_score(y01, binary[:, 0] > 0), rtol=1e-6)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_top_k_accuracy_matches_sklearn(k):
    logits, labels, w = classification_data(seed=5)
    want = skm.top_k_accuracy_score(labels, logits, k=k, labels=np.arange(5), sample_weight=w)
    np.testing.assert_allclose(L.top_k_accuracy(logits, labels, k=k, weights=w), want, rtol=1e-5)
    if k == 1:
        np.testing.assert_allclose(
            L.top_k_accuracy(logits, labels, k=1), L.accuracy(logits, labels), rtol=1e-6
        )


def test_mse_mae_match_sklearn():
    r = rng(6)
    pred, target = r.normal(size=(50, 3)).astype(np.float32), r.normal(size=(50, 3)).astype(np.float32)
    w = r.uniform(size=50).astype(np.float32)
    np.testing.assert_allclose(L.mse(pred, target), skm.mean_squared_error(target, pred), rtol=1e-5)
    np.testing.assert_allclose(L.mae(pred, target), skm.mean_absolute_error(target, pred), rtol=1e-5)
    np.testing.assert_allclose(
        L.mse(pred, target, w), skm.mean_squared_error(target, pred, sample_weight=w), rtol=1e-5
    )
    np.testing.assert_allclose(
        L.mae(pred, target, w), skm.mean_absolute_error(target, pred, sample_weight=w), rtol=1e-5
    )
    with pytest.raises(FnlearnError, match="differ"):
        L.mse(pred, target[:, :2])


def test_head_metrics_averaged_equal_the_metric_functions():
    r = rng(7)
    logits, labels, w = classification_data(seed=7)
    per_example = D.categorical().metrics(logits, labels)["accuracy"]
    chex.assert_shape(per_example, (200,))
    np.testing.assert_allclose(L.weighted_mean(per_example, w), L.accuracy(logits, labels, w), rtol=1e-6)
    o, y = r.normal(size=(30, 2)).astype(np.float32), r.normal(size=(30, 2)).astype(np.float32)
    m = D.gaussian().metrics(o, y)
    np.testing.assert_allclose(jnp.mean(m["mse"]), skm.mean_squared_error(y, o), rtol=1e-5)
    np.testing.assert_allclose(jnp.mean(m["mae"]), skm.mean_absolute_error(y, o), rtol=1e-5)


def ece_reference(probs, labels, weights, bins):
    """Guo et al. (2017) ECE written as a plain loop over bins (right-closed bins, b/B edges)."""
    conf, pred = probs.max(-1), probs.argmax(-1)
    correct = (pred == labels).astype(float)
    total, edges = 0.0, np.linspace(0, 1, bins + 1)
    for lo, hi in zip(edges[:-1], edges[1:]):
        in_bin = (conf > lo) & (conf <= hi)
        if in_bin.any():
            wb = weights[in_bin]
            total += wb.sum() * abs(
                np.average(correct[in_bin], weights=wb) - np.average(conf[in_bin], weights=wb)
            )
    return total / weights.sum()


def test_expected_calibration_error_matches_loop_reference():
    logits, labels, w = classification_data(seed=8, n=500)
    probs = scipy.special.softmax(logits.astype(np.float64), axis=-1)
    for bins in (1, 10, 15):
        np.testing.assert_allclose(
            L.expected_calibration_error(logits, labels, bins),
            ece_reference(probs, labels, np.ones(500), bins),
            rtol=1e-4,
            atol=1e-6,
        )
    np.testing.assert_allclose(
        L.expected_calibration_error(logits, labels, 10, w),
        ece_reference(probs, labels, w.astype(float), 10),
        rtol=1e-4,
        atol=1e-6,
    )


def test_expected_calibration_error_extremes():
    # Confidently wrong: ECE = mean confidence. Hand-computable: one bin holds everything.
    logits = np.array([[5.0, 0.0], [0.0, 5.0]], np.float32)
    conf = float(jax.nn.softmax(jnp.asarray(logits[0]))[0])
    np.testing.assert_allclose(L.expected_calibration_error(logits, [1, 0]), conf, rtol=1e-6)
    np.testing.assert_allclose(L.expected_calibration_error(logits, [0, 1]), 1 - conf, rtol=1e-5)
    # Labels drawn from the predicted probabilities: calibrated, ECE ≈ 0 up to sampling error.
    r = rng(9)
    z = r.normal(size=(20_000, 1)).astype(np.float32) * 2
    y = (r.uniform(size=20_000) < jax.nn.sigmoid(z[:, 0])).astype(int)
    assert float(L.expected_calibration_error(z, y, 10)) < 0.02
    assert float(L.expected_calibration_error(z, 1 - y, 10)) > 0.2
