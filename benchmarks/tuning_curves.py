"""Tuning curves: best GFLOP/s against trials for RandomTuner, GATuner and ModelTuner.

Each tuner gets the same budget and seed on the same template and workload (default: the
built-in ``gemm`` template, 1024x1024x1024 float32). For each tuner the script reports the
best GFLOP/s, the best after 16 / 32 / 64 trials, and the trials and wall-clock seconds it took
to reach 95% of the best that *any* tuner found. Logs (JSON Lines, one per tuner) and a PNG of
the curves go to ``--outdir``.

    python benchmarks/tuning_curves.py                    # gemm 1024^3, 96 trials per tuner
    python benchmarks/tuning_curves.py --size 512 --trials 48
    python benchmarks/tuning_curves.py --conv             # also LeNet's conv2 as a template

The tuners run *interleaved*, one batch each in turn, so that a change of load on a shared
machine (another job starting on the other core) hits all of them alike; each tuner's wall
time is the sum of its own batches: compiling (in parallel), timing (one candidate at a time)
and its own search and model. ``--sequential`` runs each tuner's ``tune()`` in turn instead.
"""
import argparse
import os
import sys
import tempfile
import time

import numpy as np

from loopc import autotune, te
from loopc.autotune.record import load_records, save_records

TUNERS = {"random": autotune.RandomTuner, "ga": autotune.GATuner, "model": autotune.ModelTuner}


# ----------------------------------------------------------------------------- LeNet conv2 as a template

def _conv_reference(x, w):
    kh, kw = w.shape[2:]
    cols = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(2, 3))    # n c oh ow kh kw
    return np.einsum("ncyxij,fcij->nfyx", cols.astype(np.float64), w.astype(np.float64)).astype(np.float32)


@autotune.template("lenet_conv2", reference=_conv_reference)
def conv2d(N, C, H, W, F, KH, KW):
    """Valid convolution, NCHW. Weights are first packed as [C, KH, KW, F] so that the output
    channels are the vector lanes; knobs: the channel block (lanes), the x tile (unrolled
    rows of the register tile), the order of the reductions, parallel over the batch."""
    cfg = autotune.get_config()
    OH, OW = H - KH + 1, W - KW + 1
    cfg.add_flop(2 * N * F * OH * OW * C * KH * KW)
    X = te.placeholder((N, C, H, W), name="X")
    Wt = te.placeholder((F, C, KH, KW), name="W")
    cfg.define_split("tile_f", F, num_outputs=2, policy="candidate", candidate=[[-1, v] for v in (4, 8, 16) if v <= F])
    cfg.define_split("tile_x", OW, num_outputs=2, policy="candidate", candidate=[[-1, v] for v in (1, 2, 4, 5, 10) if v <= OW])
    fi = cfg["tile_f"].size[-1]
    nf = -(-F // fi)
    WP = te.compute((nf, C, KH, KW, fi), lambda a, c, i, j, b: te.if_then_else(
        a * fi + b < F, Wt[te.min(a * fi + b, F - 1), c, i, j], 0.0), name="Wpacked")
    c = te.reduce_axis((0, C), name="c")
    ky = te.reduce_axis((0, KH), name="ky")
    kx = te.reduce_axis((0, KW), name="kx")
    Out = te.compute((N, F, OH, OW), lambda n, f, y, x: te.sum(
        X[n, c, y + ky, x + kx] * WP[f // fi, c, ky, kx, f % fi], axis=[c, ky, kx]), name="conv")
    s = te.create_schedule(Out.op)
    OL = s.cache_write(Out, "local")
    n, f, y, x = Out.op.axis
    fo, fii = cfg["tile_f"].apply(s, Out, f)
    xo, xi = cfg["tile_x"].apply(s, Out, x)
    s[Out].reorder(n, fo, y, xo, xi, fii)
    s[OL].compute_at(s[Out], xo)
    on, of, oy, ox = s[OL].op.axis
    rc, rky, rkx = s[OL].op.reduce_axis
    cfg.define_reorder("red_order", [rc, rky, rkx], policy="candidate",
                       candidate=[[rc, rky, rkx], [rky, rkx, rc], [rky, rc, rkx]])
    order = cfg["red_order"].apply(s, OL, [rc, rky, rkx])
    s[OL].reorder(*order, on, oy, ox, of)
    cfg.define_annotate("unroll_kx", [rkx], policy="try_unroll")
    cfg["unroll_kx"].apply(s, OL, [rkx])
    s[OL].unroll(ox)
    s[OL].vectorize(of)
    s[Out].vectorize(fii)
    s[WP].vectorize(WP.op.axis[4])
    cfg.define_knob("parallel", [1, 0])
    if cfg["parallel"].val:
        s[Out].parallel(n)
    return s, [X, Wt, Out]


# ----------------------------------------------------------------------------- the runs

class Clock:
    """A callback that notes the tuner's own wall time and best GFLOP/s after every trial."""

    def __init__(self):
        self.t0 = time.perf_counter()
        self.spent = 0.0           # seconds of earlier batches (interleaved mode)
        self.points = []           # (trials, seconds, best GFLOP/s so far)

    def start_batch(self):
        self.t0 = time.perf_counter()

    def end_batch(self):
        self.spent += time.perf_counter() - self.t0

    def __call__(self, tuner, inputs, results):
        self.points.append((tuner.n_trials, self.spent + time.perf_counter() - self.t0, tuner.best_flops / 1e9))


def _log_path(outdir, workload, tuner_name):
    name, args = workload
    log = os.path.join(outdir, f"{name}_{'x'.join(map(str, args))}_{tuner_name}.jsonl")
    if os.path.exists(log):
        os.remove(log)
    return log


def _option(number, repeat):
    return autotune.measure_option(builder=autotune.LocalBuilder(timeout=30),
                                   runner=autotune.LocalRunner(number=number, repeat=repeat, timeout=20))


def run_interleaved(workload, tuner_names, trials, seed, outdir, number, repeat):
    """All tuners on one measure_option, a batch each in turn."""
    from loopc.autotune.measure import close_option
    name, args = workload
    task = autotune.create_task(name, args)
    option = _option(number, repeat)
    option["runner"].reference(task)           # computed once, charged to nobody
    runs = []
    for t in tuner_names:
        clock = Clock()
        log = _log_path(outdir, workload, t)
        runs.append({"tuner": t, "log": log, "clock": clock, "obj": TUNERS[t](autotune.create_task(name, args), seed=seed),
                     "callbacks": [autotune.log_to_file(log), clock]})
    try:
        active = list(runs)
        while active:
            for r in list(active):
                tuner = r["obj"]
                r["clock"].start_batch()
                n = tuner.measure_next(option, trials - tuner.n_trials, r["callbacks"])
                r["clock"].end_batch()
                if n == 0 or tuner.n_trials >= trials:
                    active.remove(r)
            done = sum(r["obj"].n_trials for r in runs)
            print(f"\r  {done}/{trials * len(runs)} trials", end="", flush=True)
        print()
    finally:
        close_option(option)
    return [{"tuner": r["tuner"], "log": r["log"], "points": r["clock"].points, "wall": r["clock"].spent,
             "best": r["obj"].best_flops / 1e9, "errors": r["obj"].n_errors,
             "model_seconds": getattr(r["obj"], "model_seconds", 0.0)} for r in runs]


def run_one(workload, tuner_name, trials, seed, outdir, number, repeat, quiet):
    """One tuner's ``tune()`` (sequential mode)."""
    name, args = workload
    log = _log_path(outdir, workload, tuner_name)
    clock = Clock()
    task = autotune.create_task(name, args)
    tuner = TUNERS[tuner_name](task, seed=seed)
    option = _option(number, repeat)
    callbacks = [autotune.log_to_file(log), clock]
    if not quiet:
        callbacks.append(autotune.progress_bar(trials, prefix=tuner_name))
    tuner.tune(trials, option, callbacks=callbacks)
    wall = time.perf_counter() - clock.t0
    return {"tuner": tuner_name, "log": log, "points": clock.points, "wall": wall, "best": tuner.best_flops / 1e9,
            "errors": tuner.n_errors, "model_seconds": getattr(tuner, "model_seconds", 0.0)}


def report(workload, runs, out):
    best = max(r["best"] for r in runs)
    target = 0.95 * best
    name, args = workload
    lines = [f"\n### {name}{tuple(args)}: best found {best:.1f} GFLOP/s (95% = {target:.1f})\n",
             "| tuner | best GFLOP/s | @16 | @32 | @64 | trials to 95% | wall s to 95% | total wall s | "
             "of which model s | errors |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        pts = r["points"]

        def at(n):
            got = [g for t, _s, g in pts if t <= n]
            return f"{got[-1]:.1f}" if got else "-"
        hit = next(((t, s) for t, s, g in pts if g >= target), None)
        lines.append(f"| {r['tuner']} | {r['best']:.1f} | {at(16)} | {at(32)} | {at(64)} | "
                     f"{hit[0] if hit else 'not reached'} | {f'{hit[1]:.0f}' if hit else '-'} | "
                     f"{r['wall']:.0f} | {r['model_seconds']:.0f} | {r['errors']} |")
    text = "\n".join(lines)
    print(text)
    out.append(text)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=1024, help="M = N = K of the gemm workload")
    ap.add_argument("--trials", type=int, default=96)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tuners", nargs="+", default=["random", "ga", "model"], choices=list(TUNERS))
    ap.add_argument("--conv", action="store_true", help="also tune LeNet's conv2 (batch 64) as a template")
    ap.add_argument("--no-gemm", action="store_true")
    ap.add_argument("--number", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--conv-trials", type=int, default=48)
    ap.add_argument("--outdir", default=None, help="logs, curves and summary.md (default: a new temporary folder)")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--sequential", action="store_true", help="each tuner's tune() in turn (not interleaved)")
    a = ap.parse_args(argv)
    a.outdir = a.outdir or tempfile.mkdtemp(prefix="loopc-tuning-curves-")
    os.makedirs(a.outdir, exist_ok=True)
    workloads = [] if a.no_gemm else [("gemm", (a.size, a.size, a.size))]
    if a.conv:
        workloads.append(("lenet_conv2", (64, 6, 14, 14, 16, 5, 5)))
    from loopc.autotune.dispatcher import target_key
    from loopc.targets.llvm import host_target
    print(f"tuning curves on {target_key(str(host_target()))[1]} ({os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f}), {a.trials} trials per tuner, seed {a.seed}; output in {a.outdir}")
    out = []
    for wl in workloads:
        trials = a.conv_trials if wl[0] == "lenet_conv2" else a.trials
        if a.sequential:
            runs = [run_one(wl, t, trials, a.seed, a.outdir, a.number, a.repeat, a.quiet) for t in a.tuners]
        else:
            runs = run_interleaved(wl, a.tuners, trials, a.seed, a.outdir, a.number, a.repeat)
        report(wl, runs, out)
        combined = os.path.join(a.outdir, f"{wl[0]}_all.jsonl")
        save_records(combined, [r for run in runs for r in load_records(run["log"])])
        try:
            png = autotune.plot_tuning_curve(combined, os.path.join(a.outdir, f"{wl[0]}_curves.png"),
                                             title=f"{wl[0]}{tuple(wl[1])}: best GFLOP/s vs trials")
            print(f"curves: {png}")
        except Exception as err:  # noqa: BLE001 - matplotlib is optional
            print(f"(no plot: {err})")
    with open(os.path.join(a.outdir, "summary.md"), "w") as f:
        f.write("\n".join(out) + "\n")
    print(f"\nload average after: {os.getloadavg()[0]:.1f}; summary: {os.path.join(a.outdir, 'summary.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
