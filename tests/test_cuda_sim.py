"""The CUDA target, run in numba's CUDA simulator against numpy.

numba reads ``NUMBA_ENABLE_CUDASIM`` when ``numba.cuda`` is first imported, so each case runs
in a fresh interpreter with the variable set: ``test_simulator[case_x]`` runs
``python -c "import test_cuda_sim; test_cuda_sim.case_x()"``. The simulator runs every GPU
thread as a Python thread (~0.35 s per 256-thread block): shapes stay at 1 to 4 blocks.
Sizes are primes where a tail guard should show.

The workload builders here are shared with test_cuda.py (in-process tests that need no GPU).
"""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import loopc
from conftest import softmax as softmax_workload, softmax_ref
from loopc import te

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))


# --------------------------------------------------------------------------- workloads


def matmul_tensors(M, N, K, name="C"):
    A = te.placeholder((M, K), name="A")
    B = te.placeholder((K, N), name="B")
    k = te.reduce_axis((0, K), name="k")
    C = te.compute((M, N), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name=name)
    return A, B, C


def matmul_shared_schedule(M=19, N=19, K=13, block=(16, 16), thread=(2, 2), k_tile=8, interleave=True,
                           fetch="fuse", unroll_k=False):
    """The library's tiled GEMM: shared-memory A/B tiles, per-thread register tile."""
    from loopc.schedules import cuda as schedules
    A, B, C = matmul_tensors(M, N, K)
    s = schedules.matmul(A, B, C, block=block, thread=thread, k_tile=k_tile, interleave=interleave, fetch=fetch,
                         unroll_k=unroll_k)
    return s, [A, B, C]


def classic_shared_schedule(M=64, N=64, K=32):
    """Per-thread 4x4 accumulators (cache_write local at threadIdx.x), A tiles in shared memory
    loaded at the accumulator's reduction loop: bound inference must size them per block."""
    A, B, C = matmul_tensors(M, N, K)
    s = te.create_schedule(C.op)
    AS = s.cache_read(A, "shared", [C])
    CL = s.cache_write(C, "local")
    by, bx, ti, tj = s[C].tile(C.op.axis[0], C.op.axis[1], 32, 32)
    ty, _ = s[C].split(ti, nparts=8)
    tx, _ = s[C].split(tj, nparts=8)
    s[C].reorder(by, bx, ty, tx)
    for ax, tag in ((by, "blockIdx.y"), (bx, "blockIdx.x"), (ty, "threadIdx.y"), (tx, "threadIdx.x")):
        s[C].bind(ax, te.thread_axis(tag))
    s[CL].compute_at(s[C], tx)
    ko, _ = s[CL].split(s[CL].op.reduce_axis[0], factor=8)
    s[AS].compute_at(s[CL], ko)
    return s, [A, B, C]


def matmul_global_accumulate_schedule(M=19, N=21, K=13, tile=16, k_tile=8):
    """Shared tiles at the output's reduction loop; the thread loops sit inside it and each
    thread accumulates straight into C (the CUDA guide's first shared-memory GEMM)."""
    from loopc.schedules.cuda import matmul_shared
    A, B, C = matmul_tensors(M, N, K)
    return matmul_shared(A, B, C, tile=tile, k_tile=k_tile, fetch="fuse"), [A, B, C]


def conv2d_schedule(N=1, C=3, H=7, W=7, F=4, KS=3, pad=1):
    """Direct convolution: a padding stage inlined, one block per filter, a thread per pixel."""
    X = te.placeholder((N, C, H, W), name="X")
    Wt = te.placeholder((F, C, KS, KS), name="W")
    P = te.compute((N, C, H + 2 * pad, W + 2 * pad),
                   lambda n, c, y, x: te.if_then_else(te.all(y >= pad, y < H + pad, x >= pad, x < W + pad),
                                                      X[n, c, y - pad, x - pad], 0.0), name="pad")
    rc = te.reduce_axis((0, C), name="rc")
    ry = te.reduce_axis((0, KS), name="ry")
    rx = te.reduce_axis((0, KS), name="rx")
    OH, OW = H + 2 * pad - KS + 1, W + 2 * pad - KS + 1
    Y = te.compute((N, F, OH, OW), lambda n, f, y, x: te.sum(P[n, rc, y + ry, x + rx] * Wt[f, rc, ry, rx],
                                                              axis=[rc, ry, rx]), name="conv")
    s = te.create_schedule(Y.op)
    s[P].compute_inline()
    n, f, y, x = s[Y].op.axis
    nf = s[Y].fuse(n, f)
    s[Y].bind(nf, te.thread_axis("blockIdx.x"))
    s[Y].bind(y, te.thread_axis("threadIdx.y"))
    s[Y].bind(x, te.thread_axis("threadIdx.x"))
    return s, [X, Wt, Y]


def conv2d_ref(x, w, pad):
    n, c, h, wd = x.shape
    f, _, k, _ = w.shape
    xp = np.zeros((n, c, h + 2 * pad, wd + 2 * pad))
    xp[:, :, pad:pad + h, pad:pad + wd] = x
    oh, ow = h + 2 * pad - k + 1, wd + 2 * pad - k + 1
    out = np.zeros((n, f, oh, ow))
    for ry in range(k):
        for rx in range(k):
            out += np.einsum("nchw,fc->nfhw", xp[:, :, ry:ry + oh, rx:rx + ow], w[:, :, ry, rx])
    return out


def maxpool_schedule(N=1, C=2, H=9, W=9, size=3, stride=2, threads=16):
    from loopc.schedules import cuda as schedules
    X = te.placeholder((N, C, H, W), name="X")
    OH, OW = (H - size) // stride + 1, (W - size) // stride + 1
    ry = te.reduce_axis((0, size), name="ry")
    rx = te.reduce_axis((0, size), name="rx")
    P = te.compute((N, C, OH, OW), lambda n, c, y, x: te.max(X[n, c, y * stride + ry, x * stride + rx],
                                                             axis=[ry, rx]), name="pool")
    s = te.create_schedule(P.op)
    schedules.elementwise(s, P, threads=threads)
    return s, [X, P]


def maxpool_ref(x, size=3, stride=2):
    from loopc.schedules import testing
    return testing.max_pool2d(x, size, stride)


def softmax_schedule(M=4, N=13):
    """Row softmax in four stages: four kernels, three intermediates in device memory."""
    w = softmax_workload(M, N)
    X, mx, ex, sm, out = w.X, w.rowmax, w.expo, w.rowsum, w.softmax
    s = te.create_schedule(out.op)
    for T in (mx, sm):
        s[T].bind(s[T].op.axis[0], te.thread_axis("threadIdx.x"))
    for T in (ex, out):
        s[T].bind(s[T].op.axis[0], te.thread_axis("blockIdx.x"))
        s[T].bind(s[T].op.axis[1], te.thread_axis("threadIdx.x"))
    return s, [X, out]


def block_reduce_schedule(M=3, N=40, T=16):
    """A producer staged per block in shared memory, the row sum on thread 0."""
    from loopc.apps.cuda_examples import block_reduce
    return block_reduce(M, N, T)


def stencil_schedule(N=50, T=16, at_thread=False, bind_producer=False):
    """C[i] = B[i] + B[i + 1] with B = 2 * A computed at C's block loop (shared, with a halo)
    or at its thread loop (per-thread). ``bind_producer``: the T + 1 elements of B's block tile
    are computed by T + 1 threads, so the kernel launches T + 1 and C's loop is guarded."""
    A = te.placeholder((N + 1,), name="A")
    B = te.compute((N + 1,), lambda i: A[i] * 2.0, name="B")
    C = te.compute((N,), lambda i: B[i] + B[i + 1], name="C")
    s = te.create_schedule(C.op)
    bx, tx = s[C].split(C.op.axis[0], factor=T)
    s[C].bind(bx, te.thread_axis("blockIdx.x"))
    s[C].bind(tx, te.thread_axis("threadIdx.x"))
    s[B].compute_at(s[C], tx if at_thread else bx)
    if bind_producer:
        _, btx = s[B].split(B.op.axis[0], factor=T + 1)
        s[B].bind(btx, te.thread_axis("threadIdx.x"))
    return s, [A, C]


# --------------------------------------------------------------------------- helpers (child side)


def _rand(*shape, seed=0):
    return np.random.default_rng(seed).uniform(-2, 2, size=shape).astype(np.float32)


def _run(s, args, inputs, want, name="main", rtol=1e-4, atol=1e-4):
    f = loopc.build(s, args, target="cuda", name=name)
    out = np.full(args[-1].shape, np.nan, dtype=np.float32)
    f(*inputs, out)
    np.testing.assert_allclose(out, want, rtol=rtol, atol=atol)
    return f, out


def _require_simulator():
    from numba import config
    assert config.ENABLE_CUDASIM, "run this case through test_simulator (NUMBA_ENABLE_CUDASIM=1)"


# --------------------------------------------------------------------------- cases (run in the child)


def case_matmul_shared_tail():
    """Shared A/B tiles + privatised register tile, 19x19x13 on 16x16 tiles: 4 blocks, tails."""
    _require_simulator()
    s, args = matmul_shared_schedule()
    a, b = _rand(19, 13), _rand(13, 19, seed=1)
    f, _ = _run(s, args, [a, b], a.astype(np.float64) @ b, name="matmul")
    src = f.get_source("cuda")
    assert "cuda.shared.array(128, float32)" in src and "cuda.syncthreads()" in src
    assert "C_local = cuda.local.array(4, float32)  # per-thread slice [2, 2] of [16, 16]" in src
    assert f.launches == [("matmul_kernel0", (2, 2, 1), (8, 8, 1))]


def case_matmul_contiguous_thread_tiles():
    """Each thread owns a contiguous 4x2 tile; 29x19x13 on 16x16 blocks of 4x8 threads; the
    tiles are copied row by row (fetch="2d")."""
    _require_simulator()
    s, args = matmul_shared_schedule(M=29, N=19, K=13, thread=(4, 2), k_tile=4, interleave=False, fetch="2d")
    a, b = _rand(29, 13), _rand(13, 19, seed=1)
    f, _ = _run(s, args, [a, b], a.astype(np.float64) @ b)
    assert "cuda.local.array(8, float32)" in f.get_source("cuda")


def case_matmul_global_accumulate():
    _require_simulator()
    s, args = matmul_global_accumulate_schedule()
    a, b = _rand(19, 13), _rand(13, 21, seed=1)
    f, _ = _run(s, args, [a, b], a.astype(np.float64) @ b)
    src = f.get_source("cuda")
    assert src.count("cuda.syncthreads()") >= 2


def case_classic_shared_tiles_per_block():
    _require_simulator()
    s, args = classic_shared_schedule(M=32, N=32, K=16)
    a, b = _rand(32, 16), _rand(16, 32, seed=1)
    _run(s, args, [a, b], a.astype(np.float64) @ b)


def case_conv2d():
    _require_simulator()
    s, args = conv2d_schedule()
    x, w = _rand(1, 3, 7, 7), _rand(4, 3, 3, 3, seed=1)
    _run(s, args, [x, w], conv2d_ref(x, w, 1))


def case_maxpool():
    _require_simulator()
    s, args = maxpool_schedule()
    x = _rand(1, 2, 9, 9)
    f, _ = _run(s, args, [x], maxpool_ref(x))
    assert "_f32(-_INF)" in f.get_source("cuda")


def case_softmax_four_kernels():
    _require_simulator()
    s, args = softmax_schedule()
    x = _rand(4, 13)
    f, _ = _run(s, args, [x], softmax_ref(x), name="softmax")
    assert [name for name, _, _ in f.launches] == [f"softmax_kernel{n}" for n in range(4)]
    x2 = _rand(4, 13, seed=5)                 # the intermediates are reused by a second call
    out = np.zeros((4, 13), np.float32)
    f(x2, out)
    np.testing.assert_allclose(out, softmax_ref(x2), rtol=1e-4, atol=1e-5)


def case_block_shared_producer_and_thread0_reduction():
    _require_simulator()
    s, args = block_reduce_schedule()
    a = _rand(3, 40)
    f, _ = _run(s, args, [a], (2 * a.astype(np.float64)).sum(axis=1))
    src = f.get_source("cuda")
    assert "B = cuda.shared.array(40, float32)" in src
    assert "if cuda.threadIdx.x == 0:" in src       # the reduction runs once per block
    assert "cuda.syncthreads()" in src


def case_stencil_staged_per_block_and_per_thread():
    _require_simulator()
    a = _rand(51)
    want = 2 * a[:-1].astype(np.float64) + 2 * a[1:]
    for at_thread, bound, decl in ((False, False, "cuda.shared.array(17, float32)"),
                                   (True, False, "cuda.local.array(2, float32)"),
                                   (False, True, "if i_inner_1 < 16:")):
        s, args = stencil_schedule(at_thread=at_thread, bind_producer=bound)
        f, _ = _run(s, args, [a], want)
        assert decl in f.get_source("cuda"), f.get_source("cuda")


def case_device_arrays_in_place_and_timing():
    """numba device arrays are used in place (mixed with numpy ones); time_evaluator works;
    PTX is refused in the simulator."""
    _require_simulator()
    from numba import cuda
    s, args = matmul_shared_schedule(M=16, N=16, K=8, block=(16, 16), thread=(2, 2))
    f = loopc.build(s, args, target="cuda")
    a, b = _rand(16, 8), _rand(8, 16, seed=1)
    da, dc = cuda.to_device(a), cuda.device_array((16, 16), np.float32)
    f(da, b, dc)
    np.testing.assert_allclose(dc.copy_to_host(), a.astype(np.float64) @ b, rtol=1e-4, atol=1e-4)
    with pytest.raises(loopc.ArgumentError, match=r"argument 2 \('C'\) has shape \(16, 8\)"):
        f(da, b, cuda.device_array((16, 8), np.float32))
    with pytest.raises(loopc.ArgumentError, match=r"argument 0 \('A'\) has dtype float64"):
        f(cuda.to_device(a.astype(np.float64)), b, dc)
    big = cuda.device_array(16 * 16 + 16 * 8, np.float32)
    with pytest.raises(loopc.ArgumentError, match=r"output argument 2 \('C'\) overlaps argument 0"):
        f(big[:128].reshape(16, 8), b, big[64:320].reshape(16, 16))
    c = np.zeros((16, 16), np.float32)
    res = f.time_evaluator(number=1, repeat=2)(a, b, c)
    assert len(res.results) == 2 and res.mean > 0
    np.testing.assert_allclose(c, a.astype(np.float64) @ b, rtol=1e-4, atol=1e-4)
    with pytest.raises(loopc.BuildError, match="simulator"):
        f.get_source("ptx")


CASES = sorted(name for name in dir() if name.startswith("case_"))


# --------------------------------------------------------------------------- parent side


def run_in_simulator(case: str, timeout: float = 120, module: str = "test_cuda_sim") -> subprocess.CompletedProcess:
    """Run ``module.case()`` (a module of tests/) in a fresh interpreter with the simulator on."""
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (TESTS_DIR, env.get("PYTHONPATH", "")) if p)
    code = f"import {module} as t; t.{case}()"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout,
                          env=env, cwd=TESTS_DIR)


@pytest.mark.parametrize("case", CASES)
def test_simulator(case):
    proc = run_in_simulator(case)
    assert proc.returncode == 0, f"{case} failed in the simulator:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
