"""Default CPU schedule templates, one per operator tag.

Each ``schedule_<tag>(s, stage)`` edits schedule ``s`` in place for one stage (and the stages
it owns, such as a padding stage or the im2col patch matrix).
"""
from __future__ import annotations

from loopc.errors import ScheduleError
from loopc.schedule import AttachKind
from loopc.schedule.im2col import match_conv
from loopc.te.expr import Reduce

VEC = 16          # float32 lanes per vector loop: two AVX2 registers, one AVX-512 register
TILE_ROWS = 4     # rows of a register tile: 4 x 16 floats = 8 AVX2 accumulators
PAR_MIN_WORK = 1 << 15   # parallelise only loops whose work is worth a thread wake-up
DENSE_PAR_MIN_MACS = 1 << 21   # a dense layer of fewer multiply-adds (~30 us) is not worth a thread wake-up
COL_IMAGE_BYTES = 256 * 1024   # a per-image im2col matrix up to this size stays in L2
ACC_VECTORS = 12  # AVX2 registers a register tile may use as accumulators (of 16: room for operands)


def _work(stage):
    """Output elements of the stage (its data-parallel iterations)."""
    n = 1
    for iv in stage.op.axis:
        n *= iv.extent
    return n


def schedule_injective(s, stage):
    """All axes fused into one flat loop (row-major: the index folds back to the flat offset),
    split into 16-lane vectors; the outer part parallel when the tensor is large.

    for f.outer in parallel(size / 16): for f.inner in vectorized(16): Y[f] = g(X[f])
    """
    axes = list(stage.op.axis)
    flat = stage.fuse(*axes) if len(axes) > 1 else axes[0]
    if flat.extent < 4:
        return
    outer, vi = stage.split(flat, factor=min(VEC, flat.extent))
    stage.vectorize(vi)
    if _work(stage) >= PAR_MIN_WORK:
        stage.parallel(outer)


def schedule_gemm(s, stage, b_tensor, *, tile_rows=TILE_ROWS, vec=VEC, k_tile=0, k_unroll=4, parallel=True):
    """C[i, j] += A[i, k] * B[k, j] with B read through a packed K x 16 panel per column block.

    for j.outer (parallel):
      B.panel[k, 0:16] = B[k, j.outer*16 : +16]          # cache_read, once per column block
      for i.outer: for k.outer: for k.inner (unrolled 4), i.inner (unrolled 4):
        C[i, j.outer*16 + 0:16] += A[i, k] * B.panel[k, 0:16]
    """
    C = stage.op.output(0)
    i, j = stage.op.axis
    (k,) = stage.reduce_axes
    panel = s.cache_read(b_tensor, "global", [stage])
    io, ii = stage.split(i, factor=min(tile_rows, i.extent))
    jo, ji = stage.split(j, factor=min(vec, j.extent))
    if k_tile and k_tile < k.extent:
        # k blocked: a k_tile x vec slice of the panel stays in L1 across the row blocks
        ko, k = stage.split(k, factor=k_tile)
        stage.reorder(jo, ko, io, k, ii, ji)
    else:
        stage.reorder(jo, io, k, ii, ji)
    if k_unroll > 1 and k.extent >= 2 * k_unroll:
        _, ku = stage.split(k, factor=k_unroll)
        stage.unroll(ku)
    stage.unroll(ii)
    stage.vectorize(ji)
    s[panel].compute_at(stage, jo)
    s[panel].vectorize(s[panel].op.axis[1])
    if parallel and _work(stage) >= PAR_MIN_WORK and jo.extent > 1:
        stage.parallel(jo)
    return C


def schedule_dense(s, stage, *, lanes=VEC // 2, i_tiles=(4, 2), o_tiles=(3, 2), parallel=True):
    """Y[i, o] = sum_k X[i, k] * W[o, k]: both operands contiguous along k, so k runs in 8 vector
    lanes (rfactor) and a 4 x 3 block of (i, o) dot products shares each loaded vector.

    for i.outer, o.outer:
      for k.outer: for i.inner (4), o.inner (3) unrolled: Y.rf[i, o, 0:8] += X[i, k:k+8] * W[o, k:k+8]
    Y[i, o] = sum(Y.rf[i, o, 0:8])
    """
    (k,) = stage.reduce_axes
    if k.extent < 2 * lanes:
        i, o = stage.op.axis
        if parallel and _work(stage) >= PAR_MIN_WORK:
            stage.parallel(i)
        return
    _, ki = stage.split(k, factor=lanes)
    rf = s.rfactor(stage.op.output(0), ki, factor_axis=-1)
    stage.unroll(stage.reduce_axes[0])    # the sum of the 8 lanes: straight-line adds
    rf_stage = s[rf]
    i, o, lane = rf_stage.op.axis
    io, ii = rf_stage.split(i, factor=_row_tile(i.extent, tuple(i_tiles)))
    oo, oi = rf_stage.split(o, factor=_row_tile(o.extent, tuple(o_tiles)))
    rf_stage.reorder(io, oo, rf_stage.reduce_axes[0], ii, oi, lane)
    rf_stage.unroll(ii)
    rf_stage.unroll(oi)
    rf_stage.vectorize(lane)
    if parallel and _work(stage) * k.extent >= DENSE_PAR_MIN_MACS:
        rf_stage.parallel(io)


def _row_tile(extent, choices=(6, 4, 3, 2)):
    """A register-tile height that divides ``extent`` (no guard in the inner loop), else 4."""
    for t in choices:
        if extent % t == 0:
            return t
    return min(TILE_ROWS, extent)


#: direct convolution (output channels in vector lanes) for output images up to this many
#: pixels: a whole image's outputs for one vector of channels (P*Q x 16 floats) stay in L2
DIRECT_MAX_PIXELS = 4096
#: ... whose window C*R*S is at most this: the register tile stays live over the whole sum
DIRECT_REGISTER_CRS = 512


def default_conv2d_method(K, P, Q):
    """"direct" when K output channels fill whole vectors and the P x Q image is not too large."""
    return "direct" if K % VEC == 0 and P * Q <= DIRECT_MAX_PIXELS else "im2col"


def schedule_conv2d(s, stage, *, method=None, **options):
    """Convolution: ``method`` "direct" (:func:`schedule_conv2d_direct`) or "im2col"
    (:func:`schedule_conv2d_im2col`); by default direct when the output channels fill whole
    vectors and an image is not too large (LeNet's conv2, ResNet's 56x56 and 14x14 layers),
    im2col otherwise (LeNet's conv1, with 6 channels)."""
    op = stage.op
    N, K, P, Q = op.shape
    if method is None:
        method = default_conv2d_method(K, P, Q)
    if method == "direct":
        return schedule_conv2d_direct(s, stage, **options)
    if method == "im2col":
        return schedule_conv2d_im2col(s, stage, **options)
    raise ScheduleError("schedules.cpu.schedule_conv2d", stage.name, f"unknown method {method!r}",
                        "use method='direct' or method='im2col'")


def schedule_conv2d_direct(s, stage, *, vec=VEC, tile_q=None, c_block=None, unroll_s=True, parallel=True):
    """Direct convolution with the output channels in vector lanes: weights packed a vector of
    output channels at a time (``cache_read`` with ``block``), a ``tile_q`` x ``vec`` register
    tile of outputs (``cache_write`` with the channels innermost), each input value broadcast
    to ``vec`` multiply-adds; the window's s loop unrolled (``unroll_s``)::

        W.global[k.outer, c, r, s, 0:16] = W[k.outer*16 + 0:16, c, r, s]   # packed once per call
        for n (parallel), k.outer, p, q.outer:
          for c, r: for s, q.inner (unrolled): Y.local[q.inner, 0:16] += X[n, c, p+r, q+s] * W.global[k.outer, c, r, s, 0:16]
          Y[n, k.outer*16 + 0:16, p, q.outer*T + q.inner] = Y.local[q.inner, 0:16]

    With a long window (C*R*S > DIRECT_REGISTER_CRS, ``c_block`` > 0) the tile lives at
    k.outer and the channels are blocked: a c_block slice of the packed weights stays in L1
    while every pixel of the image uses it; the tile then runs over the image's pixels in
    row-major order (p and q fused), ``tile_q`` of them at a time, so that a 14-wide row needs
    no tail; for one image, each k.outer block packs its own weights. A padding stage is
    computed once, at the root."""
    op = stage.op
    Y = op.output(0)
    N, K, P, Q = op.shape
    W = match_conv(stage)[1].tensor      # the weight read (a clear error if not a convolution)
    _, C, R, S_ = W.shape
    if c_block is None:
        c_block = 16 if C * R * S_ > DIRECT_REGISTER_CRS and C % 16 == 0 else 0
    if tile_q is None:
        pixels = P * Q if c_block else Q
        tile_q = next((t for t in (5, 6, 4, 7, 3) if pixels % t == 0 and 2 * t <= ACC_VECTORS), min(4, pixels))
    vec = min(vec, K)
    source = op.input_tensors[0]
    if getattr(source.op, "tag", "") == "pad" and s[source].attach is AttachKind.INLINE:
        s[source].compute_root()     # a padded copy: no bounds test in the inner loop
    # W.global[k.outer, c, r, s, k.inner]: the weights one vector of output channels uses are
    # contiguous (a 1 KiB stride between them would put a whole c_block slice in 4 cache sets)
    packed = s.cache_read(W, "global", [stage], block={0: vec})
    # pack one input channel at a time, reading each filter's contiguous r x s window
    pko, pc, pr, ps, pki = s[packed].op.axis
    s[packed].reorder(pko, pc, pki, pr, ps)
    # one image with channel blocks: each k.outer block packs its own weights (in L2, next to
    # their use) instead of a whole packed copy going out to memory and back
    pack_per_block = bool(c_block) and N == 1
    if parallel and C * R * S_ * K >= 16 * PAR_MIN_WORK and not pack_per_block:
        s[packed].parallel(pko)
    local = s.cache_write(Y, "local", layout=(0, 2, 3, 1))
    n, k, p, q = s[Y].op.axis
    ko, ki = s[Y].split(k, factor=vec)
    yn, yp, yq, yk = s[local].op.axis
    c, r, s_ = s[local].op.reduce_axis
    if c_block:
        # copy-out: contiguous runs of a row, no tail
        qo, qi = s[Y].split(q, factor=next(t for t in range(min(8, Q), 0, -1) if Q % t == 0))
        s[Y].reorder(n, ko, p, qo, ki, qi)
        s[local].compute_at(s[Y], ko)
        co, ci = s[local].split(c, factor=c_block)
        tile_outer, tile = s[local].split(s[local].fuse(yp, yq), factor=tile_q)
        s[local].reorder(yn, co, tile_outer, ci, r, s_, tile, yk)
    else:
        qo, qi = s[Y].split(q, factor=tile_q)
        s[Y].reorder(n, ko, p, qo, ki, qi)
        s[local].compute_at(s[Y], qo)
        s[local].reorder(yn, yp, c, r, s_, yq, yk)
        tile = yq
    if pack_per_block:
        s[packed].compute_at(s[local], yn)
    s[local].unroll(tile)
    s[local].vectorize(yk)
    if unroll_s and S_ <= 8:
        s[local].unroll(s_)
    if parallel and _work(stage) * C * R * S_ >= PAR_MIN_WORK:
        s[Y].parallel(n if n.extent > 1 else ko)


def schedule_conv2d_im2col(s, stage, *, vec=VEC, k_tiles=(6, 4, 3, 2), per_image=None, parallel=True):
    """im2col, with the patch matrix built one 16-column panel at a time inside the GEMM.

    for n (parallel):
      for pq.outer:                                     # 16 output pixels
        col[crs, 0:16] = X[n, c, p*sh + r*dh, q*sw + s*dw]      # compute_at: a packed panel
        for k.outer: for crs: for k.inner (unrolled): Y[n, k, pq.outer*16 + 0:16] += W[k, crs] * col[crs, 0:16]
    """
    op = stage.op
    pads = [st for st in s.stages if st.op.tag == "pad"]
    col, _ = s.im2col(op.output(0))
    for pad in pads:
        pad.compute_inline()
    n, k, p, q = stage.op.axis
    (crs,) = stage.reduce_axes
    pq = stage.fuse(p, q)
    pqo, pqi = stage.split(pq, factor=min(vec, pq.extent))
    ko, ki = stage.split(k, factor=_row_tile(k.extent, tuple(k_tiles)))
    stage.reorder(n, pqo, ko, crs, ki, pqi)
    stage.unroll(ki)
    stage.vectorize(pqi)
    col_stage = s[col]
    R, S_ = op.input_tensors[1].shape[2:]
    Q = q.extent
    if per_image is None:     # the default: by the size of the per-image patch matrix
        per_image = crs.extent * pq.extent * 4 <= COL_IMAGE_BYTES and Q <= 32
    # splitting the patch row index (c, r, s) back into three loops turns its // and % into sums
    _, rs_ax = col_stage.split(col_stage.op.axis[1], factor=R * S_)
    col_stage.split(rs_ax, factor=S_)
    if per_image:
        # small images: one patch matrix per image, built a whole output row q at a time —
        # the input row is contiguous there, so each copy is a plain vector load
        col_stage.compute_at(stage, n)
        _, qv = col_stage.split(col_stage.op.axis[2], factor=Q)
        col_stage.vectorize(qv)
    else:
        # large images: a 16-pixel panel per block, a vector gather (a compact loop nest: LLVM's
        # unroller would otherwise take ~1 s to expand a scalar copy)
        col_stage.compute_at(stage, pqo)
        col_stage.vectorize(col_stage.op.axis[2])
    if parallel and _work(stage) * crs.extent >= PAR_MIN_WORK:
        stage.parallel(n if n.extent > 1 else pqo)


#: pooling windows up to this many elements are unrolled
MAX_UNROLLED_WINDOW = 16


def schedule_pool(s, stage):
    """Parallel over images x channels; the window loops innermost, unrolled when small."""
    for other in s.stages:
        if other.op.tag == "pool_sum" and other.attach is AttachKind.ROOT and other is not stage:
            schedule_pool(s, other)
    n, c, p, q = stage.op.axis
    window = 1
    for ax in stage.reduce_axes:
        window *= ax.extent
    if window <= MAX_UNROLLED_WINDOW:
        # straight-line window, under a vector of output columns
        for ax in stage.reduce_axes:
            stage.unroll(ax)
        if q.extent <= 2 * VEC and tuple(stage.op.attrs.get("padding", (0, 0))) == (0, 0):
            stage.vectorize(q)    # a row of outputs at once: branch-free max, strided loads
    if _work(stage) >= PAR_MIN_WORK:
        stage.parallel(stage.fuse(n, c))


def schedule_rowwise(s, stage):
    """Softmax pieces: parallel over rows; elementwise stages vectorized along the row."""
    axes = list(stage.op.axis)
    if not isinstance(stage.body, Reduce) and axes[-1].extent >= 4:
        _, vi = stage.split(axes[-1], factor=min(VEC, axes[-1].extent))
        stage.vectorize(vi)
    if len(axes) > 1 and _work(stage) >= PAR_MIN_WORK:
        stage.parallel(axes[0])
