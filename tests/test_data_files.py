"""The file loaders, run on real small files written in tmp_path: IDX (gzipped and plain), CSV, npz."""

import gzip
import hashlib
import struct

import numpy as np
import pytest

from fnlearn.data import idx, load
from fnlearn.errors import FnlearnError

STEMS = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def idx_bytes(array: np.ndarray, type_code: int = 0x08, big_endian_dtype: str = ">u1") -> bytes:
    """IDX written straight from the format's description: 0x0000, type, ndim, sizes, data."""
    header = struct.pack(">HBB", 0, type_code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(big_endian_dtype).tobytes()


def write(path, payload: bytes, gz: bool):
    path = path.with_name(path.name + ".gz") if gz else path
    path.write_bytes(gzip.compress(payload) if gz else payload)
    return path


def make_set(directory, n_train=6, n_test=4, gz=True, seed=0, rows=28, cols=28):
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, rows, cols), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, rows, cols), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    directory.mkdir(parents=True, exist_ok=True)
    for stem, array in arrays.items():
        write(directory / stem, idx_bytes(array), gz)
    return arrays


@pytest.mark.parametrize("gz", [True, False])
def test_idx_reader_round_trips_every_element_type(tmp_path, gz):
    rng = np.random.default_rng(1)
    cases = [
        (0x08, ">u1", rng.integers(0, 256, (3, 4, 5))),
        (0x0B, ">i2", rng.integers(-300, 300, (7,))),
        (0x0C, ">i4", rng.integers(-(10**6), 10**6, (2, 3))),
        (0x0D, ">f4", rng.standard_normal((4, 2))),
        (0x0E, ">f8", rng.standard_normal((2, 2, 2, 2))),
    ]
    for code, dtype, array in cases:
        file = write(tmp_path / f"a{code}", idx_bytes(array, code, dtype), gz)
        out = idx.read_idx(file)
        assert out.shape == array.shape and out.dtype.isnative
        np.testing.assert_array_equal(out, array.astype(dtype))


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_loader_reads_the_files_exactly(tmp_path, gz):
    arrays = make_set(tmp_path, gz=gz)
    train = load("mnist", path=str(tmp_path), verify=False)
    assert (train.x.shape, train.x.dtype, train.y.dtype) == ((6, 784), np.float32, np.int32)
    assert (train.num_classes, train.image_shape, train.task) == (10, (28, 28), "classification")
    np.testing.assert_array_equal(train.x, arrays["train-images-idx3-ubyte"].reshape(6, -1) / np.float32(255))
    np.testing.assert_array_equal(train.y, arrays["train-labels-idx1-ubyte"])
    both = load("fashion_mnist", path=str(tmp_path), subset="all", verify=False)
    assert len(both) == 10 and both.name == "fashion_mnist"
    np.testing.assert_array_equal(both.y[6:], arrays["t10k-labels-idx1-ubyte"])


def test_data_directory_from_environment_variable(tmp_path, monkeypatch):
    make_set(tmp_path / "mnist", n_train=3)
    monkeypatch.setenv(idx.DATA_DIR_ENV, str(tmp_path))
    assert len(load("mnist", verify=False)) == 3
    monkeypatch.delenv(idx.DATA_DIR_ENV)
    with pytest.raises(FnlearnError, match="FNLEARN_DATA_DIR"):
        load("mnist")


def test_missing_file_names_it_and_where_to_get_it(tmp_path):
    make_set(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FnlearnError) as info:
        load("mnist", path=str(tmp_path), verify=False)
    assert "train-labels-idx1-ubyte.gz" in str(info.value) and "yann.lecun.com" in str(info.value)
    with pytest.raises(FnlearnError, match="zalandoresearch"):
        load("fashion_mnist", path=str(tmp_path / "nowhere"))


def test_checksum_mismatch_is_reported_and_can_be_skipped(tmp_path):
    make_set(tmp_path)
    with pytest.raises(FnlearnError) as info:
        load("mnist", path=str(tmp_path))
    message = str(info.value)
    assert "MD5 checksum mismatch" in message and idx.MNIST_MD5["train-images-idx3-ubyte.gz"] in message
    assert "verify=False" in message
    assert len(load("mnist", path=str(tmp_path), verify=False)) == 6
    with pytest.raises(FnlearnError, match="expected true or false"):
        load("mnist", path=str(tmp_path), verify="no")


def test_matching_checksums_pass(tmp_path):
    make_set(tmp_path)
    sums = {f"{s}.gz": hashlib.md5((tmp_path / f"{s}.gz").read_bytes()).hexdigest() for s in STEMS}
    assert len(idx.load_idx_set("mnist", path=tmp_path, subset="all", checksums=sums)) == 10
    sums["t10k-images-idx3-ubyte.gz"] = "0" * 32
    with pytest.raises(FnlearnError, match="t10k-images-idx3-ubyte.gz: MD5 checksum mismatch"):
        idx.load_idx_set("mnist", path=tmp_path, subset="test", checksums=sums)


def test_plain_files_are_held_to_the_published_counts_when_verifying(tmp_path):
    make_set(tmp_path, gz=False)
    with pytest.raises(FnlearnError, match="holds 6 entries, the published file holds 60000"):
        load("mnist", path=str(tmp_path))


@pytest.mark.parametrize("gz", [True, False])
def test_truncated_files(tmp_path, gz):
    arrays = make_set(tmp_path, gz=gz)
    payload = idx_bytes(arrays["train-images-idx3-ubyte"])
    name = tmp_path / "train-images-idx3-ubyte"
    if gz:  # a download cut short: the gzip stream itself ends early
        (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(payload)[:-50])
        needle = "truncated or corrupt"
    else:
        name.write_bytes(payload[:-100])
        needle = "it is truncated"
    with pytest.raises(FnlearnError, match=needle):
        load("mnist", path=str(tmp_path), verify=False)


def test_truncated_header_and_wrong_magic(tmp_path):
    make_set(tmp_path, gz=False)
    file = tmp_path / "train-images-idx3-ubyte"
    file.write_bytes(idx_bytes(np.zeros((2, 28, 28), np.uint8))[:9])
    with pytest.raises(FnlearnError, match="header needs 16 bytes"):
        load("mnist", path=str(tmp_path), verify=False)
    file.write_bytes(b"PK\x03\x04" + b"\0" * 100)
    with pytest.raises(FnlearnError, match="wrong magic number 0x504b0304"):
        load("mnist", path=str(tmp_path), verify=False)


def test_train_and_test_parts_must_have_one_image_size(tmp_path):
    make_set(tmp_path)
    write(tmp_path / "t10k-images-idx3-ubyte", idx_bytes(np.zeros((4, 8, 8), np.uint8)), gz=True)
    with pytest.raises(FnlearnError, match="train images are 28x28 but t10k images are 8x8"):
        load("mnist", path=str(tmp_path), subset="all", verify=False)
    assert load("mnist", path=str(tmp_path), subset="test", verify=False).image_shape == (8, 8)


def test_mislabelled_files(tmp_path):
    arrays = make_set(tmp_path, gz=False)
    labels = tmp_path / "train-labels-idx1-ubyte"
    labels.write_bytes(idx_bytes(arrays["train-labels-idx1-ubyte"][:5]))
    with pytest.raises(FnlearnError, match="holds 6 images but train-labels holds 5 labels"):
        load("mnist", path=str(tmp_path), verify=False)
    labels.write_bytes(idx_bytes(np.array([0, 1, 12, 3, 4, 5], np.uint8)))
    with pytest.raises(FnlearnError, match="1 label\\(s\\) outside 0..9, the first is labels\\[2\\] = 12"):
        load("mnist", path=str(tmp_path), verify=False)
    labels.write_bytes(idx_bytes(arrays["train-images-idx3-ubyte"]))  # images saved under the labels' name
    with pytest.raises(FnlearnError, match="swapped"):
        load("mnist", path=str(tmp_path), verify=False)


def test_csv_classification_with_text_labels_and_selected_features(tmp_path):
    file = tmp_path / "flowers.csv"
    file.write_text("a,b,c,kind\n1.5,2,9,rose\n3,4,9,daisy\n5,6.25,9,rose\n")
    ds = load("csv", path=str(file), target="kind", task="classification", features=["b", "a"])
    np.testing.assert_array_equal(ds.x, [[2, 1.5], [4, 3], [6.25, 5]])
    np.testing.assert_array_equal(ds.y, [1, 0, 1])  # sorted class names: daisy=0, rose=1
    assert (ds.num_classes, ds.feature_names, ds.name) == (2, ("b", "a"), "flowers")


def test_csv_regression_with_two_targets_and_integer_classes(tmp_path):
    file = tmp_path / "t.csv"
    file.write_text("x1;x2;y1;y2\n1;2;3;4\n5;6;7;8\n")
    ds = load("csv", path=str(file), target=["y1", "y2"], task="regression", delimiter=";")
    np.testing.assert_array_equal(ds.y, [[3, 4], [7, 8]])
    np.testing.assert_array_equal(ds.x, [[1, 2], [5, 6]])
    ints = load("csv", path=str(file), target="y2", task="classification", features=["x1"], delimiter=";")
    np.testing.assert_array_equal(ints.y, [4, 8])
    assert ints.num_classes == 9
    with pytest.raises(FnlearnError, match="delimiter"):
        load("csv", path=str(file), target="y2", task="regression")


@pytest.mark.parametrize(
    "text, options, needle",
    [
        ("a,y\n1,2\n", {"target": "z", "task": "regression"}, "no column 'z'"),
        ("a,y\n1,2\n", {"target": "y", "task": "regresion"}, "expected one of classification, regression"),
        ("a,y\n1,2\n", {"task": "regression"}, "'target' is required"),
        ("a,y\n1,2\n3\n", {"target": "y", "task": "regression"}, "line 3 of"),
        (
            "a,y\n1,2\n,4\n",
            {"target": "y", "task": "regression"},
            "line 3 of .* column 'a': '' is not a number",
        ),
        ("a,y\n1,2.5\n", {"target": "y", "task": "classification"}, "not a whole"),
        ("a,y\n1,\n", {"target": "y", "task": "classification"}, "missing"),
        ("", {"target": "y", "task": "regression"}, "empty"),
        ("a,y\n", {"target": "y", "task": "regression"}, "empty"),
        ("a,y\nnan,1\n", {"target": "y", "task": "regression"}, "NaN/Inf"),
    ],
)
def test_csv_errors(tmp_path, text, options, needle):
    file = tmp_path / "bad.csv"
    file.write_text(text)
    with pytest.raises(FnlearnError, match=needle):
        load("csv", path=str(file), **options)


def test_csv_missing_file(tmp_path):
    with pytest.raises(FnlearnError, match="not found"):
        load("csv", path=str(tmp_path / "none.csv"), target="y", task="regression")


def test_npz_round_trip_and_task_from_dtype(tmp_path):
    file = tmp_path / "arr.npz"
    x = np.random.default_rng(0).standard_normal((5, 4))
    np.savez(file, x=x, y=np.array([0, 1, 2, 1, 0]))
    ds = load("npz", path=str(file), image_shape=[2, 2])
    assert (ds.task, ds.num_classes, ds.image_shape) == ("classification", 3, (2, 2))
    np.testing.assert_array_equal(ds.x, x.astype(np.float32))
    np.savez(file, inputs=x, targets=np.ones(5))
    reg = load("npz", path=str(file), x_key="inputs", y_key="targets")
    assert reg.task == "regression" and reg.y.shape == (5, 1)
    with pytest.raises(FnlearnError, match="no array 'x'.*Arrays: inputs, targets"):
        load("npz", path=str(file))


def test_npz_refuses_pickled_objects(tmp_path):
    file = tmp_path / "obj.npz"
    np.savez(file, x=np.array([{"a": 1}], dtype=object), y=np.zeros(1))
    with pytest.raises(FnlearnError, match="without pickle"):
        load("npz", path=str(file))
