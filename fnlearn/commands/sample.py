"""``fnlearn sample RUN_DIR --prompt TEXT --length N [--temperature T] [--seed S]``: text from a trained GPT.

The run directory of a GPT trained on sequence data holds what sampling needs: ``config.toml`` (the
model), ``vocab.json`` (the tokens' text and the sequence length T) and ``checkpoints/last`` (the
weights). :func:`restore_sequence_model` rebuilds the model and restores its newest checkpoint;
``fnlearn.sampling.generate`` continues the prompt (greedy by default); the prompt and its
continuation are printed.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from fnlearn.errors import FnlearnError

__all__ = ["add_parser", "restore_sequence_model", "run"]

MAX_LENGTH = 100_000
"""The most tokens one command generates (one model call each)."""

EPILOG = """\
RUN_DIR is one run of a GPT on sequence data (data.name = "text", "sort", "addition" or "copy"):
with several seeds, name one of them, e.g. runs/text_gpt/seed_0. The prompt may only use characters
of the run's vocabulary (RUN_DIR/vocab.json). The model reads the last T tokens (its training
sequence length) to predict the next.

examples:
  fnlearn sample runs/sort_gpt --prompt "86523=" --length 5
  fnlearn sample runs/text_gpt --prompt "The " --length 200 --temperature 0.8 --seed 1
"""


def add_parser(subcommands) -> None:
    """Add ``sample`` to the ``fnlearn`` subcommands."""
    import argparse  # noqa: PLC0415 - only the parser needs it

    sample = subcommands.add_parser(
        "sample",
        help="generate text from a trained GPT run",
        description="Continue a prompt with a GPT run's model: greedy, or sampled with a temperature.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sample.add_argument(
        "run_dir", metavar="RUN_DIR", help="the run directory of a GPT trained on sequence data"
    )
    sample.add_argument(
        "--prompt", required=True, help="the text to continue (characters of the run's vocabulary)"
    )
    sample.add_argument("--length", required=True, type=int, metavar="N", help="how many tokens to generate")
    sample.add_argument(
        "--temperature",
        type=float,
        default=0.0,
        metavar="T",
        help="0 (default): greedy; > 0: sample from softmax(z/T)",
    )
    sample.add_argument("--seed", type=int, default=0, metavar="S", help="the sampling seed (default 0)")
    sample.set_defaults(func=run)


def _check_arguments(args) -> None:
    if not 1 <= args.length <= MAX_LENGTH:
        raise FnlearnError(
            f"sample: --length {args.length}: expected a number of tokens from 1 to {MAX_LENGTH}."
        )
    if not (math.isfinite(args.temperature) and args.temperature >= 0):
        raise FnlearnError(f"sample: --temperature {args.temperature}: expected a number >= 0 (0 is greedy).")
    if args.seed < 0:
        raise FnlearnError(f"sample: --seed {args.seed}: expected an integer >= 0.")
    if not args.prompt:
        raise FnlearnError(
            'sample: --prompt is empty; give at least one character to continue, e.g. --prompt "The ".'
        )


def _read_vocab(run_dir: Path) -> tuple[tuple[str, ...], int]:
    path = run_dir / "vocab.json"
    if not path.is_file():
        seeds = sorted(p.name for p in run_dir.glob("seed_*") if p.is_dir())
        hint = f" It holds one run per seed: name one, e.g. {run_dir / seeds[0]}." if seeds else ""
        raise FnlearnError(
            f"sample: {run_dir} has no vocab.json: expected the run directory of a GPT trained on sequence data "
            f"(data.name = 'text', 'sort', 'addition' or 'copy').{hint}"
        )
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        vocab, max_len = tuple(info["vocab"]), int(info["max_len"])
    except (ValueError, KeyError, TypeError) as error:
        raise FnlearnError(f"sample: {path} is damaged ({error}); train the run again.") from None
    if not vocab or not all(isinstance(t, str) for t in vocab) or max_len < 1:
        raise FnlearnError(
            f"sample: {path} is damaged (no vocabulary or sequence length); train the run again."
        )
    return vocab, max_len


def restore_sequence_model(run_dir) -> tuple:
    """``(model, params, model_state, vocab)`` of the GPT run in ``run_dir``, from its newest
    checkpoint in ``checkpoints/last`` (checked against the model and optimizer its config builds)."""
    from fnlearn import config, nn  # noqa: PLC0415 - the engine loads only when a command needs it
    from fnlearn.runs.build import build_optimizer  # noqa: PLC0415
    from fnlearn.runs.loading import restore_newest  # noqa: PLC0415

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FnlearnError(
            f"sample: run directory {str(run_dir)!r} does not exist. Pass the folder fnlearn train wrote."
        )
    vocab, max_len = _read_vocab(run_dir)
    cfg = config.load(run_dir / "config.toml")
    if cfg.model.name != "gpt":
        raise FnlearnError(f"sample: {run_dir} trained model {cfg.model.name!r}; sampling needs a 'gpt'.")
    m = cfg.model
    model = nn.gpt(
        len(vocab), max_len, width=m.width, depth=m.depth, num_heads=m.num_heads, dropout=m.dropout
    )
    state, _ = restore_newest(run_dir, model, build_optimizer(cfg.optimizer), cfg)
    return model, state.params, state.model_state, vocab


def run(args) -> int:
    """Print the prompt and its continuation."""
    _check_arguments(args)
    import jax  # noqa: PLC0415

    from fnlearn.data.sequences import decode, encode  # noqa: PLC0415
    from fnlearn.sampling import generate  # noqa: PLC0415

    model, params, model_state, vocab = restore_sequence_model(args.run_dir)
    ids = encode(args.prompt, vocab)
    out = generate(
        model,
        params,
        model_state,
        ids,
        args.length,
        temperature=args.temperature,
        key=jax.random.key(args.seed),
    )
    print(args.prompt + decode(out, vocab), flush=True)
    return 0
