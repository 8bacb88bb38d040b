"""Faults: how a kernel reports a failed bounds check or allocation instead of crashing.

The generated code notes the first fault of a run in three module-level cells (what, which
buffer, which index) and the entry function returns its kind; the Module turns that code into
a BoundsError or AllocationError (:func:`fault_reader`).
"""
from __future__ import annotations

import ctypes

import llvmlite.ir as ir

from loopc.errors import AllocationError, BoundsError, BuildError

from .lltypes import I32, I64

FAULT_BOUNDS, FAULT_ALLOC, FAULT_EXTERN = 1, 2, 3   # what the entry function returns when a run faults


class FaultRecording:
    """Fault cells of :class:`~loopc.targets.llvm.codegen.FunctionCodegen` (uses ``self.module``,
    ``self.builder`` and ``self.fault_buffers``)."""

    def fault_global(self, name, ty):
        """A module-level cell that records a fault (what, which buffer, which index)."""
        if name in self.module.globals:
            return self.module.globals[name]
        g = ir.GlobalVariable(self.module, ty, name)
        g.initializer = ir.Constant(ty, 0)
        return g

    def fault_id(self, buf) -> int:
        self.fault_buffers.append(buf.name)
        return len(self.fault_buffers) - 1

    def record_fault(self, kind, buf, index):
        """Note a fault (the first of a run); the entry function returns its kind, the Module raises."""
        b = self.builder
        status = self.fault_global("loopc.fault", I32)
        with b.if_then(b.icmp_signed("==", b.load(status, typ=I32), I32(0))):
            b.store(I32(kind), status)
            b.store(I32(self.fault_id(buf)), self.fault_global("loopc.fault_buffer", I32))
            b.store(index if index.type == I64 else b.sext(index, I64), self.fault_global("loopc.fault_index", I64))


def fault_reader(engine, name, fault_buffers, sizes, packed=None):
    """The Module's translation of a fault code (the entry function's return value) into an
    error; ``sizes``: buffer name -> elements; ``packed``: the module's PackedCalls, which keep
    the exception of a failed te.call_packed."""
    def cell(symbol, ctype):
        addr = engine.get_global_value_address(symbol)
        return ctype.from_address(addr).value if addr else None

    def fault(code):
        which = cell("loopc.fault_buffer", ctypes.c_int32)
        buf = fault_buffers[which] if which is not None and 0 <= which < len(fault_buffers) else "?"
        value = cell("loopc.fault_index", ctypes.c_int64)
        if code == FAULT_BOUNDS:
            return BoundsError(f"{name}(): index {value} of buffer '{buf}' is outside its {sizes.get(buf)} elements "
                               "(a data-dependent index read or wrote past the buffer; nothing past it was touched)")
        if code == FAULT_EXTERN and packed is not None:
            return packed.error(name)
        if code == FAULT_ALLOC:
            return AllocationError(f"{name}(): could not allocate {value} bytes for the intermediate buffer "
                                   f"'{buf}'; the machine is out of memory (use smaller tiles or inputs)")
        return BuildError(f"{name}(): the kernel reported fault code {code}")
    return fault
