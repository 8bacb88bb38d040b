"""CPU schedule templates of the forward operators, registered for the "llvm" target kind.

Each template ``name(cfg, s, stage, target)`` edits schedule ``s`` in place for one stage (and
the stages its op owns: a padding stage, the im2col patch matrix, avg_pool's window sums,
softmax's row reductions); its knobs' first choices are the default schedule, and its sizes
come from the target's facts (``facts.cpu_facts``: vector lanes, registers, caches). Called
as ``template(s, stage, target=None, **knobs)`` it applies config 0 with some knobs set.
"""
from __future__ import annotations

from loopc.autotune.space import KnobValues
from loopc.errors import ScheduleError
from loopc.schedule import AttachKind
from loopc.schedule.im2col import match_conv
from loopc.te.expr import Reduce
from loopc.te.tensor import ComputeOp

from .facts import cpu_facts, cpu_target
from .registry import register

PAR_MIN_WORK = 1 << 15   # parallelise only loops whose work is worth a thread wake-up
DENSE_PAR_MIN_MACS = 1 << 21   # a dense layer of fewer multiply-adds (~30 us) is not worth a thread wake-up
#: rows of X that share each loaded vector of W in the dense template (its o-tile fills the
#: remaining accumulators), and the row tile when no preferred one divides an extent
TILE_ROWS = 4
#: k steps unrolled inside the GEMM's register tile
K_UNROLL = 4
#: pooling windows up to this many elements are unrolled
MAX_UNROLLED_WINDOW = 16


def _work(stage):
    """Output elements of the stage (its data-parallel iterations)."""
    n = 1
    for iv in stage.op.axis:
        n *= iv.extent
    return n


def _first(default, choices):
    """``choices`` with ``default`` moved to the front: a knob whose config 0 is the default."""
    return [default] + [c for c in choices if c != default]


def _row_tile(extent, choices, fallback=TILE_ROWS):
    """A register-tile height that divides ``extent`` (no guard in the inner loop), else ``fallback``."""
    for t in choices:
        if extent % t == 0:
            return t
    return min(fallback, extent)


# --------------------------------------------------------------------------- elementwise


@register(("injective", "bias_add"), "llvm")
def elementwise(cfg, s, stage, target):
    """The axes fused into one flat loop (row-major: the index folds back to the flat offset),
    split into vectors of two registers; the outer part parallel when the tensor is large.

    for f.outer in parallel(size / 16): for f.inner in vectorized(16): Y[f] = g(X[f])

    Only the trailing axes that every input either follows or ignores are fused: a per-channel
    epilogue (``(conv[n, k, p, q] - mean[k]) * scale[k]``) keeps n and k as outer loops and
    vectorizes the fused p*q, reading each channel's values once per image plane instead of
    dividing the flat index back into a channel in every lane.
    """
    axes = list(stage.op.axis)
    m = _broadcast_suffix(s, stage)
    flat = stage.fuse(*axes[-m:]) if m > 1 else axes[-m]
    if flat.extent < 4:
        return
    vec = cpu_facts(target).vec
    outer, inner = stage.split(flat, factor=min(vec, flat.extent))
    stage.vectorize(inner)
    if _work(stage) < PAR_MIN_WORK:
        return
    if m < len(axes):
        lead = stage.fuse(*axes[:-m]) if len(axes) - m > 1 else axes[0]
        if lead.extent > 1:
            stage.parallel(lead)
            return
    if outer.extent > 1:
        stage.parallel(outer)


def _leaf_reads(s, expr):
    """``(tensor, indices)`` of every read of ``expr``, through the stages inlined into it."""
    from loopc.te.expr import TensorRead, substitute, walk
    for node in walk(expr):
        if not isinstance(node, TensorRead):
            continue
        op = node.tensor.op
        stage = s[op] if isinstance(op, ComputeOp) else None
        if stage is not None and stage.attach is AttachKind.INLINE:
            mapping = {iv.var: i for iv, i in zip(op.axis, node.indices)}
            yield from _leaf_reads(s, substitute(stage.body, mapping))
        else:
            yield node.tensor, node.indices


def _broadcast_suffix(s, stage) -> int:
    """How many trailing axes every read of ``stage`` indexes as they are (the same variables in
    the same order) or not at all: the axes a flat vector loop can fuse. All of them when no
    such suffix exists (a transposing read: the flat loop with its folded index)."""
    from loopc.te.expr import free_vars
    axes = [iv.var for iv in stage.op.axis]
    reads = [(t, tuple(idx), set().union(*[free_vars(i) for i in idx]) if idx else set())
             for t, idx in _leaf_reads(s, stage.body)]
    for m in range(len(axes), 0, -1):
        suffix = axes[-m:]
        if all((len(idx) >= m and all(a is b for a, b in zip(idx[-m:], suffix))) or not (used & set(suffix))
               for _, idx, used in reads):
            return m
    return len(axes)


# --------------------------------------------------------------------------- GEMM and dense


@register(("matmul", "dense_backward_data", "dense_backward_weight"), "llvm")
def gemm(cfg, s, stage, target):
    """C[i, j] += A[i, k] * B[k, j] (B = the op's second input) with B read through a packed
    K x vec panel per column block; knobs: the tile's rows and width, k blocking, parallel.

    for j.outer (parallel):
      B.panel[k, 0:16] = B[k, j.outer*16 : +16]          # cache_read, once per column block
      for i.outer: for k.outer: for k.inner (unrolled 4), i.inner (unrolled 4):
        C[i, j.outer*16 + 0:16] += A[i, k] * B.panel[k, 0:16]
    """
    f = cpu_facts(target)
    M = stage.op.axis[0].extent
    K = stage.reduce_axes[0].extent
    cfg.define_knob("tile_rows", _first(min(f.gemm_rows, M), [r for r in (4, 2, 6, 8) if r <= M]))
    cfg.define_knob("vec", [f.vec, f.lanes])
    cfg.define_knob("k_tile", [k for k in (0, 128, 256) if k < K])    # 0: k not blocked
    cfg.define_knob("parallel", [1, 0])
    _gemm(s, stage, stage.op.input_tensors[1], tile_rows=cfg["tile_rows"].val, vec=cfg["vec"].val,
          k_tile=cfg["k_tile"].val, parallel=bool(cfg["parallel"].val))


def _gemm(s, stage, b_tensor, *, tile_rows, vec, k_tile, parallel):
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
    if k.extent >= 2 * K_UNROLL:
        _, ku = stage.split(k, factor=K_UNROLL)
        stage.unroll(ku)
    stage.unroll(ii)
    stage.vectorize(ji)
    s[panel].compute_at(stage, jo)
    s[panel].vectorize(s[panel].op.axis[1])
    if parallel and _work(stage) >= PAR_MIN_WORK and jo.extent > 1:
        stage.parallel(jo)


@register("dense", "llvm")
def dense(cfg, s, stage, target):
    """Y[i, o] = sum_k X[i, k] * W[o, k]: both operands contiguous along k, so k runs in one
    register's lanes (rfactor) and a tile_i x tile_o block of (i, o) dot products (4 x 3 on
    AVX2: 12 accumulators) shares each loaded vector.

    for i.outer, o.outer:
      for k.outer: for i.inner (4), o.inner (3) unrolled: Y.rf[i, o, 0:8] += X[i, k:k+8] * W[o, k:k+8]
    Y[i, o] = sum(Y.rf[i, o, 0:8])
    """
    f = cpu_facts(target)
    i, o = stage.op.axis
    cfg.define_knob("lanes", [f.lanes, f.vec])
    cfg.define_knob("tile_i", _first(_row_tile(i.extent, (TILE_ROWS, 2)), [t for t in (1, 2, 4, 8) if t <= i.extent]))
    o_rows = (f.accumulators // TILE_ROWS, 2)
    cfg.define_knob("tile_o", _first(_row_tile(o.extent, o_rows), [t for t in (1, 2, 4, 5) if t <= o.extent]))
    cfg.define_knob("parallel", [1, 0])
    lanes, parallel = cfg["lanes"].val, bool(cfg["parallel"].val)
    (k,) = stage.reduce_axes
    if k.extent < 2 * lanes:
        if parallel and _work(stage) >= PAR_MIN_WORK:
            stage.parallel(i)
        return
    _, ki = stage.split(k, factor=lanes)
    rf = s.rfactor(stage.op.output(0), ki, factor_axis=-1)
    stage.unroll(stage.reduce_axes[0])    # the sum of the lanes: straight-line adds
    rf_stage = s[rf]
    i, o, lane = rf_stage.op.axis
    io, ii = rf_stage.split(i, factor=min(cfg["tile_i"].val, i.extent))
    oo, oi = rf_stage.split(o, factor=min(cfg["tile_o"].val, o.extent))
    rf_stage.reorder(io, oo, rf_stage.reduce_axes[0], ii, oi, lane)
    rf_stage.unroll(ii)
    rf_stage.unroll(oi)
    rf_stage.vectorize(lane)
    if parallel and _work(stage) * k.extent >= DENSE_PAR_MIN_MACS:
        rf_stage.parallel(io)


# --------------------------------------------------------------------------- convolution

#: direct convolution (output channels in vector lanes) for output images up to this many
#: pixels: a whole image's outputs for one vector of 16 channels (P*Q x 64 bytes, 256 KiB)
#: stay in a 512 KiB L2 (a fixed count: tests and tuned records name it)
DIRECT_MAX_PIXELS = 4096
#: output channels of a direct convolution's vector at the least: a 64-byte line of packed weights
LINE_FLOATS = 16
#: input channels of a block when a long window blocks them (a slice of packed weights in L1)
C_BLOCK = 16
#: the channel blocks a direct convolution may take (those that divide C)
C_BLOCKS = (128, 64, 32, 16)


def channel_vector(f, K):
    """Output channels in the vector of a direct convolution: two registers, or one when K
    allows no more, but never less than a 64-byte line (AVX2: 16; AVX-512: 32 or 16); None
    when K is a multiple of none of them."""
    for v in sorted({max(LINE_FLOATS, f.vec), max(LINE_FLOATS, f.lanes)}, reverse=True):
        if K % v == 0:
            return v
    return None


def _conv_shape(stage):
    N, K, P, Q = stage.op.shape
    W = match_conv(stage)[1].tensor      # the weight read (a clear error if not a convolution)
    return (N, K, P, Q), W.shape[1:], W


def default_conv2d_method(stage, target=None):
    """"direct" when the K output channels fill whole channel vectors and the P x Q image is
    not too large (LeNet's conv2, ResNet's 56x56 and 14x14 layers), else "im2col" (LeNet's
    conv1, with 6 channels). A pointwise convolution (1x1, stride 1: a GEMM reading X itself)
    is im2col when its pixels fill whole pixel vectors (MobileNet's 56x56 and 28x28 layers) or
    its weights fit L2 (the GEMM reads them once per pixel panel; larger weights are packed
    once by the direct method instead) and the image has 4 panels or more (a 7x7 image would
    waste a third of its last panel)."""
    f = cpu_facts(target)
    (_, K, P, Q), (C, _, _), _ = _conv_shape(stage)
    if _pointwise(stage) and (P * Q % f.vec == 0 or (K * C * 4 <= f.l2 and P * Q >= 4 * f.vec)):
        return "im2col"
    return "direct" if channel_vector(f, K) and P * Q <= DIRECT_MAX_PIXELS else "im2col"


@register("conv2d_nchw", "llvm")
def conv2d(cfg, s, stage, target):
    """Convolution: :func:`conv2d_direct` or :func:`conv2d_im2col` (knob ``method``, first the
    one :func:`default_conv2d_method` picks), with the knobs of both methods and ``parallel``:
    the tuner may switch any layer's algorithm and tune the one it switched to."""
    cfg.define_knob("method", _first(default_conv2d_method(stage, target), ["direct", "im2col"]))
    direct = _direct_knobs(cfg, stage, target)
    im2col = _im2col_knobs(cfg, stage, target)
    cfg.define_knob("parallel", [1, 0])
    parallel = bool(cfg["parallel"].val)
    if cfg["method"].val == "im2col":
        return _im2col(s, stage, parallel=parallel, **im2col)
    return _direct(s, stage, parallel=parallel, **direct)


def schedule_conv2d(s, stage, method=None, target=None, **knobs):
    """The convolution template with some knobs set, ``method`` "direct" or "im2col" (None:
    the default for the shape), e.g. ``schedule_conv2d(s, s[Y], method="direct", tile_q=3)``."""
    if method is None:
        return conv2d(s, stage, target=target, **knobs)
    template = {"direct": conv2d_direct, "im2col": conv2d_im2col}.get(method)
    if template is None:
        raise ScheduleError("schedules.cpu.schedule_conv2d", stage.name, f"unknown method {method!r}",
                            "use method='direct' or method='im2col'")
    cfg = KnobValues(knobs)
    template(cfg, s, stage, cpu_target(target))
    cfg.check_used(f"the {method} convolution template")


def _direct_knobs(cfg, stage, target):
    """Knobs of the direct method (tile_q, c_block, unroll_s), defaults first."""
    f = cpu_facts(target)
    (N, K, P, Q), (C, R, S_), _ = _conv_shape(stage)
    vec = channel_vector(f, K) or max(LINE_FLOATS, f.vec)
    # the packed weights of one channel vector (C*R*S x vec floats) fit L1: the tile stays live
    # over the whole window. A longer window — or a pointwise one, whose pixels are best tiled as
    # one row-major run — blocks the input channels: the largest block whose slice of packed weights
    # takes at most a quarter of L1, at least C_BLOCK channels
    long_window = C * R * S_ > f.l1d // (4 * vec)
    blocks = [b for b in C_BLOCKS if C % b == 0]
    fitting = [b for b in blocks if b * R * S_ * vec * 4 <= f.l1d // 4] or [b for b in blocks if b == C_BLOCK]
    c_block = fitting[0] if fitting and (long_window or _pointwise(stage)) else 0
    fits = [t for t in (6, 5, 4, 3) if f.regs(vec) * t <= f.accumulators]
    if c_block:
        # the image's pixels in one run: the widest tile that fits the registers (one short tail)
        tile_q = min(fits[0], P * Q)
    else:
        # a row at a time: a tile that divides the row, leaving one accumulator register spare
        # (a tile of all of them spills once the unrolled taps' inputs are live: 6 x 2 registers
        # on AVX2 ran at half the speed of 4 x 2 on the chapter Net's 24-wide rows)
        tile_q = next((t for t in (5, 6, 4, 7, 3) if Q % t == 0 and f.regs(vec) * t < f.accumulators), min(4, Q))
    cfg.define_knob("tile_q", _first(tile_q, (4, 5, 6, 3)))
    cfg.define_knob("c_block", _first(c_block, [0, *reversed(blocks)]))
    cfg.define_knob("unroll_s", [1, 0])
    return dict(vec=vec, tile_q=cfg["tile_q"].val, c_block=cfg["c_block"].val, unroll_s=bool(cfg["unroll_s"].val))


def conv2d_direct(cfg, s, stage, target):
    """Direct convolution (:func:`_direct`) with its knobs and ``parallel``."""
    knobs = _direct_knobs(cfg, stage, target)
    cfg.define_knob("parallel", [1, 0])
    _direct(s, stage, parallel=bool(cfg["parallel"].val), **knobs)


def _direct(s, stage, *, vec, tile_q, c_block, unroll_s, parallel):
    """Direct convolution with the output channels in vector lanes: weights packed a vector of
    output channels at a time (``cache_read`` with ``block``), a ``tile_q`` x ``vec`` register
    tile of outputs (``cache_write`` with the channels innermost), each input value broadcast
    to ``vec`` multiply-adds; the window's s loop unrolled (``unroll_s``)::

        W.global[k.outer, c, r, s, 0:16] = W[k.outer*16 + 0:16, c, r, s]   # packed once per call
        for n (parallel), k.outer, p, q.outer:
          for c, r: for s, q.inner (unrolled): Y.local[q.inner, 0:16] += X[n, c, p+r, q+s] * W.global[k.outer, c, r, s, 0:16]
          Y[n, k.outer*16 + 0:16, p, q.outer*T + q.inner] = Y.local[q.inner, 0:16]

    With a long window (``c_block`` > 0) the tile lives at k.outer and the channels are
    blocked: a c_block slice of the packed weights stays in L1 while every pixel of the image
    uses it; the tile then runs over the image's pixels in row-major order (p and q fused),
    ``tile_q`` of them at a time, so that a 14-wide row needs no tail; for one image, each
    k.outer block packs its own weights. A padding stage is computed once, at the root."""
    op = stage.op
    Y = op.output(0)
    (N, K, P, Q), (C, R, S_), W = _conv_shape(stage)
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


#: the ``per_image`` choice of a pointwise convolution whose patch matrix is X itself
PATCH_NONE = 2


def _pointwise(stage):
    """A 1x1 convolution of stride 1 without padding: Y[n] = W (K x C) @ X[n] (C x H*W)."""
    (_, _, P, Q), (_, R, S_), _ = _conv_shape(stage)
    X = stage.op.input_tensors[0]
    return (R, S_) == (1, 1) and getattr(X.op, "tag", "") != "pad" and tuple(X.shape[2:]) == (P, Q)


def conv2d_im2col(cfg, s, stage, target):
    """im2col, with the patch matrix built one vec-column panel at a time inside the GEMM
    (knobs: ``vec`` pixels in lanes, ``tile_k`` output channels per tile, ``per_image`` patch
    matrices, ``parallel``)::

        for n (parallel):
          for pq.outer:                                     # 16 output pixels
            col[crs, 0:16] = X[n, c, p*sh + r*dh, q*sw + s*dw]      # compute_at: a packed panel
            for k.outer: for crs: for k.inner (unrolled): Y[n, k, pq.outer*16 + 0:16] += W[k, crs] * col[crs, 0:16]
    """
    knobs = _im2col_knobs(cfg, stage, target)
    cfg.define_knob("parallel", [1, 0])
    _im2col(s, stage, parallel=bool(cfg["parallel"].val), **knobs)


def _im2col_knobs(cfg, stage, target):
    """Knobs of the im2col method (vec, tile_k, per_image), defaults first."""
    f = cpu_facts(target)
    (N, K, P, Q), (C, R, S_), _ = _conv_shape(stage)
    # tile rows of vec lanes whose accumulators fit the registers (AVX2: 6, 4, 3, 2)
    rows = [t for t in (12, 8, 6, 4, 3, 2) if t * f.regs(f.vec) <= f.accumulators]
    # a per-image patch matrix (C*R*S x P*Q floats) that fits half of L2, for narrow images
    per_image = C * R * S_ * P * Q * 4 <= f.l2 // 2 and Q <= 32
    cfg.define_knob("vec", [f.vec, f.lanes])
    cfg.define_knob("tile_k", _first(_row_tile(K, rows), (2, 4, 8)))
    # a 1x1 convolution of stride 1 without padding reads its patch matrix straight from X
    # (each image is a C x P*Q matrix): no copy (``per_image`` 2)
    patch = [PATCH_NONE] if _pointwise(stage) else []
    cfg.define_knob("per_image", patch + [int(per_image), int(not per_image)])
    return dict(vec=cfg["vec"].val, tile_k=cfg["tile_k"].val, per_image=cfg["per_image"].val)


def _im2col(s, stage, *, vec, tile_k, per_image, parallel):
    """The im2col schedule of :func:`conv2d_im2col` with its knobs' values."""
    (_, _, _, Q), (_, R, S_), _ = _conv_shape(stage)
    pads = [st for st in s.stages if st.op.tag == "pad"]
    col, _ = s.im2col(stage.op.output(0))
    for pad in pads:
        pad.compute_inline()
    n, k, p, q = stage.op.axis
    (crs,) = stage.reduce_axes
    pq = stage.fuse(p, q)
    pqo, pqi = stage.split(pq, factor=min(vec, pq.extent))
    ko, ki = stage.split(k, factor=min(tile_k, k.extent))
    stage.reorder(n, pqo, ko, crs, ki, pqi)
    stage.unroll(ki)
    stage.vectorize(pqi)
    col_stage = s[col]
    if per_image == PATCH_NONE:
        col_stage.compute_inline()
    else:
        _patch_panels(stage, col_stage, pqo, per_image, Q, R * S_, S_)
    if parallel and _work(stage) * crs.extent >= PAR_MIN_WORK:
        stage.parallel(n if n.extent > 1 else pqo)


def _patch_panels(stage, col_stage, pqo, per_image, Q, RS, S_):
    """Where and how the patch matrix is built: per image (small images) or per pixel panel
    (``Q`` pixels a row, ``RS`` taps a window, ``S_`` a window row)."""
    # splitting the patch row index (c, r, s) back into three loops turns its // and % into sums
    _, rs_ax = col_stage.split(col_stage.op.axis[1], factor=RS)
    col_stage.split(rs_ax, factor=S_)
    if per_image:
        # small images: one patch matrix per image, built a whole output row q at a time —
        # the input row is contiguous there, so each copy is a plain vector load
        col_stage.compute_at(stage, stage.op.axis[0])
        _, qv = col_stage.split(col_stage.op.axis[2], factor=Q)
        col_stage.vectorize(qv)
    else:
        # large images: a vec-pixel panel per block, a vector gather (a compact loop nest: LLVM's
        # unroller would otherwise take ~1 s to expand a scalar copy)
        col_stage.compute_at(stage, pqo)
        col_stage.vectorize(col_stage.op.axis[2])


# --------------------------------------------------------------------------- pooling and softmax


#: the tags of the pooling computes (``pooling.py``), all scheduled by :func:`pool`
POOL_TAGS = tuple(f"{t}_pool{n}d" for t in ("max", "avg") for n in (1, 2, 3)) + ("adaptive_pool",)


@register(POOL_TAGS, "llvm")
def pool(cfg, s, stage, target):
    """Parallel over the outer planes; the window loops innermost, unrolled when small. Channels
    first (NCHW): under a vector of output columns (strided loads, masked per lane where a tap
    may fall in the padding); channels last (NHWC): under a vector of channels (contiguous, one
    bounds test per tap for all lanes). An average's window sums (its ``pool_sum`` input) are computed plane by plane
    (NCHW) or pixel by pixel (NHWC) inside the division's loop, while they are in cache."""
    vec = cpu_facts(target).vec
    outer = _pool_loops(stage, vec)
    for t in stage.op.input_tensors:
        if getattr(t.op, "tag", "") == "pool_sum" and s[t].attach is AttachKind.ROOT:
            _pool_loops(s[t], vec, parallel=False)
            s[t].compute_at(stage, outer)


def _channels_last(stage):
    layout = stage.op.attrs.get("layout", "")
    return layout.endswith("C")


def _pool_loops(stage, vec, parallel=True):
    """Schedules one pooling stage; returns its outermost loop (the planes, fused)."""
    axes = list(stage.op.axis)
    window = 1
    for ax in stage.reduce_axes:
        window *= ax.extent
    if window <= MAX_UNROLLED_WINDOW:
        for ax in stage.reduce_axes:       # straight-line window
            stage.unroll(ax)
    if _channels_last(stage):
        c = axes[-1]
        if c.extent >= 4:
            _, ci = stage.split(c, factor=min(vec, c.extent))
            stage.vectorize(ci)
        outer = axes[:-1]
    else:
        q = axes[-1]
        if window <= MAX_UNROLLED_WINDOW and q.extent <= 2 * vec:
            stage.vectorize(q)    # a row of outputs at once: branch-free max, strided (masked) loads
        elif window <= MAX_UNROLLED_WINDOW:
            _, qi = stage.split(q, factor=vec)      # a wide row: a vector of outputs at a time
            stage.vectorize(qi)
        outer = axes[:2]           # (n, c)
    fused = stage.fuse(*outer)
    if parallel and _work(stage) >= PAR_MIN_WORK:
        stage.parallel(fused)
    return fused


@register(("softmax", "log_softmax"), "llvm")
def softmax(cfg, s, stage, target):
    """Softmax and its pieces (the row max, exponentials and row sum its op reads: untagged
    compute stages): parallel over rows; elementwise stages vectorized along the row."""
    vec = cpu_facts(target).vec
    for helper in _untagged_producers(stage.op):
        st = s[helper]
        if st.attach is AttachKind.ROOT and not st.relations and not st.iter_kinds:
            rowwise(st, vec)
    rowwise(stage, vec)


def _untagged_producers(op):
    """The untagged compute ops ``op`` reads, directly or through each other, producers first."""
    out = []

    def visit(o):
        for t in o.input_tensors:
            if isinstance(t.op, ComputeOp) and not t.op.tag and t.op not in out:
                visit(t.op)
                out.append(t.op)
    visit(op)
    return out


def rowwise(stage, vec):
    """Parallel over rows (the first axis); an elementwise stage vectorized along the row."""
    axes = list(stage.op.axis)
    if not isinstance(stage.body, Reduce) and axes[-1].extent >= 4:
        _, vi = stage.split(axes[-1], factor=min(vec, axes[-1].extent))
        stage.vectorize(vi)
    if len(axes) > 1 and _work(stage) >= PAR_MIN_WORK:
        stage.parallel(axes[0])
