"""Extern calls: an extern stage's ``Evaluate`` statement as a call.

- ``call_extern(dtype, "symbol", ...)``: a direct call of the C function (declared with the
  argument types: a buffer is a pointer to its first element, an integer a 64-bit value, a
  float a float or a double as its dtype says);
- ``call_packed("name", ...)``: a call of the ctypes callback ``int32 site(int64 *slots)`` that
  :class:`loopc.runtime.packed.PackedCalls` made for this site, its address a constant of the
  code; one 8-byte slot per argument (a pointer, an integer, or a double's bits). A callback
  that returns nonzero (the Python function raised) records fault FAULT_EXTERN, and later
  packed calls of the run are skipped.
"""
from __future__ import annotations

import llvmlite.ir as ir

from loopc.errors import BuildError
from loopc.te import expr as E
from loopc.te.extern import BufferArg, ExternCall

from .faults import FAULT_EXTERN
from .lltypes import F32, F64, I8, I32, I64, PTR
from .parallel import _FnPtr

#: the C type of a scalar argument (integers widen to 64 bits: right for int, long and size_t)
_C_ARG = {"float32": F32, "float64": F64, "int32": I64, "int64": I64, "bool": I64}
_C_RET = {"float32": F32, "float64": F64, "int32": I32, "int64": I64, "bool": I8}


class _Site:
    """What a fault record names for a failed packed call."""

    def __init__(self, name):
        self.name = name


class ExternCalls:
    """Extern calls of :class:`~loopc.targets.llvm.codegen.FunctionCodegen` (uses its builder,
    ``buffers``, ``packed``, ``alloca_entry``, ``fault_global`` and ``record_fault``)."""

    def evaluate(self, s):
        call = s.value
        if not isinstance(call, ExternCall):
            raise BuildError(f"the LLVM target cannot evaluate {type(call).__name__} for its effect")
        if self.lanes is not None or self.in_parallel:   # pragma: no cover - extern stages sit at the root
            raise BuildError(f"call {call.name!r} sits inside a vector or parallel loop")
        if call.kind == "extern":
            self._call_c(call)
        else:
            self._call_packed(call)

    def _scalar_arg(self, a):
        v = self.scalar(a)
        if a.dtype == "bool":
            return self.builder.zext(v, I64)
        return v

    def _call_c(self, call):
        args = [self.buffers[a.buffer] if isinstance(a, BufferArg) else self._scalar_arg(a) for a in call.args]
        types = [PTR if isinstance(a, BufferArg) else _C_ARG[a.dtype] for a in call.args]
        fn = self.declare(call.name, _C_RET[call.dtype], types)
        if list(fn.function_type.args) != types:
            raise BuildError(f"call_extern({call.name!r}): the symbol is already declared with other argument "
                             "types in this function; call it with the same kinds of arguments everywhere")
        self.builder.call(fn, args)

    def _call_packed(self, call):
        b = self.builder
        address = self.packed.site(call)
        slots = self.alloca_entry(I64, size=I64(max(len(call.args), 1)), align=8)
        for k, a in enumerate(call.args):
            if isinstance(a, BufferArg):
                v = b.ptrtoint(self.buffers[a.buffer], I64)
            elif E.is_float(a.dtype):
                v = self.scalar(a)
                v = b.bitcast(b.fpext(v, F64) if a.dtype == "float32" else v, I64)
            else:
                v = self._scalar_arg(a)
            b.store(v, b.gep(slots, [I64(k)], source_etype=I64, inbounds=True))
        status = self.fault_global("loopc.fault", I32)
        with b.if_then(b.icmp_signed("==", b.load(status, typ=I32), I32(0))):
            site = _FnPtr(b.inttoptr(I64(address), PTR), ir.FunctionType(I32, [PTR]))
            code = b.call(site, [slots])
            with b.if_then(b.icmp_signed("!=", code, I32(0))):
                self.record_fault(FAULT_EXTERN, _Site(call.name), I64(0))
