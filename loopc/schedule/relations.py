"""Relations between a stage's iteration axes: the data a split or fuse leaves behind.

Lowering reads them backwards to recover each root axis from the leaf loops:

    split:  parent = outer * factor + inner          (guard: parent < extent(parent))
    fuse:   outer  = fused // extent(inner);  inner = fused % extent(inner)
"""
from __future__ import annotations

from dataclasses import dataclass

from ..arith.extents import ceildiv, mul, provably_equal
from ..te.tensor import IterVar


@dataclass(frozen=True, eq=False)
class Split:
    parent: IterVar
    outer: IterVar
    inner: IterVar
    factor: int  # the inner extent (derived from nparts when split by nparts; an Expr then if symbolic)

    @property
    def exact(self) -> bool:
        """True when outer * factor covers the parent exactly (no tail guard needed)."""
        return provably_equal(mul(self.outer.extent, self.factor), self.parent.extent)


@dataclass(frozen=True, eq=False)
class Fuse:
    outer: IterVar
    inner: IterVar
    fused: IterVar


def propagate_extents(relations, root_extents: dict) -> dict:
    """Extents of every axis, given (possibly narrowed) extents of the root axes."""
    ext = dict(root_extents)
    for rel in relations:
        if isinstance(rel, Split):
            parent = ext[rel.parent]
            ext[rel.outer] = ceildiv(parent, rel.factor)
            ext[rel.inner] = rel.factor
        else:
            ext[rel.fused] = mul(ext[rel.outer], ext[rel.inner])
    return ext


def leaf_values(relations, leaf_exprs: dict, extents: dict | None = None) -> tuple[dict, list]:
    """Given expressions for the leaf axes, the expression of every axis and the tail guards.

    ``extents`` maps axes to extents (default: each IterVar's own). Returns ``(values, guards)``:
    ``values`` maps each IterVar to its expression, ``guards`` holds one ``(condition, parent)``
    per split whose factor does not divide its parent's extent.
    """
    def extent(iv):
        return iv.extent if extents is None else extents[iv]

    values = dict(leaf_exprs)
    guards = []
    for rel in reversed(relations):
        if isinstance(rel, Split):
            v = values[rel.outer] * rel.factor + values[rel.inner]
            values[rel.parent] = v
            if not provably_equal(mul(extent(rel.outer), rel.factor), extent(rel.parent)):
                guards.append((v < extent(rel.parent), rel.parent))
        else:
            f = values[rel.fused]
            values[rel.outer] = f // extent(rel.inner)
            values[rel.inner] = f % extent(rel.inner)
    return values, guards


def reduce_axis_value(iv: IterVar, value):
    """The value of reduce axis ``iv`` when its loops count ``value`` from 0: a reduce axis over
    ``(2, 5)`` runs 2, 3, 4 (``value + 2``)."""
    lo = iv.dom.min
    return value if isinstance(lo, int) and lo == 0 else value + lo


def leaf_indices(relations, root_exprs: dict) -> dict:
    """The forward direction of ``leaf_values``: given expressions for the root axes, the
    expression of every axis derived from them (split: outer = parent // factor, inner =
    parent % factor; fuse: fused = outer * extent(inner) + inner)."""
    values = dict(root_exprs)
    for rel in relations:
        if isinstance(rel, Split):
            parent = values[rel.parent]
            values[rel.outer] = parent // rel.factor
            values[rel.inner] = parent % rel.factor
        else:
            values[rel.fused] = values[rel.outer] * rel.inner.extent + values[rel.inner]
    return values


def descendants(relations, iv: IterVar) -> list:
    """Every axis derived from ``iv`` by later relations (iv excluded)."""
    out, frontier = [], {iv}
    for rel in relations:
        if isinstance(rel, Split) and rel.parent in frontier:
            frontier |= {rel.outer, rel.inner}
            out += [rel.outer, rel.inner]
        elif isinstance(rel, Fuse) and (rel.outer in frontier or rel.inner in frontier):
            frontier.add(rel.fused)
            out.append(rel.fused)
    return out
