"""Optimizers as loopc kernels: one call updates every weight of a ParamStore's flat arena.

    opt = Adadelta(model.store, lr=1.0)        # or SGD(model.store, lr=0.01, momentum=0.9)
    model.train_step(x, labels); opt.step()

The update kernels come from the operator library (``sgd_momentum``, ``adadelta``), compiled
once for the arena's length by a KernelCache (``kernels=``; the shared one by default, the
one the graph kernels use). The learning rate is a runtime input (a (1,) buffer), so a
schedule changes it without recompiling; momentum, rho and eps are constants of the code.
New state and weights are written to separate buffers (a kernel's outputs never alias its
inputs) and copied back.
"""
from __future__ import annotations

import time

import numpy as np

from loopc.errors import LoopcError
from loopc.runtime import profiling

from .kernels import SHARED, bind
from .params import ParamStore, aligned_empty, aligned_zeros


class Optimizer:
    kind = ""
    n_state = 0
    flop_per_weight = 0

    def __init__(self, store: ParamStore, lr: float, kernels=None):
        self.store = store
        self.kernels = SHARED if kernels is None else kernels
        self.state = [aligned_zeros((store.size,)) for _ in range(self.n_state)]
        self._new = [aligned_empty((store.size,)) for _ in range(self.n_state + 1)]
        self._lr = aligned_zeros((1,))
        self.set_lr(lr)
        kernel = self.kernels.update(self.kind, self.store.size, self.n_state, self.hyper())
        self._module = kernel.module
        self._call = bind(kernel.module, [self.store.flat, self.store.grad_flat, *self.state, self._lr, *self._new])
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

    def __init__(self, store, lr=0.01, momentum=0.9, kernels=None):
        self.momentum = float(momentum)
        super().__init__(store, lr, kernels)

    def hyper(self):
        return (self.momentum,)


class Adadelta(Optimizer):
    """PyTorch's Adadelta (the chapter's optimizer; lr 1.0, rho 0.9, eps 1e-6)."""
    kind = "adadelta"
    n_state = 2
    flop_per_weight = 14

    def __init__(self, store, lr=1.0, rho=0.9, eps=1e-6, kernels=None):
        self.rho, self.eps = float(rho), float(eps)
        super().__init__(store, lr, kernels)

    def hyper(self):
        return (self.rho, self.eps)


OPTIMIZERS = {"sgd": SGD, "adadelta": Adadelta}
