"""Exact evaluation over a whole dataset: ``evaluate`` and the padded batches it scans.

The data is padded to a multiple of the batch size with weight-0 rows and summed in one compiled
``lax.scan`` (``eval_scan``), so the means are exact for any dataset size and one program serves
every dataset of the same shape. No dropout; BatchNorm uses its running statistics. For sequence
targets the loss and metrics are per-token means, with ``sequence_accuracy`` and ``perplexity``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from fnlearn import checks, rules
from fnlearn.inputs import check_arrays, check_pair, check_state
from fnlearn.prediction import state_params
from fnlearn.train import TrainState, eval_sums, objective

__all__ = ["evaluate", "eval_scan", "padded_batches"]


def eval_scan(state, x, y, w, obj):
    def body(total, batch):
        sums = eval_sums(state, batch, obj)
        return jax.tree.map(jnp.add, total, sums), None

    first = jax.tree.map(jnp.zeros_like, jax.eval_shape(lambda: eval_sums(state, (x[0], y[0], w[0]), obj)))
    return jax.lax.scan(body, first, (x, y, w))[0]


_eval_scan_jit = jax.jit(eval_scan, static_argnums=(4,))


def padded_batches(x, y, batch_size: int):
    """(x, y, w) reshaped to [batches, batch_size, ...], the last batch filled with weight-0 copies
    of the first example, so a dataset of any size is evaluated with one batch shape."""
    n = len(x)
    batch_size = min(batch_size, n)
    batches = -(-n // batch_size)
    pad = batches * batch_size - n
    idx = np.concatenate([np.arange(n), np.zeros(pad, np.int64)])
    w = np.concatenate([np.ones(n, np.float32), np.zeros(pad, np.float32)])
    shape = (batches, batch_size)
    return (
        jnp.asarray(np.asarray(x)[idx]).reshape(*shape, *np.shape(x)[1:]),
        jnp.asarray(np.asarray(y)[idx]).reshape(*shape, *np.shape(y)[1:]),
        jnp.asarray(w).reshape(shape),
    )


def evaluate(
    state: TrainState, data, loss=None, *, batch_size: int = 512, objective_=None, use_ema: bool = False
) -> dict:
    """Mean loss and metrics over a whole dataset ``(x, y)``, without dropout and with running
    BatchNorm statistics. The data is padded to a multiple of ``batch_size`` with weight-0 rows and
    evaluated in one compiled scan, so the means are exact for any dataset size. ``use_ema=True``
    evaluates the moving average of the parameters (``fit(..., ema=...)``) instead."""
    check_state(state, "evaluate")
    if use_ema:
        state = state.replace(params=state_params(state, use_ema, "evaluate"))
    checks.positive_int("evaluate", "batch_size", batch_size)
    obj = objective_ or objective(loss)
    x, y = check_pair(data, "evaluate", "data")
    check_arrays(state, x, y, obj, name="evaluation data")
    sums = jax.device_get(_eval_scan_jit(state, *padded_batches(x, y, batch_size), obj))
    total = float(sums.pop("weight"))
    return rules.with_perplexity({name: float(value) / total for name, value in sums.items()})
