"""experiments/gd_vs_sgd_gabor.py runs end to end in --quick mode and its numbers show GD finds the Gabor
model's global minimum from fewer starts than SGD.
"""

from experiment_loader import run_quick  # tests/ is on sys.path


def test_gd_vs_sgd_gabor(tmp_path):
    r = run_quick("gd_vs_sgd_gabor", tmp_path)
    phi = r["global_minimum"]["phi"]
    assert abs(phi[0]) < 0.5 and abs(phi[1] - 16.0) < 1.5  # the data's true φ = (0, 16), noise 0.1
    frac = r["fraction_global"]
    assert 0.05 < frac["gd"] < 0.6  # GD finds the global minimum only from the right valley
    assert frac["sgd_mean"] > frac["gd"] + 0.05  # SGD's noise gets more starts there
    assert r["starts_where_sgd_wins"] > r["starts_where_gd_wins"]
