"""loopc.arith against enumeration: seeded random integer index expressions over small loop
ranges. ``bound_of`` must contain every value, ``prove`` must never decide wrongly, and
``simplify_expr`` must keep every value; and the IR mutator returns the node it was given when
it changes nothing."""
import itertools

import numpy as np
import pytest

from loopc.arith import bound_of, prove, prune_conjuncts, simplify_expr
from loopc.ir import For, ForKind, SeqStmt, Store
from loopc.ir.stmt import Buffer
from loopc.ir.visitor import StmtMutator
from loopc.te import expr as E

VARS = [E.Var(n) for n in "ijk"]


def random_expr(rng, depth=0):
    """An int32 expression of i, j, k: + - * by constants, // and % by positive constants."""
    if depth > 3 or rng.random() < 0.3:
        if rng.random() < 0.7:
            return VARS[rng.integers(len(VARS))]
        return E.Const(int(rng.integers(-5, 9)))
    a = random_expr(rng, depth + 1)
    kind = rng.integers(5)
    if kind == 0:
        return E.Add(a, random_expr(rng, depth + 1))
    if kind == 1:
        return E.Sub(a, random_expr(rng, depth + 1))
    if kind == 2:
        return E.Mul(a, E.Const(int(rng.integers(-3, 5))))
    if kind == 3:
        return E.FloorDiv(a, E.Const(int(rng.integers(1, 7))))
    return E.FloorMod(a, E.Const(int(rng.integers(1, 7))))


def evaluate(e, env):
    if isinstance(e, E.Var):
        return env[e]
    if isinstance(e, E.Const):
        return e.value
    if isinstance(e, E.Not):
        return not evaluate(e.a, env)
    a, b = evaluate(e.a, env), evaluate(e.b, env)
    return {E.Add: lambda: a + b, E.Sub: lambda: a - b, E.Mul: lambda: a * b,
            E.FloorDiv: lambda: a // b if b else 0, E.FloorMod: lambda: a % b if b else 0,
            E.LT: lambda: a < b, E.LE: lambda: a <= b, E.EQ: lambda: a == b, E.NE: lambda: a != b,
            E.And: lambda: a and b, E.Or: lambda: a or b, E.Min: lambda: min(a, b),
            E.Max: lambda: max(a, b)}[type(e)]()


def random_ranges(rng):
    ranges = {}
    for v in VARS:
        lo = int(rng.integers(-3, 4))
        ranges[v] = (lo, lo + int(rng.integers(0, 5)))
    return ranges


def points(ranges):
    keys = list(ranges)
    for values in itertools.product(*(range(lo, hi + 1) for lo, hi in ranges.values())):
        yield dict(zip(keys, values))


@pytest.mark.parametrize("seed", range(40))
def test_bound_of_contains_every_value(seed):
    rng = np.random.default_rng(seed)
    for _ in range(10):
        e, ranges = random_expr(rng), random_ranges(rng)
        bound = bound_of(e, ranges)
        if bound is None:
            continue
        for env in points(ranges):
            assert bound[0] <= evaluate(e, env) <= bound[1], (e, ranges, env, bound)


@pytest.mark.parametrize("seed", range(40))
def test_prove_never_decides_wrongly(seed):
    rng = np.random.default_rng(1000 + seed)
    decided = 0
    for _ in range(10):
        a, b, ranges = random_expr(rng), random_expr(rng), random_ranges(rng)
        cond = (E.LT if rng.random() < 0.5 else E.LE)(a, b)
        if rng.random() < 0.3:
            cond = E.And(cond, E.LT(random_expr(rng), E.Const(int(rng.integers(0, 9)))))
        verdict = prove(cond, ranges)
        truth = {bool(evaluate(cond, env)) for env in points(ranges)}
        if verdict is not None:
            decided += 1
            assert truth == {verdict}, (cond, ranges, verdict, truth)
        pruned = prune_conjuncts(cond, ranges)
        for env in points(ranges):
            assert bool(evaluate(pruned, env)) == bool(evaluate(cond, env)), (cond, pruned, env)
    assert decided >= 0


@pytest.mark.parametrize("seed", range(40))
def test_simplify_keeps_every_value(seed):
    rng = np.random.default_rng(2000 + seed)
    for _ in range(10):
        e, ranges = random_expr(rng), random_ranges(rng)
        for r in (None, ranges):
            s = simplify_expr(e, r)
            for env in points(ranges):
                assert evaluate(s, env) == evaluate(e, env), (e, s, r, env)


def test_prove_decides_what_the_ranges_decide():
    i, j = VARS[:2]
    ranges = {i: (0, 7), j: (0, 3)}
    assert prove(E.LT(E.Add(E.Mul(i, E.Const(4)), j), E.Const(32)), ranges) is True
    assert prove(E.LT(E.Add(E.Mul(i, E.Const(4)), j), E.Const(0)), ranges) is False
    assert prove(E.LT(E.Add(E.Mul(i, E.Const(4)), j), E.Const(31)), ranges) is None


def test_mutator_returns_the_same_node_when_nothing_changes_and_tracks_ranges():
    i, j = E.Var("i"), E.Var("j")
    buf = Buffer("B", (4, 8), "float32")
    store = Store(buf, E.Add(E.Mul(i, E.Const(8)), j), E.Const(1.0, "float32"))
    body = For(i, E.Const(0), E.Const(4), ForKind.SERIAL,
               SeqStmt((For(j, E.Const(2), E.Const(6), ForKind.VECTORIZED, store), store)))
    seen = []

    class Watch(StmtMutator):
        def visit_Store(self, s):
            seen.append(dict(self.ranges))
            return super().visit_Store(s)
    assert Watch().visit(body) is body
    assert seen == [{i: (0, 3), j: (2, 7)}, {i: (0, 3)}]

    class Serialize(StmtMutator):
        def visit_For(self, s):
            s = super().visit_For(s)
            if s.kind is not ForKind.VECTORIZED:
                return s
            return For(s.var, s.min, s.extent, ForKind.SERIAL, s.body, s.thread_tag)
    out = Serialize().visit(body)
    assert out is not body and out.body.stmts[1] is store          # the untouched branch is shared
    assert out.body.stmts[0].kind is ForKind.SERIAL and out.body.stmts[0].body is store
