"""``te.scan``: a recurrence along the first axis, TVM's classic scan.

    X = te.placeholder((m, n), name="X")
    state = te.placeholder((m, n))
    init = te.compute((1, n), lambda _, i: X[0, i])
    update = te.compute((m, n), lambda t, i: state[t - 1, i] + X[t, i])
    cumsum = te.scan(init, update, state, inputs=[X])     # cumsum[t] = cumsum[t-1] + X[t]

lowers to

    for _ in range(1): for i in range(n): cumsum[_, i] = X[0, i]          # the init rows
    for t in range(1, m): for i in range(n): cumsum[t, i] = cumsum[t - 1, i] + X[t, i]

The state placeholder stands for the scan's own output: the update reads earlier rows of it
(``state[t - k, ...]``, 1 <= k <= the init's rows). Stages between the state and the update
(the scan *body*, TVM's term) are computed one row per step, inside the scan loop.
"""
from __future__ import annotations

from ..arith import linear_form
from ..errors import LoopcError
from .expr import TensorRead, Var, walk
from .tensor import ComputeOp, IterVar, Operation, PlaceholderOp, Range, Tensor


class ScanOp(Operation):
    """The op of ``te.scan``: ``init``, ``update`` and ``state_placeholder`` are tuples of one
    tensor each (TVM's arrays); ``scan_axis`` runs over the rows the update computes."""

    #: what a primitive on the scan's own stage is told (see ``Stage._check_attached_ok``)
    opaque = ("the scan stage only runs its init and update stages; schedule those instead "
              "(s[update].split(...), s[init].vectorize(...))")

    def __init__(self, name, init, update, state, inputs, tag="", attrs=None):
        self.name, self.tag, self.attrs = name, tag, dict(attrs or {})
        self.init, self.update, self.state_placeholder = (init,), (update,), (state,)
        self.inputs = tuple(inputs)
        self.shape, self.dtype = update.shape, update.dtype
        rows = init.shape[0]
        self.scan_axis = IterVar(Var(f"{name}.idx"), Range(rows, update.shape[0] - rows))
        self.root_iter_vars = (self.scan_axis,)
        self.body = None
        self.body_ops = ()          # the computes between the state and the update (set by scan())
        self._outputs = (Tensor(self),)

    @property
    def init_rows(self) -> int:
        return self.init[0].shape[0]

    @property
    def input_tensors(self):
        seen = []
        for t in self.init + self.update + self.inputs:
            if all(t is not s for s in seen):
                seen.append(t)
        return tuple(seen)

    def __repr__(self):
        return f"scan({self.name}, shape={self.shape}, dtype={self.dtype})"


def _one(x, what):
    if isinstance(x, (list, tuple)):
        if len(x) != 1:
            raise LoopcError(f"te.scan: {what} holds {len(x)} tensors; loopc scans one state "
                             "(several states are not supported yet: scan each on its own, or stack them "
                             "along a new last axis)")
        x = x[0]
    if not isinstance(x, Tensor):
        raise LoopcError(f"te.scan: {what} must be a tensor, got {type(x).__name__}")
    return x


def _reads(op):
    return [n for n in walk(op.body) if isinstance(n, TensorRead)]


def _step_back(index, t):
    """``k`` when ``index`` is ``t - k`` for a constant ``k``, else None."""
    terms, const = linear_form(index - t)
    return -const if not terms else None


def scan_body(update_op, state_op) -> list:
    """The computes that ``update_op`` reads (itself included) that read the state, producers first."""
    memo = {}

    def reads_state(op):
        if op not in memo:
            memo[op] = False
            memo[op] = isinstance(op, ComputeOp) and any(
                t.op is state_op or reads_state(t.op) for t in op.input_tensors)
        return memo[op]

    order, seen = [], set()

    def visit(op):
        if op in seen or not reads_state(op):
            return
        seen.add(op)
        for t in op.input_tensors:
            visit(t.op)
        order.append(op)

    visit(update_op)
    return order


def _ops_behind(op) -> list:
    """``op`` and every op it reads, directly or not."""
    seen, stack = [], [op]
    while stack:
        o = stack.pop()
        if all(o is not x for x in seen):
            seen.append(o)
            stack.extend(t.op for t in o.input_tensors)
    return seen


def _check_body(name, body_ops, state_op, rows, length):
    """Every step reads earlier steps of the state, and its own step of the other body stages."""
    for op in body_ops:
        if op.shape[0] != length:
            raise LoopcError(f"te.scan {name}: stage '{op.name}' reads the state, so it runs once per step, but "
                             f"its first dimension is {op.shape[0]}, not the scan's {length} steps")
        t = op.axis[0].var
        for read in _reads(op):
            src = read.tensor.op
            if src is state_op:
                k = _step_back(read.indices[0], t)
                if k is None or k < 1:
                    raise LoopcError(f"te.scan {name}: '{op.name}' reads the state at step {read.indices[0]}; a "
                                     f"scan reads earlier steps only: {read.tensor.name}[{t.name} - k, ...] with a "
                                     "constant k >= 1")
                if k > rows:
                    raise LoopcError(f"te.scan {name}: '{op.name}' reads the state {k} steps back, but the init "
                                     f"gives only {rows} row(s); give init {k} rows")
            elif src in body_ops and _step_back(read.indices[0], t) != 0:
                raise LoopcError(f"te.scan {name}: '{op.name}' reads '{src.name}' at step {read.indices[0]}; stages "
                                 f"of the scan body are computed one step at a time, so read them at "
                                 f"{t.name} (their state reads may look back instead)")


def scan(init, update, state_placeholder, inputs=None, name: str = "scan", tag: str = "", attrs=None) -> Tensor:
    """TVM's ``te.scan``: ``out[:rows] = init``; ``out[t] = update(t)`` for t in ``[rows, m)``,
    where the update reads ``state_placeholder[t - k, ...]`` (1 <= k <= rows) for earlier rows of
    ``out``. ``inputs`` (the tensors the update reads) is accepted for TVM's sake; loopc finds
    them itself. ``out.op.scan_axis`` runs over ``[rows, m)``.

    Differs from TVM on purpose: one state per scan (TVM also takes lists; a list of one tensor
    works); every read of the state is checked here to look back a constant number of steps,
    within the init's rows, and stages of the scan body read each other at the same step (TVM
    leaves both unchecked)."""
    init, update = _one(init, "init"), _one(update, "update")
    state = _one(state_placeholder, "state_placeholder")
    for t in list(inputs or ()):
        if not isinstance(t, Tensor):
            raise LoopcError(f"te.scan {name}: inputs must be tensors, got {type(t).__name__}")
    if not isinstance(state.op, PlaceholderOp):
        raise LoopcError(f"te.scan {name}: the state must be a te.placeholder, got {state.op!r}")
    if getattr(state.op, "scan", None) is not None:
        raise LoopcError(f"te.scan {name}: placeholder '{state.name}' is already the state of scan "
                         f"'{state.op.scan.name}'; give each scan its own state placeholder")
    for what, t in (("init", init), ("update", update)):
        if not isinstance(t.op, ComputeOp):
            raise LoopcError(f"te.scan {name}: {what} must be a te.compute, got {t.op!r}")
    if update.shape != state.shape or init.shape[1:] != state.shape[1:]:
        raise LoopcError(f"te.scan {name}: shapes disagree: update {update.shape} and state {state.shape} must be "
                         f"equal, and init {init.shape} must match them after its first dimension")
    if isinstance(update.shape[0], int) and not init.shape[0] < update.shape[0]:   # symbolic: checked per call
        raise LoopcError(f"te.scan {name}: init has {init.shape[0]} rows but the scan only {update.shape[0]}; "
                         "init gives the first rows, the update the rest")
    if not init.dtype == update.dtype == state.dtype:
        raise LoopcError(f"te.scan {name}: dtypes disagree: init {init.dtype}, update {update.dtype}, "
                         f"state {state.dtype}")
    if scan_body(init.op, state.op):
        raise LoopcError(f"te.scan {name}: init '{init.name}' reads the state; the init rows come before any state")
    for op in _ops_behind(update.op):
        if not isinstance(op, ComputeOp) and any(t.op is state.op for t in op.input_tensors):
            raise LoopcError(f"te.scan {name}: '{op.name}' ({type(op).__name__}) reads the state; only te.compute "
                             "stages can run step by step inside a scan")
    body = scan_body(update.op, state.op)
    _check_body(name, body, state.op, init.shape[0], update.shape[0])
    op = ScanOp(name, init, update, state, inputs or (), tag, attrs)
    op.body_ops = tuple(b for b in body if b is not update.op)
    state.op.scan = op
    return op.output(0)


def is_scan_state(op) -> bool:
    """Whether ``op`` is the state placeholder of a scan (its buffer is the scan's output)."""
    return isinstance(op, PlaceholderOp) and getattr(op, "scan", None) is not None


__all__ = ["ScanOp", "scan", "scan_body", "is_scan_state"]
