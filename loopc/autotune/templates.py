"""Built-in templates: a GEMM whose knobs span the schedules of loopc/apps/ladder.py.

    C[i, j] = sum_k A[i, k] * B[k, j]

Knobs: a register tile ``ii x ji`` (``ii`` rows unrolled, ``ji`` lanes vectorized) that
accumulates in a local buffer (cache_write + compute_at, i.e. registers), a block of ``im``
register tiles along i (cache blocking), the order of the outer loops, the k step unrolled
inside the tile (``ki``), whether B is first packed into ``[N/ji][K][ji]`` panels, and whether
the outermost loop runs in parallel.
"""
from __future__ import annotations

import numpy as np

from .. import te
from .dispatcher import get_config
from .task import template


def _gemm_reference(a, b):
    return (a.astype(np.float64) @ b.astype(np.float64)).astype(a.dtype)


@template("gemm", reference=_gemm_reference)
def gemm(M, N, K, dtype="float32"):
    """``C = A @ B`` with A ``[M, K]``, B ``[K, N]``."""
    cfg = get_config()
    rows = [ii for ii in (4, 1, 2, 3, 5, 6, 8) if ii <= M]
    blocks = [im for im in (8, 1, 2, 4, 16, 32)]
    cfg.define_split("tile_i", M, num_outputs=3, policy="candidate",
                     candidate=[[-1, im, ii] for ii in rows for im in blocks if im == 1 or ii * im <= M])
    lanes = [ji for ji in (16, 8, 24, 32) if ji <= N] or [N]
    cfg.define_split("tile_j", N, num_outputs=2, policy="candidate", candidate=[[-1, ji] for ji in lanes])
    steps = [ki for ki in (4, 1, 2, 8, 16) if ki <= K] or [K]
    cfg.define_split("tile_k", K, num_outputs=2, policy="candidate", candidate=[[-1, ki] for ki in steps])
    cfg.define_knob("pack_b", [1, 0])
    cfg.define_knob("parallel", [1, 0])
    cfg.add_flop(2 * M * N * K)

    ji = cfg["tile_j"].size[-1]
    A = te.placeholder((M, K), dtype=dtype, name="A")
    B = te.placeholder((K, N), dtype=dtype, name="B")
    k = te.reduce_axis((0, K), name="k")
    PB = None
    if cfg["pack_b"].val:
        nb = -(-N // ji)
        PB = te.compute((nb, K, ji), lambda x, y, z: te.if_then_else(
            x * ji + z < N, B[y, te.min(x * ji + z, N - 1)], te.const(0, dtype)), name="packedB")
        C = te.compute((M, N), lambda i, j: te.sum(A[i, k] * PB[j // ji, k, j % ji], axis=k), name="C")
    else:
        C = te.compute((M, N), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")

    s = te.create_schedule(C.op)
    CL = s.cache_write(C, "local")
    i, j = C.op.axis
    io, im, ii = cfg["tile_i"].apply(s, C, i)
    jo, jj = cfg["tile_j"].apply(s, C, j)
    cfg.define_reorder("order", [io, jo, im], policy="candidate", candidate=[[io, jo, im], [jo, io, im], [io, im, jo]])
    outer = cfg["order"].apply(s, C, [io, jo, im])
    s[C].reorder(*outer, ii, jj)
    s[C].vectorize(jj)
    s[CL].compute_at(s[C], outer[-1])
    xi, xj = s[CL].op.axis
    ko, kk = cfg["tile_k"].apply(s, CL, s[CL].op.reduce_axis[0])
    s[CL].reorder(ko, kk, xi, xj)
    cfg.define_annotate("unroll_k", [kk], policy="try_unroll")
    cfg["unroll_k"].apply(s, CL, [kk])
    s[CL].unroll(xi)
    s[CL].vectorize(xj)
    if PB is not None:
        s[PB].vectorize(PB.op.axis[2])
    if cfg["parallel"].val:
        s[C].parallel(outer[0])
        if PB is not None:
            s[PB].parallel(PB.op.axis[0])
    return s, [A, B, C]
