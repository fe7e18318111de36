"""TensorBoard event files hold exactly the scalars of metrics.jsonl (read back with the protobuf
definitions tensorboardX ships, from the TFRecord framing: length, crc, payload, crc)."""

import struct
from pathlib import Path

import jax
import numpy as np
import pytest
from tensorboardX.proto import event_pb2  # the test extra installs tensorboardX

import fnlearn as fl
from fnlearn import cli


def read_scalars(log_dir: Path) -> dict:
    """{(tag, step): value} from every event file under ``log_dir``."""
    scalars = {}
    for path in sorted(log_dir.rglob("events.out.tfevents.*")):
        data = path.read_bytes()
        offset = 0
        while offset < len(data):
            (length,) = struct.unpack("<Q", data[offset : offset + 8])
            payload = data[offset + 12 : offset + 12 + length]
            offset += 12 + length + 4
            event = event_pb2.Event.FromString(payload)
            for value in event.summary.value:
                scalars[(value.tag, event.step)] = value.simple_value
    return scalars


def test_callback_writes_every_epoch_record(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 5)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int32)
    state = fl.TrainState.create(fl.nn.mlp([5, 8, 2]), fl.optim.adam(1e-2), jax.random.key(0))
    _, history = fl.fit(
        state,
        (x, y),
        loss=fl.distributions.get("categorical"),
        epochs=3,
        batch_size=16,
        eval=(x, y),
        callbacks=[fl.callbacks.TensorBoard(tmp_path / "tb")],
    )
    scalars = read_scalars(tmp_path / "tb")
    for record in history:
        for tag in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "train_learning_rate"):
            assert scalars[(tag, record["step"])] == pytest.approx(record[tag], rel=1e-6)


SMALL = """\
name = "tb"
[model]
sizes = [8]
[training]
epochs = 2
batch_size = 64
seeds = [0, 1]
[logging]
plots = false
tensorboard = true
"""


@pytest.mark.parametrize("replicas", ["true", "false"])
def test_cli_writes_tensorboard_next_to_metrics(tmp_path, monkeypatch, capsys, replicas):
    monkeypatch.chdir(tmp_path)
    Path("tb.toml").write_text(SMALL)
    assert (
        cli.main(["train", "tb.toml", "--set", f"training.replicas={replicas}", "--out", "run", "--quiet"])
        == 0
    )
    capsys.readouterr()
    for seed in (0, 1):
        metrics = fl.report.read_run(Path(f"run/seed_{seed}")).metrics
        scalars = read_scalars(Path(f"run/seed_{seed}/tensorboard"))
        assert len(metrics) == 2
        for record in metrics:
            assert scalars[("train_loss", record["step"])] == pytest.approx(record["train_loss"], rel=1e-6)
            assert scalars[("val_accuracy", record["step"])] == pytest.approx(
                record["val_accuracy"], rel=1e-6
            )
