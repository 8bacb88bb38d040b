"""How each ATen operator becomes a loopc compute: the frontend's operator table.

    LOWERINGS[aten.relu.default]        Lowering(kind="pointwise", build=...)
    lower = LOWERINGS[node.target]
    lower.check(node)                   None, or why loopc cannot run this call (when it has a check)
    out = lower.build(*args)            te tensors (TV) in, a TV (or a tuple of them) out

A ``TV`` is a te tensor with the PyTorch shape it stands for (a 0-d tensor is a te tensor of
shape (1,)). Kinds decide how the graph compiler groups nodes into kernels:

    pointwise   elementwise with broadcasting; joins the open kernel whose result it is the only
                reader of (conv + bias + batch norm + activation + residual add become one kernel)
    anchor      conv, matmul, pooling, reductions, softmax: starts a kernel of its own
    multi       returns a tuple (convolution_backward, var_mean, max_pool2d_with_indices)
    view        runs in PyTorch on the same memory (view, permute, t, unsqueeze, expand, detach)

Operators PyTorch decomposes for us (``DECOMPOSE``: batch norm, hardswish, the activation
backwards) reach this table as the pointwise ops and reductions they are made of. Anything
else falls back to PyTorch (``loopc.torch.graph``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from loopc import te
from loopc.schedules import grad as _grad
from loopc.schedules import ops as _ops

from .pointwise import POINTWISE, WITH_CONSTS, builder
from .tv import DTYPES, TV, compute, pointwise, te_shape  # noqa: F401  (graph.py reads them here)

aten = torch.ops.aten

# --------------------------------------------------------------------------- anchors

def _pairs(v, n=2):
    v = list(v) if isinstance(v, (list, tuple)) else [v]
    return tuple(v * n if len(v) == 1 else v)


def convolution(x, w, b, stride, padding, dilation, transposed, output_padding, groups):
    y = _ops.conv2d_nchw(x.t, w.t, stride=_pairs(stride), padding=_pairs(padding), dilation=_pairs(dilation),
                         groups=int(groups))
    out = TV(y, tuple(y.shape))
    if b is not None:
        out = compute(out.shape, lambda n, k, p, q: y[n, k, p, q] + b.t[k], "bias_add")
    return out


def _is_2d(t: TV) -> bool:
    return len(t.shape) == 2


def dense(x, w_rows, bias=None, beta=1, alpha=1):
    """x @ w_rows.T (+ bias): W is read row by row (PyTorch's Linear weight, no transpose)."""
    y = _ops.dense(x.t, w_rows.t)
    return _addmm_tail(TV(y, tuple(y.shape)), bias, beta, alpha)


def matmul(a, b, bias=None, beta=1, alpha=1):
    y = _ops.matmul(a.t, b.t)
    return _addmm_tail(TV(y, tuple(y.shape)), bias, beta, alpha)


def matmul_tn(p, q):
    """p.T @ q with p (B, O), q (B, I): dense_backward_weight's loop nest."""
    y = _grad.dense_backward_weight(p.t, q.t)
    return TV(y, tuple(y.shape))


def _addmm_tail(y, bias, beta, alpha):
    if alpha != 1:
        y = pointwise(lambda v: v * float(alpha), y, name="scale")
    if bias is None:
        return y
    return pointwise(lambda v, c: v + (c if beta == 1 else c * float(beta)), y, bias, name="bias_add")


def bmm(a, b):
    B, M, K = a.shape
    N = b.shape[2]
    k = te.reduce_axis((0, K), name="k")
    return compute((B, M, N), lambda n, i, j: te.sum(a.t[n, i, k] * b.t[n, k, j], axis=k), "bmm", tag="bmm")


def max_pool2d(x, kernel, stride=(), padding=0, dilation=1, ceil_mode=False):
    kernel = _pairs(kernel)
    stride = _pairs(stride) if stride else kernel
    y = _ops.max_pool2d(x.t, kernel, stride, _pairs(padding))
    return TV(y, tuple(y.shape))


def max_pool2d_indices(x, values, kernel, stride=(), padding=0, dilation=1, ceil_mode=False):
    """PyTorch's indices of max_pool2d_with_indices: the flat h*W + w of each window's first maximum."""
    kh, kw = _pairs(kernel)
    sh, sw = _pairs(stride) if stride else (kh, kw)
    ph, pw = _pairs(padding)
    N, C, H, W = x.shape
    r = te.reduce_axis((0, kh), name="r")
    s = te.reduce_axis((0, kw), name="s")
    big = H * W

    def body(n, c, p, q):
        h, w = p * sh + r - ph, q * sw + s - pw
        inside = te.all(h >= 0, h < H, w >= 0, w < W)
        hit = te.if_then_else(inside, x.t[n, c, h, w] == values.t[n, c, p, q], False)
        return te.min(te.if_then_else(hit, (h * W + w).astype("int64"), te.const(big, "int64")), axis=[r, s])
    return compute(values.shape, body, "max_pool2d_indices", tag="pool_indices")


def max_pool2d_backward(dy, x, kernel, stride, padding, dilation, ceil_mode, indices):
    kernel = _pairs(kernel)
    stride = _pairs(stride) if stride else kernel
    y = _grad.max_pool2d_backward(dy.t, x.t, kernel, stride, _pairs(padding))
    return TV(y, tuple(y.shape))


def _window_bounds(i, size, out):
    """Adaptive pooling's window [start, end) along one axis for output index ``i``."""
    return (i * size) // out, ((i + 1) * size + out - 1) // out


def avg_pool2d(x, kernel, stride=(), padding=0, ceil_mode=False, count_include_pad=True, divisor_override=None):
    kh, kw = _pairs(kernel)
    sh, sw = _pairs(stride) if stride else (kh, kw)
    ph, pw = _pairs(padding)
    N, C, H, W = x.shape

    P, Q = _avg_pool_out_len(H, kh, sh, ph, ceil_mode), _avg_pool_out_len(W, kw, sw, pw, ceil_mode)
    r = te.reduce_axis((0, kh), name="r")
    s = te.reduce_axis((0, kw), name="s")

    def window(n, c, p, q):
        h, w = p * sh + r - ph, q * sw + s - pw
        return te.sum(te.if_then_else(te.all(h >= 0, h < H, w >= 0, w < W), x.t[n, c, h, w], 0.0), axis=[r, s])
    total = compute((N, C, P, Q), window, "avg_pool2d_sum", tag="pool_sum_generic")
    geo = ((kh, kw), (sh, sw), (ph, pw), (H, W), count_include_pad, divisor_override)
    return compute((N, C, P, Q), lambda n, c, p, q: total.t[n, c, p, q] / _avg_divisor(p, q, *geo), "avg_pool2d")


def _avg_pool_out_len(size, k, s, p, ceil_mode):
    n = size + 2 * p - k
    o = (n + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (o - 1) * s >= size + p:
        o -= 1
    return o


def _avg_divisor(p, q, kernel, stride, padding, size, count_include_pad, divisor_override):
    """What avg_pool2d divides window (p, q)'s sum by (a float32 expression)."""
    if divisor_override:
        return te.const(float(divisor_override))
    (kh, kw), (sh, sw), (ph, pw), (H, W) = kernel, stride, padding, size
    h0, w0 = p * sh - ph, q * sw - pw
    h1, w1 = te.min(h0 + kh, H + ph), te.min(w0 + kw, W + pw)
    if not count_include_pad:
        h0, w0, h1, w1 = te.max(h0, 0), te.max(w0, 0), te.min(h1, H), te.min(w1, W)
    return ((h1 - h0) * (w1 - w0)).astype("float32")


def avg_pool2d_backward(dy, x, kernel, stride=(), padding=0, ceil_mode=False, count_include_pad=True,
                        divisor_override=None):
    """dX[h, w]: the sum over the windows (p, q) that hold (h, w) of dY[p, q] / divisor(p, q)."""
    kh, kw = _pairs(kernel)
    sh, sw = _pairs(stride) if stride else (kh, kw)
    ph, pw = _pairs(padding)
    N, C, H, W = x.shape
    P, Q = dy.shape[2], dy.shape[3]
    geo = ((kh, kw), (sh, sw), (ph, pw), (H, W), count_include_pad, divisor_override)
    r = te.reduce_axis((0, kh), name="r")
    s = te.reduce_axis((0, kw), name="s")

    def body(n, c, h, w):
        hp, wq = h + ph - r, w + pw - s          # p * sh and q * sw of a window holding (h, w)
        p, q = hp // sh, wq // sw
        holds = te.all(hp >= 0, wq >= 0, hp % sh == 0, wq % sw == 0, p < P, q < Q)
        pc, qc = te.min(te.max(p, 0), P - 1), te.min(te.max(q, 0), Q - 1)
        return te.sum(te.if_then_else(holds, dy.t[n, c, pc, qc] / _avg_divisor(pc, qc, *geo), 0.0), axis=[r, s])
    return compute((N, C, H, W), body, "avg_pool2d_backward", tag="pool_sum_generic")


def adaptive_avg_pool2d(x, output_size):
    N, C, H, W = x.shape
    oh, ow = _pairs(output_size)
    kh, kw = -(-H // oh) + 1, -(-W // ow) + 1      # the longest window, +1 for uneven bounds
    kh, kw = min(kh, H), min(kw, W)
    r = te.reduce_axis((0, kh), name="r")
    s = te.reduce_axis((0, kw), name="s")

    def body(n, c, p, q):
        h0, h1 = _window_bounds(p, H, oh)
        w0, w1 = _window_bounds(q, W, ow)
        inside = te.all(h0 + r < h1, w0 + s < w1)
        total = te.sum(te.if_then_else(inside, x.t[n, c, te.min(h0 + r, H - 1), te.min(w0 + s, W - 1)], 0.0),
                       axis=[r, s])
        return total
    total = compute((N, C, oh, ow), body, "adaptive_avg_pool2d_sum", tag="pool_sum_generic")

    def divide(n, c, p, q):
        h0, h1 = _window_bounds(p, H, oh)
        w0, w1 = _window_bounds(q, W, ow)
        return total.t[n, c, p, q] / ((h1 - h0) * (w1 - w0)).astype("float32")
    return compute((N, C, oh, ow), divide, "adaptive_avg_pool2d")


def adaptive_avg_pool2d_backward(dy, x):
    """dX[h, w]: the sum over the windows (p, q) that hold (h, w) of dY[p, q] / their area. The
    windows holding h start at p = h * oh // H; at most ceil(oh / H) + 1 of them."""
    N, C, H, W = x.shape
    oh, ow = dy.shape[2], dy.shape[3]
    r = te.reduce_axis((0, min(oh, -(-oh // H) + 1)), name="r")
    s = te.reduce_axis((0, min(ow, -(-ow // W) + 1)), name="s")

    def body(n, c, h, w):
        p, q = (h * oh) // H + r, (w * ow) // W + s
        pc, qc = te.min(p, oh - 1), te.min(q, ow - 1)
        h0, h1 = _window_bounds(pc, H, oh)
        w0, w1 = _window_bounds(qc, W, ow)
        holds = te.all(p < oh, q < ow, h0 <= h, h < h1, w0 <= w, w < w1)
        area = ((h1 - h0) * (w1 - w0)).astype("float32")
        return te.sum(te.if_then_else(holds, dy.t[n, c, pc, qc] / area, 0.0), axis=[r, s])
    return compute((N, C, H, W), body, "adaptive_avg_pool2d_backward", tag="pool_sum_generic")


def _dims(dims, ndim):
    if dims is None or (isinstance(dims, (list, tuple)) and len(dims) == 0):
        return tuple(range(ndim))
    dims = [dims] if isinstance(dims, int) else list(dims)
    return tuple(sorted({d % ndim for d in dims}))


def reduce(x, dims, keepdim, combine, name, scale=1.0):
    """``combine`` (te.sum / te.max / te.min) of ``x`` over ``dims``."""
    nd = len(x.shape)
    dims = _dims(dims, nd) if nd else ()
    axes = {d: te.reduce_axis((0, x.shape[d]), name=f"r{d}") for d in dims}
    out_shape = tuple((1 if d in axes else n) for d, n in enumerate(x.shape) if keepdim or d not in axes)

    def body(*i):
        if keepdim:
            idx = tuple(axes[d] if d in axes else i[d] for d in range(nd))
        else:
            it = iter(i)
            idx = tuple(axes[d] if d in axes else next(it) for d in range(nd))
        v = x.t[idx] if nd else x.t[0]
        if not axes:
            return v
        return combine(v, axis=list(axes.values()))
    out = compute(out_shape, body, name if scale == 1.0 else name + "_sum", tag="reduction")
    if scale != 1.0:        # a reduction is a whole body: the scaling is a stage of its own
        out = pointwise(lambda v: v * scale, out, name=name)
    return out


def sum_dims(x, dims=None, keepdim=False, dtype=None):
    return reduce(x, dims, keepdim, te.sum, "sum")


def mean_dims(x, dims=None, keepdim=False, dtype=None):
    n = math.prod(x.shape[d] for d in _dims(dims, len(x.shape))) if x.shape else 1
    return reduce(x, dims, keepdim, te.sum, "mean", scale=1.0 / n)


def amax(x, dims=(), keepdim=False):
    return reduce(x, dims, keepdim, te.max, "amax")


def var_mean(x, dims=None, correction=1, keepdim=False):
    nd = len(x.shape)
    rd = _dims(dims, nd)
    n = math.prod(x.shape[d] for d in rd)
    mean = reduce(x, dims, True, te.sum, "mean", scale=1.0 / n)
    centered = pointwise(lambda a, m: (a - m) * (a - m), x, mean, name="sq_dev")
    var = reduce(centered, dims, keepdim, te.sum, "var", scale=1.0 / max(n - (correction or 0), 1))
    if not keepdim:
        mean = reduce(mean, rd, False, te.sum, "mean_squeezed")
    return var, mean


def softmax(x, dim, half_to_float=False):
    y = _ops.softmax(x.t, axis=dim % len(x.shape))
    return TV(y, x.shape)


def log_softmax(x, dim, half_to_float=False):
    y = _ops.log_softmax(x.t, axis=dim % len(x.shape))
    return TV(y, x.shape)


def log_softmax_backward(g, out, dim, dtype):
    y = _grad.log_softmax_backward(g.t, out.t, axis=dim % len(out.shape))
    return TV(y, out.shape)


def softmax_backward(g, out, dim, dtype):
    dim = dim % len(out.shape)
    prod = pointwise(lambda a, b: a * b, g, out, name="g_out")
    total = reduce(prod, [dim], True, te.sum, "g_out_sum")
    return pointwise(lambda y, a, s: y * (a - s), out, g, total, name="softmax_backward")


def nll_loss(logp, target, weight, reduction, ignore_index):
    """(loss, total_weight) of PyTorch's nll_loss_forward (no class weights; mean or sum)."""
    B = logp.shape[0]
    b = te.reduce_axis((0, B), name="b")
    C = logp.shape[1]

    def keep(i):
        label = target.t[i]
        return te.all(label != ignore_index, label >= 0, label < C)

    def picked(i):
        label = target.t[i]
        return te.if_then_else(keep(i), logp.t[i, te.min(te.max(label, 0), C - 1).astype("int32")], 0.0)
    count = compute((), lambda: te.sum(te.if_then_else(keep(b), 1.0, 0.0), axis=b), "nll_total_weight",
                    tag="reduction")
    total = compute((), lambda: te.sum(-picked(b), axis=b), "nll_sum", tag="reduction")
    if reduction == 2:
        return total, count
    return pointwise(lambda s, n: s / n, total, count, name="nll_loss"), count


def nll_loss_backward(g, logp, target, weight, reduction, ignore_index, total_weight):
    B, C = logp.shape
    scale = pointwise(lambda gg, n: -gg / n if reduction == 1 else -gg, g, total_weight, name="nll_scale")

    def body(i, c):
        label = target.t[i]
        hit = te.all(label == c.astype("int64"), label != ignore_index)
        return te.if_then_else(hit, scale.read((), ()), 0.0)
    return compute((B, C), body, "nll_loss_backward")


def convolution_backward(dy, x, w, bias_sizes, stride, padding, dilation, transposed, output_padding, groups,
                         mask):
    geo = dict(stride=_pairs(stride), padding=_pairs(padding), dilation=_pairs(dilation))
    dx = dw = db = None
    if mask[0]:
        t = _grad.conv2d_backward_data(dy.t, w.t, input_shape=tuple(x.shape), **geo)
        dx = TV(t, x.shape)
    if mask[1]:
        t = _grad.conv2d_backward_weight(dy.t, x.t, kernel_shape=tuple(w.shape), **geo)
        dw = TV(t, w.shape)
    if mask[2]:
        db = reduce(dy, [0, 2, 3], False, te.sum, "bias_backward")
    return dx, dw, db


def cat(tensors, dim=0):
    parts = [t for t in tensors if math.prod(t.shape) > 0]     # PyTorch skips empty parts (even (0,) ones)
    nd = len(parts[0].shape)
    dim = dim % nd
    shape = list(parts[0].shape)
    shape[dim] = sum(t.shape[dim] for t in parts)
    starts = [sum(t.shape[dim] for t in parts[:n]) for n in range(len(parts))]

    def body(*i):
        # the last part, then for each earlier part (innermost first): "i < its end ? it : the rest"
        out = None
        for t, start in reversed(list(zip(parts, starts))):
            # clamped: every part is read at every output index (the select keeps the right one),
            # so each read must stay inside its own part
            local = te.min(te.max(i[dim] - start, 0), t.shape[dim] - 1)
            idx = tuple(i[:dim]) + (local,) + tuple(i[dim + 1:])
            v = t.t[idx]
            out = v if out is None else te.if_then_else(i[dim] < start + t.shape[dim], v, out)
        return out
    return compute(tuple(shape), body, "cat", tag="concatenate")


def constant_pad_nd(x, pad, value=0):
    """PyTorch's constant_pad_nd: ``pad`` is (before, after) pairs from the last dim backwards;
    negative pads crop (the backward of a pad is a pad by minus its amounts)."""
    nd = len(x.shape)
    lo = [0] * nd
    shape = list(x.shape)
    for n in range(len(pad) // 2):
        d = nd - 1 - n
        lo[d] = pad[2 * n]
        shape[d] += pad[2 * n] + pad[2 * n + 1]

    def body(*i):
        src = [i[d] - lo[d] for d in range(nd)]
        inside = [c for d in range(nd) if lo[d] > 0 or shape[d] - lo[d] > x.shape[d]
                  for c in (src[d] >= 0, src[d] < x.shape[d])]
        idx = tuple(te.min(te.max(v, 0), x.shape[d] - 1) if lo[d] > 0 or shape[d] - lo[d] > x.shape[d] else v
                    for d, v in enumerate(src))
        v = x.t[idx]
        return te.if_then_else(te.all(*inside), v, te.const(float(value))) if inside else v
    return compute(tuple(shape), body, "constant_pad_nd", tag="pad_generic")


@dataclass(frozen=True)
class Lowering:
    """How one ATen overload runs on loopc: ``kind`` (see the module doc), ``build`` from TV/Python
    arguments, ``check(node) -> reason or None``, ``outputs`` (a multi op's tuple length)."""
    kind: str
    build: Optional[Callable] = None
    check: Optional[Callable] = None


def _val(a):
    return a.meta.get("val") if isinstance(a, torch.fx.Node) else None


def _rank_is(n):
    def check(node):
        v = _val(node.args[0])
        return None if v is not None and v.dim() == n else f"input is not {n}-D"
    return check


def _conv_check(node):
    args = node.args
    if _val(args[0]) is None or _val(args[0]).dim() != 4:
        return "only 2-D convolutions (NCHW)"
    if args[6]:
        return "transposed convolution"
    return None


def _conv_bwd_check(node):
    args = node.args
    if _val(args[1]).dim() != 4:
        return "only 2-D convolutions (NCHW)"
    if args[7] or args[9] != 1:
        return "backward of transposed or grouped convolution"
    return None


def _pool_check(node):
    off = 0 if node.target is aten.max_pool2d_with_indices.default else 1     # the backward's dY first
    a = list(node.args[off:]) + [None] * 8
    dilation = a[4] if a[4] is not None else 1
    if _pairs(dilation) != (1, 1) or a[5]:
        return "max pooling with dilation or ceil_mode"
    if _val(a[0]).dim() != 4:
        return "only 4-D (NCHW) max pooling"
    kernel = _pairs(a[1])
    padding = _pairs(a[3] if a[3] is not None else 0)
    if padding[0] * 2 > kernel[0] or padding[1] * 2 > kernel[1]:
        return "padding over half the window"
    return None


def _nll_check(node):
    off = 1 if node.target is aten.nll_loss_backward.default else 0     # the backward's dY first
    a = node.args[off:]
    if len(a) > 2 and a[2] is not None:
        return "class weights"
    if a[3] not in (1, 2):
        return "reduction='none'"
    if _val(a[0]).dim() != 2:
        return "only (batch, classes) inputs"
    return None


def _scalar_tensor_check(node):
    v = _val(node)
    return None if v is not None and v.dtype == torch.float32 else "non-float32 scalar_tensor"


def _avg_pool_bwd_check(node):
    v = _val(node.args[1])
    return None if v is not None and v.dim() == 4 else "only 4-D (NCHW) average pooling"


def _adaptive_bwd_check(node):
    return _avg_pool_bwd_check(node)


def _pad_check(node):
    v, out = _val(node.args[0]), _val(node)
    if v is None or out is None or out.numel() == 0 or v.numel() == 0:
        return "empty tensor"
    if out.dtype != torch.float32:
        return "non-float32 padding"
    return None


def _bmm_check(node):
    return None


def _cat_check(node):
    if not all(isinstance(t, torch.fx.Node) for t in node.args[0]):
        return "non-tensor parts"
    out = _val(node)
    if out is None or out.numel() == 0:
        return "empty result"
    if any(_val(t).dtype != out.dtype for t in node.args[0]):
        return "parts of mixed dtypes"
    if any(_val(t).numel() == 0 for t in node.args[0]):
        return "an empty part"
    return None


VIEWS = (aten.view.default, aten._unsafe_view.default, aten.t.default, aten.transpose.int, aten.permute.default,
         aten.unsqueeze.default, aten.squeeze.dim, aten.squeeze.dims, aten.squeeze.default, aten.expand.default,
         aten.alias.default, aten.detach.default, aten.slice.Tensor, aten.select.int, aten.reshape.default)

LOWERINGS = {}
for _op in list(POINTWISE) + list(WITH_CONSTS):
    LOWERINGS[_op] = Lowering("pointwise", builder(_op))
for _op in VIEWS:
    LOWERINGS[_op] = Lowering("view")
LOWERINGS.update({
    aten.convolution.default: Lowering("anchor", convolution, _conv_check),
    aten.bmm.default: Lowering("anchor", bmm, _bmm_check),
    aten.max_pool2d_with_indices.default: Lowering("multi", max_pool2d, _pool_check),
    aten.max_pool2d_with_indices_backward.default: Lowering("anchor", max_pool2d_backward, _pool_check),
    aten.avg_pool2d.default: Lowering("anchor", avg_pool2d, _rank_is(4)),
    aten._adaptive_avg_pool2d.default: Lowering("anchor", adaptive_avg_pool2d, _rank_is(4)),
    aten.avg_pool2d_backward.default: Lowering("anchor", avg_pool2d_backward, _avg_pool_bwd_check),
    aten._adaptive_avg_pool2d_backward.default: Lowering("anchor", adaptive_avg_pool2d_backward,
                                                         _adaptive_bwd_check),
    aten.sum.dim_IntList: Lowering("anchor", sum_dims),
    aten.sum.default: Lowering("anchor", sum_dims),
    aten.mean.dim: Lowering("anchor", mean_dims),
    aten.mean.default: Lowering("anchor", mean_dims),
    aten.amax.default: Lowering("anchor", amax),
    aten.var_mean.correction: Lowering("multi", var_mean),
    aten._softmax.default: Lowering("anchor", softmax),
    aten._log_softmax.default: Lowering("anchor", log_softmax),
    aten._log_softmax_backward_data.default: Lowering("anchor", log_softmax_backward),
    aten._softmax_backward_data.default: Lowering("anchor", softmax_backward),
    aten.nll_loss_forward.default: Lowering("multi", nll_loss, _nll_check),
    aten.nll_loss_backward.default: Lowering("anchor", nll_loss_backward, _nll_check),
    aten.convolution_backward.default: Lowering("multi", convolution_backward, _conv_bwd_check),
    aten.cat.default: Lowering("anchor", cat, _cat_check),
    aten.constant_pad_nd.default: Lowering("anchor", constant_pad_nd, _pad_check),
    # mm / addmm are chosen by the graph compiler (dense, matmul or matmul_tn by their operands)
    aten.mm.default: Lowering("anchor"),
    aten.addmm.default: Lowering("anchor"),
})


LOWERINGS[aten.scalar_tensor.default] = Lowering("pointwise", builder(aten.scalar_tensor.default),
                                                 _scalar_tensor_check)

#: what AOTAutograd decomposes before the graph reaches loopc (PyTorch's own decompositions; the
#: pooling backwards have lowerings: PyTorch 2.13 has no decomposition of them)
DECOMPOSE = [aten._native_batch_norm_legit_functional, aten._native_batch_norm_legit_no_training,
             aten._native_batch_norm_legit, aten.native_batch_norm, aten.native_batch_norm_backward,
             aten.hardswish, aten.hardswish_backward, aten.hardsigmoid_backward, aten.silu_backward,
             aten.gelu_backward, aten.mse_loss, aten.mse_loss_backward, aten.addcmul, aten.relu6]
