"""Plain numpy references, one per operator (float64 inside, cast to the input dtype)."""
from __future__ import annotations

import numpy as np

from .ops import conv_out, padding4


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
    pt, pl, pb, pr = padding4(padding)
    dh, dw = _pair(dilation)
    N, C, H, W = x.shape
    K, Cg, R, S = w.shape
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


def _windows(x, kernel, stride, padding, fill):
    kh, kw = _pair(kernel)
    sh, sw = _pair(kernel if stride is None else stride)
    ph, pw = _pair(padding)
    N, C, H, W = x.shape
    P, Q = conv_out(H, kh, sh, ph), conv_out(W, kw, sw, pw)
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=fill)
    return np.stack([xp[:, :, r: r + sh * (P - 1) + 1: sh, s: s + sw * (Q - 1) + 1: sw]
                     for r in range(kh) for s in range(kw)])


def max_pool2d(x, kernel, stride=None, padding=0):
    return _windows(x, kernel, stride, padding, -np.inf).max(axis=0).astype(x.dtype)


def avg_pool2d(x, kernel, stride=None, padding=0):
    return _windows(x, kernel, stride, padding, 0.0).mean(axis=0).astype(x.dtype)


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


def max_pool2d_backward(dy, x, kernel, stride=None, padding=0):
    """Each window's gradient to its first maximum (row-major window order), like PyTorch."""
    kh, kw = _pair(kernel)
    sh, sw = _pair(kernel if stride is None else stride)
    ph, pw = _pair(padding)
    N, C, H, W = x.shape
    P, Q = dy.shape[2], dy.shape[3]
    win = _windows(x, kernel, stride, padding, -np.inf)          # (kh*kw, N, C, P, Q)
    first = win.argmax(axis=0)                                   # the first maximum on ties
    dxp = np.zeros((N, C, H + 2 * ph, W + 2 * pw))
    n, c, p, q = np.indices((N, C, P, Q))
    h, w = p * sh + first // kw, q * sw + first % kw
    np.add.at(dxp, (n, c, h, w), dy.astype(np.float64))
    return dxp[:, :, ph: ph + H, pw: pw + W].astype(dy.dtype)


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
