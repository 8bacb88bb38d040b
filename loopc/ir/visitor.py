"""One traversal of the loop IR for every pass: ``StmtMutator`` (and its read-only twin
``StmtVisitor``).

``visit(s)`` dispatches to ``visit_For``, ``visit_SeqStmt``, ``visit_IfThenElse``,
``visit_Store``, ``visit_TensorStore``, ``visit_Evaluate`` or ``visit_Allocate``; each visits
the statement's expressions through ``visit_expr`` and its child statements through ``visit``,
and returns the SAME node when nothing changed (a changed child rebuilds only the path above
it). A subclass overrides what it rewrites and calls ``super()`` to descend:

    class Serialize(StmtMutator):                    # parallel loops -> serial loops
        def visit_For(self, s):
            s = super().visit_For(s)                 # the body first
            if s.kind is not ForKind.PARALLEL:
                return s
            return For(s.var, s.min, s.extent, ForKind.SERIAL, s.body, s.thread_tag)

    func = dataclasses.replace(func, body=Serialize().visit(func.body))

While it descends, the walk keeps

- ``self.ranges``: Var -> (lo, hi) of the enclosing loops whose bounds are constants (what
  ``loopc.arith`` proves things from), and
- ``self.stack``: the enclosing For / IfThenElse / Allocate statements, outermost first.

A visit may return None for "no statement": a sequence drops it, and a loop, an allocation or
a branchless ``if`` around nothing is nothing too.
"""
from __future__ import annotations

from ..te import expr as E
from .stmt import Allocate, Evaluate, For, IfThenElse, Store, TensorStore, seq


def const_range(loop: For):
    """(lo, hi) of ``loop``'s variable when its bounds are constants, else None."""
    return _range(loop.min, loop.extent)


def _range(mn, ext):
    if isinstance(mn, E.Const) and isinstance(ext, E.Const):
        return mn.value, mn.value + ext.value - 1
    return None


class StmtMutator:
    """Rebuilds statements bottom-up through ``visit_*``; unchanged parts keep their identity."""

    def __init__(self):
        self.ranges = {}
        self.stack = []

    def visit(self, s):
        method = getattr(self, "visit_" + type(s).__name__, None)
        if method is None:
            raise TypeError(f"{type(self).__name__} cannot visit {type(s).__name__}")
        return method(s)

    def visit_expr(self, e):
        """Rewrite one expression held by a statement (whole tree); the default keeps it."""
        return e

    def descend(self, parent, child, loop_range=None):
        """``visit(child)`` with ``parent`` on the stack and, for a loop, its range in ``ranges``."""
        self.stack.append(parent)
        if loop_range is not None:
            var = parent.var
            saved = self.ranges.get(var)
            self.ranges[var] = loop_range
        try:
            return self.visit(child)
        finally:
            self.stack.pop()
            if loop_range is not None:
                if saved is None:
                    del self.ranges[var]
                else:
                    self.ranges[var] = saved

    # ------------------------------------------------------------------ statements

    def visit_For(self, s):
        mn, ext = self.visit_expr(s.min), self.visit_expr(s.extent)
        body = self.descend(s, s.body, _range(mn, ext))
        if body is None:
            return None
        if body is s.body and mn is s.min and ext is s.extent:
            return s
        return For(s.var, mn, ext, s.kind, body, s.thread_tag)

    def visit_SeqStmt(self, s):
        parts = [self.visit(x) for x in s.stmts]
        if all(a is b for a, b in zip(parts, s.stmts)):
            return s
        parts = [p for p in parts if p is not None]
        return seq(*parts) if parts else None

    def visit_IfThenElse(self, s):
        return self.rebuild_if(s, self.visit_expr(s.cond), *self.visit_branches(s))

    def visit_branches(self, s):
        """(then, else) of ``s`` visited under it."""
        then = self.descend(s, s.then_case)
        other = None if s.else_case is None else self.descend(s, s.else_case)
        return then, other

    @staticmethod
    def rebuild_if(s, cond, then, other):
        if cond is s.cond and then is s.then_case and other is s.else_case:
            return s
        if then is None and other is None:
            return None
        if then is None:
            return IfThenElse(E.Not(cond), other)
        return IfThenElse(cond, then, other)

    def visit_Store(self, s):
        idx, val = self.visit_expr(s.index), self.visit_expr(s.value)
        return s if (idx is s.index and val is s.value) else Store(s.buffer, idx, val)

    def visit_TensorStore(self, s):
        idx = tuple(self.visit_expr(i) for i in s.indices)
        val = self.visit_expr(s.value)
        if val is s.value and all(a is b for a, b in zip(idx, s.indices)):
            return s
        return TensorStore(s.tensor, idx, val)

    def visit_Evaluate(self, s):
        value = self.visit_expr(s.value)
        return s if value is s.value else Evaluate(value)

    def visit_Allocate(self, s):
        body = self.descend(s, s.body)
        if body is None:
            return None
        return s if body is s.body else Allocate(s.buffer, body)


class StmtVisitor(StmtMutator):
    """The same walk, for passes that only look: override ``visit_*`` to record what you need,
    call ``super()`` to descend, and return what it returns (the node itself)."""


class _Mapper(StmtMutator):
    def __init__(self, fstmt, fexpr):
        super().__init__()
        self.fstmt, self.fexpr = fstmt, fexpr

    def visit_expr(self, e):
        return e if self.fexpr is None else self.fexpr(e)

    def visit(self, s):
        new = super().visit(s)
        if self.fstmt is not None:
            out = self.fstmt(new)
            if out is not None:
                return out
        return new


def map_stmt(s, fstmt=None, fexpr=None):
    """Rebuild ``s`` bottom-up: expressions through ``fexpr`` (a full-tree rewrite of one
    expression), then each statement through ``fstmt`` (None keeps it). Unchanged parts
    keep their identity."""
    return _Mapper(fstmt, fexpr).visit(s)


__all__ = ["StmtMutator", "StmtVisitor", "const_range", "map_stmt"]
