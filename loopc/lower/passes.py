"""Lowering passes after the loop nests exist. Each is a function LoweredFunc -> LoweredFunc.

The arithmetic they rely on (linear forms, bounds, proofs, expression simplification) is
``loopc.arith``; its names stay importable from here.
"""
from __future__ import annotations

import dataclasses

from ..arith import (bound_of, canonical_linear, conjoin, conjuncts, from_linear, linear_form, merge_divmod, prove,
                     prune_conjuncts, simplify_expr)
from ..errors import LoweringError
from ..ir.stmt import Allocate, For, ForKind, IfThenElse, LoweredFunc, SeqStmt, Store, TensorStore, seq, walk_stmt
from ..ir.visitor import StmtMutator, StmtVisitor, map_stmt
from ..te import expr as E

INT32_MAX = 2**31 - 1

#: an unrolled function body may hold at most this many statements.
MAX_UNROLLED_STMTS = 20000


def _with_body(func: LoweredFunc, body) -> LoweredFunc:
    return func if body is func.body else dataclasses.replace(func, body=body)


# --------------------------------------------------------------------------- flatten


def flatten_buffers(func: LoweredFunc) -> LoweredFunc:
    """``T[i, j]`` -> ``T[i*stride0 + j]`` on the tensor's row-major Buffer."""
    bmap = func.attrs["buffer_map"]     # Tensor -> Buffer

    def flat_index(buf, indices):
        idx = E.Const(0)          # a rank-0 tensor (a scalar) is element 0 of its buffer
        # int32 index math would wrap: compute in int64 (a symbolic buffer keeps its sizes'
        # dtype; the runtime rejects an int32-sized call whose buffer would wrap)
        wide = not buf.symbolic and buf.size > INT32_MAX
        for n, (i, stride) in enumerate(zip(indices, buf.strides)):
            if wide:
                i, stride = i.astype("int64"), E.Const(stride, "int64")
            elif not isinstance(stride, int) and stride.dtype != i.dtype:
                i, stride = E._unify(i, stride)
            term = i * stride if not (isinstance(stride, int) and stride == 1) else i
            idx = term if n == 0 else idx + term
        return idx

    def fexpr(e):
        return E.transform(e, lambda n: E.Load(bmap[n.tensor], flat_index(bmap[n.tensor], n.indices))
                           if isinstance(n, E.TensorRead) else None)

    def fstmt(s):
        if isinstance(s, TensorStore):
            buf = bmap[s.tensor]
            return Store(buf, flat_index(buf, s.indices), s.value)
        return None

    return _with_body(func, map_stmt(func.body, fstmt, fexpr))


# --------------------------------------------------------------------------- vector lanes


def privatize_lane_buffers(func: LoweredFunc) -> LoweredFunc:
    """Give each lane of a vectorized loop its own copy of the buffers allocated inside it.

    A buffer allocated in a loop body belongs to one iteration; run as vector lanes, the
    iterations would share it (a stage computed at a loop nested in a vectorized loop). Each
    such buffer gets the lane as a new innermost axis, so lane ``k`` reads and writes its own
    elements (and contiguous lanes make vector accesses of them).

    before:  for i in vectorized(8):            after:  for i in vectorized(8):
               for j in range(8):                         for j in range(8):
                 B = allocate(float32[1])                   B = allocate(float32[1, 8])
                 B[0] = A[i*8 + j]*2                        B[0*8 + i] = A[i*8 + j]*2
                 C[i*8 + j] = B[0] + 1                      C[i*8 + j] = B[0*8 + i] + 1

    A vectorized loop inside another runs as a serial loop (one vector dimension at a time):
    it becomes ``serial`` here, so the IR says what the code does.
    """
    return _with_body(func, _PrivatizeLanes().visit(func.body))


class _PrivatizeLanes(StmtMutator):
    def visit_For(self, s):   # top-down: the outermost vectorized loop decides for its whole body
        return _privatize(s) if s.kind is ForKind.VECTORIZED else super().visit_For(s)


def _privatize(loop: For) -> For:
    inner = [s for s in walk_stmt(loop.body)
             if isinstance(s, Allocate) or (isinstance(s, For) and s.kind is ForKind.VECTORIZED)]
    if not inner:
        return loop
    lanes = loop.extent.value if isinstance(loop.extent, E.Const) else None
    if lanes is None:
        return loop
    lane = loop.var if isinstance(loop.min, E.Const) and loop.min.value == 0 else loop.var - loop.min
    private = {s.buffer: dataclasses.replace(s.buffer, shape=tuple(s.buffer.shape) + (lanes,))
               for s in inner if isinstance(s, Allocate)}

    def index(i):
        return i * lanes + lane

    def fexpr(e):
        return E.transform(e, lambda n: E.Load(private[n.buffer], index(n.index))
                           if isinstance(n, E.Load) and n.buffer in private else None)

    def fstmt(s):
        if isinstance(s, Store) and s.buffer in private:
            return Store(private[s.buffer], index(s.index), s.value)
        if isinstance(s, Allocate) and s.buffer in private:
            return Allocate(private[s.buffer], s.body)
        if isinstance(s, For) and s.kind is ForKind.VECTORIZED:
            return For(s.var, s.min, s.extent, ForKind.SERIAL, s.body, s.thread_tag)
        return None

    return For(loop.var, loop.min, loop.extent, loop.kind, map_stmt(loop.body, fstmt, fexpr), loop.thread_tag)


# --------------------------------------------------------------------------- unroll


def unroll_loops(func: LoweredFunc) -> LoweredFunc:
    """``for i in unrolled(3): body(i)`` -> ``body(0); body(1); body(2)``."""
    def fstmt(s):
        if isinstance(s, For) and s.kind is ForKind.UNROLLED:
            if not (isinstance(s.min, E.Const) and isinstance(s.extent, E.Const)):
                raise LoweringError(f"unrolled loop {s.var.name} needs a constant extent")
            copies = [substitute_stmt(s.body, {s.var: E.Const(s.min.value + k, s.var.dtype)})
                      for k in range(s.extent.value)]
            return seq(*copies)
        return None

    body = map_stmt(func.body, fstmt)
    count = sum(1 for _ in walk_stmt(body))
    if count > MAX_UNROLLED_STMTS:
        raise LoweringError(f"unrolling produced {count} statements (cap {MAX_UNROLLED_STMTS}); "
                            "unroll fewer or smaller loops")
    return _with_body(func, body)


def substitute_stmt(s, mapping):
    return map_stmt(s, None, lambda e: E.substitute(e, mapping))


# --------------------------------------------------------------------------- partition


class _GuardConjuncts(StmtVisitor):
    """(condition, ranges of the loops between) for every IfThenElse conjunct it visits."""

    def __init__(self):
        super().__init__()
        self.found = []

    def visit_IfThenElse(self, s):
        ranges = dict(self.ranges)
        self.found += [(c, ranges) for c in conjuncts(s.cond)]
        return super().visit_IfThenElse(s)


def _split_point(loop, cond, inner_ranges, size_vars=frozenset()):
    """The first value of ``loop.var`` from which ``cond`` (``a < b`` or ``a <= b``) may fail,
    if the guard is ``coef*v + rest < 0`` with coef > 0 and ``rest`` bounded by inner loops: an
    int; or, when ``rest`` also holds terms of the symbolic sizes ``size_vars``, an expression
    (``(N - 15 + 15) // 16`` for ``j.outer*16 + j.inner < N`` with ``j.inner`` in 0..15). None
    when the guard has no such form."""
    if not isinstance(cond, (E.LT, E.LE)) or not E.is_int(cond.a.dtype):
        return None
    terms, const = linear_form(E.Sub(cond.a, cond.b))
    coef = terms.pop(loop.var, 0)
    if coef <= 0:
        return None
    rest_hi, sym = const, {}
    for t, c in terms.items():
        if t in inner_ranges:
            lo, hi = inner_ranges[t]
            rest_hi += max(c * lo, c * hi)
        elif E.free_vars(t) and E.free_vars(t) <= size_vars:
            sym[t] = c
        else:
            return None
    # cond holds for every inner iteration while coef*v + rest_hi (+ S) < 0 (or <= 0 for LE)
    if not sym:
        limit = -rest_hi if isinstance(cond, E.LT) else -rest_hi + 1
        return -(-limit // coef)  # smallest v with coef*v >= limit
    limit = E.Const(0, cond.a.dtype) - from_linear(sym, rest_hi if isinstance(cond, E.LT) else rest_hi - 1,
                                                   cond.a.dtype)
    return (limit + (coef - 1)) // coef


#: a loop whose body holds more statements than this is not partitioned (each partition
#: copies the body, and partitions nest: the budget bounds the code a kernel can grow to)
MAX_PARTITION_BODY = 400


def partition_tails(func: LoweredFunc) -> LoweredFunc:
    """Split a loop whose iterations satisfy its tail guards up to some point into a main
    part (where ``simplify`` then drops the guards) and a tail part that keeps them.

    before:  for j.outer in range(8):                    # N = 115, factor 16
               for j.inner in vectorized(16): if j.outer*16 + j.inner < 115: body
    after:   for j.outer in range(7):  for j.inner in vectorized(16): body
             for j.outer in range(7, 8): for j.inner in vectorized(16): if ...: body

    A loop of symbolic extent is split the same way at a symbolic point (see
    :func:`partition_symbolic`).
    """
    return _with_body(func, _PartitionTails(frozenset(func.size_vars)).visit(func.body))


class _PartitionTails(StmtMutator):
    def __init__(self, size_vars=frozenset()):
        super().__init__()
        self.size_vars = size_vars

    def visit_For(self, s):
        loop = super().visit_For(s)
        if (loop.kind in (ForKind.SERIAL, ForKind.PARALLEL) and isinstance(loop.min, E.Const)
                and not isinstance(loop.extent, E.Const) and self.size_vars):
            return partition_symbolic(loop, self.size_vars)
        if not (loop.kind in (ForKind.SERIAL, ForKind.PARALLEL) and isinstance(loop.min, E.Const)
                and isinstance(loop.extent, E.Const)):
            return loop
        lo, hi = loop.min.value, loop.min.value + loop.extent.value
        guards = _GuardConjuncts()
        guards.visit(loop.body)
        points = [p for p in (_split_point(loop, c, r) for c, r in guards.found) if p is not None]
        cut = min(points, default=None)
        if cut is None or not lo < cut < hi or sum(1 for _ in walk_stmt(loop.body)) > MAX_PARTITION_BODY:
            return loop
        main = For(loop.var, E.Const(lo), E.Const(cut - lo), loop.kind, loop.body, loop.thread_tag)
        # a short tail of a parallel loop is not worth waking the thread team for
        tail_kind = ForKind.SERIAL if loop.kind is ForKind.PARALLEL and hi - cut <= 4 else loop.kind
        tail = For(loop.var, E.Const(cut), E.Const(hi - cut), tail_kind, loop.body, loop.thread_tag)
        return seq(main, tail)


def _symbolic_point(loop, cond, inner_ranges, size_vars):
    """:func:`_split_point` when it is an expression of the sizes, else None."""
    point = _split_point(loop, cond, inner_ranges, size_vars)
    return point if isinstance(point, E.Expr) else None


def partition_symbolic(loop, size_vars):
    """A loop of symbolic extent whose tail guards hold up to a symbolic point: a main loop up
    to that point, where those guards are dropped (they hold there by construction), and a
    tail loop that keeps them.

    before:  for j.outer in range((N + 15) // 16):
               for j.inner in vectorized(16): if j.outer*16 + j.inner < N: body
    after:   for j.outer in range(min(N // 16, (N + 15) // 16)):
               for j.inner in vectorized(16): body
             for j.outer in range(<that>, (N + 15) // 16):
               for j.inner in vectorized(16): if j.outer*16 + j.inner < N: body
    """
    if sum(1 for _ in walk_stmt(loop.body)) > MAX_PARTITION_BODY:
        return loop
    guards = _GuardConjuncts()
    guards.visit(loop.body)
    points_of = {}          # a guard object may sit in several places: drop it only if each one gives a point
    for c, r in guards.found:
        points_of.setdefault(id(c), []).append(_symbolic_point(loop, c, r, size_vars))
    found = [(c, points_of[id(c)][0]) for c, _ in guards.found
             if all(p is not None for p in points_of[id(c)])]
    if not found:
        return loop
    dropped = {id(c) for c, _ in found}
    points = []
    for p in (p for c, _ in found for p in points_of[id(c)]):
        p = simplify_expr(p, {})
        if not any(E.expr_equal(p, q) for q in points):
            points.append(p)
    cut = points[0]
    for p in points[1:]:
        cut = E.Min(cut, p)
    lo = loop.min.value
    if not _at_least(cut, lo, size_vars):
        cut = E.Max(cut, E.Const(lo, cut.dtype))
    total = loop.min + loop.extent if lo else loop.extent
    end = cut if _at_most(cut, total, size_vars) else simplify_expr(E.Min(cut, total), {})
    main_body = map_stmt(loop.body, None, lambda e: E.transform(
        e, lambda n: E.Const(True, "bool") if id(n) in dropped else None))
    main = For(loop.var, loop.min, end - lo if lo else end, loop.kind, main_body, loop.thread_tag)
    tail = For(loop.var, end, loop.min + loop.extent - end, loop.kind, loop.body, loop.thread_tag)
    return seq(main, tail)


def _at_least(e, lo, size_vars) -> bool:
    """Whether ``e >= lo`` for every value of the sizes (te.size_var ones are at least 1)."""
    ranges = {v: (1, 2**31 - 1 if v.dtype == "int32" else 2**63 - 1) for v in size_vars if isinstance(v, E.SizeVar)}
    bound = bound_of(simplify_expr(E.Sub(e, E.Const(lo, e.dtype)), {}), ranges)
    return bound is not None and bound[0] >= 0


def _at_most(a, b, size_vars) -> bool:
    """Whether ``a <= b`` for every value of the sizes: ``x // d <= (x + c) // d`` for c >= 0,
    else by the sizes' ranges."""
    if (isinstance(a, E.FloorDiv) and isinstance(b, E.FloorDiv) and isinstance(a.b, E.Const)
            and isinstance(b.b, E.Const) and a.b.value == b.b.value > 0):
        gap = simplify_expr(E.Sub(b.a, a.a), {})
        if isinstance(gap, E.Const) and gap.value >= 0:
            return True
    return _at_least(E.Sub(b, a), 0, size_vars)


def fit_loops_to_guards(func: LoweredFunc) -> LoweredFunc:
    """A loop whose whole body is a guard ``a*v + rest < c`` (``rest`` fixed by the loops
    around it, as in a partitioned tail) runs only the iterations the guard lets through: no
    per-lane masks in a vector loop, whose accumulators then stay in registers.

    before:  for j.outer in range(7, 8):
               for j.inner in vectorized(16): if j.outer*16 + j.inner < 115: body
    after:   for j.outer in range(7, 8):
               for j.inner in vectorized(3): body
    """
    return _with_body(func, _FitLoopsToGuards().visit(func.body))


class _FitLoopsToGuards(StmtMutator):
    def visit_For(self, s):
        loop = super().visit_For(s)
        if (not isinstance(loop, For) or not isinstance(loop.body, IfThenElse) or loop.body.else_case is not None
                or not (isinstance(loop.min, E.Const) and isinstance(loop.extent, E.Const))):
            return loop
        lo, extent = loop.min.value, loop.extent.value
        # loops around that run one value fix the rest of a guard: its split point is exact
        # there (below it the guard holds, from it on it fails)
        fixed = {v: r for v, r in self.ranges.items() if r[0] == r[1]}
        keep, cut = [], None
        for c in conjuncts(loop.body.cond):
            point = _split_point(loop, c, fixed)
            if point is None:
                keep.append(c)
            else:
                cut = point if cut is None else min(cut, point)
        if cut is None or cut >= lo + extent:
            return loop
        if cut <= lo:
            return None
        body = IfThenElse(conjoin(keep), loop.body.then_case) if keep else loop.body.then_case
        return For(loop.var, loop.min, E.Const(cut - lo), loop.kind, body, loop.thread_tag)


# --------------------------------------------------------------------------- simplify


class _Simplify(StmtMutator):
    def visit_expr(self, e):
        return simplify_expr(e, self.ranges)

    def visit_For(self, s):
        loop = super().visit_For(s)
        return None if loop is not None and isinstance(loop.extent, E.Const) and loop.extent.value <= 0 else loop

    def visit_IfThenElse(self, s):
        cond = prune_conjuncts(self.visit_expr(s.cond), self.ranges)
        known = prove(cond, self.ranges)
        if known is not None:      # keep only the branch the guard takes
            branch = s.then_case if known else s.else_case
            return None if branch is None else self.visit(branch)
        return self.rebuild_if(s, cond, *self.visit_branches(s))


def simplify(func: LoweredFunc) -> LoweredFunc:
    """Fold constants, put integer index math in a canonical linear form, drop guards the
    loop ranges prove, and drop empty loops."""
    body = _Simplify().visit(func.body)
    return _with_body(func, body if body is not None else SeqStmt(()))


__all__ = ["flatten_buffers", "privatize_lane_buffers", "unroll_loops", "substitute_stmt", "partition_tails",
           "fit_loops_to_guards",
           "simplify", "MAX_UNROLLED_STMTS", "MAX_PARTITION_BODY",
           # loopc.arith, re-exported for the modules that import them from here
           "bound_of", "canonical_linear", "from_linear", "linear_form", "merge_divmod", "prove", "prune_conjuncts",
           "simplify_expr"]
