"""The im2col rewrite: a convolution-shaped stage becomes a patch-matrix stage and a GEMM.

A stage matches when its body is

    Y[n, k, p, q] = sum(IN(n, c, p*sh + r*dh + oh, q*sw + s*dw + ow) * W[k, c, r, s], axis=[c, r, s])

where IN is a read of a 4-D tensor (an input, or a padding stage) possibly wrapped in
``if_then_else(cond, read, 0)``. The rewrite (any stride, padding, dilation; groups=1):

    Y.col[n, (c*R + r)*S + s, p*Q + q] = IN(n, c, p*sh + r*dh + oh, q*sw + s*dw + ow)    # patch matrix
    Y[n, k, p, q] = sum(W[k, c, r, s] * Y.col[n, (c*R + r)*S + s, p*Q + q], axis=[rk])  # GEMM, rk < C*R*S

so for each image n, Y[n] viewed as (K, P*Q) = W viewed as (K, C*R*S) @ Y.col[n] (C*R*S, P*Q).
"""
from __future__ import annotations

from ..errors import ScheduleError
from ..te import expr as E
from ..te.tensor import ComputeOp, IterKind, IterVar, Range
from .stage import AttachKind


def _fail(stage, what, fix=None):
    raise ScheduleError("im2col", stage.name, f"the stage is not convolution-shaped: {what}",
                        fix or "im2col needs Y[n, k, p, q] = sum(X[n, c, p*stride + r*dilation - pad, "
                               "q*stride + s*dilation - pad] * W[k, c, r, s], axis=[c, r, s])")


def _linear_in(expr, allowed):
    """True when ``expr`` is an integer linear form over ``allowed`` Vars (plus a constant)."""
    from ..arith import linear_form
    terms, _ = linear_form(expr)
    return all(isinstance(t, E.Var) and t in allowed for t in terms)


def match_conv(stage):
    """(input side expression, weight read, (c, r, s) reduce IterVars) or ScheduleError."""
    body = stage.body
    if not isinstance(body, E.Reduce) or body.combiner != "sum":
        _fail(stage, "its body is not a te.sum reduction")
    if len(stage.op.axis) != 4:
        _fail(stage, f"its output has {len(stage.op.axis)} dimensions, not 4 (n, k, p, q)")
    if len(body.axes) != 3:
        _fail(stage, f"it reduces over {len(body.axes)} axes, not 3 (c, r, s)")
    if body.condition is not None:
        _fail(stage, "its reduction has a where= condition")
    if not isinstance(body.source, E.Mul):
        _fail(stage, "the reduced expression is not a product input * weight")
    n, k, p, q = (iv.var for iv in stage.op.axis)
    red_vars = [iv.var for iv in body.axes]

    def weight_order(side):
        if not (isinstance(side, E.TensorRead) and len(side.indices) == 4):
            return None
        idx = side.indices
        if idx[0] is not k or not all(isinstance(i, E.Var) and i in red_vars for i in idx[1:]):
            return None
        if len({id(i) for i in idx[1:]}) != 3:
            return None
        return idx[1:]

    a, b = body.source.a, body.source.b
    if weight_order(b) is not None:
        x_side, w_read = a, b
    elif weight_order(a) is not None:
        x_side, w_read = b, a
    else:
        _fail(stage, "neither factor is a weight read W[k, c, r, s] (k the second output axis, c/r/s the "
                     "reduction axes)")
    c, r, s = w_read.indices[1:]
    reads = [node for node in E.walk(x_side) if isinstance(node, E.TensorRead)]
    if len(reads) != 1 or len(reads[0].indices) != 4:
        _fail(stage, "the input factor must read one 4-D tensor (optionally inside if_then_else(cond, X[...], 0))")
    if isinstance(x_side, E.Select) and not (isinstance(x_side.f, E.Const) and x_side.f.value == 0):
        _fail(stage, "the padding if_then_else must give 0 outside the input")
    idx = reads[0].indices
    if idx[0] is not n:
        _fail(stage, "the input's first index is not the batch axis n")
    if idx[1] is not c:
        _fail(stage, "the input's second index is not the channel reduction axis c of W[k, c, r, s]")
    if not _linear_in(idx[2], {p, r}):
        _fail(stage, "the input's row index is not p*stride + r*dilation - pad")
    if not _linear_in(idx[3], {q, s}):
        _fail(stage, "the input's column index is not q*stride + s*dilation - pad")
    red_by_var = {iv.var: iv for iv in body.axes}
    return x_side, w_read, (red_by_var[c], red_by_var[r], red_by_var[s])


def im2col(schedule, tensor):
    """Rewrite the convolution stage of ``tensor``; returns (patch-matrix tensor, GEMM tensor)."""
    stage = schedule[tensor]
    if stage.relations or stage.iter_kinds or stage.attach is not AttachKind.ROOT:
        raise ScheduleError("im2col", stage.name, "the stage already has schedule steps",
                            "call s.im2col before scheduling the convolution")
    x_side, w_read, (c, r, s) = match_conv(stage)
    op = stage.origin_op
    N, K, P, Q = op.shape
    C, R, S = c.extent, r.extent, s.extent
    n_ax = IterVar(E.Var("n"), Range(0, N))
    rk_ax = IterVar(E.Var("crs"), Range(0, C * R * S))
    pq_ax = IterVar(E.Var("pq"), Range(0, P * Q))
    rk, pq = rk_ax.var, pq_ax.var
    n, k, p, q = (iv.var for iv in op.axis)
    col_body = E.substitute(x_side, {n: n_ax.var, c.var: rk // (R * S), r.var: rk // S % R, s.var: rk % S,
                                     p: pq // Q, q: pq % Q})
    col_op = ComputeOp(f"{stage.name}.col", (n_ax, rk_ax, pq_ax), col_body, op.dtype)
    col = col_op.output(0)

    red = IterVar(E.Var("crs"), Range(0, C * R * S), IterKind.REDUCE)
    w_idx = {c.var: red.var // (R * S), r.var: red.var // S % R, s.var: red.var % S}
    weight = E.TensorRead(w_read.tensor, tuple(E.substitute(i, w_idx) for i in w_read.indices))
    stage.body = E.Reduce("sum", weight * E.TensorRead(col, (n, red.var, p * Q + q)), (red,))
    stage.root_iter_vars = list(op.axis) + [red]
    stage.leaf_iter_vars = list(stage.root_iter_vars)
    stage.all_iter_vars = list(stage.root_iter_vars)
    schedule._insert_stage(col_op, schedule.stages.index(stage))
    schedule._record(stage, "im2col", {})
    return col, tensor
