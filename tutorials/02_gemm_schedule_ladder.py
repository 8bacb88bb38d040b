"""Tutorial 2 — a GEMM schedule ladder: default → tile → vectorize → reorder → pack → parallel.

The chapter asks whether the data fits in the caches, whether there is locality, and what
tiling buys. This tutorial answers by measurement: the same ``C = A @ B`` with one schedule
change per step, each step checked against numpy and timed, printed as one table beside numpy.
Read ``loopc/apps/ladder.py`` for the schedules; print any of them with
``loopc show gemm --step "pack B"``.

Run:  python tutorials/02_gemm_schedule_ladder.py [--size 1024] [--small]
"""
import argparse

import loopc
from loopc.apps import ladder


def main(size=1024, small=False):
    if small:
        size = 67  # prime-ish: no tile divides it, so every tail guard runs
    print(f"C[{size}x{size}] = A @ B, float32\n")
    s, args = ladder.step_parallel(size, size, size)
    print("The last step's loop nest (the others are in loopc/apps/ladder.py):\n")
    print(loopc.lower(s, args, name="gemm"))
    results = ladder.run_ladder(size, size, size, repeat=1 if small else 3,
                                min_repeat_ms=10 if small else 200)
    np_seconds = ladder.time_numpy(size, size, size, min_repeat_ms=10 if small else 200)
    np_gflops = 2.0 * size ** 3 / np_seconds / 1e9
    print(f"  {'numpy':<20s} {np_seconds * 1e3:10.3f} ms {np_gflops:8.1f} GFLOP/s")
    print("\nstep                 GFLOP/s   x default   x numpy")
    base = results[0].gflops
    for r in results:
        print(f"{r.name:<20s} {r.gflops:8.1f} {r.gflops / base:10.1f} {r.gflops / np_gflops:9.2f}")
    return results


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--small", action="store_true", help="a small, odd size (used by the test suite)")
    a = ap.parse_args()
    main(a.size, a.small)
