"""TVM's integer intrinsics by their ``tvm.tir`` names (re-exported by ``te``):

    te.bitwise_and(a, b)   == a & b        te.shift_left(a, n)  == a << n
    te.bitwise_or(a, b)    == a | b        te.shift_right(a, n) == a >> n   (logical for uint)
    te.bitwise_xor(a, b)   == a ^ b        te.popcount(a)       -> set bits of a, a's dtype
    te.bitwise_not(a)      == ~a

On booleans ``& | ^ ~`` stay logical; on floats they are a LoopcError. Operands are promoted
like arithmetic (``loopc.te.expr.promote``); a Python int takes the other operand's dtype.
"""
from __future__ import annotations

from ..errors import LoopcError
from . import expr as E


def bitwise_and(x, y):
    """``x & y``."""
    return E._bitwise(E.BitAnd, x, y)


def bitwise_or(x, y):
    """``x | y``."""
    return E._bitwise(E.BitOr, x, y)


def bitwise_xor(x, y):
    """``x ^ y``."""
    return E._bitwise(E.BitXor, x, y)


def bitwise_not(x):
    """``~x``."""
    return E.bitwise_not(x)


def shift_left(x, y):
    """``x << y``; a count outside [0, bits) gives 0 (numpy's rule; TVM leaves it undefined)."""
    return E._bitwise(E.ShiftLeft, x, y)


def shift_right(x, y):
    """``x >> y``: arithmetic for signed, logical for unsigned dtypes; a count outside
    [0, bits) gives 0 or -1 (numpy's rule; TVM leaves it undefined)."""
    return E._bitwise(E.ShiftRight, x, y)


def popcount(x):
    """The number of set bits of integer ``x`` (``llvm.ctpop``), in ``x``'s dtype:
    ``popcount(int8(-1)) -> 8``."""
    e = E.as_expr(x)
    if not E.is_int(e.dtype):
        raise LoopcError(f"te.popcount needs an integer operand, got {e.dtype}; cast with .astype('int32') first")
    return E.Call("popcount", (e,), e.dtype)


