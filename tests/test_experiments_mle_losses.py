"""experiments/mle_losses.py runs end to end in --quick mode and its numbers show MSE and cross-entropies
are NLLs of Gaussian, Bernoulli and categorical heads; a learned σ(x) fits heteroscedastic noise.
"""

import pytest
from experiment_loader import run_quick  # tests/ is on sys.path


def test_mle_losses(tmp_path):
    r = run_quick("mle_losses", tmp_path)
    for rows in (r["same_predictions"], r["trained_models"]):
        assert [row["head"] for row in rows] == ["gaussian", "bernoulli", "categorical"]
        for row in rows:
            # the head's NLL is the classical loss (optax / ½·MSE + ½ log 2π) and the notes' formula
            assert row["nll"] == pytest.approx(row["classic_loss"], rel=1e-5, abs=1e-6)
            assert row["nll"] == pytest.approx(row["textbook_formula"], rel=1e-5, abs=1e-6)
            assert row["max_abs_difference_per_example"] < 1e-4
    # minimising MSE and minimising the Gaussian NLL end at the same model (Adam is scale-free)
    same = r["mse_vs_gaussian_nll_training"]
    assert same["max_abs_prediction_difference"] < 1e-3 * same["prediction_scale"]
    nll = r["heteroscedastic"]["test_nll"]
    assert nll["true_distribution"] < nll["learned"] < nll["fixed_best_constant_sigma"] < nll["fixed_sigma_1"]
