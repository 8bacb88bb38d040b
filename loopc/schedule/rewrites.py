"""Schedule rewrites that add stages: cache_read, cache_write and rfactor.

Each creates a new compute op and stage, rewrites the bodies of the stages around it
(``stage.body``; the user's tensors and ops stay valid handles), and returns the new tensor.
"""
from __future__ import annotations

from ..errors import ScheduleError
from ..te import expr as E
from ..te.tensor import ComputeOp, IterKind, IterVar, Range, Tensor
from .relations import Split, leaf_values
from .stage import AttachKind, Stage

SCOPES = ("global", "local", "shared")


def _fresh_axes(shape, names):
    return tuple(IterVar(E.Var(n), Range(0, ext)) for n, ext in zip(names, shape))


def _axis_names(tensor):
    op = tensor.op
    if isinstance(op, ComputeOp):
        return [iv.name for iv in op.axis]
    return [f"ax{d}" for d in range(len(tensor.shape))]


def _replace_reads(expr, old_op, new_tensor):
    return E.transform(expr, lambda n: E.TensorRead(new_tensor, n.indices)
                       if isinstance(n, E.TensorRead) and n.tensor.op is old_op else None)


def _check_scope(primitive, name, scope):
    if scope not in SCOPES:
        raise ScheduleError(primitive, name, f"unknown scope {scope!r}", f"use one of {', '.join(SCOPES)}")


def _reads(stage, op) -> bool:
    return any(isinstance(n, E.TensorRead) and n.tensor.op is op for n in E.walk(stage.body))


def cache_read(schedule, tensor, scope, readers):
    """A stage that copies ``tensor`` into ``scope``; ``readers`` read the copy instead.

    before:  C[i] = f(A[i])                    after:  A.local[i] = A[i]
                                                       C[i] = f(A.local[i])
    """
    if not isinstance(tensor, Tensor):
        raise ScheduleError("cache_read", str(tensor), "expects a tensor", "s.cache_read(A, 'local', [C])")
    _check_scope("cache_read", tensor.name, scope)
    if not isinstance(readers, (list, tuple)):
        readers = [readers]
    if not readers:
        raise ScheduleError("cache_read", tensor.name, "needs at least one reader", "s.cache_read(A, 'local', [C])")
    stages = [schedule[r] if not isinstance(r, Stage) else r for r in readers]
    for st in stages:
        if not _reads(st, tensor.op):
            raise ScheduleError("cache_read", tensor.name, f"stage '{st.name}' does not read '{tensor.name}'",
                                "list only stages that read the tensor")
    axes = _fresh_axes(tensor.shape, _axis_names(tensor))
    cache_op = ComputeOp(f"{tensor.name}.{scope}", axes, E.TensorRead(tensor, tuple(iv.var for iv in axes)),
                         tensor.dtype)
    cache = cache_op.output(0)
    for st in stages:
        st.body = _replace_reads(st.body, tensor.op, cache)
    first = min(schedule.stages.index(st) for st in stages)
    new = schedule._insert_stage(cache_op, first)
    new.scope = scope
    schedule._record(stages[0], "cache_read", {"tensor": tensor.name, "scope": scope,
                                         "readers": [st.name for st in stages]})
    return cache


def cache_write(schedule, tensor, scope):
    """Compute ``tensor`` into a ``scope`` buffer first; its stage becomes a copy-out.

    before:  C[i, j] = sum(A[i, k] * B[k, j], k)
    after:   C.local[i, j] = sum(A[i, k] * B[k, j], k)     # schedulable: compute_at, unroll ...
             C[i, j] = C.local[i, j]
    The reduction axes move to the new stage (the same IterVar objects).
    """
    stage = schedule[tensor]
    _check_scope("cache_write", stage.name, scope)
    if stage.relations or stage.iter_kinds or stage.attach is not AttachKind.ROOT:
        raise ScheduleError("cache_write", stage.name, "the stage already has schedule steps",
                            "call cache_write before split/reorder/compute_at on this stage")
    op = stage.op
    axes = _fresh_axes(op.shape, [iv.name for iv in op.axis])
    body = E.substitute(stage.body, {old.var: new.var for old, new in zip(op.axis, axes)})
    cache_op = ComputeOp(f"{stage.name}.{scope}", axes, body, op.dtype)
    cache = cache_op.output(0)
    reduce_axes = set(stage.reduce_axes)
    stage.body = E.TensorRead(cache, tuple(iv.var for iv in op.axis))
    stage.root_iter_vars = list(op.axis)
    stage.leaf_iter_vars = list(op.axis)
    stage.all_iter_vars = [iv for iv in stage.all_iter_vars if iv not in reduce_axes]
    new = schedule._insert_stage(cache_op, schedule.stages.index(stage))
    new.scope = scope
    schedule._record(stage, "cache_write", {"scope": scope})
    return cache


def rfactor(schedule, tensor, axis, factor_axis=0):
    """Turn reduction loop ``axis`` into a data-parallel axis of a new stage.

    before:  C[i] = sum(A[i, k], k)       with k split into k.outer, k.inner
    after:   C.rf[k.inner, i] = sum(A[i, k.outer*f + k.inner], k.outer)   # k.inner: data-parallel
             C[i] = sum(C.rf[k.inner.v, i], k.inner.v)
    ``factor_axis`` places the new axis among the output axes (0: first, -1: last).
    """
    stage = schedule[tensor]
    if not isinstance(stage.body, E.Reduce):
        stage._fail("rfactor", "the stage is not a reduction", "rfactor a te.sum/max/min stage")
    axis = stage._leaf("rfactor", axis)
    if axis.kind is not IterKind.REDUCE:
        stage._fail("rfactor", f"axis '{axis.name}' is data-parallel, not a reduction loop",
                    "pass a reduction axis (or one split from it)")
    ndim = len(stage.op.axis)
    if not isinstance(factor_axis, int) or not -ndim - 1 <= factor_axis <= ndim:
        stage._fail("rfactor", f"factor_axis={factor_axis!r} is not a position in 0..{ndim}",
                    "0 puts the new axis first, -1 last")
    factor_axis %= ndim + 1
    red = stage.body
    op = stage.op
    red_leaves = [iv for iv in stage.leaf_iter_vars if iv.kind is IterKind.REDUCE]
    red_rels = [r for r in stage.relations if (r.parent if isinstance(r, Split) else r.outer).kind is IterKind.REDUCE]
    rf_axis = IterVar(E.Var(axis.name), Range(0, axis.extent))
    data_axes = _fresh_axes(op.shape, [iv.name for iv in op.axis])
    others = [IterVar(E.Var(iv.name), Range(0, iv.extent), IterKind.REDUCE) for iv in red_leaves if iv is not axis]
    leaf_vars = {axis: rf_axis.var}
    leaf_vars.update({old: new.var for old, new in zip([iv for iv in red_leaves if iv is not axis], others)})
    values, guards = leaf_values(red_rels, leaf_vars)
    mapping = {root.var: values[root] for root in red.axes}
    mapping.update({old.var: new.var for old, new in zip(op.axis, data_axes)})
    source = E.substitute(red.source, mapping)
    conds = [g for g, _ in guards] + ([E.substitute(red.condition, mapping)] if red.condition is not None else [])
    cond = None
    for c in conds:
        cond = c if cond is None else E.And(cond, c)
    if others:
        rf_body = E.Reduce(red.combiner, source, tuple(others), cond)
    else:
        rf_body = source if cond is None else E.Select(cond, source, red.identity())
    rf_axes = data_axes[:factor_axis] + (rf_axis,) + data_axes[factor_axis:]
    rf_op = ComputeOp(f"{stage.name}.rf", rf_axes, rf_body, op.dtype)
    rf = rf_op.output(0)

    k_rf = IterVar(E.Var(axis.name + ".v"), Range(0, axis.extent), IterKind.REDUCE)
    read_idx = [iv.var for iv in op.axis]
    read_idx.insert(factor_axis, k_rf.var)
    stage.body = E.Reduce(red.combiner, E.TensorRead(rf, tuple(read_idx)), (k_rf,))
    keep = set(op.axis)
    data_rels = []
    for r in stage.relations:
        if r not in red_rels:
            data_rels.append(r)
            keep |= {r.outer, r.inner} | ({r.parent} if isinstance(r, Split) else {r.fused})
    stage.relations = data_rels
    stage.root_iter_vars = list(op.axis) + [k_rf]
    stage.leaf_iter_vars = [iv for iv in stage.leaf_iter_vars if iv.kind is not IterKind.REDUCE] + [k_rf]
    stage.all_iter_vars = [iv for iv in stage.all_iter_vars if iv in keep] + [k_rf]
    stage.iter_kinds = {iv: k for iv, k in stage.iter_kinds.items() if iv in keep}
    schedule._insert_stage(rf_op, schedule.stages.index(stage))
    schedule._record(stage, "rfactor", {"axis": stage.name_of(axis), "factor_axis": factor_axis})
    return rf
