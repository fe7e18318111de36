"""Reports from run directories: comparison tables and figures, and a sweep's summary.

``runs``: reading run directories (config.toml, metrics.jsonl, summary.json) and final/best
values; ``labels``: groups of runs (differing only in their seeds) and their short labels;
``tables``: mean ± std tables as markdown and CSV; ``figures``: one run's and a comparison's
curves; ``sweep``: the figure, table and CSV written at the end of every sweep.
"""

from fnlearn.report.figures import (
    PLOT_LIMIT,
    _curve,
    check_figure_path,
    group_curve,
    plot_compare,
    plot_run,
    pyplot,
    save_figure,
)
from fnlearn.report.labels import format_value, group_list, group_runs, key_text, label_key, short_names
from fnlearn.report.runs import (
    BOOKKEEPING,
    Run,
    best_metrics,
    final_metrics,
    find_runs,
    is_bookkeeping,
    read_metrics,
    read_run,
    show_path,
)
from fnlearn.report.sweep import plot_sweep, write_sweep_report
from fnlearn.report.tables import check_output, compare_table, markdown_table, mean_std, write_csv

__all__ = [
    "BOOKKEEPING",
    "PLOT_LIMIT",
    "Run",
    "best_metrics",
    "check_figure_path",
    "check_output",
    "compare_table",
    "final_metrics",
    "find_runs",
    "format_value",
    "group_curve",
    "group_list",
    "group_runs",
    "is_bookkeeping",
    "key_text",
    "label_key",
    "markdown_table",
    "plot_compare",
    "plot_run",
    "plot_sweep",
    "pyplot",
    "read_metrics",
    "read_run",
    "save_figure",
    "short_names",
    "show_path",
    "write_csv",
    "write_sweep_report",
    "_curve",
    "mean_std",
]
