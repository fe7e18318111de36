"""A sweep as one compiled program (runs.plans.group_key, runs.replica_runs) and sweep parts.

The grouped runs are checked against the sequential path on one tiny sweep, 2 variants x 2 seeds,
the variants differing in every kind of per-replica value at once (learning rate under a cosine
schedule, so the schedule's peak is per replica; weight decay; dropout; Adam's b1): every run
directory must be what the sequential path writes. A grouped sweep interrupted after
epoch 1 of 3 and resumed must equal the uninterrupted one, and the parts of a sweep must cover its
runs exactly once and compare to the same table.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fnlearn as fl
from fnlearn import cli
from fnlearn import config as fconfig
from fnlearn.runs import replica_runs
from fnlearn.runs.plans import group_key, plan_runs, sweep_part

CONFIGS = Path(__file__).parent.parent / "configs"
SWEEPS = pytest.mark.xdist_group("sweep_program")  # one worker trains the module's sweeps once for all
TINY = """\
name = "tiny"
[data]
name = "two_moons"
options = {n = 120}
val = 0.2
test = 0.2
[model]
sizes = [8]
dropout = 0.1
[optimizer]
name = "adam"
learning_rate = 1e-2
[optimizer.schedule]
name = "cosine_decay"
[training]
epochs = 3
batch_size = 24
driver = "scan"     # one program each way, no probe (auto is tested in test_replicas and test_drivers)
[logging]
plots = false
[sweep]
seeds = 2
variants = [
  { label = "a", "optimizer.learning_rate" = 1e-2, "optimizer.weight_decay" = 1e-3, "model.dropout" = 0.1, "optimizer.options" = { b1 = 0.9 } },
  { label = "b", "optimizer.learning_rate" = 3e-2, "optimizer.weight_decay" = 1e-2, "model.dropout" = 0.3, "optimizer.options" = { b1 = 0.8 } },
]
"""
RUNS = [f"{v}/seed_{s}" for v in ("a", "b") for s in (0, 1)]
TIMES = ("time", "examples_per_second", "train_time_s", "wall_time_s", "driver")


def _groups(path: Path, grid=(), seeds=None) -> list[list[str]]:
    config = fconfig.load(path)
    keys: dict = {}
    for label, run in fconfig.expand_sweep(config, grid, seeds):
        for plan in plan_runs(run, Path(label), label):
            keys.setdefault(group_key(plan.config) or str(plan.run_dir), []).append(str(plan.run_dir))
    return list(keys.values())


def test_the_shipped_sweeps_group_the_runs_that_differ_only_in_per_replica_values():
    optimizers = _groups(CONFIGS / "optimizers.toml")  # 8 optimizers or option sets x 2 seeds
    assert [len(g) for g in optimizers] == [2] * 8 and optimizers[0] == ["sgd/seed_0", "sgd/seed_1"]
    regularisation = _groups(CONFIGS / "regularisation.toml")  # l2, dropout on/off, early stopping
    assert [len(g) for g in regularisation] == [3] * 4
    assert [len(g) for g in _groups(CONFIGS / "deep_mlp.toml")] == [1] * 4  # norm x residual, 1 seed
    digits = CONFIGS / "digits_mlp.toml"
    per_replica = [
        "optimizer.learning_rate=1e-3,1e-2",
        "optimizer.weight_decay=1e-4,1e-3",
        "model.dropout=0.1,0.3",
    ]
    assert [len(g) for g in _groups(digits, per_replica, 2)] == [16]
    for structural in ("optimizer.name=sgd,adam", "model.sizes=[8],[16]", "training.batch_size=16,32"):
        assert [len(g) for g in _groups(digits, [structural], 2)] == [2, 2], structural
    assert [len(g) for g in _groups(digits, ["optimizer.weight_decay=0,1e-3"])] == [1, 1]  # decay on/off
    assert [len(g) for g in _groups(digits, ["training.replicas=false"], 2)] == [1, 1]


@settings(max_examples=30, deadline=None)
@given(lrs=st.integers(1, 4), sizes=st.integers(1, 3), seeds=st.integers(1, 4), parts=st.integers(1, 12))
def test_the_parts_of_a_sweep_cover_every_run_exactly_once(lrs, sizes, seeds, parts):
    config = fconfig.load(CONFIGS / "digits_mlp.toml")
    grid = [
        "optimizer.learning_rate=" + ",".join(str(0.001 * (i + 1)) for i in range(lrs)),
        "model.sizes=" + ",".join(f"[{8 * (i + 1)}]" for i in range(sizes)),
    ]
    runs = fconfig.expand_sweep(config, grid, seeds)
    plans = [plan for label, run in runs for plan in plan_runs(run, Path(label), label)]
    parts = min(parts, len(plans))
    slices = [sweep_part(plans, i, parts) for i in range(1, parts + 1)]
    names = [str(plan.run_dir) for part in slices for plan in part]
    assert sorted(names) == sorted(str(plan.run_dir) for plan in plans)  # each run exactly once
    assert all(slices) and max(map(len, slices)) - min(map(len, slices)) <= max(lrs * seeds, 1)
    assert [str(p.run_dir) for p in sweep_part(plans, 1, parts)] == [str(p.run_dir) for p in slices[0]]
    if parts <= sizes:  # enough groups: none is split
        keys = {group_key(p.config): i for i, part in enumerate(slices) for p in part}
        assert len(keys) == sizes


def _sweep(root: Path, out: str, *extra) -> int:
    return cli.main(["sweep", str(root / "tiny.toml"), "--out", str(root / out), "--quiet", *extra])


@pytest.fixture(scope="session")  # session: kept on its worker until the end, never built twice
def sweeps(tmp_path_factory):
    """The tiny sweep three ways: sequential; grouped (one program for the 4 runs), interrupted
    after epoch 1 of 3 and resumed; part 2 of 2."""
    root = tmp_path_factory.mktemp("sweeps")
    (root / "tiny.toml").write_text(TINY)
    with pytest.MonkeyPatch.context() as patch:  # the sequential path, with the same config.toml
        patch.setattr(replica_runs, "group_key", lambda config: None)
        assert _sweep(root, "sequential") == 0
    original = replica_runs._GroupRuns.after_epoch

    def interrupt(self, states, epoch, step, last):
        original(self, states, epoch, step, last)
        raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(replica_runs._GroupRuns, "after_epoch", interrupt)
        assert _sweep(root, "resumed") == 130
    assert [json.loads(line)["epoch"] for line in (root / "resumed" / RUNS[0] / "metrics.jsonl").open()] == [
        1
    ]
    assert _sweep(root, "resumed", "--resume") == 0
    assert _sweep(root, "part2", "--part", "2/2") == 0
    for run in RUNS[:2]:  # part 1/2, the first half: as the resumed sweep trained it (saves a sweep)
        shutil.copytree(root / "resumed" / run, root / "part1" / run)
    return root


def _same_run(a: Path, b: Path) -> None:
    """Two run directories hold the same run: config.toml byte-equal, metrics and summary equal
    but for times, within float32 rounding."""
    assert (a / "config.toml").read_bytes() == (b / "config.toml").read_bytes()
    rows = [[json.loads(line) for line in (d / "metrics.jsonl").open()] for d in (a, b)]
    assert [list(r) for r in rows[0]] == [list(r) for r in rows[1]]  # the same keys, in order
    for x, y in zip(*rows):
        for key in set(x) - set(TIMES):
            np.testing.assert_allclose(x[key], y[key], rtol=2e-5, atol=1e-6, err_msg=key)
    summaries = [json.loads((d / "summary.json").read_text()) for d in (a, b)]
    assert list(summaries[0]) == list(summaries[1])
    for key in set(summaries[0]) - set(TIMES) - {"final", "best", "test"}:
        assert summaries[0][key] == summaries[1][key], key
    for key in ("final", "best", "test"):
        assert list(summaries[0][key]) == list(summaries[1][key]), key
        for name, value in summaries[0][key].items():
            other = summaries[1][key][name]
            if isinstance(value, dict):  # best: value, epoch, step
                assert (value["epoch"], value["step"]) == (other["epoch"], other["step"]), name
                value, other = value["value"], other["value"]
            np.testing.assert_allclose(value, other, rtol=2e-5, atol=1e-6, err_msg=f"{key}.{name}")


@SWEEPS
@pytest.mark.parametrize("run", RUNS)
def test_a_grouped_run_resumed_after_epoch_1_is_the_uninterrupted_sequential_run(sweeps, run):
    """The 4 runs (2 learning rates x 2 seeds) were one program, stopped after epoch 1 of 3 and
    resumed from their checkpoints: each equals its sequential run, never interrupted."""
    _same_run(sweeps / "resumed" / run, sweeps / "sequential" / run)
    grouped = json.loads((sweeps / "resumed" / run / "summary.json").read_text())
    assert grouped["driver"]["driver"] == "replicas" and "4 runs" in grouped["driver"]["reason"]


@SWEEPS
def test_a_grouped_runs_checkpoint_restores_as_a_sequential_one(sweeps):
    loaded = [fl.runs.load(sweeps / path / RUNS[-1]) for path in ("resumed", "sequential")]
    assert int(loaded[0].state.step) == int(loaded[1].state.step) == 3 * 3  # 3 epochs x 3 steps
    np.testing.assert_allclose(
        fl.tree.global_norm(loaded[0].state.params), fl.tree.global_norm(loaded[1].state.params), rtol=1e-5
    )


@SWEEPS
def test_a_part_trains_its_slice_and_each_of_its_runs_is_the_single_sweeps(sweeps):
    trained = sorted(f"{p.parent.name}/{p.name}" for p in (sweeps / "part2").glob("*/seed_*"))
    assert trained == RUNS[2:]  # one group of 4 in 2 parts: its second half (sweep_part's rule)
    for run in trained:
        _same_run(sweeps / "part2" / run, sweeps / "sequential" / run)


def _table(capsys, out: Path, *paths) -> list[str]:
    capsys.readouterr()
    assert cli.main(["compare", *map(str, paths), "--out", str(out / "compare.png")]) == 0
    rows = [line.split("|")[1:-2] for line in capsys.readouterr().out.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in row] for row in rows]  # the wall-time column dropped


@SWEEPS
def test_the_parts_compare_to_the_single_sweeps_table(sweeps, capsys):
    whole = _table(capsys, sweeps, sweeps / "sequential")
    assert whole[0][-1] == "epochs" and len(whole) == 4
    assert _table(capsys, sweeps, sweeps / "part1", sweeps / "part2") == whole


@SWEEPS
@pytest.mark.parametrize(
    ("part", "message"),
    [
        ("2", "expected I/N such as 2/4"),
        ("0/2", "I must be between 1 and N"),
        ("3/2", "I must be between 1 and N"),
        ("1/5", "the sweep has only 4 runs"),
    ],
)
def test_a_bad_part_is_one_line_and_trains_nothing(sweeps, part, message, capsys):
    assert _sweep(sweeps, "bad", "--part", part) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (sweeps / "bad").exists()
