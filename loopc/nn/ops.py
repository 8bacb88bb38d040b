"""The operators a ``loopc.nn`` graph can hold: each one's compute declaration and FLOP count.

A graph node names an op of ``OPS``; the runtime builds the op's te compute on placeholders
of the node's input shapes, schedules it with ``loopc.schedules.schedule`` and compiles it.
The declarations all come from the operator library (``loopc.schedules``: forward ops in
``ops.py``, backward ops in ``grad.py``, optimizer updates in ``optim.py``); ``add`` and
``copy`` (gradient sums, gradient copies) are declared here.

    op              inputs            attrs                          output
    conv2d          x, w              stride, padding, dilation      y (N, K, P, Q)
    bias_add        x, b              axis                           x + b
    relu            x                                                max(x, 0)
    max_pool2d      x                 kernel, stride, padding        window maxima
    dense           x, w                                             x @ w.T
    reshape         x                 shape                          a view: no kernel
    log_softmax     x                 axis
    nll_loss        logp, labels                                     mean loss, shape (1,)
    nll_loss_backward  labels         batch, classes                 d loss / d logp
    add             a, b                                             a + b (gradient sums)
    *_backward, nll_loss_backward, bias_backward                     gradients (see autodiff)
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from loopc import te
from loopc.errors import LoopcError


def library(name: str):
    """The compute declaration ``loopc.schedules.<name>``."""
    import loopc.schedules as lib
    fn = getattr(lib, name, None)
    if fn is None:
        raise LoopcError(f"loopc.schedules has no operator {name!r}")
    return fn


def _numel(shape) -> int:
    return math.prod(shape)


@dataclass(frozen=True)
class OpDef:
    """``compute(*te_inputs, **attrs) -> te.Tensor``; ``flop(in_shapes, out_shape, attrs) -> int``.

    A ``view`` op (reshape) runs no kernel: its output is the input's buffer, reshaped.
    """
    name: str
    compute: Callable
    flop: Callable
    view: bool = False


def _conv_flop(in_shapes, out_shape, attrs):
    """conv2d(X, W) -> Y: one multiply-add per output element and filter tap."""
    return 2 * _numel(out_shape) * _numel(in_shapes[1][1:])


def _conv_data_flop(in_shapes, out_shape, attrs):
    """conv2d_backward_data(dY, W): as many multiply-adds as the forward convolution."""
    return 2 * _numel(in_shapes[0]) * _numel(in_shapes[1][1:])


def _conv_weight_flop(in_shapes, out_shape, attrs):
    """conv2d_backward_weight(dY, X) -> dW: as many multiply-adds as the forward convolution."""
    return 2 * _numel(in_shapes[0]) * _numel(out_shape[1:])


def _dense_flop(in_shapes, out_shape, attrs):
    """dense(X, W) and dense_backward_data(dY, W): the reduction is the last axis of input 0."""
    return 2 * _numel(out_shape) * in_shapes[0][1]


def _dense_weight_flop(in_shapes, out_shape, attrs):
    """dense_backward_weight(dY, X) -> dW: the reduction runs over the batch."""
    return 2 * _numel(out_shape) * in_shapes[0][0]


def _elementwise(per=1):
    return lambda in_shapes, out_shape, attrs: per * _numel(out_shape)


def _pool_flop(in_shapes, out_shape, attrs):
    kh, kw = _pair(attrs["kernel"])
    return _numel(out_shape) * kh * kw


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def _reshape(x, shape):
    raise LoopcError("reshape is a view: the runtime reshapes its input's buffer and runs no kernel")


def _add(a, b):
    return te.compute(a.shape, lambda *i: a[i] + b[i], name="add", tag="injective")


def _copy(x):
    return te.compute(x.shape, lambda *i: x[i] + 0.0, name="copy", tag="injective")


def _conv2d(x, w, stride=1, padding=0, dilation=1):
    return library("conv2d_nchw")(x, w, stride=stride, padding=padding, dilation=dilation)


def _late(name):
    """The library's declaration ``name`` (loopc.schedules is imported on first use)."""
    def call(*args, **attrs):
        return library(name)(*args, **attrs)
    call.__name__ = name
    return call


OPS = {
    "conv2d": OpDef("conv2d", _conv2d, _conv_flop),
    "bias_add": OpDef("bias_add", _late("bias_add"), _elementwise()),
    "relu": OpDef("relu", _late("relu"), _elementwise()),
    "max_pool2d": OpDef("max_pool2d", _late("max_pool2d"), _pool_flop),
    "dense": OpDef("dense", _late("dense"), _dense_flop),
    "reshape": OpDef("reshape", _reshape, _elementwise(0), view=True),
    "log_softmax": OpDef("log_softmax", _late("log_softmax"), _elementwise(4)),
    "nll_loss": OpDef("nll_loss", _late("nll_loss"), lambda i, o, a: i[0][0]),
    "add": OpDef("add", _add, _elementwise()),
    "copy": OpDef("copy", _copy, _elementwise(0)),
    # gradients (autodiff emits these)
    "conv2d_backward_data": OpDef("conv2d_backward_data", _late("conv2d_backward_data"),
                                  _conv_data_flop),
    "conv2d_backward_weight": OpDef("conv2d_backward_weight", _late("conv2d_backward_weight"),
                                    _conv_weight_flop),
    "dense_backward_data": OpDef("dense_backward_data", _late("dense_backward_data"), _dense_flop),
    "dense_backward_weight": OpDef("dense_backward_weight", _late("dense_backward_weight"),
                                   _dense_weight_flop),
    "bias_backward": OpDef("bias_backward", _late("bias_backward"), lambda i, o, a: _numel(i[0])),
    "relu_backward": OpDef("relu_backward", _late("relu_backward"), _elementwise()),
    "max_pool2d_backward": OpDef("max_pool2d_backward", _late("max_pool2d_backward"),
                                 lambda i, o, a: 2 * _numel(i[0]) * _numel(_pair(a["kernel"]))),
    "log_softmax_backward": OpDef("log_softmax_backward", _late("log_softmax_backward"), _elementwise(4)),
    "nll_loss_backward": OpDef("nll_loss_backward", _late("nll_loss_backward"), _elementwise(0)),
}
