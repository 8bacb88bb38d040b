"""The CUDA target: loop IR -> numba CUDA Python source -> ``@cuda.jit`` kernels.

    s[C].bind(bx, te.thread_axis("blockIdx.x")); s[C].bind(tx, te.thread_axis("threadIdx.x"))
    f = loopc.build(s, [A, B, C], target="cuda")
    f(a, b, c)                       # numpy or device arrays
    print(f.get_source("cuda"))      # the kernels and the host function that launches them

The pieces, in the order a build runs them:

- ``kernels``: one kernel per root stage; launch shape from the bound loops; where each
  buffer lives (global, shared, per-thread local); the checks that need the whole kernel;
- ``validate``: launch and memory limits;
- ``codegen``: the Python source (barriers, guards), built on loopc's Python emitter;
- ``module``: ``CUDAModule``, the callable (transfers, launches, PTX; the runtime's argument
  checks and timing loop, with ``device``'s device-array views and CUDA-event clock);
(The CUDA schedule templates live with the others, in ``loopc.schedules.cuda``.)

Without a GPU, set ``NUMBA_ENABLE_CUDASIM=1`` before numba.cuda is imported: the same kernels
run in numba's simulator (slowly).

Registers the ``cuda`` backend (:mod:`loopc.backend`) when imported.
"""
from __future__ import annotations

import linecache
import time

from loopc import backend
from loopc.errors import BuildError

from . import device, kernels
from .codegen import generate, namespace
from .kernels import Plan, plan_kernels
from .module import CUDAModule
from .target import CUDATarget, parse_target
from .validate import check_host_steps

__all__ = ["build", "generate_source", "CUDAModule", "CUDATarget", "Plan", "parse_target", "plan_kernels",
           "gpu_available", "simulator"]

gpu_available = device.gpu_available
simulator = device.simulator


def generate_source(func, target="cuda") -> str:
    """The numba CUDA Python source for a LoweredFunc (no numba needed)."""
    return generate(plan_kernels(func, parse_target(target)))[0]


def build(func, target="cuda", bounds_check=None) -> CUDAModule:
    """Compile a LoweredFunc for the GPU. numba compiles each kernel at its first launch."""
    if bounds_check:
        raise BuildError("bounds_check=True is available on the 'llvm' target; on 'cuda', test the "
                         "schedule with target='llvm' (or in numba's simulator, which checks every index)")
    t0 = time.perf_counter()
    tgt = parse_target(target)
    check_host_steps(func)
    plan = plan_kernels(func, tgt)
    source, host_name, kernel_names = generate(plan)
    device.cuda()  # import numba.cuda (BuildError if unavailable)
    filename = f"<loopc-cuda {func.name}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    ns = namespace()
    try:
        exec(compile(source, filename, "exec"), ns)  # noqa: S102 - our own generated source
    except SyntaxError as err:  # pragma: no cover - a code generator bug
        raise BuildError(f"the generated CUDA source does not parse ({err}); this is a loopc bug") from err
    host = ns[host_name]
    kernels = [ns[n] for n in kernel_names]
    return CUDAModule(func, plan, source, host, kernels, kernel_names, tgt,
                      build_seconds=time.perf_counter() - t0)


backend.register(backend.Backend(kind="cuda", build=build, clock=device.clock, passes=kernels.PASSES))
