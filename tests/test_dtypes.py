"""dtypes beyond float32/int32 (issue 16, item 7): int8/int16/uint8-64 with numpy's wraparound,
unsigned division, compares and shifts; float16; bitwise operators and TVM's intrinsic names;
type promotion; casts both ways — on LLVM (scalar and vector loops), the interpreter and the CUDA
simulator, against numpy on odd sizes with the dtype's extremes in the data."""
import os
import platform
import subprocess
import sys

import numpy as np
import pytest

import loopc
import loopc.interp
from loopc import te
from loopc.errors import ArgumentError, LoopcError

INTS = ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"]
N = 37          # no vector width divides it: every vector loop has a tail


def _ints(dtype, n=N, seed=0):
    """Seeded random values of ``dtype`` with 0, 1, -1, min and max in front."""
    info = np.iinfo(dtype)
    x = np.random.default_rng(seed).integers(info.min, info.max, n, dtype=dtype, endpoint=True)
    extremes = [0, info.max, info.min, 1, info.max - 1, info.min + 1] + ([-1] if info.min < 0 else [])
    x[:len(extremes)] = np.array(extremes, dtype=dtype)
    return x


def _shift_counts(dtype, n=N, seed=1):
    """Counts 0 and width-1 in front, then random ones in [0, width)."""
    bits = np.iinfo(dtype).bits
    x = np.random.default_rng(seed).integers(0, bits, n).astype(dtype)
    x[:3] = [0, bits - 1, 1]
    return x


def _schedule(C, how):
    s = te.create_schedule(C.op)
    if how == "vector":
        _, inner = s[C].split(C.op.axis[-1], factor=8)
        s[C].vectorize(inner)
    return s


def _check(s, args, *inputs, want, exact=True, rtol=0.0, atol=0.0):
    """The built function and the interpreter both give ``want``."""
    out = args[-1]
    for where in ("llvm", "interp"):
        got = np.zeros([int(d) for d in out.shape], out.dtype)
        if where == "llvm":
            loopc.build(s, args)(*inputs, got)
        else:
            loopc.interp.run(loopc.lower(s, args), *inputs, got)
        if exact:
            np.testing.assert_array_equal(got, want, err_msg=where)
        else:
            np.testing.assert_allclose(got.astype("float64"), want.astype("float64"), rtol=rtol, atol=atol,
                                       err_msg=where)


# name -> (loopc expression of a, b; numpy of a, b). Both inputs are always read.
INT_OPS = {
    "add": (lambda a, b: a + b, lambda a, b: a + b),
    "sub": (lambda a, b: a - b, lambda a, b: a - b),
    "mul": (lambda a, b: a * b, lambda a, b: a * b),
    "floordiv": (lambda a, b: a // b, lambda a, b: np.floor_divide(a, b)),
    "floormod": (lambda a, b: a % b, lambda a, b: np.remainder(a, b)),
    "and": (lambda a, b: a & b, np.bitwise_and),
    "or": (lambda a, b: te.bitwise_or(a, b), np.bitwise_or),
    "xor": (lambda a, b: te.bitwise_xor(a, b), np.bitwise_xor),
    "not": (lambda a, b: ~a | (b & 0), lambda a, b: np.invert(a)),
    "bitwise_not": (lambda a, b: te.bitwise_not(b) + (a & 0), lambda a, b: np.invert(b)),
    "max": (lambda a, b: te.max(a, b), np.maximum),
    "min": (lambda a, b: te.min(a, b), np.minimum),
    "lt": (lambda a, b: te.if_then_else(a < b, a, b), lambda a, b: np.where(a < b, a, b)),
    "ge": (lambda a, b: te.if_then_else(a >= b, b, a), lambda a, b: np.where(a >= b, b, a)),
    "abs": (lambda a, b: te.abs(a) + (b & 0), np.abs),
    "neg": (lambda a, b: -a + (b & 0), lambda a, b: -a),
    "popcount": (lambda a, b: te.popcount(a) + (b & 0),   # two's complement bits (numpy counts |a|)
                 lambda a, b: np.bitwise_count(a.view(f"u{a.itemsize}")).astype(a.dtype)),
}


@pytest.mark.parametrize("how", ["scalar", "vector"])
@pytest.mark.parametrize("dtype", INTS)
@pytest.mark.parametrize("op", sorted(INT_OPS))
def test_integer_ops_wrap_like_numpy(op, dtype, how):
    fn, ref = INT_OPS[op]
    A = te.placeholder((N,), dtype, name="A")
    B = te.placeholder((N,), dtype, name="B")
    C = te.compute((N,), lambda i: fn(A[i], B[i]), name="C")
    assert C.dtype == dtype
    a, b = _ints(dtype), _ints(dtype, seed=2)[::-1].copy()      # extremes meet zero and each other
    with np.errstate(all="ignore"):
        want = ref(a, b).astype(dtype)
    _check(_schedule(C, how), [A, B, C], a, b, want=want)


@pytest.mark.parametrize("how", ["scalar", "vector"])
@pytest.mark.parametrize("dtype", INTS)
def test_shifts_are_arithmetic_for_signed_and_logical_for_unsigned(dtype, how):
    A = te.placeholder((N,), dtype, name="A")
    S = te.placeholder((N,), dtype, name="S")
    L = te.compute((N,), lambda i: A[i] << S[i], name="L")
    R = te.compute((N,), lambda i: te.shift_right(A[i], S[i]) ^ te.shift_left(A[i], S[i]), name="R")
    a, sh = _ints(dtype), _shift_counts(dtype)
    _check(_schedule(L, how), [A, S, L], a, sh, want=np.left_shift(a, sh))
    _check(_schedule(R, how), [A, S, R], a, sh, want=np.right_shift(a, sh) ^ np.left_shift(a, sh))
    if dtype.startswith("int"):
        assert np.right_shift(a, sh)[2] < 0          # the sign fills in: min >> 1 stays negative


@pytest.mark.parametrize("dtype", ["int8", "int32", "uint16", "uint64"])
def test_shift_counts_outside_the_width_follow_numpy(dtype):
    """C and TVM leave them undefined; loopc gives numpy's 0 (or -1 for a negative >> n)."""
    bits = np.iinfo(dtype).bits
    counts = [bits, bits + 1, 2 * bits - 1] + ([-1, -bits] if dtype.startswith("int") else [])
    n = len(counts)
    A = te.placeholder((n,), dtype, name="A")
    S = te.placeholder((n,), dtype, name="S")
    C = te.compute((n,), lambda i: (A[i] << S[i]) | (A[i] >> S[i]), name="C")
    a = np.array([-5 if dtype.startswith("int") else 5] * n).astype(dtype)
    sh = np.array(counts).astype(dtype)
    with np.errstate(all="ignore"):
        want = np.left_shift(a, sh) | np.right_shift(a, sh)
    _check(te.create_schedule(C.op), [A, S, C], a, sh, want=want)


def test_shifts_by_constants_and_python_literals():
    A = te.placeholder((N,), "uint32", name="A")
    C = te.compute((N,), lambda i: ((A[i] >> 31) | (A[i] << 1)) + (A[i] >> 0), name="C")
    a = _ints("uint32")
    with np.errstate(all="ignore"):
        want = ((a >> 31) | (a << 1)) + a
    for how in ("scalar", "vector"):
        _check(_schedule(C, how), [A, C], a, want=want)


def test_bool_operators_stay_logical():
    A = te.placeholder((N,), "int16", name="A")
    C = te.compute((N,), lambda i: te.if_then_else(((A[i] > 0) & (A[i] < 100)) | ~(A[i] != -1)
                                                   ^ (A[i] == 7), 1, 0).astype("int16"), name="C")
    a = _ints("int16")
    a[10:14] = [5, 7, -1, 100]
    want = (((a > 0) & (a < 100)) | (~(a != -1) ^ (a == 7))).astype("int16")
    _check(te.create_schedule(C.op), [A, C], a, want=want)


# --------------------------------------------------------------------------- casts

CAST_DTYPES = INTS + ["float16", "float32", "float64", "bool"]


def _cast_source(dtype):
    if dtype == "bool":
        return np.arange(N) % 3 == 0
    if dtype.startswith("float"):
        x = np.random.default_rng(4).uniform(-300, 300, N).astype(dtype)
        x[:4] = [0.0, -0.0, 1.5, -2.5]
        return x
    return _ints(dtype)


def _in_range_for(src, dst, x):
    """Which values numpy defines a cast of: a float must fit the integer target."""
    if not (src.startswith("float") and dst in INTS):
        return np.ones(len(x), bool)
    info, t = np.iinfo(dst), np.trunc(x.astype("float64"))
    return (t >= info.min) & (t <= info.max)


@pytest.mark.parametrize("how", ["scalar", "vector"])
@pytest.mark.parametrize("src", CAST_DTYPES)
def test_casts_between_every_pair_of_dtypes(src, how):
    """Integers wrap (int64 -> int8 keeps the low byte), sign- or zero-extend by the source,
    floats truncate toward zero; a float out of the integer's range is undefined (as in C)."""
    x = _cast_source(src)
    for dst in CAST_DTYPES:
        A = te.placeholder((N,), src, name="A")
        C = te.compute((N,), lambda i: A[i].astype(dst), name="C")
        ok = _in_range_for(src, dst, x)
        xs = np.where(ok, x, np.zeros_like(x))
        with np.errstate(all="ignore"):
            want = xs.astype(dst)
        _check(_schedule(C, how), [A, C], xs, want=want)


def test_float_to_unsigned_casts_wrap_negative_values_like_numpy_on_x86():
    A = te.placeholder((4,), "float32", name="A")
    C = te.compute((4,), lambda i: A[i].astype("uint8"), name="C")
    a = np.array([-1.0, -2.7, 255.9, 3.2], "float32")
    _check(te.create_schedule(C.op), [A, C], a, want=np.array([255, 254, 255, 3], "uint8"))


# --------------------------------------------------------------------------- float16


FLOAT16_OPS = {
    "add": (lambda a, b: a + b, lambda a, b: a + b),
    "mul_add": (lambda a, b: a * b + a, lambda a, b: a * b + a),
    "div": (lambda a, b: a / b, lambda a, b: a / b),
    "max": (lambda a, b: te.max(a, b) - 0.5, lambda a, b: np.maximum(a, b) - np.float16(0.5)),
    "exp": (lambda a, b: te.exp(a * 0.125) + b, lambda a, b: np.exp(a * np.float16(0.125)) + b),
    "sqrt": (lambda a, b: te.sqrt(te.abs(a)) * b, lambda a, b: np.sqrt(np.abs(a)) * b),
    "floor": (lambda a, b: te.floor(a / b), lambda a, b: np.floor(a / b)),
    "select": (lambda a, b: te.if_then_else(a < b, a, b * 2.0), lambda a, b: np.where(a < b, a, b * 2)),
}


@pytest.mark.parametrize("how", ["scalar", "vector"])
@pytest.mark.parametrize("op", sorted(FLOAT16_OPS))
def test_float16_compute_is_float16(op, how):
    """Arithmetic rounds to float16 after every operation: + - * / are numpy's results bit for
    bit; math functions within an ulp of float16."""
    fn, ref = FLOAT16_OPS[op]
    rng = np.random.default_rng(5)
    a = rng.uniform(-20, 20, N).astype("float16")
    b = rng.uniform(0.5, 30, N).astype("float16")
    a[:3] = [0.0, 65504.0 / 64, -1.0]
    A = te.placeholder((N,), "float16", name="A")
    B = te.placeholder((N,), "float16", name="B")
    C = te.compute((N,), lambda i: fn(A[i], B[i]), name="C")
    assert C.dtype == "float16"
    with np.errstate(all="ignore"):
        want = ref(a, b).astype("float16")
    exact = op in ("add", "mul_add", "div", "max", "select", "floor")
    _check(_schedule(C, how), [A, B, C], a, b, want=want, exact=exact, rtol=2e-3, atol=1e-3)


def test_float16_overflows_to_inf_like_numpy():
    A = te.placeholder((3,), "float16", name="A")
    C = te.compute((3,), lambda i: A[i] * 2.0 + A[i], name="C")
    a = np.array([60000, -40000, 1], "float16")
    with np.errstate(all="ignore"):
        want = a * np.float16(2) + a
    _check(te.create_schedule(C.op), [A, C], a, want=want)


@pytest.mark.parametrize("how", ["scalar", "vector"])
def test_float16_matmul_accumulates_in_float32_when_asked(how):
    M, K, Nn = 5, 67, 13
    rng = np.random.default_rng(6)
    a = rng.standard_normal((M, K)).astype("float16")
    b = rng.standard_normal((K, Nn)).astype("float16")
    A = te.placeholder((M, K), "float16", name="A")
    B = te.placeholder((K, Nn), "float16", name="B")
    k = te.reduce_axis((0, K), name="k")
    C32 = te.compute((M, Nn), lambda i, j: te.sum(A[i, k].astype("float32") * B[k, j].astype("float32"), axis=k),
                     name="C32")
    C = te.compute((M, Nn), lambda i, j: C32[i, j].astype("float16"), name="C")
    s = te.create_schedule(C.op)
    if how == "vector":
        _, ji = s[C32].split(C32.op.axis[1], factor=8)
        s[C32].vectorize(ji)
    want = (a.astype("float32") @ b.astype("float32")).astype("float16")
    _check(s, [A, B, C], a, b, want=want, exact=False, rtol=1e-3, atol=1e-3)


# --------------------------------------------------------------------------- reductions


@pytest.mark.parametrize("how", ["scalar", "vector"])
def test_int8_matmul_accumulates_in_int32(how):
    M, K, Nn = 7, 131, 19
    a, b = _ints("int8", M * K).reshape(M, K), _ints("int8", K * Nn, seed=3).reshape(K, Nn)
    A = te.placeholder((M, K), "int8", name="A")
    B = te.placeholder((K, Nn), "int8", name="B")
    k = te.reduce_axis((0, K), name="k")
    C = te.compute((M, Nn), lambda i, j: te.sum(A[i, k].astype("int32") * B[k, j].astype("int32"), axis=k),
                   name="C")
    assert C.dtype == "int32"
    s = te.create_schedule(C.op)
    if how == "vector":
        _, ji = s[C].split(C.op.axis[1], factor=8)
        s[C].reorder(C.op.axis[0], s[C].leaf_iter_vars[1], k, ji)
        s[C].vectorize(ji)
    _check(s, [A, B, C], a, b, want=a.astype("int32") @ b.astype("int32"))


@pytest.mark.parametrize("dtype", INTS + ["float16"])
def test_max_and_min_reductions_start_from_the_dtype_identity(dtype):
    """All values at the dtype's max (for te.min) or min (for te.max) still reduce right: the
    identity is the dtype's extreme, not int32's."""
    R, K = 3, 29
    x = (_ints(dtype, R * K) if dtype != "float16" else
         np.random.default_rng(7).standard_normal(R * K).astype(dtype)).reshape(R, K)
    lo, hi = (np.iinfo(dtype).min, np.iinfo(dtype).max) if dtype != "float16" else (-np.inf, np.inf)
    x[1, :] = lo
    x[2, :] = hi
    X = te.placeholder((R, K), dtype, name="X")
    k = te.reduce_axis((0, K), name="k")
    mx = te.compute((R,), lambda i: te.max(X[i, k], axis=k), name="mx")
    k2 = te.reduce_axis((0, K), name="k2")
    mn = te.compute((R,), lambda i: te.min(X[i, k2], axis=k2), name="mn")
    _check(te.create_schedule(mx.op), [X, mx], x, want=x.max(axis=1))
    _check(te.create_schedule(mn.op), [X, mn], x, want=x.min(axis=1))
    assert int(te.max_value(dtype).value if dtype != "float16" else 0) == (0 if dtype == "float16" else hi)


def test_uint8_sum_wraps_and_a_uint32_sum_does_not():
    K = 301
    x = np.full((1, K), 255, "uint8")
    X = te.placeholder((1, K), "uint8", name="X")
    k = te.reduce_axis((0, K), name="k")
    S8 = te.compute((1,), lambda i: te.sum(X[i, k], axis=k), name="S8")
    k2 = te.reduce_axis((0, K), name="k2")
    S32 = te.compute((1,), lambda i: te.sum(X[i, k2].astype("uint32"), axis=k2), name="S32")
    _check(te.create_schedule(S8.op), [X, S8], x, want=x.sum(axis=1, dtype="uint8"))
    _check(te.create_schedule(S32.op), [X, S32], x, want=x.sum(axis=1, dtype="uint32"))


# --------------------------------------------------------------------------- promotion and errors


@pytest.mark.parametrize("a,b,want", [
    ("int8", "int8", "int8"), ("int8", "int32", "int32"), ("uint8", "uint32", "uint32"),
    ("uint8", "int8", "int16"), ("uint16", "int8", "int32"), ("uint32", "int32", "int64"),
    ("uint8", "int64", "int64"), ("int8", "float16", "float16"), ("float16", "float32", "float32"),
    ("bool", "uint8", "uint8"), ("uint64", "float32", "float32"),
])
def test_promotion_follows_numpy_for_two_arrays(a, b, want):
    A, B = te.placeholder((2,), a, name="A"), te.placeholder((2,), b, name="B")
    assert (A[0] + B[0]).dtype == want and (B[0] * A[0]).dtype == want
    if "float" not in want and want != "bool":
        with np.errstate(all="ignore"):
            assert np.result_type(np.dtype(a), np.dtype(b)) == np.dtype(want)


def test_promotion_errors_and_literal_ranges():
    U, S = te.placeholder((2,), "uint64", name="U"), te.placeholder((2,), "int8", name="S")
    with pytest.raises(LoopcError, match="no integer dtype holds both uint64 and int8"):
        U[0] + S[0]
    assert (S[0] + 1).dtype == "int8" and (U[0] * 3).dtype == "uint64" and (2 - S[0]).dtype == "int8"
    with pytest.raises(LoopcError, match="300 is out of range for int8"):
        S[0] + 300
    with pytest.raises(LoopcError, match="out of range for uint64"):
        U[0] - (-1)


def test_bitwise_ops_on_floats_are_clear_errors():
    F = te.placeholder((2,), "float32", name="F")
    for make in (lambda: F[0] & 1, lambda: F[0] << 2, lambda: ~F[0], lambda: te.bitwise_xor(F[0], F[1]),
                 lambda: te.popcount(F[0])):
        with pytest.raises(LoopcError, match="integer"):
            make()


def test_unsupported_dtype_error_lists_the_supported_ones():
    with pytest.raises(LoopcError, match="float16, float32, float64, int8, int16, int32, int64, uint8"):
        te.placeholder((2,), "bfloat16")


def test_a_mismatched_array_dtype_is_an_argument_error():
    A = te.placeholder((5,), "uint8", name="A")
    C = te.compute((5,), lambda i: A[i] + 1, name="C")
    f = loopc.build(te.create_schedule(C.op), [A, C])
    with pytest.raises(ArgumentError, match="dtype int8, expected uint8"):
        f(np.zeros(5, "int8"), np.zeros(5, "uint8"))
    with pytest.raises(ArgumentError, match="expected uint8"):
        f(np.zeros(5, "uint8"), np.zeros(5, "float16"))


def test_printer_shows_dtypes_and_operators():
    A = te.placeholder((4,), "uint8", name="A")
    H = te.placeholder((4,), "float16", name="H")
    i = te.var("i")
    assert str((A[i] << 2) | ~A[i] & 15) == "A[i] << 2u8 | ~A[i] & 15u8"
    assert str(te.popcount(A[i] ^ 3)) == "popcount(A[i] ^ 3u8)"
    assert str(H[i] * 0.5) == "H[i]*0.5f16"
    assert str(A[i].astype("int8") - 1) == "int8(A[i]) - 1i8"
    C = te.compute((4,), lambda j: (A[j] >> 1).astype("float16") + H[j], name="C")
    text = str(loopc.lower(te.create_schedule(C.op), [A, H, C]))
    assert "float16(A[j] >> 1u8) + H[j]" in text


def test_constants_hold_their_dtype_values():
    assert te.const(255, "uint8").value == 255 and te.const(1.0001, "float16").value == 1.0
    with pytest.raises(LoopcError, match="-1 is out of range for uint8"):
        te.const(-1, "uint8")
    assert te.max_value("uint64").value == 2**64 - 1 and te.min_value("int16").value == -2**15
    assert te.min_value("float16").value == -65504.0 and te.max_value("float16").value == 65504.0  # finite, as TVM


# --------------------------------------------------------------------------- CUDA (simulator)


def case_dtypes_in_the_cuda_simulator():
    """Integer ops, shifts, casts and float16 on the CUDA target, one thread per element."""
    from numba import config
    assert config.ENABLE_CUDASIM

    def cuda_run(C, args, *inputs):
        s = te.create_schedule(C.op)
        bx, tx = s[C].split(C.op.axis[0], factor=8)
        s[C].bind(bx, te.thread_axis("blockIdx.x"))
        s[C].bind(tx, te.thread_axis("threadIdx.x"))
        out = np.zeros(N, C.dtype)
        loopc.build(s, args, target="cuda")(*inputs, out)
        return out

    for dtype in INTS:
        a, b = _ints(dtype), _ints(dtype, seed=2)[::-1].copy()
        for op in ("add", "sub", "mul", "floordiv", "floormod", "xor", "not", "max", "lt", "popcount", "abs"):
            fn, ref = INT_OPS[op]
            A, B = te.placeholder((N,), dtype, name="A"), te.placeholder((N,), dtype, name="B")
            C = te.compute((N,), lambda i: fn(A[i], B[i]), name="C")
            with np.errstate(all="ignore"):
                want = ref(a, b).astype(dtype)
            np.testing.assert_array_equal(cuda_run(C, [A, B, C], a, b), want, err_msg=f"{dtype} {op}")
        sh = _shift_counts(dtype)
        A, S = te.placeholder((N,), dtype, name="A"), te.placeholder((N,), dtype, name="S")
        C = te.compute((N,), lambda i: (A[i] << S[i]) ^ (A[i] >> S[i]), name="C")
        np.testing.assert_array_equal(cuda_run(C, [A, S, C], a, sh), np.left_shift(a, sh) ^ np.right_shift(a, sh),
                                      err_msg=f"{dtype} shifts")
        for dst in ("int8", "uint16", "int64", "float32", "float16"):
            C = te.compute((N,), lambda i: A[i].astype(dst), name="C")
            with np.errstate(all="ignore"):
                want = a.astype(dst)
            np.testing.assert_array_equal(cuda_run(C, [A, C], a), want, err_msg=f"{dtype} -> {dst}")
    rng = np.random.default_rng(5)
    h, g = rng.uniform(-20, 20, N).astype("float16"), rng.uniform(0.5, 30, N).astype("float16")
    for op in ("add", "mul_add", "div", "max", "select"):
        fn, ref = FLOAT16_OPS[op]
        A, B = te.placeholder((N,), "float16", name="A"), te.placeholder((N,), "float16", name="B")
        C = te.compute((N,), lambda i: fn(A[i], B[i]), name="C")
        np.testing.assert_array_equal(cuda_run(C, [A, B, C], h, g), ref(h, g).astype("float16"),
                                      err_msg=f"float16 {op}")


def test_dtypes_on_the_cuda_target():
    from test_cuda_sim import run_in_simulator
    proc = run_in_simulator("case_dtypes_in_the_cuda_simulator", module="test_dtypes", timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]


def test_narrow_integer_indices_and_loop_variable_casts():
    """A uint8 tensor indexes another (its value kept, widened to int32); a loop variable cast
    to int8 inside a vector loop wraps like numpy."""
    a = np.arange(N, dtype="float32") * 1.5
    idx = np.random.default_rng(8).integers(0, 255, N, endpoint=True).astype("uint8")
    A, I = te.placeholder((N,), "float32", name="A"), te.placeholder((N,), "uint8", name="I")
    G = te.compute((N,), lambda i: A[I[i] % 37], name="G")
    for how in ("scalar", "vector"):
        _check(_schedule(G, how), [A, I, G], a, idx, want=a[idx % 37])
    b = _ints("int8")
    B = te.placeholder((N,), "int8", name="B")
    C = te.compute((N,), lambda i: (i * 9).astype("int8") * B[i] + (i * 7).astype("uint8").astype("int8"), name="C")
    i = np.arange(N)
    with np.errstate(all="ignore"):
        want = (i * 9).astype("int8") * b + (i * 7).astype("uint8").astype("int8")
    for how in ("scalar", "vector"):
        _check(_schedule(C, how), [B, C], b, want=want)


# --------------------------------------------------------------------------- float16 conversions


def case_float16_conversions(target):
    """Every float16 bit pattern to float32 exactly, and float32 (all halves, near-ties, random
    bit patterns) to float16 rounded to nearest even, as numpy — on ``target``."""
    h = np.arange(65536, dtype="uint16").view("float16")
    H = te.placeholder((h.size,), "float16", name="H")
    F = te.compute((h.size,), lambda i: H[i].astype("float32"), name="F")
    f = np.zeros(h.size, "float32")
    loopc.build(te.create_schedule(F.op), [H, F], target=target)(h, f)
    np.testing.assert_array_equal(f, h.astype("float32"))
    with np.errstate(all="ignore"):
        x = np.concatenate([h.astype("float32"), h.astype("float32") * np.float32(1.00048828125),
                            np.random.default_rng(9).integers(0, 2**32, 65536, dtype="uint64")
                            .astype("uint32").view("float32")])
        want = x.astype("float16")
    X = te.placeholder((x.size,), "float32", name="X")
    Y = te.compute((x.size,), lambda i: X[i].astype("float16"), name="Y")
    s = te.create_schedule(Y.op)
    _, inner = s[Y].split(Y.op.axis[0], factor=8)
    s[Y].vectorize(inner)
    y = np.zeros(x.size, "float16")
    loopc.build(s, [X, Y], target=target)(x, y)
    same = (y.view("uint16") == want.view("uint16")) | (np.isnan(y) & np.isnan(want))
    assert same.all(), f"{(~same).sum()} conversions differ, e.g. {x[~same][:3]} -> {y[~same][:3]}"


@pytest.mark.parametrize("target", ["llvm", "llvm -mcpu=x86-64"], ids=["host", "no-f16c"])
def test_float16_conversions_are_exact_with_and_without_f16c(target):
    """Without F16C LLVM would call compiler-rt (unreachable from JIT-ed code: a crash), so
    loopc converts with integer operations there; run in a subprocess in case that regresses."""
    if target != "llvm" and platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("an x86 CPU name")
    code = f"import test_dtypes as t; t.case_float16_conversions({target!r})"
    tests_dir = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (tests_dir, os.environ.get("PYTHONPATH", "")) if p))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env,
                          cwd=tests_dir)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
