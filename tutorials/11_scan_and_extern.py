"""Tutorial 11 — recurrences with te.scan, and stages computed by a function with te.extern.

Two of TVM's classic te ops that loop nests alone cannot say:

1. ``te.scan``: a recurrence along the first axis. An exponential moving average
   ``y[t] = a*y[t-1] + (1-a)*x[t]`` over many series at once: the time loop runs in order, the
   series axis is split, vectorized and parallelized like any other loop.
2. A two-step recurrence (``y[t-1]`` and ``y[t-2]``): the init gives two rows.
3. ``te.extern`` with ``te.call_packed``: a step loopc has no loop nest for (a sort), done by a
   Python function registered with ``loopc.register_func``, its result read by a compute stage.

Run:  python tutorials/11_scan_and_extern.py [--small]
"""
import argparse

import numpy as np

import loopc
from loopc import te


def moving_average(steps, series, alpha=0.9):
    print(f"1. exponential moving average of {series} series over {steps} steps")
    X = te.placeholder((steps, series), name="X")
    state = te.placeholder((steps, series), name="state")
    init = te.compute((1, series), lambda _, i: X[0, i], name="init")
    update = te.compute((steps, series), lambda t, i: alpha * state[t - 1, i] + (1 - alpha) * X[t, i],
                        name="update")
    ema = te.scan(init, update, state, inputs=[X], name="ema")
    s = te.create_schedule(ema.op)
    io, ii = s[update].split(update.op.axis[1], factor=16)
    s[update].vectorize(ii)
    s[update].parallel(io)
    print(loopc.lower(s, [X, ema]))      # the init rows, then for t in range(1, steps): the update
    x = np.random.default_rng(0).standard_normal((steps, series)).astype("float32")
    y = np.zeros_like(x)
    f = loopc.build(s, [X, ema])
    f(x, y)
    want = np.zeros_like(x)
    want[0] = x[0]
    for t in range(1, steps):
        want[t] = alpha * want[t - 1] + (1 - alpha) * x[t]
    assert np.allclose(y, want, rtol=1e-4, atol=1e-5)
    print(f"   matches a numpy loop; {f.time_evaluator(number=3, repeat=1)(x, y).mean * 1e3:.2f} ms\n")


def two_step_recurrence(steps):
    print("2. y[t] = y[t-1] + y[t-2] (Fibonacci), started from two init rows")
    state = te.placeholder((steps, 1), "float64", name="state")
    init = te.compute((2, 1), lambda r, _: te.const(1.0, "float64"), name="init")
    update = te.compute((steps, 1), lambda t, j: state[t - 1, j] + state[t - 2, j], name="update")
    fib = te.scan(init, update, state, name="fib")
    out = np.zeros((steps, 1))
    loopc.build(te.create_schedule(fib.op), [fib])(out)
    print(f"   {out[:10, 0].astype(int).tolist()} ...")
    assert out[9, 0] == 55
    print()


def sorted_then_scaled(rows, cols):
    print("3. te.extern: rows sorted by a registered Python function, then scaled by a compute stage")
    loopc.register_func("tutorial.sort_rows", lambda x, out: np.copyto(out, np.sort(x, axis=1)), override=True)
    X = te.placeholder((rows, cols), name="X")
    S = te.extern((rows, cols), [X], lambda ins, outs: te.call_packed("tutorial.sort_rows", ins[0], outs[0]),
                  name="S")
    Y = te.compute((rows, cols), lambda i, j: S[i, j] * 2.0, name="Y")
    s = te.create_schedule(Y.op)
    print(loopc.lower(s, [X, Y]))        # one call in place of a loop nest, then Y's loops
    x = np.random.default_rng(1).standard_normal((rows, cols)).astype("float32")
    y = np.zeros_like(x)
    loopc.build(s, [X, Y])(x, y)
    assert np.array_equal(y, np.sort(x, axis=1) * 2)
    print("   matches numpy\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="small sizes (what the test suite runs)")
    small = parser.parse_args().small
    moving_average(50 if small else 2000, 37 if small else 4096)
    two_step_recurrence(20)
    sorted_then_scaled(5 if small else 1000, 7 if small else 1000)


if __name__ == "__main__":
    main()
