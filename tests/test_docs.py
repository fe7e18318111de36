"""Every ```python block of README.md and docs/*.md runs, so the documentation cannot rot.

One test per file: its blocks run in order in one namespace (a later block may use an earlier one's
names, as a reader would), in a fresh temporary working directory that reads like the repository
root (``configs/`` and ``experiments/`` are links to the repository's) while whatever a block writes
(``runs/``, a CSV) lands in the temporary directory; the repository root is on ``sys.path``. A block whose info string is more than ``python``
(```` ```python needs-files ````) needs what the repository cannot hold (the MNIST files) and is
listed in NOT_RUN, so that no example silently stops running.
"""

import contextlib
import io
import re
import sys
from pathlib import Path

import pytest

import fnlearn as fl

ROOT = Path(__file__).resolve().parents[1]
FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# (file, first line of the block) of every python block that is deliberately not run, and why
NOT_RUN = {("api.md", "from fnlearn import data"): "needs the four MNIST files"}


def python_blocks(text: str) -> list[tuple[int, str, str]]:
    """``(line number, info string, code)`` of every python block, in order (fences at column 0)."""
    blocks, opened = [], None
    lines = text.splitlines(keepends=True)
    for number, line in enumerate(lines, start=1):
        if not line.startswith("```"):
            continue
        if opened is None:
            opened = number, line[3:].strip()
            continue
        start, info = opened
        language, _, rest = info.partition(" ")
        if language == "python":
            blocks.append((start + 1, rest.strip(), "".join(lines[start : number - 1])))
        opened = None
    assert opened is None, f"a code block opened at line {opened[0]} is never closed"
    return blocks


def run_blocks(path: Path) -> str:
    """Run the file's python blocks in one namespace; return what they printed."""
    namespace = {"__name__": "__docs__"}
    printed = io.StringIO()
    for line, info, code in python_blocks(path.read_text()):
        if info:
            first = code.strip().splitlines()[0]
            assert (path.name, first) in NOT_RUN, f"{path.name}:{line}: unknown block kind {info!r}"
            continue
        with contextlib.redirect_stdout(printed):
            try:
                exec(compile(code, f"{path.name}:{line}", "exec"), namespace)
            except Exception as error:  # name the block, keep the traceback
                raise AssertionError(f"{path.name}, the python block at line {line} failed") from error
    return printed.getvalue()


def test_the_parser_finds_blocks_and_their_lines():
    text = "a\n```python\nx = 1\n```\n```bash\nls\n```\n```python needs-files\ny\n```\n"
    assert python_blocks(text) == [(3, "", "x = 1\n"), (9, "needs-files", "y\n")]


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_every_python_block_runs(path, tmp_path, monkeypatch):
    for name in ("configs", "experiments"):  # relative paths read as from the repository root
        (tmp_path / name).symlink_to(ROOT / name, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(ROOT))
    # a block may register its own head (docs/api.md does); put the registry back afterwards
    heads = fl.distributions.register.__globals__["_REGISTRY"]
    monkeypatch.setattr(sys.modules[fl.distributions.register.__module__], "_REGISTRY", dict(heads))
    printed = run_blocks(path)
    if path.name == "README.md":  # the 12-line script: what the README promises it prints
        accuracy = float(re.search(r"test accuracy ([0-9.]+)", printed).group(1))
        assert accuracy >= 0.97, printed


def test_the_blocks_not_run_exist_and_are_marked():
    found = {
        (path.name, code.strip().splitlines()[0])
        for path in FILES
        for _, info, code in python_blocks(path.read_text())
        if info
    }
    assert found == set(NOT_RUN)
