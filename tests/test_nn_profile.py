"""The profiler on a LeNet training step, and TensorBoard event files."""
import json

import pytest

import loopc
from loopc.nn.lenet import LeNet
from loopc.nn.optim import SGD
from loopc.nn.train import TrainConfig, fit

from nn_models import Tiny, random_batch, tiny_data

BATCH = 8


def lenet_step_profile():
    model = LeNet(seed=0)
    x, y = random_batch(model, BATCH)
    opt = SGD(model.store, lr=0.01)
    model.train_step(x, y)              # compile outside the profiled region
    with loopc.profile() as prof:
        for _ in range(3):
            model.train_step(x, y)
            opt.step()
    return model, prof


def test_profiler_table_lists_the_top_ten_operators():
    model, prof = lenet_step_profile()
    n_kernels = len(model.executor(BATCH).steps) + 1          # + the optimizer
    assert len(prof.events) == 3 * n_kernels
    table = prof.table(top=10)
    lines = table.splitlines()
    assert lines[0].split() == ["operator", "calls", "total", "ms", "mean", "us", "GFLOP/s", "share"]
    rows = lines[1:-1]
    assert len(rows) == 10 and lines[-1].startswith("total")
    totals = [float(r.split()[2]) for r in rows]
    assert totals == sorted(totals, reverse=True)
    assert all(r.split()[1] == "3" for r in rows)
    summary = {label: (calls, total, flop) for label, calls, total, flop in prof.summary()}
    for label in ("conv2d+bias_add+relu[conv1]", "conv2d_backward_weight[conv2]", "dense+bias_add+relu[fc1]",
                  "max_pool2d_backward+relu_backward[pool1]", "sgd_momentum[optimizer]"):
        assert label in summary
    # FLOPs are known per kernel: 2 * N*K*P*Q * C*R*S for conv2, + 2 per output for bias and relu
    out = BATCH * 16 * 10 * 10
    assert summary["conv2d+bias_add+relu[conv2]"][2] == 3 * (2 * out * (6 * 5 * 5) + 2 * out)


def test_chrome_trace_is_well_formed(tmp_path):
    _, prof = lenet_step_profile()
    path = tmp_path / "trace.json"
    prof.export_chrome_trace(path)
    trace = json.loads(path.read_text())
    events = trace["traceEvents"]
    assert len(events) == len(prof.events)
    for e in events:
        assert e["ph"] == "X" and e["cat"] == "kernel"
        assert isinstance(e["name"], str) and e["dur"] >= 0 and e["ts"] >= 0
        assert {"pid", "tid", "args"} <= set(e)
    starts = [e["ts"] for e in events]
    assert starts == sorted(starts)                         # kernels run one after another


def test_tensorboard_event_files_hold_scalars_and_graph(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from loopc.nn.tensorboard import SummaryWriter
    model = Tiny(seed=0)
    Data = tiny_data(model, 32)
    with SummaryWriter(tmp_path) as w:
        fit(model, Data, TrainConfig(epochs=2, batch_size=8, optimizer="sgd", lr=0.05, log_every=1),
            writer=w, progress=False, log=None)
    acc = EventAccumulator(str(tmp_path))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    for tag in ("train/loss", "train/loss_epoch", "train/accuracy", "test/accuracy", "test/loss"):
        assert tag in tags, tags
    assert [e.step for e in acc.Scalars("test/accuracy")] == [1, 2]
    assert len(acc.Scalars("train/loss")) == 8
    graph = acc.Graph()
    names = {n.name for n in graph.node}
    assert {"x", "labels", "conv/weight", "conv/conv2d", "backward/conv/conv2d_backward_weight"} <= names
    conv = next(n for n in graph.node if n.name == "conv/conv2d")
    assert list(conv.input) == ["x", "conv/weight"]
    dims = [d.size for d in conv.attr["_output_shapes"].list.shape[0].dim]
    assert dims == [8, 3, 5, 4]


def test_tensorboard_missing_is_a_clear_error(monkeypatch):
    import builtins

    from loopc.errors import LoopcError
    from loopc.nn import tensorboard
    real = builtins.__import__

    def no_tb(name, *a, **kw):
        if name.startswith("tensorboard"):
            raise ImportError("no tensorboard")
        return real(name, *a, **kw)
    monkeypatch.setattr(builtins, "__import__", no_tb)
    with pytest.raises(LoopcError, match=r"loopc\[tensorboard\]"):
        tensorboard.SummaryWriter("/tmp/unused")


def test_cli_lenet_bench_prints_profiles_and_latency(capsys):
    from loopc import cli
    assert cli.main(["lenet", "bench", "--batch-sizes", str(BATCH), "--number", "2", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert f"batch {BATCH} on llvm: top-10 operators" in out
    assert "conv2d+bias_add+relu[conv1]" in out
    assert "loopc fwd" in out and "loopc train" in out
    try:
        import torch  # noqa: F401
        assert "torch fwd" in out and "ratio" in out
    except ImportError:
        pass


def _gpu_less_cli(*argv):
    """``loopc *argv`` in a process that sees no GPU and no simulator (skips on a machine with a GPU)."""
    import os
    import subprocess
    import sys
    from loopc.targets.cuda import device
    if device.gpu_available():
        pytest.skip("this machine has a GPU: the GPU-less path is not taken")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    return subprocess.run([sys.executable, "-m", "loopc.cli", *argv], capture_output=True, text=True, env=env,
                          timeout=600)


def test_lenet_bench_on_cuda_without_a_gpu_says_so_and_shows_recorded_figures():
    from loopc.apps import recorded_gpu
    proc = _gpu_less_cli("lenet", "bench", "--target", "cuda", "--batch-sizes", "1")
    assert proc.returncode == 2
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and "no usable CUDA GPU here" in err[0] and "not measured here" in err[0]
    run = recorded_gpu.LENET
    assert f"{run.gpu}, recorded {run.date} — not measured on this machine" in proc.stdout
    for b, fwd, train, _, _ in run.rows:
        assert f"{b:>7}  {fwd:10.3f}  {train:11.3f}" in proc.stdout


def test_lenet_bench_compare_cpu_without_a_gpu_puts_measured_cpu_beside_recorded_gpu():
    from loopc.apps import recorded_gpu
    proc = _gpu_less_cli("lenet", "bench", "--compare-cpu", "--batch-sizes", "1", "64", "--number", "1",
                         "--repeat", "1", "--no-torch", "--optimizer", "adadelta")
    assert proc.returncode == 0, proc.stderr
    assert "no usable CUDA GPU here" in proc.stderr and "Traceback" not in proc.stderr
    out = proc.stdout
    assert "train = forward + backward + Adadelta update" in out
    assert f"vs {recorded_gpu.label()}" in out
    rows = {int(line.split()[0]): line.split() for line in out.splitlines()
            if line.strip() and line.split()[0].isdigit() and len(line.split()) == 7}
    assert set(rows) == {1, 64}
    assert rows[1][2] == "-"                       # no GPU figure was recorded at batch 1
    cpu_fwd, gpu_fwd = float(rows[64][1]), float(rows[64][2])
    assert gpu_fwd == recorded_gpu.LENET.rows[0][1]
    assert rows[64][5] == f"{cpu_fwd / gpu_fwd:.2f}x"
