"""``fnlearn train CONFIG``: train one config (one run per seed) into a run directory."""

from __future__ import annotations

import shlex
from pathlib import Path

from fnlearn.commands.common import RAW, add_training_options, print_table, train_into
from fnlearn.errors import FnlearnError

EPILOG = """\
run directory (OUT, default runs/NAME, or runs/NAME-2, -3, ... if that is taken):
  config.toml     the resolved config (defaults filled in, --set applied), written before training
  metrics.jsonl   one JSON object per logging point (step, epoch, train_*, val_*, learning_rate, ...)
  checkpoints/    what --resume continues from
  summary.json    final and best metrics, test metrics, wall time, versions, device
  plots/          training.png: loss, metric and learning rate
with several training.seeds, OUT holds one such directory per seed: OUT/seed_0, OUT/seed_1, ...
The seeds train together as one vmapped program (training.replicas = true, the default; their
checkpoints are written when it ends, so --resume of an interrupted multi-seed run starts it over);
with training.replicas = false they train one after another, each resumable mid-run.

examples:
  fnlearn train configs/digits_mlp.toml
  fnlearn train configs/digits_mlp.toml --set optimizer.learning_rate=3e-3 --set model.sizes=[256,128]
  fnlearn train configs/digits_mlp.toml --set training.seeds=[0,1,2] --out runs/digits_seeds
  fnlearn train --resume --out runs/digits_mlp      (continue an interrupted run)
"""


def add_parser(subcommands) -> None:
    train = subcommands.add_parser(
        "train",
        help="train one config (one run per seed)",
        epilog=EPILOG,
        formatter_class=RAW,
        description="Train CONFIG, evaluate on the test split, write a run directory.",
    )
    train.add_argument(
        "config",
        nargs="?",
        metavar="CONFIG",
        help="the TOML config (optional with --resume: OUT/config.toml is used)",
    )
    add_training_options(
        train,
        out="the run directory (default runs/NAME)",
        resume="continue the run in --out from its last checkpoint",
        quiet="print only the final line of each run",
    )
    train.set_defaults(func=run)


def run(args) -> int:
    """Train the config (or the one in ``--out`` with ``--resume``); a table when several seeds ran."""
    from fnlearn import config as fconfig
    from fnlearn.runs import execute

    if args.config is None:
        if not (args.resume and args.out):
            raise FnlearnError("fnlearn train: give a CONFIG file (or --resume --out DIR to continue a run).")
        config = execute.resume_config(Path(args.out), args.overrides)
    else:
        config = fconfig.load(args.config, args.overrides)
    done = train_into(
        args,
        lambda out: execute.plan_runs(config, out, config.name),
        Path("runs") / config.name,
        again=lambda out: f"`fnlearn train --resume --out {shlex.quote(str(out))}`",
    )
    if args.quiet:
        print("\n".join(execute.summary_line(d.run_dir, d.summary) for d in done))
    if len(done) > 1 and not args.quiet:
        print_table([d.run_dir for d in done])
    return execute.exit_status(done)
