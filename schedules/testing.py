"""Plain numpy references, one per operator (float64 inside, cast to the input dtype)."""
from __future__ import annotations

import itertools

import numpy as np

from .ops import conv_out, padding4
from .pooling import adaptive_bounds
from .windows import parse_layout, windows


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def matmul(a, b):
    return (a.astype(np.float64) @ b.astype(np.float64)).astype(a.dtype)


def dense(x, w, bias=None):
    y = x.astype(np.float64) @ w.astype(np.float64).T
    if bias is not None:
        y = y + bias
    return y.astype(x.dtype)


def conv2d_nchw(x, w, stride=1, padding=0, dilation=1, groups=1):
    """PyTorch's conv2d (``padding``: an int, (ph, pw) or (top, left, bottom, right))."""
    sh, sw = _pair(stride)
    dh, dw = _pair(dilation)
    N, C, H, W = x.shape
    K, Cg, R, S = w.shape
    pt, pl, pb, pr = padding4(padding, "conv2d_nchw", ((R - 1) * dh + 1, (S - 1) * dw + 1))
    P, Q = conv_out(H + pt + pb, R, sh, 0, dh), conv_out(W + pl + pr, S, sw, 0, dw)
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    Kg = K // groups
    y = np.zeros((N, K, P, Q))
    for g in range(groups):
        xg = xp[:, g * Cg:(g + 1) * Cg]
        wg = w[g * Kg:(g + 1) * Kg].astype(np.float64)
        for r in range(R):
            for s in range(S):
                patch = xg[:, :, r * dh: r * dh + sh * (P - 1) + 1: sh, s * dw: s * dw + sw * (Q - 1) + 1: sw]
                y[:, g * Kg:(g + 1) * Kg] += np.einsum("ncpq,kc->nkpq", patch, wg[:, :, r, s])
    return y.astype(x.dtype)


def _pool_taps(x, kernel, stride, dilation, padding, pool_type, ceil_mode, layout):
    """Pooling's windows in numpy: ``(order, wins, xp, taps)`` with ``x`` transposed to
    N, C, spatial (``order``) and padded (``xp``, with room for ceil mode's last window), and
    per tap ``(slice of xp, values, in the input?, in the padded input?)``."""
    nd = x.ndim - 2
    lay = parse_layout(layout or "NC" + "DHW"[-nd:], nd, "pool")
    wins = windows("pool", lay, x.shape, kernel, stride, dilation, padding, ceil_mode)
    order = (lay.batch, lay.channel) + lay.spatial
    xt = x.astype(np.float64).transpose(order)
    grow = [(w.before, max(w.after, (w.out - 1) * w.stride + w.extent - w.size - w.before)) for w in wins]
    spec = ((0, 0), (0, 0)) + tuple(grow)
    xp = np.pad(xt, spec, constant_values=-np.inf if pool_type == "max" else 0.0)
    inside = np.pad(np.ones(xt.shape), spec)
    padded = np.zeros(xp.shape)
    padded[(slice(None), slice(None)) + tuple(slice(0, w.before + w.size + w.after) for w in wins)] = 1.0
    taps = []
    for tap in itertools.product(*[range(w.kernel) for w in wins]):
        sl = (slice(None), slice(None)) + tuple(slice(r * w.dilation, r * w.dilation + w.stride * (w.out - 1) + 1,
                                                      w.stride) for r, w in zip(tap, wins))
        taps.append((sl, xp[sl], inside[sl], padded[sl]))
    return order, wins, xp, taps


def _divisor(taps, count_include_pad):
    return np.maximum(sum(t[3] if count_include_pad else t[2] for t in taps), 1)


def pool(x, kernel, stride=None, dilation=1, padding=0, pool_type="max", ceil_mode=False, layout=None,
         count_include_pad=True):
    """Any-rank pooling (pool1d / pool2d / pool3d) in ``layout`` (default NCW / NCHW / NCDHW)."""
    order, _, _, taps = _pool_taps(x, kernel, stride, dilation, padding, pool_type, ceil_mode, layout)
    vals = [t[1] for t in taps]
    y = np.max(vals, axis=0) if pool_type == "max" else np.sum(vals, axis=0) / _divisor(taps, count_include_pad)
    return y.transpose(np.argsort(order)).astype(x.dtype)


def pool_grad(dy, x, kernel, stride=None, padding=0, pool_type="max", ceil_mode=False, count_include_pad=True,
              layout=None, dilation=1):
    """dX of :func:`pool`: each window's gradient to its first maximum (row-major tap order,
    like PyTorch) or spread over the taps it divided by."""
    order, wins, xp, taps = _pool_taps(x, kernel, stride, dilation, padding, pool_type, ceil_mode, layout)
    g = dy.astype(np.float64).transpose(order)
    first = np.argmax([t[1] for t in taps], axis=0) if pool_type == "max" else None
    per_tap = None if pool_type == "max" else g / _divisor(taps, count_include_pad)
    dxp = np.zeros(xp.shape)
    for i, (sl, _, _, _) in enumerate(taps):
        dxp[sl] += np.where(first == i, g, 0.0) if pool_type == "max" else per_tap
    dx = dxp[(slice(None), slice(None)) + tuple(slice(w.before, w.before + w.size) for w in wins)]
    return dx.transpose(np.argsort(order)).astype(dy.dtype)


def pool1d(x, kernel, stride=None, dilation=1, padding=0, pool_type="max", ceil_mode=False, layout="NCW",
           count_include_pad=True):
    return pool(x, kernel, stride, dilation, padding, pool_type, ceil_mode, layout, count_include_pad)


def pool2d(x, kernel, stride=None, dilation=1, padding=0, pool_type="max", ceil_mode=False, layout="NCHW",
           count_include_pad=True):
    return pool(x, kernel, stride, dilation, padding, pool_type, ceil_mode, layout, count_include_pad)


def pool3d(x, kernel, stride=None, dilation=1, padding=0, pool_type="max", ceil_mode=False, layout="NCDHW",
           count_include_pad=True):
    return pool(x, kernel, stride, dilation, padding, pool_type, ceil_mode, layout, count_include_pad)


def max_pool2d(x, kernel, stride=None, padding=0, dilation=1, ceil_mode=False, layout="NCHW"):
    return pool(x, kernel, stride, dilation, padding, "max", ceil_mode, layout)


def avg_pool2d(x, kernel, stride=None, padding=0, ceil_mode=False, count_include_pad=True, dilation=1,
               layout="NCHW"):
    return pool(x, kernel, stride, dilation, padding, "avg", ceil_mode, layout, count_include_pad)


def adaptive_pool(x, output_size, pool_type="avg", layout=None):
    """Any-rank adaptive pooling, one window at a time."""
    nd = x.ndim - 2
    lay = parse_layout(layout or "NC" + "DHW"[-nd:], nd, "adaptive_pool")
    order = (lay.batch, lay.channel) + lay.spatial
    xt = x.astype(np.float64).transpose(order)
    sizes = xt.shape[2:]
    output_size = (output_size,) * nd if output_size is None or isinstance(output_size, int) else output_size
    outs = tuple(n if o is None else o for o, n in zip(output_size, sizes))
    y = np.zeros(xt.shape[:2] + outs)
    for idx in itertools.product(*[range(o) for o in outs]):
        bounds = [adaptive_bounds(i, n, o) for i, n, o in zip(idx, sizes, outs)]
        win = xt[(slice(None), slice(None)) + tuple(slice(a, b) for a, b in bounds)].reshape(xt.shape[:2] + (-1,))
        y[(slice(None), slice(None)) + idx] = win.max(axis=-1) if pool_type == "max" else win.mean(axis=-1)
    return y.transpose(np.argsort(order)).astype(x.dtype)


def relu(x):
    return np.maximum(x, 0).astype(x.dtype)


def bias_add(x, b, axis=1):
    shape = [1] * x.ndim
    shape[axis] = -1
    return (x + b.reshape(shape)).astype(x.dtype)


def softmax(x, axis=-1):
    e = np.exp(x.astype(np.float64) - x.max(axis=axis, keepdims=True))
    return (e / e.sum(axis=axis, keepdims=True)).astype(x.dtype)


def log_softmax(x, axis=-1):
    z = x.astype(np.float64) - x.max(axis=axis, keepdims=True)
    return (z - np.log(np.exp(z).sum(axis=axis, keepdims=True))).astype(x.dtype)


# --------------------------------------------------------------------------- backward ops (grad.py)


def conv2d_backward_data(dy, w, input_shape, stride=1, padding=0, dilation=1):
    """dX of conv2d_nchw: each output gradient scattered back through the filter taps."""
    sh, sw = _pair(stride)
    ph, pw = _pair(padding)
    dh, dw = _pair(dilation)
    N, C, H, W = input_shape
    K, _, R, S = w.shape
    P, Q = conv_out(H, R, sh, ph, dh), conv_out(W, S, sw, pw, dw)
    dxp = np.zeros((N, C, H + 2 * ph, W + 2 * pw))
    dy64, w64 = dy.astype(np.float64), w.astype(np.float64)
    for r in range(R):
        for s in range(S):
            dxp[:, :, r * dh: r * dh + sh * (P - 1) + 1: sh, s * dw: s * dw + sw * (Q - 1) + 1: sw] += \
                np.einsum("nkpq,kc->ncpq", dy64, w64[:, :, r, s])
    return dxp[:, :, ph: ph + H, pw: pw + W].astype(dy.dtype)


def conv2d_backward_weight(dy, x, kernel_shape, stride=1, padding=0, dilation=1):
    """dW of conv2d_nchw: the correlation of each input patch with the output gradient."""
    sh, sw = _pair(stride)
    ph, pw = _pair(padding)
    dh, dw = _pair(dilation)
    K, C, R, S = kernel_shape
    P, Q = dy.shape[2], dy.shape[3]
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    dwt = np.zeros((K, C, R, S))
    for r in range(R):
        for s in range(S):
            patch = xp[:, :, r * dh: r * dh + sh * (P - 1) + 1: sh, s * dw: s * dw + sw * (Q - 1) + 1: sw]
            dwt[:, :, r, s] = np.einsum("nkpq,ncpq->kc", dy.astype(np.float64), patch)
    return dwt.astype(dy.dtype)


def dense_backward_data(dy, w):
    return (dy.astype(np.float64) @ w.astype(np.float64)).astype(dy.dtype)


def dense_backward_weight(dy, x):
    return (dy.astype(np.float64).T @ x.astype(np.float64)).astype(dy.dtype)


def bias_backward(dy, axis=1):
    axis %= dy.ndim
    return dy.astype(np.float64).sum(axis=tuple(d for d in range(dy.ndim) if d != axis)).astype(dy.dtype)


def max_pool2d_backward(dy, x, kernel, stride=None, padding=0, dilation=1, ceil_mode=False, layout="NCHW"):
    """Each window's gradient to its first maximum (row-major window order), like PyTorch."""
    return pool_grad(dy, x, kernel, stride, padding, "max", ceil_mode, True, layout, dilation)


def avg_pool2d_backward(dy, x, kernel, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                        dilation=1, layout="NCHW"):
    return pool_grad(dy, x, kernel, stride, padding, "avg", ceil_mode, count_include_pad, layout, dilation)


def relu_backward(dy, x):
    return np.where(x > 0, dy, 0).astype(dy.dtype)


def nll_loss(logp, labels):
    return np.array([-logp.astype(np.float64)[np.arange(len(labels)), labels].mean()], dtype=logp.dtype)


def nll_loss_backward(labels, batch, classes, dloss=None):
    out = np.zeros((batch, classes))
    out[np.arange(batch), labels] = -1.0 / batch
    if dloss is not None:
        out *= float(np.asarray(dloss).reshape(-1)[0])
    return out.astype(np.float32)


def log_softmax_backward(dlogp, logp, axis=-1):
    d = dlogp.astype(np.float64)
    return (d - np.exp(logp.astype(np.float64)) * d.sum(axis=axis, keepdims=True)).astype(dlogp.dtype)


# --------------------------------------------------------------------------- optimizers (optim.py)


def sgd_momentum(param, grad, velocity, lr, momentum, weight_decay=0.0):
    """One step of torch.optim.SGD(momentum=..., dampening=0); returns (new_velocity, new_param)."""
    p, g, v = (a.astype(np.float64) for a in (param, grad, velocity))
    lr = float(np.asarray(lr).reshape(-1)[0])
    g = g + weight_decay * p
    v = momentum * v + g
    return v.astype(param.dtype), (p - lr * v).astype(param.dtype)


def adadelta(param, grad, square_avg, acc_delta, lr, rho=0.9, eps=1e-6, weight_decay=0.0):
    """One step of torch.optim.Adadelta; returns (new_square_avg, new_acc_delta, new_param)."""
    p, g, sq, acc = (a.astype(np.float64) for a in (param, grad, square_avg, acc_delta))
    lr = float(np.asarray(lr).reshape(-1)[0])
    g = g + weight_decay * p
    sq = rho * sq + (1 - rho) * g * g
    delta = np.sqrt(acc + eps) / np.sqrt(sq + eps) * g
    acc = rho * acc + (1 - rho) * delta * delta
    return sq.astype(param.dtype), acc.astype(param.dtype), (p - lr * delta).astype(param.dtype)


# --------------------------------------------------------------------------- sparse weights


def sparse_dense(x, w_data, w_indices, w_indptr):
    """Y = X · Wᵀ with W in CSR (w_data 1-D) or BSR (w_data blocks x bs_r x bs_c): TVM's
    topi.nn.sparse_dense, here by expanding W (plain numpy, no scipy)."""
    k = x.shape[1]
    w = sparse_to_dense(w_data, w_indices, w_indptr, k)
    return (x.astype(np.float64) @ w.T).astype(x.dtype)


def sparse_to_dense(w_data, w_indices, w_indptr, k):
    """The dense (N x K) float64 matrix of a CSR or BSR weight."""
    blocks = w_data.reshape(-1, 1, 1) if w_data.ndim == 1 else w_data
    _, bs_r, bs_c = blocks.shape
    nb = len(w_indptr) - 1
    w = np.zeros((nb * bs_r, k))
    for row in range(nb):
        for e in range(int(w_indptr[row]), int(w_indptr[row + 1])):
            col = int(w_indices[e]) * bs_c
            w[row * bs_r:(row + 1) * bs_r, col:col + bs_c] += blocks[e]
    return w


def dense_to_sparse(w, block=(1, 1)):
    """(data, indices, indptr) of ``w`` (N x K): CSR for block (1, 1) (data 1-D), else BSR
    with every bs_r x bs_c block that holds a nonzero (N, K multiples of the block)."""
    bs_r, bs_c = block
    n, k = w.shape
    if n % bs_r or k % bs_c:
        raise ValueError(f"a {n}x{k} matrix is not made of {bs_r}x{bs_c} blocks")
    b = w.reshape(n // bs_r, bs_r, k // bs_c, bs_c).transpose(0, 2, 1, 3)
    keep = np.any(b != 0, axis=(2, 3))
    rows, cols = np.nonzero(keep)
    data = b[rows, cols].astype(w.dtype)
    indptr = np.zeros(n // bs_r + 1, np.int32)
    np.cumsum(np.bincount(rows, minlength=n // bs_r), out=indptr[1:])
    indices = cols.astype(np.int32)
    if block == (1, 1):
        data = data.reshape(-1)
    return data, indices, indptr


def random_sparse(n, k, density, block=(1, 1), seed=0, dtype="float32"):
    """A seeded random N x K weight whose ``density`` fraction of bs_r x bs_c blocks is nonzero
    (values normal), and its (data, indices, indptr)."""
    bs_r, bs_c = block
    rng = np.random.default_rng(seed)
    keep = rng.random((n // bs_r, k // bs_c)) < density
    w = rng.standard_normal((n, k)).astype(dtype) * np.kron(keep, np.ones(block)).astype(dtype)
    return w, dense_to_sparse(w, block)
