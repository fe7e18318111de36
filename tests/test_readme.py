"""The README's promises: its script runs exactly as pasted, and its commands are where CI finds them."""

import re
import subprocess
import sys
from pathlib import Path

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def _block(marker: str) -> str:
    match = re.search(rf"<!-- {marker} -->\n```\w*\n(.*?)```\n<!-- /{marker} -->", README, re.S)
    assert match, f"README has no {marker} block"
    return match.group(1)


def test_the_fifteen_line_script_runs_as_pasted_and_reaches_97_percent(tmp_path):
    script = _block("readme-script")
    assert len(script.strip().splitlines()) <= 16
    (tmp_path / "script.py").write_text(script)
    out = subprocess.run(
        [sys.executable, "script.py"], cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr[-2000:]
    accuracy = float(re.search(r"test accuracy ([0-9.]+)", out.stdout).group(1))
    assert accuracy >= 0.97, out.stdout


def test_the_two_setup_commands_are_marked_for_ci():
    for marker in ("main-command", "test-command"):
        lines = [line for line in _block(marker).splitlines() if line.startswith("$ ")]
        assert len(lines) == 1 and "python3.11 -m venv" in lines[0]
    assert "pytest" in _block("test-command")
