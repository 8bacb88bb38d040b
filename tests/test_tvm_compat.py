"""TVM spellings loopc accepts (issue 16, item 9): ``T(i, j)`` and ``T[i][j]``, thread_axis with
the range first, ``str(expr)`` as an expression, and stages sharing TVM's default name
"compute" that traces still name one by one."""
import numpy as np
import pytest

import loopc
import loopc.interp
from loopc import te
from loopc.errors import LoopcError


def run(s, args, *arrays):
    f = loopc.build(s, args)
    out = np.zeros([int(d) for d in args[-1].shape], args[-1].dtype)
    f(*arrays, out)
    return out


@pytest.mark.parametrize("spelling", ["call", "chain", "tuple"])
def test_index_spellings_compute_the_same(spelling):
    rng = np.random.default_rng(0)
    M, N, K = 7, 5, 3
    A = te.placeholder((M, K), name="A")
    B = te.placeholder((K, N), name="B")
    k = te.reduce_axis((0, K), name="k")
    read = {"call": lambda T, i, j: T(i, j), "chain": lambda T, i, j: T[i][j], "tuple": lambda T, i, j: T[i, j]}
    r = read[spelling]
    C = te.compute((M, N), lambda i, j: te.sum(r(A, i, k) * r(B, k, j), axis=k), name="C")
    a, b = rng.standard_normal((M, K)).astype("float32"), rng.standard_normal((K, N)).astype("float32")
    np.testing.assert_allclose(run(te.create_schedule(C.op), [A, B, C], a, b), a @ b, rtol=1e-5, atol=1e-6)


def test_a_partial_index_used_as_a_value_is_a_clear_error():
    A = te.placeholder((4, 5), name="A")
    with pytest.raises(LoopcError, match="A has 2 dimensions"):
        te.compute((4,), lambda i: A[i] * 2.0)
    with pytest.raises(LoopcError, match="indexed with 3"):
        A[1, 2, 3]


def test_str_of_an_expression_prints_it():
    A = te.placeholder((4, 5), name="A")
    i, j = te.var("i"), te.var("j")
    text = str(A[i, j] * 2.0 + A[i][0])
    assert "object at" not in text and "A[i, j]" in text and "A[i, 0]" in text


def test_thread_axis_takes_tvm_argument_order():
    tx = te.thread_axis((0, 32), "threadIdx.x")
    assert tx.thread_tag == "threadIdx.x" and tx.extent == 32
    assert te.thread_axis("blockIdx.x").thread_tag == "blockIdx.x"
    with pytest.raises(LoopcError, match="unknown thread tag"):
        te.thread_axis((0, 32), "threadIdx.w")


def test_stages_sharing_the_default_name_replay_from_a_trace():
    """Three stages all named "compute" (TVM's default): every one is scheduled, the trace replays
    on a fresh schedule of the same program to the same loops, and the numbers are numpy's."""
    rng = np.random.default_rng(1)
    A = te.placeholder((13, 7), name="A")
    B = te.compute((13, 7), lambda i, j: A[i, j] * 2.0)
    C = te.compute((13, 7), lambda i, j: B[i, j] + 1.0)
    D = te.compute((13, 7), lambda i, j: C[i, j] * C[i, j])
    s = te.create_schedule(D.op)
    names = [st.name for st in s.stages]
    assert len(set(names)) == 3 and all(n.startswith("compute") for n in names)
    s[B].split(B.op.axis[1], factor=3)
    s.cache_read(C, "global", [s[D]])
    s[D].split(D.op.axis[0], factor=4)
    s2 = te.create_schedule(D.op)
    s2.replay(s.trace_json())
    assert str(loopc.lower(s2, [A, D])) == str(loopc.lower(s, [A, D]))
    a = rng.standard_normal((13, 7)).astype("float32")
    np.testing.assert_allclose(run(s2, [A, D], a), (a * 2 + 1) ** 2, rtol=1e-5)


# --------------------------------------------------------------------------- math intrinsics (item 7)

def _operands(n=37, seed=2):
    rng = np.random.default_rng(seed)
    a = (rng.standard_normal(n) * 3).astype("float32")
    a[:6] = [0.5, 1.5, -2.5, 2.5, -0.5, 0.0]          # halves: round is half-to-even, as numpy
    b = (rng.random(n) * 2 + 0.5).astype("float32")   # positive: logs, powers, divisors
    return a, b


INTRINSICS = {
    "exp2": (lambda A, B, i: te.exp2(A[i]), lambda a, b: np.exp2(a)),
    "log2": (lambda A, B, i: te.log2(B[i]), lambda a, b: np.log2(b)),
    "log10": (lambda A, B, i: te.log10(B[i]), lambda a, b: np.log10(b)),
    "ceil": (lambda A, B, i: te.ceil(A[i]), lambda a, b: np.ceil(a)),
    "trunc": (lambda A, B, i: te.trunc(A[i]), lambda a, b: np.trunc(a)),
    "round": (lambda A, B, i: te.round(A[i]), lambda a, b: np.rint(a)),
    "power": (lambda A, B, i: te.power(B[i], A[i]), lambda a, b: np.power(b, a)),
    "fmod": (lambda A, B, i: te.fmod(A[i], B[i]), lambda a, b: np.fmod(a, b)),
    "erf": (lambda A, B, i: te.erf(A[i] * 0.5), None),
}


def _intrinsic_program(name, n):
    A = te.placeholder((n,), name="A")
    B = te.placeholder((n,), name="B")
    fn = INTRINSICS[name][0]
    # both inputs read, whatever the intrinsic takes
    C = te.compute((n,), lambda i: fn(A, B, i) + (A[i] - A[i]) * B[i], name="C")
    return A, B, C


def _intrinsic_reference(name, a, b):
    if name == "erf":
        import math
        return np.array([math.erf(v * 0.5) for v in a], "float32")
    return INTRINSICS[name][1](a, b)


@pytest.mark.parametrize("vectorize", [False, True], ids=["scalar", "vector"])
@pytest.mark.parametrize("name", sorted(INTRINSICS))
def test_math_intrinsics_against_numpy(name, vectorize):
    """LLVM (a scalar loop, and 8-lane vectors with a tail) and the reference interpreter."""
    a, b = _operands()
    A, B, C = _intrinsic_program(name, len(a))
    s = te.create_schedule(C.op)
    if vectorize:
        _, inner = s[C].split(C.op.axis[0], factor=8)
        s[C].vectorize(inner)
    want = _intrinsic_reference(name, a, b)
    np.testing.assert_allclose(run(s, [A, B, C], a, b), want, rtol=2e-6, atol=3e-7)
    got = np.zeros(len(a), "float32")
    loopc.interp.run(loopc.lower(s, [A, B, C]), a, b, got)
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=3e-7)


def test_isnan_isinf():
    x = np.array([0.0, np.nan, np.inf, -np.inf, 1.5, -2.0, np.nan], "float32")
    X = te.placeholder((7,), name="X")
    Y = te.compute((7,), lambda i: te.if_then_else(te.isnan(X[i]), 1.0, 0.0)
                   + te.if_then_else(te.isinf(X[i]), 2.0, 0.0), name="Y")
    want = np.isnan(x) * 1.0 + np.isinf(x) * 2.0
    np.testing.assert_array_equal(run(te.create_schedule(Y.op), [X, Y], x), want)


def test_integer_operands_of_power_become_float():
    P = te.placeholder((5,), "int32", name="P")
    Y = te.compute((5,), lambda i: te.power(P[i], 2), name="Y")
    assert Y.dtype == "float32"
    p = np.arange(5, dtype="int32") - 2
    np.testing.assert_allclose(run(te.create_schedule(Y.op), [P, Y], p), p.astype("float32") ** 2)


def case_intrinsics_in_the_cuda_simulator():
    """Each intrinsic on the CUDA target (numba's simulator), one thread per element."""
    from numba import config
    assert config.ENABLE_CUDASIM
    a, b = _operands(n=19)
    for name in sorted(INTRINSICS):
        A, B, C = _intrinsic_program(name, len(a))
        s = te.create_schedule(C.op)
        bx, tx = s[C].split(C.op.axis[0], factor=8)
        s[C].bind(bx, te.thread_axis("blockIdx.x"))
        s[C].bind(tx, te.thread_axis((0, 8), "threadIdx.x"))
        f = loopc.build(s, [A, B, C], target="cuda")
        out = np.full(len(a), np.nan, "float32")
        f(a, b, out)
        np.testing.assert_allclose(out, _intrinsic_reference(name, a, b), rtol=1e-5, atol=1e-6, err_msg=name)


def test_intrinsics_on_the_cuda_target():
    from test_cuda_sim import run_in_simulator
    proc = run_in_simulator("case_intrinsics_in_the_cuda_simulator", module="test_tvm_compat", timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]


# --------------------------------------------------------------------------- schedule primitives (item 4)

def _chain(n=13, m=7):
    A = te.placeholder((n, m), name="A")
    B = te.compute((n, m), lambda i, j: A[i, j] * 2.0, name="B")
    T = te.compute((m, n), lambda j, i: B[i, j] + 1.0, name="T")          # a transposing read
    C = te.compute((n, m), lambda i, j: T[j, i] * B[i, j], name="C")
    return A, B, T, C


def test_auto_inline_elementwise_and_injective():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((13, 7)).astype("float32")
    want = ((a * 2 + 1) * (a * 2))
    A, B, T, C = _chain()
    s = te.create_schedule(C.op)
    te.schedule.AutoInlineElemWise(s)
    from loopc.schedule import AttachKind
    assert s[B].attach is AttachKind.INLINE and s[T].attach is AttachKind.ROOT   # T transposes: not elementwise
    np.testing.assert_allclose(run(s, [A, C], a), want, rtol=1e-6)
    s = te.create_schedule(C.op)
    te.schedule.AutoInlineInjective(s)
    assert s[B].attach is AttachKind.INLINE and s[T].attach is AttachKind.INLINE
    assert "allocate" not in str(loopc.lower(s, [A, C]))
    np.testing.assert_allclose(run(s, [A, C], a), want, rtol=1e-6)


def test_pragma_applies_primitives_and_ignores_other_hints():
    rng = np.random.default_rng(4)
    a = rng.standard_normal((13, 7)).astype("float32")
    A = te.placeholder((13, 7), name="A")
    C = te.compute((13, 7), lambda i, j: A[i, j] * 3.0, name="C")
    s = te.create_schedule(C.op)
    jo, ji = s[C].split(C.op.axis[1], factor=4)
    s[C].pragma(C.op.axis[0], "parallel_launch_point")
    s[C].pragma(ji, "unroll")
    with pytest.warns(UserWarning, match="auto_unroll_max_step"):
        s[C].pragma(jo, "auto_unroll_max_step", 16)
    text = str(loopc.lower(s, [A, C]))
    assert "for i in parallel(13)" in text and "for j.inner" not in text      # j.inner unrolled away
    np.testing.assert_allclose(run(s, [A, C], a), a * 3, rtol=1e-6)
    s2 = te.create_schedule(C.op)
    s2.replay(s.trace_json())
    assert str(loopc.lower(s2, [A, C])) == text
    with pytest.raises(LoopcError, match="pragma"):
        s[C].pragma(jo, 42)


def test_set_scope_is_checked_and_replayed():
    A, B, T, C = _chain()
    s = te.create_schedule(C.op)
    s[B].set_scope("local")
    assert 'scope="local"' in str(loopc.lower(s, [A, C]))
    s2 = te.create_schedule(C.op)
    s2.replay(s.trace_json())
    assert s2[B].scope == "local"
    with pytest.raises(LoopcError, match="unknown scope"):
        s[B].set_scope("texture")
    with pytest.raises(LoopcError, match="output"):
        s[C].set_scope("shared")
