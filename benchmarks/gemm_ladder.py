"""The GEMM schedule ladder beside numpy/OpenBLAS, at 1 and 2 threads, with ratios.

Run with numpy's OpenBLAS free to pick its own kernel (the machine's environment pins
a slower one):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/gemm_ladder.py [--size 1024]

Prints which BLAS kernel numpy ran (threadpoolctl), medians of repeated runs, GFLOP/s and
loopc/numpy ratios. Results go to benchmarks/RESULTS.md by hand, with the machine.
"""
import argparse
import os
import platform

from loopc.apps import ladder
from loopc.runtime import threads
from loopc.targets.llvm import host_target


def blas_info():
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "threadpoolctl not installed (pip install loopc[bench])", None
    for lib in threadpool_info():
        if lib.get("user_api") == "blas":
            return f"{lib.get('internal_api')} {lib.get('version')} kernel={lib.get('architecture')}", lib
    return "no BLAS found", None


def limit_blas(n):
    from threadpoolctl import threadpool_limits
    return threadpool_limits(limits=n, user_api="blas")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    n = args.size
    flops = 2.0 * n ** 3
    kernel, _ = blas_info()
    print(f"machine: {platform.processor() or platform.machine()}, LLVM cpu={host_target().cpu}, "
          f"{os.cpu_count()} cores; numpy BLAS: {kernel}")
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        print(f"  {var}={os.environ.get(var, '(unset)')}")
    print(f"GEMM {n}x{n}x{n} float32, medians of {args.repeat} runs\n")
    for nthreads in (1, 2):
        threads.set_num_threads(nthreads)
        with limit_blas(nthreads):
            print(f"--- {nthreads} thread(s)")
            results = ladder.run_ladder(n, n, n, repeat=args.repeat, log=None)
            np_s = ladder.time_numpy(n, n, n, repeat=args.repeat)
        np_gf = flops / np_s / 1e9
        print(f"{'step':<20s} {'ms':>10s} {'GFLOP/s':>9s} {'/numpy':>8s}")
        for r in results:
            print(f"{r.name:<20s} {r.seconds * 1e3:10.3f} {r.gflops:9.1f} {r.gflops / np_gf:8.2f}")
        print(f"{'numpy':<20s} {np_s * 1e3:10.3f} {np_gf:9.1f} {1.0:8.2f}\n")


if __name__ == "__main__":
    main()
