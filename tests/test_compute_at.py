"""compute_at with bound inference, cache_read / cache_write, rfactor and bind — against numpy."""
import json

import numpy as np
import pytest

import loopc
from loopc import te, interp


def run_both(s, args, arrays, ref, atol=1e-4, rtol=1e-4):
    """The reference interpreter and LLVM both agree with ``ref``; the trace replays."""
    func = loopc.lower(s, args)
    out = arrays[-1]
    out[...] = 0
    interp.run(func, *arrays)
    np.testing.assert_allclose(out, ref, atol=atol, rtol=rtol)
    out[...] = 0
    loopc.build(s, args)(*arrays)
    np.testing.assert_allclose(out, ref, atol=atol, rtol=rtol)
    replayed = te.create_schedule(args[-1].op).replay(s.trace_json())
    assert str(loopc.lower(replayed, args)) == str(func)
    return func


def matmul(M, N, K):
    A = te.placeholder((M, K), name="A")
    B = te.placeholder((K, N), name="B")
    k = te.reduce_axis((0, K), name="k")
    C = te.compute((M, N), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    return A, B, C


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("factor", [4, 7])
def test_compute_at_stencil_region_includes_halo(factor):
    n = 37
    A = te.placeholder((n + 2,), name="A")
    B = te.compute((n + 2,), lambda i: A[i] * 2.0 + 1.0, name="B")
    C = te.compute((n,), lambda i: B[i] + B[i + 1] * 3.0 + B[i + 2], name="C")
    s = te.create_schedule(C.op)
    io, ii = s[C].split(C.op.axis[0], factor=factor)
    s[B].compute_at(s[C], io)
    a = rand(n + 2)
    b = a * 2 + 1
    func = run_both(s, [A, C], [a, np.zeros(n, np.float32)], b[:-2] + 3 * b[1:-1] + b[2:])
    # bound inference: factor outputs need factor + 2 inputs, allocated inside the loop
    assert f"B = allocate(float32[{factor + 2}]" in str(func)


def test_compute_at_innermost_loop_single_element():
    A = te.placeholder((13, 11), name="A")
    B = te.compute((13, 11), lambda i, j: te.exp(A[i, j]), name="B")
    C = te.compute((13, 11), lambda i, j: B[i, j] * 2.0, name="C")
    s = te.create_schedule(C.op)
    s[B].compute_at(s[C], C.op.axis[1])
    a = rand(13, 11)
    func = run_both(s, [A, C], [a, np.zeros((13, 11), np.float32)], np.exp(a) * 2)
    assert "B = allocate(float32[1, 1]" in str(func)


def test_compute_at_strided_dilated_window():
    """A pooling-like consumer reads B[2p + 2r] (stride 2, dilation 2): the region spans the window."""
    n, taps = 11, 3
    A = te.placeholder((2 * n + 2 * (taps - 1),), name="A")
    B = te.compute(A.shape, lambda i: A[i] + 1.0, name="B")
    r = te.reduce_axis((0, taps), name="r")
    C = te.compute((n,), lambda p: te.max(B[p * 2 + r * 2], axis=r), name="C")
    s = te.create_schedule(C.op)
    po, pi = s[C].split(C.op.axis[0], factor=3)
    s[B].compute_at(s[C], po)
    a = rand(A.shape[0])
    b = a + 1
    ref = np.stack([b[2 * p: 2 * p + 2 * taps - 1: 2] for p in range(n)]).max(axis=1)
    func = run_both(s, [A, C], [a, np.zeros(n, np.float32)], ref)
    assert "B = allocate(float32[9]" in str(func)  # 3 outputs: 2*2 + 2*2 + 1


def test_compute_at_tiled_matmul_with_guarded_tails():
    M, N, K = 37, 29, 13
    A = te.placeholder((M, K), name="A")
    B = te.placeholder((K, N), name="B")
    Bc = te.compute((K, N), lambda k, j: B[k, j] * 1.0, name="Bc")
    k = te.reduce_axis((0, K), name="k")
    C = te.compute((M, N), lambda i, j: te.sum(A[i, k] * Bc[k, j], axis=k), name="C")
    s = te.create_schedule(C.op)
    io, jo, ii, ji = s[C].tile(C.op.axis[0], C.op.axis[1], 8, 8)
    ko, ki = s[C].split(k, factor=4)
    s[C].reorder(io, jo, ko, ii, ki, ji)
    s[C].vectorize(ji)
    s[Bc].compute_at(s[C], ko)
    s[Bc].vectorize(s[Bc].op.axis[1])
    a, b = rand(M, K), rand(K, N, seed=1)
    func = run_both(s, [A, B, C], [a, b, np.zeros((M, N), np.float32)], a @ b)
    assert "Bc = allocate(float32[4, 8]" in str(func)


def test_compute_root_undoes_compute_at():
    A = te.placeholder((10,), name="A")
    B = te.compute((10,), lambda i: A[i] + 1.0, name="B")
    C = te.compute((10,), lambda i: B[i] * 2.0, name="C")
    s = te.create_schedule(C.op)
    fresh = str(loopc.lower(te.create_schedule(C.op), [A, C]))
    s[B].compute_at(s[C], C.op.axis[0])
    assert str(loopc.lower(s, [A, C])) != fresh
    s[B].compute_root()
    assert str(loopc.lower(s, [A, C])) == fresh


def test_cache_write_local_register_block():
    M, N, K = 37, 29, 13
    A, B, C = matmul(M, N, K)
    s = te.create_schedule(C.op)
    CL = s.cache_write(C, "local")
    io, jo, ii, ji = s[C].tile(C.op.axis[0], C.op.axis[1], 4, 8)
    s[C].vectorize(ji)
    s[CL].compute_at(s[C], jo)
    xi, xj = s[CL].op.axis
    ko, ki = s[CL].split(s[CL].op.reduce_axis[0], factor=4)
    s[CL].reorder(ko, ki, xi, xj)
    s[CL].unroll(xi)
    s[CL].vectorize(xj)
    a, b = rand(M, K), rand(K, N, seed=1)
    func = run_both(s, [A, B, C], [a, b, np.zeros((M, N), np.float32)], a @ b)
    text = str(func)
    assert 'C.local = allocate(float32[4, 8], scope="local")' in text
    assert "unrolled" not in text  # expanded in the IR


def test_cache_read_packs_a_tile():
    M, N, K = 37, 29, 13
    A, B, C = matmul(M, N, K)
    s = te.create_schedule(C.op)
    AL = s.cache_read(A, "local", [C])
    io, jo, ii, ji = s[C].tile(C.op.axis[0], C.op.axis[1], 8, 8)
    s[AL].compute_at(s[C], io)
    a, b = rand(M, K), rand(K, N, seed=1)
    func = run_both(s, [A, B, C], [a, b, np.zeros((M, N), np.float32)], a @ b)
    assert 'A.local = allocate(float32[8, 13], scope="local")' in str(func)


def test_cache_read_and_write_with_a_layout_transpose_the_buffers():
    """cache_read(layout=(1, 0)) packs B transposed; cache_write(layout=(1, 0)) keeps the
    register tile column-major; the result is still A @ B, and a trace replays the layouts."""
    M, N, K = 23, 17, 11
    A, B, C = matmul(M, N, K)
    s = te.create_schedule(C.op)
    BT = s.cache_read(B, "global", [C], layout=(1, 0))
    CL = s.cache_write(C, "local", layout=(1, 0))
    assert BT.shape == (N, K) and CL.shape == (N, M)
    io, jo, ii, ji = s[C].tile(C.op.axis[0], C.op.axis[1], 4, 8)
    s[CL].compute_at(s[C], jo)
    xj, xi = s[CL].op.axis
    s[CL].reorder(s[CL].op.reduce_axis[0], xj, xi)
    s[CL].unroll(xj)
    s[CL].vectorize(xi)
    a, b = rand(M, K), rand(K, N, seed=1)
    func = run_both(s, [A, B, C], [a, b, np.zeros((M, N), np.float32)], a @ b)
    text = str(func)
    assert "B.global = allocate(float32[17, 11]" in text and 'C.local = allocate(float32[8, 4], scope="local")' in text
    again = te.create_schedule(C.op)
    again.replay(json.loads(s.trace_json()))
    assert str(loopc.lower(again, [A, B, C])) == str(loopc.lower(s, [A, B, C]))


def test_cache_read_with_blocks_packs_a_panel_per_column_block():
    """cache_read(block={1: 8}) stores B[k, j] as B.global[j // 8, k, j % 8] (with layout=(1, 0)):
    17 columns make three blocks, the last one part zeros; the result is still A @ B, and the
    blocks replay from a trace."""
    M, N, K = 13, 17, 11
    A, B, C = matmul(M, N, K)
    s = te.create_schedule(C.op)
    BP = s.cache_read(B, "global", [C], layout=(1, 0), block={1: 8})
    assert BP.shape == (3, K, 8)
    i, j = C.op.axis
    jo, ji = s[C].split(j, factor=8)
    s[C].reorder(jo, i, C.op.reduce_axis[0], ji)
    s[C].vectorize(ji)
    a, b = rand(M, K), rand(K, N, seed=1)
    func = run_both(s, [A, B, C], [a, b, np.zeros((M, N), np.float32)], a @ b)
    text = str(func)
    assert "B.global = allocate(float32[3, 11, 8]" in text
    assert "if_then_else(ax1.outer*8 + ax1.inner < 17" in text  # the partial last block reads zeros
    assert "B.global[j.outer*88 + k*8 + j.inner]" in text       # // and % fold into the block loops


def test_a_blocked_copy_computed_at_a_block_loop_holds_one_block():
    """Bound inference through // and %: inside one 8-wide block of j, B.global[j // 8, k, j % 8]
    is read at one block index and 8 offsets, so compute_at allocates [1, K, 8] (17 columns:
    the last block partial, its extra lanes zeros)."""
    M, N, K = 13, 17, 11
    A, B, C = matmul(M, N, K)
    s = te.create_schedule(C.op)
    BP = s.cache_read(B, "global", [C], layout=(1, 0), block={1: 8})
    i, j = C.op.axis
    jo, ji = s[C].split(j, factor=8)
    s[C].reorder(jo, i, C.op.reduce_axis[0], ji)
    s[C].vectorize(ji)
    s[BP].compute_at(s[C], jo)
    a, b = rand(M, K), rand(K, N, seed=1)
    text = str(run_both(s, [A, B, C], [a, b, np.zeros((M, N), np.float32)], a @ b))
    assert "B.global = allocate(float32[1, 11, 8]" in text


@pytest.mark.parametrize("block, message", [({2: 4}, "block axis 2 is not an axis"),
                                            ({0: 0}, "block factor 0 for axis 0"),
                                            ({1: 2.5}, "block factor 2.5")])
def test_a_bad_block_is_refused(block, message):
    A, B, C = matmul(5, 6, 7)
    s = te.create_schedule(C.op)
    with pytest.raises(loopc.ScheduleError, match=message):
        s.cache_read(B, "global", [C], block=block)


@pytest.mark.parametrize("layout", [(0, 0), (1,), (0, 2)])
def test_a_layout_that_is_not_a_permutation_is_refused(layout):
    A, B, C = matmul(5, 6, 7)
    s = te.create_schedule(C.op)
    with pytest.raises(loopc.ScheduleError, match="not a permutation of the 2 axes"):
        s.cache_read(B, "global", [C], layout=layout)
    with pytest.raises(loopc.ScheduleError, match="not a permutation of the 2 axes"):
        s.cache_write(C, "local", layout=layout)


def test_packing_compute_stage():
    """packedB[x, y, z] = B[y, x*bn + z], then C reads packedB — the packed-operand form."""
    M, N, K, bn = 19, 32, 11, 8
    A = te.placeholder((M, K), name="A")
    B = te.placeholder((K, N), name="B")
    PB = te.compute((N // bn, K, bn), lambda x, y, z: B[y, x * bn + z], name="packedB")
    k = te.reduce_axis((0, K), name="k")
    C = te.compute((M, N), lambda i, j: te.sum(A[i, k] * PB[j // bn, k, j % bn], axis=k), name="C")
    s = te.create_schedule(C.op)
    io, jo, ii, ji = s[C].tile(C.op.axis[0], C.op.axis[1], 4, bn)
    s[C].vectorize(ji)
    s[PB].vectorize(PB.op.axis[2])
    a, b = rand(M, K), rand(K, N, seed=1)
    func = run_both(s, [A, B, C], [a, b, np.zeros((M, N), np.float32)], a @ b)
    assert "//" not in str(func).split("packedB = allocate")[1].split("for i.outer")[1]  # j//bn folded away


def test_rfactor_parallel_sum_of_10007():
    n = 10007
    X = te.placeholder((n,), name="X")
    r = te.reduce_axis((0, n), name="r")
    S = te.compute((1,), lambda i: te.sum(X[r], axis=r), name="S")
    s = te.create_schedule(S.op)
    ro, ri = s[S].split(r, factor=16)
    SF = s.rfactor(S, ro)
    s[SF].parallel(SF.op.axis[0])
    x = rand(n)
    func = run_both(s, [X, S], [x, np.zeros(1, np.float32)], np.array([x.astype(np.float64).sum()]), atol=1e-2)
    # 625 full chunks of 16 in parallel; the guarded last chunk partitioned off, serial
    assert "for r.outer in parallel(625):" in str(func)
    assert "for r.outer in range(625, 625 + 1):" in str(func)


def test_rfactor_inner_axis_vectorized_max():
    X = te.placeholder((7, 53), name="X")
    r = te.reduce_axis((0, 53), name="r")
    M = te.compute((7,), lambda i: te.max(X[i, r], axis=r), name="M")
    s = te.create_schedule(M.op)
    ro, ri = s[M].split(r, factor=8)
    MF = s.rfactor(M, ri)
    s[MF].reorder(MF.op.axis[1], s[MF].op.reduce_axis[0], MF.op.axis[0])
    s[MF].vectorize(MF.op.axis[0])
    x = rand(7, 53)
    run_both(s, [X, M], [x, np.zeros(7, np.float32)], x.max(axis=1))


def test_bind_records_thread_axes_and_cpu_build_refuses():
    A = te.placeholder((64,), name="A")
    B = te.compute((64,), lambda i: A[i] + 1.0, name="B")
    s = te.create_schedule(B.op)
    bx, tx = s[B].split(B.op.axis[0], factor=16)
    s[B].bind(bx, te.thread_axis("blockIdx.x"))
    s[B].bind(tx, te.thread_axis("threadIdx.x"))
    text = str(loopc.lower(s, [A, B]))
    assert 'for i.outer in thread_binding(4, "blockIdx.x"):' in text
    assert 'for i.inner in thread_binding(16, "threadIdx.x"):' in text
    a = rand(64)
    b = np.zeros(64, np.float32)
    interp.run(loopc.lower(s, [A, B]), a, b)  # the interpreter runs bound loops serially
    np.testing.assert_allclose(b, a + 1)
    with pytest.raises(loopc.BuildError, match="cuda"):
        loopc.build(s, [A, B], target="llvm")


# ----------------------------------------------------------------------------- errors


def test_compute_at_errors_name_legal_points():
    A = te.placeholder((10,), name="A")
    B = te.compute((10,), lambda i: A[i] + 1.0, name="B")
    C = te.compute((10,), lambda i: B[i] * 2.0, name="C")
    D = te.compute((10,), lambda i: C[i] + B[i], name="D")
    s = te.create_schedule(D.op)
    with pytest.raises(loopc.ScheduleError, match=r"compute_at on stage 'B'.*also read by"):
        s[B].compute_at(s[C], C.op.axis[0])
    with pytest.raises(loopc.ScheduleError, match=r"inside its own loops"):
        s[B].compute_at(s[B], B.op.axis[0])
    with pytest.raises(loopc.ScheduleError, match=r"output stage"):
        s[D].compute_at(s[C], C.op.axis[0])
    with pytest.raises(loopc.ScheduleError, match=r"stage 'C': axis 'i' belongs to stage 'B', not to 'D'"):
        s[C].compute_at(s[D], B.op.axis[0])


def test_compute_at_lists_attachment_points_for_a_non_reader():
    A = te.placeholder((10,), name="A")
    B = te.compute((10,), lambda i: A[i] + 1.0, name="B")
    C = te.compute((10,), lambda i: B[i] * 2.0, name="C")
    F = te.compute((10,), lambda i: A[i] * 5.0, name="F")
    E = te.compute((10,), lambda i: C[i] * 3.0 + F[i], name="E")
    s = te.create_schedule(E.op)
    with pytest.raises(loopc.ScheduleError) as err:
        s[B].compute_at(s[F], F.op.axis[0])
    assert "Legal attachment points: s[C] at one of [i]" in str(err.value)
    # E reads B only through C: accepted (as in TVM); lowering wants C inlined by then
    s[B].compute_at(s[E], E.op.axis[0])
    with pytest.raises(loopc.LoweringError, match=r"C reads it now.*call s\[C\].compute_inline\(\)"):
        loopc.lower(s, [A, E])


def test_compute_at_cycle_rejected():
    A = te.placeholder((10,), name="A")
    B = te.compute((10,), lambda i: A[i] + 1.0, name="B")
    C = te.compute((10,), lambda i: B[i] * 2.0, name="C")
    D = te.compute((10,), lambda i: C[i] * 2.0, name="D")
    s = te.create_schedule(D.op)
    s[C].compute_at(s[D], D.op.axis[0])
    s[B].compute_at(s[C], C.op.axis[0])
    with pytest.raises(loopc.ScheduleError, match="vectorized|cycle|does not read"):
        s[C].compute_at(s[B], B.op.axis[0])


def test_compute_at_vectorized_loop_rejected():
    A = te.placeholder((16,), name="A")
    B = te.compute((16,), lambda i: A[i] + 1.0, name="B")
    C = te.compute((16,), lambda i: B[i] * 2.0, name="C")
    s = te.create_schedule(C.op)
    s[C].vectorize(C.op.axis[0])
    with pytest.raises(loopc.ScheduleError, match="vectorized"):
        s[B].compute_at(s[C], C.op.axis[0])


def test_attach_point_split_afterwards_is_a_clear_error():
    A = te.placeholder((16,), name="A")
    B = te.compute((16,), lambda i: A[i] + 1.0, name="B")
    C = te.compute((16,), lambda i: B[i] * 2.0, name="C")
    s = te.create_schedule(C.op)
    s[B].compute_at(s[C], C.op.axis[0])
    s[C].split(C.op.axis[0], factor=4)
    with pytest.raises(loopc.LoweringError, match="no longer a loop"):
        loopc.lower(s, [A, C])


def test_cache_and_rfactor_errors():
    A, B, C = matmul(7, 5, 3)
    s = te.create_schedule(C.op)
    with pytest.raises(loopc.ScheduleError, match="unknown scope"):
        s.cache_read(A, "texture", [C])
    with pytest.raises(loopc.ScheduleError, match="does not read"):
        s.cache_read(C, "local", [C])
    s[C].split(C.op.axis[0], factor=2)
    s[C].split(C.op.reduce_axis[0], factor=2)
    with pytest.raises(loopc.ScheduleError, match="split the reduction on the stage cache_write returns"):
        s.cache_write(C, "local")      # (a split data axis alone is relaid out, as in TVM)
    with pytest.raises(loopc.ScheduleError, match="data-parallel, not a reduction"):
        s.rfactor(C, s[C].leaf_iter_vars[0])


def test_bind_errors():
    A, B, C = matmul(8, 8, 8)
    s = te.create_schedule(C.op)
    i, j = C.op.axis
    with pytest.raises(loopc.ScheduleError, match="reduction axis"):   # (threadIdx: a cross-thread reduction)
        s[C].bind(C.op.reduce_axis[0], te.thread_axis("blockIdx.y"))
    s[C].bind(i, te.thread_axis("blockIdx.x"))
    with pytest.raises(loopc.ScheduleError, match="already bound"):
        s[C].bind(j, te.thread_axis("blockIdx.x"))
    with pytest.raises(loopc.ScheduleError, match="thread_axis"):
        s[C].bind(j, j)


def test_index_interval_through_block_division_and_remainder():
    """The pieces bound inference composes: (8q + r) // 8 and % 8 with r over inner loops."""
    from loopc.lower.loop_nest import _index_interval
    from loopc.te import expr as E
    q, r = E.Var("q"), E.Var("r")
    inner = {r: (0, 7)}
    assert _index_interval((q * 8 + r) // 8, inner) == ({q: 1}, 0, 0)       # one block
    assert _index_interval((q * 8 + r) % 8, inner) == ({}, 0, 7)
    shifted = {r: (4, 11)}                                                   # crosses a block edge
    assert _index_interval((q * 8 + r) // 8, shifted) == ({q: 1}, 0, 1)
    assert _index_interval((q * 8 + r) % 8, shifted) == ({}, 0, 7)
    assert _index_interval((q * 8 + r) % 8, {r: (2, 5)}) == ({}, 2, 5)
    assert _index_interval(q * 3 + r * 2 + 1, inner) == ({q: 3}, 1, 15)


@pytest.mark.parametrize("coef, d, r_lo, r_hi", [(6, 8, 0, 7), (3, 6, 0, 2), (3, 6, 0, 3), (4, 6, 1, 1),
                                                 (5, 7, 0, 4), (2, 8, 0, 1), (3, 6, -1, 1), (12, 8, 0, 9)])
def test_index_interval_of_partial_blocks_holds_every_value(coef, d, r_lo, r_hi):
    """(c*q + r) // d and % d where c*q is not whole blocks (a fused loop split by a factor that
    is not its inner extent): the interval inferred around the symbolic part holds every value
    the index takes, checked by enumeration."""
    from loopc.lower.loop_nest import _index_interval
    from loopc.te import expr as E
    q, r = E.Var("q"), E.Var("r")
    for op, fn in ((E.FloorDiv, lambda x: x // d), (E.FloorMod, lambda x: x % d)):
        out = _index_interval(op(q * coef + r, E.Const(d)), {r: (r_lo, r_hi)})
        assert out is not None
        terms, lo, hi = out
        for qv in range(-3, 12):
            sym = sum(c * _eval_int(t, {q: qv}) for t, c in terms.items())
            for rv in range(r_lo, r_hi + 1):
                assert sym + lo <= fn(coef * qv + rv) <= sym + hi, (op.__name__, qv, rv)


def _eval_int(e, env):
    from loopc.te import expr as E
    if isinstance(e, E.Var):
        return env[e]
    if isinstance(e, E.Const):
        return e.value
    a, b = _eval_int(e.a, env), _eval_int(e.b, env)
    return {E.Add: a + b, E.Sub: a - b, E.Mul: a * b, E.FloorDiv: a // b if b else 0,
            E.FloorMod: a % b if b else 0}[type(e)]
