"""Config spaces: the knobs a template defines, and one point of them (a ConfigEntity).

A template calls ``cfg.define_split / define_reorder / define_annotate / define_knob`` and then
``cfg[name].apply(s, T, axis)``. While a task collects its space, ``cfg`` is a
:class:`ConfigSpace`: each ``define_*`` adds a knob and ``cfg[name]`` is that knob's first
choice, so the template runs through once. While a candidate is built, ``cfg`` is a
:class:`ConfigEntity`: ``define_*`` only checks the knob exists and ``cfg[name]`` is the chosen
value.

A config is a point in the product of the knobs; its ``index`` is a mixed-radix number whose
first knob is the least significant digit (AutoTVM's convention).
"""
from __future__ import annotations

import itertools
import json
import math
from functools import reduce

from ..errors import LoopcError
from ..schedule.stage import MAX_UNROLL_EXTENT, MAX_VECTOR_LANES, Stage
from ..te.tensor import IterKind

#: ``define_reorder(policy="all")`` enumerates n! orders; above this many axes that explodes.
MAX_REORDER_AXES = 7


def _extent(axis, what) -> int:
    """An int, or an axis (IterVar) whose extent is known."""
    if isinstance(axis, bool):
        raise LoopcError(f"{what}: expected an axis or an int extent, got {axis!r}")
    if isinstance(axis, int):
        ext = axis
    else:
        ext = getattr(axis, "extent", None)
    if not isinstance(ext, int) or ext < 1:
        raise LoopcError(f"{what}: expected an axis with a constant extent or a positive int, got {axis!r}")
    return ext


def _stage(s, T):
    if isinstance(T, Stage):
        return T
    return s[T]


def _divisors(n):
    small = [d for d in range(1, int(math.isqrt(n)) + 1) if n % d == 0]
    return sorted(set(small + [n // d for d in small]))


def _factorizations(n, parts):
    """Every ordered tuple of ``parts`` positive ints whose product is ``n``."""
    if parts == 1:
        return [(n,)]
    out = []
    for d in _divisors(n):
        out += [(d,) + rest for rest in _factorizations(n // d, parts - 1)]
    return out


# --------------------------------------------------------------------------- entities


class SplitEntity:
    """Split sizes, outer to inner: ``size[0]`` is the outer extent (``ceil(extent / prod(rest))``)."""
    kind = "sp"

    def __init__(self, size):
        self.size = tuple(int(x) for x in size)

    def apply(self, s, T, axis):
        """Split ``axis`` of ``s[T]`` into ``len(size)`` loops; returns them outer to inner."""
        stage = _stage(s, T)
        inners = []
        for factor in reversed(self.size[1:]):
            axis, inner = stage.split(axis, factor=factor)
            inners.append(inner)
        return [axis] + inners[::-1]

    @property
    def value(self):
        return list(self.size)

    def __eq__(self, other):
        return isinstance(other, SplitEntity) and self.size == other.size

    def __hash__(self):
        return hash(self.size)

    def __repr__(self):
        return f"sp{list(self.size)}"


class ReorderEntity:
    """A permutation: ``perm[k]`` is the position (in the defined axis list) of the k-th loop."""
    kind = "re"

    def __init__(self, perm):
        self.perm = tuple(int(x) for x in perm)

    def apply(self, s, T, axes):
        """Reorder ``axes`` of ``s[T]``; returns them in their new order."""
        if len(axes) != len(self.perm):
            raise LoopcError(f"reorder config has {len(self.perm)} positions but apply() got {len(axes)} axes")
        new = [axes[i] for i in self.perm]
        _stage(s, T).reorder(*new)
        return new

    @property
    def value(self):
        return list(self.perm)

    def __eq__(self, other):
        return isinstance(other, ReorderEntity) and self.perm == other.perm

    def __hash__(self):
        return hash(self.perm)

    def __repr__(self):
        return f"re{list(self.perm)}"


ANNOTATIONS = ("none", "unroll", "vec")


class AnnotateEntity:
    """One annotation per axis: ``"none"``, ``"unroll"`` or ``"vec"``."""
    kind = "an"

    def __init__(self, anns):
        anns = tuple(str(a) for a in anns)
        for a in anns:
            if a not in ANNOTATIONS:
                raise LoopcError(f"unknown annotation {a!r}; use one of {', '.join(ANNOTATIONS)}")
        self.anns = anns

    def apply(self, s, T, axes, max_unroll=None):
        """Annotate ``axes`` of ``s[T]``; returns them. ``max_unroll`` skips longer unrolls."""
        if len(axes) != len(self.anns):
            raise LoopcError(f"annotate config has {len(self.anns)} entries but apply() got {len(axes)} axes")
        stage = _stage(s, T)
        for ax, ann in zip(axes, self.anns):
            if ann == "unroll":
                if max_unroll is None or (ax.extent or 0) <= max_unroll:
                    stage.unroll(ax)
            elif ann == "vec":
                stage.vectorize(ax)
        return list(axes)

    @property
    def value(self):
        return list(self.anns)

    def __eq__(self, other):
        return isinstance(other, AnnotateEntity) and self.anns == other.anns

    def __hash__(self):
        return hash(self.anns)

    def __repr__(self):
        return f"an{list(self.anns)}"


class OtherOptionEntity:
    """A plain knob value: ``cfg[name].val``."""
    kind = "ot"

    def __init__(self, val):
        self.val = val

    @property
    def value(self):
        return self.val

    def __eq__(self, other):
        return isinstance(other, OtherOptionEntity) and json.dumps(self.val) == json.dumps(other.val)

    def __hash__(self):
        return hash(json.dumps(self.val))

    def __repr__(self):
        return repr(self.val)


ENTITY_KINDS = {cls.kind: cls for cls in (SplitEntity, ReorderEntity, AnnotateEntity, OtherOptionEntity)}


def entity_from_json(kind, value):
    if kind not in ENTITY_KINDS:
        raise LoopcError(f"unknown knob kind {kind!r} in a config (known: {', '.join(ENTITY_KINDS)})")
    return ENTITY_KINDS[kind](value)


# --------------------------------------------------------------------------- knobs (transform spaces)


class Knob:
    """The choices of one knob, in a fixed order."""

    def __init__(self, name, kind, entities, description):
        if not entities:
            raise LoopcError(f"knob {name!r} has no choices ({description}); loosen its filter or candidates")
        self.name = name
        self.kind = kind
        self.entities = list(entities)
        self.description = description
        self._index = {e: i for i, e in enumerate(self.entities)}
        if len(self._index) != len(self.entities):
            raise LoopcError(f"knob {name!r} lists the same choice twice")

    def __len__(self):
        return len(self.entities)

    def __getitem__(self, i):
        return self.entities[i]

    def index_of(self, entity):
        """The position of ``entity`` among the choices, or None."""
        return self._index.get(entity)

    def __repr__(self):
        return f"{self.name}: {self.description}, {len(self)} choices"


def _split_knob(name, extent, num_outputs, policy, candidate, filter, max_factor):
    if not isinstance(num_outputs, int) or num_outputs < 2:
        raise LoopcError(f"define_split {name!r}: num_outputs must be an int >= 2, got {num_outputs!r}")
    if policy == "factors":
        sizes = _factorizations(extent, num_outputs)
    elif policy == "power2":
        pows = [1 << p for p in range(extent.bit_length()) if (1 << p) <= extent]
        sizes = []
        for inner in itertools.product(pows, repeat=num_outputs - 1):
            prod = math.prod(inner)
            if prod <= extent:
                sizes.append((-(-extent // prod),) + inner)
    elif policy == "candidate":
        if not candidate:
            raise LoopcError(f"define_split {name!r}: policy='candidate' needs candidate=[[outer, ..., inner], ...]")
        sizes = []
        for c in candidate:
            c = list(c)
            if len(c) != num_outputs or not all(isinstance(x, int) and (x >= 1 or (k == 0 and x == -1))
                                                 for k, x in enumerate(c)):
                raise LoopcError(f"define_split {name!r}: candidate {c!r} must list {num_outputs} positive ints "
                                 "(the first may be -1: the rest of the extent)")
            prod = math.prod(c[1:])
            sizes.append((-(-extent // prod),) + tuple(c[1:]))
    else:
        raise LoopcError(f"define_split {name!r}: unknown policy {policy!r}; use 'factors', 'power2' or 'candidate'")
    entities = [SplitEntity(sz) for sz in sizes]
    if max_factor is not None:
        entities = [e for e in entities if max(e.size[1:]) <= max_factor]
    if filter is not None:
        entities = [e for e in entities if filter(e)]
    seen, unique = set(), []
    for e in entities:
        if e not in seen:
            seen.add(e)
            unique.append(e)
    return Knob(name, "sp", unique, f"split of extent {extent} into {num_outputs}, policy {policy}")


def _reorder_knob(name, axes, policy, candidate):
    n = len(axes)
    if policy == "all":
        if n > MAX_REORDER_AXES:
            raise LoopcError(f"define_reorder {name!r}: {n} axes give {math.factorial(n)} orders; "
                             f"list a few with policy='candidate' (or use at most {MAX_REORDER_AXES} axes)")
        perms = list(itertools.permutations(range(n)))
    elif policy == "candidate":
        if not candidate:
            raise LoopcError(f"define_reorder {name!r}: policy='candidate' needs candidate=[[axes...], ...]")
        perms = []
        for c in candidate:
            perm = []
            for a in c:
                if isinstance(a, int) and not isinstance(a, bool):
                    perm.append(a)
                else:
                    found = [k for k, ax in enumerate(axes) if ax is a]
                    if not found:
                        raise LoopcError(f"define_reorder {name!r}: candidate axis {a!r} is not among the defined axes")
                    perm.append(found[0])
            if sorted(perm) != list(range(n)):
                raise LoopcError(f"define_reorder {name!r}: candidate {c!r} is not a permutation of the {n} axes")
            perms.append(tuple(perm))
    else:
        raise LoopcError(f"define_reorder {name!r}: unknown policy {policy!r}; use 'all' or 'candidate'")
    names = ", ".join(getattr(a, "name", str(a)) for a in axes)
    return Knob(name, "re", [ReorderEntity(p) for p in perms], f"reorder of ({names}), policy {policy}")


def _annotate_knob(name, axes, policy):
    exts = [getattr(a, "extent", None) for a in axes]
    reduce = [getattr(a, "kind", None) is IterKind.REDUCE for a in axes]

    def can(ann, ext, is_reduce):
        if ann == "unroll":
            return ext is None or ext <= MAX_UNROLL_EXTENT
        if ann == "vec":       # a reduction axis is never vectorized (its lanes would race)
            return not is_reduce and (ext is None or ext <= MAX_VECTOR_LANES)
        return True

    if policy == "try_unroll":
        choices = [["none", "unroll"] for _ in axes]
    elif policy == "try_vectorize":
        choices = [["none"] for _ in axes[:-1]] + [["none", "vec"]]
    elif policy == "try_unroll_vec":
        choices = [["none", "unroll"] for _ in axes[:-1]] + [["none", "unroll", "vec"]]
    else:
        raise LoopcError(f"define_annotate {name!r}: unknown policy {policy!r}; "
                         "use 'try_unroll', 'try_vectorize' or 'try_unroll_vec'")
    if not axes:
        raise LoopcError(f"define_annotate {name!r}: needs at least one axis")
    choices = [[c for c in cs if can(c, e, r)] for cs, e, r in zip(choices, exts, reduce)]
    names = ", ".join(getattr(a, "name", str(a)) for a in axes)
    return Knob(name, "an", [AnnotateEntity(c) for c in itertools.product(*choices)],
                f"annotate ({names}), policy {policy}")


def _other_knob(name, values):
    values = list(values)
    for v in values:
        try:
            json.dumps(v)
        except (TypeError, ValueError) as err:
            raise LoopcError(f"define_knob {name!r}: value {v!r} is not JSON-serialisable "
                             "(records store knob values as JSON)") from err
    return Knob(name, "ot", [OtherOptionEntity(v) for v in values], f"knob {values!r}")


# --------------------------------------------------------------------------- spaces and configs


class _ConfigBase:
    """What a template sees as ``cfg``: the define_* methods, ``cfg[name]`` and ``add_flop``."""

    def __init__(self):
        self.flop = 0

    def add_flop(self, flop):
        """Declare the floating-point operations of the operator (for GFLOP/s)."""
        if not isinstance(flop, (int, float)) or flop < 0:
            raise LoopcError(f"add_flop needs a non-negative number, got {flop!r}")
        self.flop += flop

    def define_split(self, name, axis, num_outputs=2, policy="factors", candidate=None, filter=None,
                     max_factor=None):
        """A knob that splits ``axis`` (an axis or an int extent) into ``num_outputs`` loops.

        policy ``"factors"``: every exact factorisation; ``"power2"``: powers of two for the inner
        loops (tails guarded); ``"candidate"``: the given size lists, outer first (the outer may
        be -1). ``filter(entity) -> bool`` keeps some; ``max_factor`` bounds the inner sizes.
        """
        ext = _extent(axis, f"define_split {name!r}")
        self._define(name, lambda: _split_knob(name, ext, num_outputs, policy, candidate, filter, max_factor))

    def define_reorder(self, name, axes, policy="all", candidate=None):
        """A knob that orders ``axes``: every permutation, or the ``candidate`` orders."""
        axes = list(axes)
        self._define(name, lambda: _reorder_knob(name, axes, policy, candidate))

    def define_annotate(self, name, axes, policy="try_unroll"):
        """A knob that unrolls / vectorizes ``axes``: ``try_unroll`` (each axis), ``try_vectorize``
        (the last axis) or ``try_unroll_vec`` (each axis unrolled, the last also vectorized)."""
        axes = list(axes)
        self._define(name, lambda: _annotate_knob(name, axes, policy))

    def define_knob(self, name, values):
        """A knob with explicit ``values`` (JSON-serialisable); read it as ``cfg[name].val``."""
        self._define(name, lambda: _other_knob(name, values))

    def _define(self, name, make):  # pragma: no cover - overridden
        raise NotImplementedError


class ConfigSpace(_ConfigBase):
    """The knobs of a template for one workload; ``len(space)`` configs, ``space.get(i)``."""

    def __init__(self):
        super().__init__()
        self.space_map = {}
        self._first = {}

    def _define(self, name, make):
        if not isinstance(name, str) or not name:
            raise LoopcError(f"a knob needs a non-empty string name, got {name!r}")
        if name in self.space_map:
            raise LoopcError(f"knob {name!r} is defined twice in this template")
        knob = make()
        self.space_map[name] = knob
        self._first[name] = knob[0]

    def __getitem__(self, name):
        if name not in self._first:
            raise LoopcError(f"knob {name!r} is not defined; call cfg.define_*({name!r}, ...) before cfg[{name!r}]")
        return self._first[name]

    @property
    def dims(self):
        return [len(k) for k in self.space_map.values()]

    def __len__(self):
        return reduce(lambda a, b: a * b, self.dims, 1)

    def knob_indices(self, index):
        """The per-knob choice indices of config ``index`` (first knob least significant)."""
        out = []
        for d in self.dims:
            out.append(index % d)
            index //= d
        return out

    def index_from_knobs(self, indices):
        index, scale = 0, 1
        for i, d in zip(indices, self.dims):
            index += i * scale
            scale *= d
        return index

    def get(self, index):
        """Config number ``index`` (0 <= index < len(self))."""
        if not isinstance(index, int) or not 0 <= index < len(self):
            raise LoopcError(f"config index {index!r} is outside this space of {len(self)} configs")
        entities = {name: knob[i] for (name, knob), i in zip(self.space_map.items(), self.knob_indices(index))}
        return ConfigEntity(index, entities)

    def index_of(self, config):
        """The index of a config (a ConfigEntity, or its knob values) in this space, or None
        when one of its knob values is not a choice here (the template changed)."""
        entities = config.entity_map if isinstance(config, ConfigEntity) else config
        if set(entities) != set(self.space_map):
            return None
        idx = [knob.index_of(entities[name]) for name, knob in self.space_map.items()]
        if any(i is None for i in idx):
            return None
        return self.index_from_knobs(idx)

    def fallback(self):
        """The config a template gets when no tuning record exists: each knob's first choice."""
        cfg = self.get(0)
        cfg.is_fallback = True
        return cfg

    def __iter__(self):
        return iter(self.space_map.values())

    def __repr__(self):
        lines = [f"ConfigSpace ({len(self)} configs):"]
        width = max((len(n) for n in self.space_map), default=0)
        for k, (name, knob) in enumerate(self.space_map.items()):
            example = ", ".join(repr(e) for e in knob.entities[:3]) + (", ..." if len(knob) > 3 else "")
            lines.append(f"  {k:2d} {name:<{width}}  {len(knob):6d}  {knob.description}: {example}")
        return "\n".join(lines)


class KnobValues(ConfigSpace):
    """Config 0 of a template, with some knobs set by name: what a template gets outside
    tuning. Each ``define_*`` builds its knob as a ConfigSpace does (so a template's checks
    run), and ``cfg[name]`` is the value given for ``name``, else the knob's first choice::

        template(KnobValues({"tile_q": 3}), s, stage, target)     # tile_q = 3, the rest default

    A value need not be one of the knob's choices (a caller may ask for any tile);
    :meth:`check_used` says which given names the template never defined."""

    def __init__(self, values=None):
        super().__init__()
        self.values = dict(values or {})

    def __getitem__(self, name):
        first = super().__getitem__(name)
        if name not in self.values:
            return first
        value = self.values[name]
        return value if isinstance(value, type(first)) else type(first)(value)

    def check_used(self, what="the template"):
        """LoopcError naming the given knobs that ``what`` did not define (a misspelt keyword)."""
        unknown = sorted(set(self.values) - set(self.space_map))
        if unknown:
            raise LoopcError(f"{what} has no knob {', '.join(map(repr, unknown))} "
                             f"(its knobs: {', '.join(self.space_map) or 'none'})")


class ConfigEntity(_ConfigBase):
    """One config: the chosen value of each knob. ``cfg[name]`` is a Split/Reorder/Annotate/
    OtherOption entity; ``define_*`` calls only check the knob exists."""

    def __init__(self, index, entity_map, is_fallback=False):
        super().__init__()
        self.index = index
        self.entity_map = dict(entity_map)
        self.is_fallback = is_fallback

    def _define(self, name, make):
        if name not in self.entity_map:
            raise LoopcError(f"this config has no knob {name!r} (it has: {', '.join(self.entity_map) or 'none'}); "
                             "the template changed since the config was made: tune it again")

    def __getitem__(self, name):
        try:
            return self.entity_map[name]
        except KeyError:
            raise LoopcError(f"this config has no knob {name!r} (it has: {', '.join(self.entity_map) or 'none'}); "
                             "define it with cfg.define_*() in the template") from None

    def to_json(self):
        """``{"index": i, "knobs": [[name, kind, value], ...]}``: what a record stores."""
        return {"index": self.index, "knobs": [[n, e.kind, e.value] for n, e in self.entity_map.items()]}

    @classmethod
    def from_json(cls, data):
        try:
            knobs = data["knobs"]
            entities = {str(n): entity_from_json(kind, value) for n, kind, value in knobs}
            index = data.get("index")
        except (KeyError, TypeError, ValueError) as err:
            raise LoopcError(f"not a config: {data!r} ({err})") from err
        return cls(index if isinstance(index, int) else None, entities)

    def key(self):
        """A hashable identity of the knob values."""
        return json.dumps(self.to_json()["knobs"], sort_keys=True)

    def __repr__(self):
        knobs = ", ".join(f"{n}={e!r}" for n, e in self.entity_map.items())
        return f"ConfigEntity(index={self.index}, {knobs})"

    def __eq__(self, other):
        return isinstance(other, ConfigEntity) and self.entity_map == other.entity_map

    def __hash__(self):
        return hash(self.key())
