"""LeNet-5 on loopc kernels beside PyTorch eager and torch.compile, at 1 and 2 threads.

    .venv/bin/python benchmarks/lenet.py [--repeat 7] [--no-compile]

Three workloads, the issue's targets: forward at batch 1, forward at batch 64, and a training
step at batch 64 (forward, backward, SGD-momentum update). Every number is the median of
``--repeat`` rounds of ``--number`` calls after a warm-up; loopc and PyTorch run the same
weights on the same input, with the same thread count (``torch.set_num_threads``,
``loopc.runtime.threads.set_num_threads``). torch.compile (inductor) is tried once per
workload; where it fails on this machine (no C++ compiler, ...) its column says so.
Results go to benchmarks/RESULTS.md by hand, with the machine.
"""
import argparse
import os
import platform

import numpy as np


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--number", type=int, default=20)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    args = ap.parse_args()

    from loopc.apps import lenet_bench as bench
    from loopc.nn.lenet import LeNet
    from loopc.runtime import threads
    from loopc.targets.llvm import host_target

    try:
        import torch
    except ImportError:
        torch = None
    print(f"machine: {platform.processor() or platform.machine()}, LLVM cpu={host_target().cpu}, "
          f"{os.cpu_count()} cores; PyTorch {torch.__version__ if torch else '(not installed)'}")
    print(f"medians of {args.repeat} rounds x {args.number} calls, milliseconds\n")

    model = LeNet(seed=0)
    for b in (1, 64):                     # compile everything before timing anything
        model.executor(b)
    for nthreads in args.threads:
        threads.set_num_threads(nthreads)
        rows = {}
        for b in (1, 64):
            fwd, train, _, _ = bench.time_loopc(model, b, args.number, args.repeat, rng=np.random.default_rng(0))
            rows[b] = {"loopc": (fwd, train)}
            if torch is not None:
                torch.set_num_threads(nthreads)
                rows[b]["eager"] = bench.time_torch(model, b, args.number, args.repeat)
                if not args.no_compile:
                    try:
                        rows[b]["compile"] = bench.time_torch(model, b, args.number, args.repeat, compile=True)
                    except Exception as e:  # inductor needs a working C++ toolchain
                        rows[b]["compile"] = f"failed: {type(e).__name__}"
        print(f"--- {nthreads} thread(s)")
        print(f"{'workload':<22s} {'loopc':>9s} {'eager':>9s} {'compile':>9s} {'loopc/eager':>12s} {'loopc/compile':>14s}")
        for name, b, i in (("forward, batch 1", 1, 0), ("forward, batch 64", 64, 0), ("train step, batch 64", 64, 1)):
            r = rows[b]
            ours = r["loopc"][i]
            eager = r["eager"][i] if "eager" in r else None
            comp = r.get("compile")
            comp_v = comp[i] if isinstance(comp, tuple) else None

            def fmt(v):
                return f"{v:9.3f}" if v is not None else f"{'-':>9s}"
            ratio_e = f"{ours / eager:11.2f}x" if eager else f"{'-':>12s}"
            ratio_c = f"{ours / comp_v:13.2f}x" if comp_v else f"{'-':>14s}"
            print(f"{name:<22s} {fmt(ours)} {fmt(eager)} {fmt(comp_v)} {ratio_e} {ratio_c}"
                  + (f"   torch.compile {comp}" if isinstance(comp, str) else ""))
        print()


if __name__ == "__main__":
    main()
