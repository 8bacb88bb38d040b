"""The im2col rewrite: convolutions of any stride/padding/dilation become patch matrix + GEMM."""
import numpy as np
import pytest

import loopc
from loopc import te, interp
from loopc.schedules import testing


def conv_ref(x, w, stride, pad, dil):
    return testing.conv2d_nchw(x.astype(np.float64), w.astype(np.float64), stride, pad, dil)


def conv(N, C, H, W, K, R, S, stride, pad, dil, padding="select"):
    X = te.placeholder((N, C, H, W), name="X")
    Wt = te.placeholder((K, C, R, S), name="W")
    P = (H + 2 * pad - dil * (R - 1) - 1) // stride + 1
    Q = (W + 2 * pad - dil * (S - 1) - 1) // stride + 1
    c, r, s = te.reduce_axis((0, C), name="c"), te.reduce_axis((0, R), name="r"), te.reduce_axis((0, S), name="s")
    if padding == "select":
        def body(n, k, p, q):
            h, w = p * stride + r * dil - pad, q * stride + s * dil - pad
            return te.sum(te.if_then_else(te.all(h >= 0, h < H, w >= 0, w < W), X[n, c, h, w], 0.0) * Wt[k, c, r, s],
                          axis=[c, r, s])
        Y = te.compute((N, K, P, Q), body, name="Y")
        return X, Wt, Y, None
    Xp = te.compute((N, C, H + 2 * pad, W + 2 * pad),
                    lambda n, ch, h, w: te.if_then_else(te.all(h >= pad, h < H + pad, w >= pad, w < W + pad),
                                                        X[n, ch, h - pad, w - pad], 0.0), name="Xpad")
    Y = te.compute((N, K, P, Q), lambda n, k, p, q: te.sum(Wt[k, c, r, s] * Xp[n, c, p * stride + r * dil, q * stride + s * dil],
                                                           axis=[c, r, s]), name="Y")
    return X, Wt, Y, Xp


CASES = [
    # N, C, H, W, K, R, S, stride, pad, dil, padding
    (2, 3, 11, 13, 5, 3, 3, 2, 0, 1, "select"),
    (2, 3, 11, 13, 5, 3, 3, 2, 1, 1, "select"),
    (3, 2, 13, 11, 4, 3, 5, 1, 2, 2, "select"),
    (2, 3, 9, 13, 7, 3, 3, 2, 1, 2, "stage"),
    (2, 2, 10, 7, 3, 5, 3, 1, 2, 1, "inline"),
]


@pytest.mark.parametrize("case", CASES, ids=[f"s{c[7]}p{c[8]}d{c[9]}-{c[10]}" for c in CASES])
def test_im2col_matches_reference_with_scheduled_gemm(case):
    *shape, padding = case
    X, Wt, Y, Xp = conv(*shape, padding=padding)
    s = te.create_schedule(Y.op)
    if padding == "inline":
        s[Xp].compute_inline()
    col, out = s.im2col(Y)
    assert out is Y
    n, k, p, q = out.op.axis
    ko, ki = s[out].split(k, factor=4)
    qo, qi = s[out].split(q, factor=8)
    s[out].reorder(n, ko, p, qo, s[out].leaf_iter_vars[-1], ki, qi)
    s[out].vectorize(qi)
    s[out].unroll(ki)
    s[out].parallel(ko)
    s[col].parallel(col.op.axis[1])
    N, C, H, W, K, R, S, stride, pad, dil = shape
    rng = np.random.default_rng(1)
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    w = rng.standard_normal((K, C, R, S)).astype(np.float32)
    ref = conv_ref(x, w, stride, pad, dil)
    func = loopc.lower(s, [X, Wt, Y])
    y = np.zeros(Y.shape, np.float32)
    interp.run(func, x, w, y)
    np.testing.assert_allclose(y, ref, atol=1e-4, rtol=1e-4)
    y[...] = 0
    loopc.build(s, [X, Wt, Y])(x, w, y)
    np.testing.assert_allclose(y, ref, atol=1e-4, rtol=1e-4)
    text = str(func)
    assert f"Y.col = allocate(float32[{N}, {C * R * S}, {Y.shape[2] * Y.shape[3]}]" in text
    # the weight reads as a (K, C*R*S) matrix: no div/mod left in its index (k.inner is unrolled)
    kf = min(4, K)       # a split factor past the extent gives an inner loop of the extent
    assert f"W[k.outer*{kf * C * R * S} + crs]" in text and f"W[k.outer*{kf * C * R * S} + crs + {C * R * S}]" in text


def test_patch_matrix_layout():
    """col[n, (c*R + r)*S + s, p*Q + q] = X[n, c, p*stride + r*dil - pad, q*stride + s*dil - pad]."""
    X, Wt, Y, _ = conv(1, 2, 5, 4, 1, 2, 3, 1, 1, 1)
    s = te.create_schedule(Y.op)
    col, _ = s.im2col(Y)
    x = np.arange(40, dtype=np.float32).reshape(1, 2, 5, 4)
    w = np.zeros((1, 2, 2, 3), np.float32)
    cols = np.zeros(col.shape, np.float32)
    loopc.build(s, [X, Wt, col, Y])(x, w, cols, np.zeros(Y.shape, np.float32))
    P, Q = Y.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    expect = np.zeros(col.shape, np.float32)
    for c in range(2):
        for r in range(2):
            for s_ in range(3):
                for p in range(P):
                    for q in range(Q):
                        expect[0, (c * 2 + r) * 3 + s_, p * Q + q] = xp[0, c, p + r, q + s_]
    np.testing.assert_array_equal(cols, expect)


def test_im2col_trace_replays():
    X, Wt, Y, _ = conv(2, 3, 11, 13, 5, 3, 3, 2, 1, 1)
    s = te.create_schedule(Y.op)
    col, out = s.im2col(Y)
    s[out].split(out.op.axis[3], factor=4)
    again = te.create_schedule(Y.op).replay(s.trace_json())
    assert str(loopc.lower(again, [X, Wt, Y])) == str(loopc.lower(s, [X, Wt, Y]))


def _expect_mismatch(Y, part):
    s = te.create_schedule(Y.op)
    with pytest.raises(loopc.ScheduleError, match=part):
        s.im2col(Y)


def test_non_conv_stages_say_which_part_did_not_match():
    A = te.placeholder((8, 8), name="A")
    B = te.placeholder((8, 8), name="B")
    k = te.reduce_axis((0, 8), name="k")
    C = te.compute((8, 8), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    _expect_mismatch(C, "output has 2 dimensions")
    X = te.placeholder((1, 2, 6, 6), name="X")
    W = te.placeholder((3, 2, 3, 3), name="W")
    c, r, s = te.reduce_axis((0, 2), name="c"), te.reduce_axis((0, 3), name="r"), te.reduce_axis((0, 3), name="s")
    M = te.compute((1, 3, 4, 4), lambda n, kk, p, q: te.max(X[n, c, p + r, q + s] * W[kk, c, r, s], axis=[c, r, s]), name="M")
    _expect_mismatch(M, "not a te.sum")
    T = te.compute((1, 3, 4, 4), lambda n, kk, p, q: te.sum(X[n, c, p + r, q + s] + W[kk, c, r, s], axis=[c, r, s]), name="T")
    _expect_mismatch(T, "not a product")
    U = te.compute((1, 3, 4, 4), lambda n, kk, p, q: te.sum(X[n, c, p + r, q + s] * W[kk, c, s, r], axis=[c, r, s]), name="U")
    _expect_mismatch(U, "row index")  # the filter's (r, s) swapped against the input's window
    U2 = te.compute((1, 3, 4, 4), lambda n, kk, p, q: te.sum(X[n, c, p * q, s] * W[kk, c, r, s], axis=[c, r, s]), name="U2")
    _expect_mismatch(U2, "row index")
    V = te.compute((1, 3, 4, 4), lambda n, kk, p, q: te.sum(X[0, c, p + r, q + s] * W[kk, c, r, s], axis=[c, r, s]), name="V")
    _expect_mismatch(V, "batch axis")
    Z = te.compute((1, 3, 4, 4), lambda n, kk, p, q: te.sum(X[n, c, p + r, q + s] * W[kk, 0, r, s], axis=[c, r, s]), name="Z")
    _expect_mismatch(Z, "weight read")


def test_im2col_after_scheduling_is_refused():
    X, Wt, Y, _ = conv(1, 2, 6, 6, 3, 3, 3, 1, 0, 1)
    s = te.create_schedule(Y.op)
    s[Y].split(Y.op.axis[3], factor=2)
    with pytest.raises(loopc.ScheduleError, match="before scheduling"):
        s.im2col(Y)
