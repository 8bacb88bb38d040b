"""The statements that write a stage's outputs at one point: one store per output, and a
reduction's init and update (``lower.loop_nest`` puts them in loops).

A multi-value reduction updates all its accumulators together: every new value is computed
from the old ones before any of them is stored. Stores are ordered so that an accumulator is
overwritten only after the last new value that reads it; when the values read each other in a
cycle (a complex product: re' = re*a - im*b, im' = re*b + im*a), the new values go through
one-element temporaries first.

    argmax:  T.v0[i] = if_then_else(T.v1[i] >= val[i, k], T.v0[i], idx[i, k])   # reads old T.v1
             T.v1[i] = if_then_else(T.v1[i] >= val[i, k], T.v1[i], val[i, k])   # then T.v1
    cycle:   re.next = allocate(float32[1]); re.next[0] = re*a - im*b
             P.v1[i] = re*b + im*a; P.v0[i] = re.next[0]
"""
from __future__ import annotations

from ..ir.stmt import Allocate, Buffer, IfThenElse, Store, TensorStore, seq
from ..te import expr as E


def value_stores(tensors, index, value):
    """``tensors[j][index] = value j`` for each output."""
    return seq(*(TensorStore(t, index, v) for t, v in zip(tensors, E.values_of(value))))


def reduce_init(red: E.Reduce, tensors, index):
    """Every accumulator set to its starting value (``init``, else the reducer's identity)."""
    return value_stores(tensors, index, red.start())


def reduce_update(red: E.Reduce, tensors, index):
    """Every accumulator combined with this point's value(s), under the reduction's ``where``."""
    olds = tuple(E.TensorRead(t, index) for t in tensors)
    new = E.values_of(red.combine(olds[0] if len(olds) == 1 else E.ValueTuple(olds), red.source))
    update = _store_together(tensors, index, new)
    return update if red.condition is None else IfThenElse(red.condition, update)


def _reads(e, tensor) -> bool:
    return any(isinstance(n, E.TensorRead) and n.tensor is tensor for n in E.walk(e))


def _store_together(tensors, index, new):
    pending, stmts = list(range(len(tensors))), []
    while pending:
        # an accumulator that no other pending new value reads can be overwritten now
        free = next((j for j in pending if not any(i != j and _reads(new[i], tensors[j]) for i in pending)), None)
        if free is None:
            break
        stmts.append(TensorStore(tensors[free], index, new[free]))
        pending.remove(free)
    if not pending:
        return seq(*stmts)
    # a cycle: all but the last new value wait in temporaries while the last is stored
    *held, last = pending
    temps = {j: Buffer(f"{tensors[j].name}.next", (1,), tensors[j].dtype, "local") for j in held}
    zero = E.Const(0)
    body = seq(*stmts, *(Store(temps[j], zero, new[j]) for j in held), TensorStore(tensors[last], index, new[last]),
               *(TensorStore(tensors[j], index, E.Load(temps[j], zero)) for j in held))
    for j in reversed(held):
        body = Allocate(temps[j], body)
    return body
