"""The compiled Module: argument checks before native code, sources, timing, threads,
lifetime, and what the generated assembly uses on this CPU."""
from __future__ import annotations

import gc
import platform
import statistics

import numpy as np
import pytest

import loopc
import loopc.interp
from loopc import ArgumentError, LoopcError, te
from loopc.runtime import threads

from conftest import assert_subprocess_ok, has_cpu_flag, matmul, run_python

M, N = 7, 13
IS_X86 = platform.machine().lower() in ("x86_64", "amd64", "i686", "x86")


@pytest.fixture(scope="module")
def add_kernel():
    """C = A + B on (7, 13) float32, built once for the module's argument tests."""
    A = te.placeholder((M, N), name="A")
    B = te.placeholder((M, N), name="B")
    C = te.compute((M, N), lambda i, j: A[i, j] + B[i, j], name="C")
    s = te.create_schedule(C.op)
    return loopc.build(s, [A, B, C], name="add_kernel"), loopc.lower(s, [A, B, C], name="add_kernel")


def arrays(seed=0):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((M, N)).astype(np.float32)
    b = rng.standard_normal((M, N)).astype(np.float32)
    c = np.full((M, N), np.nan, dtype=np.float32)
    return a, b, c


def test_module_computes(add_kernel):
    f, _ = add_kernel
    a, b, c = arrays()
    f(a, b, c)
    np.testing.assert_array_equal(c, a + b)
    assert f.name == "add_kernel"
    assert "add_kernel" in repr(f) and "A: float32[7, 13]" in repr(f)


# --------------------------------------------------------------------------- argument checks


def _bad_calls():
    a, b, c = arrays()
    base = np.zeros((N, M), dtype=np.float32)
    ro = c.copy()
    ro.setflags(write=False)
    wide = np.zeros((M, 2 * N), dtype=np.float32)
    return {
        "too few": ((a, b), r"takes 3 arrays .* called with 2"),
        "too many": ((a, b, c, c), r"takes 3 arrays .* called with 4"),
        "not an ndarray": ((a.tolist(), b, c), r"argument 0 \('A'\) must be a numpy.ndarray"),
        "a scalar": ((a, 1.0, c), r"argument 1 \('B'\) must be a numpy.ndarray"),
        "wrong dtype": ((a.astype(np.float64), b, c), r"argument 0 \('A'\) has dtype float64, expected float32"),
        "wrong output dtype": ((a, b, np.zeros((M, N), np.int32)), r"argument 2 \('C'\) has dtype int32"),
        "big-endian": ((a.astype(">f4"), b, c), r"argument 0 \('A'\) has dtype >f4, expected float32"),
        "wrong shape": ((a, b.reshape(N, M), c), r"argument 1 \('B'\) has shape \(13, 7\), expected \(7, 13\)"),
        "flat": ((a.reshape(-1), b, c), r"has shape \(91,\)"),
        "transposed view": ((base.T, b, c), r"argument 0 \('A'\) is not C-contiguous"),
        "strided slice": ((a, wide[:, ::2], c), r"argument 1 \('B'\) is not C-contiguous"),
        "read-only output": ((a, b, ro), r"argument 2 \('C'\) is an output but the array is read-only"),
        "output is an input": ((a, b, a), r"output argument 2 \('C'\) overlaps argument 0 \('A'\)"),
    }


BAD_CALLS = list(_bad_calls())


@pytest.mark.parametrize("case", BAD_CALLS)
def test_argument_errors(add_kernel, case):
    f, func = add_kernel
    args, pattern = _bad_calls()[case]
    with pytest.raises(ArgumentError, match=pattern):
        f(*args)
    # the interpreter checks the same things (except aliasing, which it tolerates, and
    # read-only outputs: test_interp_refuses_read_only_output)
    if case not in ("output is an input", "read-only output"):
        with pytest.raises(ArgumentError):
            loopc.interp.run(func, *args)


def test_interp_refuses_read_only_output(add_kernel):
    _, func = add_kernel
    a, b, c = arrays()
    c.setflags(write=False)
    with pytest.raises(ArgumentError, match="read-only"):
        loopc.interp.run(func, a, b, c)


def test_argument_error_is_a_type_error_and_nothing_ran(add_kernel):
    f, _ = add_kernel
    a, b, c = arrays()
    with pytest.raises(TypeError):
        f(a, b.astype(np.float64), c)
    assert np.isnan(c).all()    # the kernel never started


def test_output_overlapping_an_input_view():
    """An output that shares memory with an input through a shifted view is refused."""
    A = te.placeholder((29,), name="A")
    C = te.compute((29,), lambda i: A[i] * 2.0, name="C")
    f = loopc.build(te.create_schedule(C.op), [A, C])
    buf = np.arange(30, dtype=np.float32)
    with pytest.raises(ArgumentError, match="overlaps"):
        f(buf[:29], buf[1:])
    c = np.zeros(29, dtype=np.float32)
    f(buf[:29], c)
    np.testing.assert_array_equal(c, buf[:29] * 2)


def test_inputs_may_alias_and_be_read_only(add_kernel):
    f, _ = add_kernel
    a, _, c = arrays()
    a.setflags(write=False)
    f(a, a, c)                  # the same read-only array for both inputs
    np.testing.assert_array_equal(c, a + a)


def test_unaligned_arrays_are_computed_or_refused():
    """float32 arrays at an odd byte offset: either correct results or an ArgumentError,
    never a crash (run in a child process)."""
    code = """
        import numpy as np, loopc
        from loopc import te
        A = te.placeholder((7, 37), name="A")
        C = te.compute((7, 37), lambda i, j: A[i, j] * 3.0, name="C")
        s = te.create_schedule(C.op)
        _, ji = s[C].split(C.op.axis[1], factor=16)
        s[C].vectorize(ji)
        f = loopc.build(s, [A, C])
        raw = np.zeros(2 * 4 * 259 + 8, dtype=np.uint8)
        a = np.frombuffer(raw.data, dtype=np.float32, count=259, offset=1).reshape(7, 37)
        c = np.frombuffer(raw.data, dtype=np.float32, count=259, offset=4 * 259 + 3).reshape(7, 37)
        assert not a.flags.aligned and not c.flags.aligned and c.flags.writeable
        a[...] = np.arange(259, dtype=np.float32).reshape(7, 37)
        try:
            f(a, c)
        except loopc.ArgumentError as err:
            print("refused:", err)
        else:
            assert (c == a * 3).all(), c
            print("computed")
    """
    proc = run_python(code)
    assert_subprocess_ok(proc)
    assert "computed" in proc.stdout or "refused" in proc.stdout


def test_arrays_far_smaller_than_declared_do_not_crash_the_process():
    code = """
        import numpy as np, loopc
        from loopc import te
        A = te.placeholder((1000, 1000), name="A")
        B = te.compute((1000, 1000), lambda i, j: A[i, j] * 2.0, name="B")
        f = loopc.build(te.create_schedule(B.op), [A, B])
        tiny_a, tiny_b = np.zeros((2, 2), np.float32), np.zeros((2, 2), np.float32)
        for args in [(tiny_a, tiny_b), (np.zeros(3, np.float32), tiny_b), (tiny_a,)]:
            try:
                f(*args)
            except loopc.ArgumentError as err:
                print("caught:", err)
            else:
                raise SystemExit("no ArgumentError for " + repr([a.shape for a in args]))
        print("survived")
    """
    proc = run_python(code)
    assert_subprocess_ok(proc, "survived")
    assert proc.stdout.count("caught:") == 3


# --------------------------------------------------------------------------- sources


def test_get_source(add_kernel):
    f, func = add_kernel
    ir_text = f.get_source("ir")
    assert ir_text == str(func)
    assert ir_text.startswith("def add_kernel(A: float32[7, 13], B: float32[7, 13], C: float32[7, 13]):")
    llvm_text = f.get_source("llvm")
    assert "define" in llvm_text and "add_kernel" in llvm_text and "fadd" in llvm_text
    asm = f.get_source("asm")
    assert "add_kernel" in asm
    with pytest.raises(LoopcError, match="unknown source format"):
        f.get_source("pdf")


def _vector_add_module(lanes, n=61, target="llvm"):
    A = te.placeholder((n,), name="A")
    B = te.placeholder((n,), name="B")
    C = te.compute((n,), lambda i: A[i] + B[i], name="C")
    s = te.create_schedule(C.op)
    _, inner = s[C].split(C.op.axis[0], factor=lanes)
    s[C].vectorize(inner)
    f = loopc.build(s, [A, B, C], target=target, name=f"vadd{lanes}")
    a = np.arange(n, dtype=np.float32)
    b = np.full(n, 0.5, dtype=np.float32)
    c = np.zeros(n, dtype=np.float32)
    f(a, b, c)
    np.testing.assert_array_equal(c, a + b)
    return f


@pytest.mark.skipif(not (IS_X86 and has_cpu_flag("avx2")), reason="needs an x86 CPU with AVX2")
def test_vectorized_8_lanes_use_ymm_registers():
    f = _vector_add_module(8)
    assert "<8 x float>" in f.get_source("llvm")
    assert "ymm" in f.get_source("asm")


@pytest.mark.skipif(not IS_X86, reason="x86 only")
def test_target_options_are_honoured():
    """``-mcpu=x86-64`` (SSE2 only): the same 8-lane loop may not use 256-bit registers."""
    f = _vector_add_module(8, target="llvm -mcpu=x86-64")
    asm = f.get_source("asm")
    assert "ymm" not in asm and "zmm" not in asm
    assert "xmm" in asm
    assert "-mcpu=x86-64" in f.target


@pytest.mark.avx512
@pytest.mark.skipif(not (IS_X86 and has_cpu_flag("avx512f")), reason="needs a CPU with AVX-512 (avx512f)")
def test_vectorized_16_lanes_use_zmm_registers():
    f = _vector_add_module(16)
    assert "<16 x float>" in f.get_source("llvm")
    assert "zmm" in f.get_source("asm")


# --------------------------------------------------------------------------- timing


def test_time_evaluator(add_kernel):
    f, _ = add_kernel
    a, b, c = arrays()
    res = f.time_evaluator(number=3, repeat=4)(a, b, c)
    assert len(res.results) == 4
    assert all(t > 0 for t in res.results)
    assert res.mean > 0 and res.median > 0
    assert res.mean == pytest.approx(statistics.fmean(res.results))
    assert res.median == pytest.approx(statistics.median(res.results))
    assert res.mean < 0.1                     # a 91-element add takes microseconds, not 100 ms
    np.testing.assert_array_equal(c, a + b)  # the timed calls really ran the kernel


def test_time_evaluator_min_repeat_ms(add_kernel):
    f, _ = add_kernel
    a, b, c = arrays()
    res = f.time_evaluator(number=1, repeat=2, min_repeat_ms=5)(a, b, c)
    assert len(res.results) == 2 and res.mean > 0
    # with one call per round a round would last microseconds: number must have grown
    assert res.mean < 5e-3


def test_time_evaluator_checks_arguments(add_kernel):
    f, _ = add_kernel
    a, b, c = arrays()
    with pytest.raises(ArgumentError):
        f.time_evaluator(number=1, repeat=1)(a, b)
    for bad in (dict(number=0), dict(repeat=-1), dict(number=1.5), dict(min_repeat_ms=float("nan"))):
        with pytest.raises(ArgumentError, match=next(iter(bad))):
            f.time_evaluator(**{"number": 1, "repeat": 1, **bad})(a, b, c)


# --------------------------------------------------------------------------- threads


def test_parallel_kernel_same_numbers_with_1_and_2_threads():
    wl = matmul(37, 13, 29)
    s = wl.schedule()
    i, j = wl.C.op.axis
    io, ii = s[wl.C].split(i, factor=3)
    s[wl.C].parallel(io)
    _, ji = s[wl.C].split(j, factor=8)
    s[wl.C].vectorize(ji)
    f = loopc.build(s, wl.args)
    rng = np.random.default_rng(0)
    a = rng.standard_normal((37, 13)).astype(np.float32)
    b = rng.standard_normal((13, 29)).astype(np.float32)
    before = threads.num_threads()
    results = []
    try:
        for n in (1, 2):
            threads.set_num_threads(n)
            if threads.libgomp() is not None:
                assert threads.num_threads() == n
            c = np.full((37, 29), np.nan, dtype=np.float32)
            f(a, b, c)
            results.append(c)
    finally:
        threads.set_num_threads(before)
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_allclose(results[0], wl.ref(a, b), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_set_num_threads_rejects_bad_values(bad):
    with pytest.raises(ArgumentError, match="set_num_threads"):
        threads.set_num_threads(bad)


# --------------------------------------------------------------------------- lifetime


def _build_and_forget():
    A = te.placeholder((M, N), name="A")
    k = te.reduce_axis((0, N), name="k")
    C = te.compute((M,), lambda i: te.sum(A[i, k] * A[i, k], axis=k), name="C")
    s = te.create_schedule(C.op)
    s[C].parallel(C.op.axis[0])
    func = loopc.lower(s, [A, C])
    f = loopc.build(s, [A, C])
    del s, func, A, C, k
    return f


def test_module_outlives_schedule_and_lowered_func():
    f = _build_and_forget()
    gc.collect()
    _vector_add_module(8)    # more JIT activity in between
    gc.collect()
    a = np.random.default_rng(1).standard_normal((M, N)).astype(np.float32)
    c = np.zeros(M, dtype=np.float32)
    f(a, c)
    np.testing.assert_allclose(c, (a * a).sum(axis=1), rtol=1e-5)
    assert "define" in f.get_source("llvm")


def test_load_monitor_leaves_busy_cores_to_other_processes(monkeypatch):
    """The automatic thread count: other processes using a core take it (a spinning team
    would wait for a descheduled thread every kernel); when they stop, every core comes back."""
    calls = []

    class FakeGomp:
        def omp_set_num_threads(self, n):
            calls.append(n.value)
    monkeypatch.setattr(threads, "libgomp", lambda: FakeGomp())
    clock = {"t": 100.0, "busy": 0.0, "own": 0.0}
    monkeypatch.setattr(threads.time, "monotonic", lambda: clock["t"])
    mon = threads.LoadMonitor()
    mon.cores, mon.active = 4, True
    monkeypatch.setattr(mon, "_machine_busy", lambda: clock["busy"])
    monkeypatch.setattr(mon, "_own", lambda: clock["own"])

    def window(own_cores, other_cores, seconds=0.2):
        clock["t"] += seconds
        clock["own"] += own_cores * seconds
        clock["busy"] += (own_cores + other_cores) * seconds
        mon.check()
        return mon.threads

    mon.check()                                  # the first look is a baseline
    assert window(4.0, 0.0) == 4
    assert window(3.0, 1.0) == 3                 # one core taken by another process
    assert window(2.0, 2.2) == 2
    assert window(1.0, 3.6) == 1                 # never fewer than one
    assert window(1.0, 0.4) == 1                 # in between: keep the decision (hysteresis)
    assert window(4.0, 0.1) == 4                 # the machine is free again
    clock["t"] += 60                             # a long pause: a fresh baseline, no decision
    mon.check()
    assert mon.threads == 4 and calls == [4, 3, 2, 1, 4]
