"""Labels, tables and figures a reader sees: short labels of the settings that differ, tables
that fit 120 characters, the sweep's own figure, on hand-made run directories and on the shipped
sweeps' configs (run directories written from their expanded configs, without training)."""

import csv
import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fnlearn import config as C
from fnlearn import report
from fnlearn.report import labels
from fnlearn.runs import execute

ROOT = __import__("pathlib").Path(__file__).parent.parent


def write_run(directory, config, *, label=None, acc=0.9, curve=(1.0, 0.6, 0.4), examples=None):
    """A run directory from a Config: its TOML, three epochs of metrics, a summary."""
    directory.mkdir(parents=True)
    (directory / "config.toml").write_text(C.dumps(config))
    rows = [
        {
            "step": 10 * e,
            "epoch": e,
            "train_loss": loss + 0.1,
            "val_loss": loss,
            "val_accuracy": acc - loss / 10,
        }
        for e, loss in enumerate(curve, 1)
    ]
    (directory / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = {"status": "finished", "test": {"accuracy": acc, "loss": 1 - acc}, "wall_time_s": 1.0}
    summary |= {"label": label} if label else {}
    summary |= {"examples": {"train": examples}} if examples else {}
    (directory / "summary.json").write_text(json.dumps(summary))
    return directory


def shipped_sweep(tmp_path, name, seeds=2):
    """The shipped sweep ``configs/NAME.toml`` as run directories (as `fnlearn sweep` lays them
    out), each seed's accuracy a little different."""
    config = C.load(ROOT / "configs" / f"{name}.toml")
    for i, (label, run) in enumerate(C.expand_sweep(config, [], seeds)):
        for plan in execute.plan_runs(run, tmp_path / name / label, label):
            seed = plan.config.training.seeds[0]
            write_run(plan.run_dir, plan.config, label=label, acc=0.8 + i / 100 + seed / 1000)
    return report.find_runs([tmp_path / name])


@pytest.mark.parametrize(
    "name, expected",
    [
        ("optimizers", ["sgd", "momentum", "nesterov", "ema_momentum", "adagrad", "rmsprop", "adam", "lion"]),
        ("regularisation", ["none", "l2", "dropout", "early_stopping"]),
    ],
)
def test_shipped_sweeps_are_labelled_by_their_variants_and_fit_120_characters(tmp_path, name, expected):
    runs = shipped_sweep(tmp_path, name)
    columns, rows = report.compare_table(runs)
    assert sorted(row["run"] for row in rows) == sorted(expected) and {row["seeds"] for row in rows} == {2}
    table = report.markdown_table(columns, rows)
    assert max(len(line) for line in table.splitlines()) <= 120, table
    assert "test_accuracy" in table.splitlines()[0]
    report.write_csv(tmp_path / "t.csv", columns, rows)
    with open(tmp_path / "t.csv", newline="") as handle:
        header = next(csv.reader(handle))
    assert len(header) > len(table.splitlines()[0].split("|")) - 2  # every column, full settings too
    assert "optimizer.learning_rate" in header if name == "optimizers" else "model.dropout" in header


def test_a_grid_sweep_is_labelled_by_short_names_not_folder_labels(tmp_path):
    config = C.load(ROOT / "configs" / "optimizers.toml", ["sweep.variants=[]"])
    grid = ["optimizer.learning_rate=1e-3,3e-3", "model.sizes=[64],[256,128]", "optimizer.name=sgd,adam"]
    for label, run in C.expand_sweep(config, grid, 1):
        write_run(tmp_path / "g" / label, run, label=label)
    found = labels.grouping(report.find_runs([tmp_path / "g"]))
    got = {g.label for g in found.groups}
    assert "sizes=[256,128] · lr=3e-3 · optimizer=adam" in got and len(got) == 8  # full keys' order
    assert found.key == ["sizes = model.sizes", "lr = optimizer.learning_rate", "optimizer = optimizer.name"]


def test_the_readme_example_leaves_filled_in_schedule_options_out(tmp_path):
    """digits_mlp's cosine schedule gets init_value = learning_rate and decay_steps = its steps:
    they differ between the README's two runs but are not what the user changed."""
    import dataclasses

    from fnlearn.runs.build import resolve_schedule

    for name, sets in (("main", []), ("lr", ["optimizer.learning_rate=3e-3", "model.sizes=[256,128]"])):
        config = C.load(ROOT / "configs" / "digits_mlp.toml", sets)
        schedule = resolve_schedule(config.optimizer, 30 * math.ceil(1437 / 32))  # as build does
        config = dataclasses.replace(
            config, optimizer=dataclasses.replace(config.optimizer, schedule=schedule)
        )
        assert schedule.options["decay_steps"] == 1350
        write_run(tmp_path / name, config, examples=1437)
    runs = report.find_runs([tmp_path / "main", tmp_path / "lr"])
    assert [label for label, _ in report.group_runs(runs)] == [
        "sizes=[128,128] · lr=2e-3",
        "sizes=[256,128] · lr=3e-3",
    ]
    _, rows = report.compare_table(runs)
    assert json.loads(rows[1]["settings"]["optimizer.schedule.options.init_value"]) == 3e-3  # in the CSV


def test_a_length_set_by_the_user_stays_in_the_label(tmp_path):
    for steps in (100, 200):
        config = C.loads(
            "",
            ["optimizer.schedule.name='cosine_decay'", f"optimizer.schedule.options={{decay_steps={steps}}}"],
            name="h",
        )
        write_run(tmp_path / str(steps), config, examples=1000)  # 3 epochs x 32 batches: not 100/200
    assert sorted(label for label, _ in report.group_runs(report.find_runs([tmp_path]))) == [
        "decay_steps=100",
        "decay_steps=200",
    ]


def test_no_runs_make_an_empty_table():
    assert report.compare_table([]) == (["run", "seeds"], []) and report.group_runs([]) == []


def test_short_names_grow_until_they_are_unique_and_abbreviate():
    names = report.short_names(["optimizer.learning_rate", "loss.options.scale", "optimizer.options.scale"])
    assert names == {
        "optimizer.learning_rate": "lr",
        "loss.options.scale": "loss.options.scale",
        "optimizer.options.scale": "optimizer.options.scale",
    }
    assert report.short_names(["model.sizes", "data.augment.noise_std"]) == {
        "model.sizes": "sizes",
        "data.augment.noise_std": "noise_std",
    }


@pytest.mark.parametrize(
    "value, shown",
    [
        (0.003, "3e-3"),
        (1.5e-05, "1.5e-5"),
        (0.25, "0.25"),
        (2.0, "2"),
        (0.0, "0"),
        (2e6, "2e6"),
        ([256, 128], "[256,128]"),
        ("adam", "adam"),
        (True, "true"),
    ],
)
def test_values_are_compact(value, shown):
    assert report.format_value(json.dumps(value)) == shown


@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e300, max_value=1e300))
def test_a_compact_number_reads_back_to_three_figures(value):
    shown = float(report.format_value(json.dumps(value)))
    assert math.isclose(shown, value, rel_tol=5e-3, abs_tol=0)


def test_long_labels_become_numbers_with_a_key_and_no_line_passes_the_width(tmp_path):
    for i in range(3):
        config = C.loads("", [f"optimizer.learning_rate={10.0**-i}"], name="x" * 70 + str(i))
        write_run(tmp_path / str(i), config, acc=0.5 + i / 10)
    columns, rows = report.compare_table(report.find_runs([tmp_path]))
    table = report.markdown_table(columns, rows)
    lines = table.splitlines()
    assert all(len(line) <= 120 for line in lines)
    assert "| #1 " in table and any(line.startswith("#3: " + "x" * 70) or "#3: x" in line for line in lines)
    assert "not shown (all are in compare --csv FILE" in table  # columns left out are named
    assert len(report.markdown_table(columns, rows, width=None).splitlines()[0]) > 120  # unfitted


def test_group_curve_is_the_mean_and_sample_std_over_seeds(tmp_path):
    import numpy as np

    curves = [(1.0, 0.5, 0.3), (0.8, 0.7, 0.2), (0.9, 0.4, 0.1)]
    for seed, curve in enumerate(curves):
        write_run(tmp_path / f"s{seed}", C.loads("", [f"training.seeds=[{seed}]"], name="h"), curve=curve)
    runs = report.find_runs([tmp_path])
    xs, means, stds = report.group_curve(runs, "val_loss", "epoch")
    assert xs == [1, 2, 3]
    np.testing.assert_allclose(means, np.mean(curves, axis=0))
    np.testing.assert_allclose(stds, np.std(curves, axis=0, ddof=1))
    _, _, one = report.group_curve(runs[:1], "val_loss", "epoch")
    assert all(math.isnan(s) for s in one)


def test_identical_curves_are_found():
    from fnlearn.report.figures import same_curves

    a = ([1, 2], [1.0, 0.5], [])
    assert same_curves([a, ([1, 2], [1.0, 0.6], []), ([1, 2], [1.0 + 1e-7, 0.5], [])]) == {2: 0}


def test_a_sweep_report_is_a_figure_a_table_and_a_csv(tmp_path):
    import matplotlib.image

    config = C.load(ROOT / "configs" / "optimizers.toml", ["sweep.variants=[]"])
    for label, run in C.expand_sweep(config, ["optimizer.learning_rate=1e-3,1e-2,1e-1"], 2):
        for plan in execute.plan_runs(run, tmp_path / "sw" / label, label):
            write_run(plan.run_dir, plan.config, label=label, acc=0.7 + plan.config.optimizer.learning_rate)
    written = report.write_sweep_report(tmp_path / "sw")
    assert [p.name for p in written] == ["sweep.csv", "sweep.md", "sweep.png"]
    text = (tmp_path / "sw" / "sweep.md").read_text()
    assert "| lr=0.1 " in text and "- lr = optimizer.learning_rate" in text and "(sweep.png)" in text
    assert max(len(line) for line in text.splitlines()) <= 120
    height, width, _ = matplotlib.image.imread(written[2]).shape
    assert height > 400 and width > 600  # curves above the metric against the swept rate


def test_more_than_ten_groups_are_drawn_as_small_multiples(tmp_path):
    import matplotlib.image

    for i in range(12):
        config = C.loads("", [f"optimizer.learning_rate={(i + 1) / 1000}"], name="h")
        write_run(tmp_path / f"r{i}", config, curve=(1.0, 0.5 + i / 100, 0.4))
    out = report.plot_compare(report.find_runs([tmp_path]), tmp_path / "c.png")
    height, width, _ = matplotlib.image.imread(out).shape
    assert height > 450 and width > 800  # a grid of panels (4 x 3), not one crowded axes


def test_the_label_key_wraps_at_120_characters(tmp_path):
    keys = ["optimizer.learning_rate", "model.sizes", "training.batch_size", "optimizer.weight_decay"]
    keys += ["loss.l2", "model.dropout", "data.augment.noise_std", "optimizer.clip_norm"]
    for i, values in enumerate(
        [
            ("1e-3", "[8]", "16", "0.0", "0.0", "0.0", "0.0", "0.0"),
            ("1e-2", "[4]", "8", "0.1", "0.1", "0.1", "0.1", "1.0"),
        ]
    ):
        write_run(tmp_path / str(i), C.loads("", [f"{k}={v}" for k, v in zip(keys, values)], name="h"))
    text = report.key_text(report.find_runs([tmp_path]))
    lines = text.splitlines()
    assert len(lines) > 1 and all(len(line) <= 120 for line in lines)
    assert "lr = optimizer.learning_rate" in text and "clip_norm = optimizer.clip_norm" in text
