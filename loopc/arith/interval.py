"""Interval bounds of integer expressions over loop ranges (``{Var: (lo, hi)}``, inclusive).

``bound_of`` is the one range analysis of loopc: every pass and backend that asks "what values
can this index take" asks it (guards proved by ``prove``, int32 wrapping in the emitters, the
CUDA target's per-thread arrays). A term of the linear form is bounded by its loop's range or,
for ``x // d`` and ``x % d`` (constant ``d > 0``), from the bound of ``x``:

    bound_of(i*4 + j, {i: (0, 7), j: (0, 3)})        -> (0, 31)
    bound_of((i*4 + j) // 8, {i: (0, 7), j: (0, 3)})  -> (0, 3)
    bound_of((i*4 + j) % 8, ...)                      -> (0, 7)    (crosses a block of 8)

``index_interval`` is bound inference's variant: the loops in ``inner_ranges`` run, every other
variable stays fixed, so the answer is a symbolic part plus a constant interval.
"""
from __future__ import annotations

import math

from ..te import expr as E
from .linear import canonical_linear, from_linear, linear_form


def bound_of(e, ranges):
    """Interval [lo, hi] of an integer expression, from the loop ranges; None when unknown."""
    terms, const = linear_form(e)
    lo = hi = const
    for t, c in terms.items():
        t_range = ranges.get(t) if t in ranges else divmod_bound(t, ranges)
        if t_range is None:
            return None
        tlo, thi = t_range
        lo += min(c * tlo, c * thi)
        hi += max(c * tlo, c * thi)
    return lo, hi


def divmod_bound(t, ranges):
    """Interval of ``x // d`` or ``x % d`` (constant d > 0) from the interval of ``x``; None
    for any other term."""
    if not (isinstance(t, (E.FloorDiv, E.FloorMod)) and isinstance(t.b, E.Const) and E.is_int(t.dtype)
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


def index_interval(index, inner_ranges):
    """``index`` as (symbolic terms, lo, hi): its value lies in [sym + lo, sym + hi] while the
    loops in ``inner_ranges`` run; None when an inner loop is used non-linearly.

    A block index ``(q*d + r) // d`` or offset ``(q*d + r) % d``, with ``q`` free of inner
    loops and ``r`` ranging over inner ones, is ``q + [r_lo // d, r_hi // d]`` or
    ``[r_lo % d, r_hi % d]`` (when r stays within one block): how a read of
    ``W.global[k // 16, ..., k % 16]`` inside one 16-wide block of k touches one block."""
    terms, const = canonical_linear(index)
    sym, lo, hi = {}, const, const
    for t, c in terms.items():
        if t in inner_ranges:
            t_lo, t_hi = inner_ranges[t]
        elif not (E.free_vars(t) & inner_ranges.keys()):
            sym[t] = sym.get(t, 0) + c
            continue
        else:
            split = divmod_interval(t, inner_ranges)
            if split is None:
                return None
            q_terms, t_lo, t_hi = split
            for qt, qc in q_terms.items():
                sym[qt] = sym.get(qt, 0) + c * qc
        lo += min(c * t_lo, c * t_hi)
        hi += max(c * t_lo, c * t_hi)
    return {t: c for t, c in sym.items() if c}, lo, hi


def divmod_interval(term, inner_ranges):
    """(quotient terms, lo, hi) of ``x // d`` or ``x % d`` (see :func:`index_interval`).

    ``x = d*Q + q + r``: ``Q`` and ``q`` free of inner loops (``Q``'s coefficients multiples
    of ``d``, ``q``'s not), ``r`` the inner loops plus the constant, in ``[r_lo, r_hi]``.
    ``q % d`` is a multiple of ``g = gcd(q's coefficients, d)``, so while ``r`` stays within
    ``[0, g)`` no iteration crosses a block of ``d``: a fused-then-split loop
    ``((f.outer*3 + f.inner) // 6, (f.outer*3 + f.inner) % 6)`` reads one row and three
    columns per ``f.outer``."""
    if not (isinstance(term, (E.FloorDiv, E.FloorMod)) and isinstance(term.b, E.Const) and term.b.value > 0):
        return None
    d = term.b.value
    terms, const = canonical_linear(term.a)
    outer = {t: c for t, c in terms.items() if t not in inner_ranges and not (E.free_vars(t) & inner_ranges.keys())}
    whole = {t: c // d for t, c in outer.items() if c % d == 0}
    part = {t: c for t, c in outer.items() if c % d}
    inner = {t: c for t, c in terms.items() if t not in outer}
    bound = bound_of(from_linear(inner, const, term.dtype), inner_ranges)
    if bound is None:
        return None
    r_lo, r_hi = bound
    g = d
    for c in part.values():
        g = math.gcd(g, abs(c))
    q = from_linear(part, 0, term.dtype) if part else None
    if isinstance(term, E.FloorDiv):
        if q is not None:
            whole[E.FloorDiv(q, E.Const(d, term.dtype))] = 1
        return whole, r_lo // d, (d - g + r_hi) // d
    if q is None:
        if r_lo // d != r_hi // d:
            return {}, 0, d - 1
        return {}, r_lo % d, r_hi % d
    if 0 <= r_lo and r_hi < g:
        return {E.FloorMod(q, E.Const(d, term.dtype)): 1}, r_lo, r_hi
    return {}, 0, d - 1
