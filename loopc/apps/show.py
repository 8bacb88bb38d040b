"""``loopc show OP --shape ...``: any library op, declared from a few ints, with the schedule
``schedules.schedule`` gives it (a tuned record when one exists for this target, else the
template's default), printed as lowered loop IR, LLVM IR or assembly.

    loopc show conv2d --shape 1 6 14 14 16 5 5   # N C H W K R S [stride padding dilation groups]
    loopc show max_pool2d --shape 1 6 28 28 2 --format asm

Each entry of ``CATALOG`` says which ints its ``--shape`` takes and declares the op from them
with the library's own compute (``loopc.schedules``), so what is shown is what the library runs.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable

from ..errors import ArgumentError, LoopcError


@dataclass(frozen=True)
class Showable:
    """How ``loopc show`` declares one op: ``declare(*ints) -> (inputs, outputs)``."""
    shape: str                    # the ints --shape takes, e.g. "M N K"
    required: int                 # how many of them are required
    optional: int                 # how many more may follow (-1: any number, a tensor shape)
    declare: Callable


def _ph(shape, name, dtype="float32"):
    from .. import te
    return te.placeholder(tuple(shape), dtype=dtype, name=name)


def _conv(N, C, H, W, K, R, S, stride=1, padding=0, dilation=1, groups=1):
    from .. import schedules
    X, Wt = _ph((N, C, H, W), "X"), _ph((K, C // max(groups, 1), R, S), "W")
    return [X, Wt], [schedules.conv2d_nchw(X, Wt, stride, padding, dilation, groups)]


def _conv_grad(which):
    def declare(N, C, H, W, K, R, S, stride=1, padding=0, dilation=1):
        from .. import schedules
        from ..schedules.ops import conv_geometry
        _, _, _, (P, Q) = conv_geometry("conv2d", (H, W), (R, S), stride, padding, dilation)
        dY = _ph((N, K, P, Q), "dY")
        if which == "data":
            Wt = _ph((K, C, R, S), "W")
            return [dY, Wt], [schedules.conv2d_backward_data(dY, Wt, (N, C, H, W), stride, padding, dilation)]
        X = _ph((N, C, H, W), "X")
        return [dY, X], [schedules.conv2d_backward_weight(dY, X, (K, C, R, S), stride, padding, dilation)]
    return declare


def _pool(which):
    def declare(N, C, H, W, kernel, stride=None, padding=0):
        from .. import schedules
        X = _ph((N, C, H, W), "X")
        return [X], [getattr(schedules, which)(X, kernel, stride, padding)]
    return declare


def _max_pool_backward(N, C, H, W, kernel, stride=None, padding=0):
    from .. import schedules
    from ..schedules.ops import conv_out
    st = kernel if stride is None else stride
    dY = _ph((N, C, conv_out(H, kernel, st, padding), conv_out(W, kernel, st, padding)), "dY")
    X = _ph((N, C, H, W), "X")
    return [dY, X], [schedules.max_pool2d_backward(dY, X, kernel, stride, padding)]


def _unary(which):
    def declare(*shape):
        from .. import schedules
        X = _ph(shape, "X")
        return [X], [getattr(schedules, which)(X)]
    return declare


def _pair_same(which):
    def declare(*shape):
        from .. import schedules
        a, b = _ph(shape, "dY"), _ph(shape, "X")
        return [a, b], [getattr(schedules, which)(a, b)]
    return declare


def _matmul(M, N, K):
    from .. import schedules
    A, B = _ph((M, K), "A"), _ph((K, N), "B")
    return [A, B], [schedules.matmul(A, B)]


def _dense(batch, in_features, out_features):
    from .. import schedules
    X, W = _ph((batch, in_features), "X"), _ph((out_features, in_features), "W")
    return [X, W], [schedules.dense(X, W)]


def _dense_grad(which):
    def declare(batch, in_features, out_features):
        from .. import schedules
        dY = _ph((batch, out_features), "dY")
        if which == "data":
            W = _ph((out_features, in_features), "W")
            return [dY, W], [schedules.dense_backward_data(dY, W)]
        X = _ph((batch, in_features), "X")
        return [dY, X], [schedules.dense_backward_weight(dY, X)]
    return declare


def _bias_add(*shape):
    from .. import schedules
    X, b = _ph(shape, "X"), _ph((shape[1],), "b")
    return [X, b], [schedules.bias_add(X, b)]


def _bias_backward(*shape):
    from .. import schedules
    dY = _ph(shape, "dY")
    return [dY], [schedules.bias_backward(dY)]


def _nll_loss(batch, classes):
    from .. import schedules
    logp, labels = _ph((batch, classes), "logp"), _ph((batch,), "labels", "int32")
    return [logp, labels], [schedules.nll_loss(logp, labels)]


def _nll_loss_backward(batch, classes):
    from .. import schedules
    labels = _ph((batch,), "labels", "int32")
    return [labels], [schedules.nll_loss_backward(labels, batch, classes)]


def _log_softmax_backward(batch, classes):
    from .. import schedules
    d, logp = _ph((batch, classes), "dlogp"), _ph((batch, classes), "logp")
    return [d, logp], [schedules.log_softmax_backward(d, logp)]


def _sgd(n):
    from .. import schedules
    p, g, v = _ph((n,), "param"), _ph((n,), "grad"), _ph((n,), "velocity")
    return [p, g, v], list(schedules.sgd_momentum(p, g, v, lr=0.01, momentum=0.9))


def _adadelta(n):
    from .. import schedules
    p, g, sq, acc = (_ph((n,), name) for name in ("param", "grad", "square_avg", "acc_delta"))
    return [p, g, sq, acc], list(schedules.adadelta(p, g, sq, acc, lr=1.0))


def _sparse_dense(M, K, N, density_percent, bs_r=1, bs_c=1):
    """X (M x K) times a seeded random sparse W (N x K) with ``density_percent`` % of its
    bs_r x bs_c blocks nonzero: CSR for 1 x 1 blocks, else BSR."""
    from .. import schedules
    from ..schedules.testing import random_sparse
    if not 0 <= density_percent <= 100:
        raise LoopcError(f"density_percent must be 0..100, got {density_percent}")
    if bs_r < 1 or bs_c < 1 or N % bs_r or K % bs_c:
        raise LoopcError(f"N={N} and K={K} must be multiples of the block's bs_r={bs_r} and bs_c={bs_c}")
    _, (data, _, indptr) = random_sparse(N, K, density_percent / 100, (bs_r, bs_c), seed=0)
    nnz = max(len(data), 1)           # an all-zero W still has a (never read) W_data element
    X = _ph((M, K), "X")
    W_data = _ph((nnz,) if (bs_r, bs_c) == (1, 1) else (nnz, bs_r, bs_c), "W_data")
    W_indices, W_indptr = _ph((nnz,), "W_indices", "int32"), _ph(indptr.shape, "W_indptr", "int32")
    return [X, W_data, W_indices, W_indptr], [schedules.sparse_dense(X, W_data, W_indices, W_indptr)]


def _sparse_dense_bsr(M, K, N, density_percent, bs_r, bs_c):
    return _sparse_dense(M, K, N, density_percent, bs_r, bs_c)


_CONV = "N C H W K R S [stride padding dilation"
#: every op ``loopc show`` knows (besides ``gemm``, the GEMM ladder's schedules)
CATALOG = {
    "matmul": Showable("M N K", 3, 0, _matmul),
    "dense": Showable("batch in_features out_features", 3, 0, _dense),
    "conv2d": Showable(_CONV + " groups]", 7, 4, _conv),
    "max_pool2d": Showable("N C H W kernel [stride padding]", 5, 2, _pool("max_pool2d")),
    "avg_pool2d": Showable("N C H W kernel [stride padding]", 5, 2, _pool("avg_pool2d")),
    "relu": Showable("the input's shape (any rank)", 1, -1, _unary("relu")),
    "bias_add": Showable("N C [H W ...] (bias over C)", 2, -1, _bias_add),
    "softmax": Showable("the input's shape (over the last axis)", 1, -1, _unary("softmax")),
    "log_softmax": Showable("the input's shape (over the last axis)", 1, -1, _unary("log_softmax")),
    "conv2d_backward_data": Showable(_CONV + "]", 7, 3, _conv_grad("data")),
    "conv2d_backward_weight": Showable(_CONV + "]", 7, 3, _conv_grad("weight")),
    "dense_backward_data": Showable("batch in_features out_features", 3, 0, _dense_grad("data")),
    "dense_backward_weight": Showable("batch in_features out_features", 3, 0, _dense_grad("weight")),
    "bias_backward": Showable("N C [H W ...] (summed over all but C)", 2, -1, _bias_backward),
    "max_pool2d_backward": Showable("N C H W kernel [stride padding]", 5, 2, _max_pool_backward),
    "relu_backward": Showable("the input's shape (any rank)", 1, -1, _pair_same("relu_backward")),
    "nll_loss": Showable("batch classes", 2, 0, _nll_loss),
    "nll_loss_backward": Showable("batch classes", 2, 0, _nll_loss_backward),
    "log_softmax_backward": Showable("batch classes", 2, 0, _log_softmax_backward),
    "sgd_momentum": Showable("n (parameters)", 1, 0, _sgd),
    "adadelta": Showable("n (parameters)", 1, 0, _adadelta),
    "sparse_dense": Showable("M K N density_percent (W: CSR, a seeded random pattern)", 4, 0, _sparse_dense),
    "sparse_dense_bsr": Showable("M K N density_percent bs_r bs_c (W: BSR blocks)", 6, 0, _sparse_dense_bsr),
}
ALIASES = {"conv2d_nchw": "conv2d"}


def declare(op: str, shape):
    """``(inputs, outputs)`` of library op ``op`` declared from the ints ``shape``; ArgumentError
    naming what --shape takes when the count is wrong or the op rejects the values."""
    entry = CATALOG[ALIASES.get(op, op)]
    shape = tuple(shape or ())
    most = entry.required + entry.optional
    if len(shape) < entry.required or (entry.optional >= 0 and len(shape) > most):
        count = (f"{entry.required}" if entry.optional == 0 else
                 f"at least {entry.required}" if entry.optional < 0 else f"{entry.required} to {most}")
        raise ArgumentError(f"--shape: {op} takes {count} ints ({entry.shape}), got {len(shape)}")
    try:
        return entry.declare(*shape)
    except LoopcError as err:
        raise ArgumentError(f"--shape {' '.join(map(str, shape))}: {err}") from None


def _origin(s, target) -> str:
    """Where the schedule of ``s``'s templated stages came from: a tuned record or the default."""
    from ..schedules import registry, tuned_record_lookup, workload_key
    from ..te.tensor import ComputeOp
    kind = registry.target_kind(target)
    templated = [st.op for st in s.stages if isinstance(st.op, ComputeOp) and registry.lookup(st.op.tag, kind)]
    if not templated:
        return "no template for this op: " + ("the flat kernel" if kind == "cuda" else "its plain loop nest")
    if any(tuned_record_lookup(workload_key(op.output(0)), target) is not None for op in templated):
        return "a tuned record"
    return "the template's default schedule (no tuned record for this workload here)"


def render(op: str, shape, fmt: str = "ir", target: str = "llvm") -> str:
    """The op's lowered IR (``fmt="ir"``), LLVM IR or assembly under ``schedules.schedule``,
    after a comment line naming the workload and where its schedule came from."""
    import loopc
    from .. import schedules
    inputs, outputs = declare(op, shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", schedules.NoTunedRecordWarning)
        s = schedules.schedule(outputs, target=target)
    origin = _origin(s, target)
    args = [*inputs, *outputs]
    name = ALIASES.get(op, op)
    comment = ";" if fmt in ("llvm", "ptx") else "#"      # IR, x86 assembly and numba source take "#"
    head = f"{comment} {name} {' '.join(map(str, shape))} on {target}: {origin}"
    if fmt == "ir":
        return f"{head}\n{loopc.lower(s, args, name=name)}"
    return f"{head}\n{loopc.build(s, args, target=target, name=name).get_source(fmt)}"
