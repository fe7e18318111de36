"""``fnlearn predict RUN_DIR --data FILE``: predictions of a trained run, as CSV.

The inputs are a CSV file with a header row (the run's feature columns by name when the run's data
named them, else exactly as many columns as the model has inputs; other columns, such as the
target, are ignored) or a ``.npz`` archive with the inputs under ``x`` (``--x-key``). They are in
the data's units: the run's standardiser is applied, and regression outputs come back in the
data's units. The output is written whole or not at all, and never over an existing file unless
``--overwrite`` says so.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
from pathlib import Path

import numpy as np

from fnlearn.errors import FnlearnError

KINDS = ("mode", "mean", "sample", "distribution")

EPILOG = """\
output: one CSV row per input example. Columns: "mode" / "mean" / "sample" (with several values
per example "mean_0", "mean_1", ...: class probabilities, or one column per target dimension);
with --kind distribution, the head's parameters ("loc", "scale"; "logits_0", ..., "probs_0", ...).
Where the run's data names its classes (a CSV's text labels, a dataset's class names, a sequence
run's vocabulary), a mode or sample is written as the label's text, and one class id also in
"mode_id" / "sample_id" (sequences: one token's text per column "mode_0", "mode_1", ...).

examples:
  fnlearn predict runs/digits_mlp --data new_digits.npz --out preds.csv
  fnlearn predict runs/housing --data houses.csv --kind distribution
  fnlearn predict runs/housing --data houses.csv --kind sample --seed 1
"""


def add_parser(subcommands) -> None:
    sub = subcommands.add_parser(
        "predict",
        help="predict with a trained run",
        description="Predict the mode, mean, a sample or the distribution for new inputs.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub.add_argument("run", metavar="RUN_DIR", help="a run directory that `fnlearn train` wrote")
    sub.add_argument("--data", required=True, metavar="FILE", help="inputs: a .csv (header row) or .npz file")
    sub.add_argument("--kind", default="mode", choices=KINDS, help="what to predict (default mode)")
    sub.add_argument("--out", metavar="CSV", help="where to write (default: standard output)")
    sub.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    sub.add_argument("--x-key", default="x", metavar="NAME", help="the inputs' array in a .npz (default x)")
    sub.add_argument("--seed", type=int, default=0, help="the random seed of --kind sample (default 0)")
    sub.add_argument("--ema", action="store_true", help="predict with the moving average of the params")
    sub.add_argument(
        "--batch-size", type=int, default=512, metavar="N", help="examples per batch (default 512)"
    )
    sub.set_defaults(func=run)


def _check_out(out: str | None, overwrite: bool) -> Path | None:
    if out is None:
        return None
    path = Path(out)
    if path.is_dir():
        raise FnlearnError(f"--out {out}: that is a folder; name a file such as {path / 'preds.csv'}.")
    if not path.parent.is_dir():
        raise FnlearnError(f"--out {out}: the folder {path.parent} does not exist; create it first.")
    if path.exists() and not overwrite:
        raise FnlearnError(
            f"--out {out} exists already; pass --overwrite to replace it, or name another file."
        )
    return path


def _csv_inputs(path: Path, names, num_features: int) -> np.ndarray:
    from fnlearn.data.files import _numeric_columns, _read_csv  # noqa: PLC0415 - the CSV rules live there

    header, rows = _read_csv(path, ",")
    if names and all(n in header for n in names):
        columns = list(names)
    elif len(header) == num_features:
        columns = header
    else:
        wanted = f"the columns {', '.join(names)}" if names else f"{num_features} columns"
        raise FnlearnError(
            f"--data {path}: the run's model takes {wanted}, but the file's header has {len(header)} "
            f"columns ({', '.join(header[:8])}{', ...' if len(header) > 8 else ''}). Give the inputs the run was trained on."
        )
    if not rows:
        raise FnlearnError(f"--data {path} has a header but no rows to predict.")
    return _numeric_columns(path, rows, [header.index(c) for c in columns], columns)


def read_inputs(path: str, feature_names, x_key: str, input_shape) -> np.ndarray:
    """The inputs of ``--data`` as an array of examples of ``input_shape``; one line per mistake."""
    file = Path(path)
    if not file.is_file():
        raise FnlearnError(f"--data {path}: no such file. Pass a .csv or .npz file of inputs.")
    suffix = file.suffix.lower()
    if suffix == ".csv":
        x = _csv_inputs(file, feature_names, math.prod(input_shape))
    elif suffix == ".npz":
        from fnlearn.data.files import _read_npz  # noqa: PLC0415

        (x,) = _read_npz(file, (x_key,))
    else:
        raise FnlearnError(f"--data {path}: expected a .csv or .npz file, got {suffix or 'no suffix'}.")
    x = np.asarray(x, np.float32)
    if x.ndim >= 1 and x.ndim != len(input_shape) + 1 and math.prod(x.shape[1:]) == math.prod(input_shape):
        x = x.reshape(len(x), *input_shape)  # flat rows of an image model, or images of a flat one
    return x


def _columns(name: str, value) -> dict:
    value = np.asarray(value)
    flat = value.reshape(len(value), -1)
    if flat.shape[1] == 1:  # one value per example: a class id, a count, a 1-d target
        return {name: flat[:, 0]}
    return {f"{name}_{j}": flat[:, j] for j in range(flat.shape[1])}


def _named(columns: dict, labels) -> dict:
    """Class-id columns as the labels' text: one id column becomes ``NAME`` (text) and ``NAME_id``;
    a sequence's id columns ``NAME_t`` become the tokens' text."""
    text = np.asarray(labels, dtype=object)
    if len(columns) == 1:
        ((name, ids),) = columns.items()
        return {name: text[ids], f"{name}_id": ids}
    return {name: text[ids] for name, ids in columns.items()}


def _cell(value) -> str:
    if isinstance(value, str):
        return value
    return str(int(value)) if isinstance(value, (int, np.integer)) else repr(float(value))


def to_csv(result, kind: str, labels=None) -> str:
    """One row per example: the prediction's columns (see the command's help). With ``labels``
    (class id i's text), integral predictions (class ids) are written as text."""
    columns = {}
    for name, value in result.items() if isinstance(result, dict) else [(kind, result)]:
        columns |= _columns(name, value)
    integral = all(np.issubdtype(np.asarray(v).dtype, np.integer) for v in columns.values())
    if labels is not None and kind in ("mode", "sample") and integral:
        columns = _named(columns, labels)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")  # quotes a label holding a comma, quote or newline
    writer.writerow(columns)
    for row in zip(*(v.tolist() if v.dtype != object else list(v) for v in columns.values())):
        writer.writerow([_cell(v) for v in row])
    return out.getvalue()


def run(args) -> int:
    from fnlearn import runs  # noqa: PLC0415 - jax loads here, not for --help
    from fnlearn.atomic import write_text  # noqa: PLC0415

    out = _check_out(args.out, args.overwrite)
    if args.batch_size < 1:
        raise FnlearnError(f"--batch-size must be a positive integer, got {args.batch_size}.")
    loaded = runs.load(args.run)
    import jax  # noqa: PLC0415

    x = read_inputs(args.data, loaded.feature_names, args.x_key, loaded.model.input_shape)
    key = jax.random.key(args.seed) if args.kind == "sample" else None
    result = loaded.predict(x, kind=args.kind, key=key, batch_size=args.batch_size, use_ema=args.ema)
    text = to_csv(jax.device_get(result), args.kind, loaded.labels)
    if out is None:
        print(text, end="")
    else:
        write_text(out, text)
        print(f"predictions: {out} ({len(x)} rows)", flush=True)
    return 0
