"""``loopc.build``: lower a schedule, then hand the loop IR to a target's code generator."""
from __future__ import annotations

import os

from .errors import BuildError
from .lower import lower


def build(schedule, args, target: str = "llvm", name: str = "main", bounds_check=None):
    func = lower(schedule, args, name=name)
    kind = str(target).split()[0] if str(target).strip() else ""
    if kind == "llvm":
        from loopc.targets import llvm
        if bounds_check is None:
            bounds_check = os.environ.get("LOOPC_BOUNDS_CHECK", "") not in ("", "0")
        return llvm.build(func, target, bounds_check=bool(bounds_check))
    if kind == "cuda":
        from loopc.targets import cuda
        if bounds_check:
            raise BuildError("bounds_check=True is available on the 'llvm' target; on 'cuda', test the "
                             "schedule with target='llvm' (or in numba's simulator, which checks every index)")
        return cuda.build(func, target)
    raise BuildError(f"unknown target {target!r}; loopc builds for 'llvm' (the host CPU) and 'cuda'")
