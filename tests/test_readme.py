"""The README's promises: it fits on a screen, its commands are where CI finds them, its script is as
long as its heading says, and its links lead somewhere. (tests/test_docs.py runs its Python.)"""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
# linked from the README, written on other branches of issues 14-16; they exist once those are merged


def _block(marker: str) -> str:
    match = re.search(rf"<!-- {marker} -->\n```\w*\n(.*?)```\n<!-- /{marker} -->", README, re.S)
    assert match, f"README has no {marker} block"
    return match.group(1)


def test_the_readme_fits_in_300_lines():
    assert len(README.splitlines()) <= 300


def test_the_script_has_as_many_lines_as_the_heading_says():
    script = _block("readme-script")
    promised = int(re.search(r"^## Train a classifier in (\d+) lines$", README, re.M).group(1))
    assert len(script.strip().splitlines()) == promised


def test_the_two_setup_commands_are_marked_for_ci():
    for marker in ("main-command", "test-command"):
        lines = [line for line in _block(marker).splitlines() if line.startswith("$ ")]
        assert len(lines) == 1 and "python3.11 -m venv" in lines[0]
    assert "pytest" in _block("test-command")
    assert "fnlearn train configs/digits_mlp.toml" in _block("main-command")


def test_every_relative_link_and_image_of_the_readme_and_docs_exists():
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    missing = []
    for page in pages:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" in target:
                continue
            path = (page.parent / target).resolve()
            if not path.exists():
                missing.append(f"{page.name} → {target}")
    assert not missing
