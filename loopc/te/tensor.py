"""Tensors, operations and iteration variables of the tensor-expression DSL."""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Tuple

from ..errors import LoopcError
from .expr import Expr, ExprOp, Reduce, TensorRead, Var, as_expr, bits, is_int, values_of, walk


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

    @property
    def data_dependent(self) -> bool:
        """Whether the axis's start or extent reads a tensor (a sparse row's
        ``te.reduce_axis((0, W_indptr[j + 1] - W_indptr[j]))``): its loop runs a number of
        iterations known only at run time, per point of the loops its bounds read."""
        return self.dom is not None and (reads_data(self.dom.min) or reads_data(self.dom.extent))

    def __repr__(self):
        ext = "" if self.dom is None else f", extent={self.dom.extent}"
        return f"IterVar({self.var.name}{ext}, {self.kind.value})"


def reads_data(x) -> bool:
    """Whether the extent or index ``x`` (an int or an Expr) reads a tensor."""
    return isinstance(x, Expr) and any(isinstance(n, TensorRead) for n in walk(x))


class Operation:
    """Base of PlaceholderOp and ComputeOp; an op produces ``num_outputs`` tensors (one, except
    a compute whose lambda returns several values)."""
    name: str

    @property
    def num_outputs(self) -> int:
        return len(self._outputs)

    @property
    def dtypes(self) -> Tuple[str, ...]:
        return tuple(t.dtype for t in self._outputs)

    def output(self, index: int = 0) -> "Tensor":
        if not (isinstance(index, int) and -self.num_outputs <= index < self.num_outputs):
            raise LoopcError(f"operation {self.name} has {self.num_outputs} output"
                             f"{'s' if self.num_outputs > 1 else ''}; output({index!r}) is none of them")
        return self._outputs[index]

    @property
    def outputs(self) -> Tuple["Tensor", ...]:
        return tuple(self._outputs)

    @property
    def input_tensors(self) -> Tuple["Tensor", ...]:
        return ()


class PlaceholderOp(Operation):
    def __init__(self, name: str, shape: Tuple[int, ...], dtype: str):
        self.name = name
        self.shape = shape
        self.dtype = dtype
        self._outputs = (Tensor(self),)

    def __repr__(self):
        return f"placeholder({self.name}, shape={self.shape}, dtype={self.dtype})"


class ComputeOp(Operation):
    """``out[axis] = body`` where body may be a top-level Reduce over ``reduce_axis``.

    A multi-output op (TVM's ``te.compute`` whose lambda returns a tuple) has a ValueTuple body,
    or a Reduce whose source is a ValueTuple (a multi-value reducer such as argmax): output
    ``j`` is value ``j``, each a tensor of the op's shape with its own dtype and buffer."""

    def __init__(self, name, axis, body: Expr, dtype: str, tag: str = "", attrs=None):
        self.name = name
        self.axis: Tuple[IterVar, ...] = tuple(axis)
        self.body = body
        self.shape = tuple(iv.dom.extent for iv in self.axis)
        self.reduce_axis: Tuple[IterVar, ...] = tuple(body.axes) if isinstance(body, Reduce) else ()
        self.tag = tag
        self.attrs = dict(attrs or {})
        values = values_of(body.source if isinstance(body, Reduce) else body)
        if len(values) == 1:
            self._outputs = (Tensor(self, 0, dtype),)
        else:
            self._outputs = tuple(Tensor(self, j, v.dtype) for j, v in enumerate(values))
        self.dtype = self._outputs[0].dtype

    @property
    def input_tensors(self):
        seen = []
        bounds = [b for iv in self.reduce_axis if iv.data_dependent for b in (iv.dom.min, iv.dom.extent)
                  if isinstance(b, Expr)]
        for n in (n for e in [self.body] + bounds for n in walk(e)):
            if isinstance(n, TensorRead) and all(n.tensor is not t for t in seen):
                seen.append(n.tensor)
        return tuple(seen)

    def __repr__(self):
        return f"compute({self.name}, shape={self.shape}, dtype={self.dtype})"


class Tensor:
    """Output ``value_index`` of an operation; ``T[i, j]`` reads it inside a compute body. The
    outputs of a multi-output op are named ``name.v0``, ``name.v1`` ... (TVM's names)."""

    def __init__(self, op: Operation, value_index: int = 0, dtype: str | None = None):
        self.op = op
        self.value_index = value_index
        self._dtype = dtype

    @property
    def name(self):
        return self.op.name if self.op.num_outputs == 1 else f"{self.op.name}.v{self.value_index}"

    @property
    def shape(self):
        return self.op.shape

    @property
    def dtype(self):
        return self.op.dtype if self._dtype is None else self._dtype

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
            if is_int(e.dtype) and e.dtype not in ("int32", "int64"):     # an int8/uint8/... index:
                e = e.astype("int64" if bits(e.dtype) >= 32 else "int32")   # as a wide int, value kept
            if e.dtype not in ("int32", "int64"):
                raise LoopcError(f"index of {self.name} must be an integer expression, got {e.dtype}")
            idx.append(e)
        return TensorRead(self, tuple(idx))

    def __repr__(self):
        return f"Tensor({self.name}, shape={self.shape}, dtype={self.dtype})"

    __hash__ = object.__hash__


class TensorList(list):
    """The outputs of a multi-output ``te.compute``: a list, as TVM returns; indexing the list
    with an axis (instead of one of its tensors) is a LoopcError that says so."""

    def __getitem__(self, index):
        if isinstance(index, (int, slice)) and not isinstance(index, bool):
            return super().__getitem__(index)
        names = ", ".join(t.name for t in self)
        raise LoopcError(f"this is the list of the {len(self)} outputs ({names}) of a multi-output te.compute, "
                         f"indexed with {index!r}; unpack it (T0, T1 = te.compute(...)) and index one tensor")


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
