"""Scalar expressions shared by tensor expressions and the loop IR.

Every node is a small frozen dataclass. Python operators build new nodes:

    >>> i = Var("i"); (i * 4 + 1) < 10
    LT(a=Add(...), b=Const(10, 'int32'))

Nodes compare by identity (``a is b``); ``==`` builds an :class:`EQ` node whose
truth value is identity, so ``var in list_of_vars`` keeps working.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Tuple

from ..errors import LoopcError

FLOAT_DTYPES = ("float32", "float64")
INT_DTYPES = ("int32", "int64")
DTYPES = FLOAT_DTYPES + INT_DTYPES + ("bool",)


def check_dtype(dtype: str) -> str:
    dtype = str(dtype)
    if dtype not in DTYPES:
        raise LoopcError(f"unsupported dtype {dtype!r}; loopc supports {', '.join(DTYPES)}")
    return dtype


def is_float(dtype: str) -> bool:
    return dtype in FLOAT_DTYPES


def is_int(dtype: str) -> bool:
    return dtype in INT_DTYPES


def promote(a: str, b: str) -> str:
    """The dtype of a binary arithmetic result (numpy-like, float beats int)."""
    if a == b:
        return a
    order = ("bool", "int32", "int64", "float32", "float64")
    return a if order.index(a) > order.index(b) else b


class ExprOp:
    """Operator overloads; anything with ``_as_expr()`` can use them."""

    def _as_expr(self) -> "Expr":  # pragma: no cover - overridden
        raise NotImplementedError

    def __add__(self, o): return _arith(Add, self, o)
    def __radd__(self, o): return _arith(Add, o, self)
    def __sub__(self, o): return _arith(Sub, self, o)
    def __rsub__(self, o): return _arith(Sub, o, self)
    def __mul__(self, o): return _arith(Mul, self, o)
    def __rmul__(self, o): return _arith(Mul, o, self)
    def __truediv__(self, o): return _div(self, o)
    def __rtruediv__(self, o): return _div(o, self)
    def __floordiv__(self, o): return _arith(FloorDiv, self, o)
    def __rfloordiv__(self, o): return _arith(FloorDiv, o, self)
    def __mod__(self, o): return _arith(FloorMod, self, o)
    def __rmod__(self, o): return _arith(FloorMod, o, self)
    def __neg__(self):
        e = as_expr(self)
        if e.dtype == "bool":
            raise LoopcError("unary minus of a boolean expression; use ~x for logical not, "
                             "or x.astype('int32') first")
        return Sub(Const(0, e.dtype), e)
    def __lt__(self, o): return _compare(LT, self, o)
    def __le__(self, o): return _compare(LE, self, o)
    def __gt__(self, o): return _compare(LT, o, self)
    def __ge__(self, o): return _compare(LE, o, self)
    def __eq__(self, o): return _compare(EQ, self, o)
    def __ne__(self, o): return _compare(NE, self, o)
    def __and__(self, o): return _logical(And, self, o)
    def __rand__(self, o): return _logical(And, o, self)
    def __or__(self, o): return _logical(Or, self, o)
    def __ror__(self, o): return _logical(Or, o, self)
    def __invert__(self): return Not(_as_bool(self))
    __hash__ = object.__hash__

    def __bool__(self):
        raise LoopcError(
            "a loopc expression has no Python truth value; use te.if_then_else, "
            "te.all or te.any instead of Python's if/and/or")

    def astype(self, dtype: str) -> "Expr":
        e = as_expr(self)
        dtype = check_dtype(dtype)
        return e if e.dtype == dtype else Cast(dtype, e)


class Expr(ExprOp):
    dtype: str

    def _as_expr(self):
        return self

    def __str__(self):
        """The expression as loopc prints it (``A[i, k] * B[k, j]``), not its node tree."""
        from ..ir.printer import format_expr
        try:
            return format_expr(self)
        except Exception:  # noqa: BLE001 - a node the printer lacks: the tree is still right
            return repr(self)


def as_expr(x: Any, like: str | None = None) -> Expr:
    """Coerce a Python number, an IterVar or an Expr to an Expr.

    ``like`` is the dtype of the other operand: a Python float next to a
    float64 expression becomes float64, a Python int next to a float becomes float.
    """
    if isinstance(x, Expr):
        return x
    if isinstance(x, ExprOp):
        return x._as_expr()
    if isinstance(x, bool):
        return Const(x, "bool")
    if isinstance(x, int):
        if like is not None and is_float(like):
            return Const(float(x), like)
        if like == "int64":
            return Const(x, "int64")
        return Const(x, "int32" if -2**31 <= x < 2**31 else "int64")
    if isinstance(x, float):
        return Const(x, like if like is not None and is_float(like) else "float32")
    try:
        import numpy as np
        if isinstance(x, np.generic):
            return Const(x.item(), check_dtype(str(x.dtype)))
    except ImportError:  # pragma: no cover
        pass
    raise LoopcError(f"cannot use {x!r} of type {type(x).__name__} in a loopc expression")


def _pair(a, b) -> Tuple[Expr, Expr]:
    ea = a if isinstance(a, ExprOp) else None
    eb = b if isinstance(b, ExprOp) else None
    if ea is not None and eb is not None:
        return as_expr(a), as_expr(b)
    if ea is not None:
        a = as_expr(a)
        return a, as_expr(b, a.dtype)
    b = as_expr(b)
    return as_expr(a, b.dtype), b


def _unify(a: Expr, b: Expr) -> Tuple[Expr, Expr]:
    dt = promote(a.dtype, b.dtype)
    if dt == "bool":
        dt = "int32"
    return a.astype(dt), b.astype(dt)


def _arith(cls, a, b):
    a, b = _unify(*_pair(a, b))
    if cls in (FloorDiv, FloorMod) and is_float(a.dtype) and cls is FloorMod:
        raise LoopcError("% is defined for integer expressions only")
    return cls(a, b)


def _div(a, b):
    a, b = _pair(a, b)
    if not is_float(a.dtype) and not is_float(b.dtype):
        raise LoopcError(
            "'/' of two integer expressions is ambiguous; use '//' for floor division "
            "or cast one side with .astype('float32')")
    a, b = _unify(a, b)
    return Div(a, b)


def _compare(cls, a, b):
    a, b = _unify(*_pair(a, b))
    return cls(a, b)


def _as_bool(x) -> Expr:
    e = as_expr(x)
    if e.dtype != "bool":
        raise LoopcError(f"expected a boolean expression, got {e.dtype}: {e}")
    return e


def _logical(cls, a, b):
    a, b = _pair(a, b)
    return cls(_as_bool(a), _as_bool(b))


# --------------------------------------------------------------------------- leaves


@dataclass(frozen=True, eq=False, repr=False)
class Const(Expr):
    value: Any
    dtype: str = "int32"

    def __post_init__(self):
        check_dtype(self.dtype)
        if is_float(self.dtype):
            v = float(self.value)
        elif self.dtype == "bool":
            v = bool(self.value)
        else:
            v = int(self.value)
        object.__setattr__(self, "value", v)

    def __repr__(self):
        return f"Const({self.value!r}, {self.dtype!r})"


@dataclass(frozen=True, eq=False, repr=False)
class Var(Expr):
    """A named scalar variable (a loop index or, later, a symbolic size)."""
    name: str
    dtype: str = "int32"

    def __repr__(self):
        return f"Var({self.name!r})"


@dataclass(frozen=True, eq=False, repr=False)
class SizeVar(Var):
    """A Var known to be at least 1: a symbolic dimension (TVM's ``te.size_var``)."""

    def __repr__(self):
        return f"SizeVar({self.name!r})"


# --------------------------------------------------------------------------- operators


@dataclass(frozen=True, eq=False, repr=False)
class BinaryOp(Expr):
    a: Expr
    b: Expr
    symbol = "?"

    @property
    def dtype(self):
        return self.a.dtype

    def __repr__(self):
        return f"{type(self).__name__}({self.a!r}, {self.b!r})"


class Add(BinaryOp): symbol = "+"
class Sub(BinaryOp): symbol = "-"
class Mul(BinaryOp): symbol = "*"
class Div(BinaryOp): symbol = "/"
class FloorDiv(BinaryOp): symbol = "//"
class FloorMod(BinaryOp): symbol = "%"
class Min(BinaryOp): symbol = "min"
class Max(BinaryOp): symbol = "max"


class CmpOp(BinaryOp):
    dtype = "bool"


class LT(CmpOp): symbol = "<"
class LE(CmpOp): symbol = "<="


class EQ(CmpOp):
    symbol = "=="

    def __bool__(self):  # identity, so that `x in [vars]` works
        return self.a is self.b


class NE(CmpOp):
    symbol = "!="

    def __bool__(self):
        return self.a is not self.b


class And(CmpOp): symbol = "and"
class Or(CmpOp): symbol = "or"


@dataclass(frozen=True, eq=False, repr=False)
class Not(Expr):
    a: Expr
    dtype = "bool"


@dataclass(frozen=True, eq=False, repr=False)
class Cast(Expr):
    dtype: str
    value: Expr


@dataclass(frozen=True, eq=False, repr=False)
class Select(Expr):
    """``t if cond else f``; only the chosen side is evaluated (a guarded load is safe)."""
    cond: Expr
    t: Expr
    f: Expr

    @property
    def dtype(self):
        return self.t.dtype


MATH_FUNCS = ("exp", "log", "sqrt", "tanh", "sigmoid", "abs", "floor", "exp2", "log2", "log10", "ceil", "trunc",
              "round")
#: Calls of two float operands (te.power, te.fmod) are named "power" and "fmod"


@dataclass(frozen=True, eq=False, repr=False)
class Call(Expr):
    """A pure math intrinsic: one of MATH_FUNCS."""
    name: str
    args: Tuple[Expr, ...]
    dtype: str


@dataclass(frozen=True, eq=False, repr=False)
class TensorRead(Expr):
    """``tensor[indices]`` before buffer flattening."""
    tensor: Any
    indices: Tuple[Expr, ...]

    @property
    def dtype(self):
        return self.tensor.dtype


@dataclass(frozen=True, eq=False, repr=False)
class Load(Expr):
    """``buffer[index]`` after flattening: one flat, row-major index."""
    buffer: Any
    index: Expr

    @property
    def dtype(self):
        return self.buffer.dtype


REDUCERS = {
    "sum": (Add, lambda dt: 0),
    "max": (Max, lambda dt: -math.inf if is_float(dt) else -(2**31 if dt == "int32" else 2**63)),
    "min": (Min, lambda dt: math.inf if is_float(dt) else (2**31 - 1 if dt == "int32" else 2**63 - 1)),
}


@dataclass(frozen=True, eq=False, repr=False)
class Reduce(Expr):
    """A reduction ``combiner`` of ``source`` over ``axes`` (IterVars); top of a compute body."""
    combiner: str
    source: Expr
    axes: Tuple[Any, ...]
    condition: Expr | None = None

    @property
    def dtype(self):
        return self.source.dtype

    def identity(self) -> Const:
        return Const(REDUCERS[self.combiner][1](self.dtype), self.dtype)

    def combine(self, acc: Expr, value: Expr) -> Expr:
        return REDUCERS[self.combiner][0](acc, value)


def children(e: Expr) -> Tuple[Expr, ...]:
    """The direct sub-expressions of ``e``."""
    if isinstance(e, BinaryOp):
        return (e.a, e.b)
    if isinstance(e, Not):
        return (e.a,)
    if isinstance(e, Cast):
        return (e.value,)
    if isinstance(e, Select):
        return (e.cond, e.t, e.f)
    if isinstance(e, Call):
        return e.args
    if isinstance(e, TensorRead):
        return e.indices
    if isinstance(e, Load):
        return (e.index,)
    if isinstance(e, Reduce):
        return (e.source,) if e.condition is None else (e.source, e.condition)
    return ()


def rebuild(e: Expr, new_children) -> Expr:
    """``e`` with its children replaced; returns ``e`` itself when nothing changed."""
    old = children(e)
    if all(x is y for x, y in zip(old, new_children)):
        return e
    c = list(new_children)
    if isinstance(e, BinaryOp):
        return type(e)(c[0], c[1])
    if isinstance(e, Not):
        return Not(c[0])
    if isinstance(e, Cast):
        return Cast(e.dtype, c[0])
    if isinstance(e, Select):
        return Select(c[0], c[1], c[2])
    if isinstance(e, Call):
        return Call(e.name, tuple(c), e.dtype)
    if isinstance(e, TensorRead):
        return TensorRead(e.tensor, tuple(c))
    if isinstance(e, Load):
        return Load(e.buffer, c[0])
    if isinstance(e, Reduce):
        return Reduce(e.combiner, c[0], e.axes, c[1] if len(c) > 1 else None)
    raise TypeError(type(e))  # pragma: no cover


def transform(e: Expr, fn) -> Expr:
    """Post-order rewrite: ``fn(node_with_rewritten_children)`` returns a node or None (keep)."""
    new = rebuild(e, [transform(c, fn) for c in children(e)])
    out = fn(new)
    return new if out is None else out


def substitute(e: Expr, mapping: dict) -> Expr:
    """Replace Vars by expressions (``mapping`` keys are Var objects)."""
    if not mapping:
        return e
    return transform(e, lambda n: mapping.get(n) if isinstance(n, Var) else None)


def walk(e: Expr):
    """Yield every node of ``e`` in pre-order."""
    stack = [e]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(reversed(children(n)))


def free_vars(e: Expr) -> set:
    return {n for n in walk(e) if isinstance(n, Var)}


def expr_equal(a: Expr, b: Expr) -> bool:
    """Structural equality (Vars, tensors and buffers by identity)."""
    if a is b:
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, Const):
        return a.dtype == b.dtype and a.value == b.value
    if isinstance(a, Var):
        return False
    if isinstance(a, (Cast, Call)) and (a.dtype != b.dtype or getattr(a, "name", None) != getattr(b, "name", None)):
        return False
    if isinstance(a, TensorRead) and a.tensor is not b.tensor:
        return False
    if isinstance(a, Load) and a.buffer is not b.buffer:
        return False
    if isinstance(a, Reduce) and (a.combiner != b.combiner or a.axes != b.axes):
        return False
    ca, cb = children(a), children(b)
    return len(ca) == len(cb) and all(expr_equal(x, y) for x, y in zip(ca, cb))
