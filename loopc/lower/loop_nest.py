"""Pass 1: schedule -> loop nests, with tail guards, reduction init/update and compute_at.

For a reduction stage whose first reduction loop sits at leaf position p:

    for <leaves[:p]>:                       # outer loops, shared
      for <data-parallel leaves after p>:   # init nest
        C[...] = identity
      for <leaves[p:]>:                     # update nest
        C[...] = combine(C[...], source)

Each tail guard (from a split that does not divide) wraps the body just inside the
innermost loop whose variable it reads.

A stage attached with ``compute_at(consumer, L)`` is emitted at the top of loop L's body,
over the region the rest of the consumer's iteration reads (bound inference, below), into a
buffer of that region's constant size; the consumer's reads are shifted into it.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Tuple

from ..arith import conjoin, from_linear, index_interval
from ..arith.extents import as_index_expr, is_symbolic
from ..errors import LoweringError
from ..ir.stmt import Allocate, Buffer, For, ForKind, IfThenElse, LoweredFunc, TensorStore, seq
from ..schedule.relations import leaf_values, propagate_extents
from ..schedule.stage import MAX_UNROLL_EXTENT, MAX_VECTOR_LANES, AttachKind
from ..te import expr as E
from ..te.tensor import IterKind, PlaceholderOp, Tensor
from .bounds import check_reads_in_bounds
from .sizes import plan_sizes, split_args


#: bound inference's interval of one index (now in loopc.arith; this name is kept for callers)
_index_interval = index_interval


@dataclass(frozen=True)
class Region:
    """The part of a stage's output computed at an attach point: per data axis an offset
    (an expression of the enclosing loops) and an extent: a constant, or the tensor's whole
    symbolic extent where bound inference cannot give a constant one."""
    offsets: Tuple[E.Expr, ...]
    extents: Tuple[int, ...]
    full: Tuple[bool, ...]


def make_nest(leaves, extents, kinds, bindings, body, guards, attach=None):
    """Loops over ``leaves`` (outer first) around ``body``; each guard sits inside the
    innermost loop it reads (guards reading none of them wrap the whole nest). ``attach``
    maps a leaf to [(buffer, stmt)] computed at the top of that loop's body."""
    attach = attach or {}
    position = {iv.var: n for n, iv in enumerate(leaves)}
    at = {}
    for g in guards:
        depth = max((position[v] for v in E.free_vars(g) if v in position), default=-1)
        at.setdefault(depth, []).append(g)
    for n in range(len(leaves) - 1, -1, -1):
        iv = leaves[n]
        if n in at:
            body = IfThenElse(conjoin(at[n]), body)
        for buf, nest in reversed(attach.get(iv, ())):
            body = Allocate(buf, seq(nest, body))
        kind = kinds.get(iv, ForKind.SERIAL)
        _check_extent(iv, kind, extents[iv])
        tag = bindings[iv].thread_tag if iv in bindings else ""
        body = For(iv.var, E.Const(0), as_index_expr(extents[iv]), kind, body, tag)
    if -1 in at:
        body = IfThenElse(conjoin(at[-1]), body)
    return body


def _check_extent(iv, kind, extent):
    """Caps that depend on extents known only after bound inference (see Stage.unroll/vectorize)."""
    if kind in (ForKind.VECTORIZED, ForKind.UNROLLED) and is_symbolic(extent):
        what = "vectorized" if kind is ForKind.VECTORIZED else "unrolled"
        raise LoweringError(f"{what} loop '{iv.name}' has the symbolic extent {extent} here; split it by a "
                            f"constant factor and {what[:-2]} the inner loop")
    if kind is ForKind.VECTORIZED and extent > MAX_VECTOR_LANES:
        raise LoweringError(f"vectorized loop '{iv.name}' has extent {extent} here, above the cap of "
                            f"{MAX_VECTOR_LANES} lanes; split it and vectorize the inner loop")
    if kind is ForKind.UNROLLED and extent > MAX_UNROLL_EXTENT:
        raise LoweringError(f"unrolled loop '{iv.name}' has extent {extent} here, above the cap of "
                            f"{MAX_UNROLL_EXTENT}; split it and unroll the inner loop")


def _reads_of(expr, op):
    return [n for n in E.walk(expr) if isinstance(n, E.TensorRead) and n.tensor.op is op]


def infer_region(op, reads, inner_ranges, unknown=frozenset()) -> Region:
    """Bound inference: the box of ``op``'s output that ``reads`` touch while the loops in
    ``inner_ranges`` (Var -> (lo, hi)) run and every other variable stays fixed. A dimension
    read through a loop in ``unknown`` (one of symbolic extent) is the whole dimension; so is
    one whose box is as large as the tensor."""
    offsets, extents, full = [], [], []
    for d, size in enumerate(op.shape):
        box = None
        for read in reads:
            if E.free_vars(read.indices[d]) & unknown:
                box = None
                break
            interval = index_interval(read.indices[d], inner_ranges)
            if interval is None:
                box = None  # a non-linear use of an inner loop: give up on this dimension
                break
            rest, lo, hi = interval
            sym = from_linear(rest, 0, read.indices[d].dtype)
            if box is None:
                box = [sym, lo, hi]
            elif E.expr_equal(box[0], sym):
                box[1], box[2] = min(box[1], lo), max(box[2], hi)
            else:
                box = None
                break
        if box is None or (not is_symbolic(size) and box[2] - box[1] + 1 >= size):
            offsets.append(E.Const(0))
            extents.append(size)
            full.append(True)
        else:
            sym, lo, hi = box
            offsets.append(sym + lo if lo else sym)
            extents.append(hi - lo + 1)
            full.append(False)
    return Region(tuple(offsets), tuple(extents), tuple(full))


class NestBuilder:
    """Builds the loop nest of every stage; remembers buffers for the flatten pass."""

    def __init__(self, schedule, buffer_map):
        self.schedule = schedule
        self.buffer_map = buffer_map
        self.inlined = {st.op: st for st in schedule.stages if st.attach is AttachKind.INLINE}
        self.attached = {}
        for st in schedule.stages:
            if st.attach is AttachKind.SCOPE:
                parent, leaf = st.attach_stage, st.attach_ivar
                if leaf not in parent.leaf_iter_vars:
                    raise LoweringError(
                        f"stage '{st.name}' is computed at loop '{leaf.name}' of '{parent.name}', which is no "
                        f"longer a loop of it (split or fused afterwards); call compute_at again with one of: "
                        f"{parent._leaf_names()}")
                if parent.iter_kinds.get(leaf) is ForKind.VECTORIZED:
                    raise LoweringError(f"stage '{st.name}' is computed inside vectorized loop '{leaf.name}' of "
                                        f"'{parent.name}'; attach it to an enclosing loop")
                readers = schedule.readers_of(st)
                if readers != [parent]:
                    now = ", ".join(r.name for r in readers) or "no stage"
                    raise LoweringError(
                        f"stage '{st.name}' is computed at loop '{leaf.name}' of '{parent.name}', but {now} "
                        f"read{'s' if len(readers) == 1 else ''} it now (a later cache_read, cache_write or rfactor "
                        f"moved the reads); call s[{st.name}].compute_at(...) again with a loop of "
                        f"{readers[0].name if len(readers) == 1 else 'its one reader'}, or compute_root() it")
                self.attached.setdefault(parent, {}).setdefault(leaf, []).append(st)

    def body_of(self, stage):
        """The stage's expression with inlined stages substituted."""
        def fn(n):
            if isinstance(n, E.TensorRead) and n.tensor.op in self.inlined:
                producer = self.inlined[n.tensor.op]
                return self.body_of_indices(producer, n.indices)
            return None
        return E.transform(stage.body, fn)

    def body_of_indices(self, stage, indices):
        return E.substitute(self.body_of(stage), {iv.var: i for iv, i in zip(stage.op.axis, indices)})

    def stage_nest(self, stage, region: Region | None = None, threads=None):
        """The nest of ``stage`` (over ``region`` when attached). ``threads`` maps the variables of
        enclosing loops bound to threadIdx.* to their ranges: a "shared" producer is computed
        for the whole thread block, so its region spans them."""
        threads = threads or {}
        op = stage.op
        leaves = stage.leaf_iter_vars
        root_ext = {iv: iv.extent for iv in stage.root_iter_vars}
        if region is not None:
            root_ext.update({iv: ext for iv, ext in zip(op.axis, region.extents)})
        extents = propagate_extents(stage.relations, root_ext)
        values, guard_pairs = leaf_values(stage.relations, {iv: iv.var for iv in leaves}, extents)
        guards = [(g, parent.kind is IterKind.REDUCE) for g, parent in guard_pairs]
        if region is None:
            store_idx = tuple(values[iv] for iv in op.axis)
            global_idx = store_idx
        else:
            store_idx = tuple(values[iv] for iv in op.axis)
            global_idx = tuple(off + v if not (isinstance(off, E.Const) and off.value == 0) else v
                               for off, v in zip(region.offsets, store_idx))
            for full, g, size in zip(region.full, global_idx, op.shape):
                if not full:  # never compute outside the tensor (its inputs may not exist there)
                    guards.append((E.LE(E.Const(0, g.dtype), g), False))
                    guards.append((E.LT(g, as_index_expr(size, g.dtype).astype(g.dtype)), False))
        root_map = {iv.var: g for iv, g in zip(op.axis, global_idx)}
        root_map.update({iv.var: values[iv] for iv in stage.reduce_axes})
        body = E.substitute(self.body_of(stage), root_map)

        attach = {}
        for leaf, producers in self.attached.get(stage, {}).items():
            pos = leaves.index(leaf)
            inner = {iv.var: (0, extents[iv] - 1) for iv in leaves[pos + 1:] if not is_symbolic(extents[iv])}
            unknown = frozenset(iv.var for iv in leaves[pos + 1:] if is_symbolic(extents[iv]))
            here = dict(threads)
            here.update({iv.var: (0, extents[iv] - 1) for iv in leaves[:pos + 1]
                         if iv in stage.bindings and stage.bindings[iv].thread_tag.startswith("threadIdx")
                         and not is_symbolic(extents[iv])})
            items = []
            for producer in producers:
                span = {**inner, **here} if producer.scope == "shared" else inner
                preg = infer_region(producer.op, _reads_of(body, producer.op), span, unknown)
                body = self._shift_reads(body, producer.op, preg)
                buf = Buffer(producer.name, preg.extents, producer.op.dtype, producer.scope)
                self.buffer_map[producer.op] = buf
                items.append((buf, self.stage_nest(producer, preg, here)))
            attach[leaf] = items

        tensor = op.output(0)
        kinds, bindings = stage.iter_kinds, stage.bindings
        if not isinstance(body, E.Reduce):
            store = TensorStore(tensor, store_idx, body)
            return make_nest(leaves, extents, kinds, bindings, store, [g for g, _ in guards], attach)

        red = body
        update = TensorStore(tensor, store_idx, red.combine(E.TensorRead(tensor, store_idx), red.source))
        if red.condition is not None:
            update = IfThenElse(red.condition, update)
        init = TensorStore(tensor, store_idx, red.identity())
        p = next(n for n, iv in enumerate(leaves) if iv.kind is IterKind.REDUCE)
        outer_vars = {iv.var for iv in leaves[:p]}
        outer = [g for g, _ in guards if E.free_vars(g) <= outer_vars]
        inner_guards = [(g, r) for g, r in guards if all(g is not o for o in outer)]
        init_leaves = [iv for iv in leaves[p:] if iv.kind is not IterKind.REDUCE]
        init_nest = make_nest(init_leaves, extents, kinds, bindings, init, [g for g, r in inner_guards if not r])
        update_nest = make_nest(leaves[p:], extents, kinds, bindings, update, [g for g, _ in inner_guards], attach)
        return make_nest(leaves[:p], extents, kinds, bindings, seq(init_nest, update_nest), outer, attach)

    @staticmethod
    def _shift_reads(body, op, region):
        """``P[i, j]`` -> ``P[i - off_i, j - off_j]``: reads into a region buffer."""
        if all(region.full):
            return body

        def fn(n):
            if isinstance(n, E.TensorRead) and n.tensor.op is op:
                idx = tuple(i if full else i - off for i, off, full in zip(n.indices, region.offsets, region.full))
                return E.TensorRead(n.tensor, idx)
            return None
        return E.transform(body, fn)


def _check_args(schedule, args):
    if not isinstance(args, (list, tuple)) or not args:
        raise LoweringError("args must be a non-empty list of tensors, e.g. [A, B, C]")
    for t in args:
        if not isinstance(t, (Tensor, E.Var)):
            raise LoweringError(f"args must be tensors (and te.var sizes); got {t!r} of type {type(t).__name__}")
    args = [t for t in args if isinstance(t, Tensor)]
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
        st = schedule._stage_of.get(t.op)
        if st is not None and st.attach is not AttachKind.ROOT:
            raise LoweringError(f"'{t.name}' is in args, so it must be computed in full: "
                                f"call s[{t.name}].compute_root() (it is {st.attach.value})")


def schedule_to_loops(schedule, args, name: str) -> LoweredFunc:
    """Pass 1: every root stage's loop nest, in producer-before-consumer order."""
    _check_args(schedule, args)
    args, scalars = split_args(args)
    deferred = check_reads_in_bounds(schedule.declared_ops)
    params = tuple(Buffer(t.name, t.shape, t.dtype) for t in args)
    sizes = plan_sizes(params, scalars, schedule.ops, name)
    if sizes is not None and deferred:
        sizes = dataclasses.replace(sizes, deferred_ops=deferred)
    buffer_map = {t.op: b for t, b in zip(args, params)}
    builder = NestBuilder(schedule, buffer_map)
    nests, allocs = [], []
    for st in schedule.stages:
        if st.attach is not AttachKind.ROOT:
            continue
        if st.op not in buffer_map:
            buf = Buffer(st.name, st.op.shape, st.op.dtype, st.scope)
            buffer_map[st.op] = buf
            allocs.append(buf)
        nests.append(builder.stage_nest(st))
    body = seq(*nests)
    for buf in reversed(allocs):
        body = Allocate(buf, body)
    return LoweredFunc(name, params, body, {"buffer_map": buffer_map}, sizes)
