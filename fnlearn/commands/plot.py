"""``fnlearn plot RUN_DIR``: loss, metric and learning-rate curves of a run (or of each run below)."""

from __future__ import annotations

from fnlearn.commands.common import warn
from fnlearn.errors import FnlearnError


def add_parser(subcommands) -> None:
    plot = subcommands.add_parser(
        "plot",
        help="loss, metric and learning-rate curves of a run",
        description="Plot loss, metric and learning rate against the step.",
    )
    plot.add_argument("run", metavar="RUN_DIR", help="a run directory (or a folder of them: one plot each)")
    plot.add_argument("--out", metavar="PNG", help="where to write (default RUN_DIR/plots/training.png)")
    plot.set_defaults(func=run)


def run(args) -> int:
    """One figure per run; a damaged run or one with nothing to plot below a folder is one warning."""
    from fnlearn import report

    if args.out:
        report.check_figure_path(args.out, "--out")
    runs = report.find_runs([args.run], on_damaged=warn)
    if args.out and len(runs) > 1:
        raise FnlearnError(
            f"--out names one file, but {args.run} holds {len(runs)} runs; leave --out out to plot each into its plots/."
        )
    plotted = 0
    for found in runs:
        try:
            print(report.plot_run(found, args.out))
            plotted += 1
        except FnlearnError as error:
            if len(runs) == 1:
                raise
            warn(f"skipped {report.show_path(found.path)}: {error}")
    if not plotted:
        raise FnlearnError(
            f"none of the {len(runs)} runs in {report.show_path(args.run)} could be plotted (each is named above)."
        )
    return 0
