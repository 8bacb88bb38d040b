"""TVM's ``te.schedule`` helpers that rewrite a whole schedule.

    s = te.create_schedule(out.op)
    te.schedule.AutoInlineElemWise(s)     # every elementwise helper stage inlined into its readers
"""
from __future__ import annotations

from ..schedule import AttachKind
from .expr import Reduce, TensorRead, walk
from .tensor import ComputeOp


def _inlinable(stage) -> bool:
    """A root compute stage, not an output, with no reduction or schedule steps, that no extern
    stage reads (an extern reads whole buffers)."""
    return (isinstance(stage.op, ComputeOp) and not isinstance(stage.body, Reduce) and not stage.is_output
            and stage.op.num_outputs == 1
            and stage.attach is AttachKind.ROOT and not stage.relations and not stage.iter_kinds
            and not any(getattr(r.op, "opaque", None) for r in stage.schedule.readers_of(stage)))


def _elementwise(stage) -> bool:
    """Every read indexes its tensor with exactly this stage's axes, in order."""
    axes = [iv.var for iv in stage.op.axis]
    reads = [n for n in walk(stage.body) if isinstance(n, TensorRead)]
    return all(len(r.indices) == len(axes) and all(a is b for a, b in zip(r.indices, axes)) for r in reads)


def AutoInlineElemWise(s) -> None:  # noqa: N802 - TVM's name
    """Inline every elementwise stage (each read indexed by exactly its own axes) that is not an
    output, has no reduction and is not scheduled yet.

    before:  B[i, j] = A[i, j] * 2;  C[i, j] = B[i, j] + 1
    after:   C[i, j] = A[i, j] * 2 + 1
    """
    for stage in list(s.stages):
        if _inlinable(stage) and _elementwise(stage):
            stage.compute_inline()


def AutoInlineInjective(s) -> None:  # noqa: N802 - TVM's name
    """Inline every stage without a reduction (any index map: transposes, padding, broadcasts)
    that is not an output and is not scheduled yet."""
    for stage in list(s.stages):
        if _inlinable(stage):
            stage.compute_inline()
