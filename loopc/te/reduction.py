"""Reductions beyond sum/max/min: TVM's ``te.comm_reducer`` (single- and multi-value, such as
argmax), ``init=``, the identities ``te.min_value`` / ``te.max_value``, and reduce axes whose
bounds read the axes of the compute being declared (a triangular sum).

    argmax = te.comm_reducer(fcombine, fidentity, name="argmax")   # see comm_reducer
    T0, T1 = te.compute((m,), lambda i: argmax((idx[i, k], val[i, k]), axis=k), name="T")
    L = te.compute((n,), lambda i: te.sum(A[i, k], axis=te.reduce_axis((0, i + 1), name="k")))

and reduce axes whose bounds read a tensor (a sparse row's nonzeros, TVM's sparse_dense):
a loop whose count is data, evaluated once per iteration of the loops the bounds read.

    def row(i, j):
        elem = te.reduce_axis((0, W_indptr[j + 1] - W_indptr[j]), name="elem")
        e = W_indptr[j] + elem
        return te.sum(W_data[e] * X[i, W_indices[e]], axis=elem)
"""
from __future__ import annotations

import builtins
import contextlib
import contextvars
import inspect
from dataclasses import dataclass, field
from typing import Tuple

import numpy as np

from ..errors import LoopcError
from .expr import (Const, Expr, ExprOp, Reduce, TensorRead, ValueTuple, Var, as_expr, check_dtype, free_vars,
                   is_float, is_int, substitute, walk, _as_bool)
from . import expr as E
from .tensor import IterKind, IterVar, Range, reads_data


# --------------------------------------------------------------------------- identities


def max_value(dtype: str) -> Const:
    """The largest finite value of ``dtype`` (TVM's ``te.max_value``: float32 gives 3.4028235e38,
    not inf)."""
    return Const(_limits(dtype)[1], dtype)


def min_value(dtype: str) -> Const:
    """The lowest finite value of ``dtype`` (TVM's ``te.min_value``: float32 gives -3.4028235e38)."""
    return Const(_limits(dtype)[0], dtype)


def _limits(dtype):
    dtype = check_dtype(dtype)
    if is_float(dtype):
        big = float(np.finfo(dtype).max)
        return -big, big
    return E.min_value(dtype), E.max_value(dtype)     # ints and bool: their whole range


# --------------------------------------------------------------------------- comm_reducer


@dataclass(frozen=True, eq=False)
class CommReducer:
    """A user's reducer at given value dtypes: ``combine(x, y)`` is ``results`` with the
    accumulators ``lhs`` bound to ``x`` and the new values ``rhs`` to ``y``."""
    name: str
    lhs: Tuple[Var, ...]
    rhs: Tuple[Var, ...]
    results: Tuple[Expr, ...]
    identities: Tuple[Expr, ...]

    def identity(self, dtypes) -> Tuple[Expr, ...]:
        return self.identities

    def combine(self, acc, new) -> Tuple[Expr, ...]:
        mapping = dict(zip(self.lhs, acc))
        mapping.update(zip(self.rhs, new))
        return tuple(substitute(r, mapping) for r in self.results)

    def __str__(self):
        return self.name


class ReduceValue(ExprOp):
    """Value ``index`` of a multi-value reduction: what a multi-value reducer returns, one per
    value. The compute lambda returns all of them together (``T0, T1 = te.compute(...)``); any
    other use is a LoopcError."""

    def __init__(self, reduce: Reduce, index: int, name: str):
        self.reduce, self.index, self.name = reduce, index, name

    def _as_expr(self):
        raise LoopcError(f"value {self.index} of the {self.reduce.num_values}-value reducer '{self.name}' is used "
                         "in an expression; return all its values from the compute lambda "
                         f"({', '.join(f'T{j}' for j in range(self.reduce.num_values))} = te.compute(shape, "
                         f"lambda i: {self.name}(..., axis=k))) and use those tensors")

    __hash__ = object.__hash__


def comm_reducer(fcombine, fidentity, name: str = "reduce"):
    """A commutative reducer from ``fcombine(x, y)`` (accumulator(s) x, new value(s) y) and
    ``fidentity(dtype)`` — ``fidentity(dtype0, dtype1, ...)`` for a multi-value reducer, whose x
    and y are tuples. TVM's ``te.comm_reducer``:

        prod = te.comm_reducer(lambda x, y: x * y, lambda t: te.const(1, t), name="prod")
        P = te.compute((n,), lambda i: prod(A[i, k], axis=k))                # one value

        def fcombine(x, y):                                                   # argmax
            keep = x[1] >= y[1]
            return te.if_then_else(keep, x[0], y[0]), te.if_then_else(keep, x[1], y[1])
        argmax = te.comm_reducer(fcombine, lambda t0, t1: (te.const(-1, t0), te.min_value(t1)))
        T0, T1 = te.compute((m,), lambda i: argmax((idx[i, k], val[i, k]), axis=k))

    ``reducer(expr, axis=k, where=cond, init=value)`` reduces (``init``, at the output point,
    replaces the identity as the starting value); ``reducer(a, b)`` with no reduce axis combines
    two values directly, as in TVM. A multi-value reduction updates all its accumulators
    together: each new value is computed from the old ones before any is stored.

    Differs from TVM: ``init`` may be any expression of the compute's axes (TVM takes a tensor
    read or a constant); a multi-value reduction is one Reduce over a ValueTuple in
    ``op.body`` (TVM: one Reduce per value, with ``value_index``).
    """
    if not callable(fcombine) or not callable(fidentity):
        raise LoopcError(f"te.comm_reducer('{name}'): fcombine and fidentity must be functions, "
                         "e.g. te.comm_reducer(lambda x, y: x * y, lambda t: te.const(1, t))")
    lhs_name, rhs_name = _param_names(fcombine, name)

    def reducer(expr, axis=None, where=None, init=None, *args):
        if axis is None or not is_reduce_axes(axis):
            if axis is None:
                raise LoopcError(f"reducer '{name}' needs axis=<a te.reduce_axis or a list of them> (or a "
                                 "second value to combine with directly)")
            out = fcombine(expr, axis)          # TVM: reducer(a, b, ...) folds the values directly
            for more in (where, init) + args:
                if more is not None:
                    out = fcombine(out, more)
            return out
        return make_reduce(ReducerSpec(name, fcombine, fidentity, lhs_name, rhs_name), expr, axis, where, init)

    reducer.__name__ = name
    reducer.__doc__ = f"The '{name}' reduction of ``expr`` over reduce axis/axes ``axis`` (te.comm_reducer)."
    return reducer


@dataclass(frozen=True)
class ReducerSpec:
    """What ``comm_reducer`` was given; ``at(dtypes, multi)`` builds the CommReducer for values
    of those dtypes (``multi``: they came as a tuple, so x and y are tuples, even of one)."""
    name: str
    fcombine: object
    fidentity: object
    lhs_name: str
    rhs_name: str

    def at(self, dtypes, multi: bool) -> CommReducer:
        n = len(dtypes)
        lhs = tuple(Var(self.lhs_name + (f"_{j}" if multi else ""), dt) for j, dt in enumerate(dtypes))
        rhs = tuple(Var(self.rhs_name + (f"_{j}" if multi else ""), dt) for j, dt in enumerate(dtypes))
        try:
            results = self.fcombine(lhs, rhs) if multi else self.fcombine(lhs[0], rhs[0])
            ids = self.fidentity(*dtypes)
        except (TypeError, IndexError, ValueError) as err:
            raise LoopcError(f"reducer '{self.name}' failed on {n} value{'s' if n > 1 else ''} of dtype "
                             f"{', '.join(dtypes)} ({type(err).__name__}: {err}); "
                             + ("a multi-value reducer takes a tuple: reducer((a, b), axis=k), and its fidentity "
                                "takes one dtype per value" if not multi else
                                f"its fcombine gets x and y as tuples of {n} and its fidentity {n} dtypes")) from None
        results = self._values(results, n, multi, "fcombine")
        ids = self._values(ids, n, multi, "fidentity")
        results = tuple(self._typed(r, dt, f"fcombine's value {j}", set(lhs + rhs)) for j, (r, dt) in
                        enumerate(zip(results, dtypes)))
        ids = tuple(self._typed(v, dt, f"fidentity's value {j}", set()) for j, (v, dt) in enumerate(zip(ids, dtypes)))
        return CommReducer(self.name, lhs, rhs, results, ids)

    def _values(self, out, n, multi, fname):
        many = isinstance(out, (tuple, list))
        if not multi:
            if many:
                raise LoopcError(f"reducer '{self.name}': {fname} returned {len(out)} values for a one-value "
                                 f"reduction; return one expression, or reduce a tuple of {len(out)} values")
            return (out,)
        if not many or len(out) != n:
            got = f"{len(out)} values" if many else "one value"
            raise LoopcError(f"reducer '{self.name}': {fname} returned {got} for a {n}-value reduction; "
                             f"return a tuple of {n}, one per value")
        return tuple(out)

    def _typed(self, value, dtype, what, allowed_vars):
        e = _coerce(value, dtype, f"reducer '{self.name}': {what}")
        if any(isinstance(n, (TensorRead, Reduce)) for n in walk(e)) or not free_vars(e) <= allowed_vars:
            raise LoopcError(f"reducer '{self.name}': {what} ({e}) may use only "
                             + ("its arguments x and y" if allowed_vars else "constants (its dtype argument)")
                             + "; it reads something else")
        return e


def _param_names(fcombine, name):
    try:
        params = [p.name for p in inspect.signature(fcombine).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = []
    if len(params) != 2:
        raise LoopcError(f"te.comm_reducer('{name}'): fcombine must take two arguments (x, y), "
                         f"it takes {len(params)}")
    return params[0], params[1]


def _coerce(value, dtype, what) -> Expr:
    """``value`` as an expression of ``dtype``: a Python number or constant converts, anything
    else must already have it."""
    try:
        e = as_expr(value, dtype)
    except LoopcError as err:
        raise LoopcError(f"{what}: {err}") from None
    if e.dtype == dtype:
        return e
    if isinstance(e, Const):
        return Const(e.value, dtype)
    raise LoopcError(f"{what} has dtype {e.dtype} but the value it stands for is {dtype}; "
                     f"cast it with .astype({dtype!r})")


def is_reduce_axes(axis) -> bool:
    """A te.reduce_axis or a non-empty list/tuple of them."""
    axes = list(axis) if isinstance(axis, (list, tuple)) else [axis]
    return bool(axes) and builtins.all(isinstance(a, IterVar) and a.kind is IterKind.REDUCE for a in axes)


def make_reduce(combiner, expr, axis, where=None, init=None):
    """The Reduce node of ``combiner`` ("sum"/"max"/"min" or a comm_reducer's) over ``axis``:
    one Reduce, or one ReduceValue per value for a multi-value reduction."""
    name = combiner if isinstance(combiner, str) else combiner.name
    label = f"te.{name}" if isinstance(combiner, str) else f"reducer '{name}'"
    if not is_reduce_axes(axis):
        raise LoopcError(f"{label}: axis must be a te.reduce_axis or a list of them, got {axis!r}")
    axes = tuple(axis) if isinstance(axis, (list, tuple)) else (axis,)
    many = isinstance(expr, (tuple, list))
    if many and isinstance(combiner, str):
        raise LoopcError(f"{label} reduces one value, got {len(expr)}; write a te.comm_reducer for several")
    if many and not expr:
        raise LoopcError(f"{label} got an empty tuple of values")
    sources = tuple(as_expr(v) for v in (expr if many else (expr,)))
    dtypes = tuple(v.dtype for v in sources)
    if not isinstance(combiner, str):
        combiner = combiner.at(dtypes, many)
    source = ValueTuple(sources) if len(sources) > 1 else sources[0]
    cond = None if where is None else _as_bool(where)
    if init is not None:
        init = _init(init, dtypes, many, axes, label)
    red = Reduce(combiner, source, axes, cond, init)
    # TVM too returns a single Reduce for a tuple of one value
    return tuple(ReduceValue(red, j, name) for j in range(len(sources))) if len(sources) > 1 else red


def _init(init, dtypes, many, axes, name):
    values = init if isinstance(init, (tuple, list)) else (init,)
    if len(values) != len(dtypes) or isinstance(init, (tuple, list)) != many:
        raise LoopcError(f"{name}: init= gives {len(values)} value{'s' if len(values) != 1 else ''} for a "
                         f"{len(dtypes)}-value reduction; give one per value")
    out = tuple(_coerce(v, dt, f"{name}: init value {j}") for j, (v, dt) in enumerate(zip(values, dtypes)))
    reduce_vars = {iv.var for iv in axes}
    for v in out:
        if free_vars(v) & reduce_vars or any(isinstance(n, Reduce) for n in walk(v)):
            raise LoopcError(f"{name}: init= ({v}) reads a reduce axis; the starting value is one per output "
                             "point: use only the compute's own axes (e.g. init=C_in[i, j])")
    return ValueTuple(out) if len(out) > 1 else out[0]


# --------------------------------------------------------------------------- compute bodies


@dataclass
class Declaring:
    """What ``te.compute`` knows while it calls its lambda: the ranges of its axes, and the
    conditions of reduce axes whose bounds read them."""
    ranges: dict
    conditions: dict = field(default_factory=dict)


_DECLARING: contextvars.ContextVar = contextvars.ContextVar("loopc_te_declaring", default=None)


@contextlib.contextmanager
def declaring(axes):
    """The scope of one ``te.compute``'s lambda call (nested computes each get their own)."""
    scope = Declaring({iv.var: (0, iv.dom.extent - 1) for iv in axes})
    token = _DECLARING.set(scope)
    try:
        yield scope
    finally:
        _DECLARING.reset(token)


def loop_dependent_axis(dom, name) -> IterVar | None:
    """A reduce axis whose bounds read axes of the compute being declared: the axis gets the
    constant range that covers every outer point (from ``loopc.arith``), and the bounds become a
    condition that ``te.compute`` adds to the reduction's ``where``. None for any other domain.

    before:  k = te.reduce_axis((0, i + 1))          # i in range(n)
    after:   k = te.reduce_axis((0, n)), and the reduction over k gets where= k < i + 1

    Differs from TVM on purpose: TVM keeps the symbolic range (``k.dom.extent`` is ``i + 1``);
    loopc gives the axis the constant cover, so split, reorder, unroll, rfactor and the
    autotuner's define_split see a constant extent, and the loop runs the cover under the guard.
    """
    from ..arith import bound_of, conjoin   # at call time: loopc.arith imports this package
    scope = _DECLARING.get()
    if scope is None or not (isinstance(dom, (tuple, list)) and len(dom) == 2):
        return None
    if not builtins.any(isinstance(x, ExprOp) for x in dom):
        return None
    try:
        lo, hi = (as_expr(x) for x in dom)
    except LoopcError:
        return None
    used = free_vars(lo) | free_vars(hi)
    what = f"reduce_axis {name} over ({lo}, {hi})"
    if reads_data(lo) or reads_data(hi):
        return _data_dependent_axis(lo, hi, name, what, used, scope)
    if not used & scope.ranges.keys():
        return None                     # not about this compute's axes
    if not (is_int(lo.dtype) and is_int(hi.dtype)):
        raise LoopcError(f"{what}: the bounds must be integer expressions")
    if not used <= scope.ranges.keys():
        others = ", ".join(sorted(v.name for v in used - scope.ranges.keys()))
        raise LoopcError(f"{what}: the bounds read {others}, which is not an axis of the compute being declared")
    lo_range, hi_range = bound_of(lo, scope.ranges), bound_of(hi, scope.ranges)
    if lo_range is None or hi_range is None:
        raise LoopcError(f"{what}: the bounds must be linear in the compute's axes (i + 1, n - i ...); "
                         "for other shapes reduce over a constant range with where=<condition>")
    start, end = lo_range[0], hi_range[1]
    if end <= start:
        raise LoopcError(f"{what}: the range is empty for every point of the compute; check the bounds")
    iv = IterVar(Var(name), Range(start, end - start), IterKind.REDUCE)
    conds = ([] if isinstance(lo, Const) else [lo <= iv.var]) + ([] if isinstance(hi, Const) else [iv.var < hi])
    scope.conditions[iv] = conjoin(conds)
    return iv


def _data_dependent_axis(lo, hi, name, what, used, scope) -> IterVar:
    """A reduce axis whose bounds read a tensor (a CSR row: ``(0, W_indptr[j + 1] -
    W_indptr[j])``): it keeps the bounds as its start and extent, and lowers to a loop that
    evaluates them once per iteration of the loops they read, so it runs exactly the row's
    elements (TVM's sparse_dense). Schedules may reorder it among loops its bounds do not read
    and split it by a constant (a tail guard); not vectorize, unroll, parallelize, fuse or
    rfactor it (``Stage`` says so)."""
    from ..arith.extents import extent_of
    if not (is_int(lo.dtype) and is_int(hi.dtype)):
        raise LoopcError(f"{what}: the bounds must be integer expressions")
    if any(isinstance(n, Reduce) for e in (lo, hi) for n in walk(e)):
        raise LoopcError(f"{what}: the bounds may read tensors but not reduce")
    if not used <= scope.ranges.keys():
        others = ", ".join(sorted(v.name for v in used - scope.ranges.keys()))
        raise LoopcError(f"{what}: the bounds read {others}, which is not an axis of the compute being declared")
    start = extent_of(lo)
    return IterVar(Var(name), Range(start, extent_of(hi - lo)),
                   IterKind.REDUCE)


def substitute_body(body: Expr, mapping: dict) -> Expr:
    """``substitute`` for a compute body: a Reduce's data-dependent axes get their bounds
    substituted too (new IterVars), since those bounds read the compute's axes."""
    if not (isinstance(body, Reduce) and builtins.any(iv.data_dependent for iv in body.axes)):
        return substitute(body, mapping)
    mapping = dict(mapping)
    axes = []
    for iv in body.axes:
        if iv.data_dependent:
            new = IterVar(Var(iv.name), Range(_sub(iv.dom.min, mapping), _sub(iv.dom.extent, mapping)), iv.kind)
            mapping[iv.var] = new.var
            iv = new
        axes.append(iv)
    sub = (lambda e: None if e is None else substitute(e, mapping))
    return Reduce(body.combiner, sub(body.source), tuple(axes), sub(body.condition), sub(body.init))


def _sub(x, mapping):
    return substitute(x, mapping) if isinstance(x, Expr) else x


def compute_body(result, name: str, scope: Declaring) -> Expr:
    """The body of ``te.compute`` from what its lambda returned: one expression, a tuple of
    expressions (a multi-output op: a ValueTuple), or all values of one multi-value reduction
    (a Reduce over a ValueTuple). Loop-dependent reduce axes add their bounds to the where."""
    if isinstance(result, ReduceValue):
        result = (result,)
    if isinstance(result, (tuple, list)):
        if not result:
            raise LoopcError(f"compute {name}: the lambda returned an empty tuple; return one value per output")
        parts = [r for r in result if isinstance(r, ReduceValue)]
        if parts:
            red = parts[0].reduce
            if len(result) != red.num_values or [getattr(r, "reduce", None) is red and r.index for r in result] \
                    != list(range(red.num_values)):
                raise LoopcError(f"compute {name}: return all {red.num_values} values of the '{parts[0].name}' "
                                 "reduction, in order, and nothing else (T0, T1 = te.compute(shape, lambda i: "
                                 f"{parts[0].name}((a, b), axis=k))); compute other values in another te.compute")
            body = red
        elif len(result) == 1:
            body = as_expr(result[0])
        else:
            body = ValueTuple(tuple(as_expr(r) for r in result))
    else:
        body = as_expr(result)
    for value in (body.values if isinstance(body, ValueTuple) else (body,)):
        for node in walk(value):
            if isinstance(node, Reduce) and node is not body:
                raise LoopcError(
                    f"compute {name}: a reduction (te.sum/max/min or a te.comm_reducer over an axis) must be the "
                    "whole body" + (" of a one-output compute" if isinstance(body, ValueTuple) else "")
                    + "; compute the reduction in its own te.compute and use its result in another")
    if isinstance(body, Reduce):
        for iv in body.axes:
            if not isinstance(iv, IterVar) or iv.kind is not IterKind.REDUCE:
                raise LoopcError(f"compute {name}: reduce over {iv!r}, which is not a te.reduce_axis")
        if body.init is not None and not free_vars(body.init) <= scope.ranges.keys():
            others = ", ".join(sorted(v.name for v in free_vars(body.init) - scope.ranges.keys()))
            raise LoopcError(f"compute {name}: init= reads {others}, which is not an axis of this compute")
        bounds = [scope.conditions[iv] for iv in body.axes if iv in scope.conditions]
        if bounds:
            from ..arith import conjoin
            cond = conjoin(bounds + ([] if body.condition is None else [body.condition]))
            body = Reduce(body.combiner, body.source, body.axes, cond, body.init)
    return body
