"""Workloads: what identifies an op's schedule problem, and the tuner's view of the templates.

A *workload* is ``(name, args)``, JSON values; its key (``autotune.task.workload_key``, a
canonical string) is what tuning records match on. The ops the tuner knows declare their
workload from a few ints (what ``loopc tune OP --shape ...`` takes):

    matmul       (M, N, K)                                 schedules.matmul(A[M, K], B[K, N])
    dense        (batch, in_features, out_features)        schedules.dense(X[batch, in], W[out, in])
    conv2d_nchw  (N, C, H, W, K, R, S, stride, padding)    schedules.conv2d_nchw(X, W, stride, padding)
    depthwise_conv2d_nchw, group_conv2d_nchw
                 (N, C, H, W, K, R, S, stride, padding, groups)   ... groups=groups

Every other op (and a float64 matmul, a dilated convolution ...) has the workload
``(tag, ([[shape, dtype], ...inputs], dtype, [[attr, value], ...]))``.

For each such op and each target kind with a registered template, an autotune template named
``op`` ("llvm") or ``op_cuda`` is defined here (module attributes, so that measurement workers
can import them): it declares the op with the library's compute, prepares the schedule as
``schedules.schedule`` does, and applies the registered template with the tuner's config.
"""
from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from typing import Callable, Optional

from loopc import te
from loopc.autotune.dispatcher import current_target, get_config
from loopc.autotune.task import make_workload, template
from loopc.autotune.task import workload_key as _key_of_workload
from loopc.te.tensor import PlaceholderOp

from . import ops, testing
from .registry import lookup, prepare

_DTYPE = "float32"


@dataclass(frozen=True)
class Workload:
    """How the tuner declares op ``op`` from its workload args, and reads them back."""
    op: str
    declare: Callable            # (*args) -> (inputs, output)
    args_of: Callable            # (op, its leaf inputs) -> args, or None when it does not fit
    reference: Optional[Callable] = None   # numpy (inputs -> output), checks GPU candidates


def _placeholders(*named_shapes):
    return [te.placeholder(shape, dtype=_DTYPE, name=name) for name, shape in named_shapes]


def _float32_shapes(op, leaves, rank):
    """The shapes of ``op``'s two inputs when everything is float32 of ``rank`` dimensions, else None."""
    fits = (op.dtype == _DTYPE and len(leaves) == 2
            and all(t.dtype == _DTYPE and len(t.shape) == rank for t in leaves))
    return [t.shape for t in leaves] if fits else None


def declare_matmul(M, N, K):
    A, B = _placeholders(("A", (M, K)), ("B", (K, N)))
    return [A, B], ops.matmul(A, B)


def declare_dense(batch, in_features, out_features):
    X, W = _placeholders(("X", (batch, in_features)), ("W", (out_features, in_features)))
    return [X, W], ops.dense(X, W)


def _matmul_args(op, leaves):
    shapes = _float32_shapes(op, leaves, 2)
    return None if shapes is None else (shapes[0][0], shapes[1][1], shapes[0][1])    # A[M, K], B[K, N]


def _dense_args(op, leaves):
    shapes = _float32_shapes(op, leaves, 2)
    return None if shapes is None else (shapes[0][0], shapes[0][1], shapes[1][0])    # X[b, in], W[out, in]


def declare_conv2d_nchw(N, C, H, W, K, R, S, stride, padding):
    X, Wt = _placeholders(("X", (N, C, H, W)), ("W", (K, C, R, S)))
    return [X, Wt], ops.conv2d_nchw(X, Wt, stride=stride, padding=padding)


def declare_grouped_conv2d_nchw(N, C, H, W, K, R, S, stride, padding, groups):
    X, Wt = _placeholders(("X", (N, C, H, W)), ("W", (K, C // max(groups, 1), R, S)))
    return [X, Wt], ops.conv2d_nchw(X, Wt, stride=stride, padding=padding, groups=groups)


def _conv2d_args(op, leaves):
    shapes = _float32_shapes(op, leaves, 4)
    if shapes is None:
        return None
    (N, C, H, W), (K, _, R, S) = shapes
    st, pad, dil = (tuple(op.attrs[k]) for k in ("stride", "padding", "dilation"))
    if st[0] != st[1] or len(pad) != 2 or pad[0] != pad[1] or dil != (1, 1):
        return None
    groups = op.attrs.get("groups", 1)
    return (N, C, H, W, K, R, S, st[0], pad[0]) + ((groups,) if groups > 1 else ())


WORKLOADS = {w.op: w for w in (
    Workload("matmul", declare_matmul, _matmul_args, testing.matmul),
    Workload("dense", declare_dense, _dense_args, testing.dense),
    Workload("conv2d_nchw", declare_conv2d_nchw, _conv2d_args),
    Workload("depthwise_conv2d_nchw", declare_grouped_conv2d_nchw, _conv2d_args),
    Workload("group_conv2d_nchw", declare_grouped_conv2d_nchw, _conv2d_args),
)}


# --------------------------------------------------------------------------- workloads of ops


def leaf_inputs(op):
    """The placeholders ``op`` reads, directly or through computed ops, in reading order."""
    seen, out = set(), []

    def visit(o):
        for t in o.input_tensors:
            if t.op in seen:
                continue
            seen.add(t.op)
            if isinstance(t.op, PlaceholderOp):
                out.append(t)
            else:
                visit(t.op)
    visit(op)
    return out


def _attrs(op):
    return sorted((k, tuple(v) if isinstance(v, (list, tuple)) else v) for k, v in op.attrs.items())


def _json_value(v):
    """``v`` when a workload may hold it (ints, floats, strings, bools, None, tuples of them), else its repr."""
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, tuple):
        return [_json_value(x) for x in v]
    return repr(v)


def workload(out) -> tuple:
    """The workload ``(name, args)`` of the op computing tensor ``out``."""
    op = out.op
    leaves = leaf_inputs(op)
    spec = WORKLOADS.get(op.tag)
    args = spec.args_of(op, leaves) if spec is not None else None
    if args is not None:
        return make_workload(op.tag, args)
    return make_workload(op.tag or op.name, ([[t.shape, t.dtype] for t in leaves], out.dtype,
                                             [[k, _json_value(v)] for k, v in _attrs(op)]))


def workload_key(out) -> str:
    """The key of ``out``'s workload: the string tuning records of it carry."""
    return _key_of_workload(workload(out))


def describe(out) -> str:
    """``conv2d_nchw(64x6x14x14 float32, 16x6x5x5 float32) stride=(1, 1) ...``: the op for a person."""
    op = out.op
    shapes = ", ".join(f"{'x'.join(map(str, t.shape))} {t.dtype}" for t in leaf_inputs(op))
    return f"{op.tag or op.name}({shapes})" + "".join(f" {k}={v}" for k, v in _attrs(op))


# --------------------------------------------------------------------------- the tuner's templates


def task_name(op, kind) -> str:
    """The autotune template of ``op`` on target ``kind``: ``op`` on a CPU, ``op_cuda`` on a GPU."""
    return op if kind == "llvm" else f"{op}_{kind}"


def task_workload(wkey, kind):
    """The workload of the autotune template a workload key (``workload_key``) stands for on
    target ``kind``, or None when no template tunes it."""
    import json
    try:
        name, args = json.loads(wkey)
    except (TypeError, ValueError):
        return None
    spec = WORKLOADS.get(name)
    if (spec is None or lookup(name, kind) is None or not isinstance(args, list)
            or len(args) != len(inspect.signature(spec.declare).parameters)
            or not all(isinstance(a, int) and not isinstance(a, bool) for a in args)):
        return None
    return make_workload(task_name(name, kind), args)


def _instantiate(spec, kind, args):
    cfg = get_config()
    inputs, out = spec.declare(*args)
    s = te.create_schedule([out.op])
    prepare(s, [out], kind)
    cfg.add_flop(2 * math.prod(out.shape) * math.prod(iv.extent for iv in out.op.reduce_axis))
    lookup(spec.op, kind).apply(cfg, s, s[out], current_target(kind))
    return s, [*inputs, out]


def _define_task(spec, kind):
    name = task_name(spec.op, kind)

    def run(*args):
        return _instantiate(spec, kind, args)
    run.__name__ = run.__qualname__ = name
    run.__module__ = __name__
    run.__signature__ = inspect.signature(spec.declare)
    run.__doc__ = (f"``schedules.{spec.op}`` on {'a CPU' if kind == 'llvm' else 'the GPU'}, with the "
                   f"{kind} template of loopc.schedules ({lookup(spec.op, kind).__qualname__}) and its knobs.")
    # a GPU candidate is checked against numpy (its reference schedule would run on the CPU)
    globals()[name] = template(name, reference=spec.reference if kind == "cuda" else None)(run)
    return name


#: the autotune templates of the library: matmul, dense, conv2d_nchw and their _cuda variants
TASKS = tuple(_define_task(spec, kind) for kind in ("llvm", "cuda") for spec in WORKLOADS.values()
              if lookup(spec.op, kind) is not None)
