"""Tensor expressions: operators, dtypes, intrinsics, casts and reductions, each checked
numerically through the reference interpreter and LLVM against NumPy."""
from __future__ import annotations

import numpy as np
import pytest

import loopc
from loopc import LoopcError, te
from loopc.te import expr as E

from conftest import assert_subprocess_ok, check, loop_headers, loop_names, lowered_text, run_python

SHAPE = (5, 13)  # 13 lanes: a vectorized split by 8 leaves a tail of 5


def special_array(dtype, rng, shape=SHAPE):
    """Inputs with zeros, negatives and non-integers, so casts and comparisons are exercised."""
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return rng.random(shape) < 0.5
    if dtype.kind == "f":
        x = np.round(rng.uniform(-6, 6, size=shape), 2)
        x.flat[::7] = 0.0
        x.flat[3::11] = -2.5  # a negative half: floor / trunc / int casts differ on it
        return x.astype(dtype)
    x = rng.integers(-20, 21, size=shape)
    x.flat[::6] = 0
    return x.astype(dtype)


def elementwise(fn, dtypes, vectorize=False):
    """``C[i, j] = fn(X0[i, j], X1[i, j], ...)`` with placeholders of ``dtypes``; returns (s, args)."""
    phs = [te.placeholder(SHAPE, dtype=dt, name=f"X{n}") for n, dt in enumerate(dtypes)]
    C = te.compute(SHAPE, lambda i, j: fn(*[p[i, j] for p in phs]), name="C")
    s = te.create_schedule(C.op)
    if vectorize:
        _, ji = s[C].split(C.op.axis[1], factor=8)
        s[C].vectorize(ji)
    return s, phs + [C]


def check_elementwise(fn, np_fn, dtypes, out_dtype=None, vectorize=(False, True), seed=0, **kw):
    rng = np.random.default_rng(seed)
    inputs = [special_array(dt, rng) for dt in dtypes]
    for vec in vectorize:
        s, args = elementwise(fn, dtypes, vectorize=vec)
        if out_dtype is not None:
            assert args[-1].dtype == out_dtype
        check(s, args, np_fn, inputs=inputs, **kw)


# --------------------------------------------------------------------------- arithmetic

F, D, I, L, B = "float32", "float64", "int32", "int64", "bool"


@pytest.mark.parametrize("dtype", [F, D, I, L])
@pytest.mark.parametrize("op", ["+", "-", "*"])
def test_binary_arithmetic(op, dtype):
    fn = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}[op]
    check_elementwise(fn, fn, [dtype, dtype], out_dtype=dtype)


@pytest.mark.parametrize("dtype", [F, D])
def test_true_division_of_floats(dtype):
    check_elementwise(lambda a, b: a / (te.abs(b) + 1), lambda a, b: a / (np.abs(b) + 1), [dtype, dtype],
                      out_dtype=dtype)


@pytest.mark.parametrize("dtype", [I, L])
def test_floor_division_and_modulo_follow_python_signs(dtype):
    # divisors of both signs, never zero; numpy's // and % floor like Python
    def divisor(b):
        return te.if_then_else(b == 0, 7, b)

    def np_divisor(b):
        return np.where(b == 0, 7, b).astype(b.dtype)
    check_elementwise(lambda a, b: a // divisor(b), lambda a, b: a // np_divisor(b), [dtype, dtype], out_dtype=dtype)
    check_elementwise(lambda a, b: a % divisor(b), lambda a, b: a % np_divisor(b), [dtype, dtype], out_dtype=dtype)
    check_elementwise(lambda a: a // -3 + a % -4, lambda a: a // -3 + a % -4, [dtype])


@pytest.mark.parametrize("dtype", [F, D, I, L])
def test_unary_minus(dtype):
    check_elementwise(lambda a: -a, lambda a: -a, [dtype], out_dtype=dtype)


def test_true_division_of_two_ints_raises():
    A = te.placeholder(SHAPE, dtype=I, name="A")
    with pytest.raises(LoopcError, match="//"):
        te.compute(SHAPE, lambda i, j: A[i, j] / A[i, j], name="C")
    with pytest.raises(LoopcError, match="//"):
        te.compute(SHAPE, lambda i, j: i / 2, name="C")
    with pytest.raises(LoopcError):
        te.compute(SHAPE, lambda i, j: 7 / A[i, j], name="C")
    # casting one side makes it a float division
    check_elementwise(lambda a: a.astype(F) / 4, lambda a: a.astype(np.float32) / 4, [I], out_dtype=F)


def test_modulo_of_floats_raises():
    A = te.placeholder(SHAPE, name="A")
    with pytest.raises(LoopcError, match="%"):
        te.compute(SHAPE, lambda i, j: A[i, j] % 2, name="C")


def test_floor_division_of_floats():
    """``a // b`` on floats must either be refused when declared or agree with np.floor_divide."""
    A = te.placeholder(SHAPE, name="A")
    try:
        te.compute(SHAPE, lambda i, j: A[i, j] // 2.5, name="C")
    except LoopcError:
        return
    check_elementwise(lambda a: a // 2.5, lambda a: np.floor_divide(a, np.float32(2.5)), [F], vectorize=(False,))


def test_unary_minus_of_bool_is_refused_or_integer():
    A = te.placeholder(SHAPE, dtype=B, name="A")
    try:
        C = te.compute(SHAPE, lambda i, j: -A[i, j], name="C")
    except LoopcError:
        return
    assert C.dtype == I
    check_elementwise(lambda a: -a, lambda a: -a.astype(np.int32), [B], vectorize=(False,))


# --------------------------------------------------------------------------- comparisons, logic


@pytest.mark.parametrize("dtype", [F, I, L])
@pytest.mark.parametrize("op", ["<", "<=", ">", ">=", "==", "!="])
def test_comparisons(op, dtype):
    fn = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b,
          ">=": lambda a, b: a >= b, "==": lambda a, b: a == b, "!=": lambda a, b: a != b}[op]
    # b is a rounded copy of a here and there, so == and != see both outcomes
    rng = np.random.default_rng(1)
    a = special_array(dtype, rng)
    b = special_array(dtype, rng)
    b.flat[::3] = a.flat[::3]
    for vec in (False, True):
        s, args = elementwise(fn, [dtype, dtype], vectorize=vec)
        assert args[-1].dtype == B
        check(s, args, fn, inputs=[a, b])


def test_comparison_with_python_number():
    check_elementwise(lambda a: (a > 1) & (2.5 >= a), lambda a: (a > 1) & (2.5 >= a), [F], out_dtype=B)
    check_elementwise(lambda a: (3 < a) | (a == 0), lambda a: (3 < a) | (a == 0), [I], out_dtype=B)


def test_logical_and_or_not():
    check_elementwise(lambda a, b: (a & b) | ~a, lambda a, b: (a & b) | ~a, [B, B], out_dtype=B)


def test_logical_operators_need_bools():
    A = te.placeholder(SHAPE, name="A")
    with pytest.raises(LoopcError, match="boolean"):
        te.compute(SHAPE, lambda i, j: A[i, j] & (A[i, j] > 0), name="C")


def test_expression_has_no_python_truth_value():
    A = te.placeholder(SHAPE, name="A")
    with pytest.raises(LoopcError, match="if_then_else"):
        te.compute(SHAPE, lambda i, j: A[i, j] if A[i, j] > 0 else 0.0, name="C")


def test_all_and_any():
    check_elementwise(lambda a, b: te.all(a > 0, b > 0, a > b), lambda a, b: (a > 0) & (b > 0) & (a > b), [F, F],
                      out_dtype=B)
    check_elementwise(lambda a, b: te.any(a > 4, b < -4, a == b), lambda a, b: (a > 4) | (b < -4) | (a == b),
                      [I, I], out_dtype=B)
    check_elementwise(lambda a: te.all([a > -3, a < 3]), lambda a: (a > -3) & (a < 3), [F])
    assert te.all().value is True and te.any().value is False
    check_elementwise(lambda a: te.any(a > 5), lambda a: a > 5, [F])


def test_if_then_else():
    check_elementwise(lambda a, b: te.if_then_else(a > b, a - b, b * 2), lambda a, b: np.where(a > b, a - b, b * 2),
                      [F, F], out_dtype=F)
    # a Python number on one side takes the other side's dtype
    check_elementwise(lambda a: te.if_then_else(a > 0, a, 0), lambda a: np.where(a > 0, a, 0), [D], out_dtype=D)
    # the division is only evaluated where the divisor is not zero (scalar code; the vectorized
    # form is test_vectorized_guarded_integer_division_does_not_trap)
    check_elementwise(lambda a: te.if_then_else(a != 0, 100 // a, -1),
                      lambda a: np.where(a != 0, 100 // np.where(a == 0, 1, a), -1), [I], out_dtype=I,
                      vectorize=(False,))


def test_if_then_else_guards_out_of_bounds_reads():
    """The side not taken is not evaluated: a shifted read guarded at the edge."""
    n = 37
    A = te.placeholder((n,), name="A")
    C = te.compute((n,), lambda i: te.if_then_else(i < n - 1, A[i + 1], -1.0) +
                   te.if_then_else(i > 0, A[i - 1], -2.0), name="C")
    s = te.create_schedule(C.op)
    _, xi = s[C].split(C.op.axis[0], factor=16)
    s[C].vectorize(xi)

    def ref(a):
        return np.concatenate([a[1:], [-1.0]]) + np.concatenate([[-2.0], a[:-1]])
    check(s, [A, C], ref)


INT_DIV_CHILD = """
import numpy as np, loopc
from loopc import te
A = te.placeholder((5, 13), dtype="int32", name="A")
C = te.compute((5, 13), lambda i, j: {body}, name="C")
s = te.create_schedule(C.op)
jo, ji = s[C].split(C.op.axis[1], factor=8)   # 13 = 8 + a tail of 5 masked lanes
s[C].vectorize(ji)
f = loopc.build(s, [A, C])
a = np.arange(-32, 33, dtype=np.int32)[:65].reshape(5, 13)
a = {fix_a}
c = np.zeros((5, 13), dtype=np.int32)
f(a, c)
want = {ref}
assert (c == want).all(), (c, want)
print("OK")
"""


def test_vectorized_integer_division_with_tail_does_not_trap():
    code = INT_DIV_CHILD.format(body="100 // A[i, j]", fix_a="np.where(a == 0, 3, a).astype(np.int32)",
                                ref="100 // a")
    assert_subprocess_ok(run_python(code), "OK")


def test_vectorized_guarded_integer_division_does_not_trap():
    code = INT_DIV_CHILD.format(body="te.if_then_else(A[i, j] != 0, 100 // A[i, j], -1)", fix_a="a",
                                ref="np.where(a != 0, 100 // np.where(a == 0, 1, a), -1)")
    assert_subprocess_ok(run_python(code), "OK")


def test_if_then_else_needs_a_boolean_condition():
    A = te.placeholder(SHAPE, name="A")
    with pytest.raises(LoopcError, match="boolean"):
        te.compute(SHAPE, lambda i, j: te.if_then_else(A[i, j], 1.0, 0.0), name="C")


# --------------------------------------------------------------------------- dtypes


def test_python_number_coercion_keeps_the_tensor_dtype():
    A = te.placeholder(SHAPE, dtype=F, name="A")
    Dd = te.placeholder(SHAPE, dtype=D, name="D")
    Ii = te.placeholder(SHAPE, dtype=I, name="I")
    assert (A[0, 0] + 1).dtype == F
    assert (2 * A[0, 0]).dtype == F
    assert (Dd[0, 0] * 2.5).dtype == D
    assert (1 - Dd[0, 0]).dtype == D
    assert (Ii[0, 0] + 3).dtype == I
    assert (Ii[0, 0] * 2.5).dtype == F        # a Python float makes an int float32 (not float64)
    assert (Ii[0, 0] + 2**40).dtype == L      # an int too big for int32 promotes to int64
    assert (A[0, 0] + Dd[0, 0]).dtype == D
    assert (Ii[0, 0] + A[0, 0]).dtype == F
    assert (Ii[0, 0] + Ii[0, 0].astype(L)).dtype == L


def test_dtype_promotion_numbers():
    check_elementwise(lambda a, b: a + b, lambda a, b: a.astype(np.float64) + b, [F, D], out_dtype=D)
    check_elementwise(lambda a, b: a * b, lambda a, b: a.astype(np.int64) * b, [I, L], out_dtype=L)
    check_elementwise(lambda a, b: a - b, lambda a, b: a.astype(np.float32) - b, [I, F], out_dtype=F)
    check_elementwise(lambda a: a * 2.5 + 1, lambda a: a.astype(np.float32) * np.float32(2.5) + 1, [I], out_dtype=F)
    check_elementwise(lambda a: 3 - a * 2, lambda a: 3 - a * 2, [D], out_dtype=D)
    check_elementwise(lambda a: a + 2**40, lambda a: a.astype(np.int64) + 2**40, [I], out_dtype=L)


def test_bool_arithmetic_promotes_to_int32():
    check_elementwise(lambda a, b: a + b, lambda a, b: a.astype(np.int32) + b.astype(np.int32), [B, B], out_dtype=I)


def test_const():
    assert te.const(3).dtype == I
    assert te.const(3, "int64").dtype == L
    assert te.const(2.5).dtype == F
    assert te.const(2.5, "float64").dtype == D
    assert te.const(True).dtype == B
    check_elementwise(lambda a: a * te.const(3, "float64"), lambda a: a.astype(np.float64) * 3, [F], out_dtype=D)


def test_unsupported_dtype_raises():
    with pytest.raises(LoopcError, match="bfloat16.*supports float16"):
        te.placeholder((3,), dtype="bfloat16", name="A")


CAST_INPUTS = [F, D, I, L, B]


@pytest.mark.parametrize("dst", [F, D, I, L, B])
@pytest.mark.parametrize("src", CAST_INPUTS)
def test_astype(src, dst):
    check_elementwise(lambda a: a.astype(dst), lambda a: a.astype(dst), [src], out_dtype=dst, seed=2)


def test_astype_to_same_dtype_is_identity():
    A = te.placeholder(SHAPE, name="A")
    e = A[0, 0]
    assert e.astype(F) is e


# --------------------------------------------------------------------------- intrinsics

MATH = [
    ("exp", te.exp, np.exp, lambda x: x),
    ("log", te.log, np.log, lambda x: np.abs(x) + 0.5),
    ("sqrt", te.sqrt, np.sqrt, np.abs),
    ("tanh", te.tanh, np.tanh, lambda x: x),
    ("sigmoid", te.sigmoid, lambda x: 1 / (1 + np.exp(-x)), lambda x: x),
    ("abs", te.abs, np.abs, lambda x: x),
    ("floor", te.floor, np.floor, lambda x: x),
]


@pytest.mark.parametrize("dtype", [F, D])
@pytest.mark.parametrize("name,te_fn,np_fn,domain", MATH, ids=[m[0] for m in MATH])
def test_math_intrinsics(name, te_fn, np_fn, domain, dtype):
    rng = np.random.default_rng(3)
    x = domain(special_array(dtype, rng)).astype(dtype)
    for vec in (False, True):
        s, args = elementwise(te_fn, [dtype], vectorize=vec)
        assert args[-1].dtype == dtype
        check(s, args, lambda a: np_fn(a.astype(np.float64)).astype(dtype), inputs=[x], rtol=2e-6 if dtype == D else 1e-5)


@pytest.mark.parametrize("dtype", [I, L])
def test_abs_of_integers_stays_integer(dtype):
    check_elementwise(te.abs, np.abs, [dtype], out_dtype=dtype)


@pytest.mark.parametrize("name,te_fn,np_fn,domain", [m for m in MATH if m[0] != "abs"],
                         ids=[m[0] for m in MATH if m[0] != "abs"])
def test_math_intrinsics_of_integers_compute_in_float32(name, te_fn, np_fn, domain):
    rng = np.random.default_rng(4)
    x = (domain(special_array(I, rng)) + 1).astype(np.int32)
    s, args = elementwise(te_fn, [I])
    assert args[-1].dtype == F
    check(s, args, lambda a: np_fn(a.astype(np.float64)).astype(np.float32), inputs=[x], rtol=1e-5)


# --------------------------------------------------------------------------- max / min


def test_max_min_of_two_operands_are_elementwise():
    A = te.placeholder(SHAPE, name="A")
    assert isinstance(as_body(te.compute(SHAPE, lambda i, j: te.max(A[i, j], 0.0), name="C")), E.Max)
    assert isinstance(as_body(te.compute(SHAPE, lambda i, j: te.min(A[i, j], A[i, 0]), name="C")), E.Min)
    check_elementwise(lambda a, b: te.max(a, b), np.maximum, [F, F], out_dtype=F)
    check_elementwise(lambda a, b: te.min(a, b), np.minimum, [I, I], out_dtype=I)
    check_elementwise(lambda a: te.max(a, 1.5), lambda a: np.maximum(a, np.float32(1.5)), [F])
    check_elementwise(lambda a: te.min(a, 3), lambda a: np.minimum(a, 3), [L], out_dtype=L)
    # mixed dtypes promote
    check_elementwise(lambda a, b: te.max(a, b), lambda a, b: np.maximum(a.astype(np.float32), b), [I, F],
                      out_dtype=F)


def as_body(t):
    return t.op.body


def _row_reduce(reducer, dtype, positional=False):
    A = te.placeholder((7, 29), dtype=dtype, name="A")
    k = te.reduce_axis((0, 29), name="k")
    if positional:
        C = te.compute((7,), lambda i: reducer(A[i, k], k), name="C")
    else:
        C = te.compute((7,), lambda i: reducer(A[i, k], axis=k), name="C")
    return te.create_schedule(C.op), [A, C], k


@pytest.mark.parametrize("positional", [False, True])
def test_max_with_reduce_axis_is_a_reduction(positional):
    s, args, k = _row_reduce(te.max, F, positional)
    body = as_body(args[-1])
    assert isinstance(body, E.Reduce) and body.combiner == "max" and body.axes == (k,)
    check(s, args, lambda a: a.max(axis=1))


@pytest.mark.parametrize("dtype", [I, L])
@pytest.mark.parametrize("reducer,np_fn", [(te.max, np.max), (te.min, np.min), (te.sum, np.sum)],
                         ids=["max", "min", "sum"])
def test_integer_reductions(reducer, np_fn, dtype):
    s, args, _ = _row_reduce(reducer, dtype)
    check(s, args, lambda a: np_fn(a, axis=1))


@pytest.mark.parametrize("dtype", [F, D])
@pytest.mark.parametrize("reducer,np_fn", [(te.max, np.max), (te.min, np.min)], ids=["max", "min"])
def test_float_max_min_reductions(reducer, np_fn, dtype):
    """The identity is -inf / +inf: both the interpreter and LLVM must start from it."""
    s, args, _ = _row_reduce(reducer, dtype)
    check(s, args, lambda a: np_fn(a, axis=1))
    # all-negative rows for max (all-positive for min): a wrong 0 identity would show
    rng = np.random.default_rng(9)
    x = (rng.uniform(1, 5, size=(7, 29)) * (-1 if reducer is te.max else 1)).astype(dtype)
    check(s, args, lambda a: np_fn(a, axis=1), inputs=[x])


def test_sum_over_two_axes_and_where():
    A = te.placeholder((7, 5, 3), name="A")
    r1 = te.reduce_axis((0, 5), name="r1")
    r2 = te.reduce_axis((0, 3), name="r2")
    C = te.compute((7,), lambda i: te.sum(A[i, r1, r2], axis=[r1, r2], where=A[i, r1, r2] > 0), name="C")
    s = te.create_schedule(C.op)
    check(s, [A, C], lambda a: np.where(a > 0, a, 0).sum(axis=(1, 2)))


def test_sum_of_float64_accumulates_in_float64():
    s, args, _ = _row_reduce(te.sum, D)
    check(s, args, lambda a: a.sum(axis=1), rtol=1e-12, atol=1e-12)


def test_reduction_needs_a_reduce_axis():
    A = te.placeholder((7, 29), name="A")
    with pytest.raises(LoopcError, match="axis"):
        te.sum(A[0, 0])
    with pytest.raises(LoopcError, match="axis"):
        te.max(A[0, 0])
    with pytest.raises(LoopcError, match="reduce_axis"):
        te.compute((7,), lambda i: te.sum(A[i, 0], axis=i), name="C")


def test_nested_reduction_raises():
    A = te.placeholder((7, 29), name="A")
    k = te.reduce_axis((0, 29), name="k")
    with pytest.raises(LoopcError, match="whole body"):
        te.compute((7,), lambda i: te.sum(A[i, k], axis=k) + 1.0, name="C")
    with pytest.raises(LoopcError, match="whole body"):
        te.compute((7,), lambda i: te.exp(te.max(A[i, k], axis=k)), name="C")
    j = te.reduce_axis((0, 7), name="j")
    with pytest.raises(LoopcError, match="whole body"):
        te.compute((1,), lambda i: te.sum(te.sum(A[j, k], axis=k), axis=j), name="C")


# --------------------------------------------------------------------------- names, indexing


def test_lambda_parameter_names_become_loop_names():
    A = te.placeholder((7, 29), name="A")
    kk = te.reduce_axis((0, 29), name="kk")
    S = te.compute((7,), lambda row: te.sum(A[row, kk], axis=kk), name="S")
    C = te.compute((7, 29), lambda row, col: A[row, col] / S[row], name="C")
    s = te.create_schedule(C.op)
    s[C].split(C.op.axis[1], factor=8)
    text = lowered_text(s, [A, C])
    assert loop_names(text) == ["row", "kk", "col.outer", "col.inner"], text
    assert [name for name, _, _, _ in loop_headers(text)][:3] == ["row", "kk", "row"], text
    assert [iv.name for iv in C.op.axis] == ["row", "col"]
    assert "S = allocate(float32[7]" in text


def test_star_args_lambda_gets_default_names():
    A = te.placeholder((3, 5), name="A")
    C = te.compute((3, 5), lambda *idx: A[idx] * 2.0, name="C")
    assert [iv.name for iv in C.op.axis] == ["i0", "i1"]
    check(te.create_schedule(C.op), [A, C], lambda a: a * 2)


def test_lambda_arity_must_match_shape():
    A = te.placeholder((3, 5), name="A")
    with pytest.raises(LoopcError, match="2 dimensions"):
        te.compute((3, 5), lambda i: A[i, 0], name="C")


def test_indexing_errors():
    A = te.placeholder((3, 5), name="A")
    with pytest.raises(LoopcError, match="2 dimensions"):
        te.compute((3,), lambda i: A[i], name="C")
    with pytest.raises(LoopcError, match="integer"):
        te.compute((3,), lambda i: A[i, 0.5], name="C")
    with pytest.raises(LoopcError, match="positive"):
        te.placeholder((3, 0), name="B")


def test_index_arithmetic_transpose_and_reverse():
    A = te.placeholder((7, 13), name="A")
    C = te.compute((13, 7), lambda i, j: A[6 - j, (i * 5 + 3) % 13], name="C")
    s = te.create_schedule(C.op)
    check(s, [A, C], lambda a: a[::-1, :][:, (np.arange(13) * 5 + 3) % 13].T)


def test_tensor_attributes():
    A = te.placeholder((3, 5), dtype="float64", name="A")
    k = te.reduce_axis((0, 5), name="k")
    C = te.compute((3,), lambda i: te.sum(A[i, k], axis=k), name="C")
    assert (A.shape, A.dtype, A.name) == ((3, 5), "float64", "A")
    assert (C.shape, C.dtype, C.name) == ((3,), "float64", "C")
    assert C.op.input_tensors == (A,)
    assert C.op.reduce_axis == (k,)
    assert [iv.extent for iv in C.op.axis] == [3]
    assert k.extent == 5


def test_loopc_lower_prints_each_pass_with_dump(capsys, monkeypatch):
    A = te.placeholder((7,), name="A")
    C = te.compute((7,), lambda i: A[i] + 1.0, name="C")
    s = te.create_schedule(C.op)
    loopc.lower(s, [A, C], dump=True)
    err = capsys.readouterr().err
    for stage in ("schedule_to_loops", "flatten_buffers", "simplify", "unroll_loops"):
        assert f"after {stage}" in err
    monkeypatch.setenv("LOOPC_DUMP_IR", "1")
    loopc.lower(s, [A, C])
    assert "after flatten_buffers" in capsys.readouterr().err
    monkeypatch.setenv("LOOPC_DUMP_IR", "0")
    loopc.lower(s, [A, C])
    assert capsys.readouterr().err == ""


# --------------------------------------------------------------------------- edge values


def _vector_case(fn, dtype, x):
    X = te.placeholder(x.shape, dtype=dtype, name="X")
    C = te.compute(x.shape, lambda i: fn(X[i]), name="C")
    return te.create_schedule(C.op), [X, C]


BIG_INT64 = np.array([2**40 + 5, -(2**35) - 7, 3, 2**31, -(2**31) - 1], dtype=np.int64)


def test_cast_int64_to_int32_wraps_like_numpy_llvm():
    s, args = _vector_case(lambda a: a.astype(I), L, BIG_INT64)
    check(s, args, lambda a: a.astype(np.int32), inputs=[BIG_INT64], interp=False)


def test_cast_int64_to_int32_wraps_like_numpy_interp():
    s, args = _vector_case(lambda a: a.astype(I), L, BIG_INT64)
    check(s, args, lambda a: a.astype(np.int32), inputs=[BIG_INT64], llvm=False)


@pytest.mark.parametrize("order", ["x_first", "const_first"])
def test_max_min_propagate_nan(order):
    x = np.array([np.nan, 1.0, -2.0, np.nan], dtype=np.float32)
    for te_fn, np_fn in ((te.max, np.maximum), (te.min, np.minimum)):
        fn = (lambda a: te_fn(a, 0.0)) if order == "x_first" else (lambda a: te_fn(0.0, a))
        s, args = _vector_case(fn, F, x)
        check(s, args, lambda a: np_fn(a, np.float32(0)), inputs=[x])


@pytest.mark.parametrize("name", ["range", "_f32"])
def test_interp_tensor_names_do_not_shadow_builtins(name):
    X = te.placeholder((5,), name=name)
    Y = te.compute((5,), lambda i: X[i] + 1.0, name="Y")
    check(te.create_schedule(Y.op), [X, Y], lambda x: x + 1, llvm=False)
