"""Compiled kernels and the cache that owns them.

    kernels = KernelCache()                          # or SHARED, the one models use by default
    k = kernels.op("relu", [((4, 5), "float32")], {})
    k = kernels.chain(((op, frozen attrs, args), ...), in_specs, target="llvm")
    step = bind(k.module, arrays)                    # a zero-argument call returning the fault code

A ``KernelCache`` is an explicit object held by whoever compiles: a ``Model`` (and through it
its executors), an ``Optimizer``, ``loopc.torch``. Graph kernels (an op, or a fused chain of
ops, keyed on the chain, the input shapes and dtypes, and the target) and optimizer update
kernels (keyed on the kind, the arena's length and the hyper-parameters) live in the same
cache, and nothing is compiled twice for one cache. Models share ``SHARED`` unless they are
given a cache of their own, so the executor of a last partial batch, or a second model of
the same shapes, only compiles the kernels whose shapes differ.

``bind`` is the one place where a kernel is bound to preallocated arrays.
"""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass

import numpy as np

import loopc

from .ops import OPS, library


@dataclass
class Kernel:
    """A compiled op (or fused chain of ops): the Module, which of the chain's external inputs it
    reads (in the module's argument order), its workspace."""
    module: object
    reads: tuple          # indices into the external inputs, in the module's argument order
    workspace: int        # bytes of scratch buffers the generated code allocates
    seconds: float        # compile time


def freeze(v):
    """A hashable form of attributes (dicts and lists become sorted tuples)."""
    if isinstance(v, dict):
        return tuple(sorted((k, freeze(x)) for k, x in v.items()))
    if isinstance(v, (list, tuple)):
        return tuple(freeze(x) for x in v)
    return v


def bind(module, arrays):
    """A zero-argument callable that runs ``module`` on ``arrays`` (preallocated, checked once
    here: shapes, dtypes, contiguity, no aliasing; device arrays on a GPU) and returns its fault
    code (0 or None: fine; ``module.fault_error(code)`` is the error otherwise). Every executor
    step and optimizer update binds its kernel here."""
    return module.bind(arrays)


def workspace(func) -> int:
    """Bytes of the buffers a lowered function allocates (e.g. an im2col patch matrix)."""
    from loopc.ir.stmt import Allocate, walk_stmt
    total = 0
    for s in walk_stmt(func.body):
        if isinstance(s, Allocate):
            total += math.prod(s.buffer.shape) * np.dtype(s.buffer.dtype).itemsize
    return total


class KernelCache:
    """Kernels compiled once per key; ``stats``: built, seconds (compiling), hits, and the ops
    whose kernels used a default schedule template (``untuned``)."""

    def __init__(self):
        self._kernels = {}
        self.stats = {"built": 0, "seconds": 0.0, "hits": 0, "untuned": set()}

    def __len__(self) -> int:
        return len(self._kernels)

    def get(self, key, build) -> Kernel:
        """The kernel cached under ``key``, or ``build()``'s, cached from now on."""
        k = self._kernels.get(key)
        if k is not None:
            self.stats["hits"] += 1
            return k
        k = build()
        self._kernels[key] = k
        self.stats["built"] += 1
        self.stats["seconds"] += k.seconds
        return k

    def op(self, op: str, in_specs, attrs: dict, target: str = "llvm") -> Kernel:
        """The kernel of ``op`` on inputs ``in_specs`` ((shape, dtype) pairs)."""
        return self.chain(((op, freeze(attrs), tuple(range(len(in_specs)))),), in_specs, target)

    def chain(self, chain, in_specs, target: str = "llvm") -> Kernel:
        """One kernel for a chain of ops: ``chain`` is ``((op, frozen attrs, args), ...)`` where each
        arg is an index into ``in_specs`` (an external input) or -1 (the previous op's result).
        The last op's result is the kernel's output; the others stay inside the kernel (inlined
        where the schedule inlines them). Cached on (chain, input specs, target)."""
        chain, in_specs = tuple(chain), tuple(in_specs)
        return self.get(("chain", chain, in_specs, target), lambda: self._build_chain(chain, in_specs, target))

    def update(self, kind: str, size: int, n_state: int, hyper: tuple) -> Kernel:
        """The optimizer kernel ``loopc.schedules.<kind>`` over arenas of ``size`` numbers:
        arguments (param, grad, *state, lr, *new_state, new_param); ``hyper`` are constants
        of the code. Always for the host CPU (optimizers update the host's arenas)."""
        return self.get(("update", kind, size, n_state, hyper),
                        lambda: self._build_update(kind, size, n_state, hyper))

    def untuned_summary(self) -> str:
        """One line naming the ops whose kernels used a default schedule template (no tuned record)."""
        ops = sorted(self.stats["untuned"])
        if not ops:
            return "every kernel used a tuned schedule record"
        return (f"{len(ops)} ops used loopc.schedules' default templates (no tuned record on this target): "
                f"{', '.join(ops)}")

    # ------------------------------------------------------------------ building
    def _build_chain(self, chain, in_specs, target) -> Kernel:
        from loopc import te
        import loopc.schedules as lib
        t0 = time.perf_counter()
        phs = [te.placeholder(shape, dtype, name=f"in{i}") for i, (shape, dtype) in enumerate(in_specs)]
        out = None
        for op, attrs, args in chain:
            out = OPS[op].compute(*[out if i < 0 else phs[i] for i in args], **dict(attrs))
        read = _reads(out, phs)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", lib.NoTunedRecordWarning)
            s = lib.schedule(out, target=target)
        for w in caught:   # one summary line instead of a warning per kernel: see untuned_summary()
            if issubclass(w.category, lib.NoTunedRecordWarning):
                self.stats["untuned"].add(chain[0][0])
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        name = "_".join(op for op, _, _ in chain)
        module = loopc.build(s, [phs[i] for i in read] + [out], target=target, name=name)
        return Kernel(module, tuple(read), workspace(module.func), time.perf_counter() - t0)

    @staticmethod
    def _build_update(kind, size, n_state, hyper) -> Kernel:
        from loopc import te
        import loopc.schedules as lib
        t0 = time.perf_counter()
        p = te.placeholder((size,), name="param")
        g = te.placeholder((size,), name="grad")
        state = [te.placeholder((size,), name=f"state{i}") for i in range(n_state)]
        lr = te.placeholder((1,), name="lr")
        outs = list(library(kind)(p, g, *state, lr, *hyper))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", lib.NoTunedRecordWarning)
            s = lib.schedule(outs)
        module = loopc.build(s, [p, g, *state, lr, *outs], name=kind)
        return Kernel(module, tuple(range(3 + n_state)), workspace(module.func), time.perf_counter() - t0)


def _reads(out, phs):
    """Indices of the placeholders ``out`` reads (a kernel's arguments are only those)."""
    from loopc.schedule import post_order_ops
    found = set(post_order_ops([out.op]))
    return [i for i, p in enumerate(phs) if p.op in found]


#: the cache models, executors, optimizers and loopc.torch use unless given one of their own
SHARED = KernelCache()

#: SHARED's counters (``built``, ``seconds``, ``hits``, ``untuned``)
compile_stats = SHARED.stats


def compile_op(op: str, in_specs, attrs: dict, target: str = "llvm") -> Kernel:
    """``SHARED.op(...)``: the kernel of ``op`` on inputs ``in_specs`` ((shape, dtype) pairs)."""
    return SHARED.op(op, in_specs, attrs, target)


def compile_chain(chain, in_specs, target: str = "llvm") -> Kernel:
    """``SHARED.chain(...)``: one kernel for a chain of ops (see ``KernelCache.chain``)."""
    return SHARED.chain(chain, in_specs, target)


def cached_kernels() -> int:
    return len(SHARED)


def untuned_summary() -> str:
    """``SHARED.untuned_summary()``."""
    return SHARED.untuned_summary()
