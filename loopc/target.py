"""Targets: what loopc compiles for, as objects. The only place that parses target strings.

    Target.parse("llvm")                              # this machine's CPU
    Target.parse("llvm -mcpu=haswell -mattr=+avx2")   # checked against LLVM and this CPU
    Target.parse("cuda -arch=sm_90")
    host()                                            # the CPUTarget of this machine

A target has a ``kind`` ("llvm" or "cuda"), a ``str()`` that parses back to it, and a
``key()`` that tuning records match on. A CPUTarget also carries the facts schedules are
made of — vector width, vector registers, cache sizes — so a template reads the machine it
runs on, never the one it was written on. ``key_of(text)`` reads the key of a record's target
string without checking it against this machine (records come from other machines too).
"""
from __future__ import annotations

import difflib
import glob
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass, field, replace
from functools import lru_cache

import llvmlite.binding as llvm

from .errors import BuildError

KINDS = ("llvm", "cuda")


class Target:
    """Base of CPUTarget and CUDATarget."""
    kind = "?"

    @staticmethod
    def parse(target) -> "Target":
        """A Target from a string (or a Target, returned as it is); BuildError when malformed."""
        if isinstance(target, Target):
            return target
        kind = _kind(target)
        if kind == "llvm":
            return _parse_cpu(str(target))
        if kind == "cuda":
            return _parse_cuda(str(target))
        raise BuildError(f"unknown target {str(target)!r}; loopc builds for 'llvm' (this CPU, e.g. "
                         "'llvm -mcpu=znver3') and 'cuda' (an NVIDIA GPU)")

    def key(self) -> tuple:
        return key_of(str(self))


def kind_of(target) -> str:
    """"llvm" or "cuda" for a target string or Target, without parsing the rest; BuildError otherwise."""
    if isinstance(target, Target):
        return target.kind
    kind = _kind(target)
    if kind not in KINDS:
        raise BuildError(f"unknown target {str(target)!r}; loopc builds for 'llvm' and 'cuda'")
    return kind


def _kind(target) -> str:
    words = str(target if target is not None else "llvm").split()
    return words[0] if words else ""


def key_of(target) -> tuple:
    """(kind, cpu or GPU arch, sorted enabled features) of a target string: what tuning
    records match on. Not checked against this machine; BuildError on an unbalanced quote."""
    if isinstance(target, Target):
        target = str(target)
    try:
        parts = shlex.split(str(target))
    except ValueError as err:
        text = str(target) if len(str(target)) <= 80 else str(target)[:80] + "..."
        raise BuildError(f"malformed target string ({err}: an unbalanced quote?) {text!r}: write it as "
                         "'llvm -mcpu=NAME -mattr=+f,...'") from None
    cpu, feats = "", ""
    for p in parts[1:]:
        key, _, val = p.partition("=")
        if key == "-mcpu":
            cpu = val
        elif key == "-mattr":
            feats = val
        elif key == "-arch":           # cuda: the compute capability stands for the CPU name
            cpu = val
    enabled = tuple(sorted(f[1:] for f in feats.split(",") if f.startswith("+")))
    return (parts[0] if parts else "", cpu, enabled)


# --------------------------------------------------------------------------- CPU


@lru_cache(maxsize=None)
def init_llvm():
    """Initialise LLVM's native target once (llvmlite >= 0.45 forbids llvm.initialize())."""
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    return True


#: bytes of each cache level when the OS does not say (a typical x86 core)
DEFAULT_CACHES = {"l1d": 32 * 1024, "l2": 512 * 1024, "l3": 8 * 1024 * 1024}

_DTYPE_BYTES = {"float32": 4, "float64": 8, "int32": 4, "int64": 8, "bool": 1}


@dataclass(frozen=True)
class CPUTarget(Target):
    """The host CPU, or a CPU this machine can run (an older ISA level, for comparison)."""
    triple: str
    cpu: str
    features: str
    caches: dict = field(default_factory=dict, compare=False, hash=False)
    kind = "llvm"

    @property
    def enabled(self) -> frozenset:
        return frozenset(f[1:] for f in self.features.split(",") if f.startswith("+"))

    @property
    def vector_bits(self) -> int:
        """The widest vector register the features allow (512 with AVX-512F, 256 with AVX)."""
        f = self.enabled
        if "avx512f" in f:
            return 512
        if "avx" in f or "avx2" in f:
            return 256
        return 128

    @property
    def vector_registers(self) -> int:
        """Architectural vector registers: 32 with AVX-512 (zmm0-31), else 16 on x86-64."""
        return 32 if "avx512f" in self.enabled else 16

    def lanes(self, dtype: str = "float32") -> int:
        """Elements of ``dtype`` in one vector register."""
        return self.vector_bits // (8 * _DTYPE_BYTES[dtype])

    def cache_bytes(self, level: str) -> int:
        """Bytes of the data cache ``level`` ("l1d", "l2", "l3") of one core's view."""
        return (self.caches or DEFAULT_CACHES).get(level, DEFAULT_CACHES[level])

    def __str__(self):
        return f"llvm -mtriple={self.triple} -mcpu={self.cpu} -mattr={self.features}"

    def target_machine(self):
        """A fresh TargetMachine (an MCJIT engine takes ownership of the one it gets)."""
        init_llvm()
        tgt = llvm.Target.from_triple(self.triple)
        return tgt.create_target_machine(cpu=self.cpu, features=self.features, opt=3,
                                         codemodel="jitdefault", jit=True)


@lru_cache(maxsize=None)
def host() -> CPUTarget:
    """This machine's CPU: LLVM's name and features, the OS's cache sizes."""
    init_llvm()
    feats = llvm.get_host_cpu_features().flatten()
    return CPUTarget(llvm.get_process_triple(), llvm.get_host_cpu_name(), feats, read_caches())


def host_memory() -> int | None:
    """Bytes of physical memory of this machine; None where the OS does not say."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):    # pragma: no cover - not Linux
        return None


def read_caches() -> dict:
    """{"l1d", "l2", "l3": bytes} from Linux's sysfs (cpu0's view); defaults where it is silent."""
    out = {}
    for index in glob.glob("/sys/devices/system/cpu/cpu0/cache/index*"):
        try:
            level = open(os.path.join(index, "level")).read().strip()
            kind = open(os.path.join(index, "type")).read().strip()
            size = open(os.path.join(index, "size")).read().strip()
        except OSError:
            continue
        if kind == "Instruction":
            continue
        scale = {"K": 1024, "M": 1024 ** 2, "G": 1024 ** 3}.get(size[-1:], 1)
        try:
            nbytes = int(size.rstrip("KMG")) * scale
        except ValueError:
            continue
        out["l1d" if level == "1" else f"l{level}"] = nbytes
    return {**DEFAULT_CACHES, **out}


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


def check_cpu(cpu: str, features: str, machine: CPUTarget, text: str) -> None:
    """BuildError unless LLVM knows ``cpu`` and every feature, this machine has each feature
    asked for with ``+`` (code using one it lacks dies of an illegal instruction), and LLVM can
    generate 64-bit code for the combination."""
    if cpu == machine.cpu and features == machine.features:
        return
    cpus, known = llvm_catalog()
    if cpus and cpu not in cpus:
        raise BuildError(f"unknown CPU -mcpu={cpu} in target {text!r}{_close(cpu, cpus)}; "
                         f"this machine is -mcpu={machine.cpu} (see `loopc info`)")
    have = machine.enabled
    for flag in filter(None, features.split(",")):
        sign, name = flag[:1], flag[1:]
        if sign not in "+-" or not name:
            raise BuildError(f"feature {flag!r} in target {text!r} must be +name or -name, e.g. -mattr=+avx2,+fma")
        if known and name not in known:
            raise BuildError(f"unknown CPU feature {flag!r} in target {text!r}{_close(name, known)}")
        if sign == "+" and name not in have:
            raise BuildError(f"this machine's CPU ({machine.cpu}) lacks {name}: code for target {text!r} would "
                             f"stop with an illegal instruction; drop +{name} (`loopc info` lists the features "
                             "it has)")
    asm = _probe(machine.triple, cpu, features)
    if "f:" not in asm:
        raise BuildError(f"LLVM cannot generate 64-bit code for target {text!r}: {asm}")
    for register, feature in _REGISTER_FEATURE.items():
        if register in asm and feature not in have:
            raise BuildError(f"target {text!r} uses {feature} ({register[1:]} registers), which this machine's CPU "
                             f"({machine.cpu}) lacks: its code would stop with an illegal instruction; name a CPU "
                             f"this machine can run, e.g. -mcpu={machine.cpu}")


def _parse_cpu(text: str) -> CPUTarget:
    """``"llvm"`` is the host; ``-mcpu=`` and ``-mattr=`` override its CPU name and features
    (checked against LLVM's lists and this machine before LLVM sees them)."""
    try:
        parts = shlex.split(text)
    except ValueError as err:
        raise BuildError(f"malformed target {text!r}: {err}") from None
    if not parts or parts[0] != "llvm":
        raise BuildError(f"not an LLVM CPU target: {text!r}; use 'llvm' or 'llvm -mcpu=<name> -mattr=<+f,...>'")
    machine = host()
    cpu, feats, triple = machine.cpu, machine.features, machine.triple
    for opt in parts[1:]:
        key, _, val = opt.partition("=")
        if key == "-mcpu":
            cpu, feats = val, ("" if val != machine.cpu else feats)
        elif key == "-mattr":
            feats = val
        elif key == "-mtriple":
            if val != machine.triple:
                raise BuildError(f"target triple {val} differs from the host's {machine.triple}; "
                                 "loopc JIT-compiles for the machine it runs on")
        else:
            raise BuildError(f"unknown target option {opt!r} in {text!r}; known: -mcpu=, -mattr=, -mtriple=")
    check_cpu(cpu, feats, machine, text)
    return replace(machine, cpu=cpu, features=feats, triple=triple)


# --------------------------------------------------------------------------- CUDA

#: threads per block on every CUDA GPU since compute capability 2.0
MAX_THREADS_PER_BLOCK = 1024
#: static shared memory per block (numba allocates ``cuda.shared.array`` statically)
MAX_SHARED_BYTES = 48 * 1024
#: per-dimension caps of a block and of a grid
MAX_BLOCK_DIMS = (1024, 1024, 64)
MAX_GRID_DIMS = (2**31 - 1, 65535, 65535)


@dataclass(frozen=True)
class CUDATarget(Target):
    """``cuda``, optionally ``-arch=sm_90 -max_num_threads=512 -max_shared_memory_per_block=49152``."""
    arch: tuple | None = None          # (major, minor); None: the current device's, else (9, 0)
    max_threads: int = MAX_THREADS_PER_BLOCK
    max_shared_bytes: int = MAX_SHARED_BYTES
    kind = "cuda"

    def __str__(self):
        parts = ["cuda"]
        if self.arch is not None:
            parts.append(f"-arch=sm_{self.arch[0]}{self.arch[1]}")
        if self.max_threads != MAX_THREADS_PER_BLOCK:
            parts.append(f"-max_num_threads={self.max_threads}")
        if self.max_shared_bytes != MAX_SHARED_BYTES:
            parts.append(f"-max_shared_memory_per_block={self.max_shared_bytes}")
        return " ".join(parts)


def _parse_cuda(text: str) -> CUDATarget:
    """``"cuda -arch=sm_90 -max_num_threads=1024"`` -> CUDATarget."""
    words = text.split()
    if not words or words[0] != "cuda":
        raise BuildError(f"not a CUDA target: {text!r}; write 'cuda' or 'cuda -arch=sm_90'")
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
            raise BuildError(f"unknown CUDA target option {word!r} in {text!r}; known: -arch=sm_XY, "
                             "-max_num_threads=N, -max_shared_memory_per_block=BYTES") from None
    if threads < 1 or threads > MAX_THREADS_PER_BLOCK or shared < 0:
        raise BuildError(f"target {text!r}: -max_num_threads must be 1..{MAX_THREADS_PER_BLOCK} "
                         "and -max_shared_memory_per_block >= 0")
    return CUDATarget(arch, threads, shared)


__all__ = ["Target", "CPUTarget", "CUDATarget", "host", "host_memory", "kind_of", "key_of", "read_caches", "init_llvm",
           "check_cpu", "llvm_catalog", "KINDS"]
