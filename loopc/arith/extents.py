"""Extents and shapes that are ints or symbolic integer expressions (``te.var`` /
``te.size_var`` sizes).

A constant stays a Python int, so constant-shape code never sees an expression; a symbolic
extent is a simplified Expr:

    extent_of(n + 2 - 2)          -> n          (an Expr)
    ceildiv(n, 8)                 -> (n + 7) // 8
    ceildiv(m*4, 4)               -> m
    provably_equal(ceildiv(m*4, 4) * 4, m*4)  -> True
"""
from __future__ import annotations

from ..te import expr as E
from .linear import linear_form
from .simplify import simplify_expr


def is_symbolic(x) -> bool:
    """Whether ``x`` (an int or an Expr) is not a compile-time constant."""
    return not isinstance(x, int)


def extent_of(x):
    """``x`` (an int, an Expr or anything with ``_as_expr``) as an int when it folds to a
    constant, else as a simplified integer Expr."""
    if isinstance(x, int) and not isinstance(x, bool):
        return x
    e = simplify_expr(E.as_expr(x), {})
    if isinstance(e, E.Const) and E.is_int(e.dtype):
        return int(e.value)
    return e


def as_index_expr(x, dtype: str = "int32"):
    """An extent as an expression (an int becomes a Const of ``dtype``)."""
    return E.Const(x, dtype) if isinstance(x, int) else x


def ceildiv(x, f):
    """``ceil(x / f)`` for a positive int ``f``: an int for an int ``x``, else an Expr."""
    if isinstance(x, int) and isinstance(f, int):
        return -(-x // f)
    return extent_of((E.as_expr(x) + (E.as_expr(f) - 1)) // f)


def mul(a, b):
    """``a * b`` of two extents."""
    if isinstance(a, int) and isinstance(b, int):
        return a * b
    return extent_of(E.as_expr(a) * E.as_expr(b))


def provably_equal(a, b) -> bool:
    """True when the extents ``a`` and ``b`` are equal for every value of their variables
    (their difference simplifies to 0); False when unknown."""
    if isinstance(a, int) and isinstance(b, int):
        return a == b
    diff = extent_of(E.as_expr(a) - E.as_expr(b))
    if isinstance(diff, int):
        return diff == 0
    terms, const = linear_form(diff)
    return not terms and const == 0


def size_vars_of(x) -> list:
    """The Vars of an extent or shape entry, in first-seen order."""
    if isinstance(x, int):
        return []
    out = []
    for n in E.walk(E.as_expr(x)):
        if isinstance(n, E.Var) and all(n is not v for v in out):
            out.append(n)
    return out


def size_range(v) -> tuple:
    """(lo, hi) a size Var may take at run time: its dtype's range (the runtime checks that), at
    least 1 for a ``te.size_var``."""
    lo, hi = (-2**31, 2**31 - 1) if v.dtype == "int32" else (-2**63, 2**63 - 1)
    return (1 if isinstance(v, E.SizeVar) else lo), hi


def evaluate(x, values: dict) -> int:
    """The int value of an extent under ``values`` (Var -> int); KeyError names a missing Var.
    Direct (no simplification): the runtime evaluates shapes on every call."""
    if isinstance(x, int):
        return x
    if isinstance(x, E.Const):
        return int(x.value)
    if isinstance(x, E.Var):
        return int(values[x])
    op = _INT_OPS.get(type(x))
    if op is not None:
        return op(evaluate(x.a, values), evaluate(x.b, values))
    if isinstance(x, E.Cast) and E.is_int(x.dtype):
        return evaluate(x.value, values)
    raise ValueError(f"cannot evaluate the size expression {x}")


def _floordiv(a, b):
    return 0 if b == 0 else a // b        # loopc's convention: x // 0 == 0


def _floormod(a, b):
    return 0 if b == 0 else a % b


_INT_OPS = {E.Add: lambda a, b: a + b, E.Sub: lambda a, b: a - b, E.Mul: lambda a, b: a * b,
            E.FloorDiv: _floordiv, E.FloorMod: _floormod, E.Min: min, E.Max: max}
