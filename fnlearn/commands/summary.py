"""``fnlearn summary CONFIG``: the table of a config's model (``fl.nn.summary``), without training.

The config is checked and built as ``fnlearn train`` would (the data is loaded, since the model's
input and output widths come from it), but nothing is trained and nothing is written.
"""

from __future__ import annotations

import argparse

from fnlearn.commands.common import add_set

EPILOG = """\
examples:
  fnlearn summary configs/digits_mlp.toml
  fnlearn summary configs/digits_mlp.toml --set model.sizes=[256,128]
"""


def add_parser(subcommands) -> None:
    sub = subcommands.add_parser(
        "summary",
        help="the layers of a config's model (no training)",
        description="Print a table of CONFIG's model: layers, output shapes, parameter counts.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub.add_argument("config", metavar="CONFIG", help="the TOML config")
    add_set(sub)
    sub.set_defaults(func=run)


def run(args) -> int:
    from fnlearn import config as fconfig  # noqa: PLC0415 - jax loads here, not for --help
    from fnlearn.nn import summary  # noqa: PLC0415
    from fnlearn.runs.build import build  # noqa: PLC0415

    built = build(fconfig.load(args.config, args.overrides))
    print(summary(built.model))
    print(
        f"head: {built.head.spec}   data: {built.config.data.name} ({len(built.splits.train)} training examples)"
    )
    return 0
