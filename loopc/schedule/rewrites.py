"""Schedule rewrites that add stages: cache_read, cache_write and rfactor.

Each creates a new compute op and stage, rewrites the bodies of the stages around it
(``stage.body``; the user's tensors and ops stay valid handles), and returns the new tensor.
"""
from __future__ import annotations

from ..errors import ScheduleError
from ..te import expr as E
from ..te.tensor import ComputeOp, IterKind, IterVar, PlaceholderOp, Range, Tensor
from ..te.reduction import substitute_body
from .relations import Split, leaf_indices, leaf_values, reduce_axis_value
from .stage import AttachKind, Stage

SCOPES = ("global", "local", "shared")


def _fresh_axes(shape, names):
    return tuple(IterVar(E.Var(n), Range(0, ext)) for n, ext in zip(names, shape))


def _axis_names(tensor):
    op = tensor.op
    if isinstance(op, ComputeOp):
        return [iv.name for iv in op.axis]
    return [f"ax{d}" for d in range(len(tensor.shape))]


def _computed_stage(schedule, tensor, primitive) -> Stage:
    """The stage of ``tensor``, which must be a te.compute of this schedule."""
    if not isinstance(tensor, Tensor):
        raise ScheduleError(primitive, str(tensor), f"expects a tensor, got {type(tensor).__name__}",
                            f"s.{primitive}(C, ...) with C a te.compute tensor")
    if not isinstance(tensor.op, (ComputeOp, PlaceholderOp)):
        raise ScheduleError(primitive, tensor.name, f"is computed by a {type(tensor.op).__name__} (te.scan or "
                            "te.extern), as a whole: there are no loops of its own to " + primitive,
                            "apply it to a te.compute stage")
    if not isinstance(tensor.op, ComputeOp):
        raise ScheduleError(primitive, tensor.name, "is a placeholder (an input): it is not computed, so there "
                            "is nothing to " + ("cache" if primitive == "cache_write" else "factor"),
                            "use s.cache_read for inputs" if primitive == "cache_write"
                            else "rfactor the te.compute reduction that reads it")
    if tensor.op not in schedule._stage_of:
        raise ScheduleError(primitive, tensor.name, "is not part of this schedule",
                            "create the schedule from the outputs that read this tensor")
    stage = schedule._stage_of[tensor.op]
    if stage.attach is AttachKind.SCAN:
        raise ScheduleError(primitive, stage.name, f"is computed by scan '{stage.attach_stage.name}' straight into "
                            "the scan's output", f"schedule its loops instead (s[{stage.name}].split(...))")
    return stage


def _check_scope(primitive, name, scope):
    if scope not in SCOPES:
        raise ScheduleError(primitive, name, f"unknown scope {scope!r}", f"use one of {', '.join(SCOPES)}")


def _reads(stage, tensor) -> bool:
    return any(isinstance(n, E.TensorRead) and n.tensor is tensor for n in E.walk(stage.body))


def cache_read(schedule, tensor, scope, readers, layout=None, block=None):
    """A stage that copies ``tensor`` into ``scope``; ``readers`` read the copy instead.

    before:  C[i] = f(A[i])                    after:  A.local[i] = A[i]
                                                       C[i] = f(A.local[i])

    ``layout`` (a permutation of the axes) stores the copy transposed: axis d of the copy is
    axis ``layout[d]`` of ``tensor`` — packing, e.g. weights W[k, c] read along k:

    before:  Y[i, k] = sum(X[i, c] * W[k, c], c)     after:  W.global[c, k] = W[k, c]   (layout=(1, 0))
                                                             Y[i, k] = sum(X[i, c] * W.global[c, k], c)

    ``block`` ({axis: factor}) also cuts axes of ``tensor`` into blocks: the block index takes
    the axis's place in ``layout`` and the offset within the block becomes a new innermost
    axis (TVM's kernel packing for NCHW[x]c; a partial last block reads zeros):

    block={0: 16}:  W.global[k.outer, c, r, s, k.inner] = W[k.outer*16 + k.inner, c, r, s]
                    ... W[k, c, r, s] is read as W.global[k // 16, c, r, s, k % 16]
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
        if getattr(st.op, "opaque", None):
            raise ScheduleError("cache_read", tensor.name, f"stage '{st.name}' is a {type(st.op).__name__}, which "
                                "reads whole buffers", "cache the tensor for the te.compute stages that read it")
        if not _reads(st, tensor):
            raise ScheduleError("cache_read", tensor.name, f"stage '{st.name}' does not read '{tensor.name}'",
                                "list only stages that read the tensor")
    rank = len(tensor.shape)
    perm = _permutation("cache_read", tensor.name, layout, rank)
    blocks = _blocks(tensor, block)
    names = _axis_names(tensor)
    # the copy's axes: each source axis in layout order (a blocked one as its block index),
    # then the offsets within the blocks
    outer = [(d, -(-tensor.shape[d] // blocks[d]) if d in blocks else tensor.shape[d],
              f"{names[d]}.outer" if d in blocks else names[d]) for d in perm]
    inner = [(d, blocks[d], f"{names[d]}.inner") for d in perm if d in blocks]
    axes = _fresh_axes([ext for _, ext, _ in outer + inner], [name for _, _, name in outer + inner])
    source_index = [None] * rank
    for d, iv in zip(perm, axes):
        source_index[d] = iv.var
    in_bounds = []
    for (d, factor, _), iv in zip(inner, axes[rank:]):
        source_index[d] = source_index[d] * factor + iv.var
        if tensor.shape[d] % factor:
            in_bounds.append(source_index[d] < tensor.shape[d])
    copy = E.TensorRead(tensor, tuple(source_index))
    if in_bounds:
        inside = in_bounds[0]
        for cond in in_bounds[1:]:
            inside = E.And(inside, cond)
        copy = E.Select(inside, copy, E.Const(0, tensor.dtype))   # a zero of the tensor's own dtype
    cache_op = ComputeOp(f"{tensor.name}.{scope}", axes, copy, tensor.dtype)
    cache = cache_op.output(0)

    def cache_index(indices):
        index = [indices[d] // blocks[d] if d in blocks else indices[d] for d in perm]
        return tuple(index + [indices[d] % factor for d, factor, _ in inner])

    for st in stages:
        st.body = E.transform(st.body, lambda n: E.TensorRead(cache, cache_index(n.indices))
                              if isinstance(n, E.TensorRead) and n.tensor is tensor else None)
    first = min(schedule.stages.index(st) for st in stages)
    new = schedule._insert_stage(cache_op, first)
    new.scope = scope
    source = schedule._stage_of.get(tensor.op)      # a computed tensor: its stage's unique name
    name = tensor.name if source is None else source.name + (f".v{tensor.value_index}" if tensor.op.num_outputs > 1
                                                              else "")
    args = {"tensor": name, "scope": scope,
            "readers": [st.name for st in stages]}
    if layout is not None:
        args["layout"] = list(perm)
    if blocks:
        args["block"] = [[d, f] for d, f in sorted(blocks.items())]
    schedule._record(stages[0], "cache_read", args)
    return cache


def _blocks(tensor, block):
    """``block`` as {axis: factor}, checked (a trace stores it as [[axis, factor], ...])."""
    if not block:
        return {}
    if isinstance(block, dict):
        items = list(block.items())
    elif isinstance(block, (list, tuple)) and all(isinstance(x, (list, tuple)) and len(x) == 2 for x in block):
        items = list(block)
    else:
        raise ScheduleError("cache_read", tensor.name, f"block={block!r} is not a mapping of axis to factor",
                            "pass block={axis: factor}, e.g. block={0: 16}")
    out = {}
    for d, factor in items:
        if not (isinstance(d, int) and not isinstance(d, bool) and 0 <= d < len(tensor.shape)):
            raise ScheduleError("cache_read", tensor.name, f"block axis {d!r} is not an axis of the "
                                f"{len(tensor.shape)}-d tensor", "name axes by position, e.g. block={0: 16}")
        if not (isinstance(factor, int) and not isinstance(factor, bool) and factor >= 1):
            raise ScheduleError("cache_read", tensor.name, f"block factor {factor!r} for axis {d} is not a "
                                "positive integer", "e.g. block={0: 16}")
        out[d] = factor
    return out


def _permutation(primitive, name, layout, rank):
    try:
        perm = tuple(range(rank)) if layout is None else tuple(layout)
    except TypeError:
        perm = None
    if perm is None or not all(isinstance(d, int) and not isinstance(d, bool) for d in perm) \
            or sorted(perm) != list(range(rank)):
        raise ScheduleError(primitive, name, f"layout {layout!r} is not a permutation of the {rank} axes",
                            f"e.g. layout={tuple(range(rank))[::-1]} reverses them")
    return perm


def cache_write(schedule, tensor, scope, layout=None):
    """Compute ``tensor`` into a ``scope`` buffer first; its stage becomes a copy-out.

    before:  C[i, j] = sum(A[i, k] * B[k, j], k)
    after:   C.local[i, j] = sum(A[i, k] * B[k, j], k)     # schedulable: compute_at, unroll ...
             C[i, j] = C.local[i, j]
    The reduction axes move to the new stage (the same IterVar objects). ``layout`` (a
    permutation) orders the buffer's axes: with ``layout=(1, 0)``, ``C.local[j, i]`` — e.g.
    the vector lanes of a register tile innermost.

    A multi-output op takes the list of all its outputs (TVM's form) and gives a list back:

    before:  T.v0[i], T.v1[i] = argmax((idx[i, k], val[i, k]), k)
    after:   T.local.v0[i], T.local.v1[i] = argmax((idx[i, k], val[i, k]), k)
             T.v0[i], T.v1[i] = T.local.v0[i], T.local.v1[i]

    After ``split``/``fuse``/``reorder`` of C's data-parallel loops (TVM's relayout): the
    buffer has one axis per loop, in loop order, and C starts again from its own axes (its
    splits and the annotations of split loops are spent, as in TVM):

    s[C].split(i, factor=4):  C.local[i.outer.c, i.inner.c, j.c] = body(i.outer.c*4 + i.inner.c, j.c)
                              C[i, j] = C.local[i // 4, i % 4, j]
    """
    as_list = isinstance(tensor, (list, tuple))
    stage = _computed_stage(schedule, _one_op_outputs(schedule, tensor), "cache_write")
    _check_scope("cache_write", stage.name, scope)
    op = stage.origin_op
    data_leaves = [iv for iv in stage.leaf_iter_vars if iv.kind is not IterKind.REDUCE]
    relayout = data_leaves != list(op.axis)
    split_reduce = [iv.name for iv in stage.leaf_iter_vars if iv.kind is IterKind.REDUCE and iv not in stage.reduce_axes]
    if split_reduce:
        raise ScheduleError("cache_write", stage.name, f"reduction loop(s) {', '.join(split_reduce)} were split or "
                            "fused; the cache stage computes the whole reduction", "split the reduction on the "
                            "stage cache_write returns, not before it (TVM has the same rule)")
    if relayout and layout is not None:
        raise ScheduleError("cache_write", stage.name, "layout= and a split/reordered stage both choose the "
                            "buffer's layout", "pass layout= on an unscheduled stage, or drop it")
    if relayout and op.num_outputs > 1:
        raise ScheduleError("cache_write", stage.name, "a multi-output stage was split or reordered",
                            "call cache_write before split/reorder on a multi-output stage")
    if relayout:
        cache_op, read_idx = _relayout_cache(stage, scope, data_leaves)
        perm = None
    else:
        perm = _permutation("cache_write", stage.name, layout, len(op.axis))
        axes = _fresh_axes([op.shape[d] for d in perm], [op.axis[d].name for d in perm])
        body = substitute_body(stage.body, {op.axis[src].var: axes[d].var for d, src in enumerate(perm)})
        cache_op = ComputeOp(f"{stage.name}.{scope}", axes, body, op.dtype)
        read_idx = tuple(op.axis[src].var for src in perm)
    copies = tuple(E.TensorRead(cache, read_idx) for cache in cache_op.outputs)
    stage.body = copies[0] if len(copies) == 1 else E.ValueTuple(copies)
    stage.root_iter_vars = list(op.axis)
    stage.leaf_iter_vars = list(op.axis)
    stage.all_iter_vars = list(op.axis)
    stage.relations = []
    stage.iter_kinds = {iv: k for iv, k in stage.iter_kinds.items() if iv in op.axis}
    stage.bindings = {iv: t for iv, t in stage.bindings.items() if iv in op.axis}
    new = schedule._insert_stage(cache_op, schedule.stages.index(stage))
    new.scope = scope
    schedule._record(stage, "cache_write", {"scope": scope} if perm is None or layout is None
                     else {"scope": scope, "layout": list(perm)})
    return list(cache_op.outputs) if as_list else cache_op.output(0)


def _one_op_outputs(schedule, tensor):
    """The tensor cache_write caches: one tensor, or a list of every output of one op."""
    if not isinstance(tensor, (list, tuple)):
        if isinstance(tensor, Tensor) and tensor.op.num_outputs > 1:
            names = ", ".join(t.name for t in tensor.op.outputs)
            raise ScheduleError("cache_write", tensor.op.name, f"'{tensor.name}' is one of {tensor.op.num_outputs} "
                                "outputs computed together", f"pass all of them: s.cache_write([{names}], scope)")
        return tensor
    if not tensor or not all(isinstance(t, Tensor) for t in tensor):
        raise ScheduleError("cache_write", str(tensor), "expects a tensor or a non-empty list of tensors",
                            "s.cache_write(C, 'local') or s.cache_write([T0, T1], 'local')")
    op = tensor[0].op
    if any(t.op is not op for t in tensor) or sorted(t.value_index for t in tensor) != list(range(op.num_outputs)):
        names = ", ".join(t.name for t in op.outputs)
        raise ScheduleError("cache_write", op.name, f"the list must hold every output of one op, each once: got "
                            f"{', '.join(t.name for t in tensor)}", f"pass [{names}]")
    return tensor[0]


def _relayout_cache(stage, scope, data_leaves):
    """The cache op of a split/reordered stage (one axis per data loop) and the copy-out's
    index into it."""
    op = stage.origin_op
    axes = _fresh_axes([iv.extent for iv in data_leaves], [stage.name_of(iv) + ".c" for iv in data_leaves])
    values, guards = leaf_values(stage.relations, {old: new.var for old, new in zip(data_leaves, axes)})
    body = substitute_body(stage.body, {iv.var: values[iv] for iv in op.axis})
    cond = None
    for g, _ in guards:
        cond = g if cond is None else E.And(cond, g)
    if cond is not None:     # the tail of a split that does not divide: never read, never computed
        if isinstance(body, E.Reduce) and any(iv.data_dependent for iv in body.axes):
            raise ScheduleError("cache_write", stage.name, "a split that does not divide would run the "
                                "data-dependent reduction's bounds past the tensor they read",
                                "call cache_write before splitting, then split the cache stage")
        if isinstance(body, E.Reduce):
            both = cond if body.condition is None else E.And(cond, body.condition)
            body = E.Reduce(body.combiner, body.source, body.axes, both, body.init)
        else:
            body = E.Select(cond, body, E.Const(0, op.dtype))
    cache_op = ComputeOp(f"{stage.name}.{scope}", axes, body, op.dtype)
    index = leaf_indices(stage.relations, {iv: iv.var for iv in op.axis})
    return cache_op, tuple(index.get(iv, E.Const(0)) for iv in data_leaves)


def rfactor(schedule, tensor, axis, factor_axis=0):
    """Turn reduction loop ``axis`` into a data-parallel axis of a new stage.

    before:  C[i] = sum(A[i, k], k)       with k split into k.outer, k.inner
    after:   C.rf[k.inner, i] = sum(A[i, k.outer*f + k.inner], k.outer)   # k.inner: data-parallel
             C[i] = sum(C.rf[k.inner.v, i], k.inner.v)
    ``factor_axis`` places the new axis among the output axes (0: first, -1: last). A
    multi-value reduction (argmax) gives a multi-output rf stage, and a list of its tensors;
    ``init=`` stays with the final reduction (the partial ones start from the identity).
    """
    stage = _computed_stage(schedule, tensor, "rfactor")
    if not isinstance(stage.body, E.Reduce):
        stage._fail("rfactor", "the stage is not a reduction", "rfactor a te.sum/max/min stage")
    axis = stage._leaf("rfactor", axis)
    for iv in stage.reduce_axes:
        if iv.data_dependent:
            stage._fail("rfactor", f"reduce axis '{iv.name}' runs a data-dependent number of times ({iv.extent}); "
                        "an rf stage would need a buffer of that size", "reduce serially; parallelize or "
                        "vectorize a data-parallel loop instead")
    if axis.kind is not IterKind.REDUCE:
        stage._fail("rfactor", f"axis '{axis.name}' is data-parallel, not a reduction loop",
                    "pass a reduction axis (or one split from it)")
    ndim = len(stage.op.axis)
    if not isinstance(factor_axis, int) or not -ndim - 1 <= factor_axis <= ndim:
        stage._fail("rfactor", f"factor_axis={factor_axis!r} is not a position in 0..{ndim}",
                    "0 puts the new axis first, -1 last")
    factor_axis %= ndim + 1
    red = stage.body
    op = stage.origin_op
    red_leaves = [iv for iv in stage.leaf_iter_vars if iv.kind is IterKind.REDUCE]
    red_rels = [r for r in stage.relations if (r.parent if isinstance(r, Split) else r.outer).kind is IterKind.REDUCE]
    rf_axis = IterVar(E.Var(axis.name), Range(0, axis.extent))
    data_axes = _fresh_axes(op.shape, [iv.name for iv in op.axis])
    others = [IterVar(E.Var(iv.name), Range(0, iv.extent), IterKind.REDUCE) for iv in red_leaves if iv is not axis]
    leaf_vars = {axis: rf_axis.var}
    leaf_vars.update({old: new.var for old, new in zip([iv for iv in red_leaves if iv is not axis], others)})
    values, guards = leaf_values(red_rels, leaf_vars)
    mapping = {root.var: reduce_axis_value(root, values[root]) for root in red.axes}
    mapping.update({old.var: new.var for old, new in zip(op.axis, data_axes)})
    source = E.substitute(red.source, mapping)
    conds = [g for g, _ in guards] + ([E.substitute(red.condition, mapping)] if red.condition is not None else [])
    cond = None
    for c in conds:
        cond = c if cond is None else E.And(cond, c)
    if others:
        rf_body = E.Reduce(red.combiner, source, tuple(others), cond)
    elif cond is None:
        rf_body = source
    else:
        picked = tuple(E.Select(cond, v, i) for v, i in zip(E.values_of(source), E.values_of(red.identity())))
        rf_body = picked[0] if len(picked) == 1 else E.ValueTuple(picked)
    rf_axes = data_axes[:factor_axis] + (rf_axis,) + data_axes[factor_axis:]
    rf_op = ComputeOp(f"{stage.name}.rf", rf_axes, rf_body, op.dtype)

    k_rf = IterVar(E.Var(axis.name + ".v"), Range(0, axis.extent), IterKind.REDUCE)
    read_idx = [iv.var for iv in op.axis]
    read_idx.insert(factor_axis, k_rf.var)
    partials = tuple(E.TensorRead(rf, tuple(read_idx)) for rf in rf_op.outputs)
    # the partial results start from the identity; the user's init= starts the final reduction
    stage.body = E.Reduce(red.combiner, partials[0] if len(partials) == 1 else E.ValueTuple(partials), (k_rf,),
                          None, red.init)
    keep = set(op.axis)
    data_rels = []
    for r in stage.relations:
        if r not in red_rels:
            data_rels.append(r)
            keep |= {r.outer, r.inner} | ({r.parent} if isinstance(r, Split) else {r.fused})
    stage.relations = data_rels
    units = [iv for iv in stage.root_iter_vars if iv not in op.axis and iv.kind is not IterKind.REDUCE]
    keep |= set(units)
    stage.root_iter_vars = list(op.axis) + units + [k_rf]
    stage.leaf_iter_vars = [iv for iv in stage.leaf_iter_vars if iv.kind is not IterKind.REDUCE] + [k_rf]
    stage.all_iter_vars = [iv for iv in stage.all_iter_vars if iv in keep] + [k_rf]
    stage.iter_kinds = {iv: k for iv, k in stage.iter_kinds.items() if iv in keep}
    stage.bindings = {iv: t for iv, t in stage.bindings.items() if iv in keep}
    # TVM: s[C].op is now the reduction over the new axis (its output is still C)
    view = ComputeOp(op.name, op.axis, stage.body, op.dtype, op.tag, op.attrs)
    view._outputs = op.outputs
    stage._rewritten_op = view
    rf_stage = schedule._insert_stage(rf_op, schedule.stages.index(stage))
    # the reduction axes the user holds stay usable on the new stage (TVM keeps their variables)
    rf_stage._aliases = {axis: rf_axis, **dict(zip([iv for iv in red_leaves if iv is not axis], others))}
    schedule._record(stage, "rfactor", {"axis": stage.name_of(axis), "factor_axis": factor_axis})
    return rf_op.output(0) if rf_op.num_outputs == 1 else list(rf_op.outputs)
