"""Features of a candidate for the cost model, read from the schedule (no lowering needed).

For the stage doing most of the work (the "main" stage: a reduction, the largest loop nest)
the loop nest is rebuilt from the schedule's data: its leaf loops (after the loops of the
consumer it is computed at), with extents narrowed to the region compute_at gives it. Then:

- work: total iterations, waste from split tails;
- vector: lanes of the innermost vectorized loop, whether it is innermost, how its accesses
  move (contiguous / broadcast / gather);
- unroll: the straight-line block (the innermost unrolled/vectorized loops): its size, the
  bytes of the output it keeps live (registers) and of everything it touches;
- memory: the working set of each loop level (interval footprints of every access), and for
  each cache size (L1, L2, L3) the traffic ``executions x working set`` of the outermost level
  that fits;
- parallel: extent and position of the outermost parallel loop, balance over the cores;
- other stages (packing, copies): their iterations, whether vectorized / parallel.

Plus "knob features": log2 of split sizes, reorder positions, annotations, knob values.
"""
from __future__ import annotations

import math
import os

import numpy as np

from ..ir.stmt import ForKind
from ..schedule.relations import Fuse, Split, propagate_extents
from ..schedule.stage import AttachKind
from ..te import expr as E
from ..te.tensor import IterKind

#: cache sizes (bytes) whose traffic is estimated: L1d, L2 (per core), L3 (shared)
CACHE_SIZES = (32 * 1024, 512 * 1024, 16 * 1024 * 1024)
BIG = 1 << 40


def _log2(x):
    return math.log2(max(float(x), 1.0))


def span(expr, spans, cap=BIG):
    """How many distinct values ``expr`` takes when each Var v ranges over ``spans[v]`` values."""
    if isinstance(expr, E.Var):
        return spans.get(expr, 1)
    if isinstance(expr, E.Const):
        return 1
    if isinstance(expr, (E.Add, E.Sub)):
        return min(cap, span(expr.a, spans) + span(expr.b, spans) - 1)
    if isinstance(expr, E.Mul):
        if isinstance(expr.b, E.Const):
            return min(cap, (span(expr.a, spans) - 1) * abs(int(expr.b.value)) + 1)
        if isinstance(expr.a, E.Const):
            return min(cap, (span(expr.b, spans) - 1) * abs(int(expr.a.value)) + 1)
        return min(cap, span(expr.a, spans) * span(expr.b, spans))
    if isinstance(expr, E.FloorDiv) and isinstance(expr.b, E.Const) and int(expr.b.value) > 0:
        return (span(expr.a, spans) - 1) // int(expr.b.value) + 1
    if isinstance(expr, E.FloorMod) and isinstance(expr.b, E.Const) and int(expr.b.value) > 0:
        return min(int(expr.b.value), span(expr.a, spans))
    if isinstance(expr, (E.Min, E.Max)):
        return max(span(expr.a, spans), span(expr.b, spans))
    if isinstance(expr, E.Select):
        return max(span(expr.t, spans), span(expr.f, spans))
    if isinstance(expr, E.Cast):
        return span(expr.value, spans)
    kids = E.children(expr)
    if not kids:
        return 1
    return min(cap, math.prod(span(k, spans) for k in kids))


class _Loop:
    __slots__ = ("iv", "extent", "kind", "reduce")

    def __init__(self, iv, extent, kind, reduce):
        self.iv, self.extent, self.kind, self.reduce = iv, extent, kind, reduce


def _nbytes(dtype):
    return {"float64": 8, "int64": 8, "bool": 1}.get(dtype, 4)


class StageNest:
    """One stage's loops, outer to inner, including the loops of the stage it is attached to."""

    def __init__(self, schedule, stage, infos):
        self.stage = stage
        self.parent = None
        self.read_in_parent = None
        root_ext = {iv: iv.extent for iv in stage.root_iter_vars}
        outer = []
        if stage.attach is AttachKind.SCOPE and stage.attach_stage is not None:
            parent = infos.get(stage.attach_stage) or StageNest(schedule, stage.attach_stage, infos)
            infos[stage.attach_stage] = parent
            self.parent = parent
            pos = next((k for k, l in enumerate(parent.loops) if l.iv is stage.attach_ivar), len(parent.loops) - 1)
            self.attach_pos = pos
            outer = parent.loops[:pos + 1]
            self.read_in_parent = next((n for n in E.walk(stage.attach_stage.body)
                                        if isinstance(n, E.TensorRead) and n.tensor.op is stage.origin_op), None)
            if self.read_in_parent is not None:
                pspans = parent.root_spans(set(range(pos + 1, len(parent.loops))))
                for d, iv in enumerate(stage.op.axis):
                    if iv in root_ext:
                        root_ext[iv] = min(iv.extent, span(self.read_in_parent.indices[d], pspans))
        self.n_outer = len(outer)
        self.ext = propagate_extents(stage.relations, root_ext)
        own = [_Loop(iv, self.ext[iv], stage.iter_kinds.get(iv, ForKind.SERIAL), iv.kind is IterKind.REDUCE)
               for iv in stage.leaf_iter_vars]
        self.loops = outer + own
        self.root_ext = root_ext

    def root_spans(self, inside):
        """``{root Var: span}`` when the loops at positions ``inside`` run and the others are fixed."""
        st = self.stage
        outer_inside = {i for i in inside if i < self.n_outer}
        if outer_inside and self.parent is not None and self.read_in_parent is not None:
            pinside = outer_inside | set(range(self.attach_pos + 1, len(self.parent.loops)))
            pspans = self.parent.root_spans(pinside)
            out = {}
            for d, iv in enumerate(st.op.axis):
                if iv in self.root_ext:
                    out[iv.var] = min(iv.extent, span(self.read_in_parent.indices[d], pspans))
            for iv in st.root_iter_vars:
                out.setdefault(iv.var, self.root_ext[iv])
            return out
        sp = {}
        for k, l in enumerate(self.loops[self.n_outer:]):
            sp[l.iv] = l.extent if (k + self.n_outer) in inside else 1
        for rel in reversed(st.relations):
            if isinstance(rel, Split):
                so, si = sp.get(rel.outer, 1), sp.get(rel.inner, 1)
                sp[rel.parent] = min(self.ext[rel.parent], (so - 1) * rel.factor + si)
            elif isinstance(rel, Fuse):
                sf = sp.get(rel.fused, 1)
                ei = self.ext[rel.inner]
                sp[rel.inner] = min(ei, sf) if sf < self.ext[rel.fused] else ei
                sp[rel.outer] = -(-sf // ei) if sf < self.ext[rel.fused] else self.ext[rel.outer]
        return {iv.var: sp.get(iv, 1) for iv in st.root_iter_vars}

    def accesses(self):
        """``[(tensor, indices, is_write)]`` of the stage body, plus its own output."""
        out = []
        for n in E.walk(self.stage.body):
            if isinstance(n, E.TensorRead):
                out.append((n.tensor, n.indices, False))
        op = self.stage.op
        out.append((op.output(0), tuple(iv.var for iv in op.axis), True))
        return out

    def footprint(self, inside, only_write=False):
        spans = self.root_spans(inside)
        total = 0
        for tensor, idx, is_write in self.accesses():
            if only_write and not is_write:
                continue
            elems = 1
            for d, e in enumerate(idx):
                elems *= min(tensor.shape[d], span(e, spans))
            total += elems * _nbytes(tensor.dtype)
        return total


def _main_stage(schedule):
    stages = [st for st in schedule.stages if st.attach is not AttachKind.INLINE]

    def work(st):
        return (bool(st.reduce_axes), math.prod(iv.extent for iv in st.root_iter_vars))
    return max(stages, key=work), stages


N_SCHEDULE_FEATURES = 33


def schedule_features(schedule) -> np.ndarray:
    """A fixed-length feature vector of a schedule (see the module docstring)."""
    main, stages = _main_stage(schedule)
    infos = {}
    nest = StageNest(schedule, main, infos)
    loops = nest.loops
    L = len(loops)
    exts = [l.extent for l in loops]
    total = math.prod(exts)
    ideal = math.prod(iv.extent for iv in main.op.axis) * math.prod(iv.extent for iv in main.reduce_axes)
    f = [_log2(total), _log2(total / max(ideal, 1)), float(L)]

    # vectorization
    vec = [k for k, l in enumerate(loops) if l.kind is ForKind.VECTORIZED]
    if vec:
        v = vec[-1]
        lanes = exts[v]
        spans = nest.root_spans({v})
        contig = bcast = gather = 0
        for tensor, idx, _w in nest.accesses():
            sp = [min(tensor.shape[d], span(e, spans)) for d, e in enumerate(idx)]
            if all(s == 1 for s in sp):
                bcast += 1
            elif sp[-1] == min(lanes, tensor.shape[-1]) and all(s == 1 for s in sp[:-1]):
                contig += 1
            else:
                gather += 1
        f += [_log2(lanes), float(v == L - 1), float(contig), float(bcast), float(gather)]
    else:
        f += [0.0, 0.0, 0.0, 0.0, 0.0]

    # straight-line block: innermost unrolled / vectorized loops
    k = L
    while k > 0 and loops[k - 1].kind in (ForKind.UNROLLED, ForKind.VECTORIZED):
        k -= 1
    block = set(range(k, L))
    unrolled = math.prod(exts[i] for i in block if loops[i].kind is ForKind.UNROLLED)
    around_is_reduce = float(k > 0 and loops[k - 1].reduce)
    f += [_log2(unrolled), _log2(nest.footprint(block, only_write=True)), _log2(nest.footprint(block)),
          around_is_reduce, _log2(exts[k - 1]) if k > 0 else 0.0]
    # innermost unrolled reduction steps inside the block
    f += [_log2(math.prod(exts[i] for i in block if loops[i].reduce))]

    # working set per loop level and traffic per cache level
    ws = [nest.footprint(set(range(c, L))) for c in range(L + 1)]       # ws[c]: loops c.. inside
    execs = [math.prod(exts[:c]) for c in range(L + 1)]
    for size in CACHE_SIZES:
        c = next((c for c in range(L + 1) if ws[c] <= size), L)
        traffic = execs[c] * ws[c]
        f += [_log2(traffic), _log2(total / max(execs[c], 1)), _log2(ws[c])]
    f += [_log2(ws[0])]

    # parallelism
    par = [k for k, l in enumerate(loops) if l.kind is ForKind.PARALLEL]
    ncpu = os.cpu_count() or 1
    if par:
        p = par[0]
        pe = exts[p]
        balance = pe / (math.ceil(pe / ncpu) * ncpu)
        f += [1.0, _log2(pe), float(p), balance, _log2(total / max(execs[p + 1], 1))]
    else:
        f += [0.0, 0.0, 0.0, 0.0, 0.0]

    # the other stages
    others = [st for st in stages if st is not main and st.attach is not AttachKind.INLINE]
    other_iters = 0
    other_vec = other_par = 0.0
    for st in others:
        sn = StageNest(schedule, st, infos)
        n = math.prod(l.extent for l in sn.loops)
        other_iters += n
        if any(l.kind is ForKind.VECTORIZED for l in sn.loops[sn.n_outer:]):
            other_vec += 1
        if any(l.kind is ForKind.PARALLEL for l in sn.loops):
            other_par += 1
    f += [float(len(others)), _log2(other_iters), other_vec, other_par]
    assert len(f) == N_SCHEDULE_FEATURES, len(f)
    return np.asarray(f, dtype=np.float64)


def knob_features(space, config) -> np.ndarray:
    """Numbers describing the knob values of ``config`` (fixed length for a space)."""
    f = []
    for name, knob in space.space_map.items():
        e = config[name]
        if knob.kind == "sp":
            f += [_log2(s) for s in e.size]
        elif knob.kind == "re":
            pos = [0] * len(e.perm)
            for p, a in enumerate(e.perm):
                pos[a] = p
            f += [float(p) for p in pos]
        elif knob.kind == "an":
            for a in e.anns:
                f += [float(a == "unroll"), float(a == "vec")]
        else:
            v = e.val
            idx = knob.index_of(e)
            f.append(float(idx if idx is not None else -1))
            if isinstance(v, (bool, int, float)) and not isinstance(v, bool):
                f.append(float(v))
            elif isinstance(v, bool):
                f.append(float(v))
            else:
                f.append(0.0)
    return np.asarray(f, dtype=np.float64)


def config_features(task, config):
    """Knob features + schedule features of one config; None when the template raises for it."""
    kf = knob_features(task.config_space, config)
    try:
        s, _tensors = task.instantiate(config)
        sf = schedule_features(s)
    except Exception:  # noqa: BLE001 - an illegal config: no features, the model skips it
        return None
    return np.concatenate([kf, sf])
