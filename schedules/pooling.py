"""Pooling computes (TOPI's ``topi.nn.pool1d/pool2d/pool3d`` and ``adaptive_pool``, and
loopc's PyTorch-style ``max_pool2d`` / ``avg_pool2d``), one declaration for every rank and layout.

    Y = pool2d(X, kernel=(3, 3), stride=(2, 2), dilation=(1, 1), padding=(1, 1, 2, 0),
               pool_type="avg", ceil_mode=True, layout="NHWC", count_include_pad=False)

Windows are described by :mod:`schedules.windows` (padding specs, ceil mode, tap counts).
A max pool is one reduction; an average pool is a window sum (a stage tagged "pool_sum") and
the division by the window's tap count. Tags: "<type>_pool<n>d" ("max_pool2d", "avg_pool1d"
...) in every layout, "adaptive_pool" for the adaptive ones; ``attrs`` hold the geometry, with
the options (dilation, ceil_mode, count_include_pad, layout) only when not the default, so that
a default 2-D NCHW pool keeps the workload key its tuned records have.

Deliberate differences from TOPI: ``stride`` defaults to the kernel; ceil mode drops a last
window that would start in the trailing padding (PyTorch's rule); a side padded by more than
half the (dilated) window is an error (PyTorch's rule; TOPI accepts it); padding also takes
"SAME" / "VALID" (as Relay's pooling does).
"""
from __future__ import annotations

import math

from loopc import te
from loopc.errors import LoopcError

from .windows import check_half_window, parse_layout, windows

#: reduce-axis names per rank (2-D keeps the names r, s that IR dumps of max_pool2d show)
_TAP_NAMES = {1: ("r",), 2: ("r", "s"), 3: ("t", "r", "s")}
POOL_TYPES = ("max", "avg")


def check_pool_type(pool_type, op):
    """``pool_type`` when it is "max" or "avg"; a LoopcError naming ``op`` otherwise."""
    if pool_type not in POOL_TYPES:
        raise LoopcError(f"{op}: unknown pool_type {pool_type!r}; use 'max' or 'avg'")
    return pool_type


def _check_data(data, nd, layout, op):
    if len(data.shape) != nd + 2:
        raise LoopcError(f"{op}: {data.name} has shape {data.shape}; expected {nd + 2} dimensions ({layout.name})")


def pool_attrs(wins, layout, ceil_mode, count_include_pad, pool_type):
    """The op's attrs: kernel, stride, padding (n ints when symmetric, else befores + afters),
    and the options that differ from the defaults."""
    before = tuple(w.before for w in wins)
    after = tuple(w.after for w in wins)
    attrs = {"kernel": tuple(w.kernel for w in wins), "stride": tuple(w.stride for w in wins),
             "padding": before if before == after else before + after}
    if any(w.dilation != 1 for w in wins):
        attrs["dilation"] = tuple(w.dilation for w in wins)
    if ceil_mode:
        attrs["ceil_mode"] = True
    if pool_type == "avg" and not count_include_pad:
        attrs["count_include_pad"] = False
    if layout.name != "NC" + "DHW"[-len(wins):]:
        attrs["layout"] = layout.name
    return attrs


def _pool(data, kernel, stride, dilation, padding, pool_type, ceil_mode, layout, count_include_pad, nd, op,
          name):
    """The window pool of every public function here."""
    check_pool_type(pool_type, op)
    lay = parse_layout(layout, nd, op)
    _check_data(data, nd, lay, op)
    wins = windows(op, lay, data.shape, kernel, stride, dilation, padding, ceil_mode)
    check_half_window(op, wins, padding)
    out_shape = lay.at(data.shape, [w.out for w in wins])
    taps = [te.reduce_axis((0, w.kernel), name=n) for w, n in zip(wins, _TAP_NAMES[nd])]
    attrs = pool_attrs(wins, lay, ceil_mode, count_include_pad, pool_type)
    tag = f"{pool_type}_pool{nd}d"

    def window(index, fill):
        return window_read(data, wins, lay, index, taps, fill)

    if pool_type == "max":
        return te.compute(out_shape, lambda *i: te.max(window(i, -math.inf), axis=taps),
                          name=name, tag=tag, attrs=attrs)
    total = te.compute(out_shape, lambda *i: te.sum(window(i, 0.0), axis=taps),
                       name=name + "_sum", tag="pool_sum", attrs=attrs)
    return te.compute(out_shape, lambda *i: total[i] / window_size(wins, lay, i, count_include_pad, data.dtype),
                      name=name, tag=tag, attrs=attrs)


def window_read(data, wins, lay, index, taps, fill):
    """``data`` at tap ``taps`` of the window at output ``index``, or ``fill`` where the tap
    lies outside the input (guarded only along axes with padding or ceil mode's last window)."""
    pos = [w.position(index[a], r) for w, a, r in zip(wins, lay.spatial, taps)]
    conds = []
    for w, p in zip(wins, pos):
        if w.before or w.after or w.reaches_past_padding:
            conds += [p >= 0, p < w.size]
    x = data[lay.at(index, pos)]
    return te.if_then_else(te.all(*conds), x, fill) if conds else x


def window_size(wins, lay, index, include_pad, dtype):
    """The number of taps average pooling divides window ``index`` by (those in the padded
    input with ``include_pad``, else those in the input): a float or a float expression."""
    counts = [w.taps(index[a], include_pad) for w, a in zip(wins, lay.spatial)]
    if all(isinstance(c, int) for c in counts):
        return float(math.prod(counts))
    size = None
    for c in counts:
        c = te.const(c, "int32") if isinstance(c, int) else c
        size = c if size is None else size * c
    return size.astype(dtype)


def pool1d(data, kernel, stride=None, dilation=1, padding=0, pool_type="max", ceil_mode=False, layout="NCW",
           count_include_pad=True, name="pool1d"):
    """TOPI's ``pool1d``: max or mean over windows along W; ``padding`` an int or (left, right).

        Y[n, c, q] = max_s X[n, c, q*sw + s*dw - left]           (pool_type "max")
    """
    return _pool(data, kernel, stride, dilation, padding, pool_type, ceil_mode, layout, count_include_pad, 1,
                 "pool1d", name)


def pool2d(data, kernel, stride=None, dilation=1, padding=0, pool_type="max", ceil_mode=False, layout="NCHW",
           count_include_pad=True, name="pool2d"):
    """TOPI's ``pool2d``: max or mean over 2-D windows; ``padding`` an int, (ph, pw),
    (top, left, bottom, right) or "SAME"/"VALID"; ``layout`` "NCHW", "NHWC" (any order of N, C,
    H, W). ``stride`` defaults to the kernel (TOPI requires it).

        Y[n, c, p, q] = max_{r, s} X[n, c, p*sh + r*dh - top, q*sw + s*dw - left]
        Y[n, c, p, q] = sum_{r, s} X[...] / taps(p, q)      (avg: taps in the padded input,
                                                             or in the input without count_include_pad)
    """
    return _pool(data, kernel, stride, dilation, padding, pool_type, ceil_mode, layout, count_include_pad, 2,
                 "pool2d", name)


def pool3d(data, kernel, stride=None, dilation=1, padding=0, pool_type="max", ceil_mode=False, layout="NCDHW",
           count_include_pad=True, name="pool3d"):
    """TOPI's ``pool3d``: max or mean over D x H x W windows; ``padding`` an int, 3 ints or
    (front, top, left, back, bottom, right)."""
    return _pool(data, kernel, stride, dilation, padding, pool_type, ceil_mode, layout, count_include_pad, 3,
                 "pool3d", name)


def max_pool2d(X, kernel, stride=None, padding=0, dilation=1, ceil_mode=False, layout="NCHW", name="max_pool2d"):
    """Max over each kernel window (stride defaults to the kernel, as in PyTorch); the options
    of :func:`pool2d`, in PyTorch's argument order (loopc's name; TOPI has only ``pool2d``)."""
    return _pool(X, kernel, stride, dilation, padding, "max", ceil_mode, layout, True, 2, "max_pool2d", name)


def avg_pool2d(X, kernel, stride=None, padding=0, ceil_mode=False, count_include_pad=True, dilation=1,
               layout="NCHW", name="avg_pool2d"):
    """Mean over each window (PyTorch's argument order; padding counted by default, like
    count_include_pad=True); the options of :func:`pool2d`."""
    return _pool(X, kernel, stride, dilation, padding, "avg", ceil_mode, layout, count_include_pad, 2,
                 "avg_pool2d", name)


# --------------------------------------------------------------------------- adaptive pooling


def adaptive_bounds(i, size, out):
    """Adaptive pooling's window ``[start, end)`` along one axis for output index ``i``
    (PyTorch's and TOPI's: floor(i * size / out), ceil((i + 1) * size / out))."""
    return (i * size) // out, ((i + 1) * size + out - 1) // out


def _longest(size, out):
    return max(adaptive_bounds(i, size, out)[1] - adaptive_bounds(i, size, out)[0] for i in range(out))


def _adaptive(data, output_size, pool_type, layout, nd, op, name):
    check_pool_type(pool_type, op)
    lay = parse_layout(layout, nd, op)
    _check_data(data, nd, lay, op)
    sizes = lay.sizes(data.shape)
    if output_size is None or isinstance(output_size, int):
        output_size = (output_size,) * nd
    if not (isinstance(output_size, (tuple, list)) and len(output_size) == nd):
        raise LoopcError(f"{op}: output_size must be an int or {nd} ints (None keeps an axis), got {output_size!r}")
    outs = tuple(n if o is None else o for o, n in zip(output_size, sizes))
    if not all(isinstance(o, int) and not isinstance(o, bool) and o > 0 for o in outs):
        raise LoopcError(f"{op}: output_size {output_size!r} must be positive ints (or None)")
    longest = [_longest(n, o) for n, o in zip(sizes, outs)]
    taps = [te.reduce_axis((0, k), name=nm) for k, nm in zip(longest, _TAP_NAMES[nd])]
    out_shape = lay.at(data.shape, outs)
    attrs = {"output_size": outs, "pool_type": pool_type}
    if lay.name != "NC" + "DHW"[-nd:]:
        attrs["layout"] = lay.name

    def window(index, fill):
        pos, conds = [], []
        for a, n, o, k, r in zip(lay.spatial, sizes, outs, longest, taps):
            start, end = adaptive_bounds(index[a], n, o)
            if n % o == 0:                       # every window has the same length k
                pos.append(start + r)
            else:
                pos.append(te.min(start + r, n - 1))
                conds.append(start + r < end)
        x = data[lay.at(index, pos)]
        return te.if_then_else(te.all(*conds), x, fill) if conds else x

    if pool_type == "max":
        return te.compute(out_shape, lambda *i: te.max(window(i, -math.inf), axis=taps),
                          name=name, tag="adaptive_pool", attrs=attrs)
    total = te.compute(out_shape, lambda *i: te.sum(window(i, 0.0), axis=taps), name=name + "_sum",
                       tag="pool_sum", attrs=attrs)

    def mean(*i):
        size = 1
        for a, n, o in zip(lay.spatial, sizes, outs):
            start, end = adaptive_bounds(i[a], n, o)
            size = size * (n // o if n % o == 0 else end - start)
        return total[i] / (float(size) if isinstance(size, int) else size.astype(data.dtype))
    return te.compute(out_shape, mean, name=name, tag="adaptive_pool", attrs=attrs)


def adaptive_pool(data, output_size, pool_type="avg", layout="NCHW", name="adaptive_pool"):
    """TOPI's ``adaptive_pool`` (``pool_type`` defaults to "avg"; TOPI requires it): the windows
    that split H and W into ``output_size`` (an int, a pair, None keeps an axis) nearly equal,
    overlapping parts:

        Y[n, c, p, q] = max/mean of X[n, c, floor(p*H/P) : ceil((p+1)*H/P), floor(q*W/Q) : ceil((q+1)*W/Q)]
    """
    return _adaptive(data, output_size, pool_type, layout, 2, "adaptive_pool", name)


def adaptive_pool1d(data, output_size, pool_type="avg", layout="NCW", name="adaptive_pool1d"):
    """TOPI's ``adaptive_pool1d``: :func:`adaptive_pool` along W."""
    return _adaptive(data, output_size, pool_type, layout, 1, "adaptive_pool1d", name)


def adaptive_pool3d(data, output_size, pool_type="avg", layout="NCDHW", name="adaptive_pool3d"):
    """TOPI's ``adaptive_pool3d``: :func:`adaptive_pool` over D, H and W."""
    return _adaptive(data, output_size, pool_type, layout, 3, "adaptive_pool3d", name)
