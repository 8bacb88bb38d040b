"""LLVM codegen details that schedules rely on: strided vector loads, and int32 values computed
in 64-bit registers (stored as 32 bits) — each against numpy."""
import numpy as np
import pytest

import loopc
from loopc import te


def _strided_read(n_out, stride, lanes, dtype):
    """Y[i] = X[i*stride + 1] * 2, vectorized by ``lanes``: the last lane of the last vector
    reads the very last element of X, so a load past the span would read out of bounds."""
    n_in = (n_out - 1) * stride + 2
    X = te.placeholder((n_in,), dtype=dtype, name="X")
    Y = te.compute((n_out,), lambda i: X[i * stride + 1] * 2, name="Y")
    s = te.create_schedule(Y.op)
    _, inner = s[Y].split(Y.op.axis[0], factor=lanes)
    s[Y].vectorize(inner)
    return X, Y, s


@pytest.mark.parametrize("stride", [2, 3, 4, 5])
@pytest.mark.parametrize("lanes, n_out", [(8, 24), (7, 21), (16, 37)])
@pytest.mark.parametrize("dtype", ["float32", "int32"])
def test_strided_vector_loads_match_numpy(stride, lanes, n_out, dtype):
    X, Y, s = _strided_read(n_out, stride, lanes, dtype)
    f = loopc.build(s, [X, Y])
    x = (np.arange(X.shape[0]) * 3 - 50).astype(dtype)
    y = np.zeros(n_out, dtype)
    f(x, y)
    np.testing.assert_array_equal(y, x[1::stride][:n_out] * 2)
    unopt = f.get_source("llvm-unopt")
    if stride <= 4:     # power-of-two loads of the lanes' span (the last masked to end at the last lane)
        span, width = (lanes - 1) * stride + 1, 1 << (lanes.bit_length() - 1)
        assert unopt.count(f"load <{width} x ") + unopt.count(f"masked.load.v{width}") >= -(-span // width)
        assert "shufflevector" in unopt
        # a masked load ends the span, and a partial last vector (masked lanes) reads only its
        # active lanes' elements: no gather
        assert (f"masked.load.v{width}" in unopt) == (span % width != 0 or n_out % lanes != 0)
        assert "masked.gather" not in unopt
    else:
        assert "masked.gather" in unopt


def test_masked_strided_loads_read_only_the_active_lanes_elements():
    """A padded pool reads strided lanes under a per-lane mask: the masked-off lanes would read
    out of bounds, so each register of the span is a masked load whose mask is the lanes' mask
    moved onto the elements they read (no gather, nothing else touched)."""
    X = te.placeholder((3, 11), name="X")
    r = te.reduce_axis((0, 3), name="r")
    Y = te.compute((3, 6), lambda n, q: te.max(te.if_then_else(te.all(q * 2 + r - 1 >= 0, q * 2 + r - 1 < 11),
                                                                 X[n, q * 2 + r - 1], -3.0e38), axis=r), name="Y")
    s = te.create_schedule(Y.op)
    s[Y].reorder(Y.op.axis[0], r, Y.op.axis[1])
    s[Y].vectorize(Y.op.axis[1])
    f = loopc.build(s, [X, Y])
    x = np.random.default_rng(0).standard_normal((3, 11)).astype(np.float32)
    y = np.zeros((3, 6), np.float32)
    f(x, y)
    padded = np.pad(x, ((0, 0), (1, 1)), constant_values=-np.inf)
    want = np.max(np.stack([padded[:, r:r + 11:2][:, :6] for r in range(3)]), axis=0)
    np.testing.assert_array_equal(y, want)
    unopt = f.get_source("llvm-unopt")
    assert "masked.gather" not in unopt and "masked.load" in unopt


def test_int32_arithmetic_in_64_bit_registers_matches_numpy():
    """int32 data: loads widen, stores truncate; // and % floor (negative operands), casts
    from int64 wrap to 32 bits, int32 lanes mix with int32 scalars, and comparisons hold."""
    n = 37
    A = te.placeholder((n,), dtype="int32", name="A")
    B = te.placeholder((n,), dtype="int64", name="B")
    C = te.compute((n,), lambda i: (A[i] * 3 - i) // 7 + (A[i] % 5) * te.const(2, "int32")
                   + te.cast(B[i], "int32"), name="C")
    D = te.compute((n,), lambda i: te.if_then_else(C[i] < A[i], C[i] - A[i], C[i] + i), name="D")
    for lanes in (None, 8):
        s = te.create_schedule(D.op)
        if lanes:
            for T in (C, D):
                _, inner = s[T].split(T.op.axis[0], factor=lanes)
                s[T].vectorize(inner)
        f = loopc.build(s, [A, B, D])
        rng = np.random.default_rng(1)
        a = rng.integers(-1000, 1000, n).astype(np.int32)
        b = (rng.integers(-1000, 1000, n) + (np.int64(1) << 33)).astype(np.int64)   # wraps in int32
        d = np.zeros(n, np.int32)
        f(a, b, d)
        i = np.arange(n)
        c = ((a.astype(np.int64) * 3 - i) // 7 + (a % 5) * 2 + b.astype(np.int32)).astype(np.int32)
        want = np.where(c < a, c - a, c + i).astype(np.int32)
        np.testing.assert_array_equal(d, want)


def test_loop_variables_are_64_bit():
    """Indices need no sign extension before an address computation."""
    X = te.placeholder((5, 6), name="X")
    Y = te.compute((5, 6), lambda i, j: X[i, j] + 1.0, name="Y")
    f = loopc.build(te.create_schedule(Y.op), [X, Y])
    unopt = f.get_source("llvm-unopt")
    assert "phi  i64" in unopt and "phi  i32" not in unopt and "sext" not in unopt


def test_int32_lanes_mix_scalars_selects_and_loop_indices():
    """In a vector loop an int32 select of two constants, the lane index and int32 data all
    meet as 32-bit lanes; the result matches numpy."""
    n = 29
    X = te.placeholder((n,), name="X")
    K = te.placeholder((n,), dtype="int32", name="K")
    Y = te.compute((n,), lambda i: te.if_then_else(X[i] > 0.0, te.const(3, "int32"), te.const(-2, "int32"))
                   + i * 2 - K[i] // 3 + te.max(K[i], i), name="Y")
    s = te.create_schedule(Y.op)
    _, inner = s[Y].split(Y.op.axis[0], factor=8)
    s[Y].vectorize(inner)
    f = loopc.build(s, [X, K, Y])
    rng = np.random.default_rng(2)
    x = rng.standard_normal(n).astype(np.float32)
    k = rng.integers(-40, 40, n).astype(np.int32)
    y = np.zeros(n, np.int32)
    f(x, k, y)
    i = np.arange(n)
    np.testing.assert_array_equal(y, np.where(x > 0, 3, -2) + i * 2 - k // 3 + np.maximum(k, i))
