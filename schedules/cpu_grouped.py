"""CPU templates of the grouped convolutions: depthwise (one input channel per group, a
MobileNet's 3x3 layers) and general grouped convolution, one template registered for both
on the "llvm" kind.

A depthwise convolution does R*S multiply-adds per output and reads each input once per tap:
it is bound by memory, not by the FMA units, so its schedule is about locality — each channel
plane is padded into a small buffer next to its use (L1/L2), the output row is computed a vector
of columns at a time with the window's taps unrolled (the R*S weights stay in registers), and
the (image, channel) planes run in parallel.
"""
from __future__ import annotations

from loopc.schedule import AttachKind

from .cpu import PAR_MIN_WORK, _first, _work
from .facts import cpu_facts
from .registry import register

#: output rows of a depthwise register tile at most (each row a vector of columns)
DW_MAX_ROWS = 4
#: windows of up to this many taps are unrolled
MAX_UNROLLED_TAPS = 25


def _pad_stage(s, stage):
    source = stage.op.input_tensors[0]
    if getattr(source.op, "tag", "") == "pad":
        return s[source]
    return None


@register(("depthwise_conv2d_nchw", "group_conv2d_nchw"), "llvm")
def grouped_conv2d(cfg, s, stage, target):
    """Y[n, k, p, q] = sum_{r, s} Xpad[n, k // m, p*sh + r, q*sw + s] * W[k, 0, r, s] (depthwise,
    m = K/C), or with a sum over the group's c < C/groups input channels too::

        for n.k.fused (parallel):                          # one (image, channel) plane
          Xpad.plane = pad(X[n, k // m])                   # depthwise: compute_at, next to its use
          for p.outer: for q.outer:
            for (c), r, s (unrolled), p.inner (unrolled rows):
              Y[n, k, p, q.outer*V + 0:V] += Xpad[..] * W[k, c, r, s]

    Knobs: ``vec`` (columns in a vector: one register or two), ``rows`` (output rows per tile),
    ``pad_at`` ("plane": the padding computed per channel plane; "root": once, before),
    ``pad_vec`` (the padded rows copied a register at a time), ``parallel``."""
    f = cpu_facts(target)
    n, k, p, q = stage.op.axis
    Q = q.extent
    pad = _pad_stage(s, stage)
    # two registers of columns when they divide the row and the stride is 1 (a strided row is
    # gathered by shuffles: one register at a time), else one register (masked at the row's end)
    stride = stage.op.attrs["stride"][1]
    vec = f.vec if stride == 1 and Q % f.vec == 0 else f.lanes
    cfg.define_knob("vec", _first(vec, [f.lanes, f.vec]))
    cfg.define_knob("rows", _first(next(t for t in (2, 1) if p.extent % t == 0), [1, 2, DW_MAX_ROWS]))
    # a plane padded next to its use when one output channel reads it (depthwise, multiplier 1)
    per_plane = stage.op.tag == "depthwise_conv2d_nchw" and k.extent == stage.op.input_tensors[0].shape[1]
    cfg.define_knob("pad_at", ["plane", "root"] if per_plane else ["root", "plane"])
    # a padded row copied a vector at a time (a masked load at the borders: whole registers only)
    pad_width = pad.op.axis[3].extent if pad is not None else 0
    cfg.define_knob("pad_vec", [int(pad_width >= f.lanes), int(pad_width < f.lanes)])
    cfg.define_knob("parallel", [1, 0])
    vec, rows = min(cfg["vec"].val, Q), min(cfg["rows"].val, p.extent)
    nk = stage.fuse(n, k)
    po, pi = stage.split(p, factor=rows)
    qo, qi = stage.split(q, factor=vec)
    *c_ax, r_ax, s_ax = stage.reduce_axes
    stage.reorder(nk, po, qo, *c_ax, r_ax, s_ax, pi, qi)
    if r_ax.extent * s_ax.extent <= MAX_UNROLLED_TAPS:
        stage.unroll(r_ax)
        stage.unroll(s_ax)
    stage.unroll(pi)
    stage.vectorize(qi)
    if pad is not None and pad.attach is AttachKind.INLINE:
        if cfg["pad_at"].val == "plane":
            pad.compute_at(stage, nk)
        else:
            pad.compute_root()
        if cfg["pad_vec"].val:
            _, _, _, pw = pad.op.axis
            _, pwi = pad.split(pw, factor=f.lanes)
            pad.vectorize(pwi)
    if cfg["parallel"].val and _work(stage) >= PAR_MIN_WORK:
        stage.parallel(nk)
