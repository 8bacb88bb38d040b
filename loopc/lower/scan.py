"""Lowering a ``te.scan``: the init rows, then the update one step at a time, into one buffer.

    before (the stages):  init[_, i] = X[0, i]
                          update[t, i] = state[t - 1, i] + X[t, i]
    after:                for _ in range(1): for i in range(n): scan[_, i] = X[0, i]
                          for t in range(1, m): for i in range(n): scan[t, i] = scan[t - 1, i] + X[t, i]

The init, the update and the state placeholder all map to the scan's buffer, so the stores of
the init and update nests (scheduled as the user scheduled them) land in it and the state
reads read its earlier rows. The update's time loop is the outermost loop of its nest (no
primitive may move it); lowering narrows it to the steps after the init.
"""
from __future__ import annotations

from ..arith.extents import as_index_expr
from ..errors import LoweringError
from ..ir.stmt import For, ForKind, seq
from ..schedule.stage import AttachKind
from ..te import expr as E
from ..te.scan import ScanOp


def scan_step_ranges(ops) -> dict:
    """op -> {time Var: (first step, last step)} for each scan's update and body computes:
    they run only from the init's rows on (what the reads-in-bounds check assumes)."""
    out = {}
    for op in ops:
        if isinstance(op, ScanOp):
            for step_op in op.body_ops + (op.update[0].op,):
                out[step_op] = {step_op.axis[0].var: (op.init_rows, op.shape[0] - 1)}
    return out


def check_scans(schedule, in_args) -> None:
    """LoweringError for arguments (``in_args``: their ops) or placements a scan cannot honour."""
    for scan in [st for st in schedule.stages if isinstance(st.op, ScanOp)]:
        op = scan.op
        for what, tensors in (("state placeholder", op.state_placeholder), ("init", op.init), ("update", op.update)):
            for t in tensors:
                if t.op in in_args:
                    raise LoweringError(f"'{t.name}' is the {what} of scan '{scan.name}', which lives in the scan's "
                                        f"output; pass the scan's output '{op.name}' instead")
        update = schedule[op.update[0]]
        steps = set(op.body_ops) | {update.op}
        for reader in schedule.ops:
            if reader not in steps and any(t.op is op.state_placeholder[0].op for t in reader.input_tensors):
                raise LoweringError(f"'{reader.name}' reads '{op.state_placeholder[0].name}', the state placeholder "
                                    f"of scan '{scan.name}', outside the scan's steps; read the scan's output "
                                    f"'{op.name}' instead")
        for body_op in op.body_ops:
            st = schedule[body_op]
            if st.attach is AttachKind.INLINE:
                continue
            at = st
            while at.attach is AttachKind.SCOPE:
                at = at.attach_stage
            if at is not update:
                readers = schedule.readers_of(st)
                names = ", ".join(r.name for r in readers)
                fix = (f"s[{st.name}].compute_at(s[{readers[0].name}], {readers[0].name}.op.axis[0])"
                       if len(readers) == 1 else "give each reader its own copy (s.cache_read)")
                raise LoweringError(f"stage '{st.name}' reads the state of scan '{scan.name}', so it must be computed "
                                    f"inside the scan's steps, at a loop of the stage that reads it ({names}); "
                                    f"{fix}, or compute_inline() it")


def _pointwise(op) -> bool:
    """Whether each step reads the state only at its own position (``state[t - k, i, j]`` from
    ``update[t, i, j]``) through no body stage: a GPU thread then reads only what it wrote."""
    if op.body_ops:
        return False
    update = op.update[0].op
    axes = [iv.var for iv in update.axis[1:]]
    for read in E.walk(update.body):
        if isinstance(read, E.TensorRead) and read.tensor.op is op.state_placeholder[0].op:
            if not all(i is v for i, v in zip(read.indices[1:], axes)):
                return False
    return True


def scan_nest(builder, stage, scans: dict):
    """The init nest, then the update nest over the steps after the init. Notes the time loop's
    variable in ``scans`` (Var -> (scan name, whether each step reads only its own position))."""
    op = stage.op
    schedule = builder.schedule
    buf = builder.buffer_map[op.output(0)]
    for t in op.init + op.update + op.state_placeholder:
        builder.buffer_map[t] = buf
    init = builder.stage_nest(schedule[op.init[0]])
    nest = builder.stage_nest(schedule[op.update[0]])
    time = op.update[0].op.axis[0]
    if not (isinstance(nest, For) and nest.var is time.var):    # pragma: no cover - primitives keep it outermost
        raise LoweringError(f"scan '{stage.name}': the time loop '{time.name}' of its update is no longer the "
                            "outermost loop; schedule the update's other loops only")
    rows, steps = op.init_rows, op.shape[0]
    scans[time.var] = (stage.name, _pointwise(op))
    extent = E.Const(steps - rows) if isinstance(steps, int) else as_index_expr(steps, time.var.dtype) - rows
    return seq(init, For(time.var, E.Const(rows), extent, ForKind.SERIAL, nest.body))


__all__ = ["scan_step_ranges", "check_scans", "scan_nest"]
