"""Small index expressions as JSON, for traces: a stage's store predicate.

Only what a predicate over loops needs: the stage's axes (by their unique names), thread axes
bound in the stage (by tag), constants, arithmetic, comparisons and and/or/not.

    (tx == 0) & (i < 7)   ->   {"op": "And", "a": {"op": "EQ", "a": {"thread": "threadIdx.x"},
                                 "b": {"const": 0, "dtype": "int32"}}, "b": ...}
"""
from __future__ import annotations

from ..errors import ScheduleError
from ..te import expr as E

#: the expression classes a predicate may use, by name
OPS = {cls.__name__: cls for cls in (E.Add, E.Sub, E.Mul, E.FloorDiv, E.FloorMod, E.Min, E.Max,
                                     E.LT, E.LE, E.EQ, E.NE, E.And, E.Or)}
_FIX = ("use the stage's axes, te.thread_axis variables bound in this stage, constants, arithmetic, "
        "comparisons and &, |, ~")


def _var_names(stage) -> dict:
    """Var -> its JSON reference, for every variable a predicate of ``stage`` may use."""
    names = {iv.var: {"axis": stage.name_of(iv)} for iv in stage.all_iter_vars}
    names.update({t.var: {"thread": t.thread_tag} for t in stage.bindings.values()})
    return names


def check_predicate(stage, predicate) -> E.Expr:
    """``predicate`` as a boolean expression over what ``stage`` knows; ScheduleError otherwise."""
    try:
        pred = E.as_expr(predicate)
    except Exception:  # noqa: BLE001 - anything that is not an expression
        stage._fail("set_store_predicate", f"expected a boolean expression, got {predicate!r}",
                    "e.g. s[B].set_store_predicate(tx.var.equal(0))")
    if pred.dtype != "bool":
        stage._fail("set_store_predicate", f"the predicate has dtype {pred.dtype}, not bool",
                    "compare it, e.g. tx.var.equal(0)")
    known = _var_names(stage)
    for node in E.walk(pred):
        if isinstance(node, E.Var) and node not in known:
            stage._fail("set_store_predicate", f"variable '{node.name}' is neither an axis of this stage nor a "
                        "thread axis bound in it", "bind the thread axis first (s[B].bind(axis, tx)), or " + _FIX)
        if not isinstance(node, (E.Var, E.Const, E.Not)) and type(node).__name__ not in OPS:
            stage._fail("set_store_predicate", f"a predicate cannot contain {type(node).__name__}", _FIX)
    return pred


def encode(stage, e: E.Expr):
    """JSON-able form of a checked predicate."""
    names = _var_names(stage)

    def enc(n):
        if isinstance(n, E.Var):
            return names[n]
        if isinstance(n, E.Const):
            return {"const": n.value, "dtype": n.dtype}
        if isinstance(n, E.Not):
            return {"op": "Not", "a": enc(n.a)}
        return {"op": type(n).__name__, "a": enc(n.a), "b": enc(n.b)}
    return enc(e)


def decode(stage, data) -> E.Expr:
    """The expression ``encode`` wrote, with the variables of ``stage`` (a replayed schedule)."""
    from .schedule import Schedule

    def dec(d):
        if not isinstance(d, dict):
            raise TypeError(f"a predicate node must be an object, got {d!r}")
        if "axis" in d:
            return Schedule._axis(stage, d["axis"]).var
        if "thread" in d:
            found = [t for t in stage.bindings.values() if t.thread_tag == d["thread"]]
            if len(found) != 1:
                raise ScheduleError("replay", stage.name, f"the predicate names {d['thread']}, which is not bound "
                                    "in this stage", "replay a trace produced by Schedule.trace_json()")
            return found[0].var
        if "const" in d:
            return E.Const(d["const"], d["dtype"])
        if d.get("op") == "Not":
            return E.Not(dec(d["a"]))
        return OPS[d["op"]](dec(d["a"]), dec(d["b"]))
    return dec(data)
