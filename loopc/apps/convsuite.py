"""The convolutions of real models, loopc beside PyTorch (oneDNN), in one process.

Used by ``benchmarks/conv_suite.py``. ``suite(model, batch)`` lists every distinct convolution of
ResNet-18 or MobileNetV2 (224x224 input) at a batch size; ``measure`` builds loopc's schedule
for each (the default template, or the best of a short tuning run), checks it against PyTorch,
and times loopc and PyTorch in interleaved rounds at each thread count. Ratios are medians of
the per-round torch_time / loopc_time (> 1: loopc is faster).
"""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from loopc.schedules.ops import conv_out


@dataclass(frozen=True)
class Conv:
    """One convolution layer: X (N, C, H, H) * W (K, C/groups, R, R), stride, padding."""
    N: int
    C: int
    H: int
    K: int
    R: int
    stride: int = 1
    pad: int = 0
    groups: int = 1

    @property
    def P(self) -> int:
        return conv_out(self.H, self.R, self.stride, self.pad)

    @property
    def flop(self) -> float:
        return 2.0 * self.N * self.K * self.P * self.P * (self.C // self.groups) * self.R * self.R

    @property
    def shapes(self):
        return (self.N, self.C, self.H, self.H), (self.K, self.C // self.groups, self.R, self.R)

    def __str__(self):
        kind = "dw " if self.groups == self.C and self.groups > 1 else (f"g{self.groups} " if self.groups > 1 else "")
        return (f"{kind}{self.C}->{self.K} {self.H}^2 {self.R}x{self.R}"
                + (f"/{self.stride}" if self.stride > 1 else ""))


def resnet18(batch):
    """The 11 distinct convolutions of ResNet-18."""
    layers = [Conv(batch, 3, 224, 64, 7, 2, 3), Conv(batch, 64, 56, 64, 3, 1, 1)]
    for c, h in ((64, 56), (128, 28), (256, 14)):
        layers += [Conv(batch, c, h, 2 * c, 3, 2, 1), Conv(batch, 2 * c, h // 2, 2 * c, 3, 1, 1),
                   Conv(batch, c, h, 2 * c, 1, 2, 0)]
    return layers


#: MobileNetV2's inverted residual settings: expansion t, output channels c, repeats n, stride s
MOBILENET_V2 = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                (6, 160, 3, 2), (6, 320, 1, 1))


def mobilenet_v2(batch):
    """The distinct convolutions of MobileNetV2 (torchvision's): the 3x3/2 stem, each block's
    1x1 expansion, 3x3 depthwise and 1x1 projection, and the last 1x1 to 1280 channels."""
    layers, c_in, h = [Conv(batch, 3, 224, 32, 3, 2, 1)], 32, 112
    for t, c, n, s in MOBILENET_V2:
        for i in range(n):
            stride, hidden = (s if i == 0 else 1), c_in * t
            if t != 1:
                layers.append(Conv(batch, c_in, h, hidden, 1))
            layers.append(Conv(batch, hidden, h, hidden, 3, stride, 1, groups=hidden))
            h = conv_out(h, 3, stride, 1)
            layers.append(Conv(batch, hidden, h, c, 1))
            c_in = c
    layers.append(Conv(batch, c_in, h, 1280, 1))
    return list(dict.fromkeys(layers))


SUITES = {"resnet18": resnet18, "mobilenet_v2": mobilenet_v2}


@dataclass
class Result:
    layer: Conv
    how: str                       # "default" or "tuned"
    build_s: float
    loopc_ms: dict = field(default_factory=dict)      # threads -> median ms
    torch_ms: dict = field(default_factory=dict)
    ratio: dict = field(default_factory=dict)         # threads -> median of torch / loopc

    def gflops(self, threads) -> float:
        return self.layer.flop / self.loopc_ms[threads] / 1e6


def declare(layer: Conv):
    from loopc import schedules as S
    from loopc import te
    xs, ws = layer.shapes
    X = te.placeholder(xs, name="X")
    Wt = te.placeholder(ws, name="W")
    return X, Wt, S.conv2d_nchw(X, Wt, layer.stride, layer.pad, groups=layer.groups)


def build(layer: Conv, records=None):
    """loopc's kernel of ``layer``: the library's schedule (inside ``apply_history_best(records)``
    when records are given), and the seconds the build took (schedule, lowering, LLVM, JIT; the
    records are read before the clock starts)."""
    import contextlib

    import loopc
    from loopc import autotune
    from loopc import schedules as S
    X, Wt, Y = declare(layer)
    context = autotune.apply_history_best(records) if records is not None else contextlib.nullcontext()
    with context, warnings.catch_warnings():
        warnings.simplefilter("ignore", S.NoTunedRecordWarning)
        t0 = time.perf_counter()
        s = S.schedule(Y)
        f = loopc.build(s, [X, Wt, Y], name="conv")
        return f, time.perf_counter() - t0


def measure(layer: Conv, f, how, build_s, thread_counts=(1, 2), repeat=5, min_repeat_ms=60) -> Result:
    """Check ``f`` against PyTorch, then time both at each thread count in ``repeat`` rounds."""
    import torch
    from loopc.runtime import threads
    from loopc.runtime.timing import time_evaluator
    rng = np.random.default_rng(0)
    xs, ws = layer.shapes
    x = rng.standard_normal(xs).astype(np.float32)
    w = rng.standard_normal(ws).astype(np.float32)
    y = np.zeros((layer.N, layer.K, layer.P, layer.P), np.float32)
    tx, tw = torch.from_numpy(x), torch.from_numpy(w)

    def run_torch():
        return torch.nn.functional.conv2d(tx, tw, stride=layer.stride, padding=layer.pad, groups=layer.groups)
    f(x, w, y)
    with torch.no_grad():
        want = run_torch().numpy()
    err = float(np.max(np.abs(y - want)) / max(1.0, float(np.max(np.abs(want)))))
    if err > 1e-3:
        raise AssertionError(f"{layer}: loopc disagrees with PyTorch (relative error {err:.1e})")
    res = Result(layer, how, build_s)
    timed = f.time_evaluator(number=1, repeat=1, min_repeat_ms=min_repeat_ms)
    for n in thread_counts:
        threads.set_num_threads(n)
        torch.set_num_threads(n)
        mine, theirs = [], []
        for _ in range(repeat):
            time.sleep(0.03)
            mine.append(timed(x, w, y).median)
            time.sleep(0.03)
            with torch.no_grad():
                theirs.append(time_evaluator(run_torch, number=1, repeat=1, min_repeat_ms=min_repeat_ms)().median)
        res.loopc_ms[n] = float(np.median(mine)) * 1e3
        res.torch_ms[n] = float(np.median(theirs)) * 1e3
        res.ratio[n] = float(np.median([t / m for t, m in zip(theirs, mine)]))
    threads.set_num_threads(None)
    return res


def tune(layer: Conv, log, trials=64, seconds=30.0, n_parallel=None):
    """A short tuning run of ``layer``'s library template (model tuner, at most ``trials``
    measurements and about ``seconds``); the records go to ``log``."""
    from loopc import autotune
    from loopc.schedules import tasks
    X, Wt, Y = declare(layer)
    name, args = tasks.workload(Y)
    task = autotune.create_task(tasks.task_name(name, "llvm"), args, target="llvm")
    tuner = autotune.ModelTuner(task, seed=0)
    option = autotune.measure_option(builder=autotune.LocalBuilder(n_parallel=n_parallel, timeout=10.0),
                                     runner=autotune.LocalRunner(number=2, repeat=3, timeout=10.0))
    deadline = time.perf_counter() + seconds
    done = 0
    while done < trials and time.perf_counter() < deadline:
        step = min(8, trials - done)
        tuner.tune(done + step, option, callbacks=[autotune.log_to_file(log)])
        done += step
        if not tuner.has_next():
            break


def geomean(values) -> float:
    values = list(values)
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else float("nan")


def format_table(results, thread_counts) -> str:
    """A Markdown table of ``results``, then the geomean and the lowest ratio at each thread
    count of the default schedules, and of the best schedule each layer has (tuned if tuned)."""
    head = "| layer | schedule | build ms | " + " | ".join(
        f"torch {n}t ms | loopc {n}t GFLOP/s | ratio {n}t" for n in thread_counts) + " |"
    lines = [head, "|" + "---|" * (3 + 3 * len(thread_counts))]
    for r in results:
        cells = [f"{r.torch_ms[n]:.3f} | {r.gflops(n):.1f} | {r.ratio[n]:.2f}" for n in thread_counts]
        lines.append(f"| {r.layer} | {r.how} | {r.build_s * 1e3:.0f} | " + " | ".join(cells) + " |")
    defaults = [r for r in results if r.how == "default"]
    best = {}
    for r in results:
        if r.layer not in best or r.ratio[thread_counts[0]] > best[r.layer].ratio[thread_counts[0]]:
            best[r.layer] = r
    summaries = [("geomean, default", defaults)]
    if len(defaults) != len(results):
        summaries.append(("geomean, tuned where tuned", list(best.values())))
    for label, rows in summaries:
        cells = [f"**{label}**", "", ""]
        for n in thread_counts:
            ratios = [r.ratio[n] for r in rows]
            cells += ["", "", f"{geomean(ratios):.2f} (min {min(ratios):.2f})"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
