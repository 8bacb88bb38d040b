"""Casts between every dtype, the bitwise operators and shifts, unsigned division, and float16's
rounding — numpy's results, with no operation that LLVM leaves undefined (poison):

    uint8(x) of float x      fptosi to i64, trunc to i8           (-1.0 -> 255, as numpy on x86)
    int32 a << n             shl, and 0 where n is outside [0, 32)  (numpy's rule)
    uint8 a // b             udiv, and 0 where b == 0               (numpy's rule)
    float16 a + b            fadd in float, fptrunc to half, fpext  (IEEE half arithmetic)

half <-> float conversions are ``fptrunc``/``fpext`` where the CPU has them (x86 F16C, ARM);
elsewhere LLVM would call compiler-rt's ``__truncsfhf2``, which a JIT-ed module cannot reach,
so they are integer bit operations instead (round to nearest even, subnormals, inf and NaN kept).
"""
from __future__ import annotations

import llvmlite.ir as ir

from loopc.te import expr as E

from .lltypes import F16, F32, I16, I32, I64, LLTYPE


def _like(v, element):
    return ir.VectorType(element, v.type.count) if isinstance(v.type, ir.VectorType) else element


def _element(v):
    return v.type.element if isinstance(v.type, ir.VectorType) else v.type


def _const(like, value):
    """A constant of ``like``'s type (a vector of it in every lane)."""
    return _typed_const(like.type, value)


def _typed_const(ty, value):
    if isinstance(ty, ir.VectorType):
        return ir.Constant(ty, [value] * ty.count)
    return ir.Constant(ty, value)


class Conversions:
    """Mixin of :class:`~loopc.targets.llvm.codegen.FunctionCodegen` (uses ``self.builder``)."""

    def round_half(self, v):
        """A float value rounded to float16 and back: one half-precision result."""
        return self.half_to_float(self.float_to_half(v))

    def float_to_half(self, v):
        """float -> half, rounding to nearest even."""
        if self.native_half:
            return self.builder.fptrunc(v, _like(v, F16))
        return self.builder.bitcast(self._half_bits(v), _like(v, F16))

    def half_to_float(self, h):
        """half -> float (exact)."""
        if self.native_half:
            return self.builder.fpext(h, _like(h, F32))
        return self._float_of_half_bits(self.builder.bitcast(h, _like(h, I16)))

    def _half_bits(self, f):
        """The float16 bits (i16) of float ``f``, round to nearest even, in integer operations
        (F. Giesen's float_to_half_fast3_rtne)."""
        bld = self.builder
        u = bld.bitcast(f, _like(f, I32))
        sign = bld.and_(u, _const(u, -0x80000000))
        u = bld.xor(u, sign)
        inf_or_nan = bld.select(bld.icmp_unsigned(">", u, _const(u, 0x7F800000)), _const(u, 0x7E00), _const(u, 0x7C00))
        denorm_magic = ((127 - 15) + (23 - 10) + 1) << 23
        as_float = bld.fadd(bld.bitcast(u, f.type), bld.bitcast(_const(u, denorm_magic), f.type))
        subnormal = bld.sub(bld.bitcast(as_float, u.type), _const(u, denorm_magic))
        odd = bld.and_(bld.lshr(u, _const(u, 13)), _const(u, 1))
        normal = bld.lshr(bld.add(bld.add(u, _const(u, ((15 - 127) << 23) + 0xFFF)), odd), _const(u, 13))
        out = bld.select(bld.icmp_unsigned(">=", u, _const(u, (127 + 16) << 23)), inf_or_nan,
                         bld.select(bld.icmp_unsigned("<", u, _const(u, 113 << 23)), subnormal, normal))
        return bld.trunc(bld.or_(out, bld.lshr(sign, _const(sign, 16))), _like(f, I16))

    def _float_of_half_bits(self, h):
        """The float of float16 bits ``h`` (i16): the exponent rebiased by a multiply by 2**112,
        which also normalises a subnormal; inf and NaN keep an all-ones exponent."""
        bld = self.builder
        x = bld.zext(h, _like(h, I32))
        sign = bld.shl(bld.and_(x, _const(x, 0x8000)), _const(x, 16))
        magnitude = bld.and_(x, _const(x, 0x7FFF))
        shifted = bld.shl(magnitude, _const(x, 13))
        scaled = bld.fmul(bld.bitcast(shifted, _like(h, F32)), _typed_const(_like(h, F32), 2.0**112))
        bits = bld.select(bld.icmp_unsigned(">=", magnitude, _const(x, 0x7C00)),
                          bld.or_(shifted, _const(x, 0x7F800000)), bld.bitcast(scaled, x.type))
        return bld.bitcast(bld.or_(bits, sign), _like(h, F32))

    def cast(self, v, src, dst):
        if src == dst:
            return v
        bld = self.builder
        vec = isinstance(v.type, ir.VectorType)
        ty = _like(v, I32 if vec and dst == "int32" else LLTYPE[dst])   # int32 lanes are 32 bits
        if dst == "bool":
            zero = ir.Constant(v.type, None)
            return bld.fcmp_unordered("!=", v, zero) if E.is_float(src) else bld.icmp_signed("!=", v, zero)
        if src == "bool":
            return bld.uitofp(v, ty) if E.is_float(dst) else bld.zext(v, ty)
        if E.is_float(src) and E.is_float(dst):
            if _element(v) != _element(ir.Constant(ty, None)):
                v = bld.fpext(v, ty) if dst == "float64" else bld.fptrunc(v, ty)
            return self.round_half(v) if dst == "float16" else v     # float64 -> float16 via float32
        if E.is_float(src):
            return self.float_to_int(v, dst, ty)
        if E.is_float(dst):
            out = bld.uitofp(v, ty) if E.is_unsigned(src) else bld.sitofp(v, ty)
            return self.round_half(out) if dst == "float16" else out
        return self.int_to_int(v, src, dst, ty)

    def float_to_int(self, v, dst, ty):
        """Truncation toward zero; a narrow int wraps like numpy's cast on x86 (through int64)."""
        bld = self.builder
        width = E.bits(dst)
        if dst == "uint64":        # fptoui is poison below zero: negative values go through int64
            negative = bld.fcmp_ordered("<", v, ir.Constant(v.type, None))
            return bld.select(negative, bld.fptosi(v, ty), bld.fptoui(v, ty))
        if width >= 32 and dst != "uint32":
            return bld.fptosi(v, ty)                   # int32 and int64, as before
        wide = bld.fptosi(v, _like(v, I64))
        out = bld.trunc(wide, _like(v, ir.IntType(width)))
        return out if _element(ir.Constant(ty, None)).width == width else bld.sext(out, ty)

    def int_to_int(self, v, src, dst, ty):
        """Wrap to ``dst``'s width (sign- or zero-extending from ``src``), then widen to its
        computation type (a scalar int32 lives sign-extended in 64 bits)."""
        bld = self.builder
        width, have = E.bits(dst), _element(v).width
        exact = _like(v, ir.IntType(width))
        if have > width:
            v = bld.trunc(v, exact)
        elif have < width:
            v = bld.zext(v, exact) if E.is_unsigned(src) else bld.sext(v, exact)
        target = _element(ir.Constant(ty, None)).width
        return bld.sext(v, ty) if target > width else v

    # ------------------------------------------------------------------ integer operators

    def bitwise(self, e, a, b):
        """``& | ^ << >>`` of two integer values (scalars or vectors of one type)."""
        bld = self.builder
        if isinstance(e, E.BitAnd): return bld.and_(a, b)
        if isinstance(e, E.BitOr): return bld.or_(a, b)
        if isinstance(e, E.BitXor): return bld.xor(a, b)
        width = E.bits(e.dtype)
        in_range = bld.icmp_unsigned("<", b, _const(b, width))        # a negative count is huge
        if isinstance(e, E.ShiftLeft):
            out = bld.select(in_range, bld.shl(a, b), _const(a, 0))
            return self.wrap32(out) if e.dtype == "int32" and _element(a) == I64 else out
        if E.is_unsigned(e.dtype):
            return bld.select(in_range, bld.lshr(a, b), _const(a, 0))
        return bld.ashr(a, bld.select(in_range, b, _const(b, width - 1)))    # sign fill beyond

    def unsigned_divmod(self, e, a, b):
        """Unsigned // and %: udiv and urem, with numpy's x // 0 == x % 0 == 0."""
        bld = self.builder
        op = bld.udiv if isinstance(e, E.FloorDiv) else bld.urem
        if isinstance(e.b, E.Const) and e.b.value != 0:
            return op(a, b)
        zero = ir.Constant(b.type, None)
        is_zero = bld.icmp_unsigned("==", b, zero)
        return bld.select(is_zero, zero, op(a, bld.select(is_zero, _const(b, 1), b)))

    def popcount(self, x, dtype):
        """Set bits of the dtype's two's complement (a scalar int32 counts its low 32 bits)."""
        bld = self.builder
        if dtype == "int32" and _element(x) == I64:
            low = bld.trunc(x, _like(x, I32))
            return bld.zext(bld.call(self.intrinsic("ctpop", low.type), [low]), x.type)
        return bld.call(self.intrinsic("ctpop", x.type), [x])


__all__ = ["Conversions"]
