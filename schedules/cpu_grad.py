"""Default CPU schedule templates of the backward operators (``grad.py``) and optimizer
updates (``optim.py``), one per tag; ``TEMPLATES`` maps each tag to its template.

Like ``cpu.py``: each ``schedule_<op>(s, stage)`` edits schedule ``s`` in place for one output
stage and the helper stages its declaration owns (found by their ``<name>_<role>`` names).
"""
from __future__ import annotations

from loopc.schedule import AttachKind
from loopc.te.tensor import PlaceholderOp

from . import cpu
from .cpu import PAR_MIN_WORK, VEC, _work

#: vector registers a micro-kernel may keep as accumulators (AVX2 has 16; keep room for operands)
ACC_REGS = 12
#: float32 lanes of one AVX2 register
REG_LANES = 8


def _input(op, suffix):
    """The computed input of ``op`` whose name ends with ``suffix`` (a declaration's helper stage)."""
    for t in op.input_tensors:
        if not isinstance(t.op, PlaceholderOp) and t.op.name.endswith(suffix):
            return t
    return None


def _lanes(extent, max_lanes=24):
    """A vector width for a loop of ``extent``: the whole loop when short, else a width that
    divides it (16, 8, 24, then any from ``max_lanes`` down to 8), else 16 with a masked tail.

    Dividing matters: a masked tail inside a reduction keeps its accumulators in memory, and
    masked stores are slow (microcoded on AMD)."""
    if extent <= max_lanes:
        return extent
    for v in (VEC, REG_LANES, 3 * REG_LANES):
        if v <= max_lanes and extent % v == 0:
            return v
    for v in range(max_lanes, REG_LANES - 1, -1):
        if extent % v == 0:
            return v
    return VEC


def _regs(lanes):
    return -(-lanes // REG_LANES)


def _rows(extent, lanes):
    """Rows of a register tile (each ``lanes`` wide): a divisor of ``extent`` when one fits."""
    limit = max(1, ACC_REGS // _regs(lanes))
    for t in range(min(limit, extent), 0, -1):
        if extent % t == 0 and t >= max(2, limit // 2):
            return t
    return min(limit, extent)


def _split_vector(stage, axis, lanes):
    if lanes >= axis.extent:
        return None, axis
    return stage.split(axis, factor=lanes)


# --------------------------------------------------------------------------- elementwise


def schedule_elementwise(s, stage):
    """Every axis fused into one flat loop (row-major, so indices stay contiguous), split by 16
    and vectorized; the outer part parallel when the tensor is large.

        for i.outer in parallel(ceil(size / 16)): for i.inner in vectorized(16): out[i] = f(in[i])
    """
    axes = list(stage.op.axis)
    flat = stage.fuse(*axes) if len(axes) > 1 else axes[0]
    if flat.extent < 4:
        return
    outer, inner = stage.split(flat, factor=min(VEC, flat.extent))
    stage.vectorize(inner)
    if _work(stage) >= PAR_MIN_WORK and outer.extent > 1:
        stage.parallel(outer)


# --------------------------------------------------------------------------- dense and bias


def schedule_dense_backward_data(s, stage):
    """dX = dY @ W: the GEMM template, W read through packed panels."""
    cpu.schedule_gemm(s, stage, stage.op.input_tensors[1])


def schedule_dense_backward_weight(s, stage):
    """dW = dY^T @ X: the GEMM template with dY read transposed (one scalar per row of the tile)."""
    cpu.schedule_gemm(s, stage, stage.op.input_tensors[1])


def schedule_bias_backward(s, stage):
    """db[j] = sum of dY over the other axes.

    Bias axis last (dense): vectors along j, the whole reduction on registers.
    Otherwise (NCHW): the axes after j are contiguous, so they are fused, split by 16 and
    rfactored into 16 partial sums per j that the last stage adds up.
    """
    axis = stage.op.attrs["axis"]
    ndim = len(stage.op.input_tensors[0].shape)
    (j,) = stage.op.axis
    red = list(stage.reduce_axes)
    if axis == ndim - 1:
        jo, ji = _split_vector(stage, j, _lanes(j.extent, VEC))
        stage.reorder(*([jo] if jo is not None else []), *red, ji)
        stage.vectorize(ji)
        if jo is not None and _work(stage) >= PAR_MIN_WORK:
            stage.parallel(jo)
        return
    trailing = red[axis:]           # the reduction axes after the bias axis, contiguous in dY
    inner = stage.fuse(*trailing) if len(trailing) > 1 else trailing[0]
    if inner.extent < VEC:
        return
    _, lane = stage.split(inner, factor=VEC)
    rf = s[s.rfactor(stage.op.output(0), lane, factor_axis=-1)]
    rj, rlane = rf.op.axis
    rf.reorder(rj, *rf.reduce_axes, rlane)
    rf.vectorize(rlane)
    if _work(stage) >= PAR_MIN_WORK and rj.extent > 1:
        rf.parallel(rj)


# --------------------------------------------------------------------------- convolution


def schedule_conv2d_backward_weight(s, stage):
    """acc[c, r, s, k] = sum_{n, p, q} Xpad[n, c, ...] * dyT[n, p, q, k] as a register-tiled GEMM.

    for c, r (parallel):                       # or (n.outer, c, r) after an rfactor over images
      for n, p, q.outer: for q.inner (2), s (unrolled):   # the long reduction, accumulators in registers
        acc[c, r, s, 0:K] += Xpad[n, c, p*sh + r*dh, q*sw + s*dw] * dyT[n, p, q, 0:K]
    then dW[k, c, r, s] = acc[c, r, s, k] (a small transposed copy).
    """
    acc_t = _input(stage.op, "_acc")
    dyT = _input(acc_t.op, "_dyT")
    pad = _input(acc_t.op, "_pad")
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
    lanes = _lanes(K)
    ko, ki = _split_vector(main, k, lanes)
    unroll = max(1, ACC_REGS // _regs(lanes))
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


def schedule_conv2d_backward_data(s, stage):
    """Per image: the GEMM col = W^T @ dY[n] (vectors along p*Q + q), then col2im (vectors along w).

    for n (parallel):
      col[c*R*S + r*S + s, 0:P*Q] = sum_k W[k, c, r, s] * dY[n, k, 0:P*Q]     # register tile, k inner
      for c, h: dX[n, c, h, 0:W] = sum_{r, s} col[c, r, s, (h + ph - r*dh)*Q + pw - s*dw + 0:W]
                                                         # r, s unrolled; lanes off the edge masked
    """
    col_t = _input(stage.op, "_col")
    n, c, h, w = stage.op.axis
    r, s_ = stage.reduce_axes
    N, _, R, S = col_t.shape[:4]
    wo, wi = _split_vector(stage, w, _lanes(w.extent, 32))
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
    lanes = _lanes(pq.extent, VEC)
    po, pi = _split_vector(col, pq, lanes)
    rows = _rows(crs.extent, lanes)
    co, ci = col.split(crs, factor=rows)
    col.reorder(cn, co, *([po] if po is not None else []), *col.reduce_axes, ci, pi)
    col.unroll(ci)
    col.vectorize(pi)
    if not per_image and big:
        col.parallel(co)


# --------------------------------------------------------------------------- pooling


def schedule_max_pool2d_backward(s, stage):
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
    am_t = _input(stage.op, "_argmax")
    if am_t is None:
        ho, hi = stage.split(h, factor=kh)
        wo, wi = stage.split(w, factor=kw)
        stage.reorder(nc, ho, hi, wo, wi)
        stage.unroll(hi)
        stage.unroll(wi)
    else:
        mx_t = _input(am_t.op, "_winmax")
        am, mx = s[am_t], s[mx_t]
        am.compute_at(stage, nc)
        mx.compute_at(am, am.op.axis[1])
    if _work(stage) >= PAR_MIN_WORK:
        stage.parallel(nc)


# --------------------------------------------------------------------------- loss


def schedule_nll_loss(s, stage):
    """A (batch,) reduction into one number: the default loop is already the best."""


def schedule_log_softmax_backward(s, stage):
    """Per row (axis last): the row sum of dlogp, then dlogp - exp(logp) * sum vectorized."""
    axis = stage.op.attrs["axis"]
    axes = list(stage.op.axis)
    total = s[_input(stage.op, "_dsum")]
    if axis != len(axes) - 1 or len(axes) < 2:
        schedule_elementwise(s, stage)
        return
    rows = stage.fuse(*axes[:-1]) if len(axes) > 2 else axes[0]
    _, vi = _split_vector(stage, axes[-1], _lanes(axes[-1].extent, VEC))
    stage.vectorize(vi)
    total.compute_at(stage, rows)
    if _work(stage) >= PAR_MIN_WORK:
        stage.parallel(rows)


TEMPLATES = {
    "conv2d_backward_data": schedule_conv2d_backward_data,
    "conv2d_backward_weight": schedule_conv2d_backward_weight,
    "dense_backward_data": schedule_dense_backward_data,
    "dense_backward_weight": schedule_dense_backward_weight,
    "bias_backward": schedule_bias_backward,
    "max_pool2d_backward": schedule_max_pool2d_backward,
    "relu_backward": schedule_elementwise,
    "nll_loss": schedule_nll_loss,
    "nll_loss_backward": schedule_elementwise,
    "log_softmax_backward": schedule_log_softmax_backward,
    "sgd_momentum": schedule_elementwise,
    "adadelta": schedule_elementwise,
    "adadelta_delta": schedule_elementwise,   # its own vector loop: both outputs read it
}
