"""fnlearn.replicas: S runs in one program equal S single runs; per-replica stopping and NaN masks."""

import json

import chex
import jax
import numpy as np
import pytest

import fnlearn as fl
from fnlearn.errors import FnlearnError
from fnlearn.optim.hyperparams import inject_hyperparams

HEAD = fl.distributions.get("categorical")


def _problem(n=60, d=6, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int32) + (x[:, 1] > 1).astype(np.int32)
    return x, y


def test_each_replica_equals_a_single_run_with_its_seed_and_hyperparameters(tmp_path):
    x, y = _problem()
    model = fl.nn.mlp([6, 16, 3], dropout=0.1)
    tx = inject_hyperparams(fl.optim.adamw)(learning_rate=1e-2, weight_decay=1e-4)
    seeds, lrs, wds, drops = [0, 1, 2], [1e-2, 3e-3, 3e-2], [1e-4, 1e-2, 0.0], [0.1, 0.05, 0.3]
    states, info = fl.replicas.create(
        model, tx, seeds, hyperparams={"learning_rate": lrs, "weight_decay": wds, "dropout": drops}
    )
    states, history = fl.replicas.fit(
        states, (x, y), loss=HEAD, epochs=3, batch_size=16, eval=(x, y), info=info, run_dir=tmp_path
    )
    for i, seed in enumerate(seeds):
        single_model = fl.nn.mlp([6, 16, 3], dropout=drops[i])
        single = fl.TrainState.create(
            single_model, fl.optim.adamw(lrs[i], weight_decay=wds[i]), jax.random.key(seed)
        )
        single, single_history = fl.fit(single, (x, y), loss=HEAD, epochs=3, batch_size=16, eval=(x, y))
        chex.assert_trees_all_close(
            fl.replicas.replica(states, i).params, single.params, rtol=2e-4, atol=2e-5
        )
        mine = [r for r in history if r["replica"] == i]
        np.testing.assert_allclose(
            [r["val_loss"] for r in mine], [r["val_loss"] for r in single_history], rtol=1e-4
        )
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert (
        len(lines) == 9
        and lines[4]["replica"] == 1
        and lines[4]["seed"] == 1
        and lines[4]["learning_rate"] == pytest.approx(3e-3)
    )
    assert lines[4]["train_learning_rate"] == pytest.approx(3e-3)


def test_the_loop_and_scan_drivers_train_the_same_replicas_and_auto_measures(monkeypatch):
    """Same steps either way (a one-step program per step, or one scan per epoch); "auto", made to
    measure, records both times and trains as the driver it chose, on a copy of the states."""
    from fnlearn import drivers

    x, y = _problem()
    tx = inject_hyperparams(fl.optim.sgd)(learning_rate=0.1)
    states, _ = fl.replicas.create(
        fl.nn.mlp([6, 8, 3]), tx, [0, 1], hyperparams={"learning_rate": [0.1, 0.05]}
    )

    def run(driver):
        return fl.replicas.fit(states, (x, y), loss=HEAD, epochs=2, batch_size=16, driver=driver)

    (scan, scan_history), (loop, loop_history) = run("scan"), run("loop")
    chex.assert_trees_all_close(loop.params, scan.params, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        [r["train_loss"] for r in loop_history], [r["train_loss"] for r in scan_history], rtol=1e-5
    )
    assert loop_history.driver == {
        "driver": "loop",
        "reason": "asked for",
        "loop_s_per_step": None,
        "scan_s_per_step": None,
    }
    forced = {
        "MEASURE_ABOVE_S": 0.0,
        "PROBE_BUDGET_S": 0.0,
        "SCAN_PROBE_LENGTHS": (2, 2),
        "SCAN_PROBE_MAX_CALL_S": 0.0,
    }
    for name, value in forced.items():  # measure, with a 6-step probe of the 8-step run
        monkeypatch.setattr(drivers, name, value)
    auto, history = run("auto")
    assert history.driver["reason"].startswith("measured") and history.driver["scan_s_per_step"] > 0
    chosen = loop if history.driver["driver"] == "loop" else scan
    chex.assert_trees_all_close(auto.params, chosen.params, rtol=1e-6, atol=1e-7)
    with pytest.raises(FnlearnError, match="driver"):
        run("fast")


@pytest.mark.parametrize("driver", ["scan", "loop"])
def test_a_diverging_replica_is_frozen_and_the_others_go_on(driver):
    x, y = _problem()
    tx = inject_hyperparams(fl.optim.sgd)(learning_rate=0.1)
    states, info = fl.replicas.create(
        fl.nn.mlp([6, 16, 3]), tx, [0, 1], hyperparams={"learning_rate": [0.1, 1e30]}
    )
    states, history = fl.replicas.fit(
        states, (x * 100, y), loss=HEAD, epochs=4, batch_size=16, info=info, driver=driver
    )
    last = {r["replica"]: r for r in history if r["epoch"] == 4}
    assert last[1]["diverged"] and not last[1]["active"]
    assert not last[0]["diverged"] and last[0]["active"]
    for leaf in jax.tree.leaves(states.params):
        assert np.all(np.isfinite(np.asarray(leaf)))  # frozen at its last finite state


def test_per_replica_early_stopping_freezes_and_restores_each_replica():
    x, y = _problem()
    tx = inject_hyperparams(fl.optim.sgd)(learning_rate=0.1)
    # replica 1 learns nothing (lr 0): its validation loss never improves after epoch 1
    states, info = fl.replicas.create(
        fl.nn.mlp([6, 16, 3]), tx, [0, 0], hyperparams={"learning_rate": [0.05, 0.0]}
    )
    stopper = fl.callbacks.EarlyStopping("val_loss", patience=2)
    initial = states
    states, history = fl.replicas.fit(
        states, (x, y), loss=HEAD, epochs=8, batch_size=16, eval=(x, y), early_stopping=stopper, info=info
    )
    fresh = fl.replicas.create(fl.nn.mlp([6, 16, 3]), tx, [0, 0])[0]
    chex.assert_trees_all_equal(initial.params, fresh.params)  # the caller's arrays were not donated
    by_replica = {i: [r for r in history if r["replica"] == i] for i in (0, 1)}
    assert [r["active"] for r in by_replica[1]][:3] == [True, True, False]
    assert all(r["active"] for r in by_replica[0])
    assert max(r["step"] for r in history) == 8 * 4  # the program ran on for the replica still improving
    best = min(by_replica[0], key=lambda r: r["val_loss"])
    assert history.best_epoch == [best["epoch"], 1] and history.stopped_early == [False, True]
    restored = fl.evaluate(fl.replicas.replica(states, 0), (x, y), loss=HEAD)
    assert restored["loss"] == pytest.approx(best["val_loss"], rel=1e-5)


def test_create_checks_its_arguments():
    model = fl.nn.mlp([6, 8, 3])
    with pytest.raises(FnlearnError, match="one value per replica"):
        fl.replicas.create(model, fl.optim.sgd(0.1), [0, 1], hyperparams={"dropout": [0.1]})
    with pytest.raises(FnlearnError, match="inject_hyperparams"):
        fl.replicas.create(model, fl.optim.sgd(0.1), [0, 1], hyperparams={"learning_rate": [0.1, 0.2]})
    with pytest.raises(FnlearnError, match="no dropout layer"):
        fl.replicas.create(model, fl.optim.sgd(0.1), [0, 1], hyperparams={"dropout": [0.1, 0.2]})
    with pytest.raises(FnlearnError, match="Known: dropout, learning_rate"):
        fl.replicas.create(
            model, inject_hyperparams(fl.optim.sgd)(learning_rate=0.1), [0, 1], hyperparams={"lr": [0.1, 0.2]}
        )
