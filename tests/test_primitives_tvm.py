"""The rest of TVM's schedule primitives (issue 16, item 4): fuse() with no axes, double_buffer,
set_store_predicate, create_group, cache_write after split/reorder, compute_at before a later
compute_inline, s[B].op after rfactor, and a reduction bound to threadIdx (a cross-thread
reduction) -- each against numpy on sizes no factor divides, on the LLVM target and in the
interpreter, on the CUDA target in numba's simulator where it is GPU code, and replayed from
its trace."""
import numpy as np
import pytest

import loopc
import loopc.interp
from loopc import te
from loopc.errors import LoweringError, LoopcError, ScheduleError
from test_cuda_sim import matmul_tensors as matmul


def run_llvm(s, args, *arrays, fill=0.0):
    out = np.full([int(d) for d in args[-1].shape], fill, args[-1].dtype)
    loopc.build(s, args)(*arrays, out)
    return out


def run_interp(s, args, *arrays, fill=0.0):
    out = np.full([int(d) for d in args[-1].shape], fill, args[-1].dtype)
    loopc.interp.run(loopc.lower(s, args), *arrays, out)
    return out


def check_both(s, args, arrays, want, fill=0.0, rtol=1e-5):
    np.testing.assert_allclose(run_llvm(s, args, *arrays, fill=fill), want, rtol=rtol, atol=1e-5)
    np.testing.assert_allclose(run_interp(s, args, *arrays, fill=fill), want, rtol=rtol, atol=1e-5)


def replayed(s, args):
    """A fresh schedule of the same program with ``s``'s trace replayed lowers to the same IR."""
    s2 = te.create_schedule([t.op for t in s.outputs])
    s2.replay(s.trace_json())
    assert str(loopc.lower(s2, args)) == str(loopc.lower(s, args))


def operands(seed, *shapes):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(sh).astype("float32") for sh in shapes]


# --------------------------------------------------------------------------- fuse()

@pytest.mark.parametrize("seed", [0, 1])
def test_fuse_with_no_axes_is_an_outermost_unit_loop(seed):
    m, n, k = 7, 11, 5
    A, B, C = matmul(m, n, k)
    a, b = operands(seed, (m, k), (k, n))

    def make():
        s = te.create_schedule(C.op)
        unit = s[C].fuse()
        assert unit.extent == 1 and s[C].leaf_iter_vars[0] is unit
        io, ii = s[C].split(C.op.axis[0], factor=3)
        s[C].reorder(ii, io)
        return s
    s = make()
    check_both(s, [A, B, C], [a, b], a @ b)
    replayed(s, [A, B, C])
    # a stage can be computed at the unit loop (once, in full)
    X = te.placeholder((13,), name="X")
    P = te.compute((13,), lambda i: X[i] * 2.0, name="P")
    Q = te.compute((13,), lambda i: P[12 - i] + 1.0, name="Q")
    s = te.create_schedule(Q.op)
    s[P].compute_at(s[Q], s[Q].fuse())
    x, = operands(seed, (13,))
    check_both(s, [X, Q], [x], x[::-1] * 2 + 1)
    assert s[Q].fuse(s[Q].op.axis[0]) is s[Q].op.axis[0]        # one axis: that axis (TVM)


# --------------------------------------------------------------------------- set_store_predicate

@pytest.mark.parametrize("seed", [0, 3])
def test_store_predicate_skips_stores(seed):
    m, n, k = 9, 7, 4
    A, B, C = matmul(m, n, k)
    a, b = operands(seed, (m, k), (k, n))
    i, j = C.op.axis

    def make():
        s = te.create_schedule(C.op)
        jo, ji = s[C].split(j, factor=3)
        s[C].set_store_predicate(((i + ji) % 2).equal(0) | (jo >= 2))
        return s
    s = make()
    ii, jj = np.meshgrid(np.arange(m), np.arange(n), indexing="ij")
    want = np.where(((ii + jj % 3) % 2 == 0) | (jj // 3 >= 2), a @ b, -7.0)
    check_both(s, [A, B, C], [a, b], want, fill=-7.0)
    replayed(s, [A, B, C])
    assert "set_store_predicate" in s.trace_json()


def test_store_predicate_in_vector_lanes_and_unrolled_reductions():
    A = te.placeholder((5, 13), name="A")
    C = te.compute((5, 13), lambda i, j: A[i, j] * 2.0, name="C")
    s = te.create_schedule(C.op)
    _, ji = s[C].split(C.op.axis[1], factor=8)
    s[C].vectorize(ji)                                      # masked vector stores
    s[C].parallel(C.op.axis[0])
    s[C].set_store_predicate((C.op.axis[1] % 3).equal(1))
    a, = operands(8, (5, 13))
    check_both(s, [A, C], [a], np.where(np.arange(13) % 3 == 1, a * 2, -1), fill=-1.0)
    k = te.reduce_axis((0, 5), name="k")
    B = te.compute((7,), lambda i: te.sum(C[i % 5, k] + A[i % 5, k + 8], axis=k), name="B")
    s = te.create_schedule(B.op)
    s[C].compute_inline()
    s[B].set_store_predicate(B.op.axis[0] > 2)             # init and update both skipped
    _, ii = s[B].split(B.op.axis[0], factor=2)
    s[B].unroll(ii)
    rows = a[np.arange(7) % 5]
    want = np.where(np.arange(7) > 2, (rows[:, :5] * 2 + rows[:, 8:]).sum(1), -1)
    check_both(s, [A, B], [a], want, fill=-1.0)


def test_store_predicate_errors():
    A, B, C = matmul(4, 4, 4)
    s = te.create_schedule(C.op)
    with pytest.raises(ScheduleError, match="not bool"):
        s[C].set_store_predicate(C.op.axis[0] + 1)
    with pytest.raises(ScheduleError, match="bind the thread axis first"):
        s[C].set_store_predicate(te.thread_axis("threadIdx.x").var.equal(0))
    with pytest.raises(ScheduleError, match="cannot contain TensorRead"):
        s[C].set_store_predicate(A[0, 0] > 0)


# --------------------------------------------------------------------------- double_buffer

def _stencil(n=29):
    X = te.placeholder((n + 2,), name="X")
    Y = te.compute((n,), lambda i: X[i] + X[i + 1] * 2.0 + X[i + 2], name="Y")
    return X, Y


def test_double_buffer_is_checked_recorded_and_changes_no_result():
    X, Y = _stencil()

    def make(double):
        s = te.create_schedule(Y.op)
        XS = s.cache_read(X, "shared", [Y])
        bo, bi = s[Y].split(Y.op.axis[0], factor=8)
        with pytest.raises(ScheduleError, match="not computed at a loop"):
            s[XS].double_buffer()
        s[XS].compute_at(s[Y], bo)
        if double:
            s[XS].double_buffer()
        return s, XS
    s, XS = make(True)
    plain, _ = make(False)
    assert s[XS].double_buffered
    assert str(loopc.lower(s, [X, Y])) == str(loopc.lower(plain, [X, Y]))     # a hint: same loops
    s2 = te.create_schedule(Y.op)
    s2.replay(s.trace_json())
    assert [st.double_buffered for st in s2.stages] == [st.double_buffered for st in s.stages]
    x, = operands(5, (31,))
    check_both(s, [X, Y], [x], x[:-2] + 2 * x[1:-1] + x[2:])
    s3 = te.create_schedule(Y.op)
    XL = s3.cache_read(X, "local", [Y])
    s3[XL].compute_at(s3[Y], Y.op.axis[0])
    with pytest.raises(ScheduleError, match="'local' memory"):
        s3[XL].double_buffer()


# --------------------------------------------------------------------------- create_group

def _group_chain(n=17):
    X = te.placeholder((n,), name="X")
    B = te.compute((n + 2,), lambda i: te.if_then_else(i < n, X[te.min(i, n - 1)], 0.0) * 2.0, name="B")
    C = te.compute((n + 1,), lambda i: B[i] + B[i + 1], name="C")
    D = te.compute((n,), lambda i: C[i] * C[i + 1], name="D")
    E = te.compute((n,), lambda i: D[i] + 1.0, name="E")
    return X, B, C, D, E


@pytest.mark.parametrize("factor,seed", [(4, 0), (5, 1), (1, 2)])
def test_create_group_attaches_every_member(factor, seed):
    X, B, C, D, E = _group_chain()

    def make():
        s = te.create_schedule(E.op)
        eo, _ = s[E].split(E.op.axis[0], factor=factor)
        g = s.create_group(outputs=D, inputs=X)
        assert [st.name for st in g.members] == ["B", "C", "D"]
        s[g].compute_at(s[E], eo)
        return s
    s = make()
    text = str(loopc.lower(s, [X, E]))
    assert f"float32[{factor + 2}]" in text and f"float32[{factor + 1}]" in text     # the halos
    x, = operands(seed, (17,))
    b = np.concatenate([x * 2, [0, 0]])
    c = b[:-1] + b[1:]
    check_both(s, [X, E], [x], c[:-1] * c[1:] + 1)
    replayed(s, [X, E])


def test_create_group_errors():
    X, B, C, D, E = _group_chain()
    s = te.create_schedule(E.op)
    g = s.create_group(outputs=D, inputs=[B], include_inputs=True)
    assert [st.name for st in g.members] == ["B", "C", "D"]
    with pytest.raises(ScheduleError, match="already in a group"):
        s.create_group(outputs=C, inputs=X)
    with pytest.raises(ScheduleError, match="no loops of its own"):
        s[g].split(E.op.axis[0], factor=2)
    with pytest.raises(ScheduleError, match="member of the group"):
        s[g].compute_at(s[C], C.op.axis[0])
    F = te.compute((17,), lambda i: X[i] - 1.0, name="F")
    s = te.create_schedule([E.op, F.op])
    g = s.create_group(outputs=C, inputs=X)
    with pytest.raises(ScheduleError, match="also read by D, outside the group"):
        s[g].compute_at(s[F], F.op.axis[0])
    g = s.create_group(outputs=E, inputs=D)
    with pytest.raises(ScheduleError, match="is an output"):
        s[g].compute_at(s[F], F.op.axis[0])


# --------------------------------------------------------------------------- cache_write after split

@pytest.mark.parametrize("m,n,k,seed", [(7, 11, 5, 0), (13, 5, 3, 1)])
def test_cache_write_after_split_and_reorder_relays_out(m, n, k, seed):
    A, B, C = matmul(m, n, k)
    a, b = operands(seed, (m, k), (k, n))

    def make():
        s = te.create_schedule(C.op)
        io, jo, ii, ji = s[C].tile(C.op.axis[0], C.op.axis[1], 3, 4)
        CL = s.cache_write(C, "local")
        # TVM: the buffer has one axis per loop; C starts again from its own axes
        assert [iv.name for iv in CL.op.axis] == ["i.outer.c", "j.outer.c", "i.inner.c", "j.inner.c"]
        assert s[C].leaf_iter_vars == list(C.op.axis) and not s[C].relations
        io2, jo2, _, _ = s[C].tile(C.op.axis[0], C.op.axis[1], 3, 4)
        s[CL].compute_at(s[C], jo2)
        return s
    s = make()
    check_both(s, [A, B, C], [a, b], a @ b)
    replayed(s, [A, B, C])


# --------------------------------------------------------------------------- compute_at, then inline

def _three(n=23):
    X = te.placeholder((n + 1,), name="X")
    P = te.compute((n + 1,), lambda i: X[i] * 2.0, name="P")
    M = te.compute((n,), lambda i: P[i] + P[i + 1], name="M")
    Q = te.compute((n,), lambda i: M[i] * 3.0, name="Q")
    return X, P, M, Q


@pytest.mark.parametrize("inline_first", [False, True])
def test_compute_at_through_a_stage_inlined_later(inline_first):
    X, P, M, Q = _three()

    def make():
        s = te.create_schedule(Q.op)
        qo, _ = s[Q].split(Q.op.axis[0], factor=4)
        if inline_first:
            s[M].compute_inline()
        s[P].compute_at(s[Q], qo)       # Q reads P only through M
        if not inline_first:
            s[M].compute_inline()
        return s
    s = make()
    text = str(loopc.lower(s, [X, Q]))
    assert "float32[5]" in text                     # 4 + 1 halo, at the loop
    x, = operands(7, (24,))
    p = x * 2
    check_both(s, [X, Q], [x], (p[:-1] + p[1:]) * 3)
    replayed(s, [X, Q])
    other = te.create_schedule(Q.op)               # the order of the two primitives does not matter
    other.replay(make().trace_json())
    assert str(loopc.lower(other, [X, Q])) == text


def test_compute_at_through_a_stage_never_inlined_is_a_clear_error():
    X, P, M, Q = _three()
    s = te.create_schedule(Q.op)
    s[P].compute_at(s[Q], Q.op.axis[0])
    with pytest.raises(LoweringError, match=r"M reads it now.*call s\[M\].compute_inline\(\)"):
        loopc.lower(s, [X, Q])


# --------------------------------------------------------------------------- rfactor's op

def test_rfactor_rewrites_the_stage_op_and_keeps_the_user_handles():
    m, n, k = 5, 3, 13
    A, B, C = matmul(m, n, k)
    a, b = operands(4, (m, k), (k, n))
    s = te.create_schedule(C.op)
    k0 = C.op.reduce_axis[0]
    ko, ki = s[C].split(k0, factor=4)
    CF = s.rfactor(C, ki)
    assert C.op.reduce_axis == (k0,)                           # the declared op is unchanged
    assert s[C].op is not C.op and s[C].op.output(0) is C       # TVM: s[C].op is the rewritten op
    assert s[C].op.axis == C.op.axis
    (kv,) = s[C].op.reduce_axis
    assert kv.name == "k.inner.v" and kv in s[C].leaf_iter_vars
    assert s[C].op.input_tensors == (CF,)
    # the reduction axes the user holds still name loops of the factored stage
    kfo, kfi = s[CF].split(ko, factor=2)
    s[CF].reorder(kfi, kfo)
    s[CF].compute_at(s[C], kv)
    with pytest.raises(ScheduleError, match="belongs to stage 'C.rf'"):
        s[C].split(ko, factor=2)
    np.testing.assert_allclose(run_llvm(s, [A, B, C], a, b), a @ b, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(run_interp(s, [A, B, C], a, b), a @ b, rtol=1e-5, atol=1e-5)
    replayed(s, [A, B, C])


# --------------------------------------------------------------------------- cross-thread reduction

def tvm_cross_thread_sum(n, m, threads, rows):
    """TVM's classic example: rfactor the inner reduction loop, bind it to threadIdx.x."""
    A = te.placeholder((n, m), name="A")
    k = te.reduce_axis((0, m), name="k")
    B = te.compute((n,), lambda i: te.sum(A[i, k], axis=k), name="B")

    def make():
        s = te.create_schedule(B.op)
        ko, ki = s[B].split(B.op.reduce_axis[0], factor=threads)
        BF = s.rfactor(B, ki)
        xo, xi = s[B].split(s[B].op.axis[0], factor=rows)
        s[B].bind(xo, te.thread_axis("blockIdx.x"))
        s[B].bind(xi, te.thread_axis("threadIdx.y"))
        tx = te.thread_axis("threadIdx.x")
        s[B].bind(s[B].op.reduce_axis[0], tx)
        s[BF].compute_at(s[B], s[B].op.reduce_axis[0])
        s[B].set_store_predicate(tx.var.equal(0))
        return s
    return A, B, make


def direct_cross_thread_max(n, m, threads):
    """A split reduction loop bound to threadIdx.x without rfactor."""
    A = te.placeholder((n, m), name="A")
    k = te.reduce_axis((0, m), name="k")
    B = te.compute((n,), lambda i: te.max(A[i, k], axis=k), name="B")

    def make():
        s = te.create_schedule(B.op)
        ko, ki = s[B].split(k, factor=threads)
        s[B].reorder(B.op.axis[0], ki, ko)
        s[B].bind(B.op.axis[0], te.thread_axis("blockIdx.x"))
        s[B].bind(ki, te.thread_axis("threadIdx.x"))
        return s
    return A, B, make


def scalar_sum(m, threads):
    """A whole vector summed by one block: the unit loop of fuse() carries blockIdx.x."""
    A = te.placeholder((m,), name="A")
    k = te.reduce_axis((0, m), name="k")
    B = te.compute((1,), lambda i: te.sum(A[k] * 2.0, axis=k), name="B")

    def make():
        s = te.create_schedule(B.op)
        s[B].bind(s[B].fuse(), te.thread_axis("blockIdx.x"))
        ko, ki = s[B].split(k, factor=threads)
        s[B].reorder(ki, ko)
        s[B].bind(ki, te.thread_axis("threadIdx.x"))
        return s
    return A, B, make


CROSS_THREAD = [  # (program, arguments, numpy reference): sizes no thread count divides
    ("tvm", (7, 37, 5, 3), lambda a: a.sum(1)),
    ("tvm", (1, 13, 8, 1), lambda a: a.sum(1)),
    ("direct", (5, 23, 8), lambda a: a.max(1)),
    ("direct", (3, 9, 16), lambda a: a.max(1)),      # more threads than reduction steps
    ("scalar", (29, 6), lambda a: np.array([2 * a.sum()])),
    ("scalar", (5, 1), lambda a: np.array([2 * a.sum()])),
]
PROGRAMS = {"tvm": tvm_cross_thread_sum, "direct": direct_cross_thread_max, "scalar": scalar_sum}


def _cross_thread_case(n):
    kind, params, ref = CROSS_THREAD[n]
    A, B, make = PROGRAMS[kind](*params)
    a, = operands(n, tuple(int(d) for d in A.shape))
    return A, B, make, a, ref(a).astype("float32")


@pytest.mark.parametrize("n", range(len(CROSS_THREAD)))
def test_cross_thread_reduction_in_the_interpreter(n):
    A, B, make, a, want = _cross_thread_case(n)
    s = make()
    np.testing.assert_allclose(run_interp(s, [A, B], a), want, rtol=1e-5, atol=1e-5)
    replayed(s, [A, B])
    text = str(loopc.lower(s, [A, B]))
    assert 'scope="shared"' in text and ".red1" in text
    with pytest.raises(LoopcError, match="build this schedule with target='cuda'"):
        loopc.build(s, [A, B])                     # on the CPU a bound loop is an error, as before


def random_cross_thread(seed):
    """A seeded shape, thread count and combiner (sum/max/min): (A, B, schedule, a, numpy's answer)."""
    rng = np.random.default_rng(100 + seed)
    n, m, threads, rows = (int(x) for x in (rng.integers(1, 7), rng.integers(1, 41), rng.integers(1, 10),
                                            rng.integers(1, 4)))
    name = ["sum", "max", "min"][seed % 3]
    A = te.placeholder((n, m), name="A")
    k = te.reduce_axis((0, m), name="k")
    B = te.compute((n,), lambda i: getattr(te, name)(A[i, k] * 1.5, axis=k), name="B")
    s = te.create_schedule(B.op)
    ko, ki = s[B].split(k, factor=threads)
    io, ii = s[B].split(B.op.axis[0], factor=rows)
    s[B].reorder(io, ii, ki, ko)
    s[B].bind(io, te.thread_axis("blockIdx.x"))
    s[B].bind(ii, te.thread_axis("threadIdx.y"))
    s[B].bind(ki, te.thread_axis("threadIdx.x"))
    a, = operands(seed, (n, m))
    return A, B, s, a, getattr(np, name)(a * 1.5, axis=1), f"{name} n={n} m={m} threads={threads} rows={rows}"


@pytest.mark.parametrize("seed", range(6))
def test_cross_thread_reduction_random_shapes(seed):
    A, B, s, a, want, what = random_cross_thread(seed)
    np.testing.assert_allclose(run_interp(s, [A, B], a), want, rtol=1e-5, atol=1e-5, err_msg=what)


def case_cross_thread_reduction_in_the_cuda_simulator():
    from numba import config
    assert config.ENABLE_CUDASIM
    for n in range(len(CROSS_THREAD)):
        A, B, make, a, want = _cross_thread_case(n)
        f = loopc.build(make(), [A, B], target="cuda")
        src = f.get_source("cuda")
        assert "cuda.shared.array" in src and "cuda.syncthreads()" in src, src
        out = np.full(want.shape, np.nan, "float32")
        f(a, out)
        np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5, err_msg=CROSS_THREAD[n][0])
    for seed in range(6):
        A, B, s, a, want, what = random_cross_thread(seed)
        out = np.full(want.shape, np.nan, "float32")
        loopc.build(s, [A, B], target="cuda")(a, out)
        np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5, err_msg=what)
    # double_buffer on a shared tile: the same (single-buffered) kernel, the right numbers
    X, Y = _stencil()
    s = te.create_schedule(Y.op)
    XS = s.cache_read(X, "shared", [Y])
    bo, bi = s[Y].split(Y.op.axis[0], factor=8)
    s[Y].bind(bo, te.thread_axis("blockIdx.x"))
    s[Y].bind(bi, te.thread_axis("threadIdx.x"))
    s[XS].compute_at(s[Y], bo)
    s[XS].double_buffer()
    x, = operands(5, (31,))
    out = np.zeros(29, "float32")
    loopc.build(s, [X, Y], target="cuda")(x, out)
    np.testing.assert_allclose(out, x[:-2] + 2 * x[1:-1] + x[2:], rtol=1e-5, atol=1e-5)


def test_cross_thread_reduction_on_the_cuda_target():
    from test_cuda_sim import run_in_simulator
    proc = run_in_simulator("case_cross_thread_reduction_in_the_cuda_simulator", module="test_primitives_tvm",
                            timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]


def test_cross_thread_reduction_errors():
    A, B, make = direct_cross_thread_max(4, 9, 4)
    s = te.create_schedule(B.op)
    ko, ki = s[B].split(B.op.reduce_axis[0], factor=4)
    s[B].bind(ki, te.thread_axis("threadIdx.x"))
    with pytest.raises(LoweringError, match="binds no loop to blockIdx"):
        loopc.lower(s, [A, B])
    s[B].bind(B.op.axis[0], te.thread_axis("blockIdx.x"))
    with pytest.raises(LoweringError, match="data-parallel loop.*inside its reduction"):
        s[B].reorder(ki, B.op.axis[0]) or loopc.lower(s, [A, B])
    with pytest.raises(ScheduleError, match="reduction axis"):
        s[B].bind(ko, te.thread_axis("blockIdx.y"))
