"""fnlearn.report on hand-made run directories: numbers against numpy, CSV read back by csv."""

import csv
import json

import numpy as np
import pytest

from fnlearn import config as C
from fnlearn import report
from fnlearn.errors import FnlearnError


def make_run(
    directory,
    *,
    lr=1e-3,
    seed=0,
    val_loss=(1.0, 0.5, 0.7),
    val_acc=(0.5, 0.8, 0.75),
    test=None,
    status="finished",
    torn=False,
    label=None,
):
    """A run directory as fnlearn train leaves it: config.toml, metrics.jsonl, summary.json."""
    directory.mkdir(parents=True)
    config = C.loads("", [f"optimizer.learning_rate={lr}", f"training.seeds=[{seed}]"], name="hand")
    (directory / "config.toml").write_text(C.dumps(config))
    lines = []
    for epoch, (loss, acc) in enumerate(zip(val_loss, val_acc), 1):
        lines.append(
            {"step": 10 * epoch - 5, "epoch": epoch - 0.5, "train_loss": 2.0 / epoch + 0.1}
        )  # a log_every point
        lines.append(
            {
                "step": 10 * epoch,
                "epoch": epoch,
                "time": 0.1 * epoch,
                "train_loss": 2.0 / epoch,
                "train_learning_rate": lr,
                "train_grad_norm": 1.0,
                "val_loss": loss,
                "val_accuracy": acc,
            }
        )
    text = "".join(json.dumps(line) + "\n" for line in lines)
    if torn:
        text += '{"step": 99, "val_lo'
    (directory / "metrics.jsonl").write_text(text)
    if test is not None:
        summary = {
            "status": status,
            "test": test,
            "wall_time_s": 2.0 + seed,
            **({"label": label} if label else {}),
        }
        (directory / "summary.json").write_text(json.dumps(summary))
    return directory


def test_final_and_best_against_numpy(tmp_path):
    run = report.read_run(make_run(tmp_path / "a", val_loss=(1.0, 0.4, 0.6), val_acc=(0.5, 0.7, 0.9)))
    final, best = report.final_metrics(run.metrics), report.best_metrics(run.metrics)
    assert final == {
        "train_loss": 2.0 / 3,
        "val_loss": 0.6,
        "val_accuracy": 0.9,
    }  # no learning rate or norms
    assert best["val_loss"] == {"value": 0.4, "epoch": 2, "step": 20}
    assert best["val_accuracy"]["value"] == np.max([0.5, 0.7, 0.9]) and best["val_accuracy"]["epoch"] == 3
    assert best["train_loss"]["value"] == np.min([2.0, 1.0, 2.0 / 3, 2.1, 1.1, 2.0 / 3 + 0.1])


def test_torn_last_line_is_skipped_but_a_broken_middle_line_is_an_error(tmp_path):
    run = report.read_run(make_run(tmp_path / "a", torn=True))
    assert len(run.metrics) == 6
    path = tmp_path / "a" / "metrics.jsonl"
    path.write_text("{}\nnot json\n{}\n")
    with pytest.raises(FnlearnError, match="line 2 is not a JSON object"):
        report.read_metrics(path)


def test_groups_by_config_without_seeds_and_gives_mean_and_sample_std(tmp_path):
    accs = {1e-3: [0.90, 0.92, 0.97], 1e-2: [0.80, 0.85]}
    for lr, values in accs.items():
        for seed, acc in enumerate(values):
            make_run(
                tmp_path / f"lr{lr}" / f"seed_{seed}",
                lr=lr,
                seed=seed,
                test={"accuracy": acc, "loss": 1 - acc},
                val_loss=(1.0, 0.5 + seed / 10),
                val_acc=(0.5, acc),
            )
    runs = report.find_runs([tmp_path])
    assert len(runs) == 5
    columns, rows = report.compare_table(runs)
    assert columns[:4] == ["run", "seeds", "test_accuracy", "test_loss"]
    by_label = {row["run"]: row for row in rows}
    assert set(by_label) == {"lr=1e-3", "lr=0.01"}  # the key's last part, abbreviated
    for lr, values in accs.items():
        row = by_label["lr=1e-3" if lr == 1e-3 else "lr=0.01"]
        assert row["seeds"] == len(values)
        mean, std = row["test_accuracy"]
        np.testing.assert_allclose(mean, np.mean(values))
        np.testing.assert_allclose(std, np.std(values, ddof=1))
        best = [min(1.0, 0.5 + s / 10) for s in range(len(values))]
        np.testing.assert_allclose(row["best val_loss"][0], np.mean(best))
        np.testing.assert_allclose(row["wall time (s)"][0], np.mean([2.0 + s for s in range(len(values))]))
    table = report.markdown_table(columns, rows)
    lines = [line for line in table.splitlines() if line.startswith("|")]
    assert [cell.strip() for cell in lines[0].split("|")[1:4]] == ["run", "seeds", "test_accuracy"]
    assert len(lines) == 4 and len({len(line) for line in lines}) == 1  # padded to one width
    assert f"{np.mean(accs[1e-3]):.4g} ± {np.std(accs[1e-3], ddof=1):.2g}" in table


def test_one_seed_shows_the_value_without_std(tmp_path):
    make_run(tmp_path / "a", test={"accuracy": 0.5})
    columns, rows = report.compare_table(report.find_runs([tmp_path / "a"]))
    assert rows[0]["run"] == "hand" and rows[0]["test_accuracy"] == (0.5, None)
    assert "| hand | 1     | 0.5           |" in report.markdown_table(columns, rows)


def test_csv_reads_back_the_numbers(tmp_path):
    for seed, acc in enumerate([0.7, 0.9]):
        make_run(tmp_path / "runs" / f"s{seed}", seed=seed, test={"accuracy": acc})
    make_run(tmp_path / "runs" / "other", lr=0.1, test={"accuracy": 0.1})
    columns, rows = report.compare_table(report.find_runs([tmp_path / "runs"]))
    report.write_csv(tmp_path / "t.csv", columns, rows)
    with open(tmp_path / "t.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    row = next(r for r in table if r["run"].endswith("1e-3"))
    assert float(row["test_accuracy"]) == pytest.approx(0.8) and float(
        row["test_accuracy std"]
    ) == pytest.approx(np.std([0.7, 0.9], ddof=1))
    other = next(r for r in table if r["run"].endswith("0.1"))
    assert other["seeds"] == "1" and other["test_accuracy std"] == ""


def test_diverged_runs_are_counted(tmp_path):
    make_run(tmp_path / "a", seed=0, test={"accuracy": 0.9})
    make_run(tmp_path / "b", seed=1, test={}, status="diverged")
    columns, rows = report.compare_table(report.find_runs([tmp_path]))
    assert "diverged" in columns and rows[0]["diverged"] == "1/2"
    assert rows[0]["test_accuracy"] == (0.9, None)


def test_not_a_run_directory(tmp_path):
    with pytest.raises(FnlearnError, match="is not a run directory: it has no config.toml"):
        report.read_run(tmp_path)
    with pytest.raises(FnlearnError, match="holds no run directories"):
        report.find_runs([tmp_path])
    with pytest.raises(FnlearnError, match="does not exist"):
        report.find_runs([tmp_path / "nope"])


def test_plots_are_written(tmp_path):
    import matplotlib.image

    for seed in range(2):
        make_run(tmp_path / "runs" / f"s{seed}", seed=seed, test={"accuracy": 0.9})
    make_run(tmp_path / "runs" / "other", lr=0.1, test={"accuracy": 0.1})
    runs = report.find_runs([tmp_path / "runs"])
    single = report.plot_run(runs[0])
    assert single == runs[0].path / "plots" / "training.png"
    height, width, _ = matplotlib.image.imread(single).shape
    assert width > 2 * height  # three panels side by side
    combined = report.plot_compare(runs, tmp_path / "curves.png")
    assert matplotlib.image.imread(combined).shape[1] > 500


def test_sweep_labels_name_the_groups_when_they_tell_them_apart(tmp_path):
    for lr, label in ((1e-3, "slow"), (1e-2, "fast")):
        for seed in range(2):
            make_run(
                tmp_path / label / f"seed_{seed}",
                lr=lr,
                seed=seed,
                test={"accuracy": 0.5},
                label=label,
            )
    assert sorted(label for label, _ in report.group_runs(report.find_runs([tmp_path]))) == [
        "fast",
        "slow",
    ]
    # labels that do not tell the groups apart are replaced by the differing config keys
    for lr in (1e-3, 1e-2):
        make_run(tmp_path / "same" / str(lr), lr=lr, test={"accuracy": 0.5}, label="same")
    labels = sorted(label for label, _ in report.group_runs(report.find_runs([tmp_path / "same"])))
    assert labels == ["lr=0.01", "lr=1e-3"]
