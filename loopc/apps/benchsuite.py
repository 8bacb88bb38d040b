"""The operator benchmark suite: loopc beside numpy (its BLAS) and PyTorch, in one process.

Used by ``benchmarks/bench_ops.py`` and ``loopc bench``. Every loopc result is checked against
the numpy reference before it is timed; times are medians of interleaved rounds; ratios are
the medians of each round's peer_time / loopc_time (> 1 means loopc is faster). Build time is
lowering + LLVM + JIT of a fresh schedule, the faster of two, in a process where LLVM and
libgomp are already loaded.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import numpy as np

from loopc import te
from loopc.runtime import threads
from loopc.runtime.timing import time_evaluator


SETTLE_SECONDS = 0.05


@dataclass
class Row:
    name: str
    threads: int
    flop: float
    loopc: float
    build: float
    numpy: float | None
    torch: float | None
    #: medians of the per-round ratios peer / loopc (each round times the peers back to back,
    #: so a slow spell of a shared machine cancels out); None where the peer is absent
    numpy_ratio: float | None = None
    torch_ratio: float | None = None


def _torch():
    try:
        import torch
        return torch
    except ImportError:
        return None


def _blas_limits(n):
    try:
        from threadpoolctl import threadpool_limits
        return threadpool_limits(limits=n, user_api="blas")
    except ImportError:  # pragma: no cover
        import contextlib
        return contextlib.nullcontext()


def _median(fn, min_repeat_ms, repeat):
    return time_evaluator(fn, number=1, repeat=repeat, min_repeat_ms=min_repeat_ms)().median


def _workloads(quick):
    """(name, flop, make(placeholders) -> out, input shapes, numpy fn, torch fn)."""
    from loopc import schedules as S
    from loopc.schedules import testing as R
    from loopc.schedules.ops import conv_out
    out = []
    for n in ((64,) if quick else (1024, 512)):
        out.append((f"matmul {n}^3", 2.0 * n ** 3, lambda A, B: S.matmul(A, B), [(n, n), (n, n)],
                    lambda a, b: a @ b, lambda t, a, b: a @ b))
    convs = [("conv N64 C1 32x32 K6 5x5 (LeNet conv1)", (64, 1, 32, 32, 6, 5, 0)),
             ("conv N64 C6 14x14 K16 5x5 (LeNet conv2)", (64, 6, 14, 14, 16, 5, 0)),
             ("conv N1 C64 56x56 K64 3x3 pad 1", (1, 64, 56, 56, 64, 3, 1)),
             ("conv N1 C256 14x14 K256 3x3 pad 1", (1, 256, 14, 14, 256, 3, 1))]
    if quick:
        convs = [("conv N2 C3 13x13 K5 3x3 pad 1", (2, 3, 13, 13, 5, 3, 1))]
    for name, (N, C, H, W, K, Rk, pad) in convs:
        P, Q = conv_out(H, Rk, 1, pad), conv_out(W, Rk, 1, pad)
        out.append((name, 2.0 * N * K * P * Q * C * Rk * Rk,
                    lambda X, Wt, pad=pad: S.conv2d_nchw(X, Wt, 1, pad), [(N, C, H, W), (K, C, Rk, Rk)],
                    lambda x, w, pad=pad: R.conv2d_nchw(x, w, 1, pad),
                    lambda t, x, w, pad=pad: t.nn.functional.conv2d(x, w, padding=pad)))
    for b, i, o in ((64, 400, 120), (64, 120, 84), (64, 84, 10)):
        out.append((f"dense {b}x{i} -> {o}", 2.0 * b * i * o, lambda X, Wt: S.dense(X, Wt), [(b, i), (o, i)],
                    lambda x, w: x @ w.T, lambda t, x, w: t.nn.functional.linear(x, w)))
    out.append(("max_pool2d 64x6x28x28 k2", 64 * 6 * 14 * 14 * 4.0, lambda X: S.max_pool2d(X, 2),
                [(64, 6, 28, 28)], lambda x: R.max_pool2d(x, 2), lambda t, x: t.nn.functional.max_pool2d(x, 2)))
    out.append(("relu 64x6x28x28", 64 * 6 * 28 * 28.0, lambda X: S.relu(X), [(64, 6, 28, 28)],
                lambda x: np.maximum(x, 0), lambda t, x: t.relu(x)))
    out.append(("softmax 64x10", 64 * 10 * 4.0, lambda X: S.softmax(X), [(64, 10)],
                lambda x: R.softmax(x), lambda t, x: t.softmax(x, dim=-1)))
    return out


def _settle(seconds=SETTLE_SECONDS):
    """A short pause before each peer is timed: the previous library's worker threads stop
    spinning (OpenMP pools busy-wait for a while after a call)."""
    time.sleep(seconds)


def _warm_up(loopc):
    """One tiny build: LLVM's target and libgomp load once per process, not per operator."""
    x = te.placeholder((8,), name="x")
    y = te.compute((8,), lambda i: x[i] + 1.0, name="y")
    loopc.build(te.create_schedule(y.op), [x, y])


def run_suite(thread_counts=(1, 2), quick=False, min_repeat_ms=100, repeat=5, log=print):
    """Build, check and time every workload at each thread count; returns the rows."""
    import loopc
    from loopc import schedules as S
    torch = _torch()
    rng = np.random.default_rng(0)
    rows = []
    _warm_up(loopc)
    for name, flop, make, shapes, np_fn, torch_fn in _workloads(quick):
        holders = [te.placeholder(sh, name=f"in{n}") for n, sh in enumerate(shapes)]
        out = make(*holders)
        builds = []
        for _ in range(2):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", S.NoTunedRecordWarning)
                s = S.schedule(out)
            t0 = time.perf_counter()
            f = loopc.build(s, holders + [out], name="op")
            builds.append(time.perf_counter() - t0)
        build = min(builds)
        arrays = [rng.standard_normal(sh).astype(np.float32) for sh in shapes]
        y = np.zeros(out.shape, np.float32)
        f(*arrays, y)
        want = np_fn(*arrays)
        err = float(np.max(np.abs(y - want)) / max(1.0, float(np.max(np.abs(want)))))
        if err > 1e-3:
            raise AssertionError(f"{name}: loopc disagrees with numpy (relative error {err:.1e})")
        tensors = [torch.from_numpy(a) for a in arrays] if torch is not None else None
        for n in thread_counts:
            threads.set_num_threads(n)
            if torch is not None:
                torch.set_num_threads(n)
            # interleaved rounds: a slow spell of a shared machine hits every peer alike
            times = {"loopc": [], "numpy": [], "torch": []}
            timed_loopc = f.time_evaluator(number=1, repeat=1, min_repeat_ms=min_repeat_ms)
            for _ in range(repeat):
                _settle()
                times["loopc"].append(timed_loopc(*arrays, y).median)
                _settle()
                with _blas_limits(n):
                    times["numpy"].append(_median(lambda: np_fn(*arrays), min_repeat_ms, 1))
                if torch is not None:
                    _settle()
                    with torch.no_grad():
                        times["torch"].append(_median(lambda: torch_fn(torch, *tensors), min_repeat_ms, 1))
            t_loopc, t_np = float(np.median(times["loopc"])), float(np.median(times["numpy"]))
            t_torch = float(np.median(times["torch"])) if torch is not None else None
            ratios = {peer: float(np.median(np.array(times[peer]) / np.array(times["loopc"])))
                      for peer in ("numpy", "torch") if times[peer]}
            row = Row(name, n, flop, t_loopc, build, t_np, t_torch, ratios.get("numpy"), ratios.get("torch"))
            rows.append(row)
            if log:
                log(format_row(row))
    return rows


def format_header() -> str:
    return (f"{'workload':<42} {'thr':>3} {'loopc ms':>9} {'GFLOP/s':>8} {'numpy ms':>9} {'x np':>6} "
            f"{'torch ms':>9} {'x torch':>7} {'build ms':>8}")


def format_row(r: Row) -> str:
    def ms(t):
        return f"{t * 1e3:9.3f}" if t is not None else f"{'-':>9}"

    def ratio(paired, t):
        if paired is None and t is not None:
            paired = t / r.loopc
        return f"{paired:6.2f}" if paired is not None else f"{'-':>6}"
    return (f"{r.name:<42} {r.threads:>3} {ms(r.loopc)} {r.flop / r.loopc / 1e9:8.1f} {ms(r.numpy)} "
            f"{ratio(r.numpy_ratio, r.numpy)} {ms(r.torch)} {ratio(r.torch_ratio, r.torch):>7} {r.build * 1e3:8.0f}")
