"""experiments/_common.py: the shared command line, sibling imports, the full-batch loop and mean ± std.

``descend`` is checked against the closed form of gradient descent on a quadratic, against optax's
own update loop (also with mini-batch keys and a carried model state), and ``mean_std`` against
numpy/statistics and ``fnlearn compare``'s own mean ± std, so that experiments and compare agree.
"""

import json
import statistics
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from experiment_loader import EXPERIMENTS, load  # tests/ is on sys.path
from hypothesis import given, settings
from hypothesis import strategies as st

import fnlearn as fl
from fnlearn import report

_common = sys.modules["_common"]

A = jnp.array([[3.0, 1.0], [1.0, 2.0]])
CLOSE = {"rtol": 1e-5, "atol": 1e-6}  # float32: the scan and the reference loop round differently


def quadratic(theta):
    """L(θ) = ½ θᵀAθ, ∇L = Aθ."""
    return 0.5 * theta @ A @ theta


def test_descend_is_gradient_descent_in_closed_form():
    """SGD with rate η on ½θᵀAθ: θ_t = (I − ηA)^t θ₀ and the records are L(θ_t) before each update."""
    theta0, rate, steps = jnp.array([1.0, -2.0]), 0.1, 7
    theta, losses = jax.jit(lambda t: _common.descend(quadratic, fl.optim.sgd(rate), t, steps))(theta0)
    m = np.eye(2) - rate * np.asarray(A, np.float64)
    expected = [np.linalg.matrix_power(m, t) @ np.asarray(theta0, np.float64) for t in range(steps + 1)]
    np.testing.assert_allclose(theta, expected[-1], rtol=1e-5)
    np.testing.assert_allclose(losses, [0.5 * e @ np.asarray(A) @ e for e in expected[:-1]], rtol=1e-5)


def test_descend_equals_an_optax_loop_and_records_every_part_of_a_step():
    """Adam for 5 steps through ``descend`` ends where optax's own Python loop ends, and ``record``
    sees θ_t, L(θ_t), g_t, u_t and θ_{t+1} = θ_t + u_t of each step."""
    theta0, tx = jnp.array([0.5, 1.5]), optax.adam(0.1)
    record = lambda s: (s.params, s.loss, s.grads, s.updates, s.next_params)  # noqa: E731
    theta, (params, loss, grads, updates, following) = _common.descend(
        quadratic, tx, theta0, 5, record=record
    )
    p, state = theta0, tx.init(theta0)
    grad, update = jax.jit(jax.grad(quadratic)), jax.jit(tx.update)
    for t in range(5):
        g = grad(p)
        np.testing.assert_allclose(params[t], p, **CLOSE)
        np.testing.assert_allclose(loss[t], quadratic(p), **CLOSE)
        np.testing.assert_allclose(grads[t], g, **CLOSE)
        u, state = update(g, state, p)
        np.testing.assert_allclose(updates[t], u, **CLOSE)
        p = optax.apply_updates(p, u)
        np.testing.assert_allclose(following[t], p, **CLOSE)
    np.testing.assert_allclose(theta, p, **CLOSE)


def test_descend_takes_a_gradient_of_its_own_and_one_key_per_step():
    """With ``keys`` the loss and ``gradient`` receive the step's key; their number sets the steps."""
    keys = jax.random.split(jax.random.key(0), 4)
    noise = lambda k: jax.random.normal(k, (2,))  # noqa: E731
    gradient = lambda t, k: A @ t + noise(k)  # noqa: E731
    theta, seen = _common.descend(
        lambda t, k: quadratic(t),
        fl.optim.sgd(0.1),
        jnp.ones(2),
        keys=keys,
        gradient=gradient,
        record=lambda s: s.grads,
    )
    p, a, noises = np.ones(2), np.asarray(A), np.asarray(jax.vmap(noise)(keys))
    for t in range(len(keys)):
        np.testing.assert_allclose(seen[t], a @ p + noises[t], **CLOSE)
        p = p - 0.1 * (a @ p + noises[t])
    np.testing.assert_allclose(theta, p, **CLOSE)


def test_descend_carries_the_model_state():
    """``loss(θ, c) -> (c·L(θ), c + 1)``: step t sees the state the previous step returned, so its
    gradient is c_t·Aθ_t with c_t = c₀ + t."""

    def loss(theta, c):
        return c * quadratic(theta), c + 1.0

    theta, c, losses = _common.descend(loss, fl.optim.sgd(0.1), jnp.ones(2), 3, state=jnp.array(2.0))
    p, expected_losses = jnp.ones(2), []
    for t in range(3):
        expected_losses.append((2.0 + t) * quadratic(p))
        p = p - 0.1 * (2.0 + t) * (A @ p)
    assert float(c) == 5.0
    np.testing.assert_allclose(losses, expected_losses, **CLOSE)
    np.testing.assert_allclose(theta, p, **CLOSE)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6), min_size=2, max_size=12))
def test_mean_std_is_the_sample_std_that_compare_reports(values):
    """s with n − 1 (ddof = 1): statistics.stdev, numpy's ddof=1, and report's mean ± std agree."""
    stats = _common.mean_std(values)
    mean, std = report.mean_std(values)
    assert stats["mean"] == pytest.approx(statistics.fmean(values), rel=1e-9, abs=1e-6)
    assert stats["mean"] == pytest.approx(mean, rel=1e-9, abs=1e-6)
    assert stats["std"] == pytest.approx(statistics.stdev(values), rel=1e-6, abs=1e-6)
    assert stats["std"] == pytest.approx(std, rel=1e-6, abs=1e-6)


def test_mean_std_over_an_axis_and_of_one_value():
    rows = np.array([[1.0, 2.0], [3.0, 6.0], [5.0, 7.0]])
    stats = _common.mean_std(rows, axis=0)
    np.testing.assert_allclose(stats["mean"], [3.0, 5.0])
    np.testing.assert_allclose(stats["std"], rows.std(0, ddof=1))
    assert _common.mean_std([4.0]) == {"mean": 4.0, "std": None}  # no spread from one seed
    assert _common.pm({"mean": 4.0, "std": None}) == "4.000"
    assert _common.pm(_common.mean_std([1.0, 3.0]), ".1f") == "2.0 ± 1.4"


def test_main_writes_the_figure_and_strict_json_without_plot_only_keys(tmp_path, capsys):
    """``main(run, plot, report)``: --quick reaches run, NAME.json holds no "_" keys at any depth."""
    module = load("universal_approximation")  # any script: main only needs its name
    calls = {}

    def run(quick):
        return {"quick": quick, "rows": [{"a": 1.0, "_curve": np.zeros(3)}], "_plot": np.ones(2)}

    def plot(result, path):
        calls["plot"] = sorted(result)
        path.write_bytes(b"png")

    run.__module__ = module.__name__
    result = _common.main(
        run, plot, lambda r: print("numbers:", r["rows"][0]["a"]), ["--quick", "--out", str(tmp_path)]
    )
    assert calls["plot"] == ["_plot", "quick", "rows"] and "_plot" in result
    saved = json.loads((tmp_path / "universal_approximation.json").read_text())
    assert saved == {"quick": True, "rows": [{"a": 1.0}]}
    assert (tmp_path / "universal_approximation.png").read_bytes() == b"png"
    assert "numbers: 1.0" in capsys.readouterr().out


def test_write_json_refuses_nan(tmp_path):
    with pytest.raises(ValueError, match="Out of range float"):
        _common.write_json({"x": float("nan")}, tmp_path / "x.json")


def test_sibling_loads_a_script_once():
    first = _common.sibling("optimizer_paths")
    assert first is _common.sibling("optimizer_paths") is load("optimizer_paths")
    assert first.__file__ == str(EXPERIMENTS / "optimizer_paths.py")
