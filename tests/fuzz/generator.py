"""A differential fuzzer of random *legal* loopc schedules.

One *case* is a seed. The seed picks a workload (an operator declared with ``te``: matmul with
or without an epilogue, 2- and 3-stage stencil pipelines, reductions with ``where=``,
conv2d NCHW with stride/padding/dilation, pooling, softmax, ...; float32, float64, int32, int64,
bool;
prime and tiny sizes) and a random sequence of schedule primitives (split/tile/fuse/reorder/
unroll/vectorize/parallel/compute_at/compute_inline/compute_root/cache_read/cache_write/
rfactor/im2col). A primitive that raises ``loopc.ScheduleError`` -- or a schedule that
``loopc.lower`` refuses with ``LoweringError`` -- is a legal *rejection*. Everything else must
work: the schedule is lowered, its trace replayed onto a fresh schedule (same IR expected),
built for LLVM, run on seeded random inputs laid out between guard zones (NaN / huge ints
around every array, so reads and writes outside a buffer show), and compared with a NumPy
reference of the workload; small cases also run the same lowered IR through
``loopc.interp`` and compare that too.

Command line (run from the repository root)::

    python -m tests.fuzz.generator --seeds 0..99          # one JSON line per case (a worker)
    python -m tests.fuzz.generator --run 0..999 --jobs 1  # crash-isolated batches + a summary
    python -m tests.fuzz.generator --show 1234            # the case as a standalone script
    python -m tests.fuzz.generator --minimize 1234        # shrink a failing case, print a repro

A case's result is a dict: ``seed, workload, params, status ('ok' | 'rejected' | 'fail'),
kind, message, trace (s.trace_json()), steps (every attempted step, rejected ones too),
features, applied / rejected counts per primitive, seconds``.
"""
from __future__ import annotations

import argparse
import collections
import json
import math
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import traceback

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SIZES = [1, 2, 3, 5, 7, 11, 13, 17]
SIZE_WEIGHTS = [1, 3, 4, 5, 5, 3, 2, 1]

#: interp runs only when the workload's work (sum over stages of output size x reduction
#: extents) is at most this many multiply-adds (it executes Python per element).
INTERP_MAX_WORK = 6000
MAX_VECTOR = 16
MAX_UNROLL = 8
MAX_UNROLL_PRODUCT = 64
CASE_ALARM_S = 90   # a case still running after this long (in Python) is reported as a hang

# --------------------------------------------------------------------------- workloads
#
# A workload is (name, params); its source text (`workload_source`) is plain Python that
# defines `args` (placeholders then the output) and `ref(*inputs)` (NumPy), given
# `np`, `te`, `ops` (loopc.schedules.ops) and `testing` (loopc.schedules.testing).
# The same text goes into repro snippets, so what the fuzzer ran is what you read.


def _size(r, big=False):
    s = r.choices(SIZES, SIZE_WEIGHTS)[0]
    if big and r.random() < 0.1:
        s = r.choice([19, 23, 29, 31])
    return s


def _dtype(r, allow_int=True, allow_f64=True):
    opts = ["float32"] * 5 + (["int32"] * 2 + ["int64"] if allow_int else []) + (["float64"] if allow_f64 else [])
    return r.choice(opts)


def _zero(dt):
    return f'te.const(0, "{dt}")' if dt.startswith("int") else f'te.const(0.0, "{dt}")'


# stencil read templates: (expression of B at (i, j), B's shape from the consumer's (H, W)).
# `M` is `FT` (te) or `FN` (numpy): the same text declares the stage and computes the reference.
STENCILS = [
    ("B[i, j] + B[i + 1, j] * 2 - B[i + 2, j + 1]", lambda h, w: (h + 2, w + 1)),
    ("B[i + 1, j + 1] * B[i, j + 2] + B[i + 2, j]", lambda h, w: (h + 2, w + 2)),
    ("B[2 * i, j] + B[2 * i + 1, j + 1]", lambda h, w: (2 * h, w + 1)),
    ("B[j, i] - B[j + 1, i] * 3", lambda h, w: (w + 1, h)),
    ("B[i, j] * 2 + 1", lambda h, w: (h, w)),
    ("B[i + 2, j] + B[i, j] + B[i + 1, j + 1]", lambda h, w: (h + 2, w + 1)),
    ("B[i, 2 * j + 1] - B[i + 1, 2 * j]", lambda h, w: (h + 1, 2 * w + 1)),
    ("M.sel(i < j, B[i, j], B[i + 1, j + 2] * 2)", lambda h, w: (h + 1, w + 2)),
    ("M.mx(B[i, j], B[i + 1, j]) - B[i, j + 1]", lambda h, w: (h + 1, w + 1)),
]
POINTWISE = {
    "float": ["A[i, j] * 3 + 1", "A[i, j] * A[i, j] - 2", "M.exp(A[i, j]) - A[i, j]", "A[i, j] + 0.5",
              "M.sel(A[i, j] > 0, A[i, j] * 2, A[i, j] - 1)", "M.mx(A[i, j], 0.25) * A[i, j]",
              "M.sqrt(A[i, j] * A[i, j] + 1) - M.tanh(A[i, j])", "M.log(A[i, j] * A[i, j] + 0.5) + M.abs(A[i, j])",
              "M.floor(A[i, j] * 3) / 4 + M.sigmoid(A[i, j])", "A[i, j] / (A[i, j] * A[i, j] + 1)",
              "M.i2f(M.f2i(A[i, j] * 3)) - A[i, j]"],
    "int": ["A[i, j] * 3 + 1", "A[i, j] * A[i, j] - 2", "A[i, j] - 4", "A[i, j] // 3 + A[i, j] % 4",
            "(A[i, j] * 7) // 4 - A[i, j] % 3 * 2", "M.sel(A[i, j] > 0, A[i, j] * 2, A[i, j] // 2)",
            "M.mx(A[i, j], 1) - M.mn(A[i, j], -2)", "M.abs(A[i, j]) * 2 - A[i, j] % 5",
            "M.f2i(M.i2f(A[i, j]) * 1.5) + A[i, j]"],
}
# FT / FN: the te and numpy spellings of the same functions; f2i / i2f cast to/from the
# workload's dtype DT (float -> int truncates toward zero in both)
SHIMS = ("class FT:  # te\n"
         "    exp, sel, mx, mn, sqrt, tanh, log, abs, floor, sigmoid = (te.exp, te.if_then_else, te.max, te.min,\n"
         "        te.sqrt, te.tanh, te.log, te.abs, te.floor, te.sigmoid)\n"
         "    f2i = lambda x: x.astype('int32' if DT.startswith('float') else DT)\n"
         "    i2f = lambda x: x.astype(DT if DT.startswith('float') else 'float32')\n"
         "class FN:  # numpy\n"
         "    exp, sel, mx, mn, sqrt, tanh, log, abs, floor = (np.exp, np.where, np.maximum, np.minimum,\n"
         "        np.sqrt, np.tanh, np.log, np.abs, np.floor)\n"
         "    sigmoid = lambda x: 1 / (1 + np.exp(-x))\n"
         "    f2i = lambda x: x.astype('int32' if DT.startswith('float') else DT)\n"
         "    i2f = lambda x: x.astype(DT if DT.startswith('float') else 'float32')\n")
WHERES = [None, "k < i + 2", "(k + i) % 3 != 0", "k % 2 == 0", "k >= i", "X[i, k] > 0",
          "te_or_np_any(X[i, k] < -1, k == i)"]


def _pick_params(name, r):
    p = {}
    if name in ("matmul", "matmul_epilogue"):
        p.update(M=_size(r, True), K=_size(r, True), N=_size(r, True), dt=_dtype(r))
        if name == "matmul_epilogue":
            p["epi"] = r.choice(["bias_relu", "scale_bias_relu"])
    elif name in ("stencil2", "stencil3"):
        p.update(H=_size(r, True), W=_size(r, True), dt=_dtype(r))
        p["f"] = r.randrange(len(POINTWISE["int" if p["dt"].startswith("int") else "float"]))
        p["t1"] = r.randrange(len(STENCILS))
        if name == "stencil3":
            p["t2"] = r.randrange(len(STENCILS))
    elif name in ("rowreduce", "rownorm"):
        p.update(M=_size(r, True), N=_size(r, True), dt=_dtype(r), comb=r.choice(["sum", "sum", "max", "min"]),
                 where=r.randrange(len(WHERES)), sq=r.random() < 0.3)
        if name == "rownorm" and p["dt"].startswith("int"):
            p["comb"] = "sum"   # X - R with R the identity of an empty int max/min would overflow int32
    elif name == "reduce2":
        p.update(M=_size(r), N=_size(r), L=_size(r), dt=_dtype(r), where=r.random() < 0.4)
    elif name == "colsum":
        p.update(M=_size(r, True), N=_size(r, True), dt=_dtype(r))
    elif name in ("conv2d", "conv2d_select"):
        while True:
            p.update(N=r.choice([1, 1, 2]), C=r.choice([1, 2, 3]), H=r.choice([3, 5, 7, 9, 11]),
                     W=r.choice([3, 5, 7, 8, 13]), K=r.choice([1, 2, 3, 4, 5]), R=r.choice([1, 2, 3]),
                     S=r.choice([1, 2, 3]), stride=r.choice([1, 1, 2, 3]), pad=r.choice([0, 1, 1, 2]),
                     dil=r.choice([1, 1, 2]))
            P = (p["H"] + 2 * p["pad"] - p["dil"] * (p["R"] - 1) - 1) // p["stride"] + 1
            Q = (p["W"] + 2 * p["pad"] - p["dil"] * (p["S"] - 1) - 1) // p["stride"] + 1
            if P > 0 and Q > 0:
                break
        p["dt"] = _dtype(r, allow_int=(name == "conv2d_select"))
        p["relu"] = r.random() < 0.3
    elif name == "maxpool":
        while True:
            p.update(N=r.choice([1, 2]), C=r.choice([1, 2, 3]), H=r.choice([3, 5, 7, 11]), W=r.choice([4, 5, 7, 13]),
                     k=r.choice([2, 3]), stride=r.choice([1, 2, 3]), pad=r.choice([0, 1]))
            if p["pad"] * 2 <= p["k"] and (p["H"] + 2 * p["pad"] - p["k"]) >= 0 and (p["W"] + 2 * p["pad"] - p["k"]) >= 0:
                break
    elif name == "softmax":
        p.update(M=_size(r), N=_size(r, True))
    elif name == "transpose_bcast":
        p.update(M=_size(r, True), N=_size(r, True), dt=_dtype(r))
    elif name == "library":
        p["op"] = r.choice(["matmul", "dense_bias", "conv_bias_relu", "conv_bias_relu", "max_pool", "avg_pool",
                            "softmax", "log_softmax"])
        p.update(M=_size(r, True), N=_size(r, True), K=_size(r, True))
        p.update(B=r.choice([1, 1, 2]), C=r.choice([1, 2, 3, 4]), H=r.choice([4, 5, 7, 9]), W=r.choice([4, 5, 6, 8]),
                 F=r.choice([1, 3, 4, 8, 16]), R=r.choice([1, 2, 3]), stride=r.choice([1, 1, 2]),
                 pad=r.choice([0, 0, 1]))
        p["R"] = min(p["R"], p["H"] + 2 * p["pad"], p["W"] + 2 * p["pad"])
    elif name == "multiout":
        p.update(M=_size(r, True), N=_size(r, True), dt=_dtype(r), mode=r.choice(["two_outputs", "intermediate_arg"]))
    elif name == "boolmask":
        p.update(M=_size(r, True), N=_size(r, True), out=r.choice(["float", "bool"]))
    elif name == "total":
        p.update(N=_size(r, True), dt=_dtype(r), rank0=r.random() < 0.3)
    else:
        raise KeyError(name)
    return p


def workload_source(name, p) -> str:
    """Python source declaring the workload: defines ``args`` and ``ref``."""
    if name in ("matmul", "matmul_epilogue"):
        dt = p["dt"]
        acc = "np.int64" if dt.startswith("int") else "np.float64"
        src = (f'M, K, N = {p["M"]}, {p["K"]}, {p["N"]}\n'
               f'A = te.placeholder((M, K), "{dt}", name="A")\n'
               f'B = te.placeholder((K, N), "{dt}", name="B")\n'
               f'k = te.reduce_axis((0, K), name="k")\n'
               f'C = te.compute((M, N), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")\n')
        if name == "matmul":
            return src + (f'args = [A, B, C]\n'
                          f'ref = lambda a, b: a.astype({acc}) @ b.astype({acc})\n')
        src += f'bias = te.placeholder((N,), "{dt}", name="bias")\n'
        if p["epi"] == "bias_relu":
            return src + (f'D = te.compute((M, N), lambda i, j: te.max(C[i, j] + bias[j], {_zero(dt)}), name="D")\n'
                          f'args = [A, B, bias, D]\n'
                          f'ref = lambda a, b, bias: np.maximum(a.astype({acc}) @ b.astype({acc}) + bias, 0)\n')
        return src + (f'E = te.compute((M, N), lambda i, j: C[i, j] * 2 + bias[j], name="E")\n'
                      f'D = te.compute((M, N), lambda i, j: te.max(E[i, j], {_zero(dt)}), name="D")\n'
                      f'args = [A, B, bias, D]\n'
                      f'ref = lambda a, b, bias: np.maximum((a.astype({acc}) @ b.astype({acc})) * 2 + bias, 0)\n')
    if name in ("stencil2", "stencil3"):
        dt = p["dt"]
        H, W = p["H"], p["W"]
        f = POINTWISE["int" if dt.startswith("int") else "float"][p["f"]]
        if name == "stencil2":
            t1, need1 = STENCILS[p["t1"]]
            HB, WB = need1(H, W)
            return (f'DT = "{dt}"\n' + SHIMS + f'H, W = {H}, {W}\n'
                    f'fB = lambda M, A, i, j: {f}\n'
                    f'fC = lambda M, B, i, j: {t1}\n'
                    f'A = te.placeholder(({HB}, {WB}), "{dt}", name="A")\n'
                    f'B = te.compute(({HB}, {WB}), lambda i, j: fB(FT, A, i, j), name="B")\n'
                    f'C = te.compute((H, W), lambda i, j: fC(FT, B, i, j), name="C")\n'
                    f'args = [A, C]\n'
                    f'def ref(a):\n'
                    f'    b = fB(FN, a, *np.ogrid[:{HB}, :{WB}])\n'
                    f'    return fC(FN, b, *np.ogrid[:H, :W])\n')
        t1, need1 = STENCILS[p["t1"]]   # C reads D
        t2, need2 = STENCILS[p["t2"]]   # D reads B
        HD, WD = need1(H, W)
        HB, WB = need2(HD, WD)
        return (f'DT = "{dt}"\n' + SHIMS + f'H, W = {H}, {W}\n'
                f'fB = lambda M, A, i, j: {f}\n'
                f'fD = lambda M, B, i, j: {t2}\n'
                f'fC = lambda M, B, i, j: {t1}\n'
                f'A = te.placeholder(({HB}, {WB}), "{dt}", name="A")\n'
                f'B = te.compute(({HB}, {WB}), lambda i, j: fB(FT, A, i, j), name="B")\n'
                f'D = te.compute(({HD}, {WD}), lambda i, j: fD(FT, B, i, j), name="D")\n'
                f'C = te.compute((H, W), lambda i, j: fC(FT, D, i, j), name="C")\n'
                f'args = [A, C]\n'
                f'def ref(a):\n'
                f'    b = fB(FN, a, *np.ogrid[:{HB}, :{WB}])\n'
                f'    d = fD(FN, b, *np.ogrid[:{HD}, :{WD}])\n'
                f'    return fC(FN, d, *np.ogrid[:H, :W])\n')
    if name in ("rowreduce", "rownorm"):
        dt, comb = p["dt"], p["comb"]
        where = WHERES[p["where"]]
        srcexpr = "X[i, k] * X[i, k]" if p["sq"] else "X[i, k]"
        isint = dt.startswith("int")
        ident = {"sum": "0", "max": f"np.iinfo(np.{dt}).min" if isint else "-np.inf",
                 "min": f"np.iinfo(np.{dt}).max" if isint else "np.inf"}[comb]
        npred = {"sum": "sum", "max": "max", "min": "min"}[comb]
        wh = f", where={where.replace('te_or_np_any', 'te.any')}" if where else ""
        src = (f'M, N = {p["M"]}, {p["N"]}\n'
               f'X = te.placeholder((M, N), "{dt}", name="X")\n'
               f'k = te.reduce_axis((0, N), name="k")\n'
               f'R = te.compute((M,), lambda i: te.{comb}({srcexpr}{wh}, axis=k), name="R")\n')
        mask = f"({where})" if where else "True"
        refsrc = (f'def ref(x):\n'
                  f'    i, k = np.ogrid[:M, :N]\n'
                  f'    X = x\n'
                  f'    x = x.astype(np.float64 if x.dtype.kind == "f" else np.int64)\n'
                  f'    v = np.where(np.broadcast_to({mask.replace("te_or_np_any", "np.logical_or")}, (M, N)), '
                  f'{srcexpr.replace("X[i, k]", "x")}, {ident})\n'
                  f'    r = v.{npred}(axis=1)\n')
        if name == "rowreduce":
            return src + 'args = [X, R]\n' + refsrc + '    return r\n'
        return src + ('Y = te.compute((M, N), lambda i, j: X[i, j] - R[i], name="Y")\n'
                      'args = [X, Y]\n') + refsrc + '    return x - r[:, None]\n'
    if name == "reduce2":
        dt = p["dt"]
        wh = ", where=k1 + k2 < i + 3" if p["where"] else ""
        mask = "(k1 + k2 < i + 3)" if p["where"] else "True"
        return (f'M, N, L = {p["M"]}, {p["N"]}, {p["L"]}\n'
                f'X = te.placeholder((M, N, L), "{dt}", name="X")\n'
                f'k1 = te.reduce_axis((0, N), name="k1")\n'
                f'k2 = te.reduce_axis((0, L), name="k2")\n'
                f'R = te.compute((M,), lambda i: te.sum(X[i, k1, k2] * 2{wh}, axis=[k1, k2]), name="R")\n'
                f'args = [X, R]\n'
                f'def ref(x):\n'
                f'    i, k1, k2 = np.ogrid[:M, :N, :L]\n'
                f'    return np.where(np.broadcast_to({mask}, x.shape), x * 2, 0).sum(axis=(1, 2))\n')
    if name == "colsum":
        dt = p["dt"]
        return (f'M, N = {p["M"]}, {p["N"]}\n'
                f'X = te.placeholder((M, N), "{dt}", name="X")\n'
                f'k = te.reduce_axis((0, M), name="k")\n'
                f'R = te.compute((N,), lambda j: te.sum(X[k, j] + X[k, N - 1 - j], axis=k), name="R")\n'
                f'args = [X, R]\n'
                f'ref = lambda x: (x + x[:, ::-1]).sum(axis=0)\n')
    if name == "conv2d":
        dt = p["dt"]
        src = (f'X = te.placeholder(({p["N"]}, {p["C"]}, {p["H"]}, {p["W"]}), "{dt}", name="X")\n'
               f'Wt = te.placeholder(({p["K"]}, {p["C"]}, {p["R"]}, {p["S"]}), "{dt}", name="W")\n'
               f'Y = ops.conv2d_nchw(X, Wt, stride={p["stride"]}, padding={p["pad"]}, dilation={p["dil"]}, name="conv")\n')
        refc = (f'testing.conv2d_nchw(x.astype(np.float64), w.astype(np.float64), '
                f'{p["stride"]}, {p["pad"]}, {p["dil"]})')
        if p["relu"]:
            return src + (f'Z = te.compute(Y.shape, lambda n, k, p, q: te.max(Y[n, k, p, q], {_zero(dt)}), name="relu")\n'
                          f'args = [X, Wt, Z]\n'
                          f'ref = lambda x, w: np.maximum({refc}, 0)\n')
        return src + f'args = [X, Wt, Y]\nref = lambda x, w: {refc}\n'
    if name == "conv2d_select":
        dt = p["dt"]
        N, C, H, W, K, R, S = (p[x] for x in "NCHWKRS")
        st, pad, dil = p["stride"], p["pad"], p["dil"]
        P = (H + 2 * pad - dil * (R - 1) - 1) // st + 1
        Q = (W + 2 * pad - dil * (S - 1) - 1) // st + 1
        src = (f'H, W = {H}, {W}\n'
               f'X = te.placeholder(({N}, {C}, H, W), "{dt}", name="X")\n'
               f'Wt = te.placeholder(({K}, {C}, {R}, {S}), "{dt}", name="W")\n'
               f'c, r, s = te.reduce_axis((0, {C}), name="c"), te.reduce_axis((0, {R}), name="r"), '
               f'te.reduce_axis((0, {S}), name="s")\n'
               f'def body(n, k, p, q):\n'
               f'    h, w = p * {st} + r * {dil} - {pad}, q * {st} + s * {dil} - {pad}\n'
               f'    return te.sum(te.if_then_else(te.all(h >= 0, h < H, w >= 0, w < W), X[n, c, h, w], {_zero(dt)})'
               f' * Wt[k, c, r, s], axis=[c, r, s])\n'
               f'Y = te.compute(({N}, {K}, {P}, {Q}), body, name="Y")\n')
        refc = f'testing.conv2d_nchw(x.astype(np.float64), w.astype(np.float64), {st}, {pad}, {dil})'
        if p["relu"]:
            return src + (f'Z = te.compute(Y.shape, lambda n, k, p, q: te.max(Y[n, k, p, q], {_zero(dt)}), name="relu")\n'
                          f'args = [X, Wt, Z]\n'
                          f'ref = lambda x, w: np.maximum({refc}, 0)\n')
        return src + f'args = [X, Wt, Y]\nref = lambda x, w: {refc}\n'
    if name == "maxpool":
        return (f'X = te.placeholder(({p["N"]}, {p["C"]}, {p["H"]}, {p["W"]}), name="X")\n'
                f'Y = ops.max_pool2d(X, {p["k"]}, stride={p["stride"]}, padding={p["pad"]}, name="pool")\n'
                f'args = [X, Y]\n'
                f'ref = lambda x: testing.max_pool2d(x, {p["k"]}, {p["stride"]}, {p["pad"]})\n')
    if name == "softmax":
        return (f'M, N = {p["M"]}, {p["N"]}\n'
                f'X = te.placeholder((M, N), name="X")\n'
                f'k1 = te.reduce_axis((0, N), name="k1")\n'
                f'mx = te.compute((M,), lambda i: te.max(X[i, k1], axis=k1), name="rowmax")\n'
                f'ex = te.compute((M, N), lambda i, j: te.exp(X[i, j] - mx[i]), name="expo")\n'
                f'k2 = te.reduce_axis((0, N), name="k2")\n'
                f'sm = te.compute((M,), lambda i: te.sum(ex[i, k2], axis=k2), name="rowsum")\n'
                f'out = te.compute((M, N), lambda i, j: ex[i, j] / sm[i], name="softmax")\n'
                f'args = [X, out]\n'
                f'def ref(x):\n'
                f'    e = np.exp(x.astype(np.float64) - x.max(axis=1, keepdims=True))\n'
                f'    return e / e.sum(axis=1, keepdims=True)\n')
    if name == "transpose_bcast":
        dt = p["dt"]
        return (f'M, N = {p["M"]}, {p["N"]}\n'
                f'A = te.placeholder((N, M), "{dt}", name="A")\n'
                f'b = te.placeholder((M,), "{dt}", name="b")\n'
                f'T = te.compute((M, N), lambda i, j: A[j, i] * 2 + b[i], name="T")\n'
                f'C = te.compute((M, N), lambda i, j: T[i, j] - T[M - 1 - i, j] * b[i], name="C")\n'
                f'args = [A, b, C]\n'
                f'def ref(a, b):\n'
                f'    t = a.T * 2 + b[:, None]\n'
                f'    return t - t[::-1, :] * b[:, None]\n')
    if name == "library":
        op = p["op"]
        head = 'warnings.simplefilter("ignore")   # NoTunedRecordWarning\n'
        if op == "matmul":
            src = (f'X = te.placeholder(({p["M"]}, {p["K"]}), name="X")\n'
                   f'Y = te.placeholder(({p["K"]}, {p["N"]}), name="Y")\n'
                   f'out = ops.matmul(X, Y)\n'
                   f'args = [X, Y, out]\nref = testing.matmul\n')
        elif op == "dense_bias":
            src = (f'X = te.placeholder(({p["M"]}, {p["K"]}), name="X")\n'
                   f'Wt = te.placeholder(({p["N"]}, {p["K"]}), name="W")\n'
                   f'b = te.placeholder(({p["N"]},), name="b")\n'
                   f'out = ops.dense(X, Wt, b)\n'
                   f'args = [X, Wt, b, out]\nref = testing.dense\n')
        elif op == "conv_bias_relu":
            src = (f'X = te.placeholder(({p["B"]}, {p["C"]}, {p["H"]}, {p["W"]}), name="X")\n'
                   f'Wt = te.placeholder(({p["F"]}, {p["C"]}, {p["R"]}, {p["R"]}), name="W")\n'
                   f'b = te.placeholder(({p["F"]},), name="b")\n'
                   f'out = ops.relu(ops.bias_add(ops.conv2d_nchw(X, Wt, {p["stride"]}, {p["pad"]}), b))\n'
                   f'args = [X, Wt, b, out]\n'
                   f'ref = lambda x, w, b: testing.relu(testing.bias_add(testing.conv2d_nchw(x.astype(np.float64), '
                   f'w.astype(np.float64), {p["stride"]}, {p["pad"]}), b))\n')
        elif op in ("max_pool", "avg_pool"):
            k = min(p["R"] + 1, p["H"], p["W"])
            pad = min(p["pad"], k // 2)
            src = (f'X = te.placeholder(({p["B"]}, {p["C"]}, {p["H"]}, {p["W"]}), name="X")\n'
                   f'out = ops.{op}2d(X, {k}, {p["stride"]}, {pad})\n'
                   f'args = [X, out]\nref = lambda x: testing.{op}2d(x, {k}, {p["stride"]}, {pad})\n')
        else:
            src = (f'X = te.placeholder(({p["M"]}, {p["N"]}), name="X")\n'
                   f'out = ops.{op}(X)\n'
                   f'args = [X, out]\nref = lambda x: testing.{op}(x.astype(np.float64))\n')
        return head + src + 'make_schedule = lambda: loopc.schedules.schedule(out)   # the library\'s CPU template\n'
    if name == "multiout":
        dt = p["dt"]
        src = (f'M, N = {p["M"]}, {p["N"]}\n'
               f'A = te.placeholder((M + 1, N), "{dt}", name="A")\n'
               f'C = te.compute((M + 1, N), lambda i, j: A[i, j] * 2 - 1, name="C")\n'
               f'k = te.reduce_axis((0, N), name="k")\n'
               f'D = te.compute((M, N), lambda i, j: te.sum(C[i, k] * C[i + 1, j] + C[i, j], axis=k), name="D")\n'
               f'args = [A, C, D]\n'
               f'def ref(a):\n'
               f'    c = a * 2 - 1\n'
               f'    d = (c[:-1].astype(np.float64).sum(axis=1, keepdims=True) * c[1:] + c[:-1] * N)\n'
               f'    return c, d\n')
        if p["mode"] == "two_outputs":      # both are outputs of the schedule
            return src + 'make_schedule = lambda: te.create_schedule([C.op, D.op])\n'
        return src + 'make_schedule = lambda: te.create_schedule(D.op)   # C: an intermediate passed as an argument\n'
    if name == "boolmask":
        src = (f'M, N = {p["M"]}, {p["N"]}\n'
               f'A = te.placeholder((M, N), name="A")\n'
               f'B = te.placeholder((N, M), name="B")\n'
               f'Mk = te.compute((M, N), lambda i, j: te.any(A[i, j] > B[j, i], te.all(A[i, j] < -1, B[j, i] > 0)), name="Mk")\n'
               f'def mk(a, b):\n'
               f'    return (a > b.T) | ((a < -1) & (b.T > 0))\n')
        if p["out"] == "bool":
            return src + (f'O = te.compute((M, N), lambda i, j: te.all(Mk[i, j], Mk[i, N - 1 - j] == False), name="O")\n'
                          f'args = [A, B, O]\n'
                          f'def ref(a, b):\n'
                          f'    m = mk(a, b)\n'
                          f'    return m & ~m[:, ::-1]\n')
        return src + (f'O = te.compute((M, N), lambda i, j: te.if_then_else(Mk[i, j], A[i, j] * 2, B[j, i])'
                      f' + te.if_then_else(Mk[i, N - 1 - j], 1.0, 0.0), name="O")\n'
                      f'args = [A, B, O]\n'
                      f'def ref(a, b):\n'
                      f'    m = mk(a, b)\n'
                      f'    return np.where(m, a * 2, b.T) + np.where(m[:, ::-1], 1.0, 0.0).astype(np.float32)\n')
    if name == "total":
        dt = p["dt"]
        shape = "()" if p["rank0"] else "(1,)"
        lam = "lambda: " if p["rank0"] else "lambda _: "
        return (f'N = {p["N"]}\n'
                f'X = te.placeholder((N,), "{dt}", name="X")\n'
                f'k = te.reduce_axis((0, N), name="k")\n'
                f'S = te.compute({shape}, {lam}te.sum(X[k] * 3, axis=k), name="S")\n'
                f'args = [X, S]\n'
                f'ref = lambda x: (x * 3).sum().reshape({shape})\n')
    raise KeyError(name)


#: (name, weight): how often each workload is drawn
WORKLOADS = [
    ("matmul", 10), ("matmul_epilogue", 10), ("stencil2", 10), ("stencil3", 10), ("rowreduce", 8),
    ("rownorm", 6), ("reduce2", 6), ("colsum", 4), ("conv2d", 10), ("conv2d_select", 8),
    ("maxpool", 4), ("softmax", 5), ("transpose_bcast", 5), ("total", 2), ("boolmask", 5), ("library", 8), ("multiout", 4),
]

HEADER = ("import warnings\nimport numpy as np\nimport loopc, loopc.interp, loopc.schedules\nfrom loopc import te\n"
          "from loopc.schedules import ops, testing\n")


def instantiate(name, params) -> dict:
    """Execute the workload's source; returns its namespace (``args``, ``ref``, tensors)."""
    import warnings
    import loopc
    import loopc.schedules
    from loopc import te
    from loopc.schedules import ops, testing
    ns = {"np": np, "te": te, "ops": ops, "testing": testing, "loopc": loopc, "warnings": warnings}
    exec(compile(workload_source(name, params), f"<workload {name}>", "exec"), ns)  # noqa: S102
    return ns


def outputs_of(args):
    from loopc.te.tensor import PlaceholderOp
    return [t for t in args if not isinstance(t.op, PlaceholderOp)]


def workload_work(args) -> int:
    from loopc.schedule.schedule import post_order_ops
    from loopc.te.expr import Reduce
    from loopc.te.tensor import ComputeOp
    total = 0
    for op in post_order_ops([t.op for t in outputs_of(args)]):
        if isinstance(op, ComputeOp):
            n = math.prod(op.shape) if op.shape else 1
            if isinstance(op.body, Reduce):
                n *= math.prod(iv.extent for iv in op.body.axes)
            total += n
    return total


# --------------------------------------------------------------------------- steps
#
# A step is a trace-like dict {"stage", "primitive", "args"} with axes named by
# stage.name_of(iv). "tile" is a step of its own (the trace records it as split, split,
# reorder). apply_step() runs one on a live schedule, calling the primitives directly so that
# an internal exception is never mistaken for a rejection.


def _axis(s, stage_name, name):
    st = s.stage_by_name(stage_name)
    found = [iv for iv in st.all_iter_vars if st.name_of(iv) == name]
    if len(found) != 1:
        from loopc import ScheduleError
        raise ScheduleError("fuzz-replay", stage_name, f"axis {name!r} not found (a step it depended on was dropped)")
    return found[0]


def apply_step(s, step):
    st = s.stage_by_name(step["stage"])
    prim, a = step["primitive"], step["args"]
    ax = lambda n: _axis(s, step["stage"], n)  # noqa: E731
    if prim == "split":
        return st.split(ax(a["axis"]), factor=a.get("factor"), nparts=a.get("nparts"))
    if prim == "tile":
        return st.tile(ax(a["x"]), ax(a["y"]), a["xf"], a["yf"])
    if prim == "fuse":
        return st.fuse(*[ax(n) for n in a["axes"]])
    if prim == "reorder":
        return st.reorder(*[ax(n) for n in a["axes"]])
    if prim in ("unroll", "vectorize", "parallel"):
        return getattr(st, prim)(ax(a["axis"]))
    if prim == "compute_inline":
        return st.compute_inline()
    if prim == "compute_root":
        return st.compute_root()
    if prim == "compute_at":
        return st.compute_at(s.stage_by_name(a["parent"]), _axis(s, a["parent"], a["axis"]))
    if prim == "cache_read":
        return s.cache_read(s.tensor_by_name(a["tensor"]), a["scope"], [s.stage_by_name(r) for r in a["readers"]],
                            layout=a.get("layout"), block=({d: f for d, f in a["block"]} if a.get("block") else None))
    if prim == "cache_write":
        return s.cache_write(st.op.output(0), a["scope"], layout=a.get("layout"))
    if prim == "rfactor":
        return s.rfactor(st.op.output(0), ax(a["axis"]), factor_axis=a.get("factor_axis", 0))
    if prim == "im2col":
        return s.im2col(st.op.output(0))
    raise KeyError(prim)


def step_code(step) -> str:
    """One step as a line of Python (uses ``s``, ``S = s.stage_by_name`` and ``ax``)."""
    st, prim, a = step["stage"], step["primitive"], step["args"]
    S = f"S({st!r})"
    if prim == "split":
        kw = f"factor={a['factor']}" if a.get("factor") is not None else f"nparts={a['nparts']}"
        return f"{S}.split(ax({st!r}, {a['axis']!r}), {kw})"
    if prim == "tile":
        return f"{S}.tile(ax({st!r}, {a['x']!r}), ax({st!r}, {a['y']!r}), {a['xf']}, {a['yf']})"
    if prim in ("fuse", "reorder"):
        return f"{S}.{prim}({', '.join(f'ax({st!r}, {n!r})' for n in a['axes'])})"
    if prim in ("unroll", "vectorize", "parallel"):
        return f"{S}.{prim}(ax({st!r}, {a['axis']!r}))"
    if prim in ("compute_inline", "compute_root"):
        return f"{S}.{prim}()"
    if prim == "compute_at":
        return f"{S}.compute_at(S({a['parent']!r}), ax({a['parent']!r}, {a['axis']!r}))"
    if prim == "cache_read":
        extra = ""
        if a.get("layout") is not None:
            extra += f", layout={tuple(a['layout'])}"
        if a.get("block"):
            extra += f", block={ {d: f for d, f in a['block']} }"
        return (f"s.cache_read(s.tensor_by_name({a['tensor']!r}), {a['scope']!r}, "
                f"[{', '.join(f'S({r!r})' for r in a['readers'])}]{extra})")
    if prim == "cache_write":
        extra = f", layout={tuple(a['layout'])}" if a.get("layout") is not None else ""
        return f"s.cache_write({S}.op.output(0), {a['scope']!r}{extra})"
    if prim == "rfactor":
        return f"s.rfactor({S}.op.output(0), ax({st!r}, {a['axis']!r}), factor_axis={a.get('factor_axis', 0)})"
    if prim == "im2col":
        return f"s.im2col({S}.op.output(0))"
    raise KeyError(prim)


# --------------------------------------------------------------------------- random schedules


def _kind(st, iv):
    from loopc.ir.stmt import ForKind
    return st.iter_kinds.get(iv, ForKind.SERIAL)


def _free(st, iv):
    from loopc.ir.stmt import ForKind
    return _kind(st, iv) is ForKind.SERIAL


def _reads_tensor(st, op):
    from loopc.te import expr as E
    return any(isinstance(n, E.TensorRead) and n.tensor.op is op for n in E.walk(st.body))


class ScheduleGen:
    """Draws and applies random steps to schedule ``s``; records every attempt."""

    def __init__(self, s, r: random.Random):
        self.s, self.r = s, r
        self.steps = []                       # every attempted step (applied or rejected)
        self.applied = collections.Counter()
        self.rejected = collections.Counter()
        self.n_parallel = 0

    # -- plumbing
    def attempt(self, step):
        """Apply ``step``; False when loopc rejects it (ScheduleError). Anything else propagates."""
        from loopc import ScheduleError
        self.steps.append(step)
        try:
            apply_step(self.s, step)
        except ScheduleError:
            self.rejected[step["primitive"]] += 1
            step["rejected"] = True
            return False
        self.applied[step["primitive"]] += 1
        return True

    def name(self, st, iv):
        return st.name_of(iv)

    def stages(self, loops=True):
        from loopc.schedule.stage import AttachKind
        sts = list(self.s.stages)
        if loops:
            live = [st for st in sts if st.attach is not AttachKind.INLINE]
            # now and then, try a loop primitive on an inlined stage: must be a clean rejection
            if live and self.r.random() > 0.03:
                sts = live
        return sts

    def factor(self, ext):
        r = self.r
        return r.choice([1, 2, 2, 3, 4, 4, 5, 7, 8, 16, max(ext, 1), ext + 1, 2 * ext + 3, r.randint(1, ext + 2)])

    # -- primitives
    def split(self, st):
        leaves = [iv for iv in st.leaf_iter_vars if _free(st, iv) or self.r.random() < 0.05]
        if not leaves:
            return
        iv = self.r.choice(leaves)
        how = "factor" if self.r.random() < 0.7 else "nparts"
        self.attempt({"stage": st.name, "primitive": "split",
                      "args": {"axis": st.name_of(iv), how: self.factor(iv.extent)}})

    def tile(self, st):
        leaves = [iv for iv in st.leaf_iter_vars if _free(st, iv)]
        if len(leaves) < 2:
            return
        x, y = self.r.sample(leaves, 2)
        if self.r.random() < 0.6:  # mostly an adjacent, outer-then-inner pair
            n = self.r.randrange(len(st.leaf_iter_vars) - 1)
            x, y = st.leaf_iter_vars[n], st.leaf_iter_vars[n + 1]
        self.attempt({"stage": st.name, "primitive": "tile",
                      "args": {"x": st.name_of(x), "y": st.name_of(y), "xf": self.factor(x.extent),
                               "yf": self.factor(y.extent)}})

    def fuse(self, st):
        leaves = st.leaf_iter_vars
        if self.r.random() < 0.08:       # TVM's fuse() with no axes: an outermost unit loop
            self.attempt({"stage": st.name, "primitive": "fuse", "args": {"axes": []}})
            return
        if len(leaves) < 2:
            return
        pairs = [n for n in range(len(leaves) - 1) if leaves[n].kind is leaves[n + 1].kind]
        if not pairs or self.r.random() < 0.05:
            pairs = list(range(len(leaves) - 1))  # sometimes a mixed pair: a rejection
        n = self.r.choice(pairs)
        k = 3 if (n + 2 < len(leaves) and self.r.random() < 0.3) else 2
        self.attempt({"stage": st.name, "primitive": "fuse",
                      "args": {"axes": [st.name_of(iv) for iv in leaves[n:n + k]]}})

    def reorder(self, st):
        leaves = list(st.leaf_iter_vars)
        if len(leaves) < 2:
            return
        k = self.r.randint(2, len(leaves))
        pick = self.r.sample(leaves, k)
        self.attempt({"stage": st.name, "primitive": "reorder", "args": {"axes": [st.name_of(iv) for iv in pick]}})

    def unroll(self, st, prefer=None):
        from loopc.ir.stmt import ForKind
        prod = math.prod(iv.extent for iv, k in st.iter_kinds.items()
                         if k is ForKind.UNROLLED and iv in st.leaf_iter_vars)
        cands = [iv for iv in (prefer or st.leaf_iter_vars)
                 if _free(st, iv) and iv.extent <= MAX_UNROLL and iv.extent * prod <= MAX_UNROLL_PRODUCT]
        if cands:
            iv = self.r.choice(cands)
            self.attempt({"stage": st.name, "primitive": "unroll", "args": {"axis": st.name_of(iv)}})

    def vectorize(self, st, prefer=None):
        from loopc.te.tensor import IterKind
        cands = [iv for iv in (prefer or st.leaf_iter_vars)
                 if _free(st, iv) and iv.kind is IterKind.DATA_PAR and iv.extent <= MAX_VECTOR]
        if cands:
            iv = self.r.choice(cands)
            self.attempt({"stage": st.name, "primitive": "vectorize", "args": {"axis": st.name_of(iv)}})

    def parallel(self, st, prefer=None):
        from loopc.te.tensor import IterKind
        if self.n_parallel >= 2:
            return
        cands = [iv for iv in (prefer or st.leaf_iter_vars) if _free(st, iv) and iv.kind is IterKind.DATA_PAR]
        if cands:
            iv = self.r.choice(cands)
            if self.attempt({"stage": st.name, "primitive": "parallel", "args": {"axis": st.name_of(iv)}}):
                self.n_parallel += 1

    def compute_at(self, st):
        from loopc.ir.stmt import ForKind
        readers = self.s.readers_of(st)
        if not readers:
            return
        parent = self.r.choice(readers)
        leaves = list(parent.leaf_iter_vars)
        if self.r.random() < 0.9:
            leaves = [iv for iv in leaves if _kind(parent, iv) is not ForKind.VECTORIZED] or leaves
        if not leaves:  # a rank-0 stage without a reduction has no loops
            return
        iv = self.r.choice(leaves)
        self.attempt({"stage": st.name, "primitive": "compute_at",
                      "args": {"parent": parent.name, "axis": parent.name_of(iv)}})

    def compute_inline(self, st):
        self.attempt({"stage": st.name, "primitive": "compute_inline", "args": {}})

    def compute_root(self, st):
        self.attempt({"stage": st.name, "primitive": "compute_root", "args": {}})

    def cache_read(self):
        from loopc.te.tensor import PlaceholderOp
        tensors = [op for op in self.s.ops if isinstance(op, PlaceholderOp)]
        tensors += [st.op for st in self.s.stages if not st.is_output]
        self.r.shuffle(tensors)
        for op in tensors:
            readers = [st for st in self.s.stages if _reads_tensor(st, op)]
            if readers:
                break
        else:
            return
        readers = self.r.sample(readers, self.r.randint(1, len(readers)))
        t = op.output(0)
        rank = len(t.shape)
        args = {"tensor": op.name, "scope": self.r.choice(["local", "local", "global", "shared"]),
                "readers": [st.name for st in readers]}
        if rank and self.r.random() < 0.6:
            perm = list(range(rank))
            self.r.shuffle(perm)
            args["layout"] = perm
        if rank and self.r.random() < 0.35:
            dims = self.r.sample(range(rank), self.r.randint(1, min(2, rank)))
            args["block"] = sorted([d, self.r.choice([1, 2, 3, 4, 8, t.shape[d], t.shape[d] + 1])] for d in dims)
        self.attempt({"stage": readers[0].name, "primitive": "cache_read", "args": args})

    def cache_write(self, st=None):
        if st is None:
            st = self.r.choice(self.stages())
        args = {"scope": self.r.choice(["local", "local", "global"])}
        rank = len(st.op.axis)
        if rank > 1 and self.r.random() < 0.5:
            perm = list(range(rank))
            self.r.shuffle(perm)
            args["layout"] = perm
        self.attempt({"stage": st.name, "primitive": "cache_write", "args": args})

    def rfactor(self, st):
        from loopc.te.tensor import IterKind
        red = [iv for iv in st.leaf_iter_vars if iv.kind is IterKind.REDUCE]
        if not red:
            return
        if self.r.random() < 0.7:
            iv = self.r.choice(red)
            how = "factor" if self.r.random() < 0.7 else "nparts"
            self.attempt({"stage": st.name, "primitive": "split",
                          "args": {"axis": st.name_of(iv), how: self.factor(iv.extent)}})
            red = [iv for iv in st.leaf_iter_vars if iv.kind is IterKind.REDUCE]
        iv = self.r.choice(red)
        ndim = len(st.op.axis)
        fa = self.r.randint(-ndim - 1, ndim)
        before = len(self.s.stages)
        if not self.attempt({"stage": st.name, "primitive": "rfactor",
                             "args": {"axis": st.name_of(iv), "factor_axis": fa}}):
            return
        if len(self.s.stages) == before:
            return
        rf = self.s.stages[self.s.stages.index(st) - 1]
        # the point of rfactor: parallelise / vectorise the factored axis, maybe compute it at the sum
        fa %= ndim + 1
        rf_axis = rf.op.axis[fa]
        u = self.r.random()
        if u < 0.35:
            self.vectorize(rf, prefer=[rf_axis])
        elif u < 0.6:
            self.parallel(rf, prefer=[rf_axis])
        if self.r.random() < 0.3:
            self.compute_at(rf)

    def im2col(self, st):
        self.attempt({"stage": st.name, "primitive": "im2col", "args": {}})

    # -- recipes: combinations the brief asks to cover on purpose
    def recipe_attach_under_vector(self):
        """A producer computed at a loop nested inside a small vectorized loop of its consumer."""
        from loopc.schedule.stage import AttachKind
        prods = [st for st in self.s.stages if not st.is_output and st.attach is not AttachKind.INLINE
                 and len(self.s.readers_of(st)) == 1]
        if not prods:
            return
        p = self.r.choice(prods)
        c = self.s.readers_of(p)[0]
        data = [iv for iv in c.leaf_iter_vars if _free(c, iv) and iv.kind.value == "data_par" and iv.extent > 1]
        if not data:
            return
        iv = self.r.choice(data)
        before = list(c.leaf_iter_vars)
        if not self.attempt({"stage": c.name, "primitive": "split",
                             "args": {"axis": c.name_of(iv), "nparts": self.r.choice([2, 3, 4, 8])}}):
            return
        outer = [x for x in c.leaf_iter_vars if x not in before][0]
        pos = c.leaf_iter_vars.index(outer)
        inner = c.leaf_iter_vars[pos + 1:]
        if not inner:
            return
        self.attempt({"stage": p.name, "primitive": "compute_at",
                      "args": {"parent": c.name, "axis": c.name_of(self.r.choice(inner))}})
        if self.r.random() < 0.8:
            self.vectorize(c, prefer=[outer])
        else:
            self.unroll(c, prefer=[outer])

    def recipe_register_tile(self):
        """cache_write + compute_at under a vectorized/parallel outer loop, vectorized inner."""
        from loopc.schedule.stage import AttachKind
        outs = [st for st in self.s.stages if st.is_output and not st.relations and not st.iter_kinds
                and st.attach is AttachKind.ROOT]
        if not outs:
            return
        c = outs[0]
        before = len(self.s.stages)
        self.cache_write(c)
        if len(self.s.stages) == before:
            return
        cl = self.s.stages[self.s.stages.index(c) - 1]
        for _ in range(self.r.randint(1, 3)):
            self.split(c)
        if self.r.random() < 0.5:
            self.reorder(c)
        self.compute_at(cl)
        for _ in range(self.r.randint(0, 2)):
            self.split(cl)
        u = self.r.random()
        leaves = c.leaf_iter_vars
        if u < 0.5:
            self.vectorize(c, prefer=leaves[:max(1, len(leaves) // 2)])
        elif u < 0.8:
            self.parallel(c, prefer=leaves[:1])
        self.vectorize(cl, prefer=cl.leaf_iter_vars[-1:])
        if self.r.random() < 0.5:
            self.unroll(cl)

    def recipe_packed_read(self):
        """cache_read with layout= and block= (index // and %), the copy computed at a reader's
        loop (bound inference through the block division), inner loops vectorized."""
        from loopc.te.tensor import PlaceholderOp
        tensors = [op for op in self.s.ops if isinstance(op, PlaceholderOp) and len(op.shape) >= 1]
        if not tensors:
            return
        op = self.r.choice(tensors)
        readers = [st for st in self.s.stages if _reads_tensor(st, op)]
        if len(readers) != 1:
            return
        rd = readers[0]
        rank = len(op.shape)
        perm = list(range(rank))
        self.r.shuffle(perm)
        d = self.r.randrange(rank)
        f = self.r.choice([2, 3, 4, 8, 16])
        before = len(self.s.stages)
        if not self.attempt({"stage": rd.name, "primitive": "cache_read",
                             "args": {"tensor": op.name, "scope": self.r.choice(["global", "local"]),
                                      "readers": [rd.name], "layout": perm, "block": [[d, f]]}}):
            return
        if len(self.s.stages) == before:
            return
        cache = self.s.stages[self.s.stages.index(rd) - 1]
        for _ in range(self.r.randint(1, 3)):
            data = [iv for iv in rd.leaf_iter_vars if _free(rd, iv) and iv.extent > 1]
            if not data:
                break
            iv = self.r.choice(data)
            self.attempt({"stage": rd.name, "primitive": "split",
                          "args": {"axis": rd.name_of(iv), "factor": self.r.choice([f, f, 2, 3, 4])}})
        if self.r.random() < 0.5:
            self.reorder(rd)
        self.compute_at(cache)
        self.vectorize(cache, prefer=cache.leaf_iter_vars[-1:])
        if self.r.random() < 0.5:
            self.vectorize(rd, prefer=rd.leaf_iter_vars[-1:])

    # -- the whole schedule
    def generate(self):
        r = self.r
        from loopc.te import expr as E
        # phase 1: rewrites that add stages (legal only before other steps on their stages)
        for st in list(self.s.stages):
            if isinstance(st.body, E.Reduce) and len(st.reduce_axes) == 3 and r.random() < 0.35:
                self.im2col(st)
        for _ in range(r.choice([0, 0, 1, 1, 2])):
            self.cache_read()
        for _ in range(r.choice([0, 0, 0, 1, 1, 2])):
            self.cache_write()
        for st in list(self.s.stages):
            if isinstance(st.body, E.Reduce) and r.random() < 0.25:
                self.rfactor(st)
        # phase 2: recipes, then random steps in any order
        u = r.random()
        if u < 0.12:
            self.recipe_attach_under_vector()
        elif u < 0.24:
            self.recipe_register_tile()
        elif u < 0.36:
            self.recipe_packed_read()
        moves = [("split", 3), ("tile", 1.5), ("fuse", 1.5), ("reorder", 2), ("compute_at", 3),
                 ("compute_inline", 1.2), ("compute_root", 0.4), ("unroll", 1.5), ("vectorize", 2.5),
                 ("parallel", 1.2), ("cache_read", 0.15), ("cache_write", 0.15), ("rfactor", 0.15)]
        names, weights = zip(*moves)
        for _ in range(r.randint(1, 8) if r.random() < 0.6 else r.randint(8, 20)):
            move = r.choices(names, weights)[0]
            if move == "cache_read":
                self.cache_read()
                continue
            sts = self.stages(loops=move not in ("compute_at", "compute_inline", "compute_root"))
            if move in ("compute_at", "compute_inline", "compute_root"):
                sts = [st for st in sts if not st.is_output] or sts
            if move == "rfactor":
                sts = [st for st in sts if isinstance(st.body, E.Reduce)]
                if not sts:
                    continue
            getattr(self, move)(r.choice(sts))
        # phase 3: annotate loops that hold attached stages, and the innermost loops
        if r.random() < 0.5:
            for st in self.stages():
                if r.random() < 0.4:
                    getattr(self, r.choice(["vectorize", "unroll", "parallel"]))(st)
        # phase 4: a stage attached to a loop that was split/fused afterwards is refused by
        # lower(); mostly re-attach it to a current loop (what the error message advises)
        from loopc.schedule.stage import AttachKind
        from loopc.ir.stmt import ForKind
        for st in list(self.s.stages):
            if (st.attach is AttachKind.SCOPE and (st.attach_ivar not in st.attach_stage.leaf_iter_vars or
                                                   _kind(st.attach_stage, st.attach_ivar) is ForKind.VECTORIZED)
                    and r.random() < 0.9):
                self.compute_at(st)
        return self.steps


def schedule_features(s) -> list:
    """Tags of a built schedule, for triage (which known root cause a failure may share)."""
    from loopc.ir.stmt import ForKind
    from loopc.schedule.relations import Fuse, Split
    from loopc.schedule.stage import AttachKind
    feats = set()
    for st in s.stages:
        if st.attach is AttachKind.SCOPE:
            feats.add("compute_at")
            if st.attach_stage not in s.readers_of(st):
                feats.add("stale_attach")   # attached to a stage that no longer reads it
            # is the attach point (or any loop outside it, up the chain) vectorized / parallel?
            at, leaf = st.attach_stage, st.attach_ivar
            while True:
                if leaf in at.leaf_iter_vars:
                    pos = at.leaf_iter_vars.index(leaf)
                    kinds = [at.iter_kinds.get(iv) for iv in at.leaf_iter_vars[:pos + 1]]
                    if ForKind.VECTORIZED in kinds:
                        feats.add("attach_under_vectorize")
                    if ForKind.UNROLLED in kinds:
                        feats.add("attach_under_unroll")
                    if ForKind.PARALLEL in kinds:
                        feats.add("attach_under_parallel")
                if at.attach is not AttachKind.SCOPE:
                    break
                at, leaf = at.attach_stage, at.attach_ivar
            # the attach loop derived from a fused axis (fuse then split)?
            parent = st.attach_stage
            fused = {r.fused for r in parent.relations if isinstance(r, Fuse)}
            anc = {st.attach_ivar}
            for rel in reversed(parent.relations):
                if isinstance(rel, Split) and (rel.outer in anc or rel.inner in anc):
                    anc.add(rel.parent)
            if anc & fused:
                feats.add("attach_at_fused")
        if st.attach is AttachKind.INLINE:
            feats.add("inline")
        if st.name.endswith(".rf"):
            feats.add("rfactor")
        if st.name.endswith(".col"):
            feats.add("im2col")
        if st.scope != "global" or "." in st.name:
            feats.add("cache")
        if any(k is ForKind.PARALLEL for k in st.iter_kinds.values()):
            feats.add("parallel")
        if sum(k is ForKind.PARALLEL for k in st.iter_kinds.values()) > 1:
            feats.add("nested_parallel")
        if any(k is ForKind.VECTORIZED for k in st.iter_kinds.values()):
            feats.add("vectorize")
        if any(isinstance(r, Split) and not r.exact for r in st.relations):
            feats.add("tail")
        if not st.op.shape:
            feats.add("rank0")
    for t in s.outputs:
        if t.dtype in ("int32", "int64", "bool"):
            feats.add(t.dtype)
    return sorted(feats)


# --------------------------------------------------------------------------- checking

GUARD = 64  # elements of guard zone on each side of every array


def _random_input(shape, dtype, rng):
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return rng.uniform(-2.0, 2.0, size=shape).astype(dtype)
    return rng.integers(-9, 10, size=shape).astype(dtype)


class Guarded:
    """An array placed inside a larger one whose margins hold a known pattern."""

    def __init__(self, shape, dtype, inside, guard):
        n = math.prod(shape)
        self.buf = np.empty(n + 2 * GUARD, dtype)
        self.buf[:] = guard
        self.arr = self.buf[GUARD:GUARD + n].reshape(shape)
        self.arr[...] = inside
        self.margins = (self.buf[:GUARD].copy(), self.buf[GUARD + n:].copy())

    def margins_intact(self):
        n = self.arr.size
        return (self.buf[:GUARD].tobytes() == self.margins[0].tobytes()
                and self.buf[GUARD + n:].tobytes() == self.margins[1].tobytes())


def _in_guard(dtype):
    if np.dtype(dtype).kind == "b":
        return True
    return np.nan if np.dtype(dtype).kind == "f" else 1 << 24       # read outside an input: visible


def _out_fill(dtype):
    if np.dtype(dtype).kind == "b":
        return True                     # the second call starts from False: unwritten shows
    return np.nan if np.dtype(dtype).kind == "f" else -77777         # an element never written: visible


def _out_guard(dtype):
    if np.dtype(dtype).kind == "b":
        return True
    return -1.25e30 if np.dtype(dtype).kind == "f" else 0x5A5A5A5A


def _tolerance(dtype, has_reduce):
    if dtype == "float64":
        return 1e-9, 1e-9
    if dtype == "float32":
        return 1e-4, (1e-3 if has_reduce else 1e-5)
    return 0, 0


def _compare(got, want, dtype, has_reduce):
    """None when equal (within tolerance), else a short description of the difference."""
    want = np.asarray(want)
    if got.shape != want.shape:
        want = want.reshape(got.shape)
    if np.dtype(dtype).kind == "f":
        rtol, atol = _tolerance(dtype, has_reduce)
        w = want.astype(np.float64)
        g = got.astype(np.float64)
        bad = ~np.isclose(g, w, rtol=rtol, atol=atol, equal_nan=False)
        bad |= np.isnan(g) != np.isnan(w)
    else:
        bad = got.astype(np.int64) != want.astype(np.int64)
    if not bad.any():
        return None
    idx = np.argwhere(bad)
    first = tuple(int(x) for x in idx[0])
    nan = int(np.isnan(got).sum()) if np.dtype(dtype).kind == "f" else int((got == -77777).sum())
    return (f"{int(bad.sum())}/{bad.size} elements differ; first at {first}: got {got[first]!r}, "
            f"want {want[first]!r}" + (f"; {nan} never written" if nan else ""))


class CaseTimeout(Exception):
    pass


def _alarm(signum, frame):
    raise CaseTimeout(f"case exceeded {CASE_ALARM_S}s")


def check_schedule(wname, params, ns, s, seed, interp=None):
    """Lower, replay, build, run and compare ``s``; returns (status, kind, message, extra)."""
    import loopc
    import loopc.interp
    from loopc import LoopcError, LoweringError, BuildError
    from loopc.te import create_schedule
    from loopc.te.expr import Reduce

    args, ref = ns["args"], ns["ref"]
    outs = outputs_of(args)
    extra = {}
    # 1. lower: LoweringError is a legal rejection
    try:
        func = loopc.lower(s, args)
    except LoweringError as e:
        return "rejected", "lower", str(e).splitlines()[0], extra
    except LoopcError as e:
        return "fail", "lower_loopc_error", f"{type(e).__name__}: {e}", extra
    except CaseTimeout:
        raise
    except Exception as e:  # noqa: BLE001
        return "fail", "lower_exception", f"{type(e).__name__}: {e}\n{_tb()}", extra
    text = str(func)
    extra["ir_lines"] = text.count("\n")
    # 2. the trace replays to the same IR
    try:
        s2 = create_schedule([t.op for t in s.outputs]).replay(s.trace_json())
        text2 = str(loopc.lower(s2, args))
        if text2 != text:
            return "fail", "replay_mismatch", "replaying s.trace_json() on a fresh schedule lowers differently", extra
    except CaseTimeout:
        raise
    except Exception as e:  # noqa: BLE001
        return "fail", "replay_exception", f"{type(e).__name__}: {e}\n{_tb()}", extra
    # 3. build
    try:
        f = loopc.build(s, args, target="llvm")
    except BuildError as e:
        return "fail", "build_error", f"BuildError: {e}", extra
    except CaseTimeout:
        raise
    except Exception as e:  # noqa: BLE001
        return "fail", "build_exception", f"{type(e).__name__}: {e}\n{_tb()}", extra
    # 4. run on guarded arrays
    rng = np.random.default_rng(seed)
    in_vals = [_random_input(t.shape, t.dtype, rng) for t in args if t not in outs]
    want = ref(*in_vals)
    if not isinstance(want, (tuple, list)):
        want = [want]
    has_reduce = any(isinstance(st.op.body, Reduce) for st in s.stages)
    guarded, it = [], iter(in_vals)
    for t in args:
        if t in outs:
            guarded.append(Guarded(t.shape, t.dtype, _out_fill(t.dtype), _out_guard(t.dtype)))
        else:
            guarded.append(Guarded(t.shape, t.dtype, next(it), _in_guard(t.dtype)))
    try:
        f(*[g.arr for g in guarded])
    except CaseTimeout:
        raise
    except Exception as e:  # noqa: BLE001
        return "fail", "run_exception", f"{type(e).__name__}: {e}\n{_tb()}", extra
    problems = []
    for t, g in zip(args, guarded):
        if not g.margins_intact():
            problems.append(f"llvm wrote outside '{t.name}' (guard zone changed)")
    # a second call, outputs starting from other contents, must give the same bits (catches
    # reads of an output before it is written, races between parallel iterations)
    try:
        again = [np.full(t.shape, {"f": 0.5, "b": False}.get(np.dtype(t.dtype).kind, 3), t.dtype) if t in outs else g.arr
                 for t, g in zip(args, guarded)]
        f(*again)
        for t, g, a in zip(args, guarded, again):
            if t in outs and g.arr.tobytes() != a.tobytes() and not problems:
                d = _compare(a, g.arr, t.dtype, False) or "NaN patterns differ"
                problems.append(f"a second llvm call gives different '{t.name}' ({d})")
    except CaseTimeout:
        raise
    except Exception as e:  # noqa: BLE001
        return "fail", "run_exception", f"second call: {type(e).__name__}: {e}\n{_tb()}", extra
    for t, g, v in zip([t for t in args if t not in outs], [g for t, g in zip(args, guarded) if t not in outs], in_vals):
        if g.arr.tobytes() != v.tobytes():
            problems.append(f"llvm modified input '{t.name}'")
    llvm_diff = [(_compare(g.arr, w, t.dtype, has_reduce), t.name)
                 for t, g, w in zip([t for t in args if t in outs], [g for t, g in zip(args, guarded) if t in outs], want)]
    llvm_diff = [f"{n}: {d}" for d, n in llvm_diff if d]
    # 5. interp on the same lowered IR (small workloads only)
    interp_diff = None
    if interp is None:
        interp = workload_work(args) <= INTERP_MAX_WORK
    if interp:
        arrays = [v.copy() for v in in_vals]
        it = iter(arrays)
        arrays = [next(it) if t not in outs else np.full(t.shape, _out_fill(t.dtype), t.dtype) for t in args]
        try:
            interp_checked(func, arrays)
        except CaseTimeout:
            raise
        except OutOfBounds as e:
            return "fail", "interp_out_of_bounds", f"{e}" + (
                f"\n(llvm: {'; '.join(llvm_diff + problems) or 'correct'})"), extra
        except Exception as e:  # noqa: BLE001
            return "fail", "interp_exception", f"{type(e).__name__}: {e}\n{_tb()}" + (
                f"\n(llvm: {'; '.join(llvm_diff + problems) or 'correct'})"), extra
        interp_diff = [f"{t.name}: {d}" for t, a, w in zip([t for t in args if t in outs],
                                                          [a for t, a in zip(args, arrays) if t in outs], want)
                       if (d := _compare(a, w, t.dtype, has_reduce))]
    extra["interp"] = bool(interp)
    if problems:
        kind = "out_of_bounds_write" if "outside" in problems[0] or "modified input" in problems[0] \
            else "nondeterministic"
        return "fail", kind, "; ".join(problems + llvm_diff), extra
    if llvm_diff and interp_diff:
        return "fail", "wrong_both", "llvm: " + "; ".join(llvm_diff) + " | interp: " + "; ".join(interp_diff), extra
    if llvm_diff:
        return "fail", ("wrong_llvm" if interp else "wrong_llvm_nointerp"), "llvm: " + "; ".join(llvm_diff), extra
    if interp_diff:
        return "fail", "wrong_interp", "interp: " + "; ".join(interp_diff), extra
    return "ok", "", "", extra


class OutOfBounds(IndexError):
    pass


class _Checked:
    """A flat array whose every element access is bounds-checked (Python's negative indices
    would silently wrap), for running the interpreter's code."""
    __slots__ = ("a", "n", "name")

    def __init__(self, a, name):
        self.a, self.n, self.name = a, a.shape[0], name

    def __getitem__(self, i):
        if not 0 <= i < self.n:
            raise OutOfBounds(f"interp: read {self.name}[{i}], outside 0..{self.n - 1}")
        return self.a[i]

    def __setitem__(self, i, v):
        if not 0 <= i < self.n:
            raise OutOfBounds(f"interp: write {self.name}[{i}], outside 0..{self.n - 1}")
        self.a[i] = v


def interp_checked(func, arrays):
    """loopc.interp.run, with every access bounds-checked and every buffer loopc allocates
    filled with NaN / 2^24 (a read of an element not computed there shows in the result).
    Falls back to plain loopc.interp.run if the interpreter's internals change."""
    import loopc.interp as I
    try:
        from loopc.pysource import PySourceEmitter
        emitter = PySourceEmitter(reserved=I._RUNTIME)
        src = emitter.function(func)
        fname = emitter.name(func, func.name)
    except (ImportError, AttributeError, TypeError):
        return I.run(func, *arrays)
    count = [0]

    def alloc(n, dtype):
        count[0] += 1
        fill = np.nan if np.dtype(dtype).kind == "f" else (1 << 24)
        return _Checked(np.full(n, fill, dtype=dtype), f"<allocated buffer #{count[0]} ({dtype}[{n}])>")

    ns = dict(I._RUNTIME)
    ns["_alloc"] = alloc
    exec(compile(src, "<loopc-interp-checked>", "exec"), ns)  # noqa: S102 - loopc's own generated source
    with np.errstate(all="ignore"):
        ns[fname](*[_Checked(a.reshape(-1), b.name) for a, b in zip(arrays, func.params)])


def _tb():
    lines = traceback.format_exc().strip().splitlines()
    return "\n".join(lines[-12:])


def new_schedule(ns):
    """The workload's starting schedule: its ``make_schedule()`` (a library template) or a
    fresh ``te.create_schedule`` of its outputs."""
    from loopc import te
    if "make_schedule" in ns:
        return ns["make_schedule"]()
    return te.create_schedule([t.op for t in outputs_of(ns["args"])])


def pick_workload(r):
    names, weights = zip(*WORKLOADS)
    return r.choices(names, weights)[0]


def generate_case(seed):
    """(workload name, params, namespace, schedule, ScheduleGen) for ``seed``, schedule applied."""
    from loopc import te
    r = random.Random(seed)
    wname = pick_workload(r)
    params = _pick_params(wname, r)
    ns = instantiate(wname, params)
    s = new_schedule(ns)
    gen = ScheduleGen(s, r)
    gen.generate()
    return wname, params, ns, s, gen


def replay_case(wname, params, steps):
    """A fresh schedule of the workload with ``steps`` applied (rejected ones skipped)."""
    from loopc import ScheduleError, te
    ns = instantiate(wname, params)
    s = new_schedule(ns)
    for step in steps:
        try:
            apply_step(s, {k: v for k, v in step.items() if k != "rejected"})
        except ScheduleError:
            pass
    return ns, s


def _injected(seed):
    """LOOPC_FUZZ_INJECT="crash:3,hang:5" makes those seeds segfault / hang (tests the isolation)."""
    for item in os.environ.get("LOOPC_FUZZ_INJECT", "").split(","):
        if ":" in item:
            what, s = item.split(":", 1)
            if int(s) == seed:
                if what == "crash":
                    import ctypes
                    ctypes.string_at(0)          # SIGSEGV
                if what == "hang":
                    signal.alarm(0)
                    time.sleep(10_000)


def run_case(seed, interp=None) -> dict:
    _injected(seed)
    t0 = time.time()
    res = {"seed": seed}
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(CASE_ALARM_S)
    try:
        try:
            wname, params, ns, s, gen = generate_case(seed)
        except CaseTimeout:
            raise
        except Exception as e:  # noqa: BLE001 - a primitive raised something that is not a LoopcError
            from loopc import LoopcError
            r = random.Random(seed)
            wname = pick_workload(r)
            params = _pick_params(wname, r)
            kind = "schedule_loopc_error" if isinstance(e, LoopcError) else "schedule_exception"
            res.update(workload=wname, params=params, status="fail", kind=kind,
                       message=f"{type(e).__name__}: {e}\n{_tb()}", steps=_steps_of_failed_generation(seed),
                       trace=None, features=[])
            return res
        res.update(workload=wname, params=params, steps=gen.steps, trace=s.trace_json(),
                   applied=dict(gen.applied), rejected=dict(gen.rejected), features=schedule_features(s))
        status, kind, msg, extra = check_schedule(wname, params, ns, s, seed, interp)
        res.update(status=status, kind=kind, message=msg, **extra)
    except CaseTimeout as e:
        res.setdefault("workload", None)
        res.update(status="fail", kind="hang", message=str(e))
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
        res["seconds"] = round(time.time() - t0, 3)
    return res


def _steps_of_failed_generation(seed):
    """Re-run the generation, catching the exception, to get the attempted steps up to it."""
    from loopc import te
    r = random.Random(seed)
    wname = pick_workload(r)
    params = _pick_params(wname, r)
    ns = instantiate(wname, params)
    gen = ScheduleGen(new_schedule(ns), r)
    try:
        gen.generate()
    except Exception:  # noqa: BLE001
        pass
    return gen.steps


# --------------------------------------------------------------------------- repro snippets


def repro_source(wname, params, steps, seed=0) -> str:
    """A standalone script: the workload, the schedule calls, build, run, compare with NumPy."""
    lines = [HEADER.rstrip(), workload_source(wname, params).rstrip(),
             ("s = make_schedule()" if "make_schedule = " in workload_source(wname, params) else
              "s = te.create_schedule([t.op for t in args if not isinstance(t.op, te.tensor.PlaceholderOp)])"),
             "S = s.stage_by_name",
             "ax = lambda st, n: next(iv for iv in S(st).all_iter_vars if S(st).name_of(iv) == n)"]
    for step in steps:
        if step.get("rejected"):
            continue
        lines.append(step_code(step))
    lines += [
        "print(loopc.lower(s, args))",
        "rng = np.random.default_rng(%d)" % seed,
        "outs = [t for t in args if not isinstance(t.op, te.tensor.PlaceholderOp)]",
        "ins = [(rng.uniform(-2, 2, t.shape) if 'float' in t.dtype else rng.integers(-9, 10, t.shape)).astype(t.dtype)"
        " for t in args if t not in outs]",
        "want = ref(*ins); want = want if isinstance(want, tuple) else (want,)",
        "def check(run, what):",
        "    arrs = iter(ins); call = [next(arrs) if t not in outs else np.zeros(t.shape, t.dtype) for t in args]",
        "    run(*call)",
        "    for got, w in zip([a for a, t in zip(call, args) if t in outs], want):",
        "        np.testing.assert_allclose(got.astype(float), np.asarray(w).reshape(got.shape).astype(float),"
        " rtol=1e-4, atol=1e-3, err_msg=what)",
        "check(loopc.build(s, args), 'llvm vs numpy')",
        "check(lambda *a: loopc.interp.run(loopc.lower(s, args), *a), 'interp vs numpy')",
    ]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- minimization


def _signature(res):
    return res["status"], res.get("kind")


def check_steps(wname, params, steps, seed, interp=None):
    """Result dict for an explicit case (workload params + steps), in this process."""
    res = {"seed": seed, "workload": wname, "params": params, "steps": steps}
    try:
        ns, s = replay_case(wname, params, steps)
    except Exception as e:  # noqa: BLE001
        res.update(status="fail", kind="schedule_exception", message=f"{type(e).__name__}: {e}")
        return res
    status, kind, msg, _ = check_schedule(wname, params, ns, s, seed, interp)
    res.update(status=status, kind=kind, message=msg, trace=s.trace_json(), features=schedule_features(s))
    return res


def check_steps_subprocess(wname, params, steps, seed, timeout=120):
    """Like check_steps, in a child process: a crash or a hang is a result, not our death."""
    payload = json.dumps({"workload": wname, "params": params, "steps": steps, "seed": seed})
    try:
        p = subprocess.run([sys.executable, "-m", "tests.fuzz.generator", "--check-json", "-"], input=payload,
                           capture_output=True, text=True, timeout=timeout, cwd=REPO, env=_child_env())
    except subprocess.TimeoutExpired:
        return {"status": "fail", "kind": "hang", "message": f"no result within {timeout}s"}
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if p.returncode != 0 or not lines:
        return {"status": "fail", "kind": "crash", "message": f"exit code {p.returncode}: {p.stderr[-500:]}"}
    return json.loads(lines[-1])


def minimize(seed=None, log=print, record=None):
    """Shrink a failing case: drop steps, then simplify and shrink the workload, keeping the
    same failure kind. ``record``: a result dict (a line of a --jsonl file) instead of a seed
    (so a case found by an older generator can still be shrunk)."""
    if record is not None:
        first = dict(record)
        seed = first["seed"]
        if not first.get("steps"):
            first["steps"] = _steps_of_failed_generation(seed)
            r = random.Random(seed)
            first["workload"] = pick_workload(r)
            first["params"] = _pick_params(first["workload"], r)
    else:
        first = run_case(seed)
        if first["status"] == "fail" and first.get("kind") in ("crash", "hang") or not first.get("steps"):
            first["steps"] = _steps_of_failed_generation(seed)
    if first["status"] != "fail":
        log(f"seed {seed}: {first['status']} -- nothing to minimise")
        return first, None
    wname, params = first["workload"], dict(first["params"])
    steps = [st for st in first["steps"] if not st.get("rejected")]
    want = first["kind"]
    in_child = want in ("crash", "crash_flaky", "hang", "out_of_bounds_write")
    interp = first.get("interp")

    def still_fails(p, stp):
        try:
            if in_child:
                res = check_steps_subprocess(wname, p, stp, seed)
            else:
                res = check_steps(wname, p, stp, seed, interp)
        except Exception:  # noqa: BLE001
            return False
        return res["status"] == "fail" and res.get("kind") == want

    if not still_fails(params, steps):
        log(f"seed {seed}: the {want} does not reproduce from the recorded steps")
        return first, repro_source(wname, params, first["steps"], seed)
    # drop chunks of steps, then single steps, until nothing more can go
    n = max(1, len(steps) // 2)
    while n >= 1:
        i, changed = 0, False
        while i < len(steps):
            trial = steps[:i] + steps[i + n:]
            if still_fails(params, trial):
                steps, changed = trial, True
            else:
                i += n
        if not changed:
            n //= 2
    # simpler variants of the workload (categorical choices), then smaller sizes
    simpler = {"dt": ["float32"], "f": [0], "t1": [4, 0], "t2": [4, 0], "where": [0], "sq": [False],
               "relu": [False], "epi": ["bias_relu"], "comb": ["sum"], "rank0": [False]}
    for key, options in simpler.items():
        for v in options:
            if key in params and params[key] != v:
                trial = dict(params, **{key: v})
                if still_fails(trial, steps):
                    params = trial
                    break
    for key in sorted(params):
        v = params[key]
        if not isinstance(v, int) or isinstance(v, bool) or key in simpler:
            continue
        for smaller in sorted({x for x in (1, 2, 3, 5, 7, v - 1) if 0 < x < v}):
            trial = dict(params, **{key: smaller})
            try:
                workload_source(wname, trial)
                if key in ("stride", "pad", "dil", "R", "S", "H", "W", "k"):
                    instantiate(wname, trial)
            except Exception:  # noqa: BLE001
                continue
            if still_fails(trial, steps):
                params = trial
                break
    res = check_steps(wname, params, steps, seed, interp) if not in_child else \
        check_steps_subprocess(wname, params, steps, seed)
    res["original_kind"] = want
    return res, repro_source(wname, params, steps, seed)


# --------------------------------------------------------------------------- batches


def _child_env():
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "2")
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO, env.get("PYTHONPATH", "")) if p)
    env["PYTHONFAULTHANDLER"] = "1"
    return env


def _spawn(seeds):
    spec = ",".join(str(x) for x in seeds)
    return subprocess.Popen([sys.executable, "-m", "tests.fuzz.generator", "--seeds", spec],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=_child_env())


def run_isolated(seeds, case_timeout=60.0, on_result=None):
    """Run ``seeds`` in child processes, one JSON line per case. When a child dies (a segfault)
    or stalls, the first seed without a result is rerun alone to confirm and name it, then the
    rest continue in a fresh child. Returns the list of results (one per seed)."""
    results = {}
    todo = list(seeds)
    while todo:
        proc = _spawn(todo)
        got = []
        stderr_chunks = []
        t_err = threading.Thread(target=lambda: stderr_chunks.append(proc.stderr.read()), daemon=True)
        t_err.start()
        last = [time.time()]
        stalled = [False]

        def watchdog():
            while proc.poll() is None:
                if time.time() - last[0] > case_timeout:
                    stalled[0] = True
                    proc.kill()
                    return
                time.sleep(0.5)
        t_dog = threading.Thread(target=watchdog, daemon=True)
        t_dog.start()
        for line in proc.stdout:
            last[0] = time.time()
            if line.startswith("{"):
                try:
                    res = json.loads(line)
                except json.JSONDecodeError:
                    continue
                results[res["seed"]] = res
                got.append(res["seed"])
                if on_result:
                    on_result(res)
        proc.wait()
        t_err.join(timeout=5)
        todo = [x for x in todo if x not in results]
        if not todo:
            break
        if proc.returncode == 0 and not stalled[0]:
            raise RuntimeError(f"fuzz worker exited cleanly without results for {todo[:5]}...")
        suspect = todo[0]
        # confirm alone (a crash kills only this child; a stall is a hang)
        alone = _spawn([suspect])
        try:
            out, err = alone.communicate(timeout=case_timeout * 1.5 + 2)
            lines = [ln for ln in out.splitlines() if ln.startswith("{")]
            if lines and alone.returncode == 0:
                res = json.loads(lines[-1])
                res["note"] = ("passed when rerun alone after its batch "
                               f"{'stalled' if stalled[0] else f'died with code {proc.returncode}'}")
                if res["status"] == "ok":
                    res.update(status="fail", kind="crash_flaky",
                               message="batch worker died/stalled on this seed; alone it passed. stderr: "
                               + "".join(stderr_chunks)[-1500:])
            else:
                res = {"seed": suspect, "status": "fail", "kind": "crash",
                       "message": f"worker died with code {alone.returncode} (negative: signal)\n{err[-2000:]}"}
        except subprocess.TimeoutExpired:
            alone.kill()
            alone.communicate()
            res = {"seed": suspect, "status": "fail", "kind": "hang",
                   "message": f"no result within {case_timeout * 1.5 + 2:.0f}s when run alone"}
        if res.get("kind") in ("crash", "hang") and "workload" not in res:
            r = random.Random(suspect)
            res["workload"] = pick_workload(r)
            res["params"] = _pick_params(res["workload"], r)
        results[suspect] = res
        if on_result:
            on_result(res)
        todo = todo[1:]
    return [results[x] for x in seeds]


def run_parallel(seeds, jobs=1, case_timeout=60.0, on_result=None):
    """``run_isolated`` over ``jobs`` interleaved shares of ``seeds`` at once."""
    seeds = list(seeds)
    if jobs <= 1:
        return run_isolated(seeds, case_timeout, on_result)
    shares = [seeds[k::jobs] for k in range(jobs)]
    out = [None] * jobs
    lock = threading.Lock()

    def cb(res):
        if on_result:
            with lock:
                on_result(res)

    threads = [threading.Thread(target=lambda k=k: out.__setitem__(k, run_isolated(shares[k], case_timeout, cb)))
               for k in range(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    by_seed = {r["seed"]: r for part in out for r in part}
    return [by_seed[x] for x in seeds]


def summarize(results) -> str:
    st = collections.Counter(r["status"] for r in results)
    kinds = collections.Counter(r.get("kind") for r in results if r["status"] == "fail")
    rej = collections.Counter(re.sub(r"'[^']*'", "'_'", r.get("message", ""))[:90]
                              for r in results if r["status"] == "rejected")
    applied = collections.Counter()
    refused = collections.Counter()
    for r in results:
        applied.update(r.get("applied") or {})
        refused.update(r.get("rejected") or {})
    wl = collections.Counter(r.get("workload") for r in results)
    lines = [f"{len(results)} cases: " + ", ".join(f"{k} {v}" for k, v in sorted(st.items())),
             "failures by kind: " + (", ".join(f"{k} {v}" for k, v in kinds.most_common()) or "none"),
             "workloads: " + ", ".join(f"{k} {v}" for k, v in wl.most_common()),
             "primitives applied (rejected): " + ", ".join(f"{p} {applied[p]} ({refused[p]})"
                                                         for p in sorted(set(applied) | set(refused))),
             "lowering rejections: " + "; ".join(f"{v}x {k}" for k, v in rej.most_common(6))]
    return "\n".join(lines)


def describe_failure(r) -> str:
    return (f"--- seed {r['seed']}: {r.get('kind')} on workload {r.get('workload')} {r.get('params')}\n"
            f"features: {', '.join(r.get('features') or [])}\n"
            f"{(r.get('message') or '').strip()[:1500]}\n"
            f"trace: {r.get('trace')}\n"
            f"reproduce: python -m tests.fuzz.generator --show {r['seed']}    "
            f"(shrink: --minimize {r['seed']})\n")


# --------------------------------------------------------------------------- CLI


def _parse_seeds(spec):
    out = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        if ".." in part:
            a, b = part.split("..")
            out.extend(range(int(a), int(b) + 1))
        else:
            out.append(int(part))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m tests.fuzz.generator", description=__doc__.split("\n\n")[0])
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--seeds", help="worker mode: run these seeds (e.g. 0..99,120) in-process, one JSON line each")
    g.add_argument("--run", help="run these seeds crash-isolated in child processes; print failures + summary")
    g.add_argument("--show", type=int, help="print the case of this seed as a standalone script")
    g.add_argument("--minimize", type=int, help="shrink the failing case of this seed; print the repro script")
    g.add_argument("--minimize-json", help="shrink the failing case recorded in this JSON line ('-': stdin)")
    g.add_argument("--check-json", help="check one explicit case {workload, params, steps, seed} ('-': stdin)")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--jsonl", help="with --run: append every result to this file")
    ap.add_argument("--timeout", type=float, default=60.0, help="with --run: seconds without progress = hang")
    a = ap.parse_args(argv)
    if a.seeds is not None:
        for seed in _parse_seeds(a.seeds):
            res = run_case(seed)
            sys.stdout.write(json.dumps(res) + "\n")
            sys.stdout.flush()
        return 0
    if a.check_json is not None:
        case = json.loads(sys.stdin.read() if a.check_json == "-" else a.check_json)
        res = check_steps(case["workload"], case["params"], case["steps"], case.get("seed", 0))
        print(json.dumps(res))
        return 0
    if a.show is not None:
        r = random.Random(a.show)
        wname = pick_workload(r)
        params = _pick_params(wname, r)
        print(repro_source(wname, params, _steps_of_failed_generation(a.show), a.show))
        return 0
    if a.minimize is not None or a.minimize_json is not None:
        if a.minimize_json is not None:
            rec = json.loads(sys.stdin.read() if a.minimize_json == "-" else a.minimize_json)
            res, src = minimize(record=rec)
        else:
            res, src = minimize(a.minimize)
        print(json.dumps({k: res.get(k) for k in ("status", "kind", "message", "features", "params")}, indent=1))
        if src:
            print(src)
        return 0
    seeds = _parse_seeds(a.run)
    fh = open(a.jsonl, "a") if a.jsonl else None
    t0 = time.time()

    def cb(res):
        if fh:
            fh.write(json.dumps(res) + "\n")
            fh.flush()
        if res["status"] == "fail":
            print(describe_failure(res), flush=True)

    results = run_parallel(seeds, a.jobs, a.timeout, cb)
    print(summarize(results))
    print(f"{time.time() - t0:.1f}s")
    return 1 if any(r["status"] == "fail" for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
