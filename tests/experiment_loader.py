"""Import an experiment script (experiments/NAME.py) as a module and run it, for the experiment tests."""

import json
import sys
from pathlib import Path

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
if str(EXPERIMENTS) not in sys.path:  # the scripts import their shared _common as a script would
    sys.path.insert(0, str(EXPERIMENTS))

import _common  # noqa: E402 - needs the path above


def load(name: str):
    """The module experiments/NAME.py, loaded once (``_common.sibling``: the scripts' own import)."""
    return _common.sibling(name)


def _no_constants(name):
    raise AssertionError(f"the JSON holds {name}: strict JSON has no NaN or Infinity")


def run_quick(name: str, tmp_path: Path) -> dict:
    """``python experiments/NAME.py --quick --out tmp_path``, in process; its JSON, read strictly
    (NaN/Infinity rejected), after checking that the figure was drawn."""
    module = load(name)
    _common.main(module.run, module.plot, module.report, ["--quick", "--out", str(tmp_path)])
    assert (tmp_path / f"{name}.png").stat().st_size > 10_000
    return json.loads((tmp_path / f"{name}.json").read_text(), parse_constant=_no_constants)
