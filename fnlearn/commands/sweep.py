"""``fnlearn sweep CONFIG``: train every combination of a grid of config values, then compare."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from fnlearn.commands.common import RAW, add_training_options, print_table, train_into
from fnlearn.errors import FnlearnError

EPILOG = """\
Runs every combination of the --grid values (and of the config's [sweep] grid and variants), each
into OUT/LABEL (OUT/LABEL/seed_S with several seeds), then prints the comparison table. Every run's
config is validated and built before the first one starts. Runs that differ only in per-replica
values (seeds, learning rate or a schedule's rate, weight decay, dropout, numeric optimizer options)
train together as one vmapped program; the others one after another (docs/cli.md).

--part I/N trains only the I-th of N deterministic slices of the runs (whole groups kept together
where possible), into its own OUT (default runs/NAME-sweep-partI-of-N), with a table and sweep
report of its own runs: `fnlearn compare OUT1 OUT2 ...` over every part's OUT gives the whole table.

examples:
  fnlearn sweep configs/digits_mlp.toml --grid optimizer.name=sgd,adam --grid optimizer.learning_rate=1e-3,1e-2 --seeds 3
  fnlearn sweep configs/optimizers.toml
  fnlearn sweep configs/deep_mlp.toml --resume --out runs/deep_mlp-sweep   (finish an interrupted sweep)
  fnlearn sweep configs/optimizers.toml --part 2/4   (on the second of four machines)
"""


def add_parser(subcommands) -> None:
    sweep = subcommands.add_parser(
        "sweep",
        help="train every combination of a grid of config values",
        epilog=EPILOG,
        formatter_class=RAW,
        description="Train every combination of --grid values, then compare them.",
    )
    sweep.add_argument("config", metavar="CONFIG", help="the TOML config the grid varies")
    sweep.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="a config key and the values to try (TOML literals; repeat for more axes)",
    )
    sweep.add_argument("--seeds", type=int, metavar="N", help="train every combination with seeds 0..N-1")
    sweep.add_argument(
        "--part", metavar="I/N", help="train only the I-th of N deterministic slices of the runs (I from 1)"
    )
    add_training_options(
        sweep,
        out="the sweep directory (default runs/NAME-sweep)",
        resume="skip finished runs, resume unfinished ones in --out",
        quiet="print only the table",
    )
    sweep.set_defaults(func=run)


def run(args) -> int:
    """Every configuration of the grid into ``OUT/LABEL``, one after another, then the table."""
    from fnlearn import config as fconfig
    from fnlearn.runs import execute
    from fnlearn.runs.plans import sweep_part

    part, parts = parse_part(args.part)
    config = fconfig.load(args.config, args.overrides)
    runs = fconfig.expand_sweep(config, args.grid, args.seeds)

    def plans_for(out):
        plans = [plan for label, run in runs for plan in execute.plan_runs(run, out / label, label)]
        if parts > len(plans):
            raise FnlearnError(
                f"--part {args.part}: the sweep has only {len(plans)} runs; split it into at most {len(plans)} parts."
            )
        return sweep_part(plans, part, parts)

    args.announce = lambda out, plans: (
        f"sweep: {len(runs)} configurations, {len(plans)} runs into {out}"
        + (f" (part {part} of {parts})" if parts > 1 else "")
    )
    name = f"{config.name}-sweep" + (f"-part{part}-of-{parts}" if args.part else "")
    again_part = f" --part {part}/{parts}" if args.part else ""
    done = train_into(
        args,
        plans_for,
        Path("runs") / name,
        again=lambda out: (
            f"`fnlearn sweep --resume --out {shlex.quote(str(out))}{again_part} {shlex.quote(str(args.config))}`"
        ),
    )
    print_table([args.run_out])
    from fnlearn import report

    written = report.write_sweep_report(args.run_out)
    if not args.quiet:
        print(f"sweep report: {', '.join(report.show_path(p) for p in written)}", file=sys.stderr)
    return execute.exit_status(done)


def parse_part(text: str | None) -> tuple[int, int]:
    """``(i, n)`` from ``--part I/N`` (1 <= I <= N); ``(1, 1)`` without it."""
    if text is None:
        return 1, 1
    i, sep, n = text.partition("/")
    if not (sep and i.strip().isdigit() and n.strip().isdigit()):
        raise FnlearnError(f"--part {text!r}: expected I/N such as 2/4 (the 2nd of 4 parts).")
    i, n = int(i), int(n)
    if n < 1 or not 1 <= i <= n:
        raise FnlearnError(f"--part {text}: I must be between 1 and N (N >= 1), e.g. --part 1/{max(n, 1)}.")
    return i, n
