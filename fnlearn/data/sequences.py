"""Sequence datasets: a character-level text corpus and seeded synthetic tasks, all as next-token data.

Every example is a window of token ids x ``[T]`` (stored as float32 whole numbers) with the next
token at each position as its target y ``[T]`` (int32 class ids); ``vocab`` lists each id's text,
so generated ids can be decoded. A GPT reads x and predicts y position by position.

* ``text(path, seq_len)``: the characters of a UTF-8 file; the vocabulary is its sorted set of
  characters. The text is cut into disjoint windows of ``seq_len + 1`` characters (inputs the first
  T, targets the last T), so a seeded split of the windows (``fl.data.split``) is a split by
  position: no character of a validation window is trained on.
* ``sort``, ``addition``, ``copy``: a prompt, ``=``, then the answer: the prompt's digits sorted,
  the sum of two numbers (digits least significant first, as a carry is computed), the prompt
  itself. The targets of the prompt's positions are ``_`` (nothing to predict there: the prompt is
  random), so a model is scored on the answer; ``sequence_accuracy`` is the fraction of examples
  whose whole answer is right.

Size rule: x and y take 8 bytes a token; a request beyond ``fnlearn.checks.memory_limit()`` is refused.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fnlearn import checks
from fnlearn.data.dataset import Dataset, from_arrays
from fnlearn.data.files import _reading, _required_file
from fnlearn.errors import FnlearnError

__all__ = ["TASK_VOCAB", "addition", "copy", "decode", "encode", "sort", "text"]

TASK_VOCAB = tuple("0123456789") + ("+", "=", "_")
"""The synthetic tasks' tokens: digits 0-9 (ids 0-9), '+', '=', and '_' (the prompt's targets)."""

_PLUS, _EQUALS, _BLANK = 10, 11, 12


def encode(text: str, vocab) -> np.ndarray:
    """The ids of ``text``'s tokens (characters) in ``vocab``; an unknown character is one line."""
    index = {token: i for i, token in enumerate(vocab)}
    unknown = [ch for ch in text if ch not in index]
    if unknown:
        raise FnlearnError(
            f"the text holds {unknown[0]!r}, which is not in the vocabulary ({len(vocab)} tokens: "
            f"{''.join(vocab)[:60]!r}). Use only characters the model was trained on."
        )
    return np.array([index[ch] for ch in text], np.int32)


def decode(ids, vocab) -> str:
    """The text of token ``ids``: their vocabulary entries joined."""
    return "".join(vocab[int(i)] for i in np.asarray(ids).reshape(-1))


def _windows(ids: np.ndarray, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint windows of seq_len + 1 ids: x the first seq_len, y the last seq_len (next tokens)."""
    count = len(ids) // (seq_len + 1)
    chunks = ids[: count * (seq_len + 1)].reshape(count, seq_len + 1)
    return chunks[:, :-1], chunks[:, 1:]


def _read_text(file: Path) -> str:
    with _reading(file, "text"):
        raw = file.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise FnlearnError(
            f"text: {file} is not UTF-8 text (byte 0x{raw[error.start]:02x} on line {line}). Save it as UTF-8, "
            "e.g. iconv -f latin1 -t utf-8."
        ) from None


def text(path=None, *, seq_len: int = 64) -> Dataset:
    """A character-level corpus from the UTF-8 file ``path``: windows of ``seq_len`` characters with
    the next character as each position's target (see the module docstring)."""
    file = _required_file(path, "text", "path = 'corpus.txt'")
    seq_len = checks.positive_int("text", "seq_len", seq_len, "It is the window length T, e.g. 64.")
    corpus = _read_text(file)
    if len(corpus) < 2 * (seq_len + 1):
        raise FnlearnError(
            f"text: {file} holds {len(corpus)} characters; seq_len={seq_len} needs at least {2 * (seq_len + 1)} "
            "(two windows of seq_len + 1, to train and to validate on). Use a longer text or a smaller seq_len."
        )
    checks.check_bytes("text", f"{len(corpus)} characters", 8 * len(corpus), "Use a smaller file.")
    vocab = tuple(sorted(set(corpus)))
    x, y = _windows(encode(corpus, vocab), seq_len)
    return from_arrays(x, y, task="classification", num_classes=len(vocab), name="text", vocab=vocab)


def _task(name: str, prompts: np.ndarray, answers: np.ndarray) -> Dataset:
    """Next-token data from prompts [n, P] (ending in '=') and answers [n, A]: x = (prompt +
    answer)[:-1], y = (prompt + answer)[1:] with the prompt's own targets blanked to '_'."""
    full = np.concatenate([prompts, answers], axis=1)
    x, y = full[:, :-1], full[:, 1:].copy()
    y[:, : prompts.shape[1] - 1] = _BLANK
    return from_arrays(x, y, task="classification", num_classes=len(TASK_VOCAB), name=name, vocab=TASK_VOCAB)


def _check_task(owner: str, n, seed, tokens: int) -> tuple[int, np.random.Generator]:
    n = checks.positive_int(owner, "n", n, "It is the number of examples, e.g. n=2000.")
    seed = checks.nonneg_int(owner, "seed", seed, "For example seed=0.")
    checks.check_bytes(owner, f"n={n} sequences of {tokens} tokens", 8 * n * tokens, "Use a smaller n.")
    return n, np.random.default_rng(seed)


def _digits(owner: str, name: str, value, low: int = 1) -> int:
    return checks.int_at_least(owner, name, value, low, "A number of digits, e.g. 5.")


def sort(*, n: int = 2000, length: int = 5, seed: int = 0) -> Dataset:
    """Sort ``length`` random digits: ``3 1 2 =`` → ``1 2 3``. T = 2·length."""
    length = _digits("sort", "length", length, 2)
    n, rng = _check_task("sort", n, seed, 2 * length)
    digits = rng.integers(0, 10, size=(n, length))
    prompts = np.concatenate([digits, np.full((n, 1), _EQUALS)], axis=1)
    return _task("sort", prompts, np.sort(digits, axis=1))


def copy(*, n: int = 2000, length: int = 5, seed: int = 0) -> Dataset:
    """Repeat ``length`` random digits: ``3 1 2 =`` → ``3 1 2``. T = 2·length."""
    length = _digits("copy", "length", length)
    n, rng = _check_task("copy", n, seed, 2 * length)
    digits = rng.integers(0, 10, size=(n, length))
    return _task("copy", np.concatenate([digits, np.full((n, 1), _EQUALS)], axis=1), digits)


def _reversed_digits(values: np.ndarray, width: int) -> np.ndarray:
    """[n] integers → [n, width] digits, least significant first."""
    return (values[:, None] // 10 ** np.arange(width)) % 10


def addition(*, n: int = 2000, digits: int = 3, seed: int = 0) -> Dataset:
    """a + b for two random numbers of up to ``digits`` digits, every number written with its
    digits reversed (least significant first, zero-padded): ``21+43=`` → ``640`` (12 + 34 = 46).
    The sum has digits + 1 digits; T = 3·digits + 2."""
    digits = checks.int_at_least("addition", "digits", digits, 1, "A number of digits, e.g. 3.")
    if digits > 18:
        raise FnlearnError(
            f"addition: digits = {digits}: expected at most 18 (the sums are int64 arithmetic)."
        )
    n, rng = _check_task("addition", n, seed, 3 * digits + 2)
    a, b = rng.integers(0, 10**digits, size=(2, n))
    prompts = np.concatenate(
        [
            _reversed_digits(a, digits),
            np.full((n, 1), _PLUS),
            _reversed_digits(b, digits),
            np.full((n, 1), _EQUALS),
        ],
        axis=1,
    )
    return _task("addition", prompts, _reversed_digits(a + b, digits + 1))
