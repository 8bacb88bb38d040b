"""Tutorial 1 — Conv2d is seven nested loops.

The chapter's first question: what happens under ``conv1(x)``? A 2-D convolution is seven
loops — batch n, output channel k, output row p, output column q, input channel c, filter
row r, filter column s — around one multiply-add. Here we declare exactly that in loopc's
tensor-expression DSL (padding through ``te.if_then_else``, any stride and dilation), print the
loop nest loopc derives, compile it for this CPU, and check it against numpy.

Run:  python tutorials/01_conv_as_seven_loops.py [--small]
"""
import argparse
import time

import numpy as np

import loopc
from loopc import te


def conv2d_seven_loops(N, C, H, W, K, R, S, stride=1, pad=0, dilation=1):
    """Y[n, k, p, q] = sum_{c, r, s} X[n, c, p*stride + r*dilation - pad, q*stride + s*dilation - pad] * Wt[k, c, r, s]"""
    P = (H + 2 * pad - dilation * (R - 1) - 1) // stride + 1
    Q = (W + 2 * pad - dilation * (S - 1) - 1) // stride + 1
    X = te.placeholder((N, C, H, W), name="X")
    Wt = te.placeholder((K, C, R, S), name="Wt")
    c = te.reduce_axis((0, C), name="c")
    r = te.reduce_axis((0, R), name="r")
    s = te.reduce_axis((0, S), name="s")

    def body(n, k, p, q):
        h = p * stride + r * dilation - pad
        w = q * stride + s * dilation - pad
        inside = te.all(h >= 0, h < H, w >= 0, w < W)
        return te.sum(te.if_then_else(inside, X[n, c, h, w], 0.0) * Wt[k, c, r, s], axis=[c, r, s])

    Y = te.compute((N, K, P, Q), body, name="Y")
    return X, Wt, Y


def conv2d_numpy(x, w, stride, pad, dilation):
    """The same seven loops, vectorised over (n, k) with numpy: the reference."""
    N, C, H, W = x.shape
    K, _, R, S = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    P = (H + 2 * pad - dilation * (R - 1) - 1) // stride + 1
    Q = (W + 2 * pad - dilation * (S - 1) - 1) // stride + 1
    y = np.zeros((N, K, P, Q), dtype=np.float64)
    for r in range(R):
        for s in range(S):
            patch = xp[:, :, r * dilation: r * dilation + stride * (P - 1) + 1: stride,
                       s * dilation: s * dilation + stride * (Q - 1) + 1: stride]
            y += np.einsum("ncpq,kc->nkpq", patch, w[:, :, r, s])
    return y.astype(np.float32)


def main(small=False):
    # The chapter's example: a 3x32x32 input and a 2x3x5x5 filter give a 2x28x28 output.
    shape = dict(N=1, C=3, H=32, W=32, K=2, R=5, S=5, stride=1, pad=0, dilation=1)
    if small:
        shape = dict(N=2, C=3, H=11, W=13, K=2, R=3, S=3, stride=2, pad=1, dilation=2)
    X, Wt, Y = conv2d_seven_loops(**shape)
    print(f"Y{Y.shape} = conv2d(X{X.shape}, W{Wt.shape}), "
          f"stride={shape['stride']} padding={shape['pad']} dilation={shape['dilation']}")

    s = te.create_schedule(Y.op)
    print("\nThe seven loops, as loopc lowers the default schedule:\n")
    print(loopc.lower(s, [X, Wt, Y], name="conv2d"))

    f = loopc.build(s, [X, Wt, Y], name="conv2d")
    rng = np.random.default_rng(0)
    x = rng.standard_normal(X.shape, dtype=np.float32)
    w = rng.standard_normal(Wt.shape, dtype=np.float32)
    y = np.zeros(Y.shape, dtype=np.float32)
    f(x, w, y)
    ref = conv2d_numpy(x, w, shape["stride"], shape["pad"], shape["dilation"])
    err = float(np.max(np.abs(y - ref)))
    print(f"max |loopc - numpy| = {err:.2e}")
    assert err < 1e-3, "the convolution disagrees with numpy"

    t = f.time_evaluator(number=10, repeat=3)(x, w, y).median
    macs = int(np.prod(Y.shape)) * shape["C"] * shape["R"] * shape["S"]
    print(f"{macs} multiply-adds in {t * 1e6:.1f} us ({2 * macs / t / 1e9:.2f} GFLOP/s, default schedule)")

    # The order of the loops is a schedule decision: move the output column q innermost
    # and run it as vector lanes — same numbers, different locality.
    n, k, p, q = Y.op.axis
    c, r, s_ = Y.op.reduce_axis
    s2 = te.create_schedule(Y.op)
    s2[Y].reorder(n, k, p, c, r, s_, q)
    qo, qi = s2[Y].split(q, factor=8)
    s2[Y].vectorize(qi)
    f2 = loopc.build(s2, [X, Wt, Y], name="conv2d_q_inner")
    y2 = np.zeros(Y.shape, dtype=np.float32)
    f2(x, w, y2)
    assert np.allclose(y2, ref, atol=1e-3)
    t2 = f2.time_evaluator(number=10, repeat=3)(x, w, y2).median
    print(f"reordered (c, r, s outside q) and vectorized q: {t2 * 1e6:.1f} us ({t / t2:.1f}x)")
    return err


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--small", action="store_true", help="a tiny shape with stride 2, padding 1, dilation 2")
    main(small=ap.parse_args().small)
