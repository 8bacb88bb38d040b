"""Backward compute declarations of the operator library (NCHW, numpy row-major order).

Each function returns the gradient tensor; its op carries a ``tag`` (and ``attrs``) that
``loopc.schedules.schedule`` dispatches on (templates in ``cpu_grad.py``), like the forward ops
in ``ops.py``. Where a good CPU loop nest needs a different data layout than the math suggests,
the declaration spells the layout out as extra stages (a transposed copy, a patch matrix),
named ``<name>_<role>`` for people; a template finds each by its place in the op graph (which
input of which stage reads it, the order listed here), never by name:

============================  ==========================================================
conv2d_backward_data          dX reads ``col`` (GEMM, W^T @ dY per image): col2im sum
conv2d_backward_weight        dW (a transposed copy) reads ``acc`` (dW as c, r, s, k);
                              acc reads (``pad`` or X, ``dyT``: dY as n, p, q, k)
max_pool2d_backward           (``pooling_grad.py``, re-exported here) tiling 2-D windows:
                              one branch-free stage (no reduction); otherwise the routing
                              sum reads ``argmax`` first, and argmax reads (X, ``winmax``)
log_softmax_backward          the elementwise result reads ``dsum`` (the row sum) last
============================  ==========================================================

The numpy references live in ``loopc.schedules.testing`` under the same names.
"""
from __future__ import annotations

import math

from loopc import te
from loopc.errors import LoopcError

from .ops import _check_rank, conv_geometry, pad_nchw
from .pooling_grad import max_pool2d_backward  # noqa: F401  (re-exported: loopc.torch reads it here)


#: conv2d_backward_data pads each row of its GEMM output to a multiple of this many floats
COL_ALIGN = 16


def _shape4(shape, what, op):
    if not (isinstance(shape, (tuple, list)) and len(shape) == 4
            and all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape)):
        raise LoopcError(f"{op}: {what} must be four positive ints, got {shape!r}")
    return tuple(shape)


def _check_shape(t, expected, op, why):
    if tuple(t.shape) != tuple(expected):
        raise LoopcError(f"{op}: {t.name} has shape {t.shape}, expected {tuple(expected)} ({why})")


# --------------------------------------------------------------------------- convolution


def conv2d_backward_data(dY, W, input_shape, stride=1, padding=0, dilation=1, name="conv2d_backward_data"):
    """dX of ``Y = conv2d_nchw(X, W, stride, padding, dilation)`` (a transposed convolution).

    Two stages, so that no multiply-add is spent on zeros whatever the stride:

        col[n, c, r, s, p*Q + q] = sum_k W[k, c, r, s] * dY[n, k, p, q]      # GEMM per image
        dX[n, c, h, w] = sum_{r, s} col[n, c, r, s, p*Q + q]                 # col2im
                         where p = (h + ph - r*dh) / sh and q = (w + pw - s*dw) / sw
                         divide exactly and fall in [0, P) x [0, Q)

    The rows of ``col`` are padded with zero columns to a multiple of ``COL_ALIGN`` floats, so
    that a vector tile of the GEMM never needs a masked store. ``input_shape`` is X's shape
    (N, C, H, W); it is needed because several H give the same P when the stride is above 1.
    """
    op = "conv2d_backward_data"
    _check_rank(dY, 4, op, "N, K, P, Q")
    _check_rank(W, 4, op, "K, C, R, S")
    N, C, H, Wd = _shape4(input_shape, "input_shape", op)
    K, C2, R, S = W.shape
    if C2 != C:
        raise LoopcError(f"{op}: W{W.shape} expects {C2} input channels but input_shape has {C}")
    (sh, sw), (ph, pw), (dh, dw), (P, Q) = conv_geometry(op, (H, Wd), (R, S), stride, padding, dilation)
    _check_shape(dY, (N, K, P, Q), op, f"the conv2d output for input {input_shape} and W{W.shape}")

    k = te.reduce_axis((0, K), name="k")
    PQ = P * Q
    PQp = -(-PQ // COL_ALIGN) * COL_ALIGN

    def col_body(n, c, r, s, pq):
        g = dY[n, k, pq // Q, pq % Q]          # row-major: dY[n, k] read as one row of P*Q
        return te.sum(W[k, c, r, s] * (g if PQp == PQ else te.if_then_else(pq < PQ, g, 0.0)), axis=k)
    col = te.compute((N, C, R, S, PQp), col_body, name=name + "_col")
    r = te.reduce_axis((0, R), name="r")
    s = te.reduce_axis((0, S), name="s")

    def source(n, c, h, w):
        hp, wp = h + ph - r * dh, w + pw - s * dw
        conds = []
        if sh == 1:
            p = hp
            conds += [hp >= 0, hp < P]
        else:
            p = hp // sh
            conds += [hp >= 0, hp % sh == 0, p < P]
        if sw == 1:
            q = wp
            conds += [wp >= 0, wp < Q]
        else:
            q = wp // sw
            conds += [wp >= 0, wp % sw == 0, q < Q]
        return te.if_then_else(te.all(*conds), col[n, c, r, s, p * Q + q], 0.0)

    attrs = {"stride": (sh, sw), "padding": (ph, pw), "dilation": (dh, dw), "input_shape": (N, C, H, Wd)}
    return te.compute((N, C, H, Wd), lambda n, c, h, w: te.sum(source(n, c, h, w), axis=[r, s]),
                      name=name, tag="conv2d_backward_data", attrs=attrs)


def conv2d_backward_weight(dY, X, kernel_shape, stride=1, padding=0, dilation=1,
                           name="conv2d_backward_weight"):
    """dW of ``Y = conv2d_nchw(X, W, stride, padding, dilation)``; ``kernel_shape`` = W.shape.

        dW[k, c, r, s] = sum_{n, p, q} dY[n, k, p, q] * Xpad[n, c, p*sh + r*dh, q*sw + s*dw]

    declared with k innermost, so that the long (n, p, q) reduction runs on vectors of output
    channels held in registers:

        dyT[n, p, q, k]  = dY[n, k, p, q]
        acc[c, r, s, k]  = sum_{n, p, q} Xpad[n, c, p*sh + r*dh, q*sw + s*dw] * dyT[n, p, q, k]
        dW[k, c, r, s]   = acc[c, r, s, k]
    """
    op = "conv2d_backward_weight"
    _check_rank(dY, 4, op, "N, K, P, Q")
    _check_rank(X, 4, op, "N, C, H, W")
    K, C, R, S = _shape4(kernel_shape, "kernel_shape", op)
    N, C2, H, Wd = X.shape
    if C2 != C:
        raise LoopcError(f"{op}: X has {C2} channels but kernel_shape {kernel_shape} expects {C}")
    (sh, sw), (ph, pw), (dh, dw), (P, Q) = conv_geometry(op, (H, Wd), (R, S), stride, padding, dilation)
    _check_shape(dY, (N, K, P, Q), op, f"the conv2d output for X{X.shape} and a {kernel_shape} kernel")

    Xp = pad_nchw(X, ph, pw, name + "_pad")
    dyT = te.compute((N, P, Q, K), lambda n, p, q, k: dY[n, k, p, q], name=name + "_dyT")
    n = te.reduce_axis((0, N), name="n")
    p = te.reduce_axis((0, P), name="p")
    q = te.reduce_axis((0, Q), name="q")
    acc = te.compute((C, R, S, K),
                     lambda c, r, s, k: te.sum(Xp[n, c, p * sh + r * dh, q * sw + s * dw] * dyT[n, p, q, k],
                                               axis=[n, p, q]),
                     name=name + "_acc")
    attrs = {"stride": (sh, sw), "padding": (ph, pw), "dilation": (dh, dw), "kernel_shape": (K, C, R, S)}
    return te.compute((K, C, R, S), lambda k, c, r, s: acc[c, r, s, k],
                      name=name, tag="conv2d_backward_weight", attrs=attrs)


# --------------------------------------------------------------------------- dense and bias


def dense_backward_data(dY, W, name="dense_backward_data"):
    """dX of ``Y = dense(X, W)``: dX[b, i] = sum_o dY[b, o] * W[o, i]  (dY @ W)."""
    _check_rank(dY, 2, "dense_backward_data", "batch, out")
    _check_rank(W, 2, "dense_backward_data", "out, in")
    (B, O), (O2, I) = dY.shape, W.shape
    if O != O2:
        raise LoopcError(f"dense_backward_data: dY{dY.shape} has {O} features but W{W.shape} has {O2} rows")
    o = te.reduce_axis((0, O), name="o")
    return te.compute((B, I), lambda b, i: te.sum(dY[b, o] * W[o, i], axis=o),
                      name=name, tag="dense_backward_data")


def dense_backward_weight(dY, X, name="dense_backward_weight"):
    """dW of ``Y = dense(X, W)``: dW[o, i] = sum_b dY[b, o] * X[b, i]  (dY^T @ X)."""
    _check_rank(dY, 2, "dense_backward_weight", "batch, out")
    _check_rank(X, 2, "dense_backward_weight", "batch, in")
    (B, O), (B2, I) = dY.shape, X.shape
    if B != B2:
        raise LoopcError(f"dense_backward_weight: dY{dY.shape} and X{X.shape} have different batch sizes")
    b = te.reduce_axis((0, B), name="b")
    return te.compute((O, I), lambda o, i: te.sum(dY[b, o] * X[b, i], axis=b),
                      name=name, tag="dense_backward_weight")


def bias_backward(dY, axis=1, name="bias_backward"):
    """db of ``bias_add(X, b, axis)``: db[j] = sum of dY over every axis but ``axis``."""
    ndim = len(dY.shape)
    if not isinstance(axis, int) or not -ndim <= axis < ndim:
        raise LoopcError(f"bias_backward: axis {axis!r} is not an axis of dY{dY.shape}")
    axis %= ndim
    others = [d for d in range(ndim) if d != axis]
    if not others:
        raise LoopcError(f"bias_backward: dY{dY.shape} has no axis to sum over besides axis {axis}")
    red = [te.reduce_axis((0, dY.shape[d]), name=f"k{d}") for d in others]

    def body(j):
        idx = [None] * ndim
        idx[axis] = j
        for d, rv in zip(others, red):
            idx[d] = rv
        return te.sum(dY[tuple(idx)], axis=red)
    return te.compute((dY.shape[axis],), body, name=name, tag="bias_backward", attrs={"axis": axis})


# --------------------------------------------------------------------------- relu


def relu_backward(dY, X, name="relu_backward"):
    """dX = dY where X > 0, else 0 (PyTorch's threshold_backward at 0)."""
    if dY.shape != X.shape:
        raise LoopcError(f"relu_backward: dY{dY.shape} and X{X.shape} differ in shape")
    return te.compute(X.shape, lambda *i: te.if_then_else(X[i] > 0.0, dY[i], 0.0),
                      name=name, tag="relu_backward")


# --------------------------------------------------------------------------- loss


def _check_labels(labels, op):
    _check_rank(labels, 1, op, "batch")
    if labels.dtype != "int32":
        raise LoopcError(f"{op}: labels must be int32, got {labels.dtype}")


def nll_loss(logp, labels, name="nll_loss"):
    """Mean negative log-likelihood: loss[0] = -(1/B) sum_b logp[b, labels[b]].

    A label outside [0, classes) reads nothing and makes the loss NaN (the kernel cannot raise;
    the caller should validate labels)."""
    _check_rank(logp, 2, "nll_loss", "batch, classes")
    _check_labels(labels, "nll_loss")
    B, Cl = logp.shape
    if labels.shape != (B,):
        raise LoopcError(f"nll_loss: labels has shape {labels.shape}, expected ({B},)")
    b = te.reduce_axis((0, B), name="b")

    def body(_):
        lab = labels[b]
        term = te.if_then_else(te.all(lab >= 0, lab < Cl), logp[b, lab] * (-1.0 / B), math.nan)
        return te.sum(term, axis=b)
    return te.compute((1,), body, name=name, tag="nll_loss")


def nll_loss_backward(labels, batch, classes, dloss=None, name="nll_loss_backward"):
    """dlogp of the mean nll_loss: -1/batch at each row's label, 0 elsewhere (times ``dloss[0]``
    when ``dloss``, a (1,) tensor, is given). Rows with a label outside [0, classes) stay 0."""
    _check_labels(labels, "nll_loss_backward")
    if labels.shape != (batch,):
        raise LoopcError(f"nll_loss_backward: labels has shape {labels.shape}, expected ({batch},)")
    if not isinstance(classes, int) or classes <= 0:
        raise LoopcError(f"nll_loss_backward: classes must be a positive int, got {classes!r}")
    if dloss is not None and dloss.shape != (1,):
        raise LoopcError(f"nll_loss_backward: dloss must have shape (1,), got {dloss.shape}")
    scale = -1.0 / batch

    def body(b, c):
        g = scale if dloss is None else dloss[0] * scale
        return te.if_then_else(labels[b] == c, g, 0.0)
    return te.compute((batch, classes), body, name=name, tag="nll_loss_backward", attrs={"classes": classes})


def log_softmax_backward(dlogp, logp, axis=-1, name="log_softmax_backward"):
    """dX of ``logp = log_softmax(X, axis)``: dX = dlogp - exp(logp) * sum(dlogp, axis)."""
    if dlogp.shape != logp.shape:
        raise LoopcError(f"log_softmax_backward: dlogp{dlogp.shape} and logp{logp.shape} differ in shape")
    ndim = len(logp.shape)
    if not isinstance(axis, int) or not -ndim <= axis < ndim:
        raise LoopcError(f"log_softmax_backward: axis {axis!r} is not an axis of {logp.shape}")
    axis %= ndim
    k = te.reduce_axis((0, logp.shape[axis]), name="k")
    rest = tuple(d for n, d in enumerate(logp.shape) if n != axis) or (1,)

    def drop(i):
        return i[:axis] + i[axis + 1:] if ndim > 1 else (0,)

    def sum_body(*i):
        idx = (k,) if ndim == 1 else i[:axis] + (k,) + i[axis:]
        return te.sum(dlogp[idx], axis=k)
    total = te.compute(rest, sum_body, name=name + "_dsum")
    return te.compute(logp.shape, lambda *i: dlogp[i] - te.exp(logp[i]) * total[drop(i)],
                      name=name, tag="log_softmax_backward", attrs={"axis": axis})
