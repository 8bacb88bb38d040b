"""``te.extern``: a stage computed by a function, TVM's classic extern op.

    C = te.extern((M, N), [A, B],
                  lambda ins, outs: te.call_packed("my.matmul", ins[0], ins[1], outs[0]), name="C")
    D = te.compute((M, N), lambda i, j: C[i, j] + bias[j])     # an extern feeds computes as usual

lowers to one statement in place of a loop nest (the function fills C):

    call_packed("my.matmul", A, B, C)

``te.call_packed(name, ...)`` calls a Python function registered with ``loopc.register_func``
(it gets numpy views of the buffers: inputs read-only, outputs writable);
``te.call_extern(dtype, symbol, ...)`` calls a C function by its symbol (buffers are passed as
pointers to their first element; numbers as C values of their dtype).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Tuple

from ..errors import LoopcError
from .expr import DTYPES, Const, Expr, ExprOp, TensorRead, as_expr, check_dtype
from .tensor import Operation, Tensor


@dataclass(frozen=True, eq=False, repr=False)
class TensorArg(TensorRead):
    """A whole tensor passed to an extern call (before flattening): a read of all of it, so the
    schedule sees the extern stage as one of the tensor's readers."""
    writes: bool = False

    def __repr__(self):
        return f"TensorArg({self.tensor.name})"


@dataclass(frozen=True, eq=False, repr=False)
class BufferArg(Expr):
    """A whole buffer passed to an extern call (after lowering): a pointer to its first element."""
    buffer: Any
    writes: bool = False

    @property
    def dtype(self):
        return self.buffer.dtype

    def __repr__(self):
        return f"BufferArg({self.buffer.name})"


@dataclass(frozen=True, eq=False, repr=False)
class ExternCall(Expr):
    """``name(*args)``: ``kind`` "packed" (a registered Python function) or "extern" (a C symbol
    returning ``dtype``). Its operands are TensorArg/BufferArg nodes and scalar expressions."""
    kind: str
    name: str
    args: Tuple[Expr, ...]
    dtype: str = "int32"

    @property
    def operands(self):
        return self.args

    def with_operands(self, args):
        return ExternCall(self.kind, self.name, tuple(args), self.dtype)

    def __repr__(self):
        return f"ExternCall({self.kind}, {self.name!r}, {len(self.args)} args)"


class ExternBuffer:
    """What ``fcompute(ins, outs)`` receives for each input and output: TVM's Buffer, enough of it
    to pass to a call (``buf``, ``buf.data`` or ``buf.access_ptr(mode)``) and to read its
    ``shape``, ``dtype`` and ``name``."""

    def __init__(self, tensor: Tensor, writes: bool, name: str):
        self.tensor, self.writes, self.name = tensor, writes, name

    @property
    def shape(self):
        return self.tensor.shape

    @property
    def dtype(self):
        return self.tensor.dtype

    @property
    def data(self):
        return self

    def access_ptr(self, access_mask="rw", *_, **__):
        return self

    def __repr__(self):
        return f"ExternBuffer({self.name}, shape={self.shape}, dtype={self.dtype})"


class ExternOp(Operation):
    """The op of ``te.extern``: no loops; ``body`` is the ExternCall that computes the output."""

    #: what a primitive on this stage is told (see ``Stage._check_attached_ok``)
    opaque = ("an extern stage is computed by one function call over whole buffers: it has no loops to "
              "split, reorder or annotate; schedule the compute stages around it")

    def __init__(self, name, shape, dtype, inputs, tag="", attrs=None):
        self.name, self.shape, self.dtype = name, shape, dtype
        self.inputs = tuple(inputs)
        self.tag, self.attrs = tag, dict(attrs or {})
        self.root_iter_vars = ()
        self.body = None
        self._outputs = (Tensor(self),)

    @property
    def input_tensors(self):
        return self.inputs

    def __repr__(self):
        return f"extern({self.name}, shape={self.shape}, dtype={self.dtype})"


def _call_arg(x, fname) -> Expr:
    if isinstance(x, ExternBuffer):
        return TensorArg(x.tensor, (), x.writes)
    if isinstance(x, Tensor):
        raise LoopcError(f"{fname}: pass the buffers fcompute receives (ins[k], outs[k]), not tensor "
                         f"'{x.name}'")
    try:
        e = as_expr(x)
    except LoopcError:
        raise LoopcError(f"{fname}: an argument must be a buffer (ins[k], outs[k]) or a number, got "
                         f"{type(x).__name__}") from None
    if not isinstance(e, Const):
        raise LoopcError(f"{fname}: an argument must be a buffer (ins[k], outs[k]) or a number, got {e}")
    return e


def call_packed(name: str, *args) -> ExternCall:
    """TVM's ``te.call_packed``: call the function registered as ``name``
    (``loopc.register_func``) with numpy views of the buffer arguments and the numbers."""
    if not isinstance(name, str) or not name:
        raise LoopcError(f"te.call_packed: the first argument is the registered function's name, got {name!r}")
    return ExternCall("packed", name, tuple(_call_arg(a, f"call_packed({name!r})") for a in args))


def call_extern(dtype, func_name=None, *args) -> ExternCall:
    """TVM's ``call_extern(dtype, func_name, *args)``: call the C function ``func_name`` (from the
    process, libm/libc, or a library loaded with ``loopc.load_library``). Buffers are passed as
    pointers, numbers as C values of their dtype; the result (of ``dtype``) is dropped. Also
    ``call_extern(func_name, *args)`` (loopc's shorthand, an int32 result)."""
    if dtype not in DTYPES:                   # loopc's shorthand: no dtype
        if func_name is not None:
            args = (func_name,) + args
        dtype, func_name = "int32", dtype
    if not isinstance(func_name, str) or not func_name:
        raise LoopcError(f"te.call_extern: give the C function's name, got {func_name!r}")
    return ExternCall("extern", func_name, tuple(_call_arg(a, f"call_extern({func_name!r})") for a in args),
                      check_dtype(dtype))


def _shape(shape):
    if isinstance(shape, int) or (isinstance(shape, (tuple, list))
                                  and all(isinstance(d, (int, ExprOp)) for d in shape)):
        return shape
    if isinstance(shape, (tuple, list)) and len(shape) == 1:       # TVM's list of one output shape
        return shape[0]
    raise LoopcError(f"te.extern: shape must be one output's shape such as (M, N), got {shape!r} (several "
                     "outputs are not supported yet: make one extern per output)")


def extern(shape, inputs, fcompute, name: str = "extern", dtype=None, in_buffers=None, out_buffers=None,
           tag: str = "", attrs=None) -> Tensor:
    """TVM's ``te.extern``: a stage of ``shape`` computed by the call ``fcompute(ins, outs)``
    returns (``te.call_packed`` or ``te.call_extern``). ``ins`` and ``outs`` are the buffers of
    ``inputs`` and of the output; ``dtype`` defaults to the first input's (TVM), else float32.
    ``in_buffers``/``out_buffers`` (TVM's custom buffer layouts) are not supported."""
    from . import _shape as check_shape
    if in_buffers is not None or out_buffers is not None:
        raise LoopcError("te.extern: in_buffers/out_buffers (custom buffer layouts) are not supported; "
                         "loopc passes every tensor as a dense row-major buffer")
    inputs = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
    for t in inputs:
        if not isinstance(t, Tensor):
            raise LoopcError(f"te.extern {name}: inputs must be tensors, got {type(t).__name__}")
    if isinstance(dtype, (list, tuple)):
        dtype = dtype[0] if len(dtype) == 1 else dtype
    dtype = check_dtype(dtype if dtype is not None else (inputs[0].dtype if inputs else "float32"))
    op = ExternOp(name, check_shape(_shape(shape), f"extern {name}"), dtype, inputs, tag, attrs)
    ins = [ExternBuffer(t, False, t.name) for t in inputs]
    outs = [ExternBuffer(op.output(0), True, name)]
    call = fcompute(ins, outs)
    if not isinstance(call, ExternCall):
        raise LoopcError(f"te.extern {name}: fcompute must return te.call_packed(...) or te.call_extern(...), "
                         f"got {type(call).__name__}")
    op.body = call
    return op.output(0)


__all__ = ["ExternOp", "ExternCall", "ExternBuffer", "TensorArg", "BufferArg", "extern", "call_packed",
           "call_extern"]
