"""Tutorial 7 — the GPU: bind a matmul to blocks and threads, stage tiles in shared memory.

A GPU runs a kernel as a grid of thread blocks; the threads of one block share a small, fast
scratchpad (shared memory) and can wait for each other (``cuda.syncthreads()``). In loopc a
schedule says which loops *are* the grid and the block — ``s[C].bind(axis,
te.thread_axis("blockIdx.x"))`` — and the CUDA target turns the loop nest into a numba CUDA
kernel: a bound loop disappears (its variable becomes ``cuda.blockIdx.x``), its extent becomes
the launch shape, and everything else stays ordinary loops inside the kernel.

1. naive: one thread per element of C; each thread reads a row of A and a column of B from
   global memory (K loads of each per output).
2. shared tiles: the threads of a block first copy a 16 x BK tile of A and of B into shared
   memory (``s.cache_read(A, "shared", [C])`` computed at the reduction loop), wait, then
   compute from the tiles: each element loaded from global memory is used 16 times.
3. register tiles (loopc.schedules.cuda.matmul): each thread computes a TM x TN block of
   C in registers (``s.cache_write(C, "local")``), so each value read from shared memory feeds
   several multiply-adds.
4. what the target refuses, and why.
5. the operator library: ``loopc.schedules.schedule(out, target="cuda")`` gives every op its
   CUDA schedule (a convolution here: a thread per output pixel, several output channels in
   registers); ``loopc lenet train --target cuda`` trains LeNet on such kernels, and ``loopc
   tune conv2d --target cuda --shape ...`` tunes their knobs on the GPU.

6. LeNet on this CPU beside the GPU (the chapter's lab, step 6), batch 64: measured on both
   with a GPU; without one, beside the figures recorded on a lent GPU, labelled as recorded.

Every step is checked against numpy and its kernel printed. Without a GPU the tutorial restarts
itself in numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1) on a tiny matrix, since the simulator
runs each GPU thread as a Python thread.

Run:  python tutorials/07_cuda.py [--size 1024] [--small]
"""
import argparse
import os
import subprocess
import sys

import numpy as np

import loopc
from loopc import te

SIM_SIZE = 32


def ensure_device():
    """Re-run this script in numba's simulator when there is no GPU (before numba.cuda is imported
    in simulator mode, which happens once per process)."""
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        return "simulator"
    from loopc.targets import cuda as cuda_target
    if cuda_target.gpu_available():
        return "gpu"
    print("No CUDA GPU here: running this tutorial in numba's CUDA simulator.\n", flush=True)
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    sys.exit(subprocess.run([sys.executable, os.path.abspath(__file__), *sys.argv[1:]], env=env).returncode)


def matmul(n):
    A = te.placeholder((n, n), name="A")
    B = te.placeholder((n, n), name="B")
    k = te.reduce_axis((0, n), name="k")
    C = te.compute((n, n), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    return A, B, C


def naive(n, tile=16):
    """Step 1: a 16 x 16 block of threads per 16 x 16 tile of C."""
    A, B, C = matmul(n)
    s = te.create_schedule(C.op)
    by, bx, ty, tx = s[C].tile(C.op.axis[0], C.op.axis[1], tile, tile)
    s[C].bind(by, te.thread_axis("blockIdx.y"))
    s[C].bind(bx, te.thread_axis("blockIdx.x"))
    s[C].bind(ty, te.thread_axis("threadIdx.y"))
    s[C].bind(tx, te.thread_axis("threadIdx.x"))
    return s, [A, B, C]


def shared_tiles(n, tile=16, k_tile=16):
    """Step 2: stage A and B tiles in shared memory at the reduction loop."""
    A, B, C = matmul(n)
    s = te.create_schedule(C.op)
    AS = s.cache_read(A, "shared", [C])          # a copy of A that C reads instead of A
    BS = s.cache_read(B, "shared", [C])
    by, bx, ty, tx = s[C].tile(C.op.axis[0], C.op.axis[1], tile, tile)
    ko, ki = s[C].split(C.op.reduce_axis[0], factor=k_tile)
    s[C].reorder(by, bx, ko, ty, tx, ki)         # the k-tile loop outside the threads
    s[C].bind(by, te.thread_axis("blockIdx.y"))
    s[C].bind(bx, te.thread_axis("blockIdx.x"))
    s[C].bind(ty, te.thread_axis("threadIdx.y"))
    s[C].bind(tx, te.thread_axis("threadIdx.x"))
    for S in (AS, BS):
        s[S].compute_at(s[C], ko)                # one tile per iteration of ko
        ay, ax = s[S].op.axis                    # the tile is tile x k_tile: one element a thread
        s[S].bind(s[S].split(ay, factor=tile)[1], te.thread_axis("threadIdx.y"))
        s[S].bind(s[S].split(ax, factor=tile)[1], te.thread_axis("threadIdx.x"))
    return s, [A, B, C]


def register_tiles(n, gpu):
    """Step 3: the library schedule (shared tiles + a per-thread register tile)."""
    from loopc.schedules import cuda as schedules
    A, B, C = matmul(n)
    if gpu:
        s = schedules.matmul(A, B, C)        # tile sizes from schedules.matmul_config(n, n)
    else:
        s = schedules.matmul(A, B, C, block=(16, 16), thread=(2, 2), k_tile=8)
    return s, [A, B, C]


def kernel_only(src):
    """A generated source from its first @cuda.jit on (the kernels and the host function)."""
    body = src.split("@cuda.jit", 1)[1]
    return "@cuda.jit" + body


def run_step(name, s, args, a, b, gpu, show=True):
    f = loopc.build(s, args, target="cuda", name="matmul")
    if show:
        print(f"---- {name}: the generated kernel ({f.launches[0][1]} blocks of {f.launches[0][2]} threads)\n")
        print(kernel_only(f.get_source("cuda")))
    c = np.full(a.shape, np.nan, dtype=np.float32)
    f(a, b, c)
    err = np.abs(c - a.astype(np.float64) @ b).max()
    assert err < 1e-2, f"{name}: max error {err}"
    seconds = None
    if gpu:
        seconds = f.time_evaluator(number=10, repeat=3)(a, b, c).median
    return err, seconds


def library_conv(gpu):
    """A convolution (stride 2, padding 1) scheduled by the library's CUDA template."""
    import warnings
    import loopc.schedules as lib
    from loopc.schedules import testing
    N, C, H, K = (8, 16, 30, 32) if gpu else (1, 2, 7, 3)
    X = te.placeholder((N, C, H, H), name="X")
    W = te.placeholder((K, C, 3, 3), name="W")
    Y = lib.conv2d_nchw(X, W, stride=2, padding=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", lib.NoTunedRecordWarning)   # no tuned record: the default
        s = lib.schedule(Y, target="cuda")
    f = loopc.build(s, [X, W, Y], target="cuda", name="conv")
    print(f"conv2d {N}x{C}x{H}x{H} * {K}x{C}x3x3, stride 2, padding 1: kernels (name, grid, block) {f.launches}")
    print(kernel_only(f.get_source("cuda")))
    rng = np.random.default_rng(1)
    x = rng.standard_normal((N, C, H, H)).astype(np.float32)
    w = rng.standard_normal((K, C, 3, 3)).astype(np.float32)
    y = np.full(Y.shape, np.nan, dtype=np.float32)
    f(x, w, y)
    err = np.abs(y - testing.conv2d_nchw(x, w, 2, 1)).max()
    assert err < 1e-3, f"conv2d: max error {err}"
    seconds = f.time_evaluator(number=10, repeat=3)(x, w, y).median if gpu else None
    return "5 library conv2d", err, seconds


def cpu_vs_gpu(gpu, small):
    """LeNet's forward pass and training step at batch 64 on this CPU beside the GPU: measured on
    both where there is a GPU; without one, beside the figures recorded on a lent GPU, which are
    labelled as recorded (``loopc lenet bench --compare-cpu`` does the same for any batch sizes)."""
    from loopc.apps import lenet_bench as bench, recorded_gpu
    from loopc.runtime import threads
    number, repeat = (2, 1) if small else (10, 5)
    common = dict(batch_sizes=[64], number=number, repeat=repeat, with_torch=False, log=lambda *_: None)
    cpu = bench.run(target="llvm", **common)
    if gpu:
        gpu_rows, label = bench.run(target="cuda", **common), "the GPU (measured here)"
    else:
        print(recorded_gpu.describe() + "\n")
        gpu_rows, label = recorded_gpu.bench_results(), recorded_gpu.label()
    print(bench.compare_table(cpu, gpu_rows, threads.num_threads(), label) + "\n")


def main(size=1024, small=False):
    mode = ensure_device()
    gpu = mode == "gpu"
    n = (256 if small else size) if gpu else SIM_SIZE
    print(f"C[{n}x{n}] = A @ B, float32, on the {'GPU' if gpu else 'CUDA simulator'}\n")
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(np.float32)
    b = rng.standard_normal((n, n)).astype(np.float32)
    rows = []
    for name, build in (("1 naive", lambda: naive(n)), ("2 shared tiles", lambda: shared_tiles(n)),
                        ("3 register tiles", lambda: register_tiles(n, gpu))):
        s, args = build()
        err, seconds = run_step(name, s, args, a, b, gpu, show=not (gpu and name.startswith("2")))
        rows.append((name, err, seconds))

    print("---- 4: what the CUDA target refuses\n")
    A, B, C = matmul(n)
    try:
        loopc.build(te.create_schedule(C.op), [A, B, C], target="cuda")
    except loopc.BuildError as err:
        print(f"no binding:   BuildError: {err}\n")
    s = te.create_schedule(C.op)
    try:
        s[C].bind(C.op.reduce_axis[0], te.thread_axis("threadIdx.x"))
    except loopc.ScheduleError as err:
        print(f"bind k:       ScheduleError: {err}\n")

    print("---- 5: the operator library on the GPU\n")
    rows.append(library_conv(gpu))

    print("---- 6: LeNet, CPU vs GPU (the chapter's lab, step 6)\n")
    cpu_vs_gpu(gpu, small)

    print("step                max |err|   " + ("ms       GFLOP/s" if gpu else "(timings need a GPU)"))
    for name, err, seconds in rows:
        timing = f"{seconds * 1e3:8.3f}" if seconds else ""
        if seconds and name[0] != "5":
            timing += f" {2 * n ** 3 / seconds / 1e9:9.1f}"
        print(f"{name:<18s} {err:10.2e}   {timing}")
    return rows


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--small", action="store_true", help="a small size (used by the test suite)")
    args = ap.parse_args()
    main(args.size, args.small)
