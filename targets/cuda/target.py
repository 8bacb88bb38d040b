"""The CUDA target description: ``"cuda"``, optionally with TVM-style options.

    cuda                                   defaults below
    cuda -arch=sm_90                       compute capability for get_source("ptx")
    cuda -max_num_threads=512              cap on threads per block
    cuda -max_shared_memory_per_block=49152
"""
from __future__ import annotations

from dataclasses import dataclass

from loopc.errors import BuildError

#: threads per block on every CUDA GPU since compute capability 2.0
MAX_THREADS_PER_BLOCK = 1024
#: static shared memory per block (numba allocates ``cuda.shared.array`` statically)
MAX_SHARED_BYTES = 48 * 1024
#: per-dimension caps of a block and of a grid
MAX_BLOCK_DIMS = (1024, 1024, 64)
MAX_GRID_DIMS = (2**31 - 1, 65535, 65535)


@dataclass(frozen=True)
class CUDATarget:
    arch: tuple | None = None          # (major, minor); None: the current device's, else (9, 0)
    max_threads: int = MAX_THREADS_PER_BLOCK
    max_shared_bytes: int = MAX_SHARED_BYTES

    def __str__(self):
        parts = ["cuda"]
        if self.arch is not None:
            parts.append(f"-arch=sm_{self.arch[0]}{self.arch[1]}")
        if self.max_threads != MAX_THREADS_PER_BLOCK:
            parts.append(f"-max_num_threads={self.max_threads}")
        if self.max_shared_bytes != MAX_SHARED_BYTES:
            parts.append(f"-max_shared_memory_per_block={self.max_shared_bytes}")
        return " ".join(parts)


def parse_target(target) -> CUDATarget:
    """``"cuda -arch=sm_90 -max_num_threads=1024"`` -> CUDATarget."""
    if isinstance(target, CUDATarget):
        return target
    words = str(target).split()
    if not words or words[0] != "cuda":
        raise BuildError(f"not a CUDA target: {target!r}; write 'cuda' or 'cuda -arch=sm_90'")
    arch, threads, shared = None, MAX_THREADS_PER_BLOCK, MAX_SHARED_BYTES
    for word in words[1:]:
        key, _, value = word.partition("=")
        try:
            if key == "-arch" and value.startswith("sm_") and value[3:].isdigit() and len(value) >= 5:
                arch = (int(value[3:-1]), int(value[-1]))
            elif key == "-max_num_threads":
                threads = int(value)
            elif key == "-max_shared_memory_per_block":
                shared = int(value)
            else:
                raise ValueError(word)
        except ValueError:
            raise BuildError(f"unknown CUDA target option {word!r} in {target!r}; known: -arch=sm_XY, "
                             "-max_num_threads=N, -max_shared_memory_per_block=BYTES") from None
    if threads < 1 or threads > MAX_THREADS_PER_BLOCK or shared < 0:
        raise BuildError(f"target {target!r}: -max_num_threads must be 1..{MAX_THREADS_PER_BLOCK} "
                         "and -max_shared_memory_per_block >= 0")
    return CUDATarget(arch, threads, shared)
