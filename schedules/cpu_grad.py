"""CPU schedule templates of the backward operators (``grad.py``) and optimizer updates
(``optim.py``), registered for the "llvm" target kind like those of ``cpu.py``.

Each template edits schedule ``s`` for one output stage and the helper stages its declaration
owns, found by their place in the op graph (which input of which stage, as ``grad.py``
declares them), never by name. Sizes come from the target's facts (``facts.cpu_facts``):
``f.lanes`` per register, ``f.vec`` per vector loop, ``f.accumulators`` per register tile.
"""
from __future__ import annotations

from loopc.schedule import AttachKind
from loopc.te.expr import Reduce

from . import cpu
from .cpu import MAX_UNROLLED_WINDOW, PAR_MIN_WORK, _work
from .facts import cpu_facts
from .registry import register

#: the elementwise template of ``cpu.py`` also schedules these ops
register(("relu_backward", "nll_loss_backward", "sgd_momentum", "adadelta",
          "adadelta_delta"), "llvm")(cpu.elementwise.func)     # adadelta_delta: both outputs read it


def _lanes(f, extent, max_lanes=None):
    """A vector width for a loop of ``extent``: the whole loop when short, else a width that
    divides it (two registers, one, three, then any from ``max_lanes`` — default three
    registers — down to one register), else two registers with a masked tail.

    Dividing matters: a masked tail inside a reduction keeps its accumulators in memory, and
    masked stores are slow (microcoded on AMD)."""
    max_lanes = 3 * f.lanes if max_lanes is None else max_lanes
    if extent <= max_lanes:
        return extent
    for v in (f.vec, f.lanes, 3 * f.lanes):
        if v <= max_lanes and extent % v == 0:
            return v
    for v in range(max_lanes, f.lanes - 1, -1):
        if extent % v == 0:
            return v
    return f.vec


def _rows(f, extent, lanes):
    """Rows of a register tile (each ``lanes`` wide): a divisor of ``extent`` when one fits."""
    limit = max(1, f.accumulators // f.regs(lanes))
    for t in range(min(limit, extent), 0, -1):
        if extent % t == 0 and t >= max(2, limit // 2):
            return t
    return min(limit, extent)


def _split_vector(stage, axis, lanes):
    if lanes >= axis.extent:
        return None, axis
    return stage.split(axis, factor=lanes)


# --------------------------------------------------------------------------- dense and bias


# dX = dY @ W and dW = dY^T @ X: the GEMM template of cpu.py (registered there for these tags),
# the second operand read through packed panels.


@register("bias_backward", "llvm")
def bias_backward(cfg, s, stage, target):
    """db[j] = sum of dY over the other axes.

    Bias axis last (dense): vectors along j, the whole reduction on registers.
    Otherwise (NCHW): the axes after j are contiguous, so they are fused, split by two
    registers' lanes (16 on AVX2) and rfactored into that many partial sums per j, which the
    last stage adds up.
    """
    f = cpu_facts(target)
    axis = stage.op.attrs["axis"]
    ndim = len(stage.op.input_tensors[0].shape)
    (j,) = stage.op.axis
    red = list(stage.reduce_axes)
    if axis == ndim - 1:
        jo, ji = _split_vector(stage, j, _lanes(f, j.extent, f.vec))
        stage.reorder(*([jo] if jo is not None else []), *red, ji)
        stage.vectorize(ji)
        if jo is not None and _work(stage) >= PAR_MIN_WORK:
            stage.parallel(jo)
        return
    trailing = red[axis:]           # the reduction axes after the bias axis, contiguous in dY
    inner = stage.fuse(*trailing) if len(trailing) > 1 else trailing[0]
    if inner.extent < f.vec:
        return
    _, lane = stage.split(inner, factor=f.vec)
    rf = s[s.rfactor(stage.op.output(0), lane, factor_axis=-1)]
    rj, rlane = rf.op.axis
    rf.reorder(rj, *rf.reduce_axes, rlane)
    rf.vectorize(rlane)
    if _work(stage) >= PAR_MIN_WORK and rj.extent > 1:
        rf.parallel(rj)


# --------------------------------------------------------------------------- convolution


#: image blocks of conv2d_backward_weight's partial sums (rfactor over images): enough for the
#: cores of a desktop or a small server; each block has its own C*R*S*K partial sum
W_IMAGE_BLOCKS = 8


@register("conv2d_backward_weight", "llvm")
def conv2d_backward_weight(cfg, s, stage, target):
    """acc[c, r, s, k] = sum_{n, p, q} Xpad[n, c, ...] * dyT[n, p, q, k] as a register-tiled GEMM
    whose long reduction runs image by image, each image's dY packed once into L2:

    for n.outer (parallel):                          # image blocks: partial sums (rfactor)
      for n.inner:
        dyP[k.outer, p, q, 0:kv] = dY[n, k.outer*kv + 0:kv, p, q]   # packed, per image (in L2)
        for c.outer, r, k.outer:                     # a register tile of accumulators:
          for p, q: for c.inner, s (unrolled):       #   (c_tile x S) rows x kv channels
            acc.rf[n.outer, c, r, s, 0:kv] += Xpad[n, c, p*sh + r*dh, q*sw + s*dw] * dyP[k.outer, p, q, 0:kv]
    acc[c, r, s, k] = sum over n.outer of acc.rf; then dW[k, c, r, s] = acc[c, r, s, k].

    The tile's rows are S taps of c_tile input channels (each loaded vector of dY meets
    c_tile * S broadcast inputs), kv = two registers of output channels, as many rows as the
    accumulators hold (AVX2: 2 x 3 rows x 16 channels); a tile with a spare row of registers
    takes two pixels per iteration. Each (c, r, k.outer) tile streams one
    image's packed dY slice (P*Q*kv floats, contiguous) from L2: no pass over the whole batch's
    dY per tile. When the partial sums of the image blocks would not fit ``8 * l2`` (very
    large layers) or there is one image, (c, r) is the parallel loop instead.
    """
    f = cpu_facts(target)
    (acc_t,) = stage.op.input_tensors             # dW reads acc
    x_in, dyT = acc_t.op.input_tensors            # acc reads (Xpad or X, dyT)
    pad = x_in if getattr(x_in.op, "tag", "") == "pad" else None
    acc = s[acc_t]
    C, R, S, K = acc_t.shape
    N = acc.reduce_axes[0].extent
    big = _work(acc) * acc.reduce_axes[1].extent * acc.reduce_axes[2].extent * N >= PAR_MIN_WORK
    blocks = min(N, W_IMAGE_BLOCKS)
    per_block = big and N >= 2 and blocks * C * R * S * K * 4 <= 8 * f.l2
    main, lead = acc, None
    if per_block:
        no, _ = acc.split(acc.reduce_axes[0], nparts=blocks)
        main = s[s.rfactor(acc_t, no, factor_axis=0)]
        lead = main.op.axis[0]
    c, r, s_, k = main.op.axis[-4:]
    n, p, q = main.reduce_axes
    # the register tile: (c_tile x s_tile) rows of kv output channels
    kv = f.vec if K % f.vec == 0 else f.lanes if K % f.lanes == 0 else _lanes(f, K)
    budget = max(1, f.accumulators // f.regs(kv))
    s_tile = min(S, budget)
    c_tile = max(d for d in range(1, budget // s_tile + 1) if C % d == 0)
    rows = c_tile * s_tile
    packed = None
    if per_block and kv < K:
        # dY[n] as (k.outer, p, q, kv): the slice one tile streams is contiguous
        packed = s.cache_read(dyT, "global", [main], layout=(0, 3, 1, 2), block={3: kv})
    ko, ki = _split_vector(main, k, kv)
    so, si = (None, s_) if S <= s_tile else main.split(s_, factor=s_tile)
    co, ci = (c, None) if c_tile == 1 else main.split(c, factor=c_tile)
    pixels = [p, q]
    inner = [x for x in (ci, si) if x is not None]
    if (rows + 1) * f.regs(kv) <= f.accumulators and q.extent % 2 == 0:
        # two pixels per iteration (half the loop overhead of a short body) when the registers
        # hold the second pixel's vectors too (a full tile of 2 x 3 x 16 on AVX2 spilled)
        qo, qi = main.split(q, factor=2)
        pixels = [p, qo]
        inner = [qi] + inner
    for x in inner:
        main.unroll(x)
    main.vectorize(ki)
    tile_loops = [x for x in (so, ko) if x is not None]
    if per_block:
        main.reorder(lead, n, co, r, *tile_loops, *pixels, *inner, ki)
        if big:
            main.parallel(lead)
    else:
        main.reorder(co, r, *tile_loops, n, *pixels, *inner, ki)
        cr = main.fuse(co, r)
        if big:
            main.parallel(cr)
    dst = s[dyT]
    if packed is not None:
        dst.compute_inline()
        s[packed].compute_at(main, n)            # one image at a time, into L2
    elif per_block:
        dst.compute_at(main, n)
        if K <= 16:
            dst.unroll(dst.op.axis[3])
    else:
        if K <= 16:
            dst.unroll(dst.op.axis[3])    # the transpose: a few output channels per pixel, unrolled
        if big:
            dst.parallel(dst.op.axis[0])
    if main is not acc:
        _, aki = _split_vector(acc, acc.op.axis[3], _lanes(f, K, f.vec))
        acc.vectorize(aki)                 # acc = the sum of the image blocks' partials
    if pad is not None:
        ps = s[pad]
        if ps.attach is AttachKind.INLINE:
            ps.compute_root()
        pn, pc, ph, pw = ps.op.axis
        if pw.extent <= 64:
            ps.vectorize(pw)
        if big:
            ps.parallel(ps.fuse(pn, pc))


#: conv2d_backward_data computes its GEMM for a block of input channels whose slice of ``col``
#: (c_block * R * S * P*Q floats) takes at most this fraction of L2, right before its col2im
COL_L2_FRACTION = 4


@register("conv2d_backward_data", "llvm")
def conv2d_backward_data(cfg, s, stage, target):
    """Per image and block of input channels: the GEMM col = W^T @ dY[n] (vectors along
    p*Q + q), then col2im (vectors along w), while that block of col is still in L2.

    Wt[c, r, s, k] = W[k, c, r, s]                      # packed once (several blocks only)
    for n (parallel): for c.outer:                      # c_block channels: col slice <= l2 / 4
      for pq.outer:                                     # a vec-wide panel of dY[n] stays in L1
        for (c.inner, r, s).outer:                      #   for every row tile of the block
          col[rows, 0:vec] = sum_k Wt[rows, k] * dY[n, k, pq.outer*vec + 0:vec]   # rows x vec registers
      for c.inner, h: dX[n, c, h, 0:W] = sum_{r, s} col[c, r, s, (h + ph - r*dh)*Q + pw - s*dw + 0:W]
                                                         # r, s unrolled; lanes off the edge masked

    A whole image's col (C*R*S x P*Q floats: 660 KB for the chapter Net's conv2) would not fit
    L2 and would go out to memory and back between the GEMM and col2im.
    """
    f = cpu_facts(target)
    (col_t,) = stage.op.input_tensors             # dX reads the GEMM's output col
    w_t = col_t.op.input_tensors[0]               # col reads (W, dY)
    n, c, h, w = stage.op.axis
    r, s_ = stage.reduce_axes
    N, C, R, S, PQp = col_t.shape
    wo, wi = _split_vector(stage, w, _lanes(f, w.extent, 4 * f.lanes))
    big = _work(stage) >= PAR_MIN_WORK
    col = s[col_t]
    c_block = max(d for d in range(1, C + 1)
                  if C % d == 0 and (d == 1 or d * R * S * PQp * 4 <= f.l2 // COL_L2_FRACTION))
    co, ci = stage.split(c, factor=c_block)
    stage.reorder(n, co, ci, h, *([wo] if wo is not None else []), r, s_, wi)
    if R * S <= 64:
        stage.unroll(r)
        stage.unroll(s_)
    elif S <= 8:
        stage.unroll(s_)
    stage.vectorize(wi)
    col.compute_at(stage, co)
    if big:
        stage.parallel(n if N >= 2 else co)
    if c_block < C:
        # W as (c, r, s, k): a block's weights are contiguous (c_block*R*S*K floats in L1, not
        # K rows of a long stride over as many pages); a small layer (one block) reads W as is
        wp = s.cache_read(w_t, "global", [col], layout=(1, 2, 3, 0))
        if big and _work(s[wp]) >= PAR_MIN_WORK:
            s[wp].parallel(s[wp].op.axis[0])
    cn, cc, cr, cs, pq = col.op.axis
    crs = col.fuse(cc, cr, cs)
    lanes = _lanes(f, pq.extent, f.vec)
    po, pi = _split_vector(col, pq, lanes)
    rows = _rows(f, c_block * R * S, lanes)
    to, ti = col.split(crs, factor=rows)
    col.reorder(cn, *([po] if po is not None else []), to, *col.reduce_axes, ti, pi)
    col.unroll(ti)
    col.vectorize(pi)


# --------------------------------------------------------------------------- pooling


@register("max_pool2d_backward", "llvm")
def max_pool2d_backward(cfg, s, stage, target):
    """Parallel over (image, channel) planes (NCHW) or image rows (NHWC).

    Tiling windows (one stage): h and w split by the window, so that the declaration's
    ``h // kh`` and ``h % kh`` become loop variables and each unrolled copy compares with
    constant window offsets, in straight-line, branch-free scalar code (loopc's vector lanes
    would turn the stride-kw window reads into gathers, which measured slower):

        for n.c (parallel): for h.outer: for h.inner (unrolled): for w.outer: for w.inner (unrolled):
          dX[n, c, h, w] = dY[n, c, h.outer, w.outer] * first_max(X[n, c, window], h.inner, w.inner)

    Otherwise the gather is :func:`_strided_gather`; in NCHW winmax and argmax are computed per
    plane, inside the plane loop (they stay in cache), each under a vector of output columns
    like the forward pool; in NHWC they are computed once, under vectors of channels.
    """
    kh, kw = stage.op.attrs["kernel"]
    if not isinstance(stage.body, Reduce):        # the tiling form: one stage (NCHW)
        n, c, h, w = stage.op.axis
        nc = stage.fuse(n, c)
        ho, hi = stage.split(h, factor=kh)
        wo, wi = stage.split(w, factor=kw)
        stage.reorder(nc, ho, hi, wo, wi)
        stage.unroll(hi)
        stage.unroll(wi)
        if _work(stage) >= PAR_MIN_WORK:
            stage.parallel(nc)
        return
    am_t = stage.op.input_tensors[0]              # the gradient's sum reads argmax first
    mx_t = am_t.op.input_tensors[-1]              # argmax reads (X, winmax)
    am, mx = s[am_t], s[mx_t]
    vec = cpu_facts(target).vec
    plane = _strided_gather(stage, vec)
    if not _channels_last(stage):
        am.compute_at(stage, plane)
        mx.compute_at(am, am.op.axis[1])
        for st in (mx, am):                       # like the forward pool: a vector of columns
            q = st.op.axis[-1]
            if _window(st) <= MAX_UNROLLED_WINDOW:
                for ax in st.reduce_axes:
                    st.unroll(ax)
                if q.extent <= 2 * vec:
                    st.vectorize(q)
        return
    for st in (mx, am):                           # NHWC: each once, vectors of channels
        _pool_grad_rows(st, vec)


#: a pooling gradient's (stride phase x taps) unrolled up to this many copies
MAX_UNROLLED_GATHER = 64


def _channels_last(stage):
    return stage.op.attrs.get("layout", "NCHW").endswith("C")


def _window(stage):
    n = 1
    for ax in stage.reduce_axes:
        n *= ax.extent
    return n


def _strided_gather(stage, vec):
    """A pooling gradient (the gather), with h and w split by the stride: unrolled over the
    inner phase and the taps, each copy's ``(h + top - r) % sh`` is a constant, so the test of
    which window holds a position folds away. NCHW, parallel over planes::

        for n.c (parallel): for h.outer: for h.inner (unrolled sh): for w.outer: for w.inner (unrolled sw):
          for r, s (unrolled): dX[n, c, h, w] += dY[n, c, p(h.inner, r), q(w.inner, s)] ...

    NHWC: parallel over (n, h.outer), channels in vector lanes innermost. Returns the
    parallel (plane) loop."""
    n, a1, a2, a3 = stage.op.axis
    last = _channels_last(stage)
    h, w = (a1, a2) if last else (a2, a3)
    plane = None if last else stage.fuse(n, a1)
    sh, sw = stage.op.attrs["stride"]
    if last and a3.extent >= 4:
        _, ci = stage.split(a3, factor=min(vec, a3.extent))
        stage.vectorize(ci)
    if _window(stage) * sh * sw <= MAX_UNROLLED_GATHER:
        inner = []
        for ax, st in ((h, sh), (w, sw)):
            if st > 1 and ax.extent >= st:
                ho, ai = stage.split(ax, factor=st)
                inner.append(ai)
                if last and ax is h:
                    h = ho
        for ax in inner + list(stage.reduce_axes):
            stage.unroll(ax)
    if last:
        plane = stage.fuse(n, h)
    if _work(stage) >= PAR_MIN_WORK:
        stage.parallel(plane)
    return plane


def _pool_grad_rows(stage, vec):
    """A pooling gradient's helper in NHWC (window maxima, first maxima): channels in vector
    lanes, the taps unrolled when few, (image, row) fused and parallel when worth it."""
    if _window(stage) <= MAX_UNROLLED_WINDOW:
        for ax in stage.reduce_axes:
            stage.unroll(ax)
    c = stage.op.axis[-1]
    if c.extent >= 4:
        _, ci = stage.split(c, factor=min(vec, c.extent))
        stage.vectorize(ci)
    if _work(stage) >= PAR_MIN_WORK:
        stage.parallel(stage.fuse(*stage.op.axis[:2]))


@register("avg_pool2d_backward", "llvm")
def avg_pool2d_backward(cfg, s, stage, target):
    """The gather of each input position's windows (:func:`_strided_gather`)."""
    _strided_gather(stage, cpu_facts(target).vec)


# --------------------------------------------------------------------------- loss


@register("nll_loss", "llvm")
def nll_loss(cfg, s, stage, target):
    """A (batch,) reduction into one number: the default loop is already the best."""


@register("log_softmax_backward", "llvm")
def log_softmax_backward(cfg, s, stage, target):
    """Per row (axis last): the row sum of dlogp, then dlogp - exp(logp) * sum vectorized."""
    f = cpu_facts(target)
    axis = stage.op.attrs["axis"]
    axes = list(stage.op.axis)
    total = s[stage.op.input_tensors[-1]]        # the row sum, read last
    if axis != len(axes) - 1 or len(axes) < 2:
        cpu.elementwise.func(cfg, s, stage, target)
        return
    rows = stage.fuse(*axes[:-1]) if len(axes) > 2 else axes[0]
    _, vi = _split_vector(stage, axes[-1], _lanes(f, axes[-1].extent, f.vec))
    stage.vectorize(vi)
    total.compute_at(stage, rows)
    if _work(stage) >= PAR_MIN_WORK:
        stage.parallel(rows)

