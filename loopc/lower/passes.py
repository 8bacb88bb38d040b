"""Lowering passes after the loop nests exist. Each is a function LoweredFunc -> LoweredFunc."""
from __future__ import annotations

import dataclasses
import threading

from ..errors import LoweringError
from ..ir.stmt import (Allocate, For, ForKind, IfThenElse, LoweredFunc, SeqStmt, Store, TensorStore,
                       map_stmt, seq, walk_stmt)
from ..te import expr as E

INT32_MAX = 2**31 - 1

#: an unrolled function body may hold at most this many statements.
MAX_UNROLLED_STMTS = 20000


def _with_body(func: LoweredFunc, body) -> LoweredFunc:
    return func if body is func.body else dataclasses.replace(func, body=body)


# --------------------------------------------------------------------------- flatten


def flatten_buffers(func: LoweredFunc) -> LoweredFunc:
    """``T[i, j]`` -> ``T[i*stride0 + j]`` on the tensor's row-major Buffer."""
    bmap = func.attrs["buffer_map"]

    def flat_index(buf, indices):
        idx = E.Const(0)          # a rank-0 tensor (a scalar) is element 0 of its buffer
        wide = buf.size > INT32_MAX   # int32 index math would wrap: compute in int64
        for n, (i, stride) in enumerate(zip(indices, buf.strides)):
            if wide:
                i, stride = i.astype("int64"), E.Const(stride, "int64")
            term = i * stride if not (isinstance(stride, int) and stride == 1) else i
            idx = term if n == 0 else idx + term
        return idx

    def fexpr(e):
        return E.transform(e, lambda n: E.Load(bmap[n.tensor.op], flat_index(bmap[n.tensor.op], n.indices))
                           if isinstance(n, E.TensorRead) else None)

    def fstmt(s):
        if isinstance(s, TensorStore):
            buf = bmap[s.tensor.op]
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
    def visit(s):      # top-down: the outermost vectorized loop decides for its whole body
        if isinstance(s, For):
            if s.kind is ForKind.VECTORIZED:
                return _privatize(s)
            body = visit(s.body)
            return s if body is s.body else For(s.var, s.min, s.extent, s.kind, body, s.thread_tag)
        if isinstance(s, SeqStmt):
            parts = [visit(x) for x in s.stmts]
            return s if all(a is b for a, b in zip(parts, s.stmts)) else seq(*parts)
        if isinstance(s, IfThenElse):
            t = visit(s.then_case)
            e = None if s.else_case is None else visit(s.else_case)
            return s if (t is s.then_case and e is s.else_case) else IfThenElse(s.cond, t, e)
        if isinstance(s, Allocate):
            b = visit(s.body)
            return s if b is s.body else Allocate(s.buffer, b)
        return s

    return _with_body(func, visit(func.body))


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


def _guard_conjuncts(s, inner_ranges, out):
    """Collect (condition, ranges of the loops between) for every IfThenElse conjunct in ``s``."""
    if isinstance(s, For):
        ranges = dict(inner_ranges)
        if isinstance(s.min, E.Const) and isinstance(s.extent, E.Const):
            ranges[s.var] = (s.min.value, s.min.value + s.extent.value - 1)
        _guard_conjuncts(s.body, ranges, out)
    elif isinstance(s, IfThenElse):
        stack = [s.cond]
        while stack:
            c = stack.pop()
            if isinstance(c, E.And):
                stack += [c.a, c.b]
            else:
                out.append((c, inner_ranges))
        _guard_conjuncts(s.then_case, inner_ranges, out)
        if s.else_case is not None:
            _guard_conjuncts(s.else_case, inner_ranges, out)
    elif isinstance(s, (SeqStmt,)):
        for x in s.stmts:
            _guard_conjuncts(x, inner_ranges, out)
    elif isinstance(s, Allocate):
        _guard_conjuncts(s.body, inner_ranges, out)


def _split_point(loop, cond, inner_ranges):
    """The first value of ``loop.var`` from which ``cond`` (``a < b`` or ``a <= b``) may fail,
    if the guard is ``coef*v + rest < 0`` with coef > 0 and ``rest`` bounded by inner loops."""
    if not isinstance(cond, (E.LT, E.LE)) or not _is_int(cond.a):
        return None
    terms, const = linear_form(E.Sub(cond.a, cond.b))
    coef = terms.pop(loop.var, 0)
    if coef <= 0:
        return None
    rest_hi = const
    for t, c in terms.items():
        if t not in inner_ranges:
            return None
        lo, hi = inner_ranges[t]
        rest_hi += max(c * lo, c * hi)
    # cond holds for every inner iteration while coef*v + rest_hi < 0 (or <= 0 for LE)
    limit = -rest_hi if isinstance(cond, E.LT) else -rest_hi + 1
    return -(-limit // coef)  # smallest v with coef*v >= limit


#: loops nested this deep or more are not partitioned again (each partition copies the body)
MAX_PARTITION_DEPTH = 3


def partition_tails(func: LoweredFunc) -> LoweredFunc:
    """Split a loop whose iterations satisfy its tail guards up to some point into a main
    part (where ``simplify`` then drops the guards) and a tail part that keeps them.

    before:  for j.outer in range(8):                    # N = 115, factor 16
               for j.inner in vectorized(16): if j.outer*16 + j.inner < 115: body
    after:   for j.outer in range(7):  for j.inner in vectorized(16): body
             for j.outer in range(7, 8): for j.inner in vectorized(16): if ...: body
    """
    def visit(s, depth):
        if isinstance(s, For):
            body = visit(s.body, depth + 1) if depth < MAX_PARTITION_DEPTH else s.body
            loop = s if body is s.body else For(s.var, s.min, s.extent, s.kind, body, s.thread_tag)
            if (loop.kind in (ForKind.SERIAL, ForKind.PARALLEL) and isinstance(loop.min, E.Const)
                    and isinstance(loop.extent, E.Const)):
                lo, hi = loop.min.value, loop.min.value + loop.extent.value
                conds = []
                _guard_conjuncts(loop.body, {}, conds)
                points = [p for p in (_split_point(loop, c, r) for c, r in conds) if p is not None]
                cut = min(points, default=None)
                if cut is not None and lo < cut < hi:
                    main = For(loop.var, E.Const(lo), E.Const(cut - lo), loop.kind, loop.body, loop.thread_tag)
                    # a short tail of a parallel loop is not worth waking the thread team for
                    tail_kind = ForKind.SERIAL if loop.kind is ForKind.PARALLEL and hi - cut <= 4 else loop.kind
                    tail = For(loop.var, E.Const(cut), E.Const(hi - cut), tail_kind, loop.body, loop.thread_tag)
                    return seq(main, tail)
            return loop
        if isinstance(s, SeqStmt):
            parts = [visit(x, depth) for x in s.stmts]
            return s if all(a is b for a, b in zip(parts, s.stmts)) else seq(*parts)
        if isinstance(s, IfThenElse):
            t = visit(s.then_case, depth)
            e = None if s.else_case is None else visit(s.else_case, depth)
            return s if (t is s.then_case and e is s.else_case) else IfThenElse(s.cond, t, e)
        if isinstance(s, Allocate):
            b = visit(s.body, depth)
            return s if b is s.body else Allocate(s.buffer, b)
        return s

    return _with_body(func, visit(func.body, 0))


# --------------------------------------------------------------------------- simplify


def _is_int(e):
    return E.is_int(e.dtype)


def _fold(e):
    """Constant-fold a node whose operands are constants; None when not foldable."""
    if isinstance(e, E.BinaryOp) and isinstance(e.a, E.Const) and isinstance(e.b, E.Const):
        a, b, dt = e.a.value, e.b.value, e.a.dtype
        try:
            if isinstance(e, E.Add): return E.Const(a + b, dt)
            if isinstance(e, E.Sub): return E.Const(a - b, dt)
            if isinstance(e, E.Mul): return E.Const(a * b, dt)
            if isinstance(e, E.FloorDiv) and E.is_int(dt) and b != 0: return E.Const(a // b, dt)
            if isinstance(e, E.FloorMod) and E.is_int(dt) and b != 0: return E.Const(a % b, dt)
            if isinstance(e, E.Min): return E.Const(min(a, b), dt)
            if isinstance(e, E.Max): return E.Const(max(a, b), dt)
            if isinstance(e, E.LT): return E.Const(a < b, "bool")
            if isinstance(e, E.LE): return E.Const(a <= b, "bool")
            if isinstance(e, E.EQ): return E.Const(a == b, "bool")
            if isinstance(e, E.NE): return E.Const(a != b, "bool")
            if isinstance(e, E.And): return E.Const(a and b, "bool")
            if isinstance(e, E.Or): return E.Const(a or b, "bool")
        except (OverflowError, ZeroDivisionError):
            return None
    return None


def _add_term(terms: dict, term, coefficient) -> None:
    """Add ``coefficient * term`` to ``terms``, merging with a structurally equal term (two
    separately built ``pq // 4`` cancel in ``pq // 4 - pq // 4``)."""
    if term not in terms:
        term = next((k for k in terms if type(k) is type(term) and E.expr_equal(k, term)), term)
    terms[term] = terms.get(term, 0) + coefficient


#: node id -> (node, terms, constant) for the canonical sums simplify_expr has just built, so
#: that a parent sum reads its children's linear forms instead of walking them again (a
#: bottom-up rewrite of a nested sum would otherwise be quadratic in its size)
_linear_memo = threading.local()


def linear_form(e):
    """``e`` as ({term: coefficient}, constant) for integer expressions, terms in first-seen order."""
    memo = getattr(_linear_memo, "table", None)
    if memo is not None:
        hit = memo.get(id(e))
        if hit is not None and hit[0] is e:
            return dict(hit[1]), hit[2]
    if isinstance(e, E.Const) and _is_int(e):
        return {}, e.value
    if isinstance(e, (E.Add, E.Sub)) and _is_int(e):
        ta, ca = linear_form(e.a)
        tb, cb = linear_form(e.b)
        sign = 1 if isinstance(e, E.Add) else -1
        terms = dict(ta)
        for t, c in tb.items():
            _add_term(terms, t, sign * c)
        return {t: c for t, c in terms.items() if c != 0}, ca + sign * cb
    if isinstance(e, E.Mul) and _is_int(e):
        ta, ca = linear_form(e.a)
        tb, cb = linear_form(e.b)
        if not tb:
            return {t: c * cb for t, c in ta.items() if c * cb != 0}, ca * cb
        if not ta:
            return {t: c * ca for t, c in tb.items() if c * ca != 0}, ca * cb
    return {e: 1}, 0


def merge_divmod(terms: dict) -> dict:
    """``c*(x % m) + c*m*(x // m) -> c*x`` (also with ``x // (a*m)`` standing for ``(x // a) // m``),
    repeated: how row-major index math of a flattened axis folds back to the axis itself."""
    terms = dict(terms)
    changed = True
    while changed:
        changed = False
        for t_mod, c in list(terms.items()):
            if not (isinstance(t_mod, E.FloorMod) and isinstance(t_mod.b, E.Const) and t_mod.b.value > 0):
                continue
            x, m = t_mod.a, t_mod.b.value
            for t_div, c_div in list(terms.items()):
                if not (isinstance(t_div, E.FloorDiv) and isinstance(t_div.b, E.Const)) or c_div != c * m:
                    continue
                same = t_div.b.value == m and E.expr_equal(t_div.a, x)
                nested = (isinstance(x, E.FloorDiv) and isinstance(x.b, E.Const)
                          and t_div.b.value == x.b.value * m and E.expr_equal(t_div.a, x.a))
                if same or nested:
                    del terms[t_mod], terms[t_div]
                    terms[x] = terms.get(x, 0) + c
                    if terms[x] == 0:
                        del terms[x]
                    changed = True
                    break
            if changed:
                break
    return terms


def canonical_linear(e):
    """``linear_form`` after folding div/mod pairs back (``(f // Q)*Q + f % Q -> f``) and
    expanding what they uncover, until nothing changes."""
    terms, const = linear_form(e)
    while True:
        merged = merge_divmod(terms)
        if merged == terms:
            return terms, const
        terms, extra = linear_form(from_linear(merged, 0, e.dtype))
        const += extra


def from_linear(terms, const, dtype):
    out = None
    for t, c in terms.items():
        if out is None:
            out = t if c == 1 else (E.Sub(E.Const(0, dtype), t) if c == -1 else E.Mul(t, E.Const(c, dtype)))
        elif c > 0:
            out = E.Add(out, t if c == 1 else E.Mul(t, E.Const(c, dtype)))
        else:
            out = E.Sub(out, t if c == -1 else E.Mul(t, E.Const(-c, dtype)))
    if out is None:
        return E.Const(const, dtype)
    if const > 0:
        return E.Add(out, E.Const(const, dtype))
    if const < 0:
        return E.Sub(out, E.Const(-const, dtype))
    return out


def _divmod_linear(e, ranges):
    """``(q*d + r) // d -> q`` and ``(q*d + r) % d -> r`` when the loop ranges prove 0 <= r < d."""
    d = e.b.value
    if d <= 0:
        return None
    terms, const = linear_form(e.a)
    const_q, const_r = divmod(const, d)
    quotient = {t: c // d for t, c in terms.items() if c % d == 0}
    rest = {t: c for t, c in terms.items() if c % d != 0}
    bound = bound_of(from_linear(rest, const_r, e.dtype), ranges)
    if bound is None or bound[0] < 0 or bound[1] >= d:
        return None
    if isinstance(e, E.FloorDiv):
        return from_linear(quotient, const_q, e.dtype)
    return from_linear(rest, const_r, e.dtype)


def _simplify_node(e, ranges):
    folded = _fold(e)
    if folded is not None:
        return folded
    if (isinstance(e, (E.FloorDiv, E.FloorMod)) and _is_int(e) and isinstance(e.b, E.Const)
            and ranges is not None):
        out = _divmod_linear(e, ranges)
        if out is not None:
            return out
    if isinstance(e, (E.Add, E.Sub, E.Mul)) and _is_int(e):
        terms, const = canonical_linear(e)
        out = from_linear(terms, const, e.dtype)
        memo = getattr(_linear_memo, "table", None)
        if memo is not None:
            memo[id(out)] = (out, terms, const)
        return out
    if isinstance(e, (E.FloorDiv, E.FloorMod)) and isinstance(e.b, E.Const) and e.b.value == 1:
        return e.a if isinstance(e, E.FloorDiv) else E.Const(0, e.dtype)
    if isinstance(e, (E.Add, E.Sub)) and isinstance(e.b, E.Const) and e.b.value == 0:
        return e.a
    if isinstance(e, E.Mul) and isinstance(e.b, E.Const) and e.b.value == 1:
        return e.a
    if isinstance(e, E.Mul) and isinstance(e.a, E.Const) and e.a.value == 1:
        return e.b
    if isinstance(e, E.And):
        for x, y in ((e.a, e.b), (e.b, e.a)):
            if isinstance(x, E.Const):
                return y if x.value else x
    if isinstance(e, E.Or):
        for x, y in ((e.a, e.b), (e.b, e.a)):
            if isinstance(x, E.Const):
                return x if x.value else y
    if isinstance(e, E.Not) and isinstance(e.a, E.Const):
        return E.Const(not e.a.value, "bool")
    if isinstance(e, E.Select) and isinstance(e.cond, E.Const):
        return e.t if e.cond.value else e.f
    if isinstance(e, E.Select) and ranges:
        cond = prune_conjuncts(e.cond, ranges)
        known = prove(cond, ranges)
        if known is not None:
            return e.t if known else e.f
        if cond is not e.cond:
            return E.Select(cond, e.t, e.f)
    if isinstance(e, E.Cast) and isinstance(e.value, E.Const):
        return E.Const(e.value.value, e.dtype)
    return None


def simplify_expr(e, ranges=None):
    """Simplify ``e``; ``ranges`` (Var -> (lo, hi) inclusive) enables range-based rewrites."""
    outer = getattr(_linear_memo, "table", None)
    if outer is None:
        _linear_memo.table = {}
    try:
        return E.transform(e, lambda n: _simplify_node(n, ranges))
    finally:
        if outer is None:
            _linear_memo.table = None


def bound_of(e, ranges):
    """Interval [lo, hi] of an integer expression, from the loop ranges; None when unknown."""
    terms, const = linear_form(e)
    lo = hi = const
    for t, c in terms.items():
        t_range = ranges.get(t) if t in ranges else _divmod_bound(t, ranges)
        if t_range is None:
            return None
        tlo, thi = t_range
        lo += min(c * tlo, c * thi)
        hi += max(c * tlo, c * thi)
    return lo, hi


def _divmod_bound(t, ranges):
    """Interval of ``x // d`` or ``x % d`` (constant d > 0) from the interval of ``x``."""
    if not (isinstance(t, (E.FloorDiv, E.FloorMod)) and isinstance(t.b, E.Const) and _is_int(t)
            and t.b.value > 0):
        return None
    inner = bound_of(t.a, ranges)
    if inner is None:
        return None
    d = t.b.value
    if isinstance(t, E.FloorDiv):
        return inner[0] // d, inner[1] // d
    if inner[0] // d == inner[1] // d:
        return inner[0] % d, inner[1] % d
    return 0, d - 1


def prove(cond, ranges):
    """True/False when ``cond`` is decided by the loop ranges, else None."""
    if isinstance(cond, E.Const):
        return cond.value
    if isinstance(cond, E.And):
        a, b = prove(cond.a, ranges), prove(cond.b, ranges)
        if a is False or b is False:
            return False
        return True if (a and b) else None
    if isinstance(cond, (E.LT, E.LE)) and _is_int(cond.a):
        d = bound_of(E.Sub(cond.a, cond.b), ranges)
        if d is None:
            return None
        lo, hi = d
        strict = isinstance(cond, E.LT)
        if (hi < 0) if strict else (hi <= 0):
            return True
        if (lo >= 0) if strict else (lo > 0):
            return False
    return None


def prune_conjuncts(cond, ranges):
    """Drop the parts of ``a and b and ...`` that the loop ranges prove true."""
    parts, stack = [], [cond]
    while stack:
        c = stack.pop()
        if isinstance(c, E.And):
            stack += [c.b, c.a]
        else:
            parts.append(c)
    if len(parts) == 1:
        return cond
    kept = []
    for c in parts:
        known = prove(c, ranges)
        if known is False:
            return E.Const(False, "bool")
        if known is not True:
            kept.append(c)
    if len(kept) == len(parts):
        return cond
    if not kept:
        return E.Const(True, "bool")
    out = kept[0]
    for c in kept[1:]:
        out = E.And(out, c)
    return out


def simplify(func: LoweredFunc) -> LoweredFunc:
    """Fold constants, put integer index math in a canonical linear form, drop guards the
    loop ranges prove, and drop empty loops."""
    def visit(s, ranges):
        if isinstance(s, For):
            mn, ext = simplify_expr(s.min, ranges), simplify_expr(s.extent, ranges)
            if isinstance(ext, E.Const) and ext.value <= 0:
                return None
            inner = dict(ranges)
            if isinstance(mn, E.Const) and isinstance(ext, E.Const):
                inner[s.var] = (mn.value, mn.value + ext.value - 1)
            body = visit(s.body, inner)
            if body is None:
                return None
            return For(s.var, mn, ext, s.kind, body, s.thread_tag)
        if isinstance(s, SeqStmt):
            parts = [visit(x, ranges) for x in s.stmts]
            parts = [p for p in parts if p is not None]
            return seq(*parts) if parts else None
        if isinstance(s, IfThenElse):
            cond = prune_conjuncts(simplify_expr(s.cond, ranges), ranges)
            known = prove(cond, ranges)
            if known is True:
                return visit(s.then_case, ranges)
            if known is False:
                return None if s.else_case is None else visit(s.else_case, ranges)
            then = visit(s.then_case, ranges)
            other = None if s.else_case is None else visit(s.else_case, ranges)
            if then is None and other is None:
                return None
            if then is None:
                return IfThenElse(E.Not(cond), other)
            return IfThenElse(cond, then, other)
        if isinstance(s, Store):
            return Store(s.buffer, simplify_expr(s.index, ranges), simplify_expr(s.value, ranges))
        if isinstance(s, TensorStore):
            return TensorStore(s.tensor, tuple(simplify_expr(i, ranges) for i in s.indices),
                               simplify_expr(s.value, ranges))
        if isinstance(s, Allocate):
            body = visit(s.body, ranges)
            return None if body is None else Allocate(s.buffer, body)
        raise TypeError(type(s))  # pragma: no cover

    body = visit(func.body, {})
    return dataclasses.replace(func, body=body if body is not None else SeqStmt(()))
