"""Import an experiment script (experiments/NAME.py) as a module, for the experiment tests."""

import importlib.util
import sys
from pathlib import Path

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def load(name: str):
    """The module experiments/NAME.py (registered in sys.modules, so its dataclasses and pickling-free
    helpers resolve their own module)."""
    spec = importlib.util.spec_from_file_location(name, EXPERIMENTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
