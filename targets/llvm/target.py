"""Target descriptions for the host CPU: ``"llvm"`` or ``"llvm -mcpu=znver3 -mattr=+avx2,+fma"``."""
from __future__ import annotations

import shlex
from dataclasses import dataclass
from functools import lru_cache

import llvmlite.binding as llvm

from loopc.errors import BuildError


@lru_cache(maxsize=None)
def init_llvm():
    """Initialise LLVM's native target once (llvmlite >= 0.45 forbids llvm.initialize())."""
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    return True


@dataclass(frozen=True)
class CPUTarget:
    triple: str
    cpu: str
    features: str

    @property
    def vector_bits(self) -> int:
        f = self.features.split(",")
        if "+avx512f" in f:
            return 512
        if "+avx" in f or "+avx2" in f:
            return 256
        return 128

    def __str__(self):
        return f"llvm -mtriple={self.triple} -mcpu={self.cpu} -mattr={self.features}"

    def target_machine(self):
        """A fresh TargetMachine (an MCJIT engine takes ownership of the one it gets)."""
        init_llvm()
        tgt = llvm.Target.from_triple(self.triple)
        return tgt.create_target_machine(cpu=self.cpu, features=self.features, opt=3,
                                         codemodel="jitdefault", jit=True)


@lru_cache(maxsize=None)
def host_target() -> CPUTarget:
    init_llvm()
    feats = llvm.get_host_cpu_features().flatten()
    return CPUTarget(llvm.get_process_triple(), llvm.get_host_cpu_name(), feats)


def parse_target(target) -> CPUTarget:
    """``"llvm"`` is the host; ``-mcpu=`` and ``-mattr=`` override its CPU name and features."""
    if isinstance(target, CPUTarget):
        return target
    parts = shlex.split(str(target))
    if not parts or parts[0] != "llvm":
        raise BuildError(f"not an LLVM CPU target: {target!r}; use 'llvm' or 'llvm -mcpu=<name> -mattr=<+f,...>'")
    host = host_target()
    cpu, feats, triple = host.cpu, host.features, host.triple
    for opt in parts[1:]:
        key, _, val = opt.partition("=")
        if key == "-mcpu":
            cpu, feats = val, ("" if val != host.cpu else feats)
        elif key == "-mattr":
            feats = val
        elif key == "-mtriple":
            if val != host.triple:
                raise BuildError(f"target triple {val} differs from the host's {host.triple}; "
                                 "loopc JIT-compiles for the machine it runs on")
        else:
            raise BuildError(f"unknown target option {opt!r} in {target!r}; known: -mcpu=, -mattr=, -mtriple=")
    return CPUTarget(triple, cpu, feats)
