"""Optimizers as loopc kernels: one call updates every weight of a ParamStore's flat arena.

    opt = Adadelta(model.store, lr=1.0)        # or SGD(model.store, lr=0.01, momentum=0.9)
    model.train_step(x, labels); opt.step()

The update kernels come from the operator library (``sgd_momentum``, ``adadelta``), compiled
once for the arena's length. The learning rate is a runtime input (a (1,) buffer), so a
schedule changes it without recompiling; momentum, rho and eps are constants of the code.
New state and weights are written to separate buffers (a kernel's outputs never alias its
inputs) and copied back.
"""
from __future__ import annotations

import functools
import time
import warnings

import numpy as np

import loopc
from loopc import te
from loopc.errors import LoopcError
from loopc.runtime import profiling

from .ops import library
from .runtime import ParamStore, aligned_empty, aligned_zeros

_CACHE = {}


def _build(kind, size, n_state, hyper):
    """The update kernel: arguments (param, grad, *state, lr, *new_state, new_param)."""
    key = (kind, size, hyper)
    m = _CACHE.get(key)
    if m is None:
        import loopc.schedules as lib
        p = te.placeholder((size,), name="param")
        g = te.placeholder((size,), name="grad")
        state = [te.placeholder((size,), name=f"state{i}") for i in range(n_state)]
        lr = te.placeholder((1,), name="lr")
        outs = list(library(kind)(p, g, *state, lr, *hyper))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", lib.NoTunedRecordWarning)
            s = lib.schedule(outs)
        m = loopc.build(s, [p, g, *state, lr, *outs], name=kind)
        _CACHE[key] = m
    return m


class Optimizer:
    kind = ""
    n_state = 0
    flop_per_weight = 0

    def __init__(self, store: ParamStore, lr: float):
        self.store = store
        self.state = [aligned_zeros((store.size,)) for _ in range(self.n_state)]
        self._new = [aligned_empty((store.size,)) for _ in range(self.n_state + 1)]
        self._lr = aligned_zeros((1,))
        self.set_lr(lr)
        module = _build(self.kind, self.store.size, self.n_state, self.hyper())
        arrays = [self.store.flat, self.store.grad_flat, *self.state, self._lr, *self._new]
        module.check(arrays)
        cfunc = getattr(module, "_cfunc", None)
        self._module = module
        self._call = (functools.partial(cfunc, *[a.ctypes.data for a in arrays]) if cfunc is not None
                      else functools.partial(module, *arrays))
        self._flop = self.flop_per_weight * self.store.size

    def hyper(self) -> tuple:
        raise NotImplementedError

    @property
    def lr(self) -> float:
        return float(self._lr[0])

    def set_lr(self, lr: float) -> None:
        """The learning rate of the next steps (a runtime input of the kernel: no recompiling)."""
        lr = float(lr)
        if not lr > 0:
            raise LoopcError(f"the learning rate must be positive, got {lr}")
        self._lr[0] = lr

    def step(self) -> None:
        """Apply one update from ``store.grads`` to ``store.arrays`` (one kernel call)."""
        t = time.perf_counter()
        code = self._call()
        if code:
            raise self._module.fault_error(code)
        for dst, src in zip([*self.state, self.store.flat], self._new):
            np.copyto(dst, src)
        if profiling.recording():
            profiling.record(f"{self.kind}[optimizer]", t, time.perf_counter() - t, self._flop)

    def state_dict(self) -> dict:
        return {f"state{i}": s.copy() for i, s in enumerate(self.state)}


class SGD(Optimizer):
    """PyTorch's SGD with momentum (dampening 0, no weight decay): v = m*v + g; w -= lr*v."""
    kind = "sgd_momentum"
    n_state = 1
    flop_per_weight = 4

    def __init__(self, store, lr=0.01, momentum=0.9):
        self.momentum = float(momentum)
        super().__init__(store, lr)

    def hyper(self):
        return (self.momentum,)


class Adadelta(Optimizer):
    """PyTorch's Adadelta (the chapter's optimizer; lr 1.0, rho 0.9, eps 1e-6)."""
    kind = "adadelta"
    n_state = 2
    flop_per_weight = 14

    def __init__(self, store, lr=1.0, rho=0.9, eps=1e-6):
        self.rho, self.eps = float(rho), float(eps)
        super().__init__(store, lr)

    def hyper(self):
        return (self.rho, self.eps)


OPTIMIZERS = {"sgd": SGD, "adadelta": Adadelta}
