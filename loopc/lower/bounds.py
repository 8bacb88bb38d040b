"""The compute declarations' reads must stay inside the tensors they read.

A read ``A[i + 1000000]`` or an unguarded ``A[i - 1]`` would run off its buffer in native code.
For every read of every declared ``te.compute``, each index is checked over the op's whole
domain (its axes and reduction axes), under the conditions that guard the read
(``te.if_then_else`` and a reduction's ``where=``). A read that can leave its tensor is a
LoweringError naming the tensor, the index, its range and a point where it leaves.

Linear indices with no guard are decided exactly by interval arithmetic; others by
enumerating the variables involved (up to ``MAX_POINTS`` combinations), with numpy. Reads whose
index or guard depends on data (``A[I[i]]``) cannot be decided here: build those with
``bounds_check=True``.
"""
from __future__ import annotations

import numpy as np

from ..arith import bound_of, linear_form, simplify_expr
from ..errors import LoweringError
from ..ir.printer import format_expr
from ..te import expr as E
from ..te.tensor import ComputeOp

#: enumerate at most this many points per index (a conv's padded read: a few thousand)
MAX_POINTS = 1 << 20


def check_reads_in_bounds(ops, sizes=None) -> tuple:
    """LoweringError when a read in the body of one of ``ops`` can leave the tensor it reads.

    Symbolic sizes (``te.var``): with ``sizes`` (Var -> int) every op is checked at those
    values. Without, a read whose index is linear and unguarded is proved for all sizes by
    symbolic interval arithmetic; the ops with a read it cannot prove are returned, to be
    checked at call time for the actual sizes (never assumed in bounds)."""
    deferred = []
    for op in ops:
        if not isinstance(op, ComputeOp):
            continue
        axes = tuple(op.axis) + tuple(op.reduce_axis)
        if sizes is None and _is_symbolic(op, axes):
            if not _symbolic_reads_proved(op, axes):
                deferred.append(op)
            continue
        domain = {iv.var: _value(iv.dom.extent, sizes) for iv in axes}
        if any(ext <= 0 for ext in domain.values()):
            continue        # no iteration at these sizes: nothing is read
        for read, conds in _guarded_reads(op.body, ()):
            if sizes:
                conds = tuple(_bind(c, sizes) for c in conds)
            for d, (index, size) in enumerate(zip(read.indices, read.tensor.shape)):
                if sizes:
                    index, size = _bind(index, sizes), _value(size, sizes)
                where = _leaves(index, conds, domain, size)
                if where is not None:
                    _fail(op, read, d, index, size, where)
    return tuple(deferred)


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
    for read, _ in _guarded_reads(op.body, ()):
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
    extents = {iv.var: iv.dom.extent for iv in axes}
    for read, conds in _guarded_reads(op.body, ()):
        if conds:
            return False
        for index, size in zip(read.indices, read.tensor.shape):
            if _data_dependent(index):
                return False
            terms, const = linear_form(index)
            lo = hi = E.Const(const, index.dtype)
            for t, c in terms.items():
                if t in extents:
                    reach = E.as_expr(extents[t]) - 1       # the loop runs 0..extent-1 (when it runs)
                    if c > 0:
                        hi = hi + reach * c
                    else:
                        lo = lo + reach * c
                elif E.free_vars(t) & extents.keys():
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
            lo, hi = bound_of(index, {v: (0, domain[v] - 1) for v in terms})
            if 0 <= lo and hi < size:
                return None
            target = lo if lo < 0 else hi      # an extreme is reached at a corner of the box
            point = {t: (domain[t] - 1 if (c > 0) == (target == hi) else 0) for t, c in terms.items()}
            return target, point
    variables = sorted(names, key=lambda v: v.name)
    points = 1
    for v in variables:
        points *= domain[v]
    if points > MAX_POINTS:
        return None
    grid = {v: np.arange(domain[v], dtype=np.int64).reshape([-1 if n == k else 1 for k in range(len(variables))])
            for n, v in enumerate(variables)}
    try:
        with np.errstate(all="ignore"):
            value = np.broadcast_to(_evaluate(index, grid), [domain[v] for v in variables])
            live = np.ones(value.shape, bool)
            for c in conds:
                live &= np.broadcast_to(_evaluate(c, grid).astype(bool), value.shape)
    except _Undecided:
        return None
    bad = live & ((value < 0) | (value >= size))
    if not bad.any():
        return None
    at = np.unravel_index(int(np.argmax(bad)), bad.shape)
    return int(value[at]), {v: int(k) for v, k in zip(variables, at)}


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
