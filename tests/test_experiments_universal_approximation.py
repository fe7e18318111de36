"""experiments/universal_approximation.py runs end to end in --quick mode and its numbers show the fit
error falls with the number of hidden units.

The margins are those the quick run holds (a smaller network, fewer seeds and steps than the full
run whose numbers the README reports).
"""

from experiment_loader import run_quick  # tests/ is on sys.path


def test_universal_approximation(tmp_path):
    rows = run_quick("universal_approximation", tmp_path)["rows"]
    rmse = [r["rmse_mean"] for r in rows]
    assert rmse[-1] < 0.6 * rmse[0]
    assert rows[-1]["max_error_mean"] < rows[0]["max_error_mean"]
