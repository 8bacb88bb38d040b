"""LLVM IR text -> machine code: verify, optimise (O3), then either an MCJIT engine (what
``loopc.build`` returns) or an object file that another process loads into an engine (what a
tuner's build workers make and its runner times)."""
from __future__ import annotations

import ctypes

import llvmlite.binding as llvm

from loopc.errors import BuildError
from loopc.runtime import threads
from loopc.target import CPUTarget, host, init_llvm


def optimize(mod, tm):
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


def optimized_module(llvm_ir: str, target: CPUTarget):
    """Parse, verify and optimise ``llvm_ir`` for ``target``; BuildError if LLVM rejects it."""
    init_llvm()
    try:
        mod = llvm.parse_assembly(llvm_ir)
        mod.verify()
    except RuntimeError as err:
        raise BuildError(f"LLVM rejected the generated IR: {err}") from err
    optimize(mod, target.target_machine())
    return mod


def compile_ir(llvm_ir: str, target: CPUTarget):
    """Parse, verify, optimise and JIT ``llvm_ir``; returns (engine, optimised module)."""
    mod = optimized_module(llvm_ir, target)
    engine = llvm.create_mcjit_compiler(mod, target.target_machine())
    engine.finalize_object()
    return engine, mod


def emit_object(llvm_ir: str, target: CPUTarget) -> bytes:
    """Parse, verify and optimise ``llvm_ir``; its object code for ``target``."""
    return bytes(target.target_machine().emit_object(optimized_module(llvm_ir, target)))


def entry_point(engine, name: str, nparams: int, nsizes: int = 0):
    """The ctypes function ``name(ptr * nparams, int64 * nsizes) -> int32 fault code`` of a
    finalised engine (``nsizes``: the symbolic sizes, after the buffers)."""
    addr = engine.get_function_address(name)
    if not addr:
        raise BuildError(f"the JIT produced no function named {name}")
    return ctypes.CFUNCTYPE(ctypes.c_int32, *([ctypes.c_void_p] * nparams + [ctypes.c_int64] * nsizes))(addr)


def load_object(obj: bytes, name: str, nparams: int, nsizes: int = 0):
    """JIT-load object code made by :func:`emit_object` on this machine; returns
    (``call(*pointers, *sizes) -> fault code``, the engine that must outlive it)."""
    init_llvm()
    threads.libgomp()   # GOMP_parallel must resolve
    engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), host().target_machine())
    engine.add_object_file(llvm.ObjectFileRef.from_data(obj))
    engine.finalize_object()
    return entry_point(engine, name, nparams, nsizes), engine
