"""Parallel loops: outlined into a function that runs a static chunk, launched on every
thread through libgomp's ``GOMP_parallel`` (or run once, serially, without libgomp)."""
from __future__ import annotations

import llvmlite.ir as ir

from loopc.ir.stmt import For

from .lltypes import I8, I32, PTR, VOID


class ParallelLoops:
    """Outlining for :class:`~loopc.targets.llvm.codegen.FunctionCodegen` (uses its builder,
    environment, ``serial_loop``, ``stmt``, ``alloca_entry`` and ``declare``)."""

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


class _FnPtr:
    """Lets llvmlite's builder.call take a plain function pointer with a known type."""

    def __init__(self, ptr, fnty):
        self.ptr = ptr
        self.function_type = fnty
        self.type = PTR

    def get_reference(self):
        return self.ptr.get_reference()

