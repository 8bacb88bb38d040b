"""A te tensor standing for a PyTorch tensor (``TV``), and elementwise computes with PyTorch's
broadcasting: the vocabulary every ATen lowering (``aten``, ``pointwise``) is written in.

    y = pointwise(lambda a, b: a * b + 1.0, x, bias)        # numpy broadcasting, constants as te.const
    z = compute((N, C), lambda n, c: y.t[n, c] * 2.0, "twice")
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from loopc import te

#: torch dtypes loopc kernels read and write
DTYPES = {torch.float32: "float32", torch.int64: "int64", torch.int32: "int32", torch.bool: "bool"}


@dataclass(frozen=True)
class TV:
    """A te tensor standing for a PyTorch tensor of ``shape`` (``()`` for a 0-d tensor)."""
    t: object
    shape: tuple

    @property
    def dtype(self) -> str:
        return self.t.dtype

    def read(self, idx, out_shape):
        """This tensor at output index ``idx`` of a broadcast of shape ``out_shape`` (numpy rules)."""
        if not self.shape:
            return self.t[0]
        lead = len(out_shape) - len(self.shape)
        return self.t[tuple(0 if d == 1 and o != 1 else idx[lead + n]
                            for n, (d, o) in enumerate(zip(self.shape, out_shape[lead:])))]


def te_shape(shape) -> tuple:
    return tuple(shape) if shape else (1,)


def compute(shape, body, name, tag="injective", attrs=None) -> TV:
    """``te.compute`` over PyTorch ``shape`` (0-d: one element, ``body`` gets no indices)."""
    fn = body if shape else (lambda _i: body())
    return TV(te.compute(te_shape(shape), fn, name=name, tag=tag, attrs=attrs), tuple(shape))


def broadcast_shape(*shapes) -> tuple:
    return tuple(torch.broadcast_shapes(*[torch.Size(s) for s in shapes]))


def pointwise(fn, *operands, name="pointwise", dtype=None) -> TV:
    """``fn`` of the operands' elements (TVs broadcast, Python numbers as constants)."""
    shape = broadcast_shape(*[o.shape for o in operands if isinstance(o, TV)])
    like = next((o.dtype for o in operands if isinstance(o, TV)), "float32")

    def body(*i):
        vals = [o.read(i, shape) if isinstance(o, TV) else _constant(o, like) for o in operands]
        out = fn(*vals)
        return out.astype(dtype) if dtype is not None and out.dtype != dtype else out
    return compute(shape, body, name)


def _constant(v, like):
    """A Python number operand: an int64 constant beside int64 tensors, else float32."""
    if isinstance(v, bool):
        return te.const(v)
    if like == "int64" and isinstance(v, int):
        return te.const(v, "int64")
    return te.const(float(v))
