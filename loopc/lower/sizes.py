"""Symbolic sizes (``te.var`` / ``te.size_var``): which Vars a lowered function receives, and
how the runtime finds their values from the arrays of a call.

    n = te.size_var("n")
    A = te.placeholder((n, 4)); B = te.placeholder((n + 2, 4)); C = te.compute((n, 4), ...)
    lower(s, [A, B, C])     -> sizes.size_vars == (n,), bound from A's dimension 0
    lower(s, [A, B, C, n])  -> n is also the call's 4th argument, an int that must agree

A Var is bound by the first argument dimension that is linear in it once the Vars bound
before are known (``n``, ``n + 2``, ``2*n``); every symbolic dimension is then checked at call
time (``loopc.runtime.sizes``). A Var that no dimension binds and ``args`` does not list is a
LoweringError, not a guess.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Tuple

from ..arith import from_linear, linear_form
from ..arith.extents import size_vars_of
from ..errors import LoweringError
from ..te import expr as E
from ..te.tensor import ComputeOp


@dataclass(frozen=True, eq=False)
class SizeSignature:
    """What a function with symbolic sizes needs at call time.

    ``size_vars``: the Vars the kernel receives after its buffer pointers (int64 values), in
    order; ``scalars``: (position in the call, Var) of the sizes passed as ints; ``steps``:
    (Var, parameter index, dimension, coefficient, rest) binding ``Var = (shape[dim] - rest) /
    coefficient``, in order; ``deferred_ops``: compute ops whose reads the symbolic bounds could
    not prove inside their tensors: checked for each new set of sizes, before the kernel runs
    (``deferred_ranges``: the narrower ranges some of their axes run over, e.g. a scan's steps)."""
    size_vars: Tuple[E.Var, ...]
    scalars: Tuple[Tuple[int, E.Var], ...]
    steps: Tuple[Tuple[E.Var, int, int, int, Any], ...]
    deferred_ops: Tuple[Any, ...] = ()
    deferred_ranges: Any = None

    @property
    def explicit(self) -> Tuple[E.Var, ...]:
        return tuple(v for _, v in self.scalars)


def split_args(args):
    """(tensors, [(position, Var)]) of a ``lower``/``build`` argument list."""
    tensors, scalars = [], []
    for pos, a in enumerate(args):
        if isinstance(a, E.Var):
            scalars.append((pos, a))
        else:
            tensors.append(a)
    return tensors, scalars


def used_size_vars(ops) -> list:
    """Every Var a computation reads that is not one of its loops: symbolic sizes in shapes,
    reduction extents and bodies, in first-seen order."""
    out = []

    def add(vs):
        for v in vs:
            if all(v is not u for u in out):
                out.append(v)

    for op in ops:
        for d in op.shape:
            add(size_vars_of(d))
        if isinstance(op, ComputeOp):
            loops = {iv.var for iv in tuple(op.axis) + tuple(op.reduce_axis)}
            for iv in op.reduce_axis:      # a data-dependent axis's bounds read the op's own axes too
                add(v for v in size_vars_of(iv.dom.extent) + size_vars_of(iv.dom.min) if v not in loops)
            add(n for n in E.walk(op.body) if isinstance(n, E.Var) and n not in loops)
    return out


def plan_sizes(params, scalars, ops, name: str) -> SizeSignature | None:
    """The SizeSignature of a function over ``params`` (Buffers, shapes maybe symbolic) with
    the sizes ``scalars`` given explicitly; None when nothing is symbolic."""
    used = used_size_vars(ops)
    for b in params:
        for d in b.shape:
            for v in size_vars_of(d):
                if all(v is not u for u in used):
                    used.append(v)
    explicit = [v for _, v in scalars]
    if not used and not explicit:
        return None
    for v in explicit:
        if all(v is not u for u in used):
            used.append(v)
    known = set(explicit)
    steps = []
    progress = True
    while progress:
        progress = False
        for i, b in enumerate(params):
            for d, dim in enumerate(b.shape):
                free = [v for v in size_vars_of(dim) if v not in known]
                if len(free) != 1:
                    continue
                step = _solve(dim, free[0])
                if step is not None:
                    coef, rest = step
                    steps.append((free[0], i, d, coef, rest))
                    known.add(free[0])
                    progress = True
    missing = [v for v in used if v not in known]
    if missing:
        names = ", ".join(v.name for v in missing)
        raise LoweringError(
            f"{name}(): the size variable{'s' if len(missing) > 1 else ''} {names} cannot be read from the "
            f"arguments' shapes (no dimension of an argument is {missing[0].name} or linear in it); list "
            f"{'them' if len(missing) > 1 else 'it'} in args, e.g. loopc.build(s, [A, B, {missing[0].name}]), "
            "and pass the value when calling")
    order = explicit + [v for v in used if v not in set(explicit)]
    return SizeSignature(tuple(order), tuple(scalars), tuple(steps))


def _solve(dim, var):
    """(coefficient, rest) with ``dim == coefficient*var + rest`` and ``rest`` free of ``var``;
    None when ``dim`` is not linear in ``var``."""
    terms, const = linear_form(E.as_expr(dim))
    coef = terms.pop(var, 0)
    if not isinstance(coef, int) or coef == 0:
        return None
    if any(var in E.free_vars(t) for t in terms):
        return None
    return coef, from_linear(terms, const, var.dtype)
