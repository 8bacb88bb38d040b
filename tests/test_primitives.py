"""Every schedule primitive, on the chapter's operators, against NumPy / PyTorch.

Operators: matmul, the seven-loop convolution (padding by te.if_then_else, stride 2,
dilation 2, N > 1), 3x3/stride-2 max-pooling (te.max over two reduce axes) and a four-stage
row softmax. Shapes are primes, so no factor below divides them and every split has a tail.
Each test checks the printed loop nest (so the primitive really took effect) and the numbers
through the reference interpreter and LLVM.
"""
from __future__ import annotations

import numpy as np
import pytest

from conftest import (check, conv2d, conv2d_ref, conv2d_ref_numpy, loop_headers, loop_kinds, loop_names,
                      lowered_text, matmul, maxpool, softmax, torch)

MM = matmul(13, 7, 29)
CONV = conv2d(N=2, C=3, H=13, W=17, F_=5, KH=3, KW=3, stride=2, pad=1, dilation=2)
CONV_PAD = conv2d(N=2, C=3, H=13, W=17, F_=5, KH=3, KW=3, stride=2, pad=1, dilation=2, padding_stage=True)
POOL = maxpool(N=2, C=3, H=13, W=23)      # output 6 x 11
SOFTMAX = softmax(7, 37)


def extents(s, t):
    """{leaf loop name: extent} of tensor ``t``'s stage."""
    return {iv.name: iv.extent for iv in s[t].leaf_iter_vars}


def kinds(s, wl):
    """{loop name: set of loop kinds} in the printed nest (a loop whose tail was partitioned
    off shows up more than once)."""
    return loop_kinds(lowered_text(s, wl.args))


def names(s, wl):
    return [name for name, _, _, _ in loop_headers(lowered_text(s, wl.args))]


def check_pool(s, **kw):
    return POOL.check(s, **kw)


def check_softmax(s, **kw):
    return SOFTMAX.check(s, rtol=1e-4, atol=1e-6, **kw)


# --------------------------------------------------------------------------- references


@pytest.mark.skipif(torch is None, reason="needs torch to cross-check the NumPy reference")
@pytest.mark.parametrize("stride,pad,dilation", [(2, 1, 2), (1, 2, 1), (3, 3, 1), (2, 0, 3)])
def test_numpy_conv_reference_agrees_with_torch(stride, pad, dilation):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 13, 17)).astype(np.float32)
    w = rng.standard_normal((5, 3, 3, 3)).astype(np.float32)
    np.testing.assert_allclose(conv2d_ref_numpy(x, w, stride, pad, dilation), conv2d_ref(x, w, stride, pad, dilation),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("wl", [MM, CONV, CONV_PAD], ids=["matmul", "conv", "conv_padstage"])
def test_default_schedule(wl):
    wl.check(wl.schedule())


def test_default_schedule_pool_and_softmax():
    check_pool(POOL.schedule())
    check_softmax(SOFTMAX.schedule())


@pytest.mark.parametrize("stride,pad,dilation", [(1, 2, 1), (3, 3, 1), (2, 0, 3), (1, 0, 1)])
def test_conv_strides_paddings_dilations(stride, pad, dilation):
    wl = conv2d(N=2, C=3, H=11, W=13, F_=4, KH=3, KW=3, stride=stride, pad=pad, dilation=dilation)
    s = wl.schedule()
    x = wl.conv.op.axis[3]
    _, xi = s[wl.conv].split(x, factor=4)
    s[wl.conv].vectorize(xi)
    wl.check(s)


# --------------------------------------------------------------------------- split


def test_split_by_factor_non_dividing():
    s = MM.schedule()
    i, j = MM.C.op.axis
    s[MM.C].split(i, factor=4)       # 13 = 4*3 + 1
    s[MM.C].split(j, factor=8)       # 29 = 8*3 + 5
    assert extents(s, MM.C) == {"i.outer": 4, "i.inner": 4, "j.outer": 4, "j.inner": 8, "k": 7}
    text = lowered_text(s, MM.args)
    assert loop_names(text) == ["i.outer", "i.inner", "j.outer", "j.inner", "k"], text
    # the tails are partitioned off and run only their live iterations: no guards left
    assert "for i.inner in range(1):" in text and "for j.inner in range(5):" in text, text
    assert "< 13" not in text and "< 29" not in text, text
    MM.check(s)


def test_split_by_nparts_non_dividing():
    s = MM.schedule()
    i, j = MM.C.op.axis
    s[MM.C].split(j, nparts=3)       # inner = ceil(29 / 3) = 10, covers 30
    s[MM.C].split(i, nparts=5)       # inner = ceil(13 / 5) = 3, covers 15
    assert extents(s, MM.C) == {"i.outer": 5, "i.inner": 3, "j.outer": 3, "j.inner": 10, "k": 7}
    MM.check(s)


@pytest.mark.parametrize("kw", [dict(factor=1), dict(factor=13), dict(factor=32), dict(nparts=1), dict(nparts=13),
                                dict(nparts=20)], ids=lambda kw: "-".join(f"{k}{v}" for k, v in kw.items()))
def test_split_extreme_factors(kw):
    s = MM.schedule()
    s[MM.C].split(MM.C.op.axis[0], **kw)
    MM.check(s, llvm=kw in (dict(factor=32), dict(nparts=20)))


def test_split_reduction_axis_by_factor_and_nparts():
    s = MM.schedule()
    ko, ki = s[MM.C].split(MM.k, factor=3)           # 7 = 3*2 + 1
    kio, kii = s[MM.C].split(ki, nparts=2)
    assert [iv.name for iv in s[MM.C].leaf_iter_vars] == ["i", "j", "k.outer", "k.inner.outer", "k.inner.inner"]
    MM.check(s)


def test_split_conv_reduction_axes():
    s = CONV.schedule()
    s[CONV.conv].split(CONV.c, nparts=2)
    s[CONV.conv].split(CONV.rx, factor=2)
    CONV.check(s)


# --------------------------------------------------------------------------- tile


def test_tile_matmul():
    s = MM.schedule()
    i, j = MM.C.op.axis
    io, jo, ii, ji = s[MM.C].tile(i, j, 4, 8)
    assert [iv.name for iv in s[MM.C].leaf_iter_vars] == ["i.outer", "j.outer", "i.inner", "j.inner", "k"]
    assert (io.extent, jo.extent, ii.extent, ji.extent) == (4, 4, 4, 8)
    MM.check(s)


def test_tile_conv_output_plane():
    s = CONV.schedule()
    n, f, y, x = CONV.conv.op.axis
    s[CONV.conv].tile(y, x, 4, 3)
    CONV.check(s)


def test_tile_pool():
    s = POOL.schedule()
    n, c, y, x = POOL.pool.op.axis
    s[POOL.pool].tile(y, x, 4, 4)
    check_pool(s)


# --------------------------------------------------------------------------- fuse


def test_fuse_two_axes():
    s = MM.schedule()
    i, j = MM.C.op.axis
    fused = s[MM.C].fuse(i, j)
    assert fused.extent == 13 * 29
    assert extents(s, MM.C) == {fused.name: 13 * 29, "k": 7}
    assert f"for {fused.name} in range({13 * 29}):" in lowered_text(s, MM.args)
    MM.check(s)


def test_fuse_three_axes_conv():
    s = CONV.schedule()
    n, f, y, x = CONV.conv.op.axis
    fused = s[CONV.conv].fuse(n, f, y)
    assert fused.extent == 2 * 5 * 6
    assert [iv.name for iv in s[CONV.conv].leaf_iter_vars][:2] == [fused.name, "x"]
    CONV.check(s)


def test_fuse_reduction_axes():
    s = CONV.schedule()
    r = s[CONV.conv].fuse(CONV.c, CONV.ry, CONV.rx)
    assert r.extent == 27
    CONV.check(s)
    s = POOL.schedule()
    s[POOL.pool].fuse(POOL.ry, POOL.rx)
    check_pool(s)


def test_fuse_then_split_non_dividing():
    s = MM.schedule()
    i, j = MM.C.op.axis
    fused = s[MM.C].fuse(i, j)
    s[MM.C].split(fused, factor=16)   # 377 = 16*23 + 9
    MM.check(s)


def test_split_then_fuse_inner_axes():
    s = MM.schedule()
    i, j = MM.C.op.axis
    io, jo, ii, ji = s[MM.C].tile(i, j, 4, 8)
    s[MM.C].fuse(ii, ji)
    MM.check(s)


# --------------------------------------------------------------------------- reorder


def test_reorder_data_axes():
    s = MM.schedule()
    i, j = MM.C.op.axis
    s[MM.C].reorder(j, i)
    assert names(s, MM) == ["j", "i", "k"]
    MM.check(s)


def test_reorder_reduction_axis_outermost():
    s = MM.schedule()
    i, j = MM.C.op.axis
    s[MM.C].reorder(MM.k, i, j)
    # the init nest runs first over the data axes, then k encloses the update nest
    assert names(s, MM) == ["i", "j", "k", "i", "j"]
    MM.check(s)


def test_reorder_split_reduction_between_data_axes():
    s = MM.schedule()
    i, j = MM.C.op.axis
    ko, ki = s[MM.C].split(MM.k, factor=3)
    io, ii = s[MM.C].split(i, factor=4)
    s[MM.C].reorder(ko, io, j, ki, ii)
    MM.check(s)


def test_reorder_conv_reduction_outside_output_plane():
    s = CONV.schedule()
    n, f, y, x = CONV.conv.op.axis
    s[CONV.conv].reorder(n, CONV.c, CONV.ry, f, CONV.rx, y, x)
    CONV.check(s)


def test_reorder_pool_window_outside():
    s = POOL.schedule()
    n, c, y, x = POOL.pool.op.axis
    s[POOL.pool].reorder(POOL.rx, POOL.ry, n, c, y, x)
    check_pool(s)


def test_reorder_partial_keeps_other_positions():
    s = CONV.schedule()
    n, f, y, x = CONV.conv.op.axis
    s[CONV.conv].reorder(x, n)   # only swaps the slots of n and x
    assert [iv.name for iv in s[CONV.conv].leaf_iter_vars] == ["x", "f", "y", "n", "c", "ry", "rx"]
    CONV.check(s)


# --------------------------------------------------------------------------- unroll


def test_unroll_inner_split_and_reduction():
    s = MM.schedule()
    i, j = MM.C.op.axis
    jo, ji = s[MM.C].split(j, factor=4)
    s[MM.C].unroll(ji)
    s[MM.C].unroll(MM.k)
    text = lowered_text(s, MM.args)
    assert "j.inner" not in loop_names(text) and "k" not in loop_names(text), text  # unrolled in loopc's IR
    assert "unrolled(" not in text
    MM.check(s)


def test_unroll_conv_window():
    s = CONV.schedule()
    s[CONV.conv].unroll(CONV.ry)
    s[CONV.conv].unroll(CONV.rx)
    CONV.check(s)


def test_unroll_pool_window_and_tail():
    s = POOL.schedule()
    n, c, y, x = POOL.pool.op.axis
    xo, xi = s[POOL.pool].split(x, factor=4)   # 11 = 4*2 + 3: the unrolled copies keep their guards
    s[POOL.pool].reorder(n, c, y, xo, POOL.ry, POOL.rx, xi)
    s[POOL.pool].unroll(xi)
    s[POOL.pool].unroll(POOL.rx)
    check_pool(s)


# --------------------------------------------------------------------------- vectorize


@pytest.mark.parametrize("lanes", [8, 16])
def test_vectorize_matmul_tail(lanes):
    s = MM.schedule()
    i, j = MM.C.op.axis
    jo, ji = s[MM.C].split(j, factor=lanes)    # 29 leaves a tail of 5 / 13
    s[MM.C].reorder(i, jo, MM.k, ji)
    s[MM.C].vectorize(ji)
    assert kinds(s, MM)["j.inner"] == {"vectorized"}
    assert f"for j.inner in vectorized({lanes}):" in lowered_text(s, MM.args)
    MM.check(s)


@pytest.mark.parametrize("lanes", [8, 16])
def test_a_vector_tail_runs_only_its_live_lanes(lanes):
    """The partitioned tail of a vectorized split (29 = 3*8 + 5 = 16 + 13) is a shorter vector
    loop without a guard (no masked lanes: the accumulators of the k loop stay in registers)."""
    s = MM.schedule()
    i, j = MM.C.op.axis
    jo, ji = s[MM.C].split(j, factor=lanes)
    s[MM.C].reorder(i, jo, MM.k, ji)
    s[MM.C].vectorize(ji)
    text = lowered_text(s, MM.args)
    assert f"for j.inner in vectorized({29 % lanes}):" in text
    assert "< 29" not in text                 # no tail guard left anywhere
    MM.check(s)


@pytest.mark.parametrize("lanes", [8, 16])
def test_vectorize_softmax_stages_tail(lanes):
    s = SOFTMAX.schedule()
    for name in ("expo", "softmax"):
        t = getattr(SOFTMAX, name)
        _, ji = s[t].split(t.op.axis[1], factor=lanes)   # 37 leaves a tail of 5
        s[t].vectorize(ji)
    check_softmax(s)


def test_vectorize_whole_axis_of_prime_extent():
    s = MM.schedule()
    i, j = MM.C.op.axis
    s[MM.C].reorder(MM.k, i, j)
    s[MM.C].vectorize(i)        # extent 13, no split
    MM.check(s)


def test_vectorize_non_innermost_loop():
    s = MM.schedule()
    i, j = MM.C.op.axis
    io, ii = s[MM.C].split(i, factor=8)
    s[MM.C].reorder(io, ii, MM.k, j)
    s[MM.C].vectorize(ii)       # j and k loops run inside the vectorized loop
    text = lowered_text(s, MM.args)
    assert kinds(s, MM)["i.inner"] == {"vectorized"}
    assert text.index("vectorized(8)") < text.rindex("for j in"), text
    MM.check(s)


def test_vectorize_strided_conv_row():
    """Stride 2 and dilation 2: each lane reads every other input column (a gather),
    and the if_then_else padding becomes a per-lane mask."""
    s = CONV.schedule()
    n, f, y, x = CONV.conv.op.axis
    xo, xi = s[CONV.conv].split(x, factor=8)   # OW = 8
    s[CONV.conv].reorder(n, f, y, xo, CONV.c, CONV.ry, CONV.rx, xi)
    s[CONV.conv].vectorize(xi)
    CONV.check(s)


def test_vectorize_conv_output_channels_non_innermost():
    s = CONV.schedule()
    n, f, y, x = CONV.conv.op.axis
    s[CONV.conv].reorder(n, y, f, x, CONV.c, CONV.ry, CONV.rx)
    s[CONV.conv].vectorize(f)   # extent 5; x and the reduction run inside it
    CONV.check(s)


@pytest.mark.parametrize("lanes", [8, 16])
def test_vectorize_pool_tail(lanes):
    s = POOL.schedule()
    n, c, y, x = POOL.pool.op.axis
    xo, xi = s[POOL.pool].split(x, factor=lanes)
    s[POOL.pool].reorder(n, c, y, xo, POOL.ry, POOL.rx, xi)
    s[POOL.pool].vectorize(xi)
    check_pool(s)


def test_vectorize_reduction_stage_data_axis():
    s = SOFTMAX.schedule()
    for name in ("rowmax", "rowsum"):
        t = getattr(SOFTMAX, name)
        k = SOFTMAX.k1 if name == "rowmax" else SOFTMAX.k2
        s[t].reorder(k, t.op.axis[0])
        s[t].vectorize(t.op.axis[0])   # 7 rows as 7 lanes
    check_softmax(s)


def test_vectorize_fused_loop():
    s = MM.schedule()
    i, j = MM.C.op.axis
    s[MM.C].reorder(MM.k, i, j)
    io, ii = s[MM.C].split(i, factor=2)
    fused = s[MM.C].fuse(ii, j)      # 58 lanes of i // 29, i % 29 indices
    s[MM.C].vectorize(fused)
    MM.check(s)


# --------------------------------------------------------------------------- parallel


def test_parallel_outer_loop():
    s = MM.schedule()
    i, j = MM.C.op.axis
    io, ii = s[MM.C].split(i, nparts=3)
    s[MM.C].parallel(io)
    assert "for i.outer in parallel(" in lowered_text(s, MM.args)
    assert "parallel" in kinds(s, MM)["i.outer"]
    MM.check(s)


def test_parallel_fused_loop_conv():
    s = CONV.schedule()
    n, f, y, x = CONV.conv.op.axis
    fused = s[CONV.conv].fuse(n, f)
    s[CONV.conv].parallel(fused)
    assert f"for {fused.name} in parallel(10):" in lowered_text(s, CONV.args)
    CONV.check(s)


def test_parallel_fused_pool():
    s = POOL.schedule()
    n, c, y, x = POOL.pool.op.axis
    s[POOL.pool].parallel(s[POOL.pool].fuse(n, c, y))
    check_pool(s)


def test_parallel_inside_reduction_loop():
    """A parallel loop inside the reduction loop: one parallel region per k."""
    s = MM.schedule()
    i, j = MM.C.op.axis
    s[MM.C].reorder(MM.k, i, j)
    s[MM.C].parallel(i)
    MM.check(s)


def test_nested_parallel_loops():
    s = MM.schedule()
    i, j = MM.C.op.axis
    s[MM.C].parallel(i)
    s[MM.C].parallel(j)    # the inner one runs serially inside the outer region
    MM.check(s)


def test_parallel_vectorize_unroll_together():
    s = MM.schedule()
    i, j = MM.C.op.axis
    io, jo, ii, ji = s[MM.C].tile(i, j, 4, 8)
    ko, ki = s[MM.C].split(MM.k, factor=4)
    s[MM.C].reorder(io, jo, ko, ki, ii, ji)
    s[MM.C].vectorize(ji)
    s[MM.C].unroll(ki)
    s[MM.C].parallel(io)
    MM.check(s)


def test_parallel_softmax_stages():
    s = SOFTMAX.schedule()
    for name in ("rowmax", "expo", "rowsum", "softmax"):
        t = getattr(SOFTMAX, name)
        s[t].parallel(t.op.axis[0])
    check_softmax(s)


# --------------------------------------------------------------------------- compute_inline / compute_root


def test_compute_inline_padding_stage_into_conv():
    s = CONV_PAD.schedule()
    assert "pad = allocate" in lowered_text(s, CONV_PAD.args)
    s[CONV_PAD.pad].compute_inline()
    text = lowered_text(s, CONV_PAD.args)
    assert "pad = allocate" not in text and "pad[" not in text, text
    CONV_PAD.check(s)


def test_compute_inline_padding_with_scheduled_conv():
    s = CONV_PAD.schedule()
    s[CONV_PAD.pad].compute_inline()
    n, f, y, x = CONV_PAD.conv.op.axis
    xo, xi = s[CONV_PAD.conv].split(x, factor=4)
    s[CONV_PAD.conv].reorder(n, f, y, xo, CONV_PAD.c, CONV_PAD.ry, CONV_PAD.rx, xi)
    s[CONV_PAD.conv].vectorize(xi)
    s[CONV_PAD.conv].parallel(s[CONV_PAD.conv].fuse(n, f))
    CONV_PAD.check(s)


def test_padding_stage_scheduled_at_root():
    s = CONV_PAD.schedule()
    n, c, y, x = CONV_PAD.pad.op.axis
    _, xi = s[CONV_PAD.pad].split(x, factor=8)     # 19 = 8*2 + 3
    s[CONV_PAD.pad].vectorize(xi)
    s[CONV_PAD.pad].parallel(n)
    CONV_PAD.check(s)


def test_compute_inline_elementwise_stage():
    s = SOFTMAX.schedule()
    s[SOFTMAX.expo].compute_inline()   # read by rowsum (a reduction) and by softmax
    text = lowered_text(s, SOFTMAX.args)
    assert "expo = allocate" not in text and "exp(" in text, text
    check_softmax(s)


def test_compute_inline_chain_of_elementwise_stages():
    A = MM.A
    from loopc import te
    B1 = te.compute(A.shape, lambda i, j: A[i, j] * 2.0, name="B1")
    B2 = te.compute(A.shape, lambda i, j: B1[i, j] + 1.0, name="B2")
    C = te.compute(A.shape, lambda i, j: B2[i, j] * B1[i, j], name="C2")
    s = te.create_schedule(C.op)
    s[B1].compute_inline()
    s[B2].compute_inline()
    text = lowered_text(s, [A, C])
    assert "allocate" not in text, text
    check(s, [A, C], lambda a: (a * 2 + 1) * (a * 2))


def test_compute_root_undoes_compute_inline():
    s = SOFTMAX.schedule()
    s[SOFTMAX.expo].compute_inline()
    s[SOFTMAX.expo].compute_root()
    assert "expo = allocate" in lowered_text(s, SOFTMAX.args)
    check_softmax(s)


def test_compute_root_on_root_stage_is_a_no_op():
    s = MM.schedule()
    before = lowered_text(s, MM.args)
    s[MM.C].compute_root()
    assert lowered_text(s, MM.args) == before
    MM.check(s, interp=False)


def test_intermediate_on_the_heap():
    """A large intermediate (over the 64 KiB stack limit) is heap allocated and freed."""
    from loopc import te
    A = te.placeholder((131, 137), name="A")
    B = te.compute(A.shape, lambda i, j: A[i, j] * 3.0, name="B")
    C = te.compute((137, 131), lambda i, j: B[j, i] - 1.0, name="C")
    s = te.create_schedule(C.op)
    s[C].parallel(C.op.axis[0])
    check(s, [A, C], lambda a: (a * 3 - 1).T, interp=False)
