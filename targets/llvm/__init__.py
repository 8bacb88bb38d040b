"""The host-CPU target: loop IR -> LLVM IR -> O3 (new pass manager) -> MCJIT -> a callable."""
from __future__ import annotations

import ctypes
import time

import llvmlite.binding as llvm

from loopc.errors import AllocationError, BoundsError, BuildError
from loopc.runtime import threads
from loopc.runtime.module import Module

from .codegen import FAULT_ALLOC, FAULT_BOUNDS, NBYTES as _NBYTES, emit
from .target import CPUTarget, host_target, init_llvm, parse_target

__all__ = ["build", "CPUTarget", "host_target", "parse_target", "compile_ir"]


def _optimize(mod, tm):
    """O3 with SLP vectorization, on a fresh pass builder (a manager cannot run twice).

    LLVM's loop unroller is off: the schedule says what to unroll (``unroll``), and LLVM's own
    choices cost more than they gave — a third to a half of a convolution's build time, a
    fully unrolled patch-matrix copy whose instruction scheduling alone took 0.5 s, and a
    window loop unrolled until the register tile spilled (LeNet conv2: 58 -> 85 GFLOP/s off)."""
    pto = llvm.create_pipeline_tuning_options(speed_level=3)
    pto.slp_vectorization = True
    pto.loop_vectorization = True
    pto.loop_unrolling = False
    pb = llvm.create_pass_builder(tm, pto)
    pb.getModulePassManager().run(mod, pb)


def compile_ir(llvm_ir: str, target: CPUTarget):
    """Parse, verify, optimise and JIT ``llvm_ir``; returns (engine, optimised module)."""
    init_llvm()
    try:
        mod = llvm.parse_assembly(llvm_ir)
        mod.verify()
    except RuntimeError as err:
        raise BuildError(f"LLVM rejected the generated IR: {err}") from err
    _optimize(mod, target.target_machine())
    engine = llvm.create_mcjit_compiler(mod, target.target_machine())
    engine.finalize_object()
    return engine, mod


def build(func, target="llvm", bounds_check: bool = False) -> Module:
    """Compile a LoweredFunc for the host CPU. With ``bounds_check``, every access the loop
    ranges do not prove inside its buffer is checked at run time (a BoundsError, not a crash)."""
    cpu = parse_target(target)
    _check_memory(func)
    use_openmp = threads.libgomp() is not None
    t0 = time.perf_counter()
    init_llvm()
    tm = cpu.target_machine()
    module, fault_buffers = emit(func, cpu.triple, str(tm.target_data), use_openmp, bounds_check)
    text = str(module)
    engine, optimized = compile_ir(text, cpu)
    addr = engine.get_function_address(func.name)
    if not addr:
        raise BuildError(f"the JIT produced no function named {func.name}")
    cfunc = ctypes.CFUNCTYPE(ctypes.c_int32, *([ctypes.c_void_p] * len(func.params)))(addr)
    build_seconds = time.perf_counter() - t0

    def asm():
        return cpu.target_machine().emit_assembly(llvm.parse_assembly(str(optimized)))

    sources = {"llvm": lambda: str(optimized), "llvm-unopt": lambda: text, "asm": asm}
    return Module(func, cfunc, keepalive=(engine, optimized), sources=sources, target=str(cpu),
                  build_seconds=build_seconds, fault=_fault_reader(engine, func, fault_buffers))


def _fault_reader(engine, func, fault_buffers):
    """The Module's translation of a fault code (the entry function's return value) into an error."""
    def cell(name, ctype):
        addr = engine.get_global_value_address(name)
        return ctype.from_address(addr).value if addr else None

    def fault(code):
        which = cell("loopc.fault_buffer", ctypes.c_int32)
        name = fault_buffers[which] if which is not None and 0 <= which < len(fault_buffers) else "?"
        value = cell("loopc.fault_index", ctypes.c_int64)
        if code == FAULT_BOUNDS:
            size = next((b.size for b in _buffers(func) if b.name == name), None)
            return BoundsError(f"{func.name}(): index {value} of buffer '{name}' is outside its {size} elements "
                               "(a data-dependent index read or wrote past the buffer; nothing past it was touched)")
        if code == FAULT_ALLOC:
            return AllocationError(f"{func.name}(): could not allocate {value} bytes for the intermediate buffer "
                                   f"'{name}'; the machine is out of memory (use smaller tiles or inputs)")
        return BuildError(f"{func.name}(): the kernel reported fault code {code}")
    return fault


def _check_memory(func):
    """BuildError when one intermediate buffer alone is larger than this machine's memory."""
    import os
    try:
        memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):    # pragma: no cover - not Linux
        return
    for buf in _buffers(func):
        nbytes = buf.size * _NBYTES[buf.dtype]
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
