"""The fnlearn command, end to end: malformed configs, help, run directories, kill and resume, sweeps."""

import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from fnlearn import cli
from fnlearn import config as C
from fnlearn.runs import build as B
from fnlearn.runs import rundir
from fnlearn.runs.build import build

ROOT = Path(__file__).parent.parent

# A small, fast run: digits, one narrow hidden layer, a validation split.
SMALL = """\
name = "small"
[data]
val = 0.1
test = 0.2
[model]
sizes = [16]
[training]
epochs = 2
batch_size = 64
[training.checkpoint]
every = 1
[logging]
plots = false
"""


def run_main(args, capsys):
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


# ------------------------------------------------------------------------------------------------
# Malformed configs: exit status 2, one line naming the key, no traceback, no run directory.

# (config file text, extra arguments, text the one-line message must contain)
MALFORMED = [
    ("[optimiser]\nname = 'adam'\n", [], "optimiser: unknown key. Did you mean 'optimizer'?"),
    (
        "[optimizer]\nlearning_rat = 0.1\n",
        [],
        "optimizer.learning_rat: unknown key. Did you mean 'learning_rate'?",
    ),
    (
        "[training]\nepochs = 'ten'\n",
        [],
        'training.epochs = "ten": expected an integer, got a string',
    ),
    ("[model]\nresidual = 'yes'\n", [], 'model.residual = "yes": expected true or false'),
    ("[model]\nsizes = 128\n", [], "model.sizes = 128: expected a list of integers"),
    ("[model]\nsizes = [64, 'a']\n", [], "model.sizes"),
    (
        "[optimizer]\nlearning_rate = 0\n",
        [],
        "optimizer.learning_rate = 0: out of range: expected a number > 0",
    ),
    (
        "[model]\ndropout = 1.0\n",
        [],
        "model.dropout = 1.0: out of range: expected a number in [0, 1)",
    ),
    ("[data]\nval = -0.1\n", [], "data.val = -0.1: out of range"),
    (
        "[training]\nbatch_size = 0\n",
        [],
        "training.batch_size = 0: out of range: expected an integer >= 1",
    ),
    ("[training]\nseeds = []\n", [], "training.seeds = []: out of range"),
    (
        "[data]\nname = 'digit'\n",
        [],
        "data.name = \"digit\": unknown dataset. Did you mean 'digits'?",
    ),
    ("[model]\nname = 'mpl'\n", [], "model.name = \"mpl\": unknown model. Did you mean 'mlp'?"),
    (
        "[loss]\ndistribution = 'gausian'\n",
        [],
        "loss.distribution = \"gausian\": unknown distribution. Did you mean 'gaussian'?",
    ),
    (
        "[optimizer]\nname = 'adma'\n",
        [],
        "optimizer.name = \"adma\": unknown optimizer. Did you mean 'adam'?",
    ),
    (
        "[optimizer.schedule]\nname = 'cosine_decy'\n",
        [],
        "optimizer.schedule.name = \"cosine_decy\": unknown schedule. Did you mean 'cosine_decay'?",
    ),
    (
        "[model]\nactivation = 'rellu'\n",
        [],
        "model.activation = \"rellu\": unknown activation. Did you mean 'relu'?",
    ),
    (
        "[model]\nnorm = 'batchnorm'\n",
        [],
        "model.norm = \"batchnorm\": unknown norm. Did you mean 'batch_norm'?",
    ),
    (
        "[optimizer.schedule]\nname = 'exponential_decay'\n",
        [],
        "optimizer.schedule.options.decay_rate: missing required value",
    ),
    ("[data]\nname = 'csv'\n", [], "data.options: "),
    ("[data]\noptions = {n = 5}\n", [], "data.options: dataset 'digits' has no option 'n'"),
    (
        "[loss]\noptions = {scale = 'learned'}\n",
        [],
        "loss.options: distribution 'categorical' has no option 'scale'",
    ),
    (
        "[optimizer]\nname = 'sgd'\noptions = {momentm = 0.9}\n",
        [],
        "optimizer.options: optimizer 'sgd'",
    ),
    (
        "[optimizer]\nname = 'adamw'\noptions = {weight_decay = 0.1}\n",
        [],
        "optimizer.options.weight_decay: set it as optimizer.weight_decay",
    ),
    (
        "[data]\nname = 'iris'\n[loss]\ndistribution = 'bernoulli'\n",
        [],
        "loss.distribution = \"bernoulli\" does not fit dataset 'iris'",
    ),
    (
        "[data]\nname = 'iris'\n[data.augment]\nflip = true\n",
        [],
        "data.augment.flip = true: expected 0 / false: image transforms need an image dataset",
    ),
    (
        "[training]\nepochs = 3\nsteps = 10\n",
        [],
        "training.epochs = 3: expected exactly one of training.epochs and training.steps",
    ),
    ("[data]\nval = 0.5\ntest = 0.5\n", [], "data.val = 0.5: expected val + test < 1"),
    (
        "[data]\nval = 0.0\n[training.early_stopping]\nenabled = true\n",
        [],
        'training.early_stopping.monitor = "val_loss": expected a train_* metric',
    ),
    (
        "[training.early_stopping]\nenabled = true\nmonitor = 'loss'\n",
        [],
        'training.early_stopping.monitor = "loss": expected a logged metric',
    ),
    ("[model\nsizes = [1]\n", [], "is not valid TOML"),
    (
        "",
        ["--set", "optimizer.learning_rate"],
        "--set 'optimizer.learning_rate': expected KEY=VALUE",
    ),
    (
        "",
        ["--set", "optimizer.name.x=1"],
        "optimizer.name = {x = 1}: expected a string, got a table",
    ),
    (
        "[optimizer]\nname = 'sgd'\n",
        ["--set", "optimizer.name.x=1"],
        'optimizer.name = "sgd" is a value, not a table',
    ),
    ("", ["--set", "optimizer.learning_rate=[1"], "the value is not a TOML literal"),
    (
        "",
        ["--set", "training.epochs=1.5"],
        "training.epochs = 1.5: expected an integer, got a number",
    ),
    (
        "[data]\ntest = 0.2\ntest_options = {subset = 'test'}\n",
        [],
        "data.test = 0.2: expected 0 when data.test_options",
    ),
    (
        "[loss]\npenalty_mask = 'weight_only'\n",
        [],
        "loss.penalty_mask = \"weight_only\": out of range: expected one of 'weights_only', 'all'. Did you mean 'weights_only'?",
    ),
    ("name = 'my run'\n", [], 'name = "my run": expected a run name'),
    ("", ["--epochs", "3"], "unrecognized arguments: --epochs 3"),
    ("", ["--resume", "--out", "nowhere"], "--resume: 'nowhere' does not exist"),
    (
        "[training]\nbatch_size = 5000\n",
        [],
        "training.batch_size = 5000: out of range: expected an integer <= 1258",
    ),
    (
        "[optimizer.schedule]\nname = 'piecewise_constant'\noptions = {boundaries_and_scales = {ten = 0.1}}\n",
        [],
        "optimizer.schedule.options.boundaries_and_scales",
    ),
]


@pytest.mark.parametrize("text, extra, needle", MALFORMED, ids=[m[2][:40] for m in MALFORMED])
def test_malformed_config_exits_2_with_one_line(text, extra, needle, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    Path("bad.toml").write_text(text)
    code, out, err = run_main(["train", "bad.toml", *extra], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("fnlearn: error: ") and needle in lines[0], lines[0]
    assert "Traceback" not in err and out == ""
    assert sorted(os.listdir(tmp_path)) == ["bad.toml"]  # no run directory, not even an empty one


def test_there_are_at_least_30_malformed_cases():
    assert len(MALFORMED) >= 30


@pytest.mark.parametrize(
    "args, needle",
    [
        (["train", "missing.toml"], "config file 'missing.toml' does not exist"),
        (["train"], "give a CONFIG file"),
        (
            ["sweep", "ok.toml", "--grid", "optimizer.learning_rate"],
            "--grid 'optimizer.learning_rate': expected KEY=V1,V2",
        ),
        (
            ["sweep", "ok.toml", "--grid", "optimizer.learning_rate=1e-3,-1"],
            "optimizer.learning_rate = -1: out of range",
        ),
        (["sweep", "ok.toml", "--grid", "model.sizes=[8],[0]"], "model.sizes = [0]: out of range"),
        (["sweep", "ok.toml", "--seeds", "-1"], "--seeds = -1"),
        (["compare", "nowhere"], "'nowhere' does not exist"),
        (["compare", "."], "holds no run directories"),
        (["plot", "nowhere"], "'nowhere' does not exist"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_other_command_mistakes_exit_2(args, needle, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    Path("ok.toml").write_text(SMALL)
    code, out, err = run_main(args, capsys)
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1, err
    assert sorted(os.listdir(tmp_path)) == ["ok.toml"]


def test_a_run_that_training_refuses_leaves_no_directory(tmp_path, monkeypatch, capsys):
    """A mistake only the engine catches (here: class labels the model has no outputs for, slipped
    in behind the config's back) is still one line, and the run directory made for it is removed."""
    monkeypatch.chdir(tmp_path)
    Path("ok.toml").write_text(SMALL)
    real_build = B.build

    def build_with_wrong_targets(config, **kwargs):
        built = real_build(config, **kwargs)
        train = built.splits.train
        bad = train.__class__(train.x, train.y + 100, train.task, 200, train.name)  # labels ≥ 10
        return built._replace(splits=built.splits._replace(train=bad))

    monkeypatch.setattr(B, "build", build_with_wrong_targets)
    code, _, err = run_main(["train", "ok.toml", "--set", "training.seeds=[0,1]"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert sorted(os.listdir(tmp_path)) == ["ok.toml"]


def test_out_directory_that_holds_something_is_not_overwritten(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    Path("ok.toml").write_text(SMALL)
    Path("taken").mkdir()
    Path("taken/file").write_text("x")
    code, _, err = run_main(["train", "ok.toml", "--out", "taken"], capsys)
    assert code == 2 and "--out taken: the directory is not empty. Pass --resume" in err
    assert os.listdir("taken") == ["file"]


# ------------------------------------------------------------------------------------------------
# Help and version


def _subcommands():
    parser = cli._parser()
    action = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return parser, action.choices


def test_help_lists_every_option_of_every_command(capsys):
    parser, commands = _subcommands()
    code, out, _ = run_main(["--help"], capsys)
    assert code == 0 and "--version" in out
    for name in commands:
        assert name in out
    for name, sub in commands.items():
        code, out, _ = run_main([name, "--help"], capsys)
        assert code == 0
        for action in sub._actions:
            for option in action.option_strings or [action.metavar or action.dest]:
                assert option in out, (name, option)
            if action.help:
                assert action.help.split()[0] in out
    assert "examples:" in run_main(["train", "--help"], capsys)[1]


@pytest.mark.parametrize(
    "command, again",
    [
        (["train", "c.toml", "--out", "r"], "`fnlearn train --resume --out r` continues"),
        (["sweep", "c.toml", "--out", "r"], "`fnlearn sweep --resume --out r c.toml` continues"),
        (["train", "c.toml"], None),
    ],
)
def test_ctrl_c_names_the_command_that_continues_the_claimed_run(
    command, again, tmp_path, monkeypatch, capsys
):
    """Ctrl-C once the run directory is claimed names the resume command; before, only "interrupted"."""
    from fnlearn.runs import execute

    def interrupted(out, default, plans_for, *, claimed, **options):
        if "--out" in command:
            claimed(Path(out))
        raise KeyboardInterrupt

    monkeypatch.chdir(tmp_path)
    Path("c.toml").write_text(SMALL)
    monkeypatch.setattr(execute, "run_command", interrupted)
    code, _, err = run_main(command, capsys)
    line = (
        f"fnlearn: error: interrupted; {again} from the last checkpoint."
        if again
        else "fnlearn: error: interrupted."
    )
    assert code == 130 and err == line + "\n"


def test_version(capsys):
    from fnlearn import __version__

    code, out, _ = run_main(["--version"], capsys)
    assert code == 0 and out.strip() == f"fnlearn {__version__}"


def test_importing_the_cli_does_not_import_the_training_engine():
    code = "import sys, fnlearn.cli; print(sorted(m for m in ('fnlearn.loop', 'fnlearn.config', 'fnlearn.report', 'matplotlib', 'sklearn', 'orbax') if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True
    ).stdout
    # fnlearn/__init__.py (the lead's) may import the engine; the CLI itself adds none of the heavy parts
    assert (
        "matplotlib" not in out
        and "sklearn" not in out
        and "orbax" not in out
        and "fnlearn.config" not in out
    )


# ------------------------------------------------------------------------------------------------
# Real processes: `python -m fnlearn`


def fnlearn(*args, cwd, check=True, timeout=300):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
    result = subprocess.run(
        [sys.executable, "-m", "fnlearn", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=timeout,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"fnlearn {' '.join(map(str, args))} exited {result.returncode}:\n{result.stderr}"
        )
    return result


@pytest.mark.parametrize(
    "text, needle",
    [
        (
            "[optimizer]\nname = 'adma'\n",
            "optimizer.name = \"adma\": unknown optimizer. Did you mean 'adam'?",
        ),
        ("[training]\nbatch_size = -3\n", "training.batch_size = -3: out of range"),
        (
            "[data]\nname = 'iris'\n[loss]\ndistribution = 'bernoulli'\n",
            "does not fit dataset 'iris'",
        ),
    ],
)
def test_malformed_config_in_a_real_process(text, needle, tmp_path):
    (tmp_path / "bad.toml").write_text(text)
    result = fnlearn("train", "bad.toml", cwd=tmp_path, check=False)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [result.stderr.strip()] and needle in result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(os.listdir(tmp_path)) == ["bad.toml"]


def test_help_in_a_real_process(tmp_path):
    result = fnlearn("sweep", "--help", cwd=tmp_path)
    assert "--grid KEY=V1,V2" in result.stdout and "--seeds N" in result.stdout


# ------------------------------------------------------------------------------------------------
# Training in-process: the run directory


def test_train_writes_a_complete_run_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    Path("small.toml").write_text(SMALL)
    code, out, err = run_main(
        [
            "train",
            "small.toml",
            "--set",
            "logging.plots=true",
            "--set",
            "optimizer.learning_rate=3e-3",
        ],
        capsys,
    )
    assert code == 0, err
    run = tmp_path / "runs" / "small"
    assert sorted(p.name for p in run.iterdir()) == [
        "checkpoints",
        "config.toml",
        "metrics.jsonl",
        "plots",
        "summary.json",
    ]
    resolved = C.from_dict(tomllib.loads((run / "config.toml").read_text()))
    assert resolved.optimizer.learning_rate == 3e-3 and resolved.loss.distribution == "categorical"
    assert (
        resolved == build(C.load("small.toml", ["logging.plots=true", "optimizer.learning_rate=3e-3"])).config
    )
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["epochs"] == 2 and summary["seed"] == 0
    assert set(summary["test"]) >= {"loss", "accuracy"} and 0.0 <= summary["test"]["accuracy"] <= 1.0
    assert summary["examples"] == {"train": 1258, "val": 180, "test": 359}
    assert {"python", "jax", "numpy", "fnlearn"} <= set(summary["versions"]) and summary["device"]["platform"]
    assert summary["best"]["val_loss"]["value"] == min(
        r["val_loss"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
    )
    assert (run / "plots" / "training.png").stat().st_size > 0
    assert "runs/small: test_accuracy" in out
    # the default directory is taken now: the next run goes next to it
    with rundir.Claim() as claim:
        assert rundir.output_directory(claim, None, Path("runs/small"), resume=False) == Path("runs/small-2")
    Path("runs/small-2").mkdir(exist_ok=True)  # an empty directory is free
    with rundir.Claim() as claim:
        assert rundir.output_directory(claim, None, Path("runs/small"), resume=False) == Path("runs/small-2")


def test_several_seeds_make_one_directory_each_and_a_table(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    Path("small.toml").write_text(SMALL)
    code, out, err = run_main(
        [
            "train",
            "small.toml",
            "--set",
            "training.seeds=[3,4]",
            "--set",
            "training.epochs=1",
            "--set",
            "training.checkpoint.every=0",
            "--set",
            "training.replicas=false",
            "--out",
            "seeds",
        ],
        capsys,
    )
    assert code == 0, err
    assert sorted(os.listdir("seeds")) == ["seed_3", "seed_4"]
    assert not list(Path("seeds").rglob("checkpoints"))  # every = 0: none, seed after seed too
    assert "[1/2] small\n" in out and "[2/2] small\n" in out  # where the multi-seed run is
    assert out.count("  epoch    1  train_") == 2  # each seed's progress
    for seed in (3, 4):
        saved = tomllib.loads(Path(f"seeds/seed_{seed}/config.toml").read_text())
        assert saved["training"]["seeds"] == [seed]
    assert "| small | 2     |" in out  # one group of two seeds


def test_seeds_as_replicas_equal_the_seeds_one_after_another(tmp_path, monkeypatch, capsys):
    """training.replicas (the default) trains the seeds in one vmapped program; each seed's test
    metrics equal its sequential run's (to float32 rounding), and each seed gets a full directory."""
    monkeypatch.chdir(tmp_path)
    Path("small.toml").write_text(SMALL)
    results = {}
    for replicas in ("true", "false"):
        code, out, err = run_main(
            [
                "train",
                "small.toml",
                "--set",
                "training.seeds=[3,4]",
                "--set",
                f"training.replicas={replicas}",
                "--out",
                replicas,
            ],
            capsys,
        )
        assert code == 0, err
        assert ("as vmapped replicas" in out) == (replicas == "true")
        epochs = [line for line in out.splitlines() if line.startswith("  epoch ")]
        assert len(epochs) == (2 if replicas == "true" else 4)  # progress: one line per epoch
        if replicas == "true":  # mean ± std over the seeds, and how many trained
            assert epochs[0].startswith("  epoch    1  train_") and epochs[0].endswith("(2/2 runs)")
            assert " ± " in epochs[0]
        results[replicas] = {
            s: json.loads(Path(f"{replicas}/seed_{s}/summary.json").read_text()) for s in (3, 4)
        }
    for seed in (3, 4):
        together, alone = results["true"][seed], results["false"][seed]
        assert together["test"]["loss"] == pytest.approx(alone["test"]["loss"], rel=1e-4)
        assert together["epochs"] == alone["epochs"] == 2 and together["driver"]["driver"] == "replicas"
        lines = Path(f"true/seed_{seed}/metrics.jsonl").read_text().splitlines()
        assert [json.loads(line)["epoch"] for line in lines] == [1, 2]
        assert sorted(os.listdir(f"true/seed_{seed}/checkpoints/last")) == sorted(
            os.listdir(f"false/seed_{seed}/checkpoints/last")
        )  # the same checkpoints as the sequential run


def test_resume_refuses_a_different_config(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    Path("small.toml").write_text(SMALL)
    assert (
        run_main(["train", "small.toml", "--quiet", "--out", "r", "--set", "training.epochs=1"], capsys)[0]
        == 0
    )
    Path("r/summary.json").unlink()  # as if it had been interrupted
    code, _, err = run_main(
        ["train", "small.toml", "--resume", "--out", "r", "--set", "optimizer.learning_rate=0.1"],
        capsys,
    )
    assert code == 2 and "--resume: optimizer.learning_rate = 0.1 differs from the run's" in err


# ------------------------------------------------------------------------------------------------
# End to end in real processes: train → kill → resume → compare; sweep


def _epoch_lines(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.slow
def test_train_kill_resume_compare(tmp_path, capsys):
    # 6 epochs: the kill comes right after the first finished checkpoint, so the resumed process
    # still has epochs to train (and the history must continue at the right one)
    config = SMALL.replace("epochs = 2", "epochs = 6").replace("batch_size = 64", "batch_size = 32")
    (tmp_path / "c.toml").write_text(config)
    os.chdir(tmp_path)  # the uninterrupted reference run, in this process
    try:
        assert cli.main(["train", "c.toml", "--out", "reference", "--quiet"]) == 0
    finally:
        os.chdir(ROOT)
    capsys.readouterr()

    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "fnlearn", "train", "c.toml", "--out", "killed", "--quiet"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    checkpoints = tmp_path / "killed" / "checkpoints"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if checkpoints.is_dir() and any(
            p.name.isdigit() and (p / "commit_success.txt").exists() for p in checkpoints.glob("last/*")
        ):
            break  # a finished checkpoint (orbax renames its temporary directory to the step number)
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (tmp_path / "killed" / "summary.json").exists()
    done_before = len(_epoch_lines(tmp_path / "killed" / "metrics.jsonl"))
    assert done_before < 6

    fnlearn("train", "--resume", "--out", "killed", "--quiet", cwd=tmp_path)  # the config comes from the run
    reference, resumed = (_epoch_lines(tmp_path / d / "metrics.jsonl") for d in ("reference", "killed"))
    assert [r["epoch"] for r in resumed] == list(range(1, 7))
    for a, b in zip(reference, resumed):
        assert {k: v for k, v in a.items() if k not in ("time", "examples_per_second")} == {
            k: v for k, v in b.items() if k not in ("time", "examples_per_second")
        }
    ref_summary, res_summary = (
        json.loads((tmp_path / d / "summary.json").read_text()) for d in ("reference", "killed")
    )
    assert ref_summary["test"] == res_summary["test"]

    code = cli.main(
        [
            "compare",
            str(tmp_path / "reference"),
            str(tmp_path / "killed"),
            "--csv",
            str(tmp_path / "t.csv"),
            "--out",
            str(tmp_path / "c.png"),
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    lines = [" ".join(line.split()) for line in out.splitlines() if line.startswith("|")]  # padding collapsed
    assert len(lines) == 3 and lines[2].startswith("| small | 2 |")  # the same config: one group of 2
    assert "± 0 |" in lines[2]  # identical results, zero spread
    assert (tmp_path / "c.png").stat().st_size > 0 and (tmp_path / "t.csv").is_file()


@pytest.mark.slow
def test_sweep_runs_every_combination(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # in this process: what runs in a real process is tested above
    Path("s.toml").write_text(SMALL.replace("epochs = 2", "epochs = 1").replace("every = 1", "every = 0"))
    sweep = ["sweep", "s.toml", "--grid", "optimizer.learning_rate=1e-3,1e-2", "--seeds", "2", "--out", "sw"]
    code, out, err = run_main([*sweep, "--quiet"], capsys)
    assert code == 0, err
    runs = sorted(str(p.parent.relative_to(tmp_path / "sw")) for p in (tmp_path / "sw").rglob("summary.json"))
    assert runs == [f"learning_rate={lr}/seed_{s}" for lr in ("0.001", "0.01") for s in (0, 1)]
    table = [line for line in out.strip().splitlines() if line.startswith("|")]
    assert len(table) == 4 and all(row.split("|")[2].strip() == "2" for row in table[2:])
    assert {row.split("|")[1].strip() for row in table[2:]} == {"lr=1e-3", "lr=0.01"}  # short labels
    assert "lr = optimizer.learning_rate" in out and err == ""  # the key; --quiet
    assert not list((tmp_path / "sw").rglob("checkpoints"))  # checkpoint.every = 0 in replica runs
    assert sorted(p.name for p in (tmp_path / "sw").glob("sweep.*")) == ["sweep.csv", "sweep.md", "sweep.png"]
    assert "![" in (tmp_path / "sw" / "sweep.md").read_text()
    # --resume on a finished sweep trains nothing
    code, out, err = run_main([*sweep, "--resume"], capsys)
    assert code == 0, err
    assert out.count("already finished, skipped") == 4
