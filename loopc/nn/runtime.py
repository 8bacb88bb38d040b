"""Executing a graph: kernels compiled once per (op, shapes, attributes), buffers allocated once.

    store = ParamStore({"fc.weight": (10, 84), ...})       # every weight in one flat arena
    ex = Executor(graph, outputs=[loss], store=store, grads=grads)
    ex.run(x=images, labels=labels)                         # no allocation per run
    ex[loss]                                                # a view of the output buffer

On the GPU (``target="cuda"``) every buffer has a device twin: ``run`` copies the inputs and
parameters over, launches the kernels on the device arrays, and copies the requested outputs
back; ``ex[value]`` of another value copies it back first. The optimizer stays on the CPU.

The executor is the chapter's fourth stage ("the runtime schedules the kernels"): it walks the
graph's nodes in their (topological) order and calls each node's compiled kernel on
preallocated, 64-byte aligned numpy buffers, through argument pointers resolved once. A
``reshape`` runs no kernel: its output is a view of its input's buffer. Parameters and their
gradients are views into two flat arenas, so an optimizer updates every weight with one
kernel call. Kernels live in a process-wide cache keyed on op, input shapes and dtypes,
attributes and target, so the executor of the last partial batch only compiles the kernels
whose shapes differ, and nothing is compiled twice.

``Executor.memory()`` answers the chapter's sizing question per layer: weights, activations,
gradients and kernel workspace (scratch buffers the generated code allocates, e.g. the
im2col patch matrix).
"""
from __future__ import annotations

import functools
import math
import time
import warnings
from dataclasses import dataclass

import numpy as np

import loopc
from loopc.errors import LoopcError
from loopc.runtime import profiling, threads

from .ops import OPS

ALIGN = 64          # bytes: one cache line, one AVX-512 vector


def aligned_empty(shape, dtype="float32") -> np.ndarray:
    """An uninitialised C-contiguous array whose data starts on a 64-byte boundary."""
    dtype = np.dtype(dtype)
    n = max(1, math.prod(shape)) * dtype.itemsize
    raw = np.empty(n + ALIGN, dtype=np.uint8)
    off = (-raw.ctypes.data) % ALIGN
    return raw[off:off + n].view(dtype)[:math.prod(shape)].reshape(shape)


def aligned_zeros(shape, dtype="float32") -> np.ndarray:
    a = aligned_empty(shape, dtype)
    a[...] = 0
    return a


# ---------------------------------------------------------------------------- parameters


class ParamStore:
    """Named weights as views of one flat float32 arena, with a gradient arena of the same layout.

    Every parameter starts on a 64-byte boundary. ``flat`` / ``grad_flat`` are the arenas
    (what optimizers update in one kernel call); ``arrays[name]`` / ``grads[name]`` the views.
    """

    def __init__(self, shapes: dict):
        self.shapes = {k: tuple(v) for k, v in shapes.items()}
        self.offsets = {}
        off = 0
        step = ALIGN // 4
        for name, shape in self.shapes.items():
            self.offsets[name] = off
            off += -(-math.prod(shape) // step) * step
        self.size = off
        self.flat = aligned_zeros((off,))
        self.grad_flat = aligned_zeros((off,))
        self.arrays = {k: self._view(self.flat, k) for k in self.shapes}
        self.grads = {k: self._view(self.grad_flat, k) for k in self.shapes}

    def _view(self, arena, name):
        off = self.offsets[name]
        return arena[off:off + math.prod(self.shapes[name])].reshape(self.shapes[name])

    @property
    def count(self) -> int:
        """Trainable numbers (the arena's padding between parameters not counted)."""
        return sum(math.prod(s) for s in self.shapes.values())

    def __getitem__(self, name):
        return self.arrays[name]

    def __iter__(self):
        return iter(self.shapes)

    def state_dict(self) -> dict:
        return {k: v.copy() for k, v in self.arrays.items()}

    def load_state_dict(self, state: dict) -> None:
        missing = [k for k in self.shapes if k not in state]
        if missing:
            raise LoopcError(f"the saved weights lack {', '.join(missing)}")
        for k, shape in self.shapes.items():
            a = np.asarray(state[k])
            if a.shape != shape:
                raise LoopcError(f"saved weight {k} has shape {a.shape}, the model expects {shape}")
            self.arrays[k][...] = a

    def save(self, path):
        """An .npz file with one array per parameter name (see loopc.nn.weights); returns its path."""
        from .weights import save_weights
        return save_weights(self.state_dict(), path)

    def load(self, path, allow_nonfinite: bool = False) -> None:
        """Weights written by ``save``; a LoopcError for anything else, the weights unchanged."""
        from .weights import read_weights
        self.load_state_dict(read_weights(path, self.shapes, allow_nonfinite))


# ---------------------------------------------------------------------------- kernels

_KERNELS = {}            # (chain, input specs, target) -> Kernel
compile_stats = {"built": 0, "seconds": 0.0, "hits": 0, "untuned": set()}

#: ops that fuse into the kernel of their producer (its only consumer, reading it as input 0):
#: elementwise, so the schedule inlines them into one loop nest over the producer's result
FUSABLE = {"bias_add", "relu", "relu_backward"}


@dataclass
class Kernel:
    """A compiled op (or fused chain of ops): the Module, which of the chain's external inputs it
    reads (in the module's argument order), its workspace."""
    module: object
    reads: tuple          # indices into the external inputs, in the module's argument order
    workspace: int        # bytes of scratch buffers the generated code allocates
    seconds: float        # compile time


def _freeze(v):
    if isinstance(v, dict):
        return tuple(sorted((k, _freeze(x)) for k, x in v.items()))
    if isinstance(v, (list, tuple)):
        return tuple(_freeze(x) for x in v)
    return v


def _workspace(func) -> int:
    from loopc.ir.stmt import Allocate, walk_stmt
    total = 0
    for s in walk_stmt(func.body):
        if isinstance(s, Allocate):
            total += math.prod(s.buffer.shape) * np.dtype(s.buffer.dtype).itemsize
    return total


def compile_op(op: str, in_specs, attrs: dict, target: str = "llvm") -> Kernel:
    """The kernel of ``op`` on inputs ``in_specs`` ((shape, dtype) pairs): cached per process."""
    return compile_chain(((op, _freeze(attrs), tuple(range(len(in_specs)))),), in_specs, target)


def compile_chain(chain, in_specs, target: str = "llvm") -> Kernel:
    """One kernel for a chain of ops: ``chain`` is ``((op, frozen attrs, args), ...)`` where each
    arg is an index into ``in_specs`` (an external input) or -1 (the previous op's result).
    The last op's result is the kernel's output; the others stay inside the kernel (inlined
    where the schedule inlines them). Cached per process on (chain, input specs, target)."""
    key = (tuple(chain), tuple(in_specs), target)
    k = _KERNELS.get(key)
    if k is not None:
        compile_stats["hits"] += 1
        return k
    from loopc import te
    import loopc.schedules as lib
    t0 = time.perf_counter()
    phs = [te.placeholder(shape, dtype, name=f"in{i}") for i, (shape, dtype) in enumerate(in_specs)]
    out = None
    for op, attrs, args in chain:
        out = OPS[op].compute(*[out if i < 0 else phs[i] for i in args], **dict(attrs))
    read = _reads(out, phs)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", lib.NoTunedRecordWarning)
        s = lib.schedule(out, target=target)
    for w in caught:   # one summary line instead of a warning per kernel: see untuned_summary()
        if issubclass(w.category, lib.NoTunedRecordWarning):
            compile_stats["untuned"].add(chain[0][0])
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    name = "_".join(op for op, _, _ in chain)
    module = loopc.build(s, [phs[i] for i in read] + [out], target=target, name=name)
    seconds = time.perf_counter() - t0
    k = Kernel(module, tuple(read), _workspace(module.func), seconds)
    _KERNELS[key] = k
    compile_stats["built"] += 1
    compile_stats["seconds"] += seconds
    return k


def _reads(out, phs):
    """Indices of the placeholders ``out`` reads (a kernel's arguments are only those)."""
    seen, stack, found = set(), [out.op], set()
    while stack:
        op = stack.pop()
        for t in op.input_tensors:
            if t.op in seen:
                continue
            seen.add(t.op)
            found.add(t.op)
            stack.append(t.op)
    return [i for i, p in enumerate(phs) if p.op in found]


def cached_kernels() -> int:
    return len(_KERNELS)


def untuned_summary() -> str:
    """One line naming the ops whose kernels used a default schedule template (no tuned record)."""
    ops = sorted(compile_stats["untuned"])
    if not ops:
        return "every kernel used a tuned schedule record"
    return (f"{len(ops)} ops used loopc.schedules' default templates (no tuned record on this target): "
            f"{', '.join(ops)}")


# ---------------------------------------------------------------------------- executor


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
    """

    def __init__(self, graph, outputs, store: ParamStore, grads=None, target: str = "llvm", fuse: bool = True):
        self.graph = graph
        self.outputs = list(outputs)
        self.store = store
        self.target = target
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
        #: on a GPU target, a device array per buffer (the host buffers are the staging copies)
        self.device = {} if str(target).split()[0] == "cuda" else None
        if self.device is not None:
            from loopc.targets.cuda.module import CUDAModule
            CUDAModule._require_device()     # a clear BuildError, not numba's CudaSupportError
            # inputs and weights: the host's buffers are the originals (feed, the optimizer
            # write them); other values are copied back after a run or when read
            self._host_owned = set(graph.inputs) | set(graph.params)
            self._fresh = set()
            self._device_arenas(grads or {})
            for v, host in self.buffers.items():
                if v not in self.device:
                    self._device_buffer(v, host)
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
            if self.device is not None:
                self.device[last.output] = self.device[last.inputs[0]].reshape(last.output.shape)
            return
        if last.output not in self.buffers:
            self.buffers[last.output] = aligned_empty(last.output.shape, last.output.dtype)
            if self.device is not None:
                self._device_buffer(last.output, self.buffers[last.output])
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
            chain.append((n.op, _freeze(n.attrs), tuple(args)))
        kernel = compile_chain(tuple(chain), [(v.shape, v.dtype) for v in ext], self.target)
        where = self.buffers if self.device is None else self.device
        arrays = [where[ext[i]] for i in kernel.reads] + [where[last.output]]
        kernel.module.check(arrays)          # shapes, dtypes, contiguity, no aliasing: once
        for n in group:
            if n.op == "nll_loss":
                self._index_checks.append((n.inputs[1], n.inputs[0].shape[1]))
        cfunc = getattr(kernel.module, "_cfunc", None)
        if cfunc is not None:   # the checks ran above: call native code on the bound pointers
            call = functools.partial(cfunc, *[a.ctypes.data for a in arrays])
        elif hasattr(kernel.module, "bind"):    # GPU: launch on the bound device arrays
            call = kernel.module.bind(arrays)
        else:                   # a backend without a raw entry point: the checked call
            call = functools.partial(kernel.module, *arrays)
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
        among the executor's outputs), only the kernels those need (e.g. the forward pass)."""
        if inputs:
            self.feed(**inputs)
        steps = self.steps if outputs is None else self._steps_for(tuple(outputs))
        if self.device is not None:
            self._upload()
            self._fresh = set()
        sync = self._synchronize if self.device is not None else (lambda: None)
        threads.adapt()
        if profiling.recording():
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
        if self.device is not None:
            self._download(self.outputs if outputs is None else outputs)

    # ------------------------------------------------------------------ GPU buffers
    def _device_buffer(self, value, host):
        from loopc.targets.cuda import device
        self.device[value] = device.cuda().device_array(host.shape, dtype=host.dtype)

    def _device_arenas(self, grads):
        """Parameters and gradients as views of two device arenas, like the host's: one copy
        moves every weight (or every gradient)."""
        from loopc.targets.cuda import device
        cuda = device.cuda()
        self._arenas = {}
        for host_flat, values in ((self.store.flat, list(self.graph.params)),
                                  (self.store.grad_flat, list(grads.values()))):
            arena = cuda.device_array(host_flat.shape, dtype=host_flat.dtype)
            self._arenas[id(host_flat)] = (arena, host_flat, set(values))
            for v in values:
                host = self.buffers[v]
                start = (host.ctypes.data - host_flat.ctypes.data) // host.itemsize
                self.device[v] = arena[start:start + host.size].reshape(host.shape)

    def _upload(self):
        """Inputs and parameters (the host owns them: feed, the optimizer) go to the GPU."""
        for v in self.graph.inputs:
            self.device[v].copy_to_device(self.buffers[v])
        arena, host, _ = self._arenas[id(self.store.flat)]
        arena.copy_to_device(host)

    def _download(self, values):
        """Copy ``values`` back to their host buffers (gradients as one arena copy)."""
        arena, host, grads = self._arenas[id(self.store.grad_flat)]
        if any(v in grads for v in values):
            arena.copy_to_host(host)
            self._fresh |= grads
        for v in values:
            if v not in grads:
                self.device[v].copy_to_host(self.buffers[v])
                self._fresh.add(v)

    @staticmethod
    def _synchronize():
        from loopc.targets.cuda import device
        device.cuda().synchronize()

    def _steps_for(self, outputs):
        steps = self._subsets.get(outputs)
        if steps is None:
            need = set(self.graph.needed_for(outputs))
            steps = self._subsets[outputs] = [st for st in self.steps if any(n in need for n in st.nodes)]
        return steps

    def __getitem__(self, value):
        """The buffer of a value (or of the value with this name)."""
        if isinstance(value, str):
            value = self.graph.value(value)
        if self.device is not None and value not in self._fresh and value not in self._host_owned:
            self.device[value].copy_to_host(self.buffers[value])      # GPU: the current contents
            self._fresh.add(value)
        return self.buffers[value]

    # ------------------------------------------------------------------ reports
    def memory(self) -> "MemoryReport":
        """Bytes per layer (scope): weights, activations, gradients, kernel workspace."""
        rows = {}

        def row(scope):
            return rows.setdefault(scope or "-", [0, 0, 0, 0])
        for v in self.graph.inputs:
            row("input")[1] += v.nbytes
        for p in self.graph.params:
            row(p.name.rsplit(".", 1)[0])[0] += p.nbytes
        for node in self.nodes:
            if not OPS[node.op].view and node.output in self.buffers:   # fused-away results: workspace
                row(node.scope)[2 if node.phase == "backward" else 1] += node.output.nbytes
        for st in self.steps:
            r = row(st.node.scope)
            r[3] = max(r[3], st.kernel.workspace)
        return MemoryReport([(k, *v) for k, v in rows.items()])

    def summary(self) -> str:
        lines = [f"{len(self.steps)} kernels ({sum(1 for n in self.nodes if OPS[n.op].view)} views), "
                 f"compiled or fetched in {self.compile_seconds:.2f} s"]
        for st in self.steps:
            lines.append(f"  {st.label:<34s} {st.kernel.module.name:<24s} {st.flop / 1e6:9.3f} MFLOP")
        return "\n".join(lines)


@dataclass
class MemoryReport:
    """Per layer: (layer, weights, activations, gradients, workspace) in bytes."""
    rows: list

    @property
    def totals(self):
        w = sum(r[1] for r in self.rows)
        a = sum(r[2] for r in self.rows)
        g = sum(r[3] for r in self.rows)
        ws = max((r[4] for r in self.rows), default=0)   # kernels run one at a time: the largest
        return w, a, g, ws

    @property
    def total(self) -> int:
        return sum(self.totals)

    def table(self) -> str:
        def kib(n):
            return f"{n / 1024:10.1f}"
        lines = [f"{'layer':<10s} {'weights':>10s} {'activations':>12s} {'gradients':>10s} {'workspace':>10s}   (KiB)"]
        for name, w, a, g, ws in self.rows:
            lines.append(f"{name:<10s} {kib(w)} {kib(a):>12s} {kib(g)} {kib(ws)}")
        w, a, g, ws = self.totals
        lines.append(f"{'total':<10s} {kib(w)} {kib(a):>12s} {kib(g)} {kib(ws)}   = {self.total / 2**20:.2f} MiB "
                     "(workspace: the largest kernel's, reused)")
        return "\n".join(lines)


# ---------------------------------------------------------------------------- models


@dataclass
class TrainGraph:
    """A model's joint forward + backward graph for one batch size, and its named values."""
    graph: object
    x: object
    labels: object
    logp: object
    loss: object
    grads: dict


class Model:
    """A network: parameter shapes, an initialiser and a forward function that adds nodes to a
    graph. ``executor(batch)`` compiles (or fetches from the kernel cache) the joint graph for
    that batch size once and keeps it, so a last partial batch gets an executor of its own.

    Subclasses set ``name``, ``input_shape`` (one example), ``classes``, ``param_shapes`` and
    define ``forward(g, x, params) -> log-probabilities`` and ``init(rng)``.
    """
    name = "model"
    input_shape: tuple = ()
    classes: int = 0
    param_shapes: dict = {}

    def __init__(self, seed: int = 0, target: str = "llvm"):
        self.target = target
        self.store = ParamStore(self.param_shapes)
        self.init(np.random.default_rng(seed))
        self._executors = {}

    def init(self, rng) -> None:
        raise NotImplementedError

    def forward(self, g, x, params):
        raise NotImplementedError

    def build_graph(self, batch: int) -> TrainGraph:
        """Forward graph for ``batch`` examples, the nll loss, and the derived backward graph."""
        from . import autodiff
        from .graph import Graph
        g = Graph(self.name)
        x = g.input("x", (batch, *self.input_shape))
        labels = g.input("labels", (batch,), "int32")
        params = {name: g.param(name, shape) for name, shape in self.param_shapes.items()}
        logp = self.forward(g, x, params)
        loss = g.nll_loss(logp, labels, scope="loss")
        grads = autodiff.gradients(g, loss)
        g.outputs = [loss, *grads.values()]
        return TrainGraph(g, x, labels, logp, loss, grads)

    def executor(self, batch: int, train: bool = True) -> Executor:
        """The executor for ``batch`` examples: forward + backward (``train``), or the forward
        pass only (``train=False``: only the forward kernels are compiled; a training executor
        of the same size serves as well)."""
        ex = self._executors.get((batch, True)) or (None if train else self._executors.get((batch, False)))
        if ex is None:
            tg = self.build_graph(batch)
            outputs = [tg.loss, tg.logp, *tg.grads.values()] if train else [tg.logp]
            ex = Executor(tg.graph, outputs, self.store, tg.grads if train else None, self.target)
            ex.train_graph = tg
            self._executors[(batch, train)] = ex
        return ex

    def train_step(self, x, labels) -> float:
        """Forward + backward on one batch (any size): gradients land in ``store.grads``; returns the loss."""
        ex = self.executor(len(x))
        tg = ex.train_graph
        ex.run(x=x, labels=labels)
        return float(ex[tg.loss][0])

    def forward_batch(self, x):
        """The log-probabilities of one batch (a view of the executor's buffer)."""
        ex = self.executor(len(x), train=False)
        tg = ex.train_graph
        ex.run(outputs=(tg.logp,), x=x)
        return ex[tg.logp]

    def log_probs(self, x, batch: int = 64) -> np.ndarray:
        """Log-probabilities (N, classes) of every example of ``x``, ``batch`` at a time. A
        shorter last chunk is padded up to ``batch`` (rows are independent), so inference
        needs no executor beyond the training one."""
        out = np.empty((len(x), self.classes), dtype=np.float32)
        if len(x) == 0:
            return out
        batch = min(batch, len(x))
        ex = self.executor(batch, train=False)
        tg = ex.train_graph
        xbuf = ex[tg.x]
        for i in range(0, len(x), batch):
            chunk = x[i:i + batch]
            xbuf[:len(chunk)] = chunk
            xbuf[len(chunk):] = 0
            ex.run(outputs=(tg.logp,))
            out[i:i + len(chunk)] = ex[tg.logp][:len(chunk)]
        return out

    def predict(self, x, batch: int = 64) -> np.ndarray:
        """Predicted classes of every example of ``x``."""
        return self.log_probs(x, batch).argmax(axis=1)

    def evaluate(self, x, labels, batch: int = 64) -> tuple:
        """(mean negative log-likelihood, accuracy) on ``x``."""
        if len(x) == 0:
            return 0.0, 0.0
        logp = self.log_probs(x, batch)
        labels = np.asarray(labels)
        loss = float(-logp[np.arange(len(labels)), labels].astype(np.float64).mean())
        return loss, float((logp.argmax(axis=1) == labels).mean())

    def save(self, path):
        """Write the weights to ``path`` (``.npz`` appended when missing); returns the path written."""
        return self.store.save(path)

    def load(self, path, allow_nonfinite: bool = False) -> None:
        """Read weights written by ``save``; LoopcError for anything else (see loopc.nn.weights)."""
        self.store.load(path, allow_nonfinite)
