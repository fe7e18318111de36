"""Training-loop throughput: fnlearn's fit against the loops people write with jax, flax, equinox, torch.

Every competitor trains the same MLP from the same initial weights on the same data with the same
Adam (lr 1e-3, β = (0.9, 0.999), ε = 1e-8) and softmax cross-entropy, for the same number of steps,
visiting the examples in the same order (a fresh permutation per epoch, drawn from one key, the last
partial batch dropped). Runs are interleaved (the order rotates every repeat) and each competitor's
time is the median over repeats, so a shared, noisy machine affects all alike.

Competitors:
    fnlearn fit       fl.fit: the steps between host interactions as one compiled lax.scan
    jax scan          hand-written jax + optax: lax.scan over epochs (permutation) and batches
                      (gather + step), one compiled program; the ceiling of fit's design
    jax jit loop      hand-written jax + optax: a jitted step (buffers donated) called from Python
    flax linen        flax.linen MLP, flax.training.train_state.TrainState, jitted step
    equinox           eqx.Module MLP, eqx.filter_jit step, optax
    torch eager       PyTorch eager on the CPU, torch.set_num_threads(cores), torch.optim.Adam

Every Python-loop competitor gets the data once (device-resident for jax) and, per step, the
indices of its batch; the gather happens inside its step, like fit's.

Work per train step of a dense MLP (forward + backward, biases and activations ignored):
    FLOPs/step = 6 · batch · Σ_layers fan_in · fan_out
(2·B·fan_in·fan_out for x·W, twice that for the gradients with respect to x and W). Achieved
GFLOP/s = FLOPs/step × steps/s, compared with the peak of a jitted square matmul (2n³ FLOPs) of the
same dtype measured in this process.

Also measured: the first call's extra time over a steady-state call (trace + compile: the "time to
first step"), the peak memory of a ~50M-parameter Adam step against params + grads + two moments
(in a fresh subprocess each, with and without buffer donation), and S = 16 replicas trained in one
vmapped program (fl.replicas.fit; and vmap of the hand-written scan) against 16 sequential runs.

    python experiments/benchmarks/train_loop.py [--quick] [--workload small|large|all]
        [--sections throughput,memory,replicas] [--repeats 7] [--out DIR] [--json PATH]
    python experiments/benchmarks/train_loop.py --smoke [--competitors NAME,...]

``--smoke`` times nothing: it trains every installed competitor on a tiny full-batch workload and
exits with status 1 unless each one's final loss agrees with the hand-written jax + optax loop's.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

import fnlearn as fl

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling modules of the CNN and GPT workloads
import deep_workloads as deep  # noqa: E402

LEARNING_RATE = 1e-3

# --------------------------------------------------------------------------------------------
# workloads, data, work per step


@dataclasses.dataclass(frozen=True)
class Workload(deep.StepCounts):
    """An MLP classification problem: ``sizes = [in, hidden..., classes]``, ``n`` examples."""

    name: str
    sizes: tuple[int, ...]
    batch: int
    n: int
    epochs: int

    @property
    def flops_per_step(self) -> int:
        return dense_train_flops(self.sizes, self.batch)

    def describe(self) -> str:
        return (
            f"MLP {'-'.join(map(str, self.sizes))}, batch {self.batch}, {self.n} examples, "
            f"{self.steps} steps ({self.epochs} epochs of {self.steps_per_epoch})"
        )


def workloads(quick: bool) -> dict[str, Workload]:
    """small: digits-sized (1437 × 64, 10 classes); large: MNIST-sized inputs (784 features)."""
    return {
        "small": Workload("small", (64, 128, 128, 10), 32, 1437, 2 if quick else 40),
        "large": Workload("large", (784, 512, 512, 10), 128, 2560 if quick else 10_000, 1 if quick else 2),
    }


def dense_train_flops(sizes, batch: int) -> int:
    """FLOPs of one forward + backward pass of the dense layers: 6 · B · Σ fan_in · fan_out."""
    return 6 * batch * sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))


def make_data(workload: Workload, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Standard-normal inputs labelled by a random linear teacher, y = argmax(x·T) (learnable)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((workload.n, workload.sizes[0]), dtype=np.float32)
    teacher = rng.standard_normal((workload.sizes[0], workload.sizes[-1]), dtype=np.float32)
    return x, np.argmax(x @ teacher, axis=1).astype(np.int32)


# --------------------------------------------------------------------------------------------
# what every competitor shares: initial weights, batch order, the network and its loss


def dense_layers(params) -> list[tuple[np.ndarray, np.ndarray]]:
    """The (w, b) pairs of fnlearn MLP parameters, input layer first, as numpy arrays."""
    if isinstance(params, dict) and "w" in params:
        return [(np.asarray(params["w"]), np.asarray(params["b"]))]
    if isinstance(params, (list, tuple)):
        return [layer for p in params for layer in dense_layers(p)]
    return []


def initial_layers(sizes, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """fnlearn's MLP initialisation (He-normal hidden layers, LeCun-normal output, zero biases),
    shared by every competitor so all start from the same weights."""
    params, _ = fl.nn.mlp(list(sizes)).init(jax.random.key(seed))
    return dense_layers(params)


def epoch_batches(key, epoch, n: int, batch: int):
    """The batches of one epoch, [n // batch, batch] indices (the remainder dropped): fit's own
    order (``fl.loop.epoch_order``, a permutation drawn from fold_in(key, epoch)), so that every
    competitor takes exactly the same steps. Works traced or eagerly."""
    return fl.loop.epoch_order(key, epoch, n, batch, True)[0]


def mlp_logits(layers, x):
    """relu(x·W₁ + b₁) → … → x·W_L + b_L."""
    for w, b in layers[:-1]:
        x = jax.nn.relu(x @ w + b)
    w, b = layers[-1]
    return x @ w + b


def cross_entropy(logits, y):
    """mean_i [logsumexp(z_i) − z_{i, y_i}]."""
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def handwritten_step(tx):
    """(layers, opt_state, xb, yb) -> (layers, opt_state, loss): the plain jax + optax step."""

    def step(layers, opt_state, xb, yb):
        loss, grads = jax.value_and_grad(lambda p: cross_entropy(mlp_logits(p, xb), yb))(layers)
        updates, opt_state = tx.update(grads, opt_state, layers)
        return optax.apply_updates(layers, updates), opt_state, loss

    return step


def device_layers(layers):
    """Fresh device copies (a donating competitor must not delete another's buffers)."""
    return [(jnp.array(w), jnp.array(b)) for w, b in layers]


@dataclasses.dataclass
class Problem:
    """Everything one competitor needs: the workload, data, initial weights and the order key."""

    workload: Workload
    x: np.ndarray
    y: np.ndarray
    layers: list
    run_seed: int

    def run_key(self) -> jax.Array:
        """A fresh copy (fit donates its state) of the key of fit's TrainState."""
        return jax.random.key(self.run_seed)

    @property
    def order_key(self) -> jax.Array:
        """The key fit derives its data order from, ``fold_in(state.key, ORDER_SALT)``: every
        competitor draws the batches fit draws."""
        return jax.random.fold_in(self.run_key(), fl.loop.ORDER_SALT)


def make_problem(workload: Workload, seed: int = 0) -> Problem:
    x, y = make_data(workload, seed)
    return Problem(workload, x, y, initial_layers(workload.sizes, seed), seed + 1)


# --------------------------------------------------------------------------------------------
# competitors: make_*(problem) -> Runner


@dataclasses.dataclass(frozen=True)
class Runner:
    """``run()`` trains ``workload.steps`` more steps, continuing where the last call stopped, and
    returns once they are done; ``weights()`` gives the current dense (w, b) pairs as numpy."""

    run: Callable[[], None]
    weights: Callable[[], list]
    driver: Callable[[], dict | None] = lambda: None  # fit's history.driver after the last call


def train_set_loss(layers, x, y) -> float:
    """The mean cross-entropy over the whole training set: the same yardstick for everyone."""
    return float(
        cross_entropy(
            mlp_logits([(jnp.asarray(w), jnp.asarray(b)) for w, b in layers], jnp.asarray(x)), jnp.asarray(y)
        )
    )


def make_fnlearn_fit(problem: Problem, callbacks=(), driver: str = "auto") -> Runner:
    """fnlearn: ``fl.fit`` on a TrainState whose parameters are the shared initial weights.

    ``drop_last=True`` so that every step is a full batch, as for the other competitors (fit's
    default pads the last batch with weight-0 rows instead). fit's ``steps`` is the step count
    to reach, so each call asks for the state's step + workload.steps. With ``callbacks`` fit
    returns to the host at every epoch end (one compiled scan per epoch).
    """
    wl = problem.workload
    model = fl.nn.mlp(list(wl.sizes))
    tx = fl.optim.adam(LEARNING_RATE)
    params, _ = model.init(jax.random.key(0))
    params = _replace_dense(params, problem.layers)
    state = fl.train.TrainState.create(model, tx, problem.run_key()).replace(
        params=params, opt_state=tx.init(params), key=problem.run_key()
    )
    train = (jnp.asarray(problem.x), jnp.asarray(problem.y))
    head = fl.distributions.get("categorical")
    box = {"state": state, "driver": None}

    def run():
        target = int(box["state"].step) + wl.steps
        box["state"], history = fl.fit(
            box["state"],
            train=train,
            loss=head,
            steps=target,
            batch_size=wl.batch,
            drop_last=True,
            log_every=None,
            progress=False,
            callbacks=callbacks,
            driver=driver,
        )
        box["driver"] = history.driver
        jax.block_until_ready(box["state"].params)

    return Runner(run, lambda: dense_layers(box["state"].params), lambda: box["driver"])


def make_fnlearn_fit_per_epoch(problem: Problem) -> Runner:
    """``fl.fit`` with a no-op callback: the host wakes up at every epoch end, as it does when a run
    evaluates, logs, checkpoints or early-stops. Its gap to ``fnlearn fit`` is what those cost
    beyond their own work."""
    return make_fnlearn_fit(problem, callbacks=(fl.callbacks.LambdaCallback(),))


def _replace_dense(params, layers):
    """fnlearn parameters with every dense (w, b) replaced, in order, by ``layers``."""
    it = iter(layers)

    def walk(p):
        if isinstance(p, dict) and "w" in p:
            w, b = next(it)
            return {**p, "w": jnp.array(w), "b": jnp.array(b)}
        if isinstance(p, list):
            return [walk(q) for q in p]
        return p

    return walk(params)


def scan_program(tx, workload: Workload):
    """The hand-written ceiling: train ``epochs`` epochs in one compiled program.

    (layers, opt_state, x, y, key, first_epoch, epochs) -> (layers, opt_state, last loss); an outer
    lax.scan over epochs draws each permutation, an inner one gathers the batch and steps.
    """
    step = handwritten_step(tx)

    def train(layers, opt_state, x, y, key, first_epoch, epochs):
        def one_epoch(carry, epoch):
            def one_step(carry, idx):
                layers, opt_state, _ = carry
                return step(layers, opt_state, x[idx], y[idx]), None

            order = epoch_batches(key, epoch, workload.n, workload.batch)
            (layers, opt_state, loss), _ = jax.lax.scan(one_step, (*carry, jnp.zeros(())), order)
            return (layers, opt_state), loss

        (layers, opt_state), losses = jax.lax.scan(
            one_epoch, (layers, opt_state), first_epoch + jnp.arange(epochs)
        )
        return layers, opt_state, losses[-1]

    return train


def make_jax_scan(problem: Problem) -> Runner:
    wl = problem.workload
    tx = optax.adam(LEARNING_RATE)
    program = jax.jit(scan_program(tx, wl), static_argnums=6, donate_argnums=(0, 1))
    layers = device_layers(problem.layers)
    box = {"layers": layers, "opt": tx.init(layers), "epoch": 0}
    x, y = jnp.asarray(problem.x), jnp.asarray(problem.y)

    def run():
        box["layers"], box["opt"], loss = program(
            box["layers"], box["opt"], x, y, problem.order_key, box["epoch"], wl.epochs
        )
        box["epoch"] += wl.epochs
        float(loss)

    return Runner(run, lambda: [(np.asarray(w), np.asarray(b)) for w, b in box["layers"]])


def python_loop(step, carry, problem: Problem, x, y, weights, convert=np.asarray) -> Runner:
    """The shared Python training loop: per epoch, the shared batch order; per step, one call.

    ``step(carry, x, y, idx) -> (carry, loss)``; ``weights(carry)`` gives the dense (w, b) pairs.
    The loss of the last step is read back (a sync) once per ``run``.
    """
    wl = problem.workload
    order = jax.jit(epoch_batches, static_argnums=(2, 3))
    box = {"carry": carry, "epoch": 0}

    def run():
        carry, loss = box["carry"], None
        for epoch in range(box["epoch"], box["epoch"] + wl.epochs):
            for idx in convert(order(problem.order_key, epoch, wl.n, wl.batch)):
                carry, loss = step(carry, x, y, idx)
        box["carry"], box["epoch"] = carry, box["epoch"] + wl.epochs
        float(loss)

    return Runner(run, lambda: weights(box["carry"]))


def make_jax_jit_loop(problem: Problem) -> Runner:
    tx = optax.adam(LEARNING_RATE)
    step = handwritten_step(tx)

    def one_step(carry, x, y, idx):
        layers, opt_state, loss = step(*carry, x[idx], y[idx])
        return (layers, opt_state), loss

    jitted = jax.jit(one_step, donate_argnums=0)
    layers = device_layers(problem.layers)
    weights = lambda carry: [(np.asarray(w), np.asarray(b)) for w, b in carry[0]]  # noqa: E731
    return python_loop(
        jitted, (layers, tx.init(layers)), problem, jnp.asarray(problem.x), jnp.asarray(problem.y), weights
    )


def make_flax_linen(problem: Problem) -> Runner:
    """The flax tutorial loop: a linen Module, TrainState.apply_gradients, a jitted step."""
    import flax.linen as nn
    from flax.training import train_state

    sizes = problem.workload.sizes

    class MLP(nn.Module):
        @nn.compact
        def __call__(self, x):
            for width in sizes[1:-1]:
                x = nn.relu(nn.Dense(width)(x))
            return nn.Dense(sizes[-1])(x)

    module = MLP()
    params = {
        f"Dense_{i}": {"kernel": jnp.array(w), "bias": jnp.array(b)}
        for i, (w, b) in enumerate(problem.layers)
    }
    reference = module.init(jax.random.key(0), jnp.zeros((1, sizes[0])))["params"]
    assert jax.tree.structure(reference) == jax.tree.structure(params), "flax parameter names changed"
    state = train_state.TrainState.create(apply_fn=module.apply, params=params, tx=optax.adam(LEARNING_RATE))

    @jax.jit
    def step(state, x, y, idx):
        def loss_fn(params):
            return cross_entropy(state.apply_fn({"params": params}, x[idx]), y[idx])

        loss, grads = jax.value_and_grad(loss_fn)(state.params)
        return state.apply_gradients(grads=grads), loss

    def weights(state):
        return [
            (np.asarray(state.params[f"Dense_{i}"]["kernel"]), np.asarray(state.params[f"Dense_{i}"]["bias"]))
            for i in range(len(problem.layers))
        ]

    return python_loop(step, state, problem, jnp.asarray(problem.x), jnp.asarray(problem.y), weights)


def make_equinox(problem: Problem) -> Runner:
    """The equinox idiom: a Module of eqx.nn.Linear layers, eqx.filter_jit, eqx.filter_value_and_grad."""
    import equinox as eqx

    class MLP(eqx.Module):
        layers: list

        def __call__(self, x):
            for layer in self.layers[:-1]:
                x = jax.nn.relu(layer(x))
            return self.layers[-1](x)

    keys = jax.random.split(jax.random.key(0), len(problem.layers))
    linears = []
    for key, (w, b) in zip(keys, problem.layers):
        linear = eqx.nn.Linear(w.shape[0], w.shape[1], key=key)
        linears.append(eqx.tree_at(lambda m: (m.weight, m.bias), linear, (jnp.array(w.T), jnp.array(b))))
    model = MLP(linears)
    tx = optax.adam(LEARNING_RATE)
    opt_state = tx.init(eqx.filter(model, eqx.is_array))

    @eqx.filter_jit
    def step(carry, x, y, idx):
        model, opt_state = carry

        @eqx.filter_value_and_grad
        def loss_fn(model):
            return cross_entropy(jax.vmap(model)(x[idx]), y[idx])

        loss, grads = loss_fn(model)
        updates, opt_state = tx.update(grads, opt_state, eqx.filter(model, eqx.is_array))
        return (eqx.apply_updates(model, updates), opt_state), loss

    weights = lambda carry: [
        (np.asarray(layer.weight).T, np.asarray(layer.bias)) for layer in carry[0].layers
    ]  # noqa: E731
    return python_loop(
        step, (model, opt_state), problem, jnp.asarray(problem.x), jnp.asarray(problem.y), weights
    )


def make_torch_eager(problem: Problem, threads: int | None = None) -> Runner:
    """PyTorch eager on the CPU: nn.Sequential, F.cross_entropy, torch.optim.Adam, with
    ``torch.set_num_threads(threads)`` (default: all cores)."""
    import torch

    threads = threads or os.cpu_count() or 1
    modules = []
    for i, (w, b) in enumerate(problem.layers):
        linear = torch.nn.Linear(w.shape[0], w.shape[1])
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(np.ascontiguousarray(w.T)))
            linear.bias.copy_(torch.from_numpy(b.copy()))
        modules.append(linear)
        if i < len(problem.layers) - 1:
            modules.append(torch.nn.ReLU())
    net = torch.nn.Sequential(*modules)
    optimizer = torch.optim.Adam(net.parameters(), lr=LEARNING_RATE, betas=(0.9, 0.999), eps=1e-8)

    def step(carry, x, y, idx):
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(net(x[idx]), y[idx])
        loss.backward()
        optimizer.step()
        return carry, loss.detach()

    def weights(_):
        linears = [m for m in net if isinstance(m, torch.nn.Linear)]
        return [(m.weight.detach().numpy().T.copy(), m.bias.detach().numpy().copy()) for m in linears]

    to_torch = lambda order: torch.from_numpy(np.asarray(order, dtype=np.int64))  # noqa: E731
    x, y = torch.from_numpy(problem.x.copy()), torch.from_numpy(problem.y.astype(np.int64))
    loop = python_loop(step, None, problem, x, y, weights, to_torch)

    def run():
        torch.set_num_threads(threads)  # process-wide, so set on every call (the other torch row changes it)
        loop.run()

    return Runner(run, loop.weights)


def make_torch_one_thread(problem: Problem) -> Runner:
    """PyTorch eager with one thread: intra-op threads rarely pay off on matrices this small, and
    they suffer most when other processes share the cores."""
    return make_torch_eager(problem, threads=1)


# name -> (the package it needs beyond jax and optax, its factory)
COMPETITORS: dict[str, tuple[str | None, Callable]] = {
    "fnlearn fit": ("fnlearn", make_fnlearn_fit),
    "fnlearn fit epoch by epoch": ("fnlearn", make_fnlearn_fit_per_epoch),
    "fnlearn fit driver=scan": ("fnlearn", lambda problem: make_fnlearn_fit(problem, driver="scan")),
    "fnlearn fit driver=loop": ("fnlearn", lambda problem: make_fnlearn_fit(problem, driver="loop")),
    "jax scan": (None, make_jax_scan),
    "jax jit loop": (None, make_jax_jit_loop),
    "flax linen": ("flax", make_flax_linen),
    "equinox": ("equinox", make_equinox),
    "torch eager": ("torch", make_torch_eager),
    "torch 1 thread": ("torch", make_torch_one_thread),
}


def available_competitors(table=None) -> tuple[dict[str, Callable], dict[str, str]]:
    """The competitors (of ``table``, default the MLP ones) whose package imports here, and why
    each other one is missing."""
    import importlib.util

    present, missing = {}, {}
    for name, (package, factory) in (COMPETITORS if table is None else table).items():
        if package in (None, "fnlearn") or importlib.util.find_spec(package) is not None:
            present[name] = factory
        else:
            missing[name] = f"{package} is not installed (pip install -e '.[bench]')"
    return present, missing


# --------------------------------------------------------------------------------------------
# timing


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def interleaved_medians(
    runs: dict[str, Callable[[], object]], repeats: int, seed: int = 0
) -> dict[str, dict]:
    """Time every run once cold (the first call: trace + compile + steps), then ``repeats`` rounds
    that run each once, in a fresh random order per round. Returns per name: first call, all
    times (in round order), median, and what the last call returned.

    A random order, not a rotation: in a rotation every competitor always follows the same one,
    so whatever one run leaves behind for the next (caches, threads) would fall on the same
    competitor in every round.
    """
    names = list(runs)
    first = {name: timed(runs[name]) for name in names}
    times, last = {name: [] for name in names}, {name: first[name][1] for name in names}
    rng = np.random.default_rng(seed)
    for _ in range(repeats):
        for name in rng.permutation(names):
            t, last[name] = timed(runs[name])
            times[name].append(t)
    return {
        name: {
            "first_call_s": first[name][0],
            "times_s": times[name],
            "median_s": statistics.median(times[name]),
            "last": last[name],
        }
        for name in names
    }


def matmul_peak(sizes, repeats: int, dtype=jnp.float32) -> dict:
    """The machine's attainable FLOP/s: a jitted n×n·n×n matmul (2n³ FLOPs) for each n in
    ``sizes``, the fastest of ``repeats`` calls each; the peak is the best n. (Best-of, not median:
    a peak is what the hardware can do when nothing else interferes.)"""
    by_size = {}
    for n in sizes:
        a = jax.random.normal(jax.random.key(0), (n, n), dtype)
        b = jax.random.normal(jax.random.key(1), (n, n), dtype)
        matmul = jax.jit(jnp.matmul)
        jax.block_until_ready(matmul(a, b))
        times = [timed(lambda f=matmul, a=a, b=b: jax.block_until_ready(f(a, b)))[0] for _ in range(repeats)]
        by_size[n] = {
            "best_gflops": 2 * n**3 / min(times) / 1e9,
            "median_gflops": 2 * n**3 / statistics.median(times) / 1e9,
        }
    best = max(by_size, key=lambda n: by_size[n]["best_gflops"])
    return {
        "n": best,
        "dtype": jnp.dtype(dtype).name,
        "gflops": by_size[best]["best_gflops"],
        "by_size": by_size,
    }


def bench_workload(workload: Workload, factories: dict[str, Callable], repeats: int) -> list[dict]:
    """One row per competitor: steps/s (median), the ratio to fnlearn, GFLOP/s, first-call and
    compile time, and the training-set loss before and after."""
    problem = make_problem(workload)
    runners = {name: factory(problem) for name, factory in factories.items()}
    results = interleaved_medians({name: r.run for name, r in runners.items()}, repeats)
    initial_loss = train_set_loss(problem.layers, problem.x, problem.y)
    baseline = "fnlearn fit" if "fnlearn fit" in results else "jax scan"
    final = {name: train_set_loss(runners[name].weights(), problem.x, problem.y) for name in results}
    return _rows(workload, results, baseline, initial_loss, final, runners)


def bench_deep(workload: deep.DeepWorkload, factories: dict[str, Callable], repeats: int) -> list[dict]:
    """``bench_workload`` for the CNN and GPT workloads (``deep_workloads.py``): the same rows,
    each competitor's final loss computed by its own network on the first examples."""
    problem = deep.make_problem(workload)
    runners = {name: factory(problem) for name, factory in factories.items()}
    initial_loss = deep.own_loss(problem, lambda x: deep.logits_fn(workload)(problem.params, jnp.asarray(x)))
    results = interleaved_medians({name: r.run for name, r in runners.items()}, repeats)
    baseline = "fnlearn fit" if "fnlearn fit" in results else next(iter(results))
    final = {name: runners[name].loss() for name in results}
    return _rows(workload, results, baseline, initial_loss, final, runners)


def _rows(
    workload, results: dict, baseline: str, initial_loss: float, final: dict, runners: dict
) -> list[dict]:
    """One row per competitor: steps/s (median), the paired ratio to the baseline, GFLOP/s, first
    call, the loss before and after (``final[name]``), and the driver fnlearn chose."""
    rows = []
    for name, r in results.items():
        rate = workload.steps / r["median_s"]
        # paired: round i ran every competitor once, back to back, so the ratio of round i's times
        # cancels the slow drifts of a shared machine that a ratio of medians keeps
        paired = [theirs / ours for theirs, ours in zip(r["times_s"], results[baseline]["times_s"])]
        rows.append(
            {
                "competitor": name,
                "steps_per_s": rate,
                "baseline": baseline,
                "baseline_over_this": statistics.median(paired),
                "baseline_over_this_rounds": paired,
                "gflops": rate * workload.flops_per_step / 1e9,
                "first_call_s": r["first_call_s"],
                "first_step_overhead_s": r["first_call_s"] - r["median_s"],
                "median_s": r["median_s"],
                "times_s": r["times_s"],
                "initial_loss": initial_loss,
                "final_loss": final[name],
                "driver": runners[name].driver(),
            }
        )
    return rows


def with_fraction_of_peak(rows: list[dict], peak_gflops: float) -> list[dict]:
    return [r if "missing" in r else {**r, "fraction_of_peak": r["gflops"] / peak_gflops} for r in rows]


# --------------------------------------------------------------------------------------------
# --smoke: does every competitor train the same network the same way?

# Full-batch (batch = n): every epoch is one step on all examples, so the batch order cannot make
# competitors differ, and 2 calls × 5 Adam steps must give the same loss up to float32 rounding.
SMOKE = Workload("smoke", (8, 16, 16, 3), batch=48, n=48, epochs=5)
SMOKE_RTOL = 2e-5


def smoke(factories: dict[str, Callable]) -> list[dict]:
    """Every competitor of ``factories`` and the hand-written scan train SMOKE from the same weights.
    Returns each competitor's ``bench_workload`` row (the scan's left out) with ``reference_loss``
    (the scan's final loss) and ``agrees``: |final − reference| ≤ SMOKE_RTOL·|reference|, and the
    scan's loss fell below 0.9 × the initial loss (so agreeing means having trained)."""
    rows = bench_workload(SMOKE, {"jax scan": COMPETITORS["jax scan"][1]} | factories, repeats=1)
    reference = next(r for r in rows if r["competitor"] == "jax scan")
    learned = reference["final_loss"] < 0.9 * reference["initial_loss"]
    close = lambda r: (
        abs(r["final_loss"] - reference["final_loss"]) <= SMOKE_RTOL * abs(reference["final_loss"])
    )
    return [
        {**r, "reference_loss": reference["final_loss"], "agrees": learned and close(r)}
        for r in rows
        if r["competitor"] != "jax scan"
    ]


def run_smoke(factories: dict[str, Callable], missing: dict[str, str]) -> list[dict]:
    """``--smoke``: print one line per competitor; exit with status 1 (SystemExit naming the
    competitors) if any did not train like the hand-written jax + optax loop."""
    rows = smoke(factories)
    print(
        f"smoke: {SMOKE.describe()} per call, 2 calls, full batch; final loss against the hand-written jax scan's (rtol {SMOKE_RTOL:g})"
    )
    for r in rows:
        verdict = "agrees" if r["agrees"] else "DIFFERS"
        print(
            f"  {r['competitor']:28s} {r['final_loss']:.7g} vs {r['reference_loss']:.7g} (initial {r['initial_loss']:.4g}): {verdict}"
        )
    for name, why in missing.items():
        print(f"  {name:28s} not run: {why}")
    bad = [r["competitor"] for r in rows if not r["agrees"]]
    if bad:
        raise SystemExit(
            f"smoke: {', '.join(bad)} did not train like the hand-written jax + optax loop "
            f"(final loss off by more than rtol {SMOKE_RTOL:g}, or the loss did not fall); see the lines above"
        )
    return rows


# --------------------------------------------------------------------------------------------
# peak memory of a big Adam step, each variant in a fresh process


def memory_sizes(quick: bool) -> list[int]:
    """~50M parameters: 2048-4096-4096-4096-2048 (50.3M); 12.6M with --quick."""
    return [1024, 2048, 2048, 2048, 1024] if quick else [2048, 4096, 4096, 4096, 2048]


def reference_sizes(sizes: list[int]) -> list[int]:
    """The same network 64 times narrower (4096 times fewer weights): its process has the same
    imports, thread pools and compiler memory, so peak(big) − peak(narrow) is the model's own."""
    return [max(2, s // 64) for s in sizes]


def status_bytes(field: str) -> int:
    """A memory field of /proc/self/status (VmRSS: resident now; VmHWM: its peak) in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field} (the memory probe needs Linux)")


def reset_peak_rss() -> None:
    """Make VmHWM start again from the current resident size (Linux ≥ 4.0)."""
    Path("/proc/self/clear_refs").write_text("5")


def probe_trainer(variant: str, sizes: list[int], x, y, batch: int):
    """(advance(k) running k more Adam steps, params() the current parameter tree)."""
    if variant == "fnlearn fit":
        tx = fl.optim.adam(LEARNING_RATE)
        box = {"state": fl.train.TrainState.create(fl.nn.mlp(sizes), tx, jax.random.key(0))}
        head = fl.distributions.get("categorical")

        def advance(k):
            target = int(box["state"].step) + k
            box["state"], _ = fl.fit(
                box["state"],
                train=(x, y),
                loss=head,
                steps=target,
                batch_size=batch,
                log_every=None,
                progress=False,
            )
            jax.block_until_ready(box["state"].params)

        return advance, lambda: box["state"].params
    tx = optax.adam(LEARNING_RATE)
    shapes = list(zip(sizes[:-1], sizes[1:]))
    layers = [
        (jax.random.normal(jax.random.key(i), (a, b)) * (2 / a) ** 0.5, jnp.zeros(b))
        for i, (a, b) in enumerate(shapes)
    ]
    box = {"carry": (layers, tx.init(layers)), "i": 0}
    jitted = jax.jit(handwritten_step(tx), donate_argnums=(0, 1) if variant == "jax donate" else ())

    def advance(k):
        for _ in range(k):
            rows = slice(batch * (box["i"] % 4), batch * (box["i"] % 4 + 1))
            *box["carry"], _ = jitted(*box["carry"], x[rows], y[rows])
            box["i"] += 1
        jax.block_until_ready(box["carry"])

    return advance, lambda: box["carry"][0]


def memory_probe(variant: str, sizes: list[int], steps: int = 3, batch: int = 64) -> dict:
    """Peak memory of ``steps`` Adam steps of an MLP of ``sizes``, meant for a fresh process.

    The resident size before the model exists is the baseline; one warm-up step compiles (so the
    compiler's transient memory is not counted, unless the trainer compiles on every call); then
    the peak is reset and ``steps`` more steps run. Reports the peak over the baseline, jax's device
    peak where the backend keeps one (GPU; None on CPU), and whether the step deleted (donated) the
    parameter buffers it was given.

    variants: "jax donate" / "jax no donate" (the hand-written jitted step with and without
    donate_argnums), "fnlearn fit".
    """
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((4 * batch, sizes[0]), dtype=np.float32))
    y = jnp.asarray(rng.integers(0, sizes[-1], 4 * batch).astype(np.int32))
    before = status_bytes("VmRSS")
    advance, params = probe_trainer(variant, sizes, x, y, batch)
    advance(1)
    given = jax.tree.leaves(params())[0]
    reset_peak_rss()
    advance(steps)
    stats = jax.devices()[0].memory_stats() or {}
    return {
        "variant": variant,
        "num_params": int(fl.tree.num_params(params())),
        "peak_over_baseline_bytes": status_bytes("VmHWM") - before,
        "device_peak_bytes": stats.get("peak_bytes_in_use"),
        "donated": bool(given.is_deleted()),
    }


def run_probe(variant: str, sizes: list[int]) -> dict:
    """``memory_probe`` in a fresh process (peak RSS only ever grows within one)."""
    spec = json.dumps({"variant": variant, "sizes": sizes})
    proc = subprocess.run([sys.executable, __file__, "--memory-probe", spec], capture_output=True, text=True)
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines()
        raise RuntimeError(
            f"memory probe {variant} {sizes} failed: {lines[-1] if lines else f'exit {proc.returncode}'}"
        )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench_memory(sizes: list[int], variants: list[str], subtract_reference: bool = True) -> list[dict]:
    """Per variant: the peak over the baseline of the big model's process minus that of the
    narrow reference's (what the compiled programs themselves keep cancels), against the least an
    Adam step must hold, params + grads + m + v = 4 · 4 bytes · P. Without ``subtract_reference``
    (--quick: half the processes) the big model's peak over the baseline is reported as it is."""
    rows = []
    for variant in variants:
        try:
            big = run_probe(variant, sizes)
            narrow = (
                run_probe(variant, reference_sizes(sizes))
                if subtract_reference
                else {"num_params": 0, "peak_over_baseline_bytes": 0}
            )
        except RuntimeError as error:
            rows.append({"variant": variant, "error": str(error)})
            continue
        num = big["num_params"] - narrow["num_params"]
        row = {
            "variant": variant,
            "num_params": big["num_params"],
            "donated": big["donated"],
            "peak_over_baseline_bytes": big["peak_over_baseline_bytes"],
            "reference_peak_over_baseline_bytes": narrow["peak_over_baseline_bytes"],
            "model_peak_bytes": big["peak_over_baseline_bytes"] - narrow["peak_over_baseline_bytes"],
            "device_peak_bytes": big["device_peak_bytes"],
            "adam_minimum_bytes": 4 * 4 * num,
        }
        row["peak_over_minimum"] = row["model_peak_bytes"] / row["adam_minimum_bytes"]
        rows.append(row)
    return rows


# --------------------------------------------------------------------------------------------
# S replicas: one vmapped program against S sequential runs
#
# Every ``run`` below trains S replicas of the workload from their initial states (fresh copies,
# so each call does the same work) and returns each replica's final dense (w, b) pairs.


def split_replicas(stacked_layers) -> list[list]:
    """Stacked host (w, b) pairs [S, ...] -> one list of (w, b) pairs per replica."""
    count = stacked_layers[0][0].shape[0]
    return [[(w[i], b[i]) for w, b in stacked_layers] for i in range(count)]


def fresh(tree):
    """Copies of every buffer (fit donates what it is given)."""
    return jax.tree.map(lambda a: a.copy(), tree)


def fnlearn_replicas(problem: Problem, seeds) -> dict[str, Callable[[], list]]:
    """fnlearn: ``fl.replicas.fit`` on ``fl.replicas.create(model, tx, seeds)`` (one compiled
    vmapped scan), against one ``fl.fit`` per seed on ``TrainState.create(model, tx, key(seed))``."""
    wl = problem.workload
    model, tx, head = (
        fl.nn.mlp(list(wl.sizes)),
        fl.optim.adam(LEARNING_RATE),
        fl.distributions.get("categorical"),
    )
    stacked, _ = fl.replicas.create(model, tx, [int(s) for s in seeds])
    singles = [fl.train.TrainState.create(model, tx, jax.random.key(int(s))) for s in seeds]
    train = (jnp.asarray(problem.x), jnp.asarray(problem.y))
    options = {"loss": head, "steps": wl.steps, "batch_size": wl.batch, "drop_last": True, "progress": False}

    def vmapped():
        states, _ = fl.replicas.fit(fresh(stacked), train, **options)
        return split_replicas(dense_layers(jax.device_get(states.params)))

    def sequential():
        return [
            dense_layers(jax.device_get(fl.fit(fresh(state), train, log_every=None, **options)[0].params))
            for state in singles
        ]

    return {"fnlearn replicas.fit (vmapped)": vmapped, "fnlearn fit, one run per seed": sequential}


def handwritten_replicas(problem: Problem, seeds) -> dict[str, Callable[[], list]]:
    """The ceiling: ``jax.vmap`` of the hand-written scan over S stacked states, against the same
    compiled scan run once per seed."""
    wl = problem.workload
    tx = optax.adam(LEARNING_RATE)
    x, y = jnp.asarray(problem.x), jnp.asarray(problem.y)
    singles = [(device_layers(initial_layers(wl.sizes, int(s))), jax.random.key(int(s) + 1)) for s in seeds]
    stack = lambda *xs: jnp.stack(xs)  # noqa: E731
    layers = jax.tree.map(stack, *[layers for layers, _ in singles])
    opt_state = jax.tree.map(stack, *[tx.init(layers) for layers, _ in singles])
    keys = jnp.stack([key for _, key in singles])
    one = jax.jit(scan_program(tx, wl), static_argnums=6)
    many = jax.jit(
        jax.vmap(scan_program(tx, wl), in_axes=(0, 0, None, None, 0, None, None)), static_argnums=6
    )

    def vmapped():
        return split_replicas(jax.device_get(many(layers, opt_state, x, y, keys, 0, wl.epochs)[0]))

    def sequential():
        return [
            jax.device_get(one(layers, tx.init(layers), x, y, key, 0, wl.epochs)[0])
            for layers, key in singles
        ]

    return {"jax: vmap of the hand-written scan": vmapped, "jax: hand-written scan per seed": sequential}


def bench_replicas(workload: Workload, replicas: int, repeats: int) -> list[dict]:
    """Median time of S vmapped replicas vs S sequential runs, for fnlearn and for the hand-written
    scan, all interleaved; each pair's final training-set losses must agree replica by replica (same
    seeds, same batch orders)."""
    problem = make_problem(workload)
    seeds = np.arange(replicas)
    pairs = [fnlearn_replicas(problem, seeds), handwritten_replicas(problem, seeds)]
    runs = {name: run for pair in pairs for name, run in pair.items()}
    timings = interleaved_medians(runs, repeats)
    rows = []
    for pair in pairs:
        v_name, s_name = pair
        losses = {
            name: np.array([train_set_loss(layers, problem.x, problem.y) for layers in timings[name]["last"]])
            for name in pair
        }
        t_v, t_s = timings[v_name]["median_s"], timings[s_name]["median_s"]
        rows.append(
            {
                "vmapped": v_name,
                "sequential": s_name,
                "replicas": replicas,
                "steps_per_replica": workload.steps,
                "vmapped_s": t_v,
                "sequential_s": t_s,
                "speedup": t_s / t_v,
                "vmapped_replica_steps_per_s": replicas * workload.steps / t_v,
                "sequential_replica_steps_per_s": replicas * workload.steps / t_s,
                "vmapped_first_call_s": timings[v_name]["first_call_s"],
                "sequential_first_call_s": timings[s_name]["first_call_s"],
                "final_losses": losses[v_name].tolist(),
                "max_loss_difference": float(np.max(np.abs(losses[v_name] - losses[s_name]))),
            }
        )
    return rows


def replicas_table(workload: Workload, rows: list[dict]) -> str:
    lines = [
        f"replicas: S = {rows[0]['replicas']} runs of {workload.name} ({workload.describe()}), different seeds",
        f"  {'one program over S stacked states':36s} {'s':>6s}   {'S runs one after another':32s} {'s':>6s} {'speedup':>8s} {'max |Δ loss|':>13s}",
    ]
    for r in rows:
        lines.append(
            f"  {r['vmapped']:36s} {r['vmapped_s']:6.2f}   {r['sequential']:32s} {r['sequential_s']:6.2f} "
            f"{r['speedup']:7.2f}× {r['max_loss_difference']:13.2e}"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# report


def machine() -> dict:
    model = "unknown"
    if Path("/proc/cpuinfo").exists():
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    device = jax.devices()[0]
    versions = {
        "python": platform.python_version(),
        "jax": jax.__version__,
        "optax": optax.__version__,
        "fnlearn": fl.__version__,
    }
    for package in ("flax", "equinox", "torch"):
        try:
            versions[package] = __import__(package).__version__
        except ImportError:
            pass
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "jax_device": f"{device.device_kind} ({device.platform})",
        "versions": versions,
    }


def throughput_table(workload: Workload, rows: list[dict], peak: dict) -> str:
    timed_rows = [r for r in rows if "missing" not in r]
    baseline = timed_rows[0]["baseline"] if timed_rows else "fnlearn fit"
    lines = [
        f"{workload.name}: {workload.describe()}; Adam(lr {LEARNING_RATE:g})",
        f"  FLOPs/step ({'XLA count' if isinstance(workload, deep.DeepWorkload) else '6·batch·Σ fan_in·fan_out'}) = {workload.flops_per_step / 1e6:.2f} MFLOP; "
        f"matmul peak {peak['gflops']:.1f} GFLOP/s ({peak['n']}³ {peak['dtype']}, best of all probes)",
        f"  {'competitor':26s} {'steps/s':>10s} {baseline + ' ÷ this':>18s} {'GFLOP/s':>9s} {'% peak':>7s} {'1st call s':>11s} {'compile s':>10s} {'final loss':>11s}",
    ]
    for r in rows:
        if "missing" in r:
            lines.append(f"  {r['competitor']:26s} missing: {r['missing']}")
            continue
        lines.append(
            f"  {r['competitor']:26s} {r['steps_per_s']:10.1f} {r['baseline_over_this']:18.2f} {r['gflops']:9.2f} "
            f"{100 * r['fraction_of_peak']:6.1f}% {r['first_call_s']:11.2f} {r['first_step_overhead_s']:10.2f} {r['final_loss']:11.4g}"
        )
    return "\n".join(lines)


def rate_text(steps_per_s: float) -> str:
    """Steps/s as the tables show them: whole numbers from 100 up, else 3 significant digits."""
    return f"{steps_per_s:.0f}" if steps_per_s >= 100 else f"{steps_per_s:.3g}"


def driver_line(rows: list[dict]) -> str:
    """What ``fnlearn fit`` (driver="auto") chose, with the times it measured."""
    fit = next((r for r in rows if r["competitor"] == "fnlearn fit" and r.get("driver")), None)
    if fit is None:
        return "fnlearn fit (auto): not run"
    d = fit["driver"]
    times = ", ".join(
        f"{name} {1e3 * d[key]:.3g} ms/step"
        for name, key in (("loop", "loop_s_per_step"), ("scan", "scan_s_per_step"))
        if d.get(key) is not None
    )
    return f"fnlearn fit (auto) chose **{d['driver']}** ({d['reason']}{'; ' + times if times else ''})."


def memory_table(rows: list[dict]) -> str:
    lines = [
        f"  {'variant':14s} {'params':>8s} {'model peak':>12s} {'4·4·P bytes':>12s} {'ratio':>6s} {'donated':>8s}"
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"  {r['variant']:14s} failed: {r['error']}")
            continue
        lines.append(
            f"  {r['variant']:14s} {r['num_params'] / 1e6:7.1f}M {r['model_peak_bytes'] / 2**20:8.0f} MiB "
            f"{r['adam_minimum_bytes'] / 2**20:8.0f} MiB {r['peak_over_minimum']:6.2f} {str(r['donated']):>8s}"
        )
    return "\n".join(lines)


def markdown_report(results: dict) -> str:
    """The tables as markdown, for the README and the closing note."""
    m, peak = results["machine"], results["matmul_peak"]
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items())
    out = [
        f"Machine: {m['cpu']}, {m['cores']} cores; jax on {m['jax_device']}; {versions}. "
        f"Matmul peak {peak['gflops']:.0f} GFLOP/s ({peak['n']}³ {peak['dtype']}). Steps/s: median of {results['repeats']} interleaved rounds; ratios: median over the rounds of the ratio within each round.",
        "",
    ]
    for name, entry in results["workloads"].items():
        rows = entry["rows"]
        baseline = next((r["baseline"] for r in rows if "missing" not in r), "fnlearn fit")
        out += [
            f"**{name}**: {entry['workload']}; {entry['flops_per_step'] / 1e6:.2f} MFLOP/step ({entry.get('flops_note', '6·batch·Σ fan_in·fan_out')})",
            "",
            f"| competitor | steps/s | {baseline} ÷ this | GFLOP/s | % of peak | first call (s) | compile (s) | final loss |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in rows:
            if "missing" in r:
                out.append(f"| {r['competitor']} | missing: {r['missing']} | | | | | | |")
                continue
            out.append(
                f"| {r['competitor']} | {rate_text(r['steps_per_s'])} | {r['baseline_over_this']:.2f} | {r['gflops']:.1f} | "
                f"{100 * r['fraction_of_peak']:.0f}% | {r['first_call_s']:.2f} | {r['first_step_overhead_s']:.2f} | {r['final_loss']:.4g} |"
            )
        out += ["", driver_line(rows), ""]
    if results.get("memory"):
        size = max(r.get("num_params", 0) for r in results["memory"]) / 1e6
        out += [
            f"**Peak memory**, 3 Adam steps of a {size:.1f}M-parameter MLP (the model's share of the peak resident memory):",
            "",
            "| variant | params | model peak | params+grads+m+v | ratio | buffers donated |",
            "|---|---:|---:|---:|---:|---|",
        ]
        for r in results["memory"]:
            if "error" in r:
                out.append(f"| {r['variant']} | failed: {r['error']} | | | | |")
                continue
            out.append(
                f"| {r['variant']} | {r['num_params'] / 1e6:.1f}M | {r['model_peak_bytes'] / 2**20:.0f} MiB | "
                f"{r['adam_minimum_bytes'] / 2**20:.0f} MiB | {r['peak_over_minimum']:.2f} | {r['donated']} |"
            )
        out.append("")
    if results.get("replicas"):
        first = results["replicas"][0]
        out += [
            f"**Replicas**: S = {first['replicas']} seeds × {first['steps_per_replica']} steps of the small workload:",
            "",
            "| one program (vmapped) | s | S runs in turn | s | speedup | max \\|Δ loss\\| |",
            "|---|---:|---|---:|---:|---:|",
        ]
        for r in results["replicas"]:
            out.append(
                f"| {r['vmapped']} | {r['vmapped_s']:.2f} | {r['sequential']} | {r['sequential_s']:.2f} | {r['speedup']:.2f}× | {r['max_loss_difference']:.1e} |"
            )
        out.append("")
    if results.get("targets"):
        out += ["| target (2-core CPU) | measured | met |", "|---|---:|---|"]
        for t in results["targets"]:
            shown = (
                "—"
                if t["measured"] is None
                else (str(t["measured"]) if isinstance(t["measured"], bool) else f"{t['measured']:.2f}")
            )
            out.append(
                f"| {t['target']} | {shown} | {'—' if t['met'] is None else ('yes' if t['met'] else 'no')} |"
            )
    return "\n".join(out) + "\n"


def plot(results: dict, path: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    names = list(results["workloads"])
    fig, axes = plt.subplots(1, len(names), figsize=(6.5 * len(names), 4.2), squeeze=False)
    for ax, name in zip(axes[0], names):
        rows = [r for r in results["workloads"][name]["rows"] if "missing" not in r]
        y = np.arange(len(rows))
        colors = ["tab:red" if r["competitor"] == "fnlearn fit" else "tab:blue" for r in rows]
        ax.barh(y, [r["steps_per_s"] for r in rows], color=colors)
        for i, r in enumerate(rows):
            ax.text(
                r["steps_per_s"],
                i,
                f" {r['steps_per_s']:.0f}/s, {r['gflops']:.1f} GFLOP/s",
                va="center",
                fontsize=8,
            )
        ceiling = results["matmul_peak"]["gflops"] * 1e9 / results["workloads"][name]["flops_per_step"]
        ax.axvline(ceiling, color="k", ls="--", lw=1)
        ax.text(ceiling, len(rows) - 0.5, " matmul peak", fontsize=8, va="bottom")
        ax.set_yticks(y, [r["competitor"] for r in rows])
        ax.invert_yaxis()
        ax.set_xscale("log")
        rates = [r["steps_per_s"] for r in rows]
        ax.set_xlim(min(rates) / 3, max(max(rates), ceiling) * 4)
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel("train steps per second (median, log scale)")
        ax.set_title(f"{name}: {results['workloads'][name]['workload']}", fontsize=9)
    m = results["machine"]
    fig.suptitle(
        f"{m['cpu']}, {m['cores']} cores, jax on {m['jax_device']}; matmul peak {results['matmul_peak']['gflops']:.0f} GFLOP/s",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def targets(results: dict) -> list[dict]:
    """The issue's targets for a 2-core CPU, each with the measured value (None: not measured).

    small and large: fnlearn ≥ 0.95 × the hand-written scan; small: about 3× flax and 8× torch;
    large: above 0.8 of the matmul peak; memory: fit's buffers donated. Issue 14, for every
    workload (small, large, cnn, gpt): fit ≥ 0.95 × the faster of the hand-written scan and jitted
    loop, and ahead of flax linen.
    """

    def row(workload, name):
        rows = results["workloads"].get(workload, {}).get("rows", [])
        return next((r for r in rows if r["competitor"] == name and "missing" not in r), None)

    def speed_ratio(workload, other):
        ours, theirs = row(workload, "fnlearn fit"), row(workload, other)
        return (
            None
            if ours is None or theirs is None or theirs["baseline"] != "fnlearn fit"
            else theirs["baseline_over_this"]
        )

    def over_faster_handwritten(workload):
        ratios = [speed_ratio(workload, name) for name in ("jax scan", "jax jit loop")]
        ratios = [r for r in ratios if r is not None]
        return min(ratios) if ratios else None  # fit ÷ the faster one = the smaller ratio

    large = row("large", "fnlearn fit")
    fit_memory = next(
        (r for r in results.get("memory", []) if r["variant"] == "fnlearn fit" and "error" not in r), None
    )
    checks = [
        ("small: fnlearn fit ÷ jax scan ≥ 0.95", speed_ratio("small", "jax scan"), lambda v: v >= 0.95),
        ("large: fnlearn fit ÷ jax scan ≥ 0.95", speed_ratio("large", "jax scan"), lambda v: v >= 0.95),
        ("small: fnlearn fit ÷ flax linen ≈ 3", speed_ratio("small", "flax linen"), lambda v: v >= 2.5),
        ("small: fnlearn fit ÷ torch eager ≈ 8", speed_ratio("small", "torch eager"), lambda v: v >= 6.5),
        (
            "large: fnlearn fit fraction of matmul peak > 0.8",
            large and large["fraction_of_peak"],
            lambda v: v > 0.8,
        ),
        (
            "memory: fnlearn fit donates its buffers",
            fit_memory and fit_memory["donated"],
            lambda v: v is True,
        ),
    ]
    for workload in ("small", "large", "cnn", "gpt"):
        checks += [
            (
                f"{workload}: fnlearn fit ÷ faster hand-written driver ≥ 0.95",
                over_faster_handwritten(workload),
                lambda v: v >= 0.95,
            ),
            (
                f"{workload}: fnlearn fit ahead of flax linen",
                speed_ratio(workload, "flax linen"),
                lambda v: v > 1.0,
            ),
        ]
    return [{"target": t, "measured": v, "met": None if v is None else bool(ok(v))} for t, v, ok in checks]


SECTIONS = ("throughput", "memory", "replicas")


def use_device(device: str) -> None:
    """Run jax on ``device``: "cpu" makes the CPU the default device; "gpu" checks that jax's default
    backend is a GPU (no code changes: the same programs run wherever jax puts them) and moves the
    CNN/GPT torch competitor to CUDA."""
    if device == "cpu":
        jax.config.update("jax_default_device", jax.devices("cpu")[0])
    elif device == "gpu":
        if jax.default_backend() != "gpu":
            raise SystemExit(
                f"--device gpu: jax runs on {jax.default_backend()}; install jax with CUDA (jax[cuda12])"
            )
        deep.TORCH_DEVICE = "cuda"


def all_competitors() -> list[str]:
    """The MLP competitors, then the CNN/GPT ones that are not among them (read when called)."""
    return list(COMPETITORS) + [name for name in deep.DEEP_COMPETITORS if name not in COMPETITORS]


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny step counts, 1 repeat, a 12.6M-parameter memory probe without the narrow reference (CI smoke)",
    )
    parser.add_argument(
        "--workload",
        choices=("small", "large", "cnn", "gpt", "mlp", "all"),
        default="all",
        help="mlp: small and large; all: the four",
    )
    parser.add_argument(
        "--sections", default=",".join(SECTIONS), help=f"comma-separated subset of {','.join(SECTIONS)}"
    )
    parser.add_argument(
        "--repeats", type=int, default=None, help="timed runs per competitor (default 7, 1 with --quick)"
    )
    parser.add_argument(
        "--competitors",
        default=",".join(all_competitors()),
        help="comma-separated subset of: " + ", ".join(all_competitors()),
    )
    parser.add_argument("--replicas", type=int, default=16)
    parser.add_argument(
        "--device",
        choices=("auto", "cpu", "gpu"),
        default="auto",
        help="where jax (and the CNN/GPT torch competitor) runs: auto = jax's default backend; gpu fails "
        "unless jax sees a GPU (experiments/benchmarks/gpu_check.sh)",
    )
    parser.add_argument(
        "--out", default="out/benchmark_train_loop", help="directory for the PNG (and the JSON unless --json)"
    )
    parser.add_argument(
        "--json", default=None, help="where to write the numbers (default OUT/train_loop.json)"
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="no timing: train each installed competitor (of --competitors) on a tiny full-batch workload and exit 1 "
        "unless its final loss agrees with the hand-written jax + optax loop's",
    )
    parser.add_argument("--memory-probe", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    unknown = set(args.sections.split(",")) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s) {sorted(unknown)}; choose from {', '.join(SECTIONS)}")
    unknown = set(args.competitors.split(",")) - set(all_competitors())
    if unknown:
        parser.error(f"unknown competitor(s) {sorted(unknown)}; choose from {', '.join(all_competitors())}")
    return args


def main(argv=None):
    args = parse_args(argv)
    use_device(args.device)
    if args.memory_probe:
        spec = json.loads(args.memory_probe)
        print(json.dumps(memory_probe(spec["variant"], spec["sizes"])))
        return None
    wanted = args.competitors.split(",")
    factories, missing = available_competitors()
    factories = {name: f for name, f in factories.items() if name in wanted}
    missing = {name: why for name, why in missing.items() if name in wanted}
    deep_factories, deep_missing = available_competitors(deep.DEEP_COMPETITORS)
    deep_factories = {name: f for name, f in deep_factories.items() if name in wanted}
    deep_missing = {name: why for name, why in deep_missing.items() if name in wanted}
    if args.smoke:
        return run_smoke(factories, missing)
    sections = args.sections.split(",")
    repeats = args.repeats or (1 if args.quick else 7)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    json_path = Path(args.json) if args.json else out / "train_loop.json"
    chosen = workloads(args.quick) | deep.deep_workloads(args.quick)
    groups = {"all": list(chosen), "mlp": ["small", "large"]}
    chosen = {name: chosen[name] for name in groups.get(args.workload, [args.workload])}

    info = machine()
    print(
        f"machine: {info['cpu']}, {info['cores']} cores; jax {info['versions']['jax']} on {info['jax_device']}; "
        + ", ".join(f"{k} {v}" for k, v in info["versions"].items() if k not in ("python", "jax"))
    )
    # the peak is probed before and after every workload and the best probe kept, so that a busy
    # moment of a shared machine does not understate it
    probe_peak = lambda: matmul_peak((512, 1024) if args.quick else (1024, 2048), 3 if args.quick else 5)  # noqa: E731
    probes = [probe_peak()]
    results = {
        "machine": info,
        "repeats": repeats,
        "quick": args.quick,
        "flops_formula": "6 * batch * sum(fan_in * fan_out)",
        "workloads": {},
    }

    if "throughput" in sections:
        for workload in chosen.values():
            is_deep = isinstance(workload, deep.DeepWorkload)
            if is_deep:
                rows = bench_deep(workload, deep_factories, repeats)
                rows += [{"competitor": name, "missing": why} for name, why in deep_missing.items()]
            else:
                rows = bench_workload(workload, factories, repeats)
                rows += [{"competitor": name, "missing": why} for name, why in missing.items()]
            results["workloads"][workload.name] = {
                "workload": workload.describe(),
                "flops_per_step": workload.flops_per_step,
                "flops_note": "XLA's count of the hand-written step"
                if is_deep
                else "6·batch·Σ fan_in·fan_out",
                "rows": rows,
            }
            probes.append(probe_peak())
    peak = max(probes, key=lambda probe: probe["gflops"])
    results["matmul_peak"] = {**peak, "probes_gflops": [probe["gflops"] for probe in probes]}
    for name, entry in results["workloads"].items():
        entry["rows"] = with_fraction_of_peak(entry["rows"], peak["gflops"])
        print(throughput_table(chosen[name], entry["rows"], peak))
        print("  " + driver_line(entry["rows"]).replace("**", ""))
    if "memory" in sections:
        variants = ["jax donate", "jax no donate"] + (["fnlearn fit"] if "fnlearn fit" in factories else [])
        results["memory"] = bench_memory(
            memory_sizes(args.quick), variants, subtract_reference=not args.quick
        )
        sizes = memory_sizes(args.quick)
        print(
            f"peak memory of 3 Adam steps, MLP {'-'.join(map(str, sizes))} (float32, batch 64): peak resident memory "
            f"over the process before the model"
            + ("" if args.quick else f", minus the same for MLP {'-'.join(map(str, reference_sizes(sizes)))}")
            + ":"
        )
        print(memory_table(results["memory"]))
    if "replicas" in sections:
        workload = chosen.get("small", workloads(args.quick)["small"])
        workload = dataclasses.replace(workload, epochs=max(1, workload.epochs // 4))
        results["replicas"] = bench_replicas(workload, args.replicas, repeats if args.quick else 3)
        print(replicas_table(workload, results["replicas"]))

    results["targets"] = targets(results)
    print("targets:")
    for t in results["targets"]:
        shown = (
            "not measured"
            if t["measured"] is None
            else (f"{t['measured']:.2f}" if not isinstance(t["measured"], bool) else str(t["measured"]))
        )
        print(
            f"  {t['target']:58s} {shown:>13s}  {'' if t['met'] is None else ('met' if t['met'] else 'NOT met')}"
        )
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(results, indent=2))
    (out / "train_loop.md").write_text(markdown_report(results))
    if results["workloads"]:
        plot(results, out / "train_loop.png")
    print(
        f"wrote {json_path}, {out / 'train_loop.md'}"
        + (f" and {out / 'train_loop.png'}" if results["workloads"] else "")
    )
    return results


if __name__ == "__main__":
    main()
