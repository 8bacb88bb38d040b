"""``loopc.build``: lower a schedule, then hand the loop IR to a target's code generator."""
from __future__ import annotations

from .errors import BuildError
from .lower import lower


def build(schedule, args, target: str = "llvm", name: str = "main"):
    func = lower(schedule, args, name=name)
    kind = str(target).split()[0] if str(target).strip() else ""
    if kind == "llvm":
        from loopc.targets import llvm
        return llvm.build(func, target)
    if kind == "cuda":
        from loopc.targets import cuda
        return cuda.build(func, target)
    raise BuildError(f"unknown target {target!r}; loopc builds for 'llvm' (the host CPU) and 'cuda'")
