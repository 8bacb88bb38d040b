"""Issue 16, items 2, 3 and 6: user reducers (``te.comm_reducer``, one value and several, such as
TVM's argmax), ``init=``, multi-output ``te.compute``, and reduce axes whose bounds read the
compute's axes. Every case runs on the LLVM target and in the reference interpreter against
numpy, on sizes no tile divides, under schedules that split, reorder, parallelise, vectorise,
cache and rfactor; the GPU cases run in numba's CUDA simulator in a subprocess."""
import numpy as np
import pytest

import loopc
import loopc.interp
from loopc import te
from loopc.errors import LoopcError, LoweringError, ScheduleError
from test_primitives_tvm import replayed


def run_both(s, args, inputs):
    """Run the schedule on the LLVM target and in the interpreter (the args after ``inputs`` are
    the outputs); both results, lists of arrays."""
    results = []
    for runner in ("llvm", "interp"):
        outs = [np.full(t.shape, 7, t.dtype) for t in args[len(inputs):]]       # garbage, not zeros
        if runner == "llvm":
            loopc.build(s, args)(*inputs, *outs)
        else:
            loopc.interp.run(loopc.lower(s, args), *inputs, *outs)
        results.append(outs)
    return results


def assert_both(s, args, inputs, expected, rtol=1e-5, atol=1e-6):
    expected = expected if isinstance(expected, (list, tuple)) else [expected]
    for runner, outs in zip(("llvm", "interp"), run_both(s, args, inputs)):
        for got, want in zip(outs, expected):
            np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=runner)


def argmax_reducer(strict=False):
    """TVM's tutorial argmax, word for word (``strict``: ``>`` instead of ``>=``)."""
    def fcombine(x, y):
        keep = x[1] > y[1] if strict else x[1] >= y[1]
        lhs = te.if_then_else(keep, x[0], y[0])
        rhs = te.if_then_else(keep, x[1], y[1])
        return lhs, rhs

    def fidentity(t0, t1):
        return te.const(-1, t0), te.min_value(t1)
    return te.comm_reducer(fcombine, fidentity, name="argmax")


def argmin_reducer():
    def fcombine(x, y):
        lhs = te.if_then_else(x[1] <= y[1], x[0], y[0])
        rhs = te.if_then_else(x[1] <= y[1], x[1], y[1])
        return lhs, rhs
    return te.comm_reducer(fcombine, lambda t0, t1: (te.const(-1, t0), te.max_value(t1)), name="argmin")


def complex_product_reducer():
    """(re, im) products: each new value reads both old ones (a cycle the update breaks)."""
    return te.comm_reducer(lambda x, y: (x[0] * y[0] - x[1] * y[1], x[0] * y[1] + x[1] * y[0]),
                           lambda t0, t1: (te.const(1, t0), te.const(0, t1)), name="cprod")


prod = te.comm_reducer(lambda x, y: x * y, lambda t: te.const(1, t), name="prod")


# --------------------------------------------------------------------------- one-value reducers


def _schedule_row_reduction(s, T, k, how):
    """The same reduction T[i] (or T[i, j]) under one of several schedules."""
    st = s[T]
    if how == "split_k":
        ko, ki = st.split(k, factor=4)
        st.reorder(ko, st.op.axis[0], ki)
    elif how == "parallel":
        io, ii = st.split(st.op.axis[0], factor=3)
        st.parallel(io)
    elif how == "vectorize":           # rows as vector lanes, the reduction loop outside them
        io, ii = st.split(st.op.axis[0], factor=4)
        st.reorder(io, k, ii)
        st.vectorize(ii)
    elif how == "unroll_k":
        ko, ki = st.split(k, factor=3)
        st.unroll(ki)


SCHEDULES = ["default", "split_k", "parallel", "vectorize", "unroll_k"]


@pytest.mark.parametrize("how", SCHEDULES)
def test_product_reducer(how):
    rng = np.random.default_rng(1)
    m, n = 11, 13
    A = te.placeholder((m, n), name="A")
    k = te.reduce_axis((0, n), name="k")
    P = te.compute((m,), lambda i: prod(A[i, k], axis=k), name="P")
    s = te.create_schedule(P.op)
    _schedule_row_reduction(s, P, k, how)
    a = rng.uniform(0.6, 1.5, (m, n)).astype("float32")
    assert_both(s, [A, P], [a], a.astype(np.float64).prod(axis=1), rtol=1e-5)


@pytest.mark.parametrize("dtype", ["int32", "float32"])
def test_custom_max_reducer_and_min_value(dtype):
    """A max written as a comm_reducer, identity te.min_value: numpy's max, on ints and floats."""
    rng = np.random.default_rng(2)
    mymax = te.comm_reducer(lambda x, y: te.max(x, y), lambda t: te.min_value(t), name="mymax")
    A = te.placeholder((7, 5), dtype=dtype, name="A")
    k = te.reduce_axis((0, 5), name="k")
    M = te.compute((7,), lambda i: mymax(A[i, k], axis=k), name="M")
    a = rng.integers(-1000, 1000, (7, 5)).astype(dtype)
    assert_both(te.create_schedule(M.op), [A, M], [a], a.max(axis=1))
    assert te.min_value("int32").value == -2**31 and te.max_value("int64").value == 2**63 - 1
    assert te.min_value("float32").value == float(np.finfo(np.float32).min)   # finite, as TVM's


def test_reducer_called_with_two_values_combines_directly():
    """TVM: a reducer given no reduce axis folds its arguments with fcombine (te.sum(a, b) too)."""
    A = te.placeholder((6,), name="A")
    B = te.compute((6,), lambda i: prod(A[i], 2.0, A[i]), name="B")     # A * 2 * A
    C = te.compute((6,), lambda i: te.sum(B[i], 1.0), name="C")
    a = np.random.default_rng(3).standard_normal(6).astype("float32")
    assert_both(te.create_schedule(C.op), [A, C], [a], a * 2 * a + 1)


# --------------------------------------------------------------------------- argmax / argmin


def _argmax_program(m, n, reducer, val_dtype="float32"):
    idx = te.placeholder((m, n), name="idx", dtype="int32")
    val = te.placeholder((m, n), name="val", dtype=val_dtype)
    k = te.reduce_axis((0, n), "k")
    T0, T1 = te.compute((m,), lambda i: reducer((idx[i, k], val[i, k]), axis=k), name="T")
    return idx, val, k, T0, T1


def _pick(idx, val, positions):
    rows = np.arange(val.shape[0])
    return idx[rows, positions], val[rows, positions]


@pytest.mark.parametrize("how", SCHEDULES)
def test_argmax_as_tvm_writes_it(how):
    """Values with many ties: ``x[1] >= y[1]`` keeps the accumulator, so the first maximum wins
    (numpy's argmax); the index comes from the idx tensor, not the loop."""
    rng = np.random.default_rng(4)
    m, n = 11, 13
    idx, val, k, T0, T1 = _argmax_program(m, n, argmax_reducer())
    assert T0.op is T1.op and T0.op.num_outputs == 2 and T0.op.output(1) is T1
    assert (T0.name, T0.dtype, T1.name, T1.dtype) == ("T.v0", "int32", "T.v1", "float32")
    s = te.create_schedule(T0.op)
    assert s[T0] is s[T1]
    _schedule_row_reduction(s, T1, k, how)           # scheduling either output schedules both
    v = rng.integers(0, 3, (m, n)).astype("float32")
    i = rng.integers(-50, 50, (m, n)).astype("int32")
    assert_both(s, [idx, val, T0, T1], [i, v], list(_pick(i, v, v.argmax(axis=1))))


def test_argmax_ties_follow_the_users_comparison():
    """With ``>`` instead of ``>=`` the last maximum wins: loopc follows the user's fcombine."""
    rng = np.random.default_rng(5)
    m, n = 9, 7
    idx, val, k, T0, T1 = _argmax_program(m, n, argmax_reducer(strict=True), val_dtype="int32")
    v = rng.integers(0, 2, (m, n)).astype("int32")
    i = np.tile(np.arange(n, dtype="int32"), (m, 1))
    last = n - 1 - v[:, ::-1].argmax(axis=1)
    assert_both(te.create_schedule(T0.op), [idx, val, T0, T1], [i, v], [last, v.max(axis=1)])


@pytest.mark.parametrize("how", ["default", "vectorize"])
def test_argmin(how):
    rng = np.random.default_rng(6)
    m, n = 13, 5
    idx, val, k, T0, T1 = _argmax_program(m, n, argmin_reducer())
    s = te.create_schedule([T0, T1])
    _schedule_row_reduction(s, T0, k, how)
    v = rng.standard_normal((m, n)).astype("float32")
    i = rng.integers(0, 100, (m, n)).astype("int32")
    assert_both(s, [idx, val, T0, T1], [i, v], list(_pick(i, v, v.argmin(axis=1))))


def test_argmax_updates_in_place_with_no_temporary():
    """The index's new value reads the old value, so it is stored first; no temporaries."""
    idx, val, k, T0, T1 = _argmax_program(4, 6, argmax_reducer())
    text = str(loopc.lower(te.create_schedule(T0.op), [idx, val, T0, T1]))
    assert "allocate" not in text
    assert text.index("T.v0[i] = if_then_else") < text.index("T.v1[i] = if_then_else")


@pytest.mark.parametrize("how", ["default", "vectorize", "unroll_k", "parallel"])
def test_values_that_read_each_other_update_together(how):
    """A complex product: re' and im' each read both old values; a temporary keeps re' until im'
    is computed (in vector lanes too, one temporary per lane)."""
    rng = np.random.default_rng(7)
    m, n = 10, 7
    A = te.placeholder((m, n), name="A")
    B = te.placeholder((m, n), name="B")
    k = te.reduce_axis((0, n), name="k")
    P0, P1 = te.compute((m,), lambda i: complex_product_reducer()((A[i, k], B[i, k]), axis=k), name="P")
    s = te.create_schedule(P0.op)
    _schedule_row_reduction(s, P0, k, how)
    text = str(loopc.lower(s, [A, B, P0, P1]))
    assert "P.v0.next" in text and "P.v1.next" not in text
    ang = rng.uniform(-1, 1, (m, n))
    r = rng.uniform(0.8, 1.2, (m, n))
    a, b = (r * np.cos(ang)).astype("float32"), (r * np.sin(ang)).astype("float32")
    ref = np.prod(a.astype(np.complex128) + 1j * b.astype(np.complex128), axis=1)
    assert_both(s, [A, B, P0, P1], [a, b], [ref.real, ref.imag], rtol=1e-4, atol=1e-5)


def test_rfactor_of_argmax():
    """rfactor gives a two-output partial stage (its tensors returned as a list); the final
    stage combines the partial (index, value) pairs. Continuous values: no ties to break."""
    rng = np.random.default_rng(8)
    m, n = 6, 29
    idx, val, k, T0, T1 = _argmax_program(m, n, argmax_reducer())
    s = te.create_schedule(T0.op)
    ko, ki = s[T0].split(k, factor=4)
    R0, R1 = s.rfactor(T0, ki)
    assert R0.op is R1.op and R0.shape == (4, m)
    s[R0].parallel(s[R0].op.axis[0])
    s[T0].vectorize(s[T0].op.axis[0])
    v = rng.standard_normal((m, n)).astype("float32")
    i = rng.integers(0, 1000, (m, n)).astype("int32")
    assert_both(s, [idx, val, T0, T1], [i, v], list(_pick(i, v, v.argmax(axis=1))))
    replayed(s, [idx, val, T0, T1])


def test_cache_write_of_a_multi_output_stage():
    """TVM's ``s.cache_write([T0, T1], "local")``: one cache stage with two outputs, computed at
    a loop of the copy-out; the trace replays it."""
    rng = np.random.default_rng(9)
    m, n = 11, 6
    idx, val, k, T0, T1 = _argmax_program(m, n, argmax_reducer())
    s = te.create_schedule(T0.op)
    C0, C1 = s.cache_write([T0, T1], "local")
    assert C0.op is C1.op and C0.name == "T.local.v0"
    io, ii = s[T0].split(T0.op.axis[0], factor=4)
    s[C0].compute_at(s[T0], io)
    s[T0].vectorize(ii)
    v = rng.standard_normal((m, n)).astype("float32")
    i = rng.integers(0, 1000, (m, n)).astype("int32")
    assert_both(s, [idx, val, T0, T1], [i, v], list(_pick(i, v, v.argmax(axis=1))))
    replayed(s, [idx, val, T0, T1])


# --------------------------------------------------------------------------- init=


@pytest.mark.parametrize("how", ["default", "split_k", "rfactor", "cache_write"])
def test_sum_init_reads_a_tensor(how):
    """``te.sum(..., init=C_in[i, j])``: C = C_in + A @ B (rfactor: the partial sums start from 0,
    the final sum from C_in)."""
    rng = np.random.default_rng(10)
    M, N, K = 7, 5, 11
    A = te.placeholder((M, K), name="A")
    B = te.placeholder((K, N), name="B")
    Cin = te.placeholder((M, N), name="C_in")
    k = te.reduce_axis((0, K), name="k")
    C = te.compute((M, N), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k, init=Cin[i, j]), name="C")
    s = te.create_schedule(C.op)
    if how == "split_k":
        ko, ki = s[C].split(k, factor=4)
        s[C].reorder(ko, C.op.axis[0], ki, C.op.axis[1])
        s[C].vectorize(C.op.axis[1])
    elif how == "rfactor":
        ko, ki = s[C].split(k, factor=3)
        s.rfactor(C, ki)
    elif how == "cache_write":       # the init moves with the body into the tile computed per row block
        CL = s.cache_write(C, "local")
        io, jo, ii, ji = s[C].tile(C.op.axis[0], C.op.axis[1], 3, 4)
        s[CL].compute_at(s[C], jo)
    a, b, c = (rng.standard_normal(sh).astype("float32") for sh in ((M, K), (K, N), (M, N)))
    assert_both(s, [A, B, Cin, C], [a, b, c], c + a @ b, rtol=1e-4, atol=1e-5)


def test_init_reading_a_stage_computed_inside_the_reduction_is_an_error():
    M, K = 5, 6
    A = te.placeholder((M, K), name="A")
    Cin = te.placeholder((M,), name="C_in")
    D = te.compute((M,), lambda i: Cin[i] * 2.0, name="D")
    k = te.reduce_axis((0, K), name="k")
    C = te.compute((M,), lambda i: te.sum(A[i, k], axis=k, init=D[i]), name="C")
    s = te.create_schedule(C.op)
    s[D].compute_at(s[C], k)
    with pytest.raises(LoweringError, match="init= reads it before that loop runs"):
        loopc.lower(s, [A, Cin, C])
    s[D].compute_at(s[C], C.op.axis[0])                  # outside the reduction loop: fine
    a, c = np.ones((M, K), "float32"), np.arange(M, dtype="float32")
    assert_both(s, [A, Cin, C], [a, c], 2 * c + K)


def test_init_on_max_min_and_user_reducers():
    rng = np.random.default_rng(11)
    m, n = 9, 4
    A = te.placeholder((m, n), name="A")
    F = te.placeholder((m,), name="F")
    k = te.reduce_axis((0, n), name="k")
    Mx = te.compute((m,), lambda i: te.max(A[i, k], axis=k, init=F[i]), name="Mx")
    Mn = te.compute((m,), lambda i: te.min(A[i, k], axis=k, init=0.0), name="Mn")
    Pr = te.compute((m,), lambda i: prod(A[i, k], axis=k, init=F[i] * 2.0), name="Pr")
    a, f = rng.standard_normal((m, n)).astype("float32"), rng.standard_normal(m).astype("float32")
    for T, want in ((Mx, np.maximum(f, a.max(1))), (Mn, np.minimum(0, a.min(1))), (Pr, 2 * f * a.prod(1))):
        args = [A, F, T] if T is not Mn else [A, T]
        inputs = [a, f] if T is not Mn else [a]
        assert_both(te.create_schedule(T.op), args, inputs, want, rtol=1e-5)


def test_argmax_with_an_init_pair():
    """A multi-value init: the running (index, value) carried over from an earlier block."""
    rng = np.random.default_rng(12)
    m, n = 8, 5
    idx = te.placeholder((m, n), name="idx", dtype="int32")
    val = te.placeholder((m, n), name="val")
    I0 = te.placeholder((m,), name="I0", dtype="int32")
    V0 = te.placeholder((m,), name="V0")
    k = te.reduce_axis((0, n), name="k")
    T0, T1 = te.compute((m,), lambda i: argmax_reducer()((idx[i, k], val[i, k]), axis=k, init=(I0[i], V0[i])),
                        name="T")
    v = rng.standard_normal((m, n)).astype("float32")
    i = rng.integers(0, 100, (m, n)).astype("int32")
    i0, v0 = np.full(m, -5, "int32"), rng.standard_normal(m).astype("float32") + 1
    bi, bv = _pick(i, v, v.argmax(axis=1))
    keep = v0 >= bv
    assert_both(te.create_schedule(T0.op), [idx, val, I0, V0, T0, T1], [i, v, i0, v0],
                [np.where(keep, i0, bi), np.where(keep, v0, bv)])


# --------------------------------------------------------------------------- multi-output compute


def test_multi_output_elementwise_with_its_own_dtypes_scheduled_once():
    rng = np.random.default_rng(13)
    m, n = 13, 7
    A = te.placeholder((m, n), name="A")
    B = te.placeholder((m, n), name="B")
    S, G = te.compute((m, n), lambda i, j: (A[i, j] + B[i, j], (A[i, j] > B[i, j]).astype("int32")), name="SG")
    assert S.shape == G.shape == (m, n) and (S.dtype, G.dtype) == ("float32", "int32")
    s = te.create_schedule([S, G])
    jo, ji = s[G].split(G.op.axis[1], factor=4)
    s[S].vectorize(ji)
    s[S].parallel(S.op.axis[0])
    text = str(loopc.lower(s, [A, B, S, G]))
    assert text.count("vectorized(4)") >= 1 and text.count("parallel(") >= 1     # one nest for both
    a, b = rng.standard_normal((m, n)).astype("float32"), rng.standard_normal((m, n)).astype("float32")
    assert_both(s, [A, B, S, G], [a, b], [a + b, (a > b).astype("int32")])


def test_multi_output_intermediate_computed_at_its_reader():
    """Both outputs of an intermediate op feed one reader; attached at the reader's loop, each
    gets its own buffer over the region read (a halo of one)."""
    rng = np.random.default_rng(14)
    n = 23
    A = te.placeholder((n + 1,), name="A")
    S, D = te.compute((n + 1,), lambda i: (A[i] * 2.0, A[i] - 1.0), name="SD")
    E = te.compute((n,), lambda i: S[i] * D[i + 1], name="E")
    s = te.create_schedule(E.op)
    te.schedule.AutoInlineInjective(s)              # leaves the two-output op alone
    assert s[S].attach.value == "root"
    io, ii = s[E].split(E.op.axis[0], factor=5)
    s[S].compute_at(s[E], io)
    with pytest.raises(ScheduleError, match="outputs"):
        s[D].compute_inline()
    a = rng.standard_normal(n + 1).astype("float32")
    assert_both(s, [A, E], [a], (a[:-1] * 2) * (a[1:] - 1))


def test_a_list_of_one_value_is_one_tensor():
    A = te.placeholder((3,), name="A")
    B = te.compute((3,), lambda i: [A[i] + 1.0], name="B")      # TVM returns the one tensor
    assert B.op.num_outputs == 1 and B.name == "B"


def test_cache_read_of_one_output_and_replay():
    rng = np.random.default_rng(15)
    n = 10
    A = te.placeholder((n,), name="A")
    S, D = te.compute((n,), lambda i: (A[i] * 3.0, A[i] + 2.0), name="SD")
    E = te.compute((n,), lambda i: S[i] - D[i], name="E")
    s = te.create_schedule(E.op)
    Dl = s.cache_read(D, "local", [s[E]])
    assert "SD.v1" in s.trace_json()
    replayed(s, [A, E])
    assert Dl.dtype == "float32"
    a = rng.standard_normal(n).astype("float32")
    assert_both(s, [A, E], [a], a * 3 - (a + 2))


# --------------------------------------------------------------------------- loop-dependent bounds


def _triangular(how, m=13, n=9):
    A = te.placeholder((m, n), name="A")

    def body(i, j):
        k = te.reduce_axis((0, i + 1), name="k")
        return te.sum(A[k, j], axis=k)
    L = te.compute((m, n), body, name="L")
    k = L.op.reduce_axis[0]
    assert k.dom.extent == m                   # the constant cover of every i
    s = te.create_schedule(L.op)
    i, j = L.op.axis
    if how == "split_k":
        ko, ki = s[L].split(k, factor=4)
        s[L].reorder(i, ko, j, ki)
    elif how == "vectorize":
        jo, ji = s[L].split(j, factor=4)
        s[L].reorder(i, jo, k, ji)
        s[L].vectorize(ji)
        s[L].parallel(i)
    elif how == "rfactor":
        ko, ki = s[L].split(k, factor=5)
        s.rfactor(L, ki)
    return A, L, s


@pytest.mark.parametrize("how", ["default", "split_k", "vectorize", "rfactor"])
def test_triangular_sum_over_a_loop_dependent_range(how):
    """L[i, j] = sum(A[k, j] for k in range(i + 1)): numpy's cumsum down the rows."""
    rng = np.random.default_rng(16)
    A, L, s = _triangular(how)
    a = rng.standard_normal(A.shape).astype("float32")
    assert_both(s, [A, L], [a], np.cumsum(a.astype(np.float64), axis=0), rtol=1e-4, atol=1e-5)


def test_where_reading_an_outer_axis_and_a_lower_bound():
    """``where=k <= i`` is the same triangle; ``reduce_axis((i, n))`` sums the other one."""
    rng = np.random.default_rng(17)
    n = 11
    A = te.placeholder((n, n), name="A")
    k = te.reduce_axis((0, n), name="k")
    Lo = te.compute((n,), lambda i: te.sum(A[i, k], axis=k, where=k <= i), name="Lo")

    def upper(i):
        r = te.reduce_axis((i, n), name="r")
        return te.sum(A[i, r], axis=r)
    Up = te.compute((n,), upper, name="Up")
    a = rng.standard_normal((n, n)).astype("float32")
    assert_both(te.create_schedule(Lo.op), [A, Lo], [a], np.tril(a).sum(1), rtol=1e-5)
    s = te.create_schedule(Up.op)
    ko, ki = s[Up].split(Up.op.reduce_axis[0], factor=3)
    assert_both(s, [A, Up], [a], np.triu(a).sum(1), rtol=1e-5)


def test_reads_in_bounds_only_under_the_loop_dependent_bound():
    """``A[i - k]`` with k < i + 1 never goes below 0: the reads-in-bounds check sees the bound's
    condition. One more step of k would read A[-1]: a LoweringError naming the read."""
    rng = np.random.default_rng(18)
    n = 17
    A = te.placeholder((n,), name="A")

    def prefix(extra):
        def body(i):
            k = te.reduce_axis((0, i + 1 + extra), name="k")
            return te.sum(A[i - k], axis=k)
        return body
    C = te.compute((n,), prefix(0), name="C")
    s = te.create_schedule(C.op)
    ko, ki = s[C].split(C.op.reduce_axis[0], factor=4)
    a = rng.standard_normal(n).astype("float32")
    assert_both(s, [A, C], [a], np.cumsum(a.astype(np.float64)), rtol=1e-4, atol=1e-5)
    Bad = te.compute((n,), prefix(1), name="Bad")
    with pytest.raises(LoweringError, match=r"reads A\[i - k\] outside"):
        loopc.lower(te.create_schedule(Bad.op), [A, Bad])


@pytest.mark.parametrize("extra", [0, 1])
def test_reads_in_bounds_decided_on_a_domain_too_large_to_enumerate(extra):
    """1201 x 1202 (i, k) points: k is swept exactly under k < i + 1 + extra instead of enumerated,
    so the one-step-too-far read is still caught (not left to read A[-1] at run time)."""
    n = 1201
    A = te.placeholder((n,), name="A")

    def body(i):
        k = te.reduce_axis((0, i + 1 + extra), name="k")
        return te.sum(A[i - k], axis=k)
    C = te.compute((n,), body, name="C")
    if extra == 0:
        loopc.lower(te.create_schedule(C.op), [A, C])
    else:
        with pytest.raises(LoweringError, match=r"A\[i - k\] outside the tensor: index 0 \(i - k\) is -1"):
            loopc.lower(te.create_schedule(C.op), [A, C])


@pytest.mark.parametrize("seed", range(4))
def test_sweeping_one_variable_decides_as_enumeration_does(seed):
    """The exact sweep used past MAX_POINTS agrees with enumerating every point, on random linear
    indices and guards over small domains (including a nonzero start)."""
    from loopc.lower import bounds
    rng = np.random.default_rng(100 + seed)
    i, j, k = (te.var(n) for n in "ijk")
    for _ in range(60):
        domain = {v: (int(lo), int(lo) + int(rng.integers(1, 9))) for v, lo in zip((i, j, k), rng.integers(-2, 3, 3))}

        def linear():
            c = rng.integers(-3, 4, 4)
            return int(c[0]) * i + int(c[1]) * j + int(c[2]) * k + int(c[3])
        index = linear() + 6
        conds = tuple((linear() < linear()) if rng.random() < 0.5 else (linear() <= 2)
                      for _ in range(rng.integers(0, 3)))
        enumerated = bounds._leaves(index, conds, domain, 9) if conds else None
        swept = bounds._leaves_sweeping_one(index, conds, domain, 9, {i, j, k})
        if conds:
            assert (enumerated is None) == (swept is None), (index, conds, domain, enumerated, swept)
        if swept is not None:                     # the point it names really leaves [0, 9)
            value, point = swept
            assert value == int(bounds._evaluate(index, {v: np.int64(x) for v, x in point.items()}))
            assert not 0 <= value < 9


def test_reduce_axis_with_a_nonzero_start():
    """``reduce_axis((2, 9))`` runs k = 2 .. 8 (split, rfactored, and plain)."""
    rng = np.random.default_rng(19)
    A = te.placeholder((5, 12), name="A")
    k = te.reduce_axis((2, 9), name="k")
    C = te.compute((5,), lambda i: te.sum(A[i, k], axis=k), name="C")
    a = rng.standard_normal((5, 12)).astype("float32")
    assert_both(te.create_schedule(C.op), [A, C], [a], a[:, 2:9].sum(1), rtol=1e-5)
    s = te.create_schedule(C.op)
    ko, ki = s[C].split(k, factor=3)
    s.rfactor(C, ki)
    assert_both(s, [A, C], [a], a[:, 2:9].sum(1), rtol=1e-5)


# --------------------------------------------------------------------------- errors


def test_reducer_arity_and_dtype_errors():
    A = te.placeholder((4, 5), name="A")
    I = te.placeholder((4, 5), name="I", dtype="int32")
    k = te.reduce_axis((0, 5), name="k")
    three = te.comm_reducer(lambda x, y: (x[0], x[1], y[0]), lambda a, b: (a, b), name="three")
    with pytest.raises(LoopcError, match="fcombine returned 3 values for a 2-value reduction"):
        te.compute((4,), lambda i: three((I[i, k], A[i, k]), axis=k))
    ids = te.comm_reducer(lambda x, y: (x[0], y[1]), lambda t0, t1: te.const(0, t0), name="ids")
    with pytest.raises(LoopcError, match="fidentity returned one value for a 2-value"):
        te.compute((4,), lambda i: ids((I[i, k], A[i, k]), axis=k))
    with pytest.raises(LoopcError, match="reducer 'prod' failed on 2 values"):
        te.compute((4,), lambda i: prod((I[i, k], A[i, k]), axis=k))        # x * y of two tuples
    with pytest.raises(LoopcError, match="argmax' failed on 1 value"):
        te.compute((4,), lambda i: argmax_reducer()(A[i, k], axis=k))        # x[1] of a scalar
    half = te.comm_reducer(lambda x, y: x + y * 0.5, lambda t: te.const(0, t), name="half")
    with pytest.raises(LoopcError, match="has dtype float32 but the value it stands for is int32"):
        te.compute((4,), lambda i: half(I[i, k], axis=k))
    peek = te.comm_reducer(lambda x, y: x + A[0, 0], lambda t: te.const(0, t), name="peek")
    with pytest.raises(LoopcError, match="may use only its arguments"):
        te.compute((4,), lambda i: peek(A[i, k], axis=k))
    with pytest.raises(LoopcError, match="fcombine must take two arguments"):
        te.comm_reducer(lambda x: x, lambda t: 0)
    with pytest.raises(LoopcError, match="te.sum reduces one value"):
        te.sum((A[0, k], A[1, k]), axis=k)


def test_multi_value_results_must_be_returned_together():
    A = te.placeholder((4, 5), name="A")
    I = te.placeholder((4, 5), name="I", dtype="int32")
    k = te.reduce_axis((0, 5), name="k")
    argmax = argmax_reducer()
    with pytest.raises(LoopcError, match="return all 2 values"):
        te.compute((4,), lambda i: argmax((I[i, k], A[i, k]), axis=k)[0])
    with pytest.raises(LoopcError, match="is used in an expression"):
        te.compute((4,), lambda i: argmax((I[i, k], A[i, k]), axis=k)[1] + 1.0)
    with pytest.raises(LoopcError, match="return all 2 values"):
        te.compute((4,), lambda i: argmax((I[i, k], A[i, k]), axis=k)[::-1])
    with pytest.raises(LoopcError, match="must be the whole body of a one-output compute"):
        te.compute((4,), lambda i: (te.sum(A[i, k], axis=k), A[i, 0]))
    with pytest.raises(LoopcError, match="init= .* reads a reduce axis"):
        te.compute((4,), lambda i: te.sum(A[i, k], axis=k, init=A[i, k]))
    with pytest.raises(LoopcError, match="init= gives 1 value for a 2-value"):
        te.compute((4,), lambda i: argmax((I[i, k], A[i, k]), axis=k, init=A[i, 0]))


def test_multi_output_tensor_errors():
    A = te.placeholder((4, 5), name="A")
    outs = te.compute((4, 5), lambda i, j: (A[i, j] + 1.0, A[i, j] * 2.0), name="T")
    T0, T1 = outs
    with pytest.raises(LoopcError, match="list of the 2 outputs .* unpack it"):
        te.compute((4, 5), lambda i, j: outs[i, j])
    with pytest.raises(LoopcError, match="T.v1 has 2 dimensions"):
        te.compute((4,), lambda i: T1[i] + 1.0)
    with pytest.raises(LoopcError, match="has 2 outputs; output"):
        T0.op.output(2)
    s = te.create_schedule(T0.op)
    with pytest.raises(ScheduleError, match=r"pass all of them: s.cache_write\(\[T.v0, T.v1\]"):
        s.cache_write(T1, "local")
    with pytest.raises(ScheduleError, match="every output of one op"):
        s.cache_write([T0, T0], "local")
    with pytest.raises(LoweringError, match="output 'T.v1' is not in args"):
        loopc.lower(s, [A, T0])


def test_loop_dependent_bound_errors():
    A = te.placeholder((6, 6), name="A")
    n = te.var("n")

    def square(i):
        k = te.reduce_axis((0, i * i + 1), name="k")
        return te.sum(A[i, k], axis=k)
    with pytest.raises(LoopcError, match="must be linear in the compute's axes"):
        te.compute((6,), square)

    def mixed(i):
        k = te.reduce_axis((0, i + n), name="k")
        return te.sum(A[i, k], axis=k)
    with pytest.raises(LoopcError, match="n, which is not an axis"):
        te.compute((6,), mixed)

    def empty(i):
        k = te.reduce_axis((i + 1, 0), name="k")
        return te.sum(A[i, k], axis=k)
    with pytest.raises(LoopcError, match="empty for every point"):
        te.compute((6,), empty)


# --------------------------------------------------------------------------- CUDA (simulator)


def case_reducers_in_the_cuda_simulator():
    """Argmax (with ties; also through a per-thread local cache_write), a product under a where
    that reads the row, the complex product (temporaries in per-thread memory), a sum with init=,
    a two-output elementwise op and the triangular sum, each bound to blocks and threads."""
    from numba import config
    assert config.ENABLE_CUDASIM
    rng = np.random.default_rng(20)

    def bind(s, T, axis, factor=4):
        bx, tx = s[T].split(axis, factor=factor)
        s[T].bind(bx, te.thread_axis("blockIdx.x"))
        s[T].bind(tx, te.thread_axis("threadIdx.x"))

    def run_cuda(s, args, inputs, expected, rtol=1e-5, atol=1e-6):
        f = loopc.build(s, args, target="cuda")
        outs = [np.full(t.shape, 7, t.dtype) for t in args[len(inputs):]]
        f(*inputs, *outs)
        for got, want in zip(outs, expected):
            np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)

    m, n = 11, 13
    idx, val, k, T0, T1 = _argmax_program(m, n, argmax_reducer())
    s = te.create_schedule(T0.op)
    bind(s, T0, T0.op.axis[0])
    v = rng.integers(0, 3, (m, n)).astype("float32")
    i = rng.integers(0, 99, (m, n)).astype("int32")
    run_cuda(s, [idx, val, T0, T1], [i, v], list(_pick(i, v, v.argmax(axis=1))))

    s = te.create_schedule(T0.op)                   # the cache computed per thread, in local memory
    C0, C1 = s.cache_write([T0, T1], "local")
    bind(s, T0, T0.op.axis[0])
    s[C0].compute_at(s[T0], s[T0].leaf_iter_vars[-1])
    run_cuda(s, [idx, val, T0, T1], [i, v], list(_pick(i, v, v.argmax(axis=1))))

    A = te.placeholder((m, n), name="A")
    B = te.placeholder((m, n), name="B")
    kk = te.reduce_axis((0, n), name="k")
    Pr = te.compute((m,), lambda r: prod(A[r, kk], axis=kk, where=kk <= r), name="Pr")
    s = te.create_schedule(Pr.op)
    bind(s, Pr, Pr.op.axis[0])
    a = rng.uniform(0.5, 1.5, (m, n)).astype("float32")
    run_cuda(s, [A, Pr], [a], [np.where(np.tril(np.ones((m, n), bool)), a, 1).prod(1)], rtol=1e-5)

    P0, P1 = te.compute((m,), lambda r: complex_product_reducer()((A[r, kk], B[r, kk]), axis=kk), name="P")
    s = te.create_schedule(P0.op)
    bind(s, P0, P0.op.axis[0])
    ang = rng.uniform(-1, 1, (m, n))
    a, b = np.cos(ang).astype("float32"), np.sin(ang).astype("float32")
    ref = np.prod(a.astype(np.complex128) + 1j * b.astype(np.complex128), axis=1)
    run_cuda(s, [A, B, P0, P1], [a, b], [ref.real, ref.imag], rtol=1e-4, atol=1e-5)

    Cin = te.placeholder((m,), name="C_in")
    C = te.compute((m,), lambda r: te.sum(A[r, kk] * B[r, kk], axis=kk, init=Cin[r]), name="C")
    s = te.create_schedule(C.op)
    bind(s, C, C.op.axis[0], factor=8)
    c = rng.standard_normal(m).astype("float32")
    run_cuda(s, [A, B, Cin, C], [a, b, c], [c + (a * b).sum(1)], rtol=1e-4, atol=1e-5)

    S, G = te.compute((m, n), lambda r, j: (A[r, j] + B[r, j], (A[r, j] > B[r, j]).astype("int32")), name="SG")
    s = te.create_schedule(S.op)
    fused = s[S].fuse(*S.op.axis)
    bind(s, S, fused, factor=32)
    run_cuda(s, [A, B, S, G], [a, b], [a + b, (a > b).astype("int32")])

    A2, L, s = _triangular("default")
    bind(s, L, L.op.axis[1], factor=4)
    a2 = rng.standard_normal(A2.shape).astype("float32")
    run_cuda(s, [A2, L], [a2], [np.cumsum(a2.astype(np.float64), axis=0)], rtol=1e-4, atol=1e-5)
    print("cuda reducers ok")


def test_reducers_on_the_cuda_target():
    from test_cuda_sim import run_in_simulator
    proc = run_in_simulator("case_reducers_in_the_cuda_simulator", module="test_reducers", timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert "cuda reducers ok" in proc.stdout
