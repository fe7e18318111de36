"""fnlearn.train against a hand-written jax + optax step."""

import dataclasses

import chex
import jax
import numpy as np
import optax
import pytest

import fnlearn as fl
from fnlearn.errors import FnlearnError

KEY = jax.random.key(0)


def _problem(n=40, d=6, k=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)).astype(np.float32), rng.integers(0, k, size=n).astype(np.int32)


def test_train_step_equals_jax_plus_optax():
    x, y = _problem()
    model = fl.nn.mlp([6, 16, 3])
    head = fl.distributions.get("categorical")
    state = fl.TrainState.create(model, fl.optim.adam(1e-2), KEY)
    params, model_state, ref_opt = state.params, state.model_state, optax.adam(1e-2)
    ref_state = ref_opt.init(params)

    @jax.jit
    def reference(params, opt_state, xb, yb):
        def loss(p):
            logits, _ = model.apply(p, model_state, xb, train=True)
            return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

        value, grads = jax.value_and_grad(loss)(params)
        updates, opt_state = ref_opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, value, optax.tree.norm(grads)

    step = fl.train.make_train_step(head)
    for i in range(5):
        xb, yb = x[i * 8 : (i + 1) * 8], y[i * 8 : (i + 1) * 8]
        params, ref_state, ref_loss, ref_norm = reference(params, ref_state, xb, yb)
        state, metrics = step(state, (xb, yb))
        chex.assert_trees_all_close(state.params, params, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(metrics["loss"], ref_loss, rtol=1e-5)
        np.testing.assert_allclose(metrics["grad_norm"], ref_norm, rtol=1e-5)
    assert int(state.step) == 5
    assert set(metrics) == {"loss", "grad_norm", "update_norm", "learning_rate", "accuracy"}
    np.testing.assert_allclose(metrics["learning_rate"], 1e-2)


def test_compiles_once_for_a_fixed_batch_shape_and_donates_the_state():
    x, y = _problem()
    traces = []

    def loss(outputs, y, weights=None):
        traces.append(1)  # runs only while tracing
        return fl.losses.nll(fl.distributions.get("categorical"))(outputs, y, weights)

    state = fl.TrainState.create(fl.nn.mlp([6, 8, 3]), fl.optim.sgd(0.1), KEY)
    step = fl.train.make_train_step(loss)
    for i in range(4):
        old = state
        state, _ = step(state, (x[i * 8 : (i + 1) * 8], y[i * 8 : (i + 1) * 8]))
    assert len(traces) == 1
    assert old.params[0][0]["w"].is_deleted()  # the old state's buffers were donated


def test_zero_weight_rows_change_nothing():
    x, y = _problem()
    state = fl.TrainState.create(fl.nn.mlp([6, 8, 3]), fl.optim.sgd(0.1), KEY)
    step = fl.train.make_train_step(fl.distributions.get("categorical"), donate=False)
    real, _ = step(state, (x[:5], y[:5], np.ones(5, np.float32)))
    padded, _ = step(state, (x[:8], y[:8], np.array([1, 1, 1, 1, 1, 0, 0, 0], np.float32)))
    chex.assert_trees_all_close(real.params, padded.params, rtol=1e-6, atol=1e-7)


def test_penalty_is_added_and_reported():
    x, y = _problem()
    head = fl.distributions.get("categorical")
    state = fl.TrainState.create(fl.nn.mlp([6, 8, 3]), fl.optim.sgd(0.1), KEY)
    penalty = fl.losses.l2(0.5)
    _, metrics = fl.train.make_train_step(head, penalty=penalty, donate=False)(state, (x, y))
    np.testing.assert_allclose(metrics["penalty"], penalty(state.params), rtol=1e-6)
    plain, _ = fl.train.make_train_step(head, donate=False)(state, (x, y))
    with_penalty, _ = fl.train.make_train_step(head, penalty=penalty, donate=False)(state, (x, y))
    grads = jax.grad(penalty)(state.params)  # sgd: the penalty adds -lr·∇penalty to the update
    expected = jax.tree.map(lambda p, g: p - 0.1 * g, plain.params, grads)
    chex.assert_trees_all_close(with_penalty.params, expected, rtol=1e-5, atol=1e-6)


def test_step_t_draws_its_dropout_mask_from_fold_in_key_t():
    """Each step's key is fold_in(state.key, step): deterministic, different every step, and the
    run's key itself stays put (the step's update equals a hand-written one with that key)."""
    x, y = _problem()
    model = fl.nn.mlp([6, 32, 3], dropout=0.5)
    step = fl.train.make_train_step(fl.distributions.get("categorical"), donate=False)
    a = fl.TrainState.create(model, fl.optim.sgd(0.1), KEY)
    b = fl.TrainState.create(model, fl.optim.sgd(0.1), KEY)
    a1, _ = step(a, (x, y))
    b1, _ = step(b, (x, y))
    chex.assert_trees_all_equal(a1.params, b1.params)
    chex.assert_trees_all_equal(jax.random.key_data(a1.key), jax.random.key_data(a.key))
    a2, _ = step(a1, (x, y))

    def sgd_step(params, t):
        def loss(p):
            logits, _ = model.apply(p, a.model_state, x, train=True, key=jax.random.fold_in(a.key, t))
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

        return jax.tree.map(lambda p, g: p - 0.1 * g, params, jax.grad(loss)(params))

    chex.assert_trees_all_close(a1.params, sgd_step(a.params, 0), rtol=1e-5, atol=1e-6)
    chex.assert_trees_all_close(a2.params, sgd_step(a1.params, 1), rtol=1e-5, atol=1e-6)
    # the second step draws a different mask than the first: same batch, different update
    d1 = jax.tree.map(lambda p, q: p - q, a1.params, a.params)
    d2 = jax.tree.map(lambda p, q: p - q, a2.params, a1.params)
    assert not np.allclose(d1[0][0]["w"], d2[0][0]["w"])


def test_order_salt_never_coincides_with_a_step_key():
    assert fl.loop.ORDER_SALT >= 2**31  # steps are int32, so fold_in(key, step) uses data < 2**31


def test_eval_sums_average_exactly_over_any_dataset_size():
    x, y = _problem(n=37)
    model = fl.nn.mlp([6, 8, 3], norm="batch_norm", dropout=0.3)
    head = fl.distributions.get("categorical")
    state = fl.TrainState.create(model, fl.optim.sgd(0.1), KEY)
    result = fl.evaluate(state, (x, y), loss=head, batch_size=8)  # 5 batches, the last padded
    logits, _ = model.apply(state.params, state.model_state, x)  # evaluation mode
    np.testing.assert_allclose(
        result["loss"], optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), rtol=1e-5
    )
    np.testing.assert_allclose(result["accuracy"], np.mean(np.argmax(logits, -1) == y), rtol=1e-6)
    sums = fl.train.make_eval_step(head)(state, (x, y))
    np.testing.assert_allclose(sums["weight"], 37)


def test_bad_loss_and_batch_are_reported():
    with pytest.raises(FnlearnError, match="distribution head"):
        fl.train.make_train_step("categorical")
    state = fl.TrainState.create(fl.nn.mlp([6, 8, 3]), fl.optim.sgd(0.1), KEY)
    with pytest.raises(FnlearnError, match=r"\(x, y\) or \(x, y, weights\)"):
        fl.train.make_train_step(fl.distributions.get("categorical"))(state, (np.ones((2, 6)),))
    with pytest.raises(FnlearnError, match="PRNG key"):
        fl.TrainState.create(fl.nn.mlp([6, 8, 3]), fl.optim.sgd(0.1), "seed")


def _value_recorder():
    """A transform that keeps the ``value`` it was given (and leaves the updates alone)."""

    def update_fn(updates, state, params=None, *, value, **extra_args):
        return updates, value

    return fl.optim.GradientTransformation(lambda params: np.float32(0.0), update_fn)


def test_the_step_gives_the_optimizer_its_loss_as_value():
    """optax's extra argument ``value`` is the loss the step minimises (data + penalty), so
    reduce_on_plateau works inside fit. A bare optax transform (no extra-args support) still works
    as the step's optimizer."""
    x, y = _problem()
    head = fl.distributions.get("categorical")
    state = fl.TrainState.create(
        fl.nn.mlp([6, 8, 3]), fl.optim.chain(fl.optim.sgd(0.1), _value_recorder()), KEY
    )
    state, metrics = fl.train.make_train_step(head, penalty=fl.losses.l2(1e-2))(state, (x[:8], y[:8]))
    assert float(metrics["penalty"]) > 0
    np.testing.assert_allclose(state.opt_state[1], metrics["loss"] + metrics["penalty"], rtol=1e-6)
    bare = optax.scale_by_adam()
    bare_state = dataclasses.replace(state, opt_state=bare.init(state.params), tx=bare)
    traced = jax.eval_shape(
        lambda s, b: fl.train.train_step(s, b, fl.train.objective(head)), bare_state, (x[:8], y[:8])
    )
    assert traced[1]["loss"].shape == ()


# ------------------------------------------------------------------------------------------------
# gradient accumulation: k micro-batches per update


def _accumulating(k: int, penalty=None):
    return dataclasses.replace(fl.train.objective(fl.distributions.get("categorical"), penalty), accumulate=k)


def test_accumulated_micro_batches_equal_one_full_batch_sgd_step():
    """Weights: micro-batch 2 (rows 8-11) is all padding, rows 5 and 14 too, so the micro-batches'
    shares W_j / W are unequal; the update still equals the full batch's, to rounding."""
    x, y = _problem()
    w = np.ones(16, np.float32)
    w[[5, 8, 9, 10, 11, 14]] = 0.0
    batch = (x[:16], y[:16], w)
    state = fl.TrainState.create(fl.nn.mlp([6, 8, 3], dropout=0.0), fl.optim.sgd(0.5), KEY)
    penalty = fl.losses.l2(1e-2)
    step = jax.jit(fl.train.train_step, static_argnums=(2,))
    full, m_full = step(state, batch, _accumulating(1, penalty))
    acc, m_acc = step(state, batch, _accumulating(4, penalty))
    chex.assert_trees_all_close(acc.params, full.params, rtol=1e-6, atol=1e-7)
    for name in ("loss", "accuracy", "penalty"):
        np.testing.assert_allclose(m_acc[name], m_full[name], rtol=1e-6)
    assert int(acc.step) == int(full.step) == 1


def test_fit_with_accumulation_updates_once_per_k_batches_and_follows_the_full_batch_run():
    x, y = _problem(n=24)
    head = fl.distributions.get("categorical")

    def run(batch_size, accumulate):
        state = fl.TrainState.create(fl.nn.mlp([6, 8, 3]), fl.optim.sgd(0.3), KEY)
        return fl.fit(state, (x, y), loss=head, epochs=2, batch_size=batch_size, accumulate=accumulate)

    acc, history = run(4, 3)  # an update sees 3 x 4 = 12 examples: 2 updates per epoch
    full, _ = run(12, 1)
    assert int(acc.step) == 4 and history[-1]["step"] == 4
    chex.assert_trees_all_close(acc.params, full.params, rtol=1e-5, atol=1e-6)


def test_a_batch_that_does_not_split_into_k_micro_batches_is_one_line():
    x, y = _problem()
    state = fl.TrainState.create(fl.nn.mlp([6, 8, 3]), fl.optim.sgd(0.1), KEY)
    with pytest.raises(FnlearnError, match="accumulate=3 splits every batch into 3"):
        fl.fit(state, [(x[:8], y[:8])], loss=fl.distributions.get("categorical"), epochs=1, accumulate=3)
    with pytest.raises(FnlearnError, match="accumulate"):
        fl.fit(state, (x, y), loss=fl.distributions.get("categorical"), epochs=1, accumulate=0)
