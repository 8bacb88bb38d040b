"""loopc.nn's public functions on bad input: a LoopcError naming what is wrong, never a
ValueError, TypeError, MemoryError or a hang; weights on disk are written atomically."""
import gzip
import os
import struct

import numpy as np
import pytest

from loopc.errors import ArgumentError, LoopcError
from loopc.apps import demo
from loopc.nn import datasets
from loopc.nn.datasets import DatasetError
from loopc.nn.lenet import LeNet
from loopc.nn.train import History, TrainConfig, TrainingDiverged, atomic_write, fit, make_optimizer, train_epoch

from nn_models import Tiny, random_batch, tiny_data
from test_nn_datasets import write_mnist


def header(ndim, *dims, dtype=0x08):
    return struct.pack(">BBBB", 0, 0, dtype, ndim) + struct.pack(f">{ndim}I", *dims)


# ----------------------------------------------------------------------------- IDX files

@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
def test_idx_header_past_memory_is_checked_against_the_file_size(tmp_path, gz):
    """Dimensions whose product overflows int64 or exceeds memory: a DatasetError before any
    allocation (today a ValueError from reshape, or an overflowed size)."""
    path = tmp_path / "train-images-idx3-ubyte"
    for data in (header(4, 2**16, 2**16, 2**16, 2**16), header(3, 2**32 - 1, 2**32 - 1, 2**32 - 1) + b"x" * 100):
        path.write_bytes(gzip.compress(data) if gz else data)
        with pytest.raises(DatasetError, match=r"idx3-ubyte: the header says shape \((65536|4294967295), "):
            datasets.read_idx(path)


@pytest.mark.parametrize("damage", ["bad block", "cut", "trailing"])
def test_corrupt_gzip_stream_is_a_dataset_error(tmp_path, damage):
    good = gzip.compress(header(1, 2000) + bytes(2000))
    data = {"bad block": good[:10] + b"\xff" * 30, "cut": good[:-10],
            "trailing": gzip.compress(header(1, 2000) + bytes(2001))}[damage]
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(data)
    with pytest.raises(DatasetError, match="t10k-labels-idx1-ubyte.gz: "):
        datasets.read_idx(path)


def test_idx_reader_still_reads_good_files(tmp_path):
    path = tmp_path / "a.gz"
    path.write_bytes(gzip.compress(header(2, 2, 3) + bytes(range(6))))
    np.testing.assert_array_equal(datasets.read_idx(path), np.arange(6, dtype=np.uint8).reshape(2, 3))
    path.write_bytes(header(0))                      # a 0-d IDX needs one element
    with pytest.raises(DatasetError, match="holds 0 bytes"):
        datasets.read_idx(path)


def test_dataset_paths_and_arguments(tmp_path):
    for bad in (None, 3, ""):
        with pytest.raises(ArgumentError, match="read_idx"):
            datasets.read_idx(bad)
        if bad is not None:
            with pytest.raises(ArgumentError, match="mnist"):
                datasets.mnist(bad)
    with pytest.raises(DatasetError, match="is a directory"):
        datasets.read_idx(tmp_path)
    (tmp_path / "f").write_text("x")
    with pytest.raises(DatasetError, match="is a file, not a directory"):
        datasets.mnist(tmp_path / "f")
    write_mnist(tmp_path / "d")
    split = datasets.mnist(tmp_path / "d").train
    assert len(split.take(3)) == 3
    for n in (-1, 2.5, "3"):
        with pytest.raises(ArgumentError, match="take"):
            split.take(n)


# ----------------------------------------------------------------------------- training options

@pytest.mark.parametrize("field,value", [
    ("epochs", 0), ("epochs", -3), ("batch_size", 0), ("seed", -1), ("optimizer", "adam"),
    ("lr", float("inf")), ("lr", 0.0), ("lr", -1.0), ("momentum", float("nan")), ("momentum", 1.0),
    ("gamma", float("nan")), ("gamma", 0.0), ("epochs", 2.0), ("log_every", 0)])
def test_train_config_rejects_bad_values(field, value):
    with pytest.raises(ArgumentError, match=f"TrainConfig.{field}"):
        TrainConfig(**{field: value})
    cfg = TrainConfig()
    setattr(cfg, field, value)                  # a config changed after construction is checked again
    with pytest.raises(ArgumentError, match=f"TrainConfig.{field}"):
        fit(Tiny(seed=0), None, cfg)
    with pytest.raises(ArgumentError, match=f"TrainConfig.{field}"):
        make_optimizer(Tiny(seed=0), cfg)


def test_learning_rate_that_underflows_before_the_last_epoch():
    with pytest.raises(ArgumentError, match="TrainConfig.gamma.*last epoch"):
        TrainConfig(epochs=5000, gamma=0.01)
    with pytest.raises(ArgumentError, match="TrainConfig.gamma"):
        TrainConfig(epochs=10**6, gamma=10.0)           # overflows
    assert TrainConfig(epochs=3, gamma=0.5).lr_at(3) == 0.25


def test_train_epoch_and_fit_arguments():
    model = Tiny(seed=0)
    x, y = random_batch(model, 6)
    rng = np.random.default_rng(0)
    opt = make_optimizer(model, TrainConfig(optimizer="sgd", lr=0.05))
    for bad in (0, -1, None):
        with pytest.raises(ArgumentError, match="batch_size"):
            train_epoch(model, opt, x, y, bad, rng)
    with pytest.raises(ArgumentError, match="6 images but 5 labels"):
        train_epoch(model, opt, x, y[:5], 2, rng)

    class Empty:
        class train:
            @staticmethod
            def tensors():
                return x[:0], y[:0]
        test = train
    with pytest.raises(ArgumentError, match="training split is empty"):
        fit(model, Empty, TrainConfig(epochs=1, batch_size=2), progress=False, log=None)
    with pytest.raises(ArgumentError, match="TrainConfig"):
        fit(model, Empty, {"epochs": 1})
    with pytest.raises(ArgumentError, match="fit.data.: expected a dataset"):
        fit(model, (x, y), TrainConfig(epochs=1))
    with pytest.raises(LoopcError, match="no epoch"):
        History().last


def test_divergence_stops_training_and_the_last_good_epoch_is_kept():
    """A NaN loss raises TrainingDiverged; on_epoch (where the CLI saves) saw only finite epochs."""
    model = Tiny(seed=0)
    seen = []

    def on_epoch(r):
        seen.append((r.epoch, model.store.flat.copy()))
        if r.epoch == 2:
            model.store["fc1.bias"][0] = np.nan          # poison the weights: epoch 3 diverges
    with pytest.raises(TrainingDiverged, match="loss became nan.*--lr"):
        fit(model, tiny_data(model), TrainConfig(epochs=5, batch_size=4, optimizer="sgd", lr=0.05),
            progress=False, log=None, on_epoch=on_epoch)
    assert [e for e, _ in seen] == [1, 2] and np.isfinite(seen[-1][1]).all()


def test_nonfinite_weights_after_an_epoch_are_not_handed_on():
    model = Tiny(seed=0)
    model.store["fc2.weight"][0, 0] = np.inf            # inf weights, yet a finite training loss is possible
    with pytest.raises(TrainingDiverged):
        fit(model, tiny_data(model), TrainConfig(epochs=1, batch_size=4, optimizer="sgd", lr=0.05),
            progress=False, log=None, on_epoch=lambda r: pytest.fail("on_epoch saw non-finite weights"))


def test_demo_rejects_zero_epochs_before_training():
    """`demo --epochs 0` used to run the default 6 epochs silently."""
    for kw in (dict(epochs=0), dict(batch_size=-1), dict(threads=0)):
        with pytest.raises(ArgumentError):
            demo.main(**kw, with_torch=False, log=lambda s: pytest.fail("demo started: " + s))


# ----------------------------------------------------------------------------- weights on disk

def test_load_rejects_every_kind_of_wrong_file(tmp_path):
    model = LeNet(seed=0)
    np.save(tmp_path / "x.npy", np.zeros(3))
    (tmp_path / "w.npz").write_text("not a zip\n")
    (tmp_path / "z.npz").write_bytes(b"PK\x03\x04" + b"junk" * 10)
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    state = model.store.state_dict()
    np.savez(tmp_path / "shape.npz", **{**state, "fc1.bias": np.zeros(5, np.float32)})
    np.savez(tmp_path / "dtype.npz", **{**state, "fc1.bias": np.array(["a"] * 120)})
    cases = {"x.npy": "single array", "w.npz": "not an .npz", "z.npz": "not an .npz",
             "other.npz": "lack conv1.weight", "shape.npz": r"fc1.bias is float32 \(5,\)",
             "dtype.npz": "fc1.bias is <U1", "missing.npz": "no such file", ".": "is a directory"}
    before = model.store.flat.copy()
    for name, why in cases.items():
        with pytest.raises(LoopcError, match=why):
            model.load(tmp_path / name)
    np.testing.assert_array_equal(model.store.flat, before)     # a failed load changes nothing
    with pytest.raises(ArgumentError):
        model.load(None)


def test_nan_weights_do_not_load_silently(tmp_path):
    a = LeNet(seed=1)
    a.store["conv2.weight"][0, 0, 0, 0] = np.nan
    path = a.save(tmp_path / "nan.npz")
    b = LeNet(seed=2)
    with pytest.raises(LoopcError, match="conv2.weight holds NaN or infinite values"):
        b.load(path)
    b.load(path, allow_nonfinite=True)                # on request, for inspection
    assert np.isnan(b.store["conv2.weight"][0, 0, 0, 0])


def test_save_appends_npz_returns_the_real_path_and_loads_back(tmp_path):
    a, b = LeNet(seed=1), LeNet(seed=2)
    real = a.save(tmp_path / "weights")
    assert real == tmp_path / "weights.npz" and real.is_file() and not (tmp_path / "weights").exists()
    b.load(tmp_path / "weights")                      # found as weights.npz
    np.testing.assert_array_equal(a.store.flat, b.store.flat)
    assert os.listdir(tmp_path) == ["weights.npz"]    # no temporary file left behind
    (tmp_path / "d").mkdir()
    with pytest.raises(LoopcError, match="is a directory"):
        a.save(tmp_path / "d")
    with pytest.raises(LoopcError, match="cannot write"):
        a.save(tmp_path / "missing" / "w.npz")


def test_a_failed_save_leaves_the_previous_file_intact(tmp_path, monkeypatch):
    path = LeNet(seed=1).save(tmp_path / "w.npz")
    before = path.read_bytes()

    def half_written(f, **arrays):
        f.write(b"PK\x03\x04 half a file")
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(np, "savez", half_written)
    with pytest.raises(LoopcError, match="cannot write .*w.npz: No space left on device"):
        LeNet(seed=2).save(path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["w.npz"]


def test_atomic_write_replaces_whole_files(tmp_path):
    path = tmp_path / "t.json"
    atomic_write(path, lambda f: f.write("one"), mode="w")
    atomic_write(path, lambda f: f.write("two"), mode="w")
    assert path.read_text() == "two" and os.listdir(tmp_path) == ["t.json"]


def test_model_arguments():
    with pytest.raises(ArgumentError, match="seed"):
        LeNet(seed=-1)
    with pytest.raises(ArgumentError, match="target"):
        LeNet(target=None)
    assert LeNet().activation_bytes(2) > LeNet().activation_bytes(1) > 0


def test_tensorboard_logdir_that_is_a_file(tmp_path):
    tb = pytest.importorskip("loopc.nn.tensorboard")
    if not tb.available():
        pytest.skip("tensorboard is not installed")
    (tmp_path / "f").write_text("x")
    with pytest.raises(LoopcError, match="is a file, not a folder"):
        tb.SummaryWriter(tmp_path / "f")
    with pytest.raises(LoopcError, match="cannot write TensorBoard logs"):
        tb.SummaryWriter(tmp_path / "f" / "sub")
