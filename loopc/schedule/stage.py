"""A stage: one compute op's loop nest as data, and the primitives that edit it.

Each primitive checks its preconditions first (raising ScheduleError that names the
primitive, the stage, the axis and the fix), then edits the stage's data and appends a
step to the schedule's trace. Lowering reads the data; nothing here builds loops.
"""
from __future__ import annotations

import numbers
import warnings
from enum import Enum

from ..arith.extents import ceildiv, is_symbolic, mul
from ..errors import ScheduleError
from ..ir.stmt import ForKind
from ..te.expr import Reduce, Var, as_expr, free_vars
from ..te.tensor import ComputeOp, IterKind, IterVar, Range, reads_data
from .relations import Fuse, Split, descendants

#: vectorize() accepts constant extents up to this many lanes (4 AVX-512 registers of float32).
MAX_VECTOR_LANES = 64
#: unroll() accepts constant extents up to this; larger unrolls blow up compile time.
MAX_UNROLL_EXTENT = 256

#: TVM pragma keys that are loopc primitives (others are accepted hints with no effect)
PRAGMA_PRIMITIVES = {"unroll": "unroll", "vectorize": "vectorize", "parallel": "parallel",
                     "parallel_launch_point": "parallel"}
_warned_pragmas = set()


class AttachKind(Enum):
    ROOT = "root"
    INLINE = "inline"
    SCOPE = "scope"  # compute_at a consumer's loop
    SCAN = "scan"    # the init or update of a te.scan, computed by the scan's stage (TVM's kScanUpdate)


class Stage:
    def __init__(self, op: ComputeOp, schedule):
        self.origin_op = op        # the op the user declared: the stage's identity (TVM's origin_op)
        self._rewritten_op = None  # what ``op`` shows after rfactor (TVM: the replaced op)
        self.schedule = schedule
        self.body = op.body        # rewritten by cache_read / cache_write / rfactor / im2col
        self.scope = "global"      # memory scope of the stage's buffer (set by cache_read/cache_write)
        # a scan or extern op names its own (TVM: op->root_iter_vars())
        roots = getattr(op, "root_iter_vars", None)
        self.root_iter_vars = list(op.axis) + list(op.reduce_axis) if roots is None else list(roots)
        self.sequential_axes = {}  # IterVar -> why no primitive may touch it (a scan's time axis)
        self.all_iter_vars = list(self.root_iter_vars)
        self.leaf_iter_vars = list(self.root_iter_vars)
        self.relations = []
        self.iter_kinds = {}       # leaf IterVar -> ForKind (absent: SERIAL)
        self.bindings = {}         # leaf IterVar -> thread IterVar
        self.attach = AttachKind.ROOT
        self.attach_stage = None
        self.attach_ivar = None
        self.store_predicate = None   # set_store_predicate: stores happen only where it holds
        self.double_buffered = False  # double_buffer(): a recorded hint (see Stage.double_buffer)
        self.group = None             # the Group (create_group) this stage belongs to, if any
        self._aliases = {}            # IterVar the user may still pass -> this stage's axis (rfactor)
        self._names = {}           # IterVar -> name unique in this stage (what traces record)
        for iv in self.root_iter_vars:
            self.name_of(iv)

    def name_of(self, iv) -> str:
        """The axis's name, made unique within the stage (``rv``, ``rv#1``, ...) for traces."""
        if iv not in self._names:
            taken = set(self._names.values())
            name, n = iv.name, 1
            while name in taken:
                name, n = f"{iv.name}#{n}", n + 1
            self._names[iv] = name
        return self._names[iv]

    @property
    def op(self):
        """The stage's op as TVM shows it: the declared op, or after ``s.rfactor`` the rewritten
        reduction over the factored axis (``s[B].op.reduce_axis`` is the new axis; the declared
        ``B.op`` keeps its own). Its output is the declared tensor, so ``s[B].op.output(0)`` is B."""
        return self._rewritten_op or self.origin_op

    @property
    def name(self) -> str:
        """The op's name, made unique in the schedule (a second "compute" is "compute_1"): what
        traces record and replay finds."""
        return getattr(self, "_unique_name", None) or self.op.name

    @property
    def reduce_axes(self):
        return tuple(self.body.axes) if isinstance(self.body, Reduce) else ()

    @property
    def is_output(self) -> bool:
        return any(self.origin_op is t.op for t in self.schedule.outputs)

    def __repr__(self):
        return f"stage({self.name}, leaves=[{', '.join(iv.name for iv in self.leaf_iter_vars)}])"

    # ----------------------------------------------------------------------- checks

    def _fail(self, primitive, message, fix=None):
        raise ScheduleError(primitive, self.name, message, fix)

    def _leaf(self, primitive: str, iv) -> IterVar:
        """``iv`` must be a current leaf axis of this stage (a scan or extern stage has none)."""
        opaque = getattr(self.op, "opaque", None)
        if opaque:
            self._fail(primitive, opaque)
        if not isinstance(iv, IterVar):
            self._fail(primitive, f"expected an axis (IterVar), got {iv!r}",
                       f"pass an axis such as s[{self.name}].op.axis[0] or one returned by split/fuse")
        iv = self._aliases.get(iv, iv)
        if iv in self.sequential_axes:
            self._fail(primitive, f"axis '{iv.name}' {self.sequential_axes[iv]}",
                       f"schedule the other loops: {self._leaf_names()}")
        if iv in self.leaf_iter_vars:
            return iv
        if iv in self.all_iter_vars:
            kids = [r for r in self.relations if getattr(r, "parent", None) is iv or
                    getattr(r, "outer", None) is iv or getattr(r, "inner", None) is iv]
            made = ", ".join(x.name for r in kids for x in
                             ((r.outer, r.inner) if isinstance(r, Split) else (r.fused,)) if x is not iv)
            self._fail(primitive, f"axis '{iv.name}' is no longer a loop of this stage "
                       f"(it was split or fused into {made or 'other axes'})",
                       f"use one of the current loops: {self._leaf_names()}")
        owner = self.schedule._owner_of(iv)
        if owner is not None:
            self._fail(primitive, f"axis '{iv.name}' belongs to stage '{owner.name}', not to '{self.name}'",
                       f"use s[{owner.name}].{primitive}(...) or one of this stage's loops: {self._leaf_names()}")
        self._fail(primitive, f"axis '{iv.name}' is unknown to this schedule",
                   f"use one of the current loops: {self._leaf_names()}")

    def _leaf_names(self):
        return ", ".join(iv.name for iv in self.leaf_iter_vars)

    def _refuse_data_dependent(self, primitive, leaf, why):
        """A loop whose extent reads a tensor (a sparse row's elements, from a reduce axis over
        ``(0, W_indptr[j + 1] - W_indptr[j])``) runs a count known only at run time."""
        if reads_data(leaf.extent):
            self._fail(primitive, f"axis '{leaf.name}' runs a data-dependent number of times ({leaf.extent}); {why}",
                       f"split it by a constant, s[{self.name}].split({leaf.name}, factor=4), and {primitive} "
                       "another loop, or leave it serial")

    def _data_dependent_readers(self, leaf):
        """The data-dependent reduce axes whose bounds read ``leaf`` (or the root it comes from)."""
        out = []
        for red in self.leaf_iter_vars:
            if not reads_data(red.extent):
                continue
            for root in self.root_iter_vars:
                if root.var in free_vars(as_expr(red.extent)) and (
                        leaf is root or leaf in descendants(self.relations, root)):
                    out.append(red)
                    break
        return out

    def _check_data_dependent_order(self, primitive, order):
        """Every loop a data-dependent extent reads must enclose that loop."""
        position = {iv: n for n, iv in enumerate(order)}
        roots = {iv.var: iv for iv in self.root_iter_vars}
        for n, leaf in enumerate(order):
            if not reads_data(leaf.extent):
                continue
            for v in free_vars(as_expr(leaf.extent)):
                root = roots.get(v)
                if root is None:
                    continue
                inside = [x.name for x in [root] + descendants(self.relations, root) if position.get(x, -1) > n]
                if inside:
                    self._fail(primitive, f"axis '{leaf.name}' runs {leaf.extent} times, which reads loop "
                               f"{', '.join(inside)}, but {', '.join(inside)} would be inside it",
                               f"keep {', '.join(inside)} outside '{leaf.name}' (order now: {self._leaf_names()})")

    def _int_arg(self, primitive, what, value, axis):
        if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value <= 0:
            self._fail(primitive, f"{what}={value!r} for axis '{axis.name}' must be a positive int",
                       f"pass {what} >= 1")
        return int(value)

    def _check_attached_ok(self, primitive):
        if self.attach is AttachKind.INLINE:
            self._fail(primitive, "the stage is inlined into its consumers and has no loops of its own",
                       f"call s[{self.name}].compute_root() first, or drop the compute_inline")

    def _new_axis(self, name, extent, kind) -> IterVar:
        taken = set(self._names.values()) | {iv.name for iv in self.all_iter_vars}
        base, n = name, 1
        while name in taken:
            name, n = f"{base}{n}", n + 1
        iv = IterVar(Var(name), Range(0, extent), kind)
        self.all_iter_vars.append(iv)
        self._names[iv] = name
        return iv

    def _record(self, primitive, **args):
        self.schedule._record(self, primitive, args)

    # ----------------------------------------------------------------------- primitives

    def split(self, parent, factor=None, nparts=None):
        """Split one loop into two.

        before:  for i in range(E): body(i)
        after:   for i.outer in range(ceil(E / f)):
                   for i.inner in range(f):
                     if i.outer*f + i.inner < E:   # only when f does not divide E
                       body(i.outer*f + i.inner)

        Give ``factor`` (the inner extent) or ``nparts`` (the outer extent). Returns (outer, inner).
        """
        self._check_attached_ok("split")
        parent = self._leaf("split", parent)
        if (factor is None) == (nparts is None):
            self._fail("split", f"give exactly one of factor= or nparts= for axis '{parent.name}'",
                       "s[T].split(axis, factor=8) or s[T].split(axis, nparts=4)")
        extent = parent.extent
        if nparts is not None and reads_data(extent):
            self._fail("split", f"axis '{parent.name}' runs a data-dependent number of times ({extent}): nparts= "
                       "would make the inner extent data too", f"split it by a constant factor= instead, e.g. "
                       f"s[{self.name}].split({parent.name}, factor=4)")
        # a factor (or nparts) past the extent gives an inner (outer) loop of the extent, not
        # 2**40 guarded iterations. A symbolic extent n: outer ceildiv(n, f), a tail guard
        # unless f provably divides n (by nparts: an inner extent ceildiv(n, nparts))
        if factor is not None:
            f = self._int_arg("split", "factor", factor, parent)
            f = f if is_symbolic(extent) else min(f, extent)
        else:
            parts = self._int_arg("split", "nparts", nparts, parent)
            f = ceildiv(extent, parts if is_symbolic(extent) else min(parts, extent))
        outer_ext = ceildiv(extent, f)
        outer = self._new_axis(self.name_of(parent) + ".outer", outer_ext, parent.kind)
        inner = self._new_axis(self.name_of(parent) + ".inner", f, parent.kind)
        self.relations.append(Split(parent, outer, inner, f))
        pos = self.leaf_iter_vars.index(parent)
        self.leaf_iter_vars[pos:pos + 1] = [outer, inner]
        self._record("split", axis=self.name_of(parent), factor=factor, nparts=nparts)
        return outer, inner

    def tile(self, x_parent, y_parent, x_factor, y_factor):
        """Split two loops and reorder them into tiles.

        before:  for i: for j: body
        after:   for i.outer: for j.outer: for i.inner in range(xf): for j.inner in range(yf): body

        Returns (x_outer, y_outer, x_inner, y_inner).
        """
        # check everything first, so that a bad argument leaves the stage untouched
        self._check_attached_ok("tile")
        x, y = self._leaf("tile", x_parent), self._leaf("tile", y_parent)
        if x is y:
            self._fail("tile", f"both axes are '{x.name}'", "tile two different loops")
        self._int_arg("tile", "x_factor", x_factor, x)
        self._int_arg("tile", "y_factor", y_factor, y)
        xo, xi = self.split(x, factor=x_factor)
        yo, yi = self.split(y, factor=y_factor)
        self.reorder(xo, yo, xi, yi)
        return xo, yo, xi, yi

    def fuse(self, *axes):
        """Fuse adjacent loops (outer first) into one.

        before:  for i in range(I): for j in range(J): body(i, j)
        after:   for i.j.fused in range(I*J): body(i.j.fused // J, i.j.fused % J)
        """
        self._check_attached_ok("fuse")
        if len(axes) == 1 and isinstance(axes[0], (list, tuple)):
            axes = tuple(axes[0])
        if not axes:
            return self._unit_loop()
        if len(axes) == 1:
            return self._leaf("fuse", axes[0])    # TVM: fusing one loop is that loop
        ivs = [self._leaf("fuse", a) for a in axes]
        pos = [self.leaf_iter_vars.index(iv) for iv in ivs]
        if pos != list(range(pos[0], pos[0] + len(pos))):
            self._fail("fuse", f"axes {', '.join(iv.name for iv in ivs)} are not adjacent loops, outer first "
                       f"(current order: {self._leaf_names()})",
                       "reorder them next to each other first, or pass them outer to inner")
        for iv in ivs:
            self._refuse_data_dependent("fuse", iv, "a fused loop could not recover it by // and %")
        kinds = {iv.kind for iv in ivs}
        if len(kinds) > 1:
            red = ", ".join(iv.name for iv in ivs if iv.kind is IterKind.REDUCE)
            data = ", ".join(iv.name for iv in ivs if iv.kind is not IterKind.REDUCE)
            self._fail("fuse", f"cannot fuse reduction axis {red} with data-parallel axis {data}",
                       "fuse reduction axes only with reduction axes")
        fused = ivs[0]
        for iv in ivs[1:]:
            fname, iname = self.name_of(fused), self.name_of(iv)
            new = self._new_axis(f"{fname}.{iname}.fused" if not fname.endswith(".fused")
                                 else f"{fname[:-6]}.{iname}.fused", mul(fused.extent, iv.extent), iv.kind)
            self.relations.append(Fuse(fused, iv, new))
            fused = new
        self.leaf_iter_vars[pos[0]:pos[-1] + 1] = [fused]
        self._record("fuse", axes=[self.name_of(iv) for iv in ivs])
        return fused

    def _unit_loop(self) -> IterVar:
        """TVM's ``s[T].fuse()`` with no axes: a new loop of extent 1, outermost (usable with
        bind and compute_at).

        before:  for i in range(N): body(i)
        after:   for fused in range(1): for i in range(N): body(i)
        """
        iv = self._new_axis("fused", 1, IterKind.DATA_PAR)
        self.root_iter_vars.append(iv)
        self.leaf_iter_vars.insert(0, iv)
        self._record("fuse", axes=[])
        return iv

    def reorder(self, *axes):
        """Put the given loops in this order, in the positions they occupy now.

        before:  for i: for j: for k: body        reorder(k, i)
        after:   for k: for j: for i: body
        """
        self._check_attached_ok("reorder")
        if len(axes) == 1 and isinstance(axes[0], (list, tuple)):
            axes = tuple(axes[0])
        ivs = [self._leaf("reorder", a) for a in axes]
        seen = set()
        for iv in ivs:
            if iv in seen:
                self._fail("reorder", f"axis '{iv.name}' is listed twice",
                           "list each loop once, in the order you want")
            seen.add(iv)
        slots = sorted(self.leaf_iter_vars.index(iv) for iv in ivs)
        order = list(self.leaf_iter_vars)
        for slot, iv in zip(slots, ivs):
            order[slot] = iv
        self._check_data_dependent_order("reorder", order)
        self.leaf_iter_vars[:] = order
        self._record("reorder", axes=[self.name_of(iv) for iv in ivs])

    def _annotate(self, primitive, iv, kind):
        self._check_attached_ok(primitive)
        iv = self._leaf(primitive, iv)
        old = self.iter_kinds.get(iv, ForKind.SERIAL)
        if old not in (ForKind.SERIAL, kind):
            self._fail(primitive, f"axis '{iv.name}' is already {old.value}",
                       "annotate each loop once (split it to combine kinds)")
        self.iter_kinds[iv] = kind
        self._record(primitive, axis=self.name_of(iv))
        return iv

    def unroll(self, iv):
        """Unroll a loop of constant extent in loopc's IR (each copy sees a constant index).

        before:  for i in range(3): body(i)
        after:   body(0); body(1); body(2)
        """
        leaf = self._leaf("unroll", iv)
        self._refuse_data_dependent("unroll", leaf, "there is no count to unroll at compile time")
        if is_symbolic(leaf.extent):
            self._fail("unroll", f"axis '{leaf.name}' has extent {leaf.extent}, not a compile-time constant",
                       f"split it by a constant factor, e.g. s[{self.name}].split({leaf.name}, factor=4), "
                       "and unroll the inner loop")
        # a stage computed at a consumer's loop gets its extents from bound inference: checked at lowering
        if self.attach is AttachKind.ROOT and leaf.extent > MAX_UNROLL_EXTENT:
            self._fail("unroll", f"axis '{leaf.name}' has extent {leaf.extent}, above the cap of "
                       f"{MAX_UNROLL_EXTENT} (large unrolls make compile time explode)",
                       f"split it first, e.g. s[{self.name}].split({leaf.name}, factor=8), and unroll the inner loop")
        return self._annotate("unroll", leaf, ForKind.UNROLLED)

    def vectorize(self, iv):
        """Run a loop of constant extent V as V-lane vector operations.

        before:  for j in range(8): C[j] = A[j] + B[j]
        after:   C[0:8] = A[0:8] + B[0:8]        # one <8 x float> add
        """
        leaf = self._leaf("vectorize", iv)
        self._refuse_data_dependent("vectorize", leaf, "vector lanes need a constant count")
        readers = self._data_dependent_readers(leaf)
        if readers:
            self._fail("vectorize", f"the reduction loop {readers[0].name} runs {readers[0].extent} times, which "
                       f"reads '{leaf.name}': each lane would run a different count",
                       "vectorize a loop that the data-dependent bounds do not read (e.g. the batch rows)")
        if leaf.kind is IterKind.REDUCE:
            self._fail("vectorize", f"axis '{leaf.name}' is a reduction axis: its lanes would race on one "
                       "accumulator", "vectorize a data-parallel axis instead (or rfactor the reduction first)")
        if not isinstance(leaf.extent, int):
            self._fail("vectorize", f"axis '{leaf.name}' has extent {leaf.extent}, not a compile-time constant",
                       f"split it by a constant factor, e.g. s[{self.name}].split({leaf.name}, factor=8), "
                       "and vectorize the inner loop")
        if self.attach is AttachKind.ROOT and leaf.extent > MAX_VECTOR_LANES:
            self._fail("vectorize", f"axis '{leaf.name}' has extent {leaf.extent}, above the cap of "
                       f"{MAX_VECTOR_LANES} lanes",
                       f"split it first, e.g. s[{self.name}].split({leaf.name}, factor=16), and vectorize the inner loop")
        return self._annotate("vectorize", leaf, ForKind.VECTORIZED)

    def parallel(self, iv):
        """Run the iterations of a loop on all cores.

        before:  for i in range(E): body(i)
        after:   for i in parallel(E): body(i)     # iterations split among threads
        """
        leaf = self._leaf("parallel", iv)
        self._refuse_data_dependent("parallel", leaf, "it is a reduction whose iterations add into one output")
        if leaf.kind is IterKind.REDUCE:
            self._fail("parallel", f"axis '{leaf.name}' is a reduction axis: threads would race on the "
                       "same output", "parallelise a data-parallel axis instead (or rfactor the reduction first)")
        return self._annotate("parallel", leaf, ForKind.PARALLEL)

    def pragma(self, iv, key: str, value=None):
        """TVM's ``s[C].pragma(axis, key)``: "unroll", "vectorize", "parallel" (and TVM's
        "parallel_launch_point") apply those primitives to the loop; any other key (such as
        "auto_unroll_max_step" or "debug_skip_region") is a hint loopc does not act on: accepted,
        no effect, a one-time warning naming it.

        before:  for i in range(4): body(i)         s[C].pragma(i, "unroll")
        after:   body(0); body(1); body(2); body(3)
        """
        if not isinstance(key, str):
            self._fail("pragma", f"the pragma key must be a string, got {key!r}", 'e.g. s[C].pragma(axis, "unroll")')
        primitive = PRAGMA_PRIMITIVES.get(key)
        if primitive is not None:
            return getattr(self, primitive)(iv)
        leaf = self._leaf("pragma", iv)
        if key not in _warned_pragmas:
            _warned_pragmas.add(key)
            warnings.warn(f"pragma {key!r} on stage '{self.name}' has no effect in loopc (it acts on "
                          f"{', '.join(sorted(PRAGMA_PRIMITIVES))})", stacklevel=2)
        return leaf

    def set_scope(self, scope: str):
        """The memory scope of this stage's buffer: "global", "shared" (one copy per GPU block) or
        "local" (per thread) — what ``cache_read``/``cache_write`` set for the stages they add.

        before:  compute = allocate(float32[64], scope="global")
        after:   compute = allocate(float32[64], scope="shared")
        """
        from .rewrites import SCOPES
        if scope not in SCOPES:
            self._fail("set_scope", f"unknown scope {scope!r}", f"use one of {', '.join(SCOPES)}")
        if self.is_output and scope != "global":
            self._fail("set_scope", f"an output lives in the caller's memory, not in {scope!r} memory",
                       "cache_write the output and set the scope of the cache stage")
        self.scope = scope
        self._record("set_scope", scope=scope)
        return self

    def _check_placement(self, primitive):
        """A te.scan or te.extern stage is computed whole at the root; a scan's init and update
        are computed by the scan."""
        if getattr(self.op, "opaque", None) and primitive != "compute_root":
            self._fail(primitive, f"'{self.name}' is a {type(self.op).__name__} stage, computed as a whole at the "
                       "root: it cannot be inlined or computed inside another stage's loops",
                       "leave it at the root; schedule the stages around it")
        if self.attach is AttachKind.SCAN:
            self._fail(primitive, f"'{self.name}' is computed by scan '{self.attach_stage.name}' into the scan's "
                       "output, step by step", f"schedule its loops instead (s[{self.name}].split(...))")

    def compute_inline(self):
        """Substitute this stage's expression into every consumer; it gets no loops or buffer.

        before:  for i: B[i] = A[i] * 2          after:  for i: C[i] = (A[i] * 2) + 1
                 for i: C[i] = B[i] + 1
        """
        self._check_placement("compute_inline")
        if self.is_output:
            self._fail("compute_inline", "an output stage cannot be inlined (nothing would compute it)",
                       "inline the stages that feed it, not the output")
        if self.reduce_axes:
            self._fail("compute_inline", "a reduction cannot be inlined into its consumers",
                       "keep it as its own stage (compute_root), or compute_at a consumer loop")
        if self.op.num_outputs > 1:
            self._fail("compute_inline", f"the op has {self.op.num_outputs} outputs, computed together; inlining "
                       "would compute them once per read (TVM does not inline multi-output ops either)",
                       "keep it as its own stage, or compute_at a consumer loop")
        if self.relations or self.iter_kinds:
            self._fail("compute_inline", "the stage already has split/fuse/annotations that inlining would drop",
                       "call compute_inline on a fresh stage")
        attached = [st.name for st in self.schedule.stages
                    if st.attach is AttachKind.SCOPE and st.attach_stage is self]
        if attached:
            self._fail("compute_inline", f"{', '.join(attached)} is computed at a loop of this stage, which "
                       "inlining would remove", f"compute_at {attached[0]} to a loop of a stage that stays, "
                       "or compute_root() it first")
        self.attach, self.attach_stage, self.attach_ivar = AttachKind.INLINE, None, None
        self._record("compute_inline")

    def compute_at(self, parent, iv):
        """Compute this stage inside loop ``iv`` of its consumer ``parent``, over exactly the
        region that one iteration of ``iv`` reads (bound inference at lowering).

        before:  for i in range(N): B[i] = A[i] * 2
                 for i.outer in range(N/4): for i.inner in range(4): C[..] = B[..] + B[.. + 1]
        after:   for i.outer in range(N/4):
                   for b in range(5): B_local[b] = A[i.outer*4 + b] * 2     # 4 + 1 halo
                   for i.inner in range(4): C[..] = B_local[i.inner] + B_local[i.inner + 1]

        As in TVM, ``parent`` may read this stage through stages between them that are inlined
        before lowering (``s[B].compute_at(s[C], ax)`` then ``s[mid].compute_inline()``): the
        order of the two calls does not matter; lowering checks that they are inlined by then.
        """
        self._check_placement("compute_at")
        if not isinstance(parent, Stage):
            self._fail("compute_at", f"the first argument must be a stage such as s[C], got {parent!r}",
                       "call s[B].compute_at(s[C], axis_of_C)")
        if parent.schedule is not self.schedule:
            self._fail("compute_at", f"stage '{parent.name}' belongs to another schedule")
        if parent is self:
            self._fail("compute_at", "a stage cannot be computed inside its own loops")
        if parent.attach is AttachKind.INLINE:
            self._fail("compute_at", f"stage '{parent.name}' is inlined into its consumers and has no loops",
                       f"call s[{parent.name}].compute_root() first, or attach to a stage that reads it")
        if self.is_output:
            self._fail("compute_at", "an output stage must be computed at the root",
                       "attach the stages that feed the output instead")
        readers = self.schedule.readers_of(self)
        through = parent not in readers and self.schedule.reads_through(parent, self)
        if parent not in readers and not through:
            points = "; ".join(f"s[{r.name}] at one of [{r._leaf_names()}]" for r in readers) or "none (nothing reads it)"
            self._fail("compute_at", f"stage '{parent.name}' does not read '{self.name}', so its loops cannot "
                       f"hold it. Legal attachment points: {points}",
                       "attach to a loop of a stage that reads this tensor, or use compute_root()")
        # read only through stages between them (TVM accepts it): lowering checks that they
        # are inlined by then, so the order of compute_at and compute_inline does not matter
        others = [r for r in readers if r is not parent] if not through else []
        if others:
            self._fail("compute_at", f"'{self.name}' is also read by {', '.join(r.name for r in others)}; a buffer "
                       f"computed inside a loop of '{parent.name}' would not be there for them",
                       "compute it at the root, or give each reader its own copy with s.cache_read")
        if not (isinstance(iv, IterVar) and iv in parent.leaf_iter_vars):
            owner = self.schedule._owner_of(iv) if isinstance(iv, IterVar) else None
            name = iv.name if isinstance(iv, IterVar) else repr(iv)
            where = (f"belongs to stage '{owner.name}', not to '{parent.name}'" if owner not in (None, parent)
                     else f"is not a current loop of '{parent.name}'")
            self._fail("compute_at", f"axis '{name}' {where}",
                       f"pass one of {parent.name}'s loops: {parent._leaf_names()}")
        leaf = iv
        at = parent
        while at.attach is AttachKind.SCOPE:
            if at.attach_stage is self:
                self._fail("compute_at", f"'{parent.name}' is itself computed inside '{self.name}': a cycle",
                           "compute one of them at the root")
            at = at.attach_stage
        if parent.iter_kinds.get(leaf) is ForKind.VECTORIZED:
            self._fail("compute_at", f"loop '{leaf.name}' of '{parent.name}' is vectorized; a stage cannot be "
                       "computed inside vector lanes", "attach to an enclosing loop")
        self.attach, self.attach_stage, self.attach_ivar = AttachKind.SCOPE, parent, leaf
        self._record("compute_at", parent=parent.name, axis=parent.name_of(leaf))

    def bind(self, iv, thread_axis):
        """Bind a loop to a GPU block/thread index (consumed by the CUDA target).

        before:  for i.outer in range(64): for i.inner in range(256): body
        after:   for i.outer in thread_binding(64, "blockIdx.x"):
                   for i.inner in thread_binding(256, "threadIdx.x"): body

        A reduction loop may be bound to ``threadIdx.*`` (TVM's cross-thread reduction): the
        threads' partial results are combined by a tree in shared memory and thread 0 stores
        the result (``loopc.lower.cross_thread``). Binding it to ``blockIdx.*`` is an error.
        """
        self._check_attached_ok("bind")
        leaf = self._leaf("bind", iv)
        self._refuse_data_dependent("bind", leaf, "a GPU launch needs its thread counts before it reads the data")
        if not isinstance(thread_axis, IterVar) or thread_axis.kind is not IterKind.THREAD:
            self._fail("bind", f"the second argument must be te.thread_axis(...), got {thread_axis!r}",
                       'pass te.thread_axis("blockIdx.x") or te.thread_axis("threadIdx.x")')
        if leaf.kind is IterKind.REDUCE and not thread_axis.thread_tag.startswith("threadIdx"):
            self._fail("bind", f"axis '{leaf.name}' is a reduction axis: only the threads of one block can "
                       f"combine their partial results, not {thread_axis.thread_tag}",
                       "bind it to threadIdx.x/y/z (a cross-thread reduction), or rfactor it first")
        for other, t in self.bindings.items():
            if t.thread_tag == thread_axis.thread_tag and other is not leaf:
                self._fail("bind", f"{thread_axis.thread_tag} is already bound to axis '{other.name}'",
                           "bind each thread tag once per stage (fuse the loops first)")
        if self.iter_kinds.get(leaf, ForKind.SERIAL) not in (ForKind.SERIAL, ForKind.THREAD_BINDING):
            self._fail("bind", f"axis '{leaf.name}' is already {self.iter_kinds[leaf].value}")
        self.iter_kinds[leaf] = ForKind.THREAD_BINDING
        self.bindings[leaf] = thread_axis
        self._record("bind", axis=self.name_of(leaf), tag=thread_axis.thread_tag)
        return leaf

    def compute_root(self):
        """Compute this stage in its own loop nest at the top of the function (the default)."""
        self._check_placement("compute_root")
        self.attach, self.attach_stage, self.attach_ivar = AttachKind.ROOT, None, None
        self._record("compute_root")

    # ------------------------------------------------------------- TVM hints and guards

    def double_buffer(self):
        """TVM's ``s[S].double_buffer()`` on a "shared" stage computed at a loop: a hint that
        the next iteration's tile may load while the current one is used (two buffers,
        alternating). loopc records and replays it and checks where it applies; the CUDA code
        it generates is the single-buffered one (a load, a barrier, the use), so results are
        identical and only the overlap TVM hopes for is missing (a documented difference).

        before:  for ko: S[...] = A[...]; sync; C += S[...]
        after:   the same loops (loopc); TVM: S has two halves, iteration ko loads half (ko+1)%2
        """
        if self.scope != "shared":
            self._fail("double_buffer", f"the stage's buffer is in {self.scope!r} memory; double buffering "
                       "overlaps loads into shared memory", f"use s.cache_read(..., \"shared\", ...) or "
                       f"s[{self.name}].set_scope(\"shared\") first")
        if self.attach is not AttachKind.SCOPE:
            self._fail("double_buffer", "the stage is not computed at a loop, so there is no next tile to "
                       "load early", f"call s[{self.name}].compute_at(s[consumer], loop) first")
        self.double_buffered = True
        self._record("double_buffer")
        return self

    def set_store_predicate(self, predicate):
        """Store the stage's values only where ``predicate`` holds (TVM uses it so that one
        thread of several that computed the same value writes it). The predicate may use the
        stage's axes, ``te.thread_axis`` variables bound in this stage, constants, arithmetic,
        comparisons and and/or/not.

        before:  for i: B[i] = f(i)
        after:   for i: if pred(i): B[i] = f(i)
        """
        from .expr_json import check_predicate, encode
        pred = check_predicate(self, predicate)
        self.store_predicate = pred
        self._record("set_store_predicate", predicate=encode(self, pred))
        return self
