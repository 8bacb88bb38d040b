"""The line every benchmark prints first: which machine, which ISA, which PyTorch.

    print(machine_line())   # machine: AMD EPYC ..., 2 cores; LLVM cpu=znver3, 256-bit vectors, 16 registers; torch 2.13.0
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
