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
from loopc.errors import LoopcError
from loopc.schedules import grad as _grad
from loopc.schedules import ops as _ops
from loopc.schedules import pooling as _pooling
from loopc.schedules import pooling_grad as _pool_grad
from loopc.schedules.pooling import adaptive_bounds, window_size
from loopc.schedules.windows import check_half_window, parse_layout
from loopc.schedules.windows import windows as pool_windows

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


# --------------------------------------------------------------------------- pooling
#
# The library's ops (``schedules/pooling.py``, ``pooling_grad.py``) compute pooling; what stays
# here is what PyTorch has and the library lacks: the indices of max_pool2d_with_indices,
# ``divisor_override`` (on top of the library's window sums and gradient) and the backward of
# adaptive average pooling.

_NCHW = parse_layout("NCHW", 2, "aten pooling")


def _max_geometry(kernel, stride=(), padding=0, dilation=1, ceil_mode=False, *_indices):
    """ATen's max pooling arguments as the library's: a stride of [] is the kernel."""
    return dict(kernel=_pairs(kernel), stride=_pairs(stride) if stride else None, padding=_pairs(padding),
                dilation=_pairs(dilation), ceil_mode=bool(ceil_mode))


def _avg_geometry(kernel, stride=(), padding=0, ceil_mode=False, count_include_pad=True, divisor_override=None):
    """ATen's avg_pool2d arguments: the library's keyword arguments, and the divisor override."""
    return dict(kernel=_pairs(kernel), stride=_pairs(stride) if stride else None, padding=_pairs(padding),
                ceil_mode=bool(ceil_mode), count_include_pad=bool(count_include_pad)), divisor_override


def _windows_of(x, op, kernel, stride, padding, ceil_mode, dilation=(1, 1), **_):
    """The library's :class:`Window` of H and W (LoopcError when PyTorch's rules are broken)."""
    wins = pool_windows(op, _NCHW, x.shape, kernel, stride, dilation, padding, ceil_mode)
    check_half_window(op, wins, padding)
    return wins


def max_pool2d(x, *args, **kwargs):
    y = _ops.max_pool2d(x.t, **_max_geometry(*args, **kwargs))
    return TV(y, tuple(y.shape))


def max_pool2d_indices(x, values, *args, **kwargs):
    """PyTorch's indices of max_pool2d_with_indices (the library has none): the flat h*W + w of
    each window's first maximum in row-major order, over the taps inside the input."""
    geo = _max_geometry(*args, **kwargs)
    wins = _windows_of(x, "max_pool2d_with_indices", **geo)
    N, C, H, W = x.shape
    r = te.reduce_axis((0, wins[0].kernel), name="r")
    s = te.reduce_axis((0, wins[1].kernel), name="s")
    big = te.const(H * W, "int64")

    def body(n, c, p, q):
        h, w = wins[0].position(p, r), wins[1].position(q, s)
        inside = [cond for win, v in zip(wins, (h, w)) if win.before or win.after or win.reaches_past_padding
                  for cond in (v >= 0, v < win.size)]
        hit = x.t[n, c, h, w] == values.t[n, c, p, q]
        hit = te.if_then_else(te.all(*inside), hit, False) if inside else hit
        return te.min(te.if_then_else(hit, (h * W + w).astype("int64"), big), axis=[r, s])
    return compute(values.shape, body, "max_pool2d_indices", tag="pool_indices")


def max_pool2d_backward(dy, x, *args, **kwargs):
    """The library's gradient (it finds each window's first maximum again: ``indices`` unread)."""
    y = _grad.max_pool2d_backward(dy.t, x.t, **_max_geometry(*args, **kwargs))
    return TV(y, tuple(y.shape))


def avg_pool2d(x, *args, **kwargs):
    """The library's avg_pool2d; with ``divisor_override``, its window sums (the ``pool_sum``
    stage it divides) divided by the override instead, in a stage the library's template
    schedules like its own division (same tag and attrs, plus the override)."""
    geo, divisor = _avg_geometry(*args, **kwargs)
    y = _ops.avg_pool2d(x.t, **geo)
    if divisor:
        total = y.op.input_tensors[0]
        assert total.op.tag == "pool_sum", total.op.tag
        d = float(divisor)
        y = te.compute(y.shape, lambda *i: total[i] / d, name="avg_pool2d", tag=y.op.tag,
                       attrs={**y.op.attrs, "divisor_override": int(divisor)})
    return TV(y, tuple(y.shape))


def avg_pool2d_backward(dy, x, *args, **kwargs):
    """The library's gradient; with ``divisor_override``, of dY scaled by taps / override (the
    library divides each window's gradient by its tap count: what is left is dY / override)."""
    geo, divisor = _avg_geometry(*args, **kwargs)
    g = dy
    if divisor:
        geo["count_include_pad"] = True
        wins = _windows_of(x, "avg_pool2d_backward", **geo)
        d = float(divisor)
        g = compute(dy.shape, lambda *o: dy.t[o] * (window_size(wins, _NCHW, o, True, "float32") / d),
                    "avg_pool2d_divisor_override")
    y = _pool_grad.avg_pool2d_backward(g.t, x.t, **geo)
    return TV(y, tuple(y.shape))


def adaptive_avg_pool2d(x, output_size):
    y = _pooling.adaptive_pool(x.t, tuple(_pairs(output_size)), "avg")
    return TV(y, tuple(y.shape))


def adaptive_avg_pool2d_backward(dy, x):
    """dX[h, w]: the sum over the windows (p, q) that hold (h, w) of dY[p, q] / their area (the
    library has no adaptive gradient; its windows are ``adaptive_bounds``). The windows
    holding h start at p = h * oh // H; at most ceil(oh / H) + 1 of them."""
    N, C, H, W = x.shape
    oh, ow = dy.shape[2], dy.shape[3]
    r = te.reduce_axis((0, min(oh, -(-oh // H) + 1)), name="r")
    s = te.reduce_axis((0, min(ow, -(-ow // W) + 1)), name="s")

    def body(n, c, h, w):
        p, q = (h * oh) // H + r, (w * ow) // W + s
        pc, qc = te.min(p, oh - 1), te.min(q, ow - 1)
        h0, h1 = adaptive_bounds(pc, H, oh)
        w0, w1 = adaptive_bounds(qc, W, ow)
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


#: pooling ops: (is a backward, i.e. dY first; how its arguments after the input read)
_POOLS = {aten.max_pool2d_with_indices.default: (False, _max_geometry),
          aten.max_pool2d_with_indices_backward.default: (True, _max_geometry),
          aten.avg_pool2d.default: (False, lambda *a, **k: _avg_geometry(*a, **k)[0]),
          aten.avg_pool2d_backward.default: (True, lambda *a, **k: _avg_geometry(*a, **k)[0])}


def _pool_check(node):
    """4-D (NCHW) input, and a geometry the library takes (it checks PyTorch's rules)."""
    backward, geometry = _POOLS[node.target]
    x = _val(node.args[1 if backward else 0])
    if x is None or x.dim() != 4:
        return "only 4-D (NCHW) pooling"
    try:
        _windows_of(x, str(node.target), **geometry(*node.args[2 if backward else 1:], **node.kwargs))
    except (LoopcError, TypeError) as e:
        return f"pooling geometry: {e}"
    return None


def _adaptive_check(node):
    backward = node.target is aten._adaptive_avg_pool2d_backward.default
    x = _val(node.args[1 if backward else 0])
    return None if x is not None and x.dim() == 4 else "only 4-D (NCHW) adaptive pooling"


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
    aten.avg_pool2d.default: Lowering("anchor", avg_pool2d, _pool_check),
    aten._adaptive_avg_pool2d.default: Lowering("anchor", adaptive_avg_pool2d, _adaptive_check),
    aten.avg_pool2d_backward.default: Lowering("anchor", avg_pool2d_backward, _pool_check),
    aten._adaptive_avg_pool2d_backward.default: Lowering("anchor", adaptive_avg_pool2d_backward, _adaptive_check),
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
