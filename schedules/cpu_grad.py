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
from .cpu import PAR_MIN_WORK, _work
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


@register("conv2d_backward_weight", "llvm")
def conv2d_backward_weight(cfg, s, stage, target):
    """acc[c, r, s, k] = sum_{n, p, q} Xpad[n, c, ...] * dyT[n, p, q, k] as a register-tiled GEMM.

    for c, r (parallel):                       # or (n.outer, c, r) after an rfactor over images
      for n, p, q.outer: for q.inner (2), s (unrolled):   # the long reduction, accumulators in registers
        acc[c, r, s, 0:K] += Xpad[n, c, p*sh + r*dh, q*sw + s*dw] * dyT[n, p, q, 0:K]
    then dW[k, c, r, s] = acc[c, r, s, k] (a small transposed copy).
    """
    f = cpu_facts(target)
    (acc_t,) = stage.op.input_tensors             # dW reads acc
    x_in, dyT = acc_t.op.input_tensors            # acc reads (Xpad or X, dyT)
    pad = x_in if getattr(x_in.op, "tag", "") == "pad" else None
    acc = s[acc_t]
    C, R, S, K = acc_t.shape
    N = acc.reduce_axes[0].extent
    big = _work(acc) >= PAR_MIN_WORK
    main, lead = acc, None
    if big and C * R < 8 and N >= 2:
        # too few (c, r) rows for the cores: give each a slice of the images, then add them up
        no, _ = acc.split(acc.reduce_axes[0], nparts=min(N, 8))
        main = s[s.rfactor(acc_t, no, factor_axis=0)]
        lead = main.op.axis[0]
    c, r, s_, k = main.op.axis[-4:]
    red = list(main.reduce_axes)
    lanes = _lanes(f, K)
    ko, ki = _split_vector(main, k, lanes)
    unroll = max(1, f.accumulators // f.regs(lanes))
    so, si = (None, s_) if S <= unroll else main.split(s_, factor=unroll)
    outer = [x for x in (lead, c, r, so, ko) if x is not None]
    if red[-1].extent % 2 == 0:
        # two pixels per iteration: half the loop overhead of a body of only S multiply-adds
        q_pairs, q_pair = main.split(red[-1], factor=2)
        red = red[:-1] + [q_pairs, q_pair]
        main.reorder(*outer, *red, si, ki)
        main.unroll(q_pair)
    else:
        main.reorder(*outer, *red, si, ki)
    main.unroll(si)
    main.vectorize(ki)
    if big:
        main.parallel(main.fuse(*outer) if len(outer) > 1 else outer[0])
    if main is not acc and K <= 64:
        acc.vectorize(acc.op.axis[3])      # acc = the sum of the per-slice partials
    dst = s[dyT]
    if K <= 16:
        dst.unroll(dst.op.axis[3])    # the transpose: a few output channels per pixel, unrolled
    if big:
        dst.parallel(dst.op.axis[0])
    if pad is not None:
        ps = s[pad]
        if ps.attach is AttachKind.INLINE:
            ps.compute_root()
        pn, pc, ph, pw = ps.op.axis
        if pw.extent <= 64:
            ps.vectorize(pw)
        if big:
            ps.parallel(ps.fuse(pn, pc))


@register("conv2d_backward_data", "llvm")
def conv2d_backward_data(cfg, s, stage, target):
    """Per image: the GEMM col = W^T @ dY[n] (vectors along p*Q + q), then col2im (vectors along w).

    for n (parallel):
      col[c*R*S + r*S + s, 0:P*Q] = sum_k W[k, c, r, s] * dY[n, k, 0:P*Q]     # register tile, k inner
      for c, h: dX[n, c, h, 0:W] = sum_{r, s} col[c, r, s, (h + ph - r*dh)*Q + pw - s*dw + 0:W]
                                                         # r, s unrolled; lanes off the edge masked
    """
    f = cpu_facts(target)
    (col_t,) = stage.op.input_tensors             # dX reads the GEMM's output col
    n, c, h, w = stage.op.axis
    r, s_ = stage.reduce_axes
    N, _, R, S = col_t.shape[:4]
    wo, wi = _split_vector(stage, w, _lanes(f, w.extent, 4 * f.lanes))
    stage.reorder(n, c, h, *([wo] if wo is not None else []), r, s_, wi)
    if R * S <= 64:
        stage.unroll(r)
        stage.unroll(s_)
    elif S <= 8:
        stage.unroll(s_)
    stage.vectorize(wi)
    big = _work(stage) >= PAR_MIN_WORK
    col = s[col_t]
    per_image = N >= 2
    if per_image:
        col.compute_at(stage, n)
        if big:
            stage.parallel(n)
    elif big:
        stage.parallel(c)
    cn, cc, cr, cs, pq = col.op.axis
    crs = col.fuse(cc, cr, cs)
    lanes = _lanes(f, pq.extent, f.vec)
    po, pi = _split_vector(col, pq, lanes)
    rows = _rows(f, crs.extent, lanes)
    co, ci = col.split(crs, factor=rows)
    col.reorder(cn, co, *([po] if po is not None else []), *col.reduce_axes, ci, pi)
    col.unroll(ci)
    col.vectorize(pi)
    if not per_image and big:
        col.parallel(co)


# --------------------------------------------------------------------------- pooling


@register("max_pool2d_backward", "llvm")
def max_pool2d_backward(cfg, s, stage, target):
    """Parallel over (image, channel) planes.

    Tiling windows (one stage): h and w split by the window, so that the declaration's
    ``h // kh`` and ``h % kh`` become loop variables and each unrolled copy compares with
    constant window offsets, in straight-line, branch-free scalar code (loopc's vector lanes
    would turn the stride-kw window reads into gathers, which measured slower):

        for n.c (parallel): for h.outer: for h.inner (unrolled): for w.outer: for w.inner (unrolled):
          dX[n, c, h, w] = dY[n, c, h.outer, w.outer] * first_max(X[n, c, window], h.inner, w.inner)

    Otherwise winmax and argmax are computed per plane, inside the plane loop (they stay in cache).
    """
    kh, kw = stage.op.attrs["kernel"]
    n, c, h, w = stage.op.axis
    nc = stage.fuse(n, c)
    if not isinstance(stage.body, Reduce):        # the tiling form: one stage

        ho, hi = stage.split(h, factor=kh)
        wo, wi = stage.split(w, factor=kw)
        stage.reorder(nc, ho, hi, wo, wi)
        stage.unroll(hi)
        stage.unroll(wi)
    else:
        am_t = stage.op.input_tensors[0]          # the gradient's sum reads argmax first
        mx_t = am_t.op.input_tensors[-1]          # argmax reads (X, winmax)
        am, mx = s[am_t], s[mx_t]
        am.compute_at(stage, nc)
        mx.compute_at(am, am.op.axis[1])
    if _work(stage) >= PAR_MIN_WORK:
        stage.parallel(nc)


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

