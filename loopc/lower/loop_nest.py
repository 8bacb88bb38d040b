"""Pass 1: schedule -> loop nests (one per stage), with tail guards and reduction init/update.

For a reduction stage whose first reduction loop sits at leaf position p:

    for <leaves[:p]>:                       # outer loops, shared
      for <data-parallel leaves after p>:   # init nest
        C[...] = identity
      for <leaves[p:]>:                     # update nest
        C[...] = combine(C[...], source)

Each tail guard (from a split that does not divide) wraps the body just inside the
innermost loop whose variable it reads.
"""
from __future__ import annotations

from ..errors import LoweringError
from ..ir.stmt import Allocate, Buffer, For, ForKind, IfThenElse, LoweredFunc, TensorStore, seq
from ..te import expr as E
from ..te.tensor import ComputeOp, IterKind, PlaceholderOp, Tensor
from ..schedule.relations import leaf_values
from ..schedule.stage import AttachKind


def inline_reads(e: E.Expr, inlined: set) -> E.Expr:
    """Replace reads of inlined stages by their (recursively inlined) bodies."""
    def fn(n):
        if isinstance(n, E.TensorRead) and n.tensor.op in inlined:
            op = n.tensor.op
            body = E.substitute(op.body, {iv.var: i for iv, i in zip(op.axis, n.indices)})
            return inline_reads(body, inlined)
        return None
    return E.transform(e, fn)


def _conjoin(conds):
    out = conds[0]
    for c in conds[1:]:
        out = E.And(out, c)
    return out


def make_nest(leaves, kinds, body, guards):
    """Loops over ``leaves`` (outer first) around ``body``; each guard sits inside the
    innermost loop it reads (guards reading none of them wrap the whole nest)."""
    position = {iv.var: n for n, iv in enumerate(leaves)}
    at = {}
    for g in guards:
        depth = max((position[v] for v in E.free_vars(g) if v in position), default=-1)
        at.setdefault(depth, []).append(g)
    for n in range(len(leaves) - 1, -1, -1):
        if n in at:
            body = IfThenElse(_conjoin(at[n]), body)
        iv = leaves[n]
        body = For(iv.var, E.Const(0), E.Const(iv.extent), kinds.get(iv, ForKind.SERIAL), body)
    if -1 in at:
        body = IfThenElse(_conjoin(at[-1]), body)
    return body


def stage_nest(stage, inlined: set):
    """The loop nest that computes one root-attached stage."""
    op = stage.op
    leaves = stage.leaf_iter_vars
    values, guard_pairs = leaf_values(stage.relations, {iv: iv.var for iv in leaves})
    root_map = {iv.var: values[iv] for iv in stage.root_iter_vars}
    out_idx = tuple(values[iv] for iv in op.axis)
    body = inline_reads(op.body, inlined)
    tensor = op.output(0)
    guards = [g for g, _ in guard_pairs]

    if not isinstance(body, E.Reduce):
        store = TensorStore(tensor, out_idx, E.substitute(body, root_map))
        return make_nest(leaves, stage.iter_kinds, store, guards)

    red = body
    source = E.substitute(red.source, root_map)
    update = TensorStore(tensor, out_idx, red.combine(E.TensorRead(tensor, out_idx), source))
    if red.condition is not None:
        update = IfThenElse(E.substitute(red.condition, root_map), update)
    init = TensorStore(tensor, out_idx, red.identity())
    p = next(n for n, iv in enumerate(leaves) if iv.kind is IterKind.REDUCE)
    outer_vars = {iv.var for iv in leaves[:p]}
    outer_guards = [g for g in guards if E.free_vars(g) <= outer_vars]
    inner_guards = [g for g in guards if g not in outer_guards]
    data_guards = [g for g, parent in guard_pairs if parent.kind is not IterKind.REDUCE and g in inner_guards]
    init_leaves = [iv for iv in leaves[p:] if iv.kind is not IterKind.REDUCE]
    init_nest = make_nest(init_leaves, stage.iter_kinds, init, data_guards)
    update_nest = make_nest(leaves[p:], stage.iter_kinds, update, inner_guards)
    return make_nest(leaves[:p], stage.iter_kinds, seq(init_nest, update_nest), outer_guards)


def _check_args(schedule, args):
    if not isinstance(args, (list, tuple)) or not args:
        raise LoweringError("args must be a non-empty list of tensors, e.g. [A, B, C]")
    for t in args:
        if not isinstance(t, Tensor):
            raise LoweringError(f"args must be tensors; got {t!r} of type {type(t).__name__}")
    if len({id(t) for t in args}) != len(args):
        raise LoweringError("a tensor appears twice in args; list each once")
    in_args = {t.op for t in args}
    for op in schedule.ops:
        if isinstance(op, PlaceholderOp) and op not in in_args:
            raise LoweringError(f"placeholder '{op.name}' is read by the computation but is not in args; "
                                "add it to the argument list")
    for t in schedule.outputs:
        if t.op not in in_args:
            raise LoweringError(f"output '{t.name}' is not in args; add it so the caller receives the result")
    for t in args:
        if t.op not in schedule.ops:
            raise LoweringError(f"'{t.name}' is in args but the scheduled outputs never read it")


def schedule_to_loops(schedule, args, name: str) -> LoweredFunc:
    """Pass 1: every root stage's loop nest, in producer-before-consumer order."""
    _check_args(schedule, args)
    params = tuple(Buffer(t.name, t.shape, t.dtype) for t in args)
    buffer_map = {t.op: b for t, b in zip(args, params)}
    inlined = {st.op for st in schedule.stages if st.attach is AttachKind.INLINE}
    nests, allocs = [], []
    for st in schedule.stages:
        if st.attach is AttachKind.INLINE:
            continue
        if st.attach is not AttachKind.ROOT:
            raise LoweringError(f"stage '{st.name}' is attached with {st.attach.value}, which this "
                                "version of loopc cannot lower yet")
        if st.op not in buffer_map:
            buf = Buffer(st.name, st.op.shape, st.op.dtype)
            buffer_map[st.op] = buf
            allocs.append(buf)
        nests.append(stage_nest(st, inlined))
    body = seq(*nests)
    for buf in reversed(allocs):
        body = Allocate(buf, body)
    return LoweredFunc(name, params, body, {"buffer_map": buffer_map})
