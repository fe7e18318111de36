"""jax.grad of every fnlearn.nn layer beyond the MLP's against central differences, in float64.

For a random linear read-out L(θ, x) = Σ r ⊙ layer(θ, x), the gradient's projection on a random
direction u of (θ, x) together must equal (L(θ + εu) − L(θ − εu)) / 2ε. Both are computed in one
jitted program per layer, instead of one compilation per operation and shape.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from fnlearn import nn

KEY = jax.random.key(0)

# name: (layer factory, per-example input shape, apply in training mode)
LAYERS = {
    "conv_1d_strided": (lambda: nn.conv(3, 3, strides=2), (7, 2), False),
    "conv_2d_dilated_padded": (
        lambda: nn.conv(4, (2, 3), dilation=(2, 1), padding=((1, 0), (2, 1))),
        (5, 4, 2),
        False,
    ),
    "conv_2d_grouped": (lambda: nn.conv(4, 3, groups=2, padding="VALID"), (4, 4, 4), False),
    "max_pool": (lambda: nn.max_pool(2, strides=1, padding="SAME"), (4, 3, 2), False),
    "avg_pool": (lambda: nn.avg_pool((2, 3), padding="SAME"), (4, 5, 2), False),
    "global_avg_pool": (nn.global_avg_pool, (3, 4, 2), False),
    "flatten": (nn.flatten, (3, 2, 2), False),
    "reshape": (lambda: nn.reshape((2, -1)), (3, 4), False),
    "batch_norm_images": (nn.batch_norm, (3, 3, 2), True),
    "rms_norm": (nn.rms_norm, (4, 6), False),
    "group_norm": (lambda: nn.group_norm(2), (3, 3, 4), False),
    "positional_embedding": (lambda: nn.positional_embedding(6), (4, 6), False),
    "sinusoidal_positions": (nn.sinusoidal_positions, (4, 6), False),
    "attention": (lambda: nn.multi_head_attention(2), (4, 6), False),
    "causal_attention": (lambda: nn.multi_head_attention(3, causal=True), (4, 6), False),
    "transformer_block": (lambda: nn.transformer_block(2, mlp_ratio=2), (3, 4), False),
}


def _check_directional_derivatives(loss, point, rng, n=3, eps=1e-6):
    flat, unravel = ravel_pytree(point)
    directions = jnp.asarray(rng.normal(size=(n, flat.size)))

    @jax.jit  # the gradient and all 2n perturbed losses in one program: one compilation per layer
    def both(point, directions):
        projected = directions @ ravel_pytree(jax.grad(loss)(point))[0]
        losses = jax.vmap(lambda v: loss(unravel(v)))
        return projected, (losses(flat + eps * directions) - losses(flat - eps * directions)) / (2 * eps)

    projected, central = both(point, directions)
    np.testing.assert_allclose(projected, central, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("name", LAYERS)
def test_grad_matches_central_differences(name):
    make, shape, train = LAYERS[name]
    rng = np.random.default_rng(0)
    with jax.enable_x64(True):
        layer = make()
        # random parameters of the right shapes, without compiling the random initialisers
        model = nn.build(layer, shape)
        out_shape = model.output_shape
        params, state = jax.eval_shape(model.init, KEY)
        params = jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape)), params)
        state = jax.tree.map(
            lambda s: jnp.ones(s.shape, jnp.float64), state
        )  # batch_norm's running statistics
        x = jnp.asarray(rng.normal(size=(2, *shape)))
        read_out = jnp.asarray(rng.normal(size=(2, *out_shape)))

        def loss(point):
            p, x = point
            return jnp.sum(read_out * layer.apply(p, state, x, train=train)[0])

        _check_directional_derivatives(loss, (params, x), rng)


def test_embedding_grad_matches_central_differences():
    rng = np.random.default_rng(1)
    ids = jnp.asarray(rng.integers(0, 5, size=(3, 4)))
    with jax.enable_x64(True):
        layer = nn.embedding(5, 3)
        _, params, _ = layer.init(KEY, (4,))
        params = jax.tree.map(lambda p: jnp.asarray(p, jnp.float64), params)
        read_out = jnp.asarray(rng.normal(size=(3, 4, 3)))
        _check_directional_derivatives(lambda p: jnp.sum(read_out * layer.apply(p, {}, ids)[0]), params, rng)
