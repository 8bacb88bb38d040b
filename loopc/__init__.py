"""loopc: a small tensor-program compiler with a loop-scheduling DSL.

    from loopc import te
    s = te.create_schedule(C.op); s[C].split(...); f = loopc.build(s, [A, B, C])
"""
__version__ = "0.1.0"

from . import interp, te
from .errors import ArgumentError, BuildError, LoopcError, LoweringError, ScheduleError
from .lower import lower
from .runtime.profiling import profile
from .schedule import create_schedule

__all__ = ["te", "interp", "lower", "build", "create_schedule", "profile", "LoopcError", "ScheduleError",
           "LoweringError", "BuildError", "ArgumentError", "__version__"]


def build(schedule, args, target: str = "llvm", name: str = "main"):
    """Lower and compile ``schedule`` for ``target``; returns a callable Module."""
    from .build_module import build as _build
    return _build(schedule, args, target=target, name=name)
