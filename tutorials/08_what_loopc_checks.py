"""Tutorial 8 — what loopc checks, and what every program means.

A compiler that is sometimes silently wrong is worse than a slow one. This tutorial runs the
cases where a careless schedule or index used to go wrong, and shows what loopc does now:

1. a stage computed inside a vectorized loop: each vector lane gets its own copy of it;
2. integers wrap like numpy's (int32 too), and INT_MIN // -1, x // 0 never trap;
3. a read that can leave its tensor is a LoweringError naming the read and the point;
4. a data-dependent index (A[I[i]]) checked at run time with bounds_check=True;
5. the facts schedules are made of, read from this machine (loopc.target).

Run:  python tutorials/08_what_loopc_checks.py [--small]
"""
import argparse

import numpy as np

import loopc
from loopc import te
from loopc.target import host


def lanes_get_their_own_buffer(n):
    print("1. vectorize(i), then compute B at a loop nested inside it")
    A = te.placeholder((n, n), name="A")
    B = te.compute((n, n), lambda i, j: A[i, j] * 2, name="B")
    C = te.compute((n, n), lambda i, j: B[i, j] + 1, name="C")
    s = te.create_schedule(C.op)
    s[C].vectorize(C.op.axis[0])
    s[B].compute_at(s[C], C.op.axis[1])
    print(loopc.lower(s, [A, C]))             # B's buffer has a lane axis: one copy per lane
    a = np.random.default_rng(0).standard_normal((n, n)).astype("float32")
    c = np.zeros((n, n), "float32")
    loopc.build(s, [A, C])(a, c)
    assert np.allclose(c, a * 2 + 1)
    print("   matches numpy\n")


def integers_wrap_like_numpy():
    print("2. integer semantics: two's-complement wrap at the dtype's width, no traps")
    info = np.iinfo("int32")
    A = te.placeholder((4,), "int32", name="A")
    B = te.placeholder((4,), "int32", name="B")
    C = te.compute((4,), lambda i: te.max(A[i] + B[i], 0) + A[i] // B[i], name="C")
    a = np.array([info.max, info.min, 7, -7], "int32")
    b = np.array([1, -1, 0, 2], "int32")
    c = np.zeros(4, "int32")
    loopc.build(te.create_schedule(C.op), [A, B, C])(a, b, c)
    with np.errstate(all="ignore"):
        expected = np.maximum(a + b, 0) + np.floor_divide(a, b)
    print(f"   loopc {c.tolist()}\n   numpy {expected.tolist()}")
    assert (c == expected).all()
    print()


def reads_outside_are_errors():
    print("3. A[i - 1] reads A[-1] at i = 0:")
    A = te.placeholder((8,), name="A")
    C = te.compute((8,), lambda i: A[i - 1], name="C")
    try:
        loopc.lower(te.create_schedule(C.op), [A, C])
        raise SystemExit("expected a LoweringError")
    except loopc.LoweringError as err:
        print(f"   LoweringError: {str(err).splitlines()[0]}")
    guarded = te.compute((8,), lambda i: te.if_then_else(i >= 1, A[i - 1], 0.0), name="C")
    loopc.lower(te.create_schedule(guarded.op), [A, guarded])
    print("   with te.if_then_else(i >= 1, A[i - 1], 0.0) it lowers\n")


def data_dependent_indices():
    print("4. A[I[i]] with an index past A, in a bounds-checked build")
    A = te.placeholder((10,), name="A")
    index = te.placeholder((4,), "int32", name="I")
    C = te.compute((4,), lambda i: A[index[i]] * 2, name="C")
    f = loopc.build(te.create_schedule(C.op), [A, index, C], bounds_check=True)
    a, c = np.arange(10, dtype="float32"), np.zeros(4, "float32")
    f(a, np.array([0, 3, 9, 2], "int32"), c)
    print(f"   in range: {c.tolist()}")
    try:
        f(a, np.array([0, 3, 12, 2], "int32"), c)
        raise SystemExit("expected a BoundsError")
    except loopc.BoundsError as err:
        print(f"   BoundsError: {err}\n")


def machine_facts():
    t = host()
    print("5. what this machine's schedules are made of (loopc.target.host())")
    print(f"   cpu {t.cpu}: {t.vector_bits}-bit vectors = {t.lanes('float32')} float32 lanes, "
          f"{t.vector_registers} vector registers")
    print(f"   caches: L1d {t.cache_bytes('l1d') // 1024} KiB, L2 {t.cache_bytes('l2') // 1024} KiB, "
          f"L3 {t.cache_bytes('l3') // 2**20} MiB")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="a tiny size (the test suite's mode)")
    args = ap.parse_args()
    lanes_get_their_own_buffer(5 if args.small else 16)
    integers_wrap_like_numpy()
    reads_outside_are_errors()
    data_dependent_indices()
    machine_facts()


if __name__ == "__main__":
    main()
