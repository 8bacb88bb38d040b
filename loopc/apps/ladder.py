"""The GEMM schedule ladder: one optimisation per step on ``C = A @ B``.

Each step is a function ``(M, N, K) -> (schedule, [A, B, C])``; the tutorial, the benchmark
and ``loopc demo`` check every step against numpy and time it.

    default     for i, j: for k: C[i, j] += A[i, k] * B[k, j]
    tile        32x32 blocks of C so a block of B stays in cache
    vectorize   the innermost j loop runs as vector lanes
    reorder     a 4x16 register tile: k outside the tile, the tile unrolled into registers
    pack        B copied once into [N/16][K][16] panels, read contiguously
    write cache the 4x16 tile accumulates in a local buffer (cache_write + compute_at), registers
    parallel    row blocks of C spread over all cores
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from loopc import te

#: register tile of the last steps: 4 rows x 16 float32 lanes (8 accumulators on AVX2)
TILE_I, TILE_J, TILE_K = 4, 16, 4


def matmul(M, N, K, packed=False):
    A = te.placeholder((M, K), name="A")
    B = te.placeholder((K, N), name="B")
    k = te.reduce_axis((0, K), name="k")
    if not packed:
        C = te.compute((M, N), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
        return A, B, C, None
    nb = -(-N // TILE_J)
    PB = te.compute((nb, K, TILE_J),
                    lambda x, y, z: te.if_then_else(x * TILE_J + z < N, B[y, te.min(x * TILE_J + z, N - 1)], 0.0),
                    name="packedB")
    C = te.compute((M, N), lambda i, j: te.sum(A[i, k] * PB[j // TILE_J, k, j % TILE_J], axis=k), name="C")
    return A, B, C, PB


def step_default(M, N, K):
    A, B, C, _ = matmul(M, N, K)
    return te.create_schedule(C.op), [A, B, C]


def _blocked(M, N, K, vectorize):
    A, B, C, _ = matmul(M, N, K)
    s = te.create_schedule(C.op)
    i, j = C.op.axis
    io, jo, ii, ji = s[C].tile(i, j, 32, 32)
    ko, ki = s[C].split(C.op.reduce_axis[0], factor=4)
    s[C].reorder(io, jo, ko, ki, ii, ji)
    if vectorize:
        s[C].vectorize(ji)
    return s, [A, B, C]


def step_tile(M, N, K):
    return _blocked(M, N, K, vectorize=False)


def step_vectorize(M, N, K):
    return _blocked(M, N, K, vectorize=True)


def _register_tile(s, C):
    i, j = C.op.axis
    io, jo, ii, ji = s[C].tile(i, j, TILE_I, TILE_J)
    ko, ki = s[C].split(C.op.reduce_axis[0], factor=TILE_K)
    s[C].reorder(io, jo, ko, ki, ii, ji)
    s[C].unroll(ii)
    s[C].vectorize(ji)
    return io


def step_reorder(M, N, K):
    A, B, C, _ = matmul(M, N, K)
    s = te.create_schedule(C.op)
    _register_tile(s, C)
    return s, [A, B, C]


def step_pack(M, N, K):
    A, B, C, PB = matmul(M, N, K, packed=True)
    s = te.create_schedule(C.op)
    _register_tile(s, C)
    s[PB].vectorize(PB.op.axis[2])
    return s, [A, B, C]


def _write_cache(M, N, K, parallel):
    """The 4x16 tile accumulates in a local buffer (registers after unrolling), then is copied out.

    for i.outer, j.outer:
      C.local[4, 16] = 0;  for k: C.local[ii, :] += A[.., k] * packedB[.., k, :]   # unrolled ii, vector :
      C[tile] = C.local
    """
    A, B, C, PB = matmul(M, N, K, packed=True)
    s = te.create_schedule(C.op)
    CL = s.cache_write(C, "local")
    io, jo, ii, ji = s[C].tile(C.op.axis[0], C.op.axis[1], TILE_I, TILE_J)
    s[C].vectorize(ji)
    s[CL].compute_at(s[C], jo)
    xi, xj = s[CL].op.axis
    ko, ki = s[CL].split(s[CL].op.reduce_axis[0], factor=TILE_K)
    s[CL].reorder(ko, ki, xi, xj)
    s[CL].unroll(ki)
    s[CL].unroll(xi)
    s[CL].vectorize(xj)
    s[PB].vectorize(PB.op.axis[2])
    if parallel:
        s[C].parallel(io)
        s[PB].parallel(PB.op.axis[0])
    return s, [A, B, C]


def step_write_cache(M, N, K):
    return _write_cache(M, N, K, parallel=False)


def step_parallel(M, N, K):
    return _write_cache(M, N, K, parallel=True)


STEPS = (
    ("default", step_default),
    ("tile 32x32", step_tile),
    ("vectorize", step_vectorize),
    ("reorder 4x16 regs", step_reorder),
    ("pack B", step_pack),
    ("write cache", step_write_cache),
    ("parallel", step_parallel),
)


@dataclass(frozen=True)
class StepResult:
    name: str
    seconds: float
    gflops: float
    max_error: float
    build_seconds: float


def run_ladder(M, N, K, steps=STEPS, min_repeat_ms=200, repeat=3, log=print):
    """Build, check and time every step; returns a list of StepResult."""
    import loopc
    rng = np.random.default_rng(0)
    a = rng.random((M, K), dtype=np.float32)
    b = rng.random((K, N), dtype=np.float32)
    ref = a.astype(np.float64) @ b.astype(np.float64)
    flops = 2.0 * M * N * K
    results = []
    for name, make in steps:
        s, args = make(M, N, K)
        t0 = time.perf_counter()
        f = loopc.build(s, args, name="gemm")
        build = time.perf_counter() - t0
        c = np.zeros((M, N), dtype=np.float32)
        t0 = time.perf_counter()
        f(a, b, c)
        first = time.perf_counter() - t0
        err = float(np.max(np.abs(c - ref)) / max(1.0, float(np.max(np.abs(ref)))))
        if err > 1e-4:
            raise AssertionError(f"ladder step {name!r} disagrees with numpy: relative error {err:.2e}")
        if first > 1.0:  # a slow step: one more call is measurement enough
            seconds = f.time_evaluator(number=1, repeat=1, min_repeat_ms=0)(a, b, c).median
        else:
            seconds = f.time_evaluator(number=1, repeat=repeat, min_repeat_ms=min_repeat_ms)(a, b, c).median
        res = StepResult(name, seconds, flops / seconds / 1e9, err, build)
        results.append(res)
        if log:
            log(f"  {name:<20s} {res.seconds * 1e3:10.3f} ms {res.gflops:8.1f} GFLOP/s  (build {build * 1e3:.0f} ms)")
    return results


def time_numpy(M, N, K, min_repeat_ms=200, repeat=3) -> float:
    """Median seconds of ``a @ b`` in numpy (its BLAS) at this size."""
    from loopc.runtime.timing import time_evaluator
    rng = np.random.default_rng(0)
    a = rng.random((M, K), dtype=np.float32)
    b = rng.random((K, N), dtype=np.float32)
    return time_evaluator(lambda: a @ b, number=1, repeat=repeat, min_repeat_ms=min_repeat_ms)().median
