"""Hostile data: files and arrays that are wrong in ways a loader could miss.

Every case must end in one ``FnlearnError`` whose message is one line naming the culprit (the file,
the array, the argument), must leave the input file as it was and must write nothing next to it.
The size rule (``fnlearn.checks.check_bytes``) refuses datasets and models before allocating them.
"""

import contextlib
import gzip
import io
import os
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hostile import assert_fnlearn_error as assert_one_line

import fnlearn as fl
from fnlearn import checks, cli
from fnlearn.data import files, from_arrays, idx, synthetic
from fnlearn.errors import FnlearnError

# --------------------------------------------------------------------------------------------
# helpers


def snapshot(folder: Path) -> dict[str, bytes]:
    """name -> content of every file under ``folder`` (made readable first: chmod 000 cases)."""
    out = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            path.chmod(0o644)
            out[str(path.relative_to(folder))] = path.read_bytes()
    return out


@contextlib.contextmanager
def untouched(folder: Path):
    """The files in ``folder`` are the same before and after, and nothing is added."""
    before = snapshot(folder)
    yield
    assert snapshot(folder) == before


CSV_GOOD = "a,b,y\n0.1,0.2,0\n0.3,0.4,1\n0.5,0.6,0\n0.7,0.8,1\n"


def npz_bytes(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def good_npz() -> bytes:
    return npz_bytes(x=np.arange(8.0).reshape(4, 2), y=np.array([0, 1, 0, 1]))


def npz_with_lying_header() -> bytes:
    """An archive whose x.npy header promises 10¹² float64 values but stores 16 bytes."""
    member = io.BytesIO()
    np.lib.format.write_array_header_1_0(member, {"descr": "<f8", "fortran_order": False, "shape": (10**12,)})
    member.write(b"\0" * 16)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("x.npy", member.getvalue())
        archive.writestr("y.npy", npz_member(np.zeros(2)))
    return buffer.getvalue()


def npz_member(array) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array)
    return buffer.getvalue()


def corrupt_compressed_npz() -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, x=np.random.default_rng(0).standard_normal((64, 8)), y=np.zeros(64))
    raw = bytearray(buffer.getvalue())
    for i in range(60, 400, 7):  # inside x.npy's deflate stream
        raw[i] ^= 0xFF
    return bytes(raw)


def idx_bytes(array, type_code=0x08, dtype=">u1", shape=None) -> bytes:
    shape = array.shape if shape is None else shape
    header = struct.pack(">HBB", 0, type_code, len(shape)) + struct.pack(f">{len(shape)}I", *shape)
    return header + array.astype(dtype).tobytes()


def make_unreadable(path: Path, monkeypatch) -> None:
    """chmod 000; as root (who reads anything) the OS's refusal is simulated for this one path."""
    path.chmod(0)
    if os.geteuid() == 0:
        real_open = Path.open

        def guarded(self, *args, **kwargs):
            if Path(self) == path:
                raise PermissionError(13, "Permission denied", str(self))
            return real_open(self, *args, **kwargs)

        monkeypatch.setattr(Path, "open", guarded)


# --------------------------------------------------------------------------------------------
# files: (id, write the bad input into folder -> (load it, culprits))


def csv_case(text: str | bytes, **options):
    def setup(folder: Path):
        file = folder / "table.csv"
        file.write_bytes(text if isinstance(text, bytes) else text.encode())
        options.setdefault("target", "y")
        options.setdefault("task", "classification")
        return (lambda: files.csv(path=str(file), **options)), [
            str(file)
        ] if "features" not in options else []

    return setup


def csv_option_case(culprit: str, **options):
    def setup(folder: Path):
        file = folder / "table.csv"
        file.write_text(CSV_GOOD)
        return (lambda: files.csv(path=str(file), **options)), [culprit]

    return setup


def npz_case(payload: bytes, name="arrays.npz", extra=(), **options):
    def setup(folder: Path):
        file = folder / name
        file.write_bytes(payload)
        return (lambda: files.npz(path=str(file), **options)), [str(file), *extra]

    return setup


def idx_case(payload: bytes, name="images-idx3-ubyte"):
    def setup(folder: Path):
        file = folder / name
        file.write_bytes(payload)
        return (lambda: idx.read_idx(file)), [name]

    return setup


FILE_CASES = [
    # CSV: names
    ("csv-repeated-feature", csv_case("a,b,a,y\n1,2,3,0\n4,5,6,1\n"), "'a' appears twice"),
    ("csv-repeated-target", csv_case("a,y,y\n1,0,1\n2,1,0\n"), "'y' appears twice"),
    ("csv-empty-column-name", csv_case("a,,y\n1,2,0\n3,4,1\n"), "no name"),
    ("csv-trailing-delimiter", csv_case("a,b,y,\n1,2,0,\n3,4,1,\n"), "column 4"),
    (
        "csv-target-twice-in-list",
        csv_option_case("target", target=["y", "y"], task="regression"),
        "appears twice",
    ),
    (
        "csv-features-repeat",
        csv_option_case("features", target="y", task="classification", features=["a", "a"]),
        "appears twice",
    ),
    (
        "csv-target-is-a-feature",
        csv_option_case("'y'", target="y", task="classification", features=["a", "y"]),
        "both a target and a feature",
    ),
    (
        "csv-target-wrong-type",
        csv_option_case("target", target=3, task="classification"),
        "name of the target column",
    ),
    (
        "csv-delimiter-two-chars",
        csv_option_case("delimiter", target="y", task="classification", delimiter=";;"),
        "one character",
    ),
    # CSV: bytes
    (
        "csv-latin1",
        csv_case("a,b,y\n1,2,0\n3,caf\xe9,1\n".encode("latin-1")),
        "not UTF-8 text: byte 0xe9 on line 3",
    ),
    ("csv-utf16", csv_case(CSV_GOOD.encode("utf-16")), "not UTF-8"),
    ("csv-is-a-zip", csv_case(npz_bytes(x=np.zeros(3), y=np.zeros(3))), "not UTF-8"),
    ("csv-empty-file", csv_case(b""), "is empty"),
    ("csv-only-blank-lines", csv_case(b"\n\n\n"), "is empty"),
    ("csv-huge-field", csv_case("a,b,y\n" + "1," * 2 + '"' + "x" * 200_000 + '"\n'), "not a readable CSV"),
    # npz
    ("npz-is-npy", npz_case(npz_member(np.zeros((3, 2))), name="arrays.npy"), ".npy file"),
    ("npz-truncated", npz_case(good_npz()[:200]), "truncated"),
    ("npz-empty", npz_case(b""), "empty"),
    ("npz-text", npz_case(CSV_GOOD.encode()), "not a complete .npz"),
    (
        "npz-complex-x",
        npz_case(npz_bytes(x=np.ones((3, 2)) * (1 + 2j), y=np.zeros(3)), extra=["'x'"]),
        "complex",
    ),
    (
        "npz-complex-y",
        npz_case(npz_bytes(x=np.ones((3, 2)), y=np.ones(3, np.complex64)), extra=["'y'"]),
        "complex",
    ),
    (
        "npz-objects",
        npz_case(npz_bytes(x=np.array([{"a": 1}], dtype=object), y=np.zeros(1))),
        "without pickle",
    ),
    (
        "npz-missing-key",
        npz_case(npz_bytes(features=np.zeros((3, 2)), y=np.zeros(3)), extra=["'x'"]),
        "Arrays: features, y",
    ),
    (
        "npz-key-typo",
        npz_case(npz_bytes(xx=np.zeros((3, 2)), y=np.zeros(3)), extra=["'x'"]),
        "Did you mean 'xx'",
    ),
    ("npz-same-key", npz_case(good_npz(), x_key="x", y_key="x"), "both 'x'"),
    ("npz-header-lies", npz_case(npz_with_lying_header(), extra=["'x'"]), "corrupt"),
    ("npz-corrupt-deflate", npz_case(corrupt_compressed_npz()), "corrupt"),
    # IDX
    ("idx-truncated", idx_case(idx_bytes(np.zeros((4, 5, 5)))[:-7]), "truncated"),
    ("idx-wrong-magic", idx_case(b"\x12\x34" + idx_bytes(np.zeros((2, 2)))[2:]), "wrong magic"),
    (
        "idx-absurd-dimensions",
        idx_case(idx_bytes(np.zeros(8), shape=(2**31 - 1, 2**31 - 1, 2**31 - 1))),
        "truncated",
    ),
    ("npz-image-layout-without-image-shape", npz_case(good_npz(), layout="image"), "image_shape=(H, W)"),
    ("idx-empty", idx_case(b""), "too short"),
    ("idx-header-cut", idx_case(idx_bytes(np.zeros((2, 2, 2)))[:9]), "header needs"),
    (
        "idx-gz-truncated",
        idx_case(gzip.compress(idx_bytes(np.zeros((4, 4))))[:-9], name="labels-idx1-ubyte.gz"),
        "not a complete gzip",
    ),
]


@pytest.mark.parametrize("setup, needle", [c[1:] for c in FILE_CASES], ids=[c[0] for c in FILE_CASES])
def test_bad_file_is_one_line_naming_it_and_changes_nothing(setup, needle, tmp_path):
    load, culprits = setup(tmp_path)
    with untouched(tmp_path), pytest.raises(FnlearnError) as error:
        load()
    assert_one_line(error, needle, *culprits)


def test_there_are_many_hostile_file_cases():
    assert len(FILE_CASES) >= 30


LOADERS = {
    "csv": lambda path: files.csv(path=path, target="y", task="classification"),
    "npz": lambda path: files.npz(path=path),
    "idx": lambda path: idx.read_idx(path),
}


@pytest.mark.parametrize("loader", sorted(LOADERS))
def test_a_directory_where_a_file_is_expected(loader, tmp_path):
    folder = tmp_path / "data.bin"
    folder.mkdir()
    with untouched(tmp_path), pytest.raises(FnlearnError) as error:
        LOADERS[loader](str(folder))
    message = assert_one_line(error, str(folder))
    assert "directory" in message.lower()


@pytest.mark.parametrize("loader", sorted(LOADERS))
def test_an_unreadable_file(loader, tmp_path, monkeypatch):
    file = tmp_path / "data.bin"
    file.write_bytes(
        {"csv": CSV_GOOD.encode(), "npz": good_npz(), "idx": idx_bytes(np.zeros((2, 2)))}[loader]
    )
    before = snapshot(tmp_path)
    make_unreadable(file, monkeypatch)
    with pytest.raises(FnlearnError) as error:
        LOADERS[loader](str(file))
    assert_one_line(error, str(file), "ermission denied")
    monkeypatch.undo()
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("loader", ["csv", "npz"])
def test_a_missing_file(loader, tmp_path):
    with untouched(tmp_path), pytest.raises(FnlearnError) as error:
        LOADERS[loader](str(tmp_path / "nope.dat"))
    assert_one_line(error, "nope.dat", "not found")


@pytest.mark.parametrize("path", [123, b"bytes.csv", ["a.csv"]], ids=["int", "bytes", "list"])
def test_a_path_that_is_not_a_file_name(path):
    with pytest.raises(FnlearnError) as error:
        files.csv(path=path, target="y", task="classification")
    assert_one_line(error, "path")


def test_mnist_directory_holding_a_directory_named_like_a_file(tmp_path):
    (tmp_path / "train-images-idx3-ubyte.gz").mkdir()
    with untouched(tmp_path), pytest.raises(FnlearnError) as error:
        idx.mnist(path=str(tmp_path), verify=False)
    assert_one_line(error, "train-images-idx3-ubyte.gz")


# --------------------------------------------------------------------------------------------
# the loaders still read good files (the checks reject only what is wrong)


def test_good_files_still_load_exactly(tmp_path):
    (tmp_path / "t.csv").write_bytes(b"\xef\xbb\xbf" + CSV_GOOD.encode())  # a UTF-8 byte-order mark is fine
    table = files.csv(path=str(tmp_path / "t.csv"), target="y", task="classification")
    assert table.feature_names == ("a", "b")
    np.testing.assert_array_equal(table.y, [0, 1, 0, 1])
    (tmp_path / "a.npz").write_bytes(good_npz())
    arrays = files.npz(path=str(tmp_path / "a.npz"))
    np.testing.assert_array_equal(arrays.x, np.arange(8.0).reshape(4, 2))
    np.testing.assert_array_equal(arrays.y, [0, 1, 0, 1])
    buffer = io.BytesIO()
    np.savez_compressed(buffer, x=np.ones((3, 2), np.float32), y=np.array([0.5, 1.5, 2.5]))
    (tmp_path / "c.npz").write_bytes(buffer.getvalue())
    assert files.npz(path=str(tmp_path / "c.npz")).task == "regression"


def test_repeated_header_once_lost_a_column_silently(tmp_path):
    """The review's case: 'a' twice used to keep only the second 'a' as both features."""
    (tmp_path / "t.csv").write_text("a,b,a,y\n1,2,3,0\n4,5,6,1\n")
    with pytest.raises(FnlearnError, match="entries 1 and 3"):
        files.csv(path=str(tmp_path / "t.csv"), target="y", task="classification")
    (tmp_path / "t.csv").write_text("a,b,a2,y\n1,2,3,0\n4,5,6,1\n")
    table = files.csv(path=str(tmp_path / "t.csv"), target="y", task="classification")
    np.testing.assert_array_equal(table.x, [[1, 2, 3], [4, 5, 6]])


# --------------------------------------------------------------------------------------------
# arrays in memory: datasets, fit and evaluate

X = np.zeros((4, 2), np.float32)


def _ragged():
    return np.array([[1.0, 2.0], [3.0]], dtype=object).tolist()


ARRAY_CASES = [
    (
        "complex-x",
        lambda: from_arrays(X.astype(np.complex64), np.zeros(4), task="regression"),
        ["x", "complex"],
    ),
    ("complex-y", lambda: from_arrays(X, np.ones(4) * 1j, task="regression"), ["y", "complex"]),
    (
        "complex-labels",
        lambda: from_arrays(X, np.array([0, 1, 0, 1]) + 0j, task="classification"),
        ["y", "complex"],
    ),
    ("check-dataset-complex", lambda: fl.data.check_dataset(X + 1j, np.zeros((4, 1))), ["x", "complex"]),
    ("ragged-x", lambda: from_arrays(_ragged(), [0, 1], task="classification"), ["x", "rectangular"]),
    (
        "text-x",
        lambda: from_arrays(np.array([["a", "b"]] * 4), np.zeros(4), task="regression"),
        ["x", "numbers"],
    ),
    (
        "repeated-feature-names",
        lambda: from_arrays(X, np.zeros(4), task="regression", feature_names=["u", "u"]),
        ["feature_names", "'u'"],
    ),
    (
        "num-classes-float",
        lambda: from_arrays(X, [0, 1, 0, 1], task="classification", num_classes=2.5),
        ["num_classes", "2.5"],
    ),
    (
        "num-classes-bool",
        lambda: from_arrays(X, [0, 1, 0, 1], task="classification", num_classes=True),
        ["num_classes", "True"],
    ),
    (
        "fractional-class-id",
        lambda: from_arrays(X, [0, 1, 2.5, 1], task="classification"),
        ["class ids must be integers 0..K-1, got 2.5 at index 2"],
    ),
    (
        "image-shape-float",
        lambda: from_arrays(X, np.zeros(4), task="regression", image_shape=(1, 2.0)),
        ["image_shape"],
    ),
    ("task-not-a-string", lambda: from_arrays(X, np.zeros(4), task=["regression"]), ["task"]),
    (
        "image-shape-other-than-the-examples",
        lambda: from_arrays(np.ones((4, 2, 3)), np.zeros(4), task="regression", image_shape=(3, 2)),
        ["image_shape (3, 2)", "(2, 3)"],
    ),
    (
        "layout-typo",
        lambda: fl.data.load("digits", layout="images"),
        ["layout='images'", "Did you mean 'image'"],
    ),
    (
        "layout-image-without-image-shape",
        lambda: fl.data.to_layout(from_arrays(X, np.zeros(4), task="regression"), "image"),
        ["has no image_shape"],
    ),
]


@pytest.mark.parametrize("make, culprits", [c[1:] for c in ARRAY_CASES], ids=[c[0] for c in ARRAY_CASES])
def test_bad_arrays_are_refused_naming_them(make, culprits):
    with pytest.raises(FnlearnError) as error:
        make()
    assert_one_line(error, *culprits)


# --------------------------------------------------------------------------------------------
# the size rule: refused before allocation, with the estimate in bytes

SIZE_CASES = [
    (
        "label-implies-2e9-classes",
        lambda: from_arrays(np.zeros((1000, 2)), np.r_[np.zeros(999), 2**31 - 2], task="classification"),
        ["the largest label, 2147483646, implies K = 2147483647 classes"],
    ),
    (
        "num-classes-2e12",
        lambda: fl.data.check_dataset(
            np.zeros((10, 2), np.float32), np.zeros(10, np.int32), num_classes=2 * 10**12
        ),
        ["num_classes=2000000000000"],
    ),
    ("regression_1d-n", lambda: synthetic.regression_1d(n=10**13), ["regression_1d", "n=10000000000000"]),
    ("two_moons-n", lambda: fl.data.load("two_moons", n=10**13), ["two_moons", "n="]),
    ("spirals-n", lambda: synthetic.spirals(n=10**13), ["spirals", "n="]),
    ("mlp-sizes", lambda: fl.nn.mlp([784, 10**7, 10**7, 10]), ["mlp", "sizes=[784, 10000000, 10000000, 10]"]),
    ("build-any-layer", lambda: fl.nn.build(fl.nn.dense(10**8), 10**6), ["dense", "parameters"]),
]


@pytest.mark.parametrize("make, culprits", [c[1:] for c in SIZE_CASES], ids=[c[0] for c in SIZE_CASES])
def test_sizes_that_cannot_be_allocated_are_refused_with_the_estimate(make, culprits):
    with pytest.raises(FnlearnError) as error:
        make()
    message = assert_one_line(error, *culprits, "bytes", "more than the limit")
    estimate = int(message.split("would take about ")[1].split(" bytes")[0])
    assert estimate > checks.memory_limit()


def test_the_estimates_are_the_documented_formulas(monkeypatch):
    """Lower the limit to just below each estimate and read the estimate back from the message."""
    cases = [
        (lambda: synthetic.regression_1d(n=1000), 12 * 1000 * 2),  # n·(features + targets)·12
        (lambda: from_arrays(np.zeros((5, 2)), [0, 1, 2, 3, 9], task="classification"), 4 * 5 * 10),  # n·K·4
        (lambda: fl.nn.mlp([3, 4, 2]), 4 * (3 * 4 + 4 + 4 * 2 + 2)),  # float32 parameters
    ]
    for make, expected in cases:
        monkeypatch.setenv(checks.MAX_BYTES_ENV, str(expected - 1))
        with pytest.raises(FnlearnError, match=f"about {expected} bytes"):
            make()
        monkeypatch.setenv(checks.MAX_BYTES_ENV, str(expected))
        make()  # at the limit: allowed


def test_a_bad_limit_variable_is_itself_one_clear_error(monkeypatch):
    monkeypatch.setenv(checks.MAX_BYTES_ENV, "lots")
    with pytest.raises(FnlearnError) as error:
        synthetic.regression_1d(n=10)
    assert_one_line(error, checks.MAX_BYTES_ENV, "'lots'")


def test_npz_arrays_larger_than_the_limit_are_refused_before_reading(tmp_path, monkeypatch):
    (tmp_path / "a.npz").write_bytes(good_npz())
    monkeypatch.setenv(checks.MAX_BYTES_ENV, "40")  # x is 4·2 float64 = 64 bytes
    with untouched(tmp_path), pytest.raises(FnlearnError) as error:
        files.npz(path=str(tmp_path / "a.npz"))
    assert_one_line(error, "'x'", "64 bytes", str(tmp_path / "a.npz"))


# --------------------------------------------------------------------------------------------
# the command line: the same errors, one line, exit status 2, no run directory

CONFIG = """\
name = "hostile"
[data]
name = "{name}"
options = {options}
val = 0.0
test = 0.25
[model]
sizes = {sizes}
[training]
epochs = 1
batch_size = 2
"""


@pytest.mark.parametrize(
    "name, options, sizes, needle",
    [
        ("csv", '{{path = "{csv}", target = "y", task = "classification"}}', "[4]", "'a' appears twice"),
        ("npz", '{{path = "{npz}"}}', "[4]", "complex"),
        ("regression_1d", "{{n = 10000000000000}}", "[4]", "bytes"),
        ("regression_1d", "{{n = 100}}", "[1000000, 1000000]", "bytes"),
        ("digits", '{{layout = "imgae"}}', "[4]", "data.options: digits: layout='imgae'"),
    ],
    ids=["csv-repeated-column", "npz-complex", "synthetic-too-large", "model-too-large", "layout-typo"],
)
def test_the_cli_reports_the_same_errors(name, options, sizes, needle, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    Path("t.csv").write_text("a,b,a,y\n1,2,3,0\n4,5,6,1\n1,1,1,0\n2,2,2,1\n")
    Path("c.npz").write_bytes(npz_bytes(x=np.ones((4, 2)) * 1j, y=np.zeros(4)))
    text = CONFIG.format(name=name, options=options.format(csv="t.csv", npz="c.npz"), sizes=sizes)
    Path("c.toml").write_text(text)
    before = snapshot(tmp_path)
    code = cli.main(["train", "c.toml", "--quiet"])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fnlearn: error: ") and needle in lines[0], err
    assert snapshot(tmp_path) == before  # no run directory
