"""The ``loopc`` command line: info, show, bench, demo.

    loopc info                          target triple, CPU, features, threads, versions
    loopc show gemm --step parallel     the lowered loop nest (or --format llvm / asm)
    loopc bench --size 1024             the GEMM schedule ladder beside numpy
    loopc demo                          the main job (today: the ladder, checked and timed)
"""
from __future__ import annotations

import argparse
import platform
import sys


def cmd_info(args) -> int:
    import llvmlite
    import numba
    import numpy as np

    import loopc
    from loopc.runtime import threads
    from loopc.targets.llvm import host_target

    t = host_target()
    feats = [f[1:] for f in t.features.split(",") if f.startswith("+")]
    simd = [f for f in feats if f.startswith(("avx", "sse", "fma", "neon", "sve"))]
    rows = [
        ("loopc", loopc.__version__),
        ("python", platform.python_version()),
        ("numpy", np.__version__),
        ("llvmlite", f"{llvmlite.__version__} (LLVM {'.'.join(map(str, _llvm_version()))})"),
        ("numba", numba.__version__),
        ("target", "llvm"),
        ("triple", t.triple),
        ("cpu", t.cpu),
        ("vector bits", str(t.vector_bits)),
        ("simd features", " ".join(sorted(simd)) or "-"),
        ("threads", f"{threads.num_threads()} ({'libgomp' if threads.libgomp() else 'serial fallback'})"),
    ]
    if args.all_features:
        rows.append(("all features", " ".join(feats)))
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    return 0


def _llvm_version():
    import llvmlite.binding as llvm
    return llvm.llvm_version_info


def cmd_show(args) -> int:
    import loopc
    from loopc import ladder

    steps = dict(ladder.STEPS)
    s, tensors = steps[args.step](args.M, args.N, args.K)
    if args.format == "ir":
        print(loopc.lower(s, tensors, name="gemm"))
    else:
        print(loopc.build(s, tensors, name="gemm").get_source(args.format))
    return 0


def _ladder_table(size, repeat):
    from loopc import ladder
    print(f"GEMM {size}x{size}x{size} float32 schedule ladder (loopc; numpy for reference)")
    results = ladder.run_ladder(size, size, size, repeat=repeat)
    np_seconds = ladder.time_numpy(size, size, size, repeat=repeat)
    np_gflops = 2.0 * size ** 3 / np_seconds / 1e9
    print(f"  {'numpy (BLAS)':<20s} {np_seconds * 1e3:10.3f} ms {np_gflops:8.1f} GFLOP/s")
    best = max(results, key=lambda r: r.gflops)
    print(f"best step: {best.name}, {best.gflops:.1f} GFLOP/s = {best.gflops / np_gflops:.2f}x numpy")
    return results


def cmd_bench(args) -> int:
    if args.ladder:
        _ladder_table(args.size, args.repeat)
        return 0
    from loopc import benchsuite
    print(benchsuite.format_header())
    benchsuite.run_suite(tuple(args.threads), quick=args.quick, repeat=args.repeat)
    return 0


def cmd_demo(args) -> int:
    from loopc.targets.llvm import host_target
    print(f"loopc demo on {host_target().cpu}: compile, check against numpy, and time each schedule")
    _ladder_table(args.size, args.repeat)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from loopc import ladder
    p = argparse.ArgumentParser(prog="loopc", description="loopc: a tensor-program compiler with a loop-scheduling DSL")
    sub = p.add_subparsers(dest="command", required=True)

    info = sub.add_parser("info", help="target triple, CPU name and features, threads, versions")
    info.add_argument("--all-features", action="store_true", help="list every LLVM feature flag")
    info.set_defaults(fn=cmd_info)

    show = sub.add_parser("show", help="print an op's lowered IR, LLVM IR or assembly")
    show.add_argument("op", choices=["gemm"], help="the operator (more arrive with the operator library)")
    show.add_argument("--step", default="parallel", choices=[n for n, _ in ladder.STEPS],
                      help="which schedule of the GEMM ladder")
    show.add_argument("--format", default="ir", choices=["ir", "llvm", "asm"])
    show.add_argument("-M", type=int, default=64)
    show.add_argument("-N", type=int, default=64)
    show.add_argument("-K", type=int, default=64)
    show.set_defaults(fn=cmd_show)

    for name, fn, help_text, size in (("bench", cmd_bench, "time the operator suite (or --ladder) beside numpy/PyTorch", 1024),
                                      ("demo", cmd_demo, "the main job on this machine", 1024)):
        sp = sub.add_parser(name, help=help_text)
        sp.add_argument("--size", type=int, default=size, help="M = N = K of the GEMM ladder")
        sp.add_argument("--repeat", type=int, default=3)
        sp.set_defaults(fn=fn)
        if name == "bench":
            sp.add_argument("--ladder", action="store_true", help="the GEMM schedule ladder instead of the suite")
            sp.add_argument("--threads", type=int, nargs="+", default=[1, 2])
            sp.add_argument("--quick", action="store_true", help="small shapes only")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
