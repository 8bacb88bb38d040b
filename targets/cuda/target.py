"""The CUDA target description lives in :mod:`loopc.target` (the one place that parses target
strings); these names stay importable from the CUDA backend.

    cuda                                   defaults
    cuda -arch=sm_90                       compute capability for get_source("ptx")
    cuda -max_num_threads=512              cap on threads per block
    cuda -max_shared_memory_per_block=49152
"""
from __future__ import annotations

from loopc.errors import BuildError
from loopc.target import (MAX_BLOCK_DIMS, MAX_GRID_DIMS, MAX_SHARED_BYTES, MAX_THREADS_PER_BLOCK, CUDATarget,
                          Target)

__all__ = ["CUDATarget", "parse_target", "MAX_BLOCK_DIMS", "MAX_GRID_DIMS", "MAX_SHARED_BYTES",
           "MAX_THREADS_PER_BLOCK"]


def parse_target(target) -> CUDATarget:
    """A CUDATarget from ``"cuda ..."``; BuildError for any other kind."""
    parsed = Target.parse(target)
    if not isinstance(parsed, CUDATarget):
        raise BuildError(f"not a CUDA target: {str(target)!r}; write 'cuda' or 'cuda -arch=sm_90'")
    return parsed
