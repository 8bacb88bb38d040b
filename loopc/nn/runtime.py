"""The names ``loopc.nn.runtime`` has always offered, from the modules that now hold them:

- ``loopc.nn.params``     ParamStore (the parameter arena), aligned_empty / aligned_zeros
- ``loopc.nn.kernels``    Kernel, KernelCache (one per compiler owner; SHARED by default),
                          compile_op / compile_chain / compile_stats / untuned_summary on SHARED
- ``loopc.nn.executor``   Executor, Step, FUSABLE
- ``loopc.nn.placement``  where an executor's buffers live (host, or a GPU twin of each)
- ``loopc.nn.memory``     MemoryReport (``Executor.memory()``)
- ``loopc.nn.model``      Model, TrainGraph
"""
from __future__ import annotations

from .executor import FUSABLE, Executor, Step
from .kernels import (SHARED, Kernel, KernelCache, cached_kernels, compile_chain, compile_op, compile_stats,
                      untuned_summary)
from .memory import MemoryReport
from .model import Model, TrainGraph
from .params import ALIGN, ParamStore, aligned_empty, aligned_zeros

__all__ = ["ALIGN", "FUSABLE", "SHARED", "Executor", "Kernel", "KernelCache", "MemoryReport", "Model",
           "ParamStore", "Step", "TrainGraph", "aligned_empty", "aligned_zeros", "cached_kernels",
           "compile_chain", "compile_op", "compile_stats", "untuned_summary"]
