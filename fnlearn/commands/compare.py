"""``fnlearn compare RUN_DIR...``: a markdown table of runs on stdout and a PNG of their curves."""

from __future__ import annotations

import sys

from fnlearn.commands.common import RAW, warn

EPILOG = """\
Runs whose configs differ only in training.seeds are grouped; each cell is mean ± sample std over
the group's seeds. Columns: test metrics (from summary.json), final and best validation metrics
(from metrics.jsonl; training metrics when there is no validation split), epochs, wall time.

damaged runs: a run directory named on the command line that cannot be read (a config.toml,
summary.json or metrics.jsonl that is unreadable, not UTF-8, not valid TOML/JSON, not a JSON object,
or a directory) is an error (exit 2, one line naming the file). A damaged run found below a named
folder is left out with one "fnlearn: warning: skipped RUN: ..." line on stderr, and the rest are
compared; exit 2 if none is left. A torn last line of metrics.jsonl (an interrupted run) is
ignored, and so are NaN, infinite and out-of-range numbers. --csv and --out must name a file in an
existing folder (no folder is created; checked before anything is read); both are written whole
or not at all, and their paths are printed on stderr ("table: ...", "figure: ...").

examples:
  fnlearn compare runs/optimizers-sweep
  fnlearn compare runs/a runs/b --csv table.csv --out curves.png
"""


def add_parser(subcommands) -> None:
    compare = subcommands.add_parser(
        "compare",
        help="table and learning curves of run directories",
        epilog=EPILOG,
        formatter_class=RAW,
        description="Compare runs: a markdown table on stdout and a PNG of the curves.",
    )
    compare.add_argument(
        "runs",
        nargs="+",
        metavar="RUN_DIR",
        help="run directories, or folders of them (a sweep's DIR)",
    )
    compare.add_argument("--csv", metavar="FILE", help="also write the table as CSV (mean and std columns)")
    compare.add_argument(
        "--out",
        metavar="PNG",
        default="compare.png",
        help="the learning-curve figure (default compare.png in the current folder; its path is printed)",
    )
    compare.add_argument("--no-plot", action="store_true", help="print the table only")
    compare.set_defaults(func=run)


def run(args) -> int:
    """Damaged runs below a folder: one warning line each, left out; outputs checked first."""
    from fnlearn import report

    if args.csv is not None:
        report.check_output(args.csv, "--csv")
    if not args.no_plot:
        report.check_figure_path(args.out, "--out")
    runs = report.find_runs(args.runs, on_damaged=warn)
    columns, rows = report.compare_table(runs)
    print(report.markdown_table(columns, rows))
    if report.key_text(runs):
        print(report.key_text(runs))
    if args.csv is not None:
        print(
            f"table: {report.show_path(report.write_csv(args.csv, columns, rows).resolve())}", file=sys.stderr
        )
    if not args.no_plot:
        print(f"figure: {report.show_path(report.plot_compare(runs, args.out).resolve())}", file=sys.stderr)
    return 0
