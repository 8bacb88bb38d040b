"""te.scan and te.extern (issue 16, item 5): TVM's recurrence op and its function-computed stage,
checked against numpy on the LLVM target, in the interpreter and (scan) in the CUDA simulator."""
import shutil
import subprocess

import numpy as np
import pytest

import loopc
import loopc.interp
from loopc import te
from loopc.errors import (BuildError, ExternCallError, LoopcError, LoweringError, ScheduleError,
                          UnsupportedError)


def run_both(s, args, *inputs):
    """The last argument's value, computed by the LLVM build and by the interpreter (both checked equal)."""
    outs = []
    for runner in ("llvm", "interp"):
        out = np.full([int(d) for d in args[-1].shape], np.nan, args[-1].dtype)
        if runner == "llvm":
            loopc.build(s, args)(*inputs, out)
        else:
            loopc.interp.run(loopc.lower(s, args), *inputs, out)
        outs.append(out)
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-5, atol=1e-6)
    return outs[0]


def cumulative(shape, combine, name="scan"):
    """X and the scan of ``combine(previous row, X row)`` along axis 0."""
    X = te.placeholder(shape, name="X")
    state = te.placeholder(shape, name="state")
    init = te.compute((1,) + shape[1:], lambda *i: X[(0,) + i[1:]], name="init")
    update = te.compute(shape, lambda *i: combine(state[(i[0] - 1,) + i[1:]], X[i]), name="update")
    return X, init, update, te.scan(init, update, state, inputs=[X], name=name)


# --------------------------------------------------------------------------- scan


@pytest.mark.parametrize("shape", [(37, 13), (2, 1), (11,), (5, 3, 7)])
@pytest.mark.parametrize("kind", ["cumsum", "cumprod"])
def test_scan_is_numpy_cumsum_and_cumprod(shape, kind):
    rng = np.random.default_rng([*shape, kind == "cumsum"])
    combine = (lambda a, b: a + b) if kind == "cumsum" else (lambda a, b: a * b)
    X, init, update, scan = cumulative(shape, combine)
    assert scan.shape == shape and scan.op.scan_axis.dom.min == 1 and scan.op.scan_axis.extent == shape[0] - 1
    x = rng.uniform(0.5, 1.5, shape).astype("float32")
    want = np.cumsum(x, axis=0) if kind == "cumsum" else np.cumprod(x, axis=0)
    np.testing.assert_allclose(run_both(te.create_schedule(scan.op), [X, scan], x), want, rtol=1e-5)


def test_two_step_recurrence_reads_two_init_rows():
    """y[t] = y[t-1] + 0.5*y[t-2] + x[t], with y[0], y[1] given: a numpy loop is the reference."""
    rng = np.random.default_rng(7)
    m, n = 23, 5
    X = te.placeholder((m, n), name="X")
    state = te.placeholder((m, n), name="state")
    init = te.compute((2, n), lambda r, i: X[r, i] * (r + 1).astype("float32"), name="init")
    update = te.compute((m, n), lambda t, i: state[t - 1, i] + 0.5 * state[t - 2, i] + X[t, i], name="update")
    fib = te.scan(init, update, state, inputs=[X], name="fib")
    x = rng.standard_normal((m, n)).astype("float32")
    want = np.zeros_like(x)
    want[0], want[1] = x[0], 2 * x[1]
    for t in range(2, m):
        want[t] = want[t - 1] + 0.5 * want[t - 2] + x[t]
    s = te.create_schedule(fib.op)
    assert "for t in range(2, 2 + 21)" in str(loopc.lower(s, [X, fib]))
    np.testing.assert_allclose(run_both(s, [X, fib], x), want, rtol=1e-4, atol=1e-5)


def test_scheduled_update_and_init_split_vectorized_parallel():
    rng = np.random.default_rng(11)
    m, n = 19, 37                                  # no factor divides 37
    X, init, update, scan = cumulative((m, n), lambda a, b: a * 0.9 + b)
    s = te.create_schedule(scan.op)
    assert s[init].attach.value == "scan" and s[update].attach_stage is s[scan]
    io, ii = s[update].split(update.op.axis[1], factor=8)
    s[update].vectorize(ii)
    s[update].parallel(io)
    jo, ji = s[init].split(init.op.axis[1], factor=4)
    s[init].vectorize(ji)
    text = str(loopc.lower(s, [X, scan]))
    assert "for i0 in range(1, 1 + 18)" in text and "vectorized(8)" in text and "parallel" in text
    x = rng.standard_normal((m, n)).astype("float32")
    want = np.zeros_like(x)
    want[0] = x[0]
    for t in range(1, m):
        want[t] = want[t - 1] * np.float32(0.9) + x[t]
    np.testing.assert_allclose(run_both(s, [X, scan], x), want, rtol=1e-5, atol=1e-6)
    fresh = te.create_schedule(scan.op)              # the trace replays the update's schedule
    fresh.replay(s.trace_json())
    assert str(loopc.lower(fresh, [X, scan])) == text


def test_scan_reads_computed_stages_and_feeds_a_compute():
    """A root stage (X * 2) feeds the update; a compute reads the scan; an update that is a reduction
    reads a whole earlier row (a matrix-vector recurrence h[t] = W h[t-1] + x[t])."""
    rng = np.random.default_rng(5)
    m, n = 9, 7
    X = te.placeholder((m, n), name="X")
    W = te.placeholder((n, n), name="W")
    X2 = te.compute((m, n), lambda t, i: X[t, i] * 2.0, name="X2")
    state = te.placeholder((m, n), name="h_state")
    init = te.compute((1, n), lambda _, i: X2[0, i], name="h_init")
    k = te.reduce_axis((0, n), name="k")
    Wh = te.compute((m, n), lambda t, i: te.sum(W[i, k] * state[t - 1, k], axis=k), name="Wh")
    update = te.compute((m, n), lambda t, i: Wh[t, i] + X2[t, i], name="h_update")
    h = te.scan(init, update, state, inputs=[X2, W], name="h")
    out = te.compute((m, n), lambda t, i: h[t, i] * 3.0, name="out")
    s = te.create_schedule(out.op)
    assert s[Wh].attach.value == "scope" and s[Wh].attach_stage is s[update]   # a scan body stage: per step
    x, w = rng.standard_normal((m, n)).astype("float32"), (rng.standard_normal((n, n)) / n).astype("float32")
    want = np.zeros((m, n), "float32")
    want[0] = 2 * x[0]
    for t in range(1, m):
        want[t] = w @ want[t - 1] + 2 * x[t]
    np.testing.assert_allclose(run_both(s, [X, W, out], x, w), 3 * want, rtol=1e-4, atol=1e-5)
    s = te.create_schedule(out.op)
    s[Wh].compute_at(s[update], update.op.axis[1])       # deeper: one element per (t, i)
    np.testing.assert_allclose(run_both(s, [X, W, out], x, w), 3 * want, rtol=1e-4, atol=1e-5)
    s[Wh].compute_root()
    with pytest.raises(LoweringError, match="reads the state of scan 'h'.*compute_at"):
        loopc.lower(s, [X, W, out])


def test_a_reduction_update_with_its_loops_scheduled():
    """h[t] = h[t-1] @ W as the update itself (a reduction over a whole earlier row), its row
    split by 4 (13: a tail), the reduction moved between, the outer loop parallel inside the
    sequential time loop."""
    rng = np.random.default_rng(23)
    m, n = 8, 13
    X = te.placeholder((m, n), name="X")
    W = te.placeholder((n, n), name="W")
    state = te.placeholder((m, n), name="state")
    init = te.compute((1, n), lambda _, i: X[0, i], name="init")
    k = te.reduce_axis((0, n), name="k")
    update = te.compute((m, n), lambda t, i: te.sum(state[t - 1, k] * W[k, i], axis=k), name="update")
    h = te.scan(init, update, state, name="h")
    s = te.create_schedule(h.op)
    io, ii = s[update].split(update.op.axis[1], factor=4)
    s[update].reorder(io, k, ii)
    s[update].vectorize(ii)
    s[update].parallel(io)
    x, w = rng.standard_normal((m, n)).astype("float32"), (rng.standard_normal((n, n)) / n).astype("float32")
    want = np.zeros_like(x)
    want[0] = x[0]
    for t in range(1, m):
        want[t] = want[t - 1] @ w
    np.testing.assert_allclose(run_both(s, [X, W, h], x, w), want, rtol=1e-4, atol=1e-6)


def test_tvm_multi_stage_scan_tutorial():
    """TVM's scan tutorial, "multi-stage scan cell": s1 (reading the state) computed at the split
    outer loop of s2, one 32-wide block per step (70: a tail block of 6)."""
    m, n = 10, 70
    X = te.placeholder((m, n), name="X")
    s_state = te.placeholder((m, n))
    s_init = te.compute((1, n), lambda _, i: X[0, i])
    s_update_s1 = te.compute((m, n), lambda t, i: s_state[t - 1, i] * 2, name="s1")
    s_update_s2 = te.compute((m, n), lambda t, i: s_update_s1[t, i] + X[t, i], name="s2")
    s_scan = te.scan(s_init, s_update_s2, s_state, inputs=[X])
    s = te.create_schedule(s_scan.op)
    xo, xi = s[s_update_s2].split(s_update_s2.op.axis[1], factor=32)
    s[s_update_s1].compute_at(s[s_update_s2], xo)
    assert "s1 = allocate(float32[1, 32]" in str(loopc.lower(s, [X, s_scan]))
    x = np.random.default_rng(19).standard_normal((m, n)).astype("float32")
    want = np.zeros_like(x)
    want[0] = x[0]
    for t in range(1, m):
        want[t] = 2 * want[t - 1] + x[t]
    np.testing.assert_allclose(run_both(s, [X, s_scan], x), want, rtol=1e-5, atol=1e-5)


def test_the_scan_axis_is_sequential():
    X, init, update, scan = cumulative((13, 5), lambda a, b: a + b)
    s = te.create_schedule(scan.op)
    t, i = update.op.axis
    for primitive in (lambda: s[update].split(t, factor=2), lambda: s[update].parallel(t),
                      lambda: s[update].vectorize(t), lambda: s[update].reorder(i, t), lambda: s[update].fuse(t, i),
                      lambda: s[update].bind(t, te.thread_axis("blockIdx.x"))):
        with pytest.raises(ScheduleError, match="time step of scan 'scan'"):
            primitive()
    for primitive in (lambda: s[scan].parallel(scan.op.scan_axis), lambda: s[scan].split(scan.op.scan_axis, 2)):
        with pytest.raises(ScheduleError, match="scan stage only runs its init and update"):
            primitive()
    with pytest.raises(ScheduleError, match="computed by scan 'scan'"):
        s[update].compute_inline()
    with pytest.raises(ScheduleError, match="computed by scan 'scan'"):
        s[init].compute_root()
    with pytest.raises(ScheduleError, match="ScanOp stage"):
        s[scan].compute_inline()
    assert s.trace == []


@pytest.mark.parametrize("case,message", [
    ("same_step", "earlier steps only"),
    ("too_far_back", "3 steps back, but the init gives only 2"),
    ("shape", "shapes disagree"),
    ("init_rows", "init has 6 rows but the scan only 6"),
    ("init_reads_state", "init 'init' reads the state"),
    ("body_other_step", "reads 's1' at step"),
    ("two_states", "several states are not supported"),
])
def test_scan_declaration_errors(case, message):
    m, n = 6, 4
    X = te.placeholder((m, n), name="X")
    state = te.placeholder((m, n), name="state")
    init = te.compute((2, n), lambda r, i: X[r, i], name="init")
    update = {
        "same_step": lambda: te.compute((m, n), lambda t, i: state[t, i] + 1.0),
        "too_far_back": lambda: te.compute((m, n), lambda t, i: state[t - 3, i] + 1.0),
    }.get(case, lambda: te.compute((m, n), lambda t, i: state[t - 1, i] + X[t, i]))()
    args = [init, update, state]
    if case == "shape":
        args[1] = te.compute((m, n + 1), lambda t, i: X[t, 0] + 1.0)
    elif case == "init_rows":
        args[0] = te.compute((m, n), lambda r, i: X[r, i])
    elif case == "init_reads_state":
        args[0] = te.compute((2, n), lambda r, i: state[r, i], name="init")
    elif case == "body_other_step":
        s1 = te.compute((m, n), lambda t, i: state[t - 1, i] * 2.0, name="s1")
        args[1] = te.compute((m, n), lambda t, i: s1[t - 1, i] + 1.0)
    elif case == "two_states":
        args = [[init, init], [update, update], [state, state]]
    with pytest.raises(LoopcError, match=message):
        te.scan(*args)


def test_scan_reads_are_bounds_checked_and_arguments_checked():
    m, n = 8, 3
    X = te.placeholder((m, n), name="X")
    state = te.placeholder((m, n), name="state")
    init = te.compute((1, n), lambda _, i: X[0, i], name="init")
    ahead = te.compute((m, n), lambda t, i: state[t - 1, i] + X[t + 1, i], name="ahead")
    scan = te.scan(init, ahead, state)
    with pytest.raises(LoweringError, match=r"reads X\[t \+ 1, i\] outside the tensor.*is 8 at t=7"):
        loopc.lower(te.create_schedule(scan.op), [X, scan])
    update = te.compute((m, n), lambda t, i: state[t - 1, i] + X[t, i], name="update")
    state2 = te.placeholder((m, n), name="state2")
    update2 = te.compute((m, n), lambda t, i: state2[t - 1, i] + X[t, i], name="update2")
    scan = te.scan(init, update2, state2)
    with pytest.raises(LoweringError, match="'state2' is the state placeholder of scan"):
        loopc.lower(te.create_schedule(scan.op), [X, state2, scan])
    with pytest.raises(LoopcError, match="already the state of scan"):
        te.scan(init, update, state2)
    out = te.compute((m, n), lambda t, i: scan[t, i] + state2[t, i], name="out")
    with pytest.raises(LoweringError, match="'out' reads 'state2'.*outside the scan's steps"):
        loopc.lower(te.create_schedule(out.op), [X, out])
    s = te.create_schedule(scan.op)
    with pytest.raises(ScheduleError, match="computed by scan"):
        s.cache_write(update2, "local")
    with pytest.raises(ScheduleError, match="ScanOp"):
        s.rfactor(scan, scan.op.scan_axis)
    state3 = te.placeholder((m, n), name="state3")
    E = te.extern((m, n), [state3], lambda ins, outs: te.call_packed("test.any", ins[0], outs[0]), name="E")
    with pytest.raises(LoopcError, match="'E' .ExternOp. reads the state"):
        te.scan(init, te.compute((m, n), lambda t, i: E[t - 1, i] + X[t, i]), state3)


def case_scan_in_the_cuda_simulator():
    """A cumulative sum whose init and update are bound to blocks and threads; a scan reading a
    neighbour's state and an extern stage are UnsupportedError on the GPU."""
    from numba import config
    assert config.ENABLE_CUDASIM
    rng = np.random.default_rng(3)
    m, n = 17, 13
    X, init, update, scan = cumulative((m, n), lambda a, b: a + b)
    s = te.create_schedule(scan.op)
    for T in (init, update):
        bx, tx = s[T].split(T.op.axis[1], factor=4)
        s[T].bind(bx, te.thread_axis("blockIdx.x"))
        s[T].bind(tx, te.thread_axis("threadIdx.x"))
    f = loopc.build(s, [X, scan], target="cuda")
    x = rng.standard_normal((m, n)).astype("float32")
    out = np.zeros_like(x)
    f(x, out)
    np.testing.assert_allclose(out, np.cumsum(x, axis=0), rtol=1e-5, atol=1e-5)

    state = te.placeholder((m, n), name="state")
    mixed = te.compute((m, n), lambda t, i: state[t - 1, (i + 1) % n] + X[t, i], name="mixed")
    scan2 = te.scan(init, mixed, state, name="rotating")
    s = te.create_schedule(scan2.op)
    for T in (init, mixed):
        bx, tx = s[T].split(T.op.axis[1], factor=4)
        s[T].bind(bx, te.thread_axis("blockIdx.x"))
        s[T].bind(tx, te.thread_axis("threadIdx.x"))
    with pytest.raises(UnsupportedError, match="scan 'rotating' reads the state at other positions"):
        loopc.build(s, [X, scan2], target="cuda")

    loopc.register_func("test.cuda.copy", lambda a, b: np.copyto(b, a), override=True)
    E = te.extern((m, n), [X], lambda ins, outs: te.call_packed("test.cuda.copy", ins[0], outs[0]), name="E")
    with pytest.raises(UnsupportedError, match="runs on the host.*target='llvm'"):
        loopc.build(te.create_schedule(E.op), [X, E], target="cuda")


def test_scan_on_the_cuda_target():
    from test_cuda_sim import run_in_simulator
    proc = run_in_simulator("case_scan_in_the_cuda_simulator", module="test_scan_extern", timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]


# --------------------------------------------------------------------------- extern


@pytest.fixture
def registered():
    """Register functions for one test under fresh names; forget them afterwards."""
    names = []

    def register(name, f):
        loopc.register_func(name, f, override=True)
        names.append(name)
        return name
    yield register
    from loopc.runtime.packed import remove_global_func
    for name in names:
        remove_global_func(name)


def test_extern_matmul_feeds_a_bias_add(registered):
    """An extern np.matmul that reads a computed stage (A * 2) and a placeholder, with two numbers,
    consumed by a compute stage; the function sees read-only inputs and a writable output."""
    rng = np.random.default_rng(13)
    M, K, N = 7, 5, 11
    seen = {}

    def matmul(a, b, c, alpha, offset):
        seen.update(shapes=(a.shape, b.shape, c.shape), writable=(a.flags.writeable, c.flags.writeable),
                    numbers=(alpha, offset))
        np.matmul(a, b, out=c)
        c *= alpha
        c += offset
    name = registered("test.matmul", matmul)
    A = te.placeholder((M, K), name="A")
    B = te.placeholder((K, N), name="B")
    bias = te.placeholder((N,), name="bias")
    A2 = te.compute((M, K), lambda i, k: A[i, k] * 2.0, name="A2")
    C = te.extern((M, N), [A2, B], lambda ins, outs: te.call_packed(name, ins[0], ins[1], outs[0], 0.5, 3),
                  name="C")
    D = te.compute((M, N), lambda i, j: C[i, j] + bias[j], name="D")
    s = te.create_schedule(D.op)
    jo, ji = s[D].split(D.op.axis[1], factor=4)
    s[D].vectorize(ji)
    assert 'call_packed("test.matmul", A2, B, C, 0.5f, 3)' in str(loopc.lower(s, [A, B, bias, D]))
    a, b = rng.standard_normal((M, K)).astype("float32"), rng.standard_normal((K, N)).astype("float32")
    c = rng.standard_normal(N).astype("float32")
    got = run_both(s, [A, B, bias, D], a, b, c)
    np.testing.assert_allclose(got, (2 * a) @ b * 0.5 + 3 + c, rtol=1e-5, atol=1e-5)
    assert seen == {"shapes": ((M, K), (K, N), (M, N)), "writable": (False, True), "numbers": (0.5, 3)}


def test_an_extern_output_is_an_argument_the_caller_owns(registered):
    name = registered("test.negate", lambda x, y: np.negative(x, out=y))
    X = te.placeholder((6, 5), name="X")
    Y = te.extern(X.shape, [X], lambda ins, outs: te.call_packed(name, ins[0], outs[0]), name="Y")
    assert Y.dtype == "float32" and Y.op.input_tensors == (X,)
    x = np.arange(30, dtype="float32").reshape(6, 5)
    f = loopc.build(te.create_schedule(Y.op), [X, Y])
    y = np.zeros_like(x)
    f(x, y)
    np.testing.assert_array_equal(y, -x)
    y.flags.writeable = False
    with pytest.raises(loopc.ArgumentError, match="output"):      # written through the call: an output
        f(x, y)


def _c_library(tmp_path):
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        return None
    src = tmp_path / "saxpy.c"
    src.write_text("void loopc_test_saxpy(const float *x, const float *y, float *out, long n, float a)\n"
                   "{ for (long i = 0; i < n; ++i) out[i] = a * x[i] + y[i]; }\n")
    lib = tmp_path / "libloopc_test_saxpy.so"
    proc = subprocess.run([cc, "-shared", "-fPIC", "-O2", "-o", str(lib), str(src)], capture_output=True)
    return lib if proc.returncode == 0 else None


def test_call_extern_calls_c_symbols(tmp_path):
    """memcpy from libc (always there), and a function of a shared library built here with the
    system C compiler (skipped without one), each feeding a compute stage."""
    rng = np.random.default_rng(17)
    n = 37
    X = te.placeholder((n,), name="X")
    Y = te.placeholder((n,), name="Y")
    half = te.compute((n,), lambda i: X[i] * 0.5, name="half")
    copy = te.extern((n,), [half], lambda ins, outs: te.call_extern("int32", "memcpy", outs[0], ins[0], n * 4),
                     name="copy")
    out = te.compute((n,), lambda i: copy[i] + 1.0, name="out")
    x, y = rng.standard_normal(n).astype("float32"), rng.standard_normal(n).astype("float32")
    np.testing.assert_allclose(run_both(te.create_schedule(out.op), [X, out], x), x * 0.5 + 1, rtol=1e-6)
    lib = _c_library(tmp_path)
    if lib is None:
        pytest.skip("no C compiler to build a test library")
    loopc.load_library(lib)
    saxpy = te.extern((n,), [X, Y], lambda ins, outs: te.call_extern(
        "loopc_test_saxpy", ins[0].data, ins[1].access_ptr("r"), outs[0], n, te.const(2.5, "float32")), name="saxpy")
    np.testing.assert_allclose(run_both(te.create_schedule(saxpy.op), [X, Y, saxpy], x, y), 2.5 * x + y, rtol=1e-6)


def test_extern_errors(registered):
    X = te.placeholder((4, 3), name="X")

    def ext(fname, name):
        return te.extern((4, 3), [X], lambda ins, outs: te.call_packed(fname, ins[0], outs[0]), name=name)
    E = ext("test.never.registered", name="E")
    s = te.create_schedule(E.op)
    for build in (lambda: loopc.build(s, [X, E]),
                  lambda: loopc.interp.run(loopc.lower(s, [X, E]), np.zeros((4, 3), "float32"),
                                           np.zeros((4, 3), "float32"))):
        with pytest.raises(BuildError, match=r"'test.never.registered'.*loopc.register_func\('test.never.registered'"):
            build()
    C = te.extern((4, 3), [X], lambda ins, outs: te.call_extern("float32", "loopc_no_such_symbol", outs[0]))
    with pytest.raises(BuildError, match="'loopc_no_such_symbol'.*loopc.load_library"):
        loopc.build(te.create_schedule(C.op), [X, C])

    def fails(x, y):
        raise ValueError("no luck")
    name = registered("test.fails", fails)
    F = ext(name, "F")
    x, y = np.ones((4, 3), "float32"), np.zeros((4, 3), "float32")
    s = te.create_schedule(F.op)
    for call in (lambda: loopc.build(s, [X, F])(x, y), lambda: loopc.interp.run(loopc.lower(s, [X, F]), x, y)):
        with pytest.raises(ExternCallError, match="test.fails.*ValueError: no luck") as info:
            call()
        assert isinstance(info.value.__cause__, ValueError)
    name = registered("test.wrong.shape", lambda x, y: np.matmul(x, x, out=y))     # (4,3)@(4,3): numpy refuses
    W = ext(name, "W")
    with pytest.raises(ExternCallError, match="test.wrong.shape.*ValueError"):
        loopc.build(te.create_schedule(W.op), [X, W])(x, y)

    with pytest.raises(LoopcError, match="already registered"):
        loopc.register_func(name, fails)
    with pytest.raises(LoopcError, match="must return te.call_packed"):
        te.extern((4, 3), [X], lambda ins, outs: ins[0])
    with pytest.raises(LoopcError, match="not tensor 'X'"):
        te.extern((4, 3), [X], lambda ins, outs: te.call_packed(name, X, outs[0]))
    with pytest.raises(LoopcError, match="several outputs are not supported"):
        te.extern([(4, 3), (4, 3)], [X], lambda ins, outs: te.call_packed(name, ins[0], outs[0]))


def test_an_extern_stage_is_opaque_to_schedules(registered):
    name = registered("test.copy", lambda x, y: np.copyto(y, x))
    X = te.placeholder((8, 5), name="X")
    P = te.compute((8, 5), lambda i, j: X[i, j] + 1.0, name="P")
    E = te.extern((8, 5), [P], lambda ins, outs: te.call_packed(name, ins[0], outs[0]), name="E")
    Q = te.compute((8, 5), lambda i, j: E[i, j] * P[i, j], name="Q")
    s = te.create_schedule(Q.op)
    with pytest.raises(ScheduleError, match="no loops to split"):
        s[E].split(Q.op.axis[0], factor=2)
    with pytest.raises(ScheduleError, match="ExternOp stage.*cannot be inlined"):
        s[E].compute_inline()
    with pytest.raises(ScheduleError, match="also read by E"):      # the extern reads P whole
        s[P].compute_at(s[Q], Q.op.axis[0])
    s[P].compute_inline()
    with pytest.raises(LoweringError, match="extern stage 'E' reads all of 'P'.*compute_root"):
        loopc.lower(s, [X, Q])
    s[P].compute_root()
    x = np.random.default_rng(2).standard_normal((8, 5)).astype("float32")
    np.testing.assert_allclose(run_both(s, [X, Q], x), (x + 1) ** 2, rtol=1e-6)
    s = te.create_schedule(Q.op)
    te.schedule.AutoInlineInjective(s)                  # P stays: the extern reads it whole
    assert s[P].attach.value == "root"
    np.testing.assert_allclose(run_both(s, [X, Q], x), (x + 1) ** 2, rtol=1e-6)


def test_scan_over_symbolic_sizes_is_tvm_tutorial_verbatim():
    """TVM's scan tutorial with m, n = te.var(...): one build serves every size, 1 row included."""
    m, n = te.var("m"), te.var("n")
    X = te.placeholder((m, n), name="X")
    s_state = te.placeholder((m, n))
    s_init = te.compute((1, n), lambda _, i: X[0, i])
    s_update = te.compute((m, n), lambda t, i: s_state[t - 1, i] + X[t, i])
    s_scan = te.scan(s_init, s_update, s_state, inputs=[X])
    s = te.create_schedule(s_scan.op)
    xo, xi = s[s_update].split(s_update.op.axis[1], factor=8)
    s[s_update].vectorize(xi)
    f = loopc.build(s, [X, s_scan])
    func = loopc.lower(s, [X, s_scan])
    rng = np.random.default_rng(3)
    for rows, cols in ((1, 1), (2, 7), (5, 13), (37, 40)):
        x = rng.standard_normal((rows, cols)).astype("float32")
        for run in (f, lambda *a: loopc.interp.run(func, *a)):
            out = np.full_like(x, np.nan)
            run(x, out)
            np.testing.assert_allclose(out, np.cumsum(x, axis=0), rtol=1e-5, atol=1e-5)
