"""Models as pure functions over pytrees of parameters.

A **layer** is a record of two pure functions (jax ``example_libraries/stax`` style):

* ``init(key, in_shape) -> (out_shape, params, state)``; shapes are per example (no batch axis):
  feature vectors (D,), images channels-last (H, W, C), sequences (T, D);
* ``apply(params, state, x, *, train=False, key=None) -> (y, state)``; x has a leading batch axis.

``params`` is what the optimizer trains (weights ``w``/``b``, normalisation ``scale``/``shift``,
``embedding`` tables); ``state`` is what it must never touch (BatchNorm's running ``mean``/``var``,
dropout rates). Both are plain dicts (and lists for ``serial``); a layer without any has ``{}``.
Weight layouts follow lax/flax: dense (in, out), conv (*kernel, in/groups, out).

A **model** is a layer bound to its input shape: ``Model(init, apply, input_shape, output_shape)``
with ``init(key) -> (params, state)``. ``build(layer, input_shape)`` makes one; the builders
``mlp``, ``cnn`` and ``gpt`` (named in ``BUILDERS``) make whole models. A layer needs no input
width: it is inferred at init from the shape flowing into it.

This module only re-exports; each layer family lives in its own submodule.
"""

from fnlearn.nn.activations import (
    ACTIVATIONS,
    RELU_LIKE,
    SATURATING,
    activation,
    default_w_init,
    elu,
    gelu,
    identity,
    leaky_relu,
    relu,
    selu,
    sigmoid,
    softplus,
    tanh,
)
from fnlearn.nn.attention import multi_head_attention
from fnlearn.nn.base import Layer, Model, Shape, build
from fnlearn.nn.builders import BUILDERS, cnn, gpt, mlp
from fnlearn.nn.combinators import remat, repeat, residual, serial
from fnlearn.nn.convolution import conv
from fnlearn.nn.embeddings import embedding, positional_embedding, sinusoidal_positions
from fnlearn.nn.linear import dense
from fnlearn.nn.normalization import NORMS, batch_norm, group_norm, layer_norm, rms_norm
from fnlearn.nn.pooling import avg_pool, flatten, global_avg_pool, max_pool, reshape
from fnlearn.nn.stochastic import dropout
from fnlearn.nn.summary import intermediates, summary
from fnlearn.nn.transformer import transformer_block

__all__ = [
    "ACTIVATIONS",
    "BUILDERS",
    "NORMS",
    "RELU_LIKE",
    "SATURATING",
    "Layer",
    "Model",
    "Shape",
    "activation",
    "avg_pool",
    "batch_norm",
    "build",
    "cnn",
    "conv",
    "default_w_init",
    "dense",
    "dropout",
    "elu",
    "embedding",
    "flatten",
    "gelu",
    "global_avg_pool",
    "gpt",
    "group_norm",
    "identity",
    "intermediates",
    "layer_norm",
    "leaky_relu",
    "max_pool",
    "mlp",
    "multi_head_attention",
    "positional_embedding",
    "relu",
    "remat",
    "repeat",
    "reshape",
    "residual",
    "rms_norm",
    "selu",
    "serial",
    "sigmoid",
    "summary",
    "sinusoidal_positions",
    "softplus",
    "tanh",
    "transformer_block",
]
