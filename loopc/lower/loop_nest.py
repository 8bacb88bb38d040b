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
from ..ir.stmt import Allocate, Buffer, For, ForKind, IfThenElse, LoweredFunc, seq
from ..schedule.relations import leaf_values, propagate_extents, reduce_axis_value
from ..schedule.stage import MAX_UNROLL_EXTENT, MAX_VECTOR_LANES, AttachKind
from ..te import expr as E
from ..te.tensor import IterKind, PlaceholderOp, Tensor, reads_data
from ..te.extern import ExternOp
from ..te.scan import ScanOp, is_scan_state
from .bounds import check_reads_in_bounds
from .extern import extern_stmt
from .scan import check_scans, scan_nest, scan_step_ranges
from .stores import reduce_init, reduce_update, value_stores
from .cross_thread import bound_reduce_leaf, cross_thread_nest
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
    maps a leaf to [(buffers, stmt)] computed at the top of that loop's body (one buffer per
    output of the attached stage)."""
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
        for bufs, nest in reversed(attach.get(iv, ())):
            body = seq(nest, body)
            for buf in reversed(bufs):
                body = Allocate(buf, body)
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
        self.inlined = {st.origin_op: st for st in schedule.stages if st.attach is AttachKind.INLINE}
        self.attached = {}
        self.cross_thread_buffers = []   # shared buffers of cross-thread reductions (race-free by construction)
        self._regions = {}   # op -> Region of the stages computed at the loop being built (siblings read them)
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
                self.attached.setdefault(parent, {}).setdefault(leaf, []).append(st)
        for parent, at_leaf in self.attached.items():
            for leaf, siblings in at_leaf.items():
                for st in siblings:
                    self._check_readers(st, parent, leaf, siblings)

    def _check_readers(self, st, parent, leaf, siblings):
        """Only ``parent`` (or stages computed at the same loop, a create_group) may read ``st``."""
        schedule = self.schedule
        readers = [r for r in schedule.readers_of(st) if r not in siblings]
        if parent not in readers and any(r in siblings for r in schedule.readers_of(st)):
            readers.append(parent)   # read by a sibling computed before the parent's body
        if readers != [parent] and schedule.reads_through(parent, st):
            between = [r.name for r in readers if r is not parent]
            raise LoweringError(
                f"stage '{st.name}' is computed at loop '{leaf.name}' of '{parent.name}', but {', '.join(between)} "
                f"read{'s' if len(between) == 1 else ''} it now, and '{parent.name}' only through them; call "
                f"s[{between[0]}].compute_inline() so that the reads move into '{parent.name}' (the order of "
                f"compute_at and compute_inline does not matter), or compute_at '{st.name}' a loop of {between[0]}")
        if readers != [parent]:
            now = ", ".join(r.name for r in readers) or "no stage"
            raise LoweringError(
                f"stage '{st.name}' is computed at loop '{leaf.name}' of '{parent.name}', but {now} "
                f"read{'s' if len(readers) == 1 else ''} it now (a later cache_read, cache_write or rfactor "
                f"moved the reads); call s[{st.name}].compute_at(...) again with a loop of "
                f"{readers[0].name if len(readers) == 1 else 'its one reader'}, or compute_root() it")

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
        op = stage.origin_op
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
        if any(iv.data_dependent for iv in stage.reduce_axes):
            extents, guards = _data_dependent_bounds(stage, leaves, extents, guards, root_map)
        root_map.update({iv.var: reduce_axis_value(iv, values[iv]) for iv in stage.reduce_axes})
        body = E.substitute(self.body_of(stage), root_map)
        for producer_op, region in self._regions.items():   # siblings computed at the same loop
            body = self._shift_reads(body, producer_op, region)

        attach = {}
        for leaf, producers in self.attached.get(stage, {}).items():
            pos = leaves.index(leaf)
            inner = {iv.var: (0, extents[iv] - 1) for iv in leaves[pos + 1:] if not is_symbolic(extents[iv])}
            unknown = frozenset(iv.var for iv in leaves[pos + 1:] if is_symbolic(extents[iv]))
            here = dict(threads)
            here.update({iv.var: (0, extents[iv] - 1) for iv in leaves[:pos + 1]
                         if iv in stage.bindings and stage.bindings[iv].thread_tag.startswith("threadIdx")
                         and not is_symbolic(extents[iv])})
            body, attach[leaf] = self._place_producers(producers, body, inner, here, unknown)

        tensors = op.outputs
        kinds, bindings = stage.iter_kinds, stage.bindings
        predicate = self._store_predicate(stage, values, root_map)
        if not isinstance(body, E.Reduce):
            store = _only_where(predicate, value_stores(tensors, store_idx, body))
            return make_nest(leaves, extents, kinds, bindings, store, [g for g, _ in guards], attach)

        red = body
        if bound_reduce_leaf(stage) is not None:
            if len(tensors) > 1 or red.init is not None:
                raise LoweringError(f"stage '{stage.name}': a reduction bound to GPU threads (a cross-thread "
                                    "reduction) takes one value and no init=; reduce serially, or rfactor first")
            nest, buffers = cross_thread_nest(stage, leaves, extents, make_nest, red, (tensors[0], store_idx), guards,
                                              attach, predicate, self.buffer_map)
            self.cross_thread_buffers.extend(buffers)
            return nest
        update = _only_where(predicate, reduce_update(red, tensors, store_idx))
        init = _only_where(predicate, reduce_init(red, tensors, store_idx))
        p = next(n for n, iv in enumerate(leaves) if iv.kind is IterKind.REDUCE)
        if red.init is not None:
            _check_init_reads_computed(stage, red.init, leaves[p:], attach, self.buffer_map)
        outer_vars = {iv.var for iv in leaves[:p]}
        outer = [g for g, _ in guards if E.free_vars(g) <= outer_vars]
        inner_guards = [(g, r) for g, r in guards if all(g is not o for o in outer)]
        init_leaves = [iv for iv in leaves[p:] if iv.kind is not IterKind.REDUCE]
        init_nest = make_nest(init_leaves, extents, kinds, bindings, init, [g for g, r in inner_guards if not r])
        update_nest = make_nest(leaves[p:], extents, kinds, bindings, update, [g for g, _ in inner_guards], attach)
        return make_nest(leaves[:p], extents, kinds, bindings, seq(init_nest, update_nest), outer, attach)

    def _place_producers(self, producers, body, inner, here, unknown=frozenset()):
        """The stages computed at one loop, producers first: each over the region that the
        consumer's ``body`` and the siblings computed after it read (bound inference, the
        siblings' regions first). Returns (body with reads shifted into the regions, [(buffer, nest)])."""
        order = sorted(producers, key=self.schedule.stages.index)
        regions = {}
        for producer in reversed(order):
            op = producer.origin_op
            reads = _reads_of(body, op)
            ranges = dict({**inner, **here} if producer.scope == "shared" else inner)
            through = set(unknown)
            for sibling, region in regions.items():
                more, rng, unk = self._sibling_reads(sibling, region, op)
                reads += more
                ranges.update(rng)
                through |= unk
            regions[producer] = infer_region(op, reads, ranges, frozenset(through))
        for producer in order:
            body = self._shift_reads(body, producer.origin_op, regions[producer])
        saved = self._regions      # inside the siblings' nests, their reads of each other shift too
        self._regions = {**saved, **{p.origin_op: regions[p] for p in order}}
        items = []
        try:
            for producer in order:
                region = regions[producer]
                outputs = producer.origin_op.outputs
                bufs = tuple(Buffer(buffer_name(producer, t), region.extents, t.dtype, producer.scope) for t in outputs)
                self.buffer_map.update(zip(outputs, bufs))
                items.append((bufs, self.stage_nest(producer, region, here)))
        finally:
            self._regions = saved
        return body, items

    def _sibling_reads(self, sibling, region, op):
        """The reads of ``op`` in ``sibling``'s body while it computes ``region``, the ranges of
        the variables they use, and those of them whose range is symbolic (bound inference
        then takes the whole dimension they index)."""
        fresh = [E.Var(f"{iv.name}.r") for iv in sibling.origin_op.axis]
        mapping = {iv.var: (v if full else off + v)
                   for iv, off, v, full in zip(sibling.origin_op.axis, region.offsets, fresh, region.full)}
        spans = [(v, 0, ext) for v, ext in zip(fresh, region.extents)]
        spans += [(iv.var, iv.dom.min, iv.extent) for iv in sibling.reduce_axes]
        ranges = {v: (lo, lo + ext - 1) for v, lo, ext in spans if not (is_symbolic(lo) or is_symbolic(ext))}
        unknown = frozenset(v for v, _, _ in spans if v not in ranges)
        return _reads_of(E.substitute(self.body_of(sibling), mapping), op), ranges, unknown

    @staticmethod
    def _store_predicate(stage, values, root_map):
        """``set_store_predicate``'s condition in the nest's variables: thread axes become the
        loops bound to them, split or fused axes their values, root axes their global index."""
        pred = stage.store_predicate
        if pred is None:
            return None
        mapping = {t.var: leaf.var for leaf, t in stage.bindings.items()}
        mapping.update({iv.var: values[iv] for iv in stage.all_iter_vars
                        if iv in values and iv not in stage.leaf_iter_vars})
        mapping.update(root_map)
        pred = E.substitute(pred, mapping)
        known = {iv.var for iv in stage.leaf_iter_vars}
        stray = [v.name for v in E.free_vars(pred) if v not in known]
        if stray:
            raise LoweringError(f"the store predicate of stage '{stage.name}' uses {', '.join(stray)}, which is "
                                "no loop of the stage (a thread axis no longer bound?); bind it again or "
                                "set_store_predicate over the current loops")
        return pred

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


def _data_dependent_bounds(stage, leaves, extents, guards, axis_values):
    """A data-dependent reduce axis's bounds read the op's axes (``W_indptr[j + 1] - W_indptr[j]``):
    in its loops' extents and tail guards those become the loops' values, and every loop they
    read must enclose the axis's loops (the extent is evaluated once per iteration of those)."""
    extents = dict(extents)
    for iv, ext in extents.items():
        if reads_data(ext):
            extents[iv] = E.substitute(ext, axis_values)
    guards = [(E.substitute(g, axis_values) if reads_data(g) else g, r) for g, r in guards]
    position = {iv.var: n for n, iv in enumerate(leaves)}
    for n, iv in enumerate(leaves):
        if not reads_data(extents[iv]):
            continue
        lanes = [leaves[position[v]].name for v in E.free_vars(extents[iv])
                 if v in position and stage.iter_kinds.get(leaves[position[v]]) is ForKind.VECTORIZED]
        if lanes:
            raise LoweringError(f"stage '{stage.name}': loop '{iv.name}' runs {extents[iv]} times, which reads "
                                f"vectorized loop {lanes[0]}: each lane would run a different count; vectorize "
                                "a loop the data-dependent bounds do not read")
        inner = [leaves[position[v]].name for v in E.free_vars(extents[iv]) if position.get(v, -1) > n]
        if inner:
            raise LoweringError(f"stage '{stage.name}': loop '{iv.name}' runs a data-dependent number of times "
                                f"({extents[iv]}), which reads loop {', '.join(sorted(inner))} inside it; reorder "
                                f"so that {', '.join(sorted(inner))} encloses '{iv.name}'")
    return extents, guards


def buffer_name(stage, tensor) -> str:
    """The stage's unique name, with ``.v<j>`` for output j of a multi-output stage."""
    return stage.name if stage.op.num_outputs == 1 else f"{stage.name}.v{tensor.value_index}"


def _check_init_reads_computed(stage, init, inner_leaves, attach, buffer_map):
    """A reduction's ``init`` runs before its reduction loops: a stage it reads cannot be
    computed inside them."""
    read = {buffer_map.get(n.tensor) for n in E.walk(init) if isinstance(n, E.TensorRead)}
    for leaf in inner_leaves:
        for bufs, _ in attach.get(leaf, ()):
            hit = [b.name for b in bufs if b in read]
            if hit:
                raise LoweringError(f"'{hit[0]}' is computed inside loop '{leaf.name}' of '{stage.name}', but the "
                                    f"reduction's init= reads it before that loop runs; compute_at it at a loop "
                                    f"outside the reduction loops of '{stage.name}'")


def _only_where(predicate, stmt):
    return stmt if predicate is None else IfThenElse(predicate, stmt)


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
    check_scans(schedule, in_args)
    for op in schedule.ops:
        if isinstance(op, PlaceholderOp) and op not in in_args and not is_scan_state(op):
            raise LoweringError(f"placeholder '{op.name}' is read by the computation but is not in args; "
                                "add it to the argument list")
    for t in schedule.outputs:
        if all(a is not t for a in args):
            also = ("" if t.op.num_outputs == 1 else
                    f" (every output of the multi-output op '{t.op.name}' has its own buffer)")
            raise LoweringError(f"output '{t.name}' is not in args; add it so the caller receives the result{also}")
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
    ranges = scan_step_ranges(schedule.declared_ops)
    deferred = check_reads_in_bounds(schedule.declared_ops, ranges)
    params = tuple(Buffer(t.name, t.shape, t.dtype) for t in args)
    sizes = plan_sizes(params, scalars, schedule.ops, name)
    if sizes is not None and deferred:
        sizes = dataclasses.replace(sizes, deferred_ops=deferred, deferred_ranges=ranges)
    buffer_map = {t: b for t, b in zip(args, params)}      # a Tensor -> its buffer
    builder = NestBuilder(schedule, buffer_map)
    nests, allocs, scans = [], [], {}
    for st in schedule.stages:
        if st.attach is not AttachKind.ROOT:
            continue
        for t in st.origin_op.outputs:
            if t not in buffer_map:
                buf = Buffer(buffer_name(st, t), st.origin_op.shape, t.dtype, st.scope)
                buffer_map[t] = buf
                allocs.append(buf)
        if isinstance(st.op, ScanOp):
            nests.append(scan_nest(builder, st, scans))
        elif isinstance(st.op, ExternOp):
            nests.append(extern_stmt(schedule, st, buffer_map))
        else:
            nests.append(builder.stage_nest(st))
    body = seq(*nests)
    for buf in reversed(allocs):
        body = Allocate(buf, body)
    return LoweredFunc(name, params, body, {"buffer_map": buffer_map, "scans": scans,
                                            "cross_thread_buffers": tuple(builder.cross_thread_buffers)}, sizes)
