"""Backward of 2-D pooling (TOPI's ``topi.nn.pool_grad``), any padding, layout NCHW or NHWC.

Both gradients gather: each input position sums, over the taps ``r`` of a window, the
gradient of the window ``p = (h + top - r*dh) / sh`` that holds it at that tap (when the
division is exact and p is an output)::

    avg:  dX[n, c, h, w] = sum_{r, s} dY[n, c, p, q] / taps(p, q)
    max:  dX[n, c, h, w] = sum_{r, s} dY[n, c, p, q] if argmax[n, c, p, q] == r*kw + s

``argmax`` is the first maximum of each window in row-major tap order (PyTorch's choice on
ties), from the window maxima ``winmax``. Stage roles for the templates (``cpu_grad.py``): the
gradient's sum reads ``argmax`` first, and argmax reads (X, ``winmax``). Tiling windows
(stride == kernel, no padding, NCHW, at most 16 taps: LeNet's 2x2 pools) take one branch-free
stage instead, which compares each position with its window-mates.
"""
from __future__ import annotations

import math

from loopc import te
from loopc.errors import LoopcError

from .pooling import check_pool_type, pool_attrs, window_read, window_size
from .windows import check_half_window, parse_layout, windows

#: tiling windows of up to this many taps take the one-stage, branch-free max backward
MAX_TILING_TAPS = 16


def _geometry(op, dY, X, kernel, stride, padding, dilation, ceil_mode, layout, pool_type,
              count_include_pad=True):
    lay = parse_layout(layout, 2, op)
    for t, what in ((X, "N, C, H, W"), (dY, "N, C, P, Q")):
        if len(t.shape) != 4:
            raise LoopcError(f"{op}: {t.name} has shape {t.shape}; expected 4 dimensions ({what} in {lay.name})")
    wins = windows(op, lay, X.shape, kernel, stride, dilation, padding, ceil_mode)
    check_half_window(op, wins, padding)
    expected = lay.at(X.shape, [w.out for w in wins])
    if tuple(dY.shape) != expected:
        raise LoopcError(f"{op}: {dY.name} has shape {dY.shape}, expected {expected} (the pooled shape of "
                         f"X{X.shape} with these options)")
    return lay, wins, pool_attrs(wins, lay, ceil_mode, count_include_pad, pool_type)


def _gather(X, wins, lay, weight, name, tag, attrs):
    """dX[i] = sum over taps r of ``weight(window index, taps)`` for the windows holding i at r."""
    taps = [te.reduce_axis((0, w.kernel), name=n) for w, n in zip(wins, ("r", "s"))]

    def body(*i):
        outs, conds = [], []
        for w, a, r in zip(wins, lay.spatial, taps):
            hp = i[a] + w.before - r * w.dilation           # o * stride of a window holding i at tap r
            if w.stride == 1:
                o = hp
                conds += [hp >= 0, hp < w.out]
            else:
                o = hp // w.stride
                conds += [hp >= 0, hp % w.stride == 0, o < w.out]
            outs.append(o)
        return te.sum(te.if_then_else(te.all(*conds), weight(lay.at(i, outs), taps), 0.0), axis=taps)
    return te.compute(X.shape, body, name=name, tag=tag, attrs=attrs)


def avg_pool2d_backward(dY, X, kernel, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                        dilation=1, layout="NCHW", name="avg_pool2d_backward"):
    """dX of ``Y = avg_pool2d(X, kernel, stride, padding, ceil_mode, count_include_pad, ...)``:
    each window's gradient spread evenly over the taps it divided by (those in the padding
    are dropped)."""
    op = "avg_pool2d_backward"
    lay, wins, attrs = _geometry(op, dY, X, kernel, stride, padding, dilation, ceil_mode, layout, "avg",
                                 count_include_pad)
    return _gather(X, wins, lay, lambda o, taps: dY[o] / window_size(wins, lay, o, count_include_pad, dY.dtype),
                   name, "avg_pool2d_backward", attrs)


def max_pool2d_backward(dY, X, kernel, stride=None, padding=0, dilation=1, ceil_mode=False, layout="NCHW",
                        name="max_pool2d_backward"):
    """dX of ``Y = max_pool2d(X, kernel, stride, padding, ...)``: each window's gradient goes to
    its maximum; on ties, to the first maximum in window order (row by row), like PyTorch.

    Tiling windows, one stage, branch-free:

        dX[n, c, h, w] = dY[n, c, h // kh, w // kw] * (X[n, c, h, w] is the window's first maximum)

    (a product, not a select, so that the loop vectorizes: a non-finite dY also reaches the
    window's other positions as NaN). Otherwise, three stages:

        winmax[n, c, p, q] = max over the window of X (padding excluded)
        argmax[n, c, p, q] = min over the window of (r*kw + s where X == winmax, else kh*kw)
        dX[n, c, h, w]     = sum over the windows (p, q) holding (h, w) at tap (r, s) of
                             dY[n, c, p, q] if argmax[n, c, p, q] == r*kw + s
    """
    op = "max_pool2d_backward"
    lay, wins, attrs = _geometry(op, dY, X, kernel, stride, padding, dilation, ceil_mode, layout, "max")
    if lay.name == "NCHW" and all(w.stride == w.kernel and w.dilation == 1 and not (w.before or w.after)
                                  and w.out == w.size // w.kernel for w in wins) \
            and wins[0].kernel * wins[1].kernel <= MAX_TILING_TAPS:
        return _tiling_max_backward(dY, X, wins, name, attrs)

    out_shape = tuple(dY.shape)
    kw = wins[1].kernel
    n_taps = wins[0].kernel * kw
    r1 = [te.reduce_axis((0, w.kernel), name=n) for w, n in zip(wins, ("r", "s"))]
    mx = te.compute(out_shape, lambda *i: te.max(window_read(X, wins, lay, i, r1, -math.inf), axis=r1),
                    name=name + "_winmax")
    r2 = [te.reduce_axis((0, w.kernel), name=n) for w, n in zip(wins, ("r", "s"))]

    def argmax_body(*i):
        tap = r2[0] * kw + r2[1]
        first = te.if_then_else(window_read(X, wins, lay, i, r2, -math.inf) == mx[i], tap, n_taps)
        return te.min(first, axis=r2)
    am = te.compute(out_shape, argmax_body, name=name + "_argmax")
    return _gather(X, wins, lay, lambda o, taps: te.if_then_else(am[o] == taps[0] * kw + taps[1], dY[o], 0.0),
                   name, "max_pool2d_backward", attrs)


def _tiling_max_backward(dY, X, wins, name, attrs):
    (kh, kw), (P, Q) = [w.kernel for w in wins], [w.out for w in wins]
    H, W = [w.size for w in wins]

    def route(n, c, h, w):
        p, q = h // kh, w // kw
        j = (h % kh) * kw + w % kw              # this position's offset in its window
        x = X[n, c, h, w]
        hit = None
        for r in range(kh):
            for s in range(kw):
                i = r * kw + s
                mate = X[n, c, p * kh + r, q * kw + s]
                # beat every earlier mate, tie or beat every later one
                cond = ((j <= i) | (x > mate)) & ((j >= i) | (x >= mate))
                hit = cond if hit is None else hit & cond
        grad = dY[n, c, p, q] * hit.astype(dY.dtype)
        inside = ([p < P] if H % kh else []) + ([q < Q] if W % kw else [])
        return te.if_then_else(te.all(*inside), grad, 0.0) if inside else grad
    return te.compute(X.shape, route, name=name, tag="max_pool2d_backward", attrs=attrs)


def pool_grad(grads, data, kernel, stride, padding, pool_type, ceil_mode=False, count_include_pad=True,
              layout="NCHW", name="pool_grad"):
    """TOPI's ``pool_grad``: the gradient of ``pool2d(data, kernel, stride, 1, padding,
    pool_type, ceil_mode, layout, count_include_pad)`` given ``grads`` of its output."""
    check_pool_type(pool_type, "pool_grad")
    if pool_type == "max":
        return max_pool2d_backward(grads, data, kernel, stride, padding, ceil_mode=ceil_mode, layout=layout,
                                   name=name)
    return avg_pool2d_backward(grads, data, kernel, stride, padding, ceil_mode, count_include_pad, layout=layout,
                               name=name)
