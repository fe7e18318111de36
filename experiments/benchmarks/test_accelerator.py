"""fnlearn on a GPU: a train step, bfloat16 compute, data parallelism over the GPUs present.

Marked ``accelerator`` and kept out of the README's test command (it collects ``tests/`` only);
``bash experiments/benchmarks/gpu_check.sh`` runs it on a machine with a GPU:

    python -m pytest -q -m accelerator experiments/benchmarks/test_accelerator.py

Without a GPU the session stops at once with one line saying so (nothing here can pass on a CPU).
Every test asserts that its arrays live on GPU devices, and checks the GPU's numbers against an
independent path: the same steps on the host CPU, or one device against all of them.
"""

import contextlib

import jax
import numpy as np
import pytest

import fnlearn as fl

pytestmark = pytest.mark.accelerator

HEAD = fl.distributions.get("categorical")
KEY = jax.random.key(0)


@pytest.fixture(scope="module", autouse=True)
def gpu():
    """The GPUs; without one the session ends here, with the reason and the fix."""
    if jax.default_backend() != "gpu":
        pytest.exit(
            f"test_accelerator.py needs a GPU: jax's default backend is {jax.default_backend()} "
            f"(devices {jax.devices()}). Install the CUDA wheel: pip install 'jax[cuda12]' "
            "(experiments/benchmarks/gpu_check.sh does).",
            returncode=3,
        )
    return jax.devices("gpu")


@pytest.fixture(scope="module")
def digits():
    parts, _ = fl.data.standardize(fl.data.split(fl.data.load("digits"), val=0.0, test=0.2, seed=0))
    return parts.train.x, parts.train.y


def _on_gpu(tree) -> set[str]:
    """The platforms of every device holding a leaf of ``tree``."""
    return {device.platform for leaf in jax.tree.leaves(tree) for device in leaf.devices()}


def _fit(x, y, device=None, **kwargs):
    model = fl.nn.mlp([64, 128, 128, 10])
    with jax.default_device(device) if device is not None else contextlib.nullcontext():
        state = fl.TrainState.create(model, fl.optim.adam(1e-3), KEY)
        return fl.fit(state, (x, y), loss=HEAD, epochs=2, batch_size=64, progress=False, **kwargs)


def test_fit_trains_on_the_gpu_as_on_the_cpu(gpu, digits):
    """Two epochs on the GPU; the same steps on the host CPU give the same parameters (matmuls at
    full float32 precision on both, so TF32 cannot explain a difference)."""
    x, y = digits
    with jax.default_matmul_precision("highest"):
        on_gpu, history = _fit(x, y)
        on_cpu, _ = _fit(x, y, device=jax.devices("cpu")[0])
    assert _on_gpu(on_gpu.params) == {"gpu"} and _on_gpu(on_cpu.params) == {"cpu"}
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    for a, b in zip(jax.tree.leaves(on_gpu.params), jax.tree.leaves(on_cpu.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)


def test_bfloat16_compute_on_the_gpu(gpu, digits):
    """bfloat16 forward and backward on the GPU: float32 parameters, a falling loss close to the
    float32 run's, and bfloat16 dots in the compiled step."""
    x, y = digits
    low, history = _fit(x, y, compute_dtype="bfloat16")
    full, full_history = _fit(x, y)
    assert _on_gpu(low.params) == {"gpu"}
    assert {leaf.dtype for leaf in jax.tree.leaves(low.params)} == {np.dtype("float32")}
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert history[-1]["train_loss"] == pytest.approx(full_history[-1]["train_loss"], rel=0.1)
    obj, state = fl.train.configure(fl.train.objective(HEAD, None), low, compute_dtype="bfloat16")
    batch = (x[:64], y[:64], np.ones(64, np.float32))
    text = jax.jit(lambda s, b: fl.train.train_step(s, b, obj, None, False)).lower(state, batch).as_text()
    assert "bf16" in text


def test_data_parallel_over_every_gpu(gpu, digits):
    """devices="all": the batch split over every GPU present, the parameters replicated on each;
    the result equals one GPU's."""
    x, y = digits
    n = len(gpu)
    with jax.default_matmul_precision("highest"):
        sharded, _ = _fit(x, y, devices="all")
        single, _ = _fit(x, y, devices=1)
    leaf = jax.tree.leaves(sharded.params)[0]
    assert _on_gpu(sharded.params) == {"gpu"} and len(leaf.sharding.device_set) == n
    for a, b in zip(jax.tree.leaves(sharded.params), jax.tree.leaves(single.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)
