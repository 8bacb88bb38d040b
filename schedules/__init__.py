"""The operator library, installed as ``loopc.schedules``: compute declarations, numpy
references (``loopc.schedules.testing``) and one schedule template per (op, target kind).

    Y = schedules.conv2d_nchw(X, W, stride=1, padding=2)
    s = schedules.schedule(Y)            # the best known schedule for this workload on this target
    f = loopc.build(s, [X, W, Y])

The pieces:

    ops.py, grad.py, optim.py   compute declarations (forward, backward, optimizer updates)
    sparse.py                   sparse_dense: Y = X · Wᵀ with W in CSR or BSR (loops over the nonzeros)
    pooling.py, pooling_grad.py pooling of any rank and layout, and its backward (windows.py: the
                                window geometry: layouts, padding specs, ceil mode)
    registry.py                 register(op_tag, kind)(template), lookup: one template per (op, kind)
    facts.py                    the sizes CPU templates derive from the Target (lanes, registers, caches)
    cpu.py, cpu_grad.py         the "llvm" templates (cpu_grouped.py: grouped and depthwise conv;
                                cpu_sparse.py: sparse_dense);
                                cuda.py the "cuda" ones (and the GPU GEMM)
    tasks.py                    workloads, and the tuner's templates (``loopc tune matmul|dense|conv2d``)
    records.py                  tuned records: an apply_history_best context, then tuned/*.jsonl
    testing.py                  numpy references
"""
from __future__ import annotations

import warnings

from loopc import te
from loopc.schedule import AttachKind
from loopc.te.tensor import ComputeOp, Tensor

from . import cpu, cpu_grouped, cpu_grad, cpu_sparse, cuda, records, registry, tasks, testing
from .grad import (bias_backward, conv2d_backward_data, conv2d_backward_weight, dense_backward_data,
                   dense_backward_weight, log_softmax_backward, max_pool2d_backward, nll_loss, nll_loss_backward,
                   relu_backward)
from .ops import avg_pool2d, bias_add, conv2d_nchw, dense, log_softmax, matmul, max_pool2d, relu, softmax
from .sparse import sparse_dense
from .pooling import adaptive_pool, adaptive_pool1d, adaptive_pool3d, pool1d, pool2d, pool3d
from .pooling_grad import avg_pool2d_backward, pool_grad
from .optim import adadelta, sgd_momentum
from .records import check_replay as _check_replay, tuned_record_lookup
from .tasks import describe, workload, workload_key

__all__ = ["matmul", "dense", "conv2d_nchw", "max_pool2d", "avg_pool2d", "relu", "bias_add", "softmax",
           "log_softmax", "sparse_dense", "pool1d", "pool2d", "pool3d", "adaptive_pool", "adaptive_pool1d", "adaptive_pool3d",
           "schedule", "workload", "workload_key", "testing", "NoTunedRecordWarning",
           # backward ops (grad.py) and optimizer updates (optim.py)
           "conv2d_backward_data", "conv2d_backward_weight", "dense_backward_data", "dense_backward_weight",
           "bias_backward", "max_pool2d_backward", "avg_pool2d_backward", "pool_grad", "relu_backward", "nll_loss",
           "nll_loss_backward",
           "log_softmax_backward", "sgd_momentum", "adadelta"]


class NoTunedRecordWarning(UserWarning):
    """No tuned schedule exists for a workload on this target: the default template is used."""


class WarnedWorkloads(set):
    """(workload key, target) pairs already warned about: one warning each per process;
    ``clear()`` starts over."""


_warned = WarnedWorkloads()


def _warn_untuned(key, out, target):
    if (key, target) in _warned:
        return
    _warned.add((key, target))
    warnings.warn(f"no tuned schedule for {describe(out)} on {target}; using the default template. "
                  f"Tune it with `loopc tune` (see tutorials/05_autotune.py) to make it faster.",
                  NoTunedRecordWarning, stacklevel=3)


def schedule(outs, target="llvm"):
    """The best known schedule for ``outs`` on ``target`` ("llvm ..." or "cuda ..."): for each
    root stage with a template (``registry.lookup(op.tag, kind)``), a tuned record when one
    exists, otherwise the template's default (with a one-time warning naming the workload).
    On a GPU every other root stage gets the flat kernel (``cuda.schedule_reduction``)."""
    if isinstance(outs, Tensor):
        outs = [outs]
    outs = list(outs)
    kind = registry.target_kind(target)
    s = te.create_schedule([o.op for o in outs])
    registry.prepare(s, outs, kind)
    for stage in list(s.stages):
        if (not isinstance(stage.op, ComputeOp) or stage.attach is not AttachKind.ROOT or stage.relations
                or stage.iter_kinds or stage not in s.stages):
            continue
        template = registry.lookup(stage.op.tag, kind)
        if template is not None:
            _apply_tuned_or(s, stage, target, template)
        elif kind == "cuda":
            cuda.schedule_reduction(s, stage)
    return s


def _apply_tuned_or(s, stage, target, template):
    """Schedule ``stage`` with the best tuned record that applies (records whose trace does not
    replay here are skipped with a warning naming their file and line), else with config 0 of
    ``template``."""
    out = stage.op.output(0)
    key = workload_key(out)
    trace = tuned_record_lookup(key, target, check=lambda t: _check_replay(s, stage, t))
    if trace is not None:
        s.replay(records.retarget_trace(trace, stage))
        return
    _warn_untuned(key, out, target)
    template(s, stage, target=target)

