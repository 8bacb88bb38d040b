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

FLOAT_DTYPES = ("float16", "float32", "float64")
SIGNED_DTYPES = ("int8", "int16", "int32", "int64")
UNSIGNED_DTYPES = ("uint8", "uint16", "uint32", "uint64")
INT_DTYPES = SIGNED_DTYPES + UNSIGNED_DTYPES
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


def is_unsigned(dtype: str) -> bool:
    return dtype in UNSIGNED_DTYPES


def bits(dtype: str) -> int:
    """The width of ``dtype`` in bits (bool: 1)."""
    return 1 if dtype == "bool" else int("".join(c for c in dtype if c.isdigit()))


def int_range(dtype: str) -> Tuple[int, int]:
    """The (lowest, highest) value of an integer dtype."""
    n = bits(dtype)
    return (0, 2**n - 1) if is_unsigned(dtype) else (-2**(n - 1), 2**(n - 1) - 1)


def wrap_int(value: int, dtype: str) -> int:
    """``value`` wrapped into ``dtype`` (two's complement, like a C or numpy cast)."""
    lo, _ = int_range(dtype)
    return (int(value) - lo) % (1 << bits(dtype)) + lo


def min_value(dtype: str):
    """The lowest value of ``dtype`` (floats: -inf): the identity of a max reduction
    (``te.min_value`` is the finite one)."""
    return -math.inf if is_float(dtype) else (False if dtype == "bool" else int_range(dtype)[0])


def max_value(dtype: str):
    """The highest value of ``dtype`` (floats: +inf): the identity of a min reduction
    (``te.max_value`` is the finite one)."""
    return math.inf if is_float(dtype) else (True if dtype == "bool" else int_range(dtype)[1])


def promote(a: str, b: str) -> str:
    """The dtype of a binary arithmetic result, numpy's rule for two arrays:

    - the same dtype stays; bool gives way to anything;
    - float beats int (``int8 + float16 -> float16``, as TVM; numpy would widen the float to
      hold the int), the wider float beats the narrower;
    - two signed or two unsigned ints: the wider (``int8 + int32 -> int32``);
    - signed with unsigned: the narrowest signed int holding both (``uint8 + int8 -> int16``,
      ``uint32 + int32 -> int64``); ``uint64`` with a signed int has none (numpy gives float64)
      and is a LoopcError: cast one side.

    A Python number next to an expression takes the expression's dtype (see :func:`as_expr`).
    """
    if a == b or b == "bool":
        return a
    if a == "bool":
        return b
    if is_float(a) or is_float(b):
        if is_float(a) and is_float(b):
            return a if bits(a) > bits(b) else b
        return a if is_float(a) else b
    if is_unsigned(a) == is_unsigned(b):
        return a if bits(a) > bits(b) else b
    signed, unsigned = (b, a) if is_unsigned(a) else (a, b)
    width = max(bits(signed), 2 * bits(unsigned))
    if width > 64:
        raise LoopcError(f"no integer dtype holds both {a} and {b} (numpy gives float64); "
                         f"cast one side with .astype(...) first")
    return f"int{width}"


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
    def equal(self, o):
        """TVM's ``a.equal(b)``: the expression ``a == b`` (so is ``a == b`` itself in loopc)."""
        return _compare(EQ, self, o)
    def __ne__(self, o): return _compare(NE, self, o)
    def __and__(self, o): return _bitwise(BitAnd, self, o)
    def __rand__(self, o): return _bitwise(BitAnd, o, self)
    def __or__(self, o): return _bitwise(BitOr, self, o)
    def __ror__(self, o): return _bitwise(BitOr, o, self)
    def __xor__(self, o): return _bitwise(BitXor, self, o)
    def __rxor__(self, o): return _bitwise(BitXor, o, self)
    def __lshift__(self, o): return _bitwise(ShiftLeft, self, o)
    def __rlshift__(self, o): return _bitwise(ShiftLeft, o, self)
    def __rshift__(self, o): return _bitwise(ShiftRight, self, o)
    def __rrshift__(self, o): return _bitwise(ShiftRight, o, self)
    def __invert__(self): return bitwise_not(self)
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
        if like is not None and is_int(like) and like != "int32":
            lo, hi = int_range(like)
            if not lo <= x <= hi:
                raise LoopcError(f"the Python int {x} is out of range for {like} [{lo}, {hi}]; "
                                 f"write a value in range, or cast the other operand to a wider dtype")
            return Const(x, like)
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


def _bitwise(cls, a, b):
    """``& | ^ << >>``: on two booleans ``& | ^`` are logical and/or/xor; on integers (a bool
    operand becomes an int) bitwise, after :func:`promote`; on floats a LoopcError."""
    a, b = _pair(a, b)
    logical = {BitAnd: And, BitOr: Or, BitXor: NE}.get(cls)
    if a.dtype == b.dtype == "bool" and logical is not None:
        return logical(a, b)
    if is_float(a.dtype) or is_float(b.dtype):
        raise LoopcError(f"'{cls.symbol}' needs integer (or boolean) operands, got {a.dtype} and {b.dtype}; "
                         f"cast with .astype('int32') first")
    return cls(*_unify(a, b))


def bitwise_not(x) -> "Expr":
    """``~x``: logical not of a boolean; of an integer its bitwise complement, built as
    ``x ^ all_ones`` (``~5 -> -6``; uint8: ``~5 -> 250``); floats are a LoopcError."""
    e = as_expr(x)
    if e.dtype == "bool":
        return Not(e)
    if is_float(e.dtype):
        raise LoopcError(f"'~' needs an integer or boolean operand, got {e.dtype}; cast with .astype('int32') first")
    return BitXor(e, Const(-1, e.dtype))


# --------------------------------------------------------------------------- leaves


@dataclass(frozen=True, eq=False, repr=False)
class Const(Expr):
    value: Any
    dtype: str = "int32"

    def __post_init__(self):
        check_dtype(self.dtype)
        if self.dtype == "float16":          # the value the float16 constant really holds
            import numpy as np
            with np.errstate(over="ignore"):
                v = float(np.float16(self.value))
        elif is_float(self.dtype):
            v = float(self.value)
        elif self.dtype == "bool":
            v = bool(self.value)
        else:                                # constant folding wraps like the dtype does
            v = wrap_int(int(self.value), self.dtype)
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


class BitAnd(BinaryOp): symbol = "&"
class BitOr(BinaryOp): symbol = "|"
class BitXor(BinaryOp): symbol = "^"


class ShiftLeft(BinaryOp):
    """``a << b``; a count outside [0, bits) gives 0, as numpy (undefined in C and TVM)."""
    symbol = "<<"


class ShiftRight(BinaryOp):
    """``a >> b``: arithmetic for signed, logical for unsigned dtypes; a count outside
    [0, bits) gives what shifting one bit at a time would (0, or -1 for a negative signed
    ``a``), as numpy (undefined in C and TVM)."""
    symbol = ">>"


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
#: Calls of two float operands (te.power, te.fmod) are named "power" and "fmod"; te.popcount
#: is a Call "popcount" of one integer operand, of that operand's dtype


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
    "max": (Max, min_value),
    "min": (Min, max_value),
}


@dataclass(frozen=True, eq=False, repr=False)
class ValueTuple(Expr):
    """Several values computed together at one point: the body of a multi-output compute (one
    value per output), or the sources / init of a multi-value reduction (argmax's index and
    value). Never reaches the loop IR: lowering stores each value on its own."""
    values: Tuple[Expr, ...]

    @property
    def dtype(self):
        """The first value's dtype (see ``dtypes`` for all of them)."""
        return self.values[0].dtype

    @property
    def dtypes(self):
        return tuple(v.dtype for v in self.values)


def values_of(e: Expr) -> Tuple[Expr, ...]:
    """The values of a ValueTuple, or ``(e,)`` for a single value."""
    return e.values if isinstance(e, ValueTuple) else (e,)


@dataclass(frozen=True, eq=False, repr=False)
class Reduce(Expr):
    """A reduction ``combiner`` of ``source`` over ``axes`` (IterVars); top of a compute body.

    ``combiner`` is "sum", "max", "min" or a user's reducer (``te.comm_reducer``: an object with
    ``identity(dtypes)`` and ``combine(acc_values, new_values)``). A multi-value reducer's
    ``source`` (and ``init``) is a ValueTuple. The accumulator starts from ``init`` when given
    (it may read tensors at the output point), else from the combiner's identity."""
    combiner: Any
    source: Expr
    axes: Tuple[Any, ...]
    condition: Expr | None = None
    init: Expr | None = None

    @property
    def dtype(self):
        return self.source.dtype

    @property
    def num_values(self) -> int:
        return len(values_of(self.source))

    def identity(self) -> Expr:
        """The combiner's identity: a Const, or a ValueTuple of them for a multi-value reducer."""
        if isinstance(self.combiner, str):
            return Const(REDUCERS[self.combiner][1](self.dtype), self.dtype)
        ids = self.combiner.identity(tuple(v.dtype for v in values_of(self.source)))
        return ids[0] if len(ids) == 1 else ValueTuple(ids)

    def start(self) -> Expr:
        """What the accumulator holds before the first update: ``init``, else the identity."""
        return self.identity() if self.init is None else self.init

    def combine(self, acc: Expr, value: Expr) -> Expr:
        """``acc`` combined with ``value``; ValueTuples in and out for a multi-value reducer."""
        if isinstance(self.combiner, str):
            return REDUCERS[self.combiner][0](acc, value)
        out = self.combiner.combine(values_of(acc), values_of(value))
        return out[0] if len(out) == 1 else ValueTuple(tuple(out))


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
        return (e.source,) + tuple(x for x in (e.condition, e.init) if x is not None)
    if isinstance(e, ValueTuple):
        return e.values
    return getattr(e, "operands", ())      # a node declared elsewhere (loopc.te.extern) lists its own


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
        rest = iter(c[1:])
        condition = None if e.condition is None else next(rest)
        return Reduce(e.combiner, c[0], e.axes, condition, None if e.init is None else next(rest))
    if isinstance(e, ValueTuple):
        return ValueTuple(tuple(c))
    if hasattr(e, "with_operands"):
        return e.with_operands(tuple(c))
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
    if isinstance(a, Reduce) and (a.combiner != b.combiner or a.axes != b.axes
                                  or (a.condition is None) != (b.condition is None)
                                  or (a.init is None) != (b.init is None)):
        return False
    ca, cb = children(a), children(b)
    return len(ca) == len(cb) and all(expr_equal(x, y) for x, y in zip(ca, cb))
