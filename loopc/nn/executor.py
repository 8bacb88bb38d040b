"""Executing a graph: one compiled kernel per node (or fused chain of nodes), buffers allocated once.

    store = ParamStore({"fc.weight": (10, 84), ...})       # every weight in one flat arena
    ex = Executor(graph, outputs=[loss], store=store, grads=grads)
    ex.run(x=images, labels=labels)                         # no allocation per run
    ex[loss]                                                # a view of the output buffer

The executor is the chapter's fourth stage ("the runtime schedules the kernels"): it walks the
graph's nodes in their (topological) order and calls each node's compiled kernel on
preallocated, 64-byte aligned numpy buffers, through argument pointers resolved once. A
``reshape`` runs no kernel: its output is a view of its input's buffer. Parameters and their
gradients are views into the ParamStore's two flat arenas, so an optimizer updates every
weight with one kernel call. Kernels come from a ``KernelCache`` (``kernels=``; the shared one
by default), so the executor of the last partial batch only compiles the kernels whose shapes
differ. Where the kernels find their buffers — the host's, or a GPU twin of each for
``target="cuda"`` — is the placement's business (``loopc.nn.placement``).

``Executor.memory()`` answers the chapter's sizing question per layer (``loopc.nn.memory``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from loopc.errors import LoopcError
from loopc.runtime import profiling, threads

from .kernels import SHARED, Kernel, bind, freeze
from .memory import MemoryReport, memory_report
from .ops import OPS
from .params import ParamStore, aligned_empty, aligned_zeros
from .placement import placement_for

#: ops that fuse into the kernel of their producer (its only consumer, reading it as input 0):
#: elementwise, so the schedule inlines them into one loop nest over the producer's result
FUSABLE = {"bias_add", "relu", "relu_backward"}


@dataclass
class Step:
    nodes: list           # the graph nodes this kernel computes (several when fused)
    kernel: Kernel
    call: object          # a no-argument callable running the kernel on bound buffers
    label: str
    flop: int

    @property
    def node(self):
        """The node whose result the kernel writes (the last of a fused chain)."""
        return self.nodes[-1]


class Executor:
    """Runs the nodes ``outputs`` need, in graph order, on buffers allocated once.

    ``store`` binds the graph's parameters by name; ``grads`` ({param value: gradient value})
    makes those gradients land in ``store.grads``. Everything else gets its own buffer.

    With ``fuse`` (the default), an elementwise node (``FUSABLE``: bias_add, relu,
    relu_backward) whose input 0 has no other reader joins its producer's kernel — conv2d,
    bias_add and relu become one kernel ``conv2d+bias_add+relu[conv1]`` whose intermediate
    results never reach memory outside it. Executor outputs are never fused away.
    ``kernels`` is the KernelCache that compiles (and keeps) the kernels.
    """

    def __init__(self, graph, outputs, store: ParamStore, grads=None, target: str = "llvm", fuse: bool = True,
                 kernels=None):
        self.graph = graph
        self.outputs = list(outputs)
        self.store = store
        self.target = target
        self.kernels = SHARED if kernels is None else kernels
        self.nodes = graph.needed_for(self.outputs)
        self.buffers = {}
        for p in graph.params:
            if p.name not in store.shapes:
                raise LoopcError(f"the ParamStore has no parameter {p.name!r}")
            if store.shapes[p.name] != p.shape:
                raise LoopcError(f"parameter {p.name}: the graph says {p.shape}, the store {store.shapes[p.name]}")
            self.buffers[p] = store.arrays[p.name]
        for p, g in (grads or {}).items():
            if g in self.buffers:
                raise LoopcError(f"the gradient of {p.name} is another bound value (%{g.name})")
            self.buffers[g] = store.grads[p.name]
        for v in graph.inputs:
            self.buffers[v] = aligned_zeros(v.shape, v.dtype)
        self._inputs = {v.name: v for v in graph.inputs}
        self.placement = placement_for(target)(self, grads or {})
        self._index_checks = []            # (input value, classes): labels that index a tensor
        self.steps = []
        self._subsets = {}
        t0 = time.perf_counter()
        for group in self._groups(fuse):
            self._plan(group)
        self.compile_seconds = time.perf_counter() - t0

    def _groups(self, fuse):
        """The nodes in kernels: lists of nodes, each run where its last node stands."""
        readers = {}
        for n in self.nodes:
            for v in n.inputs:
                readers[v] = readers.get(v, 0) + 1
        keep = set(self.outputs) | set(self.buffers)     # outputs and bound values stay in memory
        groups, group_of = [], {}
        for n in self.nodes:
            src = n.inputs[0] if n.inputs else None
            g = group_of.get(src.producer) if src is not None and src.producer is not None else None
            if (fuse and n.op in FUSABLE and g is not None and g[-1] is src.producer and readers[src] == 1
                    and src not in keep and not OPS[src.producer.op].view):
                g.append(n)
            else:
                g = [n]
                groups.append(g)
            group_of[n] = g
        position = {n: i for i, n in enumerate(self.nodes)}
        return sorted(groups, key=lambda g: position[g[-1]])

    def _plan(self, group):
        last = group[-1]
        if OPS[last.op].view:
            self.buffers[last.output] = self.buffers[last.inputs[0]].reshape(last.output.shape)
            self.placement.alias(last.output, last.inputs[0])
            return
        if last.output not in self.buffers:
            self.buffers[last.output] = aligned_empty(last.output.shape, last.output.dtype)
            self.placement.add(last.output)
        ext, chain = [], []
        for pos, n in enumerate(group):
            args = []
            for j, v in enumerate(n.inputs):
                if pos > 0 and j == 0:
                    args.append(-1)                        # the previous op's result, inside the kernel
                    continue
                if v not in ext:
                    ext.append(v)
                args.append(ext.index(v))
            chain.append((n.op, freeze(n.attrs), tuple(args)))
        kernel = self.kernels.chain(tuple(chain), [(v.shape, v.dtype) for v in ext], self.target)
        call = bind(kernel.module, self.placement.arrays([ext[i] for i in kernel.reads] + [last.output]))
        for n in group:
            if n.op == "nll_loss":
                self._index_checks.append((n.inputs[1], n.inputs[0].shape[1]))
        flop = sum(OPS[n.op].flop([v.shape for v in n.inputs], n.output.shape, n.attrs) for n in group)
        label = "+".join(n.op for n in group) + (f"[{group[0].scope}]" if group[0].scope else "")
        self.steps.append(Step(list(group), kernel, call, label, flop))

    # ------------------------------------------------------------------ running
    def feed(self, **inputs) -> None:
        """Copy arrays into the input buffers (``x=``, ``labels=``: the graph's input names)."""
        for name, arr in inputs.items():
            v = self._inputs.get(name)
            if v is None:
                raise LoopcError(f"graph {self.graph.name} has no input {name!r}; inputs: {', '.join(self._inputs)}")
            arr = np.asarray(arr)
            if arr.shape != v.shape:
                raise LoopcError(f"input {name} has shape {arr.shape}; this executor was built for {v.shape}")
            np.copyto(self.buffers[v], arr, casting="same_kind")
        self.check_indices()

    def check_indices(self) -> None:
        """Labels index the log-probabilities: out-of-range ones would read outside a buffer."""
        for v, classes in self._index_checks:
            b = self.buffers[v]
            if b.size and (b.min() < 0 or b.max() >= classes):
                raise LoopcError(f"input {v.name} holds a class index outside [0, {classes}): "
                                 f"min {b.min()}, max {b.max()}")

    def run(self, outputs=None, **inputs) -> None:
        """Feed ``inputs`` (if any), then run every kernel once — or, with ``outputs`` (values
        among the executor's outputs), only the kernels those need (e.g. the forward pass).
        A kernel's nonzero fault code (a failed allocation, ...) raises its error."""
        if inputs:
            self.feed(**inputs)
        steps = self.steps if outputs is None else self._steps_for(tuple(outputs))
        placement = self.placement
        placement.before_run()
        threads.adapt()
        if profiling.recording():
            sync = placement.synchronize
            for st in steps:
                t = time.perf_counter()
                code = st.call()
                if code:
                    raise st.kernel.module.fault_error(code)
                sync()
                profiling.record(st.label, t, time.perf_counter() - t, st.flop)
        else:
            for st in steps:
                code = st.call()
                if code:             # a CPU kernel's fault (a failed allocation): raise, never ignore
                    raise st.kernel.module.fault_error(code)
        placement.after_run(self.outputs if outputs is None else outputs)

    def _steps_for(self, outputs):
        steps = self._subsets.get(outputs)
        if steps is None:
            need = set(self.graph.needed_for(outputs))
            steps = self._subsets[outputs] = [st for st in self.steps if any(n in need for n in st.nodes)]
        return steps

    def __getitem__(self, value):
        """The buffer of a value (or of the value with this name), with its current contents."""
        if isinstance(value, str):
            value = self.graph.value(value)
        self.placement.read(value)
        return self.buffers[value]

    # ------------------------------------------------------------------ reports
    def memory(self) -> MemoryReport:
        """Bytes per layer (scope): weights, activations, gradients, kernel workspace."""
        return memory_report(self.graph, self.nodes, self.buffers, self.steps)

    def summary(self) -> str:
        lines = [f"{len(self.steps)} kernels ({sum(1 for n in self.nodes if OPS[n.op].view)} views), "
                 f"compiled or fetched in {self.compile_seconds:.2f} s"]
        for st in self.steps:
            lines.append(f"  {st.label:<34s} {st.kernel.module.name:<24s} {st.flop / 1e6:9.3f} MFLOP")
        return "\n".join(lines)
