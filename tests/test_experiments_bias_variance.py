"""experiments/bias_variance.py runs end to end in --quick mode and its numbers show test error = bias² +
variance + noise, and the U-curve.

The margins are those the quick run holds (a smaller network, fewer seeds and steps than the full
run whose numbers the README reports).
"""

import pytest
from experiment_loader import run_quick  # tests/ is on sys.path


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
