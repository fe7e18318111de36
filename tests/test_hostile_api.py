"""Hostile arguments to the Python API: every public entry point with numbers raises one
``FnlearnError`` line naming the function and the argument, for nan, inf, negatives, bools,
strings and fractional counts; and the same checks let valid input through (schedules, jax arrays
under inject_hyperparams, numpy scalars, integer-valued float labels)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hostile import assert_fnlearn_error as assert_one_line
from hypothesis import given, settings
from hypothesis import strategies as st

import fnlearn as fl
from fnlearn import checks, distributions, init, losses, nn, replicas
from fnlearn import optim as fo
from fnlearn.data import augment, from_arrays, split
from fnlearn.data.splits import Standardizer
from fnlearn.errors import FnlearnError
from fnlearn.optim import schedules as sch

NAN, INF = float("nan"), float("inf")


def test_the_message_format():
    with pytest.raises(FnlearnError) as error:
        fo.adam(NAN)
    assert str(error.value) == "adam: learning_rate must be a finite number > 0 (or a schedule), got nan."
    with pytest.raises(FnlearnError) as error:
        fo.sgd(np.float32(INF))
    assert str(error.value) == "sgd: learning_rate must be a finite number > 0 (or a schedule), got inf."
    with pytest.raises(FnlearnError) as error:
        fo.adam("0.1")
    assert str(error.value).endswith("got '0.1' (a str).")


# --------------------------------------------------------------------------------------------
# (build, owner, argument): each build must raise naming both

CASES = [
    # optimizer aliases
    (lambda: fo.adam(NAN), "adam", "learning_rate"),
    (lambda: fo.sgd(INF), "sgd", "learning_rate"),
    (lambda: fo.adam(-1e-3), "adam", "learning_rate"),
    (lambda: fo.adam(0.0), "adam", "learning_rate"),
    (lambda: fo.adam(True), "adam", "learning_rate"),
    (lambda: fo.adam(0.1, b1=NAN), "adam", "b1"),
    (lambda: fo.adam(0.1, b2=True), "adam", "b2"),
    (lambda: fo.adam(0.1, eps=INF), "adam", "eps"),
    (lambda: fo.adam(0.1, nesterov="yes"), "adam", "nesterov"),
    (lambda: fo.nadam(0.1, eps_root=-1.0), "nadam", "eps_root"),
    (lambda: fo.adamw(0.1, weight_decay=NAN), "adamw", "weight_decay"),
    (lambda: fo.amsgrad(0.1, b1=1.0), "amsgrad", "b1"),
    (lambda: fo.sgd(0.1, momentum=NAN), "sgd", "momentum"),
    (lambda: fo.sgd(0.1, momentum=0.9, nesterov=1), "sgd", "nesterov"),
    (lambda: fo.rmsprop(0.1, decay=INF), "rmsprop", "decay"),
    (lambda: fo.rmsprop(0.1, centered="no"), "rmsprop", "centered"),
    (lambda: fo.rmsprop(0.1, initial_scale=-1.0), "rmsprop", "initial_scale"),
    (lambda: fo.adagrad(0.1, initial_accumulator_value=NAN), "adagrad", "initial_accumulator_value"),
    (lambda: fo.lion(0.1, b2=INF), "lion", "b2"),
    (lambda: fo.lion(0.1, weight_decay=-1.0), "lion", "weight_decay"),
    (lambda: fo.ema_momentum(0.1, beta=NAN), "ema_momentum", "beta"),
    (lambda: fo.get("adam", learning_rate=NAN), "adam", "learning_rate"),
    # transforms
    (lambda: fo.scale(NAN), "scale", "step_size"),
    (lambda: fo.scale_by_learning_rate(INF), "scale_by_learning_rate", "learning_rate"),
    (lambda: fo.trace(decay=NAN), "trace", "decay"),
    (lambda: fo.ema(0.9, debias=1), "ema", "debias"),
    (lambda: fo.scale_by_adam(b1=INF), "scale_by_adam", "b1"),
    (lambda: fo.scale_by_rms(eps=NAN), "scale_by_rms", "eps"),
    (lambda: fo.scale_by_stddev(decay=-0.1), "scale_by_stddev", "decay"),
    (lambda: fo.scale_by_rss(eps=INF), "scale_by_rss", "eps"),
    (lambda: fo.scale_by_lion(b1=NAN), "scale_by_lion", "b1"),
    (lambda: fo.add_decayed_weights(NAN), "add_decayed_weights", "weight_decay"),
    (lambda: fo.add_l1_decay(-1.0), "add_l1_decay", "weight_decay"),
    (lambda: fo.clip(-1.0), "clip", "max_delta"),
    (lambda: fo.clip_by_global_norm(INF), "clip_by_global_norm", "max_norm"),
    (lambda: fo.apply_if_finite(fo.sgd(0.1), 1.5), "apply_if_finite", "max_consecutive_errors"),
    (lambda: fo.inject_hyperparams("adam"), "inject_hyperparams", "factory"),
    (lambda: fo.inject_hyperparams(fo.adam)(lr=0.1), "inject_hyperparams(adam)", "lr"),
    (lambda: fo.inject_hyperparams(fo.adam)(NAN), "adam", "learning_rate"),
    (lambda: nn.activation(["relu"]), "activation", "relu"),
    # second order
    (lambda: fo.lbfgs(lambda p: 0.0, memory_size=1.5), "lbfgs", "memory_size"),
    (lambda: fo.lbfgs(lambda p: 0.0, c1=NAN), "lbfgs", "c1"),
    (lambda: fo.lbfgs(lambda p: 0.0, learning_rate=-1.0), "lbfgs", "learning_rate"),
    (lambda: fo.newton(lambda p: 0.0, damping=-1.0), "newton", "damping"),
    (lambda: fo.scale_by_newton("loss"), "scale_by_newton", "loss_fn"),
    (lambda: fo.minimize(lambda p: 0.0, 1.0, fo.sgd(0.1), max_steps=0), "minimize", "max_steps"),
    (lambda: fo.minimize(lambda p: 0.0, 1.0, fo.sgd(0.1), tol=NAN), "minimize", "tol"),
    # schedules
    (lambda: sch.constant_schedule(NAN), "constant_schedule", "value"),
    (lambda: sch.linear_schedule(0.1, 0.0, 10.5), "linear_schedule", "transition_steps"),
    (lambda: sch.polynomial_schedule(0.1, 0.0, INF, 10), "polynomial_schedule", "power"),
    (lambda: sch.cosine_decay_schedule(0.1, 0), "cosine_decay_schedule", "decay_steps"),
    (lambda: sch.cosine_decay_schedule(0.1, True), "cosine_decay_schedule", "decay_steps"),
    (lambda: sch.cosine_decay_schedule(0.1, 100, alpha=NAN), "cosine_decay_schedule", "alpha"),
    (lambda: sch.exponential_decay(0.1, 10, decay_rate=NAN), "exponential_decay", "decay_rate"),
    (lambda: sch.exponential_decay(0.1, 10, 0.5, staircase="yes"), "exponential_decay", "staircase"),
    (
        lambda: sch.warmup_cosine_decay_schedule(0.0, 0.1, 10, 5),
        "warmup_cosine_decay_schedule",
        "decay_steps",
    ),
    (lambda: sch.warmup_cosine_decay_schedule(0.0, INF, 1, 5), "warmup_cosine_decay_schedule", "peak_value"),
    (lambda: sch.inverse_sqrt_schedule(0.1, timescale=0.0), "inverse_sqrt_schedule", "timescale"),
    (lambda: sch.linear_warmup(sch.constant_schedule(0.1), -1), "linear_warmup", "warmup_steps"),
    (lambda: sch.linear_warmup(0.1, 5), "linear_warmup", "schedule"),
    (
        lambda: sch.piecewise_constant_schedule(0.1, {10: NAN}),
        "piecewise_constant_schedule",
        "boundaries_and_scales",
    ),
    (lambda: sch.piecewise_constant_schedule(0.1, {"ten": 0.1}), "piecewise_constant_schedule", "boundary"),
    (lambda: sch.join_schedules([sch.constant_schedule(1.0), 2.0], [5]), "join_schedules", "schedules[1]"),
    # init rules
    (lambda: init.variance_scaling(NAN, "fan_in", "normal"), "variance_scaling", "scale"),
    (lambda: init.variance_scaling(1.0, 3, "normal"), "variance_scaling mode", "3"),
    (lambda: init.variance_scaling(1.0, "fan_in", "normal", in_axis=0.5), "variance_scaling", "in_axis"),
    (lambda: init.he_normal(INF), "he_normal", "gain"),
    (lambda: init.he_uniform(mode="fanin"), "he_uniform mode", "fanin"),
    (lambda: init.xavier_uniform(True), "xavier_uniform", "gain"),
    (lambda: init.lecun_normal(truncated="yes"), "lecun_normal", "truncated"),
    (lambda: init.normal(-1.0), "normal", "stddev"),
    (lambda: init.uniform(NAN), "uniform", "scale"),
    (lambda: init.constant(INF), "constant", "value"),
    (lambda: init.orthogonal(NAN), "orthogonal", "scale"),
    (lambda: init.gain("leaky_relu", NAN), "gain", "param"),
    # nn layers and builders
    (lambda: nn.dense(2.5), "dense", "out_features"),
    (lambda: nn.dense(True), "dense", "out_features"),
    (lambda: nn.dense(0), "dense", "out_features"),
    (lambda: nn.dense(3, w_init="he"), "dense", "w_init"),
    (lambda: nn.dropout(NAN), "dropout", "rate"),
    (lambda: nn.dropout(1.0), "dropout", "rate"),
    (lambda: nn.dropout("0.1"), "dropout", "rate"),
    (lambda: nn.batch_norm(momentum=INF), "batch_norm", "momentum"),
    (lambda: nn.batch_norm(eps=0.0), "batch_norm", "eps"),
    (lambda: nn.layer_norm(eps=NAN), "layer_norm", "eps"),
    (lambda: nn.leaky_relu(NAN), "leaky_relu", "negative_slope"),
    (lambda: nn.gelu("tanh"), "gelu", "approximate"),
    (lambda: nn.mlp([4, 2.5, 3]), "mlp", "sizes[1]"),
    (lambda: nn.mlp([4, True, 3]), "mlp", "sizes[1]"),
    (lambda: nn.mlp(64), "mlp", "sizes"),
    (lambda: nn.mlp([4, 3], dropout=NAN), "mlp", "dropout"),
    (lambda: nn.mlp([4, 3], residual="yes"), "mlp", "residual"),
    (lambda: nn.serial(nn.relu(), "dense"), "serial", "argument 1"),
    (lambda: nn.build(nn.dense(3), (4, 0)), "build", "input_shape"),
    # distribution heads
    (lambda: distributions.gaussian(scale=NAN), "gaussian", "scale"),
    (lambda: distributions.laplace(scale=INF), "laplace", "scale"),
    (lambda: distributions.student_t(df=0), "student_t", "df"),
    (lambda: distributions.gaussian(floor=2.0), "gaussian", "floor"),
    (lambda: distributions.von_mises(floor=NAN), "von_mises", "floor"),
    (lambda: distributions.gaussian_mixture(1.5), "gaussian_mixture", "components"),
    (lambda: distributions.product((distributions.gaussian(), 0)), "product", "event_size"),
    # losses and penalties
    (lambda: losses.l2(NAN), "l2", "strength"),
    (lambda: losses.l1(INF), "l1", "strength"),
    (lambda: losses.elastic_net(-1.0, 1.0), "elastic_net", "l1_strength"),
    (lambda: losses.top_k_accuracy(jnp.zeros((2, 3)), jnp.zeros(2, jnp.int32), k=0), "top_k_accuracy", "k"),
    (
        lambda: losses.expected_calibration_error(jnp.zeros((2, 3)), jnp.zeros(2, jnp.int32), num_bins=2.5),
        "expected_calibration_error",
        "num_bins",
    ),
    # callbacks
    (lambda: fl.callbacks.EarlyStopping(patience=NAN), "EarlyStopping", "patience"),
    (lambda: fl.callbacks.EarlyStopping(patience=2.5), "EarlyStopping", "patience"),
    (lambda: fl.callbacks.EarlyStopping(min_delta=INF), "EarlyStopping", "min_delta"),
    (lambda: fl.callbacks.EarlyStopping(3), "EarlyStopping", "monitor"),
    # augmentation
    (lambda: augment.make_augment(noise_std=INF), "augment", "noise_std"),
    (lambda: augment.make_augment(image_shape=(8, 8), max_shift=True), "augment", "max_shift"),
    (lambda: augment.make_augment(image_shape=(8, 8), crop_padding=1.5), "augment", "crop_padding"),
]


@pytest.mark.parametrize(
    "build, owner, argument", CASES, ids=[f"{c[1]}-{c[2]}-{i}" for i, c in enumerate(CASES)]
)
def test_bad_argument_is_one_line_naming_function_and_argument(build, owner, argument):
    with pytest.raises(FnlearnError) as error:
        build()
    assert_one_line(error, owner, argument)


# --------------------------------------------------------------------------------------------
# hypothesis: any bad learning rate, β or epsilon, for every optimizer

BAD_RATES = st.one_of(
    st.sampled_from(
        [NAN, INF, -INF, 0.0, -0.0, True, False, "0.1", None, [0.1], np.float32(NAN), np.int64(-3)]
    ),
    st.floats(max_value=0.0, allow_nan=False),
)
BAD_BETAS = st.one_of(
    st.sampled_from([NAN, INF, -INF, True, "0.9", 1.0, np.float64(NAN)]),
    st.floats(min_value=1.0, allow_nan=False),
    st.floats(max_value=-1e-300, allow_nan=False),
)
BAD_EPS = st.one_of(st.sampled_from([NAN, INF, True, "1e-8"]), st.floats(max_value=-1e-300, allow_nan=False))


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(fo.names()), value=BAD_RATES)
def test_any_bad_learning_rate_is_refused_by_every_optimizer(name, value):
    with pytest.raises(FnlearnError) as error:
        fo.get(name, learning_rate=value)
    assert_one_line(error, f"{name}: learning_rate must be a finite number > 0 (or a schedule)")


@settings(max_examples=60, deadline=None)
@given(
    name=st.sampled_from(["adam", "nadam", "adamw", "amsgrad", "lion"]),
    which=st.sampled_from(["b1", "b2"]),
    value=BAD_BETAS,
)
def test_any_bad_beta_is_refused(name, which, value):
    with pytest.raises(FnlearnError) as error:
        fo.get(name, learning_rate=1e-3, **{which: value})
    assert_one_line(error, f"{name}: {which} must be a number in [0, 1)")


@settings(max_examples=40, deadline=None)
@given(name=st.sampled_from(["adam", "nadam", "adamw", "amsgrad", "adagrad", "rmsprop"]), value=BAD_EPS)
def test_any_bad_epsilon_is_refused(name, value):
    with pytest.raises(FnlearnError) as error:
        fo.get(name, learning_rate=1e-3, eps=value)
    assert_one_line(error, f"{name}: eps must be a finite number >= 0")


@settings(max_examples=60, deadline=None)
@given(
    value=st.one_of(
        st.sampled_from([0, -1, True, False, 1.5, 2.0, NAN, INF, "3", None]),
        st.integers(max_value=0),
        st.floats(allow_nan=True),
    )
)
def test_any_bad_count_is_refused(value):
    for build, argument in (
        (lambda v: nn.dense(v), "out_features"),
        (lambda v: checks.positive_int("fit", "epochs", v), "epochs"),
    ):
        with pytest.raises(FnlearnError) as error:
            build(value)
        assert_one_line(error, argument)


# --------------------------------------------------------------------------------------------
# fit, evaluate, TrainState.create, replicas, splits: a tiny shared problem


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((12, 3)).astype(np.float32)
    y = (np.arange(12) % 3).astype(np.int32)
    state = fl.TrainState.create(nn.mlp([3, 3]), fo.sgd(0.1), jax.random.key(0))
    return state, x, y


@pytest.fixture(scope="module")
def replica_states():
    return replicas.create(nn.mlp([3, 3]), fo.sgd(0.1), [0, 1])[0]


HEAD = distributions.categorical()

FIT_CASES = [
    ({"epochs": 1.5}, "epochs"),
    ({"epochs": True}, "epochs"),
    ({"epochs": 0}, "epochs"),
    ({"epochs": None, "steps": NAN}, "steps"),
    ({"batch_size": 0}, "batch_size"),
    ({"batch_size": 4.0}, "batch_size"),
    ({"eval_every": -1}, "eval_every"),
    ({"eval_batch_size": "512"}, "eval_batch_size"),
    ({"log_every": 0}, "log_every"),
    ({"checkpoint_every": 1.5}, "checkpoint_every"),
    ({"keep_checkpoints": 0}, "keep_checkpoints"),
    ({"drop_last": "no"}, "drop_last"),
    ({"log_norms": 1}, "log_norms"),
    ({"progress": "yes"}, "progress"),
    ({"penalty": 0.1}, "penalty"),
    ({"callbacks": [print]}, "callbacks"),
    ({"eval": (np.zeros((2, 3), np.float32),)}, "eval"),
    ({"devices": 2.5}, "devices"),
    ({"devices": "gpu"}, "devices"),
]


@pytest.mark.parametrize(
    "change, argument", FIT_CASES, ids=[a + str(i) for i, (_, a) in enumerate(FIT_CASES)]
)
def test_fit_arguments(problem, change, argument):
    state, x, y = problem
    kwargs = {"loss": HEAD, "epochs": 1, "batch_size": 4} | change
    with pytest.raises(FnlearnError) as error:
        fl.fit(state, (x, y), **kwargs)
    assert_one_line(error, "fit", argument)


@pytest.mark.parametrize(
    "call, culprits",
    [
        (lambda s, x, y: fl.evaluate(s, (x, y), HEAD, batch_size=0), ["evaluate", "batch_size"]),
        (lambda s, x, y: fl.evaluate(s, x, HEAD), ["evaluate", "data"]),
        (lambda s, x, y: fl.evaluate(None, (x, y), HEAD), ["evaluate", "state"]),
        (lambda s, x, y: fl.fit(s, (x, y, y), loss=HEAD, epochs=1), ["fit", "train"]),
        (lambda s, x, y: fl.fit(s, (x.astype(np.complex64), y), loss=HEAD, epochs=1), ["x", "complex"]),
        (
            lambda s, x, y: fl.fit(s, ([[1.0, 2.0, 3.0], [1.0]], y[:2]), loss=HEAD, epochs=1),
            ["x", "rectangular"],
        ),
        (lambda s, x, y: fl.evaluate(s, (x, y + 0.5j), HEAD), ["y holds complex numbers"]),
        (
            lambda s, x, y: fl.evaluate(
                s, (x, np.where(np.arange(12) == 7, 2.5, y).astype(np.float32)), HEAD
            ),
            ["class ids must be integers 0..2, got 2.5 at index 7"],
        ),
        (
            lambda s, x, y: fl.fit(s, (x, y.astype(np.float32) - 1.0), loss=HEAD, epochs=1),
            ["class ids must be integers 0..2, got -1.0 at index 0"],
        ),
    ],
    ids=[
        "evaluate-batch_size-0",
        "evaluate-not-a-pair",
        "evaluate-no-state",
        "fit-train-triple",
        "fit-complex-x",
        "fit-ragged-x",
        "evaluate-complex-y",
        "evaluate-float-class-id",
        "fit-negative-float-class-id",
    ],
)
def test_fit_and_evaluate_data(problem, call, culprits):
    state, x, y = problem
    with pytest.raises(FnlearnError) as error:
        call(state, x, y)
    assert_one_line(error, *culprits)


@pytest.mark.parametrize(
    "make, culprit",
    [
        (lambda m: fl.TrainState.create(None, fo.sgd(0.1), 0), "model"),
        (lambda m: fl.TrainState.create(m, None, 0), "tx"),
        (lambda m: fl.TrainState.create(m, "adam", 0), "tx"),
        (lambda m: fl.TrainState.create(m, fo.sgd(0.1), True), "PRNG key"),
        (lambda m: fl.TrainState.create(m, fo.sgd(0.1), 2**70), "64 bits"),
        (lambda m: fl.TrainState.create(m, fo.sgd(0.1), 1.5), "PRNG key"),
    ],
    ids=["no-model", "no-tx", "tx-name", "bool-key", "huge-seed", "float-seed"],
)
def test_train_state_create(make, culprit):
    with pytest.raises(FnlearnError) as error:
        make(nn.mlp([3, 3]))
    assert_one_line(error, "TrainState.create", culprit)


@pytest.mark.parametrize(
    "kwargs, culprits",
    [
        ({"seeds": [1.5]}, ["replicas.create", "seed"]),
        ({"seeds": [-1, 2]}, ["replicas.create", "seed"]),
        ({"seeds": [2**40]}, ["replicas.create", "2**31"]),
        ({"seeds": 3}, ["replicas.create", "seeds"]),
        ({"seeds": [0, 1], "hyperparams": {"learning_rate": [NAN, 0.1]}}, ["hyperparams['learning_rate']"]),
        ({"seeds": [0, 1], "hyperparams": {"dropout": [0.1, 1.2]}}, ["hyperparams['dropout']", "[0, 1)"]),
        ({"seeds": [0, 1], "hyperparams": {"learning_rate": 0.1}}, ["hyperparams['learning_rate']", "list"]),
        ({"seeds": [0, 1], "hyperparams": [0.1, 0.2]}, ["hyperparams", "dict"]),
    ],
    ids=[
        "float-seed",
        "negative-seed",
        "huge-seed",
        "seeds-int",
        "nan-value",
        "dropout-1.2",
        "not-a-list",
        "not-a-dict",
    ],
)
def test_replicas_create(kwargs, culprits):
    tx = fo.inject_hyperparams(fo.sgd)(learning_rate=0.1)
    with pytest.raises(FnlearnError) as error:
        replicas.create(nn.mlp([3, 3], dropout=0.0), tx, **kwargs)
    assert_one_line(error, *culprits)


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        ({"epochs": 0}, "epochs"),
        ({"epochs": 1, "batch_size": 2.5}, "batch_size"),
        ({"epochs": 1, "early_stopping": "patience=3"}, "early_stopping"),
        ({"steps": True}, "steps"),
    ],
)
def test_replicas_fit(problem, replica_states, kwargs, argument):
    _, x, y = problem
    states = replica_states  # every case fails before training: nothing is donated
    with pytest.raises(FnlearnError) as error:
        replicas.fit(states, (x, y), loss=HEAD, **kwargs)
    assert_one_line(error, "replicas.fit", argument)


@pytest.mark.parametrize(
    "call, argument",
    [
        (lambda d: split(d, val=NAN), "val"),
        (lambda d: split(d, test=INF), "test"),
        (lambda d: split(d, val=True), "val"),
        (lambda d: split(d, seed=-1), "seed"),
        (lambda d: split(d, stratify="yes"), "stratify"),
        (lambda d: split(d.x, val=0.1), "dataset"),
        (lambda d: Standardizer.fit(d, min_std=INF), "min_std"),
        (lambda d: Standardizer.fit(d, targets="no"), "targets"),
    ],
    ids=[
        "val-nan",
        "test-inf",
        "val-bool",
        "seed-negative",
        "stratify-str",
        "not-a-dataset",
        "min_std-inf",
        "targets-str",
    ],
)
def test_splits(call, argument):
    dataset = from_arrays(np.zeros((20, 2)), np.arange(20) % 2, task="classification")
    with pytest.raises(FnlearnError) as error:
        call(dataset)
    assert_one_line(error, argument)


# --------------------------------------------------------------------------------------------
# valid input passes: the checks reject only mistakes


def test_a_schedule_callable_is_a_learning_rate():
    params = {"w": jnp.ones(3)}
    tx = fo.adam(sch.cosine_decay_schedule(0.1, 10))
    updates, _ = tx.update({"w": jnp.ones(3)}, tx.init(params), params)
    np.testing.assert_allclose(updates["w"], -0.1 * np.ones(3), rtol=1e-5)  # step 1 of Adam: -η·sign(g)
    fo.sgd(lambda count: 0.1 / (1 + count), momentum=0.9)


def test_jax_array_hyperparameters_pass_through_inject_hyperparams_under_jit():
    tx = fo.inject_hyperparams(fo.adamw)(learning_rate=0.1, b1=0.9, weight_decay=1e-2)
    params = {"w": jnp.ones(3)}
    state = tx.init(params)
    assert state.hyperparams["learning_rate"].dtype == jnp.float32
    updates, state = jax.jit(tx.update)({"w": jnp.ones(3)}, state, params)
    plain = fo.adamw(0.1, b1=0.9, weight_decay=1e-2)
    reference, _ = plain.update({"w": jnp.ones(3)}, plain.init(params), params)
    np.testing.assert_allclose(updates["w"], reference["w"], rtol=1e-6)
    positional = fo.inject_hyperparams(fo.adam)(0.1, 0.5)  # positional arguments too, as in optax
    assert set(positional.init(params).hyperparams) == {"learning_rate", "b1"}
    fo.adam(jnp.asarray(1e-3), b1=jnp.asarray(0.9))  # arrays are not second-guessed
    fo.sgd(np.float32(0.1), momentum=np.float64(0.5))


def test_numpy_scalars_are_numbers_and_counts(problem):
    state, x, y = problem
    nn.dense(np.int64(3))
    nn.mlp([np.int32(3), np.int64(4), 3], dropout=np.float32(0.1))
    init.he_normal(np.float32(1.4))
    distributions.gaussian(scale=np.float32(2.0))
    distributions.gaussian_mixture(np.int64(2))
    sch.cosine_decay_schedule(np.float32(0.1), np.int64(100))
    fresh = jax.tree.map(jnp.copy, state)  # fit donates the state it is given
    _, history = fl.fit(fresh, (x, y), loss=HEAD, epochs=np.int64(1), batch_size=np.int32(4))
    assert len(history) == 1
    assert set(fl.evaluate(state, (x, y), HEAD, batch_size=np.int64(5))) == {"loss", "accuracy"}


def test_integer_valued_float_labels_are_accepted_and_mean_the_same(problem):
    state, x, y = problem
    as_int = fl.evaluate(state, (x, y), HEAD)
    as_float = fl.evaluate(state, (x, y.astype(np.float32)), HEAD)
    assert as_int == pytest.approx(as_float)
    assert math.isfinite(as_int["loss"])
    assert from_arrays(x, y.astype(np.float64), task="classification").y.dtype == np.int32


def test_zero_is_still_a_valid_decay_and_schedule_value():
    fo.adamw(0.1, weight_decay=0.0)
    fo.add_decayed_weights(0.0)
    sch.linear_schedule(0.1, 0.0, 10)
    sch.polynomial_schedule(0.1, 0.0, 1, 0)  # transition_steps <= 0: optax's constant
    nn.dropout(0.0)
    fo.clip_by_global_norm(0.0)
