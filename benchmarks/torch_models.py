"""Whole models: PyTorch eager, PyTorch inductor and loopc (``torch.compile(backend="loopc")``).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/torch_models.py \\
        [--quick] [--only NAME] [--threads 1 2] [--rounds 5] [--log FILE]

Workloads: the chapter's MNIST Net (pytorch/examples) inference at batch 1 and 64 and its
training step at batch 64 (forward, nll_loss, backward, SGD momentum 0.9: torch.optim.SGD for
eager and inductor, loopc.torch.optim.SGD for loopc); ResNet-18 and MobileNetV2 (224x224,
written out in loopc.apps.torchbench) inference at batch 1 and 16. Run it without
OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE (the ``env -u`` above). ``--quick``: the Net at batch 1
only (inference and a training step), fewer rounds, a smoke test. ``--only NAME``: a model
(net, resnet18, mobilenet_v2) or text in the workload's name ("train", "b16").

Per workload and thread count (``torch.set_num_threads`` and loopc's
``threads.set_num_threads``; everything is compiled afresh at each count, since inductor
bakes it into its kernels): each backend's first call (compile) is timed, loopc's output (or
its training step's gradients) is checked against eager's, then the three are timed in
interleaved rounds of at least 100 ms. Medians in ms; ratios are medians of the per-round
loopc / other times (below 1: loopc is faster). A backend that fails says why in its cell
(inductor needs a C++ compiler); loopc's fallback report (ops PyTorch ran) follows the table.
"""
import argparse
import os
import sys
import time

from loopc.apps.machine import machine_line


def _selected(workloads, only, models):
    if only is None:
        return list(workloads)
    return [w for w in workloads if only == w.model or (only not in models and only in w.name)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="the Net at batch 1 only, fewer rounds (smoke test)")
    ap.add_argument("--only", default=None, help="a model name, or text in the workload names")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 5; 2 with --quick)")
    ap.add_argument("--log", default=None, help="append the table to this file")
    args = ap.parse_args()
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        if var in os.environ:
            print(f"warning: {var} is set; run under env -u {var} (see the docstring)", file=sys.stderr)

    from loopc.apps import torchbench as tb
    rounds = args.rounds or (2 if args.quick else 5)
    workloads = ((tb.Workload("net", 1), tb.Workload("net", 1, train=True)) if args.quick else tb.WORKLOADS)
    workloads = _selected(workloads, args.only, tb.MODELS)
    if not workloads:
        ap.error(f"--only {args.only!r} matches no workload")
    machine = machine_line(torch_details=True)
    print(machine)
    print(f"{len(workloads)} workloads x threads {args.threads}, {rounds} interleaved rounds each\n", flush=True)
    results = []
    for w in workloads:
        for n in args.threads:
            r = tb.measure(w, n, rounds=rounds, log=lambda s: print(s, flush=True))
            results.append(r)
            print(tb.progress_line(r), flush=True)
    table = tb.format_table(results)
    print("\n" + table)
    if args.log:
        with open(args.log, "a") as f:
            f.write(f"\n## {time.strftime('%Y-%m-%d %H:%M')}: {' '.join(sys.argv)}\n\n{machine}\n\n{table}\n")


if __name__ == "__main__":
    main()
