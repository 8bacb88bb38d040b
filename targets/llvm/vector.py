"""Vector lanes: the values a vectorized loop computes with.

Inside a ``vectorized`` loop of V lanes an integer that moves by a constant per lane stays a
symbolic :class:`Ramp` (base + stride*k) until something needs its lanes; everything else is a
scalar (the same in every lane, broadcast on use) or an LLVM vector value.
"""
from __future__ import annotations

from dataclasses import dataclass

import llvmlite.ir as ir

from .lltypes import I32, I64


@dataclass(frozen=True)
class Ramp:
    """Lanes ``base + stride*k`` for k in 0..lanes-1 (base is a scalar LLVM value)."""
    base: ir.Value
    stride: int
    lanes: int
    dtype: str = "int32"     # int32 lanes materialise as <lanes x i32> (a scalar int32 is i64)


def is_vec(v) -> bool:
    """A Ramp or an LLVM vector value (not a scalar)."""
    return isinstance(v, Ramp) or isinstance(v.type, ir.VectorType)


class VectorLanes:
    """Lane helpers of :class:`~loopc.targets.llvm.codegen.FunctionCodegen` (uses ``self.builder``)."""

    def splat(self, scalar, lanes):
        b = self.builder
        vty = ir.VectorType(scalar.type, lanes)
        if isinstance(scalar, ir.Constant):
            return ir.Constant(vty, [scalar.constant] * lanes)
        v = b.insert_element(ir.Constant(vty, None), scalar, I32(0))
        return b.shuffle_vector(v, ir.Constant(vty, None), ir.Constant(ir.VectorType(I32, lanes), [0] * lanes))

    def materialize(self, v):
        if not isinstance(v, Ramp):
            return v
        base = self.narrow(v.base) if v.dtype == "int32" else v.base
        steps = ir.Constant(ir.VectorType(base.type, v.lanes), [k * v.stride for k in range(v.lanes)])
        return self.builder.add(self.splat(base, v.lanes), steps)

    def narrow(self, scalar):
        """A 64-bit int32 scalar as i32, to join int32 vectors (which stay 32 bits per lane)."""
        if scalar.type != I64:
            return scalar
        if isinstance(scalar, ir.Constant):
            return I32(scalar.constant)
        return self.builder.trunc(scalar, I32)

    def broadcast(self, v, lanes, dtype=None):
        """``v`` as a vector; for ``dtype`` int32, with 32-bit lanes (the scalar may be 64-bit)."""
        v = self.materialize(v)
        if dtype == "int32" and self._element(v) == I64:
            v = self.narrow(v) if not isinstance(v.type, ir.VectorType) else self.builder.trunc(
                v, ir.VectorType(I32, v.type.count))
        if isinstance(v.type, ir.VectorType):
            return v
        return self.splat(v, lanes)

    @staticmethod
    def _element(v):
        return v.type.element if isinstance(v.type, ir.VectorType) else v.type

    @staticmethod
    def _like(v, element):
        return ir.VectorType(element, v.type.count) if isinstance(v.type, ir.VectorType) else element

    def any_lane(self, mask):
        lanes = mask.type.count
        return self.builder.icmp_unsigned("!=", self.builder.bitcast(mask, ir.IntType(lanes)),
                                          ir.IntType(lanes)(0))
