"""Tutorial 12 — from TVM: a TVM te program ported line by line.

TVM removed its classic tensor-expression API (te + schedules) in favour of Relax and TensorIR;
tutorials, courses and papers still use it. loopc keeps that API. This tutorial takes three
classic TVM programs — a dense layer over a symbolic batch with an argmax, TVM's scan tutorial,
and TVM's extern tutorial — and ports them. The port changes only these lines:

    TVM                                        loopc
    import tvm; from tvm import te             import loopc; from loopc import te
    tvm.te.scan(...), tvm.tir.call_packed      te.scan(...), te.call_packed
    @tvm.register_func("name")                 @loopc.register_func("name")
    f = tvm.build(s, args, target="llvm")      f = loopc.build(s, args)            ("cuda" for the GPU)
    a = tvm.nd.array(x, dev); f(a, ...)        f(x, ...)                           (numpy arrays)
    tvm.lower(s, args, simple_mode=True)       loopc.lower(s, args)

Everything else — te.var, te.placeholder, te.compute, te.reduce_axis, te.comm_reducer,
te.min_value, s[T].split/reorder/vectorize/parallel, te.schedule.AutoInlineInjective — is
TVM's code as written. Each step is checked against numpy at several sizes.

Run:  python tutorials/12_from_tvm.py [--small]
"""
import argparse
import time

import numpy as np

import loopc
from loopc import te


# ----------------------------------------------------------------------------- 1. dense + argmax


def dense_argmax(K, M):
    """A classifier head over a symbolic batch: logits = X W^T + b, then (argmax, max) per row
    with TVM's argmax reducer (from TVM's reduction tutorial, unchanged)."""
    n = te.var("n")                                            # the batch: any size at call time
    X = te.placeholder((n, K), name="X")
    W = te.placeholder((M, K), name="W")
    b = te.placeholder((M,), name="b")
    k = te.reduce_axis((0, K), name="k")
    D = te.compute((n, M), lambda i, j: te.sum(X[i, k] * W[j, k], axis=k), name="D")
    Y = te.compute((n, M), lambda i, j: D[i, j] + b[j], name="Y")

    def fcombine(x, y):
        lhs = te.if_then_else(x[1] >= y[1], x[0], y[0])
        rhs = te.if_then_else(x[1] >= y[1], x[1], y[1])
        return lhs, rhs

    def fidentity(t0, t1):
        return te.const(-1, t0), te.min_value(t1)

    argmax = te.comm_reducer(fcombine, fidentity, name="argmax")
    m = te.reduce_axis((0, M), name="m")
    T0, T1 = te.compute((n,), lambda i: argmax((m.var, Y[i, m]), axis=m), name="T")

    s = te.create_schedule(T0.op)
    te.schedule.AutoInlineInjective(s)                          # Y = D + b moves into the argmax
    i, j = s[D].op.axis
    s[D].reorder(i, k, j)                                       # a row of D in vector registers
    s[D].vectorize(j)
    s[D].parallel(i)
    return s, [X, W, b, T0, T1]


def step1(small):
    K, M = 784, 10
    s, args = dense_argmax(K, M)
    print("1. dense layer + argmax over a symbolic batch n (TVM's reduction tutorial's argmax)\n")
    print(loopc.lower(s, args))
    f = loopc.build(s, args)
    rng = np.random.default_rng(0)
    w = rng.standard_normal((M, K)).astype("float32")
    b = rng.standard_normal(M).astype("float32")
    print(f"{'batch':>6} {'argmax ok':>10} {'max ok':>7} {'loopc ms':>9} {'numpy ms':>9}")
    for batch in ((1, 7, 13) if small else (1, 7, 64, 257)):
        x = rng.standard_normal((batch, K)).astype("float32")
        idx, val = np.empty(batch, "int32"), np.empty(batch, "float32")
        f(x, w, b, idx, val)                                   # one build serves every batch
        logits = x.astype(np.float64) @ w.T.astype(np.float64) + b
        assert (idx == logits.argmax(axis=1)).all() and np.allclose(val, logits.max(axis=1), rtol=1e-4)
        ours = f.time_evaluator(number=20, repeat=3)(x, w, b, idx, val).median
        t0 = time.perf_counter()
        for _ in range(20):
            (x @ w.T + b).argmax(axis=1)
        theirs = (time.perf_counter() - t0) / 20
        print(f"{batch:>6} {'yes':>10} {'yes':>7} {ours * 1e3:9.3f} {theirs * 1e3:9.3f}")
    try:
        f(np.zeros((3, K), "float32"), w, b, np.empty(4, "int32"), np.empty(3, "float32"))
    except loopc.ArgumentError as err:
        print(f"\narrays that disagree about n: ArgumentError: {err}\n")


# ----------------------------------------------------------------------------- 2. scan


def cumulative_sum():
    """TVM's scan tutorial, verbatim but for the import: a cumulative sum along the first axis."""
    m = te.var("m")
    n = te.var("n")
    X = te.placeholder((m, n), name="X")
    s_state = te.placeholder((m, n))
    s_init = te.compute((1, n), lambda _, i: X[0, i])
    s_update = te.compute((m, n), lambda t, i: s_state[t - 1, i] + X[t, i])
    s_scan = te.scan(s_init, s_update, s_state, inputs=[X])
    s = te.create_schedule(s_scan.op)
    xo, xi = s[s_update].split(s_update.op.axis[1], factor=8)   # TVM binds these to GPU threads;
    s[s_update].vectorize(xi)                                    # on a CPU: vector lanes
    return s, [X, s_scan]


def step2(small):
    print("2. te.scan (TVM's scan tutorial): a cumulative sum, symbolic m and n\n")
    s, args = cumulative_sum()
    print(loopc.lower(s, args))
    f = loopc.build(s, args)
    rng = np.random.default_rng(1)
    for rows, cols in ((1, 1), (5, 13), (37, 40)) if small else ((1, 1), (5, 13), (1000, 1000)):
        x = rng.standard_normal((rows, cols)).astype("float32")
        out = np.empty_like(x)
        f(x, out)
        np.testing.assert_allclose(out, np.cumsum(x, axis=0), rtol=1e-4, atol=1e-4)
        print(f"m={rows:<5} n={cols:<5} equals numpy.cumsum(axis=0)")
    print()


# ----------------------------------------------------------------------------- 3. extern


@loopc.register_func("tutorial.matmul")
def numpy_matmul(a, b, c, transa, transb):
    """Where TVM's tutorial calls cblas through "tvm.contrib.cblas.matmul", a Python function
    registered by name receives the buffers as numpy arrays and writes its output in place."""
    np.matmul(a.T if transa else a, b.T if transb else b, out=c)


def extern_matmul(n, l, m):
    """TVM's extern tutorial: a matmul computed by a registered function, then a bias add."""
    A = te.placeholder((n, l), name="A")
    B = te.placeholder((l, m), name="B")
    C = te.extern((n, m), [A, B],
                  lambda ins, outs: te.call_packed("tutorial.matmul", ins[0], ins[1], outs[0], False, False),
                  name="C")
    D = te.compute(C.shape, lambda i, j: C[i, j] + 1.0, name="D")
    s = te.create_schedule(D.op)
    return s, [A, B, D]


def step3(small):
    print("3. te.extern (TVM's extern tutorial): a stage computed by a registered function\n")
    n, l, m = (33, 17, 29) if small else (1024, 128, 1024)
    s, args = extern_matmul(n, l, m)
    print(loopc.lower(s, args))
    f = loopc.build(s, args)
    rng = np.random.default_rng(2)
    a = rng.standard_normal((n, l)).astype("float32")
    b = rng.standard_normal((l, m)).astype("float32")
    d = np.empty((n, m), "float32")
    f(a, b, d)
    np.testing.assert_allclose(d, a @ b + 1.0, rtol=1e-4, atol=1e-4)
    print(f"D[{n}x{m}] = extern matmul + 1 equals numpy\n")


# ----------------------------------------------------------------------------- what differs


DIFFERENCES = """What differs from TVM, and why (the README has the full table):
- no tvm.nd arrays or devices: functions take numpy arrays (and torch/CuPy tensors on CUDA);
- te.var sizes are also read from dimensions such as n + 2, and a call whose arrays disagree is
  an ArgumentError (TVM reads past the buffer);
- te.reduce_axis((0, i + 1)) runs a constant cover under a guard, so every primitive applies;
- te.extern functions get numpy views; no ir_builder bodies, one output per extern;
- te.scan has one state per scan, and its state reads must be t - k with a constant k;
- double_buffer is checked and recorded but generates single-buffered CUDA code."""


def main(small=False):
    step1(small)
    step2(small)
    step3(small)
    print(DIFFERENCES)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="small sizes, a few seconds (the test suite)")
    main(small=ap.parse_args().small)
