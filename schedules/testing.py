"""Plain numpy references, one per operator (float64 inside, cast to the input dtype)."""
from __future__ import annotations

import numpy as np


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def matmul(a, b):
    return (a.astype(np.float64) @ b.astype(np.float64)).astype(a.dtype)


def dense(x, w, bias=None):
    y = x.astype(np.float64) @ w.astype(np.float64).T
    if bias is not None:
        y = y + bias
    return y.astype(x.dtype)


def conv2d_nchw(x, w, stride=1, padding=0, dilation=1):
    sh, sw = _pair(stride)
    ph, pw = _pair(padding)
    dh, dw = _pair(dilation)
    N, C, H, W = x.shape
    K, _, R, S = w.shape
    P = (H + 2 * ph - dh * (R - 1) - 1) // sh + 1
    Q = (W + 2 * pw - dw * (S - 1) - 1) // sw + 1
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    y = np.zeros((N, K, P, Q))
    for r in range(R):
        for s in range(S):
            patch = xp[:, :, r * dh: r * dh + sh * (P - 1) + 1: sh, s * dw: s * dw + sw * (Q - 1) + 1: sw]
            y += np.einsum("ncpq,kc->nkpq", patch, w[:, :, r, s].astype(np.float64))
    return y.astype(x.dtype)


def _windows(x, kernel, stride, padding, fill):
    kh, kw = _pair(kernel)
    sh, sw = _pair(kernel if stride is None else stride)
    ph, pw = _pair(padding)
    N, C, H, W = x.shape
    P = (H + 2 * ph - kh) // sh + 1
    Q = (W + 2 * pw - kw) // sw + 1
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
