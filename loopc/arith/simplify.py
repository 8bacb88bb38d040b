"""Expression simplification: constant folding, canonical linear index math, and the
rewrites that loop ranges allow.

    simplify_expr(i*4 + 2 + i*4)                          -> i*8 + 2
    simplify_expr((i*8 + j) // 8, {j: (0, 7)})            -> i
    simplify_expr(if_then_else(j < 8, a, b), {j: (0, 7)}) -> a
"""
from __future__ import annotations

from ..te import expr as E
from .interval import bound_of
from .linear import canonical_linear, close_memo, from_linear, linear_form, open_memo, remember
from .prove import prove, prune_conjuncts


def fold_constants(e):
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
    folded = fold_constants(e)
    if folded is not None:
        return folded
    if (isinstance(e, (E.FloorDiv, E.FloorMod)) and E.is_int(e.dtype) and isinstance(e.b, E.Const)
            and ranges is not None):
        out = _divmod_linear(e, ranges)
        if out is not None:
            return out
    if isinstance(e, (E.Add, E.Sub, E.Mul)) and E.is_int(e.dtype):
        terms, const = canonical_linear(e)
        out = from_linear(terms, const, e.dtype)
        remember(out, terms, const)
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
    opened = open_memo()
    try:
        return E.transform(e, lambda n: _simplify_node(n, ranges))
    finally:
        if opened:
            close_memo()
