"""Property: random legal schedules with compute_at / cache_write equal the default schedule."""
import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st

import loopc
from loopc import te, interp

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _random_splits(draw, s, T, axes, factors=(2, 3, 4, 5)):
    for ax in axes:
        if draw(st.booleans()):
            s[T].split(ax, factor=draw(st.sampled_from(factors)))


def _run(s, args, arrays):
    out = arrays[-1]
    out[...] = 0
    interp.run(loopc.lower(s, args), *arrays)
    by_interp = out.copy()
    out[...] = 0
    loopc.build(s, args)(*arrays)
    return by_interp, out.copy()


def _matmul(M=11, N=13, K=7):
    A = te.placeholder((M, K), name="A")
    B = te.placeholder((K, N), name="B")
    k = te.reduce_axis((0, K), name="k")
    C = te.compute((M, N), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    return A, B, C


@SETTINGS
@given(st.data())
def test_cache_write_compute_at_matmul(data):
    draw = data.draw
    A, B, C = _matmul()
    s = te.create_schedule(C.op)
    CL = s.cache_write(C, "local")
    _random_splits(draw, s, C, list(C.op.axis))
    leaves = list(s[C].leaf_iter_vars)
    order = draw(st.permutations(leaves))
    s[C].reorder(*order)
    attach = draw(st.sampled_from(list(s[C].leaf_iter_vars)))
    s[CL].compute_at(s[C], attach)
    _random_splits(draw, s, CL, list(s[CL].root_iter_vars))
    cl_leaves = list(s[CL].leaf_iter_vars)
    s[CL].reorder(*draw(st.permutations(cl_leaves)))
    last = s[CL].leaf_iter_vars[-1]
    if last.kind.value == "data_par" and last.extent <= 16 and draw(st.booleans()):
        s[CL].vectorize(last)
    for iv in s[CL].leaf_iter_vars[:-1]:
        if iv.extent <= 5 and draw(st.booleans()):
            s[CL].unroll(iv)
    outer = s[C].leaf_iter_vars[0]
    if outer is not attach and draw(st.booleans()):
        s[C].parallel(outer)
    rng = np.random.default_rng(0)
    a = rng.standard_normal(A.shape).astype(np.float32)
    b = rng.standard_normal(B.shape).astype(np.float32)
    ref = np.zeros(C.shape, np.float32)
    loopc.build(te.create_schedule(C.op), [A, B, C])(a, b, ref)
    got_interp, got_llvm = _run(s, [A, B, C], [a, b, np.zeros(C.shape, np.float32)])
    np.testing.assert_allclose(got_interp, ref, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(got_llvm, ref, atol=1e-4, rtol=1e-4)


@SETTINGS
@given(st.data())
def test_compute_at_stencil_chain(data):
    draw = data.draw
    n = 29
    A = te.placeholder((n + 4, 5), name="A")
    B = te.compute((n + 4, 5), lambda i, j: A[i, j] * 2.0 - 1.0, name="B")
    D = te.compute((n + 2, 5), lambda i, j: B[i, j] + B[i + 2, j], name="D")
    C = te.compute((n, 5), lambda i, j: D[i, j] * D[i + 1, j] + D[i + 2, j], name="C")
    s = te.create_schedule(C.op)
    _random_splits(draw, s, C, list(C.op.axis), factors=(2, 3, 4, 7))
    s[C].reorder(*draw(st.permutations(list(s[C].leaf_iter_vars))))
    mode = draw(st.sampled_from(["D_at_C", "both_at_C", "B_at_D", "inline_B"]))
    if mode in ("D_at_C", "both_at_C", "B_at_D"):
        s[D].compute_at(s[C], draw(st.sampled_from(list(s[C].leaf_iter_vars))))
    if mode == "both_at_C":
        pass  # B stays at root: D (inside C) reads the whole B
    if mode == "B_at_D":
        s[B].compute_at(s[D], draw(st.sampled_from(list(s[D].leaf_iter_vars))))
    if mode == "inline_B":
        s[B].compute_inline()
    a = np.random.default_rng(1).standard_normal(A.shape).astype(np.float32)
    b = a * 2 - 1
    d = b[:-2] + b[2:]
    ref = d[:-2] * d[1:-1] + d[2:]
    got_interp, got_llvm = _run(s, [A, C], [a, np.zeros(C.shape, np.float32)])
    np.testing.assert_allclose(got_interp, ref, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(got_llvm, ref, atol=1e-4, rtol=1e-4)
