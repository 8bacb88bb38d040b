"""The operator library, installed as ``loopc.schedules``: compute declarations, numpy
references (``loopc.schedules.testing``) and a schedule per target.

    Y = schedules.conv2d_nchw(X, W, stride=1, padding=2)
    s = schedules.schedule(Y)            # the best known schedule for this workload on this target
    f = loopc.build(s, [X, W, Y])
"""
from __future__ import annotations

import warnings

from loopc import te
from loopc.errors import LoopcError
from loopc.schedule import AttachKind
from loopc.te.tensor import ComputeOp, PlaceholderOp, Tensor

from . import cpu, cpu_grad, cuda, testing
from .grad import (bias_backward, conv2d_backward_data, conv2d_backward_weight, dense_backward_data,
                   dense_backward_weight, log_softmax_backward, max_pool2d_backward, nll_loss, nll_loss_backward,
                   relu_backward)
from .ops import avg_pool2d, bias_add, conv2d_nchw, dense, log_softmax, matmul, max_pool2d, relu, softmax
from .optim import adadelta, sgd_momentum

__all__ = ["matmul", "dense", "conv2d_nchw", "max_pool2d", "avg_pool2d", "relu", "bias_add", "softmax",
           "log_softmax", "schedule", "workload_key", "testing", "NoTunedRecordWarning",
           # backward ops (grad.py) and optimizer updates (optim.py)
           "conv2d_backward_data", "conv2d_backward_weight", "dense_backward_data", "dense_backward_weight",
           "bias_backward", "max_pool2d_backward", "relu_backward", "nll_loss", "nll_loss_backward",
           "log_softmax_backward", "sgd_momentum", "adadelta"]


class NoTunedRecordWarning(UserWarning):
    """No tuned schedule exists for a workload on this target: the default template is used."""


_warned = set()
#: tuned-record lookup, installed by loopc.autotune: (workload_key, target) -> trace or None
tuned_record_lookup = None


def workload_key(out: Tensor) -> tuple:
    """What identifies a workload: the op tag, every input's shape and dtype, and the op's attrs."""
    op = out.op
    inputs = tuple((t.shape, t.dtype) for t in _leaf_inputs(op))
    attrs = tuple(sorted((k, tuple(v) if isinstance(v, (list, tuple)) else v) for k, v in op.attrs.items()))
    return (op.tag or op.name, inputs, out.dtype, attrs)


def _leaf_inputs(op):
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


def _describe(key):
    tag, inputs, dtype, attrs = key
    shapes = ", ".join(f"{'x'.join(map(str, shape))} {dt}" for shape, dt in inputs)
    extra = "".join(f" {k}={v}" for k, v in attrs)
    return f"{tag}({shapes}){extra}"


def _warn_untuned(key, target):
    if (key, target) in _warned:
        return
    _warned.add((key, target))
    warnings.warn(f"no tuned schedule for {_describe(key)} on {target}; using the default template. "
                  f"Tune it with `loopc tune` (see tutorials/05_autotune.py) to make it faster.",
                  NoTunedRecordWarning, stacklevel=3)


_TEMPLATES = {
    "conv2d_nchw": cpu.schedule_conv2d,
    "dense": cpu.schedule_dense,
    "max_pool2d": cpu.schedule_pool,
    "avg_pool2d": cpu.schedule_pool,
    "injective": cpu.schedule_injective,
    "bias_add": cpu.schedule_injective,
    "softmax": cpu.schedule_rowwise,
    "log_softmax": cpu.schedule_rowwise,
    **cpu_grad.TEMPLATES,     # backward ops and optimizer updates
}


def schedule(outs, target: str = "llvm"):
    """The best known schedule for ``outs`` on ``target`` ("llvm ..." or "cuda ..."): a tuned
    record when one exists, otherwise the target's default template (with a one-time warning
    naming the workload)."""
    if isinstance(outs, Tensor):
        outs = [outs]
    outs = list(outs)
    kind = str(target).split()[0] if str(target).strip() else ""
    if kind not in ("llvm", "cuda"):
        raise LoopcError(f"loopc.schedules has templates for the targets 'llvm' and 'cuda', not {target!r}")
    s = te.create_schedule([o.op for o in outs])
    output_ops = {o.op for o in outs}
    for stage in list(s.stages):
        op = stage.op
        if not isinstance(op, ComputeOp) or stage.attach is not AttachKind.ROOT:
            continue
        if op not in output_ops and op.tag in ("injective", "bias_add", "pad"):
            stage.compute_inline()
    if kind == "cuda":
        _schedule_cuda(s, target, output_ops)
        return s
    for stage in list(s.stages):
        op = stage.op
        if stage.attach is not AttachKind.ROOT or stage.relations or stage.iter_kinds:
            continue
        tag = op.tag
        if tag in ("matmul",):
            _apply_tuned_or(s, stage, target, lambda: cpu.schedule_gemm(s, stage, op.input_tensors[1]))
        elif tag in _TEMPLATES:
            _apply_tuned_or(s, stage, target, lambda t=tag: _TEMPLATES[t](s, stage))
        elif tag == "" and stage.op.name.endswith(("_max", "_sum", "_exp")):
            cpu.schedule_rowwise(s, stage)
    return s


def _schedule_cuda(s, target, output_ops):
    """Every root compute stage gets a CUDA template: the op's own (tuned when a record exists)
    or the flat kernel; stages a template creates (im2col's patch matrix) are already bound.
    Elementwise helper stages (a transposed copy, softmax's exponentials) are inlined into
    their readers first: recomputing a read costs less than a kernel launch and a round trip
    through device memory."""
    from loopc.te.expr import Reduce
    for stage in list(s.stages):
        op = stage.op
        if (isinstance(op, ComputeOp) and stage.attach is AttachKind.ROOT and op not in output_ops
                and not isinstance(stage.body, Reduce) and op.tag not in cuda.TEMPLATES):
            stage.compute_inline()
    for stage in list(s.stages):
        op = stage.op
        if (not isinstance(op, ComputeOp) or stage.attach is not AttachKind.ROOT or stage.relations
                or stage.iter_kinds or stage not in s.stages):
            continue
        template = cuda.TEMPLATES.get(op.tag)
        if template is not None:
            _apply_tuned_or(s, stage, target, lambda t=template, st=stage: t(s, st))
        else:
            cuda.schedule_reduction(s, stage)


def _install_lookup():
    """Import loopc.autotune's library templates once: they install ``tuned_record_lookup``."""
    global _lookup_tried
    if tuned_record_lookup is None and not _lookup_tried:
        _lookup_tried = True
        try:
            import loopc.autotune.library  # noqa: F401 - installs the hook
        except ImportError:     # pragma: no cover - the autotuner is part of loopc
            pass


_lookup_tried = False
_TENSOR_ARGS = ("tensor", "readers", "parent")    # trace arguments that name tensors or stages


def _retarget_trace(trace, stage):
    """A trace recorded on a template's graph, with its op names (``trace["names"]``, producers
    first) renamed to those of ``stage``'s graph (same structure, other tensor names). A trace
    of another shape is returned as it is: replaying it raises a ScheduleError naming the fault."""
    from loopc.schedule import post_order_ops
    names = trace.get("names") if isinstance(trace, dict) else None
    if not isinstance(names, list) or not names or not isinstance(trace.get("steps"), list):
        return trace
    ours = [op.name for op in post_order_ops([stage.op])]
    if len(ours) != len(names):
        return trace
    mapping = {a: b for a, b in zip(names, ours) if isinstance(a, str) and a != b}
    if not mapping:
        return trace

    def rename(v):
        if isinstance(v, str):
            if v in mapping:
                return mapping[v]
            head, dot, tail = v.partition(".")
            if dot and head in mapping:          # derived stages: conv2d.col, B.global, dense.rf
                return mapping[head] + dot + tail
            return v
        if isinstance(v, list):
            return [rename(x) for x in v]
        return v

    steps = []
    for st in trace["steps"]:
        if not isinstance(st, dict) or not isinstance(st.get("args", {}), dict):
            steps.append(st)                     # malformed: replay says which step and why
            continue
        args = {k: (rename(v) if k in _TENSOR_ARGS else v) for k, v in st.get("args", {}).items()}
        steps.append({**st, "stage": rename(st.get("stage")), "args": args})
    return {**trace, "steps": steps}


def _check_replay(s, stage, trace):
    """Replay ``trace`` (retargeted onto ``stage``'s graph) on a copy of ``s`` (a fresh schedule
    of its outputs with ``s``'s steps so far): raises what ``s.replay`` would, leaving ``s``
    untouched, so that a tuned record that does not apply here is skipped, not half applied."""
    import copy
    try:
        shadow = te.create_schedule([o.op for o in s.outputs])
        shadow.replay({"version": 1, "steps": copy.deepcopy(s.trace)})
    except LoopcError:           # pragma: no cover - s's own steps always replay
        return
    shadow.replay(_retarget_trace(trace, stage))


def _apply_tuned_or(s, stage, target, default):
    """Schedule ``stage`` with the best tuned record that applies (records whose trace does not
    replay here are skipped with a warning naming their file and line), else ``default()``."""
    key = workload_key(stage.op.output(0))
    _install_lookup()
    trace = None
    if tuned_record_lookup is not None:
        trace = tuned_record_lookup(key, target, check=lambda t: _check_replay(s, stage, t))
    if trace is not None:
        s.replay(_retarget_trace(trace, stage))
        return
    _warn_untuned(key, target)
    default()
