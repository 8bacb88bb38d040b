"""The CUDA target's checks: what no kernel can do (host calls, scans that need a grid-wide
barrier per step), and on a planned kernel, launch limits and on-chip memory.

Each failure is a BuildError that names the kernel, its stage, the number over the limit and
how to change the schedule. (Binding a reduction axis is refused earlier, by ``bind``.)
"""
from __future__ import annotations

from loopc.errors import BuildError, UnsupportedError
from loopc.ir.stmt import Evaluate, walk_stmt

from .target import MAX_BLOCK_DIMS, MAX_GRID_DIMS, CUDATarget

#: CUDA caps the local memory of one thread at 512 KiB
MAX_LOCAL_BYTES = 512 * 1024


def _tags_of(kernel, prefix):
    return ", ".join(f"{t}={e}" for t, e in sorted(kernel.launch.items()) if t.startswith(prefix))


def check_kernel_limits(kernel, target: CUDATarget, where: str):
    threads = kernel.threads_per_block
    if threads > target.max_threads:
        raise BuildError(
            f"{where} launches {threads} threads per block ({_tags_of(kernel, 'threadIdx')}), more than the "
            f"{target.max_threads} a block may have; split the loops bound to threadIdx by smaller factors "
            "(or bind the outer part to blockIdx)")
    for axis, (n, cap) in enumerate(zip(kernel.block, MAX_BLOCK_DIMS)):
        if n > cap:
            raise BuildError(f"{where}: threadIdx.{'xyz'[axis]} has extent {n}, above the CUDA limit of {cap} "
                             "for that dimension; split the loop bound to it")
    for axis, (n, cap) in enumerate(zip(kernel.grid, MAX_GRID_DIMS)):
        if isinstance(n, int) and n > cap:      # a symbolic one: checked by CUDA at launch
            raise BuildError(f"{where}: blockIdx.{'xyz'[axis]} has extent {n}, above the CUDA limit of {cap} "
                             "for that dimension; bind that loop to blockIdx.x, or split it and keep the "
                             "outer part as a loop")
    shared = kernel.shared_bytes
    if shared > target.max_shared_bytes:
        parts = ", ".join(f"{a.buffer.name} {a.nbytes} B" for a in kernel.arrays.values() if a.kind == "shared")
        raise BuildError(
            f"{where} needs {shared} bytes of shared memory ({parts}), more than the "
            f"{target.max_shared_bytes} bytes a block may allocate statically; use smaller tiles for the "
            "shared stages (smaller split factors of the consumer's loops around their attach point), "
            "attach them at an inner loop, or stage fewer tensors in shared memory")
    local = kernel.local_bytes
    if local > MAX_LOCAL_BYTES:
        raise BuildError(f"{where} needs {local} bytes of local memory per thread, above CUDA's "
                         f"{MAX_LOCAL_BYTES}; compute the local stages at an inner loop so they hold less")


def check_host_steps(func) -> None:
    """UnsupportedError for an extern stage (its call runs on the host, between kernels) and for
    a te.scan whose steps read the state at other positions than their own: the kernel runs
    each position's steps in one GPU thread, which is right only when a step reads what the
    same thread wrote (``state[t - 1, i]`` from ``update[t, i]``)."""
    for s in walk_stmt(func.body):
        if isinstance(s, Evaluate):
            raise UnsupportedError(
                f"{func.name}(): extern stage call {s.value.name!r} (te.call_{s.value.kind}) runs on the host, and the "
                "CUDA target runs kernels only, not host calls between them; build it with target='llvm'")
    for name, pointwise in func.attrs.get("scans", {}).values():
        if not pointwise:
            raise UnsupportedError(
                f"{func.name}(): scan '{name}' reads the state at other positions than the one a step computes "
                "(or through a stage of its body); on the GPU every step would need a grid-wide barrier, which "
                "loopc does not emit. Build it with target='llvm', or read state[t - k, <the update's own axes>]")
