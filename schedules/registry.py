"""One schedule template per (op tag, target kind), registered here and read by both
``schedules.schedule`` and the tuner (``schedules.tasks``).

A template is written once, as a tunable template: ``func(cfg, s, stage, target)`` defines its
knobs (``cfg.define_knob`` / ``define_split`` ...) with the default first, reads the knobs and
the target's facts, and edits schedule ``s`` for ``stage`` (and the helper stages its op
owns). Its config 0 (each knob's first choice) is the default schedule::

    @register("dense", "llvm")
    def dense(cfg, s, stage, target):
        f = cpu_facts(target)
        cfg.define_knob("lanes", [f.lanes, f.vec])
        ...

    t = lookup("dense", "llvm")
    t(s, stage)                        # config 0, for this machine
    t(s, stage, lanes=16)              # config 0 with one knob set
    t.apply(cfg, s, stage, target)     # any config: what the tuner's tasks do
"""
from __future__ import annotations

import functools

from loopc.autotune.space import KnobValues
from loopc.errors import LoopcError
from loopc.schedule import AttachKind
from loopc.target import KINDS, Target, kind_of
from loopc.te.expr import Reduce
from loopc.te.tensor import ComputeOp

_TEMPLATES = {}          # (op tag, kind) -> Template

#: tags of elementwise stages that every target inlines into their readers (unless an output)
INLINED_TAGS = ("injective", "bias_add", "pad")


class Template:
    """A registered template: ``func(cfg, s, stage, target)`` for ``ops`` on target ``kind``."""

    def __init__(self, func, ops, kind):
        self.func, self.ops, self.kind = func, tuple(ops), kind
        functools.update_wrapper(self, func)

    def target(self, target=None) -> Target:
        """``target`` parsed (None: the kind's default, for llvm this machine's CPU)."""
        parsed = Target.parse(self.kind if target is None else target)
        if parsed.kind != self.kind:
            raise LoopcError(f"template {self.__name__} schedules for {self.kind!r} targets, not {str(target)!r}")
        return parsed

    def apply(self, cfg, s, stage, target=None):
        """Schedule ``stage`` of ``s`` with config ``cfg`` (a ConfigSpace, ConfigEntity or KnobValues)."""
        return self.func(cfg, s, stage, self.target(target))

    def __call__(self, s, stage, target=None, **knobs):
        """Config 0 with the named ``knobs`` set (a LoopcError names a knob the template lacks)."""
        cfg = KnobValues(knobs)
        out = self.apply(cfg, s, stage, target)
        cfg.check_used(f"template {self.__name__} ({'/'.join(self.ops)} on {self.kind})")
        return out

    def __repr__(self):
        return f"<template {self.__module__}.{self.__name__} for {', '.join(self.ops)} on {self.kind}>"


def register(op_tag, kind):
    """Register ``func(cfg, s, stage, target)`` as the template of ``op_tag`` (a tag or a tuple
    of tags) on target ``kind``; returns the Template (callable as ``template(s, stage)``)."""
    if kind not in KINDS:
        raise LoopcError(f"unknown target kind {kind!r}; templates are for {', '.join(KINDS)}")
    ops = (op_tag,) if isinstance(op_tag, str) else tuple(op_tag)

    def decorate(func):
        template = Template(func, ops, kind)
        for op in ops:
            old = _TEMPLATES.get((op, kind))
            if old is not None and (old.__module__, old.__qualname__) != (template.__module__, template.__qualname__):
                raise LoopcError(f"op {op!r} on {kind} already has the template {old!r}")
            _TEMPLATES[(op, kind)] = template
        return template
    return decorate


def lookup(op_tag, kind):
    """The template of ``op_tag`` on target ``kind``, or None."""
    return _TEMPLATES.get((op_tag, kind))


def registered(kind=None) -> list:
    """``(op tag, kind)`` of every registered template, sorted."""
    return sorted(k for k in _TEMPLATES if kind is None or k[1] == kind)


def target_kind(target) -> str:
    """"llvm" or "cuda" of a target (string or Target); LoopcError naming both otherwise."""
    try:
        return kind_of(target)
    except LoopcError:
        raise LoopcError(f"loopc.schedules has templates for the targets 'llvm' and 'cuda', not {target!r}") from None


def prepare(s, outs, kind):
    """What every schedule of ``outs`` starts with: elementwise helpers (padding, bias, relu)
    inlined into their readers; on a GPU also every other non-reduction helper that has no
    template of its own (a transposed copy, softmax's exponentials): recomputing a read costs
    less than a kernel launch and a round trip through device memory."""
    output_ops = {o.op for o in outs}

    def helpers():
        return [st for st in list(s.stages) if isinstance(st.op, ComputeOp) and st.attach is AttachKind.ROOT
                and st.origin_op not in output_ops]
    for stage in helpers():
        if stage.op.tag in INLINED_TAGS:
            stage.compute_inline()
    if kind == "cuda":
        for stage in helpers():
            if not isinstance(stage.body, Reduce) and lookup(stage.op.tag, "cuda") is None:
                stage.compute_inline()
