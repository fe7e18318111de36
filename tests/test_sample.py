"""The sequence configs train (briefly, tiny sizes) and ``fnlearn sample`` continues a prompt from the run."""

import json
from pathlib import Path

import jax
import numpy as np
import pytest

import fnlearn as fl
from fnlearn import cli
from fnlearn.commands.sample import restore_sequence_model
from fnlearn.data.sequences import TASK_VOCAB
from fnlearn.errors import FnlearnError
from fnlearn.sampling import generate
from tests.hostile import assert_one_error_line, run_cli

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
TINY = [
    "model.width=8",
    "model.depth=1",
    "model.num_heads=2",
    "logging.plots=false",
    "training.batch_size=16",
]


def _train(tmp, capsys, config, *overrides):
    args = ["train", CONFIGS / config, "--out", tmp / "run"]
    for override in (*TINY, *overrides):
        args += ["--set", override]
    code, out, err = run_cli(args, capsys)
    assert code == 0, err
    return tmp / "run"


@pytest.fixture(scope="session")  # built once per worker, even if its tests are not consecutive
def sort_run(tmp_path_factory):
    """One brief training of configs/sort_gpt.toml, shared by the sample tests."""
    run = tmp_path_factory.mktemp("sort") / "run"
    overrides = (
        *TINY,
        "data.options={n = 80, length = 3, seed = 0}",
        "training.epochs=2",
        "training.checkpoint.every=2",
    )
    args = ["train", str(CONFIGS / "sort_gpt.toml"), "--out", str(run)]
    assert cli.main(args + [a for o in overrides for a in ("--set", o)]) == 0
    return run


def test_the_sort_config_trains_and_reports_sequence_metrics(sort_run):
    summary = json.loads((sort_run / "summary.json").read_text())
    metrics = [json.loads(line) for line in (sort_run / "metrics.jsonl").read_text().splitlines()]
    test = summary["test"]
    assert 0 <= test["sequence_accuracy"] <= 1 and test["perplexity"] == pytest.approx(np.exp(test["loss"]))
    assert {"train_sequence_accuracy", "train_perplexity", "val_sequence_accuracy", "val_perplexity"} <= set(
        metrics[-1]
    )
    info = json.loads((sort_run / "vocab.json").read_text())
    assert info == {"vocab": list(TASK_VOCAB), "max_len": 6}


def test_sample_continues_the_prompt_with_the_restored_model(sort_run, capsys):
    code, out, err = run_cli(["sample", sort_run, "--prompt", "312=", "--length", "3"], capsys)
    assert code == 0 and err == ""
    line = out.rstrip("\n")
    assert line.startswith("312=") and len(line) == 7 and set(line[4:]) <= set(TASK_VOCAB)
    model, params, model_state, vocab = restore_sequence_model(sort_run)
    ids = [vocab.index(c) for c in "312="]
    greedy = generate(model, params, model_state, ids, 3)
    assert line[4:] == "".join(vocab[i] for i in greedy)
    logits, _ = model.apply(params, model_state, np.array([ids + [0, 0]], np.float32))
    assert greedy[0] == int(np.argmax(logits[0, 3]))  # the first token: argmax at the prompt's last position


def test_sampling_with_a_temperature_is_seeded(sort_run, capsys):
    runs = [
        run_cli(
            ["sample", sort_run, "--prompt", "9", "--length", "12", "--temperature", "5", "--seed", s], capsys
        )[1]
        for s in "112"
    ]
    assert runs[0] == runs[1] and len(runs[0].strip()) == 13
    model, params, model_state, _ = restore_sequence_model(sort_run)
    draws = {
        tuple(generate(model, params, model_state, [1, 2], 6, temperature=5.0, key=jax.random.key(s)))
        for s in range(4)
    }
    assert len(draws) > 1  # a high temperature draws different texts for different seeds


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--prompt", "31x=", "--length", "2"], "the text holds 'x', which is not in the vocabulary"),
        (["--prompt", "31=", "--length", "0"], "--length 0: expected a number of tokens from 1 to"),
        (
            ["--prompt", "31=", "--length", "2", "--temperature", "-1"],
            "--temperature -1.0: expected a number >= 0",
        ),
        (["--prompt", "", "--length", "2"], "--prompt is empty"),
    ],
)
def test_sample_mistakes_are_one_line(sort_run, capsys, args, needle):
    code, out, err = run_cli(["sample", sort_run, *args], capsys)
    assert code == 2 and out == ""
    assert_one_error_line(err, needle)


def test_sample_of_a_folder_that_is_not_a_gpt_run_is_one_line(tmp_path, capsys):
    (tmp_path / "seed_0").mkdir()
    code, _, err = run_cli(["sample", tmp_path, "--prompt", "a", "--length", "1"], capsys)
    assert code == 2
    assert_one_error_line(err, "has no vocab.json", f"name one, e.g. {tmp_path / 'seed_0'}")
    code, _, err = run_cli(["sample", tmp_path / "nope", "--prompt", "a", "--length", "1"], capsys)
    assert_one_error_line(err, "does not exist")


def test_the_text_config_trains_a_character_model(tmp_path, capsys):
    text = "the cat sat on the mat. " * 30
    (tmp_path / "corpus.txt").write_text(text, encoding="utf-8")
    path = json.dumps(str(tmp_path / "corpus.txt"))
    options = f"data.options={{path = {path}, seq_len = 12}}"
    run = _train(
        tmp_path, capsys, "text_gpt.toml", options, "training.epochs=1", "training.checkpoint.every=0"
    )
    last = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()][-1]
    assert last["val_perplexity"] == pytest.approx(np.exp(last["val_loss"]))
    assert 1 <= last["val_perplexity"] < 2 * len(set(text))  # no worse than twice a uniform guess
    assert json.loads((run / "vocab.json").read_text())["vocab"] == sorted(set(text))


def test_sampling_a_model_that_is_not_a_sequence_model_is_one_line():
    mlp = fl.nn.mlp([3, 2])
    params, state = mlp.init(jax.random.key(0))
    with pytest.raises(FnlearnError, match=r"expected a sequence model, ids \(T,\) → logits \(T, V\)"):
        generate(mlp, params, state, [1], 2)
