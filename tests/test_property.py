"""Property tests: any legal schedule computes what the default schedule computes.

Hypothesis draws a random sequence of legal primitives (split / tile / reorder / fuse /
unroll / vectorize / parallel) for a matmul and for a 3-D elementwise op on prime shapes,
then runs the result through the reference interpreter and through LLVM. Both must agree
with the default schedule (and with NumPy).

LOOPC_PROPERTY_EXAMPLES=500 runs a longer search.
"""
from __future__ import annotations

import os
from functools import lru_cache

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import loopc
from loopc.ir.stmt import ForKind
from loopc.te.tensor import IterKind

from conftest import assert_close, elementwise3d, inputs_for, matmul, run_interp, run_llvm

EXAMPLES = int(os.environ.get("LOOPC_PROPERTY_EXAMPLES", "30"))
PROPERTY = settings(max_examples=EXAMPLES, deadline=None, derandomize="LOOPC_PROPERTY_EXAMPLES" not in os.environ,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

MAX_VECTOR = 16      # vectorize only leaves of extent <= 16
MAX_UNROLL = 8       # unroll only leaves of extent <= 8
MAX_UNROLL_PRODUCT = 64  # keep unrolled bodies (and compile times) small


def _free(stage, iv):
    """A leaf with no annotation yet."""
    return stage.iter_kinds.get(iv, ForKind.SERIAL) is ForKind.SERIAL


def _unroll_product(stage):
    n = 1
    for iv, kind in stage.iter_kinds.items():
        if kind is ForKind.UNROLLED and iv in stage.leaf_iter_vars:
            n *= iv.extent
    return n


def legal_moves(stage):
    """Names of the primitives that have at least one legal application now."""
    leaves = stage.leaf_iter_vars
    free = [iv for iv in leaves if _free(stage, iv)]
    moves = []
    if [iv for iv in free if iv.extent > 1]:
        moves.append("split")
    if len([iv for iv in free if iv.extent > 1]) >= 2:
        moves.append("tile")
    if len(leaves) >= 2:
        moves.append("reorder")
    if _fusable_pairs(stage):
        moves.append("fuse")
    if [iv for iv in free if iv.extent <= MAX_UNROLL and iv.extent * _unroll_product(stage) <= MAX_UNROLL_PRODUCT]:
        moves.append("unroll")
    if [iv for iv in free if iv.kind is IterKind.DATA_PAR and iv.extent <= MAX_VECTOR]:
        moves.append("vectorize")
    if [iv for iv in free if iv.kind is IterKind.DATA_PAR]:
        moves.append("parallel")
    return moves


def _fusable_pairs(stage):
    leaves = stage.leaf_iter_vars
    return [n for n in range(len(leaves) - 1)
            if leaves[n].kind is leaves[n + 1].kind and _free(stage, leaves[n]) and _free(stage, leaves[n + 1])]


def apply_random_move(data, stage):
    """Draw one legal primitive with legal arguments and apply it; returns a description."""
    move = data.draw(st.sampled_from(legal_moves(stage)), label="move")
    leaves = stage.leaf_iter_vars
    free = [iv for iv in leaves if _free(stage, iv)]
    if move == "split":
        iv = data.draw(st.sampled_from([x for x in free if x.extent > 1]), label="split axis")
        how = data.draw(st.sampled_from(["factor", "nparts"]), label="split by")
        n = data.draw(st.integers(1, iv.extent + 2), label=how)
        stage.split(iv, **{how: n})
        return f"split({iv.name}, {how}={n})"
    if move == "tile":
        cands = [x for x in free if x.extent > 1]
        x = data.draw(st.sampled_from(cands), label="tile x")
        y = data.draw(st.sampled_from([c for c in cands if c is not x]), label="tile y")
        xf = data.draw(st.integers(1, x.extent + 1), label="x factor")
        yf = data.draw(st.integers(1, y.extent + 1), label="y factor")
        stage.tile(x, y, xf, yf)
        return f"tile({x.name}, {y.name}, {xf}, {yf})"
    if move == "reorder":
        order = data.draw(st.permutations(leaves), label="order")
        k = data.draw(st.integers(2, len(leaves)), label="reorder count")
        stage.reorder(*order[:k])
        return f"reorder({', '.join(iv.name for iv in order[:k])})"
    if move == "fuse":
        n = data.draw(st.sampled_from(_fusable_pairs(stage)), label="fuse at")
        # fuse two adjacent leaves, or three when the third is fusable too
        ivs = [leaves[n], leaves[n + 1]]
        if (n + 2 < len(leaves) and leaves[n + 2].kind is leaves[n].kind and _free(stage, leaves[n + 2])
                and data.draw(st.booleans(), label="fuse three")):
            ivs.append(leaves[n + 2])
        stage.fuse(*ivs)
        return f"fuse({', '.join(iv.name for iv in ivs)})"
    if move == "unroll":
        iv = data.draw(st.sampled_from([x for x in free if x.extent <= MAX_UNROLL and
                                        x.extent * _unroll_product(stage) <= MAX_UNROLL_PRODUCT]),
                       label="unroll axis")
        stage.unroll(iv)
        return f"unroll({iv.name})"
    if move == "vectorize":
        iv = data.draw(st.sampled_from([x for x in free if x.kind is IterKind.DATA_PAR and x.extent <= MAX_VECTOR]),
                       label="vectorize axis")
        stage.vectorize(iv)
        return f"vectorize({iv.name})"
    iv = data.draw(st.sampled_from([x for x in free if x.kind is IterKind.DATA_PAR]), label="parallel axis")
    stage.parallel(iv)
    return f"parallel({iv.name})"


def random_schedule(data, wl, max_steps=6):
    s = wl.schedule()
    stage = s[wl.out]
    steps = []
    for _ in range(data.draw(st.integers(1, max_steps), label="steps")):
        if not legal_moves(stage):  # e.g. everything fused into one annotated loop
            break
        steps.append(apply_random_move(data, stage))
    note = "; ".join(steps)
    return s, note


# --------------------------------------------------------------------------- workloads
# Built once per session: the compute declaration, its inputs and the default schedule's
# outputs (through LLVM), which every random schedule must reproduce.


@lru_cache(maxsize=None)
def _matmul_case():
    wl = matmul(13, 7, 29)
    inputs = inputs_for(wl.args, seed=3)
    default = run_llvm(wl.schedule(), wl.args, inputs)[0]
    assert_close(default, wl.ref(*inputs), what="default matmul schedule vs numpy")
    return wl, inputs, default


@lru_cache(maxsize=None)
def _elementwise_case():
    wl = elementwise3d(5, 7, 13)
    inputs = inputs_for(wl.args, seed=4)
    default = run_llvm(wl.schedule(), wl.args, inputs)[0]
    np.testing.assert_array_equal(default, wl.ref(*inputs))
    return wl, inputs, default


def test_default_schedules_match_numpy():
    """The baselines themselves: default schedule == NumPy, through interp and LLVM."""
    for case in (_matmul_case, _elementwise_case):
        wl, inputs, default = case()
        assert_close(run_interp(wl.schedule(), wl.args, inputs)[0], wl.ref(*inputs), what=wl.out.name)


@PROPERTY
@given(st.data())
def test_random_matmul_schedule_matches_default(data):
    wl, inputs, default = _matmul_case()
    s, note = random_schedule(data, wl)
    got_i = run_interp(s, wl.args, inputs)[0]
    assert_close(got_i, default, what=f"interp after {note}\n{loopc.lower(s, wl.args)}")
    got_l = run_llvm(s, wl.args, inputs)[0]
    assert_close(got_l, default, what=f"llvm after {note}\n{loopc.lower(s, wl.args)}")


@PROPERTY
@given(st.data())
def test_random_elementwise_schedule_matches_default(data):
    wl, inputs, default = _elementwise_case()
    s, note = random_schedule(data, wl)
    # no reduction: every schedule does the same float operations, so results are bit-equal
    got_i = run_interp(s, wl.args, inputs)[0]
    np.testing.assert_array_equal(got_i, default, err_msg=f"interp after {note}\n{loopc.lower(s, wl.args)}")
    got_l = run_llvm(s, wl.args, inputs)[0]
    np.testing.assert_array_equal(got_l, default, err_msg=f"llvm after {note}\n{loopc.lower(s, wl.args)}")


def test_generator_reaches_every_primitive():
    """The move generator is not vacuous: on a fresh matmul stage every primitive is legal."""
    wl = matmul(13, 7, 29)
    stage = wl.schedule()[wl.out]
    assert set(legal_moves(stage)) == {"split", "tile", "reorder", "fuse", "unroll", "vectorize", "parallel"}
