"""CUDA schedules built from loopc's primitives: a tiled matmul and a flat elementwise binding.

The matmul is the classic GPU GEMM, expressed so that loopc's bound inference gives each
buffer the right size (stages computed at a loop are sized for one iteration of the loops
around it, so the shared stages hang off a loop *outside* the thread loops):

    for by in blockIdx.y, bx in blockIdx.x:            # one BM x BN tile of C per block
      C.local: per-thread TM x TN accumulators          # computed at bx, privatised to registers
      for ko in range(K / BK):
        A.shared[BM, BK] <- A   (all threads, coalesced) # computed at C.local's ko
        B.shared[BK, BN] <- B
        for ty, tx in threadIdx:                          # cuda.syncthreads() around the loads
          for ki in range(BK): unrolled TM x TN multiply-adds from shared memory
      for ty, tx in threadIdx: C[...] = C.local[...]     # unrolled write-back

    s = matmul(A, B, C)                  # tiles from matmul_config(M, N)
    s = matmul(A, B, C, block=(64, 64), thread=(4, 4), k_tile=16, fetch="2d")

With ``interleave=True`` (the default) thread (ty, tx) owns rows ``i*TY + ty`` and columns
``j*TX + tx`` of the tile, so a warp reads consecutive words of B.shared (no bank conflicts)
and writes consecutive words of C.
"""
from __future__ import annotations

from loopc import te
from loopc.errors import ScheduleError


def _check(cond, what, fix):
    if not cond:
        raise ScheduleError("cuda.schedules.matmul", "C", what, fix)


#: measured on an H100 (numba-cuda 0.30.4, sgemm n = 4096, cuBLAS FP32 51.4 TFLOP/s):
#:   block 128x128, thread 8x8, k 16, fetch 2d            30.6 TFLOP/s (59.5%)
#:   block 128x128, thread 8x8, k 8,  fetch fuse          29.4 TFLOP/s (57.2%)
#:   block 64x64,   thread 4x4, k 16, fetch 2d, unroll k  28.1 TFLOP/s (54.6%)
#:   block 64x64,   thread 4x4, k 8,  fetch fuse, unroll  26.7 TFLOP/s (51.9%)
#: 128x128 tiles need enough blocks to fill the GPU: at n = 1024 (64 blocks) the 64x64 tiles win
#: (21.4 against 12.5 TFLOP/s).
LARGE_TILE_MIN_BLOCKS = 256


def matmul_config(M, N):
    """Tile sizes for an M x N output: 128x128 blocks when there are enough of them, else 64x64."""
    if -(-M // 128) * -(-N // 128) >= LARGE_TILE_MIN_BLOCKS:
        return dict(block=(128, 128), thread=(8, 8), k_tile=16, unroll_k=False, fetch="2d")
    return dict(block=(64, 64), thread=(4, 4), k_tile=16, unroll_k=True, fetch="2d")


def matmul(A, B, C, block=None, thread=None, k_tile=None, interleave=True, unroll_k=None, fetch=None, s=None):
    """Schedule ``C[i, j] = sum_k A[i, k] * B[k, j]`` for the GPU; returns the schedule.

    ``block``: the (BM, BN) tile of C per thread block; ``thread``: the (TM, TN) tile per thread
    (BM/TM x BN/TN threads per block); ``k_tile``: BK, the depth of the shared tiles;
    ``unroll_k``: unroll the loop over the k-tile; ``fetch``: how the threads share the copy of
    a tile into shared memory: ``"fuse"`` (the tile's elements in one flat range, any shape) or
    ``"2d"`` (rows over threadIdx.y, columns over threadIdx.x: no index division, best when BK
    is a multiple of the thread block's sides). Arguments left out come from
    :func:`matmul_config`. Shapes that no tile divides are guarded.
    """
    auto = matmul_config(*C.shape)
    block = auto["block"] if block is None else block
    if thread is None:
        thread = auto["thread"] if block == auto["block"] else (max(1, block[0] // 16), max(1, block[1] // 16))
    k_tile = auto["k_tile"] if k_tile is None else k_tile
    unroll_k = auto["unroll_k"] if unroll_k is None else unroll_k
    fetch = auto["fetch"] if fetch is None else fetch
    (BM, BN), (TM, TN), BK = block, thread, k_tile
    _check(BM % TM == 0 and BN % TN == 0, f"block {block} is not a multiple of thread tile {thread}",
           "choose block sizes divisible by the thread tile")
    TY, TX = BM // TM, BN // TN
    _check(TY * TX <= 1024, f"{TY}x{TX} threads per block is more than 1024",
           "use a smaller block tile or a larger thread tile")
    s = s if s is not None else te.create_schedule(C.op)
    CL = s.cache_write(C, "local")
    AS = s.cache_read(A, "shared", [CL])
    BS = s.cache_read(B, "shared", [CL])

    def thread_split(stage, i, j):
        if interleave:
            ti, ty = stage.split(i, factor=TY)
            tj, tx = stage.split(j, factor=TX)
        else:
            ty, ti = stage.split(i, factor=TM)
            tx, tj = stage.split(j, factor=TN)
        return ty, tx, ti, tj

    i, j = s[C].op.axis
    by, bx, ii, ji = s[C].tile(i, j, BM, BN)
    ty, tx, ti, tj = thread_split(s[C], ii, ji)
    s[C].reorder(by, bx, ty, tx, ti, tj)
    s[C].bind(by, te.thread_axis("blockIdx.y"))
    s[C].bind(bx, te.thread_axis("blockIdx.x"))
    s[C].bind(ty, te.thread_axis("threadIdx.y"))
    s[C].bind(tx, te.thread_axis("threadIdx.x"))
    s[C].unroll(ti)
    s[C].unroll(tj)

    s[CL].compute_at(s[C], bx)
    ci, cj = s[CL].op.axis
    cty, ctx, cti, ctj = thread_split(s[CL], ci, cj)
    ko, ki = s[CL].split(s[CL].op.reduce_axis[0], factor=BK)
    s[CL].reorder(ko, cty, ctx, ki, cti, ctj)
    s[CL].bind(cty, te.thread_axis("threadIdx.y"))
    s[CL].bind(ctx, te.thread_axis("threadIdx.x"))
    s[CL].unroll(cti)
    s[CL].unroll(ctj)
    if unroll_k:
        s[CL].unroll(ki)

    _check(fetch in ("fuse", "2d"), f"unknown fetch {fetch!r}", "use fetch='fuse' or fetch='2d'")
    for S in (AS, BS):
        s[S].compute_at(s[CL], ko)
        if fetch == "fuse":
            fused = s[S].fuse(*s[S].op.axis)
            rest, fx = s[S].split(fused, factor=TX)
            _, fy = s[S].split(rest, factor=TY)
        else:
            rows, cols = s[S].op.axis
            ro, fy = s[S].split(rows, factor=TY)
            co, fx = s[S].split(cols, factor=TX)
            s[S].reorder(ro, co, fy, fx)
        s[S].bind(fy, te.thread_axis("threadIdx.y"))
        s[S].bind(fx, te.thread_axis("threadIdx.x"))
    return s


def elementwise(s, T, threads=256):
    """Fuse all axes of stage ``T`` and bind them to (blockIdx.x, threadIdx.x); returns the
    (block, thread) axes."""
    fused = s[T].fuse(*s[T].op.axis) if len(s[T].op.axis) > 1 else s[T].op.axis[0]
    bx, tx = s[T].split(fused, factor=threads)
    s[T].bind(bx, te.thread_axis("blockIdx.x"))
    s[T].bind(tx, te.thread_axis("threadIdx.x"))
    return bx, tx
