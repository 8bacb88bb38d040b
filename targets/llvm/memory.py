"""Memory: intermediate buffers, and loads and stores — scalar, vector, strided, gathered,
masked under per-lane guards, and bounds-checked where the loop ranges prove nothing."""
from __future__ import annotations

import llvmlite.ir as ir

from loopc.ir.stmt import Allocate, Store
from loopc.arith import bound_of
from loopc.te import expr as E

from .faults import FAULT_ALLOC, FAULT_BOUNDS
from .lltypes import (ALIGN, I1, I8, I32, I64, MAX_SHUFFLED_STRIDE, MEMTYPE, NBYTES, PTR, STACK_BUDGET,
                      STACK_LIMIT, VOID)
from .vector import Ramp, is_vec


class MemoryAccess:
    """Buffers and accesses of :class:`~loopc.targets.llvm.codegen.FunctionCodegen` (uses its
    builder, ``buffers``, ``lanes``, ``mask``, ``ranges``, ``bounds_check``, the lane helpers
    and ``record_fault``)."""

    def alloca_entry(self, ty, size=None, align=None):
        """An alloca in the function's entry block (never inside a loop)."""
        saved = self.builder.block
        self.builder.position_at_start(self.entry_block)
        ptr = self.builder.alloca(ty, size=size)
        if align:
            ptr.align = align
        self.builder.position_at_end(saved)
        return ptr

    def allocate(self, s: Allocate):
        buf = s.buffer
        if buf.symbolic:
            return self._heap_allocate(s, self.builder.mul(self.scalar(buf.size), I64(NBYTES[buf.dtype])))
        nbytes = buf.size * NBYTES[buf.dtype]
        if nbytes <= STACK_LIMIT and self.stack_bytes + nbytes <= STACK_BUDGET:
            self.stack_bytes += -(-nbytes // ALIGN) * ALIGN
            ptr = self.alloca_entry(MEMTYPE[buf.dtype], size=I64(buf.size), align=ALIGN)
            self.buffers[buf] = ptr
            self.stmt(s.body)
            return
        self._heap_allocate(s, I64(nbytes))

    def _heap_allocate(self, s: Allocate, nbytes):
        """``s.buffer`` from ``aligned_alloc`` (``nbytes``: an i64, constant or computed at run
        time for a symbolic shape), freed after ``s.body``; a failed allocation is a fault."""
        buf = s.buffer
        aligned_alloc = self.declare("aligned_alloc", PTR, [I64, I64])
        free = self.declare("free", VOID, [PTR])
        b = self.builder
        if isinstance(nbytes, ir.Constant):
            rounded = I64(-(-nbytes.constant // ALIGN) * ALIGN)
        else:       # round up to ALIGN (aligned_alloc's contract); at least ALIGN for an empty one
            nbytes = b.select(b.icmp_signed("<", nbytes, I64(1)), I64(1), nbytes)
            rounded = b.mul(b.sdiv(b.add(nbytes, I64(ALIGN - 1)), I64(ALIGN)), I64(ALIGN))
        ptr = b.call(aligned_alloc, [I64(ALIGN), rounded])
        self.buffers[buf] = ptr
        with b.if_else(b.icmp_unsigned("==", ptr, ir.Constant(PTR, None))) as (failed, ok):
            with failed:        # out of memory: report it, skip what needed the buffer
                self.record_fault(FAULT_ALLOC, buf, rounded)
            with ok:
                self.stmt(s.body)
                b.call(free, [ptr])

    def address(self, buf, index):
        """A scalar pointer, or a vector of pointers for a gather/scatter."""
        base = self.buffers[buf]
        ety = MEMTYPE[buf.dtype]
        if not is_vec(index):
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
        if buf.symbolic:
            return True
        bound = bound_of(index_expr, self.ranges)
        return bound is None or bound[0] < 0 or bound[1] >= buf.size

    def checked(self, buf, index, access, ety=None):
        """``access()`` where ``index`` lies inside ``buf``; elsewhere a fault is recorded (and a
        load yields 0). Vector lanes outside are masked off."""
        b = self.builder
        if is_vec(index):
            vidx = self.materialize(index)
            lanes = vidx.type.count
            ity = vidx.type.element
            ok = b.and_(b.icmp_signed(">=", vidx, ir.Constant(vidx.type, [0] * lanes)),
                        b.icmp_signed("<", vidx, self._size_of(buf, ity, lanes)))
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
                    b.icmp_signed("<", index, self._size_of(buf, index.type)))
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

    def _size_of(self, buf, ty, lanes=None):
        """``buf``'s element count as a value of integer type ``ty`` (splat to ``lanes``)."""
        if not buf.symbolic:
            return ir.Constant(ty, buf.size) if lanes is None else ir.Constant(ir.VectorType(ty, lanes),
                                                                               [buf.size] * lanes)
        n = self.scalar(buf.size)
        n = n if n.type == ty else (self.builder.trunc(n, ty) if n.type.width > ty.width else
                                    self.builder.sext(n, ty))
        return n if lanes is None else self.splat(n, lanes)

    def _load(self, buf, index):
        ety = MEMTYPE[buf.dtype]
        b = self.builder
        if not is_vec(index) and self.mask is None:
            return self.from_memory(b.load(self.address(buf, index), typ=ety, align=NBYTES[buf.dtype]),
                                    buf.dtype)
        lanes = self.lanes
        if not is_vec(index):
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
        elif isinstance(index, Ramp) and 2 <= index.stride <= MAX_SHUFFLED_STRIDE:
            v = self._strided_load(buf, index, vty, self.mask)
        else:
            ptrs = self.address(buf, index)
            fn = self.intrinsic("masked.gather", vty, [ir.VectorType(PTR, lanes)],
                                args=[ir.VectorType(PTR, lanes), I32, ir.VectorType(I1, lanes), vty])
            v = b.call(fn, [ptrs, I32(NBYTES[buf.dtype]), mask, ir.Constant(vty, None)])
        return self.from_memory(v, buf.dtype)

    def _strided_load(self, buf, index, vty, mask=None):
        """Lanes ``base + stride*k`` of a small stride: loads of a power-of-two width (at most
        ``lanes``) over the span the lanes cover, joined and shuffled to every stride-th
        element — a gather, or one load of an odd width, is several times slower. A load past
        the last lane, or any under a lane ``mask``, is a masked load that touches only the
        elements the (active) lanes read."""
        b = self.builder
        lanes, stride = vty.count, index.stride
        span = (lanes - 1) * stride + 1
        width = 1 << (lanes.bit_length() - 1)        # registers of a power-of-two width
        cty = ir.VectorType(vty.element, width)
        mty = ir.VectorType(I1, width)
        chunks = []
        for start in range(0, span, width):
            ptr = b.bitcast(self.address(buf, b.add(index.base, ir.Constant(index.base.type, start))),
                            cty.as_pointer())
            if mask is None and start + width <= span:     # inside the span: a plain load
                chunks.append(b.load(ptr, typ=cty, align=NBYTES[buf.dtype]))
                continue
            if mask is None:
                chunk_mask = ir.Constant(mty, [int(start + i < span) for i in range(width)])
            else:
                # the lanes' mask moved onto the elements they read: element start+i feeds lane
                # (start+i)/stride when stride divides it (else none: index `lanes`, a 0)
                feeds = [(start + i) // stride if (start + i) % stride == 0 and start + i < span else lanes
                         for i in range(width)]
                chunk_mask = b.shuffle_vector(mask, ir.Constant(ir.VectorType(I1, lanes), [0] * lanes),
                                              ir.Constant(ir.VectorType(I32, width), feeds))
            fn = self.intrinsic("masked.load", cty, [PTR], args=[PTR, I32, mty, cty])
            chunks.append(b.call(fn, [ptr, I32(NBYTES[buf.dtype]), chunk_mask, ir.Constant(cty, None)]))
        while len(chunks) > 1:          # concatenate pairs: <W> <W> -> <2W> ...
            if len(chunks) % 2:
                chunks.append(ir.Constant(chunks[0].type, None))
            width = chunks[0].type.count
            joined = ir.Constant(ir.VectorType(I32, 2 * width), list(range(2 * width)))
            chunks = [b.shuffle_vector(chunks[i], chunks[i + 1], joined) for i in range(0, len(chunks), 2)]
        whole = chunks[0]
        return b.shuffle_vector(whole, ir.Constant(whole.type, None),
                                ir.Constant(ir.VectorType(I32, lanes), [k * stride for k in range(lanes)]))

    def from_memory(self, v, dtype):
        """A loaded value in its computation type (bool: i8 -> i1; int32: i32 -> i64;
        float16: half -> float)."""
        if dtype == "float16":
            return self.half_to_float(v)
        if dtype == "bool":
            return self.builder.trunc(v, self._like(v, I1))
        if dtype == "int32" and not isinstance(v.type, ir.VectorType):
            return self.builder.sext(v, I64)
        return v

    def to_memory(self, v, dtype):
        """The inverse of :meth:`from_memory`, for a store."""
        if dtype == "float16":
            return self.float_to_half(v)
        if dtype == "bool":
            return self.builder.zext(v, self._like(v, I8))
        if dtype == "int32":
            return self.builder.trunc(v, self._like(v, I32)) if self._element(v) == I64 else v
        return v

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
        if buf.dtype in ("bool", "int32", "float16"):
            value = self.to_memory(self.materialize(value), buf.dtype)
        if not is_vec(index) and not is_vec(value) and self.mask is None:
            b.store(value, self.address(buf, index), align=NBYTES[buf.dtype])
            return
        lanes = self.lanes
        vty = ir.VectorType(ety, lanes)
        value = self.broadcast(value, lanes)
        if not is_vec(index):
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

