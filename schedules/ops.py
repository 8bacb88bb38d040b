"""Compute declarations of the operator library (TOPI style; NCHW, numpy row-major order).

Each returns the output tensor; the op carries a ``tag`` and ``attrs`` that
``loopc.schedules.schedule`` uses to pick a schedule template.
"""
from __future__ import annotations

from loopc import te
from loopc.errors import LoopcError

from .pooling import avg_pool2d, max_pool2d  # noqa: F401  (re-exported: the library's 2-D pools)
from .windows import conv_out, resolve_padding


def _pair(v, what):
    if isinstance(v, int):
        return v, v
    if isinstance(v, (tuple, list)) and len(v) == 2 and all(isinstance(x, int) for x in v):
        return tuple(v)
    raise LoopcError(f"{what} must be an int or a pair of ints, got {v!r}")


def conv_geometry(op, image, kernel, stride, padding, dilation):
    """``((sh, sw), (ph, pw), (dh, dw), (P, Q))`` of a convolution of an ``image`` (H, W) by a
    ``kernel`` (R, S); LoopcError naming ``op`` when the filter does not fit."""
    sh, sw = _pair(stride, "stride")
    ph, pw = _pair(padding, "padding")
    dh, dw = _pair(dilation, "dilation")
    (H, W), (R, S) = image, kernel
    P, Q = conv_out(H, R, sh, ph, dh), conv_out(W, S, sw, pw, dw)
    if P <= 0 or Q <= 0:
        raise LoopcError(f"{op}: the {R}x{S} filter does not fit the {H}x{W} input with this padding")
    return (sh, sw), (ph, pw), (dh, dw), (P, Q)


def padding4(padding, op="conv2d_nchw", window=None):
    """``(top, left, bottom, right)`` of a padding given as an int, a pair ``(ph, pw)`` (both
    sides alike), TVM's four ``(top, left, bottom, right)``, or "SAME"/"VALID" for a
    ``window`` (the dilated kernel's (height, width); TOPI's rule, see
    ``windows.resolve_padding``); LoopcError otherwise."""
    if isinstance(padding, str) and window is None:
        raise LoopcError(f"{op}: padding {padding!r} needs the kernel size; give ints here")
    (top, left), (bottom, right) = resolve_padding(padding, window or (1, 1), op)
    return top, left, bottom, right


def pad_nchw(X, ph, pw, name, bottom=None, right=None):
    """``X`` with ``ph`` rows above and ``bottom`` (default ``ph``) below each image, ``pw``
    columns left and ``right`` (default ``pw``) right, of zeros (a stage tagged "pad", which
    templates inline or compute once), or ``X`` itself without padding."""
    pb = ph if bottom is None else bottom
    pr = pw if right is None else right
    if not (ph or pw or pb or pr):
        return X
    N, C, H, W = X.shape
    return te.compute((N, C, H + ph + pb, W + pw + pr),
                      lambda n, c, h, w: te.if_then_else(te.all(h >= ph, h < H + ph, w >= pw, w < W + pw),
                                                         X[n, c, h - ph, w - pw], 0.0),
                      name=name, tag="pad")


def _check_rank(t, rank, op, layout):
    if len(t.shape) != rank:
        raise LoopcError(f"{op}: {t.name} has shape {t.shape}; expected {rank} dimensions ({layout})")


def matmul(A, B, name="matmul"):
    """C[i, j] = sum_k A[i, k] * B[k, j]."""
    _check_rank(A, 2, "matmul", "M, K")
    _check_rank(B, 2, "matmul", "K, N")
    (M, K), (K2, N) = A.shape, B.shape
    if K != K2:
        raise LoopcError(f"matmul: inner dimensions differ: A{A.shape} @ B{B.shape}")
    k = te.reduce_axis((0, K), name="k")
    return te.compute((M, N), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name=name, tag="matmul")


def dense(X, W, bias=None, name="dense"):
    """Y[i, o] = sum_k X[i, k] * W[o, k] (+ bias[o]); W is (out, in) like torch's Linear."""
    _check_rank(X, 2, "dense", "batch, in")
    _check_rank(W, 2, "dense", "out, in")
    (B, K), (O, K2) = X.shape, W.shape
    if K != K2:
        raise LoopcError(f"dense: X{X.shape} has {K} features but W{W.shape} expects {K2}")
    k = te.reduce_axis((0, K), name="k")
    Y = te.compute((B, O), lambda i, o: te.sum(X[i, k] * W[o, k], axis=k), name=name, tag="dense")
    if bias is None:
        return Y
    if bias.shape != (O,):
        raise LoopcError(f"dense: bias has shape {bias.shape}, expected ({O},)")
    return te.compute((B, O), lambda i, o: Y[i, o] + bias[o], name=name + "_bias", tag="bias_add")


def conv2d_nchw(X, W, stride=1, padding=0, dilation=1, groups=1, name="conv2d"):
    """Y[n, k, p, q] = sum_{c, r, s} Xpad[n, g*C/groups + c, p*sh + r*dh, q*sw + s*dw] * W[k, c, r, s]
    with g = k // (K/groups) the group of output channel k (PyTorch's conv2d; W is
    (K, C/groups, R, S)). ``padding``: an int, (ph, pw), (top, left, bottom, right), or TOPI's
    "SAME" (the dilated kernel - 1 rows and columns, the odd one on top / left: at stride 1 Y
    keeps X's size) / "VALID" (none).

    The op's tag names the case its templates schedule: "conv2d_nchw" (groups=1),
    "depthwise_conv2d_nchw" (one input channel per group: groups=C, K a multiple of C — a
    MobileNet's 3x3 layers) or "group_conv2d_nchw"; ``attrs`` holds stride, padding, dilation
    and groups."""
    _check_rank(X, 4, "conv2d_nchw", "N, C, H, W")
    _check_rank(W, 4, "conv2d_nchw", "K, C/groups, R, S")
    N, C, H, Wd = X.shape
    K, Cg, R, S = W.shape
    if not isinstance(groups, int) or isinstance(groups, bool) or groups < 1:
        raise LoopcError(f"conv2d_nchw: groups must be a positive int, got {groups!r}")
    if C % groups or K % groups:
        raise LoopcError(f"conv2d_nchw: groups={groups} must divide the {C} input and {K} output channels")
    if Cg != C // groups:
        raise LoopcError(f"conv2d_nchw: X has {C} channels, so W{W.shape} needs {C // groups} channels per "
                         f"filter (C/groups with groups={groups}), not {Cg}")
    (sh, sw), (dh, dw) = _pair(stride, "stride"), _pair(dilation, "dilation")
    pt, pl, pb, pr = padding4(padding, "conv2d_nchw", ((R - 1) * dh + 1, (S - 1) * dw + 1))
    P, Q = conv_out(H + pt + pb, R, sh, 0, dh), conv_out(Wd + pl + pr, S, sw, 0, dw)
    if P <= 0 or Q <= 0:
        raise LoopcError(f"conv2d_nchw: the {R}x{S} filter does not fit the {H}x{Wd} input with this padding")
    Xp = pad_nchw(X, pt, pl, name + "_pad", bottom=pb, right=pr)
    Kg = K // groups
    r = te.reduce_axis((0, R), name="r")
    s = te.reduce_axis((0, S), name="s")
    symmetric = (pt, pl) == (pb, pr)
    attrs = {"stride": (sh, sw), "padding": (pt, pl) if symmetric else (pt, pl, pb, pr), "dilation": (dh, dw)}
    if groups == 1:
        tag, channel = "conv2d_nchw", (lambda k, c: c)
    elif Cg == 1:      # depthwise: no sum over input channels
        tag, channel = "depthwise_conv2d_nchw", ((lambda k, c: k) if Kg == 1 else (lambda k, c: k // Kg))
    else:
        tag, channel = "group_conv2d_nchw", (lambda k, c: k // Kg * Cg + c)
    if groups > 1:
        attrs["groups"] = groups
    c = None if tag == "depthwise_conv2d_nchw" else te.reduce_axis((0, Cg), name="c")
    axes = [r, s] if c is None else [c, r, s]
    return te.compute((N, K, P, Q),
                      lambda n, k, p, q: te.sum(Xp[n, channel(k, c), p * sh + r * dh, q * sw + s * dw]
                                                * W[k, 0 if c is None else c, r, s], axis=axes),
                      name=name, tag=tag, attrs=attrs)


def relu(X, name="relu"):
    return te.compute(X.shape, lambda *i: te.max(X[i], 0.0), name=name, tag="injective")


def bias_add(X, b, axis=1, name="bias_add"):
    """X + b broadcast along ``axis`` (1 = channels of NCHW, or features of (batch, features))."""
    axis = axis % len(X.shape)
    if b.shape != (X.shape[axis],):
        raise LoopcError(f"bias_add: bias has shape {b.shape}, expected ({X.shape[axis]},) for axis {axis} of {X.shape}")
    return te.compute(X.shape, lambda *i: X[i] + b[i[axis]], name=name, tag="injective")


def _reduce_over(X, axis, fn, name):
    """A tensor over all axes but ``axis``, reducing ``fn(index_with_k)`` over that axis."""
    ndim = len(X.shape)
    k = te.reduce_axis((0, X.shape[axis]), name="k")
    shape = tuple(d for n, d in enumerate(X.shape) if n != axis)

    def body(*i):
        idx = i[:axis] + (k,) + i[axis:]
        return fn(idx, k)
    return te.compute(shape if shape else (1,), body if shape else (lambda _: fn((k,), k)), name=name), ndim


def softmax(X, axis=-1, name="softmax"):
    """exp(x - max) / sum(exp(x - max)) along ``axis``."""
    axis = axis % len(X.shape)
    mx, _ = _reduce_over(X, axis, lambda idx, k: te.max(X[idx], axis=k), name + "_max")
    drop = lambda i: i[:axis] + i[axis + 1:] if len(X.shape) > 1 else (0,)  # noqa: E731
    e = te.compute(X.shape, lambda *i: te.exp(X[i] - mx[drop(i)]), name=name + "_exp")
    sm, _ = _reduce_over(e, axis, lambda idx, k: te.sum(e[idx], axis=k), name + "_sum")
    return te.compute(X.shape, lambda *i: e[i] / sm[drop(i)], name=name, tag="softmax")


def log_softmax(X, axis=-1, name="log_softmax"):
    """x - max - log(sum(exp(x - max))) along ``axis``."""
    axis = axis % len(X.shape)
    mx, _ = _reduce_over(X, axis, lambda idx, k: te.max(X[idx], axis=k), name + "_max")
    drop = lambda i: i[:axis] + i[axis + 1:] if len(X.shape) > 1 else (0,)  # noqa: E731
    sm, _ = _reduce_over(X, axis, lambda idx, k: te.sum(te.exp(X[idx] - mx[drop(idx)]), axis=k), name + "_sum")
    return te.compute(X.shape, lambda *i: X[i] - mx[drop(i)] - te.log(sm[drop(i)]), name=name, tag="log_softmax")
