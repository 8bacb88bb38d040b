"""Operators at LeNet's and ResNet's sizes: loopc beside numpy (OpenBLAS) and PyTorch.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/bench_ops.py [--threads 1 2]

Ratios are medians of per-round peer_time / loopc_time (the peers timed back to back in each
of --repeat interleaved rounds): above 1.00 loopc is faster. Prints the BLAS kernel numpy
ran (threadpoolctl) and the machine. Record results in benchmarks/RESULTS.md.
"""
import argparse
import os
import platform

from loopc.apps import benchsuite
from loopc.targets.llvm import host_target


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--quick", action="store_true", help="small shapes only (a smoke test)")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    try:
        from threadpoolctl import threadpool_info
        blas = [f"{i.get('internal_api')} {i.get('version')} kernel={i.get('architecture')}"
                for i in threadpool_info() if i.get("user_api") == "blas"]
    except ImportError:
        blas = ["threadpoolctl missing"]
    try:
        import torch
        peer = f"torch {torch.__version__}"
    except ImportError:
        peer = "torch not installed"
    print(f"machine: {platform.machine()}, LLVM cpu={host_target().cpu}, {os.cpu_count()} cores; "
          f"numpy BLAS: {', '.join(blas)}; {peer}")
    print(f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')} "
          f"OPENBLAS_L2_SIZE={os.environ.get('OPENBLAS_L2_SIZE', '(unset)')}")
    print(benchsuite.format_header())
    benchsuite.run_suite(tuple(args.threads), quick=args.quick, repeat=args.repeat)


if __name__ == "__main__":
    main()
