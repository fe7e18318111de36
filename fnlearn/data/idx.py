"""MNIST and Fashion-MNIST from their standard IDX files, read locally and verified.

Nothing is downloaded. The four files of a set (``train-images-idx3-ubyte``,
``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each gzipped
(``.gz``, as published) or not) sit in one directory: the ``path`` option, else
``$FNLEARN_DATA_DIR/<name>`` or ``$FNLEARN_DATA_DIR`` itself.

IDX format (http://yann.lecun.com/exdb/mnist/): a big-endian header, the magic number
``0x0000 TT DD`` (TT the element type, 0x08 = unsigned byte; DD the number of dimensions), then DD
big-endian int32 sizes, then prod(sizes) elements in row-major order.

Verification (``verify=True``, the default): a gzipped file must have its published MD5 checksum.
No checksum is published for the uncompressed files, so a plain file is held to the published
shape instead (60000 or 10000 images of 28x28). A file that was re-compressed by a mirror has a
different MD5 although its content is right: pass ``verify=False`` to skip both checks; the
structural checks (magic number, sizes, truncation, one label per image, labels in 0..9) always run.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import zlib
from pathlib import Path

import numpy as np

from fnlearn import checks
from fnlearn.data.dataset import Dataset, from_arrays
from fnlearn.data.layout import check_layout, to_layout
from fnlearn.errors import FnlearnError

__all__ = [
    "read_idx",
    "mnist",
    "fashion_mnist",
    "load_idx_set",
    "MNIST_MD5",
    "FASHION_MNIST_MD5",
    "DATA_DIR_ENV",
]

DATA_DIR_ENV = "FNLEARN_DATA_DIR"

# MD5 of the gzipped files as published: torchvision's MNIST resources (the MNIST page itself lists
# sizes, not checksums) and the table in zalandoresearch/fashion-mnist's README.
MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
FASHION_MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}
_SOURCES = {
    "mnist": "http://yann.lecun.com/exdb/mnist/ (mirror: https://ossci-datasets.s3.amazonaws.com/mnist/)",
    "fashion_mnist": "https://github.com/zalandoresearch/fashion-mnist (data/fashion/)",
}
_PUBLISHED_COUNT = {"train": 60000, "t10k": 10000}
_SUBSETS = ("train", "test", "all")
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path) -> np.ndarray:
    """The array stored in an IDX file (gzipped when the name ends in ``.gz``), native byte order."""
    _check_path(path, "read_idx")
    data = _read_bytes(Path(path))
    return _parse_idx(data, Path(path).name)


def mnist(
    *, path: str | None = None, subset: str = "train", verify: bool = True, layout: str = "flat"
) -> Dataset:
    """MNIST handwritten digits: pixels scaled to [0, 1], 10 classes.

    ``subset``: "train" (60000), "test" (the official 10000) or "all" (train then test).
    ``layout="flat"``: x [n, 784], image_shape (28, 28); ``"image"``: x [n, 28, 28, 1] (for a CNN).
    """
    _check_verify(verify, "mnist")
    return load_idx_set(
        "mnist", path=path, subset=subset, checksums=MNIST_MD5 if verify else None, layout=layout
    )


def fashion_mnist(
    *, path: str | None = None, subset: str = "train", verify: bool = True, layout: str = "flat"
) -> Dataset:
    """Fashion-MNIST (Zalando articles): like ``mnist`` with 10 clothing classes."""
    _check_verify(verify, "fashion_mnist")
    checksums = FASHION_MNIST_MD5 if verify else None
    return load_idx_set("fashion_mnist", path=path, subset=subset, checksums=checksums, layout=layout)


def load_idx_set(
    name: str,
    *,
    path=None,
    subset: str = "train",
    checksums: dict[str, str] | None = None,
    layout: str = "flat",
) -> Dataset:
    """Load an MNIST-style set of IDX files; ``checksums`` maps a ``.gz`` file name to its MD5.

    With ``checksums`` given, gzipped files must match them and plain files must hold the published
    counts; with ``None``, only the structure is checked. ``layout`` as in ``fnlearn.data.layout``.
    """
    if not isinstance(subset, str) or subset not in _SUBSETS:
        raise FnlearnError(f"{name}: subset={subset!r}, expected one of {', '.join(_SUBSETS)}.")
    check_layout(name, layout)
    if path is not None:
        _check_path(path, name)
    directories = _data_directory(name, path)
    parts = ["train", "t10k"] if subset == "all" else ["train" if subset == "train" else "t10k"]
    xs, ys, image_size = [], [], None
    for part in parts:
        images = _read_verified(name, directories, f"{part}-images-idx3-ubyte", checksums, part)
        labels = _read_verified(name, directories, f"{part}-labels-idx1-ubyte", checksums, part)
        _check_pair(name, part, images, labels)
        if image_size is not None and images.shape[1:] != image_size:
            raise FnlearnError(
                f"{name}: train images are {image_size[0]}x{image_size[1]} but t10k images are "
                f"{images.shape[1]}x{images.shape[2]}; the two parts come from different datasets."
            )
        image_size = images.shape[1:]
        xs.append(images.reshape(images.shape[0], -1))
        ys.append(labels)
    x = np.concatenate(xs).astype(np.float32)
    x /= np.float32(255.0)  # in place: MNIST's x is 220 MB as float32
    dataset = from_arrays(
        x, np.concatenate(ys), task="classification", num_classes=10, name=name, image_shape=image_size
    )
    return to_layout(dataset, layout)


def _source(name: str) -> str:
    return _SOURCES.get(name, "the dataset's publisher")


def _check_path(path, name: str) -> None:
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise FnlearnError(f"{name}: path must be a file or directory name, got {checks.show(path)}.")


def _check_verify(verify, name: str) -> None:
    if not isinstance(verify, bool):
        raise FnlearnError(f"{name}: verify={verify!r}, expected true or false (false skips the MD5 check).")


def _data_directory(name: str, path) -> list[Path]:
    if path is None:
        root = os.environ.get(DATA_DIR_ENV)
        if not root:
            raise FnlearnError(
                f"{name}: no data directory given. Pass the dataset option path='DIR' or set the "
                f"environment variable {DATA_DIR_ENV}; the directory must hold the four IDX files from "
                f"{_source(name)}."
            )
        return [Path(root) / name, Path(root)]
    return [Path(path), Path(path) / name]


def _find(name: str, directories: list[Path], stem: str) -> Path:
    for directory in directories:
        for candidate in (directory / f"{stem}.gz", directory / stem):
            if candidate.exists():  # a directory of that name is reported when it is read
                return candidate
    looked = ", ".join(str(d) for d in directories)
    raise FnlearnError(
        f"{name}: file {stem}.gz (or unzipped {stem}) not found in {looked}. "
        f"Download it from {_source(name)} into that directory; fnlearn never downloads at run time."
    )


def _read_verified(name: str, directories: list[Path], stem: str, checksums, part: str) -> np.ndarray:
    file = _find(name, directories, stem)
    data = _read_bytes(file, md5=checksums.get(file.name) if checksums and file.suffix == ".gz" else None)
    array = _parse_idx(data, str(file))
    if checksums is not None and file.suffix != ".gz" and array.shape[0] != _PUBLISHED_COUNT[part]:
        raise FnlearnError(
            f"{file}: holds {array.shape[0]} entries, the published file holds {_PUBLISHED_COUNT[part]}. "
            f"Replace it with the original from {_source(name)}, or pass verify=False to load it anyway."
        )
    return array


def _read_bytes(file: Path, md5: str | None = None) -> bytes:
    try:
        raw = file.read_bytes()
    except OSError as error:
        raise FnlearnError(
            f"cannot read {file}: {error.strerror}. Check the path and its permissions."
        ) from error
    if md5 is not None:
        actual = hashlib.md5(raw, usedforsecurity=False).hexdigest()
        if actual != md5:
            raise FnlearnError(
                f"{file}: MD5 checksum mismatch, expected {md5} (the published file), got {actual}. "
                f"The file is corrupt or different: download it again. If it was only re-compressed "
                f"(same content, different gzip), pass verify=False to skip the check."
            )
    if file.suffix != ".gz":
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as error:
        raise FnlearnError(
            f"{file}: not a complete gzip file ({error}); it is truncated or corrupt. Download it again, "
            f"or unzip a good copy and drop the .gz suffix."
        ) from error


def _parse_idx(data: bytes, label: str) -> np.ndarray:
    if len(data) < 4:
        raise FnlearnError(
            f"{label}: only {len(data)} bytes, too short for an IDX header; the file is truncated."
        )
    zero, type_code, ndim = int.from_bytes(data[:2], "big"), data[2], data[3]
    if zero != 0 or type_code not in _IDX_DTYPES or ndim == 0:
        raise FnlearnError(
            f"{label}: wrong magic number 0x{data[:4].hex()}; an IDX file starts with 0x0000 then a type "
            f"code (08 = unsigned byte) and the number of dimensions. Is this an IDX file?"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise FnlearnError(
            f"{label}: the header needs {header} bytes, the file has {len(data)}; it is truncated."
        )
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[type_code])
    expected = header + math.prod(shape) * dtype.itemsize  # Python ints: absurd sizes cannot overflow
    if len(data) != expected:
        state = "truncated" if len(data) < expected else "longer than its header says"
        raise FnlearnError(
            f"{label}: header says shape {shape} ({expected} bytes in all), the file has {len(data)} bytes; "
            f"it is {state}. Download it again."
        )
    return (
        np.frombuffer(data, dtype=dtype, offset=header)
        .reshape(shape)
        .astype(dtype.newbyteorder("="), copy=False)
    )


def _check_pair(name: str, part: str, images: np.ndarray, labels: np.ndarray) -> None:
    if images.ndim != 3:
        raise FnlearnError(
            f"{name}: {part}-images holds a {images.ndim}-d array {images.shape}, expected images [n, rows, cols]. "
            f"Are the image and label files swapped?"
        )
    if labels.ndim != 1:
        raise FnlearnError(
            f"{name}: {part}-labels holds a {labels.ndim}-d array {labels.shape}, expected labels [n]. "
            f"Are the image and label files swapped?"
        )
    if images.shape[0] != labels.shape[0]:
        raise FnlearnError(
            f"{name}: {part}-images holds {images.shape[0]} images but {part}-labels holds {labels.shape[0]} labels; "
            f"the files do not belong together. Download both again from {_source(name)}."
        )
    out = (labels > 9) | (labels < 0)
    if out.any():
        first = int(np.argmax(out))
        raise FnlearnError(
            f"{name}: {part}-labels holds {int(out.sum())} label(s) outside 0..9, the first is "
            f"labels[{first}] = {int(labels[first])}. The file is corrupt: download it again."
        )
