"""A schedule: the stages of every compute op behind some outputs, plus the trace of steps.

The trace is JSON: a list of ``{"stage", "primitive", "args"}`` with axes named by their
names. ``Schedule.replay(trace)`` applies it to a fresh schedule of the same compute.
"""
from __future__ import annotations

import json

from ..errors import ScheduleError
from ..te.expr import TensorRead, Var, walk
from ..te.tensor import THREAD_TAGS, IterKind, IterVar, Operation, PlaceholderOp, Tensor
from .scan import attach_scans
from .stage import Stage

TRACE_VERSION = 1


def _as_op(x) -> Operation:
    if isinstance(x, Tensor):
        return x.op
    if isinstance(x, Operation):
        return x
    raise ScheduleError("create_schedule", str(x), f"expected a tensor or an op, got {type(x).__name__}",
                        "pass C, C.op or a list of them")


def post_order_ops(outputs) -> list:
    """Every op reachable from ``outputs``, producers before consumers."""
    order, seen = [], set()

    def visit(op):
        if op in seen:
            return
        seen.add(op)
        for t in op.input_tensors:
            visit(t.op)
        order.append(op)

    for op in outputs:
        visit(op)
    return order


class Schedule:
    def __init__(self, outputs):
        if not isinstance(outputs, (list, tuple)):
            outputs = [outputs]
        ops = list(dict.fromkeys(_as_op(o) for o in outputs))   # [T0, T1] of one op: one output op
        for op in ops:
            if isinstance(op, PlaceholderOp):
                raise ScheduleError("create_schedule", op.name, "a placeholder is not computed, so it has no schedule",
                                    "schedule the te.compute tensors that read it")
        self.outputs = [t for op in ops for t in op.outputs]
        self.ops = post_order_ops(ops)
        self.declared_ops = tuple(self.ops)     # the user's ops, before rewrites add stages
        self.stages = [Stage(op, self) for op in self.ops if not isinstance(op, PlaceholderOp)]
        for st in self.stages:
            self._name_uniquely(st)
        self._stage_of = {st.origin_op: st for st in self.stages}
        self.groups = []           # create_group's groups, in creation order (traces name them by index)
        self.trace = []
        attach_scans(self)

    def _name_uniquely(self, stage) -> None:
        """Stages that share a name (TVM's default "compute") get ``name_1``, ``name_2`` ... in
        the order they are created, so a trace names each one and replays on a schedule of the
        same program."""
        taken = {st.name for st in self.stages if st is not stage}
        name, n = stage.op.name, 1
        while name in taken:
            name, n = f"{stage.op.name}_{n}", n + 1
        if name != stage.op.name:
            stage._unique_name = name

    def __getitem__(self, x) -> Stage:
        from .group import Group
        if isinstance(x, (Stage, Group)) and x.schedule is self:
            return x                      # TVM: s[group] (and s[stage]) is that stage
        op = _as_op(x)
        if op in self._stage_of:
            return self._stage_of[op]
        if isinstance(op, PlaceholderOp):
            raise ScheduleError("s[...]", op.name, "is a placeholder (an input): it has no loops to schedule",
                                "schedule a te.compute tensor instead")
        raise ScheduleError("s[...]", op.name, "is not part of this schedule",
                            "create the schedule from the outputs that (transitively) read this tensor")

    def stage_by_name(self, name: str) -> Stage:
        found = [st for st in self.stages if st.name == name]
        if len(found) != 1:
            raise ScheduleError("replay", name, f"{'no' if not found else 'several'} stages have this name",
                                "give every te.compute a unique name=")
        return found[0]

    def _insert_stage(self, op, index) -> Stage:
        """Add a stage for a new op at position ``index`` (before the stage there)."""
        st = Stage(op, self)
        self.stages.insert(index, st)
        self._name_uniquely(st)
        self._stage_of[op] = st
        self.ops.insert(self.ops.index(self.stages[index + 1].origin_op) if index + 1 < len(self.stages) else len(self.ops), op)
        return st

    def cache_read(self, tensor, scope, readers, layout=None, block=None):
        """A copy of ``tensor`` in ``scope`` that ``readers`` read instead (stored with its axes
        permuted by ``layout`` and cut into ``block`` s, when given); returns the new tensor."""
        from .rewrites import cache_read
        return cache_read(self, tensor, scope, readers, layout, block)

    def cache_write(self, tensor, scope, layout=None):
        """Compute ``tensor`` into a ``scope`` buffer (its axes permuted by ``layout``, when
        given), then copy out; returns the new tensor. For a multi-output op pass all its
        outputs, ``s.cache_write([T0, T1], "local")``, and get a list back (TVM's form)."""
        from .rewrites import cache_write
        return cache_write(self, tensor, scope, layout)

    def rfactor(self, tensor, axis, factor_axis=0):
        """Make reduction loop ``axis`` a data-parallel axis of a new stage; returns its tensor
        (a list of them for a multi-value reduction such as argmax)."""
        from .rewrites import rfactor
        return rfactor(self, tensor, axis, factor_axis)

    def create_group(self, outputs, inputs, include_inputs=False):
        """TVM's group of the stages between ``inputs`` and ``outputs``, which
        ``s[group].compute_at(...)`` attaches together (see ``loopc.schedule.group``)."""
        from .group import create_group
        return create_group(self, outputs, inputs, include_inputs)

    def im2col(self, conv):
        """Rewrite a convolution stage into a patch-matrix stage and a GEMM; returns (col, out)."""
        from .im2col import im2col
        return im2col(self, conv)

    def tensor_by_name(self, name):
        """The tensor a trace names: a stage's (``T.v1``: output 1 of multi-output stage ``T``)."""
        staged = [st.origin_op for st in self.stages if st.name == name]
        if len(staged) == 1:
            return staged[0].output(0)
        stem, _, j = name.rpartition(".v")
        multi = [st.op for st in self.stages if st.name == stem and st.op.num_outputs > 1]
        if j.isdigit() and len(multi) == 1 and int(j) < multi[0].num_outputs:
            return multi[0].output(int(j))
        found = [op for op in self.ops if op.name == name]
        if len(found) != 1:
            raise ScheduleError("replay", name, f"{'no' if not found else 'several'} tensors have this name",
                                "give every tensor a unique name=")
        return found[0].output(0)

    def readers_of(self, stage) -> list:
        """The non-inlined stages whose (inlined) bodies read ``stage``'s tensor."""
        from .stage import AttachKind
        inlined = {st.origin_op: st for st in self.stages if st.attach is AttachKind.INLINE}

        def reads(body, seen=()):
            for node in walk(body):
                if isinstance(node, TensorRead):
                    op = node.tensor.op
                    if op is stage.origin_op:
                        return True
                    if op in inlined and op not in seen and reads(inlined[op].body, seen + (op,)):
                        return True
            return False

        return [st for st in self.stages
                if st is not stage and st.attach is not AttachKind.INLINE and reads(st.body)]

    def reads_through(self, consumer, producer) -> bool:
        """Whether ``consumer`` reads ``producer``'s tensor through other computed stages
        (``C`` reads ``mid`` reads ``B``), whatever is inlined now."""
        seen, frontier = set(), [consumer]
        while frontier:
            st = frontier.pop()
            for node in walk(st.body):
                if isinstance(node, TensorRead) and node.tensor.op in self._stage_of:
                    src = self._stage_of[node.tensor.op]
                    if src is producer and st is not consumer:
                        return True
                    if src not in seen and src is not producer:
                        seen.add(src)
                        frontier.append(src)
        return False

    def _owner_of(self, iv):
        for st in self.stages:
            if iv in st.all_iter_vars or iv in st._aliases:
                return st
        return None

    def _record(self, stage, primitive, args):
        clean = {k: v for k, v in args.items() if v is not None}
        self.trace.append({"stage": stage.name, "primitive": primitive, "args": clean})

    # ----------------------------------------------------------------------- trace

    def trace_json(self) -> str:
        return json.dumps({"version": TRACE_VERSION, "steps": self.trace})

    def replay(self, trace) -> "Schedule":
        """Apply a trace (a JSON string, a dict from trace_json, or a list of steps) to this schedule.

        A malformed trace raises ScheduleError naming the step and what is wrong.
        """
        steps = _parse_trace(trace)
        for n, step in enumerate(steps):
            stage = self.stage_by_name(step["stage"])
            prim, args = step["primitive"], dict(step["args"])
            if prim not in REPLAYABLE:
                raise ScheduleError("replay", stage.name, f"step {n} names an unknown primitive {prim!r}",
                                    f"known primitives: {', '.join(sorted(REPLAYABLE))}")
            try:
                if prim not in NAMES_AXES_OF_OTHER_STAGE:
                    if "axis" in args:
                        args["axis"] = self._axis(stage, args["axis"])
                    if "axes" in args:
                        if not isinstance(args["axes"], list):
                            raise TypeError("'axes' must be a list of axis names")
                        args["axes"] = [self._axis(stage, a) for a in args["axes"]]
                REPLAYABLE[prim](stage, args)
            except ScheduleError:
                raise
            except (KeyError, TypeError, ValueError, IndexError, AttributeError, RecursionError) as err:
                raise ScheduleError("replay", stage.name, f"step {n} ({prim}) is malformed: "
                                    f"{_short(err)} in {_short(step)}",
                                    "replay a trace produced by Schedule.trace_json()") from None
        return self

    @staticmethod
    def _axis(stage, name):
        if not isinstance(name, str):
            raise TypeError(f"an axis name must be a string, got {name!r}")
        found = [iv for iv in stage.all_iter_vars if stage.name_of(iv) == name]
        if len(found) != 1:
            raise ScheduleError("replay", stage.name, f"axis {name!r} is {'unknown' if not found else 'ambiguous'}",
                                "replay onto a fresh schedule of the same compute")
        return found[0]


def _short(x, limit=200) -> str:
    """``repr(x)``, cut to ``limit`` characters (and safe on absurdly nested values)."""
    try:
        text = repr(x)
    except RecursionError:
        text = f"<a too deeply nested {type(x).__name__}>"
    return text if len(text) <= limit else text[:limit] + "..."


def _parse_trace(trace) -> list:
    """The list of steps of a trace, each checked for shape; ScheduleError when malformed."""
    def bad(what):
        return ScheduleError("replay", "?", f"malformed trace: {what}",
                             "replay a trace produced by Schedule.trace_json()")
    if isinstance(trace, (str, bytes)):
        try:
            trace = json.loads(trace)
        except json.JSONDecodeError as err:
            raise bad(f"not JSON ({err})") from err
        except RecursionError:
            raise bad("nested too deeply to be a trace") from None
    if isinstance(trace, dict):
        version = trace.get("version", TRACE_VERSION)
        if version != TRACE_VERSION:
            raise bad(f"trace version {version!r}; this loopc reads version {TRACE_VERSION}")
        if "steps" not in trace:
            raise bad("no 'steps' list")
        trace = trace["steps"]
    if not isinstance(trace, list):
        raise bad(f"expected a list of steps, got {type(trace).__name__}")
    for n, step in enumerate(trace):
        if not (isinstance(step, dict) and isinstance(step.get("stage"), str)
                and isinstance(step.get("primitive"), str) and isinstance(step.get("args", {}), dict)):
            raise bad(f"step {n} is not {{'stage': str, 'primitive': str, 'args': dict}}: {_short(step)}")
        step.setdefault("args", {})
    return trace


NAMES_AXES_OF_OTHER_STAGE = ("compute_at", "cache_read", "cache_write", "group_compute_at")

REPLAYABLE = {
    "split": lambda st, a: st.split(a["axis"], factor=a.get("factor"), nparts=a.get("nparts")),
    "fuse": lambda st, a: st.fuse(*a["axes"]),
    "reorder": lambda st, a: st.reorder(*a["axes"]),
    "unroll": lambda st, a: st.unroll(a["axis"]),
    "vectorize": lambda st, a: st.vectorize(a["axis"]),
    "parallel": lambda st, a: st.parallel(a["axis"]),
    "compute_inline": lambda st, a: st.compute_inline(),
    "compute_root": lambda st, a: st.compute_root(),
    "set_scope": lambda st, a: st.set_scope(a["scope"]),
    "bind": lambda st, a: st.bind(a["axis"], _thread_axis(a["tag"])),
    "cache_read": lambda st, a: st.schedule.cache_read(st.schedule.tensor_by_name(a["tensor"]), a["scope"],
                                                       [st.schedule.stage_by_name(r) for r in a["readers"]],
                                                       a.get("layout"), a.get("block")),
    "cache_write": lambda st, a: st.schedule.cache_write(_all_outputs(st.op), a["scope"], a.get("layout")),
    "rfactor": lambda st, a: st.schedule.rfactor(st.op.output(0), a["axis"], a.get("factor_axis", 0)),
    "im2col": lambda st, a: st.schedule.im2col(st.op.output(0)),
    "double_buffer": lambda st, a: st.double_buffer(),
    "set_store_predicate": lambda st, a: st.set_store_predicate(_decode(st, a["predicate"])),
    "create_group": lambda st, a: st.schedule.create_group([st.schedule.tensor_by_name(n) for n in a["outputs"]],
                                                           [st.schedule.tensor_by_name(n) for n in a["inputs"]],
                                                           a.get("include_inputs", False)),
    "group_compute_at": lambda st, a: st.schedule.groups[a["group"]].compute_at(
        st.schedule.stage_by_name(a["parent"]), Schedule._axis(st.schedule.stage_by_name(a["parent"]), a["axis"])),
    "group_compute_root": lambda st, a: st.schedule.groups[a["group"]].compute_root(),
    "compute_at": lambda st, a: st.compute_at(st.schedule.stage_by_name(a["parent"]),
                                              Schedule._axis(st.schedule.stage_by_name(a["parent"]), a["axis"])),
}


def _all_outputs(op):
    """What cache_write takes for ``op``: its tensor, or the list of a multi-output op's."""
    return op.output(0) if op.num_outputs == 1 else list(op.outputs)


def _decode(stage, data):
    from .expr_json import decode
    return decode(stage, data)


def _thread_axis(tag):
    """The thread axis a recorded ``bind`` names (``te.thread_axis(tag)``)."""
    if tag not in THREAD_TAGS:
        raise ScheduleError("replay", "?", f"unknown thread tag {tag!r}", f"use one of {', '.join(THREAD_TAGS)}")
    return IterVar(Var(tag), None, IterKind.THREAD, tag)
