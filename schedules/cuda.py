"""Default CUDA schedule templates, one per operator tag (``schedules.schedule(out, "cuda")``).

Each ``schedule_<op>(s, stage, ...)`` edits schedule ``s`` in place for one root stage, as the
CPU templates in ``cpu.py`` do. Three shapes of kernel cover the library:

- **flat** (every elementwise op, pooling, softmax's pieces, the backward ops and optimizer
  updates): the output's axes fused into one range, a thread per output element, any
  reduction a loop inside the thread::

      for f in range(size):                 ->   bx = blockIdx.x; tx = threadIdx.x
        Y[f] = sum_r g(X, f, r)                  if bx*256 + tx < size: Y[f] = sum_r g(X, f, r)

  A reduction with few outputs and many terms (weight and bias gradients) is first split in
  two by rfactor (:func:`schedule_reduction`), so its outer loop runs across threads;

- **tiled GEMM** (matmul, dense): a BM x BN tile of the output per block, BK-deep tiles of
  both operands staged in shared memory, a TM x TN register tile per thread
  (``loopc.targets.cuda.schedules.matmul``);

- **pixel x channel register tile** (conv2d, direct or through im2col): a thread per output
  pixel computes ``TK`` output channels, so each input value it loads feeds TK multiply-adds
  held in registers::

      for n, k, p, q: Y[n, k, p, q] = sum_{c,r,s} X[...] * W[k, c, r, s]
    ->
      bz = blockIdx.z (image n); by = blockIdx.y (channels k0 .. k0+TK); (bx, tx): pixel p*Q + q
        Y.local[0:TK] = 0
        for crs: for t in unrolled(TK): Y.local[t] += X[n, ...] * W[k0 + t, crs]
        for t in unrolled(TK): Y[n, k0 + t, p, q] = Y.local[t]

  With ``method="im2col"`` the patch matrix ``Y.col[n, crs, p*Q + q]`` is built first, by a
  flat kernel of its own, and the same register tile reads it (contiguous along pixels: one
  coalesced load per warp) instead of gathering the window from X.
"""
from __future__ import annotations

from loopc import te
from loopc.errors import ScheduleError
from loopc.schedule import AttachKind
from loopc.schedule.im2col import match_conv

#: threads per block of a flat kernel: 8 warps, a full block on every GPU numba supports
THREADS = 256
#: output channels a conv thread keeps in registers
CONV_TK = 8
#: im2col pays for its patch matrix only when the window is long: on an H100, direct beat
#: im2col on LeNet's conv2 (C*R*S = 150: 539 against 294 GFLOP/s) and on a 64-channel 3x3
#: layer (576: 2097 against 1601); see benchmarks/RESULTS.md
IM2COL_MIN_CRS = 1024
#: a reduction is split across threads (rfactor) when it has fewer outputs than this ...
RFACTOR_MAX_OUTPUTS = 16384
#: ... and at least this many terms per output, and a reduction loop at least this long
RFACTOR_MIN_REDUCE = 1024
RFACTOR_MIN_SPLIT = 8


def _bind(stage, axis, tag):
    stage.bind(axis, te.thread_axis(tag))


def schedule_flat(s, stage, threads=THREADS):
    """All data-parallel axes fused and split over (blockIdx.x, threadIdx.x); reductions stay
    loops inside each thread. Returns the (block, thread) axes."""
    axes = list(stage.op.axis)
    flat = stage.fuse(*axes) if len(axes) > 1 else axes[0]
    bx, tx = stage.split(flat, factor=max(1, min(threads, flat.extent)))
    _bind(stage, bx, "blockIdx.x")
    _bind(stage, tx, "threadIdx.x")
    return bx, tx


def _size(axes):
    n = 1
    for iv in axes:
        n *= iv.extent
    return n


def schedule_reduction(s, stage, threads=THREADS):
    """A reduction with few outputs and a long reduction (a weight or bias gradient summed
    over the batch and the pixels): the outer reduction loop becomes a data-parallel axis of
    a partial-sum stage (rfactor), so the batch spreads over threads; both stages flat::

        dW[k, c] = sum_{n, p} g(n, k, c, p)          (150 threads x 50,000 terms)
      ->
        dW.rf[n, k, c] = sum_p g(n, k, c, p)          (9,600 threads x 784 terms)
        dW[k, c] = sum_n dW.rf[n, k, c]               (150 threads x 64 terms)

    Anything else gets the flat kernel. Returns the stages scheduled."""
    reduce_axes = list(stage.op.reduce_axis)
    outer = next((r for r in reduce_axes if r.extent >= RFACTOR_MIN_SPLIT), None)
    if (outer is None or _size(stage.op.axis) >= RFACTOR_MAX_OUTPUTS
            or _size(reduce_axes) < RFACTOR_MIN_REDUCE):
        schedule_flat(s, stage, threads)
        return [stage]
    rf = s.rfactor(stage.op.output(0), outer, factor_axis=0)
    schedule_flat(s, s[rf], threads)
    schedule_flat(s, stage, threads)
    return [s[rf], stage]


def gemm_config(M, N):
    """Tiles of the shared-memory GEMM for an M x N output: the measured large-matrix tiles
    (``targets.cuda.schedules.matmul_config``) when the output has at least 64 x 64 elements,
    else 32 x 32 blocks of 16 x 16 threads, so a small dense layer still spreads over blocks."""
    from loopc.targets.cuda.schedules import matmul_config
    if M >= 64 and N >= 64:
        return matmul_config(M, N)
    return dict(block=(32, 32), thread=(2, 2), k_tile=16, unroll_k=True, fetch="2d")


def schedule_gemm(s, stage, a_tensor, b_tensor, **config):
    """matmul (A[M, K] @ B[K, N]) or dense (X[M, K] . W[N, K]): the shared-memory tiled GEMM.
    ``config`` (block, thread, k_tile, unroll_k, fetch) defaults to :func:`gemm_config`."""
    from loopc.targets.cuda.schedules import matmul
    M, N = (iv.extent for iv in stage.op.axis)
    if M * N <= THREADS and not config:
        # one block's worth of outputs (a last layer at batch 1): a thread per dot product
        schedule_flat(s, stage)
        return
    config = {**gemm_config(M, N), **config}
    matmul(a_tensor, b_tensor, stage.op.output(0), s=s, **config)


def schedule_matmul(s, stage, **config):
    A, B = stage.op.input_tensors
    schedule_gemm(s, stage, A, B, **config)


def schedule_dense(s, stage, **config):
    X, W = stage.op.input_tensors
    schedule_gemm(s, stage, X, W, **config)


def schedule_conv2d(s, stage, method=None, tile_k=None, threads=None):
    """Convolution (any stride, padding, dilation): a thread per output pixel, ``tile_k``
    output channels per thread in registers; ``method`` "direct" (gather the window from X)
    or "im2col" (a patch-matrix kernel first). Defaults: im2col when the window C*R*S has at
    least ``IM2COL_MIN_CRS`` elements; ``tile_k`` = min(CONV_TK, K); ``threads`` = the pixels
    of one output image rounded up to a warp, at most 256."""
    op = stage.op
    N, K, P, Q = op.shape
    _, C, R, S_ = match_conv(stage)[1].tensor.shape
    if method is None:
        method = "im2col" if C * R * S_ >= IM2COL_MIN_CRS else "direct"
    if method not in ("direct", "im2col"):
        raise ScheduleError("schedules.cuda.schedule_conv2d", stage.name, f"unknown method {method!r}",
                            "use method='direct' or method='im2col'")
    for pad in [st for st in s.stages if st.op.tag == "pad" and st.attach is AttachKind.ROOT]:
        pad.compute_inline()
    if method == "im2col":
        col, _ = s.im2col(op.output(0))
        schedule_flat(s, s[col])
    tile_k = min(CONV_TK, K) if tile_k is None else max(1, min(tile_k, K))
    threads = threads or min(THREADS, -(-P * Q // 32) * 32)
    out = op.output(0)
    local = s.cache_write(out, "local")
    n, k, p, q = s[out].op.axis
    ko, ki = s[out].split(k, factor=tile_k)
    s[out].reorder(n, ko, p, q, ki)
    pq = s[out].fuse(p, q)
    bx, tx = s[out].split(pq, factor=min(threads, pq.extent))
    _bind(s[out], n, "blockIdx.z")
    _bind(s[out], ko, "blockIdx.y")
    _bind(s[out], bx, "blockIdx.x")
    _bind(s[out], tx, "threadIdx.x")
    s[out].unroll(ki)
    s[local].compute_at(s[out], tx)
    lk = s[local].op.axis[1]
    reduce_axes = list(s[local].op.reduce_axis)
    s[local].reorder(*reduce_axes, lk)
    s[local].unroll(lk)


#: tag -> template; ops not named here get the flat kernel
TEMPLATES = {
    "matmul": schedule_matmul,
    "dense": schedule_dense,
    "conv2d_nchw": schedule_conv2d,
}
