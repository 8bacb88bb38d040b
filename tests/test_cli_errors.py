"""The command line on bad input: one line on stderr naming the option or path, exit code 2,
no traceback; Ctrl-C is one line and 130; weights on disk survive every failure."""
import gzip
import os
import signal
import struct
import subprocess
import sys
import time

import numpy as np
import pytest

from loopc import cli
from loopc.errors import LoopcError, ScheduleError
from loopc.nn.lenet import LeNet

from test_nn_datasets import write_mnist

BATCH = 8           # as in test_nn_train: the kernels compiled there serve here


def run_cli(*args, timeout=120):
    """The CLI in a subprocess: (exit code, stdout, stderr)."""
    proc = subprocess.run([sys.executable, "-m", "loopc.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)
    return proc.returncode, proc.stdout, proc.stderr


def assert_one_line_error(stderr, *names):
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "error: " in lines[0], stderr
    for name in names:
        assert str(name) in lines[0], (name, stderr)


def cli_error(capsys, *args):
    """main() in this process: the exit code (argparse's SystemExit or the return value) and stderr."""
    try:
        code = cli.main([str(a) for a in args])
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mnist")
    write_mnist(folder, n_train=24, n_test=9, gz=True)
    return folder


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("w") / "w.npz"
    LeNet(seed=0).save(path)
    return path


# ----------------------------------------------------------------------------- options (argparse)

BAD_OPTIONS = [
    ("lenet train --batch-size 0", "--batch-size"),
    ("lenet train --threads 0", "--threads"),
    ("lenet train --threads -1", "--threads"),
    ("lenet train --threads 1000000", "--threads"),
    ("lenet train --epochs -3", "--epochs"),
    ("lenet train --epochs 0", "--epochs"),
    ("lenet train --lr inf", "--lr"),
    ("lenet train --lr -1", "--lr"),
    ("lenet train --momentum nan", "--momentum"),
    ("lenet train --gamma nan", "--gamma"),
    ("lenet train --seed -1", "--seed"),
    ("lenet train --epochs three", "--epochs"),
    ("lenet train --target foo", "--target"),
    ("lenet train --data=", "--data"),
    ("lenet train --target llvm -mfoo", "--target"),
    ("lenet eval --load w.npz --batch-size 0", "--batch-size"),
    ("lenet eval --load w.npz --threads 0", "--threads"),
    ("lenet eval", "--load"),
    ("lenet bench --batch-sizes 0", "--batch-sizes"),
    ("lenet bench --batch-sizes 1 -4", "--batch-sizes"),
    ("lenet bench --number 0", "--number"),
    ("lenet bench --repeat 0", "--repeat"),
    ("lenet bench --threads 0", "--threads"),
    ("demo --epochs 0", "--epochs"),
    ("demo --batch-size 0", "--batch-size"),
    ("demo --threads -2", "--threads"),
    ("bench --ladder --repeat 0", "--repeat"),
    ("bench --ladder --size 0", "--size"),
    ("bench --threads 0", "--threads"),
    ("show gemm -M 0", "-M"),
]


@pytest.mark.parametrize("argv,option", BAD_OPTIONS, ids=[a for a, _ in BAD_OPTIONS])
def test_bad_option_is_one_line_before_any_work(capsys, argv, option):
    argv = argv.split()
    if argv[-1] == "-mfoo":
        argv[-2:] = ["llvm -mfoo"]
    code, err = cli_error(capsys, *argv)
    assert code == 2
    assert_one_line_error(err, option if argv == ["lenet", "eval"] else f"argument {option}")


def test_bad_option_in_a_real_process():
    code, out, err = run_cli("lenet", "train", "--gamma", "nan", "--save", "w.npz")
    assert code == 2 and out == ""
    assert_one_line_error(err, "--gamma", "finite")


# ----------------------------------------------------------------------------- output paths, up front

def test_output_paths_are_checked_before_training(tmp_path, capsys, data):
    (tmp_path / "dir").mkdir()
    (tmp_path / "file").write_text("x")
    cases = [
        (["--save", tmp_path / "missing" / "w.npz"], "--save", "does not exist"),
        (["--save", tmp_path / "dir"], "--save", "is a directory"),
        (["--trace", tmp_path / "missing" / "t.json", "--save", tmp_path / "w.npz"], "--trace", "does not exist"),
        (["--trace", tmp_path / "dir"], "--trace", "is a directory"),
        (["--logdir", tmp_path / "file"], "--logdir", "is a file"),
        (["--logdir", tmp_path / "file" / "runs"], "--logdir", "is a file"),
    ]
    for extra, option, why in cases:
        code, err = cli_error(capsys, "lenet", "train", "--data", data, "--epochs", "1", *extra)
        assert code == 2
        assert_one_line_error(err, f"argument {option}", why)
        assert not (tmp_path / "w.npz").exists()
    code, err = cli_error(capsys, "lenet", "train", "--data", data, "--save", tmp_path / "x",
                          "--trace", tmp_path / "x.npz")
    assert code == 2
    assert_one_line_error(err, "--save and --trace both write")
    code, err = cli_error(capsys, "lenet", "train", "--data", data, "--epochs", "5000", "--gamma", "0.01")
    assert code == 2
    assert_one_line_error(err, "--gamma", "last epoch")


# ----------------------------------------------------------------------------- files read

def test_eval_of_wrong_weight_files(tmp_path, capsys, data):
    model = LeNet(seed=0)
    np.save(tmp_path / "x.npy", np.zeros(3))
    (tmp_path / "fake.npz").write_text("just text\n")
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    np.savez(tmp_path / "shape.npz", **{**model.store.state_dict(), "fc3.weight": np.zeros((3, 3), np.float32)})
    nan = model.store.state_dict()
    nan["fc2.bias"][:] = np.nan
    np.savez(tmp_path / "nan.npz", **nan)
    cases = {"x.npy": "single array", "fake.npz": "not an .npz", "other.npz": "lack",
             "shape.npz": "fc3.weight", "nan.npz": "fc2.bias holds NaN", "missing.npz": "no such file"}
    for name, why in cases.items():
        code, err = cli_error(capsys, "lenet", "eval", "--load", tmp_path / name, "--data", data)
        assert code == 2, name
        assert_one_line_error(err, name, why)


def test_eval_warns_when_finite_weights_overflow(tmp_path, capsys, data):
    model = LeNet(seed=0)
    model.store["fc1.weight"][...] *= 1e37
    model.store["fc2.weight"][...] *= 1e37
    model.save(tmp_path / "big.npz")
    assert cli.main(["lenet", "eval", "--load", str(tmp_path / "big.npz"), "--data", str(data),
                     "--batch-size", str(BATCH)]) == 0
    err = capsys.readouterr().err
    assert err.startswith("loopc: warning: the test loss is nan") and len(err.splitlines()) == 1, err


def test_eval_of_a_npy_in_a_real_process(tmp_path, data):
    np.save(tmp_path / "x.npy", np.zeros(3))
    code, out, err = run_cli("lenet", "eval", "--load", tmp_path / "x.npy", "--data", data)
    assert code == 2
    assert_one_line_error(err, "x.npy", "--save")


def corrupt(folder, how):
    path = folder / "train-images-idx3-ubyte.gz"
    if how == "gzip":
        path.write_bytes(path.read_bytes()[:20] + b"\xff" * 40)
    else:                                             # a header whose dimensions multiply past memory
        path.write_bytes(gzip.compress(struct.pack(">BBBB4I", 0, 0, 8, 4, 2**16, 2**16, 2**16, 2**16)))


@pytest.mark.parametrize("how", ["gzip", "header"])
def test_corrupt_data_in_a_real_process(tmp_path, how):
    write_mnist(tmp_path, n_train=4, n_test=2, gz=True)
    corrupt(tmp_path, how)
    code, out, err = run_cli("lenet", "train", "--data", tmp_path, "--epochs", "1", "--save", tmp_path / "w.npz")
    assert code == 2
    assert_one_line_error(err, "train-images-idx3-ubyte.gz")
    assert not (tmp_path / "w.npz").exists()


def test_cuda_without_a_gpu_is_one_line(capsys, data, weights):
    from loopc.targets.cuda import device
    if device.simulator() or device.gpu_available():
        pytest.skip("a GPU (or the simulator) is here")
    for argv in (["lenet", "train", "--data", data], ["lenet", "eval", "--load", weights, "--data", data]):
        code, err = cli_error(capsys, *argv, "--target", "cuda")
        assert code == 2
        assert_one_line_error(err, "--target cuda", "NUMBA_ENABLE_CUDASIM")


def test_sizes_larger_than_memory(capsys):
    """Refused before any work, not a MemoryError or the OOM killer minutes later."""
    code, err = cli_error(capsys, "lenet", "bench", "--batch-sizes", "1", str(10**8), "--no-torch")
    assert code == 2
    assert_one_line_error(err, "--batch-sizes 100000000", "GiB")
    code, err = cli_error(capsys, "bench", "--ladder", "--size", str(10**6))
    assert code == 2
    assert_one_line_error(err, "--size 1000000", "GiB")


# ----------------------------------------------------------------------------- nothing lost

def train_args(data, *extra):
    return ["lenet", "train", "--data", data, "--batch-size", BATCH, "--optimizer", "sgd", *extra]


def test_save_without_npz_prints_the_real_path(tmp_path, capsys, data):
    assert cli.main([str(a) for a in train_args(data, "--epochs", "1", "--save", tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert f"weights saved to {tmp_path / 'run.npz'}\n" in out
    assert os.listdir(tmp_path) == ["run.npz"]
    LeNet().load(tmp_path / "run.npz")


def test_weights_are_saved_before_the_trace(tmp_path, capsys, monkeypatch, data):
    """A trace that cannot be written no longer takes the trained weights with it."""
    from loopc.runtime.profiling import Profiler

    def disk_full(self, path):
        open(path, "w").write("{\"traceEvents\": [")
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(Profiler, "export_chrome_trace", disk_full)
    code, err = cli_error(capsys, *train_args(data, "--epochs", "1", "--save", tmp_path / "w.npz",
                                              "--trace", tmp_path / "t.json"))
    assert code == 2
    assert_one_line_error(err, "t.json", "No space left")
    LeNet().load(tmp_path / "w.npz")
    assert sorted(os.listdir(tmp_path)) == ["w.npz"]       # no half-written trace


def test_divergence_keeps_the_last_good_epoch(tmp_path, capsys, monkeypatch, data):
    """Epoch 2 diverges: exit 2, one line saying where epoch 1's weights are, and they load."""
    import loopc.nn.train as train
    real_epoch, calls, kept = train.train_epoch, [], {}

    def epoch(model, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            kept["w"] = model.store.flat.copy()
            raise train.TrainingDiverged("the loss became nan at step 1 of the epoch")
        return real_epoch(model, *args, **kwargs)
    monkeypatch.setattr(train, "train_epoch", epoch)
    w = tmp_path / "w.npz"
    code, err = cli_error(capsys, *train_args(data, "--epochs", "3", "--save", w))
    assert code == 2
    assert_one_line_error(err, "loss became nan", f"weights of epoch 1 are in {w}")
    model = LeNet()
    model.load(w)
    np.testing.assert_array_equal(model.store.flat, kept["w"])


def test_ctrl_c_keeps_the_weights_of_the_last_epoch(tmp_path, data):
    """SIGINT mid-training: exit 130, one line, and the weights of the last completed epoch load."""
    w = tmp_path / "w.npz"
    proc = subprocess.Popen([sys.executable, "-m", "loopc.cli", *map(str, train_args(
        data, "--epochs", "100000", "--gamma", "1", "--save", w))], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    try:
        deadline = time.monotonic() + 120
        while not w.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert w.exists(), "no epoch saved"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith("loopc: interrupted; the weights of epoch ") and str(w) in err
    LeNet().load(w)
    assert os.listdir(tmp_path) == ["w.npz"]


# ----------------------------------------------------------------------------- main()

def command(exc):
    def fn(args):
        raise exc
    return fn


def test_main_turns_loopc_errors_into_one_line(capsys, monkeypatch):
    err = ScheduleError("split", "C", "factor 0 is not positive", fix="give a factor >= 1")
    monkeypatch.setattr(cli, "cmd_info", command(err))
    assert cli.main(["info"]) == 2
    assert capsys.readouterr().err == ("loopc: error: split on stage 'C': factor 0 is not positive; "
                                       "how to fix: give a factor >= 1\n")
    monkeypatch.setattr(cli, "cmd_info", command(LoopcError("")))
    assert cli.main(["info"]) == 2
    assert capsys.readouterr().err == "loopc: error: LoopcError\n"


def test_main_ctrl_c_is_130_and_one_line(capsys, monkeypatch):
    monkeypatch.setattr(cli, "cmd_info", command(KeyboardInterrupt()))
    assert cli.main(["info"]) == 130
    assert capsys.readouterr().err == "loopc: interrupted\n"


def test_main_keeps_internal_errors_visible(monkeypatch):
    monkeypatch.setattr(cli, "cmd_info", command(RuntimeError("a bug")))
    with pytest.raises(RuntimeError, match="a bug"):
        cli.main(["info"])
