"""``loopc.torch``: drop-in ``torch.nn`` layers whose forward and backward run loopc kernels.

    import torch.nn as nn
    from loopc import torch as lt

    model = nn.Sequential(lt.Conv2d(1, 6, 5, padding=2), lt.ReLU(), lt.MaxPool2d(2), ...)
    loss = F.nll_loss(model(x), y); loss.backward()      # every layer's gradients by loopc

``Conv2d``, ``Linear``, ``MaxPool2d`` and ``ReLU`` subclass their ``torch.nn`` namesakes, so
parameters, initialisation, ``state_dict`` and ``repr`` are PyTorch's own; only ``forward``
changes: a ``torch.autograd.Function`` hands the tensors' memory to loopc kernels as numpy
arrays (``Tensor.numpy()`` shares memory: no copy for contiguous float32 CPU tensors) and the
kernels write into tensors allocated by torch. Kernels are compiled once per shape and
attribute set (the cache of ``loopc.nn.runtime``), so the first call of a new shape pays the
compile time.

Only what the kernels implement is accepted: float32 CPU tensors, ``groups=1`` and zero
padding mode for Conv2d, no ``ceil_mode``/``dilation``/``return_indices`` for MaxPool2d; other
settings raise at construction, other inputs at call time.
"""
from __future__ import annotations

try:
    import torch
    import torch.nn as _nn
except ImportError as e:  # pragma: no cover - exercised where torch is missing
    raise ImportError("loopc.torch needs PyTorch, which is not installed: pip install 'loopc[torch]' "
                      "(or pip install torch)") from e

from loopc.errors import ArgumentError, UnsupportedError
from loopc.nn.runtime import compile_op

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


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(int(x) for x in v)


class _Conv2dFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, dilation):
        geo = dict(stride=stride, padding=padding, dilation=dilation)
        y = run_op("conv2d", [x, weight], **geo)
        if bias is not None:
            y = run_op("bias_add", [y, bias], axis=1)
        ctx.save_for_backward(x, weight)
        ctx.geo, ctx.has_bias = geo, bias is not None
        return y

    @staticmethod
    def backward(ctx, dy):
        x, weight = ctx.saved_tensors
        dy = dy.contiguous()
        dx = dw = db = None
        if ctx.needs_input_grad[0]:
            dx = run_op("conv2d_backward_data", [dy, weight], input_shape=tuple(x.shape), **ctx.geo)
        if ctx.needs_input_grad[1]:
            dw = run_op("conv2d_backward_weight", [dy, x], kernel_shape=tuple(weight.shape), **ctx.geo)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            db = run_op("bias_backward", [dy], axis=1)
        return dx, dw, db, None, None, None


class _LinearFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias):
        lead = x.shape[:-1]
        x2 = x.reshape(-1, x.shape[-1])
        y = run_op("dense", [x2, weight])
        if bias is not None:
            y = run_op("bias_add", [y, bias], axis=1)
        ctx.save_for_backward(x2, weight)
        ctx.lead, ctx.has_bias = lead, bias is not None
        return y.reshape(*lead, weight.shape[0])

    @staticmethod
    def backward(ctx, dy):
        x2, weight = ctx.saved_tensors
        dy2 = dy.reshape(-1, weight.shape[0]).contiguous()
        dx = dw = db = None
        if ctx.needs_input_grad[0]:
            dx = run_op("dense_backward_data", [dy2, weight]).reshape(*ctx.lead, weight.shape[1])
        if ctx.needs_input_grad[1]:
            dw = run_op("dense_backward_weight", [dy2, x2])
        if ctx.has_bias and ctx.needs_input_grad[2]:
            db = run_op("bias_backward", [dy2], axis=1)
        return dx, dw, db


class _MaxPool2dFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, kernel, stride, padding):
        ctx.save_for_backward(x)
        ctx.attrs = dict(kernel=kernel, stride=stride, padding=padding)
        return run_op("max_pool2d", [x], **ctx.attrs)

    @staticmethod
    def backward(ctx, dy):
        (x,) = ctx.saved_tensors
        return run_op("max_pool2d_backward", [dy.contiguous(), x], **ctx.attrs), None, None, None


class _ReLUFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        y = run_op("relu", [x])
        ctx.save_for_backward(y)          # y > 0 exactly where x > 0
        return y

    @staticmethod
    def backward(ctx, dy):
        (y,) = ctx.saved_tensors
        return run_op("relu_backward", [dy.contiguous(), y])


class Conv2d(_nn.Conv2d):
    """``torch.nn.Conv2d`` (groups=1, zero padding) computed by loopc's conv2d kernels."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.groups != 1:
            raise UnsupportedError("loopc.torch.Conv2d supports groups=1 only")
        if self.padding_mode != "zeros":
            raise UnsupportedError("loopc.torch.Conv2d supports padding_mode='zeros' only")
        if isinstance(self.padding, str):
            raise UnsupportedError("loopc.torch.Conv2d takes numeric padding (not 'same'/'valid')")

    def forward(self, x):
        return _Conv2dFn.apply(x, self.weight, self.bias, _pair(self.stride), _pair(self.padding),
                               _pair(self.dilation))


class Linear(_nn.Linear):
    """``torch.nn.Linear`` computed by loopc's dense kernels."""

    def forward(self, x):
        return _LinearFn.apply(x, self.weight, self.bias)


class MaxPool2d(_nn.MaxPool2d):
    """``torch.nn.MaxPool2d`` (no dilation, ceil_mode or indices) computed by loopc."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if _pair(self.dilation) != (1, 1) or self.ceil_mode or self.return_indices:
            raise UnsupportedError("loopc.torch.MaxPool2d supports dilation=1, ceil_mode=False, return_indices=False")

    def forward(self, x):
        kernel = _pair(self.kernel_size)
        stride = _pair(self.stride if self.stride is not None else self.kernel_size)
        return _MaxPool2dFn.apply(x, kernel, stride, _pair(self.padding))


class ReLU(_nn.ReLU):
    """``torch.nn.ReLU`` computed by loopc (``inplace`` is accepted; the result is a new tensor)."""

    def forward(self, x):
        return _ReLUFn.apply(x)
