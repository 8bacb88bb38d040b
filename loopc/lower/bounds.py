"""The compute declarations' reads must stay inside the tensors they read.

A read ``A[i + 1000000]`` or an unguarded ``A[i - 1]`` would run off its buffer in native code.
For every read of every declared ``te.compute``, each index is checked over the op's whole
domain (its axes and reduction axes), under the conditions that guard the read
(``te.if_then_else`` and a reduction's ``where=``, which holds the bounds of a reduce axis
that reads the compute's axes, ``te.reduce_axis((0, i + 1))``). A read that can leave its tensor is a
LoweringError naming the tensor, the index, its range and a point where it leaves.

Linear indices with no guard are decided exactly by interval arithmetic; others by
enumerating the variables involved (up to ``MAX_POINTS`` combinations), with numpy. Past that,
one variable in which the index and the guards are linear (a triangular loop's ``k`` under
``k < i + 1``) is swept exactly instead of enumerated: at each point of the others the guards
cut its range to an interval, at whose ends the index is extreme. Reads whose
index or guard depends on data (``A[I[i]]``) cannot be decided here: build those with
``bounds_check=True``.
"""
from __future__ import annotations

import numpy as np

from ..arith import bound_of, conjuncts, linear_form, simplify_expr
from ..errors import LoweringError
from ..ir.printer import format_expr
from ..te import expr as E
from ..te.tensor import ComputeOp

#: enumerate at most this many points per index (a conv's padded read: a few thousand)
MAX_POINTS = 1 << 20


def check_reads_in_bounds(ops, ranges=None, sizes=None) -> tuple:
    """LoweringError when a read in the body of one of ``ops`` can leave the tensor it reads.
    ``ranges`` (op -> {Var: (lo, hi)}) narrows axes an op runs over only in part (a scan's
    update runs from the init's rows on).

    Symbolic sizes (``te.var``): with ``sizes`` (Var -> int) every op is checked at those
    values. Without, a read whose index is linear and unguarded is proved for all sizes by
    symbolic interval arithmetic; the ops with a read it cannot prove are returned, to be
    checked at call time for the actual sizes (never assumed in bounds)."""
    deferred = []
    for op in ops:
        if not isinstance(op, ComputeOp):
            continue
        # a data-dependent axis (a sparse row, ``(0, W_indptr[j + 1] - W_indptr[j])``) has no range
        # at compile time: the reads through it are left to bounds_check=True, like A[I[i]]
        axes = tuple(iv for iv in tuple(op.axis) + tuple(op.reduce_axis) if not iv.data_dependent)
        if sizes is None and _is_symbolic(op, axes):
            if not _symbolic_reads_proved(op, axes):
                deferred.append(op)
            continue
        domain = {}
        for iv in axes:
            lo = _value(iv.dom.min, sizes)
            domain[iv.var] = (lo, lo + _value(iv.dom.extent, sizes) - 1)
        domain.update({v: (_value(lo, sizes), _value(hi, sizes)) for v, (lo, hi) in (ranges or {}).get(op, {}).items()})
        if any(hi < lo for lo, hi in domain.values()):
            continue        # no iteration at these sizes: nothing is read
        for read, conds in _op_reads(op):
            if sizes:
                conds = tuple(_bind(c, sizes) for c in conds)
            for d, (index, size) in enumerate(zip(read.indices, read.tensor.shape)):
                if sizes:
                    index, size = _bind(index, sizes), _value(size, sizes)
                where = _leaves(index, conds, domain, size)
                if where is not None:
                    _fail(op, read, d, index, size, where)
    return tuple(deferred)


def _op_reads(op):
    """(read, guards) of ``op``'s body and of its data-dependent axes' bounds (evaluated once
    per point of the op's axes, unguarded)."""
    yield from _guarded_reads(op.body, ())
    for iv in op.reduce_axis:
        if iv.data_dependent:
            for bound in (iv.dom.min, iv.dom.extent):
                if isinstance(bound, E.Expr):
                    yield from _guarded_reads(bound, ())


def _bind(e, sizes):
    """``e`` with the symbolic sizes replaced by their values, folded."""
    return simplify_expr(E.substitute(e, {v: E.Const(int(k), v.dtype) for v, k in sizes.items()}))


def _value(extent, sizes) -> int:
    """An extent (int or Expr of sizes) at ``sizes``."""
    return extent if isinstance(extent, int) else int(_bind(E.as_expr(extent), sizes or {}).value)


def _is_symbolic(op, axes) -> bool:
    loops = {iv.var for iv in axes}
    if any(not isinstance(iv.dom.extent, int) for iv in axes):
        return True
    if any(iv.data_dependent for iv in op.reduce_axis):
        loops |= {iv.var for iv in op.reduce_axis}
    for read, _ in _op_reads(op):
        if any(not isinstance(s, int) for s in read.tensor.shape):
            return True
    return any(isinstance(n, E.Var) and n not in loops for n in E.walk(op.body))


#: the values a size variable may take in a symbolic proof: a te.size_var is at least 1 (and
#: at most its dtype's largest value); a plain te.var has no range (only a bound its terms
#: cancel out of is proved)
_SIZE_RANGES = {"int32": (1, 2**31 - 1), "int64": (1, 2**63 - 1)}


def _symbolic_reads_proved(op, axes) -> bool:
    """Whether every read of ``op`` provably stays in its tensor for all sizes: unguarded,
    linear in the loops, the bounds' slack a constant or bounded by the size_vars' ranges."""
    spans = {iv.var: (E.as_expr(iv.dom.min), E.as_expr(iv.dom.min) + iv.dom.extent - 1) for iv in axes}
    unranged = {iv.var for iv in op.reduce_axis if iv.data_dependent}
    for read, conds in _op_reads(op):
        if conds:
            return False
        for index, size in zip(read.indices, read.tensor.shape):
            if _data_dependent(index) or E.free_vars(index) & unranged:
                return False
            terms, const = linear_form(index)
            lo = hi = E.Const(const, index.dtype)
            for t, c in terms.items():
                if t in spans:                              # the loop runs min..min+extent-1 (when it runs)
                    first, last = spans[t]
                    lo, hi = (lo + first * c, hi + last * c) if c > 0 else (lo + last * c, hi + first * c)
                elif E.free_vars(t) & spans.keys():
                    return False
                else:                                       # a term of size variables only
                    lo, hi = lo + t * c, hi + t * c
            if not (_nonnegative(lo) and _nonnegative(E.as_expr(size) - 1 - hi)):
                return False
    return True


def _nonnegative(e) -> bool:
    e = simplify_expr(e, {})
    ranges = {v: _SIZE_RANGES[v.dtype] for v in E.free_vars(e) if isinstance(v, E.SizeVar)}
    bound = bound_of(e, ranges)
    return bound is not None and bound[0] >= 0


def _guarded_reads(e, conds):
    """(TensorRead, conditions that hold wherever it is evaluated) for every read in ``e``."""
    if isinstance(e, E.TensorRead):
        yield e, conds
        for i in e.indices:
            yield from _guarded_reads(i, conds)
    elif isinstance(e, E.Select):
        yield from _guarded_reads(e.cond, conds)
        yield from _guarded_reads(e.t, conds + (e.cond,))
        yield from _guarded_reads(e.f, conds + (E.Not(e.cond),))
    elif isinstance(e, E.Reduce):
        inner = conds if e.condition is None else conds + (e.condition,)
        if e.condition is not None:
            yield from _guarded_reads(e.condition, conds)
        yield from _guarded_reads(e.source, inner)
        if e.init is not None:              # evaluated once per output point, whatever the where
            yield from _guarded_reads(e.init, conds)
    else:
        for c in E.children(e):
            yield from _guarded_reads(c, conds)


def _data_dependent(e) -> bool:
    return any(isinstance(n, (E.TensorRead, E.Load)) for n in E.walk(e))


def _leaves(index, conds, domain, size):
    """None when ``index`` provably stays in ``[0, size)`` (or cannot be decided); otherwise
    (value, {var: value}) of a point where it leaves."""
    if _data_dependent(index) or any(_data_dependent(c) for c in conds):
        return None
    names = E.free_vars(index).union(*(E.free_vars(c) for c in conds))
    if not names <= domain.keys():
        return None
    if not conds:
        terms, _ = linear_form(index)
        if all(isinstance(t, E.Var) for t in terms):      # exact: each variable reaches its ends
            lo, hi = bound_of(index, {v: domain[v] for v in terms})
            if 0 <= lo and hi < size:
                return None
            target = lo if lo < 0 else hi      # an extreme is reached at a corner of the box
            point = {t: (domain[t][1] if (c > 0) == (target == hi) else domain[t][0]) for t, c in terms.items()}
            return target, point
    variables = sorted(names, key=lambda v: v.name)
    sizes = [domain[v][1] - domain[v][0] + 1 for v in variables]
    if int(np.prod(sizes, dtype=np.float64)) > MAX_POINTS:
        return _leaves_sweeping_one(index, conds, domain, size, names)
    grid = _grid(variables, domain)
    try:
        with np.errstate(all="ignore"):
            value = np.broadcast_to(_evaluate(index, grid), sizes)
            live = np.ones(value.shape, bool)
            for c in conds:
                live &= np.broadcast_to(_evaluate(c, grid).astype(bool), value.shape)
    except _Undecided:
        return None
    bad = live & ((value < 0) | (value >= size))
    if not bad.any():
        return None
    at = np.unravel_index(int(np.argmax(bad)), bad.shape)
    return int(value[at]), {v: domain[v][0] + int(k) for v, k in zip(variables, at)}


def _grid(variables, domain):
    return {v: np.arange(domain[v][0], domain[v][1] + 1, dtype=np.int64).reshape(
        [-1 if n == k else 1 for k in range(len(variables))]) for n, v in enumerate(variables)}


def _linear_in(e, v):
    """The coefficient of ``v`` in integer expression ``e`` when ``e`` is linear in it, else None."""
    terms, _ = linear_form(e)
    if any(t is not v and v in E.free_vars(t) for t in terms):
        return None
    return terms.get(v, 0)


def _leaves_sweeping_one(index, conds, domain, size, names):
    """``_leaves`` for a domain too large to enumerate: every variable but one is enumerated and
    that one (the widest that allows it) is swept exactly; None when no variable allows it."""
    parts = [p for c in conds for p in conjuncts(c)]
    for v in sorted(names, key=lambda x: domain[x][0] - domain[x][1]):
        rest = sorted(names - {v}, key=lambda x: x.name)
        if int(np.prod([domain[x][1] - domain[x][0] + 1 for x in rest], dtype=np.float64)) > MAX_POINTS:
            continue
        coef = _linear_in(index, v)
        cuts = [(p, _linear_in(E.Sub(p.a, p.b), v)) if isinstance(p, (E.LT, E.LE)) and E.is_int(p.a.dtype)
                else (p, 0 if v not in E.free_vars(p) else None) for p in parts]
        if coef is None or any(c is None for _, c in cuts):
            continue
        try:
            with np.errstate(all="ignore"):
                return _sweep(index, coef, cuts, v, rest, domain, size)
        except _Undecided:
            return None
    return None


def _sweep(index, coef, cuts, v, rest, domain, size):
    grid = _grid(rest, domain)
    zero = {v: E.Const(0, v.dtype)}
    lo, hi, live = np.int64(domain[v][0]), np.int64(domain[v][1]), np.bool_(True)
    for part, c in cuts:
        if c == 0:          # v is absent (or cancels out): a condition on the others
            live = live & _evaluate(E.substitute(part, zero), grid).astype(bool)
            continue
        # c*v + r < 0 (or <= 0): c*v <= bound
        bound = -_evaluate(E.substitute(E.Sub(part.a, part.b), zero), grid) - (1 if isinstance(part, E.LT) else 0)
        if c > 0:
            hi = np.minimum(hi, bound // c)
        else:
            lo = np.maximum(lo, -((-bound) // c))
    shape = [domain[x][1] - domain[x][0] + 1 for x in rest]
    lo, hi = np.broadcast_to(lo, shape), np.broadcast_to(hi, shape)
    live = np.broadcast_to(live, shape) & (lo <= hi)
    base = np.broadcast_to(_evaluate(E.substitute(index, zero), grid), shape)
    for end in (lo, hi):
        value = base + coef * end
        bad = live & ((value < 0) | (value >= size))
        if bad.any():
            at = np.unravel_index(int(np.argmax(bad)), bad.shape) if bad.shape else ()
            point = {x: domain[x][0] + int(k) for x, k in zip(rest, at)}
            point[v] = int(end[at])
            return int(value[at]), point
    return None


class _Undecided(Exception):
    """An expression the numpy evaluator does not model (floats, math calls)."""


_NUMPY_OPS = {E.Add: np.add, E.Sub: np.subtract, E.Mul: np.multiply, E.Min: np.minimum, E.Max: np.maximum,
              E.LT: np.less, E.LE: np.less_equal, E.EQ: np.equal, E.NE: np.not_equal,
              E.And: np.logical_and, E.Or: np.logical_or}


def _evaluate(e, grid):
    """``e`` over the broadcast ``grid`` of its variables (int64 arrays, exact for indices)."""
    if isinstance(e, E.Var):
        return grid[e]
    if isinstance(e, E.Const):
        if E.is_float(e.dtype):
            raise _Undecided
        return np.int64(e.value) if e.dtype != "bool" else np.bool_(e.value)
    if type(e) in _NUMPY_OPS:
        return _NUMPY_OPS[type(e)](_evaluate(e.a, grid), _evaluate(e.b, grid))
    if isinstance(e, (E.FloorDiv, E.FloorMod)):
        a, b = _evaluate(e.a, grid), _evaluate(e.b, grid)
        safe = np.where(b == 0, 1, b)
        out = np.floor_divide(a, safe) if isinstance(e, E.FloorDiv) else np.mod(a, safe)
        return np.where(b == 0, 0, out)
    if isinstance(e, E.Not):
        return np.logical_not(_evaluate(e.a, grid))
    if isinstance(e, E.Select):
        return np.where(_evaluate(e.cond, grid), _evaluate(e.t, grid), _evaluate(e.f, grid))
    if isinstance(e, E.Cast) and not E.is_float(e.dtype) and not E.is_float(e.value.dtype):
        v = _evaluate(e.value, grid)
        return v.astype(bool) if e.dtype == "bool" else np.asarray(v, dtype=np.int64)
    raise _Undecided


def _fail(op, read, d, index, size, where):
    value, point = where
    at = ", ".join(f"{v.name}={k}" for v, k in sorted(point.items(), key=lambda kv: kv[0].name))
    text = ", ".join(format_expr(i) for i in read.indices)
    raise LoweringError(
        f"compute '{op.name}' reads {read.tensor.name}[{text}] outside the tensor: index {d} "
        f"({format_expr(index)}) is {value}{' at ' + at if at else ''}, but {read.tensor.name} has "
        f"{size} there (0..{size - 1}); fix the index, or guard the read with "
        f"te.if_then_else(<in range>, {read.tensor.name}[...], 0)")
