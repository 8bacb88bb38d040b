"""The thread pool behind parallel loops: libgomp's, when the machine has it.

Generated code calls ``GOMP_parallel`` with an outlined loop body (about 1 us per call).
Where libgomp is missing, parallel loops run serially and loopc says so once.
``OMP_WAIT_POLICY`` is respected; when unset and ``CI`` is set (shared cores), loopc asks
for the passive policy, since spinning threads can run slower than serial there.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import warnings
from functools import lru_cache

from ..errors import ArgumentError


@lru_cache(maxsize=None)
def libgomp():
    """The loaded libgomp (ctypes.CDLL), also made visible to the JIT; None when absent."""
    if os.environ.get("LOOPC_NO_OPENMP"):
        return None
    if "OMP_WAIT_POLICY" not in os.environ and os.environ.get("CI"):
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    path = ctypes.util.find_library("gomp")
    if path is None:
        warnings.warn("libgomp was not found: loopc runs parallel loops serially "
                      "(install gcc's libgomp1 for multi-core kernels)", RuntimeWarning, stacklevel=2)
        return None
    import llvmlite.binding as llvm
    lib = ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
    llvm.load_library_permanently(path)
    return lib


def num_threads() -> int:
    """Threads a parallel loop uses when called from this Python thread."""
    lib = libgomp()
    return int(lib.omp_get_max_threads()) if lib is not None else 1


def set_num_threads(n: int) -> None:
    """Use ``n`` threads for parallel loops called from this Python thread."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ArgumentError(f"set_num_threads needs a positive int, got {n!r}")
    lib = libgomp()
    if lib is not None:
        lib.omp_set_num_threads(ctypes.c_int(n))
