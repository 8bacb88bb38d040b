"""Target descriptions for the host CPU: ``"llvm"`` or ``"llvm -mcpu=znver3 -mattr=+avx2,+fma"``."""
from __future__ import annotations

import difflib
import shlex
import subprocess
import sys
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


_CATALOG_SCRIPT = """
import llvmlite.binding as llvm
llvm.initialize_native_target(); llvm.initialize_native_asmprinter()
llvm.Target.from_triple(llvm.get_process_triple()).create_target_machine(cpu="help")
"""

_PROBE_SCRIPT = """
import sys
import llvmlite.binding as llvm
llvm.initialize_native_target(); llvm.initialize_native_asmprinter()
tm = llvm.Target.from_triple(sys.argv[1]).create_target_machine(cpu=sys.argv[2], features=sys.argv[3], opt=3)
m = llvm.parse_assembly("define void @f(ptr %p) {\\n %x = load <16 x float>, ptr %p\\n"
                       " %y = fmul <16 x float> %x, %x\\n store <16 x float> %y, ptr %p\\n ret void\\n}")
print(tm.emit_assembly(m))
"""

#: vector registers named in the probe's assembly -> the feature the host needs to run it
_REGISTER_FEATURE = {"%zmm": "avx512f", "%ymm": "avx"}


@lru_cache(maxsize=None)
def llvm_catalog() -> tuple:
    """(CPU names, feature names) that this LLVM knows for the host's architecture.

    LLVM prints them for ``cpu="help"`` (to the process's stderr, hence a subprocess); an
    unknown name would only be ignored with a warning, and some CPUs end the process."""
    proc = subprocess.run([sys.executable, "-c", _CATALOG_SCRIPT], capture_output=True, text=True, timeout=120)
    cpus, feats, section = set(), set(), None
    for line in proc.stderr.splitlines():
        if line.startswith("Available CPUs"):
            section = cpus
        elif line.startswith("Available features"):
            section = feats
        elif section is not None and line.startswith("  ") and " - " in line:
            section.add(line.split()[0])
    return frozenset(cpus), frozenset(feats)


@lru_cache(maxsize=None)
def _probe(triple: str, cpu: str, features: str):
    """The assembly of a small vector function for ``cpu``/``features``, or LLVM's complaint
    (without ``f:`` in it). Run in a subprocess: LLVM reports some of these (``-mcpu=i386``)
    by ending the process."""
    proc = subprocess.run([sys.executable, "-c", _PROBE_SCRIPT, triple, cpu, features],
                          capture_output=True, text=True, timeout=120)
    if proc.returncode == 0 and "f:" in proc.stdout:
        return proc.stdout
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    return lines[-1] if lines else f"exit code {proc.returncode}"


def _close(name, known) -> str:
    near = difflib.get_close_matches(name, sorted(known), n=3)
    return f" (did you mean {', '.join(near)}?)" if near else ""


def check_cpu(cpu: str, features: str, host: "CPUTarget", text: str) -> None:
    """BuildError unless LLVM knows ``cpu`` and every feature, this machine has each feature
    asked for with ``+`` (code using one it lacks dies of an illegal instruction), and LLVM can
    generate 64-bit code for the combination."""
    if cpu == host.cpu and features == host.features:
        return
    cpus, known = llvm_catalog()
    if cpus and cpu not in cpus:
        raise BuildError(f"unknown CPU -mcpu={cpu} in target {text!r}{_close(cpu, cpus)}; "
                         f"this machine is -mcpu={host.cpu} (see `loopc info`)")
    have = {f[1:] for f in host.features.split(",") if f.startswith("+")}
    for flag in filter(None, features.split(",")):
        sign, name = flag[:1], flag[1:]
        if sign not in "+-" or not name:
            raise BuildError(f"feature {flag!r} in target {text!r} must be +name or -name, e.g. -mattr=+avx2,+fma")
        if known and name not in known:
            raise BuildError(f"unknown CPU feature {flag!r} in target {text!r}{_close(name, known)}")
        if sign == "+" and name not in have:
            raise BuildError(f"this machine's CPU ({host.cpu}) lacks {name}: code for target {text!r} would stop "
                             f"with an illegal instruction; drop +{name} (`loopc info` lists the features it has)")
    asm = _probe(host.triple, cpu, features)
    if "f:" not in asm:
        raise BuildError(f"LLVM cannot generate 64-bit code for target {text!r}: {asm}")
    for register, feature in _REGISTER_FEATURE.items():
        if register in asm and feature not in have:
            raise BuildError(f"target {text!r} uses {feature} ({register[1:]} registers), which this machine's CPU "
                             f"({host.cpu}) lacks: its code would stop with an illegal instruction; name a CPU "
                             f"this machine can run, e.g. -mcpu={host.cpu}")


def parse_target(target) -> CPUTarget:
    """``"llvm"`` is the host; ``-mcpu=`` and ``-mattr=`` override its CPU name and features
    (checked against LLVM's lists and this machine before LLVM sees them)."""
    if isinstance(target, CPUTarget):
        return target
    try:
        parts = shlex.split(str(target))
    except ValueError as err:
        raise BuildError(f"malformed target {target!r}: {err}") from None
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
    check_cpu(cpu, feats, host, str(target))
    return CPUTarget(triple, cpu, feats)
