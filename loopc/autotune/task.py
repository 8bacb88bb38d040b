"""Templates and tasks.

    @autotune.template("matmul")
    def matmul(M, N, K):
        cfg = autotune.get_config()
        ...define knobs, build the compute, apply the knobs...
        return s, [A, B, C]

    task = autotune.create_task("matmul", (1024, 1024, 1024))
    print(task.config_space)

A template's positional arguments are its *workload*: they must be JSON values (ints, floats,
strings, bools, None, and lists/tuples of them), since records store them. Templates must live
at the top level of an importable module or of the script being run: measurement workers
import them by name (a script is imported too, so keep its work under
``if __name__ == "__main__":``).
"""
from __future__ import annotations

import functools
import inspect
import json
import math

from ..errors import ArgumentError, LoopcError
from ..te import expr as E
from ..te.tensor import ComputeOp, PlaceholderOp
from .dispatcher import ApplyConfig, collect_space, resolve_target, run_template  # noqa: F401
from .space import ConfigEntity, ConfigSpace

_TEMPLATES = {}


from .workload import make_workload, workload_from_json, workload_key  # noqa: F401 - re-exported


# --------------------------------------------------------------------------- templates


def template(name, reference=None):
    """Register a tunable template ``func(*args) -> (schedule, tensors)`` under ``name``.

    ``reference(*inputs) -> outputs`` (NumPy) optionally gives the expected outputs for
    ``check_correctness``; without it the reference is the template's default schedule.
    """
    if not isinstance(name, str) or not name:
        raise LoopcError(f"@autotune.template needs a non-empty name, got {name!r}")

    def decorate(func):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            if kwargs:
                raise LoopcError(f"template {name!r} takes positional arguments only (they are the workload)")
            return run_template(wrapper, make_workload(name, args), args)

        wrapper.template_name = name
        wrapper.reference = reference
        old = _TEMPLATES.get(name)
        if old is not None and (old.__module__, old.__qualname__) != (wrapper.__module__, wrapper.__qualname__):
            raise LoopcError(f"a template named {name!r} is already registered by {old.__module__}.{old.__qualname__}; "
                             "give this one another name")
        _TEMPLATES[name] = wrapper
        return wrapper

    return decorate


def get_template(name):
    if name not in _TEMPLATES:
        known = ", ".join(sorted(_TEMPLATES)) or "none"
        raise LoopcError(f"no template named {name!r} is registered (known: {known}); define it with "
                         "@autotune.template(name) and import its module first (the operator library's "
                         "templates register when loopc.schedules is imported)")
    return _TEMPLATES[name]


def list_templates():
    return sorted(_TEMPLATES)


def template_params(template):
    """``(required, optional)`` positional parameter names of a template's function."""
    try:
        params = inspect.signature(template.__wrapped__).parameters.values()
    except (TypeError, ValueError, AttributeError):  # pragma: no cover - a builtin or odd callable
        return None
    if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params):
        return None
    pos = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return ([p.name for p in pos if p.default is p.empty], [p.name for p in pos if p.default is not p.empty])


def check_arity(name, args, display=None, optional=True):
    """ArgumentError when template ``name`` does not take ``len(args)`` arguments; the message
    lists its parameter names (``display`` names the template as the user wrote it).
    ``optional=False``: only the required parameters may be given (a command line of ints)."""
    sig = template_params(get_template(name))
    if sig is None:
        return
    required, optional = sig[0], (sig[1] if optional else [])
    if len(required) <= len(args) <= len(required) + len(optional):
        return
    count = f"{len(required)}" if not optional else f"{len(required)} to {len(required) + len(optional)}"
    names = " ".join(required + [f"[{n}]" for n in optional])
    got = " ".join(map(str, args)) or "none"
    raise ArgumentError(f"{display or name} takes {count} argument{'s' if count != '1' else ''}: {names}; "
                        f"got {len(args)} ({got})")


# --------------------------------------------------------------------------- flop counting

_FLOAT_OPS = (E.Add, E.Sub, E.Mul, E.Div, E.Min, E.Max)


def _ops(expr) -> int:
    n = 0
    for node in E.walk(expr):
        if isinstance(node, _FLOAT_OPS) and E.is_float(node.dtype):
            n += 1
        elif isinstance(node, E.Call):
            n += 1
    return n


def estimate_flop(tensors) -> int:
    """Floating-point operations of the compute ops behind ``tensors`` (TVM's compute_flop):
    per output element, the arithmetic nodes of the body, plus one per reduction step."""
    from ..schedule import post_order_ops
    total = 0
    outs = [t.op for t in tensors if not isinstance(t.op, PlaceholderOp)]
    for op in post_order_ops(outs):
        if not isinstance(op, ComputeOp):
            continue
        points = math.prod(op.shape)
        body = op.body
        if isinstance(body, E.Reduce):
            steps = math.prod(iv.extent for iv in body.axes)
            total += points * steps * (_ops(body.source) + 1)
        else:
            total += points * _ops(body)
    return int(total)


# --------------------------------------------------------------------------- tasks


class Task:
    """A template applied to one workload and target: what a tuner searches."""

    def __init__(self, name, args, target="llvm"):
        self.name = name
        self.template = get_template(name)
        self.args = make_workload(name, args)[1]
        check_arity(name, self.args, f"template {name!r}")
        self.target = target
        space = ConfigSpace()
        with ApplyConfig(space, target=target):
            out = self.template(*self.args)
        s, tensors = _check_output(name, out)
        self.config_space = space
        self.flop = int(space.flop) if space.flop else estimate_flop(tensors)
        if self.flop <= 0:
            self.flop = 1

    @property
    def workload(self) -> tuple:
        """``(template name, args)``; JSON-serialisable."""
        return (self.name, self.args)

    @property
    def target_string(self) -> str:
        """The full target string (CPU name and features) on this machine."""
        return resolve_target(self.target)

    def instantiate(self, config):
        """Run the template with ``config`` (a ConfigEntity, its JSON, or an index); returns
        ``(schedule, tensors)``."""
        if isinstance(config, int):
            config = self.config_space.get(config)
        elif isinstance(config, dict):
            config = ConfigEntity.from_json(config)
        with ApplyConfig(config, target=self.target):
            return _check_output(self.name, self.template(*self.args))

    def __repr__(self):
        return (f"Task(name={self.name!r}, args={self.args!r}, target={self.target!r}, "
                f"configs={len(self.config_space)}, flop={self.flop})")


def _check_output(name, out):
    if not (isinstance(out, (tuple, list)) and len(out) == 2 and isinstance(out[1], (list, tuple))):
        raise LoopcError(f"template {name!r} must return (schedule, [tensors...]), got {type(out).__name__}")
    s, tensors = out
    if not any(not isinstance(t.op, PlaceholderOp) for t in tensors):
        raise LoopcError(f"template {name!r} returned no computed (output) tensor among its tensors")
    return s, list(tensors)


def create_task(name, args=(), target="llvm") -> Task:
    """The task of template ``name`` on workload ``args`` for ``target``."""
    return Task(name, args, target)
