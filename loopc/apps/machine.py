"""Which machine: the line every benchmark prints first, and the table of ``loopc info`` and the lab.

    print(machine_line())   # machine: AMD EPYC ..., 2 cores; LLVM cpu=znver3, 256-bit vectors, 16 registers; torch 2.13.0
    print(format_rows(machine_rows()))   # cpu model, cores, caches, gpu, os, versions, one per line
"""
from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_model() -> str:
    """The CPU's marketing name (``/proc/cpuinfo``), or what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine_line(torch_details: bool = False) -> str:
    """``machine: <cpu>, <n> cores; LLVM cpu=..., <bits>-bit vectors, <n> registers; torch <version>``
    (with ``torch_details``: PyTorch's CPU capability and the load average too)."""
    from loopc.target import host
    t = host()
    line = (f"machine: {cpu_model()}, {os.cpu_count()} cores; LLVM cpu={t.cpu}, {t.vector_bits}-bit vectors, "
            f"{t.vector_registers} registers")
    try:
        import torch
    except ImportError:
        return line + "; no torch"
    line += f"; torch {torch.__version__}"
    if torch_details:
        line += (f" (CPU capability {torch.backends.cpu.get_cpu_capability()}); load average "
                 + " ".join(f"{v:.2f}" for v in os.getloadavg()))
    return line


def machine_rows(all_features: bool = False) -> list:
    """The machine table of ``loopc info`` and of the lab report (the chapter's lab asks for the
    CPU, GPU, OS, framework and CUDA versions): ``[(name, value), ...]``, every value a string.

    The CPU rows come from LLVM (name, triple, features, vector width) and the OS (model name,
    cores, cache sizes from sysfs); the GPU rows from numba's CUDA driver ("none" without one);
    torch is optional ("not installed")."""
    import llvmlite
    import llvmlite.binding as llvm
    import numba
    import numpy as np

    import loopc
    from loopc.runtime import threads
    from loopc.target import host, host_memory

    t = host()
    feats = sorted(t.enabled)
    simd = [f for f in feats if f.startswith(("avx", "sse", "fma", "neon", "sve"))]
    memory = host_memory()
    gpu, cuda = gpu_rows()
    rows = [
        ("loopc", loopc.__version__),
        ("cpu model", cpu_model()),
        ("cpu", t.cpu),
        ("triple", t.triple),
        ("cores", cores()),
        ("vector bits", f"{t.vector_bits} ({t.lanes()} float32 lanes, {t.vector_registers} vector registers)"),
        ("simd features", " ".join(simd) or "-"),
        ("caches", cache_line()),
        ("memory", f"{memory / 2**30:.1f} GiB" if memory else "unknown"),
        ("threads", f"{threads.num_threads()} ({'libgomp' if threads.libgomp() else 'serial fallback'})"),
        ("gpu", gpu),
        ("cuda", cuda),
        ("os", os_name()),
        ("python", f"{platform.python_version()} ({platform.python_implementation()})"),
        ("numpy", np.__version__),
        ("llvmlite", f"{llvmlite.__version__} (LLVM {'.'.join(map(str, llvm.llvm_version_info))})"),
        ("numba", numba.__version__),
        ("torch", torch_version()),
        ("target", "llvm"),
    ]
    if all_features:
        rows.append(("all features", " ".join(feats)))
    return rows


def format_rows(rows) -> str:
    """``name  value`` lines, the names padded to one width (``loopc info``)."""
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def cores() -> str:
    """``"<n> logical (<m> usable by this process)"`` or ``"<n> logical"``."""
    n = os.cpu_count() or 1
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):        # pragma: no cover - not Linux
        return f"{n} logical"
    return f"{n} logical" if usable == n else f"{n} logical ({usable} usable by this process)"


def cache_line() -> str:
    """``"L1d 32 KiB, L2 512 KiB, L3 32 MiB (sysfs, cpu0)"``; where sysfs is silent, the defaults
    loopc's templates assume, said so."""
    import glob

    from loopc.target import read_caches

    def size(n):
        return f"{n // 2**20} MiB" if n >= 2**20 and n % 2**20 == 0 else f"{n // 1024} KiB"
    caches = read_caches()
    where = "sysfs, cpu0" if glob.glob("/sys/devices/system/cpu/cpu0/cache/index*") else \
        "not reported by the OS: loopc's defaults"
    levels = ", ".join(f"{'L1d' if k == 'l1d' else k.upper()} {size(v)}" for k, v in sorted(caches.items()))
    return f"{levels} ({where})"


def os_name() -> str:
    """``"Debian GNU/Linux 12 (bookworm), Linux 6.1.0 x86_64"``: the distribution where
    /etc/os-release names it, then the kernel."""
    kernel = f"{platform.system()} {platform.release()} {platform.machine()}".strip()
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return f"{line.split('=', 1)[1].strip().strip(chr(34))}, {kernel}"
    except OSError:
        pass
    return kernel


def torch_version() -> str:
    """PyTorch's version from its installed metadata (importing torch takes seconds), else "not installed"."""
    from importlib import metadata
    try:
        return metadata.version("torch")
    except metadata.PackageNotFoundError:
        return "not installed"


def gpu_usable() -> bool:
    """A real CUDA GPU that numba can use (never the simulator: figures from it mean nothing)."""
    try:
        from loopc.targets.cuda import device
        return device.gpu_available()
    except Exception:  # noqa: BLE001 - a broken CUDA install is "no GPU" here
        return False


def gpu_rows() -> tuple:
    """(gpu, cuda): the GPU's name and compute capability, and the CUDA driver and runtime
    versions; ("none", "-") without a usable GPU."""
    if not gpu_usable():
        return "none", "-"
    try:
        from numba import cuda
        dev = cuda.get_current_device()
        name = dev.name.decode() if isinstance(dev.name, bytes) else str(dev.name)
        gpu = f"{name} (compute capability {'.'.join(map(str, dev.compute_capability))})"
    except Exception as e:  # noqa: BLE001
        gpu = f"a CUDA GPU (its name is unavailable: {type(e).__name__})"
    parts = []
    for what, get in (("driver", lambda c: c.cudadrv.driver.driver.get_version()),
                      ("runtime", lambda c: c.runtime.get_version())):
        try:
            from numba import cuda
            parts.append(f"{what} {'.'.join(map(str, get(cuda)))}")
        except Exception:  # noqa: BLE001 - versions are informative only
            continue
    return gpu, ", ".join(parts) or "version unavailable"
