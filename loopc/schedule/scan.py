"""How a schedule holds a ``te.scan`` (TVM's scan attachment).

The scan's init and update stages are attached to the scan's stage (``AttachKind.SCAN``): the
scan computes them into its output. The update's first axis is the time step, a sequential
loop that no primitive may touch. Each stage of the scan body (between the state and the
update) is computed at the time loop of the stage that reads it, one row per step:

    before:  s1[t, i] = state[t - 1, i] * 2            (at the root it would read the state too early)
             update[t, i] = s1[t, i] + X[t, i]
    after:   for t in range(1, m):
               s1 = allocate(float32[1, n])
               for i: s1[0, i] = scan[t - 1, i] * 2
               for i: scan[t, i] = s1[0, i] + X[t, i]
"""
from __future__ import annotations

from .stage import AttachKind

SEQUENTIAL = ("is the time step of scan '{scan}': it runs in order, one step after another, so it cannot be "
              "split, fused, reordered, parallelized, vectorized, unrolled or bound")


def attach_scans(schedule) -> None:
    """Attach the init, update and body stages of every scan in ``schedule`` (no trace steps:
    a fresh schedule of the same program does the same)."""
    from ..te.scan import ScanOp
    for scan_stage in [st for st in schedule.stages if isinstance(st.op, ScanOp)]:
        op = scan_stage.op
        why = SEQUENTIAL.format(scan=scan_stage.name)
        for tensor in op.init + op.update:
            st = schedule._stage_of[tensor.op]
            st.attach, st.attach_stage, st.attach_ivar = AttachKind.SCAN, scan_stage, op.scan_axis
        update = schedule._stage_of[op.update[0].op]
        update.sequential_axes[update.op.axis[0]] = why
        for body_op in reversed(op.body_ops):           # consumers first: a reader is known
            st = schedule._stage_of[body_op]
            st.sequential_axes[body_op.axis[0]] = why
            readers = schedule.readers_of(st)
            if len(readers) == 1:      # several readers: lowering says how to fix it
                reader = readers[0]
                st.attach, st.attach_stage, st.attach_ivar = AttachKind.SCOPE, reader, reader.op.axis[0]


__all__ = ["attach_scans", "SEQUENTIAL"]
