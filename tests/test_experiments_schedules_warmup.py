"""experiments/schedules_warmup.py runs end to end in --quick mode and its numbers show the schedules
follow the notes' formulas and warmup keeps a high rate stable.
"""

import math

import pytest
from experiment_loader import run_quick  # tests/ is on sys.path


def test_schedules_warmup(tmp_path):
    r = run_quick("schedules_warmup", tmp_path)
    c, a0, T = r["curves"], 0.1, 1000
    for t in (0, 123, 500, 999):  # the notes' formulas
        assert c["cosine"][t] == pytest.approx(0.5 * a0 * (1 + math.cos(math.pi * t / T)), rel=1e-4, abs=1e-7)
        assert c["linear"][t] == pytest.approx(a0 * (1 - t / T), rel=1e-4, abs=1e-7)
        assert c["inverse sqrt"][t] == pytest.approx(a0 / math.sqrt(1 + t), rel=1e-4)
        assert c["step (×0.1 at 30/60/90%)"][t] == pytest.approx(
            a0 * 0.1 ** sum(t >= b for b in (300, 600, 900)), rel=1e-5
        )
    assert c["warmup 100 + cosine"][0] == 0.0 and c["warmup 100 + cosine"][50] == pytest.approx(
        a0 / 2, rel=1e-5
    )
    assert max(c["warmup 100 + cosine"]) == pytest.approx(a0, rel=1e-5)
    sgd = r["warmup_experiment"]["sgd"]
    constant, warm = sgd["constant"]["rows"], sgd["warmup"]["rows"]
    assert constant[0]["stable_seeds"] == warm[0]["stable_seeds"] == 1  # η = 0.1 trains either way
    # quick mode (4 hidden layers, 1 epoch): at η = 1 the warmed-up run trains and the constant one
    # diverges or ends far higher (measured: diverged; with an earlier data order 2.1 vs 4.0); the full
    # run (8 hidden layers, 6 epochs, 3 seeds) finds no higher stable rate with warmup (see notes)
    high_warm, high_constant = warm[-1], constant[-1]
    assert high_warm["stable_seeds"] == 1
    assert high_constant["stable_seeds"] == 0 or (
        high_warm["last_epoch_loss"]["mean"] < high_constant["last_epoch_loss"]["mean"] - 0.5
    )
