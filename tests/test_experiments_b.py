"""Claims 7, 8, 9, 10 and 14 of issue 8: each experiment runs in --quick mode and its numbers show the claim.

The margins are those the quick runs hold (smaller networks, fewer seeds and steps than the full
runs whose numbers the README reports).
"""

import json

import numpy as np
import pytest
from experiment_loader import load  # tests/ is on sys.path


def _no_constants(name):
    raise AssertionError(f"the JSON holds {name}: strict JSON has no NaN or Infinity")


def run_quick(name, tmp_path):
    """Run experiments/NAME.py --quick; return its JSON (strict: NaN/Infinity rejected)."""
    load(name).main(["--quick", "--out", str(tmp_path)])
    assert (tmp_path / f"{name}.png").stat().st_size > 10_000
    return json.loads((tmp_path / f"{name}.json").read_text(), parse_constant=_no_constants)


def test_regularisation(tmp_path):
    v = run_quick("regularisation", tmp_path)["variants"]
    mean = lambda name, key: v[name][key]["mean"]  # noqa: E731
    # the setup overfits: training NLL far below the test NLL
    assert mean("none", "test_nll") > 3 * mean("none", "train_nll")
    # L1 makes weights exactly small far more often than L2 or nothing (the notes: L1 prefers sparse weights)
    assert mean("L1", "near_zero_fraction") > 3 * mean("L2", "near_zero_fraction")
    assert mean("L1", "near_zero_fraction") > 3 * mean("none", "near_zero_fraction")
    # the penalties and early stopping narrow the generalisation gap of the unregularised net;
    # dropout 0.5 does not here (measured: it still memorises the 179 images), so it is not asserted
    for name in ("L2", "L1", "early stopping"):
        assert mean(name, "gap_nll") < mean("none", "gap_nll"), name
    # early stopping restored an epoch before the end
    es = v["early stopping"]
    assert all(best < stop for best, stop in zip(es["best_epoch"], es["stopped_epoch"], strict=True))


def test_bias_variance_decomposition_and_u_curve(tmp_path):
    rows = run_quick("bias_variance", tmp_path)["rows"]
    small, middle, large = rows
    for r in rows:  # the notes' identity: test error = bias² + variance + noise (up to sampling error)
        assert r["test_error"] == pytest.approx(r["sum_of_terms"], rel=0.02)
        assert r["noise"] == pytest.approx(0.3**2, rel=0.15)
    assert large["bias2"] < middle["bias2"] < small["bias2"]
    assert large["variance"] > middle["variance"]
    assert middle["test_error"] < small["test_error"] and middle["test_error"] < large["test_error"]  # the U
    assert large["train_error_mean"] < middle["train_error_mean"] < small["train_error_mean"]


def test_deep_mlp_normalisation(tmp_path):
    v = run_quick("deep_mlp_normalisation", tmp_path)["variants"]
    final = {name: r["final_train_nll"]["mean"] or np.inf for name, r in v.items()}  # None: diverged
    # quick mode (30 layers × 16, 120 steps): whether the plain net stalls or slowly escapes depends on
    # float rounding (with 200 steps: stalled at 0.6 on one CPU, 0.16 after ~180 steps on another; with
    # 120: one seed crossed half chance at step 117, the other not), so what is asserted is what holds
    # on both: BatchNorm + residual trains several times faster (steps 18 and 24) and ends lower. The full
    # run (40 layers) is where plain SGD stalls outright (see the README's claims table).
    assert v["batch_norm+residual"]["diverged_seeds"] == 0
    fast = v["batch_norm+residual"]["steps_to_half_chance"]
    assert all(s is not None and s <= 60 for s in fast)
    slow = [np.inf if s is None else s for s in v["plain"]["steps_to_half_chance"]]
    assert min(slow) > 3 * max(fast)
    assert final["batch_norm+residual"] < 0.5 * final["plain"]
    # BatchNorm alone or residual alone: not asserted — at 40 layers neither trains on its own (full run)


def test_loss_landscape(tmp_path):
    nets = run_quick("loss_landscape", tmp_path)["networks"]
    plain, res = nets["plain"], nets["residual"]
    for r in nets.values():
        s = np.asarray(r["surface"])
        assert s[len(s) // 2, len(s) // 2] == pytest.approx(
            r["loss_at_theta_star"], rel=1e-3
        )  # the centre is θ*
    assert (
        plain["rise_at_radius_0.25"] > 2 * res["rise_at_radius_0.25"]
    )  # the plain net sits in a sharper well


def test_universal_approximation(tmp_path):
    rows = run_quick("universal_approximation", tmp_path)["rows"]
    rmse = [r["rmse_mean"] for r in rows]
    assert rmse[-1] < 0.6 * rmse[0]
    assert rows[-1]["max_error_mean"] < rows[0]["max_error_mean"]
