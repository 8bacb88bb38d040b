"""A compiled function: checks every call's arguments, then runs native code."""
from __future__ import annotations

import numpy as np

from ..errors import ArgumentError, LoopcError
import time

from . import profiling, threads
from .args import check_arguments, written_buffers
from .timing import time_evaluator


class Module:
    """``f(a, b, c)`` runs the kernel on numpy arrays; outputs are written in place.

    The JIT engine (``keepalive``) lives exactly as long as this object, so the function
    pointer stays valid.
    """

    def __init__(self, func, cfunc, keepalive, sources, target, build_seconds=0.0, fault=None):
        self.func = func
        self.name = func.name
        self.params = func.params
        self.written = written_buffers(func)
        self.target = target
        self.build_seconds = build_seconds
        self.label = func.name     # the profiler's name for this kernel
        self.flop = 0              # floating-point operations per call, when the builder knows
        self._cfunc = cfunc
        self._keepalive = keepalive
        self._sources = dict(sources)
        self._fault = fault        # code -> LoopcError, for a kernel that returns a fault code

    def check(self, arrays):
        check_arguments(self.name, self.params, arrays, self.written)
        for pos, (buf, arr) in enumerate(zip(self.params, arrays)):
            if buf not in self.written:
                continue
            for other_pos, other in enumerate(arrays):
                if other_pos != pos and np.shares_memory(arr, other):
                    raise ArgumentError(
                        f"{self.name}() output argument {pos} ('{buf.name}') overlaps argument {other_pos} "
                        f"('{self.params[other_pos].name}'); compiled kernels assume outputs do not alias "
                        "inputs: pass a separate output array")

    def __call__(self, *arrays):
        self.check(arrays)
        threads.adapt()
        if not profiling.recording():
            code = self._cfunc(*[a.ctypes.data for a in arrays])
        else:
            ptrs = [a.ctypes.data for a in arrays]
            start = time.perf_counter()
            code = self._cfunc(*ptrs)
            profiling.record(self.label, start, time.perf_counter() - start, self.flop)
        if code:
            raise self.fault_error(code)

    def fault_error(self, code: int) -> LoopcError:
        """The error for a nonzero fault code returned by the raw entry point (``_cfunc``)."""
        if self._fault is None:
            return LoopcError(f"{self.name}(): the kernel reported fault code {code}")
        return self._fault(code)

    def get_source(self, fmt: str = "llvm") -> str:
        """``"ir"`` (loopc's loop IR), ``"llvm"`` (optimised LLVM IR) or ``"asm"``."""
        if fmt == "ir":
            return str(self.func)
        if fmt not in self._sources:
            raise LoopcError(f"unknown source format {fmt!r}; this module has: ir, {', '.join(self._sources)}")
        return self._sources[fmt]()

    def time_evaluator(self, number: int = 10, repeat: int = 3, min_repeat_ms: float = 0):
        """A function that times calls: ``.mean``, ``.median`` and ``.results`` in seconds."""
        def evaluator(*arrays):
            self.check(arrays)
            ptrs = [a.ctypes.data for a in arrays]
            return time_evaluator(lambda: self._cfunc(*ptrs), number, repeat, min_repeat_ms)()
        return evaluator

    def __repr__(self):
        args = ", ".join(f"{b.name}: {b.dtype}{list(b.shape)}" for b in self.params)
        return f"<loopc.Module {self.name}({args}) target={self.target!r}>"
