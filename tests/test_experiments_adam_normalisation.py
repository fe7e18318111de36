"""experiments/adam_normalisation.py runs end to end in --quick mode and its numbers show Adam normalises
per-parameter steps; the notes' worked example equals optax.
"""

import numpy as np
import pytest
from experiment_loader import run_quick  # tests/ is on sys.path


def test_adam_normalisation(tmp_path):
    import jax.numpy as jnp
    import optax

    r = run_quick("adam_normalisation", tmp_path)
    ex = r["worked_example"]
    np.testing.assert_allclose(ex["m"], [3, -2, 5])
    np.testing.assert_allclose(ex["v"], [9, 4, 25])
    np.testing.assert_allclose(ex["update_b1_b2_0"], [1, -1, 1], atol=1e-6)
    g = jnp.array([3.0, -2.0, 5.0])
    reference = optax.scale_by_adam()
    state = reference.init(g)
    for step in ex["default_betas_constant_gradient_updates"]:
        expected, state = reference.update(g, state)
        # 1 − 0.999^t cancels in float32 (relative error ~6e-5 at t = 1): agree to that, not to 1e-6
        np.testing.assert_allclose(step, expected, rtol=1e-4)
        np.testing.assert_allclose(step, [1, -1, 1], atol=1e-4)
    reg = r["regression"]
    assert reg["sgd"]["slope_log_step_vs_log_gradient"]["mean"] == pytest.approx(1.0, abs=1e-3)
    assert abs(reg["adam"]["slope_log_step_vs_log_gradient"]["mean"]) < 0.1
    assert reg["sgd"]["largest_over_smallest_step"]["mean"] > 1e3
    assert reg["adam"]["largest_over_smallest_step"]["mean"] < 3
