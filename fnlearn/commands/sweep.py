"""``fnlearn sweep CONFIG``: train every combination of a grid of config values, then compare."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from fnlearn.commands.common import RAW, add_training_options, print_table, train_into

EPILOG = """\
Runs every combination of the --grid values (and of the config's [sweep] grid and variants), each
into OUT/LABEL (OUT/LABEL/seed_S with several seeds): the configurations one after another, the
seeds of each as one vmapped program (see train --help), then prints the comparison table. Every run's config is validated and built before the first one starts.

examples:
  fnlearn sweep configs/digits_mlp.toml --grid optimizer.name=sgd,adam --grid optimizer.learning_rate=1e-3,1e-2 --seeds 3
  fnlearn sweep configs/optimizers.toml
  fnlearn sweep configs/deep_mlp.toml --resume --out runs/deep_mlp-sweep   (finish an interrupted sweep)
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

    config = fconfig.load(args.config, args.overrides)
    runs = fconfig.expand_sweep(config, args.grid, args.seeds)

    def plans_for(out):
        return [plan for label, run in runs for plan in execute.plan_runs(run, out / label, label)]

    args.announce = lambda out, plans: f"sweep: {len(runs)} configurations, {len(plans)} runs into {out}"
    done = train_into(
        args,
        plans_for,
        Path("runs") / f"{config.name}-sweep",
        again=lambda out: (
            f"`fnlearn sweep --resume --out {shlex.quote(str(out))} {shlex.quote(str(args.config))}`"
        ),
    )
    print_table([args.run_out])
    from fnlearn import report

    written = report.write_sweep_report(args.run_out)
    if not args.quiet:
        print(f"sweep report: {', '.join(report.show_path(p) for p in written)}", file=sys.stderr)
    return execute.exit_status(done)
