"""The CNN and GPT workloads of ``train_loop.py``: the same network in every competitor, from the
same initial weights (fnlearn's ``nn.cnn`` / ``nn.gpt`` init, copied into each framework's layout),
on the same data, with the same Adam and the same batches (fit's epoch order, the remainder dropped).

    cnn   28×28×1 inputs: conv 3×3 32 → relu → max-pool 2 → conv 3×3 64 → relu → max-pool 2 →
          dense 128 → relu → dense 10; batch 128, softmax cross-entropy
    gpt   token ids, T = 64, vocabulary 64: embedding + learned positions → 4 pre-norm blocks (width
          128, 4 heads, causal attention, MLP 512 with exact GELU) → layer norm → logits; batch 32,
          the mean next-token cross-entropy

FLOPs per step are XLA's count (``cost_analysis``) of the hand-written jax step, the same for all.
Each competitor's ``loss()`` is its own network's mean loss on the first 256 training examples, so
the final-loss column checks that the competitors trained the same network the same way.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

import fnlearn as fl

LEARNING_RATE = 1e-3
LOSS_EXAMPLES = 256
TORCH_DEVICE = "cpu"  # train_loop.py --device gpu: "cuda"
VOCAB, SEQ, WIDTH, DEPTH, HEADS = 64, 64, 128, 4, 4


class StepCounts:
    """Steps of a workload of ``n`` examples in batches of ``batch``, for ``epochs`` (train_loop.py's
    MLP workloads share it)."""

    @property
    def steps_per_epoch(self) -> int:
        return self.n // self.batch

    @property
    def steps(self) -> int:
        return self.epochs * self.steps_per_epoch


@dataclasses.dataclass(frozen=True)
class DeepWorkload(StepCounts):
    """``kind`` "cnn" or "gpt"; ``n`` examples, ``epochs`` per timed call."""

    name: str
    kind: str
    batch: int
    n: int
    epochs: int

    @property
    def flops_per_step(self) -> int:
        return xla_flops(self)

    def describe(self) -> str:
        net = (
            "CNN 28×28×1 conv32 → conv64 → dense128 → 10"
            if self.kind == "cnn"
            else f"GPT width {WIDTH}, depth {DEPTH}, {HEADS} heads, T = {SEQ}, vocabulary {VOCAB}"
        )
        return f"{net}, batch {self.batch}, {self.n} examples, {self.steps} steps ({self.epochs} epochs of {self.steps_per_epoch})"


def deep_workloads(quick: bool) -> dict[str, DeepWorkload]:
    return {
        "cnn": DeepWorkload("cnn", "cnn", 128, 256 if quick else 1024, 1 if quick else 2),
        "gpt": DeepWorkload("gpt", "gpt", 32, 64 if quick else 512, 1),
    }


def make_data(workload: DeepWorkload, seed: int = 0):
    """cnn: standard-normal images labelled by a random linear teacher; gpt: random token ids, the
    target of each position the next id of a fixed random permutation of the vocabulary."""
    rng = np.random.default_rng(seed)
    if workload.kind == "cnn":
        x = rng.standard_normal((workload.n, 28, 28, 1), dtype=np.float32)
        teacher = rng.standard_normal((28 * 28, 10), dtype=np.float32)
        return x, np.argmax(x.reshape(workload.n, -1) @ teacher, axis=1).astype(np.int32)
    x = rng.integers(0, VOCAB, (workload.n, SEQ)).astype(np.int32)
    return x, rng.permutation(VOCAB).astype(np.int32)[x]


def fnlearn_model(workload: DeepWorkload):
    if workload.kind == "cnn":
        return fl.nn.cnn((28, 28, 1), num_outputs=10)
    return fl.nn.gpt(VOCAB, SEQ, width=WIDTH, depth=DEPTH, num_heads=HEADS)


def token_cross_entropy(logits, y, weights=None):
    """Mean softmax cross-entropy over every position (and every example of weight 1)."""
    per_example = optax.softmax_cross_entropy_with_integer_labels(logits, y)
    per_example = per_example.reshape(per_example.shape[0], -1).mean(axis=1)
    if weights is None:
        return per_example.mean()
    return jnp.sum(per_example * weights) / jnp.sum(weights)


def _float_token_cross_entropy(logits, y, weights=None):
    """``token_cross_entropy`` of targets held as whole floats: fit's array checks take a custom
    loss's targets as regression targets (n, T) (sequence class targets are not in this version)."""
    return token_cross_entropy(logits, y.astype(jnp.int32), weights)


@dataclasses.dataclass
class DeepProblem:
    workload: DeepWorkload
    x: np.ndarray
    y: np.ndarray
    params: object  # fnlearn's initial parameters: the weights every competitor starts from
    run_seed: int

    def run_key(self):
        return jax.random.key(self.run_seed)

    @property
    def order_key(self):
        return jax.random.fold_in(self.run_key(), fl.loop.ORDER_SALT)


def make_problem(workload: DeepWorkload, seed: int = 0) -> DeepProblem:
    x, y = make_data(workload, seed)
    params, _ = jax.jit(fnlearn_model(workload).init)(jax.random.key(seed))  # one compilation, not one per op
    return DeepProblem(workload, x, y, jax.device_get(params), seed + 1)


# --------------------------------------------------------------------------------------------
# the hand-written jax networks, on fnlearn's parameter trees


def cnn_logits(params, x):
    """conv → relu → pool, twice; flatten; dense → relu; dense (NHWC, HWIO kernels, SAME convs)."""
    for block in params[:2]:
        conv = block[0]
        x = jax.lax.conv_general_dilated(
            x, conv["w"], (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
        )
        x = jax.nn.relu(x + conv["b"])
        x = jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
    x = x.reshape(x.shape[0], -1)
    hidden = params[3][0]
    x = jax.nn.relu(x @ hidden["w"] + hidden["b"])
    return x @ params[4]["w"] + params[4]["b"]


def _layer_norm(p, x, eps=1e-5):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return p["scale"] * (x - mean) * jax.lax.rsqrt(var + eps) + p["shift"]


def _attention(p, x):
    b, t, d = x.shape
    dh = d // HEADS
    q, k, v = ((x @ p[n]["w"] + p[n]["b"]).reshape(b, t, HEADS, dh) for n in ("query", "key", "value"))
    scores = jnp.einsum("bthd,bshd->bhts", q, k) / math.sqrt(dh)
    scores = jnp.where(jnp.tril(jnp.ones((t, t), bool)), scores, jnp.finfo(scores.dtype).min)
    heads = jnp.einsum("bhts,bshd->bthd", jax.nn.softmax(scores, axis=-1), v)
    return heads.reshape(b, t, d) @ p["out"]["w"] + p["out"]["b"]


def gpt_logits(params, ids):
    """Embedding + positions → pre-norm blocks (attention, MLP; each residual) → norm → logits."""
    h = params[0]["embedding"][ids] + params[1]["embedding"][: ids.shape[1]]
    for attention, mlp in params[2 : 2 + DEPTH]:
        h = h + _attention(attention[1], _layer_norm(attention[0], h))
        m = _layer_norm(mlp[0], h)
        h = h + jax.nn.gelu(m @ mlp[1]["w"] + mlp[1]["b"], approximate=False) @ mlp[3]["w"] + mlp[3]["b"]
    h = _layer_norm(params[2 + DEPTH], h)
    return h @ params[3 + DEPTH]["w"] + params[3 + DEPTH]["b"]


def logits_fn(workload: DeepWorkload):
    return cnn_logits if workload.kind == "cnn" else gpt_logits


def loss_fn(workload: DeepWorkload):
    return optax_ce if workload.kind == "cnn" else token_cross_entropy


def optax_ce(logits, y, weights=None):
    del weights
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def handwritten_step(workload: DeepWorkload, tx):
    """(params, opt_state, xb, yb) -> (params, opt_state, loss): plain jax + optax."""
    logits, loss = logits_fn(workload), loss_fn(workload)

    def step(params, opt_state, xb, yb):
        value, grads = jax.value_and_grad(lambda p: loss(logits(p, xb), yb))(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, value

    return step


@functools.cache
def xla_flops(workload: DeepWorkload) -> int:
    """XLA's FLOP count of one hand-written train step (forward, backward, Adam)."""
    problem = make_problem(dataclasses.replace(workload, n=workload.batch))
    tx = optax.adam(LEARNING_RATE)
    params = jax.tree.map(jnp.asarray, problem.params)
    compiled = (
        jax.jit(handwritten_step(workload, tx)).lower(params, tx.init(params), problem.x, problem.y).compile()
    )
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return int(cost["flops"])


def own_loss(problem: DeepProblem, logits: Callable) -> float:
    """The mean loss on the first LOSS_EXAMPLES examples of the network ``logits(x)``."""
    x, y = problem.x[:LOSS_EXAMPLES], problem.y[:LOSS_EXAMPLES]
    return float(loss_fn(problem.workload)(jnp.asarray(logits(x)), jnp.asarray(y)))


# --------------------------------------------------------------------------------------------
# competitors: make_*(problem) -> (run, loss)


@dataclasses.dataclass(frozen=True)
class DeepRunner:
    run: Callable[[], None]
    loss: Callable[[], float]
    driver: Callable[[], dict | None] = lambda: None  # fit's history.driver after the last call


def epoch_batches(problem: DeepProblem, epoch):
    w = problem.workload
    return fl.loop.epoch_order(problem.order_key, epoch, w.n, w.batch, True)[0]


def make_fnlearn_fit(problem: DeepProblem, driver: str = "auto") -> DeepRunner:
    """``fl.fit`` (drop_last, no logging) on fnlearn's own network, from the shared weights."""
    wl = problem.workload
    model, tx = fnlearn_model(wl), fl.optim.adam(LEARNING_RATE)
    params = jax.tree.map(jnp.array, problem.params)
    state = fl.train.TrainState.create(model, tx, problem.run_key()).replace(
        params=params, opt_state=tx.init(params), key=problem.run_key()
    )
    loss = fl.distributions.get("categorical") if wl.kind == "cnn" else _float_token_cross_entropy
    # fit takes floating inputs (the GPT's embedding reads ids held as whole floats)
    y = problem.y if wl.kind == "cnn" else problem.y.astype(np.float32)  # see _float_token_cross_entropy
    train = (jnp.asarray(problem.x, jnp.float32), jnp.asarray(y))
    box = {"state": state, "driver": None}

    def run():
        box["state"], history = fl.fit(
            box["state"],
            train,
            loss=loss,
            steps=int(box["state"].step) + wl.steps,
            batch_size=wl.batch,
            drop_last=True,
            progress=False,
            driver=driver,
        )
        box["driver"] = history.driver
        jax.block_until_ready(box["state"].params)

    def final_loss():
        return own_loss(
            problem,
            lambda x: model.apply(box["state"].params, box["state"].model_state, jnp.asarray(x, jnp.float32))[
                0
            ],
        )

    return DeepRunner(run, final_loss, lambda: box["driver"])


def make_jax_scan(problem: DeepProblem) -> DeepRunner:
    """Hand-written: lax.scan over epochs (their orders) and batches (gather + step), one program."""
    wl, tx = problem.workload, optax.adam(LEARNING_RATE)
    step = handwritten_step(wl, tx)

    def train(params, opt_state, x, y, first_epoch):
        def one_epoch(carry, epoch):
            def one_step(carry, idx):
                params, opt_state, _ = carry
                return step(params, opt_state, x[idx], y[idx]), None

            (params, opt_state, loss), _ = jax.lax.scan(
                one_step, (*carry, jnp.zeros(())), epoch_batches(problem, epoch)
            )
            return (params, opt_state), loss

        (params, opt_state), losses = jax.lax.scan(
            one_epoch, (params, opt_state), first_epoch + jnp.arange(wl.epochs)
        )
        return params, opt_state, losses[-1]

    program = jax.jit(train, donate_argnums=(0, 1))
    params = jax.tree.map(jnp.array, problem.params)
    box = {"params": params, "opt": tx.init(params), "epoch": 0}
    x, y = jnp.asarray(problem.x), jnp.asarray(problem.y)

    def run():
        box["params"], box["opt"], loss = program(box["params"], box["opt"], x, y, box["epoch"])
        box["epoch"] += wl.epochs
        float(loss)

    return DeepRunner(
        run, lambda: own_loss(problem, lambda xb: logits_fn(wl)(box["params"], jnp.asarray(xb)))
    )


def python_loop(step, carry, problem: DeepProblem, x, y, convert=np.asarray):
    """Per epoch the shared order, per step one call ``step(carry, x, y, idx) -> (carry, loss)``;
    the last loss is read once per run (so the steps are dispatched ahead)."""
    wl = problem.workload
    order = jax.jit(lambda e: epoch_batches(problem, e))
    box = {"carry": carry, "epoch": 0}

    def run():
        carry, loss = box["carry"], None
        for epoch in range(box["epoch"], box["epoch"] + wl.epochs):
            for idx in convert(order(epoch)):
                carry, loss = step(carry, x, y, idx)
        box["carry"], box["epoch"] = carry, box["epoch"] + wl.epochs
        float(loss)

    return run, box


def make_jax_jit_loop(problem: DeepProblem) -> DeepRunner:
    """Hand-written: the jitted step (buffers donated) called from Python, indices per step."""
    wl, tx = problem.workload, optax.adam(LEARNING_RATE)
    step = handwritten_step(wl, tx)

    def one_step(carry, x, y, idx):
        params, opt_state, loss = step(*carry, x[idx], y[idx])
        return (params, opt_state), loss

    params = jax.tree.map(jnp.array, problem.params)
    run, box = python_loop(
        jax.jit(one_step, donate_argnums=0),
        (params, tx.init(params)),
        problem,
        jnp.asarray(problem.x),
        jnp.asarray(problem.y),
    )
    return DeepRunner(
        run, lambda: own_loss(problem, lambda xb: logits_fn(wl)(box["carry"][0], jnp.asarray(xb)))
    )


# --------------------------------------------------------------------------------------------
# flax linen, equinox, torch: the same networks in their idioms, weights copied from fnlearn's


def _np(tree):
    return jax.tree.map(np.asarray, tree)


def make_flax_linen(problem: DeepProblem) -> DeepRunner:
    """A linen Module, flax's TrainState.apply_gradients, a jitted step."""
    from deep_frameworks import flax_network
    from flax.training import train_state

    module, params = flax_network(problem.workload.kind, _np(problem.params), HEADS)
    state = train_state.TrainState.create(apply_fn=module.apply, params=params, tx=optax.adam(LEARNING_RATE))
    loss = loss_fn(problem.workload)

    @jax.jit
    def step(state, x, y, idx):
        value, grads = jax.value_and_grad(lambda p: loss(state.apply_fn({"params": p}, x[idx]), y[idx]))(
            state.params
        )
        return state.apply_gradients(grads=grads), value

    run, box = python_loop(step, state, problem, jnp.asarray(problem.x), jnp.asarray(problem.y))
    return DeepRunner(
        run,
        lambda: own_loss(problem, lambda xb: module.apply({"params": box["carry"].params}, jnp.asarray(xb))),
    )


def make_equinox(problem: DeepProblem) -> DeepRunner:
    """An eqx.Module, eqx.filter_jit, eqx.filter_value_and_grad, optax."""
    import equinox as eqx
    from deep_frameworks import equinox_network

    model = equinox_network(problem.workload.kind, _np(problem.params), HEADS)
    tx, loss = optax.adam(LEARNING_RATE), loss_fn(problem.workload)
    opt_state = tx.init(eqx.filter(model, eqx.is_array))

    @eqx.filter_jit
    def step(carry, x, y, idx):
        model, opt_state = carry
        value, grads = eqx.filter_value_and_grad(lambda m: loss(jax.vmap(m)(x[idx]), y[idx]))(model)
        updates, opt_state = tx.update(grads, opt_state, eqx.filter(model, eqx.is_array))
        return (eqx.apply_updates(model, updates), opt_state), value

    run, box = python_loop(step, (model, opt_state), problem, jnp.asarray(problem.x), jnp.asarray(problem.y))
    return DeepRunner(run, lambda: own_loss(problem, lambda xb: jax.vmap(box["carry"][0])(jnp.asarray(xb))))


def make_torch_eager(problem: DeepProblem) -> DeepRunner:
    """PyTorch eager on the CPU (all cores), torch.optim.Adam, F.cross_entropy."""
    import torch
    from deep_frameworks import torch_network

    torch.set_num_threads(os.cpu_count() or 1)
    device = torch.device(TORCH_DEVICE if TORCH_DEVICE == "cpu" or torch.cuda.is_available() else "cpu")
    net = torch_network(problem.workload.kind, _np(problem.params), HEADS).to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=LEARNING_RATE, betas=(0.9, 0.999), eps=1e-8)

    def step(carry, x, y, idx):
        optimizer.zero_grad(set_to_none=True)
        logits = net(x[idx])
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y[idx].reshape(-1))
        loss.backward()
        optimizer.step()
        return carry, loss.detach()

    x = torch.from_numpy(problem.x.copy()).to(device)
    y = torch.from_numpy(problem.y.astype(np.int64)).to(device)
    to_torch = lambda order: torch.from_numpy(np.asarray(order, dtype=np.int64)).to(device)  # noqa: E731
    run, _ = python_loop(step, None, problem, x, y, to_torch)

    def final_loss():
        with torch.no_grad():
            return own_loss(
                problem, lambda xb: net(torch.from_numpy(np.asarray(xb)).to(device)).cpu().numpy()
            )

    return DeepRunner(run, final_loss)


DEEP_COMPETITORS: dict[str, tuple[str | None, Callable]] = {
    "fnlearn fit": ("fnlearn", make_fnlearn_fit),
    "fnlearn fit driver=scan": ("fnlearn", lambda p: make_fnlearn_fit(p, "scan")),
    "fnlearn fit driver=loop": ("fnlearn", lambda p: make_fnlearn_fit(p, "loop")),
    "jax scan": (None, make_jax_scan),
    "jax jit loop": (None, make_jax_jit_loop),
    "flax linen": ("flax", make_flax_linen),
    "equinox": ("equinox", make_equinox),
    "torch eager": ("torch", make_torch_eager),
}
