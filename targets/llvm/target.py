"""The host-CPU target description lives in :mod:`loopc.target` (the one place that parses
target strings); these names stay importable from the LLVM backend."""
from __future__ import annotations

from loopc.errors import BuildError
from loopc.target import CPUTarget, Target, check_cpu, init_llvm, llvm_catalog
from loopc.target import host as host_target

__all__ = ["CPUTarget", "host_target", "parse_target", "init_llvm", "check_cpu", "llvm_catalog"]


def parse_target(target) -> CPUTarget:
    """A CPUTarget from ``"llvm ..."`` (see loopc.target); BuildError for any other kind."""
    parsed = Target.parse(target)
    if not isinstance(parsed, CPUTarget):
        raise BuildError(f"not an LLVM CPU target: {str(target)!r}; use 'llvm' or 'llvm -mcpu=<name> -mattr=<+f,...>'")
    return parsed
