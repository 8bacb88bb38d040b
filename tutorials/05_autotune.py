"""Tutorial 5 — autotuning: let a tuner pick the schedule knobs, then use the best one.

The ladder of tutorial 2 fixed every choice by hand: a 4x16 register tile, a k step of 4, pack
B, parallelise the rows. Which choice is best depends on the shape and on the machine. Here we

1. write a *template*: the schedule with its choices left open as knobs (``cfg.define_*``);
2. create a *task* (the template on one shape) and print its config space;
3. tune it briefly with the cost-model tuner: each candidate is compiled in a worker process,
   checked against numpy, timed alone, and appended to a JSON Lines log;
4. read the log back: the best configs, the errors;
5. apply the best record (``apply_history_best``) and check the tuned kernel against numpy;
6. plot best-so-far GFLOP/s against trials (when matplotlib is installed).

Run:  python tutorials/05_autotune.py [--small] [--size N] [--trials N] [--log PATH]

Templates must live at the top level of a module or script: measurement workers import them.
"""
import argparse
import os
import tempfile
import time

import numpy as np

import loopc
from loopc import autotune, te


# ----------------------------------------------------------------------------- 1. a template


@autotune.template("tutorial_matmul", reference=lambda a, b: a @ b)
def matmul(M, N, K):
    cfg = autotune.get_config()
    A = te.placeholder((M, K), name="A")
    B = te.placeholder((K, N), name="B")
    k = te.reduce_axis((0, K), name="k")
    C = te.compute((M, N), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    cfg.add_flop(2 * M * N * K)
    s = te.create_schedule(C.op)
    CL = s.cache_write(C, "local")             # accumulate a tile in registers, then copy out
    i, j = C.op.axis
    # knobs: the register tile (rows x vector lanes) and the k step inside it
    cfg.define_split("tile_i", M, num_outputs=2, policy="candidate", candidate=[[-1, r] for r in (1, 2, 4, 6, 8)])
    cfg.define_split("tile_j", N, num_outputs=2, policy="candidate", candidate=[[-1, v] for v in (8, 16, 32)])
    cfg.define_split("tile_k", K, num_outputs=2, policy="power2", filter=lambda e: e.size[-1] <= 16)
    io, ii = cfg["tile_i"].apply(s, C, i)
    jo, ji = cfg["tile_j"].apply(s, C, j)
    s[C].reorder(io, jo, ii, ji)
    s[C].vectorize(ji)
    s[CL].compute_at(s[C], jo)
    xi, xj = s[CL].op.axis
    ko, ki = cfg["tile_k"].apply(s, CL, s[CL].op.reduce_axis[0])
    s[CL].reorder(ko, ki, xi, xj)
    cfg.define_annotate("unroll", [ki, xi], policy="try_unroll")      # unroll the k step? the rows?
    cfg["unroll"].apply(s, CL, [ki, xi])
    s[CL].vectorize(xj)
    cfg.define_knob("parallel", [0, 1])
    if cfg["parallel"].val:
        s[C].parallel(io)
    return s, [A, B, C]


# ----------------------------------------------------------------------------- 2.-6.


def main(size=512, trials=48, log=None, small=False):
    if small:
        size, trials = 64, 8
    log = log or os.path.join(tempfile.mkdtemp(prefix="loopc-tune-"), "tutorial_matmul.jsonl")
    M = N = K = size

    task = autotune.create_task("tutorial_matmul", (M, N, K))
    print(f"task: {task.name}{task.args}, {task.flop / 1e6:.1f} MFLOP per call")
    print(task.config_space)

    print(f"\ntuning {trials} trials with ModelTuner; log: {log}")
    option = autotune.measure_option(builder=autotune.LocalBuilder(timeout=20),
                                     runner=autotune.LocalRunner(number=2 if small else 4, repeat=3, timeout=10))
    tuner = autotune.ModelTuner(task, seed=0, n_init=4 if small else 8, plan_size=4 if small else 8)
    t0 = time.perf_counter()
    tuner.tune(trials, option, callbacks=[autotune.log_to_file(log), autotune.progress_bar(trials)])
    print(f"tuned in {time.perf_counter() - t0:.1f} s: best {tuner.best_flops / 1e9:.2f} GFLOP/s")

    records = [r for r in autotune.load_records(log) if r.workload == task.workload]
    errors = {}
    for r in records:
        if not r.ok:
            errors[r.error_kind] = errors.get(r.error_kind, 0) + 1
    print(f"\nthe log holds {len(records)} measurements of this workload; errors: {errors or 'none'}")
    print("best three:")
    for r in sorted((r for r in records if r.ok), key=lambda r: r.cost)[:3]:
        knobs = ", ".join(f"{n}={v}" for n, _kind, v in r.config["knobs"])
        print(f"  {r.gflops:8.2f} GFLOP/s  {knobs}")

    with autotune.apply_history_best(log):
        s, args = matmul(M, N, K)                # the template takes its best record
    f = loopc.build(s, args, name="tuned_matmul")
    rng = np.random.default_rng(0)
    a = rng.random((M, K), dtype=np.float32)
    b = rng.random((K, N), dtype=np.float32)
    c = np.zeros((M, N), dtype=np.float32)
    sec = f.time_evaluator(number=2, repeat=5)(a, b, c).median     # time before numpy's BLAS threads spin
    np.testing.assert_allclose(c, a @ b, rtol=1e-4, atol=1e-4)
    print(f"\napplied the best record: {2 * M * N * K / sec / 1e9:.2f} GFLOP/s here, matches numpy")
    print("its loop nest:\n" + "\n".join(str(loopc.lower(s, args)).splitlines()[:14]) + "\n  ...")

    png = os.path.splitext(log)[0] + ".png"
    try:
        autotune.plot_tuning_curve(log, png, title=f"tutorial_matmul {M}x{N}x{K}")
        print(f"\ntuning curve: {png}")
    except loopc.LoopcError as err:
        print(f"\n(no plot: {err})")
    return tuner


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--trials", type=int, default=48)
    ap.add_argument("--log", default=None, help="JSON Lines log (default: a temporary file)")
    ap.add_argument("--small", action="store_true", help="64^3 and 8 trials (used by the test suite)")
    a = ap.parse_args()
    main(a.size, a.trials, a.log, a.small)
