"""fnlearn.fit and fnlearn.evaluate: the scan loop against the plain step, data order, callbacks, bad input."""

import io
import json

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st

import fnlearn as fl
from fnlearn.callbacks import EarlyStopping, LambdaCallback, NonFiniteError
from fnlearn.errors import FnlearnError
from fnlearn.order import epoch_order, shuffle_rounds, shuffled_range

KEY = jax.random.key(0)
HEAD = fl.distributions.get("categorical")


def _problem(n=50, d=6, k=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int32) + (x[:, 1] > 1).astype(np.int32)
    return x, y


def _state(model=None, tx=None):
    return fl.TrainState.create(model or fl.nn.mlp([6, 16, 3]), tx or fl.optim.adam(1e-2), KEY)


@pytest.mark.parametrize("driver", ["scan", "loop"])
def test_fit_equals_the_plain_step_over_the_same_batches(driver):
    x, y = _problem()
    state, history = fl.fit(_state(), (x, y), loss=HEAD, epochs=3, batch_size=16, driver=driver)
    reference = _state()
    order_key = jax.random.fold_in(reference.key, fl.loop.ORDER_SALT)
    step = fl.train.make_train_step(HEAD)
    for epoch in range(3):
        indices, weights = epoch_order(order_key, epoch, len(x), 16, False)
        for idx, w in zip(np.asarray(indices), np.asarray(weights)):
            reference, _ = step(reference, (x[idx], y[idx], w))
    chex.assert_trees_all_close(state.params, reference.params, rtol=1e-5, atol=1e-6)
    assert int(state.step) == 3 * 4 and [r["epoch"] for r in history] == [1, 2, 3]


def test_whole_epochs_in_one_scan_give_the_same_run_as_epoch_by_epoch():
    """Without evaluation, callbacks or checkpoints, fit runs the remaining whole epochs as one
    scan; with a (no-op) callback it returns to the host every epoch. Same parameters, same records."""
    x, y = _problem()
    fast, fast_history = fl.fit(_state(), (x, y), loss=HEAD, steps=4 * 4 + 2, batch_size=16, driver="scan")
    slow, slow_history = fl.fit(
        _state(),
        (x, y),
        loss=HEAD,
        steps=4 * 4 + 2,
        batch_size=16,
        callbacks=[LambdaCallback()],
        driver="scan",
    )
    chex.assert_trees_all_close(fast.params, slow.params, rtol=1e-6, atol=1e-7)
    assert int(fast.step) == int(slow.step) == 18
    assert len(fast_history) == len(slow_history) == 5  # 4 whole epochs, then the 2 steps of the fifth
    for a, b in zip(fast_history, slow_history):
        assert set(a) == set(b)
        for key in set(a) - {"time", "examples_per_second"}:
            assert a[key] == pytest.approx(b[key], rel=1e-6), key


@settings(max_examples=12, deadline=None)  # each n compiles its own program: few sizes, many keys each
@given(n=st.integers(1, 5000), seed=st.integers(0, 2**31 - 1))
def test_shuffled_range_is_a_permutation(n, seed):
    perms = np.asarray(
        jax.jit(jax.vmap(lambda k: shuffled_range(k, n)))(jax.random.split(jax.random.key(seed), 16))
    )
    assert perms.dtype == np.int32 and all(np.array_equal(np.sort(p), np.arange(n)) for p in perms)


@pytest.mark.parametrize("n", [2, 100, 1437, 60_000, 2**24, 2**24 + 1])
def test_shuffle_rounds_leave_a_tie_in_every_round_unlikely(n):
    bits, rounds = shuffle_rounds(n)
    assert bits + (n - 1).bit_length() <= 32  # random bits and position fit one uint32
    assert bits * rounds >= 3 * np.log2(n)  # P(some pair ties in every round) ≤ n²/2 · 2^(−b·rounds) ≤ 1/(2n)


def test_shuffled_range_draws_every_order_of_four_equally_often():
    perms = np.asarray(jax.vmap(lambda k: shuffled_range(k, 4))(jax.random.split(KEY, 24_000)))
    _, counts = np.unique(perms, axis=0, return_counts=True)
    assert len(counts) == 24 and scipy.stats.chisquare(counts).pvalue > 1e-4


def test_shuffled_range_is_uniform_over_positions_with_two_rounds():
    n = 1437  # the digits training set: 21 random bits per key, two rounds
    assert shuffle_rounds(n)[1] == 2
    perms = np.asarray(jax.vmap(lambda k: shuffled_range(k, n))(jax.random.split(KEY, 4000)))
    position = np.argsort(perms, axis=1)  # where each example lands
    for example in (0, n // 2, n - 1):
        counts = np.bincount(position[:, example] * 10 // n, minlength=10)
        assert scipy.stats.chisquare(counts).pvalue > 1e-4, example
    # neighbours are not kept in their original order (what ties in every round would do)
    before = (position[:, :-1] < position[:, 1:]).mean()
    assert abs(before - 0.5) < 0.005


@pytest.mark.parametrize("drop_last", [False, True])
def test_every_example_once_per_epoch(drop_last):
    indices, weights = epoch_order(KEY, 0, 50, 16, drop_last)
    indices, weights = np.asarray(indices), np.asarray(weights)
    counts = np.bincount(indices.ravel(), weights=weights.ravel(), minlength=50)
    if drop_last:
        assert (
            indices.shape == (3, 16) and weights.min() == 1 and set(counts) == {0, 1} and counts.sum() == 48
        )
    else:
        assert indices.shape == (4, 16) and np.array_equal(counts, np.ones(50))
    other, _ = epoch_order(KEY, 1, 50, 16, drop_last)
    assert not np.array_equal(indices, np.asarray(other))  # a new permutation each epoch


@pytest.mark.parametrize("driver, traces_expected", [("scan", 1), ("loop", 2)])
def test_fit_compiles_the_chunk_once(driver, traces_expected):
    """scan: one scan over the 4 steps of an epoch, reused five times; loop: the step traced once
    for its metrics' shapes and once to compile it, then called 20 times."""
    x, y = _problem()
    traces = []

    def loss(outputs, y, weights=None):
        traces.append(1)
        return fl.losses.nll(HEAD)(outputs, y, weights)

    fl.fit(_state(), (x, y), loss=loss, epochs=5, batch_size=16, driver=driver, callbacks=[LambdaCallback()])
    assert len(traces) == traces_expected


def test_log_every_writes_chunk_records_and_steps_stop_mid_epoch(tmp_path):
    x, y = _problem()
    state, history = fl.fit(
        _state(),
        (x, y),
        loss=HEAD,
        steps=10,
        batch_size=16,
        log_every=2,
        run_dir=tmp_path,
        checkpoint_every=None,
    )
    assert int(state.step) == 10
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [2, 4, 6, 8, 10]
    assert [r["epoch"] for r in history] == [1, 2, 3]  # 4 + 4 + 2 steps
    assert all(np.isfinite(r["train_loss"]) for r in lines)


def test_metrics_jsonl_is_the_history(tmp_path):
    x, y = _problem()
    _, history = fl.fit(
        _state(), (x, y), loss=HEAD, epochs=3, batch_size=16, eval=(x, y), run_dir=tmp_path, log_norms=True
    )
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert lines == history
    assert {
        "epoch",
        "step",
        "time",
        "train_loss",
        "train_accuracy",
        "train_grad_norm",
        "train_update_norm",
        "train_learning_rate",
        "val_loss",
        "val_accuracy",
    } <= set(lines[-1])
    _, lean = fl.fit(_state(), (x, y), loss=HEAD, epochs=1, batch_size=16)
    assert "train_grad_norm" not in lean[-1] and "train_loss" in lean[-1]


class _FakeMetric(fl.callbacks.Callback):
    """Puts a chosen sequence into the records, so early stopping's decisions are known in advance."""

    def __init__(self, values):
        self.values, self.params = values, {}

    def on_epoch_end(self, ctx):
        ctx.record["fake"] = self.values[ctx.epoch - 1]
        self.params[ctx.epoch] = jax.tree.map(jnp.copy, ctx.state.params)


def test_early_stopping_stops_and_restores_the_best_epoch():
    x, y = _problem()
    fake = _FakeMetric([5.0, 4.0, 3.0, 3.5, 3.6, 3.7, 1.0, 1.0])
    stopper = EarlyStopping("fake", patience=2)
    state, history = fl.fit(_state(), (x, y), loss=HEAD, epochs=8, batch_size=16, callbacks=[fake, stopper])
    assert len(history) == 5 and stopper.stopped_epoch == 5 and stopper.best_epoch == 3
    chex.assert_trees_all_equal(state.params, fake.params[3])


def test_early_stopping_restores_the_best_even_when_it_never_fired():
    x, y = _problem()
    fake = _FakeMetric([5.0, 1.0, 2.0, 3.0])
    stopper = EarlyStopping("fake", patience=10)
    state, history = fl.fit(_state(), (x, y), loss=HEAD, epochs=4, batch_size=16, callbacks=[fake, stopper])
    assert len(history) == 4 and stopper.stopped_epoch is None
    chex.assert_trees_all_equal(state.params, fake.params[2])


class _Interrupt(Exception):
    pass


def _interrupt_at(epoch):
    """A callback that kills the run at the end of ``epoch``, before that epoch's checkpoint."""

    def hook(ctx):
        if ctx.epoch == epoch:
            raise _Interrupt

    return LambdaCallback(on_epoch_end=hook)


def _same_history(a, b):
    assert len(a) == len(b)
    for ra, rb in zip(a, b):
        assert {k: v for k, v in ra.items() if k not in ("time", "examples_per_second")} == {
            k: v for k, v in rb.items() if k not in ("time", "examples_per_second")
        }


def test_resume_continues_early_stopping_where_it_was(tmp_path):
    """Interrupted after epoch 5 (best epoch 3, one epoch without improvement), resumed from the
    epoch-4 checkpoint: the counters and the best weights come back, so the run stops at epoch 6
    and restores epoch 3's weights, as the uninterrupted run does. A fresh EarlyStopping would take
    epoch 5 as its best and run on to epoch 8."""
    x, y = _problem()
    values = [5.0, 4.0, 3.0, 3.5, 3.6, 3.7, 1.0, 1.0]

    def run(run_dir, extra=(), resume=False):
        stopper = EarlyStopping("fake", patience=3)
        state, history = fl.fit(
            _state(),
            (x, y),
            loss=HEAD,
            epochs=8,
            batch_size=16,
            callbacks=[_FakeMetric(values), stopper, *extra],
            run_dir=run_dir,
            resume=resume,
        )
        return state, history, stopper

    reference, ref_history, ref_stopper = run(tmp_path / "ref")
    assert ref_stopper.stopped_epoch == 6 and ref_stopper.best_epoch == 3
    with pytest.raises(_Interrupt):
        run(tmp_path / "cut", extra=[_interrupt_at(5)])
    resumed, history, stopper = run(tmp_path / "cut", resume=True)
    assert (stopper.stopped_epoch, stopper.best_epoch, stopper.wait) == (6, 3, 3)
    chex.assert_trees_all_equal(resumed.params, reference.params)
    chex.assert_trees_all_equal(resumed.opt_state, reference.opt_state)
    _same_history(history, ref_history)
    lines = [json.loads(line) for line in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    _same_history(lines, ref_history)
    assert all("fake" in line for line in lines)  # written after the callbacks, with what they added


def test_early_stopping_counts_afresh_in_every_fit():
    x, y = _problem()
    stopper = EarlyStopping("fake", patience=1)
    fl.fit(
        _state(),
        (x, y),
        loss=HEAD,
        epochs=3,
        batch_size=16,
        callbacks=[_FakeMetric([1.0, 2.0, 3.0]), stopper],
    )
    assert stopper.stopped_epoch == 2
    fl.fit(
        _state(),
        (x, y),
        loss=HEAD,
        epochs=3,
        batch_size=16,
        callbacks=[_FakeMetric([5.0, 4.0, 3.0]), stopper],
    )
    assert stopper.stopped_epoch is None and stopper.best_epoch == 3 and stopper.best == 3.0


def test_best_metric_must_be_a_recorded_metric(tmp_path):
    x, y = _problem()
    with pytest.raises(FnlearnError, match=r"best_metric monitors 'val_los'.*val_loss"):
        fl.fit(
            _state(),
            (x, y),
            loss=HEAD,
            epochs=1,
            batch_size=16,
            eval=(x, y),
            run_dir=tmp_path,
            best_metric="val_los",
        )


def test_early_stopping_names_the_available_metrics():
    x, y = _problem()
    with pytest.raises(FnlearnError, match="train_loss"):
        fl.fit(_state(), (x, y), loss=HEAD, epochs=2, batch_size=16, callbacks=[EarlyStopping("train_los")])


def test_user_hook_sees_every_epoch():
    x, y = _problem()
    seen = []
    fl.fit(
        _state(),
        (x, y),
        loss=HEAD,
        epochs=3,
        batch_size=16,
        callbacks=[LambdaCallback(on_epoch_end=lambda ctx: seen.append(ctx.record["epoch"]))],
    )
    assert seen == [1, 2, 3]


def test_nonfinite_guard_names_the_step_and_metric():
    x, y = _problem()
    state = _state(tx=fl.optim.sgd(1e12))
    with pytest.raises(
        NonFiniteError, match=r"(loss|grad_norm|update_norm|accuracy) = (nan|inf|-inf) at step \d+"
    ):
        fl.fit(state, (x * 1e3, y), loss=HEAD, epochs=20, batch_size=16)


def test_skip_mode_needs_apply_if_finite_and_then_keeps_going():
    x, y = _problem()
    with pytest.raises(FnlearnError, match="apply_if_finite"):
        fl.fit(_state(), (x, y), loss=HEAD, epochs=1, batch_size=16, on_nonfinite="skip")

    def poisoned(outputs, y, weights=None):  # NaN loss and gradients on the padded last batch of each epoch
        nll = fl.losses.nll(HEAD)(outputs, y, weights)
        return nll * jnp.where(jnp.sum(weights) < 16, jnp.nan, 1.0)

    state = _state(tx=fl.optim.apply_if_finite(fl.optim.adam(1e-2), max_consecutive_errors=100))
    state, history = fl.fit(state, (x, y), loss=poisoned, epochs=3, batch_size=16, on_nonfinite="skip")
    assert [r["train_skipped_steps"] for r in history] == [1, 2, 3]  # one padded batch per epoch
    assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(state.params))


def test_streaming_path_matches_the_plain_step():
    x, y = _problem(n=48)
    batches = [(x[i : i + 16], y[i : i + 16]) for i in range(0, 48, 16)]
    state, history = fl.fit(_state(), batches, loss=HEAD, epochs=2)
    reference = _state()
    step = fl.train.make_train_step(HEAD)
    for _ in range(2):
        for batch in batches:
            reference, _ = step(reference, batch)
    chex.assert_trees_all_close(state.params, reference.params, rtol=1e-6)
    assert len(history) == 2


class _Batches:
    """Host batches, iterable again every epoch (as a data loader is)."""

    def __init__(self, x, y, size):
        self.x, self.y, self.size = x, y, size

    def __iter__(self):
        for i in range(0, len(self.x), self.size):
            yield self.x[i : i + self.size], self.y[i : i + self.size]


def test_streaming_steps_count_from_the_state_and_log_every(tmp_path):
    x, y = _problem(n=48)
    state, history = fl.fit(
        _state(), _Batches(x, y, 16), loss=HEAD, steps=4, log_every=2, run_dir=tmp_path, checkpoint_every=None
    )
    assert int(state.step) == 4 and [r["step"] for r in history] == [
        3,
        4,
    ]  # one pass of 3 batches, then 1 step
    state, _ = fl.fit(state, _Batches(x, y, 16), loss=HEAD, steps=6)  # trains on to step 6, not 4 more
    assert int(state.step) == 6
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [2, 3, 4]  # a log_every record, then the two epoch records
    assert {"train_loss", "train_accuracy", "examples_per_second"} <= set(history[0])


def test_streaming_resume_is_exact(tmp_path):
    x, y = _problem(n=48)
    model = fl.nn.mlp([6, 16, 3], dropout=0.3)  # the per-step keys must continue too
    reference, ref_history = fl.fit(
        _state(model), _Batches(x, y, 16), loss=HEAD, epochs=5, eval=(x, y), run_dir=tmp_path / "ref"
    )
    with pytest.raises(_Interrupt):
        fl.fit(
            _state(model),
            _Batches(x, y, 16),
            loss=HEAD,
            epochs=5,
            eval=(x, y),
            run_dir=tmp_path / "cut",
            callbacks=[_interrupt_at(3)],
        )
    resumed, history = fl.fit(
        _state(model),
        _Batches(x, y, 16),
        loss=HEAD,
        epochs=5,
        eval=(x, y),
        run_dir=tmp_path / "cut",
        resume=True,
    )
    chex.assert_trees_all_equal(resumed.params, reference.params)
    _same_history(history, ref_history)


def test_streaming_bad_input_gets_one_clear_error():
    x, y = _problem(n=48)
    bad = x.copy()
    bad[40, 2] = np.nan
    with pytest.raises(FnlearnError, match="streamed batch 3 of epoch 1.*NaN"):
        fl.fit(_state(), _Batches(bad, y, 16), loss=HEAD, epochs=1)
    with pytest.raises(FnlearnError, match="iterator, which runs out after one pass"):
        fl.fit(_state(), iter(list(_Batches(x, y, 16))), loss=HEAD, epochs=2)
    with pytest.raises(FnlearnError, match="yielded no batch in epoch 1"):
        fl.fit(_state(), [], loss=HEAD, epochs=1)
    with pytest.raises(FnlearnError, match=r"not \(x, y\) or \(x, y, weights\)"):
        fl.fit(_state(), [x[:16]], loss=HEAD, epochs=1)


def test_streaming_nonfinite_guard_names_the_step():
    x, y = _problem(n=48)
    with pytest.raises(NonFiniteError, match=r"at step \d+"):
        fl.fit(_state(tx=fl.optim.sgd(1e12)), _Batches(x * 1e3, y, 16), loss=HEAD, epochs=20)


def test_progress_bar_shows_epoch_loss_and_speed(monkeypatch):
    x, y = _problem()
    err = io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    fl.fit(_state(), (x, y), loss=HEAD, epochs=2, batch_size=16, progress=True)
    text = err.getvalue()
    assert "epoch=2" in text and "loss=" in text and "ex_per_s=" in text
    err.truncate(0)
    fl.fit(_state(), (x, y), loss=HEAD, epochs=2, batch_size=16)  # not a terminal: no bar
    assert err.getvalue() == ""
    fl.fit(_state(), _Batches(x, y, 16), loss=HEAD, epochs=2, progress=True)  # streamed: the same bar
    text = err.getvalue()
    assert "epoch=2" in text and "loss=" in text and "ex_per_s=" in text


# --------------------------------------------------------------------------------------------
# bad input, before anything is compiled


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda x, y: (x[:, :5], y), r"examples of shape \(5,\), but the model takes \(6,\)"),
        (lambda x, y: (x, np.where(y == 2, 7, y)), r"\[0, 3\)|outside"),
        (lambda x, y: (np.where(np.arange(50)[:, None] == 3, np.nan, x), y), "NaN"),
        (lambda x, y: (np.where(np.arange(50)[:, None] == 3, np.inf, x), y), "Inf"),
        (lambda x, y: (x[:0], y[:0]), "empty|no examples|at least one"),
        (lambda x, y: (x, y[:40]), "40|length"),
    ],
)
def test_bad_training_data_gets_one_clear_error(change, message):
    x, y = _problem()
    bad_x, bad_y = change(x, y)
    with pytest.raises(FnlearnError, match=message):
        fl.fit(_state(), (bad_x, bad_y), loss=HEAD, epochs=1, batch_size=8)


def test_batch_size_larger_than_the_dataset():
    x, y = _problem()
    with pytest.raises(FnlearnError, match="batch_size=64 but the data has 50 examples"):
        fl.fit(_state(), (x, y), loss=HEAD, epochs=1, batch_size=64)


def test_length_must_be_given_once():
    x, y = _problem()
    with pytest.raises(FnlearnError, match="exactly one of epochs"):
        fl.fit(_state(), (x, y), loss=HEAD, batch_size=8)
    with pytest.raises(FnlearnError, match="exactly one of epochs"):
        fl.fit(_state(), (x, y), loss=HEAD, epochs=1, steps=3, batch_size=8)
