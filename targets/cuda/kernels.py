"""Loop IR -> a plan of CUDA kernels: what each kernel computes, its launch shape, and where
each of its buffers lives.

One kernel per root stage. The function body is a list of root nests inside the root
Allocates; a nest may read what the one before it wrote anywhere in the grid, and only a
kernel boundary orders that, so each top-level statement becomes its own kernel:

    def softmax(X, Y):                         softmax_kernel0: rowmax[...] = max(...)
      rowmax = allocate(global)         ->     softmax_kernel1: expo[...] = exp(...)
      expo = allocate(global)                  ...
      <nest: rowmax>                            (root intermediates: device arrays that the
      <nest: expo> ...                           module allocates and passes as arguments)

Inside a kernel, a loop bound to ``blockIdx.*``/``threadIdx.*`` is not a loop: its variable is
the hardware index, and the launch dimension of a tag is the largest extent bound to it
(smaller extents get an ``if idx < extent`` guard). Buffers allocated inside the kernel live
in shared memory (scope ``shared``) or in per-thread arrays (``local``). A ``local`` buffer
allocated outside the thread loops that use it is *privatised*: each thread keeps only its own
slice, e.g. a 64x64 accumulator tile whose element (ty*4 + i, tx*4 + j) thread (ty, tx) owns
becomes a 4x4 per-thread array (registers, once the indices are constants).

Before the analysis each kernel body is tidied for the GPU by the target's passes (``PASSES``,
LoweredFunc -> LoweredFunc, for the backend registry to run after the generic ones): loops of
extent 1 become their start value, and guard conditions that the loop ranges prove (floor
division and modulo included, by ``loopc.arith``) are dropped.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Dict, Tuple

import numpy as np

from loopc.arith import bound_of, from_linear, linear_form, prove, prune_conjuncts
from loopc.arith.extents import is_symbolic, provably_equal
from loopc.errors import BuildError
from loopc.ir.stmt import Allocate, Buffer, For, ForKind, IfThenElse, LoweredFunc, SeqStmt
from loopc.ir.visitor import StmtMutator, StmtVisitor, const_range, map_stmt
from loopc.lower.passes import simplify, substitute_stmt
from loopc.te import expr as E

from .target import CUDATarget
from .validate import check_kernel_limits

THREAD_TAGS = ("threadIdx.x", "threadIdx.y", "threadIdx.z")
BLOCK_TAGS = ("blockIdx.x", "blockIdx.y", "blockIdx.z")
HW_TAGS = BLOCK_TAGS + THREAD_TAGS

BIND_HINT = ("bind its outer loops to the GPU, e.g.\n"
             "    bx, tx = s[{stage}].split(s[{stage}].op.axis[0], factor=64)\n"
             "    s[{stage}].bind(bx, te.thread_axis(\"blockIdx.x\"))\n"
             "    s[{stage}].bind(tx, te.thread_axis(\"threadIdx.x\"))")

#: a privatised array is checked by enumerating at most this many (thread, element) pairs
_ENUM_CAP = 1 << 20


def is_hw_loop(s) -> bool:
    """A loop bound to a hardware index (vthread loops run as plain loops)."""
    return isinstance(s, For) and s.kind is ForKind.THREAD_BINDING and s.thread_tag in HW_TAGS


def is_thread_loop(s) -> bool:
    return is_hw_loop(s) and s.thread_tag in THREAD_TAGS


def is_block_loop(s) -> bool:
    return is_hw_loop(s) and s.thread_tag in BLOCK_TAGS


def const_value(e, what: str) -> int:
    if not (isinstance(e, E.Const) and E.is_int(e.dtype)):
        raise BuildError(f"the CUDA target needs a constant {what}, got {e!r}")
    return e.value


# --------------------------------------------------------------------------- accesses


@dataclass(frozen=True, eq=False)
class Access:
    """One load or store of a buffer, with the statements that enclose it (outermost first)."""
    buffer: Buffer
    index: E.Expr
    store: bool
    rmw: bool          # a load of the buffer a Store writes, at the same index (a reduction update)
    stack: tuple
    stmt: object


def _loads(e):
    return [n for n in E.walk(e) if isinstance(n, E.Load)]


class _Accesses(StmtVisitor):
    def __init__(self):
        super().__init__()
        self.out = []

    def note_loads(self, exprs, s):
        stack = tuple(self.stack)
        for e in exprs:
            for ld in _loads(e):
                self.out.append(Access(ld.buffer, ld.index, False, False, stack, s))

    def visit_For(self, s):
        self.note_loads((s.min, s.extent), s)
        return super().visit_For(s)

    def visit_IfThenElse(self, s):
        self.note_loads((s.cond,), s)
        return super().visit_IfThenElse(s)

    def visit_Store(self, s):
        stack = tuple(self.stack)
        self.out.append(Access(s.buffer, s.index, True, False, stack, s))
        for ld in _loads(s.index) + _loads(s.value):
            rmw = ld.buffer is s.buffer and E.expr_equal(ld.index, s.index)
            self.out.append(Access(ld.buffer, ld.index, False, rmw, stack, s))
        return s

    def visit_TensorStore(self, s):
        raise BuildError(f"the CUDA target cannot emit {type(s).__name__}")


def collect_accesses(body) -> list:
    """Every load and store in ``body``, in program order."""
    walk = _Accesses()
    walk.visit(body)
    return walk.out


def loop_ranges(stack) -> dict:
    """Var -> (lo, hi) of the loops in ``stack`` (constant bounds only)."""
    ranges = {}
    for f in stack:
        rng = const_range(f) if isinstance(f, For) else None
        if rng is not None:
            ranges[f.var] = rng
    return ranges


# --------------------------------------------------------------------------- privatisation


@dataclass(frozen=True)
class _Dim:
    threads: tuple          # ((tag, coefficient), ...) sorted
    terms: dict             # rest term -> coefficient
    const: int


def _split_dims(index, buf, thread_tags: dict):
    """Attribute each term of a flat row-major ``index`` to a dimension of ``buf`` (the one with
    the largest stride that divides its coefficient); thread variables (``thread_tags``: Var ->
    tag) are kept apart. None when the index does not decompose."""
    dims = [d for d, n in enumerate(buf.shape) if n > 1]
    strides = buf.strides
    terms, const = linear_form(index)
    threads = {d: {} for d in dims}
    rest = {d: {} for d in dims}
    for term, c in terms.items():
        d = next((d for d in dims if c % strides[d] == 0), None)
        if d is None:
            return None
        coef = c // strides[d]
        if isinstance(term, E.Var) and term in thread_tags:
            tag = thread_tags[term]
            threads[d][tag] = threads[d].get(tag, 0) + coef
        elif E.free_vars(term) & thread_tags.keys():
            return None   # a thread index inside a non-linear term
        else:
            rest[d][term] = coef
    consts = {}
    for d in dims:
        consts[d], const = divmod(const, strides[d])
    if const != 0 or not dims:
        return None if (const != 0 or any(threads.values())) else {}
    return {d: _Dim(tuple(sorted((t, c) for t, c in threads[d].items() if c != 0)), rest[d], consts[d])
            for d in dims}


def _rest_expr(dim: _Dim, dtype="int32"):
    return from_linear(dim.terms, dim.const, dtype)


def _rest_values(dim: _Dim, ranges):
    """The values the non-thread part of one index dimension takes (a superset), or None."""
    bounds = bound_of(_rest_expr(dim), ranges)
    if bounds is None:
        return None
    if all(isinstance(t, E.Var) and t in ranges for t in dim.terms):
        sizes = [ranges[t][1] - ranges[t][0] + 1 for t in dim.terms]
        if math.prod(sizes) <= 4096:
            vals = np.array([dim.const], dtype=np.int64)
            for t, c in dim.terms.items():
                lo, hi = ranges[t]
                vals = np.add.outer(vals, c * np.arange(lo, hi + 1, dtype=np.int64)).ravel()
            return np.unique(vals)
    if bounds[1] - bounds[0] < 4096:
        return np.arange(bounds[0], bounds[1] + 1, dtype=np.int64)
    return None


@dataclass
class Privatization:
    """Per-thread slice of a ``local`` buffer: index -> sum_d ((rest_d - lo_d) / g_d) * stride_d."""
    buffer: Buffer
    thread_tags: dict        # Var -> tag of every thread loop the accesses sit in
    shape: tuple
    lo: dict
    step: dict

    def index(self, e):
        dims = _split_dims(e, self.buffer, self.thread_tags)
        strides = Buffer("_", self.shape, "int32").strides
        terms, const = {}, 0
        for d, dim in dims.items():
            g = self.step[d]
            for t, c in dim.terms.items():
                terms[t] = terms.get(t, 0) + (c // g) * strides[d]
            const += ((dim.const - self.lo[d]) // g) * strides[d]
        terms = {t: c for t, c in terms.items() if c != 0}
        return from_linear(terms, const, e.dtype)


def privatize(buf, accesses, extra_frames) -> Privatization | None:
    """The per-thread shape of ``buf`` when every access indexes it as
    ``thread part + rest`` with the same thread part, and threads own disjoint slices."""
    thread_tags = {}
    for frames in extra_frames:
        for f in frames:
            thread_tags[f.var] = f.thread_tag
    all_tags = set(thread_tags.values())
    split = []
    for acc, frames in zip(accesses, extra_frames):
        dims = _split_dims(acc.index, buf, thread_tags)
        if dims is None:
            return None
        ranges = loop_ranges(acc.stack)
        split.append((dims, ranges))
    if not split or not split[0][0]:
        return None
    dim_ids = list(split[0][0])
    extents = {}
    for f in (f for frames in extra_frames for f in frames):
        extents[f.thread_tag] = max(extents.get(f.thread_tag, 0), const_value(f.extent, "thread extent"))
    shape, lo, step, determined = list(buf.shape), {}, {}, set()
    for d in dim_ids:
        sig = split[0][0][d].threads
        values, coefs = [], []
        for dims, ranges in split:
            dim = dims[d]
            if dim.threads != sig:
                return None
            vals = _rest_values(dim, ranges)
            if vals is None:
                return None
            values.append(vals)
            coefs.extend(dim.terms.values())
            # (an index may leave its dimension in code that a tail guard makes unreachable)
        rest = np.unique(np.concatenate(values))
        lo[d] = int(rest.min())
        g = 0
        for c in coefs:
            g = math.gcd(g, c)
        for dims, _ in split:
            g = math.gcd(g, dims[d].const - lo[d])
        g = g or 1
        step[d] = g
        shape[d] = (int(rest.max()) - lo[d]) // g + 1
        if sig:
            tvals = np.array([0], dtype=np.int64)
            for t, c in sig:
                tvals = np.add.outer(tvals, c * np.arange(extents[t], dtype=np.int64)).ravel()
            if tvals.size * rest.size > _ENUM_CAP:
                return None
            if np.unique(np.add.outer(tvals, rest)).size == tvals.size * rest.size:
                determined |= {t for t, _ in sig}
    if all_tags - determined:
        return None   # two threads may touch one element: not privatisable
    return Privatization(buf, thread_tags, tuple(shape), lo, step)


# --------------------------------------------------------------------------- the plan


@dataclass
class ArrayDecl:
    """A buffer declared inside a kernel: ``cuda.shared.array`` or ``cuda.local.array``."""
    buffer: Buffer
    kind: str                                  # "shared" or "local"
    size: int
    privatization: Privatization | None = None
    note: str = ""

    @property
    def nbytes(self) -> int:
        return self.size * np.dtype(self.buffer.dtype).itemsize


@dataclass
class Kernel:
    index: int
    stage: str                                 # what it computes (the global buffers it writes)
    body: object
    launch: Dict[str, int]                     # hardware tag -> launch extent
    args: Tuple[Buffer, ...]                   # global buffers, in call order
    arrays: Dict[Buffer, ArrayDecl] = field(default_factory=dict)

    @property
    def grid(self) -> tuple:
        return tuple(self.launch.get(t, 1) for t in BLOCK_TAGS)

    @property
    def block(self) -> tuple:
        return tuple(self.launch.get(t, 1) for t in THREAD_TAGS)

    @property
    def threads_per_block(self) -> int:
        return math.prod(self.block)

    @property
    def shared_bytes(self) -> int:
        return sum(a.nbytes for a in self.arrays.values() if a.kind == "shared")

    @property
    def local_bytes(self) -> int:
        return sum(a.nbytes for a in self.arrays.values() if a.kind == "local")

    def storage(self, buf) -> str:
        decl = self.arrays.get(buf)
        return decl.kind if decl is not None else "global"


@dataclass
class Plan:
    func: LoweredFunc
    kernels: list
    intermediates: Tuple[Buffer, ...]          # root buffers: device arrays owned by the module


def split_root(func: LoweredFunc):
    """(root Allocates' buffers, top-level statements inside them)."""
    body, allocs = func.body, []
    while isinstance(body, Allocate):
        allocs.append(body.buffer)
        body = body.body
    stmts = list(body.stmts) if isinstance(body, SeqStmt) else [body]
    return tuple(allocs), stmts


def plan_kernels(func: LoweredFunc, target: CUDATarget) -> Plan:
    tidy = func
    for _, fn in PASSES:       # (idempotent: a no-op where the backend's pass list ran them)
        tidy = fn(tidy)
    intermediates, stmts = split_root(tidy)
    globals_ = set(func.params) | set(intermediates)
    order = list(func.params) + list(intermediates)
    kernels = []
    tree_buffers = set(func.attrs.get("cross_thread_buffers", ()))
    for n, s in enumerate(stmts):
        kernels.append(_plan_kernel(n, s, globals_, order, target, tree_buffers))
    return Plan(func, kernels, intermediates)


def _stage_name(accesses, globals_) -> str:
    names = list(dict.fromkeys(a.buffer.name for a in accesses if a.store and a.buffer in globals_))
    return ", ".join(names) or "?"


# --------------------------------------------------------------------------- passes
#
# The CUDA target's IR-to-IR passes, run after loopc's generic lowering passes. Each is a plain
# LoweredFunc -> LoweredFunc that rewrites every kernel body (a top-level statement inside the
# root Allocates) on its own, so the statements -- the kernels -- stay as they are. Both are
# idempotent: plan_kernels runs them again, which changes nothing when the backend's pass list
# (loopc.backend) has run them already.


def map_kernels(func: LoweredFunc, fn) -> LoweredFunc:
    """``func`` with each kernel body ``b`` replaced by ``fn(b)``; ``func`` itself when none changed."""
    body, allocs = func.body, []
    while isinstance(body, Allocate):
        allocs.append(body.buffer)
        body = body.body
    if isinstance(body, SeqStmt):
        stmts = tuple(fn(s) for s in body.stmts)
        if all(a is b for a, b in zip(stmts, body.stmts)):
            return func
        body = SeqStmt(stmts)
    else:
        new = fn(body)
        if new is body:
            return func
        body = new
    for buf in reversed(allocs):
        body = Allocate(buf, body)
    return dataclasses.replace(func, body=body)


def fold_unit_loops(func: LoweredFunc) -> LoweredFunc:
    """Loops of extent 1 become their start value: a serial one disappears, a bound one keeps
    its guard but its variable is a constant (so that privatised arrays see constant indices).
    A kernel that changed is simplified again."""
    def fstmt(s):
        if isinstance(s, For) and isinstance(s.extent, E.Const) and s.extent.value == 1:
            inner = substitute_stmt(s.body, {s.var: s.min})
            if not is_hw_loop(s):
                return inner
            return s if inner is s.body else For(s.var, s.min, s.extent, s.kind, inner, s.thread_tag)
        return None

    def fold(body):
        folded = map_stmt(body, fstmt)
        if folded is body:
            return body
        return simplify(dataclasses.replace(func, body=folded)).body

    return map_kernels(func, fold)


class _PruneGuards(StmtMutator):
    def visit_IfThenElse(self, s):
        then, other = self.visit_branches(s)
        cond = prune_conjuncts(s.cond, self.ranges)
        known = prove(cond, self.ranges)
        if known is not None:
            kept = then if known else other
            return SeqStmt(()) if kept is None else kept
        return self.rebuild_if(s, cond, then, other)


def prune_guards(func: LoweredFunc) -> LoweredFunc:
    """Drop the parts of guards that the enclosing loops' ranges prove (``loopc.arith``), e.g.
    the ``0 <= (f*256 + t) // 64`` and ``... < 4096`` of a shared tile's load when the tiles
    divide."""
    return map_kernels(func, lambda body: _PruneGuards().visit(body))


#: the CUDA target's passes, in order, for its backend (``loopc.backend.Backend.passes``)
PASSES = (
    ("fold_unit_loops", fold_unit_loops),   # extent-1 loops -> their start value
    ("prune_guards", prune_guards),         # guards the loop ranges prove (floor div/mod included)
)


class _Launch(StmtVisitor):
    """The launch extent of each hardware index a kernel binds, and the checks on its loops."""

    def __init__(self, where):
        super().__init__()
        self.where, self.launch = where, {}

    def visit_For(self, s):
        where = self.where
        if s.kind is ForKind.PARALLEL:
            raise BuildError(f"{where}: loop '{s.var.name}' is parallel, a CPU annotation; on the GPU "
                             "bind it to blockIdx/threadIdx instead of s[T].parallel(...)")
        if is_hw_loop(s) and s.thread_tag in BLOCK_TAGS and not isinstance(s.extent, E.Const):
            # a symbolic extent (te.var sizes): the grid is computed at call time
            const_value(s.min, f"start for loop '{s.var.name}'")
            old = self.launch.get(s.thread_tag)
            if old is not None and not provably_equal(old, s.extent):
                raise BuildError(f"{where}: loops bound to {s.thread_tag} have the extents {old} and {s.extent}; "
                                 "with symbolic sizes every loop bound to one blockIdx needs the same extent")
            self.launch[s.thread_tag] = s.extent
        elif is_hw_loop(s):
            if s.thread_tag in THREAD_TAGS and not isinstance(s.extent, E.Const):
                raise BuildError(f"{where}: loop '{s.var.name}' is bound to {s.thread_tag} with the symbolic extent "
                                 f"{s.extent}; a block's thread count must be a constant: split the loop by a "
                                 "constant factor and bind the inner loop to threadIdx, the outer to blockIdx")
            ext = const_value(s.extent, f"extent for loop '{s.var.name}'")
            const_value(s.min, f"start for loop '{s.var.name}'")
            if is_symbolic(self.launch.get(s.thread_tag, 0)):
                raise BuildError(f"{where}: loops bound to {s.thread_tag} have the extents "
                                 f"{self.launch[s.thread_tag]} and {ext}; give them the same extent")
            for f in self.stack:
                if is_hw_loop(f) and f.thread_tag == s.thread_tag and const_value(f.extent, "extent") < ext:
                    raise BuildError(
                        f"{where}: loop '{s.var.name}' is bound to {s.thread_tag} with extent {ext} inside "
                        f"loop '{f.var.name}' bound to the same index with extent {f.extent.value}; the inner "
                        "binding cannot be larger: split the inner loop to at most the outer extent")
            self.launch[s.thread_tag] = max(self.launch.get(s.thread_tag, 0), ext)
        return super().visit_For(s)


def _plan_kernel(n, body, globals_, order, target, tree_buffers=frozenset()) -> Kernel:
    accesses = collect_accesses(body)
    stage = _stage_name(accesses, globals_)
    where = f"kernel {n} (stage {stage})"
    walk = _Launch(where)
    walk.visit(body)
    launch = walk.launch
    if not launch and all(isinstance(a.buffer.size, int) and a.buffer.size == 1 for a in accesses if a.store):
        launch["threadIdx.x"] = 1       # a scalar (a dot product, a loss): one thread computes it
    if not launch:
        first = stage.split(",")[0]
        raise BuildError(f"{where} has no loop bound to blockIdx/threadIdx, so it would run on a single GPU "
                         f"thread; {BIND_HINT.format(stage=first)}")
    used = {a.buffer for a in accesses}
    args = tuple(b for b in order if b in used)
    kernel = Kernel(n, stage, body, launch, args)
    _plan_arrays(kernel, accesses, globals_, where, tree_buffers)
    _check_nested_bindings(kernel, accesses, where)
    check_kernel_limits(kernel, target, where)
    return kernel


class _Allocs(StmtVisitor):
    """Every Allocate with the statements enclosing it."""

    def __init__(self):
        super().__init__()
        self.out = []

    def visit_Allocate(self, s):
        self.out.append((s, tuple(self.stack)))
        return super().visit_Allocate(s)


def _own_alloc(acc):
    """Position of the Allocate of ``acc.buffer`` in ``acc.stack`` (a buffer may be allocated by
    several Allocates: lowering copies a loop body when it splits off a tail iteration)."""
    return next(n for n, f in enumerate(acc.stack) if isinstance(f, Allocate) and f.buffer is acc.buffer)


def _plan_arrays(kernel, accesses, globals_, where, tree_buffers=frozenset()):
    """Where each buffer allocated in the kernel lives; ``tree_buffers`` (a cross-thread
    reduction's slots, ``loopc.lower.cross_thread``) are shared by construction: each round's
    threads write one buffer and read the other, so the race checks do not apply to them."""
    thread_tags_used = {t for t in kernel.launch if t in THREAD_TAGS}
    by_buffer = {}
    allocs = _Allocs()
    allocs.visit(kernel.body)
    for alloc, stack in allocs.out:
        by_buffer.setdefault(alloc.buffer, []).append(stack)
    for buf, stacks in by_buffer.items():
        if buf in globals_:  # pragma: no cover - lowering never re-allocates an argument
            raise BuildError(f"{where}: buffer '{buf.name}' is allocated twice")
        kinds = set()
        for stack in stacks:
            outer_threads = {f.thread_tag for f in stack if is_thread_loop(f)}
            if buf.scope in ("shared", "local"):
                kinds.add(buf.scope)
            else:  # a "global" stage computed at a loop of the kernel: per thread, or per block
                kinds.add("local" if thread_tags_used <= outer_threads else "shared")
        if len(kinds) > 1:
            raise BuildError(f"{where}: '{buf.name}' is allocated both inside and outside the thread loops; "
                             "give it an explicit scope with s.cache_read/cache_write")
        kind = kinds.pop()
        mine = [a for a in accesses if a.buffer is buf]
        for acc in mine:
            if acc.store and any(is_block_loop(f) for f in acc.stack[_own_alloc(acc) + 1:]):
                raise BuildError(
                    f"{where}: '{buf.name}' is computed inside a blockIdx loop that does not enclose it; blocks "
                    "cannot share memory within one kernel: compute it at a loop inside the blockIdx loops, or "
                    "at the root (compute_root) so that it gets its own kernel")
        if buf.symbolic:
            raise BuildError(f"{where}: the {kind} buffer '{buf.name}' has the symbolic shape "
                             f"[{', '.join(map(str, buf.shape))}]; on-chip arrays need constant sizes: compute it at a "
                             "loop whose extents are constants (split by a constant factor), or compute_root it")
        decl = ArrayDecl(buf, kind, buf.size)
        if kind == "shared":
            if buf not in tree_buffers:
                _check_shared_race(buf, mine, where)
        else:
            extra = [tuple(f for f in acc.stack[_own_alloc(acc) + 1:] if is_thread_loop(f)) for acc in mine]
            if any(extra):
                priv = privatize(buf, mine, extra)
                if priv is not None:
                    decl = ArrayDecl(buf, kind, math.prod(priv.shape), priv,
                                     f"per-thread slice {list(priv.shape)} of {list(buf.shape)}")
                elif any(acc.store and ex for acc, ex in zip(mine, extra)):
                    raise BuildError(
                        f"{where}: local buffer '{buf.name}' is allocated outside the threadIdx loops that write "
                        "it, and loopc cannot prove that each thread reads only the elements it wrote itself. "
                        "Compute it inside the thread loops (compute_at a threadIdx-bound loop of its consumer), "
                        "index it as thread_index*tile + offset, or give it scope 'shared'")
                else:
                    decl.note = "each thread computes all of it"
        kernel.arrays[buf] = decl


def _check_shared_race(buf, accesses, where):
    """A block-shared buffer must hold the same data whichever thread fills it."""
    loads_by_frame = {}
    for acc in accesses:
        if not acc.store and not acc.rmw:
            for f in acc.stack:
                loads_by_frame[id(f)] = True
    for acc in accesses:
        if not acc.store:
            continue
        pos = _own_alloc(acc)
        deps = E.free_vars(acc.index) | E.free_vars(acc.stmt.value)
        for f in acc.stack[pos + 1:]:
            if isinstance(f, IfThenElse):
                deps |= E.free_vars(f.cond)
        outer = [f for f in acc.stack[:pos] if is_thread_loop(f) and f.var in deps]
        if outer:
            names = ", ".join(f"'{f.var.name}' ({f.thread_tag})" for f in outer)
            raise BuildError(
                f"{where}: shared buffer '{buf.name}' is filled inside thread loop(s) {names} and what it holds "
                "depends on them, so the threads of a block would overwrite each other's data. loopc sizes a "
                "stage computed at a loop for one iteration of the loops around it (bound inference does not "
                "yet widen the region over threadIdx loops). Attach the shared stage at a loop outside the "
                "threadIdx-bound loops: e.g. compute the local accumulator at the block loop "
                "(s[C.local].compute_at(s[C], bx)), bind its own loops to threadIdx, and attach the shared "
                "stages at its reduction loop (see loopc.schedules.cuda.matmul)")
        for f in acc.stack[pos + 1:]:
            if is_thread_loop(f) and f.var in deps and loads_by_frame.get(id(f)):
                raise BuildError(
                    f"{where}: thread loop '{f.var.name}' ({f.thread_tag}) both fills shared buffer '{buf.name}' "
                    "and reads it, so threads would read elements that other threads have not written yet; "
                    "compute the shared stage at a loop outside that thread loop")


def _check_nested_bindings(kernel, accesses, where):
    for acc in accesses:
        if not acc.store:
            continue
        tags = [f.thread_tag for f in acc.stack if is_hw_loop(f)]
        dup = {t for t in tags if tags.count(t) > 1}
        if dup and kernel.storage(acc.buffer) != "shared":
            raise BuildError(
                f"{where}: the store to '{acc.buffer.name}' sits in two loops bound to {', '.join(sorted(dup))}; "
                "only a shared-memory stage's cooperative load may bind a loop to a thread index that an "
                "enclosing loop already uses. Leave the inner loop unbound (or bind it to another index)")
