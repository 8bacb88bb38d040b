"""A compiled function: checks every call's arguments, then runs native code.

The interface every backend's module has (the CUDA one subclasses this):

- ``f(*arrays)``: checked arguments, then the kernel; a fault code becomes an error;
- ``f.check(arrays)``: the checks alone;
- ``f.bind(arrays)``: checks once, returns a no-argument callable that runs the kernel on
  those arrays and returns its fault code (0: fine; ``f.fault_error(code)`` otherwise) — for
  preallocated buffers, called many times without per-call checks;
- ``f.time_evaluator(number=, repeat=, min_repeat_ms=)``, timed with the backend's clock;
- ``f.get_source(fmt)``.
"""
from __future__ import annotations

import functools
import time

from ..errors import LoopcError
from . import profiling, threads
from .args import check_arguments, check_overlap, written_buffers
from .sizes import bind_sizes, size_values, split_call
from .timing import WallClock, time_evaluator


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

    # ------------------------------------------------------------------ arguments

    def check(self, arrays):
        """Raise ArgumentError unless ``arrays`` fit the parameters (outputs alias nothing)."""
        return self._prepare(arrays)[1]

    def _prepare(self, args):
        """(arrays, checked arrays, the kernel's size arguments) of a call's ``args``: the
        arrays and, for symbolic sizes listed in ``build``'s args, their ints."""
        arrays, scalars = split_call(self.func, args)
        sizes = bind_sizes(self.func, arrays, scalars)
        checked = check_arguments(self.name, self.params, arrays, self.written, sizes=sizes)
        check_overlap(self.name, self.params, checked, self.written)
        return arrays, checked, size_values(self.func, sizes)

    # ------------------------------------------------------------------ running

    def __call__(self, *args):
        arrays, _, sizes = self._prepare(args)
        threads.adapt()
        if not profiling.recording():
            code = self._cfunc(*[a.ctypes.data for a in arrays], *sizes)
        else:
            ptrs = [a.ctypes.data for a in arrays]
            start = time.perf_counter()
            code = self._cfunc(*ptrs, *sizes)
            profiling.record(self.label, start, time.perf_counter() - start, self.flop)
        if code:
            raise self.fault_error(code)

    def bind(self, arrays):
        """Check ``arrays`` once; a no-argument callable that runs the kernel on them and
        returns its fault code (nonzero: raise ``self.fault_error(code)``). No per-call checks,
        profiling or thread adaptation: the caller owns the buffers and the loop."""
        arrays, _, sizes = self._prepare(tuple(arrays))
        call = functools.partial(self._cfunc, *[a.ctypes.data for a in arrays], *sizes)
        call.arrays = arrays       # the buffers live as long as the call
        return call

    def fault_error(self, code: int) -> LoopcError:
        """The error for a nonzero fault code (a bound call's return value)."""
        if self._fault is None:
            return LoopcError(f"{self.name}(): the kernel reported fault code {code}")
        return self._fault(code)

    # ------------------------------------------------------------------ timing

    def clock(self):
        """A fresh clock for one timing run (see loopc.runtime.timing): the CPU's wall clock."""
        return WallClock()

    def _timed_call(self, arrays):
        """(a no-argument call to time, a function to run after timing) for ``arrays``."""
        return self.bind(arrays), (lambda: None)

    def time_evaluator(self, number: int = 10, repeat: int = 3, min_repeat_ms: float = 0):
        """A function that times calls: ``.mean``, ``.median`` and ``.results`` in seconds."""
        def evaluator(*arrays):
            call, finish = self._timed_call(arrays)
            result = time_evaluator(call, number, repeat, min_repeat_ms, clock=self.clock())()
            finish()
            return result
        return evaluator

    # ------------------------------------------------------------------ sources

    def get_source(self, fmt: str = "llvm") -> str:
        """``"ir"`` (loopc's loop IR), ``"llvm"`` (optimised LLVM IR) or ``"asm"``."""
        if fmt == "ir":
            return str(self.func)
        if fmt not in self._sources:
            raise LoopcError(f"unknown source format {fmt!r}; this module has: ir, {', '.join(self._sources)}")
        return self._sources[fmt]()

    def __repr__(self):
        args = ", ".join(f"{b.name}: {b.dtype}[{', '.join(map(str, b.shape))}]" for b in self.params)
        return f"<loopc.Module {self.name}({args}) target={self.target!r}>"
