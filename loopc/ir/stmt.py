"""Loop IR statements: small immutable dataclasses; ``For`` carries its kind as an enum.

Expressions are shared with the DSL (``loopc.te.expr``). Before buffer flattening,
reads are ``TensorRead`` and writes ``TensorStore``; after it, ``Load`` and ``Store``
on a ``Buffer`` with one flat row-major index.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Tuple

from ..te.expr import Expr, Var, children as expr_children, rebuild as expr_rebuild


class ForKind(Enum):
    SERIAL = "serial"
    PARALLEL = "parallel"
    VECTORIZED = "vectorized"
    UNROLLED = "unrolled"
    THREAD_BINDING = "thread_binding"


@dataclass(frozen=True, eq=False)
class Buffer:
    """A flat, row-major array: an argument of the function or an intermediate."""
    name: str
    shape: Tuple[int, ...]
    dtype: str
    scope: str = "global"

    @property
    def size(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n

    @property
    def strides(self) -> Tuple[int, ...]:
        out, acc = [], 1
        for s in reversed(self.shape):
            out.append(acc)
            acc *= s
        return tuple(reversed(out))

    __hash__ = object.__hash__


class Stmt:
    pass


@dataclass(frozen=True, eq=False)
class For(Stmt):
    var: Var
    min: Expr
    extent: Expr
    kind: ForKind
    body: Stmt
    thread_tag: str = ""


@dataclass(frozen=True, eq=False)
class SeqStmt(Stmt):
    stmts: Tuple[Stmt, ...]


@dataclass(frozen=True, eq=False)
class IfThenElse(Stmt):
    cond: Expr
    then_case: Stmt
    else_case: Stmt | None = None


@dataclass(frozen=True, eq=False)
class TensorStore(Stmt):
    """``tensor[indices] = value`` before flattening."""
    tensor: Any
    indices: Tuple[Expr, ...]
    value: Expr


@dataclass(frozen=True, eq=False)
class Store(Stmt):
    """``buffer[index] = value`` after flattening."""
    buffer: Buffer
    index: Expr
    value: Expr


@dataclass(frozen=True, eq=False)
class Allocate(Stmt):
    """An intermediate buffer, live for ``body``; 64-byte aligned."""
    buffer: Buffer
    body: Stmt


@dataclass(frozen=True, eq=False)
class LoweredFunc:
    """The lowered function: parameters (argument buffers, in call order) and a body."""
    name: str
    params: Tuple[Buffer, ...]
    body: Stmt
    attrs: dict = field(default_factory=dict)

    def __str__(self):
        from .printer import format_func
        return format_func(self)

    def script(self) -> str:
        return str(self)


def seq(*stmts) -> Stmt:
    """A SeqStmt of ``stmts`` with nested sequences flattened; one stmt stays itself."""
    flat = []
    for s in stmts:
        if s is None:
            continue
        if isinstance(s, SeqStmt):
            flat.extend(s.stmts)
        else:
            flat.append(s)
    return flat[0] if len(flat) == 1 else SeqStmt(tuple(flat))


# --------------------------------------------------------------------------- traversal


def stmt_children(s: Stmt):
    """(child statements, child expressions) of ``s``."""
    if isinstance(s, For):
        return (s.body,), (s.min, s.extent)
    if isinstance(s, SeqStmt):
        return s.stmts, ()
    if isinstance(s, IfThenElse):
        return ((s.then_case,) if s.else_case is None else (s.then_case, s.else_case)), (s.cond,)
    if isinstance(s, TensorStore):
        return (), s.indices + (s.value,)
    if isinstance(s, Store):
        return (), (s.index, s.value)
    if isinstance(s, Allocate):
        return (s.body,), ()
    raise TypeError(type(s))  # pragma: no cover


def map_stmt(s: Stmt, fstmt=None, fexpr=None) -> Stmt:
    """Rebuild ``s`` bottom-up: expressions through ``fexpr`` (a full-tree rewrite of one
    expression), then each statement through ``fstmt`` (None keeps it). Unchanged parts
    keep their identity."""
    if isinstance(s, For):
        body = map_stmt(s.body, fstmt, fexpr)
        mn, ext = (s.min, s.extent) if fexpr is None else (fexpr(s.min), fexpr(s.extent))
        new = s if (body is s.body and mn is s.min and ext is s.extent) else For(
            s.var, mn, ext, s.kind, body, s.thread_tag)
    elif isinstance(s, SeqStmt):
        parts = [map_stmt(x, fstmt, fexpr) for x in s.stmts]
        new = s if all(a is b for a, b in zip(parts, s.stmts)) else seq(*parts)
    elif isinstance(s, IfThenElse):
        cond = s.cond if fexpr is None else fexpr(s.cond)
        t = map_stmt(s.then_case, fstmt, fexpr)
        e = None if s.else_case is None else map_stmt(s.else_case, fstmt, fexpr)
        new = s if (cond is s.cond and t is s.then_case and e is s.else_case) else IfThenElse(cond, t, e)
    elif isinstance(s, TensorStore):
        if fexpr is None:
            new = s
        else:
            idx = tuple(fexpr(i) for i in s.indices)
            val = fexpr(s.value)
            new = s if (val is s.value and all(a is b for a, b in zip(idx, s.indices))) else TensorStore(
                s.tensor, idx, val)
    elif isinstance(s, Store):
        if fexpr is None:
            new = s
        else:
            idx, val = fexpr(s.index), fexpr(s.value)
            new = s if (idx is s.index and val is s.value) else Store(s.buffer, idx, val)
    elif isinstance(s, Allocate):
        body = map_stmt(s.body, fstmt, fexpr)
        new = s if body is s.body else Allocate(s.buffer, body)
    else:  # pragma: no cover
        raise TypeError(type(s))
    if fstmt is not None:
        out = fstmt(new)
        if out is not None:
            return out
    return new


def walk_stmt(s: Stmt):
    """Yield every statement in pre-order."""
    stack = [s]
    while stack:
        n = stack.pop()
        yield n
        kids, _ = stmt_children(n)
        stack.extend(reversed(kids))


def stmt_exprs(s: Stmt):
    """Yield every top-level expression held by any statement in ``s``."""
    for n in walk_stmt(s):
        yield from stmt_children(n)[1]


__all__ = ["ForKind", "Buffer", "Stmt", "For", "SeqStmt", "IfThenElse", "TensorStore", "Store",
           "Allocate", "LoweredFunc", "seq", "map_stmt", "walk_stmt", "stmt_exprs", "stmt_children",
           "expr_children", "expr_rebuild"]
