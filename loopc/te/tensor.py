"""Tensors, operations and iteration variables of the tensor-expression DSL."""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Tuple

from ..errors import LoopcError
from .expr import Expr, ExprOp, Reduce, TensorRead, Var, as_expr, walk


#: the GPU indices a loop can be bound to (``te.thread_axis``)
THREAD_TAGS = tuple(f"{kind}.{d}" for kind in ("blockIdx", "threadIdx") for d in "xyz") + ("vthread",)


class IterKind(Enum):
    DATA_PAR = "data_par"
    REDUCE = "reduce"
    THREAD = "thread"


@dataclass(frozen=True, eq=False)
class Range:
    """``[min, min + extent)``: ints, or integer Exprs of symbolic sizes (``te.var``)."""
    min: int
    extent: int


@dataclass(frozen=True, eq=False, repr=False)
class IterVar(ExprOp):
    """An iteration axis: a Var with a domain and a kind. Usable in expressions."""
    var: Var
    dom: Range | None
    kind: IterKind = IterKind.DATA_PAR
    thread_tag: str = ""

    def _as_expr(self):
        return self.var

    @property
    def name(self):
        return self.var.name

    @property
    def extent(self):
        return None if self.dom is None else self.dom.extent

    def __repr__(self):
        ext = "" if self.dom is None else f", extent={self.dom.extent}"
        return f"IterVar({self.var.name}{ext}, {self.kind.value})"


class Operation:
    """Base of PlaceholderOp and ComputeOp; an op produces one output tensor."""
    name: str

    def output(self, index: int = 0) -> "Tensor":
        if index != 0:
            raise LoopcError(f"operation {self.name} has one output")
        return self._output

    @property
    def input_tensors(self) -> Tuple["Tensor", ...]:
        return ()


class PlaceholderOp(Operation):
    def __init__(self, name: str, shape: Tuple[int, ...], dtype: str):
        self.name = name
        self.shape = shape
        self.dtype = dtype
        self._output = Tensor(self)

    def __repr__(self):
        return f"placeholder({self.name}, shape={self.shape}, dtype={self.dtype})"


class ComputeOp(Operation):
    """``out[axis] = body`` where body may be a top-level Reduce over ``reduce_axis``."""

    def __init__(self, name, axis, body: Expr, dtype: str, tag: str = "", attrs=None):
        self.name = name
        self.axis: Tuple[IterVar, ...] = tuple(axis)
        self.body = body
        self.dtype = dtype
        self.shape = tuple(iv.dom.extent for iv in self.axis)
        self.reduce_axis: Tuple[IterVar, ...] = tuple(body.axes) if isinstance(body, Reduce) else ()
        self.tag = tag
        self.attrs = dict(attrs or {})
        self._output = Tensor(self)

    @property
    def input_tensors(self):
        seen = []
        for n in walk(self.body):
            if isinstance(n, TensorRead) and all(n.tensor is not t for t in seen):
                seen.append(n.tensor)
        return tuple(seen)

    def __repr__(self):
        return f"compute({self.name}, shape={self.shape}, dtype={self.dtype})"


class Tensor:
    """The output of an operation; ``T[i, j]`` reads it inside a compute body."""

    def __init__(self, op: Operation):
        self.op = op

    @property
    def name(self):
        return self.op.name

    @property
    def shape(self):
        return self.op.shape

    @property
    def dtype(self):
        return self.op.dtype

    @property
    def ndim(self):
        return len(self.op.shape)

    def __call__(self, *indices):
        """``T(i, j)``: TVM's other spelling of ``T[i, j]``."""
        return self[indices]

    def __getitem__(self, indices):
        if not isinstance(indices, tuple):
            indices = (indices,)
        if len(indices) < self.ndim and all(not isinstance(x, slice) for x in indices):
            return TensorSlice(self, tuple(indices))       # T[i][j], as TVM reads it
        if len(indices) != self.ndim:
            raise LoopcError(
                f"tensor {self.name} has {self.ndim} dimensions {self.shape}, "
                f"but was indexed with {len(indices)} indices")
        idx = []
        for x in indices:
            e = as_expr(x)
            if e.dtype not in ("int32", "int64"):
                raise LoopcError(f"index of {self.name} must be an integer expression, got {e.dtype}")
            idx.append(e)
        return TensorRead(self, tuple(idx))

    def __repr__(self):
        return f"Tensor({self.name}, shape={self.shape}, dtype={self.dtype})"

    __hash__ = object.__hash__


class TensorSlice(ExprOp):
    """``T[i]`` of a tensor of more dimensions: index it further (``T[i][j]``) to read an element;
    used as a value, a LoopcError says so."""

    def __init__(self, tensor, indices):
        self.tensor, self.indices = tensor, indices

    def __getitem__(self, more):
        more = more if isinstance(more, tuple) else (more,)
        return self.tensor[self.indices + more]

    def _as_expr(self):
        raise LoopcError(f"{self.tensor.name} has {self.tensor.ndim} dimensions {self.tensor.shape} but was "
                         f"indexed with {len(self.indices)}: index it further (T[i][j]) or all at once (T[i, j])")

    __hash__ = object.__hash__
