"""Models as pure functions over pytrees of parameters.

A **layer** is a record of two pure functions (jax ``example_libraries/stax`` style):

* ``init(key, in_shape) -> (out_shape, params, state)``; shapes are per example (no batch axis);
* ``apply(params, state, x, *, train=False, key=None) -> (y, state)``.

``params`` is what the optimizer trains (dense weights ``w``/``b``, normalisation ``scale``/
``shift``); ``state`` is what it must never touch (BatchNorm's running ``mean``/``var``). Both are
plain dicts (and lists for ``serial``); a layer without any has ``{}``.

A **model** is a layer bound to its input shape: ``Model(init, apply, input_shape, output_shape)``
with ``init(key) -> (params, state)``. ``build(layer, input_shape)`` makes one, and ``mlp(sizes)``
builds one from the widths, whose first entry is the input width. So a dense layer needs no
``in_features``: its input width is inferred at init from the shape flowing into it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fnlearn import checks
from fnlearn import init as initializers
from fnlearn.errors import FnlearnError, unknown_name

__all__ = [
    "Layer",
    "Model",
    "build",
    "dense",
    "activation",
    "ACTIVATIONS",
    "relu",
    "leaky_relu",
    "elu",
    "selu",
    "gelu",
    "sigmoid",
    "tanh",
    "softplus",
    "identity",
    "dropout",
    "batch_norm",
    "layer_norm",
    "serial",
    "residual",
    "mlp",
    "intermediates",
]

Shape = tuple[int, ...]


class Layer(NamedTuple):
    """Two pure functions and a name; ``sublayers`` lists the children of a combinator."""

    name: str
    init: Callable[[jax.Array, Shape], tuple[Shape, Any, Any]]
    apply: Callable[..., tuple[jax.Array, Any]]
    sublayers: tuple = ()


class Model(NamedTuple):
    """A layer bound to its per-example input shape: ``init(key) -> (params, state)``."""

    init: Callable[[jax.Array], tuple[Any, Any]]
    apply: Callable[..., tuple[jax.Array, Any]]
    input_shape: Shape
    output_shape: Shape
    layer: Layer


def build(layer: Layer, input_shape: int | Sequence[int]) -> Model:
    """Bind ``layer`` to a per-example ``input_shape`` (an int means a feature vector).

    The parameters' size is found without allocating them (``jax.eval_shape``) and a model larger
    than ``fnlearn.checks.memory_limit()`` is refused before ``init`` could try.
    """
    return _build(layer, input_shape, "smaller layer widths")


def _build(layer: Layer, input_shape, fix: str) -> Model:
    if not isinstance(layer, Layer):
        raise FnlearnError(f"build: layer must be a fnlearn.nn.Layer such as dense(10), got {checks.show(layer)}.")
    shape = [input_shape] if checks.is_integer(input_shape) else input_shape
    if not isinstance(shape, (tuple, list)) or not shape:
        raise FnlearnError(
            f"build: input_shape must be a positive int or a tuple of them, got {checks.show(input_shape)}."
        )
    input_shape = tuple(checks.positive_int("build", "every entry of input_shape", s) for s in shape)
    output_shape = _out_shape(layer, input_shape, fix)

    def init(key):
        _, params, state = layer.init(key, input_shape)
        return params, state

    def apply(params, state, x, *, train=False, key=None):
        x = jnp.asarray(x)
        if x.shape[-len(input_shape):] != input_shape:
            raise FnlearnError(
                f"model input has shape {x.shape}, but the model was built for examples of shape "
                f"{input_shape} (a batch of shape (batch, {', '.join(map(str, input_shape))})). "
                "Check the data's feature width against the model's first size."
            )
        return layer.apply(params, state, x, train=train, key=key)

    return Model(init, apply, input_shape, output_shape, layer)


def _out_shape(layer: Layer, input_shape: Shape, fix: str) -> Shape:
    """The output shape, found without allocating parameters (shapes are static Python ints);
    refuses parameters and state that would not fit (``checks.check_bytes``)."""
    box = {}

    def shapes_only(key):
        out_shape, params, state = layer.init(key, input_shape)
        box["out"] = out_shape
        return params, state

    leaves = jax.tree.leaves(jax.eval_shape(shapes_only, jax.random.key(0)))
    count = sum(math.prod(leaf.shape) for leaf in leaves)
    nbytes = sum(math.prod(leaf.shape) * np.dtype(leaf.dtype).itemsize for leaf in leaves)
    checks.check_bytes(layer.name, f"its {count} parameters and state values", nbytes, f"Use {fix}.")
    return tuple(box["out"])


# --------------------------------------------------------------------------------------------
# dense


def dense(out_features: int, *, w_init=None, b_init=None, use_bias: bool = True, name: str = "dense") -> Layer:
    """y = x·W + b with W of shape (in_features, out_features).

    ``w_init`` defaults to LeCun normal (Var(w) = 1/fan_in); ``mlp`` picks it from the activation.
    """
    out_features = checks.positive_int("dense", "out_features", out_features)
    _check_inits("dense", w_init=w_init, b_init=b_init)
    checks.boolean("dense", "use_bias", use_bias)
    w_init = w_init or initializers.lecun_normal()
    b_init = b_init or initializers.zeros()

    def init(key, in_shape):
        in_features = in_shape[-1]
        w_key, b_key = jax.random.split(key)
        params = {"w": w_init(w_key, (in_features, out_features))}
        if use_bias:
            params["b"] = b_init(b_key, (out_features,))
        return (*in_shape[:-1], out_features), params, {}

    def apply(params, state, x, *, train=False, key=None):
        del train, key
        w = params["w"]
        if x.shape[-1] != w.shape[0]:
            raise FnlearnError(
                f"layer {name!r} expects inputs of width {w.shape[0]} (weight shape {w.shape}), got "
                f"inputs of shape {x.shape}. The previous layer or the data has the wrong width."
            )
        y = x @ w
        return (y + params["b"] if use_bias else y), state

    return Layer(name, init, apply)


# --------------------------------------------------------------------------------------------
# activations: parameter-free elementwise layers


def _elementwise(name: str, fn: Callable[[jax.Array], jax.Array]) -> Layer:
    def init(key, in_shape):
        del key
        return tuple(in_shape), {}, {}

    def apply(params, state, x, *, train=False, key=None):
        del params, train, key
        return fn(x), state

    return Layer(name, init, apply)


def relu() -> Layer:
    """max(0, x)."""
    return _elementwise("relu", jax.nn.relu)


def leaky_relu(negative_slope: float = 0.01) -> Layer:
    """x for x > 0, a·x otherwise."""
    checks.finite("leaky_relu", "negative_slope", negative_slope)
    return _elementwise("leaky_relu", lambda x: jax.nn.leaky_relu(x, negative_slope))


def elu(alpha: float = 1.0) -> Layer:
    """x for x > 0, α(eˣ − 1) otherwise."""
    checks.finite("elu", "alpha", alpha)
    return _elementwise("elu", lambda x: jax.nn.elu(x, alpha))


def selu() -> Layer:
    """λ·elu(x, α) with the self-normalising constants of Klambauer et al. (2017)."""
    return _elementwise("selu", jax.nn.selu)


def gelu(approximate: bool = False) -> Layer:
    """x·Φ(x) (exact by default; the tanh approximation with ``approximate=True``)."""
    checks.boolean("gelu", "approximate", approximate)
    return _elementwise("gelu", lambda x: jax.nn.gelu(x, approximate=approximate))


def sigmoid() -> Layer:
    """1 / (1 + e⁻ˣ)."""
    return _elementwise("sigmoid", jax.nn.sigmoid)


def tanh() -> Layer:
    """tanh(x)."""
    return _elementwise("tanh", jnp.tanh)


def softplus() -> Layer:
    """log(1 + eˣ)."""
    return _elementwise("softplus", jax.nn.softplus)


def identity() -> Layer:
    """x."""
    return _elementwise("identity", lambda x: x)


ACTIVATIONS: dict[str, Callable[[], Layer]] = {
    "relu": relu,
    "leaky_relu": leaky_relu,
    "elu": elu,
    "selu": selu,
    "gelu": gelu,
    "sigmoid": sigmoid,
    "tanh": tanh,
    "softplus": softplus,
    "identity": identity,
}


def activation(name: str) -> Layer:
    """The activation layer called ``name`` (one of ``ACTIVATIONS``)."""
    if not isinstance(name, str) or name not in ACTIVATIONS:
        raise unknown_name("activation", name, ACTIVATIONS)
    return ACTIVATIONS[name]()


# --------------------------------------------------------------------------------------------
# dropout and normalisation


def dropout(rate: float) -> Layer:
    """Inverted dropout: in training, y = m ⊙ x / (1 − rate), m ~ Bernoulli(1 − rate).

    ``rate`` is the probability of *dropping* a unit, so E[y] = x and evaluation is the identity.
    Training needs a PRNG ``key``. The rate is kept in the layer's ``state`` (``{"rate": rate}``),
    which the optimizer never touches: that is what lets many replicas, vmapped in one program,
    each train with their own dropout rate (``fl.replicas.create(..., hyperparams={"dropout": ...})``).
    """
    checks.unit_interval("dropout", "rate", rate, "It is the probability of dropping a unit, e.g. 0.1.")

    def init(key, in_shape):
        del key
        return tuple(in_shape), {}, {"rate": jnp.asarray(rate, jnp.float32)}

    def apply(params, state, x, *, train=False, key=None):
        del params
        if not train:
            return x, state
        if key is None:
            raise FnlearnError(
                "dropout needs a PRNG key in training: call apply(..., train=True, key=key) "
                "(fnlearn's train step passes one split from TrainState.key)."
            )
        keep_prob = 1.0 - state["rate"]
        keep = jax.random.bernoulli(key, keep_prob, x.shape)
        return jnp.where(keep, x / keep_prob.astype(x.dtype), jnp.zeros_like(x)), state

    return Layer("dropout", init, apply)


def _normalise(x, mean, var, eps):
    return (x - mean) * jax.lax.rsqrt(var + eps)


def batch_norm(momentum: float = 0.9, eps: float = 1e-5) -> Layer:
    """Batch normalisation over every axis but the last (the features).

    Training: x̂ = (x − μ_B)/sqrt(σ²_B + ε) with the batch mean and (biased) variance, and the
    running statistics in ``state`` become r ← momentum·r + (1 − momentum)·batch statistic.
    Evaluation: the running statistics replace the batch ones. y = scale·x̂ + shift (``params``).

    ``momentum`` follows flax (``nn.BatchNorm(momentum=0.99)``): it is the weight of the *old*
    running value. PyTorch's ``momentum`` is the weight of the *new* value, so PyTorch's default 0.1
    is fnlearn's 0.9 (the default here). Like flax, the running variance is the biased batch
    variance; PyTorch stores the unbiased one (×n/(n−1)).
    """
    checks.unit_interval("batch_norm", "momentum", momentum, "It is the weight of the old running value, e.g. 0.9.")
    checks.positive("batch_norm", "eps", eps)

    def init(key, in_shape):
        del key
        features = in_shape[-1]
        params = {"scale": jnp.ones((features,)), "shift": jnp.zeros((features,))}
        state = {"mean": jnp.zeros((features,)), "var": jnp.ones((features,))}
        return tuple(in_shape), params, state

    def apply(params, state, x, *, train=False, key=None):
        del key
        if train:
            axes = tuple(range(x.ndim - 1))
            mean = jnp.mean(x, axis=axes)
            var = jnp.mean(jnp.square(x - mean), axis=axes)
            state = {
                "mean": momentum * state["mean"] + (1.0 - momentum) * mean,
                "var": momentum * state["var"] + (1.0 - momentum) * var,
            }
        else:
            mean, var = state["mean"], state["var"]
        return params["scale"] * _normalise(x, mean, var, eps) + params["shift"], state

    return Layer("batch_norm", init, apply)


def layer_norm(eps: float = 1e-5) -> Layer:
    """Layer normalisation: each example normalised over its features, y = scale·x̂ + shift."""
    checks.positive("layer_norm", "eps", eps)

    def init(key, in_shape):
        del key
        features = in_shape[-1]
        return tuple(in_shape), {"scale": jnp.ones((features,)), "shift": jnp.zeros((features,))}, {}

    def apply(params, state, x, *, train=False, key=None):
        del train, key
        mean = jnp.mean(x, axis=-1, keepdims=True)
        var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
        return params["scale"] * _normalise(x, mean, var, eps) + params["shift"], state

    return Layer("layer_norm", init, apply)


# --------------------------------------------------------------------------------------------
# combinators


def serial(*layers: Layer, name: str = "serial") -> Layer:
    """f_n ∘ … ∘ f_1. Parameters and state are lists with one entry per layer.

    In training each layer gets its own key, ``fold_in(key, i)``, so dropout masks differ by layer.
    """
    for i, layer in enumerate(layers):
        if not isinstance(layer, Layer):
            raise FnlearnError(
                f"serial: argument {i} must be a Layer such as dense(10) or relu(), got {checks.show(layer)}."
            )

    def init(key, in_shape):
        params, state, shape = [], [], tuple(in_shape)
        for i, layer in enumerate(layers):
            shape, p, s = layer.init(jax.random.fold_in(key, i), shape)
            params.append(p)
            state.append(s)
        return shape, params, state

    def apply(params, state, x, *, train=False, key=None):
        new_state = []
        for i, (layer, p, s) in enumerate(zip(layers, params, state, strict=True)):
            sub_key = None if key is None else jax.random.fold_in(key, i)
            x, s = layer.apply(p, s, x, train=train, key=sub_key)
            new_state.append(s)
        return x, new_state

    return Layer(name, init, apply, tuple(layers))


def residual(layer: Layer) -> Layer:
    """y = x + f(x): the block must keep the shape of its input."""
    if not isinstance(layer, Layer):
        raise FnlearnError(
            f"residual: layer must be a Layer such as serial(dense(8), relu()), got {checks.show(layer)}."
        )

    def init(key, in_shape):
        out_shape, params, state = layer.init(key, in_shape)
        if tuple(out_shape) != tuple(in_shape):
            raise FnlearnError(
                f"residual({layer.name}) needs a block that keeps its input shape, but it maps "
                f"{tuple(in_shape)} to {tuple(out_shape)}. Give the block equal input and output widths."
            )
        return out_shape, params, state

    def apply(params, state, x, *, train=False, key=None):
        y, state = layer.apply(params, state, x, train=train, key=key)
        return x + y, state

    return Layer(f"residual({layer.name})", init, apply, (layer,))


# --------------------------------------------------------------------------------------------
# the MLP builder

# mlp's keyword arguments ``dropout`` and ``residual`` shadow the layer factories inside it.
_dropout_layer = dropout
_residual_layer = residual

RELU_LIKE = ("relu", "leaky_relu", "elu", "gelu", "softplus")
SATURATING = ("tanh", "sigmoid")
NORMS = {"batch_norm": batch_norm, "layer_norm": layer_norm}


def default_w_init(activation_name: str):
    """The variance-preserving initialiser for weights feeding ``activation_name``.

    He (Var = gain²/fan_in) for ReLU-like activations, Xavier (Var = gain²·2/(fan_in + fan_out))
    for tanh and sigmoid, LeCun (Var = 1/fan_in) for selu and identity.
    """
    if activation_name in RELU_LIKE:
        g = initializers.gain(activation_name) if activation_name != "softplus" else math.sqrt(2.0)
        return initializers.he_normal(g)
    if activation_name in SATURATING:
        return initializers.xavier_normal(initializers.gain(activation_name))
    return initializers.lecun_normal()


def mlp(
    sizes: Sequence[int],
    *,
    activation: str = "relu",
    w_init=None,
    b_init=None,
    dropout: float = 0.0,
    norm: str | None = None,
    residual: bool = False,
) -> Model:
    """A multilayer perceptron: ``sizes = [in, hidden..., out]``.

    Each hidden block is dense → norm (optional) → activation → dropout (optional); with
    ``residual=True`` a block whose input and output widths agree becomes x + block(x). The last
    layer is a plain dense layer (no activation; its weights are LeCun-initialised, Var = 1/fan_in,
    since no activation follows). ``w_init`` defaults to ``default_w_init(activation)``.
    """
    sizes = _check_sizes(sizes)
    checks.unit_interval("mlp", "dropout", dropout, "It is the probability of dropping a unit, e.g. 0.1.")
    checks.boolean("mlp", "residual", residual)
    _check_inits("mlp", w_init=w_init, b_init=b_init)
    if not isinstance(activation, str) or activation not in ACTIVATIONS:
        raise unknown_name("activation", activation, ACTIVATIONS)
    if norm is not None and (not isinstance(norm, str) or norm not in NORMS):
        raise unknown_name("norm", norm, NORMS)
    hidden_init = w_init or default_w_init(activation)
    layers = []
    for i, width in enumerate(sizes[1:-1]):
        block = [dense(width, w_init=hidden_init, b_init=b_init, name=f"dense_{i}")]
        if norm is not None:
            block.append(NORMS[norm]())
        block.append(ACTIVATIONS[activation]())
        if dropout > 0:
            block.append(_dropout_layer(dropout))
        block_layer = serial(*block, name=f"block_{i}")
        layers.append(_residual_layer(block_layer) if residual and sizes[i] == width else block_layer)
    out_init = w_init or initializers.lecun_normal()
    layers.append(dense(sizes[-1], w_init=out_init, b_init=b_init, name="output"))
    return _build(serial(*layers, name="mlp"), sizes[0], f"smaller widths in sizes={sizes}")


def _check_sizes(sizes) -> list[int]:
    """mlp's ``sizes``: a list of at least two positive integers (input, hidden..., output)."""
    expected = "a list of at least two positive integers [input, hidden..., output], e.g. [64, 128, 10]"
    if not isinstance(sizes, (list, tuple)) or len(sizes) < 2:
        raise FnlearnError(f"mlp: sizes must be {expected}, got {checks.show(sizes)}.")
    hint = "sizes lists the input, hidden and output widths."
    return [checks.positive_int("mlp", f"sizes[{i}]", s, hint) for i, s in enumerate(sizes)]


def _check_inits(owner: str, **initialisers) -> None:
    for name, value in initialisers.items():
        if value is not None and not callable(value):
            raise FnlearnError(
                f"{owner}: {name} must be an initialiser init(key, shape, dtype) such as fnlearn.init.he_normal(), "
                f"or None, got {checks.show(value)}."
            )


def intermediates(model: Model, params, state, x, *, train=False, key=None) -> list[tuple[str, jax.Array]]:
    """Run a serial model layer by layer and return ``(name, output)`` of every leaf layer.

    Nested ``serial`` blocks are flattened (a residual block is one entry, its output x + f(x)).
    Used to watch signal propagation: the outputs named ``dense_*`` are the pre-activations.
    """
    out = []

    def walk(layer, p, s, h, k):
        if layer.sublayers and not layer.name.startswith("residual"):
            for i, (sub, sp, ss) in enumerate(zip(layer.sublayers, p, s, strict=True)):
                h = walk(sub, sp, ss, h, None if k is None else jax.random.fold_in(k, i))
            return h
        h, _ = layer.apply(p, s, h, train=train, key=k)
        out.append((layer.name, h))
        return h

    walk(model.layer, params, state, jnp.asarray(x), key)
    return out
