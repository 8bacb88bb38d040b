"""The ``loopc`` command line: info, show, bench, lenet, demo.

    loopc info                          target triple, CPU, features, threads, versions
    loopc show gemm --step parallel     the lowered loop nest (or --format llvm / asm)
    loopc bench [--ladder]              the operator suite (or the GEMM schedule ladder) beside numpy
    loopc lenet train [--data DIR] [--epochs 3] [--batch-size 64] [--optimizer adadelta|sgd]
                      [--lr 1.0] [--threads N] [--profile] [--trace T.json] [--logdir DIR] [--save W.npz]
    loopc lenet eval --load W.npz [--data DIR]
    loopc lenet bench --batch-sizes 1 16 64
    loopc demo                          LeNet trained on loopc kernels on the embedded MNIST subset
    loopc tune gemm --shape 1024 1024 1024 --trials 64 --tuner model --log gemm.jsonl
"""
from __future__ import annotations

import argparse
import contextlib
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
    from loopc.nn import demo
    demo.main(epochs=args.epochs, batch_size=args.batch_size, threads=args.threads, with_torch=not args.no_torch)
    return 0


def _set_threads(n):
    if n is not None:
        from loopc.runtime import threads
        threads.set_num_threads(n)


def cmd_lenet_train(args) -> int:
    import loopc
    from loopc.nn import datasets
    from loopc.nn.lenet import LeNet
    from loopc.nn.runtime import untuned_summary
    from loopc.nn.train import TrainConfig, fit

    _set_threads(args.threads)
    data = datasets.mnist(args.data)
    print(f"data: {data.source}: {len(data.train)} train / {len(data.test)} test images")
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, optimizer=args.optimizer,
                      lr=args.lr if args.lr is not None else (1.0 if args.optimizer == "adadelta" else 0.01),
                      momentum=args.momentum, gamma=args.gamma, seed=args.seed)
    model = LeNet(seed=args.seed, target=args.target)
    writer = None
    if args.logdir:
        from loopc.nn.tensorboard import SummaryWriter
        writer = SummaryWriter(args.logdir)
    profiling = args.profile or args.trace
    prof = loopc.profile()
    try:
        with prof if profiling else contextlib.nullcontext():
            fit(model, data, cfg, writer=writer)
    finally:
        if writer is not None:
            writer.close()
    print(untuned_summary())
    if profiling:
        print("\ntop-10 operators (loopc.profile):")
        print(prof.table(top=10))
    if args.trace:
        prof.export_chrome_trace(args.trace)
        print(f"Chrome trace written to {args.trace} (open it in chrome://tracing or ui.perfetto.dev)")
    if args.logdir:
        print(f"TensorBoard logs in {args.logdir}: tensorboard --logdir {args.logdir}")
    if args.save:
        model.save(args.save)
        print(f"weights saved to {args.save}")
    return 0


def cmd_lenet_eval(args) -> int:
    from loopc.nn import datasets
    from loopc.nn.lenet import LeNet

    _set_threads(args.threads)
    data = datasets.mnist(args.data)
    model = LeNet(target=args.target)
    model.load(args.load)
    loss, acc = model.evaluate(*data.test.tensors(), batch=args.batch_size)
    print(f"{args.load}: test accuracy {acc:.2%}, loss {loss:.4f} on {len(data.test)} images ({data.source})")
    return 0


def cmd_lenet_bench(args) -> int:
    from loopc.nn import bench
    bench.run(batch_sizes=args.batch_sizes, threads=args.threads, number=args.number, repeat=args.repeat,
              with_torch=not args.no_torch)
    return 0


def _add_lenet(sub):
    lenet = sub.add_parser("lenet", help="LeNet-5 on loopc kernels: train, eval, bench")
    lsub = lenet.add_subparsers(dest="lenet_command", required=True)
    train = lsub.add_parser("train", help="train on MNIST (IDX files from --data, else the embedded subset)")
    train.add_argument("--data", metavar="DIR", help="folder with MNIST's IDX files (raw or .gz; MNIST/raw too)")
    train.add_argument("--epochs", type=int, default=3)
    train.add_argument("--batch-size", type=int, default=64)
    train.add_argument("--optimizer", choices=["adadelta", "sgd"], default="adadelta")
    train.add_argument("--lr", type=float, default=None, help="default: 1.0 for adadelta, 0.01 for sgd")
    train.add_argument("--momentum", type=float, default=0.9, help="sgd only")
    train.add_argument("--gamma", type=float, default=0.7, help="learning-rate decay per epoch (StepLR)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--threads", type=int, default=None)
    train.add_argument("--profile", action="store_true", help="print the top-10 operator table")
    train.add_argument("--trace", metavar="PATH", help="also write a Chrome trace of every kernel call")
    train.add_argument("--logdir", metavar="DIR", help="TensorBoard event files: scalars and the graph")
    train.add_argument("--save", metavar="PATH", help="write the trained weights (.npz)")
    train.add_argument("--target", default="llvm", help="'llvm' (this CPU) or 'cuda' (an NVIDIA GPU, or numba's "
                       "simulator with NUMBA_ENABLE_CUDASIM=1); the optimizer update runs on the CPU")
    train.set_defaults(fn=cmd_lenet_train)
    ev = lsub.add_parser("eval", help="test accuracy of saved weights")
    ev.add_argument("--load", metavar="PATH", required=True, help="weights written by `lenet train --save`")
    ev.add_argument("--data", metavar="DIR")
    ev.add_argument("--batch-size", type=int, default=64)
    ev.add_argument("--target", default="llvm", help="'llvm' or 'cuda'")
    ev.add_argument("--threads", type=int, default=None)
    ev.set_defaults(fn=cmd_lenet_eval)
    bn = lsub.add_parser("bench", help="per-operator profile and latency per batch size, beside PyTorch")
    bn.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16, 64])
    bn.add_argument("--threads", type=int, default=None)
    bn.add_argument("--number", type=int, default=10, help="calls per timing round")
    bn.add_argument("--repeat", type=int, default=5, help="timing rounds (the median is reported)")
    bn.add_argument("--no-torch", action="store_true", help="skip the PyTorch comparison")
    bn.set_defaults(fn=cmd_lenet_bench)


TUNERS = ("model", "ga", "random", "grid")
LIBRARY_OPS = ("matmul", "dense", "conv2d_nchw")     # loopc.autotune.library: templates of loopc.schedules
OP_ALIASES = {"conv2d": "conv2d_nchw"}


def cmd_tune(args) -> int:
    """Tune a registered template (the built-in ``gemm``, or the operator library's ``matmul``,
    ``dense``, ``conv2d_nchw``) and log every measurement."""
    from loopc import autotune
    from loopc.autotune.dispatcher import target_key
    args.op = OP_ALIASES.get(args.op, args.op)
    if str(args.target).split()[:1] == ["cuda"] and args.op in LIBRARY_OPS:
        args.op += "_cuda"          # the operator library's GPU templates
    if args.op not in autotune.list_templates():
        try:                      # the operator library registers its templates when imported
            import loopc.schedules  # noqa: F401
        except ImportError:
            pass
    shape = tuple(args.shape)
    task = autotune.create_task(args.op, shape, target=args.target)
    print(f"tuning {task.name}{task.args} on {target_key(task.target_string)[1]}: {len(task.config_space)} configs, "
          f"{args.trials} trials, {args.tuner} tuner, log {args.log}")
    tuners = {"model": autotune.ModelTuner, "ga": autotune.GATuner, "random": autotune.RandomTuner,
              "grid": autotune.GridSearchTuner}
    tuner = tuners[args.tuner](task, seed=args.seed) if args.tuner != "grid" else autotune.GridSearchTuner(task)
    option = autotune.measure_option(
        builder=autotune.LocalBuilder(n_parallel=args.n_parallel, timeout=args.timeout),
        runner=autotune.LocalRunner(number=args.number, repeat=args.repeat, timeout=args.timeout,
                                    check_correctness=not args.no_check))
    callbacks = [autotune.log_to_file(args.log)]
    if not args.quiet:
        callbacks.append(autotune.progress_bar(args.trials))
    tuner.tune(args.trials, option, early_stopping=args.early_stopping, callbacks=callbacks)
    best = [r for r in autotune.load_records(args.log) if r.ok and r.workload == task.workload]
    if not best:
        print("no successful measurement")
        return 1
    r = max(best, key=lambda r: r.gflops)
    print(f"best: {r.gflops:.2f} GFLOP/s ({r.cost * 1e3:.3f} ms), config {r.config_entity()}")
    if args.op.removesuffix("_cuda") in LIBRARY_OPS:
        print(f"schedules.schedule uses it inside `with autotune.apply_history_best({args.log!r}):`")
    return 0


def _add_tune(sub):
    tune = sub.add_parser("tune", help="tune a template's knobs and log the measurements (JSON Lines)")
    tune.add_argument("op", help="a registered template (built in: gemm; the operator library's matmul (M N K), "
                                 "dense (batch in out), conv2d_nchw or conv2d (N C H W K R S stride padding))")
    tune.add_argument("--shape", type=int, nargs="+", required=True, help="the template's arguments, e.g. M N K")
    tune.add_argument("--trials", type=int, default=64)
    tune.add_argument("--tuner", choices=TUNERS, default="model")
    tune.add_argument("--log", required=True, help="JSON Lines log (appended; a rerun resumes from it)")
    tune.add_argument("--target", default="llvm", help="'llvm' (this CPU) or 'cuda' (the GPU templates of the "
                      "library ops: block/thread tiles, shared-memory staging, unroll)")
    tune.add_argument("--n-parallel", type=int, default=None, help="build processes (default: CPU count)")
    tune.add_argument("--timeout", type=float, default=10.0, help="seconds per build and per run")
    tune.add_argument("--number", type=int, default=4)
    tune.add_argument("--repeat", type=int, default=3)
    tune.add_argument("--early-stopping", type=int, default=None)
    tune.add_argument("--seed", type=int, default=0)
    tune.add_argument("--no-check", action="store_true", help="skip the correctness check against the reference")
    tune.add_argument("--quiet", action="store_true", help="no progress bar")
    tune.set_defaults(fn=cmd_tune)


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

    sp = sub.add_parser("bench", help="time the operator suite (or --ladder) beside numpy/PyTorch")
    sp.add_argument("--size", type=int, default=1024, help="M = N = K of the GEMM ladder")
    sp.add_argument("--repeat", type=int, default=3)
    sp.set_defaults(fn=cmd_bench)
    sp.add_argument("--ladder", action="store_true", help="the GEMM schedule ladder instead of the suite")
    sp.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    sp.add_argument("--quick", action="store_true", help="small shapes only")

    _add_lenet(sub)
    _add_tune(sub)

    demo = sub.add_parser("demo", help="train LeNet on loopc kernels (embedded MNIST subset), profile, "
                                       "compare with PyTorch")
    demo.add_argument("--epochs", type=int, default=None, help="default: 6")
    demo.add_argument("--batch-size", type=int, default=None, help="default: 32")
    demo.add_argument("--threads", type=int, default=None)
    demo.add_argument("--no-torch", action="store_true", help="skip the PyTorch comparison")
    demo.set_defaults(fn=cmd_demo)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from loopc.errors import LoopcError
    try:
        return args.fn(args)
    except LoopcError as e:
        print(f"loopc: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
