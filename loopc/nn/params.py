"""The parameter arena: every weight of a model as a view of one flat, 64-byte aligned array.

    store = ParamStore({"fc.weight": (10, 84), "fc.bias": (10,)})
    store["fc.weight"][...] = w             # a view of store.flat
    store.grads["fc.weight"]                # the same layout in store.grad_flat

An optimizer updates ``flat`` from ``grad_flat`` with one kernel call; an executor binds the
graph's parameters (and their gradients) to the views by name.
"""
from __future__ import annotations

import math

import numpy as np

from loopc.errors import LoopcError

from .weights import read_weights, save_weights

ALIGN = 64          # bytes: one cache line, one AVX-512 vector


def aligned_empty(shape, dtype="float32") -> np.ndarray:
    """An uninitialised C-contiguous array whose data starts on a 64-byte boundary."""
    dtype = np.dtype(dtype)
    n = max(1, math.prod(shape)) * dtype.itemsize
    raw = np.empty(n + ALIGN, dtype=np.uint8)
    off = (-raw.ctypes.data) % ALIGN
    return raw[off:off + n].view(dtype)[:math.prod(shape)].reshape(shape)


def aligned_zeros(shape, dtype="float32") -> np.ndarray:
    a = aligned_empty(shape, dtype)
    a[...] = 0
    return a


class ParamStore:
    """Named weights as views of one flat float32 arena, with a gradient arena of the same layout.

    Every parameter starts on a 64-byte boundary. ``flat`` / ``grad_flat`` are the arenas
    (what optimizers update in one kernel call); ``arrays[name]`` / ``grads[name]`` the views.
    """

    def __init__(self, shapes: dict):
        self.shapes = {k: tuple(v) for k, v in shapes.items()}
        self.offsets = {}
        off = 0
        step = ALIGN // 4
        for name, shape in self.shapes.items():
            self.offsets[name] = off
            off += -(-math.prod(shape) // step) * step
        self.size = off
        self.flat = aligned_zeros((off,))
        self.grad_flat = aligned_zeros((off,))
        self.arrays = {k: self._view(self.flat, k) for k in self.shapes}
        self.grads = {k: self._view(self.grad_flat, k) for k in self.shapes}

    def _view(self, arena, name):
        off = self.offsets[name]
        return arena[off:off + math.prod(self.shapes[name])].reshape(self.shapes[name])

    @property
    def count(self) -> int:
        """Trainable numbers (the arena's padding between parameters not counted)."""
        return sum(math.prod(s) for s in self.shapes.values())

    def __getitem__(self, name):
        return self.arrays[name]

    def __iter__(self):
        return iter(self.shapes)

    def state_dict(self) -> dict:
        return {k: v.copy() for k, v in self.arrays.items()}

    def load_state_dict(self, state: dict) -> None:
        missing = [k for k in self.shapes if k not in state]
        if missing:
            raise LoopcError(f"the saved weights lack {', '.join(missing)}")
        for k, shape in self.shapes.items():
            a = np.asarray(state[k])
            if a.shape != shape:
                raise LoopcError(f"saved weight {k} has shape {a.shape}, the model expects {shape}")
            self.arrays[k][...] = a

    def save(self, path):
        """An .npz file with one array per parameter name (see loopc.nn.weights); returns its path."""
        return save_weights(self.state_dict(), path)

    def load(self, path, allow_nonfinite: bool = False) -> None:
        """Weights written by ``save``; a LoopcError for anything else, the weights unchanged."""
        self.load_state_dict(read_weights(path, self.shapes, allow_nonfinite))
