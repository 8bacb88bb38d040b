"""The host-CPU target: loop IR -> LLVM IR -> O3 (new pass manager) -> MCJIT -> a callable.

Registers the ``llvm`` backend (:mod:`loopc.backend`) when imported: ``build``, the object-code
steps a tuner's workers use (``compile_object`` / ``load_object``) and the CPU's clock.
"""
from __future__ import annotations

import os
import time

import llvmlite.binding as llvm

from loopc import backend
from loopc.errors import BuildError
from loopc.runtime import threads
from loopc.runtime.module import Module
from loopc.runtime.packed import PackedCalls, check_calls, extern_calls
from loopc.runtime.timing import WallClock
from loopc.target import host_memory

from .codegen import emit
from .faults import fault_reader
from .jit import compile_ir, emit_object, entry_point, load_object
from .lltypes import NBYTES
from .target import CPUTarget, host_target, init_llvm, parse_target

__all__ = ["build", "compile_object", "load_object", "CPUTarget", "host_target", "parse_target", "compile_ir"]


def _emit(func, cpu: CPUTarget, bounds_check: bool, packed=None):
    """(LLVM IR text, the buffer names fault records refer to) of ``func`` for ``cpu``."""
    init_llvm()
    tm = cpu.target_machine()
    module, fault_buffers = emit(func, cpu.triple, str(tm.target_data), threads.libgomp() is not None,
                                 bounds_check, packed, native_half=_converts_half(cpu))
    return str(module), fault_buffers


def _converts_half(cpu: CPUTarget) -> bool:
    """Whether ``cpu`` converts half <-> float in hardware (x86 with F16C, 64-bit ARM); without,
    LLVM would call compiler-rt, which JIT-ed code cannot reach."""
    if cpu.triple.startswith(("aarch64", "arm64")):
        return True
    return cpu.triple.startswith(("x86_64", "i686", "i386")) and "f16c" in cpu.enabled


def build(func, target="llvm", bounds_check: bool | None = None) -> Module:
    """Compile a LoweredFunc for the host CPU. With ``bounds_check`` (default: the
    ``LOOPC_BOUNDS_CHECK`` environment variable), every access the loop ranges do not prove
    inside its buffer is checked at run time (a BoundsError, not a crash)."""
    if bounds_check is None:
        bounds_check = os.environ.get("LOOPC_BOUNDS_CHECK", "") not in ("", "0")
    cpu = parse_target(target)
    _check_memory(func)
    check_calls(func, f"{func.name}()")
    t0 = time.perf_counter()
    packed = PackedCalls()
    text, fault_buffers = _emit(func, cpu, bool(bounds_check), packed)
    engine, optimized = compile_ir(text, cpu)
    cfunc = entry_point(engine, func.name, len(func.params), len(func.size_vars))
    build_seconds = time.perf_counter() - t0

    def asm():
        return cpu.target_machine().emit_assembly(llvm.parse_assembly(str(optimized)))

    sources = {"llvm": lambda: str(optimized), "llvm-unopt": lambda: text, "asm": asm}
    sizes = {b.name: b.size for b in _buffers(func)}
    return Module(func, cfunc, keepalive=(engine, optimized, packed), sources=sources, target=str(cpu),
                  build_seconds=build_seconds, fault=fault_reader(engine, func.name, fault_buffers, sizes, packed))


def compile_object(func, target="llvm"):
    """Loop IR -> optimised object code for ``target`` (what :func:`load_object` loads, in
    another process of this machine); returns (bytes, the full target string)."""
    cpu = parse_target(target)
    if any(call.kind == "packed" for call in extern_calls(func)):
        raise BuildError(f"{func.name}() calls Python functions (te.call_packed), which object code for another "
                         "process cannot reach; build it in this process with loopc.build")
    check_calls(func, f"{func.name}()")
    text, _ = _emit(func, cpu, False)
    return emit_object(text, cpu), str(cpu)


def _check_memory(func):
    """BuildError when one intermediate buffer alone is larger than this machine's memory."""
    memory = host_memory()
    if memory is None:
        return
    for buf in _buffers(func):
        if buf.symbolic:          # sized at call time: a failed allocation is a fault, not a crash
            continue
        nbytes = buf.size * NBYTES[buf.dtype]
        if nbytes > memory:
            what = "argument" if buf in func.params else "intermediate buffer"
            raise BuildError(f"{func.name}(): the {what} '{buf.name}' {list(buf.shape)} needs {_gib(nbytes)}, more "
                             f"than this machine's {_gib(memory)} of memory; compute it in tiles "
                             "(compute_at a consumer's loop) or use smaller shapes")


def _gib(n):
    return f"{n / 2**40:.1f} TiB" if n >= 2**40 else f"{n / 2**30:.1f} GiB"


def _buffers(func):
    from loopc.ir.stmt import Allocate, walk_stmt
    yield from func.params
    for s in walk_stmt(func.body):
        if isinstance(s, Allocate):
            yield s.buffer


backend.register(backend.Backend(kind="llvm", build=build, clock=WallClock, passes=(),
                                 compile_object=compile_object, load_object=load_object))
