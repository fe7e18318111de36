"""experiments/init_variance.py runs end to end in --quick mode: He keeps a deep ReLU network's signal,
N(0, 0.01²) makes it vanish, N(0, 1) explode, and Xavier sits between forward and backward."""

import numpy as np
from experiment_loader import run_quick  # tests/ is on sys.path


def test_init_variance(tmp_path):
    results = run_quick("init_variance", tmp_path)
    deep = results["deep_relu"]["second_moment"]
    he = np.asarray(deep["He"]["mean"])
    assert np.all((he / he[0] > 1 / 3) & (he / he[0] < 3))
    small = np.asarray(deep["N(0,0.01²)"]["mean"])
    assert small[-1] < 1e-10 * small[0]
    large = deep["N(0,1)"]
    assert large["first_overflow_layer"] is not None or large["mean"][-1] > 1e10 * large["mean"][0]
    # the same claim for a 20-layer plain CNN (3×3 convolutions, ReLU, zero padding)
    cnn = results["deep_cnn"]
    assert cnn["depth"] == 20 and len(cnn["second_moment"]["He"]["mean"]) == 20
    he = np.asarray(cnn["second_moment"]["He"]["mean"])
    assert np.all((he / he[0] > 1 / 4) & (he / he[0] < 4)), he / he[0]  # mean over 8 inits: noisy
    small = np.asarray(cnn["second_moment"]["N(0,0.01²)"]["mean"])
    assert small[1] / small[0] < 0.1 and small[-1] < 1e-10 * small[0]
    # Xavier's compromise: LeCun keeps the forward variance, He(fan_out) the backward one
    comp = results["xavier_compromise"]["variances"]
    spread = lambda v: np.ptp(np.log(v))  # noqa: E731
    assert spread(comp["LeCun (fan_in)"]["forward_variance"]) < spread(
        comp["He fan_out, gain 1"]["forward_variance"]
    )
    assert spread(comp["He fan_out, gain 1"]["backward_variance"]) < spread(
        comp["LeCun (fan_in)"]["backward_variance"]
    )
