"""The expression emitter that every text form of loopc's expressions derives from: the IR
printer (``loopc.ir.printer``), the Python source of the interpreter (``loopc.pysource``) and
the numba CUDA source (``loopc.targets.cuda.codegen``).

One precedence table (Python's, since all three texts are Python-like) and one rule for
parentheses; the subclasses spell what differs (constants, variables, loads, casts, calls,
min/max) in ``emit_<NodeType>`` methods:

    IR printer:     i.outer*32 + i.inner < 100 and not done
    Python source:  (((i_outer * 32) + i_inner) < 100)        (``full_parens``: every operator)
"""
from __future__ import annotations

from ..te import expr as E

#: how tightly each operator binds (Python's order; higher binds tighter)
PRECEDENCE = {E.Or: 1, E.And: 2, E.Not: 3, E.LT: 4, E.LE: 4, E.EQ: 4, E.NE: 4,
              E.BitOr: 5, E.BitXor: 6, E.BitAnd: 7, E.ShiftLeft: 8, E.ShiftRight: 8,
              E.Add: 9, E.Sub: 9, E.Mul: 10, E.Div: 10, E.FloorDiv: 10, E.FloorMod: 10}

#: a conditional expression ``t if c else f`` binds loosest of all
CONDITIONAL = 0

#: the Python spelling of each operator
SYMBOLS = {E.Or: "or", E.And: "and", E.LT: "<", E.LE: "<=", E.EQ: "==", E.NE: "!=",
           E.BitOr: "|", E.BitXor: "^", E.BitAnd: "&", E.ShiftLeft: "<<", E.ShiftRight: ">>",
           E.Add: "+", E.Sub: "-", E.Mul: "*", E.Div: "/", E.FloorDiv: "//", E.FloorMod: "%"}

#: comparisons do not chain: both operands of one bind tighter than it
_COMPARISONS = (E.LT, E.LE, E.EQ, E.NE)


#: (emitter class, node class) -> the ``emit_*`` function that spells it
_METHODS = {}


def _find_method(emitter_cls, node_cls):
    """The ``emit_<Name>`` of the nearest class of ``node_cls``'s MRO that the emitter spells."""
    for cls in node_cls.__mro__:
        method = getattr(emitter_cls, "emit_" + cls.__name__, None)
        if method is not None:
            return method

    def cannot(self, e, prec):
        raise TypeError(f"{type(self).__name__} cannot emit {type(e).__name__}")
    return cannot


class ExprEmitter:
    """Text of an expression. ``expr(e, prec)`` is ``e`` in a context that binds with ``prec``
    (0: none), parenthesised when ``e`` binds looser."""

    #: ``a*b`` (True) or ``a * b``
    tight_mul = True
    #: parenthesise every operator and conditional, whatever the context
    full_parens = False

    def expr(self, e, prec: int = 0) -> str:
        key = (type(self), type(e))
        method = _METHODS.get(key)
        if method is None:
            method = _METHODS[key] = _find_method(type(self), type(e))
        return method(self, e, prec)

    def paren(self, text: str, binds: int, prec: int) -> str:
        """``text`` of an operator that binds with ``binds``, in a context of ``prec``."""
        return f"({text})" if (self.full_parens or binds < prec) else text

    def operator(self, cls) -> str:
        sym = SYMBOLS[cls]
        return sym if (cls is E.Mul and self.tight_mul) else f" {sym} "

    def binary(self, e, prec: int) -> str:
        """``a op b``: left-associative; a comparison's operands both bind tighter."""
        p = PRECEDENCE[type(e)]
        left = self.expr(e.a, p + 1 if isinstance(e, _COMPARISONS) else p)
        text = f"{left}{self.operator(type(e))}{self.expr(e.b, p + 1)}"
        return self.paren(text, p, prec)

    def conditional(self, t, cond, f, prec: int) -> str:
        """Python's ``t if cond else f``."""
        text = f"{self.expr(t, CONDITIONAL + 1)} if {self.expr(cond, CONDITIONAL + 1)} else " \
               f"{self.expr(f, CONDITIONAL + 1)}"
        return self.paren(text, CONDITIONAL, prec)

    # ------------------------------------------------------------------ shared spellings

    def emit_BinaryOp(self, e, prec: int) -> str:
        if type(e) not in PRECEDENCE:
            raise TypeError(f"{type(self).__name__} cannot emit {type(e).__name__}")
        return self.binary(e, prec)

    def emit_Not(self, e, prec: int) -> str:
        p = PRECEDENCE[E.Not]
        return self.paren(f"not {self.expr(e.a, p)}", p, prec)

    def emit_Select(self, e, prec: int) -> str:
        return self.conditional(e.t, e.cond, e.f, prec)


__all__ = ["ExprEmitter", "PRECEDENCE", "SYMBOLS", "CONDITIONAL"]
