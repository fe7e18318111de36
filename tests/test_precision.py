"""Mixed precision (fnlearn.precision): bfloat16 inside apply, float32 everywhere it accumulates;
digits accuracy as float32's; less activation memory."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnlearn as fl
from fnlearn import train
from fnlearn.errors import FnlearnError

HEAD = fl.distributions.get("categorical")


def _recorder(seen: list):
    """A layer that notes the dtype flowing through it (at trace time) and passes x on."""

    def init(key, in_shape):
        return tuple(in_shape), {}, {}

    def apply(params, state, x, *, train=False, key=None):
        seen.append(x.dtype)
        return x, state

    return fl.nn.Layer("recorder", init, apply)


def _obj(dtype):
    return dataclasses.replace(train.objective(HEAD), compute_dtype=dtype)


def test_apply_runs_in_bfloat16_and_the_state_loss_and_grads_stay_float32():
    seen = []
    layer = fl.nn.serial(
        fl.nn.dense(8), _recorder(seen), fl.nn.batch_norm(), _recorder(seen), fl.nn.relu(), fl.nn.dense(3)
    )
    model = fl.nn.build(layer, 4)
    state = fl.TrainState.create(model, fl.optim.adam(1e-2), 0)
    x = np.random.default_rng(0).normal(size=(16, 4)).astype(np.float32)
    y = np.arange(16) % 3
    batch = (x, y, np.ones(16, np.float32))
    grad_fn = jax.jit(jax.grad(train._micro_loss, has_aux=True), static_argnums=(4,))
    grads, (loss, _, outputs, model_state) = grad_fn(
        state.params, state, state.model_state, batch, _obj("bfloat16"), None, 1.0
    )
    assert seen == [jnp.bfloat16, jnp.bfloat16]  # after dense, and after batch_norm (cast back)
    assert loss.dtype == outputs.dtype == jnp.float32
    assert {a.dtype for a in jax.tree.leaves(grads)} == {jnp.dtype(jnp.float32)}
    assert {a.dtype for a in jax.tree.leaves(model_state)} == {jnp.dtype(jnp.float32)}  # running stats
    new, metrics = jax.jit(train.train_step, static_argnums=(2,))(state, batch, _obj("bfloat16"))
    for tree in (new.params, new.opt_state, new.model_state):
        assert {a.dtype for a in jax.tree.leaves(tree) if jnp.issubdtype(a.dtype, jnp.floating)} == {
            jnp.dtype(jnp.float32)
        }
    assert metrics["loss"].dtype == jnp.float32


def test_norm_statistics_of_bfloat16_inputs_are_taken_in_float32():
    x = (1000.0 + np.random.default_rng(1).normal(size=(64, 8))).astype(np.float32)  # large mean, unit spread
    norm = fl.nn.build(fl.nn.layer_norm(), 8)
    params, state = norm.init(jax.random.key(0))
    xb = jnp.asarray(x, jnp.bfloat16)
    y, _ = norm.apply(params, state, xb)
    assert y.dtype == jnp.bfloat16
    reference = np.asarray(xb, np.float64)
    reference = (reference - reference.mean(-1, keepdims=True)) / np.sqrt(
        reference.var(-1, keepdims=True) + 1e-5
    )
    np.testing.assert_allclose(np.asarray(y, np.float64), reference, atol=0.02)


def test_bfloat16_keeps_fewer_activations_for_the_backward_pass():
    """A deep MLP, batch 4096: the compiled gradient's scratch memory (memory_analysis) and the
    residuals the backward pass keeps (the vjp's saved arrays) are both smaller in bfloat16."""
    model = fl.nn.mlp([256] + [512] * 6 + [10])
    state = jax.eval_shape(lambda: fl.TrainState.create(model, fl.optim.sgd(0.1), 0))
    n = 4096
    batch = (
        jax.ShapeDtypeStruct((n, 256), jnp.float32),
        jax.ShapeDtypeStruct((n,), jnp.int32),
        jax.ShapeDtypeStruct((n,), jnp.float32),
    )
    temp, saved = {}, {}
    for dtype in (None, "bfloat16"):
        obj = _obj(dtype)

        def loss(params, s, b, obj=obj):
            return train._micro_loss(params, s, s.model_state, b, obj, None, 1.0)[0]

        compiled = jax.jit(lambda s, b, f=loss: jax.grad(f)(s.params, s, b)).lower(state, batch).compile()
        temp[dtype] = compiled.memory_analysis().temp_size_in_bytes
        pullback = jax.eval_shape(
            lambda s, b, f=loss: jax.vjp(lambda p: f(p, s, b), s.params)[1], state, batch
        )
        saved[dtype] = sum(a.size * a.dtype.itemsize for a in jax.tree.leaves(pullback))
    assert temp["bfloat16"] < temp[None]
    assert saved["bfloat16"] < 0.6 * saved[None]


def test_digits_accuracy_in_bfloat16_is_within_half_a_percent_of_float32():
    splits, _ = fl.data.standardize(fl.data.split(fl.data.load("digits"), val=0.0, test=0.2))
    train_xy = (splits.train.x, splits.train.y)
    test_xy = (splits.test.x, splits.test.y)
    accuracy = {}
    for dtype in ("float32", "bfloat16"):
        state = fl.TrainState.create(fl.nn.mlp([64, 128, 10]), fl.optim.adam(2e-3), 0)
        state, _ = fl.fit(state, train_xy, loss=HEAD, epochs=8, batch_size=32, compute_dtype=dtype)
        accuracy[dtype] = fl.evaluate(state, test_xy, HEAD)["accuracy"]
    assert accuracy["float32"] > 0.95
    assert abs(accuracy["bfloat16"] - accuracy["float32"]) <= 0.005, accuracy


@pytest.mark.parametrize("bad", ["float16", "bf8", 16, jnp.int32])
def test_an_unknown_compute_dtype_is_one_line(bad):
    state = fl.TrainState.create(fl.nn.mlp([2, 2]), fl.optim.sgd(0.1), 0)
    with pytest.raises(FnlearnError, match="compute_dtype must be 'float32' or 'bfloat16'"):
        fl.fit(
            state,
            (np.zeros((4, 2)), np.zeros(4, np.int32)),
            loss=HEAD,
            steps=1,
            batch_size=2,
            compute_dtype=bad,
        )
