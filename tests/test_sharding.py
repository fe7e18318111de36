"""Sharded parameters and optimizer state: the layout rule, and fit on 8 (virtual CPU) devices
against the replicated run, in one subprocess (tests/jobs/sharding_job.py)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.sharding import Mesh, PartitionSpec

import fnlearn as fl
from fnlearn import config as C
from fnlearn import sharding
from fnlearn.errors import FnlearnError
from fnlearn.runs.build import build, fit_kwargs

JOB = Path(__file__).parent / "jobs" / "sharding_job.py"


@pytest.fixture(scope="session")  # session: kept on its worker until the end, never built twice
def eight():
    """The job's measurements: replicated, sharded (loop and scan drivers) and resumed runs."""
    flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=8".strip()
    env = os.environ | {"XLA_FLAGS": flags}
    out = subprocess.run([sys.executable, str(JOB)], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


EIGHT = pytest.mark.xdist_group("sharding")  # the tests of the 8-device job run on one worker


@EIGHT
def test_each_device_holds_an_eighth_of_the_state(eight):
    assert eight["devices"] == 8 and eight["first_weight_shards"] == 8
    assert eight["bytes_replicated"] == eight["bytes_total"]  # a whole copy on every device
    # measured from the arrays' shards = the rule's Σ_sharded B/8 + Σ_replicated B, from the shapes
    assert eight["bytes_sharded"] == eight["bytes_expected"]
    eighth = eight["bytes_total"] / 8
    assert eighth <= eight["bytes_sharded"] <= eighth + eight["replicated_leaf_bytes"]
    assert eight["bytes_sharded"] / eight["bytes_replicated"] < 0.13


@EIGHT
def test_sharded_training_equals_replicated(eight):
    assert eight["max_diff"] < 1e-5 and eight["scan_max_diff"] < 1e-5
    replicated, sharded, scanned = eight["losses"]
    np.testing.assert_allclose(sharded, replicated, rtol=1e-5)
    np.testing.assert_allclose(scanned, replicated, rtol=1e-5)
    assert replicated[-1] < 0.5 * replicated[0]  # it trained


@EIGHT
def test_steps_keep_the_layout_and_donate_it(eight):
    assert eight["layout_kept"] == [True, True]  # loop and scan drivers
    assert eight["donated"]
    assert eight["from_whole_copies"]  # what each of several processes does gives the same arrays


@EIGHT
def test_sharded_checkpoint_restores_and_resumes_exactly(eight):
    assert eight["restored_diff"] == 0.0  # the sharded checkpoint, read back onto one device
    assert eight["resumed_diff"] == 0.0 and eight["resumed_epochs"] == [1, 2, 3]
    assert eight["resumed_layout_kept"]


@settings(max_examples=200, deadline=None)
@given(shape=st.lists(st.integers(0, 64), max_size=4).map(tuple), n=st.integers(1, 16))
def test_the_largest_divisible_axis_is_split(shape, n):
    spec = sharding.leaf_spec(shape, n)
    divisible = [a for a, size in enumerate(shape) if size and size % n == 0]
    if n == 1 or not divisible:
        assert spec == PartitionSpec()
        return
    axis = len(spec) - 1
    assert tuple(spec) == (None,) * axis + ("data",)
    assert shape[axis] == max(shape[a] for a in divisible)  # the largest divisible axis ...
    assert axis == min(a for a in divisible if shape[a] == shape[axis])  # ... the first of equals


def test_one_device_mesh_replicates_and_counts_everything():
    mesh = Mesh(np.asarray(jax.devices()[:1]), ("data",))
    tree = {"w": jnp.ones((8, 4)), "step": jnp.zeros((), jnp.int32), "key": jax.random.key(0)}
    placed = sharding.place(tree, mesh, "params")
    assert all(s.spec == PartitionSpec() for s in jax.tree.leaves(sharding.state_sharding(tree, mesh)))
    assert sharding.bytes_per_device(placed) == 8 * 4 * 4 + 4 + 8  # the key: two uint32
    assert sharding.bytes_per_device({"host": np.ones(3)}) == 0  # not on a device


def test_shard_needs_several_devices():
    state = fl.TrainState.create(fl.nn.mlp([2, 3]), fl.optim.sgd(0.1), jax.random.key(0))
    data = (np.zeros((8, 2), np.float32), np.zeros(8, np.int32))
    fit_args = {"loss": fl.distributions.get("categorical"), "epochs": 1}
    with pytest.raises(FnlearnError, match=r"shard='params' splits .* devices=None gives one"):
        fl.fit(state, data, **fit_args, shard="params")
    with pytest.raises(FnlearnError, match=r"shard must be None .* or 'params'"):
        fl.fit(state, data, **fit_args, shard="rows")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            'shard = "params"',
            r"^training.shard = \"params\": expected 'none' with one device, or training.devices > 1",
        ),
        (
            'shard = "param"',
            r"^training.shard = \"param\": out of range: expected one of 'none', 'params'. Did you mean 'params'",
        ),
        (
            'shard = "params"\ndevices = 0',
            r"^training.shard = \"params\": expected 'none' when this process sees one device",
        ),
    ],
)
def test_config_key_is_checked(text, message):
    with pytest.raises(FnlearnError, match=message):
        build(C.loads(f"[training]\n{text}\n"))


def test_config_passes_shard_to_fit():
    built = build(C.loads("[model]\nsizes = [8]\n"))
    assert "shard" not in fit_kwargs(built)  # "none": fit's default
    config = C.loads('[model]\nsizes = [8]\n[training]\nshard = "params"\ndevices = 2\n')
    assert fit_kwargs(built._replace(config=config))["shard"] == "params"
