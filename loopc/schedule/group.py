"""TVM's ``s.create_group(outputs, inputs, include_inputs=False)``: the stages between some
inputs and outputs, attached together.

    g = s.create_group(outputs=D, inputs=A)        # B, C and D (A is a placeholder or excluded)
    s[g].compute_at(s[E], E_loop)                   # or g.compute_at(...), as in TVM

before:  for i: B[i] = f(A[i])                  after:  for io:
         for i: C[i] = g(B[i])                            for b: B[b] = f(A[io*4 + b])
         for i: D[i] = h(C[i])                            for c: C[c] = g(B[c])
         for io: for ii: E[..] = D[..]                    for d: D[d] = h(C[d])
                                                          for ii: E[..] = D[..]

Every member that is still computed at the root moves to that loop, each over the region
that the consumer and the members after it read (bound inference). A member already computed
at a loop of another member stays there. Differences from TVM: a group is not a stage with
loops of its own, so ``split``/``bind``/... on it and ``compute_inline`` raise a
ScheduleError; ``compute_root`` moves the members back to the root.
"""
from __future__ import annotations

from ..errors import ScheduleError
from ..te.expr import TensorRead, walk
from ..te.tensor import ComputeOp, IterVar, Tensor
from .stage import AttachKind, Stage


class Group:
    """A set of stages that ``compute_at`` moves together (see the module docstring)."""

    def __init__(self, schedule, members, index):
        self.schedule = schedule
        self.members = members            # producers first
        self.index = index                # position in schedule.groups (what traces name)
        self.attach = AttachKind.ROOT
        self.attach_stage = None
        self.attach_ivar = None

    @property
    def name(self) -> str:
        return f"group{self.index}({', '.join(st.name for st in self.members)})"

    def __repr__(self):
        return f"stage({self.name})"

    def _fail(self, primitive, message, fix=None):
        raise ScheduleError(primitive, self.name, message, fix)

    def compute_at(self, parent, iv):
        """Compute every member still at the root inside loop ``iv`` of ``parent``."""
        if not isinstance(parent, Stage) or parent.schedule is not self.schedule:
            self._fail("compute_at", f"the first argument must be a stage of this schedule such as s[C], got "
                       f"{parent!r}", "call s[group].compute_at(s[C], axis_of_C)")
        if parent in self.members:
            self._fail("compute_at", f"'{parent.name}' is a member of the group", "attach to a stage outside it")
        if not (isinstance(iv, IterVar) and iv in parent.leaf_iter_vars):
            self._fail("compute_at", f"{getattr(iv, 'name', repr(iv))!r} is not a current loop of '{parent.name}'",
                       f"pass one of {parent.name}'s loops: {parent._leaf_names()}")
        moving = [st for st in self.members if st.attach is AttachKind.ROOT]
        for st in moving:
            if st.is_output:
                self._fail("compute_at", f"member '{st.name}' is an output, which must be computed at the root",
                           "leave the outputs out of the group (pass the stage before them as outputs=)")
            outside = [r.name for r in self.schedule.readers_of(st) if r is not parent and r not in self.members]
            if outside:
                self._fail("compute_at", f"member '{st.name}' is also read by {', '.join(outside)}, outside the "
                           f"group and '{parent.name}'", "add those stages to the group, or cache_read for them")
        if not any(parent in self.schedule.readers_of(st) or self.schedule.reads_through(parent, st)
                   for st in self.members):
            self._fail("compute_at", f"'{parent.name}' reads no member of the group",
                       "attach the group to a loop of a stage that reads its outputs")
        for st in moving:
            st.attach, st.attach_stage, st.attach_ivar = AttachKind.SCOPE, parent, iv
        self.attach, self.attach_stage, self.attach_ivar = AttachKind.SCOPE, parent, iv
        self.schedule._record(self.members[-1], "group_compute_at",
                              {"group": self.index, "parent": parent.name, "axis": parent.name_of(iv)})
        return self

    def compute_root(self):
        """Move the members computed at the group's loop back to the root."""
        for st in self.members:
            if st.attach is AttachKind.SCOPE and st.attach_stage is self.attach_stage \
                    and st.attach_ivar is self.attach_ivar:
                st.attach, st.attach_stage, st.attach_ivar = AttachKind.ROOT, None, None
        self.attach, self.attach_stage, self.attach_ivar = AttachKind.ROOT, None, None
        self.schedule._record(self.members[-1], "group_compute_root", {"group": self.index})
        return self

    def __getattr__(self, primitive):
        if primitive in ("split", "fuse", "reorder", "tile", "bind", "vectorize", "unroll", "parallel",
                         "compute_inline", "pragma", "set_scope", "double_buffer", "set_store_predicate"):
            def unsupported(*args, **kwargs):
                self._fail(primitive, "a group has no loops of its own in loopc (it moves its members "
                           "together)", f"call it on a member: s[T].{primitive}(...)")
            return unsupported
        raise AttributeError(primitive)


def _ops(xs, what):
    if xs is None:
        return []
    if not isinstance(xs, (list, tuple)):
        xs = [xs]
    out = []
    for x in xs:
        if isinstance(x, Tensor):
            out.append(x.op)
        elif isinstance(x, Stage):
            out.append(x.origin_op)
        else:
            raise ScheduleError("create_group", str(x), f"{what} must be tensors, got {type(x).__name__}",
                                "s.create_group(outputs=D, inputs=A)")
    return out


def create_group(schedule, outputs, inputs, include_inputs=False) -> Group:
    """The group of the stages between ``inputs`` and ``outputs`` (see the module docstring)."""
    outs, ins = _ops(outputs, "outputs"), _ops(inputs, "inputs")
    if not outs:
        raise ScheduleError("create_group", "?", "needs at least one output", "s.create_group(outputs=D, inputs=A)")
    members, seen = [], set()

    def visit(op):
        if op in seen:
            return
        seen.add(op)
        if op in ins and not include_inputs:
            return
        stage = schedule._stage_of.get(op)
        if stage is None:
            if isinstance(op, ComputeOp):
                raise ScheduleError("create_group", op.name, "is not part of this schedule",
                                    "create the group from tensors of this schedule")
            return
        if op not in ins:
            for node in walk(stage.body):
                if isinstance(node, TensorRead):
                    visit(node.tensor.op)
        members.append(stage)

    for op in outs:
        visit(op)
    if not members:
        raise ScheduleError("create_group", ", ".join(op.name for op in outs), "the group has no computed stage",
                            "pass te.compute tensors as outputs=")
    taken = [st.name for st in members if st.group is not None]
    if taken:
        raise ScheduleError("create_group", taken[0], "is already in a group", "group each stage once")
    members.sort(key=schedule.stages.index)
    group = Group(schedule, members, len(schedule.groups))
    for st in members:
        st.group = group
    schedule.groups.append(group)
    schedule._record(members[-1], "create_group", {"outputs": [schedule._stage_of[op].name for op in outs],
                                                   "inputs": [op.name for op in ins],
                                                   "include_inputs": bool(include_inputs)})
    return group
