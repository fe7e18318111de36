"""optax's own alias tests, run on fnlearn's optimizers: the peer suite.

optax ships ``optax/_src/alias_test.py`` in its wheel. It gets each optimizer as
``getattr(optax._src.alias, name)`` (``alias.sgd(...)`` in one test), so replacing those module
attributes with fnlearn's factories makes every case run fnlearn's optimizer through optax's
checks: convergence on a parabola and on Rosenbrock (real and complex), extra keyword arguments
to ``update``, ``optax.inject_hyperparams``, explicit and preserved dtypes, state dtype stability
under ``lax.cond`` in six dtypes, and gradient accumulation with ``optax.MultiSteps``.

How the substitution is done:

* every optimizer in ``fnlearn.optim.OPTIMIZERS`` that optax also has (same name, arguments and
  defaults: sgd, adagrad, rmsprop, adam, nadam, adamw, amsgrad, lion) replaces
  ``optax._src.alias.<name>`` and ``optax.<name>`` for the session, wrapped in a counter;
* only the cases whose parameters name one of those optimizers are collected (``opt_name`` in
  the case's parameters; ``sgd_mom`` is sgd); the others test optimizers fnlearn does not have
  (adabelief, lamb, ...) or fnlearn's ``lbfgs``, whose signature differs (it takes the loss);
* at the end, every substituted factory must have been called (else the substitution did not
  take and the run fails), and the counts are printed: passed, failed, skipped by the suite.

    python experiments/benchmarks/optax_peer_suite.py              # every case, ~minutes on 2 cores
    python experiments/benchmarks/optax_peer_suite.py --quick      # without the 10 000-step runs
    python experiments/benchmarks/optax_peer_suite.py -- -x -k adam  # extra arguments for pytest

Nothing is written: pytest's cache and bytecode are off, the file is read where optax put it.
Needs ``absl-py`` and ``scikit-learn`` (alias_test.py imports them).
"""

from __future__ import annotations

import argparse
import collections
import functools
import importlib.util
import os
import re
import sys
from pathlib import Path

import optax
import optax._src.alias as optax_alias
import pytest

import fnlearn.optim as fo

SUITE = Path(optax.__file__).parent / "_src" / "alias_test.py"
# Test-parameter spellings that stand for an alias (test_explicit_dtype calls sgd "sgd_mom").
SPELLINGS = {"sgd_mom": "sgd"}
SLOW = "test_optimization"  # 10 000 jitted steps per case


def substituted() -> list[str]:
    """fnlearn's optimizers that optax has under the same name."""
    return [name for name in fo.names() if hasattr(optax_alias, name)]


def case_alias(item) -> str | None:
    """The optimizer a collected case exercises, from absl's record of its parameters."""
    if item.cls is not None and item.cls.__name__ == "LBFGSTest":
        return "lbfgs"
    params = getattr(getattr(item, "obj", None), "__x_params_repr__", "")
    found = re.search(r"opt_name='(\w+)'", params)
    return SPELLINGS.get(found.group(1), found.group(1)) if found else None


class PeerSuite:
    """A pytest plugin: substitutes fnlearn's factories, selects their cases, counts outcomes."""

    def __init__(self, names: list[str], quick: bool):
        self.names, self.quick = names, quick
        self.calls: collections.Counter = collections.Counter()
        self.results: dict[str, tuple[str, str]] = {}  # nodeid -> (alias, outcome)
        self.skip_reasons: collections.Counter = collections.Counter()

    def counted(self, name):
        factory = fo.OPTIMIZERS[name]

        @functools.wraps(factory)
        def build(*args, **kwargs):
            self.calls[name] += 1
            return factory(*args, **kwargs)

        return build

    def pytest_configure(self, config):
        for name in self.names:
            build = self.counted(name)
            setattr(optax_alias, name, build)
            setattr(optax, name, build)

    def pytest_collection_modifyitems(self, session, config, items):
        keep, drop = [], []
        for item in items:
            chosen = case_alias(item) in self.names and not (self.quick and item.name.startswith(SLOW))
            (keep if chosen else drop).append(item)
        config.hook.pytest_deselected(items=drop)
        items[:] = keep

    def pytest_runtest_logreport(self, report):
        """One outcome per case: failed if any phase or subtest failed, else skipped if skipped."""
        alias = dict(report.user_properties).get("alias")
        _, before = self.results.get(report.nodeid, (alias, "passed"))
        if report.outcome == "failed" or before == "failed":
            outcome = "failed"
        elif report.outcome == "skipped" or before == "skipped":
            outcome = "skipped"
            if report.outcome == "skipped":
                reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
                self.skip_reasons[reason.removeprefix("Skipped: ")] += 1
        else:
            outcome = "passed"
        self.results[report.nodeid] = (alias, outcome)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item):
        item.user_properties.append(("alias", case_alias(item)))


def summarise(plugin: PeerSuite) -> tuple[str, bool]:
    """The report and whether the run is a success (no failure, every substitution used)."""
    outcomes = collections.defaultdict(collections.Counter)
    for alias, outcome in plugin.results.values():
        outcomes[alias][outcome] += 1
    total = collections.Counter()
    lines = [f"{'alias':<10} {'passed':>7} {'failed':>7} {'skipped':>8} {'built':>7}"]
    for name in plugin.names:
        got = outcomes[name]
        total.update(got)
        counts = [got["passed"], got["failed"], got["skipped"], plugin.calls[name]]
        lines.append(f"{name:<10} " + " ".join(f"{n:>{w}}" for n, w in zip(counts, (7, 7, 8, 7))))
    ran = total["passed"] + total["failed"]
    lines.append(f"{'total':<10} {total['passed']:>7} {total['failed']:>7} {total['skipped']:>8}")
    lines.append(
        f"peer suite: {total['passed']}/{ran} cases that exercise fnlearn's aliases pass "
        f"({total['skipped']} skipped by the suite itself)"
    )
    lines += [f"  skipped ({n}): {reason}" for reason, n in plugin.skip_reasons.most_common()]
    lines += [f"  FAILED {nodeid}" for nodeid, (_, outcome) in plugin.results.items() if outcome == "failed"]
    unused = [name for name in plugin.names if plugin.calls[name] == 0]
    if unused:
        lines.append(f"  substitution did not take: fnlearn's {', '.join(unused)} never built")
    return "\n".join(lines), total["failed"] == 0 and ran > 0 and not unused


def missing_requirement() -> str | None:
    """Why the suite cannot run here (one line naming the fix), or None."""
    if not SUITE.is_file():
        return f"{SUITE} is missing: this optax installation ships no tests; reinstall optax from its wheel."
    missing = [name for name in ("absl", "sklearn", "scipy") if importlib.util.find_spec(name) is None]
    if missing:
        return (
            f"optax's alias_test.py imports {', '.join(missing)}: pip install -e '.[test]' "
            "(scikit-learn and scipy; absl-py comes with optax)."
        )
    return None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"leave out {SLOW} (10 000 steps per case)")
    parser.add_argument("pytest_args", nargs="*", help="passed to pytest (after --)")
    args = parser.parse_args(argv)
    problem = missing_requirement()
    if problem:
        print(f"optax_peer_suite: error: {problem}", file=sys.stderr)
        return 2
    sys.dont_write_bytecode = True  # no __pycache__ inside site-packages
    plugin = PeerSuite(substituted(), args.quick)
    pytest_args = [
        str(SUITE),
        "-q",
        "-p",
        "no:cacheprovider",
        "-c",
        os.devnull,
        "--rootdir",
        str(SUITE.parent),
        *args.pytest_args,
    ]
    pytest.main(pytest_args, plugins=[plugin])
    text, ok = summarise(plugin)
    print(text)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
