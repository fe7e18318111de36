"""experiments/second_order.py runs end to end in --quick mode and its numbers show Newton and L-BFGS need
far fewer steps than Adam (optimum from scipy).
"""

from experiment_loader import run_quick  # tests/ is on sys.path


def test_second_order(tmp_path):
    r = run_quick("second_order", tmp_path)
    (row,) = r["problems"]
    for method in ("newton", "lbfgs", "adam"):
        assert row[method]["converged"]
        # ‖∇L‖ ≤ 1e-6 with curvature ≥ 0.02 (the L2 term) puts θ within 1e-6/0.02 = 5e-5 of the optimum
        assert row[method]["distance_to_scipy"] < 1e-4
    assert row["newton"]["steps"] < row["lbfgs"]["steps"] < row["adam"]["steps"]
    assert row["newton"]["steps"] <= 8 and row["adam"]["steps"] > 10 * row["lbfgs"]["steps"]
