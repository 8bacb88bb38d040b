"""Tensor expressions: declare *what* an operator computes, in TVM's classic ``te`` style.

    A = te.placeholder((M, K), name="A")
    B = te.placeholder((K, N), name="B")
    k = te.reduce_axis((0, K), name="k")
    C = te.compute((M, N), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
"""
from __future__ import annotations

import builtins
import inspect

from ..errors import LoopcError
from .expr import (MATH_FUNCS, Add, And, Call, Const, Expr, ExprOp, Max, Min, Or, Reduce,
                   Select, SizeVar, Var, as_expr, check_dtype, is_float, is_int, walk, _as_bool, _unify, _pair)
from .bitwise import (bitwise_and, bitwise_not, bitwise_or, bitwise_xor, popcount, shift_left,  # noqa: F401
                      shift_right)
from .reduction import comm_reducer, compute_body, declaring, loop_dependent_axis, make_reduce, max_value, min_value
from .tensor import THREAD_TAGS, ComputeOp, IterKind, IterVar, PlaceholderOp, Range, Tensor, TensorList, reads_data
from .extern import call_extern, call_packed, extern     # TVM's te.extern family
from .scan import scan                                     # TVM's te.scan

__all__ = [
    "placeholder", "compute", "reduce_axis", "sum", "max", "min", "if_then_else", "all", "any",
    "const", "var", "size_var", "exp", "log", "sqrt", "tanh", "sigmoid", "abs", "floor", "thread_axis",
    "exp2", "log2", "log10", "ceil", "trunc", "round", "power", "fmod", "erf", "isnan", "isinf",
    "bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_not", "shift_left", "shift_right", "popcount",
    "min_value", "max_value", "comm_reducer",
    "create_schedule", "Tensor", "IterVar", "Expr", "Var", "scan", "extern", "call_packed", "call_extern",
]



def _shape(shape, what) -> tuple:
    """Every dimension a positive int, or a symbolic integer expression of ``te.var`` /
    ``te.size_var`` sizes (kept as a simplified Expr; one that folds to a constant is an int)."""
    if isinstance(shape, (int, ExprOp)):
        shape = (shape,)
    out = []
    for s in shape:
        if isinstance(s, ExprOp):
            s = _symbolic_extent(s, what, shape)
            if not isinstance(s, int):
                out.append(s)
                continue
        if not isinstance(s, int) or isinstance(s, bool) or s <= 0:
            raise LoopcError(f"{what}: every dimension must be a positive int or an integer expression of "
                             f"te.var/te.size_var sizes, got {shape!r}")
        out.append(int(s))
    return tuple(out)


def _symbolic_extent(x, what, context):
    """An integer expression of size variables as an extent (an int when it folds)."""
    from ..arith.extents import extent_of
    e = as_expr(x)
    if not is_int(e.dtype):
        raise LoopcError(f"{what}: a dimension must be an integer expression, got {e.dtype} {e} in {context!r}")
    if isinstance(x, IterVar) or builtins.any(isinstance(n, Reduce) or type(n).__name__ in ("TensorRead", "Load")
                                               for n in walk(e)):
        raise LoopcError(f"{what}: a dimension must be built from te.var/te.size_var sizes and ints, "
                         f"got {e} in {context!r}")
    return extent_of(e)


def placeholder(shape, dtype: str = "float32", name: str = "placeholder") -> Tensor:
    """An input tensor of static ``shape`` and ``dtype``."""
    return PlaceholderOp(name, _shape(shape, f"placeholder {name}"), check_dtype(dtype)).output(0)


def var(name: str = "v", dtype: str = "int32") -> Var:
    """A free scalar variable: a symbolic size usable in shapes, reduce_axis ends and
    expressions. ``loopc.build(s, [A, B])`` binds it from the arrays' shapes at call time;
    ``loopc.build(s, [A, B, n])`` takes it as an int argument too (a size is int32 or int64)."""
    return Var(name, check_dtype(dtype))


def size_var(name: str = "n", dtype: str = "int32") -> SizeVar:
    """A symbolic size known to be at least 1 (TVM's ``te.size_var``); a call whose arrays
    make it 0 or less is an ArgumentError.

        n = te.size_var("n")
        A = te.placeholder((n, 4), name="A")          # any number of rows, bound at call time
    """
    if check_dtype(dtype) not in ("int32", "int64"):
        raise LoopcError(f"te.size_var {name!r}: dtype must be int32 or int64, got {dtype!r}")
    return SizeVar(name, dtype)


def const(value, dtype: str | None = None) -> Const:
    """A constant; an integer out of ``dtype``'s range is a LoopcError, as TVM's IntImm."""
    if dtype is None:
        return as_expr(value)
    dtype = check_dtype(dtype)
    if isinstance(value, int) and not isinstance(value, bool) and dtype not in ("int32", "int64", "bool") \
            and not is_float(dtype):
        return as_expr(value, like=dtype)          # checks the range
    return Const(value, dtype)


def _range(dom, what) -> Range:
    if isinstance(dom, int):
        dom = (0, dom)
    if not (isinstance(dom, (tuple, list)) and len(dom) == 2):
        raise LoopcError(f"{what}: domain must be (min, extent_end) or an int, got {dom!r}")
    lo, hi = dom
    if builtins.any(isinstance(x, ExprOp) for x in (lo, hi)):      # a symbolic end: te.var sizes
        return Range(_symbolic_extent(lo, what, dom), _symbolic_extent(as_expr(hi) - lo, what, dom))
    if not builtins.all(isinstance(x, int) for x in (lo, hi)) or hi <= lo:
        raise LoopcError(f"{what}: domain must be two ints with end > start, got {dom!r}")
    return Range(lo, hi - lo)


def reduce_axis(dom, name: str = "rv") -> IterVar:
    """A reduction axis over ``range(dom[0], dom[1])``; inside a compute's lambda the bounds may
    read its axes (``te.reduce_axis((0, i + 1))``, see ``reduction.loop_dependent_axis``) and
    tensors (a CSR row: ``te.reduce_axis((0, W_indptr[j + 1] - W_indptr[j]))``, a loop whose count
    is read at run time, see ``reduction._data_dependent_axis``)."""
    bounded = loop_dependent_axis(dom, name)
    if bounded is None and isinstance(dom, (tuple, list)) and builtins.any(
            isinstance(x, ExprOp) and reads_data(as_expr(x)) for x in dom):
        raise LoopcError(f"reduce_axis {name}: its bounds read a tensor ({', '.join(map(str, dom))}); create it "
                         "inside the te.compute lambda whose axes they read (a CSR row: lambda i, j: ... "
                         "te.reduce_axis((0, W_indptr[j + 1] - W_indptr[j])))")
    return bounded if bounded is not None else IterVar(Var(name), _range(dom, f"reduce_axis {name}"), IterKind.REDUCE)


def thread_axis(tag="", name: str = "", dom=None) -> IterVar:
    """A GPU thread/block axis: ``te.thread_axis("blockIdx.x")``, or TVM's order with the range
    first: ``te.thread_axis((0, 32), "threadIdx.x")``."""
    if not isinstance(tag, str):             # TVM: thread_axis(dom, tag, name)
        tag, name, dom = (name or ""), "", tag
    if tag not in THREAD_TAGS:
        raise LoopcError(f"unknown thread tag {tag!r}; use one of {', '.join(THREAD_TAGS)}")
    return IterVar(Var(name or tag), None if dom is None else _range(dom, tag),
                   IterKind.THREAD, tag)


def _param_names(fcompute, n):
    try:
        params = list(inspect.signature(fcompute).parameters.values())
    except (TypeError, ValueError):
        params = []
    if params and params[0].kind == params[0].VAR_POSITIONAL:
        return [f"i{d}" for d in range(n)]
    names = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(names) != n:
        raise LoopcError(f"compute: the lambda takes {len(names)} indices but the shape has {n} dimensions")
    return names


def compute(shape, fcompute, name: str = "compute", tag: str = "", attrs=None):
    """``out[i, j, ...] = fcompute(i, j, ...)``; the lambda's parameter names name the loops.

    A lambda that returns a tuple gives one op with several outputs (TVM's multi-output
    compute): a list of tensors, each of ``shape`` with its own dtype and buffer, one stage.

        S, D = te.compute((n,), lambda i: (A[i] + B[i], A[i] - B[i]), name="SD")   # S.op is D.op
    """
    shape = _shape(shape, f"compute {name}")
    axis = tuple(IterVar(Var(n), Range(0, ext)) for n, ext in zip(_param_names(fcompute, len(shape)), shape))
    with declaring(axis) as scope:
        result = fcompute(*axis)
    body = compute_body(result, name, scope)
    op = ComputeOp(name, axis, body, body.dtype, tag, attrs)
    return op.output(0) if op.num_outputs == 1 else TensorList(op.outputs)


def _make_reducer(combiner):
    def reducer(expr, axis=None, where=None, init=None):
        if axis is None:
            raise LoopcError(f"te.{combiner} needs axis=<a te.reduce_axis or a list of them>")
        if isinstance(axis, (ExprOp, int, float)) and not isinstance(axis, IterVar):
            return _DIRECT[combiner](*_unify(*_pair(expr, axis)))     # TVM: te.sum(a, b) is a + b
        return make_reduce(combiner, expr, axis, where, init)
    reducer.__name__ = combiner
    reducer.__doc__ = (f"``{combiner}`` of ``expr`` over reduce axis/axes ``axis`` (optionally only where ``where`` "
                       f"holds), starting from ``init`` (at the output point, e.g. ``C_in[i, j]``) when given.")
    return reducer


_DIRECT = {"sum": Add, "max": Max, "min": Min}
sum = _make_reducer("sum")  # noqa: A001 - TVM's names
_max_reduce = _make_reducer("max")
_min_reduce = _make_reducer("min")


def _is_reduce_arg(x):
    return isinstance(x, IterVar) and x.kind is IterKind.REDUCE or (
        isinstance(x, (list, tuple)) and x and builtins.all(isinstance(a, IterVar) for a in x))


def max(a, b=None, axis=None, where=None, init=None):  # noqa: A001
    """``te.max(expr, axis=k)`` reduces; ``te.max(a, b)`` is elementwise."""
    if axis is not None or _is_reduce_arg(b):
        return _max_reduce(a, axis if axis is not None else b, where, init)
    if b is None:
        raise LoopcError("te.max(a) needs axis= (a reduction) or a second operand (elementwise)")
    return Max(*_unify(*_pair(a, b)))


def min(a, b=None, axis=None, where=None, init=None):  # noqa: A001
    """``te.min(expr, axis=k)`` reduces; ``te.min(a, b)`` is elementwise."""
    if axis is not None or _is_reduce_arg(b):
        return _min_reduce(a, axis if axis is not None else b, where, init)
    if b is None:
        raise LoopcError("te.min(a) needs axis= (a reduction) or a second operand (elementwise)")
    return Min(*_unify(*_pair(a, b)))


def if_then_else(cond, t, f) -> Expr:
    """``t`` where ``cond`` holds, else ``f``; the side not taken is never evaluated."""
    t, f = _pair(t, f)
    if not (t.dtype == f.dtype == "bool"):      # two booleans stay a boolean
        t, f = _unify(t, f)
    return Select(_as_bool(cond), t, f)


def all(*conds) -> Expr:  # noqa: A001
    if len(conds) == 1 and isinstance(conds[0], (list, tuple)):
        conds = conds[0]
    if not conds:
        return Const(True, "bool")
    out = _as_bool(conds[0])
    for c in conds[1:]:
        out = And(out, _as_bool(c))
    return out


def any(*conds) -> Expr:  # noqa: A001
    if len(conds) == 1 and isinstance(conds[0], (list, tuple)):
        conds = conds[0]
    if not conds:
        return Const(False, "bool")
    out = _as_bool(conds[0])
    for c in conds[1:]:
        out = Or(out, _as_bool(c))
    return out


def _make_math(fname):
    def fn(x):
        e = as_expr(x)
        if fname == "abs" and not is_float(e.dtype):
            return Call("abs", (e,), e.dtype)
        if not is_float(e.dtype):
            e = e.astype("float32")
        return Call(fname, (e,), e.dtype)
    fn.__name__ = fname
    fn.__doc__ = f"Elementwise ``{fname}``."
    return fn


(exp, log, sqrt, tanh, sigmoid, abs, floor, exp2, log2, log10, ceil, trunc,  # noqa: A001
 round) = (_make_math(f) for f in MATH_FUNCS)  # noqa: A001


def _float_pair(x, y, fname):
    a, b = _pair(x, y)
    dtype = a.dtype if is_float(a.dtype) else (b.dtype if is_float(b.dtype) else "float32")
    return Call(fname, (a.astype(dtype), b.astype(dtype)), dtype)


def power(x, y):
    """Elementwise ``x ** y`` (floats; integer operands become float32), TVM's ``te.power``."""
    return _float_pair(x, y, "power")


def fmod(x, y):
    """Elementwise C ``fmod``: the remainder with the sign of ``x`` (numpy's ``np.fmod``)."""
    return _float_pair(x, y, "fmod")


def erf(x):
    """The error function, by Abramowitz and Stegun 7.1.26 (absolute error under 1.5e-7): an
    expression of ``exp``, so every target computes it the same way."""
    x = as_expr(x)
    x = x if is_float(x.dtype) else x.astype("float32")
    ax = abs(x)
    t = 1.0 / (1.0 + 0.3275911 * ax)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    y = 1.0 - poly * exp(-(ax * ax))
    return if_then_else(x < 0.0, -y, y)


def isnan(x):
    """True where ``x`` is NaN (a float compares unequal to itself only then)."""
    x = as_expr(x)
    return x != x if is_float(x.dtype) else Const(False, "bool")


def isinf(x):
    """True where ``x`` is +inf or -inf."""
    x = as_expr(x)
    return abs(x) == float("inf") if is_float(x.dtype) else Const(False, "bool")


def create_schedule(ops):
    """A default schedule for one op, tensor, or a list of them (the outputs)."""
    from ..schedule import Schedule
    return Schedule(ops)


def cast(x, dtype):
    return as_expr(x).astype(dtype)



def __getattr__(name):
    """``te.schedule`` (TVM's ``AutoInlineElemWise`` ...), imported on first use: it needs
    ``loopc.schedule``, which needs this module."""
    if name == "schedule":
        import importlib
        return importlib.import_module(".schedule", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
