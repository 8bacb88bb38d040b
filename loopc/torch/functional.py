"""``torch.nn.functional``'s forms on loopc kernels, forward and backward, without Dynamo.

    import loopc.torch.functional as LF
    y = LF.conv2d(x, w, b, stride=2, padding=1, groups=4)
    loss = LF.nll_loss(LF.log_softmax(LF.linear(h, w2, b2), dim=1), labels)   # int64 labels
    loss.backward()

Each function is PyTorch's own, traced by AOTAutograd into ATen forward and backward graphs
and compiled by the same lowering table and graph compiler as ``torch.compile(model,
backend="loopc")`` (``loopc.torch.graph.compile_graph``): one operator mapping for the backend,
these functions and the drop-in layers (``loopc.torch.Conv2d`` ...). What loopc lacks runs in
PyTorch. The compiled pair is kept per function, attributes, input shapes and dtypes, which
inputs need gradients and whether autograd is on.
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from .graph import Report

#: what the functions compiled so far ran where (graphs, loopc nodes, fallback)
REPORT = Report()
_compiled = {}


def _signature(args):
    sig = []
    for a in args:
        if isinstance(a, torch.Tensor):
            sig.append((tuple(a.shape), a.dtype, a.device.type, a.requires_grad))
        else:
            sig.append(("none",) if a is None else ("const", repr(a)))
    return tuple(sig)


def call(name, fn, *args, **attrs):
    """``fn(*args, **attrs)`` (a PyTorch function of tensors) on loopc kernels, differentiable.
    ``name`` and ``attrs`` (hashable constants) name the function in the cache."""
    from functorch.compile import aot_function
    from torch._decomp import get_decompositions

    from .aten import DECOMPOSE
    from .backend import graph_compiler
    tensors = [a for a in args if a is not None]
    key = (name, tuple(sorted(attrs.items())), _signature(args), torch.is_grad_enabled())
    compiled = _compiled.get(key)
    if compiled is None:
        present = [a is not None for a in args]

        def traced(*ts):
            it = iter(ts)
            return fn(*[next(it) if p else None for p in present], **attrs)
        compiler = graph_compiler(REPORT)
        compiled = _compiled[key] = aot_function(traced, fw_compiler=compiler, bw_compiler=compiler,
                                                 decompositions=get_decompositions(DECOMPOSE))
    return compiled(*tensors)


def _pair(v):
    return tuple(v) if isinstance(v, (list, tuple)) else (v, v)


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    padding = padding if isinstance(padding, str) else _pair(padding)
    return call("conv2d", F.conv2d, x, weight, bias, stride=_pair(stride), padding=padding,
                dilation=_pair(dilation), groups=int(groups))


def linear(x, weight, bias=None):
    return call("linear", F.linear, x, weight, bias)


def relu(x, inplace=False):
    """``F.relu`` (``inplace`` accepted; the result is a new tensor)."""
    return call("relu", F.relu, x)


def max_pool2d(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    stride = kernel_size if stride is None or stride == [] else stride
    return call("max_pool2d", F.max_pool2d, x, kernel_size=_pair(kernel_size), stride=_pair(stride),
                padding=_pair(padding), dilation=_pair(dilation), ceil_mode=bool(ceil_mode),
                return_indices=bool(return_indices))


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    stride = kernel_size if stride is None or stride == [] else stride
    return call("avg_pool2d", F.avg_pool2d, x, kernel_size=_pair(kernel_size), stride=_pair(stride),
                padding=_pair(padding), ceil_mode=bool(ceil_mode), count_include_pad=bool(count_include_pad),
                divisor_override=divisor_override)


def log_softmax(x, dim):
    return call("log_softmax", F.log_softmax, x, dim=int(dim))


def softmax(x, dim):
    return call("softmax", F.softmax, x, dim=int(dim))


def nll_loss(x, target, reduction="mean", ignore_index=-100):
    """``F.nll_loss`` with int64 (or int32) class labels."""
    return call("nll_loss", F.nll_loss, x, target.long(), reduction=reduction, ignore_index=int(ignore_index))


def cross_entropy(x, target, reduction="mean", ignore_index=-100):
    return call("cross_entropy", F.cross_entropy, x, target.long(), reduction=reduction,
                ignore_index=int(ignore_index))


def dropout(x, p=0.5, training=True):
    """``F.dropout``: the identity when not training; otherwise PyTorch draws the mask (as eager
    does) and loopc applies it."""
    if not training or p == 0:
        return x
    return call("dropout", functools.partial(F.dropout, training=True), x, p=float(p))
