"""Every distinct convolution of ResNet-18 and MobileNetV2: loopc beside PyTorch (oneDNN).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/conv_suite.py \\
        [--models resnet18 mobilenet_v2] [--batch 1 16] [--threads 1 2] [--tune-below 1.0 --trials 64]

For each layer: loopc's default schedule (checked against PyTorch, then timed with PyTorch in
interleaved rounds), and with ``--tune-below R`` a short tuning run (``--trials``, at most
``--seconds`` a layer) of every layer whose 1-thread ratio is below R, timed again with its best
record. Ratios are medians of per-round torch_time / loopc_time (> 1: loopc is faster).
Prints a Markdown table per suite for benchmarks/RESULTS.md.
"""
import argparse
import os
import tempfile

from loopc.apps import convsuite as cs
from loopc.apps.machine import machine_line


def _progress(r, thread_counts):
    """One line per measured layer while the suite runs (the tables come at the end)."""
    label = f"{r.layer}" + (" tuned" if r.how == "tuned" else "")
    print(f"  {label}: " + ", ".join(f"{n}t x{r.ratio[n]:.2f} ({r.gflops(n):.1f} GFLOP/s)" for n in thread_counts),
          flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", choices=sorted(cs.SUITES), default=sorted(cs.SUITES))
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 16])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeat", type=int, default=5, help="interleaved rounds per layer and thread count")
    ap.add_argument("--only", default=None, help="layers whose name contains this text")
    ap.add_argument("--tune-below", type=float, default=None,
                    help="tune the layers whose default 1-thread ratio is below this")
    ap.add_argument("--trials", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=30.0, help="tuning time per layer at most")
    ap.add_argument("--log", default=None, help="tuning records (default: a temporary file)")
    args = ap.parse_args()
    print(machine_line())
    log = args.log or os.path.join(tempfile.mkdtemp(prefix="conv_suite_"), "records.jsonl")
    for model in args.models:
        for batch in args.batch:
            results = []
            for layer in cs.SUITES[model](batch):
                if args.only and args.only not in str(layer):
                    continue
                f, build_s = cs.build(layer)
                r = cs.measure(layer, f, "default", build_s, tuple(args.threads), repeat=args.repeat)
                results.append(r)
                _progress(r, args.threads)
                if args.tune_below is not None and r.ratio[min(args.threads)] < args.tune_below:
                    cs.tune(layer, log, trials=args.trials, seconds=args.seconds)
                    f, build_s = cs.build(layer, records=log)
                    r = cs.measure(layer, f, "tuned", build_s, tuple(args.threads), repeat=args.repeat)
                    results.append(r)
                    _progress(r, args.threads)
            print(f"\n### {model}, batch {batch}\n")
            print(cs.format_table(results, tuple(args.threads)))
            print()


if __name__ == "__main__":
    main()
