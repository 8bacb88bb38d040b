"""Schedules: stages of compute ops, primitives that edit them, and replayable traces."""
from .group import Group
from .relations import Fuse, Split
from .schedule import Schedule, post_order_ops
from .stage import MAX_UNROLL_EXTENT, MAX_VECTOR_LANES, AttachKind, Stage


def create_schedule(ops) -> Schedule:
    """A default schedule for one op or tensor, or a list of them (the outputs)."""
    return Schedule(ops)


__all__ = ["Schedule", "Stage", "Group", "Split", "Fuse", "AttachKind", "create_schedule", "post_order_ops",
           "MAX_UNROLL_EXTENT", "MAX_VECTOR_LANES"]
