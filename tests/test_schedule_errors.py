"""Illegal schedules are refused with a ScheduleError that names the primitive, the stage
and the axis (and says how to fix it); bad argument lists with a LoweringError."""
from __future__ import annotations

import re

import numpy as np
import pytest

import loopc
from loopc import BuildError, LoopcError, LoweringError, ScheduleError, te
from loopc.schedule import MAX_UNROLL_EXTENT, MAX_VECTOR_LANES

M, K, N = 13, 7, 29


def make_matmul():
    """Matmul with distinctive loop names: data axes row, col; reduction axis kk."""
    A = te.placeholder((M, K), name="A")
    B = te.placeholder((K, N), name="B")
    kk = te.reduce_axis((0, K), name="kk")
    C = te.compute((M, N), lambda row, col: te.sum(A[row, kk] * B[kk, col], axis=kk), name="Cmat")
    s = te.create_schedule(C.op)
    row, col = C.op.axis
    return s, A, B, C, row, col, kk


def named(msg, name):
    return re.search(rf"(?<![\w.]){re.escape(name)}(?![\w])", msg) is not None


def expect(fn, primitive, stage, *axes, match=None):
    """``fn()`` raises ScheduleError naming ``primitive``, ``stage`` and each of ``axes``."""
    with pytest.raises(ScheduleError) as info:
        fn()
    err = info.value
    msg = str(err)
    assert isinstance(err, LoopcError)
    assert err.primitive == primitive and err.stage == stage, msg
    assert msg.startswith(f"{primitive} on stage '{stage}'"), msg
    for ax in axes:
        assert named(msg, ax), f"message does not name axis {ax!r}: {msg}"
    if match is not None:
        assert re.search(match, msg), msg
    assert "how to fix" in msg, msg
    return msg


# --------------------------------------------------------------------------- which axis


def test_axis_unknown_to_the_schedule():
    s, A, B, C, row, col, kk = make_matmul()
    ghost = te.reduce_axis((0, 5), name="ghost")
    msg = expect(lambda: s[C].split(ghost, factor=2), "split", "Cmat", "ghost", match="unknown")
    assert "row, col, kk" in msg   # the fix lists the current loops


def test_axis_of_another_stage():
    s, A, B, C, row, col, kk = make_matmul()
    D = te.compute((M, N), lambda p, q: C[p, q] * 2.0, name="Dout")
    s2 = te.create_schedule(D.op)
    expect(lambda: s2[D].split(row, factor=2), "split", "Dout", "row", "Cmat", match="belongs to stage 'Cmat'")
    expect(lambda: s2[C].vectorize(D.op.axis[1]), "vectorize", "Cmat", "q", "Dout")
    expect(lambda: s2[D].reorder(D.op.axis[1], col), "reorder", "Dout", "col")


def test_axis_already_split_is_no_longer_a_leaf():
    s, A, B, C, row, col, kk = make_matmul()
    s[C].split(row, factor=4)
    msg = expect(lambda: s[C].split(row, factor=2), "split", "Cmat", "row", match="no longer a loop")
    assert "row.outer" in msg and "row.inner" in msg
    expect(lambda: s[C].vectorize(row), "vectorize", "Cmat", "row")
    expect(lambda: s[C].reorder(col, row), "reorder", "Cmat", "row")


def test_axis_already_fused_is_no_longer_a_leaf():
    s, A, B, C, row, col, kk = make_matmul()
    s[C].fuse(row, col)
    expect(lambda: s[C].parallel(col), "parallel", "Cmat", "col", match="row.col.fused")


def test_axis_must_be_an_itervar():
    s, A, B, C, row, col, kk = make_matmul()
    expect(lambda: s[C].vectorize("col"), "vectorize", "Cmat", "col", match="IterVar")
    expect(lambda: s[C].split(3, factor=2), "split", "Cmat", match="IterVar")


# --------------------------------------------------------------------------- split arguments


@pytest.mark.parametrize("kw", [dict(factor=0), dict(factor=-3), dict(factor=2.5), dict(factor="4"),
                                dict(factor=True), dict(nparts=0), dict(nparts=-1), dict(nparts=1.0)],
                         ids=lambda kw: "-".join(f"{k}={v!r}" for k, v in kw.items()))
def test_split_factor_must_be_a_positive_int(kw):
    s, A, B, C, row, col, kk = make_matmul()
    (what, value), = kw.items()
    expect(lambda: s[C].split(row, **kw), "split", "Cmat", "row", match=rf"{what}={re.escape(repr(value))}")
    assert [iv.name for iv in s[C].leaf_iter_vars] == ["row", "col", "kk"]   # nothing changed
    assert s.trace == []


@pytest.mark.parametrize("kw", [dict(), dict(factor=2, nparts=2)], ids=["neither", "both"])
def test_split_needs_exactly_one_of_factor_and_nparts(kw):
    s, A, B, C, row, col, kk = make_matmul()
    expect(lambda: s[C].split(col, **kw), "split", "Cmat", "col", match="exactly one of factor= or nparts=")


def test_split_accepts_numpy_integers():
    s, A, B, C, row, col, kk = make_matmul()
    outer, inner = s[C].split(row, factor=np.int64(4))
    assert (outer.extent, inner.extent) == (4, 4)


# --------------------------------------------------------------------------- loop kinds


def test_parallel_on_reduction_axis():
    s, A, B, C, row, col, kk = make_matmul()
    expect(lambda: s[C].parallel(kk), "parallel", "Cmat", "kk", match="reduction")


def test_vectorize_on_reduction_axis():
    s, A, B, C, row, col, kk = make_matmul()
    expect(lambda: s[C].vectorize(kk), "vectorize", "Cmat", "kk", match="reduction")
    ko, ki = s[C].split(kk, factor=4)      # a split reduction axis is still a reduction axis
    expect(lambda: s[C].vectorize(ki), "vectorize", "Cmat", "kk.inner", match="reduction")
    expect(lambda: s[C].parallel(ko), "parallel", "Cmat", "kk.outer", match="reduction")


def test_vectorize_above_max_lanes():
    A = te.placeholder((3, MAX_VECTOR_LANES + 1), name="A")
    B = te.compute(A.shape, lambda r, wide: A[r, wide] + 1.0, name="Bvec")
    s = te.create_schedule(B.op)
    expect(lambda: s[B].vectorize(B.op.axis[1]), "vectorize", "Bvec", "wide", match=str(MAX_VECTOR_LANES))
    _, inner = s[B].split(B.op.axis[1], factor=MAX_VECTOR_LANES)   # exactly at the cap is fine
    s[B].vectorize(inner)


def test_unroll_above_max_extent():
    A = te.placeholder((2, MAX_UNROLL_EXTENT + 1), name="A")
    B = te.compute(A.shape, lambda r, wide: A[r, wide] + 1.0, name="Bun")
    s = te.create_schedule(B.op)
    expect(lambda: s[B].unroll(B.op.axis[1]), "unroll", "Bun", "wide", match=str(MAX_UNROLL_EXTENT))
    _, inner = s[B].split(B.op.axis[1], factor=MAX_UNROLL_EXTENT)
    s[B].unroll(inner)


def test_unrolling_too_many_statements_is_a_lowering_error():
    """Each loop is under the cap, but together they would unroll into > 20000 statements."""
    A = te.placeholder((145, 139), name="A")
    B = te.compute(A.shape, lambda r, c: A[r, c] + 1.0, name="Bbig")
    s = te.create_schedule(B.op)
    s[B].unroll(B.op.axis[0])
    s[B].unroll(B.op.axis[1])
    with pytest.raises(LoweringError, match="unroll"):
        loopc.lower(s, [A, B])


def test_annotating_a_loop_twice_with_different_kinds():
    s, A, B, C, row, col, kk = make_matmul()
    s[C].vectorize(col)
    expect(lambda: s[C].parallel(col), "parallel", "Cmat", "col", match="already vectorized")
    expect(lambda: s[C].unroll(col), "unroll", "Cmat", "col", match="already vectorized")
    s[C].vectorize(col)   # the same kind again is harmless


# --------------------------------------------------------------------------- reorder / fuse


def test_reorder_axis_listed_twice():
    s, A, B, C, row, col, kk = make_matmul()
    expect(lambda: s[C].reorder(col, row, col), "reorder", "Cmat", "col", match="twice")
    assert [iv.name for iv in s[C].leaf_iter_vars] == ["row", "col", "kk"]


def test_fuse_non_adjacent_axes():
    s, A, B, C, row, col, kk = make_matmul()
    s[C].reorder(row, kk, col)
    expect(lambda: s[C].fuse(row, col), "fuse", "Cmat", "row", "col", match="adjacent")


def test_fuse_axes_in_inner_to_outer_order():
    s, A, B, C, row, col, kk = make_matmul()
    expect(lambda: s[C].fuse(col, row), "fuse", "Cmat", "row", "col", match="adjacent")


def test_fuse_of_one_axis_is_that_axis():
    """TVM: fusing one loop returns it (and fuse() with none adds a unit loop: test_primitives_tvm)."""
    s, A, B, C, row, col, kk = make_matmul()
    assert s[C].fuse(col) is col
    assert [iv.name for iv in s[C].leaf_iter_vars] == ["row", "col", "kk"]
    expect(lambda: s[C].fuse("col"), "fuse", "Cmat", match="expected an axis")


def test_fuse_reduction_with_data_axis_is_refused():
    s, A, B, C, row, col, kk = make_matmul()
    expect(lambda: s[C].fuse(col, kk), "fuse", "Cmat", match="reduction")
    assert [iv.name for iv in s[C].leaf_iter_vars] == ["row", "col", "kk"]


def test_fuse_reduction_with_data_axis_names_the_axes():
    s, A, B, C, row, col, kk = make_matmul()
    expect(lambda: s[C].fuse(col, kk), "fuse", "Cmat", "col", "kk")


def test_failed_tile_leaves_the_stage_unchanged():
    s, A, B, C, row, col, kk = make_matmul()
    expect(lambda: s[C].tile(row, col, 4, 0), "tile", "Cmat", "col")
    assert [iv.name for iv in s[C].leaf_iter_vars] == ["row", "col", "kk"]
    assert s.trace == []


# --------------------------------------------------------------------------- stages


def test_compute_inline_of_an_output():
    s, A, B, C, row, col, kk = make_matmul()
    expect(lambda: s[C].compute_inline(), "compute_inline", "Cmat", match="output")


def test_compute_inline_of_a_reduction_stage():
    s, A, B, C, row, col, kk = make_matmul()
    D = te.compute((M, N), lambda p, q: C[p, q] + 1.0, name="Dout")
    s = te.create_schedule(D.op)
    expect(lambda: s[C].compute_inline(), "compute_inline", "Cmat", match="reduction")


def test_compute_inline_after_split():
    A = te.placeholder((M, N), name="A")
    Bm = te.compute((M, N), lambda p, q: A[p, q] * 2.0, name="Bmid")
    D = te.compute((M, N), lambda p, q: Bm[p, q] + 1.0, name="Dout")
    s = te.create_schedule(D.op)
    s[Bm].split(Bm.op.axis[0], factor=4)
    expect(lambda: s[Bm].compute_inline(), "compute_inline", "Bmid", match="split")


def test_primitives_on_an_inlined_stage():
    A = te.placeholder((M, N), name="A")
    Bm = te.compute((M, N), lambda p, q: A[p, q] * 2.0, name="Bmid")
    D = te.compute((M, N), lambda p, q: Bm[p, q] + 1.0, name="Dout")
    s = te.create_schedule(D.op)
    s[Bm].compute_inline()
    p, q = Bm.op.axis
    expect(lambda: s[Bm].split(p, factor=4), "split", "Bmid", match="inlined")
    expect(lambda: s[Bm].fuse(p, q), "fuse", "Bmid", match="inlined")
    expect(lambda: s[Bm].reorder(q, p), "reorder", "Bmid", match="inlined")
    expect(lambda: s[Bm].vectorize(q), "vectorize", "Bmid", match="inlined")
    expect(lambda: s[Bm].parallel(p), "parallel", "Bmid", match="inlined")


def test_schedule_of_a_placeholder():
    s, A, B, C, row, col, kk = make_matmul()
    expect(lambda: s[A], "s[...]", "A", match="placeholder")
    expect(lambda: s[B.op], "s[...]", "B", match="placeholder")
    expect(lambda: te.create_schedule(A), "create_schedule", "A", match="placeholder")


def test_schedule_of_a_tensor_outside_the_schedule():
    s, A, B, C, row, col, kk = make_matmul()
    X = te.placeholder((3,), name="X")
    Y = te.compute((3,), lambda i: X[i] * 2.0, name="Yother")
    expect(lambda: s[Y], "s[...]", "Yother", match="not part of this schedule")


# --------------------------------------------------------------------------- lowering / build


def test_lowering_missing_placeholder():
    s, A, B, C, row, col, kk = make_matmul()
    with pytest.raises(LoweringError, match="placeholder 'B'.*not in args"):
        loopc.lower(s, [A, C])
    with pytest.raises(LoweringError, match="'B'"):
        loopc.build(s, [A, C])


def test_lowering_output_not_in_args():
    s, A, B, C, row, col, kk = make_matmul()
    with pytest.raises(LoweringError, match="output 'Cmat' is not in args"):
        loopc.lower(s, [A, B])


@pytest.mark.parametrize("case", ["empty", "duplicate", "not a tensor", "unrelated tensor"])
def test_lowering_bad_argument_lists(case):
    s, A, B, C, row, col, kk = make_matmul()
    X = te.placeholder((3,), name="X")
    args = {"empty": [], "duplicate": [A, B, C, A], "not a tensor": [A, B, C, 3],
            "unrelated tensor": [A, B, C, X]}[case]
    with pytest.raises(LoweringError):
        loopc.lower(s, args)


def test_build_unknown_target():
    s, A, B, C, row, col, kk = make_matmul()
    with pytest.raises(BuildError, match="metal"):
        loopc.build(s, [A, B, C], target="metal")
    with pytest.raises(BuildError, match="-foo"):
        loopc.build(s, [A, B, C], target="llvm -foo=1")


def test_error_classes():
    assert issubclass(ScheduleError, LoopcError)
    assert issubclass(LoweringError, LoopcError)
    assert issubclass(BuildError, LoopcError)
    assert issubclass(loopc.ArgumentError, LoopcError)
