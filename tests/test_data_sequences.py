"""Sequence datasets: the text corpus and the sort/addition/copy tasks, checked by recomputing them."""

import numpy as np
import pytest

from fnlearn import data
from fnlearn.data.sequences import TASK_VOCAB, decode, encode
from fnlearn.errors import FnlearnError

CORPUS = "To be, or not to be: that is the question.\nWhether 'tis nobler — in the mind — to suffer\n"


def _write(tmp_path, text, name="corpus.txt"):
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


def test_text_windows_are_the_corpus_cut_into_disjoint_next_character_pairs(tmp_path):
    ds = data.load("text", path=str(_write(tmp_path, CORPUS)), seq_len=9)
    assert ds.vocab == tuple(sorted(set(CORPUS))) and ds.num_classes == len(ds.vocab)
    count = len(CORPUS) // 10
    assert ds.x.shape == ds.y.shape == (count, 9) and ds.x.dtype == np.float32
    for i in range(count):
        window = CORPUS[10 * i : 10 * i + 10]  # seq_len + 1 characters, no overlap between windows
        assert decode(ds.x[i], ds.vocab) == window[:-1] and decode(ds.y[i], ds.vocab) == window[1:]
    assert "—" in ds.vocab  # any UTF-8 character is a token


def test_a_seeded_split_of_text_windows_is_a_split_by_position(tmp_path):
    ds = data.load("text", path=str(_write(tmp_path, CORPUS * 4)), seq_len=7)
    a = data.split(ds, val=0.25, test=0.0, seed=3)
    b = data.split(ds, val=0.25, test=0.0, seed=3)
    np.testing.assert_array_equal(a.val.x, b.val.x)
    rows = lambda x: sorted(map(tuple, x))  # noqa: E731
    assert rows(np.concatenate([a.train.x, a.val.x])) == rows(ds.x)  # each window in exactly one split
    assert not np.array_equal(a.val.x, data.split(ds, val=0.25, test=0.0, seed=4).val.x)


@pytest.mark.parametrize(
    ("content", "options", "needle"),
    [
        (b"abc\n\xe9t\xe9\n", {}, r"is not UTF-8 text \(byte 0xe9 on line 2\)"),
        ("short", {"seq_len": 4}, "holds 5 characters; seq_len=4 needs at least 10"),
        (CORPUS, {"seq_len": 0}, "seq_len"),
        (b"", {}, "holds 0 characters"),
    ],
)
def test_text_mistakes_are_one_line(tmp_path, content, options, needle):
    with pytest.raises(FnlearnError, match=needle) as info:
        data.load("text", path=str(_write(tmp_path, content)), **options)
    assert "\n" not in str(info.value)


def test_text_path_mistakes_are_one_line(tmp_path):
    with pytest.raises(FnlearnError, match="option 'path' is required"):
        data.load("text")
    with pytest.raises(FnlearnError, match="not found"):
        data.load("text", path=str(tmp_path / "missing.txt"))
    with pytest.raises(FnlearnError, match="is a directory"):
        data.load("text", path=str(tmp_path))


def _answers(ds, start):
    """The answer digits: the targets from the position of '=' (``start``) on."""
    return ds.y[:, start:]


def test_sort_targets_are_the_sorted_prompt():
    ds = data.load("sort", n=50, length=4, seed=1)
    assert ds.x.shape == (50, 8) and ds.vocab == TASK_VOCAB
    prompts = ds.x[:, :4].astype(int)
    assert (ds.x[:, 4] == TASK_VOCAB.index("=")).all()
    np.testing.assert_array_equal(_answers(ds, 4), np.sort(prompts, axis=1))
    assert (ds.y[:, :4] == TASK_VOCAB.index("_")).all()  # the prompt's positions: nothing to predict
    np.testing.assert_array_equal(ds.x[:, 5:], ds.y[:, 4:7])  # the answer is fed back in, shifted by one
    np.testing.assert_array_equal(ds.x, data.load("sort", n=50, length=4, seed=1).x)
    assert not np.array_equal(ds.x, data.load("sort", n=50, length=4, seed=2).x)


def test_copy_targets_repeat_the_prompt():
    ds = data.load("copy", n=20, length=3, seed=0)
    np.testing.assert_array_equal(_answers(ds, 3), ds.x[:, :3])


def test_addition_targets_are_the_reversed_sum():
    ds = data.load("addition", n=40, digits=3, seed=0)
    assert ds.x.shape == (40, 11)
    for x, y in zip(ds.x, ds.y):
        prompt = decode(x[:8], ds.vocab)
        a, b = prompt[:3][::-1], prompt[4:7][::-1]
        assert prompt[3] == "+" and prompt[7] == "="
        assert int(decode(y[7:], ds.vocab)[::-1]) == int(a) + int(b)


@pytest.mark.parametrize(
    ("name", "options", "needle"),
    [
        ("sort", {"n": 0}, "n"),
        ("sort", {"length": 1}, "length"),
        ("addition", {"digits": 19}, "at most 18"),
        ("copy", {"seed": -1}, "seed"),
    ],
)
def test_task_mistakes_are_one_line(name, options, needle):
    with pytest.raises(FnlearnError, match=needle):
        data.load(name, **options)


def test_encode_and_decode_are_inverse_and_unknown_characters_are_one_line():
    vocab = tuple("abc ")
    assert decode(encode("a cab", vocab), vocab) == "a cab"
    with pytest.raises(FnlearnError, match="the text holds 'z', which is not in the vocabulary"):
        encode("az", vocab)
