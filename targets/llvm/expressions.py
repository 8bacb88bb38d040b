"""Expressions: loop-IR values as LLVM values, with numpy's integer semantics (wrapping
+ - *, non-trapping // and %) and NaN-propagating float min/max."""
from __future__ import annotations

import llvmlite.ir as ir

from loopc.errors import BuildError
from loopc.arith import bound_of
from loopc.te import expr as E

from .conversions import Conversions
from .lltypes import FMF, I32, I64, LLTYPE
from .vector import Ramp, is_vec


class Expressions(Conversions):
    """Expression emission of :class:`~loopc.targets.llvm.codegen.FunctionCodegen` (uses its
    builder, ``env``, ``lanes``, ``mask``, ``ranges``, the lane helpers, ``load`` and ``intrinsic``)."""

    def scalar(self, e):
        v = self.value(e)
        if is_vec(v):
            raise BuildError(f"expected a lane-invariant value for {e}")
        return v

    def value(self, e):
        if isinstance(e, E.Const):
            ty = LLTYPE[e.dtype]
            if isinstance(ty, ir.IntType):        # an unsigned constant as its two's complement
                v = int(e.value)
                return ir.Constant(ty, v - (1 << ty.width) if ty.width > 1 and v >= 1 << (ty.width - 1) else v)
            return ir.Constant(ty, e.value)
        if isinstance(e, E.Var):
            if e not in self.env:
                raise BuildError(f"variable {e.name} is used outside the loop that defines it")
            return self.env[e]
        if isinstance(e, E.Load):
            return self.load(e)
        if isinstance(e, E.Select):
            return self.select(e)
        if isinstance(e, (E.And, E.Or)):
            a, b = self.value(e.a), self.value(e.b)
            a, b = self.unify(a, b)
            return self.builder.and_(a, b) if isinstance(e, E.And) else self.builder.or_(a, b)
        if isinstance(e, E.Not):
            return self.builder.not_(self.materialize(self.value(e.a)))
        if isinstance(e, E.BinaryOp):
            return self.binary(e)
        if isinstance(e, E.Cast):
            return self.cast(self.materialize(self.value(e.value)), e.value.dtype, e.dtype)
        if isinstance(e, E.Call):
            return self.call(e)
        raise BuildError(f"the LLVM target cannot emit {type(e).__name__}")

    def unify(self, a, b, dtype=None):
        """Make both scalars, or both materialised vectors (of ``dtype``'s lanes)."""
        if is_vec(a) or is_vec(b):
            return self.broadcast(a, self.lanes, dtype), self.broadcast(b, self.lanes, dtype)
        return a, b

    def binary(self, e):
        a, b = self.value(e.a), self.value(e.b)
        dtype = e.a.dtype
        # keep integer ramps symbolic under + - * const
        if (isinstance(a, Ramp) or isinstance(b, Ramp)) and dtype in ("int32", "int64"):
            r = self.ramp_arith(e, a, b)
            if r is not None:
                return r
        a, b = self.unify(a, b, dtype)
        bld = self.builder
        if dtype == "float16" and not isinstance(e, E.CmpOp):
            return self.round_half(self.float_binary(e, a, b))      # IEEE half: round every result
        if E.is_float(dtype):
            return self.float_binary(e, a, b)
        if isinstance(e, (E.BitAnd, E.BitOr, E.BitXor, E.ShiftLeft, E.ShiftRight)):
            return self.bitwise(e, a, b)
        if E.is_unsigned(dtype):
            return self.unsigned_binary(e, a, b)
        if isinstance(e, (E.Add, E.Sub, E.Mul)):
            return self.int_arith(e, a, b)
        if isinstance(e, (E.FloorDiv, E.FloorMod)):
            out = self.safe_divmod(e, a, b)
            if dtype == "int32" and not is_vec(out) and not (isinstance(e.b, E.Const) and e.b.value > 0):
                out = self.wrap32(out)      # INT32_MIN // -1 is 2**31 in 64 bits: wrap like numpy
            return out
        if isinstance(e, E.Min): return bld.select(bld.icmp_signed("<", a, b), a, b)
        if isinstance(e, E.Max): return bld.select(bld.icmp_signed(">", a, b), a, b)
        op = {E.LT: "<", E.LE: "<=", E.EQ: "==", E.NE: "!="}[type(e)]
        return bld.icmp_signed(op, a, b)

    def float_binary(self, e, a, b):
        bld = self.builder
        if isinstance(e, E.Add): return bld.fadd(a, b, flags=FMF)
        if isinstance(e, E.Sub): return bld.fsub(a, b, flags=FMF)
        if isinstance(e, E.Mul): return bld.fmul(a, b, flags=FMF)
        if isinstance(e, E.Div): return bld.fdiv(a, b)
        if isinstance(e, E.FloorDiv): return bld.call(self.intrinsic("floor", a.type), [bld.fdiv(a, b)])
        # NaN-propagating, like numpy's maximum/minimum
        if isinstance(e, E.Min): return bld.call(self.intrinsic("minimum", a.type, args=[a.type, a.type]), [a, b])
        if isinstance(e, E.Max): return bld.call(self.intrinsic("maximum", a.type, args=[a.type, a.type]), [a, b])
        op = {E.LT: "<", E.LE: "<=", E.EQ: "==", E.NE: "!="}[type(e)]
        return bld.fcmp_ordered(op, a, b) if op != "!=" else bld.fcmp_unordered(op, a, b)

    def unsigned_binary(self, e, a, b):
        """Unsigned + - * (wrapping), // and % (udiv, urem), compares and min/max."""
        bld = self.builder
        if isinstance(e, (E.Add, E.Sub, E.Mul)):
            op = {E.Add: bld.add, E.Sub: bld.sub, E.Mul: bld.mul}[type(e)]
            return op(a, b, flags=["nuw"] if self.fits(e) else [])
        if isinstance(e, (E.FloorDiv, E.FloorMod)):
            return self.unsigned_divmod(e, a, b)
        if isinstance(e, E.Min): return bld.select(bld.icmp_unsigned("<", a, b), a, b)
        if isinstance(e, E.Max): return bld.select(bld.icmp_unsigned(">", a, b), a, b)
        op = {E.LT: "<", E.LE: "<=", E.EQ: "==", E.NE: "!="}[type(e)]
        return bld.icmp_unsigned(op, a, b)

    def int_arith(self, e, a, b):
        """Integer + - * with numpy's semantics: two's-complement wrap at the dtype's width.

        A scalar int32 lives in 64 bits (see LLTYPE), where + - * of two int32 values cannot
        overflow; the result is wrapped back to 32 bits unless the loop ranges prove it fits
        (index math). int64 and vector lanes wrap in hardware: no ``nsw`` unless proven."""
        bld = self.builder
        fits = self.fits(e)
        scalar32 = e.dtype == "int32" and not is_vec(a)
        flags = ["nsw"] if fits or scalar32 else []
        op = {E.Add: bld.add, E.Sub: bld.sub, E.Mul: bld.mul}[type(e)]
        out = op(a, b, flags=flags)
        return out if fits or not scalar32 else self.wrap32(out)

    def fits(self, e) -> bool:
        """True when the loop ranges prove that ``e`` stays within its integer dtype."""
        key = id(e)
        if key not in self._fits:
            bound = bound_of(e, self.ranges)
            lo, hi = E.int_range(e.dtype)
            self._fits[key] = (e, bound is not None and lo <= bound[0] and bound[1] <= hi)
        return self._fits[key][1]

    def wrap32(self, v):
        """A 64-bit int32 value wrapped to 32 bits (two's complement) and widened again."""
        return self.builder.sext(self.builder.trunc(v, I32), I64)

    def ramp_arith(self, e, a, b):
        bld = self.builder
        lanes = self.lanes
        if isinstance(e, E.Add):
            if isinstance(a, Ramp) and isinstance(b, Ramp):
                return Ramp(bld.add(a.base, b.base, flags=["nsw"]), a.stride + b.stride, lanes, a.dtype)
            r, s = (a, b) if isinstance(a, Ramp) else (b, a)
            if not is_vec(s):
                return Ramp(bld.add(r.base, s, flags=["nsw"]), r.stride, lanes, r.dtype)
        if isinstance(e, E.Sub):
            if isinstance(a, Ramp) and isinstance(b, Ramp):
                return Ramp(bld.sub(a.base, b.base, flags=["nsw"]), a.stride - b.stride, lanes, a.dtype)
            if isinstance(a, Ramp) and not is_vec(b):
                return Ramp(bld.sub(a.base, b, flags=["nsw"]), a.stride, lanes, a.dtype)
        if isinstance(e, E.Mul):
            r, s = (a, b) if isinstance(a, Ramp) else (b, a)
            if isinstance(s, ir.Constant) and not is_vec(s):
                return Ramp(bld.mul(r.base, s, flags=["nsw"]), r.stride * int(s.constant), lanes, r.dtype)
        return None

    def safe_divmod(self, e, a, b):
        """Integer // and % with numpy's conventions, which never trap: x // 0 == x % 0 == 0, and
        x // -1 == -x (wrapping: INT_MIN // -1 == INT_MIN), x % -1 == 0 — in every lane,
        masked-off ones included (sdiv traps on a zero divisor and on INT_MIN / -1)."""
        fn = self.floordiv if isinstance(e, E.FloorDiv) else self.floormod
        if isinstance(e.b, E.Const) and e.b.value not in (0, -1):
            return fn(a, b)
        bld = self.builder

        def const(v):
            return ir.Constant(b.type, [v] * b.type.count) if isinstance(b.type, ir.VectorType) else ir.Constant(b.type, v)
        zero = ir.Constant(b.type, None)
        is_zero = bld.icmp_signed("==", b, zero)
        is_minus_one = bld.icmp_signed("==", b, const(-1))
        special = bld.or_(is_zero, is_minus_one)
        regular = fn(a, bld.select(special, const(1), b))
        minus_one = bld.sub(zero, a) if isinstance(e, E.FloorDiv) else zero
        return bld.select(is_zero, zero, bld.select(is_minus_one, minus_one, regular))

    def floordiv(self, a, b):
        bld = self.builder
        q = bld.sdiv(a, b)
        r = bld.srem(a, b)
        zero = ir.Constant(a.type, None)
        adjust = bld.and_(bld.icmp_signed("!=", r, zero),
                          bld.icmp_signed("<", bld.xor(r, b), zero))
        return bld.sub(q, bld.zext(adjust, a.type))

    def floormod(self, a, b):
        bld = self.builder
        r = bld.srem(a, b)
        zero = ir.Constant(a.type, None)
        adjust = bld.and_(bld.icmp_signed("!=", r, zero),
                          bld.icmp_signed("<", bld.xor(r, b), zero))
        return bld.add(r, bld.select(adjust, b, zero))

    def select(self, e: E.Select):
        """Only the chosen side is evaluated: per-lane masks in vector code, branches otherwise."""
        cond = self.value(e.cond)
        bld = self.builder
        if self.lanes is not None:
            cond = self.broadcast(cond, self.lanes)
            saved = self.mask
            self.mask = cond if saved is None else bld.and_(saved, cond)
            t = self.broadcast(self.value(e.t), self.lanes, e.dtype)
            inv = bld.not_(cond)
            self.mask = inv if saved is None else bld.and_(saved, inv)
            f = self.broadcast(self.value(e.f), self.lanes, e.dtype)
            self.mask = saved
            return bld.select(cond, t, f)
        with bld.if_else(cond) as (then, other):
            with then:
                t = self.value(e.t)
                t_block = bld.block
            with other:
                f = self.value(e.f)
                f_block = bld.block
        phi = bld.phi(t.type)
        phi.add_incoming(t, t_block)
        phi.add_incoming(f, f_block)
        return phi

    def call(self, e: E.Call):
        out = self.call_in_float32(e)
        return self.round_half(out) if e.dtype == "float16" else out

    def call_in_float32(self, e: E.Call):
        x = self.materialize(self.value(e.args[0]))
        bld = self.builder
        ty = x.type
        if len(e.args) == 2:         # power, fmod
            y = self.materialize(self.value(e.args[1]))
            x, y = self.unify(x, y, e.dtype)
            if e.name == "fmod":
                return bld.frem(x, y)
            return bld.call(self.intrinsic("pow", x.type, args=[x.type, x.type]), [x, y])
        if e.name == "popcount":
            return self.popcount(x, e.dtype)
        if e.name == "abs" and E.is_unsigned(e.dtype):
            return x
        if e.name == "abs" and E.is_int(e.dtype):
            neg = bld.sub(ir.Constant(ty, None), x)
            out = bld.select(bld.icmp_signed("<", x, ir.Constant(ty, None)), neg, x)
            return self.wrap32(out) if e.dtype == "int32" and ty == I64 else out   # abs(INT_MIN) == INT_MIN
        if e.name == "sigmoid":
            ex = bld.call(self.intrinsic("exp", ty), [bld.fneg(x)])
            one = ir.Constant(ty, [1.0] * ty.count) if isinstance(ty, ir.VectorType) else ir.Constant(ty, 1.0)
            return bld.fdiv(one, bld.fadd(one, ex))
        name = {"abs": "fabs", "round": "roundeven"}.get(e.name, e.name)     # round half to even, as numpy
        return bld.call(self.intrinsic(name, ty), [x])

