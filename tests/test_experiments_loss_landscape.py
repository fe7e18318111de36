"""experiments/loss_landscape.py runs end to end in --quick mode and its numbers show the plain net sits in
a sharper well than the residual one.

The margins are those the quick run holds (a smaller network, fewer seeds and steps than the full
run whose numbers the README reports).
"""

import numpy as np
import pytest
from experiment_loader import run_quick  # tests/ is on sys.path


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
