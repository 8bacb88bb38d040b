"""Tuned records for ``schedules.schedule``: the one place they are looked up and loaded.

``tuned_record_lookup(key, target, check)`` returns the schedule trace of the best record of a
library workload (``schedules.workload_key``) on this target, or None: first from an active
``with autotune.apply_history_best(log):``, then from the records shipped with the package
(``loopc/schedules/tuned/<llvm cpu name>.jsonl``, loaded once, on first use, by ``SHIPPED``).
Records tuned on another CPU (name or features) are not applied: one AutotuneWarning per
workload says so. A record whose trace does not replay is skipped with a warning naming its
file and line, and the next-best record is tried.
"""
from __future__ import annotations

import copy
import os
import warnings

from loopc import te
from loopc.autotune.dispatcher import (RECORD_FAILURES, ApplyConfig, ApplyHistoryBest, AutotuneWarning,
                                       current_context, resolve_target, skip_message)
from loopc.autotune.record import load_records
from loopc.autotune.task import get_template, workload_key
from loopc.errors import LoopcError
from loopc.schedule import post_order_ops
from loopc.target import key_of

from .registry import target_kind
from .tasks import TASKS, task_workload

TUNED_DIR = os.path.join(os.path.dirname(__file__), "tuned")
#: the autotune templates whose records schedules.schedule applies
LIBRARY_TEMPLATES = TASKS


def shipped_records(directory=None) -> list:
    """Every record shipped in ``loopc/schedules/tuned/*.jsonl`` (all CPUs)."""
    directory = directory or TUNED_DIR
    out = []
    if os.path.isdir(directory):
        for name in sorted(os.listdir(directory)):
            if name.endswith(".jsonl"):
                out.extend(load_records(os.path.join(directory, name)))
    return out


class TunedRecords:
    """The records of a directory as an ApplyHistoryBest context (built on first use), and the
    workloads already warned about: an explicit cache, emptied by :meth:`clear`."""

    def __init__(self, directory):
        self.directory = directory
        self._context = None
        self.warned = set()

    def context(self) -> ApplyHistoryBest:
        if self._context is None:
            self._context = ApplyHistoryBest(shipped_records(self.directory), other_cpu="ignore")
            self._context.source = f"the records shipped in {self.directory}"
        return self._context

    def clear(self):
        self._context = None
        self.warned.clear()


SHIPPED = TunedRecords(TUNED_DIR)


def library_workload(key, target="llvm"):
    """The autotune workload ``(template name, args)`` of a ``schedules.workload_key`` on
    ``target`` (the ``_cuda`` templates for a GPU), or None when no template tunes it."""
    return task_workload(key, target_kind(target))


def _trace_of(record, workload, target):
    """The record's schedule trace (re-derived from its config when the record has none), with
    the template graph's op names (producers first) for renaming. The trace is replayed on a
    fresh schedule of the template's graph and lowered: a record whose trace does not replay
    (edited, or written by another loopc) raises here, so that it is skipped, not applied."""
    import loopc
    with ApplyConfig(record.config_entity(), target=target):
        s, tensors = get_template(workload[0])(*workload[1])
    trace = record.trace if record.trace is not None else {"version": 1, "steps": s.trace}
    if not isinstance(trace, dict) or not isinstance(trace.get("steps"), list):
        raise LoopcError(f"the record's trace is not {{'version': 1, 'steps': [...]}}: {str(trace)[:100]}")
    trace = copy.deepcopy(trace)
    if record.trace is not None:
        fresh = te.create_schedule([tensors[-1].op]).replay(copy.deepcopy(trace))
        loopc.lower(fresh, list(tensors))
    trace["names"] = [op.name for op in post_order_ops([tensors[-1].op])]
    return trace


def _checked_trace(ctx, record, workload, target, check):
    """The trace of ``record`` when it replays on the template's graph (else the record is
    skipped for good) and, through ``check``, on the caller's (else it is skipped for this
    call); None when skipped. Each skip is a warning naming the record's file and line."""
    try:
        if id(record) not in ctx.replay_checked:
            ctx.replay_checked[id(record)] = _trace_of(record, workload, target)
    except RECORD_FAILURES as err:
        ctx.skip(record, workload, err, stacklevel=6)
        return None
    trace = ctx.replay_checked[id(record)]
    if check is not None:
        try:
            check(copy.deepcopy(trace))
        except RECORD_FAILURES as err:
            ctx.warn_once(skip_message(record, workload, err, here=True), stacklevel=6)
            return None
    return copy.deepcopy(trace)


def tuned_record_lookup(key, target="llvm", check=None):
    """The trace of the best record for library workload ``key`` on ``target``, or None.
    ``check(trace)``, when given, replays the trace where it will be used and raises if it does
    not apply there. A record whose trace fails either way is skipped with a warning naming its
    file and line, and the next-best record is tried."""
    workload = library_workload(key, target)
    if workload is None:
        return None
    try:
        full = resolve_target(target)
    except LoopcError:               # an unparsable target: no records apply
        return None
    tkey = key_of(full)
    template = get_template(workload[0])
    contexts = [ctx for ctx in (current_context(),) if isinstance(ctx, ApplyHistoryBest)] + [SHIPPED.context()]
    elsewhere = []
    for ctx in contexts:
        mine, others = ctx.records(workload, tkey)
        for record in ctx.fitting(workload, template, mine):
            trace = _checked_trace(ctx, record, workload, full, check)
            if trace is not None:
                return trace
        elsewhere += [(ctx, r) for r in others]
    wkey = (workload_key(workload), tkey)
    if elsewhere and wkey not in SHIPPED.warned:
        SHIPPED.warned.add(wkey)
        ctx, r = elsewhere[0]
        warnings.warn(f"autotune: the records for {workload[0]}{tuple(workload[1])!r} in {ctx.source} were tuned "
                      f"on CPU '{r.cpu}' (or other features), not this machine's '{tkey[1]}': not applied. "
                      f"Tune it here with `loopc tune {workload[0]} --shape "
                      f"{' '.join(map(str, workload[1]))} --log FILE`.", AutotuneWarning, stacklevel=4)
    return None


_TENSOR_ARGS = ("tensor", "readers", "parent")    # trace arguments that name tensors or stages


def retarget_trace(trace, stage):
    """A trace recorded on a template's graph, with its op names (``trace["names"]``, producers
    first) renamed to those of ``stage``'s graph (same structure, other tensor names). A trace
    of another shape is returned as it is: replaying it raises a ScheduleError naming the fault."""
    names = trace.get("names") if isinstance(trace, dict) else None
    if not isinstance(names, list) or not names or not isinstance(trace.get("steps"), list):
        return trace
    ours = [op.name for op in post_order_ops([stage.origin_op])]
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


def check_replay(s, stage, trace):
    """Replay ``trace`` (retargeted onto ``stage``'s graph) on a copy of ``s`` (a fresh schedule
    of its outputs with ``s``'s steps so far): raises what ``s.replay`` would, leaving ``s``
    untouched, so that a tuned record that does not apply here is skipped, not half applied."""
    try:
        shadow = te.create_schedule([o.op for o in s.outputs])
        shadow.replay({"version": 1, "steps": copy.deepcopy(s.trace)})
    except LoopcError:           # pragma: no cover - s's own steps always replay
        return
    shadow.replay(retarget_trace(trace, stage))
