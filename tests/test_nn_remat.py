"""fl.nn.remat and the builders' remat=True: the same values and gradients, fewer saved activations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnlearn as fl
from fnlearn.errors import FnlearnError

X = np.random.default_rng(0).normal(size=(6, 5)).astype(np.float32)


def _grads(model, x, key=None):
    params, state = jax.jit(model.init)(jax.random.key(0))  # one program, not an eager op per layer

    def loss(p):
        y, _ = model.apply(p, state, x, train=True, key=key)
        return jnp.mean(jnp.square(y))

    return jax.jit(jax.value_and_grad(loss))(params)


@pytest.mark.parametrize(
    "kwargs", [{}, {"norm": "batch_norm", "residual": True}, {"dropout": 0.3, "norm": "layer_norm"}]
)
def test_mlp_with_remat_has_the_same_values_and_gradients(kwargs):
    plain = fl.nn.mlp([5, 7, 7, 2], **kwargs)
    remat = fl.nn.mlp([5, 7, 7, 2], remat=True, **kwargs)
    key = jax.random.key(3)
    (v0, g0), (v1, g1) = _grads(plain, X, key), _grads(remat, X, key)
    np.testing.assert_allclose(v1, v0, rtol=1e-6)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), g1, g0)


def _outputs(model, x):
    params, state = jax.jit(model.init)(jax.random.key(0))
    return jax.jit(lambda p, x: model.apply(p, state, x)[0])(params, x)


def test_cnn_and_gpt_take_remat_too():
    """Same outputs from the same parameters (the gradients of the wrapper are checked on the mlp)."""
    images = np.random.default_rng(1).normal(size=(2, 6, 6, 1)).astype(np.float32)
    kwargs = {"channels": (3,), "dense": (4,), "num_outputs": 2}
    plain, remat = fl.nn.cnn((6, 6, 1), **kwargs), fl.nn.cnn((6, 6, 1), remat=True, **kwargs)
    np.testing.assert_array_equal(_outputs(remat, images), _outputs(plain, images))
    assert "remat(conv_block_0)" in fl.nn.summary(remat) and "remat(block_0)" in fl.nn.summary(remat)
    ids = np.array([[1, 2, 3, 0]], np.int32)
    plain = fl.nn.gpt(5, 4, width=8, depth=1, num_heads=2)
    remat = fl.nn.gpt(5, 4, width=8, depth=1, num_heads=2, remat=True)
    np.testing.assert_array_equal(_outputs(remat, ids), _outputs(plain, ids))
    assert "remat(block_0)" in fl.nn.summary(remat)


def test_remat_keeps_only_each_blocks_input_for_the_backward_pass():
    """The arrays a deep MLP's backward pass keeps (the vjp's residuals, batch 2048): with every
    block rematerialised only the blocks' inputs remain, about half."""
    x = jax.ShapeDtypeStruct((2048, 256), jnp.float32)
    saved = {}
    for remat in (False, True):
        model = fl.nn.mlp([256] + [512] * 8 + [10], remat=remat)
        params, state = jax.eval_shape(model.init, jax.random.key(0))

        def loss(p, x, model=model, state=state):
            return jnp.mean(model.apply(p, state, x, train=True)[0] ** 2)

        pullback = jax.eval_shape(lambda p, x, f=loss: jax.vjp(lambda q: f(q, x), p)[1], params, x)
        saved[remat] = sum(a.size * a.dtype.itemsize for a in jax.tree.leaves(pullback))
    assert saved[True] < 0.6 * saved[False]


def test_remat_of_something_else_is_one_line():
    with pytest.raises(FnlearnError, match="remat: layer must be a Layer"):
        fl.nn.remat("dense")
    with pytest.raises(FnlearnError, match="remat"):
        fl.nn.mlp([2, 3, 1], remat="yes")
