"""Lowering a ``te.extern`` stage: its call, on the buffers of its inputs and its output.

    before (the stage):  C = te.extern((M, N), [A, B], lambda ins, outs: te.call_packed("f", ins[0], ins[1], outs[0]))
    after:               call_packed("f", A, B, C)        # one Evaluate statement, no loops
"""
from __future__ import annotations

from ..errors import LoweringError
from ..ir.stmt import Evaluate
from ..schedule.stage import AttachKind
from ..te import expr as E
from ..te.extern import BufferArg, TensorArg


def extern_stmt(schedule, stage, buffer_map) -> Evaluate:
    """The Evaluate of ``stage``'s call, each TensorArg replaced by its whole buffer."""
    call = stage.body
    for t in stage.op.inputs:
        producer = schedule._stage_of.get(t.op)
        if producer is not None and producer.attach is not AttachKind.ROOT:
            raise LoweringError(f"extern stage '{stage.name}' reads all of '{t.name}', which is "
                                f"{producer.attach.value} here; compute it whole: s[{t.name}].compute_root()")

    def fn(n):
        if isinstance(n, TensorArg):
            return BufferArg(buffer_map[n.tensor], n.writes)
        return None
    return Evaluate(E.transform(call, fn))


__all__ = ["extern_stmt"]
