"""A dataflow graph of operators: the chapter's "forward graph" (and, after autodiff, the joint one).

    g = Graph("tiny")
    x = g.input("x", (8, 1, 6, 6))
    w = g.param("conv.weight", (2, 1, 3, 3))
    y = g.relu(g.conv2d(x, w, padding=1, scope="conv"), scope="conv")
    print(g)            # %conv/conv2d = conv2d(%x, %conv.weight, padding=1) : float32[8, 2, 6, 6] ...

Values are typed edges (static shape and dtype); nodes are op applications from
``loopc.nn.ops.OPS``, added in a topological order. Every node carries a ``scope`` (the layer
it belongs to, for the profiler and the memory estimate) and a ``phase`` ("forward" or
"backward"). Shapes are inferred from the op's te declaration when a node is added.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from loopc import te
from loopc.errors import LoopcError

from .ops import OPS


@dataclass(eq=False)
class Value:
    """An edge: ``kind`` is "input" (fed each step), "param" (a weight) or "activation"."""
    name: str
    shape: tuple
    dtype: str = "float32"
    kind: str = "activation"
    producer: "Node | None" = None

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * (4 if self.dtype in ("float32", "int32") else 8)

    def __repr__(self):
        return f"%{self.name}: {self.dtype}{list(self.shape)}"


@dataclass(eq=False)
class Node:
    op: str
    inputs: tuple
    attrs: dict
    output: Value
    scope: str
    phase: str = "forward"

    @property
    def name(self) -> str:
        return self.output.name

    @property
    def label(self) -> str:
        """The profiler's name of this node's kernel: ``op[scope]``."""
        return f"{self.op}[{self.scope}]" if self.scope else self.op

    def __str__(self):
        args = ", ".join(f"%{v.name}" for v in self.inputs)
        attrs = "".join(f", {k}={_fmt(v)}" for k, v in self.attrs.items())
        return f"%{self.output.name} = {self.op}({args}{attrs}) : {self.output.dtype}{list(self.output.shape)}"


def _fmt(v):
    if isinstance(v, tuple) and len(set(v)) == 1 and len(v) == 2:
        return str(v[0])
    return str(v)


@dataclass(eq=False)
class Graph:
    name: str = "graph"
    nodes: list = field(default_factory=list)
    inputs: list = field(default_factory=list)
    params: list = field(default_factory=list)
    outputs: list = field(default_factory=list)

    def __post_init__(self):
        self._names = {}

    # ------------------------------------------------------------------ values
    def _unique(self, name: str) -> str:
        n = self._names.get(name, 0)
        self._names[name] = n + 1
        return name if n == 0 else f"{name}.{n}"

    def input(self, name: str, shape, dtype: str = "float32") -> Value:
        """A value fed at each run (images, labels); the first axis is the batch."""
        v = Value(self._unique(name), tuple(shape), dtype, "input")
        self.inputs.append(v)
        return v

    def param(self, name: str, shape, dtype: str = "float32") -> Value:
        """A trainable weight, bound to an array of the ParamStore by ``name``."""
        if name in self._names:
            raise LoopcError(f"graph {self.name}: a value named {name!r} exists already")
        v = Value(self._unique(name), tuple(shape), dtype, "param")
        self.params.append(v)
        return v

    def add_node(self, op: str, inputs, scope: str = "", phase: str = "forward", **attrs) -> Value:
        """Append ``op(*inputs, **attrs)``; the output's shape comes from the op's te declaration."""
        if op not in OPS:
            raise LoopcError(f"unknown op {op!r}; loopc.nn knows: {', '.join(sorted(OPS))}")
        inputs = tuple(inputs)
        shape, dtype = infer(op, inputs, attrs)
        base = f"{scope}/{op}" if scope else op
        out = Value(self._unique(base), shape, dtype, "activation")
        node = Node(op, inputs, dict(attrs), out, scope, phase)
        out.producer = node
        self.nodes.append(node)
        return out

    # ------------------------------------------------------------------ sugar
    def conv2d(self, x, w, stride=1, padding=0, dilation=1, scope=""):
        return self.add_node("conv2d", (x, w), scope, stride=_pair(stride), padding=_pair(padding),
                             dilation=_pair(dilation))

    def bias_add(self, x, b, axis=1, scope=""):
        return self.add_node("bias_add", (x, b), scope, axis=axis)

    def relu(self, x, scope=""):
        return self.add_node("relu", (x,), scope)

    def max_pool2d(self, x, kernel, stride=None, padding=0, scope=""):
        return self.add_node("max_pool2d", (x,), scope, kernel=_pair(kernel),
                             stride=_pair(kernel if stride is None else stride), padding=_pair(padding))

    def dense(self, x, w, scope=""):
        return self.add_node("dense", (x, w), scope)

    def reshape(self, x, shape, scope=""):
        return self.add_node("reshape", (x,), scope, shape=tuple(shape))

    def flatten(self, x, scope=""):
        """(N, ...) -> (N, prod(...)): a view of the same buffer."""
        return self.reshape(x, (x.shape[0], math.prod(x.shape[1:])), scope)

    def log_softmax(self, x, axis=-1, scope=""):
        return self.add_node("log_softmax", (x,), scope, axis=axis)

    def add(self, a, b, scope=""):
        return self.add_node("add", (a, b), scope)

    def nll_loss(self, logp, labels, scope=""):
        return self.add_node("nll_loss", (logp, labels), scope)

    # ------------------------------------------------------------------ queries
    def values(self):
        """Every value: inputs, params, then node outputs in order."""
        return [*self.inputs, *self.params, *(n.output for n in self.nodes)]

    def value(self, name: str) -> Value:
        for v in self.values():
            if v.name == name:
                return v
        raise KeyError(f"graph {self.name} has no value %{name}")

    def consumers(self) -> dict:
        """value -> the nodes that read it."""
        out = {v: [] for v in self.values()}
        for n in self.nodes:
            for v in n.inputs:
                out[v].append(n)
        return out

    def needed_for(self, outputs) -> list:
        """The nodes that ``outputs`` depend on, in graph order."""
        need, stack = set(), list(outputs)
        while stack:
            v = stack.pop()
            n = v.producer
            if n is not None and n not in need:
                need.add(n)
                stack.extend(n.inputs)
        return [n for n in self.nodes if n in need]

    def __str__(self):
        lines = [f"graph {self.name}("
                 + ", ".join(repr(v) for v in [*self.inputs, *self.params]) + "):"]
        phase = None
        for n in self.nodes:
            if n.phase != phase:
                phase = n.phase
                lines.append(f"  # {phase}")
            lines.append(f"  {n}")
        if self.outputs:
            lines.append("  return " + ", ".join(f"%{v.name}" for v in self.outputs))
        return "\n".join(lines)


def _pair(v):
    if isinstance(v, int):
        return (v, v)
    return tuple(int(x) for x in v)


def _view_shape(op, inputs, attrs):
    (x,) = inputs
    shape = tuple(attrs["shape"])
    if math.prod(shape) != math.prod(x.shape):
        raise LoopcError(f"reshape of {x!r} to {shape}: the sizes differ")
    return shape, x.dtype


def infer(op: str, inputs, attrs) -> tuple:
    """(shape, dtype) of ``op`` applied to values ``inputs``: from the te declaration itself."""
    opdef = OPS[op]
    if opdef.view:
        return _view_shape(op, inputs, attrs)
    phs = [te.placeholder(v.shape, v.dtype, name=f"in{i}") for i, v in enumerate(inputs)]
    out = opdef.compute(*phs, **attrs)
    return tuple(out.shape), out.dtype
