"""GPU check of loopc's CUDA target: every CUDA op against numpy, then sgemm against cuBLAS.

One script, for the first (and every) run on a machine with an NVIDIA GPU; no network.
Sections, each of which prints its error and lets the others run:

1. environment: GPU model, compute capability, numba / numba-cuda / torch / cupy versions;
2. ops: elementwise add, hand-scheduled matmuls (naive, shared tiles, shared + register
   tiles), then the operator library with its CUDA schedules (``loopc.schedules.schedule(out,
   target="cuda")``): relu, matmul with tails, dense with bias, conv2d direct and im2col at
   LeNet's and ResNet's sizes, max pooling, softmax and log_softmax; a block-shared stage with a
   per-block reduction; each against numpy in float64, with its kernel time;
3. arrays: numba device arrays, PyTorch CUDA tensors and CuPy arrays passed in place (through
   ``__cuda_array_interface__``), argument checks on device arrays, PTX;
4. sgemm: 1024, 2048, 4096 — loopc's tiled matmul (a few tile configurations, the best kept)
   against ``torch.matmul`` in FP32 with TF32 off (cuBLAS), in GFLOP/s;
5. lenet: forward and training step at batch 64 on loopc's CUDA kernels (``loopc.nn``,
   ``target="cuda"``): results against the CPU, times against PyTorch CUDA, top-10 kernels;
6. tune: the autotuner on the GPU (``matmul_cuda`` at 2048, ``--tune-trials`` trials), then
   ``schedules.schedule`` applying the best record.

numba compiles every kernel at its first launch (1 to 4 s each on the H100 machine): all six
sections take about 7 minutes; ``--sections sgemm lenet`` picks some.

It prints a table at the end and, with ``--out FILE``, writes the numbers as JSON; it writes
nothing else. ``--sim`` runs the same logic in numba's CUDA simulator on tiny sizes (no GPU
needed; timings meaningless) to check the script itself.

    python benchmarks/gpu_check.py [--out gpu_check.json] [--sections sgemm lenet tune]
    python benchmarks/gpu_check.py --sim
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import time
import traceback
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def bootstrap_imports():
    """Import loopc: the installed package, else this source checkout, which was never
    ``pip install``-ed (``loopc.targets`` and ``loopc.schedules`` live in ``targets/`` and
    ``schedules/`` at the top of the repository)."""
    try:
        import loopc.targets.cuda  # noqa: F401
        import loopc
        return loopc
    except ImportError:
        pass
    for name in [m for m in sys.modules if m == "loopc" or m.startswith("loopc.")]:
        del sys.modules[name]
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    import loopc
    try:
        import loopc.targets.cuda  # noqa: F401
    except ImportError:
        loopc.__path__.append(ROOT)        # loopc.targets -> ROOT/targets, loopc.schedules -> ROOT/schedules
        import loopc.targets.cuda  # noqa: F401
    return loopc


if not hasattr(np, "row_stack"):
    # numba-cuda 0.30 registers an overload for np.row_stack, which numpy 2.5 removed: without
    # this alias no kernel compiles there (seen on the H100 image: numpy 2.5, numba-cuda 0.30.4)
    np.row_stack = np.vstack

loopc = bootstrap_imports()
from loopc import te  # noqa: E402
from loopc.targets import cuda as cuda_target  # noqa: E402
from loopc.schedules import cuda as schedules  # noqa: E402
import loopc.schedules as lib  # noqa: E402
from loopc.schedules import testing  # noqa: E402

SECTIONS = ("ops", "arrays", "sgemm", "lenet", "tune")
RESULTS = {"sections": {}, "ops": [], "arrays": [], "sgemm": [], "errors": []}
T0 = time.time()
SGEMM_BUDGET = 150.0   # seconds of the sgemm section: later configurations are skipped after it


@contextlib.contextmanager
def section(name):
    print(f"\n==== {name}", flush=True)
    t = time.time()
    try:
        yield
        RESULTS["sections"][name] = {"ok": True, "seconds": round(time.time() - t, 2)}
    except Exception as err:  # keep going: one broken section must not hide the others
        traceback.print_exc()
        RESULTS["sections"][name] = {"ok": False, "seconds": round(time.time() - t, 2),
                                     "error": f"{type(err).__name__}: {err}"}
        RESULTS["errors"].append(f"{name}: {type(err).__name__}: {err}")
    print(f"---- {name}: {time.time() - t:.1f} s", flush=True)


def rand(rng, *shape):
    return rng.uniform(-1, 1, size=shape).astype(np.float32)


def rel_err(got, want):
    want = np.asarray(want, dtype=np.float64)
    got = np.asarray(got, dtype=np.float64)
    if not np.all(np.isfinite(got)):
        return float("inf")
    return float(np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-30))


# --------------------------------------------------------------------------- 1. environment


def environment(sim):
    from numba import cuda
    import numba
    env = {"python": platform.python_version(), "numpy": np.__version__, "numba": numba.__version__,
           "simulator": sim}
    try:
        from importlib.metadata import version
        env["numba-cuda"] = version("numba-cuda")
    except Exception:
        env["numba-cuda"] = "not installed (numba's built-in CUDA target)"
    if not sim:
        dev = cuda.get_current_device()
        name = dev.name.decode() if isinstance(dev.name, bytes) else str(dev.name)
        env.update({"gpu": name, "compute_capability": list(dev.compute_capability),
                    "multiprocessors": dev.MULTIPROCESSOR_COUNT})
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                                  "--format=csv,noheader"], capture_output=True, text=True, timeout=20)
            env["nvidia-smi"] = out.stdout.strip()
        except Exception as err:
            env["nvidia-smi"] = f"unavailable: {err}"
    else:
        env["gpu"] = "numba CUDA simulator"
    for mod in ("torch", "cupy"):
        try:
            m = __import__(mod)
            env[mod] = m.__version__
            if mod == "torch":
                env["torch.cuda"] = bool(m.cuda.is_available())
        except Exception as err:
            env[mod] = f"unavailable ({type(err).__name__})"
    RESULTS["environment"] = env
    for k, v in env.items():
        print(f"  {k:<20s} {v}")


# --------------------------------------------------------------------------- 2. ops


def matmul_tensors(M, N, K):
    A = te.placeholder((M, K), name="A")
    B = te.placeholder((K, N), name="B")
    k = te.reduce_axis((0, K), name="k")
    C = te.compute((M, N), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    return A, B, C


def op_add(n, sim):
    A = te.placeholder((n, n), name="A")
    B = te.placeholder((n, n), name="B")
    C = te.compute((n, n), lambda i, j: A[i, j] + B[i, j], name="C")
    s = te.create_schedule(C.op)
    schedules.elementwise(s, C, threads=64 if sim else 256)
    return s, [A, B, C], lambda a, b: a.astype(np.float64) + b, 3 * n * n * 4, "bytes"


def library(out, inputs, ref, work, unit, schedule=None):
    """An operator of loopc.schedules with its default CUDA schedule (``schedule`` overrides)."""
    if schedule is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", lib.NoTunedRecordWarning)
            s = lib.schedule(out, target="cuda")
    else:
        s = te.create_schedule(out.op)
        schedule(s, s[out])
    return s, [*inputs, out], ref, work, unit


def op_relu(n, sim):
    A = te.placeholder((n, n), name="A")
    return library(lib.relu(A), [A], lambda a: np.maximum(a, 0).astype(np.float64), 2 * n * n * 4, "bytes")


def op_matmul_naive(M, N, K, sim):
    A, B, C = matmul_tensors(M, N, K)
    s = te.create_schedule(C.op)
    by, bx, ty, tx = s[C].tile(C.op.axis[0], C.op.axis[1], 8 if sim else 16, 8 if sim else 16)
    for ax, tag in ((by, "blockIdx.y"), (bx, "blockIdx.x"), (ty, "threadIdx.y"), (tx, "threadIdx.x")):
        s[C].bind(ax, te.thread_axis(tag))
    return s, [A, B, C], lambda a, b: a.astype(np.float64) @ b, 2 * M * N * K, "flop"


def op_matmul_shared(M, N, K, sim):
    """Shared tiles at the reduction loop, accumulation in C (no register tile)."""
    from loopc.schedules.cuda import matmul_shared
    A, B, C = matmul_tensors(M, N, K)
    t = 8 if sim else 16
    s = matmul_shared(A, B, C, tile=t, k_tile=t, fetch="2d")
    return s, [A, B, C], lambda a, b: a.astype(np.float64) @ b, 2 * M * N * K, "flop"


def op_matmul_tiled(M, N, K, sim, auto=False):
    """The library GEMM: fixed tiles with the flat cooperative fetch, or schedules.schedule's."""
    if auto:
        A = te.placeholder((M, K), name="A")
        B = te.placeholder((K, N), name="B")
        return library(lib.matmul(A, B), [A, B], lambda a, b: a.astype(np.float64) @ b, 2 * M * N * K, "flop")
    A, B, C = matmul_tensors(M, N, K)
    if sim:
        s = schedules.matmul(A, B, C, block=(16, 16), thread=(2, 2), k_tile=8, fetch="fuse")
    else:
        s = schedules.matmul(A, B, C, block=(64, 64), thread=(4, 4), k_tile=8, fetch="fuse")
    return s, [A, B, C], lambda a, b: a.astype(np.float64) @ b, 2 * M * N * K, "flop"


def op_dense_bias(batch, n_in, n_out, sim):
    """Y = X @ W^T + b (loopc.schedules.dense): a tiled GEMM kernel and a bias kernel."""
    X = te.placeholder((batch, n_in), name="X")
    W = te.placeholder((n_out, n_in), name="W")
    bias = te.placeholder((n_out,), name="bias")
    return library(lib.dense(X, W, bias), [X, W, bias], lambda x, w, b: testing.dense(x, w, b),
                   2 * batch * n_in * n_out, "flop")


def op_conv2d(N, C, H, K, R, stride, pad, method=None):
    """loopc.schedules.conv2d_nchw; ``method``: "direct" or "im2col" (None: the default's choice)."""
    X = te.placeholder((N, C, H, H), name="X")
    Wt = te.placeholder((K, C, R, R), name="W")
    Y = lib.conv2d_nchw(X, Wt, stride=stride, padding=pad)
    P = Y.shape[2]
    schedule = None if method is None else (lambda s, st: lib.cuda.schedule_conv2d(s, st, method=method))
    return library(Y, [X, Wt], lambda x, w: testing.conv2d_nchw(x, w, stride, pad), 2 * N * K * P * P * C * R * R,
                   "flop", schedule)


def op_maxpool(N, C, H, sim):
    X = te.placeholder((N, C, H, H), name="X")
    P = lib.max_pool2d(X, 3, 2)
    return library(P, [X], lambda x: testing.max_pool2d(x, 3, 2), (N * C * H * H + P.op.shape[2] ** 2 * N * C) * 4,
                   "bytes")


def op_softmax(M, N, log=False):
    X = te.placeholder((M, N), name="X")
    if log:
        return library(lib.log_softmax(X), [X], testing.log_softmax, 2 * M * N * 4, "bytes")
    return library(lib.softmax(X), [X], testing.softmax, 2 * M * N * 4, "bytes")


def op_block_reduce(M, N, sim):
    """B = 2A staged per block in shared memory by all threads; the row sum on thread 0."""
    from loopc.apps.cuda_examples import block_reduce
    s, args = block_reduce(M, N, 16 if sim else 128)
    return s, args, lambda a: 2 * a.astype(np.float64).sum(axis=1), M * N * 4, "bytes"


def op_list(sim):
    if sim:
        return [("add 16x16", lambda: op_add(16, sim)),
                ("relu 16x16", lambda: op_relu(16, sim)),
                ("matmul naive 13x11x7", lambda: op_matmul_naive(13, 11, 7, sim)),
                ("matmul shared 13x11x7", lambda: op_matmul_shared(13, 11, 7, sim)),
                ("matmul tiled 19x19x13", lambda: op_matmul_tiled(19, 19, 13, sim)),
                ("matmul auto 19x21x13", lambda: op_matmul_tiled(19, 21, 13, sim, auto=True)),
                ("dense+bias 5x17x9", lambda: op_dense_bias(5, 17, 9, sim)),
                ("conv2d 1x2x5x5 k3 3x3 p1", lambda: op_conv2d(1, 2, 5, 3, 3, 1, 1)),
                ("conv2d 1x3x7x7 k4 3x3 s2 im2col", lambda: op_conv2d(1, 3, 7, 4, 3, 2, 1, "im2col")),
                ("maxpool 1x2x9x9", lambda: op_maxpool(1, 2, 9, sim)),
                ("softmax 4x13", lambda: op_softmax(4, 13)),
                ("log_softmax 3x11", lambda: op_softmax(3, 11, log=True)),
                ("block reduce 3x40", lambda: op_block_reduce(3, 40, sim))]
    return [("add 4096x4096", lambda: op_add(4096, sim)),
            ("relu 4096x4096", lambda: op_relu(4096, sim)),
            ("matmul naive 1024^3", lambda: op_matmul_naive(1024, 1024, 1024, sim)),
            ("matmul shared 1024^3", lambda: op_matmul_shared(1024, 1024, 1024, sim)),
            ("matmul shared 257x131x67", lambda: op_matmul_shared(257, 131, 67, sim)),
            ("matmul tiled 1024^3", lambda: op_matmul_tiled(1024, 1024, 1024, sim)),
            ("matmul auto 1000x999x997", lambda: op_matmul_tiled(1000, 999, 997, sim, auto=True)),
            ("matmul auto 2500x1999x777", lambda: op_matmul_tiled(2500, 1999, 777, sim, auto=True)),
            ("dense+bias 64x800x500", lambda: op_dense_bias(64, 800, 500, sim)),
            ("dense+bias 64x400x120", lambda: op_dense_bias(64, 400, 120, sim)),
            ("conv LeNet1 64x1x28 k6 5x5 p2", lambda: op_conv2d(64, 1, 28, 6, 5, 1, 2)),
            ("conv LeNet2 64x6x14 k16 direct", lambda: op_conv2d(64, 6, 14, 16, 5, 1, 0, "direct")),
            ("conv LeNet2 64x6x14 k16 im2col", lambda: op_conv2d(64, 6, 14, 16, 5, 1, 0, "im2col")),
            ("conv 1x64x56 k64 3x3 direct", lambda: op_conv2d(1, 64, 56, 64, 3, 1, 1, "direct")),
            ("conv 1x64x56 k64 3x3 im2col", lambda: op_conv2d(1, 64, 56, 64, 3, 1, 1, "im2col")),
            ("conv 8x256x14 k256 3x3 s2", lambda: op_conv2d(8, 256, 14, 256, 3, 2, 1)),
            ("maxpool 32x16x65x65", lambda: op_maxpool(32, 16, 65, sim)),
            ("softmax 4096x1000", lambda: op_softmax(4096, 1000)),
            ("log_softmax 64x10", lambda: op_softmax(64, 10, log=True)),
            ("block reduce 1024x4096", lambda: op_block_reduce(1024, 4096, sim))]


def run_ops(sim, rng):
    for name, make in op_list(sim):
        try:
            run_op(name, make, sim, rng)
        except Exception as err:
            traceback.print_exc()
            text = f"{type(err).__name__}: {err}"
            if not (RESULTS["ops"] and RESULTS["ops"][-1].get("op") == name):
                RESULTS["ops"].append({"op": name})
            RESULTS["ops"][-1].update(ok=False, error=text)
            RESULTS["errors"].append(f"op {name}: {text}")


def run_op(name, make, sim, rng):
    row = {"op": name}
    RESULTS["ops"].append(row)
    t = time.time()
    s, args, ref, work, unit = make()
    f = loopc.build(s, args, target="cuda", name="op")
    row["kernels"] = len(f.launches)
    n_in = len(args) - 1
    inputs = [rand(rng, *t_.shape) for t_ in args[:n_in]]
    out = np.full(args[-1].shape, np.nan, dtype=np.float32)
    f(*inputs, out)
    row["compile_and_first_run_s"] = round(time.time() - t, 2)
    row["rel_err"] = rel_err(out, ref(*inputs))
    row["ok"] = row["rel_err"] < 1e-5
    if not sim:
        sec = f.time_evaluator(number=10, repeat=3, min_repeat_ms=20)(*inputs, out).median
        row["ms"] = sec * 1e3
        row["rate"] = work / sec / 1e9
        row["unit"] = "GFLOP/s" if unit == "flop" else "GB/s"
    rate = f"{row['ms']:9.3f} ms {row['rate']:9.1f} {row['unit']}" if "ms" in row else ""
    print(f"  {name:<28s} {'ok ' if row['ok'] else 'BAD'} rel.err {row['rel_err']:.1e}  "
          f"{row['kernels']} kernel(s)  {rate}", flush=True)


# --------------------------------------------------------------------------- 3. arrays


def arrays_check(sim, rng):
    from numba import cuda
    n = 19 if sim else 257
    A, B, C = matmul_tensors(n, n, 13 if sim else 67)
    block = ((16, 16), (2, 2)) if sim else ((64, 64), (4, 4))
    s = schedules.matmul(A, B, C, block=block[0], thread=block[1], k_tile=8)
    f = loopc.build(s, [A, B, C], target="cuda")
    a, b = rand(rng, *A.shape), rand(rng, *B.shape)
    want = a.astype(np.float64) @ b

    def record(kind, got):
        err = rel_err(got, want)
        RESULTS["arrays"].append({"kind": kind, "rel_err": err, "ok": err < 1e-5})
        print(f"  {kind:<34s} {'ok ' if err < 1e-5 else 'BAD'} rel.err {err:.1e}", flush=True)

    dc = cuda.device_array(C.shape, np.float32)
    f(cuda.to_device(a), cuda.to_device(b), dc)
    record("numba device arrays", dc.copy_to_host())
    c = np.zeros(C.shape, np.float32)
    f(cuda.to_device(a), b, c)
    record("mixed numba device + numpy", c)
    try:
        f(cuda.to_device(a), cuda.to_device(b), cuda.device_array((n, n + 1), np.float32))
        record("shape check on a device array", np.zeros_like(want) * np.nan)
    except loopc.ArgumentError as err:
        print(f"  shape check on a device array      ok  ({str(err)[:70]}...)")
    if sim:
        print("  torch / cupy CUDA arrays: skipped in the simulator")
        return f
    try:
        import torch
        if torch.cuda.is_available():
            ta, tb = torch.from_numpy(a).cuda(), torch.from_numpy(b).cuda()
            tc = torch.empty(C.shape, device="cuda")
            f(ta, tb, tc)
            torch.cuda.synchronize()
            record("torch CUDA tensors (in place)", tc.cpu().numpy())
            try:
                f(ta, tb, torch.empty(C.shape[::-1], device="cuda").t())
                record("torch non-contiguous refused", np.zeros_like(want) * np.nan)
            except loopc.ArgumentError:
                print("  torch non-contiguous output        ok  (ArgumentError)")
        else:
            print("  torch: no CUDA")
    except ImportError:
        print("  torch: not installed")
    try:
        import cupy
        ca, cb = cupy.asarray(a), cupy.asarray(b)
        cc = cupy.empty(C.shape, dtype=cupy.float32)
        f(ca, cb, cc)
        cupy.cuda.runtime.deviceSynchronize()
        record("cupy arrays (in place)", cupy.asnumpy(cc))
    except ImportError:
        print("  cupy: not installed")
    ptx = f.get_source("ptx")
    RESULTS["ptx_lines"] = ptx.count("\n")
    print(f"  get_source('ptx'): {ptx.count(chr(10))} lines, {ptx.count('fma.rn.f32')} fma.rn.f32, "
          f"{ptx.count('ld.shared')} ld.shared, {ptx.count('ld.local')} ld.local")
    return f


# --------------------------------------------------------------------------- 4. sgemm

#: (block BM, BN), (thread TM, TN), BK, unroll the k-tile, cooperative fetch of the shared tiles
CONFIGS = [((128, 128), (8, 8), 16, False, "2d"), ((128, 128), (8, 8), 8, False, "2d"),
           ((128, 128), (8, 8), 8, True, "2d"), ((128, 128), (8, 8), 32, False, "2d"),
           ((128, 64), (8, 4), 16, False, "2d"), ((64, 128), (4, 8), 16, False, "2d"),
           ((128, 128), (8, 8), 8, False, "fuse"), ((64, 64), (4, 4), 16, True, "2d"),
           ((128, 64), (8, 8), 16, False, "2d")]
SIM_CONFIGS = [((16, 16), (2, 2), 8, False, "fuse"), ((16, 16), (2, 4), 4, True, "2d")]
KEEP = 2   # configurations carried from the first (largest) size to the others


def time_torch(torch, a, b, c, number=10, repeat=3):
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.matmul(a, b, out=c)
    torch.cuda.synchronize()
    out = []
    for _ in range(repeat):
        start.record()
        for _ in range(number):
            torch.matmul(a, b, out=c)
        end.record()
        end.synchronize()
        out.append(start.elapsed_time(end) / 1e3 / number)
    return float(np.median(out))


def sgemm_one(n, cfg, sim, arrays, want):
    (bm, bn), (tm, tn), bk, unroll, fetch = cfg
    A, B, C = matmul_tensors(n, n, n)
    s = schedules.matmul(A, B, C, block=(bm, bn), thread=(tm, tn), k_tile=bk, unroll_k=unroll, fetch=fetch)
    t = time.time()
    f = loopc.build(s, [A, B, C], target="cuda", name="sgemm")
    a, b, c = arrays
    f(a, b, c)
    compile_s = time.time() - t
    got = c.copy_to_host() if hasattr(c, "copy_to_host") else (c.cpu().numpy() if hasattr(c, "cpu") else c)
    err = rel_err(got, want)
    sec = None
    if not sim:
        sec = f.time_evaluator(number=10, repeat=3)(a, b, c).median
    return err, sec, compile_s


def sgemm(sim, rng):
    from numba import cuda
    t_start = time.time()
    sizes = [32] if sim else [4096, 1024, 2048]     # every configuration at 4096, the best ones after
    configs = SIM_CONFIGS if sim else CONFIGS
    torch = None
    if not sim:
        try:
            import torch as _torch
            if _torch.cuda.is_available():
                torch = _torch
                torch.backends.cuda.matmul.allow_tf32 = False
                torch.backends.cudnn.allow_tf32 = False
        except ImportError:
            pass
    ranked = list(configs)
    for n in sizes:
        a, b = rand(rng, n, n), rand(rng, n, n)
        if torch is not None:
            ta, tb = torch.from_numpy(a).cuda(), torch.from_numpy(b).cuda()
            tc = torch.empty((n, n), device="cuda")
            want = (ta.double() @ tb.double()).cpu().numpy()
            arrays = (ta, tb, tc)
            base = time_torch(torch, ta, tb, tc)
            base_gflops = 2 * n ** 3 / base / 1e9
            print(f"  n={n:<5d} torch.matmul FP32 (TF32 off)  {base * 1e3:8.3f} ms {base_gflops:9.1f} GFLOP/s",
                  flush=True)
        else:
            want = a.astype(np.float64) @ b
            arrays = (cuda.to_device(a), cuda.to_device(b), cuda.device_array((n, n), np.float32))
            base, base_gflops = None, None
        rows = []
        for cfg in ranked:
            if time.time() - t_start > SGEMM_BUDGET:
                print(f"  n={n}: time budget reached, skipping {cfg}")
                continue
            row = {"n": n, "block": list(cfg[0]), "thread": list(cfg[1]), "k_tile": cfg[2], "unroll_k": cfg[3],
                   "fetch": cfg[4], "cublas_gflops": base_gflops}
            RESULTS["sgemm"].append(row)
            try:
                err, sec, compile_s = sgemm_one(n, cfg, sim, arrays, want)
            except Exception as err_:
                row["error"] = f"{type(err_).__name__}: {err_}"
                print(f"  n={n:<5d} {cfg}: {row['error']}")
                continue
            row.update(rel_err=err, ok=err < 1e-4, compile_s=round(compile_s, 2))
            text = f"  n={n:<5d} loopc {str(cfg):<44s} rel.err {err:.1e}"
            if sec is not None:
                row["ms"] = sec * 1e3
                row["gflops"] = 2 * n ** 3 / sec / 1e9
                text += f" {sec * 1e3:8.3f} ms {row['gflops']:9.1f} GFLOP/s"
                if base_gflops:
                    row["vs_cublas"] = row["gflops"] / base_gflops
                    text += f" {100 * row['vs_cublas']:5.1f}% of cuBLAS"
            print(text, flush=True)
            rows.append((row.get("gflops", 0.0), cfg))
        if not sim and rows and n == sizes[0]:
            ranked = [cfg for _, cfg in sorted(rows, key=lambda r: -r[0])][:KEEP]


# --------------------------------------------------------------------------- 5. LeNet


def _wall_ms(call, sync, number=20, repeat=5):
    call()
    sync()
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        for _ in range(number):
            call()
        sync()
        out.append((time.perf_counter() - t) / number * 1e3)
    return float(np.median(out))


def lenet(sim, rng):
    """LeNet-5 on loopc's CUDA kernels (loopc.nn, ``target="cuda"``) against the same network on
    the CPU (correctness) and in PyTorch CUDA (speed): forward and training step at batch 64.
    loopc's times include what its executor copies per call (inputs and weights to the GPU,
    the log-probabilities and gradients back) and, for the training step, the SGD update,
    which runs on the CPU."""
    from loopc.apps.lenet_bench import torch_forward_and_step, torch_lenet
    from loopc.nn.lenet import LeNet
    from loopc.nn.optim import SGD
    batch = 1 if sim else 64
    gpu, cpu = LeNet(seed=0, target="cuda"), LeNet(seed=0)
    x = rng.standard_normal((batch, 1, 28, 28)).astype(np.float32)
    labels = rng.integers(0, 10, batch).astype(np.int32)
    row = {"batch": batch}
    RESULTS["lenet"] = row
    t = time.time()
    got = gpu.forward_batch(x).copy()
    row["forward_compile_and_first_run_s"] = round(time.time() - t, 2)
    row["forward_rel_err"] = rel_err(got, cpu.forward_batch(x))
    print(f"  forward batch {batch}: rel.err {row['forward_rel_err']:.1e} against the CPU "
          f"(compile + first run {row['forward_compile_and_first_run_s']} s)", flush=True)
    if sim:
        print("  training step and timings: skipped in the simulator")
        row["ok"] = row["forward_rel_err"] < 1e-5
        return
    t = time.time()
    loss_gpu, loss_cpu = gpu.train_step(x, labels), cpu.train_step(x, labels)
    row["train_compile_and_first_run_s"] = round(time.time() - t, 2)
    row["grad_rel_err"] = max(rel_err(gpu.store.grads[k], cpu.store.grads[k]) for k in cpu.store.shapes)
    row["loss"] = [loss_gpu, loss_cpu]
    row["ok"] = row["forward_rel_err"] < 1e-5 and row["grad_rel_err"] < 1e-4
    print(f"  train step: loss {loss_gpu:.6f} (CPU {loss_cpu:.6f}), worst gradient rel.err {row['grad_rel_err']:.1e}",
          flush=True)
    from numba import cuda
    ex = gpu.executor(batch)
    tg = ex.train_graph
    opt = SGD(gpu.store, lr=0.01, momentum=0.9)

    def step():
        ex.run()
        opt.step()
    row["loopc_forward_ms"] = _wall_ms(lambda: ex.run(outputs=(tg.logp,)), cuda.synchronize)
    row["loopc_train_ms"] = _wall_ms(step, cuda.synchronize)
    with loopc.profile() as prof:
        for _ in range(10):
            step()
    print("  top-10 kernels of the training step (synchronised after each):")
    print("\n".join("    " + line for line in prof.table(top=10).splitlines()))
    try:
        import torch
        net = torch_lenet(cpu).cuda()
        tforward, tstep = torch_forward_and_step(net, torch.from_numpy(x).cuda(),
                                                 torch.from_numpy(labels.astype(np.int64)).cuda())
        row["torch_forward_ms"] = _wall_ms(tforward, torch.cuda.synchronize)
        row["torch_train_ms"] = _wall_ms(tstep, torch.cuda.synchronize)
    except Exception as err:    # torch without CUDA, or not installed
        print(f"  PyTorch CUDA: unavailable ({type(err).__name__}: {err})")
    for what in ("forward", "train"):
        mine, theirs = row[f"loopc_{what}_ms"], row.get(f"torch_{what}_ms")
        ratio = f"  loopc/torch {mine / theirs:5.2f}x" if theirs else ""
        peer = f"   PyTorch CUDA {theirs:8.3f} ms" if theirs else ""
        print(f"  LeNet {what:<8s} batch {batch}: loopc {mine:8.3f} ms{peer}{ratio}", flush=True)


# --------------------------------------------------------------------------- 6. tuning


def tune(sim, trials, out_dir):
    """The autotuner on the GPU: ``matmul_cuda`` (block/thread tiles, k depth, unroll, fetch)
    for a few trials — builds in worker processes, runs timed with CUDA events, each checked
    against the CPU — then ``schedules.schedule`` with the log applies the best."""
    import tempfile
    from loopc import autotune
    n = 32 if sim else 2048
    log = os.path.join(out_dir or tempfile.mkdtemp(), "gpu_tune.jsonl")
    task = autotune.create_task("matmul_cuda", (n, n, n), target="cuda")
    print(f"  {task.name}{task.args} on {task.target_string}: {len(task.config_space)} configs, {trials} trials")
    option = autotune.measure_option(builder=autotune.LocalBuilder(n_parallel=4, timeout=60),
                                     runner=autotune.LocalRunner(number=1 if sim else 10, repeat=1 if sim else 3,
                                                                 timeout=60))
    t = time.time()
    autotune.ModelTuner(task, seed=0).tune(trials, option, callbacks=[autotune.log_to_file(log)])
    records = autotune.load_records(log)
    good = [r for r in records if r.ok]
    errors = sorted({r.error["kind"] for r in records if not r.ok})
    row = {"n": n, "trials": len(records), "ok": len(good), "errors": errors, "seconds": round(time.time() - t, 1),
           "log": log}
    RESULTS["tune"] = row
    if good:
        best = max(good, key=lambda r: r.gflops)
        row.update(best_gflops=best.gflops, best_config=best.config_entity().to_json()["knobs"])
        print(f"  {len(good)}/{len(records)} measured in {row['seconds']} s (errors: {errors or 'none'}); best "
              f"{best.gflops:.1f} GFLOP/s: {row['best_config']}")
        A = te.placeholder((n, n), name="A")
        B = te.placeholder((n, n), name="B")
        C = lib.matmul(A, B)
        with autotune.apply_history_best(log):
            s = lib.schedule(C, target="cuda")
        f = loopc.build(s, [A, B, C], target="cuda")
        rng = np.random.default_rng(1)
        a, b, c = rand(rng, n, n), rand(rng, n, n), np.zeros((n, n), np.float32)
        f(a, b, c)
        row["applied_rel_err"] = rel_err(c, a.astype(np.float64) @ b)
        print(f"  schedules.schedule under apply_history_best: rel.err {row['applied_rel_err']:.1e}")
        if row["applied_rel_err"] > 1e-5:
            raise AssertionError("the tuned schedule computes a wrong result")
    else:
        raise AssertionError(f"no successful measurement; errors: {errors}")


# --------------------------------------------------------------------------- main


def summary():
    print("\n================ summary")
    env = RESULTS.get("environment", {})
    print(f"GPU: {env.get('gpu', '?')}  cc {env.get('compute_capability', '?')}  numba {env.get('numba')}  "
          f"numba-cuda {env.get('numba-cuda')}  torch {env.get('torch')}")
    print(f"\n{'op':<30s} {'ok':<4s} {'rel.err':>9s} {'ms':>9s} {'rate':>10s}")
    for r in RESULTS["ops"]:
        ms = f"{r['ms']:9.3f}" if "ms" in r else f"{'-':>9s}"
        rate = f"{r['rate']:7.1f} {r['unit']}" if "rate" in r else ""
        ok = "yes" if r.get("ok") else "NO"
        print(f"{r['op']:<30s} {ok:<4s} {r.get('rel_err', float('nan')):9.1e} {ms} {rate}")
    for r in RESULTS["arrays"]:
        print(f"{r['kind']:<30s} {'yes' if r['ok'] else 'NO':<4s} {r['rel_err']:9.1e}")
    best = {}
    for r in RESULTS["sgemm"]:
        if "gflops" in r and r.get("ok") and r["gflops"] > best.get(r["n"], {}).get("gflops", 0):
            best[r["n"]] = r
    if best:
        print(f"\n{'sgemm n':<8s} {'loopc GFLOP/s':>14s} {'cuBLAS GFLOP/s':>15s} {'ratio':>7s}  best config")
        for n, r in sorted(best.items()):
            cub = r.get("cublas_gflops")
            ratio = f"{100 * r['gflops'] / cub:6.1f}%" if cub else "     -"
            cubs = f"{cub:15.1f}" if cub else f"{'-':>15s}"
            print(f"{n:<8d} {r['gflops']:14.1f} {cubs} {ratio}  block {r['block']} thread {r['thread']} "
                  f"k {r['k_tile']} unroll {r['unroll_k']} fetch {r['fetch']}")
    le = RESULTS.get("lenet")
    if le and "loopc_forward_ms" in le:
        print(f"\nLeNet batch {le['batch']}: forward {le['loopc_forward_ms']:.3f} ms (PyTorch CUDA "
              f"{le.get('torch_forward_ms', float('nan')):.3f}), training step {le['loopc_train_ms']:.3f} ms "
              f"(PyTorch CUDA {le.get('torch_train_ms', float('nan')):.3f})")
    bad = [r["op"] for r in RESULTS["ops"] if not r.get("ok")] + \
          (["lenet"] if le and not le.get("ok") else []) + \
          [r["kind"] for r in RESULTS["arrays"] if not r["ok"]] + \
          [f"sgemm {r['n']} {r['block']}" for r in RESULTS["sgemm"] if "rel_err" in r and not r["ok"]]
    states = ", ".join(f"{k}={'ok' if v['ok'] else 'FAILED'}" for k, v in RESULTS["sections"].items())
    print(f"\nsections: {states}")
    print(f"wrong results: {', '.join(bad) if bad else 'none'}")
    print(f"errors: {len(RESULTS['errors'])}; total {time.time() - T0:.1f} s")
    for e in RESULTS["errors"]:
        print(f"  {e}")


def smoke_or_reexec(sim):
    """Compile and run a one-line kernel. If numba cannot find libNVVM and a CUDA toolkit sits
    in /usr/local/cuda, run the script again with CUDA_HOME pointing there."""
    A = te.placeholder((64,), name="A")
    B = te.compute((64,), lambda i: A[i] + 1.0, name="B")
    s = te.create_schedule(B.op)
    schedules.elementwise(s, B, threads=32)
    f = loopc.build(s, [A, B], target="cuda", name="smoke")
    a, b = np.arange(64, dtype=np.float32), np.zeros(64, np.float32)
    try:
        f(a, b)
    except Exception as err:
        if (not sim and "CUDA_HOME" not in os.environ and os.path.isdir("/usr/local/cuda")
                and "LOOPC_GPU_CHECK_RETRY" not in os.environ):
            print(f"  the smoke kernel failed ({type(err).__name__}: {err}); retrying with CUDA_HOME=/usr/local/cuda")
            env = dict(os.environ, CUDA_HOME="/usr/local/cuda", LOOPC_GPU_CHECK_RETRY="1")
            sys.exit(subprocess.run([sys.executable, os.path.abspath(__file__), *sys.argv[1:]], env=env).returncode)
        raise
    assert np.array_equal(b, a + 1), "the smoke kernel computed a wrong result"
    print("  smoke kernel ok")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sim", action="store_true", help="numba's CUDA simulator, tiny sizes (no GPU needed)")
    ap.add_argument("--out", help="write the results as JSON to this file (and the tuning log beside it)")
    ap.add_argument("--tune-trials", type=int, default=16, help="trials of the GPU tuning section (0: skip it)")
    ap.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=SECTIONS,
                    help="which sections to run (the environment always runs)")
    args = ap.parse_args()
    if args.sim and os.environ.get("NUMBA_ENABLE_CUDASIM") != "1":
        env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
        sys.exit(subprocess.run([sys.executable, os.path.abspath(__file__), *sys.argv[1:]], env=env).returncode)
    sim = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
    warnings.filterwarnings("ignore", module="numba")
    warnings.filterwarnings("ignore", message=".*(under-utilization|Grid size|Host array).*")
    rng = np.random.default_rng(0)
    with section("environment"):
        environment(sim)
        smoke_or_reexec(sim)
    if not sim and not cuda_target.gpu_available():
        print("\nno CUDA GPU found by numba: run with --sim to check the script in the simulator")
        RESULTS["errors"].append("no CUDA GPU")
    else:
        if "ops" in args.sections:
            with section("ops"):
                run_ops(sim, rng)
        if "arrays" in args.sections:
            with section("arrays"):
                arrays_check(sim, rng)
        if "sgemm" in args.sections:
            with section("sgemm"):
                sgemm(sim, rng)
        if "lenet" in args.sections:
            with section("lenet"):
                lenet(sim, rng)
        if "tune" in args.sections and args.tune_trials:
            with section("tune"):
                tune(sim, args.tune_trials, os.path.dirname(os.path.abspath(args.out)) if args.out else None)
    summary()
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(RESULTS, fh, indent=1, default=str)
        print(f"wrote {args.out}")
    return 0 if not RESULTS["errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
