"""``loopc.build``: lower a schedule, then hand the loop IR to its target's backend.

The backend comes from the registry (:mod:`loopc.backend`), which imports the target package
(``loopc.targets.llvm`` or ``loopc.targets.cuda``) the first time its kind is asked for.
"""
from __future__ import annotations

from . import backend
from .lower import lower
from .target import Target


def build(schedule, args, target="llvm", name: str = "main", bounds_check=None):
    """Lower ``schedule`` and compile it for ``target`` (a string or a Target)."""
    target = Target.parse(target)
    be = backend.get(target)
    func = lower(schedule, args, name=name, target=target)
    options = {} if bounds_check is None else {"bounds_check": bounds_check}
    return be.build(func, target, **options)
