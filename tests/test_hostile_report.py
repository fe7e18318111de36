"""fnlearn compare / plot over damaged run directories: never a traceback.

A damaged run found below a folder is left out with one ``fnlearn: warning: skipped RUN: ...``
line and the rest are compared; a damaged run named on the command line is exit status 2 with one
line naming the file. --csv / --out are checked before anything is read, written whole or not at
all, and nothing else in the folder changes (checked byte for byte).
"""

import csv
import json
import math
import os
import re
import statistics
from fractions import Fraction
from pathlib import Path

import pytest
from hostile import assert_one_error_line, assert_one_line, run_cli, snapshot
from hypothesis import given, settings
from hypothesis import strategies as st

from fnlearn import config as C
from fnlearn import report
from fnlearn.errors import FnlearnError


def table_of(out: str) -> list[str]:
    """The markdown table's lines in ``out`` (notes below it left out), padding collapsed."""
    return [re.sub(r" {2,}", " ", line) for line in out.splitlines() if line.startswith("|")]


def make_run(directory: Path, *, lr=1e-3, seed=0, test=None, label=None, rows=None) -> Path:
    """A run directory as fnlearn train leaves it: config.toml, metrics.jsonl, summary.json."""
    directory.mkdir(parents=True)
    config = C.loads("", [f"optimizer.learning_rate={lr}", f"training.seeds=[{seed}]"], name="hand")
    (directory / "config.toml").write_text(C.dumps(config))
    rows = (
        rows
        if rows is not None
        else [
            {
                "step": 10 * e,
                "epoch": e,
                "train_loss": 1.0 / e,
                "val_loss": 0.5 / e,
                "val_accuracy": 0.5 + e / 10,
            }
            for e in (1, 2, 3)
        ]
    )
    (directory / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = {"status": "finished", "test": test or {"accuracy": 0.9}, "wall_time_s": 1.0}
    if label is not None:
        summary["label"] = label
    (directory / "summary.json").write_text(json.dumps(summary))
    return directory


@pytest.fixture
def sweep(tmp_path, monkeypatch):
    """tmp_path/runs/{good,bad} (bad as good, until a test damages it) and a file of the user's."""
    monkeypatch.chdir(tmp_path)
    make_run(tmp_path / "runs" / "good", test={"accuracy": 0.75})
    make_run(tmp_path / "runs" / "bad", lr=0.1, seed=1)
    (tmp_path / "notes.txt").write_text("the user's own file\n")
    return tmp_path / "runs"


def _write(name: str, data):
    def damage(run: Path):
        path = run / name
        path.unlink()
        if data == "dir":
            path.mkdir()
        elif data == "dangling":
            path.symlink_to(run / "nowhere")
        else:
            path.write_bytes(data if isinstance(data, bytes) else data.encode())

    return damage


# (damage, text the one line must hold after "RUN/")
DAMAGED = {
    "summary-truncated": (
        _write("summary.json", '{"status": "fini'),
        "summary.json is not valid JSON (Unterminated",
    ),
    "summary-binary": (
        _write("summary.json", b"\x89PNG\r\n\x1a\n\xff\xfe"),
        "summary.json is not UTF-8 text (byte 0)",
    ),
    "summary-list": (_write("summary.json", "[1, 2]"), "summary.json is not a JSON object (it holds list)"),
    "summary-string": (_write("summary.json", '"done"'), "summary.json is not a JSON object (it holds str)"),
    "summary-empty": (_write("summary.json", b""), "summary.json is not valid JSON (Expecting value"),
    "summary-test-number": (
        _write("summary.json", '{"test": 5}'),
        "summary.json: 'test' is int, expected an object",
    ),
    "summary-label-list": (
        _write("summary.json", '{"label": [1]}'),
        "summary.json: 'label' is list, expected a string",
    ),
    "summary-status-number": (_write("summary.json", '{"status": 3}'), "summary.json: 'status' is int"),
    "summary-directory": (_write("summary.json", "dir"), "summary.json cannot be read: Is a directory"),
    "summary-deep": (
        _write("summary.json", "[" * 100_000),
        "summary.json is not valid JSON (nested too deeply)",
    ),
    "summary-nul": (
        _write("summary.json", '{"label": "a\x00b"}'),
        "summary.json is not valid JSON (Invalid control",
    ),
    "summary-long-number": (
        _write("summary.json", '{"wall_time_s": 1' + "0" * 5000 + "}"),
        "summary.json is not valid JSON (a number too long to read)",
    ),
    "summary-dangling-link": (
        _write("summary.json", "dangling"),
        "summary.json cannot be read: No such file",
    ),
    "metrics-garbage": (
        _write("metrics.jsonl", '{}\nnot json\n{"step": 1}\n'),
        "metrics.jsonl: line 2 is not a JSON object: 'not json'.",
    ),
    "metrics-list-line": (
        _write("metrics.jsonl", '[1, 2]\n{"step": 1}\n'),
        "metrics.jsonl: line 1 is not a JSON object",
    ),
    "metrics-number-line": (
        _write("metrics.jsonl", '{"step": 1}\n5\n{"step": 2}\n'),
        "metrics.jsonl: line 2 is not",
    ),
    "metrics-last-line-text": (
        _write("metrics.jsonl", '{"step": 1}\n"text"\n'),
        "metrics.jsonl: line 2 is not",
    ),
    "metrics-directory": (_write("metrics.jsonl", "dir"), "metrics.jsonl cannot be read: Is a directory"),
    "metrics-not-utf8": (
        _write("metrics.jsonl", b'{"step": 1}\n\xff\xfe\n'),
        "metrics.jsonl is not UTF-8 text (byte 12)",
    ),
    "metrics-deep": (
        _write("metrics.jsonl", "[" * 100_000 + '\n{"step": 1}\n'),
        "metrics.jsonl: line 1 is not a JSON",
    ),
    "metrics-long-number": (
        _write("metrics.jsonl", '{"val_loss": 1' + "0" * 5000 + '}\n{"step": 2}\n'),
        "metrics.jsonl: line 1 is not a JSON object",
    ),
    "metrics-dangling-link": (
        _write("metrics.jsonl", "dangling"),
        "metrics.jsonl cannot be read: No such file",
    ),
    "config-invalid": (_write("config.toml", "[model\n"), "config.toml: not valid TOML (Expected ']'"),
    "config-not-utf8": (_write("config.toml", b"name = '\xff'\n"), "config.toml is not UTF-8 text (byte 8)"),
    "config-deep": (
        _write("config.toml", "a = " + "[" * 10_000 + "]" * 10_000),
        "config.toml: not readable TOML",
    ),
    "config-long-number": (
        _write("config.toml", "a = " + "9" * 5000),
        "config.toml: not readable TOML (a number too long",
    ),
}


@pytest.mark.parametrize("case", list(DAMAGED))
def test_a_damaged_run_below_a_folder_is_skipped_with_one_warning(case, sweep, capsys):
    damage, needle = DAMAGED[case]
    damage(sweep / "bad")
    before = snapshot(sweep.parent)
    code, out, err = run_cli(["compare", "runs", "--no-plot"], capsys)
    assert code == 0, err
    assert err.count("\n") == 1 and err.startswith(
        f"fnlearn: warning: skipped runs/bad: runs/bad/{needle}"
    ), err
    assert "Traceback" not in err
    table = table_of(out)
    assert len(table) == 3 and "| hand | 1 | 0.75 |" in table[2]  # the good run alone
    assert snapshot(sweep.parent) == before


@pytest.mark.parametrize("case", list(DAMAGED))
def test_a_damaged_run_named_on_the_command_line_is_one_error(case, sweep, capsys):
    damage, needle = DAMAGED[case]
    damage(sweep / "bad")
    before = snapshot(sweep.parent)
    code, out, err = run_cli(["compare", "runs/good", "runs/bad"], capsys)
    assert code == 2 and out == ""
    assert_one_error_line(err, f"runs/bad/{needle}")
    assert snapshot(sweep.parent) == before  # no compare.png either


def test_there_are_many_damage_cases():
    assert len(DAMAGED) >= 25


def test_unreadable_files_are_skipped(sweep, monkeypatch, capsys):
    """chmod 000 stops everyone but root (the tests may run as root), so the read is refused too."""
    (sweep / "bad" / "summary.json").chmod(0)
    real = Path.read_bytes

    def refuse(self):
        if self.name == "summary.json" and self.parent.name == "bad":
            raise PermissionError(13, "Permission denied")
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", refuse)
    code, out, err = run_cli(["compare", "runs", "--no-plot"], capsys)
    (sweep / "bad" / "summary.json").chmod(0o644)
    assert code == 0 and "| hand | 1 | 0.75 |" in "\n".join(table_of(out))
    assert (
        err
        == "fnlearn: warning: skipped runs/bad: runs/bad/summary.json cannot be read: Permission denied.\n"
    )


def test_every_run_damaged_is_an_error_after_one_warning_each(sweep, capsys):
    _write("summary.json", "[")(sweep / "bad")
    _write("metrics.jsonl", "x\ny\n")(sweep / "good")
    before = snapshot(sweep.parent)
    code, out, err = run_cli(["compare", "runs"], capsys)
    lines = err.splitlines()
    assert code == 2 and out == "" and len(lines) == 3, err
    assert lines[0].startswith("fnlearn: warning: skipped runs/bad: ")
    assert lines[1].startswith("fnlearn: warning: skipped runs/good: runs/good/metrics.jsonl: line 1")
    assert lines[2] == (
        "fnlearn: error: no readable run directory in runs: every one found is damaged (each is named above)."
    )
    assert snapshot(sweep.parent) == before


def test_a_torn_last_line_and_a_config_toml_folder_are_not_damage(sweep, capsys):
    with open(sweep / "bad" / "metrics.jsonl", "a") as handle:
        handle.write('{"step": 40, "val_lo')  # killed mid-write
    (sweep / "other").mkdir()
    (sweep / "other" / "config.toml").mkdir()  # a folder named config.toml is not a run
    code, out, err = run_cli(["compare", "runs", "--no-plot"], capsys)
    assert code == 0 and err == "" and len(table_of(out)) == 4  # header, rule, two groups


def test_a_file_or_a_missing_path_is_one_error(sweep, capsys):
    code, _, err = run_cli(["compare", "notes.txt"], capsys)
    assert code == 2 and assert_one_error_line(err, "'notes.txt' is not a directory")
    code, _, err = run_cli(["compare", "runs/nope"], capsys)
    assert code == 2 and assert_one_error_line(err, "'runs/nope' does not exist")
    code, _, err = run_cli(["compare", "runs/good/plots"], capsys)
    assert code == 2 and assert_one_error_line(err, "'runs/good/plots' does not exist")


def test_the_same_run_named_twice_counts_once(sweep, capsys):
    code, out, _ = run_cli(["compare", "runs/good", "runs/good", "runs", "--no-plot"], capsys)
    lines = table_of(out)
    assert code == 0 and len(lines) == 4  # header, rule, one row per run
    assert all(" | 1 | " in row for row in lines[2:])  # no group of the same run twice


# ------------------------------------------------------------------------------------------------
# Numbers that are not metrics: NaN, ±inf, ints beyond float; tables that would overflow


def test_nan_infinite_and_huge_values_are_ignored(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = make_run(tmp_path / "r", rows=[])
    (run / "metrics.jsonl").write_text(
        '{"step": 1, "epoch": 1, "val_loss": NaN, "val_accuracy": Infinity}\n'
        '{"step": 2, "epoch": 2, "val_loss": 0.5, "val_accuracy": -Infinity}\n'
        '{"step": 3, "epoch": 3, "val_loss": 1' + "0" * 400 + ', "val_accuracy": 0.25}\n'
    )
    (run / "summary.json").write_text('{"test": {"accuracy": NaN, "loss": 1e999}, "wall_time_s": -Infinity}')
    code, out, err = run_cli(["compare", "r", "--no-plot"], capsys)
    assert (
        code == 0 and err == "" and "| hand | 1 | 0.5 | 0.5 | 0.25 | 0.25 | 3 |" in "\n".join(table_of(out))
    )
    columns, rows = report.compare_table(report.find_runs([run]))
    assert columns == [
        "run",
        "seeds",
        "final val_loss",
        "best val_loss",
        "final val_accuracy",
        "best val_accuracy",
        "epochs",
    ]
    assert rows[0]["best val_loss"] == (0.5, None) and rows[0]["best val_accuracy"] == (0.25, None)


def _reference(values):
    """Mean and sample std by exact rational arithmetic (statistics on Fractions)."""
    exact = [Fraction(v) for v in values]
    mean = statistics.mean(exact)
    return float(mean), (None if len(values) < 2 else statistics.stdev(exact))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=6))
def test_mean_and_std_never_overflow_and_match_exact_arithmetic(values):
    mean, std = report.mean_std(values)
    ref_mean, ref_std = _reference(values)
    scale = max(abs(v) for v in values) or 1.0
    assert math.isfinite(mean) and abs(mean - ref_mean) <= 1e-12 * scale
    if ref_std is None:
        assert std is None
    elif math.isinf(std):
        assert ref_std > 1.79e308  # only a spread beyond the float range is inf
    else:
        assert std == pytest.approx(ref_std, rel=1e-9, abs=1e-300)


def test_huge_test_metrics_give_a_finite_table(tmp_path):
    for seed, value in enumerate([1e308, -1.5e308, 1.7e308]):
        make_run(tmp_path / f"s{seed}", seed=seed, test={"loss": value})
    _, rows = report.compare_table(report.find_runs([tmp_path]))
    mean, std = rows[0]["test_loss"]
    ref_mean, ref_std = _reference([1e308, -1.5e308, 1.7e308])
    assert mean == pytest.approx(ref_mean) and std == pytest.approx(ref_std)


# ------------------------------------------------------------------------------------------------
# Output paths: --csv and --out


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--csv", "missing/t.csv", "--no-plot"], "--csv missing/t.csv: the folder missing does not exist"),
        (["--csv", "runs", "--no-plot"], "--csv runs: is a directory"),
        (["--csv", "", "--no-plot"], "--csv .: is a directory"),
        (["--out", "missing/c.png"], "--out missing/c.png: the folder missing does not exist"),
        (["--out", "runs/good"], "--out runs/good: is a directory"),
        (["--out", "curves.txt"], "--out curves.txt: matplotlib cannot write .txt figures"),
        (["--csv", "t.csv", "--out", "a/b/c.png"], "--out a/b/c.png: the folder a/b does not exist"),
    ],
)
def test_bad_output_paths_are_one_error_before_anything_is_read(args, needle, sweep, capsys):
    _write("summary.json", "[")(sweep / "bad")  # would be a warning, if runs were read
    before = snapshot(sweep.parent)
    code, out, err = run_cli(["compare", "runs", *args], capsys)
    assert code == 2 and out == ""
    assert_one_error_line(err, needle)
    assert snapshot(sweep.parent) == before


def test_compare_says_where_it_wrote_and_writes_only_that(sweep, capsys):
    before = snapshot(sweep.parent)
    code, out, err = run_cli(["compare", "runs", "--csv", "t.csv", "--out", "c.png"], capsys)
    where = sweep.parent.resolve()
    assert code == 0 and err == f"table: {where / 't.csv'}\nfigure: {where / 'c.png'}\n"  # full paths
    after = snapshot(sweep.parent)
    assert set(after) - set(before) == {"t.csv", "c.png"} and all(after[k] == v for k, v in before.items())
    assert after["c.png"].startswith(b"\x89PNG")
    with open(sweep.parent / "t.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert sorted(float(row["test_accuracy"]) for row in table) == [0.75, 0.9]
    assert len(table_of(out)) == 4


def test_a_failed_write_leaves_neither_the_file_nor_a_temporary(sweep, capsys, monkeypatch):
    (sweep.parent / "t.csv").write_text("the user's old table\n")
    before = snapshot(sweep.parent)

    def full_disk(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    code, _, err = run_cli(["compare", "runs", "--csv", "t.csv", "--no-plot"], capsys)
    assert code == 2
    assert_one_error_line(err, "CSV file t.csv: cannot write it: No space left on device")
    assert snapshot(sweep.parent) == before  # the old table intact, no .t.csv.*.tmp left


def test_labels_with_markup_keep_the_table_and_the_figure_intact(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_run(tmp_path / "runs" / "a", lr=1e-3, label="a|b $\\frac{x")
    make_run(tmp_path / "runs" / "b", lr=1e-2, label="two\u2028lines\tand $x$")
    code, out, err = run_cli(["compare", "runs", "--out", "c.png"], capsys)
    assert code == 0 and err == f"figure: {tmp_path.resolve() / 'c.png'}\n"
    rows = table_of(out)
    assert len(rows) == 4 and all(row.count(" | ") == rows[0].count(" | ") for row in rows[2:])
    assert "| a\\|b $\\frac{x |" in "\n".join(rows) and "| two lines and $x$ |" in "\n".join(rows)


# ------------------------------------------------------------------------------------------------
# fnlearn plot


def test_plot_skips_a_damaged_run_below_a_folder(sweep, capsys):
    _write("metrics.jsonl", "x\ny\n")(sweep / "bad")
    before = snapshot(sweep.parent)
    code, out, err = run_cli(["plot", "runs"], capsys)
    assert code == 0 and out == "runs/good/plots/training.png\n"
    assert err.count("\n") == 1 and err.startswith(
        "fnlearn: warning: skipped runs/bad: runs/bad/metrics.jsonl: line 1"
    )
    after = snapshot(sweep.parent)
    assert set(after) - set(before) == {"runs/good/plots", "runs/good/plots/training.png"}
    assert all(after[k] == v for k, v in before.items())


def test_plot_of_a_run_without_metrics_below_a_folder_is_a_warning(sweep, capsys):
    (sweep / "bad" / "metrics.jsonl").write_text("")
    code, out, err = run_cli(["plot", "runs"], capsys)
    assert code == 0 and out == "runs/good/plots/training.png\n"
    assert err == (
        "fnlearn: warning: skipped runs/bad: runs/bad: metrics.jsonl is empty or missing, so there is "
        "nothing to plot.\n"
    )


@pytest.mark.parametrize(
    "args, needle",
    [
        (["runs/bad"], "runs/bad/summary.json is not valid JSON"),
        (["runs/good", "--out", "missing/x.png"], "--out missing/x.png: the folder missing does not exist"),
        (["runs/good", "--out", "runs"], "--out runs: is a directory"),
        (["runs/good", "--out", "x.docx"], "--out x.docx: matplotlib cannot write .docx figures"),
        (["runs", "--out", "x.png"], "--out names one file, but runs holds 2 runs"),
    ],
)
def test_plot_mistakes_are_one_error_and_write_nothing(args, needle, sweep, capsys):
    _write("summary.json", "{")(sweep / "bad")
    if args[0] == "runs":
        _write("summary.json", "{}")(sweep / "bad")
    before = snapshot(sweep.parent)
    code, out, err = run_cli(["plot", *args], capsys)
    assert code == 2 and out == ""
    assert_one_error_line(err, needle)
    assert snapshot(sweep.parent) == before


def test_plot_of_a_run_with_nothing_to_plot_is_one_error(sweep, capsys):
    (sweep / "good" / "metrics.jsonl").unlink()
    before = snapshot(sweep.parent)
    code, _, err = run_cli(["plot", "runs/good"], capsys)
    assert code == 2
    assert_one_error_line(err, "runs/good: metrics.jsonl is empty or missing")
    assert snapshot(sweep.parent) == before


def test_library_calls_raise_one_line_errors(tmp_path):
    run = make_run(tmp_path / "r")
    (run / "metrics.jsonl").write_text('{"step": 1}\n[]\n{"step": 2}\n')
    for call, needle in [
        (lambda: report.read_metrics(run / "metrics.jsonl"), "line 2 is not a JSON object"),
        (lambda: report.find_runs([tmp_path]), "line 2 is not a JSON object"),  # no on_damaged: raise
        (lambda: report.write_csv(tmp_path / "no" / "t.csv", ["run"], []), "the folder"),
        (lambda: report.check_figure_path(tmp_path / "f.xyz", "figure"), "cannot write .xyz figures"),
    ]:
        with pytest.raises(FnlearnError) as info:
            call()
        assert_one_line(str(info.value), needle)
    assert not (tmp_path / "no").exists()


def test_figures_leave_out_values_that_would_overflow_the_axes(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rows = [
        {
            "step": 1,
            "epoch": 1,
            "train_loss": 1e308,
            "val_loss": 1.7e308,
            "val_accuracy": -1e308,
            "learning_rate": 1e308,
        },
        {
            "step": 2,
            "epoch": 2,
            "train_loss": 1e-308,
            "val_loss": 5e-324,
            "val_accuracy": 1e308,
            "learning_rate": -1e308,
        },
        {
            "step": 3,
            "epoch": 3,
            "train_loss": 1e100,
            "val_loss": -1e100,
            "val_accuracy": 0.5,
            "learning_rate": 1e-3,
        },
        {"step": 1e308, "epoch": 1e300, "train_loss": 2, "val_loss": 3},
    ]
    make_run(tmp_path / "runs" / "a", rows=rows)
    make_run(tmp_path / "runs" / "b", lr=0.1, rows=rows[:1])
    code, _, err = run_cli(["compare", "runs", "--out", "c.png"], capsys)
    assert code == 0 and err == f"figure: {tmp_path.resolve() / 'c.png'}\n"  # no matplotlib or numpy warnings
    code, out, err = run_cli(["plot", "runs"], capsys)
    assert (
        code == 0 and err == "" and out.split() == ["runs/a/plots/training.png", "runs/b/plots/training.png"]
    )
    assert report._curve(rows, "val_loss", "step") == ([2.0, 3.0], [5e-324, -1e100])
