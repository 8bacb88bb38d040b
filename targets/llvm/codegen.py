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
"""
from __future__ import annotations

from dataclasses import dataclass

import llvmlite.ir as ir

from loopc.errors import BuildError
from loopc.ir.stmt import Allocate, For, ForKind, IfThenElse, LoweredFunc, SeqStmt, Store
from loopc.lower.passes import bound_of
from loopc.te import expr as E

I1, I8, I32, I64 = ir.IntType(1), ir.IntType(8), ir.IntType(32), ir.IntType(64)
F32, F64 = ir.FloatType(), ir.DoubleType()
PTR = ir.PointerType()
VOID = ir.VoidType()
# int32 values (every loop variable and index) are computed in 64-bit registers and stored as
# 32 bits: addresses need no sign extension, which keeps LLVM's loop passes (IndVarSimplify,
# LSR) from rewriting every index — half of a convolution's build time — and drops a movslq
# per access from the hot loops. int32 data is widened on load and truncated on store.
LLTYPE = {"float32": F32, "float64": F64, "int32": I64, "int64": I64, "bool": I1}
MEMTYPE = {**LLTYPE, "int32": I32, "bool": I8}
NBYTES = {"float32": 4, "float64": 8, "int32": 4, "int64": 8, "bool": 1}
INT_RANGE = {"int32": (-2**31, 2**31 - 1), "int64": (-2**63, 2**63 - 1)}
FMF = ("contract",)          # let LLVM fuse a*b+c into one fma
STACK_LIMIT = 64 * 1024      # intermediates up to this many bytes live on the stack ...
STACK_BUDGET = 256 * 1024    # ... while a function's stack holds at most this many (threads' stacks are small)
FAULT_BOUNDS, FAULT_ALLOC = 1, 2   # what the entry function returns when a run faults
ALIGN = 64
MAX_SHUFFLED_STRIDE = 4      # strided vector loads up to this stride: a wide load and a shuffle


@dataclass(frozen=True)
class Ramp:
    """Lanes ``base + stride*k`` for k in 0..lanes-1 (base is a scalar LLVM value)."""
    base: ir.Value
    stride: int
    lanes: int
    dtype: str = "int32"     # int32 lanes materialise as <lanes x i32> (a scalar int32 is i64)


def _is_vec(v):
    return isinstance(v, Ramp) or isinstance(v.type, ir.VectorType)


class FunctionCodegen:
    """Emits one LoweredFunc (and its outlined parallel bodies) into an ir.Module."""

    def __init__(self, func: LoweredFunc, module: ir.Module, use_openmp: bool, bounds_check: bool = False):
        self.func = func
        self.module = module
        self.use_openmp = use_openmp
        self.bounds_check = bounds_check
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
        return {F32: "f32", F64: "f64"}[ty]

    # ------------------------------------------------------------------ entry

    def emit(self):
        """The entry function returns 0, or the kind of the first fault (FAULT_*) the run met."""
        fnty = ir.FunctionType(I32, [PTR] * len(self.func.params))
        fn = ir.Function(self.module, fnty, self.func.name)
        for arg, buf in zip(fn.args, self.func.params):
            arg.name = buf.name.replace(".", "_")
            arg.add_attribute("noalias")
            self.buffers[buf] = arg
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

    # ------------------------------------------------------------------ faults

    def fault_global(self, name, ty):
        """A module-level cell that records a fault (what, which buffer, which index)."""
        if name in self.module.globals:
            return self.module.globals[name]
        g = ir.GlobalVariable(self.module, ty, name)
        g.initializer = ir.Constant(ty, 0)
        return g

    def fault_id(self, buf) -> int:
        self.fault_buffers.append(buf.name)
        return len(self.fault_buffers) - 1

    def record_fault(self, kind, buf, index):
        """Note a fault (the first of a run); the entry function returns its kind, the Module raises."""
        b = self.builder
        status = self.fault_global("loopc.fault", I32)
        with b.if_then(b.icmp_signed("==", b.load(status, typ=I32), I32(0))):
            b.store(I32(kind), status)
            b.store(I32(self.fault_id(buf)), self.fault_global("loopc.fault_buffer", I32))
            b.store(index if index.type == I64 else b.sext(index, I64), self.fault_global("loopc.fault_index", I64))

    def alloca_entry(self, ty, size=None, align=None):
        """An alloca in the function's entry block (never inside a loop)."""
        saved = self.builder.block
        self.builder.position_at_start(self.entry_block)
        ptr = self.builder.alloca(ty, size=size)
        if align:
            ptr.align = align
        self.builder.position_at_end(saved)
        return ptr

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
        else:
            raise BuildError(f"the LLVM target cannot emit {type(s).__name__}")

    def allocate(self, s: Allocate):
        buf = s.buffer
        nbytes = buf.size * NBYTES[buf.dtype]
        if nbytes <= STACK_LIMIT and self.stack_bytes + nbytes <= STACK_BUDGET:
            self.stack_bytes += -(-nbytes // ALIGN) * ALIGN
            ptr = self.alloca_entry(MEMTYPE[buf.dtype], size=I64(buf.size), align=ALIGN)
            self.buffers[buf] = ptr
            self.stmt(s.body)
            return
        aligned_alloc = self.declare("aligned_alloc", PTR, [I64, I64])
        free = self.declare("free", VOID, [PTR])
        rounded = -(-nbytes // ALIGN) * ALIGN
        b = self.builder
        ptr = b.call(aligned_alloc, [I64(ALIGN), I64(rounded)])
        self.buffers[buf] = ptr
        with b.if_else(b.icmp_unsigned("==", ptr, ir.Constant(PTR, None))) as (failed, ok):
            with failed:        # out of memory: report it, skip what needed the buffer
                self.record_fault(FAULT_ALLOC, buf, I64(rounded))
            with ok:
                self.stmt(s.body)
                b.call(free, [ptr])

    def loop(self, s: For):
        saved = self.ranges.get(s.var)
        if isinstance(s.min, E.Const) and isinstance(s.extent, E.Const):
            self.ranges[s.var] = (s.min.value, s.min.value + s.extent.value - 1)
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
        if _is_vec(cond):
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

    # ------------------------------------------------------------------ parallel

    def parallel_loop(self, s: For):
        """Outline the loop and launch it on all threads.

        kernel(bufs noalias..., vars..., tid, n) runs a static chunk of the iterations;
        body(data, tid, n) unpacks the captured values from a struct and calls it, so the
        buffers keep their noalias facts inside the outlined code.
        """
        b = self.builder
        captured_vars = list(self.env.items())
        captured_bufs = list(self.buffers.items())
        values = [p for _, p in captured_bufs] + [v for _, v in captured_vars]
        struct_ty = ir.LiteralStructType([v.type for v in values] or [I8])
        data = self.alloca_entry(struct_ty)
        for n, v in enumerate(values):
            b.store(v, b.gep(data, [I32(0), I32(n)]))

        self.n_outlined += 1
        name = f"{self.func.name}.parallel.{self.n_outlined}"
        kernel = ir.Function(self.module, ir.FunctionType(VOID, [v.type for v in values] + [I32, I32]),
                             name + ".kernel")
        kernel.linkage = "internal"
        for arg in kernel.args[:len(captured_bufs)]:
            arg.add_attribute("noalias")
        saved = (self.builder, self.fn, self.entry_block, self.env, self.buffers, self.in_parallel,
                 self.stack_bytes)
        self.stack_bytes = 0
        self.fn = kernel
        self.builder = bb = ir.IRBuilder(kernel.append_basic_block("entry"))
        self.entry_block = kernel.entry_basic_block
        self.in_parallel = True
        args = list(kernel.args)
        self.buffers = {buf: arg for (buf, _), arg in zip(captured_bufs, args)}
        self.env = {var: arg for (var, _), arg in zip(captured_vars, args[len(captured_bufs):])}
        tid, nthreads = args[-2], args[-1]
        # static schedule: chunk = ceil(extent / n); this thread runs [lo + tid*chunk, min(.., lo + extent))
        lo, extent = self.scalar(s.min), self.scalar(s.extent)
        ty = lo.type
        n_ = nthreads if ty == I32 else bb.sext(nthreads, ty)
        t_ = tid if ty == I32 else bb.sext(tid, ty)
        chunk = bb.sdiv(bb.sub(bb.add(extent, n_), ir.Constant(ty, 1)), n_)
        start = bb.add(lo, bb.mul(t_, chunk))
        stop_all = bb.add(lo, extent)
        stop = bb.add(start, chunk)
        stop = bb.select(bb.icmp_signed("<", stop, stop_all), stop, stop_all)
        self.serial_loop(s.var, start, stop, lambda: self.stmt(s.body))
        bb.ret_void()

        body_fn = ir.Function(self.module, ir.FunctionType(VOID, [PTR, I32, I32]), name)
        body_fn.linkage = "internal"
        self.builder = bb = ir.IRBuilder(body_fn.append_basic_block("entry"))
        pdata, tid, nthreads = body_fn.args
        loaded = [bb.load(bb.gep(pdata, [I32(0), I32(n)], source_etype=struct_ty), typ=v.type)
                  for n, v in enumerate(values)]
        bb.call(kernel, loaded + [tid, nthreads])
        bb.ret_void()
        (self.builder, self.fn, self.entry_block, self.env, self.buffers, self.in_parallel,
         self.stack_bytes) = saved

        if self.use_openmp:
            tramp = self._gomp_trampoline(body_fn)
            packed_ty = ir.LiteralStructType([PTR, PTR])
            packed = self.alloca_entry(packed_ty)
            b.store(b.bitcast(data, PTR), b.gep(packed, [I32(0), I32(0)]))
            b.store(b.bitcast(body_fn, PTR), b.gep(packed, [I32(0), I32(1)]))
            gomp = self.declare("GOMP_parallel", VOID, [PTR, PTR, I32, I32])
            b.call(gomp, [b.bitcast(tramp, PTR), b.bitcast(packed, PTR), I32(0), I32(0)])
        else:
            b.call(body_fn, [b.bitcast(data, PTR), I32(0), I32(1)])

    def _gomp_trampoline(self, body_fn):
        """void tramp(ptr packed) { packed.fn(packed.data, omp_get_thread_num(), omp_get_num_threads()) }"""
        name = "loopc.gomp_trampoline"
        if name in self.module.globals:
            return self.module.globals[name]
        fn = ir.Function(self.module, ir.FunctionType(VOID, [PTR]), name)
        fn.linkage = "internal"
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        packed_ty = ir.LiteralStructType([PTR, PTR])
        data = b.load(b.gep(fn.args[0], [I32(0), I32(0)], source_etype=packed_ty), typ=PTR)
        target = b.load(b.gep(fn.args[0], [I32(0), I32(1)], source_etype=packed_ty), typ=PTR)
        tid = b.call(self.declare("omp_get_thread_num", I32, []), [])
        n = b.call(self.declare("omp_get_num_threads", I32, []), [])
        b.call(_FnPtr(target, ir.FunctionType(VOID, [PTR, I32, I32])), [data, tid, n])
        b.ret_void()
        return fn

    # ------------------------------------------------------------------ stores and loads

    def address(self, buf, index):
        """A scalar pointer, or a vector of pointers for a gather/scatter."""
        base = self.buffers[buf]
        ety = MEMTYPE[buf.dtype]
        if not _is_vec(index):
            return self.builder.gep(base, [index], source_etype=ety, inbounds=True)   # index: i64
        vidx = self.materialize(index)
        b = self.builder
        lanes = vidx.type.count
        wide = b.sext(vidx, ir.VectorType(I64, lanes)) if vidx.type.element != I64 else vidx
        scaled = b.mul(wide, self.splat(I64(NBYTES[buf.dtype]), lanes))
        baseint = self.splat(b.ptrtoint(base, I64), lanes)
        return b.inttoptr(b.add(baseint, scaled), ir.VectorType(PTR, lanes))

    def load(self, e: E.Load):
        index = self.value(e.index)
        if self.unproven(e.buffer, e.index):
            return self.checked(e.buffer, index, lambda: self._load(e.buffer, index), MEMTYPE[e.buffer.dtype])
        return self._load(e.buffer, index)

    def unproven(self, buf, index_expr) -> bool:
        """With bounds checks on: whether the loop ranges leave ``index_expr`` possibly outside ``buf``."""
        if not self.bounds_check:
            return False
        bound = bound_of(index_expr, self.ranges)
        return bound is None or bound[0] < 0 or bound[1] >= buf.size

    def checked(self, buf, index, access, ety=None):
        """``access()`` where ``index`` lies inside ``buf``; elsewhere a fault is recorded (and a
        load yields 0). Vector lanes outside are masked off."""
        b = self.builder
        if _is_vec(index):
            vidx = self.materialize(index)
            lanes = vidx.type.count
            ity = vidx.type.element
            ok = b.and_(b.icmp_signed(">=", vidx, ir.Constant(vidx.type, [0] * lanes)),
                        b.icmp_signed("<", vidx, ir.Constant(vidx.type, [buf.size] * lanes)))
            active = self.mask if self.mask is not None else self.splat(I1(1), lanes)
            bad = b.and_(active, b.not_(ok))
            with b.if_then(self.any_lane(bad)):
                lane = b.call(self.intrinsic("cttz", ir.IntType(lanes), args=[ir.IntType(lanes), I1]),
                              [b.bitcast(bad, ir.IntType(lanes)), I1(0)])
                self.record_fault(FAULT_BOUNDS, buf, b.sext(b.extract_element(vidx, lane), I64)
                                  if ity != I64 else b.extract_element(vidx, lane))
            saved = self.mask
            self.mask = b.and_(active, ok)
            try:
                return access()
            finally:
                self.mask = saved
        ok = b.and_(b.icmp_signed(">=", index, ir.Constant(index.type, 0)),
                    b.icmp_signed("<", index, ir.Constant(index.type, buf.size)))
        with b.if_else(ok) as (inside, outside):
            with inside:
                value = access()
                inside_block = b.block
            with outside:
                if self.mask is None:
                    self.record_fault(FAULT_BOUNDS, buf, index)
                else:
                    with b.if_then(self.any_lane(self.mask)):
                        self.record_fault(FAULT_BOUNDS, buf, index)
                outside_block = b.block
        if value is None:
            return None
        phi = b.phi(value.type)
        phi.add_incoming(value, inside_block)
        phi.add_incoming(ir.Constant(value.type, None), outside_block)
        return phi

    def _load(self, buf, index):
        ety = MEMTYPE[buf.dtype]
        b = self.builder
        if not _is_vec(index) and self.mask is None:
            return self.from_memory(b.load(self.address(buf, index), typ=ety, align=NBYTES[buf.dtype]),
                                    buf.dtype)
        lanes = self.lanes
        if not _is_vec(index):
            return self.guarded_scalar_load(buf, index)
        vty = ir.VectorType(ety, lanes)
        mask = self.mask if self.mask is not None else self.splat(I1(1), lanes)
        if isinstance(index, Ramp) and index.stride == 1:
            ptr = b.bitcast(self.address(buf, index.base), vty.as_pointer())
            if self.mask is None:
                v = b.load(ptr, typ=vty, align=NBYTES[buf.dtype])
            else:
                fn = self.intrinsic("masked.load", vty, [PTR], args=[PTR, I32, ir.VectorType(I1, lanes), vty])
                v = b.call(fn, [ptr, I32(NBYTES[buf.dtype]), mask, ir.Constant(vty, None)])
        elif isinstance(index, Ramp) and 2 <= index.stride <= MAX_SHUFFLED_STRIDE and self.mask is None:
            # a small stride: one load of exactly the span the lanes cover (never past the
            # last lane), then a shuffle picks every stride-th element — a gather is slower
            span = (lanes - 1) * index.stride + 1
            wide = ir.VectorType(ety, span)
            ptr = b.bitcast(self.address(buf, index.base), wide.as_pointer())
            v = b.shuffle_vector(b.load(ptr, typ=wide, align=NBYTES[buf.dtype]), ir.Constant(wide, None),
                                 ir.Constant(ir.VectorType(I32, lanes), [k * index.stride for k in range(lanes)]))
        else:
            ptrs = self.address(buf, index)
            fn = self.intrinsic("masked.gather", vty, [ir.VectorType(PTR, lanes)],
                                args=[ir.VectorType(PTR, lanes), I32, ir.VectorType(I1, lanes), vty])
            v = b.call(fn, [ptrs, I32(NBYTES[buf.dtype]), mask, ir.Constant(vty, None)])
        return self.from_memory(v, buf.dtype)

    def from_memory(self, v, dtype):
        """A loaded value in its computation type (bool: i8 -> i1; int32: i32 -> i64)."""
        if dtype == "bool":
            return self.builder.trunc(v, self._like(v, I1))
        if dtype == "int32" and not isinstance(v.type, ir.VectorType):
            return self.builder.sext(v, I64)
        return v

    def to_memory(self, v, dtype):
        """The inverse of :meth:`from_memory`, for a store."""
        if dtype == "bool":
            return self.builder.zext(v, self._like(v, I8))
        if dtype == "int32":
            return self.builder.trunc(v, self._like(v, I32)) if self._element(v) == I64 else v
        return v

    @staticmethod
    def _element(v):
        return v.type.element if isinstance(v.type, ir.VectorType) else v.type

    @staticmethod
    def _like(v, element):
        return ir.VectorType(element, v.type.count) if isinstance(v.type, ir.VectorType) else element

    def any_lane(self, mask):
        lanes = mask.type.count
        return self.builder.icmp_unsigned("!=", self.builder.bitcast(mask, ir.IntType(lanes)),
                                          ir.IntType(lanes)(0))

    def guarded_scalar_load(self, buf, index):
        """A lane-invariant load under a per-lane mask: load once if any lane is active."""
        b = self.builder
        ety = MEMTYPE[buf.dtype]
        with b.if_else(self.any_lane(self.mask)) as (then, other):
            with then:
                v = b.load(self.address(buf, index), typ=ety, align=NBYTES[buf.dtype])
                then_block = b.block
            with other:
                other_block = b.block
        phi = b.phi(ety)
        phi.add_incoming(v, then_block)
        phi.add_incoming(ir.Constant(ety, None), other_block)
        return self.from_memory(phi, buf.dtype)

    def store(self, s: Store):
        index = self.value(s.index)
        value = self.value(s.value)
        if self.unproven(s.buffer, s.index):
            self.checked(s.buffer, index, lambda: self._store(s.buffer, index, value))
        else:
            self._store(s.buffer, index, value)

    def _store(self, buf, index, value):
        b = self.builder
        ety = MEMTYPE[buf.dtype]
        if buf.dtype in ("bool", "int32"):
            value = self.to_memory(self.materialize(value), buf.dtype)
        if not _is_vec(index) and not _is_vec(value) and self.mask is None:
            b.store(value, self.address(buf, index), align=NBYTES[buf.dtype])
            return
        lanes = self.lanes
        vty = ir.VectorType(ety, lanes)
        value = self.broadcast(value, lanes)
        if not _is_vec(index):
            # every lane writes the same address: the last lane wins, as in the serial loop
            last = b.extract_element(value, I32(lanes - 1))
            if self.mask is None:
                b.store(last, self.address(buf, index), align=NBYTES[buf.dtype])
            else:
                with b.if_then(self.any_lane(self.mask)):
                    b.store(last, self.address(buf, index), align=NBYTES[buf.dtype])
            return
        if isinstance(index, Ramp) and index.stride == 1:
            ptr = b.bitcast(self.address(buf, index.base), vty.as_pointer())
            if self.mask is None:
                b.store(value, ptr, align=NBYTES[buf.dtype])
            else:
                fn = self.intrinsic("masked.store", vty, [PTR], ret=VOID,
                                    args=[vty, PTR, I32, ir.VectorType(I1, lanes)])
                b.call(fn, [value, ptr, I32(NBYTES[buf.dtype]), self.mask])
            return
        ptrs = self.address(buf, index)
        mask = self.mask if self.mask is not None else self.splat(I1(1), lanes)
        fn = self.intrinsic("masked.scatter", vty, [ir.VectorType(PTR, lanes)], ret=VOID,
                            args=[vty, ir.VectorType(PTR, lanes), I32, ir.VectorType(I1, lanes)])
        b.call(fn, [value, ptrs, I32(NBYTES[buf.dtype]), mask])

    # ------------------------------------------------------------------ vector helpers

    def splat(self, scalar, lanes):
        b = self.builder
        vty = ir.VectorType(scalar.type, lanes)
        if isinstance(scalar, ir.Constant):
            return ir.Constant(vty, [scalar.constant] * lanes)
        v = b.insert_element(ir.Constant(vty, None), scalar, I32(0))
        return b.shuffle_vector(v, ir.Constant(vty, None), ir.Constant(ir.VectorType(I32, lanes), [0] * lanes))

    def materialize(self, v):
        if not isinstance(v, Ramp):
            return v
        base = self.narrow(v.base) if v.dtype == "int32" else v.base
        steps = ir.Constant(ir.VectorType(base.type, v.lanes), [k * v.stride for k in range(v.lanes)])
        return self.builder.add(self.splat(base, v.lanes), steps)

    def narrow(self, scalar):
        """A 64-bit int32 scalar as i32, to join int32 vectors (which stay 32 bits per lane)."""
        if scalar.type != I64:
            return scalar
        if isinstance(scalar, ir.Constant):
            return I32(scalar.constant)
        return self.builder.trunc(scalar, I32)

    def broadcast(self, v, lanes, dtype=None):
        """``v`` as a vector; for ``dtype`` int32, with 32-bit lanes (the scalar may be 64-bit)."""
        v = self.materialize(v)
        if dtype == "int32" and self._element(v) == I64:
            v = self.narrow(v) if not isinstance(v.type, ir.VectorType) else self.builder.trunc(
                v, ir.VectorType(I32, v.type.count))
        if isinstance(v.type, ir.VectorType):
            return v
        return self.splat(v, lanes)

    # ------------------------------------------------------------------ expressions

    def scalar(self, e):
        v = self.value(e)
        if _is_vec(v):
            raise BuildError(f"expected a lane-invariant value for {e}")
        return v

    def value(self, e):
        if isinstance(e, E.Const):
            ty = LLTYPE[e.dtype]
            return ir.Constant(ty, int(e.value) if ty in (I1, I32, I64) else e.value)
        if isinstance(e, E.Var):
            if e not in self.env:
                raise BuildError(f"variable {e.name} is used outside the loop that defines it")
            return self.env[e]
        if isinstance(e, E.Load):
            return self.load(e)
        if isinstance(e, E.Select):
            return self.select(e)
        if isinstance(e, (E.And, E.Or)):
            a, b = self.value(e.a), self.value(e.b)
            a, b = self.unify(a, b)
            return self.builder.and_(a, b) if isinstance(e, E.And) else self.builder.or_(a, b)
        if isinstance(e, E.Not):
            return self.builder.not_(self.materialize(self.value(e.a)))
        if isinstance(e, E.BinaryOp):
            return self.binary(e)
        if isinstance(e, E.Cast):
            return self.cast(self.materialize(self.value(e.value)), e.value.dtype, e.dtype)
        if isinstance(e, E.Call):
            return self.call(e)
        raise BuildError(f"the LLVM target cannot emit {type(e).__name__}")

    def unify(self, a, b, dtype=None):
        """Make both scalars, or both materialised vectors (of ``dtype``'s lanes)."""
        if _is_vec(a) or _is_vec(b):
            return self.broadcast(a, self.lanes, dtype), self.broadcast(b, self.lanes, dtype)
        return a, b

    def binary(self, e):
        a, b = self.value(e.a), self.value(e.b)
        dtype = e.a.dtype
        # keep integer ramps symbolic under + - * const
        if (isinstance(a, Ramp) or isinstance(b, Ramp)) and E.is_int(dtype):
            r = self.ramp_arith(e, a, b)
            if r is not None:
                return r
        a, b = self.unify(a, b, dtype)
        bld = self.builder
        if E.is_float(dtype):
            if isinstance(e, E.Add): return bld.fadd(a, b, flags=FMF)
            if isinstance(e, E.Sub): return bld.fsub(a, b, flags=FMF)
            if isinstance(e, E.Mul): return bld.fmul(a, b, flags=FMF)
            if isinstance(e, E.Div): return bld.fdiv(a, b)
            if isinstance(e, E.FloorDiv): return bld.call(self.intrinsic("floor", a.type), [bld.fdiv(a, b)])
            # NaN-propagating, like numpy's maximum/minimum
            if isinstance(e, E.Min): return bld.call(self.intrinsic("minimum", a.type, args=[a.type, a.type]), [a, b])
            if isinstance(e, E.Max): return bld.call(self.intrinsic("maximum", a.type, args=[a.type, a.type]), [a, b])
            op = {E.LT: "<", E.LE: "<=", E.EQ: "==", E.NE: "!="}[type(e)]
            return bld.fcmp_ordered(op, a, b) if op != "!=" else bld.fcmp_unordered(op, a, b)
        if isinstance(e, (E.Add, E.Sub, E.Mul)):
            return self.int_arith(e, a, b)
        if isinstance(e, (E.FloorDiv, E.FloorMod)):
            out = self.safe_divmod(e, a, b)
            if dtype == "int32" and not _is_vec(out) and not (isinstance(e.b, E.Const) and e.b.value > 0):
                out = self.wrap32(out)      # INT32_MIN // -1 is 2**31 in 64 bits: wrap like numpy
            return out
        if isinstance(e, E.Min): return bld.select(bld.icmp_signed("<", a, b), a, b)
        if isinstance(e, E.Max): return bld.select(bld.icmp_signed(">", a, b), a, b)
        op = {E.LT: "<", E.LE: "<=", E.EQ: "==", E.NE: "!="}[type(e)]
        return bld.icmp_signed(op, a, b)

    def int_arith(self, e, a, b):
        """Integer + - * with numpy's semantics: two's-complement wrap at the dtype's width.

        A scalar int32 lives in 64 bits (see LLTYPE), where + - * of two int32 values cannot
        overflow; the result is wrapped back to 32 bits unless the loop ranges prove it fits
        (index math). int64 and vector lanes wrap in hardware: no ``nsw`` unless proven."""
        bld = self.builder
        fits = self.fits(e)
        scalar32 = e.dtype == "int32" and not _is_vec(a)
        flags = ["nsw"] if fits or scalar32 else []
        op = {E.Add: bld.add, E.Sub: bld.sub, E.Mul: bld.mul}[type(e)]
        out = op(a, b, flags=flags)
        return out if fits or not scalar32 else self.wrap32(out)

    def fits(self, e) -> bool:
        """True when the loop ranges prove that ``e`` stays within its integer dtype."""
        key = id(e)
        if key not in self._fits:
            bound = bound_of(e, self.ranges)
            lo, hi = INT_RANGE[e.dtype]
            self._fits[key] = (e, bound is not None and lo <= bound[0] and bound[1] <= hi)
        return self._fits[key][1]

    def wrap32(self, v):
        """A 64-bit int32 value wrapped to 32 bits (two's complement) and widened again."""
        return self.builder.sext(self.builder.trunc(v, I32), I64)

    def ramp_arith(self, e, a, b):
        bld = self.builder
        lanes = self.lanes
        if isinstance(e, E.Add):
            if isinstance(a, Ramp) and isinstance(b, Ramp):
                return Ramp(bld.add(a.base, b.base, flags=["nsw"]), a.stride + b.stride, lanes, a.dtype)
            r, s = (a, b) if isinstance(a, Ramp) else (b, a)
            if not _is_vec(s):
                return Ramp(bld.add(r.base, s, flags=["nsw"]), r.stride, lanes, r.dtype)
        if isinstance(e, E.Sub):
            if isinstance(a, Ramp) and isinstance(b, Ramp):
                return Ramp(bld.sub(a.base, b.base, flags=["nsw"]), a.stride - b.stride, lanes, a.dtype)
            if isinstance(a, Ramp) and not _is_vec(b):
                return Ramp(bld.sub(a.base, b, flags=["nsw"]), a.stride, lanes, a.dtype)
        if isinstance(e, E.Mul):
            r, s = (a, b) if isinstance(a, Ramp) else (b, a)
            if isinstance(s, ir.Constant) and not _is_vec(s):
                return Ramp(bld.mul(r.base, s, flags=["nsw"]), r.stride * int(s.constant), lanes, r.dtype)
        return None

    def safe_divmod(self, e, a, b):
        """Integer // and % with numpy's conventions, which never trap: x // 0 == x % 0 == 0, and
        x // -1 == -x (wrapping: INT_MIN // -1 == INT_MIN), x % -1 == 0 — in every lane,
        masked-off ones included (sdiv traps on a zero divisor and on INT_MIN / -1)."""
        fn = self.floordiv if isinstance(e, E.FloorDiv) else self.floormod
        if isinstance(e.b, E.Const) and e.b.value not in (0, -1):
            return fn(a, b)
        bld = self.builder

        def const(v):
            return ir.Constant(b.type, [v] * b.type.count) if isinstance(b.type, ir.VectorType) else ir.Constant(b.type, v)
        zero = ir.Constant(b.type, None)
        is_zero = bld.icmp_signed("==", b, zero)
        is_minus_one = bld.icmp_signed("==", b, const(-1))
        special = bld.or_(is_zero, is_minus_one)
        regular = fn(a, bld.select(special, const(1), b))
        minus_one = bld.sub(zero, a) if isinstance(e, E.FloorDiv) else zero
        return bld.select(is_zero, zero, bld.select(is_minus_one, minus_one, regular))

    def floordiv(self, a, b):
        bld = self.builder
        q = bld.sdiv(a, b)
        r = bld.srem(a, b)
        zero = ir.Constant(a.type, None)
        adjust = bld.and_(bld.icmp_signed("!=", r, zero),
                          bld.icmp_signed("<", bld.xor(r, b), zero))
        return bld.sub(q, bld.zext(adjust, a.type))

    def floormod(self, a, b):
        bld = self.builder
        r = bld.srem(a, b)
        zero = ir.Constant(a.type, None)
        adjust = bld.and_(bld.icmp_signed("!=", r, zero),
                          bld.icmp_signed("<", bld.xor(r, b), zero))
        return bld.add(r, bld.select(adjust, b, zero))

    def select(self, e: E.Select):
        """Only the chosen side is evaluated: per-lane masks in vector code, branches otherwise."""
        cond = self.value(e.cond)
        bld = self.builder
        if self.lanes is not None:
            cond = self.broadcast(cond, self.lanes)
            saved = self.mask
            self.mask = cond if saved is None else bld.and_(saved, cond)
            t = self.broadcast(self.value(e.t), self.lanes, e.dtype)
            inv = bld.not_(cond)
            self.mask = inv if saved is None else bld.and_(saved, inv)
            f = self.broadcast(self.value(e.f), self.lanes, e.dtype)
            self.mask = saved
            return bld.select(cond, t, f)
        with bld.if_else(cond) as (then, other):
            with then:
                t = self.value(e.t)
                t_block = bld.block
            with other:
                f = self.value(e.f)
                f_block = bld.block
        phi = bld.phi(t.type)
        phi.add_incoming(t, t_block)
        phi.add_incoming(f, f_block)
        return phi

    def cast(self, v, src, dst):
        bld = self.builder
        vec = isinstance(v.type, ir.VectorType)
        ty = LLTYPE[dst]
        if vec:     # int32 lanes are 32 bits wide (a scalar int32 is 64)
            ty = ir.VectorType(I32 if dst == "int32" else ty, v.type.count)
        if src == dst:
            return v
        if dst == "bool":
            zero = ir.Constant(v.type, None)
            return bld.fcmp_unordered("!=", v, zero) if E.is_float(src) else bld.icmp_signed("!=", v, zero)
        if src == "bool":
            return bld.uitofp(v, ty) if E.is_float(dst) else bld.zext(v, ty)
        if E.is_float(src) and E.is_float(dst):
            return bld.fpext(v, ty) if dst == "float64" else bld.fptrunc(v, ty)
        if E.is_float(src):
            return bld.fptosi(v, ty)
        if E.is_float(dst):
            return bld.sitofp(v, ty)
        if vec:
            return bld.sext(v, ty) if dst == "int64" else bld.trunc(v, ty)
        if dst == "int32":     # int64 -> int32 wraps, then lives in 64 bits again
            return bld.sext(bld.trunc(v, I32), ty)
        return v               # int32 -> int64: already 64 bits wide

    def call(self, e: E.Call):
        x = self.materialize(self.value(e.args[0]))
        bld = self.builder
        ty = x.type
        if e.name == "abs" and E.is_int(e.dtype):
            neg = bld.sub(ir.Constant(ty, None), x)
            out = bld.select(bld.icmp_signed("<", x, ir.Constant(ty, None)), neg, x)
            return self.wrap32(out) if e.dtype == "int32" and ty == I64 else out   # abs(INT_MIN) == INT_MIN
        if e.name == "sigmoid":
            ex = bld.call(self.intrinsic("exp", ty), [bld.fneg(x)])
            one = ir.Constant(ty, [1.0] * ty.count) if isinstance(ty, ir.VectorType) else ir.Constant(ty, 1.0)
            return bld.fdiv(one, bld.fadd(one, ex))
        name = {"abs": "fabs"}.get(e.name, e.name)
        return bld.call(self.intrinsic(name, ty), [x])


class _FnPtr:
    """Lets llvmlite's builder.call take a plain function pointer with a known type."""

    def __init__(self, ptr, fnty):
        self.ptr = ptr
        self.function_type = fnty
        self.type = PTR

    def get_reference(self):
        return self.ptr.get_reference()


def emit(func: LoweredFunc, triple: str, data_layout: str, use_openmp: bool, bounds_check: bool = False):
    """(the ir.Module, the buffer names a fault record refers to by number)."""
    module = ir.Module(name=func.name)
    module.triple = triple
    module.data_layout = data_layout
    gen = FunctionCodegen(func, module, use_openmp, bounds_check)
    gen.emit()
    return module, tuple(gen.fault_buffers)


def emit_module(func: LoweredFunc, triple: str, data_layout: str, use_openmp: bool) -> ir.Module:
    return emit(func, triple, data_layout, use_openmp)[0]
