"""``loopc lab --out DIR``: the chapter's lab, run end to end on loopc and written up as a report.

    result = lab.run("lab-out", recipe=RECIPES["chapter"])   # trains, profiles, benches
    # lab-out/report.md, lab-out/report.html (+ PNG plots), lab-out/tensorboard/

The lab's steps, in the chapter's order (loopc/apps/lab_report.py writes one section each):

1. train LeNet on the embedded MNIST digits with the chapter's recipe (Adadelta lr 1.0, StepLR
   0.7, batch 64, test batch 1000; loopc.nn.train.fit), every kernel compiled by loopc;
2. the forward + backward dataflow graph, and 3. the loss and accuracy curves, in TensorBoard
   (DIR/tensorboard, loopc.nn.tensorboard);
4. the ten most expensive operators of the training run (loopc.profile);
5. batch sizes 1, 16 and 64: forward pass and training step beside PyTorch eager, with each
   batch size's own top-10 (loopc.apps.lenet_bench.run);
6. CPU vs GPU: measured where a CUDA GPU is usable, else the figures recorded on a lent GPU
   (loopc.apps.recorded_gpu), always labelled as recorded, with the GPU's name and date;

and the chapter's sizing question (the memory of each layer: weights, activations, gradients,
workspace) and the machine table the lab asks for (loopc.apps.machine, as ``loopc info``).

Only the report's own files are written in DIR (``REPORT_FILES`` and the tensorboard folder's
event files); anything else there is left alone.
"""
from __future__ import annotations

import datetime
import math
import os
import time
from dataclasses import dataclass, field

import loopc
from loopc.errors import ArgumentError, LoopcError
from loopc.nn.train import TrainConfig, check_int, fit

from . import lenet_bench, machine, recorded_gpu

#: what the lab writes in DIR, and nothing else (the PNGs only where matplotlib is installed)
REPORT_FILES = ("report.md", "report.html", "training_curves.png", "top10_operators.png", "batch_sizes.png")
TENSORBOARD_DIR = "tensorboard"
#: the chapter's batch sizes (lab step 5)
BATCH_SIZES = (1, 16, 64)


@dataclass
class Operator:
    """One row of a top-10 table (loopc.profile's summary)."""
    label: str
    calls: int
    total_ms: float
    gflops: float | None        # None where the kernel counts no FLOPs
    share: float                # of the profiled run's kernel time, 0..1

    @property
    def mean_us(self) -> float:
        return self.total_ms * 1e3 / self.calls


@dataclass
class GPUComparison:
    """Lab step 6: the CPU figures beside a GPU's, measured here or recorded on a lent GPU."""
    measured: bool
    label: str                  # the GPU's name; for recorded figures also the date and "not measured here"
    rows: list                  # lenet_bench.BenchResult of the GPU, per batch size it has
    recorded: object = None     # recorded_gpu.RecordedRun when not measured


@dataclass
class LabResult:
    """Everything the report shows, as numbers (the report formats them, nothing else)."""
    out: str
    command: str
    started: str                                  # UTC, ISO 8601
    machine: list                                 # (name, value) rows: loopc.apps.machine.machine_rows
    config: TrainConfig
    data: str                                     # where the digits came from, and how many
    n_train: int
    n_test: int
    threads: int
    compile_s: float
    history: list                                 # loopc.nn.train.EpochResult per epoch
    graph: dict                                   # forward/backward nodes, parameters, kernels
    tensorboard: str | None                       # the event folder, or None (with tensorboard_note)
    tensorboard_note: str
    top: list                                     # Operator rows of the training run's top 10
    profile_ms: float                             # all kernel time of the training run
    profile_calls: int
    bench: list                                   # lenet_bench.BenchResult per batch size
    torch: str | None                             # PyTorch's version beside loopc, or None (torch_note says why)
    torch_note: str
    gpu: GPUComparison
    memory_batch: int
    memory: object                                # loopc.nn.memory.MemoryReport at the training batch
    step_bytes: list                              # (batch, bytes of a training step's tensors) per bench batch
    seconds: float = 0.0
    files: list = field(default_factory=list)    # what was written, relative to out

    @property
    def final(self):
        return self.history[-1]


def check_out(out) -> str:
    """DIR for the report: created when missing; LoopcError (one line) when it is a file, cannot
    be created or written, or a report file's name is taken by a folder."""
    if not isinstance(out, (str, os.PathLike)) or not os.fspath(out):
        raise ArgumentError(f"lab(out): expected a folder path, got {out!r}")
    out = os.path.expanduser(os.fspath(out))
    if os.path.exists(out) and not os.path.isdir(out):
        raise LoopcError(f"--out {out}: is a file, not a folder; give a folder for the report")
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as e:
        raise LoopcError(f"--out {out}: cannot create it ({e.strerror or e}); give a folder in a writable place") \
            from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise LoopcError(f"--out {out}: the folder is not writable; give another folder")
    for name in REPORT_FILES:
        if os.path.isdir(os.path.join(out, name)):
            raise LoopcError(f"--out {out}: {name} there is a folder; the report writes a file of that name, "
                             "give another folder")
    tb = os.path.join(out, TENSORBOARD_DIR)
    if os.path.exists(tb) and not os.path.isdir(tb):
        raise LoopcError(f"--out {out}: {TENSORBOARD_DIR} there is a file; the TensorBoard logs go in a folder "
                         "of that name, give another folder")
    return out


def run(out, recipe: dict, epochs=None, limit=None, batch_sizes=BATCH_SIZES, with_torch=True, threads=None,
        number=10, repeat=5, use_gpu=None, plots=True, command="loopc lab", log=print) -> LabResult:
    """Run the lab and write its report in ``out``; returns the figures the report shows.

    ``recipe``: TrainConfig fields (the CLI's ``RECIPES["chapter"]``), ``epochs`` overriding its
    count; ``limit``: the first N images of each split; ``use_gpu``: None asks numba whether a
    CUDA GPU is usable, False uses the recorded figures; ``plots``: False writes no PNGs."""
    from loopc.nn import datasets
    from loopc.nn.lenet import LeNet
    from loopc.runtime import threads as th

    from . import lab_report

    t_start = time.perf_counter()
    started = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()
    cfg = TrainConfig(**{**recipe, **({} if epochs is None else {"epochs": epochs})})
    batch_sizes = [check_int("lab(batch_sizes)", b, low=1) for b in batch_sizes]
    if not batch_sizes:
        raise ArgumentError("lab(batch_sizes): give at least one batch size")
    if limit is not None:
        check_int("lab(limit)", limit, low=1)
    out = check_out(out)
    if threads is not None:
        th.set_num_threads(check_int("lab(threads)", threads, low=1))

    rows = machine.machine_rows()
    log("machine:\n" + machine.format_rows(rows))
    data = datasets.mnist()
    if limit is not None:
        data = datasets.MNIST(data.train.take(limit), data.test.take(limit),
                              f"{data.source}, first {limit} of each split")
    log(f"\n[1/6] training LeNet-5 on loopc kernels: {data.source}: {len(data.train)} train / {len(data.test)} test "
        f"images; {cfg.epochs} epochs, batch {cfg.batch_size} (test {cfg.test_batch}), {cfg.optimizer} lr {cfg.lr:g}, "
        f"StepLR gamma {cfg.gamma:g}")
    model = LeNet(seed=cfg.seed)
    writer, tb_note = _writer(os.path.join(out, TENSORBOARD_DIR))
    log("[2/6, 3/6] the dataflow graph and the loss and accuracy curves: "
        + (f"TensorBoard event files in {os.path.join(out, TENSORBOARD_DIR)}" if writer else tb_note))
    built = model.kernels.stats["seconds"]
    try:
        with loopc.profile() as prof:
            history = fit(model, data, cfg, writer=writer, log=log)
    finally:
        if writer is not None:
            writer.close()
    compile_s = model.kernels.stats["seconds"] - built       # the training run's kernels, not the bench's
    train_batch = min(cfg.batch_size, len(data.train))
    ex = model.executor(train_batch)
    top, total_ms, calls = _top(prof, 10)
    log("\n[4/6] top-10 operators of the training run (loopc.profile):\n" + prof.table(top=10))

    has_torch = with_torch and lenet_bench.torch_available()
    torch_note = "" if has_torch else ("--no-torch: PyTorch was not run" if not with_torch else
                                       "PyTorch is not installed (pip install 'loopc[torch]'): loopc alone")
    log(f"\n[5/6] batch sizes {', '.join(map(str, batch_sizes))}: forward pass and training step"
        + (" beside PyTorch eager" if has_torch else f" ({torch_note})"))
    bench = lenet_bench.run(batch_sizes=batch_sizes, number=number, repeat=repeat, with_torch=has_torch, log=log)
    gpu = _gpu(batch_sizes, number, repeat, has_torch, machine.gpu_usable() if use_gpu is None else use_gpu, log)

    result = LabResult(
        out=out, command=command, started=started, machine=rows, config=cfg, data=data.source,
        n_train=len(data.train), n_test=len(data.test), threads=th.num_threads(),
        compile_s=compile_s, history=list(history.epochs),
        graph=_graph_facts(ex), tensorboard=None if writer is None else os.path.join(out, TENSORBOARD_DIR),
        tensorboard_note=tb_note, top=top, profile_ms=total_ms, profile_calls=calls, bench=bench,
        torch=_torch_version() if has_torch else None, torch_note=torch_note, gpu=gpu,
        memory_batch=train_batch, memory=ex.memory(),
        step_bytes=[(b, model.activation_bytes(b)) for b in batch_sizes])
    result.seconds = time.perf_counter() - t_start
    result.files = lab_report.write(result, plots=plots)
    log(f"\nlab finished in {result.seconds:.0f} s; report: {os.path.join(out, 'report.html')} and report.md"
        + (f"; TensorBoard: tensorboard --logdir {result.tensorboard}" if result.tensorboard else ""))
    return result


def _writer(logdir):
    """(SummaryWriter, "") or (None, why there are no TensorBoard logs)."""
    from loopc.nn import tensorboard
    if not tensorboard.available():
        return None, "the tensorboard package is not installed (pip install 'loopc[tensorboard]'): no event files"
    return tensorboard.SummaryWriter(logdir), ""


def _top(prof, n):
    """(the ``n`` most expensive operators as Operator rows, all kernel ms, all calls)."""
    rows = prof.summary()
    grand = sum(r[2] for r in rows)
    top = [Operator(label, calls, total * 1e3, flop / total / 1e9 if flop and total > 0 else None,
                    total / grand if grand > 0 else 0.0) for label, calls, total, flop in rows[:n]]
    return top, grand * 1e3, sum(r[1] for r in rows)


def _graph_facts(ex) -> dict:
    """What the framework made of the script (the chapter's lifecycle): graph nodes per phase,
    parameters, and the kernels the executor runs after fusion."""
    from loopc.nn.ops import OPS
    g = ex.train_graph.graph
    forward = [n for n in g.nodes if n.phase == "forward"]
    return {"forward": len(forward), "backward": len(g.nodes) - len(forward), "params": len(g.params),
            "weights": sum(math.prod(p.shape) for p in g.params),
            "views": sum(1 for n in g.nodes if OPS[n.op].view), "kernels": len(ex.steps)}


def _gpu(batch_sizes, number, repeat, with_torch, usable, log) -> GPUComparison:
    """Lab step 6 on a usable GPU (measured), else the recorded run (labelled so)."""
    if usable:
        gpu_name, _ = machine.gpu_rows()
        log(f"\n[6/6] CPU vs GPU: the same benchmark on {gpu_name}")
        rows = lenet_bench.run(batch_sizes=batch_sizes, number=number, repeat=repeat, with_torch=with_torch,
                               target="cuda", log=log)
        return GPUComparison(True, f"{gpu_name} (measured here)", rows)
    run = recorded_gpu.LENET
    log(f"\n[6/6] CPU vs GPU: no usable CUDA GPU here; the GPU figures are those recorded on an {run.gpu} on "
        f"{run.date}, not measured here")
    return GPUComparison(False, recorded_gpu.label(run), recorded_gpu.bench_results(run), run)


def _torch_version() -> str:
    import torch
    return torch.__version__
