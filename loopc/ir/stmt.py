"""Loop IR statements: small immutable dataclasses; ``For`` carries its kind as an enum.

Expressions are shared with the DSL (``loopc.te.expr``). Before buffer flattening,
reads are ``TensorRead`` and writes ``TensorStore``; after it, ``Load`` and ``Store``
on a ``Buffer`` with one flat row-major index.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable, ClassVar, Tuple

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
    def size(self):
        """The element count: an int, or an integer Expr when the shape is symbolic."""
        n = 1
        for s in self.shape:
            n = n * s if isinstance(n, int) and isinstance(s, int) else _mul(n, s)
        return n

    @property
    def strides(self):
        """Row-major strides in elements (ints, or Exprs after a symbolic dimension)."""
        out, acc = [], 1
        for s in reversed(self.shape):
            out.append(acc)
            acc = acc * s if isinstance(acc, int) and isinstance(s, int) else _mul(acc, s)
        return tuple(reversed(out))

    @functools.cached_property
    def symbolic(self) -> bool:
        """Whether a dimension is a symbolic size (``te.var``), known only at call time."""
        return not all(isinstance(s, int) for s in self.shape)

    __hash__ = object.__hash__


def _mul(a, b):
    from ..arith.extents import mul
    return mul(a, b)


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
class Evaluate(Stmt):
    """Evaluate ``value`` for its effect: an extern stage's call (``loopc.te.extern.ExternCall``)."""
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
    #: symbolic sizes (``loopc.lower.sizes.SizeSignature``): the Vars the kernel receives after
    #: the buffers and how a call binds them; None when every shape is constant
    sizes: Any = None

    @property
    def size_vars(self) -> Tuple[Var, ...]:
        return () if self.sizes is None else self.sizes.size_vars

    #: renders the function as text; ``loopc.ir.printer`` installs its ``format_func`` here when
    #: it is imported (``import loopc.ir`` does), so that this module needs no printer
    formatter: ClassVar[Callable[["LoweredFunc"], str] | None] = None

    def __str__(self):
        return type(self).formatter(self)

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
    if isinstance(s, Evaluate):
        return (), (s.value,)
    raise TypeError(type(s))  # pragma: no cover


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
           "Allocate", "Evaluate", "LoweredFunc", "seq", "walk_stmt", "stmt_exprs", "stmt_children",
           "expr_children", "expr_rebuild"]
