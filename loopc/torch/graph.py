"""An ATen FX graph run on loopc kernels, with PyTorch running what loopc lacks.

    gm = compile_graph(gm, options)        # the graph, its supported regions replaced by loopc

1. **Capability**: a node is supported when ``aten.LOWERINGS`` has its operator, its check passes,
   and every tensor it reads and writes is a static-shape CPU tensor of a dtype loopc has.
2. **Partition**: torch.fx's ``CapabilityBasedPartitioner`` groups supported nodes into
   submodules; unsupported nodes stay in the outer graph and run in PyTorch, in place.
3. **Kernels**: each submodule becomes a ``LoopcRegion`` — its nodes grouped into kernels:
   an anchor (conv, matmul, pooling, a reduction, softmax) with the pointwise nodes that consume
   it (bias, batch norm, activation, residual add), or a chain of pointwise nodes. Views run in
   PyTorch on the same memory. Each kernel is compiled once per structure and shapes (a
   ``KernelCache``) and called on the tensors' memory: inputs by pointer, outputs allocated by
   torch.
"""
from __future__ import annotations

import logging
import operator
import time
from collections import Counter
from dataclasses import dataclass, field

import torch
import torch.fx as fx
from torch.fx.passes.infra.partitioner import CapabilityBasedPartitioner
from torch.fx.passes.operator_support import OperatorSupportBase

import loopc
from loopc.runtime import profiling, threads
from loopc.schedule import post_order_ops

from . import aten as A
from .cache import KERNELS, KernelStore

log = logging.getLogger("loopc.torch")
aten = torch.ops.aten


@dataclass
class Report:
    """What a compile ran where: ``loopc_nodes`` (ATen calls computed by loopc kernels),
    ``fallback`` (op -> nodes PyTorch ran), ``reasons`` (op -> why), ``kernels`` (built)."""
    graphs: int = 0
    loopc_nodes: int = 0
    kernels: int = 0
    fallback: Counter = field(default_factory=Counter)
    reasons: dict = field(default_factory=dict)
    compile_seconds: float = 0.0
    #: the te outputs of every kernel compiled (the tuner's workloads come from these)
    outputs: list = field(default_factory=list, repr=False)

    @property
    def unexpected_fallback(self) -> Counter:
        """The fallbacks other than those by design (``BY_DESIGN``: dropout draws its mask from
        PyTorch's random generator, as eager does)."""
        return Counter({op: n for op, n in self.fallback.items() if op not in BY_DESIGN})

    def __str__(self):
        lines = [f"{self.graphs} graphs: {self.loopc_nodes} ATen nodes ran on loopc in {self.kernels} kernels, "
                 f"{sum(self.fallback.values())} fell back to PyTorch"]
        for op, n in self.fallback.most_common():
            lines.append(f"  {op} x{n}: {self.reasons.get(op, 'no loopc lowering')}")
        return "\n".join(lines)


#: ops PyTorch runs on purpose, and why
BY_DESIGN = {"native_dropout.default": "the mask comes from PyTorch's random generator, as in eager"}


def _op_name(node) -> str:
    t = node.target
    return getattr(t, "__name__", str(t)) if node.op == "call_function" else node.op


def _static_tensor(v) -> bool:
    return (isinstance(v, torch.Tensor) and v.device.type == "cpu" and v.dtype in A.DTYPES
            and all(isinstance(d, int) for d in v.shape) and v.numel() > 0)


def _tensors(v):
    if isinstance(v, torch.Tensor):
        return [v]
    if isinstance(v, (list, tuple)):
        return [t for x in v for t in _tensors(x)]
    return []


#: pointwise ops loopc also runs on int64 tensors
_INT_ARITH = {aten.add.Tensor, aten.sub.Tensor, aten.mul.Tensor, aten.add.Scalar, aten.sub.Scalar, aten.mul.Scalar,
              aten.bitwise_and.Tensor, aten.bitwise_or.Tensor, aten.bitwise_xor.Tensor, aten.bitwise_not.default,
              aten.bitwise_and.Scalar, aten.bitwise_or.Scalar, aten.bitwise_xor.Scalar}


def why_unsupported(node) -> str | None:
    """None when loopc can run ``node``; otherwise the reason."""
    if node.op != "call_function":
        return "not an ATen call"
    if node.target is operator.getitem:
        src = node.args[0]
        return None if isinstance(src, fx.Node) and why_unsupported(src) is None else "item of a PyTorch op"
    lowering = A.LOWERINGS.get(node.target)
    if lowering is None:
        return "no loopc lowering"
    vals = _tensors(node.meta.get("val"))
    for a in node.all_input_nodes:
        vals += _tensors(a.meta.get("val"))
    if any(isinstance(v, torch.Tensor) and v.numel() == 0 for v in vals):
        return "a zero-size tensor"
    if not vals or not all(_static_tensor(v) for v in vals):
        return "dtype, device or dynamic shape loopc lacks"
    if node.target in _INT_ARITH and all(v.dtype == torch.int64 for v in vals):
        return None                      # e.g. batch norm's num_batches_tracked + 1
    if lowering.kind != "view":
        outs = _tensors(node.meta.get("val"))
        if any(v.dtype not in (torch.float32, torch.bool) for v in outs) and node.target not in (
                aten.max_pool2d_with_indices.default, aten.nll_loss_forward.default):
            return "non-float result"
        ins = [a.meta["val"] for a in node.all_input_nodes]
        if lowering.kind == "pointwise" and any(v.dtype not in (torch.float32, torch.bool) for v in ins):
            return "non-float operands"
        if node.target is aten._to_copy.default and ins[0].dtype != node.meta["val"].dtype:
            return "a dtype conversion"
    if lowering.check is not None:
        return lowering.check(node)
    return None


class _Support(OperatorSupportBase):
    def __init__(self, report: Report):
        super().__init__()
        self.report = report

    def is_node_supported(self, submodules, node) -> bool:
        if node.op != "call_function":
            return False
        reason = why_unsupported(node)
        if reason is not None and node.target is not operator.getitem:
            name = _op_name(node)
            self.report.fallback[name] += 1
            self.report.reasons.setdefault(name, BY_DESIGN.get(name, reason))
        return reason is None


def compile_graph(gm: fx.GraphModule, report: Report | None = None, kernels: KernelStore | None = None,
                  variant=None):
    """``gm`` with every loopc-supported region replaced by a ``LoopcRegion``. ``variant`` joins
    the kernels' cache keys (the tuning records in effect: other records, other kernels)."""
    t0 = time.perf_counter()
    report = report if report is not None else Report()
    kernels = KERNELS if kernels is None else kernels
    report.graphs += 1
    partitioner = CapabilityBasedPartitioner(gm, _Support(report), allows_single_node_partition=True)
    fused = partitioner.fuse_partitions(partitioner.propose_partitions())
    for node in fused.graph.nodes:
        if node.op == "call_module" and node.target.startswith("fused_"):
            region = LoopcRegion(getattr(fused, node.target), kernels, report, variant)
            setattr(fused, node.target, region)
            report.loopc_nodes += region.loopc_nodes
            report.kernels += len(region.kernels)
    fused.recompile()
    report.compile_seconds += time.perf_counter() - t0
    return fused


# --------------------------------------------------------------------------- a region's kernels

#: views whose result is the same memory in the same row-major order (of a contiguous input)
RESHAPES = {aten.view.default, aten._unsafe_view.default, aten.unsqueeze.default, aten.squeeze.dim,
            aten.squeeze.dims, aten.squeeze.default, aten.reshape.default, aten.alias.default, aten.detach.default}


class _Group:
    """Nodes becoming one kernel: te values, the slots it reads, its signature (the cache key)."""

    def __init__(self):
        self.values = {}          # fx node -> TV
        self.inputs = []          # (slot, shape, dtype) read, in placeholder order
        self.phs = {}             # (slot, shape, dtype) -> TV placeholder
        self.nodes = []
        self.signature = []
        self.outputs = []         # fx nodes whose values the kernel writes
        self.last = None

    def input(self, key) -> A.TV:
        """The placeholder of input ``key`` = (slot, shape, torch dtype): a slot read through a
        reshape is the same memory under another shape, another placeholder."""
        if key not in self.phs:
            _, shape, dtype = key
            ph = loopc.te.placeholder(A.te_shape(shape), A.DTYPES[dtype], name=f"in{len(self.inputs)}")
            self.phs[key] = A.TV(ph, shape)
            self.inputs.append(key)
        return self.phs[key]


class LoopcRegion(torch.nn.Module):
    """A partition of supported nodes run as loopc kernels (and PyTorch views) over slots."""

    def __init__(self, sub: fx.GraphModule, kernels: KernelStore, report: Report, variant=None):
        super().__init__()
        self.kernels_cache = kernels
        self.report = report
        self.variant = variant
        self.steps = []
        self.kernels = []
        self.loopc_nodes = 0
        self._slots = {}
        self._computed = set()    # nodes whose values a loopc kernel writes (fresh, contiguous memory)
        self._reshape_of = {}     # a reshape-like view -> the node whose memory it is
        self._n = 0
        self._open = []
        self._plan(sub)

    # ---------------------------------------------------------------- planning
    def _new_slot(self, node):
        self._slots[node] = self._n
        self._n += 1
        return self._slots[node]

    def _plan(self, sub):
        self._input_slots = []
        for node in sub.graph.nodes:
            if node.op == "placeholder":
                self._input_slots.append(self._new_slot(node))
            elif node.op == "output":
                for g in list(self._open):
                    self._close(g)
                self._outputs = node.args[0]
                self._finish()
            elif node.target is operator.getitem:
                self._slots[node] = self._slots[(node.args[0], node.args[1])]
                self._computed.add(node)          # an item a loopc kernel wrote
            else:
                self._lower(node)

    def _finish(self):
        """Drop the views nothing reads (a kernel reads a reshape's base instead)."""
        out_slots = set()
        fx.map_arg(self._outputs, lambda n: out_slots.add(self._slots[n]))
        while True:
            used = set(out_slots)
            for st in self.steps:
                used.update(st.reads())
            dead = [st for st in self.steps if isinstance(st, _ViewStep) and st.out not in used]
            if not dead:
                break
            self.steps = [st for st in self.steps if st not in dead]

    def _slot(self, node):
        """The slot of ``node``'s value (closing the kernel that computes it)."""
        for g in self._open:
            if node in g.values:
                self._close(g)
                break
        return self._slots[node]

    def _input_key(self, a):
        """(slot, shape, dtype) a kernel reads for node ``a``: a reshape-like view (view,
        unsqueeze, squeeze, detach ...) is read as its base's memory, with no view made."""
        val = a.meta["val"]
        return self._slot(self._reshape_of.get(a, a)), tuple(val.shape), val.dtype

    def _arg(self, g: _Group, a):
        """An argument of a node joining ``g``: TVs for nodes, lists mapped, constants as they are."""
        if isinstance(a, fx.Node):
            if a in g.values:
                return g.values[a]
            return g.input(self._input_key(a))
        if isinstance(a, (list, tuple)):
            return type(a)(self._arg(g, x) for x in a)
        return a

    def _sig(self, g, a):
        if isinstance(a, fx.Node):
            if a in g.values:
                return ("n", g.nodes.index(a))
            return ("in", g.inputs.index(self._input_key(a)))
        if isinstance(a, (list, tuple)):
            return tuple(self._sig(g, x) for x in a)
        if isinstance(a, dict):
            return tuple(sorted((k, self._sig(g, v)) for k, v in a.items()))
        if isinstance(a, (torch.dtype, torch.device, torch.layout, torch.memory_format)):
            return str(a)
        return a

    def _lower(self, node):
        lowering = A.LOWERINGS[node.target]
        if lowering.kind == "view":
            src = node.args[0]
            if node.target in RESHAPES:
                self._reshape_of[node] = self._reshape_of.get(src, src)
            args = fx.map_arg(node.args, lambda n: ("slot", self._slot(n)))
            kwargs = fx.map_arg(node.kwargs, lambda n: ("slot", self._slot(n)))
            self.steps.append(_ViewStep(node.target, args, kwargs, self._new_slot(node)))
            return
        self.loopc_nodes += 1
        if self._needless_copy(node):
            self._slots[node] = self._slot(node.args[0])     # a copy nobody could tell from the original
            return
        if lowering.kind == "pointwise":
            g = self._fusion_target(node)
            if g is None:
                g = _Group()
                self._open.append(g)
            self._join(g, node, lowering.build)
            return
        g = _Group()
        build = lowering.build
        if node.target in (aten.mm.default, aten.addmm.default):
            build, node_args = self._gemm(node)
        else:
            node_args = node.args
        node_kwargs = {} if node.target in (aten.mm.default, aten.addmm.default) else node.kwargs  # in node_args
        args = [self._arg(g, a) for a in node_args]
        kwargs = {k: self._arg(g, v) for k, v in node_kwargs.items()}
        g.signature.append((str(node.target), self._sig(g, list(node_args)), self._sig(g, dict(node_kwargs))))
        out = build(*args, **kwargs)
        g.nodes.append(node)
        if lowering.kind == "multi":
            self._close_multi(g, node, out)
        else:
            g.values[node] = out
            g.last = node
            self._computed.add(node)
            self._open.append(g)

    def _needless_copy(self, node) -> bool:
        """A clone (or same-dtype _to_copy) that needs no copy: of a loopc kernel's fresh result
        nothing else reads, or read only by loopc kernels of this region (kernels never write
        their inputs, and the graph is functional: nothing writes either tensor)."""
        if node.target not in (aten.clone.default, aten._to_copy.default):
            return False
        src = node.args[0]
        if node.kwargs.get("memory_format") not in (None, torch.contiguous_format, torch.preserve_format):
            return False
        if src in self._computed and len(src.users) == 1:
            return True

        def kernels_only(n):     # read by loopc kernels, directly or through reshape-like views
            return all(u.op == "call_function" and u.target is not operator.getitem
                       and (A.LOWERINGS[u.target].kind != "view" or (u.target in RESHAPES and kernels_only(u)))
                       for u in n.users)
        return kernels_only(node)

    def _fusion_target(self, node):
        """The open kernel whose last value ``node`` reads as its only reader, or None."""
        for a in node.all_input_nodes:
            for g in self._open:
                if g.last is a and len(a.users) == 1:
                    return g
        return None

    def _join(self, g, node, build):
        args = [self._arg(g, a) for a in node.args]
        kwargs = {k: self._arg(g, v) for k, v in node.kwargs.items()}
        g.signature.append((str(node.target), self._sig(g, list(node.args)), self._sig(g, dict(node.kwargs))))
        g.values[node] = build(*args, **kwargs)
        g.nodes.append(node)
        g.last = node
        self._computed.add(node)

    def _gemm(self, node):
        """mm / addmm by their operands: x @ t(w) is ``dense`` (w read row by row), t(p) @ q is
        dense_backward_weight's nest, anything else ``matmul``."""
        def source_of_t(n):
            if isinstance(n, fx.Node) and n.op == "call_function" and (
                    n.target is aten.t.default or (n.target is aten.transpose.int and sorted(
                        d % 2 for d in n.args[1:3]) == [0, 1]) or (n.target is aten.permute.default and
                                                                   list(n.args[1]) == [1, 0])):
                src = n.args[0]
                if src.meta["val"].dim() == 2:
                    return src
            return None
        if node.target is aten.addmm.default:
            bias, a, b = node.args[:3]
            beta, alpha = node.kwargs.get("beta", 1), node.kwargs.get("alpha", 1)
        else:
            (a, b), bias, beta, alpha = node.args[:2], None, 1, 1
        wt, at = source_of_t(b), source_of_t(a)
        if wt is not None:
            return (lambda x, w, c, be, al: A.dense(x, w, c, be, al)), (a, wt, bias, beta, alpha)
        if at is not None and bias is None:
            return (lambda p, q: A.matmul_tn(p, q)), (at, b)
        return (lambda x, y, c, be, al: A.matmul(x, y, c, be, al)), (a, b, bias, beta, alpha)

    def _close_multi(self, g, node, outs):
        """A node returning a tuple: one kernel writing the items its getitem readers use."""
        used = {u.args[1] for u in node.users if u.target is operator.getitem}
        if node.target is aten.max_pool2d_with_indices.default:
            values, outs = outs, [outs, None]
            if 1 in used:
                outs[1] = A.max_pool2d_indices(self._arg(g, node.args[0]), values, *node.args[1:], **node.kwargs)
        outputs = [((node, i), out, node.meta["val"][i]) for i, out in enumerate(outs)
                   if out is not None and i in used]
        if node.target is aten.convolution_backward.default:
            # dX, dW and db have templates of their own: one kernel each (and one kernel holding
            # both convolution templates trips an LLVM dominance error on LeNet's shapes)
            base = list(g.signature)
            for out in outputs:
                g.outputs, g.signature = [out], base + [("item", out[0][1])]
                self._compile(g)
            return
        g.outputs = outputs
        self._compile(g)

    def _close(self, g):
        self._open.remove(g)
        g.outputs = [(g.last, g.values[g.last], g.last.meta["val"])]
        self._compile(g)

    def _compile(self, g):
        outs = [tv for _, tv, _ in g.outputs]
        read = set(post_order_ops([o.t.op for o in outs]))
        inputs = [k for k in g.inputs if g.phs[k].t.op in read]     # e.g. pooling's indices: unread
        phs = [g.phs[k] for k in inputs]
        # every placeholder the signature numbers (read or not: an unread one's shape still
        # shapes the result, e.g. nll_loss_backward's log-probabilities), and every output's shape
        specs = tuple((g.phs[k].shape, g.phs[k].dtype) for k in g.inputs)
        key = ("torch", self.variant, tuple(g.signature), specs, tuple(k in inputs for k in g.inputs),
               tuple((o.shape, o.dtype) for o in outs))
        label = "+".join(_op_name(n) for n in g.nodes)
        self.report.outputs.append([o.t for o in outs])

        def declare():
            import warnings
            import loopc.schedules as lib
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", lib.NoTunedRecordWarning)
                s = lib.schedule([o.t for o in outs])
            return s, [p.t for p in phs] + [o.t for o in outs], label.replace("+", "_").replace(".", "_")[:60]
        kernel = self.kernels_cache.get(key, declare)
        self.kernels.append(kernel)
        out_slots = [self._new_slot(k) for k, _, _ in g.outputs]
        out_specs = [(tuple(v.shape), v.dtype) for _, _, v in g.outputs]
        self.steps.append(_KernelStep(kernel, [k[0] for k in inputs], out_slots, out_specs, label))

    # ---------------------------------------------------------------- running
    def forward(self, *inputs):
        env = [None] * self._n
        for s, t in zip(self._input_slots, inputs):
            env[s] = t
        threads.adapt()
        for step in self.steps:
            step(env)
        return fx.map_arg(self._outputs, lambda n: env[self._slots[n]])


class _ViewStep:
    """A PyTorch view (or detach) of a slot: same memory, no kernel."""

    def __init__(self, target, args, kwargs, out):
        self.target, self.args, self.kwargs, self.out = target, args, kwargs, out

    def _resolve(self, env, a):
        if isinstance(a, tuple) and len(a) == 2 and a[0] == "slot":
            return env[a[1]]
        if isinstance(a, (list, tuple)):
            return type(a)(self._resolve(env, x) for x in a)
        return a

    def reads(self):
        found = []

        def visit(a):
            if isinstance(a, tuple) and len(a) == 2 and a[0] == "slot":
                found.append(a[1])
            elif isinstance(a, (list, tuple)):
                for x in a:
                    visit(x)
        visit(self.args)
        visit(list(self.kwargs.values()))
        return found

    def __call__(self, env):
        env[self.out] = self.target(*self._resolve(env, self.args),
                                    **{k: self._resolve(env, v) for k, v in self.kwargs.items()})


class _KernelStep:
    """One loopc kernel: reads slots by pointer (a contiguous copy only for strided views), writes
    new tensors allocated by torch."""

    def __init__(self, kernel, ins, outs, out_specs, label):
        self.cfunc = kernel.cfunc
        self.kernel = kernel
        self.ins, self.outs, self.out_specs, self.label = ins, outs, out_specs, label

    def reads(self):
        return self.ins

    def __call__(self, env):
        args = []
        for s in self.ins:
            t = env[s]
            if not t.is_contiguous():
                t = t.contiguous()
            args.append(t)
        outs = [torch.empty(shape, dtype=dtype) for shape, dtype in self.out_specs]
        ptrs = [t.data_ptr() for t in args] + [t.data_ptr() for t in outs]
        if profiling.recording():
            start = time.perf_counter()
            code = self.cfunc(*ptrs)
            profiling.record(self.label, start, time.perf_counter() - start, 0)
        else:
            code = self.cfunc(*ptrs)
        if code:
            raise self.kernel.fault_error(code)
        for s, t in zip(self.outs, outs):
            env[s] = t


def describe_region(region) -> str:
    lines = []
    for st in region.steps:
        if isinstance(st, _KernelStep):
            lines.append(f"kernel {st.label}: {st.ins} -> {st.outs}")
        else:
            lines.append(f"view {st.target}: {st.args} -> {st.out}")
    return "\n".join(lines)
