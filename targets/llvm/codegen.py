"""Loop IR -> LLVM IR with llvmlite's IR builder.

- ``vectorized`` loops of constant extent V are emitted once with V-lane values. An integer
  that moves by a constant per lane is kept as a ``Ramp(base, stride)``; a load or store at a
  ramp of stride 1 is one vector access, stride 0 a scalar access (broadcast on use), anything
  else a gather/scatter. A guard whose condition differs per lane becomes a mask, and every
  access under it is a masked load/store.
- ``parallel`` loops are outlined into a function ``body(data, tid, nthreads)`` that runs a
  static chunk; it is launched through libgomp's ``GOMP_parallel`` (or run once, serially,
  without libgomp). Nested parallel loops run serially inside the outer one.
- ``unrolled`` loops were already expanded by lowering.
- Intermediate buffers are 64-byte aligned: stack when small, ``aligned_alloc`` otherwise.

This module holds the statements (loops, guards) and the entry function; the rest of
:class:`FunctionCodegen` comes from one module per job:

    lltypes      LLVM types and constants per dtype
    vector       Ramp and the lane helpers (splat, broadcast, materialize)
    expressions  values, with numpy's integer semantics
    memory       buffers, loads and stores (vector, strided, gathered, masked, checked)
    faults       the fault cells a kernel reports bounds and allocation failures in
    parallel     outlined parallel loops and libgomp's launch
    calls        extern stages' calls (te.call_extern, te.call_packed)
"""
from __future__ import annotations

import llvmlite.ir as ir

from loopc.arith import bound_of
from loopc.arith.extents import size_range
from loopc.errors import BuildError
from loopc.ir.stmt import Allocate, Evaluate, For, ForKind, IfThenElse, LoweredFunc, SeqStmt, Store
from loopc.te import expr as E

from .calls import ExternCalls
from .expressions import Expressions
from .faults import FaultRecording
from .lltypes import F16, F32, F64, I32, I64, PTR
from .memory import MemoryAccess
from .parallel import ParallelLoops
from .vector import Ramp, VectorLanes, is_vec


class FunctionCodegen(Expressions, MemoryAccess, ParallelLoops, FaultRecording, VectorLanes, ExternCalls):
    """Emits one LoweredFunc (and its outlined parallel bodies) into an ir.Module."""

    def __init__(self, func: LoweredFunc, module: ir.Module, use_openmp: bool, bounds_check: bool = False,
                 packed=None, native_half: bool = False):
        self.func = func
        self.packed = packed     # loopc.runtime.packed.PackedCalls: the callbacks of te.call_packed sites
        self.module = module
        self.use_openmp = use_openmp
        self.bounds_check = bounds_check
        self.native_half = native_half     # the CPU converts half <-> float itself (see conversions.py)
        self.fault_buffers = []  # buffer names by the id a fault records
        self.stack_bytes = 0     # bytes of intermediates on the current function's stack
        self.env = {}          # Var -> LLVM value or Ramp
        self.ranges = {}       # Var -> (lo, hi) of each enclosing loop with constant bounds
        self._fits = {}        # id(expr) -> (expr, whether the ranges prove it fits its dtype)
        self.buffers = {}      # Buffer -> ptr
        self.lanes = None      # vector width inside a vectorized loop
        self.mask = None       # <lanes x i1> under a per-lane guard
        self.in_parallel = False
        self.n_outlined = 0
        self.heap = []

    # ------------------------------------------------------------------ declarations

    def declare(self, name, ret, args):
        if name in self.module.globals:
            return self.module.globals[name]
        return ir.Function(self.module, ir.FunctionType(ret, args), name)

    def intrinsic(self, base, ty, extra_types=(), ret=None, args=None):
        suffix = self._mangle(ty)
        name = f"llvm.{base}.{suffix}" + "".join("." + self._mangle(t) for t in extra_types)
        return self.declare(name, ret or ty, args if args is not None else [ty])

    @staticmethod
    def _mangle(ty):
        if isinstance(ty, ir.VectorType):
            return f"v{ty.count}{FunctionCodegen._mangle(ty.element)}"
        if isinstance(ty, ir.PointerType):
            return "p0"
        if isinstance(ty, ir.IntType):
            return f"i{ty.width}"
        return {F16: "f16", F32: "f32", F64: "f64"}[ty]

    # ------------------------------------------------------------------ entry

    def emit(self):
        """The entry function returns 0, or the kind of the first fault (FAULT_*) the run met."""
        sizes = self.func.size_vars      # symbolic sizes: i64 values after the buffer pointers
        fnty = ir.FunctionType(I32, [PTR] * len(self.func.params) + [I64] * len(sizes))
        fn = ir.Function(self.module, fnty, self.func.name)
        for arg, buf in zip(fn.args, self.func.params):
            arg.name = buf.name.replace(".", "_")
            arg.add_attribute("noalias")
            self.buffers[buf] = arg
        for arg, var in zip(fn.args[len(self.func.params):], sizes):
            arg.name = var.name.replace(".", "_")
            self.env[var] = arg
            self.ranges[var] = size_range(var)      # what the runtime lets through: index math proofs
        self.fn = fn
        self.builder = ir.IRBuilder(fn.append_basic_block("entry"))
        self.entry_block = fn.entry_basic_block
        self.stmt(self.func.body)
        if not self.fault_buffers:       # nothing in this kernel can fault
            self.builder.ret(I32(0))
            return fn
        status = self.fault_global("loopc.fault", I32)
        code = self.builder.load(status, typ=I32)
        self.builder.store(I32(0), status)
        self.builder.ret(code)
        return fn

    # ------------------------------------------------------------------ statements

    def stmt(self, s):
        if isinstance(s, SeqStmt):
            for x in s.stmts:
                self.stmt(x)
        elif isinstance(s, For):
            self.loop(s)
        elif isinstance(s, IfThenElse):
            self.if_then_else(s)
        elif isinstance(s, Store):
            self.store(s)
        elif isinstance(s, Allocate):
            self.allocate(s)
        elif isinstance(s, Evaluate):
            self.evaluate(s)
        else:
            raise BuildError(f"the LLVM target cannot emit {type(s).__name__}")

    def loop(self, s: For):
        saved = self.ranges.get(s.var)
        if isinstance(s.min, E.Const) and isinstance(s.extent, E.Const):
            self.ranges[s.var] = (s.min.value, s.min.value + s.extent.value - 1)
        elif isinstance(s.min, E.Const) and (reach := bound_of(s.extent, self.ranges)) is not None:
            # a symbolic extent: the loop stays below the largest value the sizes allow it
            self.ranges[s.var] = (s.min.value, s.min.value + max(reach[1], 1) - 1)
        else:
            self.ranges.pop(s.var, None)
        self._fits = {}
        try:
            self._loop(s)
        finally:
            if saved is None:
                self.ranges.pop(s.var, None)
            else:
                self.ranges[s.var] = saved
            self._fits = {}

    def _loop(self, s: For):
        if s.kind is ForKind.THREAD_BINDING:
            raise BuildError(f"loop {s.var.name} is bound to {s.thread_tag}, a GPU thread axis; "
                             "build this schedule with target='cuda', or remove the bind for the CPU")
        if s.kind is ForKind.VECTORIZED and self.lanes is None:
            if not isinstance(s.extent, E.Const):
                raise BuildError(f"vectorized loop {s.var.name} needs a constant extent")
            return self.vector_loop(s)
        if s.kind is ForKind.PARALLEL and not self.in_parallel and self.lanes is None:
            return self.parallel_loop(s)
        lo = self.scalar(s.min)
        hi = self.builder.add(lo, self.scalar(s.extent), flags=["nsw"])
        self.serial_loop(s.var, lo, hi, lambda: self.stmt(s.body))

    def serial_loop(self, var, lo, hi, body_fn, name=None):
        b = self.builder
        name = name or var.name.replace(".", "_")
        pre = b.block
        header = b.append_basic_block(f"{name}.header")
        body = b.append_basic_block(f"{name}.body")
        exit_ = b.append_basic_block(f"{name}.exit")
        b.branch(header)
        b.position_at_end(header)
        iv = b.phi(lo.type, name=name)
        iv.add_incoming(lo, pre)
        b.cbranch(b.icmp_signed("<", iv, hi), body, exit_)
        b.position_at_end(body)
        saved = self.env.get(var)
        self.env[var] = iv
        body_fn()
        nxt = b.add(iv, ir.Constant(lo.type, 1), flags=["nsw"])
        iv.add_incoming(nxt, b.block)
        b.branch(header)
        b.position_at_end(exit_)
        if saved is None:
            self.env.pop(var, None)
        else:
            self.env[var] = saved

    def vector_loop(self, s: For):
        lanes = s.extent.value
        self.lanes = lanes
        self.env[s.var] = Ramp(self.scalar(s.min), 1, lanes, s.var.dtype)
        try:
            self.stmt(s.body)
        finally:
            self.lanes = None
            self.env.pop(s.var, None)

    def if_then_else(self, s: IfThenElse):
        cond = self.value(s.cond)
        if is_vec(cond):
            cond = self.materialize(cond)
            saved = self.mask
            self.mask = cond if saved is None else self.builder.and_(saved, cond)
            self.stmt(s.then_case)
            if s.else_case is not None:
                inv = self.builder.not_(cond)
                self.mask = inv if saved is None else self.builder.and_(saved, inv)
                self.stmt(s.else_case)
            self.mask = saved
            return
        b = self.builder
        if s.else_case is None:
            with b.if_then(cond):
                self.stmt(s.then_case)
        else:
            with b.if_else(cond) as (then, other):
                with then:
                    self.stmt(s.then_case)
                with other:
                    self.stmt(s.else_case)


def emit(func: LoweredFunc, triple: str, data_layout: str, use_openmp: bool, bounds_check: bool = False,
         packed=None, native_half: bool = False):
    """(the ir.Module, the buffer names a fault record refers to by number). ``packed``
    (a PackedCalls) makes the callbacks of ``te.call_packed`` sites."""
    module = ir.Module(name=func.name)
    module.triple = triple
    module.data_layout = data_layout
    gen = FunctionCodegen(func, module, use_openmp, bounds_check, packed, native_half)
    gen.emit()
    return module, tuple(gen.fault_buffers)


def emit_module(func: LoweredFunc, triple: str, data_layout: str, use_openmp: bool) -> ir.Module:
    return emit(func, triple, data_layout, use_openmp)[0]

