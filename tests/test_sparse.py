"""Skipping zero weights: reduce axes whose extent reads a tensor (a CSR row), and the
library's ``sparse_dense`` (CSR and BSR) on LLVM, the interpreter and the CUDA simulator.

The data-dependent loop is a real loop (its extent is read once per enclosing iteration), so
an empty row costs nothing; schedules may reorder it among loops its bounds do not read and
split it by a constant, and anything else is a ScheduleError naming the loop. Reads through it
cannot be proved at compile time: ``bounds_check=True`` checks them at run time.
"""
from __future__ import annotations

import numpy as np
import pytest

import loopc
import loopc.interp
import loopc.schedules as S
from loopc import te
from loopc.schedules import testing as ref
from test_cuda_sim import run_in_simulator

#: every sparsity pattern is its own workload, and none is tuned: the default template is meant
pytestmark = pytest.mark.filterwarnings("ignore::loopc.schedules.NoTunedRecordWarning")


def _csr_of(w):
    data, indices, indptr = ref.dense_to_sparse(w)
    if not len(data):                  # an all-zero W keeps one (never read) element
        data, indices = np.zeros(1, w.dtype), np.zeros(1, np.int32)
    return data, indices, indptr


def patterned(N, K, seed=0):
    """A W with an empty row, a row of one nonzero, a full row, and random rows."""
    rng = np.random.default_rng(seed)
    w = (rng.random((N, K)) < 0.3) * rng.standard_normal((N, K))
    w[0] = 0
    w[1] = 0
    w[1, K - 1] = 2.5
    w[2] = rng.standard_normal(K)
    return w.astype("float32")


def declare(M, K, data, indices, indptr):
    X = te.placeholder((M, K), name="X")
    Wd = te.placeholder(data.shape, name="W_data")
    Wi = te.placeholder(indices.shape, "int32", "W_indices")
    Wp = te.placeholder(indptr.shape, "int32", "W_indptr")
    Y = S.sparse_dense(X, Wd, Wi, Wp)
    return [X, Wd, Wi, Wp, Y], Y


def run_both(s, args, arrays, out_shape):
    """The result on LLVM and in the interpreter (which must agree)."""
    outs = []
    f = loopc.build(s, args)
    func = loopc.lower(s, args)
    for call in (f, lambda *a: loopc.interp.run(func, *a)):
        y = np.full(out_shape, np.nan, np.float32)
        call(*arrays, y)
        outs.append(y)
    return outs


def one_line(err, *names):
    first = str(err.value).splitlines()[0]
    assert "Traceback" not in str(err.value)
    for name in names:
        assert name in first, (name, first)


# --------------------------------------------------------------------------- the ops


@pytest.mark.parametrize("M,K,N", [(7, 13, 11), (1, 5, 4), (19, 29, 6)])
def test_csr_matches_numpy_with_empty_one_and_full_rows(M, K, N):
    w = patterned(N, K, seed=M)
    data, indices, indptr = _csr_of(w)
    args, Y = declare(M, K, data, indices, indptr)
    x = np.random.default_rng(1).standard_normal((M, K)).astype("float32")
    want = ref.sparse_dense(x, data, indices, indptr)
    np.testing.assert_allclose(want, ref.dense(x, w), rtol=1e-5, atol=1e-5)
    for y in run_both(S.schedule(Y), args, (x, data, indices, indptr), (M, N)):
        np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-4)
        assert not y[:, 0].any()               # the empty row


def test_an_all_zero_weight_gives_zeros():
    data, indices, indptr = _csr_of(np.zeros((5, 9), np.float32))
    args, Y = declare(17, 9, data, indices, indptr)
    x = np.ones((17, 9), np.float32)
    for y in run_both(S.schedule(Y), args, (x, data, indices, indptr), (17, 5)):
        assert (y == 0).all()


@pytest.mark.parametrize("M,block,density", [(7, (2, 3), 0.4), (18, (4, 1), 0.3), (3, (1, 4), 0.6), (17, (3, 2), 1.0)])
def test_bsr_matches_numpy(M, block, density):
    N, K = 4 * block[0], 5 * block[1]
    w, (data, indices, indptr) = ref.random_sparse(N, K, density, block, seed=M)
    w[:block[0]] = 0                            # an empty block row
    data, indices, indptr = ref.dense_to_sparse(w, block)
    args, Y = declare(M, K, data, indices, indptr)
    x = np.random.default_rng(3).standard_normal((M, K)).astype("float32")
    want = ref.dense(x, w)
    np.testing.assert_allclose(ref.sparse_dense(x, data, indices, indptr), want, rtol=1e-5, atol=1e-5)
    for y in run_both(S.schedule(Y), args, (x, data, indices, indptr), (M, N)):
        np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-4)


def test_the_default_schedule_runs_the_rows_nonzeros_only():
    data, indices, indptr = _csr_of(patterned(6, 8))
    args, Y = declare(3, 8, data, indices, indptr)
    text = str(loopc.lower(te.create_schedule(Y.op), args))
    assert "for elem in range(W_indptr[j + 1] - W_indptr[j]):" in text
    assert "if " not in text                     # no constant cover under a guard


def test_bad_declarations_are_loopc_errors():
    X = te.placeholder((4, 6), name="X")
    d, i, p = te.placeholder((5,), name="d"), te.placeholder((4,), "int32", "i"), te.placeholder((3,), "int32", "p")
    with pytest.raises(loopc.LoopcError, match="W_indices has 4 entries but W_data has 5"):
        S.sparse_dense(X, d, i, p)
    with pytest.raises(loopc.LoopcError, match="1-D int32"):
        S.sparse_dense(X, d, te.placeholder((5,), name="i"), p)
    with pytest.raises(loopc.LoopcError, match="not a multiple"):
        S.sparse_dense(X, te.placeholder((5, 2, 4), name="d"), te.placeholder((5,), "int32", "i"), p)


# --------------------------------------------------------------------------- schedules of a data-dependent axis


def csr_case(M=5, K=7, N=6):
    w = patterned(N, K, seed=4)
    data, indices, indptr = _csr_of(w)
    args, Y = declare(M, K, data, indices, indptr)
    x = np.random.default_rng(5).standard_normal((M, K)).astype("float32")
    return args, Y, (x, data, indices, indptr), ref.dense(x, w)


def _split_elem(s, Y):
    s[Y].split(Y.op.reduce_axis[0], factor=2)


def _split_unroll_inner(s, Y):
    _, inner = s[Y].split(Y.op.reduce_axis[0], factor=3)
    s[Y].unroll(inner)


def _reorder_rows_inside(s, Y):
    i, j = Y.op.axis
    s[Y].reorder(j, i, Y.op.reduce_axis[0])


def _split_j_and_vectorize_i(s, Y):
    i, j = Y.op.axis
    jo, ji = s[Y].split(j, factor=4)
    s[Y].reorder(jo, ji, Y.op.reduce_axis[0], i)
    s[Y].vectorize(i)


def _parallel_rows_of_w(s, Y):
    s[Y].parallel(Y.op.axis[1])


def _fuse_data_axes(s, Y):
    s[Y].fuse(*Y.op.axis)


def _cache_write_at_j(s, Y):
    L = s.cache_write(Y, "local")
    s[L].compute_at(s[Y], Y.op.axis[1])


@pytest.mark.parametrize("apply", [_split_elem, _split_unroll_inner, _reorder_rows_inside, _split_j_and_vectorize_i,
                                   _parallel_rows_of_w, _fuse_data_axes, _cache_write_at_j])
def test_allowed_schedules_give_the_same_result(apply):
    args, Y, arrays, want = csr_case()
    s = te.create_schedule(Y.op)
    apply(s, Y)
    for y in run_both(s, args, arrays, want.shape):
        np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-4)


def test_a_split_of_the_row_loop_has_a_data_dependent_tail_guard():
    args, Y, _, _ = csr_case()
    s = te.create_schedule(Y.op)
    _split_elem(s, Y)
    text = str(loopc.lower(s, args))
    assert "for elem.outer in range((W_indptr[j + 1] - W_indptr[j] + 1) // 2):" in text
    assert "if elem.outer*2 + elem.inner < W_indptr[j + 1] - W_indptr[j]:" in text


@pytest.mark.parametrize("primitive,names", [
    (lambda s, Y: s[Y].vectorize(Y.op.reduce_axis[0]), ("vectorize", "elem", "data-dependent")),
    (lambda s, Y: s[Y].unroll(Y.op.reduce_axis[0]), ("unroll", "elem", "data-dependent")),
    (lambda s, Y: s[Y].parallel(Y.op.reduce_axis[0]), ("parallel", "elem", "data-dependent")),
    (lambda s, Y: s[Y].fuse(Y.op.axis[1], Y.op.reduce_axis[0]), ("fuse", "elem", "data-dependent")),
    (lambda s, Y: s.rfactor(Y, Y.op.reduce_axis[0]), ("rfactor", "elem", "data-dependent")),
    (lambda s, Y: s[Y].reorder(Y.op.reduce_axis[0], Y.op.axis[1]), ("reorder", "elem", "reads loop j")),
    (lambda s, Y: s[Y].vectorize(Y.op.axis[1]), ("vectorize", "reads 'j'", "lane")),
    (lambda s, Y: s[Y].bind(Y.op.reduce_axis[0], te.thread_axis("threadIdx.x")), ("bind", "elem")),
    (lambda s, Y: s[Y].split(Y.op.reduce_axis[0], nparts=2), ("split", "elem", "nparts")),
])
def test_refused_primitives_are_schedule_errors(primitive, names):
    args, Y, _, _ = csr_case()
    s = te.create_schedule(Y.op)
    with pytest.raises(loopc.ScheduleError) as err:
        primitive(s, Y)
    one_line(err, *names)


def test_a_refused_reorder_leaves_the_stage_as_it_was():
    args, Y, arrays, want = csr_case()
    s = te.create_schedule(Y.op)
    with pytest.raises(loopc.ScheduleError):
        s[Y].reorder(Y.op.reduce_axis[0], Y.op.axis[1])
    assert [iv.name for iv in s[Y].leaf_iter_vars] == ["i", "j", "elem"]
    np.testing.assert_allclose(run_both(s, args, arrays, want.shape)[0], want, rtol=1e-4, atol=1e-4)


def test_a_relayout_cache_write_with_a_tail_is_refused():
    args, Y, _, _ = csr_case()
    s = te.create_schedule(Y.op)
    s[Y].split(Y.op.axis[1], factor=4)
    with pytest.raises(loopc.ScheduleError) as err:
        s.cache_write(Y, "local")
    one_line(err, "cache_write", "data-dependent")


# --------------------------------------------------------------------------- reads


def test_bounds_check_catches_a_column_index_out_of_range():
    args, Y, (x, data, indices, indptr), want = csr_case()
    f = loopc.build(S.schedule(Y), args, bounds_check=True)
    y = np.zeros(want.shape, np.float32)
    f(x, data, indices, indptr, y)
    np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-4)
    bad = indices.copy()
    bad[len(bad) // 2] = 1000
    with pytest.raises(loopc.BoundsError, match="'X'"):
        f(x, data, bad, indptr, y)
    worse = indptr.copy()
    worse[-1] = len(data) + 3                   # the last row runs past W_data
    with pytest.raises(loopc.BoundsError):
        f(x, data, indices, worse, y)


def test_the_bounds_reads_are_proved_at_compile_time():
    """W_indptr[j + 1] is read for every j: a W_indptr one entry short is a LoweringError."""
    X = te.placeholder((3, 4), name="X")
    d, i = te.placeholder((5,), name="W_data"), te.placeholder((5,), "int32", "W_indices")
    p = te.placeholder((4,), "int32", "W_indptr")

    def row(a, j):
        elem = te.reduce_axis((0, p[j + 1] - p[j]), name="elem")
        return te.sum(d[p[j] + elem] * X[a, i[p[j] + elem]], axis=elem)
    Y = te.compute((3, 4), row, name="Y")
    with pytest.raises(loopc.LoweringError, match="W_indptr"):
        loopc.lower(te.create_schedule(Y.op), [X, d, i, p, Y])


def test_a_reduce_axis_reading_a_tensor_outside_a_compute_is_a_clear_error():
    p = te.placeholder((4,), "int32", "W_indptr")
    with pytest.raises(loopc.LoopcError, match="inside the te.compute lambda"):
        te.reduce_axis((0, p[1] - p[0]), name="elem")


def test_a_data_dependent_start_and_an_extent_read_only_in_the_bounds():
    """TVM's form with the start in the domain: (W_indptr[j], W_indptr[j + 1]); W_indptr is read
    only by the bounds, and still an input of the op."""
    M, K, N = 4, 6, 5
    w = patterned(N, K, seed=9)
    data, indices, indptr = _csr_of(w)
    X = te.placeholder((M, K), name="X")
    d, i = te.placeholder(data.shape, name="W_data"), te.placeholder(indices.shape, "int32", "W_indices")
    p = te.placeholder(indptr.shape, "int32", "W_indptr")

    def row(a, j):
        e = te.reduce_axis((p[j], p[j + 1]), name="e")
        return te.sum(d[e] * X[a, i[e]], axis=e)
    Y = te.compute((M, N), row, name="Y")
    assert p in Y.op.input_tensors
    x = np.random.default_rng(2).standard_normal((M, K)).astype("float32")
    for y in run_both(te.create_schedule(Y.op), [X, d, i, p, Y], (x, data, indices, indptr), (M, N)):
        np.testing.assert_allclose(y, ref.dense(x, w), rtol=1e-4, atol=1e-4)


# --------------------------------------------------------------------------- CUDA (simulator)


def case_cuda_csr_and_bsr():
    for block in ((1, 1), (2, 3)):
        N, K, M = 4 * block[0], 3 * block[1], 5
        w, (data, indices, indptr) = ref.random_sparse(N, K, 0.5, block, seed=7)
        args, Y = declare(M, K, data, indices, indptr)
        f = loopc.build(S.schedule(Y, "cuda"), args, target="cuda")
        x = np.random.default_rng(8).standard_normal((M, K)).astype("float32")
        y = np.zeros((M, N), np.float32)
        f(x, data, indices, indptr, y)
        np.testing.assert_allclose(y, ref.dense(x, w), rtol=1e-4, atol=1e-4)


def test_cuda_simulator():
    proc = run_in_simulator("case_cuda_csr_and_bsr", module="test_sparse")
    assert proc.returncode == 0, proc.stderr[-3000:]


# --------------------------------------------------------------------------- loopc show


def test_show_catalog_entries(capsys):
    from loopc import cli
    assert cli.main(["show", "sparse_dense", "--shape", "3", "8", "5", "50"]) == 0
    out = capsys.readouterr().out
    assert "def sparse_dense(X: float32[3, 8]" in out and "W_indptr: int32[6]" in out and "elem" in out
    assert cli.main(["show", "sparse_dense_bsr", "--shape", "3", "8", "6", "50", "3", "2"]) == 0
    assert "W_indptr: int32[3]" in capsys.readouterr().out
    assert cli.main(["show", "sparse_dense_bsr", "--shape", "3", "8", "5", "50", "3", "2"]) == 2
    assert "multiples" in capsys.readouterr().err
