"""Symbolic shapes (issue 16, item 1): ``te.var`` / ``te.size_var`` dimensions, one compiled
function for every size, sizes bound from the arrays at call time and checked.

Every case runs one built function (LLVM) and one lowered function (the reference
interpreter) at several sizes — 1, primes, multiples of the split factors — against NumPy.
The CUDA cases run in numba's simulator, in a subprocess (see test_cuda_sim.py).
"""
from __future__ import annotations

import numpy as np
import pytest

import loopc
import loopc.interp
from loopc import te
from loopc.errors import ArgumentError, LoopcError, LoweringError, ScheduleError
from loopc.ir.stmt import ForKind

SIZES = (1, 2, 7, 13, 16)


def _rand(rng, *shape):
    return rng.standard_normal(shape).astype("float32")


def check_sizes(s, args, make, ref, sizes, explicit=False, rtol=1e-5, atol=1e-5):
    """Build once (LLVM) and lower once (interpreter); for each size tuple, ``make(*size)`` gives
    the input arrays, ``ref(*inputs)`` the expected output; the output is the last tensor arg.
    With ``explicit``, the sizes are also passed as ints after the arrays."""
    f = loopc.build(s, args)
    func = loopc.lower(s, args)
    for size in sizes:
        inputs = make(*size)
        expected = ref(*inputs)
        extra = tuple(size) if explicit else ()
        for run in (f, lambda *a: loopc.interp.run(func, *a)):
            out = np.full(expected.shape, np.nan, "float32")
            run(*inputs, out, *extra)
            np.testing.assert_allclose(out, expected, rtol=rtol, atol=atol, err_msg=f"sizes {size}")
    return f


def assert_one_line(err, *names):
    text = str(err.value)
    assert "\n" not in text and "Traceback" not in text, text
    for name in names:
        assert str(name) in text, (name, text)


# --------------------------------------------------------------------------- te


def test_size_var_is_a_var_and_shapes_keep_expressions():
    n = te.size_var("n")
    assert isinstance(n, te.Var) and n.dtype == "int32"
    A = te.placeholder((n + 2, n - n + 3), name="A")
    assert str(A.shape[0]) == "n + 2" and A.shape[1] == 3          # a dimension that folds is an int
    k = te.reduce_axis((0, n), name="k")
    assert k.extent is n
    with pytest.raises(LoopcError, match="integer expression"):
        te.placeholder((n.astype("float32"),))
    with pytest.raises(LoopcError, match="int32 or int64"):
        te.size_var("m", "float32")


# --------------------------------------------------------------------------- elementwise


def _elementwise(schedule):
    n, m = te.size_var("n"), te.size_var("m")
    A = te.placeholder((n, m), name="A")
    B = te.placeholder((n, m), name="B")
    C = te.compute((n, m), lambda i, j: A[i, j] * 2.0 + B[i, j], name="C")
    s = te.create_schedule(C.op)
    st = s[C]
    i, j = C.op.axis
    if schedule == "split_parallel":
        io, ii = st.split(i, factor=4)
        st.parallel(io)
    elif schedule == "tile_vectorize":
        io, jo, ii, ji = st.tile(i, j, 3, 8)
        st.vectorize(ji)
        st.parallel(io)
    elif schedule == "fuse_split":
        fo, fi = st.split(st.fuse(i, j), factor=16)
        st.vectorize(fi)
        st.parallel(fo)
    elif schedule == "nparts":
        jo, ji = st.split(j, nparts=3)
        st.reorder(jo, i, ji)
    return s, [A, B, C]


@pytest.mark.parametrize("schedule", ["default", "split_parallel", "tile_vectorize", "fuse_split", "nparts"])
def test_elementwise_every_size(schedule):
    rng = np.random.default_rng(1)
    s, args = _elementwise(schedule)
    check_sizes(s, args, lambda n, m: (_rand(rng, n, m), _rand(rng, n, m)), lambda a, b: a * 2 + b,
                [(1, 1), (7, 13), (16, 8), (5, 1), (1, 17), (37, 31)])


def test_lower_prints_the_sizes_in_extents_and_signature():
    n = te.size_var("n")
    A = te.placeholder((n, 3), name="A")
    B = te.placeholder((n + 2, 3), name="B")
    C = te.compute((n, 3), lambda i, j: A[i, j] + B[i + 2, j], name="C")
    s = te.create_schedule(C.op)
    s[C].split(C.op.axis[0], factor=4)
    text = str(loopc.lower(s, [A, B, C]))
    assert "def main(A: float32[n, 3], B: float32[n + 2, 3], C: float32[n, 3], n: int32):" in text
    # the split's outer loop runs ceildiv(n, 4) times, as a guard-free main part and a guarded tail
    assert "range(n // 4):" in text and "range(n // 4, (n + 3) // 4):" in text, text
    assert text.count("if i.outer*4 + i.inner < n:") == 1, text


def test_a_split_that_provably_divides_has_no_tail_guard():
    m = te.size_var("m")
    A = te.placeholder((m * 4,), name="A")
    C = te.compute((m * 4,), lambda i: A[i] + 1.0, name="C")
    s = te.create_schedule(C.op)
    o, i = s[C].split(C.op.axis[0], factor=4)
    s[C].vectorize(i)
    text = str(loopc.lower(s, [A, C]))
    assert "range(m)" in text and "if " not in text, text
    rng = np.random.default_rng(2)
    check_sizes(s, [A, C], lambda k: (_rand(rng, 4 * k),), lambda a: a + 1, [(1,), (3,), (11,)])


def test_one_llvm_function_receives_the_sizes():
    s, args = _elementwise("split_parallel")
    f = loopc.build(s, args)
    assert f.func.size_vars == (args[0].shape[0], args[0].shape[1])
    ir_text = f.get_source("llvm-unopt")
    entry = next(line for line in ir_text.splitlines() if line.startswith('define i32 @"main"'))
    assert entry.endswith('i64 %"n", i64 %"m")'), entry


def test_bind_and_time_evaluator_take_the_sizes_too():
    n = te.var("n")
    A = te.placeholder((n,), name="A")
    C = te.compute((n,), lambda i: A[i] + 2.0, name="C")
    s = te.create_schedule(C.op)
    f = loopc.build(s, [A, n, C])                       # an explicit size between the arrays
    a, c = np.arange(11, dtype="float32"), np.zeros(11, "float32")
    assert f.bind([a, 11, c])() == 0
    np.testing.assert_array_equal(c, a + 2)
    assert f.time_evaluator(number=2, repeat=1)(a, 11, c).mean > 0
    with pytest.raises(ArgumentError):
        f.bind([a, 12, c])


def test_parallel_over_a_large_symbolic_extent():
    n = te.size_var("n")
    A = te.placeholder((n,), name="A")
    C = te.compute((n,), lambda i: A[i] * 3.0, name="C")
    s = te.create_schedule(C.op)
    o, i = s[C].split(C.op.axis[0], factor=64)
    s[C].parallel(o)
    s[C].vectorize(i)
    f = loopc.build(s, [A, C])
    for size in (1, 63, 10007, 100003):
        a = np.random.default_rng(size).standard_normal(size).astype("float32")
        c = np.full(size, np.nan, "float32")
        f(a, c)
        np.testing.assert_allclose(c, a * 3, rtol=1e-6)


# --------------------------------------------------------------------------- matmul, reductions


def test_matmul_symbolic_m_explicit_with_cache_write_and_compute_at():
    """TVM's other style: ``build(s, [A, B, C, M])`` takes M as an int too, which must agree."""
    M = te.var("M")
    A = te.placeholder((M, 12), name="A")
    B = te.placeholder((12, 20), name="B")
    k = te.reduce_axis((0, 12), name="k")
    C = te.compute((M, 20), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    s = te.create_schedule(C.op)
    CC = s.cache_write(C, "local")
    io, jo, ii, ji = s[C].tile(C.op.axis[0], C.op.axis[1], 4, 8)
    s[C].vectorize(ji)
    s[C].parallel(io)
    s[CC].compute_at(s[C], jo)
    s[CC].vectorize(s[CC].op.axis[1])
    rng = np.random.default_rng(3)
    check_sizes(s, [A, B, C, M], lambda m: (_rand(rng, m, 12), _rand(rng, 12, 20)), lambda a, b: a @ b,
                [(1,), (4,), (7,), (33,)], explicit=True, rtol=1e-4, atol=1e-4)


def test_matmul_symbolic_m_n_k_tiled():
    M, N, K = te.size_var("M"), te.size_var("N"), te.size_var("K")
    A = te.placeholder((M, K), name="A")
    B = te.placeholder((K, N), name="B")
    k = te.reduce_axis((0, K), name="k")
    C = te.compute((M, N), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    s = te.create_schedule(C.op)
    io, jo, ii, ji = s[C].tile(C.op.axis[0], C.op.axis[1], 4, 8)
    ko, ki = s[C].split(k, factor=3)
    s[C].reorder(io, jo, ko, ki, ii, ji)
    s[C].vectorize(ji)
    s[C].parallel(io)
    rng = np.random.default_rng(4)
    check_sizes(s, [A, B, C], lambda m, n, kk: (_rand(rng, m, kk), _rand(rng, kk, n)), lambda a, b: a @ b,
                [(1, 1, 1), (7, 13, 5), (16, 8, 3), (33, 17, 29)], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("combiner", ["sum", "max"])
def test_reduction_over_a_symbolic_axis(combiner):
    n = te.size_var("n")
    A = te.placeholder((5, n), name="A")
    k = te.reduce_axis((0, n), name="k")
    C = te.compute((5,), lambda i: getattr(te, combiner)(A[i, k], axis=k), name="C")
    s = te.create_schedule(C.op)
    ko, ki = s[C].split(k, factor=4)
    s[C].reorder(ko, C.op.axis[0], ki)
    rng = np.random.default_rng(5)
    ref = (lambda a: a.sum(axis=1)) if combiner == "sum" else (lambda a: a.max(axis=1))
    check_sizes(s, [A, C], lambda m: (_rand(rng, 5, m),), ref, [(1,), (3,), (4,), (37,)], rtol=1e-4, atol=1e-4)


# --------------------------------------------------------------------------- conv-like index math


def test_strided_window_with_n_plus_2_sizes():
    """``C[i] = sum_r A[2i + r]`` over A of n + 2 elements, C of (n - 1) // 2 + 1."""
    n = te.size_var("n")
    A = te.placeholder((n + 2,), name="A")
    r = te.reduce_axis((0, 3), name="r")
    C = te.compute(((n - 1) // 2 + 1,), lambda i: te.sum(A[2 * i + r], axis=r), name="C")
    s = te.create_schedule(C.op)
    o, i = s[C].split(C.op.axis[0], factor=4)
    s[C].parallel(o)
    rng = np.random.default_rng(6)

    def ref(a):
        m = (len(a) - 3) // 2 + 1
        return np.array([a[2 * i:2 * i + 3].sum() for i in range(m)], "float32")
    check_sizes(s, [A, C], lambda m: (_rand(rng, m + 2),), ref, [(1,), (2,), (7,), (30,), (31,)])


def test_padded_window_computed_at_the_consumer():
    """A zero-padded copy (n + 2) computed inside the consumer's split loop: bound inference gives
    a constant 6-element region per iteration, guarded at the tensor's symbolic end."""
    n = te.size_var("n")
    A = te.placeholder((n,), name="A")
    P = te.compute((n + 2,), lambda i: te.if_then_else(te.all(i >= 1, i < n + 1), A[i - 1], 0.0), name="P")
    r = te.reduce_axis((0, 3), name="r")
    C = te.compute((n,), lambda i: te.sum(P[i + r], axis=r), name="C")
    s = te.create_schedule(C.op)
    io, ii = s[C].split(C.op.axis[0], factor=4)
    s[P].compute_at(s[C], io)
    assert "allocate(float32[6]" in str(loopc.lower(s, [A, C]))
    rng = np.random.default_rng(7)

    def ref(a):
        p = np.pad(a, 1)
        return np.array([p[i:i + 3].sum() for i in range(len(a))], "float32")
    check_sizes(s, [A, C], lambda m: (_rand(rng, m),), ref, [(1,), (2,), (5,), (29,)])


def test_a_region_over_a_symbolic_loop_is_the_whole_extent():
    """A producer attached outside a loop of symbolic extent: its region there is the tensor's
    whole (symbolic) row, allocated at run time."""
    n, m = te.size_var("n"), te.size_var("m")
    A = te.placeholder((n, m), name="A")
    P = te.compute((n, m), lambda i, j: A[i, j] * 2.0, name="P")
    C = te.compute((n, m), lambda i, j: P[i, m - 1 - j] + 1.0, name="C")
    s = te.create_schedule(C.op)
    s[P].compute_at(s[C], C.op.axis[0])
    text = str(loopc.lower(s, [A, C]))
    assert "allocate(float32[1, m]" in text, text
    rng = np.random.default_rng(8)
    check_sizes(s, [A, C], lambda a, b: (_rand(rng, a, b),), lambda a: a[:, ::-1] * 2 + 1, [(1, 1), (3, 7), (5, 16)])


# --------------------------------------------------------------------------- checks


def test_arrays_that_disagree_are_argument_errors():
    n = te.size_var("n")
    A = te.placeholder((n, 3), name="A")
    B = te.placeholder((n + 2, 3), name="B")
    C = te.compute((n, 3), lambda i, j: A[i, j] + B[i + 2, j], name="C")
    s = te.create_schedule(C.op)
    f = loopc.build(s, [A, B, C])
    fn = loopc.build(s, [A, B, C, n])
    a, b, c = np.zeros((5, 3), "float32"), np.zeros((7, 3), "float32"), np.zeros((5, 3), "float32")
    f(a, b, c)
    fn(a, b, c, 5)
    with pytest.raises(ArgumentError) as err:          # B must have n + 2 = 7 rows
        f(a, np.zeros((6, 3), "float32"), c)
    assert_one_line(err, "'B'", "dimension 0", "n + 2 = 7")
    with pytest.raises(ArgumentError) as err:          # two arrays disagree about n
        f(a, b, np.zeros((4, 3), "float32"))
    assert_one_line(err, "'C'", "dimension 0", "n = 5")
    with pytest.raises(ArgumentError) as err:          # the explicit n disagrees with the arrays
        fn(a, b, c, 6)
    assert_one_line(err, "'A'", "n = 6")
    with pytest.raises(ArgumentError) as err:          # a size_var is at least 1
        f(np.zeros((0, 3), "float32"), np.zeros((2, 3), "float32"), np.zeros((0, 3), "float32"))
    assert_one_line(err, "n", "at least 1")
    with pytest.raises(ArgumentError) as err:
        fn(a, b, c)
    assert_one_line(err, "takes 4 arguments")
    with pytest.raises(ArgumentError) as err:
        fn(a, b, c, 5.0)
    assert_one_line(err, "'n'", "int")
    with pytest.raises(ArgumentError) as err:          # a wrong rank still names the array
        f(a, b, np.zeros(5, "float32"))
    assert_one_line(err, "'C'")
    func = loopc.lower(s, [A, B, C])
    with pytest.raises(ArgumentError):
        loopc.interp.run(func, a, np.zeros((6, 3), "float32"), c)


def test_a_size_no_argument_binds_is_a_lowering_error_unless_passed():
    n, m = te.size_var("n"), te.var("m")
    A = te.placeholder((n,), name="A")
    C = te.compute((n,), lambda i: A[i] * m.astype("float32"), name="C")
    s = te.create_schedule(C.op)
    with pytest.raises(LoweringError) as err:
        loopc.lower(s, [A, C])
    assert_one_line(err, "m", "args")
    f = loopc.build(s, [A, C, m])
    a, c = np.arange(5, dtype="float32"), np.zeros(5, "float32")
    f(a, c, 3)
    np.testing.assert_array_equal(c, a * 3)


def test_vectorize_and_unroll_need_a_constant_extent():
    n = te.size_var("n")
    A = te.placeholder((n,), name="A")
    C = te.compute((n,), lambda i: A[i] + 1.0, name="C")
    s = te.create_schedule(C.op)
    for primitive in ("vectorize", "unroll"):
        with pytest.raises(ScheduleError, match="split it by a constant factor"):
            getattr(s[C], primitive)(C.op.axis[0])
    o, i = s[C].split(C.op.axis[0], factor=4)
    with pytest.raises(ScheduleError, match="not a compile-time constant"):
        s[C].vectorize(o)
    s[C].unroll(i)                                       # the inner loop is constant: fine
    assert s[C].iter_kinds[i] is ForKind.UNROLLED


def test_reads_are_proved_for_every_size_or_checked_at_call_time():
    n = te.size_var("n")
    A = te.placeholder((n + 2,), name="A")
    ok = te.compute((n,), lambda i: A[i + 2], name="ok")            # proved for all n: nothing deferred
    f = loopc.build(te.create_schedule(ok.op), [A, ok])
    assert f.func.sizes.deferred_ops == ()
    B = te.placeholder((n,), name="B")
    half = te.compute(((n + 1) // 2,), lambda i: B[2 * i], name="half")   # needs floor math: checked per n
    f = loopc.build(te.create_schedule(half.op), [B, half])
    assert f.func.sizes.deferred_ops
    for size in range(1, 10):
        b = np.arange(size, dtype="float32")
        out = np.zeros((size + 1) // 2, "float32")
        f(b, out)
        np.testing.assert_array_equal(out, b[::2])
    bad = te.compute((n,), lambda i: B[i + 1], name="bad")           # leaves B at i = n - 1, for every n
    f = loopc.build(te.create_schedule(bad.op), [B, bad])
    for size in (1, 4):
        with pytest.raises(ArgumentError) as err:
            f(np.zeros(size, "float32"), np.zeros(size, "float32"))
        assert_one_line(err, "B[i + 1]", f"n = {size}")


def test_bounds_checked_build_of_a_symbolic_function():
    s, args = _elementwise("tile_vectorize")
    f = loopc.build(s, args, bounds_check=True)
    rng = np.random.default_rng(9)
    a, b = _rand(rng, 7, 13), _rand(rng, 7, 13)
    c = np.zeros((7, 13), "float32")
    f(a, b, c)
    np.testing.assert_allclose(c, a * 2 + b, rtol=1e-6)


def test_int64_sizes():
    n = te.var("n", "int64")
    A = te.placeholder((n,), name="A")
    C = te.compute((n,), lambda i: A[i] + 1.0, name="C")
    s = te.create_schedule(C.op)
    o, i = s[C].split(C.op.axis[0], factor=8)
    s[C].vectorize(i)
    rng = np.random.default_rng(10)
    check_sizes(s, [A, C], lambda m: (_rand(rng, m),), lambda a: a + 1, [(1,), (9,), (64,)])


# --------------------------------------------------------------------------- random schedules


def _random_schedule(rng):
    """A random legal schedule of ``D = (A*B summed over a symbolic k) + 1`` over symbolic n, m, k."""
    n, m, kk = te.size_var("n"), te.size_var("m"), te.size_var("k")
    A = te.placeholder((n, kk), name="A")
    B = te.placeholder((kk, m), name="B")
    k = te.reduce_axis((0, kk), name="r")
    C = te.compute((n, m), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    D = te.compute((n, m), lambda i, j: C[i, j] + 1.0, name="D")
    s = te.create_schedule(D.op)
    steps = []
    for stage in (s[C], s[D]):
        for _ in range(int(rng.integers(2, 7))):
            leaves = stage.leaf_iter_vars
            free = [iv for iv in leaves if stage.iter_kinds.get(iv, ForKind.SERIAL) is ForKind.SERIAL]
            move = rng.choice(["split", "split", "reorder", "fuse", "annotate", "annotate"])
            if move == "split" and free:
                iv = free[int(rng.integers(len(free)))]
                factor = int(rng.choice([1, 2, 3, 4, 8]))
                stage.split(iv, factor=factor)
                steps.append(f"{stage.name}.split({iv.name}, {factor})")
            elif move == "reorder" and len(leaves) >= 2:
                order = [leaves[int(x)] for x in rng.permutation(len(leaves))]
                stage.reorder(*order)
                steps.append(f"{stage.name}.reorder")
            elif move == "fuse":
                pairs = [(a, b) for a, b in zip(leaves, leaves[1:]) if a.kind == b.kind and a in free and b in free]
                if pairs:
                    a, b = pairs[int(rng.integers(len(pairs)))]
                    stage.fuse(a, b)
                    steps.append(f"{stage.name}.fuse({a.name}, {b.name})")
            elif move == "annotate" and free:
                data = [iv for iv in free if iv.kind.value != "reduce"]
                options = []
                if leaves[-1] in data and isinstance(leaves[-1].extent, int) and leaves[-1].extent <= 16:
                    options.append(("vectorize", leaves[-1]))
                options += [("unroll", iv) for iv in free if isinstance(iv.extent, int) and iv.extent <= 8]
                if leaves[0] in data:
                    options.append(("parallel", leaves[0]))
                if options:
                    primitive, iv = options[int(rng.integers(len(options)))]
                    getattr(stage, primitive)(iv)
                    steps.append(f"{stage.name}.{primitive}({iv.name})")
    if rng.random() < 0.4:
        s[C].compute_at(s[D], s[D].leaf_iter_vars[0])
        steps.append("C.compute_at(D, outermost)")
    return s, [A, B, D], steps


@pytest.mark.parametrize("seed", range(16))
def test_random_schedules_over_symbolic_extents(seed):
    """Random split / reorder / fuse / vectorize / unroll / parallel / compute_at schedules of a
    symbolic matmul-plus-one, each built once and checked at several sizes against NumPy."""
    rng = np.random.default_rng(seed)
    s, args, steps = _random_schedule(rng)
    data = np.random.default_rng(100 + seed)
    try:
        check_sizes(s, args, lambda n, m, k: (_rand(data, n, k), _rand(data, k, m)), lambda a, b: a @ b + 1,
                    [(1, 1, 1), (3, 5, 2), (8, 7, 9), (13, 16, 4)], rtol=1e-4, atol=1e-4)
    except AssertionError as err:
        raise AssertionError(f"schedule {steps}: {err}") from None


# --------------------------------------------------------------------------- CUDA (simulator)


def case_cuda_symbolic():
    """Kernels receive the sizes; the grid is computed at call time; a root intermediate is
    allocated per size."""
    from numba.cuda import config  # noqa: F401 - numba reads NUMBA_ENABLE_CUDASIM on import
    n = te.size_var("n")
    A = te.placeholder((n, 3), name="A")
    T = te.compute((n, 3), lambda i, j: A[i, j] * 2.0, name="T")
    C = te.compute((n, 3), lambda i, j: T[i, j] + 1.0, name="C")
    s = te.create_schedule(C.op)
    for X in (T, C):
        bx, tx = s[X].split(s[X].fuse(*X.op.axis), factor=32)
        s[X].bind(bx, te.thread_axis("blockIdx.x"))
        s[X].bind(tx, te.thread_axis("threadIdx.x"))
    f = loopc.build(s, [A, C], target="cuda")
    assert "(n*3 + 31) // 32" in f.get_source("cuda").replace("_i32(_i64(", "").replace("))", "")
    for size in (1, 7, 40):
        a = np.random.default_rng(size).standard_normal((size, 3)).astype("float32")
        c = np.zeros((size, 3), "float32")
        f(a, c)
        np.testing.assert_allclose(c, 2 * a + 1, rtol=1e-6)
    try:
        f(a, np.zeros((3, 3), "float32"))
    except ArgumentError as err:
        assert "dimension 0" in str(err)
    else:
        raise AssertionError("mismatched arrays were accepted")

    M, K = te.size_var("M"), te.size_var("K")
    A = te.placeholder((M, K), name="A")
    B = te.placeholder((K, 5), name="B")
    k = te.reduce_axis((0, K), name="k")
    C = te.compute((M, 5), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    s = te.create_schedule(C.op)
    bx, tx = s[C].split(C.op.axis[0], factor=4)
    s[C].bind(bx, te.thread_axis("blockIdx.x"))
    s[C].bind(tx, te.thread_axis("threadIdx.x"))
    f = loopc.build(s, [A, B, C, M], target="cuda")
    for m, kk in ((1, 1), (7, 3), (9, 13)):
        a = np.random.default_rng(m).standard_normal((m, kk)).astype("float32")
        b = np.random.default_rng(kk).standard_normal((kk, 5)).astype("float32")
        c = np.zeros((m, 5), "float32")
        f(a, b, c, m)
        np.testing.assert_allclose(c, a @ b, rtol=1e-4, atol=1e-5)


def case_cuda_symbolic_thread_extent_is_an_error():
    from numba.cuda import config  # noqa: F401
    n = te.size_var("n")
    A = te.placeholder((n,), name="A")
    C = te.compute((n,), lambda i: A[i] + 1.0, name="C")
    s = te.create_schedule(C.op)
    s[C].bind(C.op.axis[0], te.thread_axis("threadIdx.x"))
    try:
        loopc.build(s, [A, C], target="cuda")
    except loopc.BuildError as err:
        assert "symbolic extent" in str(err) and "constant factor" in str(err), err
    else:
        raise AssertionError("a symbolic threadIdx extent was accepted")


@pytest.mark.parametrize("case", ["case_cuda_symbolic", "case_cuda_symbolic_thread_extent_is_an_error"])
def test_cuda_simulator(case):
    from test_cuda_sim import run_in_simulator
    proc = run_in_simulator(case, module="test_symbolic")
    assert proc.returncode == 0, f"{case} failed in the simulator:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
