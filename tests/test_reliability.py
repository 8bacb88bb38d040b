"""Regression tests of the reliability issue: each program loopc accepts computes what numpy
computes (on the LLVM target and in the reference interpreter), and each mistake is a clear
LoopcError. Cases that could crash the process run in a subprocess."""
import json

import numpy as np
import pytest

import loopc
from conftest import run_python
from loopc import te


def _both(s, args, *arrays):
    """Run the schedule natively and in the interpreter; return both outputs (the last array)."""
    out_native = [a.copy() for a in arrays]
    loopc.build(s, args)(*out_native)
    out_interp = [a.copy() for a in arrays]
    loopc.interp.run(loopc.lower(s, args), *out_interp)
    return out_native[-1], out_interp[-1]


_run_isolated = run_python     # a crash shows as a negative return code, not a dead pytest


# --------------------------------------------------------------------------- vector lanes


@pytest.mark.parametrize("n", [1, 5, 8])
@pytest.mark.parametrize("vector_loop", ["i", "j.outer"])
def test_stage_computed_inside_a_vectorized_loop(n, vector_loop):
    """``vectorize(i); compute_at(B, C, j)``: each lane of i computes its own copy of B."""
    A = te.placeholder((n, n + 2), name="A")
    B = te.compute((n, n + 2), lambda i, j: A[i, j] * 2 + 1, name="B")
    C = te.compute((n, n + 1), lambda i, j: B[i, j] + B[i, j + 1], name="C")
    s = te.create_schedule(C.op)
    i, j = C.op.axis
    jo, ji = s[C].split(j, factor=2)
    if vector_loop == "i":
        s[C].vectorize(i)
        s[B].compute_at(s[C], ji)
    else:
        s[C].reorder(jo, i, ji)
        s[C].vectorize(jo)
        s[B].compute_at(s[C], i)
    a = np.random.default_rng(n).standard_normal((n, n + 2)).astype("float32")
    b = a * 2 + 1
    native, interp = _both(s, [A, C], a, np.zeros((n, n + 1), "float32"))
    np.testing.assert_allclose(native, b[:, :-1] + b[:, 1:], rtol=1e-6)
    np.testing.assert_allclose(interp, native, rtol=1e-6)


def test_register_tile_under_a_vectorized_outer_loop():
    """cache_write + compute_at at a loop nested in a vectorized one (a matmul, prime sizes)."""
    M, N, K = 13, 11, 7
    A = te.placeholder((M, K), name="A")
    B = te.placeholder((K, N), name="B")
    k = te.reduce_axis((0, K), name="k")
    C = te.compute((M, N), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    s = te.create_schedule(C.op)
    CL = s.cache_write(C, "local")
    i, j = C.op.axis
    io, ii = s[C].split(i, factor=4)
    s[C].reorder(ii, io, j)
    s[C].vectorize(ii)
    s[CL].compute_at(s[C], j)
    rng = np.random.default_rng(0)
    a, b = rng.random((M, K), dtype=np.float32), rng.random((K, N), dtype=np.float32)
    native, interp = _both(s, [A, B, C], a, b, np.zeros((M, N), "float32"))
    np.testing.assert_allclose(native, a @ b, rtol=1e-5)
    np.testing.assert_allclose(interp, a @ b, rtol=1e-5)
    text = str(loopc.lower(s, [A, B, C]))
    assert "float32[1, 1, 4]" in text           # one accumulator per lane


def test_vectorized_loop_inside_a_vectorized_loop_runs_serially():
    A = te.placeholder((4, 6), name="A")
    B = te.compute((4, 6), lambda i, j: A[i, j] + 1, name="B")
    C = te.compute((4, 6), lambda i, j: B[i, j] * 3, name="C")
    s = te.create_schedule(C.op)
    s[C].vectorize(C.op.axis[0])
    s[B].compute_at(s[C], C.op.axis[1])
    s[B].vectorize(B.op.axis[1])
    text = str(loopc.lower(s, [A, C]))
    assert text.count("vectorized(") == 1
    a = np.arange(24, dtype="float32").reshape(4, 6)
    native, _ = _both(s, [A, C], a, np.zeros((4, 6), "float32"))
    np.testing.assert_array_equal(native, (a + 1) * 3)


# --------------------------------------------------------------------------- bound inference


@pytest.mark.parametrize("rows, cols, factor", [(11, 6, 3), (11, 7, 3), (5, 4, 2), (3, 5, 5), (7, 6, 4)])
def test_compute_at_after_fuse_and_split_computes_only_what_is_read(rows, cols, factor):
    A = te.placeholder((rows, cols), name="A")
    B = te.compute((rows, cols), lambda i, j: A[i, j] * 2, name="B")
    C = te.compute((rows, cols), lambda i, j: B[i, j] + 1, name="C")
    s = te.create_schedule(C.op)
    fused = s[C].fuse(*C.op.axis)
    fo, _ = s[C].split(fused, factor=factor)
    s[B].compute_at(s[C], fo)
    func = loopc.lower(s, [A, C])
    buf = next(x.buffer for x in loopc.ir.walk_stmt(func.body) if isinstance(x, loopc.ir.Allocate))
    assert buf.size < rows * cols          # a region, not the whole producer per iteration
    if cols % factor == 0:
        assert buf.shape == (1, factor)    # one row, ``factor`` columns
    a = np.random.default_rng(1).standard_normal((rows, cols)).astype("float32")
    native, interp = _both(s, [A, C], a, np.zeros((rows, cols), "float32"))
    np.testing.assert_allclose(native, a * 2 + 1, rtol=1e-6)
    np.testing.assert_allclose(interp, a * 2 + 1, rtol=1e-6)


# --------------------------------------------------------------------------- integers


INT_CASES = {
    "add_max": (lambda a, b: te.max(a + b, 0), lambda a, b: np.maximum(a + b, 0)),
    "mul_sub": (lambda a, b: a * b - b * 3, lambda a, b: a * b - b * np.array(3, a.dtype)),
    "floordiv": (lambda a, b: a // b, lambda a, b: np.floor_divide(a, b)),
    "floormod": (lambda a, b: a % b, lambda a, b: np.mod(a, b)),
    "abs_neg": (lambda a, b: te.abs(a) - b, lambda a, b: np.abs(a) - b),
}


@pytest.mark.parametrize("dtype", ["int32", "int64"])
@pytest.mark.parametrize("case", sorted(INT_CASES))
@pytest.mark.parametrize("vector", [False, True])
def test_integer_arithmetic_wraps_like_numpy(dtype, case, vector):
    """Two's-complement wrap at the dtype's width, INT_MIN // -1 == INT_MIN, x // 0 == 0."""
    make, ref = INT_CASES[case]
    info = np.iinfo(dtype)
    a = np.array([info.max, info.min, info.min, 7, -7, info.max, 0, 1], dtype)
    b = np.array([1, -1, 1, 0, -1, info.max, -1, info.min], dtype)
    A = te.placeholder((8,), dtype, name="A")
    B = te.placeholder((8,), dtype, name="B")
    C = te.compute((8,), lambda i: make(A[i], B[i]), name="C")
    s = te.create_schedule(C.op)
    if vector:
        s[C].vectorize(C.op.axis[0])
    with np.errstate(all="ignore"):
        expected = ref(a, b)
    native, interp = _both(s, [A, B, C], a, b, np.zeros(8, dtype))
    np.testing.assert_array_equal(native, expected)
    np.testing.assert_array_equal(interp, expected)


def test_index_arithmetic_that_overflows_int32_wraps():
    A = te.placeholder((8,), "int32", name="A")
    C = te.compute((8,), lambda i: i * 1000000000 + A[i], name="C")
    s = te.create_schedule(C.op)
    a = np.arange(8, dtype="int32")
    with np.errstate(all="ignore"):
        expected = np.arange(8, dtype="int32") * np.int32(1000000000) + a
    native, interp = _both(s, [A, C], a, np.zeros(8, "int32"))
    np.testing.assert_array_equal(native, expected)
    np.testing.assert_array_equal(interp, expected)


def test_int64_division_by_minus_one_does_not_trap():
    """INT64_MIN // -1 traps in the CPU's divide instruction (SIGFPE): checked in a subprocess."""
    proc = _run_isolated("""
        import numpy as np, loopc
        from loopc import te
        A = te.placeholder((3,), "int64", name="A"); B = te.placeholder((3,), "int64", name="B")
        C = te.compute((3,), lambda i: A[i] // B[i] + A[i] % B[i], name="C")
        f = loopc.build(te.create_schedule(C.op), [A, B, C])
        a = np.array([np.iinfo("int64").min, 5, -9], "int64"); b = np.array([-1, -1, 0], "int64")
        c = np.zeros(3, "int64"); f(a, b, c); print(c.tolist())
    """)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [np.iinfo("int64").min, -5, 0]


# --------------------------------------------------------------------------- scalars, dtypes


def test_rank0_tensors_build_and_run():
    """A dot product into a scalar, and a scalar input broadcast over a vector."""
    A = te.placeholder((5,), name="A")
    B = te.placeholder((5,), name="B")
    k = te.reduce_axis((0, 5), name="k")
    D = te.compute((), lambda: te.sum(A[k] * B[k], axis=k), name="D")
    S = te.placeholder((), name="S")
    E2 = te.compute((5,), lambda i: A[i] * S[()] + D[()], name="E2")
    s = te.create_schedule(E2.op)
    a, b = np.arange(5, dtype="float32"), np.ones(5, "float32")
    native, interp = _both(s, [A, B, S, E2], a, b, np.array(3, "float32"), np.zeros(5, "float32"))
    np.testing.assert_allclose(native, a * 3 + a.sum())
    np.testing.assert_allclose(interp, a * 3 + a.sum())
    s2 = te.create_schedule(D.op)
    native, interp = _both(s2, [A, B, D], a, b, np.zeros((), "float32"))
    assert native.shape == () and float(native) == pytest.approx(a.sum())
    assert float(interp) == pytest.approx(a.sum())


def test_if_then_else_of_two_booleans_is_boolean():
    assert te.if_then_else(te.const(True), te.const(False), te.const(True)).dtype == "bool"
    A = te.placeholder((6,), name="A")
    C = te.compute((6,), lambda i: te.if_then_else(A[i] > 0, te.const(False), te.const(True)), name="C")
    assert C.dtype == "bool"
    a = np.array([-1, 2, 0, 3, -4, 5], "float32")
    native, interp = _both(te.create_schedule(C.op), [A, C], a, np.zeros(6, bool))
    np.testing.assert_array_equal(native, ~(a > 0))
    np.testing.assert_array_equal(interp, ~(a > 0))


# --------------------------------------------------------------------------- splits


@pytest.mark.parametrize("kw", [dict(factor=2**40), dict(nparts=2**40), dict(factor=13), dict(nparts=100)])
def test_split_past_the_extent_is_one_loop_of_the_extent(kw):
    A = te.placeholder((13,), name="A")
    C = te.compute((13,), lambda i: A[i] + 1, name="C")
    s = te.create_schedule(C.op)
    outer, inner = s[C].split(C.op.axis[0], **kw)
    assert outer.extent * inner.extent == 13
    a = np.arange(13, dtype="float32")
    native, _ = _both(s, [A, C], a, np.zeros(13, "float32"))
    np.testing.assert_array_equal(native, a + 1)


# --------------------------------------------------------------------------- clear errors


def _pipeline():
    A = te.placeholder((8, 8), name="A")
    B = te.compute((8, 8), lambda i, j: A[i, j] * 2, name="B")
    C = te.compute((8, 8), lambda i, j: B[i, j] + 1, name="C")
    D = te.compute((8, 8), lambda i, j: C[i, j] + 1, name="D")
    return A, B, C, D, te.create_schedule(D.op)


def _attach_then_inline(A, B, C, D, s):
    s[B].compute_at(s[C], C.op.axis[0])
    s[C].compute_inline()


def _inline_then_attach(A, B, C, D, s):
    s[C].compute_inline()
    s[B].compute_at(s[C], C.op.axis[0])


SCHEDULE_MISTAKES = {
    "compute_at into a stage later inlined": (_attach_then_inline, "compute_inline.*computed at"),
    "compute_at into an inlined stage": (_inline_then_attach, "compute_at.*inlined"),
    "layout with a string": (lambda A, B, C, D, s: s.cache_read(A, "local", [B], layout=(0, "a")), "layout"),
    "block not a mapping": (lambda A, B, C, D, s: s.cache_read(A, "local", [B], block=[1]), "block"),
    "cache_write on a placeholder": (lambda A, B, C, D, s: s.cache_write(A, "local"), "cache_write.*placeholder"),
    "rfactor on a placeholder": (lambda A, B, C, D, s: s.rfactor(A, B.op.axis[0]), "rfactor.*placeholder"),
    "bind on an inlined stage": (lambda A, B, C, D, s: (s[B].compute_inline(),
                                                        s[B].bind(B.op.axis[0], te.thread_axis("blockIdx.x"))),
                                 "bind.*inlined"),
    "deeply nested trace": (lambda A, B, C, D, s: s.replay("[" * 100000 + "]" * 100000), "nested"),
    "deeply nested step": (lambda A, B, C, D, s: s.replay([{"stage": "D", "primitive": "split",
                                                             "args": {"axis": json.loads("[" * 900 + "]" * 900)}}]),
                           "malformed"),
}


@pytest.mark.parametrize("case", sorted(SCHEDULE_MISTAKES))
def test_schedule_mistakes_are_schedule_errors(case):
    fn, pattern = SCHEDULE_MISTAKES[case]
    with pytest.raises(loopc.ScheduleError, match=pattern):
        fn(*_pipeline())


# --------------------------------------------------------------------------- pooling


@pytest.mark.parametrize("fill", [-np.inf, np.finfo("float32").min, -1e30])
def test_max_pool_pads_with_minus_infinity(fill):
    """A window that holds only padding and ``fill`` returns ``fill`` (PyTorch pads with -inf)."""
    import warnings
    from loopc import schedules
    from loopc.schedules import testing
    X = te.placeholder((1, 2, 5, 5), name="X")
    Y = schedules.max_pool2d(X, 3, 2, 1)
    x = np.full((1, 2, 5, 5), fill, "float32")
    x[0, 1, 2:, 2:] = 7.0
    expected = testing.max_pool2d(x, 3, 2, 1)
    assert expected[0, 0, 0, 0] == np.float32(fill)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = schedules.schedule(Y)
    native, interp = _both(s, [X, Y], x, np.zeros(Y.shape, "float32"))
    np.testing.assert_array_equal(native, expected)
    np.testing.assert_array_equal(interp, expected)


# --------------------------------------------------------------------------- reads outside a buffer


OUT_OF_BOUNDS = {
    "far past the end": (lambda A, i: A[i + 1000000], "1000007"),
    "one before the start": (lambda A, i: A[i - 1], "-1 at i=0"),
    "guard too weak": (lambda A, i: te.if_then_else(i >= 0, A[i - 1], 0.0), "-1 at i=0"),
    "division": (lambda A, i: A[(i + 9) // 2], "is 8 at i=7"),
    "reduction where= too weak": (None, "A"),
}


@pytest.mark.parametrize("case", sorted(OUT_OF_BOUNDS))
def test_reads_that_can_leave_the_tensor_are_lowering_errors(case):
    make, detail = OUT_OF_BOUNDS[case]
    A = te.placeholder((8,), name="A")
    if make is None:
        k = te.reduce_axis((0, 9), name="k")
        C = te.compute((1,), lambda i: te.sum(A[k], axis=k, where=k < 9), name="C")
    else:
        C = te.compute((8,), lambda i: make(A, i), name="C")
    with pytest.raises(loopc.LoweringError, match=r"reads A\[.*outside") as info:
        loopc.lower(te.create_schedule(C.op), [A, C])
    assert detail in str(info.value)


@pytest.mark.parametrize("seed", range(20))
def test_guarded_reads_that_stay_inside_are_accepted(seed):
    """Random shifted reads under the guard that makes them legal: accepted, and right."""
    rng = np.random.default_rng(seed)
    n, shift, scale = int(rng.integers(1, 12)), int(rng.integers(-5, 6)), int(rng.integers(1, 4))
    A = te.placeholder((n,), name="A")
    k = te.reduce_axis((0, 3), name="k")

    def body(i):
        j = i * scale + k + shift
        return te.sum(te.if_then_else(te.all(j >= 0, j < n), A[j], 0.0), axis=k)
    C = te.compute((n,), body, name="C")
    a = rng.standard_normal(n).astype("float32")
    expected = np.array([sum(a[j] for j in range(i * scale + shift, i * scale + shift + 3) if 0 <= j < n)
                         for i in range(n)], "float32")
    native, interp = _both(te.create_schedule(C.op), [A, C], a, np.zeros(n, "float32"))
    np.testing.assert_allclose(native, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(interp, expected, rtol=1e-5, atol=1e-6)


def test_bounds_checked_build_raises_on_data_dependent_indices():
    """A[I[i]] past A: a BoundsError from a checked build (in a subprocess: unchecked, it could crash)."""
    proc = _run_isolated("""
        import os, numpy as np, loopc
        from loopc import te
        A = te.placeholder((10,), name="A"); I = te.placeholder((6,), "int32", name="I")
        C = te.compute((6,), lambda i: A[I[i]] * 2, name="C")
        a = np.arange(10, dtype="float32")
        for vector, how in ((False, "kwarg"), (True, "kwarg"), (False, "env")):
            s = te.create_schedule(C.op)
            if vector:
                s[C].vectorize(C.op.axis[0])
            if how == "env":
                os.environ["LOOPC_BOUNDS_CHECK"] = "1"
                f = loopc.build(s, [A, I, C])
            else:
                f = loopc.build(s, [A, I, C], bounds_check=True)
            c = np.zeros(6, "float32")
            f(a, np.array([0, 1, 2, 3, 4, 9], "int32"), c)
            assert c.tolist() == [0, 2, 4, 6, 8, 18], c
            try:
                f(a, np.array([0, 1, 2, 300000000, 4, -5], "int32"), c)
            except loopc.BoundsError as err:
                assert "300000000" in str(err) and "'A'" in str(err), err
            else:
                raise SystemExit("no BoundsError")
            f(a, np.array([5, 1, 2, 3, 4, 9], "int32"), c)     # the module stays usable
            assert c[0] == 10
        print("ok")
    """)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


# --------------------------------------------------------------------------- memory


def test_an_intermediate_larger_than_memory_is_a_build_error():
    A = te.placeholder((4,), name="A")
    B = te.compute((2**20, 2**20), lambda i, j: A[j % 4] * 2, name="B")     # 4 TiB
    C = te.compute((4,), lambda i: B[i, i] + 1, name="C")
    with pytest.raises(loopc.BuildError, match=r"'B'.*4\.0 TiB"):
        loopc.build(te.create_schedule(C.op), [A, C])


def test_a_failed_allocation_is_an_allocation_error():
    """With the address space capped below an intermediate's size, aligned_alloc fails: the
    kernel reports it instead of writing through a null pointer (in a subprocess)."""
    proc = _run_isolated("""
        import resource, numpy as np, loopc
        from loopc import te
        A = te.placeholder((4,), name="A")
        B = te.compute((2**15, 2**15), lambda i, j: A[j % 4] * 2, name="B")        # 4 GiB
        C = te.compute((4,), lambda i: B[i, i] + 1, name="C")
        f = loopc.build(te.create_schedule(C.op), [A, C])
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        used = int(open("/proc/self/statm").read().split()[0]) * resource.getpagesize()
        resource.setrlimit(resource.RLIMIT_AS, (used + 2**30, hard))
        try:
            f(np.ones(4, "float32"), np.zeros(4, "float32"))
        except loopc.AllocationError as err:
            assert "'B'" in str(err), err
            print("ok")
    """)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


# --------------------------------------------------------------------------- targets


@pytest.mark.parametrize("target, pattern", [
    ("llvm -mcpu=bogus", "unknown CPU -mcpu=bogus"),
    ("llvm -mcpu=znver", "did you mean"),
    ("llvm -mcpu=i386", "64-bit"),
    ("llvm -mattr=+bogus", "unknown CPU feature"),
    ("llvm -mattr=avx2", "must be \\+name"),
    ('llvm "-mcpu=x', "malformed target"),
])
def test_bad_cpu_targets_are_build_errors_before_llvm_sees_them(target, pattern):
    """LLVM ends the process on some of these (-mcpu=i386): checked in a subprocess."""
    proc = _run_isolated(f"""
        import loopc
        from loopc import te
        A = te.placeholder((4,), name="A"); C = te.compute((4,), lambda i: A[i] + 1, name="C")
        try:
            loopc.build(te.create_schedule(C.op), [A, C], target={target!r})
        except loopc.BuildError as err:
            print(err)
    """)
    assert proc.returncode == 0, proc.stderr
    import re
    assert re.search(pattern, proc.stdout), proc.stdout


def test_features_the_machine_lacks_are_refused():
    from loopc.targets.llvm import host_target
    host = host_target()
    missing = next((f for f in ("avx512f", "avx512bw", "amx-tile", "avx10.2") if f"-{f}" in host.features), None)
    if missing is None:
        pytest.skip("this CPU has every feature the test could name")
    A = te.placeholder((4,), name="A")
    C = te.compute((4,), lambda i: A[i] + 1, name="C")
    with pytest.raises(loopc.BuildError, match=f"lacks {missing}"):
        loopc.build(te.create_schedule(C.op), [A, C], target=f"llvm -mattr=+{missing}")


# --------------------------------------------------------------------------- found by the fuzzer


def test_compute_at_whose_reads_moved_is_a_lowering_error():
    """compute_at(R.rf, R, i), then cache_read(R.rf, ..., [R]): the copy at the root would read a
    buffer that exists only inside R's loop (a KeyError in codegen before)."""
    X = te.placeholder((11, 3), name="X")
    k = te.reduce_axis((0, 3), name="k")
    R = te.compute((11,), lambda i: te.sum(X[i, k], axis=k), name="R")
    s = te.create_schedule(R.op)
    rf = s.rfactor(R, k)
    s[rf].compute_at(s[R], R.op.axis[0])
    s.cache_read(rf, "global", [R])
    with pytest.raises(loopc.LoweringError, match="R.rf.global read"):
        loopc.lower(s, [X, R])


def test_interpreter_runs_loop_nests_deeper_than_python_blocks():
    """Python compiles at most 20 nested blocks: a 24-deep nest still runs in loopc.interp."""
    A = te.placeholder((3, 4, 5), name="A")
    C = te.compute((3, 4, 5), lambda i, j, k: A[i, j, k] * 2, name="C")
    s = te.create_schedule(C.op)
    for ax in list(C.op.axis):
        outer, inner = s[C].split(ax, factor=2)
        for iv in (outer, inner):
            a, b = s[C].split(iv, factor=1)
            s[C].split(a, factor=1)
    assert len(s[C].leaf_iter_vars) >= 18
    a = np.random.default_rng(0).random((3, 4, 5), dtype=np.float32)
    native, interp = _both(s, [A, C], a, np.zeros_like(a))
    np.testing.assert_array_equal(native, 2 * a)
    np.testing.assert_array_equal(interp, 2 * a)


def test_blocked_cache_read_of_a_boolean_tensor_pads_with_false():
    """block={0: 4} on 5 elements pads the last block: with False, not the int 0 (an LLVM type error before)."""
    A = te.placeholder((5,), name="A")
    M = te.compute((5,), lambda i: A[i] > 0, name="M")
    O = te.compute((5,), lambda i: te.if_then_else(M[i], 1.0, 0.0), name="O")
    s = te.create_schedule(O.op)
    s.cache_read(M, "local", [s[O]], block={0: 4})
    a = np.array([1, -1, 2, -3, 4], "float32")
    native, interp = _both(s, [A, O], a, np.zeros(5, "float32"))
    np.testing.assert_array_equal(native, (a > 0).astype("float32"))
    np.testing.assert_array_equal(interp, (a > 0).astype("float32"))
