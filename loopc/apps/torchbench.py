"""Whole PyTorch models under three backends in one process: eager, inductor and loopc.

Used by ``benchmarks/torch_models.py``. Each workload (a model, a batch size, inference or a
training step) gets one copy of the same weights per backend: eager (the module itself),
inductor (``torch.compile(model)``) and loopc (``torch.compile(model, backend="loopc")``; its
training step uses ``loopc.torch.optim.SGD``, the others ``torch.optim.SGD``). The first call
of each is the compile (timed); then loopc's result (the output, or after a training step the
gradients) is checked against eager's, and all three are timed in interleaved rounds. Inductor
bakes the thread count into its C++ kernels (``#pragma omp parallel num_threads(n)``), so every
thread count compiles afresh. Ratios are medians of the per-round loopc_time / other_time
(below 1: loopc is faster).
"""
from __future__ import annotations

import copy
import time
import traceback
from dataclasses import dataclass, field

import numpy as np

import torch
import torch.nn as nn
import torch.nn.functional as F

from loopc.torch.models import ChapterNet

BACKENDS = ("eager", "inductor", "loopc")


class BasicBlock(nn.Module):
    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.downsample = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNet18(nn.Module):
    def __init__(self, classes=1000):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
                                  nn.MaxPool2d(3, 2, 1))
        blocks, c = [], 64
        for c_out, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            blocks += [BasicBlock(c, c_out, stride), BasicBlock(c_out, c_out, 1)]
            c = c_out
        self.layers = nn.Sequential(*blocks)
        self.fc = nn.Linear(512, classes)

    def forward(self, x):
        x = self.layers(self.stem(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def _conv_bn(c_in, c_out, k, stride=1, groups=1, act=True):
    layers = [nn.Conv2d(c_in, c_out, k, stride, (k - 1) // 2, groups=groups, bias=False), nn.BatchNorm2d(c_out)]
    return layers + [nn.ReLU6(inplace=True)] if act else layers


class InvertedResidual(nn.Module):
    def __init__(self, c_in, c_out, stride, t):
        super().__init__()
        hidden = c_in * t
        layers = _conv_bn(c_in, hidden, 1) if t != 1 else []
        layers += _conv_bn(hidden, hidden, 3, stride, groups=hidden) + _conv_bn(hidden, c_out, 1, act=False)
        self.conv = nn.Sequential(*layers)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x):
        return x + self.conv(x) if self.residual else self.conv(x)


class MobileNetV2(nn.Module):
    #: expansion t, output channels c, repeats n, stride s (torchvision's)
    SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                (6, 160, 3, 2), (6, 320, 1, 1))

    def __init__(self, classes=1000):
        super().__init__()
        layers, c_in = _conv_bn(3, 32, 3, 2), 32
        for t, c, n, s in self.SETTINGS:
            for i in range(n):
                layers.append(InvertedResidual(c_in, c, s if i == 0 else 1, t))
                c_in = c
        self.features = nn.Sequential(*layers, *_conv_bn(c_in, 1280, 1))
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, classes))

    def forward(self, x):
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))


@dataclass(frozen=True)
class Workload:
    model: str            # "net", "resnet18", "mobilenet_v2"
    batch: int
    train: bool = False

    @property
    def name(self) -> str:
        return f"{self.model} {'train' if self.train else 'infer'} b{self.batch}"


MODELS = {"net": (ChapterNet, (1, 28, 28), 10), "resnet18": (ResNet18, (3, 224, 224), 1000),
          "mobilenet_v2": (MobileNetV2, (3, 224, 224), 1000)}
WORKLOADS = (Workload("net", 1), Workload("net", 64), Workload("net", 64, train=True),
             Workload("resnet18", 1), Workload("resnet18", 16),
             Workload("mobilenet_v2", 1), Workload("mobilenet_v2", 16))


def make_model(w: Workload) -> nn.Module:
    """The workload's model with seeded weights (and batch-norm statistics that are not 0/1)."""
    torch.manual_seed(0)
    model = MODELS[w.model][0]()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return model.train(w.train)


def inputs(w: Workload):
    g = torch.Generator().manual_seed(1)
    shape, classes = MODELS[w.model][1], MODELS[w.model][2]
    return torch.randn((w.batch, *shape), generator=g), torch.randint(0, classes, (w.batch,), generator=g)


def make_step(backend, model, x, y, train, options=None):
    """A closure running the workload once on ``backend``: the output (inference, no grad), or
    the loss of one training step (zero_grad, forward, nll_loss, backward, SGD momentum 0.9)."""
    if backend == "eager":
        run = model
    elif backend == "inductor":
        run = torch.compile(model)
    else:
        import loopc.torch.backend  # noqa: F401  (registers "loopc")
        run = torch.compile(model, backend="loopc", options=options)
    if not train:
        def infer():
            with torch.no_grad():
                return run(x)
        return infer
    if backend == "loopc":
        from loopc.torch import optim as lo
        opt = lo.SGD(model.parameters(), lr=0.01, momentum=0.9)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.nll_loss(run(x), y)
        loss.backward()
        opt.step()
        return loss.detach()
    return step


def rel_error(got, want) -> float:
    return float((got - want).abs().max() / max(1e-30, float(want.abs().max())))


@dataclass
class Result:
    workload: Workload
    threads: int
    compile_s: dict = field(default_factory=dict)    # backend -> seconds of the first call
    ms: dict = field(default_factory=dict)           # backend -> median ms
    ratio: dict = field(default_factory=dict)        # "eager"/"inductor" -> median of loopc / it
    error: dict = field(default_factory=dict)        # backend -> one-line failure
    check: float | None = None                       # loopc vs eager, max relative error
    report: str = ""                                 # loopc's fallback report


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text[:200]}"


def _first_call(backend, step, model, train, rng_seed=0):
    """Compile (the first call) with a fixed RNG seed (dropout); returns (value, grads, seconds)."""
    torch.manual_seed(rng_seed)
    t0 = time.perf_counter()
    out = step()
    seconds = time.perf_counter() - t0
    grads = [p.grad.detach().clone() for p in model.parameters() if p.grad is not None] if train else None
    return out, grads, seconds


def measure(w: Workload, nthreads, rounds=5, min_round_ms=100, log=print) -> Result:
    """Compile, check and time ``w`` on every backend at ``nthreads`` threads."""
    from loopc.runtime import threads
    from loopc.runtime.timing import time_evaluator
    from loopc.torch.graph import Report
    torch.set_num_threads(nthreads)
    threads.set_num_threads(nthreads)
    torch._dynamo.reset()
    res = Result(w, nthreads)
    base, (x, y) = make_model(w), inputs(w)
    steps, firsts, report = {}, {}, Report()
    for b in BACKENDS:
        model = copy.deepcopy(base)
        try:
            step = make_step(b, model, x, y, w.train, options={"report": report} if b == "loopc" else None)
            out, grads, res.compile_s[b] = _first_call(b, step, model, w.train)
            step()                                   # a second call: any recompile happens here
            steps[b], firsts[b] = step, (out, grads)
        except Exception as e:  # noqa: BLE001 - a backend failing is a result, not a crash
            res.error[b] = ("inductor unavailable: " if b == "inductor" else "") + _one_line(e)
            log(f"    {b} failed: {res.error[b]}")
            if b == "loopc":
                frame = traceback.extract_tb(e.__traceback__)[-1]
                log(f"    (raised at {frame.filename}:{frame.lineno} in {frame.name})")
    if "loopc" in firsts and "eager" in firsts:
        (got, ggrads), (want, wgrads) = firsts["loopc"], firsts["eager"]
        res.check = rel_error(got, want)
        if w.train and ggrads is not None:
            res.check = max([res.check] + [rel_error(g, h) for g, h in zip(ggrads, wgrads)])
    if report.graphs:
        res.report = str(report)
    samples = {b: [] for b in steps}
    for _ in range(rounds):
        for b, step in steps.items():
            time.sleep(0.02)
            samples[b].append(time_evaluator(step, number=1, repeat=1, min_repeat_ms=min_round_ms)().median * 1e3)
    res.ms = {b: float(np.median(s)) for b, s in samples.items()}
    for other in ("eager", "inductor"):
        if "loopc" in samples and other in samples:
            res.ratio[other] = float(np.median([m / t for m, t in zip(samples["loopc"], samples[other])]))
    threads.set_num_threads(None)
    return res


def progress_line(r: Result) -> str:
    cells = [f"{b} {r.ms[b]:.2f} ms (compile {r.compile_s[b]:.1f} s)" if b in r.ms else f"{b} failed"
             for b in BACKENDS]
    check = f"; loopc vs eager rel err {r.check:.1e}" if r.check is not None else ""
    return f"  {r.workload.name}, {r.threads}t: " + ", ".join(cells) + check


def format_table(results) -> str:
    """A Markdown table: medians (ms), ratios loopc/eager and loopc/inductor, compile seconds,
    loopc's check; failures in their cells; then loopc's fallback reports."""
    head = ("| workload | threads | eager ms | inductor ms | loopc ms | loopc/eager | loopc/inductor "
            "| compile s (inductor, loopc) | loopc rel err |")
    lines = [head, "|" + "---|" * 9]

    def cell(r, b):
        return f"{r.ms[b]:.3f}" if b in r.ms else (r.error.get(b, "-") if b != "loopc" else "failed")

    def ratio(r, b):
        return f"{r.ratio[b]:.2f}" if b in r.ratio else "-"
    for r in results:
        comp = ", ".join(f"{r.compile_s[b]:.1f}" if b in r.compile_s else "-" for b in ("inductor", "loopc"))
        err = f"{r.check:.1e}" if r.check is not None else "-"
        lines.append(f"| {r.workload.name} | {r.threads} | {cell(r, 'eager')} | {cell(r, 'inductor')} | "
                     f"{cell(r, 'loopc')} | {ratio(r, 'eager')} | {ratio(r, 'inductor')} | {comp} | {err} |")
    lines.append("\nratio = median of per-round loopc time / other time (below 1: loopc is faster)")
    failures = {(r.workload.name, b): e for r in results for b, e in r.error.items()}
    for (name, b), e in failures.items():
        lines.append(f"- {name}, {b}: {e}")
    reports = {r.workload.name: r.report for r in results if r.report}
    for name, rep in reports.items():
        lines.append(f"\nloopc on {name}: {rep}")
    return "\n".join(lines)
