"""Data parallelism: 8 (virtual CPU) devices give the result of one, in a subprocess."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fnlearn as fl
from fnlearn.errors import FnlearnError

JOB = Path(__file__).parent / "jobs" / "multidevice_job.py"


def test_eight_devices_match_one():
    # added to the session's XLA_FLAGS (tests/conftest.py: LLVM optimisations off; the job's CPU time
    # 37 -> 20 s), not replacing them: both runs it compares compile under the same flags
    flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=8".strip()
    env = os.environ | {"XLA_FLAGS": flags}
    out = subprocess.run([sys.executable, str(JOB)], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["devices"] == 8 and result["param_devices"] == 8  # parameters replicated on all 8
    assert result["max_param_diff"] < 1e-4
    np.testing.assert_allclose(*result["losses"], rtol=1e-5)
    np.testing.assert_allclose(*result["scan_losses"], rtol=1e-5)
    np.testing.assert_allclose(*result["adam_losses"], rtol=1e-4)
    assert "does not split evenly over 8 devices" in result["error"]


def test_device_count_is_checked():
    with pytest.raises(FnlearnError, match="this process sees"):
        fl.parallel.data_mesh(10_000)
    assert fl.parallel.data_mesh(None) is None and fl.parallel.data_mesh(1) is None
