"""Backends: one per target kind, registered by the target packages themselves.

    from loopc import backend
    b = backend.get("llvm -mcpu=haswell")     # a string or a loopc.target.Target
    m = b.build(func, target, bounds_check=True)
    obj, target_string = b.compile_object(func, target)   # what a tuner's build worker makes
    call, keepalive = b.load_object(obj, name, nparams)   # ... and its runner loads
    b.clock()                                  # a fresh clock for loopc.runtime.timing

A target package (``loopc.targets.llvm``, ``loopc.targets.cuda``) calls :func:`register` with
a :class:`Backend` when it is imported. :func:`get` imports the package of a kind the first
time someone asks for it (by name, from :data:`PACKAGES`), so this module imports nothing
from ``targets/``: the dependency runs one way, from each backend to this registry.

Each backend may list passes (``(name, pass)`` pairs, LoweredFunc -> LoweredFunc) that run
after loopc's generic lowering passes (``loopc.lower.PASSES``); :func:`run_passes` runs them
and prints the IR after each with ``LOOPC_DUMP_IR=1``, as lowering does.
"""
from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass
from typing import Callable

from .errors import BuildError
from .target import KINDS, kind_of

#: the package that registers each kind's backend when imported
PACKAGES = {"llvm": "loopc.targets.llvm", "cuda": "loopc.targets.cuda"}

_REGISTRY: dict = {}


@dataclass(frozen=True)
class Backend:
    """What loopc needs of a code generator.

    - ``build(func, target, **options) -> Module``: a LoweredFunc compiled for ``target`` (a
      string or a Target of this kind). ``loopc.build`` passes ``bounds_check`` when the
      caller gave one (llvm: checked accesses; cuda: refuses True with a BuildError).
    - ``clock() -> clock``: a fresh clock with ``start()`` / ``stop() -> seconds``
      (``loopc.runtime.timing``): the CPU's perf_counter, the GPU's CUDA events.
    - ``passes``: ``(name, pass)`` pairs run after the generic lowering passes.
    - ``compile_object(func, target) -> (bytes, full target string)`` and
      ``load_object(bytes, name, nparams) -> (call, keepalive)`` where ``call(*pointers)``
      returns the kernel's fault code: the split a tuner uses to build in parallel workers
      and load in one runner. None where the backend has no object code (the tuner then
      rebuilds from the config in the runner).
    """
    kind: str
    build: Callable
    clock: Callable
    passes: tuple = ()
    compile_object: Callable | None = None
    load_object: Callable | None = None

    def run_passes(self, func, dump: bool | None = None):
        """``func`` after this backend's passes (each printed with LOOPC_DUMP_IR / ``dump``)."""
        if dump is None:
            dump = os.environ.get("LOOPC_DUMP_IR", "") not in ("", "0")
        for pass_name, fn in self.passes:
            func = fn(func)
            if dump:
                print(f"# ---- after {self.kind}:{pass_name}\n{func}", file=sys.stderr)
        return func


def register(backend: Backend) -> Backend:
    """Make ``backend`` the one for its kind (a target package calls this on import)."""
    if backend.kind not in KINDS:
        raise BuildError(f"cannot register a backend for unknown target kind {backend.kind!r}; "
                         f"loopc.target knows {', '.join(KINDS)}")
    _REGISTRY[backend.kind] = backend
    return backend


def get(target="llvm") -> Backend:
    """The backend for a target string or Target (its package is imported on first use)."""
    kind = kind_of(target)
    if kind not in _REGISTRY:
        importlib.import_module(PACKAGES[kind])
    if kind not in _REGISTRY:      # pragma: no cover - a target package that forgot to register
        raise BuildError(f"no backend registered for target kind {kind!r} ({PACKAGES[kind]} did not register one)")
    return _REGISTRY[kind]


def run_passes(func, target, dump: bool | None = None):
    """``func`` after the passes of ``target``'s backend."""
    return get(target).run_passes(func, dump)


__all__ = ["Backend", "PACKAGES", "register", "get", "run_passes"]
