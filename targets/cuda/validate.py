"""The CUDA target's checks on a planned kernel: launch limits and on-chip memory.

Each failure is a BuildError that names the kernel, its stage, the number over the limit and
how to change the schedule. (Binding a reduction axis is refused earlier, by ``bind``.)
"""
from __future__ import annotations

from loopc.errors import BuildError

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
