"""Workloads: a template's name and arguments, as the hashable, JSON-serialisable key that
tuning records match on (``workload_key``; ``loopc.schedules.workload_key`` is the same string
for a library op's workload)."""
from __future__ import annotations

import json

from ..errors import LoopcError


class AutotuneWarning(UserWarning):
    """A visible warning from the autotuner (missing records, records of another CPU ...)."""


def _normalize(value, where):
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int) or (hasattr(value, "dtype") and getattr(value.dtype, "kind", "") in "iu"
                                  and getattr(value, "ndim", 1) == 0):
        return int(value)
    if isinstance(value, float) or (hasattr(value, "dtype") and getattr(value.dtype, "kind", "") == "f"
                                    and getattr(value, "ndim", 1) == 0):
        return float(value)
    if isinstance(value, (list, tuple)):
        return tuple(_normalize(v, where) for v in value)
    raise LoopcError(f"{where}: argument {value!r} ({type(value).__name__}) is not a JSON value; a template's "
                     "arguments are its workload and must be ints, floats, strings, bools, None or lists of them")


def make_workload(name, args) -> tuple:
    """``(template name, args)`` with lists turned into tuples: hashable and JSON-serialisable."""
    return (str(name), _normalize(tuple(args), f"template {name!r}"))


def workload_key(workload) -> str:
    """A canonical string of a workload: records match on it, and ``loopc.schedules.workload_key``
    is this string for a library op's workload (the one representation of a workload key)."""
    name, args = workload
    return json.dumps([name, _normalize(tuple(args), f"workload {name!r}")], separators=(",", ":"))


def workload_from_json(data) -> tuple:
    if not (isinstance(data, (list, tuple)) and len(data) == 2 and isinstance(data[0], str)
            and isinstance(data[1], (list, tuple))):
        raise LoopcError(f"not a workload (expected [template name, [args...]]): {data!r}")
    return make_workload(data[0], data[1])
