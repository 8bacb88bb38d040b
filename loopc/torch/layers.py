"""``loopc.torch``'s drop-in ``torch.nn`` layers: PyTorch's modules whose forward and backward
run loopc kernels.

    import torch.nn as nn
    from loopc import torch as lt

    model = nn.Sequential(lt.Conv2d(1, 6, 5, padding=2), lt.ReLU(), lt.MaxPool2d(2), ...)
    loss = F.nll_loss(model(x), y); loss.backward()      # every layer's gradients by loopc

Each subclasses its ``torch.nn`` namesake, so parameters, initialisation, ``state_dict`` and
``repr`` are PyTorch's own; ``forward`` calls ``loopc.torch.functional``, which compiles the
layer's ATen forward and backward with the same operator mapping as ``torch.compile(model,
backend="loopc")``: any stride, padding (numbers, 'same', 'valid'), dilation and groups for
Conv2d, ceil_mode and dilation for MaxPool2d (parts loopc lacks run in PyTorch). Kernels are
compiled once per shape and cached (``loopc.torch.cache``).

``run_op`` runs one op of ``loopc.nn``'s graph vocabulary on CPU tensors.
"""
from __future__ import annotations

import torch
import torch.nn as _nn

from loopc.errors import ArgumentError, UnsupportedError
from loopc.nn.runtime import compile_op

from . import functional as LF

__all__ = ["Conv2d", "Linear", "MaxPool2d", "ReLU", "run_op"]


def _array(t: "torch.Tensor", what: str):
    """A numpy view of ``t``'s memory (a contiguous copy only when ``t`` is not contiguous)."""
    if t.device.type != "cpu":
        raise ArgumentError(f"loopc.torch: {what} is on {t.device}; loopc kernels run on CPU tensors")
    if t.dtype != torch.float32:
        raise ArgumentError(f"loopc.torch: {what} has dtype {t.dtype}; loopc's layers take float32 (x.float())")
    return t.detach().contiguous().numpy()


def run_op(op: str, inputs, **attrs) -> "torch.Tensor":
    """Run loopc.nn op ``op`` on float32 CPU tensors; the result is a new tensor (kernel-written)."""
    arrays = [_array(t, f"input {i} of {op}") for i, t in enumerate(inputs)]
    kernel = compile_op(op, [(a.shape, str(a.dtype)) for a in arrays], attrs)
    out_buf = kernel.module.params[-1]
    out = torch.empty(tuple(out_buf.shape), dtype=torch.float32)
    kernel.module(*[arrays[i] for i in kernel.reads], out.numpy())
    return out


def _tracing() -> bool:
    """Under ``torch.jit.trace`` (TensorBoard's add_graph): the layers record PyTorch's own ops, so
    the traced graph shows a conv/linear/relu/pool node in each layer's scope."""
    return torch.jit.is_tracing()


def _check_input(x, layer):
    if not isinstance(x, torch.Tensor):
        raise ArgumentError(f"loopc.torch.{layer}: expected a tensor, got {type(x).__name__}")
    if x.device.type != "cpu":
        raise ArgumentError(f"loopc.torch.{layer}: the input is on {x.device}; loopc's layers run on CPU tensors")
    if x.dtype != torch.float32:
        raise ArgumentError(f"loopc.torch.{layer}: the input has dtype {x.dtype}; loopc's layers take float32 "
                            "(x.float())")


class Conv2d(_nn.Conv2d):
    """``torch.nn.Conv2d`` (zero padding mode) computed by loopc."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.padding_mode != "zeros":
            raise UnsupportedError("loopc.torch.Conv2d supports padding_mode='zeros' only "
                                   "(use torch.compile(model, backend='loopc') for the others)")

    def forward(self, x):
        _check_input(x, "Conv2d")
        if _tracing():
            return super().forward(x)
        return LF.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class Linear(_nn.Linear):
    """``torch.nn.Linear`` computed by loopc's dense kernels."""

    def forward(self, x):
        _check_input(x, "Linear")
        if _tracing():
            return super().forward(x)
        return LF.linear(x, self.weight, self.bias)


class MaxPool2d(_nn.MaxPool2d):
    """``torch.nn.MaxPool2d`` computed by loopc."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.return_indices:
            raise UnsupportedError("loopc.torch.MaxPool2d does not return indices (use torch.nn.MaxPool2d)")

    def forward(self, x):
        _check_input(x, "MaxPool2d")
        if _tracing():
            return super().forward(x)
        return LF.max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode)


class ReLU(_nn.ReLU):
    """``torch.nn.ReLU`` computed by loopc (``inplace`` is accepted; the result is a new tensor)."""

    def forward(self, x):
        _check_input(x, "ReLU")
        if _tracing():
            return super().forward(x)
        return LF.relu(x)
