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
  both operands staged in shared memory, a TM x TN register tile per thread (:func:`matmul`,
  below);

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

The templates (registered for the "cuda" target kind) read the CUDATarget's thread limit
(``-max_num_threads``); their knobs' first choices are the default schedule.
"""
from __future__ import annotations

from loopc import te
from loopc.errors import ScheduleError
from loopc.schedule import AttachKind
from loopc.schedule.im2col import match_conv

from .registry import register

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


def _threads(target, threads=THREADS):
    """``threads`` per block, at most the target's ``-max_num_threads``."""
    return min(threads, target.max_threads)


def _flat(stage, factor):
    """All data-parallel axes fused and split by ``factor`` over (blockIdx.x, threadIdx.x)."""
    axes = list(stage.op.axis)
    flat = stage.fuse(*axes) if len(axes) > 1 else axes[0]
    bx, tx = stage.split(flat, factor=factor)
    _bind(stage, bx, "blockIdx.x")
    _bind(stage, tx, "threadIdx.x")
    return bx, tx


def schedule_flat(s, stage, threads=THREADS):
    """All data-parallel axes fused and split over (blockIdx.x, threadIdx.x), a block no larger
    than the tensor; reductions stay loops inside each thread. Returns the (block, thread) axes."""
    return _flat(stage, max(1, min(threads, _size(stage.op.axis))))


def elementwise(s, T, threads=THREADS):
    """Fuse all axes of stage ``T`` and bind them to (blockIdx.x, threadIdx.x), exactly
    ``threads`` threads per block (a tail block guarded); returns the (block, thread) axes."""
    return _flat(s[T], threads)


def _size(axes):
    n = 1
    for iv in axes:
        n *= iv.extent
    return n


def schedule_reduction(s, stage, threads=THREADS):
    """The kernel of every op without a template of its own. A reduction with few outputs and
    a long reduction (a weight or bias gradient summed over the batch and the pixels): the
    outer reduction loop becomes a data-parallel axis of a partial-sum stage (rfactor), so the
    batch spreads over threads; both stages flat::

        dW[k, c] = sum_{n, p} g(n, k, c, p)          (150 threads x 50,000 terms)
      ->
        dW.rf[n, k, c] = sum_p g(n, k, c, p)          (9,600 threads x 784 terms)
        dW[k, c] = sum_n dW.rf[n, k, c]               (150 threads x 64 terms)

    Anything else gets the flat kernel. Returns the stages scheduled."""
    reduce_axes = list(stage.op.reduce_axis)
    if any(not isinstance(r.extent, int) for r in reduce_axes):    # a sparse row's elements: serial
        schedule_flat(s, stage, threads)
        return [stage]
    outer = next((r for r in reduce_axes if r.extent >= RFACTOR_MIN_SPLIT), None)
    if (outer is None or _size(stage.op.axis) >= RFACTOR_MAX_OUTPUTS
            or _size(reduce_axes) < RFACTOR_MIN_REDUCE):
        schedule_flat(s, stage, threads)
        return [stage]
    rf = s.rfactor(stage.op.output(0), outer, factor_axis=0)
    schedule_flat(s, s[rf], threads)
    schedule_flat(s, stage, threads)
    return [s[rf], stage]


# --------------------------------------------------------------------------- GEMM


def _first(default, choices):
    """``choices`` with ``default`` moved to the front: a knob whose config 0 is the default."""
    return [default] + [c for c in choices if c != default]


def gemm_config(M, N):
    """Tiles of the shared-memory GEMM for an M x N output: the measured large-matrix tiles
    (:func:`matmul_config`) when the output has at least 64 x 64 elements, else 32 x 32 blocks
    of 16 x 16 threads, so a small dense layer still spreads over blocks."""
    if M >= 64 and N >= 64:
        return matmul_config(M, N)
    return dict(block=(32, 32), thread=(2, 2), k_tile=16, unroll_k=True, fetch="2d")


@register(("matmul", "dense"), "cuda")
def gemm(cfg, s, stage, target):
    """matmul (A[M, K] @ B[K, N]) or dense (X[M, K] . W[N, K]): the shared-memory tiled GEMM
    (:func:`matmul`), its tiles as knobs: block tile, thread tile, the k depth of the shared
    tiles, unroll, how threads fetch a tile. An output of at most one block's worth of
    elements (a last layer at batch 1) defaults to a thread per dot product (knob ``kernel``)."""
    a, b = stage.op.input_tensors
    M, N = (iv.extent for iv in stage.op.axis)
    threads = _threads(target)
    auto = gemm_config(M, N)
    (bm, bn), (tm, tn) = auto["block"], auto["thread"]
    if M * N <= threads:
        cfg.define_knob("kernel", ["flat", "tiled"])
    cfg.define_knob("block_m", _first(bm, (32, 64, 128)))
    cfg.define_knob("block_n", _first(bn, (32, 64, 128)))
    cfg.define_knob("thread_m", _first(tm, (2, 4, 8)))
    cfg.define_knob("thread_n", _first(tn, (2, 4, 8)))
    cfg.define_knob("k_tile", _first(auto["k_tile"], (8, 16, 32)))
    cfg.define_knob("unroll_k", _first(int(auto["unroll_k"]), (0, 1)))
    cfg.define_knob("fetch", _first(auto["fetch"], ("2d", "fuse")))
    if M * N <= threads and cfg["kernel"].val == "flat":
        schedule_flat(s, stage, threads)
        return
    matmul(a, b, stage.op.output(0), s=s, block=(cfg["block_m"].val, cfg["block_n"].val),
           thread=(cfg["thread_m"].val, cfg["thread_n"].val), k_tile=cfg["k_tile"].val,
           unroll_k=bool(cfg["unroll_k"].val), fetch=cfg["fetch"].val)


# --------------------------------------------------------------------------- convolution


@register("conv2d_nchw", "cuda")
def conv2d(cfg, s, stage, target):
    """Convolution (any stride, padding, dilation): a thread per output pixel, ``tile_k``
    output channels per thread in registers; ``method`` "direct" (gather the window from X)
    or "im2col" (a patch-matrix kernel first). Defaults: im2col when the window C*R*S has at
    least ``IM2COL_MIN_CRS`` elements; ``tile_k`` = min(CONV_TK, K); ``threads`` = the pixels
    of one output image rounded up to a warp, at most 256 (and the target's limit)."""
    op = stage.op
    N, K, P, Q = op.shape
    _, C, R, S_ = match_conv(stage)[1].tensor.shape
    most = _threads(target)
    cfg.define_knob("method", _first("im2col" if C * R * S_ >= IM2COL_MIN_CRS else "direct", ("direct", "im2col")))
    cfg.define_knob("tile_k", _first(min(CONV_TK, K), [t for t in (1, 2, 4, 8, 16) if t <= K]))
    cfg.define_knob("threads", _first(min(most, -(-P * Q // 32) * 32), [t for t in (64, 128, 256) if t <= most]))
    method, tile_k, threads = cfg["method"].val, cfg["tile_k"].val, cfg["threads"].val
    if method not in ("direct", "im2col"):
        raise ScheduleError("schedules.cuda.schedule_conv2d", stage.name, f"unknown method {method!r}",
                            "use method='direct' or method='im2col'")
    source = op.input_tensors[0]
    if getattr(source.op, "tag", "") == "pad" and s[source].attach is AttachKind.ROOT:
        s[source].compute_inline()           # the window's padding: a guarded read
    if method == "im2col":
        col, _ = s.im2col(op.output(0))
        schedule_flat(s, s[col], most)
    tile_k = max(1, min(tile_k, K))
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


#: ``schedule_conv2d(s, stage, method=, tile_k=, threads=)``: the template with knobs set
schedule_conv2d = conv2d


# --------------------------------------------------------------------------- the GEMM schedule
#
# The classic GPU GEMM, expressed so that loopc's bound inference gives each buffer the right
# size (stages computed at a loop are sized for one iteration of the loops around it, so the
# shared stages hang off a loop *outside* the thread loops):
#
#     for by in blockIdx.y, bx in blockIdx.x:            # one BM x BN tile of C per block
#       C.local: per-thread TM x TN accumulators          # computed at bx, privatised to registers
#       for ko in range(K / BK):
#         A.shared[BM, BK] <- A   (all threads, coalesced) # computed at C.local's ko
#         B.shared[BK, BN] <- B
#         for ty, tx in threadIdx:                          # cuda.syncthreads() around the loads
#           for ki in range(BK): unrolled TM x TN multiply-adds from shared memory
#       for ty, tx in threadIdx: C[...] = C.local[...]     # unrolled write-back
#
#     s = matmul(A, B, C)                  # tiles from matmul_config(M, N)
#     s = matmul(A, B, C, block=(64, 64), thread=(4, 4), k_tile=16, fetch="2d")
#
# With ``interleave=True`` (the default) thread (ty, tx) owns rows ``i*TY + ty`` and columns
# ``j*TX + tx`` of the tile, so a warp reads consecutive words of B.shared (no bank conflicts)
# and writes consecutive words of C.


def _check(cond, what, fix):
    if not cond:
        raise ScheduleError("schedules.cuda.matmul", "C", what, fix)


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

    for S in (AS, BS):
        s[S].compute_at(s[CL], ko)
        cooperative_fetch(s[S], TY, TX, fetch)
    return s


def cooperative_fetch(stage, TY, TX, fetch):
    """The TY x TX threads of a block copy a tile into shared memory together: ``"fuse"`` (the
    tile's elements in one flat range over threadIdx.y/x, any shape) or ``"2d"`` (rows over
    threadIdx.y, columns over threadIdx.x: no index division)."""
    _check(fetch in ("fuse", "2d"), f"unknown fetch {fetch!r}", "use fetch='fuse' or fetch='2d'")
    if fetch == "fuse":
        fused = stage.fuse(*stage.op.axis)
        rest, fx = stage.split(fused, factor=TX)
        _, fy = stage.split(rest, factor=TY)
    else:
        rows, cols = stage.op.axis
        ro, fy = stage.split(rows, factor=TY)
        co, fx = stage.split(cols, factor=TX)
        stage.reorder(ro, co, fy, fx)
    stage.bind(fy, te.thread_axis("threadIdx.y"))
    stage.bind(fx, te.thread_axis("threadIdx.x"))


def matmul_shared(A, B, C, tile=16, k_tile=8, fetch="fuse"):
    """The CUDA guide's first shared-memory GEMM: tile x tile threads per block, shared tiles of
    A and B at the output's reduction loop, each thread accumulating straight into C (no
    register tile). Returns the schedule; a step on the way to :func:`matmul`."""
    s = te.create_schedule(C.op)
    AS = s.cache_read(A, "shared", [C])
    BS = s.cache_read(B, "shared", [C])
    by, bx, ty, tx = s[C].tile(C.op.axis[0], C.op.axis[1], tile, tile)
    ko, ki = s[C].split(C.op.reduce_axis[0], factor=k_tile)
    s[C].reorder(by, bx, ko, ty, tx, ki)
    for ax, tag in ((by, "blockIdx.y"), (bx, "blockIdx.x"), (ty, "threadIdx.y"), (tx, "threadIdx.x")):
        s[C].bind(ax, te.thread_axis(tag))
    for S in (AS, BS):
        s[S].compute_at(s[C], ko)
        cooperative_fetch(s[S], tile, tile, fetch)
    return s
