"""Deciding conditions from loop ranges: ``prove`` and ``prune_conjuncts``.

    prove(i*4 + j < 32, {i: (0, 7), j: (0, 3)})             -> True
    prune_conjuncts(i < 8 and k < n, {i: (0, 7)})          -> k < n
"""
from __future__ import annotations

from ..te import expr as E
from .interval import bound_of


def conjuncts(cond) -> list:
    """The parts of ``a and b and ...``, left to right."""
    parts, stack = [], [cond]
    while stack:
        c = stack.pop()
        if isinstance(c, E.And):
            stack += [c.b, c.a]
        else:
            parts.append(c)
    return parts


def conjoin(conds):
    """``conds[0] and conds[1] and ...`` (left-nested); ``conds`` is not empty."""
    out = conds[0]
    for c in conds[1:]:
        out = E.And(out, c)
    return out


def prove(cond, ranges):
    """True/False when ``cond`` is decided by the loop ranges, else None."""
    if isinstance(cond, E.Const):
        return cond.value
    if isinstance(cond, E.And):
        a, b = prove(cond.a, ranges), prove(cond.b, ranges)
        if a is False or b is False:
            return False
        return True if (a and b) else None
    if isinstance(cond, (E.LT, E.LE)) and E.is_int(cond.a.dtype):
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
    """Drop the parts of ``a and b and ...`` that the loop ranges prove true (``False`` when
    one is proved false); ``cond`` itself when nothing is dropped."""
    parts = conjuncts(cond)
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
    return conjoin(kept)
