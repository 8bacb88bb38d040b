"""Kernel plan -> numba CUDA Python source, built on the reference interpreter's emitter.

The source holds one ``@cuda.jit`` function per kernel and a host function, named like the
loopc function, that launches them in order:

    @cuda.jit
    def add_kernel0(A, B):
        i_outer = cuda.blockIdx.x            # a loop bound to blockIdx.x is the block index
        i_inner = cuda.threadIdx.x
        if i_outer*64 + i_inner < 100:       # the tail guard from the loop IR
            B[i_outer*64 + i_inner] = A[i_outer*64 + i_inner] + _f32(1.0)

    def add(A, B):
        add_kernel0[(2,), (64,)](A, B)

How statements map:

- a loop bound to a hardware index becomes ``var = cuda.threadIdx.x`` (+ ``if var < extent:``
  when another loop of the kernel binds a larger extent to the same index); other loops stay
  ``for`` loops (vectorized ones too; unrolled ones were unrolled by lowering);
- buffers allocated in the kernel are declared at its top: ``cuda.shared.array`` or
  ``cuda.local.array`` (flat, constant size);
- ``cuda.syncthreads()`` goes between a write of a shared buffer and a later read of it (and
  before a write that a read of the previous loop iteration must see first); it is never placed
  under a condition: an ``if`` around code that needs a barrier is pushed down to the stores
  inside it, and a shared buffer's cooperative load runs on every thread that takes part in
  it, whatever guards the consumer's code;
- a store that sits outside some of the kernel's bound loops (all threads would run it) runs on
  thread 0 of those indices only (``if cuda.threadIdx.y == 0:``): a reduction update at block
  level, say, must run once, not once per thread. Stores to per-thread arrays run everywhere.
"""
from __future__ import annotations

from loopc.arith import simplify_expr
from loopc.arith.extents import provably_equal
from loopc.errors import BuildError
from loopc.ir.emitter import CONDITIONAL, PRECEDENCE, ExprEmitter
from loopc.ir.stmt import Allocate, For, IfThenElse, SeqStmt, Store, walk_stmt
from loopc.ir.visitor import StmtVisitor, const_range
from loopc.pysource import Namer, PySourceEmitter
from loopc.te import expr as E

from .kernels import HW_TAGS, THREAD_TAGS, is_hw_loop

DTYPE_NAMES = {"float16": "float16", "float32": "float32", "float64": "float64", "int8": "int8", "int16": "int16",
               "int32": "int32", "int64": "int64", "uint8": "uint8", "uint16": "uint16", "uint32": "uint32",
               "uint64": "uint64", "bool": "boolean"}
CAST = {"float16": "_f16", "float32": "_f32", "float64": "_f64", "int8": "_i8", "int16": "_i16", "int32": "_i32",
        "int64": "_i64", "uint8": "_u8", "uint16": "_u16", "uint32": "_u32", "uint64": "_u64", "bool": "bool"}
MATH = {"exp": "math.exp", "log": "math.log", "sqrt": "math.sqrt", "tanh": "math.tanh", "floor": "math.floor",
        "log2": "math.log2", "log10": "math.log10", "round": "round", "power": "math.pow", "fmod": "math.fmod"}

#: names the generated source uses; loop and buffer names never take them
RESERVED = {"_u", "cuda", "math", "numba", "range", "min", "max", "abs", "bool", "int", "float", "_INF", "_NAN",
            *DTYPE_NAMES.values(), *CAST.values()}


def namespace() -> dict:
    """The globals the generated source runs with (numba.cuda must already be imported)."""
    import math

    import numba
    from numba import cuda
    ns = {"cuda": cuda, "math": math, "_INF": math.inf, "_NAN": math.nan,
          "_u": numba.uint64}
    ns.update({cast: getattr(numba.types, dtype) for dtype, cast in CAST.items() if dtype != "bool"})
    for dtype, name in DTYPE_NAMES.items():
        ns[name] = getattr(numba.types, "boolean" if dtype == "bool" else dtype)
    return ns


class CUDAEmitter(PySourceEmitter):
    """Emits the kernels of a :class:`~.kernels.Plan` and the host function that launches them.
    Expressions follow the shared precedence rules (``loopc.ir.emitter``) with the fewest
    parentheses, unlike the interpreter's source."""

    full_parens = False
    tight_mul = True

    def __init__(self, plan):
        namer = Namer()
        namer.taken |= RESERVED
        super().__init__(namer)
        self.plan = plan
        self.kernel = None
        self.kernel_names = [self.name(("kernel", k.index), f"{plan.func.name}_kernel{k.index}")
                             for k in plan.kernels]
        self.host_name = self.name(plan.func, plan.func.name)
        self.globals = set(namer.taken)

    def _fresh_names(self):
        """Each function gets its own names (``i`` in every kernel), never a global's."""
        namer = Namer()
        namer.taken |= self.globals
        self.name = namer

    # ------------------------------------------------------------------ expressions

    def expr(self, e, prec: int = 0) -> str:
        """Python source of ``e``, parenthesised only where precedence needs it."""
        if getattr(self, "_wrapping", None) is not e:
            if E.is_int(e.dtype) and E.bits(e.dtype) < 64 and self.wraps(e):
                # numba computes int32 + int32 (int8 + int8 ...) in 64 bits: wrap like numpy and the CPU
                return f"{CAST[e.dtype]}(_i64({self._unwrapped(e)}))"
            if e.dtype == "float16" and isinstance(e, (E.BinaryOp, E.Call)) and not isinstance(e, E.CmpOp):
                # float16 values compute as float32, rounded to half after every operation (as on the CPU)
                return f"_f32(_f16({self._unwrapped(e)}))"
        return super().expr(e, prec)

    def _unwrapped(self, e) -> str:
        saved, self._wrapping = getattr(self, "_wrapping", None), e
        try:
            return self.expr(e)
        finally:
            self._wrapping = saved

    def emit_Cast(self, e, prec):
        """Integers wrap through int64 (numpy's cast; a float truncates first); float16 is a
        float32 rounded to half."""
        v = self.expr(e.value)
        if e.dtype == "float16":
            return f"_f32(_f16({v}))"
        if E.is_int(e.dtype) and e.value.dtype != "bool" and e.dtype != "int64":
            if e.dtype == "uint64":
                return f"_u64({v})" if E.is_float(e.value.dtype) else f"_u64(_i64({v}))"
            return f"{CAST[e.dtype]}(_i64({v}))"
        return f"{CAST[e.dtype]}({v})"

    def emit_ShiftLeft(self, e, prec):
        """numpy's shifts: a count outside [0, bits) gives 0 (``_u`` makes a negative count huge)."""
        a, b, bits, cast = self.expr(e.a), self.expr(e.b), E.bits(e.dtype), CAST[e.dtype]
        return f"({cast}(_i64({a}) << _i64({b})) if _u({b}) < {bits} else {cast}(0))"

    def emit_ShiftRight(self, e, prec):
        """Arithmetic for signed (a count beyond the width fills with the sign), logical for unsigned."""
        a, b, bits, cast = self.expr(e.a), self.expr(e.b), E.bits(e.dtype), CAST[e.dtype]
        if E.is_unsigned(e.dtype):
            return f"({a} >> {b} if _u({b}) < {bits} else {cast}(0))"
        return f"({a} >> ({b} if _u({b}) < {bits} else {bits - 1}))"

    # plain operators (``//`` and ``%`` included): int32 results are wrapped in ``expr``
    emit_BinaryOp = ExprEmitter.emit_BinaryOp

    def emit_Const(self, e, prec):
        if E.is_int(e.dtype) and e.dtype not in ("int32", "int64"):
            return f"{CAST[e.dtype]}({e.value})"      # typed: numba makes uint64 + an int literal a float
        cast = "_f32" if e.dtype == "float16" else CAST.get(e.dtype)    # float16 computes as float32
        if E.is_float(e.dtype) and not (abs(e.value) < float("inf")):
            v = e.value
            text = "_NAN" if v != v else ("_INF" if v > 0 else "-_INF")
            return f"{cast}({text})"
        if e.dtype == "float16":
            return f"{cast}({e.value!r})"
        return super().emit_Const(e, prec)

    def emit_Load(self, e, prec):
        text = f"{self.name(e.buffer, e.buffer.name)}[{self.subscript(e.buffer, e.index)}]"
        return f"_f32({text})" if e.dtype == "float16" else text

    def emit_Min(self, e, prec):
        # a select, not builtin min/max: numba types those through a jitted overload, which
        # cannot be compiled to PTX on a machine without a GPU
        p = PRECEDENCE[E.LT] + 1          # the operands of a comparison
        a, b = self.expr(e.a, p), self.expr(e.b, p)
        return self.paren(f"{a} if {a} {'>' if isinstance(e, E.Max) else '<'} {b} else {b}", CONDITIONAL, prec)

    emit_Max = emit_Min

    def emit_Call(self, e, prec):
        args = [self.expr(a) for a in e.args]
        if e.name in MATH:
            return f"{MATH[e.name]}({', '.join(args)})"
        if e.name == "abs" and e.dtype in ("int8", "int16", "int32"):      # abs(INT_MIN) == INT_MIN
            return f"{CAST[e.dtype]}(_i64(abs({args[0]})))"
        if e.name == "abs":
            return f"abs({args[0]})"
        if e.name == "popcount":           # the dtype's bits, as unsigned: popc of a negative int8 counts 8
            unsigned = "_u" + str(E.bits(e.dtype))
            return f"{CAST[e.dtype]}(cuda.popc({unsigned}(_i64({args[0]}))))"
        if e.name == "exp2":
            return f"math.pow({CAST[e.dtype]}(2.0), {args[0]})"
        if e.name == "ceil":                 # from floor, which every float type has (numpy's too)
            return f"(-math.floor(-{args[0]}))"
        if e.name == "trunc":
            return f"math.copysign(math.floor(abs({args[0]})), {args[0]})"
        if e.name == "sigmoid":
            one = f"{CAST[e.dtype]}(1.0)"
            return f"({one} / ({one} + math.exp(-{args[0]})))"
        raise BuildError(f"the CUDA target has no intrinsic {e.name!r}")

    def subscript(self, buf, index) -> str:
        """An array subscript: unsigned, so that numba skips Python's negative-index wraparound
        (a select per access); a constant stays a literal."""
        idx = self.index(buf, index)
        if isinstance(idx, E.Const):
            return str(idx.value)
        return f"_u({self.expr(idx)})"

    def index(self, buf, index):
        decl = self.kernel.arrays.get(buf) if self.kernel is not None else None
        if decl is not None and decl.privatization is not None:
            return simplify_expr(decl.privatization.index(index))
        return index

    # ------------------------------------------------------------------ analysis helpers

    def _shared(self, buf) -> bool:
        return self.kernel.storage(buf) == "shared"

    def _rw(self, s):
        """(shared buffers read, shared buffers written) anywhere in ``s``; the read of a
        reduction update (``X[i] = X[i] + ...``) does not count as a read."""
        key = id(s)
        if key not in self._rw_cache:
            reads, writes = set(), set()
            for n in walk_stmt(s):
                exprs = ()
                if isinstance(n, Store):
                    if self._shared(n.buffer):
                        writes.add(n.buffer)
                    exprs = (n.index, n.value)
                elif isinstance(n, IfThenElse):
                    exprs = (n.cond,)
                elif isinstance(n, For):
                    exprs = (n.min, n.extent)
                for x in exprs:
                    for ld in E.walk(x):
                        if isinstance(ld, E.Load) and self._shared(ld.buffer):
                            rmw = (isinstance(n, Store) and ld.buffer is n.buffer
                                   and E.expr_equal(ld.index, n.index))
                            if not rmw:
                                reads.add(ld.buffer)
            self._rw_cache[key] = (reads, writes)
        return self._rw_cache[key]

    def _compound(self, s) -> bool:
        """Whether ``s`` needs a barrier inside: it allocates a shared buffer, or both writes
        and reads one."""
        key = id(s)
        if key not in self._compound_cache:
            has_alloc = any(isinstance(n, Allocate) and self._shared(n.buffer) for n in walk_stmt(s))
            reads, writes = self._rw(s)
            self._compound_cache[key] = has_alloc or bool(reads & writes)
        return self._compound_cache[key]

    # ------------------------------------------------------------------ guards of stores

    def _store_guard(self, buf, frames) -> tuple:
        """The conditions a store to ``buf`` needs under ``frames`` (scope entries, outer first):
        pushed-down conditions, and ``index == 0`` for the hardware indices no loop around it binds."""
        kind = self.kernel.storage(buf)
        start = 0
        if kind == "shared":
            start = next(n for n, f in enumerate(frames) if f[0] == "alloc" and f[1] is buf)
        conds = [f[1] for f in frames[start:] if f[0] == "cond"]
        if kind == "local":
            return tuple(conds)
        present = {f[1] for f in frames[start:] if f[0] == "hw"}
        wanted = [t for t in (THREAD_TAGS if kind == "shared" else HW_TAGS) if t in self.kernel.launch]
        return tuple(conds) + tuple(f"cuda.{t} == 0" for t in wanted if t not in present)

    def _signatures(self, s, frames) -> set:
        """The distinct store guards (see ``_store_guard``) of the stores in ``s``."""
        walk = _StoreGuards(self, frames)
        walk.visit(s)
        return walk.guards

    # ------------------------------------------------------------------ statements

    def _hw_header(self, s, ind, out) -> int:
        """``var = cuda.threadIdx.x`` (and its guard); returns the body's indentation."""
        pad = "    " * ind
        v = self.name(s.var, s.var.name)
        lo = s.min.value
        self._enter(s)
        out.append(f"{pad}{v} = cuda.{s.thread_tag}" + (f" + {lo}" if lo else ""))
        guard = self._hw_guard(s, v, lo)
        if guard is not None:
            out.append(f"{pad}if {guard}:")
            return ind + 1
        return ind

    def _hw_guard(self, s, v, lo):
        """``v < lo + extent`` where the launch covers more than the loop's extent, else None (a
        symbolic extent: a grid of blocks rounded up to the launch, guarded unless equal)."""
        launch = self.kernel.launch[s.thread_tag]
        if isinstance(s.extent, E.Const) and isinstance(launch, int):
            return f"{v} < {lo + s.extent.value}" if s.extent.value < launch else None
        if provably_equal(launch, s.extent if not isinstance(s.extent, E.Const) else s.extent.value):
            return None
        return f"{v} < {self.expr(s.extent + lo if lo else s.extent)}"

    def _enter(self, s):
        """Note the loop's range: index math it bounds needs no 32-bit wrap (see ``wraps``)."""
        rng = const_range(s)
        if rng is not None:
            self.ranges[s.var] = rng

    def _loop_header(self, s) -> str:
        self._enter(s)
        v = self.name(s.var, s.var.name)
        if isinstance(s.min, E.Const) and s.min.value == 0:
            return f"for {v} in range({self.expr(s.extent)}):"
        lo = self.expr(s.min)
        return f"for {v} in range({lo}, {lo} + {self.expr(s.extent)}):"

    def _block(self, emit, s, ind, out):
        """Emit ``s`` at ``ind``; an empty block gets ``pass``."""
        n = len(out)
        emit(s, ind, out)
        if len(out) == n:
            out.append("    " * ind + "pass")

    def plain(self, s, ind, out):
        """A statement that needs no barrier and no pushed-down guard."""
        pad = "    " * ind
        if isinstance(s, For):
            if is_hw_loop(s):
                inner = self._hw_header(s, ind, out)
                self._block(self.plain, s.body, inner, out)
            else:
                out.append(pad + self._loop_header(s))
                self._block(self.plain, s.body, ind + 1, out)
        elif isinstance(s, SeqStmt):
            for x in s.stmts:
                self.plain(x, ind, out)
        elif isinstance(s, IfThenElse):
            out.append(f"{pad}if {self.expr(s.cond)}:")
            self._block(self.plain, s.then_case, ind + 1, out)
            if s.else_case is not None:
                out.append(f"{pad}else:")
                self._block(self.plain, s.else_case, ind + 1, out)
        elif isinstance(s, Allocate):
            self.plain(s.body, ind, out)       # declared at the top of the kernel
        elif isinstance(s, Store):
            idx = self.subscript(s.buffer, s.index)
            value = self.expr(s.value)
            value = f"_f16({value})" if s.buffer.dtype == "float16" else value
            out.append(f"{pad}{self.name(s.buffer, s.buffer.name)}[{idx}] = {value}")
        else:
            raise BuildError(f"the CUDA target cannot emit {type(s).__name__}")

    def guarded(self, s, ind, out, frames):
        """Emit barrier-free ``s`` with the guards its stores need, as few ``if``s as possible."""
        sigs = self._signatures(s, frames)
        if len(sigs) <= 1:
            guard = next(iter(sigs), ())
            if guard:
                out.append("    " * ind + f"if {' and '.join(guard)}:")
                self._block(self.plain, s, ind + 1, out)
            else:
                self.plain(s, ind, out)
            return
        pad = "    " * ind
        if isinstance(s, SeqStmt):
            for x in s.stmts:
                self.guarded(x, ind, out, frames)
        elif isinstance(s, Allocate):
            self.guarded(s.body, ind, out, frames + [("alloc", s.buffer)])
        elif isinstance(s, For) and is_hw_loop(s):
            inner = self._hw_header(s, ind, out)
            self.guarded(s.body, inner, out, frames + [("hw", s.thread_tag)])
        elif isinstance(s, For):
            out.append(pad + self._loop_header(s))
            self.guarded(s.body, ind + 1, out, frames)
        elif isinstance(s, IfThenElse):
            out.append(f"{pad}if {self.expr(s.cond)}:")
            self._block(lambda x, i, o: self.guarded(x, i, o, frames), s.then_case, ind + 1, out)
            if s.else_case is not None:
                out.append(f"{pad}else:")
                self._block(lambda x, i, o: self.guarded(x, i, o, frames), s.else_case, ind + 1, out)
        else:  # pragma: no cover - a Store has one signature
            raise BuildError(f"cannot guard {type(s).__name__}")

    def atomic(self, s, ind, out):
        """A statement with no barrier inside: a barrier before it if it touches a shared
        buffer that another thread may still be writing (or reading, for a write)."""
        reads, writes = self._rw(s)
        if (reads | writes) & self.dirty_w or writes & self.dirty_r:
            out.append("    " * ind + "cuda.syncthreads()")
            self.dirty_r, self.dirty_w = set(), set()
        self.dirty_r |= reads
        self.dirty_w |= writes
        self.guarded(s, ind, out, self.scope)

    def stmt(self, s, ind, out):
        if not self._compound(s):
            self.atomic(s, ind, out)
            return
        pad = "    " * ind
        if isinstance(s, SeqStmt):
            for x in s.stmts:
                self.stmt(x, ind, out)
        elif isinstance(s, Allocate):
            self.scope.append(("alloc", s.buffer))
            self.stmt(s.body, ind, out)
            self.scope.pop()
        elif isinstance(s, IfThenElse):
            if s.else_case is not None:
                raise BuildError("the CUDA target cannot emit an if/else whose branches need a barrier")
            self.scope.append(("cond", self.expr(s.cond)))
            self.stmt(s.then_case, ind, out)
            self.scope.pop()
        elif isinstance(s, For) and is_hw_loop(s):
            v = self.name(s.var, s.var.name)
            lo = s.min.value
            self._enter(s)
            out.append(f"{pad}{v} = cuda.{s.thread_tag}" + (f" + {lo}" if lo else ""))
            pushed = [("hw", s.thread_tag)]
            guard = self._hw_guard(s, v, lo)
            if guard is not None:
                pushed.append(("cond", guard))
            self.scope.extend(pushed)
            self.stmt(s.body, ind, out)
            del self.scope[-len(pushed):]
        elif isinstance(s, For):
            if not (isinstance(s.extent, E.Const) and s.extent.value == 1):
                # iteration 2 starts with what iteration 1 left unsynchronised
                saved = (set(self.dirty_r), set(self.dirty_w))
                self.stmt(s.body, ind + 1, [])
                self.dirty_r, self.dirty_w = saved[0] | self.dirty_r, saved[1] | self.dirty_w
            out.append(pad + self._loop_header(s))
            self.stmt(s.body, ind + 1, out)
        else:  # pragma: no cover
            raise BuildError(f"the CUDA target cannot emit {type(s).__name__}")

    # ------------------------------------------------------------------ kernels and host

    def kernel_source(self, k) -> list:
        self.kernel = k
        self.scope = []
        self.dirty_r, self.dirty_w = set(), set()
        self._rw_cache, self._compound_cache = {}, {}
        self._fresh_names()
        args = [self.name(b, b.name) for b in k.args] + [self.name(v, v.name) for v in self.plan.func.size_vars]
        name = self.kernel_names[k.index]
        out = ["@cuda.jit", f"def {name}({', '.join(args)}):"]
        for decl in k.arrays.values():
            b = decl.buffer
            note = f"  # {decl.note}" if decl.note else ""
            out.append(f"    {self.name(b, b.name)} = cuda.{decl.kind}.array({decl.size}, "
                       f"{DTYPE_NAMES[b.dtype]}){note}")
        self._block(self.stmt, k.body, 1, out)
        self.kernel = None
        return out

    def host_source(self) -> list:
        self._fresh_names()
        params = [self.name(b, b.name) for b in self.plan.func.params]
        params += [self.name(v, v.name) for v in self.plan.func.size_vars]    # symbolic sizes, as ints
        extra = [self.name(b, b.name) for b in self.plan.intermediates]
        out = [f"def {self.host_name}({', '.join(params + extra)}):"]
        for b in self.plan.intermediates:
            if b.scope != "global":
                out.append(f"    # {b.name}: scope '{b.scope}' at the root lives in global memory "
                           "(compute_at a consumer's loop to keep it on chip)")
        for k in self.plan.kernels:
            args = ", ".join([self.name(b, b.name) for b in k.args]
                             + [self.name(v, v.name) for v in self.plan.func.size_vars])
            grid = [g if isinstance(g, int) else f"max(1, {self.expr(g)})" for g in k.grid]
            out.append(f"    {self.kernel_names[k.index]}[{_dims(grid)}, {_dims(k.block)}]({args})")
        if not self.plan.kernels:
            out.append("    pass")
        return out

    def module(self) -> str:
        func = self.plan.func
        lines = [f"# numba CUDA kernels generated by loopc for {func.name}("
                 f"{', '.join(b.name for b in func.params)})"]
        for k in self.plan.kernels:
            lines.append(f"# {self.kernel_names[k.index]}: computes {k.stage}; grid ({', '.join(map(str, k.grid))}), block {k.block}, "
                         f"shared {k.shared_bytes} B, local {k.local_bytes} B per thread")
        for k in self.plan.kernels:
            lines.append("")
            lines.append("")
            lines.extend(self.kernel_source(k))
        lines.append("")
        lines.append("")
        lines.extend(self.host_source())
        return "\n".join(lines) + "\n"


class _StoreGuards(StmtVisitor):
    """Collects ``emitter._store_guard`` of every store, under ``frames`` plus the bound loops
    and allocations around it."""

    def __init__(self, emitter, frames):
        super().__init__()
        self.emitter, self.frames, self.guards = emitter, list(frames), set()

    def visit_Store(self, n):
        inner = [("hw", f.thread_tag) if isinstance(f, For) else ("alloc", f.buffer)
                 for f in self.stack if is_hw_loop(f) or isinstance(f, Allocate)]
        self.guards.add(self.emitter._store_guard(n.buffer, self.frames + inner))
        return n


def _dims(dims) -> str:
    """(4, 1, 1) -> '(4,)'; (2, 2, 1) -> '(2, 2)'."""
    dims = list(dims)
    while len(dims) > 1 and dims[-1] == 1:
        dims.pop()
    return f"({dims[0]},)" if len(dims) == 1 else f"({', '.join(map(str, dims))})"


def generate(plan) -> tuple:
    """(source, host function name, kernel names)."""
    em = CUDAEmitter(plan)
    src = em.module()
    return src, em.host_name, list(em.kernel_names)
