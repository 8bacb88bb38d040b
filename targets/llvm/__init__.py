"""The host-CPU target: loop IR -> LLVM IR -> O3 (new pass manager) -> MCJIT -> a callable."""
from __future__ import annotations

import ctypes
import time

import llvmlite.binding as llvm

from loopc.errors import BuildError
from loopc.runtime import threads
from loopc.runtime.module import Module

from .codegen import emit_module
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


def build(func, target="llvm") -> Module:
    """Compile a LoweredFunc for the host CPU."""
    cpu = parse_target(target)
    use_openmp = threads.libgomp() is not None
    t0 = time.perf_counter()
    init_llvm()
    tm = cpu.target_machine()
    module = emit_module(func, cpu.triple, str(tm.target_data), use_openmp)
    text = str(module)
    engine, optimized = compile_ir(text, cpu)
    addr = engine.get_function_address(func.name)
    if not addr:
        raise BuildError(f"the JIT produced no function named {func.name}")
    cfunc = ctypes.CFUNCTYPE(None, *([ctypes.c_void_p] * len(func.params)))(addr)
    build_seconds = time.perf_counter() - t0

    def asm():
        return cpu.target_machine().emit_assembly(llvm.parse_assembly(str(optimized)))

    sources = {"llvm": lambda: str(optimized), "llvm-unopt": lambda: text, "asm": asm}
    return Module(func, cfunc, keepalive=(engine, optimized), sources=sources, target=str(cpu),
                  build_seconds=build_seconds)
