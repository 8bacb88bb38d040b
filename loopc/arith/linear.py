"""Linear forms of integer index math: ``e`` as ``{term: coefficient}`` plus a constant.

    linear_form(i*4 + j*4 - i + 3)            -> ({i: 3, j: 4}, 3)
    canonical_linear((f // 6)*6 + f % 6)      -> ({f: 1}, 0)            (div/mod pairs folded back)
    from_linear({i: 3, j: -1}, 2, "int32")    -> i*3 - j + 2

A term is any integer expression that is not a sum, difference or product by a constant (a
Var, ``x // 4``, ``x % 4``, a load...). Terms keep their first-seen order, so rebuilding a
form gives the same expression every time.
"""
from __future__ import annotations

import threading

from ..te import expr as E

#: node id -> (node, terms, constant) of the canonical sums that ``simplify_expr`` has just
#: built, so that a parent sum reads its children's linear forms instead of walking them again
#: (a bottom-up rewrite of a nested sum would otherwise be quadratic in its size)
_memo = threading.local()


def open_memo() -> bool:
    """Start remembering linear forms (see :func:`remember`); True when this call opened the
    table, and so must close it with :func:`close_memo`."""
    if getattr(_memo, "table", None) is not None:
        return False
    _memo.table = {}
    return True


def close_memo() -> None:
    _memo.table = None


def remember(e, terms: dict, const: int) -> None:
    """Record that ``e`` is ``terms + const`` while a memo table is open."""
    table = getattr(_memo, "table", None)
    if table is not None:
        table[id(e)] = (e, terms, const)


def _add_term(terms: dict, term, coefficient) -> None:
    """Add ``coefficient * term`` to ``terms``, merging with a structurally equal term (two
    separately built ``pq // 4`` cancel in ``pq // 4 - pq // 4``)."""
    if term not in terms:
        term = next((k for k in terms if type(k) is type(term) and E.expr_equal(k, term)), term)
    terms[term] = terms.get(term, 0) + coefficient


def linear_form(e):
    """``e`` as ({term: coefficient}, constant) for integer expressions, terms in first-seen order."""
    table = getattr(_memo, "table", None)
    if table is not None:
        hit = table.get(id(e))
        if hit is not None and hit[0] is e:
            return dict(hit[1]), hit[2]
    if isinstance(e, E.Const) and E.is_int(e.dtype):
        return {}, e.value
    if isinstance(e, (E.Add, E.Sub)) and E.is_int(e.dtype):
        ta, ca = linear_form(e.a)
        tb, cb = linear_form(e.b)
        sign = 1 if isinstance(e, E.Add) else -1
        terms = dict(ta)
        for t, c in tb.items():
            _add_term(terms, t, sign * c)
        return {t: c for t, c in terms.items() if c != 0}, ca + sign * cb
    if isinstance(e, E.Mul) and E.is_int(e.dtype):
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
    """The expression ``sum(c * t) + const``: positive terms added, negative ones subtracted,
    the constant last."""
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
