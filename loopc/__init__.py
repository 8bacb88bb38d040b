"""loopc: a small tensor-program compiler with a loop-scheduling DSL.

    from loopc import te
    s = te.create_schedule(C.op); s[C].split(...); f = loopc.build(s, [A, B, C])
"""
__version__ = "0.1.0"

from . import interp, te
from .errors import (AllocationError, ArgumentError, BoundsError, BuildError, ExternCallError, LoopcError,
                     LoweringError, ScheduleError, UnsupportedError)
from .lower import lower
from .runtime.packed import get_global_func, load_library, register_func
from .runtime.profiling import profile
from .schedule import create_schedule

__all__ = ["te", "interp", "lower", "build", "create_schedule", "profile", "LoopcError", "ScheduleError",
           "LoweringError", "BuildError", "ArgumentError", "BoundsError", "AllocationError", "UnsupportedError",
           "ExternCallError", "register_func", "get_global_func", "load_library", "__version__"]


def build(schedule, args, target="llvm", name: str = "main", bounds_check: bool | None = None):
    """Lower and compile ``schedule`` for ``target`` (a string such as ``"llvm -mcpu=haswell"``
    or ``"cuda"``, or a ``loopc.target.Target``); returns a callable Module. The target's
    backend (``loopc.backend``) compiles it.

    ``bounds_check=True`` (or ``LOOPC_BOUNDS_CHECK=1``) checks, at run time, every access whose
    index the loop ranges do not prove inside its buffer (data-dependent indices such as
    ``A[I[i]]``): a BoundsError instead of a crash or garbage."""
    from .build_module import build as _build
    return _build(schedule, args, target=target, name=name, bounds_check=bounds_check)
