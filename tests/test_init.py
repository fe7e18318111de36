"""fnlearn.init against the formulas of the lecture notes and against jax.nn.initializers."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, stats

from fnlearn import init
from fnlearn.errors import FnlearnError

SHAPE = (400, 600)  # 240k draws: the sample variance is known to ~0.3 %
FAN_IN, FAN_OUT = SHAPE

# (factory, Var(w) from the formula in the notes / the docstring)
PRESETS = {
    "lecun_normal": (init.lecun_normal(), 1 / FAN_IN),
    "lecun_normal_truncated": (init.lecun_normal(truncated=True), 1 / FAN_IN),
    "lecun_uniform": (init.lecun_uniform(), 1 / FAN_IN),
    "xavier_normal": (init.xavier_normal(), 2 / (FAN_IN + FAN_OUT)),
    "xavier_normal_truncated": (init.xavier_normal(truncated=True), 2 / (FAN_IN + FAN_OUT)),
    "xavier_uniform": (init.xavier_uniform(), 2 / (FAN_IN + FAN_OUT)),
    "xavier_uniform_tanh_gain": (init.xavier_uniform(5 / 3), (5 / 3) ** 2 * 2 / (FAN_IN + FAN_OUT)),
    "he_normal": (init.he_normal(), 2 / FAN_IN),
    "he_normal_truncated": (init.he_normal(truncated=True), 2 / FAN_IN),
    "he_normal_fan_out": (init.he_normal(mode="fan_out"), 2 / FAN_OUT),
    "he_uniform": (init.he_uniform(), 2 / FAN_IN),
    "he_uniform_leaky": (init.he_uniform(init.gain("leaky_relu", 0.2)), 2 / (1 + 0.04) / FAN_IN),
    "normal": (init.normal(0.05), 0.05**2),
    "uniform_symmetric": (init.uniform(0.1, symmetric=True), 0.1**2 / 3),
    "orthogonal": (init.orthogonal(), 1 / max(SHAPE)),  # wide: unit-norm rows of length 600
}


@pytest.mark.parametrize("name", PRESETS)
def test_sample_variance_matches_formula(name):
    factory, variance = PRESETS[name]
    w = np.asarray(factory(jax.random.key(7), SHAPE), np.float64).ravel()
    n = w.size
    sample_var = np.mean(w**2) - np.mean(w) ** 2
    # standard error of the sample variance: sqrt((μ4 − σ⁴)/n), μ4 estimated from the draw itself
    se_var = math.sqrt((np.mean((w - w.mean()) ** 4) - sample_var**2) / n)
    assert abs(sample_var - variance) < 5 * se_var, (sample_var, variance, se_var)
    assert abs(np.mean(w)) < 5 * math.sqrt(variance / n)


def test_aliases_are_the_same_rules():
    assert init.glorot_normal is init.xavier_normal
    assert init.glorot_uniform is init.xavier_uniform
    assert init.kaiming_normal is init.he_normal
    assert init.kaiming_uniform is init.he_uniform


@pytest.mark.parametrize("mode", ["fan_in", "fan_out", "fan_avg"])
@pytest.mark.parametrize("distribution", ["normal", "truncated_normal", "uniform"])
@pytest.mark.parametrize("shape", [(30, 20), (3, 3, 16, 32)])
def test_variance_scaling_agrees_with_jax(mode, distribution, shape):
    key = jax.random.key(3)
    ours = init.variance_scaling(1.7, mode, distribution)(key, shape)
    ref = jax.nn.initializers.variance_scaling(1.7, mode, distribution)(key, shape, jnp.float32)
    assert ours.dtype == ref.dtype
    np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    "ours, ref",
    [
        (init.lecun_normal(truncated=True), jax.nn.initializers.lecun_normal()),
        (init.lecun_uniform(), jax.nn.initializers.lecun_uniform()),
        (init.xavier_normal(truncated=True), jax.nn.initializers.glorot_normal()),
        (init.xavier_uniform(), jax.nn.initializers.glorot_uniform()),
        (init.he_normal(truncated=True), jax.nn.initializers.he_normal()),
        (init.he_uniform(), jax.nn.initializers.he_uniform()),
        (init.normal(0.3), jax.nn.initializers.normal(0.3)),
        (init.uniform(0.3), jax.nn.initializers.uniform(0.3)),
        (init.constant(2.5), jax.nn.initializers.constant(2.5)),
        (init.zeros(), jax.nn.initializers.zeros),
        (init.ones(), jax.nn.initializers.ones),
    ],
)
def test_presets_agree_with_jax_draw_for_draw(ours, ref):
    key = jax.random.key(11)
    np.testing.assert_allclose(ours(key, (50, 70)), ref(key, (50, 70), jnp.float32), rtol=1e-6, atol=1e-7)


def test_truncation_constant_is_the_truncated_normal_std():
    assert init.TRUNCATED_STD == pytest.approx(stats.truncnorm(-2, 2).std(), rel=1e-12)
    w = init.he_normal(truncated=True)(jax.random.key(0), SHAPE)
    assert float(jnp.max(jnp.abs(w))) <= 2 * math.sqrt(2 / FAN_IN) / init.TRUNCATED_STD * (1 + 1e-6)


def test_dtype_is_respected():
    w = init.he_normal()(jax.random.key(0), (4, 5), jnp.bfloat16)
    assert w.dtype == jnp.bfloat16
    assert (
        init.variance_scaling(1.0, "fan_in", "uniform", dtype=jnp.float16)(jax.random.key(0), (4, 5)).dtype
        == jnp.float16
    )


@pytest.mark.parametrize("shape", [(64, 16), (16, 64), (3, 3, 8, 8), (5, 5)])
def test_orthogonal_is_orthonormal(shape):
    w = np.asarray(init.orthogonal(scale=2.0)(jax.random.key(1), shape), np.float64)
    flat = w.reshape(-1, shape[-1])
    gram = flat.T @ flat if flat.shape[0] >= flat.shape[1] else flat @ flat.T
    np.testing.assert_allclose(gram, 4.0 * np.eye(gram.shape[0]), atol=1e-5)


def _second_moment(f):
    value, _ = integrate.quad(lambda z: f(z) ** 2 * stats.norm.pdf(z), -np.inf, np.inf)
    return value


@pytest.mark.parametrize(
    "activation, param, expected",
    [
        ("identity", None, 1.0),
        ("linear", None, 1.0),
        ("sigmoid", None, 1.0),
        ("tanh", None, 5 / 3),
        ("relu", None, math.sqrt(2)),
        ("leaky_relu", None, math.sqrt(2 / (1 + 0.01**2))),
        ("leaky_relu", 0.2, math.sqrt(2 / (1 + 0.2**2))),
        ("selu", None, 0.75),
        # the ReLU rule 1/sqrt(E[f(z)²]) by scipy's adaptive quadrature
        ("gelu", None, 1 / math.sqrt(_second_moment(lambda z: z * stats.norm.cdf(z)))),
        ("elu", None, 1 / math.sqrt(_second_moment(lambda z: z if z > 0 else math.expm1(z)))),
        ("elu", 0.5, 1 / math.sqrt(_second_moment(lambda z: z if z > 0 else 0.5 * math.expm1(z)))),
    ],
)
def test_gain(activation, param, expected):
    assert init.gain(activation, param) == pytest.approx(expected, rel=1e-6)


def test_relu_gain_is_the_second_moment_rule():
    relu_rule = 1 / math.sqrt(_second_moment(lambda z: max(z, 0.0)))
    assert init.gain("relu") == pytest.approx(relu_rule, rel=1e-6)


def test_bad_arguments_name_the_problem():
    with pytest.raises(FnlearnError, match="Did you mean 'fan_in'"):
        init.variance_scaling(1.0, "fanin", "normal")
    with pytest.raises(FnlearnError, match="distribution"):
        init.variance_scaling(1.0, "fan_in", "gaussian")
    with pytest.raises(FnlearnError, match="scale must be a finite number > 0"):
        init.variance_scaling(-1.0, "fan_in", "normal")
    with pytest.raises(FnlearnError, match="rank >= 2"):
        init.he_normal()(jax.random.key(0), (5,))
    with pytest.raises(FnlearnError, match="Did you mean 'relu'"):
        init.gain("rellu")
