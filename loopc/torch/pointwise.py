"""The elementwise ATen operators as te expressions: ``POINTWISE`` (every operand a tensor or a
number) and ``WITH_CONSTS`` (trailing arguments are constants: a clamp's bounds, a slope), and
``builder(op)`` making the lowering of each.

    POINTWISE[aten.silu.default]                 lambda x: x * te.sigmoid(x)
    WITH_CONSTS[aten.leaky_relu.default]         (1 operand, lambda x, slope: ...)
"""
from __future__ import annotations

import math

import torch

from loopc import te

from .tv import pointwise

aten = torch.ops.aten

def _select(c, a, b):
    return te.if_then_else(c, a, b)


def _gelu(x, approximate="none"):
    if approximate == "tanh":
        return 0.5 * x * (1.0 + te.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x * x * x)))
    return 0.5 * x * (1.0 + te.erf(x * (1.0 / math.sqrt(2.0))))


def _clamp(x, lo=None, hi=None):
    if lo is not None:
        x = te.max(x, lo)
    if hi is not None:
        x = te.min(x, hi)
    return x


def _pow(x, e):
    if e == 2:
        return x * x
    if e == 3:
        return x * x * x
    if e == 0.5:
        return te.sqrt(x)
    if e == -1:
        return 1.0 / x
    if e == 1:
        return x
    return te.exp(te.log(x) * float(e))


def _alpha(b, alpha):
    return b if alpha == 1 else b * float(alpha)


def _truthy(x):
    """``x`` as a bool expression (PyTorch's logical ops treat nonzero numbers as true)."""
    return x if x.dtype == "bool" else x != 0.0


def _sign(x):
    return _select(x > 0.0, te.const(1.0), _select(x < 0.0, te.const(-1.0), x * 0.0))


#: name -> (fn of te expressions and constant args, number of tensor/scalar operands)
POINTWISE = {
    aten.relu.default: lambda x: te.max(x, 0.0),
    aten.sigmoid.default: lambda x: te.sigmoid(x),
    aten.tanh.default: lambda x: te.tanh(x),
    aten.exp.default: lambda x: te.exp(x),
    aten.log.default: lambda x: te.log(x),
    aten.sqrt.default: lambda x: te.sqrt(x),
    aten.rsqrt.default: lambda x: 1.0 / te.sqrt(x),
    aten.neg.default: lambda x: -x,
    aten.abs.default: lambda x: te.abs(x),
    aten.erf.default: lambda x: te.erf(x),
    aten.sgn.default: lambda x: _sign(x),
    aten.sign.default: lambda x: _sign(x),
    aten.reciprocal.default: lambda x: 1.0 / x,
    aten.clone.default: lambda x, **_: x + 0.0 if x.dtype == "float32" else x,
    aten._to_copy.default: lambda x, **_: x + 0.0 if x.dtype == "float32" else x,   # same dtype (checked)
    aten.add.Tensor: lambda a, b, alpha=1: a + _alpha(b, alpha),
    aten.sub.Tensor: lambda a, b, alpha=1: a - _alpha(b, alpha),
    aten.rsub.Scalar: lambda a, b, alpha=1: b - _alpha(a, alpha),
    aten.mul.Tensor: lambda a, b: a * b,
    aten.div.Tensor: lambda a, b: a / b,
    aten.add.Scalar: lambda a, b, alpha=1: a + _alpha(b, alpha),
    aten.sub.Scalar: lambda a, b, alpha=1: a - _alpha(b, alpha),
    aten.mul.Scalar: lambda a, b: a * b,
    aten.div.Scalar: lambda a, b: a / b,
    aten.maximum.default: lambda a, b: te.max(a, b),
    aten.minimum.default: lambda a, b: te.min(a, b),
    aten.pow.Tensor_Scalar: None,   # filled below (the exponent is a constant, not an operand)
    aten.clamp.default: None,
    aten.clamp_min.default: None,
    aten.clamp_max.default: None,
    aten.hardtanh.default: None,
    aten.leaky_relu.default: None,
    aten.gelu.default: None,
    aten.silu.default: lambda x: x * te.sigmoid(x),
    aten.hardsigmoid.default: lambda x: _clamp(x * (1.0 / 6.0) + 0.5, 0.0, 1.0),
    aten.where.self: lambda c, a, b: _select(c, a, b),
    aten.threshold_backward.default: None,
    aten.native_dropout_backward.default: None,
    aten.sigmoid_backward.default: lambda g, y: g * y * (1.0 - y),
    aten.tanh_backward.default: lambda g, y: g * (1.0 - y * y),
    aten.hardtanh_backward.default: None,
    aten.leaky_relu_backward.default: None,
    aten.gt.Scalar: lambda a, b: a > b,
    aten.lt.Scalar: lambda a, b: a < b,
    aten.ge.Scalar: lambda a, b: a >= b,
    aten.le.Scalar: lambda a, b: a <= b,
    aten.eq.Scalar: lambda a, b: a == b,
    aten.ne.Scalar: lambda a, b: a != b,
    aten.gt.Tensor: lambda a, b: a > b,
    aten.lt.Tensor: lambda a, b: a < b,
    aten.ge.Tensor: lambda a, b: a >= b,
    aten.le.Tensor: lambda a, b: a <= b,
    aten.eq.Tensor: lambda a, b: a == b,
    aten.ne.Tensor: lambda a, b: a != b,
    aten.bitwise_and.Tensor: lambda a, b: a & b,          # logical on bools, bitwise on integers
    aten.bitwise_or.Tensor: lambda a, b: a | b,
    aten.bitwise_xor.Tensor: lambda a, b: a ^ b,
    aten.bitwise_not.default: lambda x: ~x,
    aten.bitwise_and.Scalar: lambda a, b: a & b,
    aten.bitwise_or.Scalar: lambda a, b: a | b,
    aten.bitwise_xor.Scalar: lambda a, b: a ^ b,
    aten.logical_and.default: lambda a, b: _truthy(a) & _truthy(b),
    aten.logical_or.default: lambda a, b: _truthy(a) | _truthy(b),
    aten.logical_not.default: lambda x: ~_truthy(x),
    aten.scalar_tensor.default: None,
}

# ops whose trailing arguments are constants rather than operands: (n operands, fn(*operands, *consts))
WITH_CONSTS = {
    aten.pow.Tensor_Scalar: (1, lambda x, e: _pow(x, e)),
    aten.clamp.default: (1, lambda x, lo=None, hi=None: _clamp(x, lo, hi)),
    aten.clamp_min.default: (1, lambda x, lo: _clamp(x, lo, None)),
    aten.clamp_max.default: (1, lambda x, hi: _clamp(x, None, hi)),
    aten.hardtanh.default: (1, lambda x, lo=-1.0, hi=1.0: _clamp(x, float(lo), float(hi))),
    aten.leaky_relu.default: (1, lambda x, slope=0.01: _select(x > 0.0, x, x * float(slope))),
    aten.gelu.default: (1, lambda x, approximate="none": _gelu(x, approximate)),
    aten.threshold_backward.default: (2, lambda g, x, thr: _select(x > float(thr), g, 0.0)),
    aten.native_dropout_backward.default: (2, lambda g, m, scale: _select(m, g * float(scale), 0.0)),
    aten.hardtanh_backward.default: (2, lambda g, x, lo, hi: _select((x > float(lo)) & (x < float(hi)), g, 0.0)),
    aten.leaky_relu_backward.default: (2, lambda g, x, slope, res: _select(x > 0.0, g, g * float(slope))),
    # a 0-d constant (the activation backwards' decompositions make their zeros with it)
    aten.scalar_tensor.default: (0, lambda v, **_: te.const(float(v))),
}

#: comparisons give bool tensors
BOOL_OUT = {aten.gt.Scalar, aten.lt.Scalar, aten.ge.Scalar, aten.le.Scalar, aten.eq.Scalar, aten.ne.Scalar}


def builder(target):
    """The build function of elementwise op ``target`` (its operands broadcast, its constants bound)."""
    n_ops, fn = WITH_CONSTS.get(target, (None, POINTWISE[target]))
    name = target.__name__.split(".")[0]

    def build(*args, **kwargs):
        kwargs = {k: v for k, v in kwargs.items()
                  if k not in ("memory_format", "dtype", "layout", "device", "pin_memory", "non_blocking")}
        if n_ops is None:
            operands = [a for a in args]
            return pointwise(lambda *v: fn(*v, **kwargs), *operands, name=name)
        operands, consts = args[:n_ops], args[n_ops:]
        return pointwise(lambda *v: fn(*v, *consts, **kwargs), *operands, name=name)
    return build
