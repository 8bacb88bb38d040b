"""The ``loopc`` command line: info, show, bench, lenet, demo, tune, tune-model.

    loopc info                          target triple, CPU, features, threads, versions
    loopc show gemm --step parallel     the lowered loop nest (or --format llvm / asm)
    loopc show conv2d --shape 1 6 14 14 16 5 5   any library op under its default or tuned schedule
    loopc bench [--ladder]              the operator suite (or the GEMM schedule ladder) beside numpy
    loopc lenet train [--data DIR] [--epochs 3] [--batch-size 64] [--optimizer adadelta|sgd]
                      [--lr 1.0] [--threads N] [--profile] [--trace T.json] [--logdir DIR] [--save W.npz]
                      [--model lenet|chapter] [--limit N] [--recipe chapter] [--test-batch-size N]
    loopc lenet eval --load W.npz [--data DIR]
    loopc lenet bench --batch-sizes 1 16 64 [--target cuda] [--compare-cpu] [--optimizer sgd|adadelta]
    loopc demo                          LeNet trained on loopc kernels on the embedded MNIST subset
    loopc lab --out DIR [--epochs N] [--limit N] [--batch-sizes 1 16 64] [--no-torch] [--threads N]
                                        the chapter's lab as DIR/report.html and DIR/report.md
    loopc tune gemm --shape 1024 1024 1024 --trials 64 --tuner model --log gemm.jsonl
    loopc tune-model models.py:Net --input-shape 1 1 28 28 --trials 200 --log net.jsonl [--training]

``lenet train --model chapter`` trains the chapter's PyTorch Net (loopc.torch.models.ChapterNet)
through ``torch.compile(model, backend="loopc")``; it and ``tune-model`` need PyTorch.
"""
from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys


from .cli_args import (MAX_THREADS, _check_fits, _require_torch, _writable_dir, data_dir, finite_float,  # noqa: F401
                       log_dir, momentum_float, nonnegative_int, one_line, output_file, positive_float, positive_int,
                       target_arg, thread_count, weights_file)
from .cli_torch import _add_tune_model, cmd_tune_model, load_model, model_spec  # noqa: F401


class _Parser(argparse.ArgumentParser):
    """argparse, with errors as one line: ``loopc lenet train: error: argument --epochs: ...``."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def cmd_info(args) -> int:
    """The machine table (loopc.apps.machine, shared with the lab report): CPU, caches, GPU, OS, versions."""
    from loopc.apps import machine
    print(machine.format_rows(machine.machine_rows(all_features=args.all_features)))
    return 0


def cmd_show(args) -> int:
    """``gemm``: a schedule of the GEMM ladder (``--step``, ``-M -N -K``); any other library op:
    declared from ``--shape`` and scheduled as ``schedules.schedule`` does (loopc.apps.show)."""
    import loopc
    if args.op != "gemm":
        from loopc.apps import show
        if args.format == "ptx":              # the IR and the numba source need no GPU
            _check_target(args.target)
        print(show.render(args.op, args.shape, args.format, args.target))
        return 0
    from loopc.apps import ladder
    steps = dict(ladder.STEPS)
    s, tensors = steps[args.step](args.M, args.N, args.K)
    if args.format == "ir":
        print(loopc.lower(s, tensors, name="gemm"))
    else:
        print(loopc.build(s, tensors, name="gemm").get_source(args.format))
    return 0


def _ladder_table(size, repeat):
    from loopc.apps import ladder
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
        # a, b and c in float32, the float64 reference and its two float64 operands
        _check_fits(36 * args.size ** 2, f"--size {args.size}: the ladder", "--size")
        _ladder_table(args.size, args.repeat)
        return 0
    from loopc.apps import benchsuite
    print(benchsuite.format_header())
    benchsuite.run_suite(tuple(args.threads), quick=args.quick, repeat=args.repeat)
    return 0


def cmd_demo(args) -> int:
    from loopc.apps import demo
    with _as_options():
        demo.main(epochs=args.epochs, batch_size=args.batch_size, threads=args.threads, with_torch=not args.no_torch)
    return 0


def _set_threads(n):
    if n is not None:
        from loopc.runtime import threads
        threads.set_num_threads(n)


#: ``lenet train --recipe``: settings the options a user gives explicitly override
RECIPES = {"chapter": dict(epochs=14, batch_size=64, test_batch_size=1000, optimizer="adadelta", lr=1.0, gamma=0.7)}
TRAIN_DEFAULTS = dict(epochs=3, batch_size=64, test_batch_size=None, optimizer="adadelta", lr=None, gamma=0.7)


def _resolve_recipe(args) -> None:
    """Fill the training options the user left out from --recipe, else from TRAIN_DEFAULTS."""
    recipe = dict(RECIPES.get(args.recipe, {}))
    if args.optimizer not in (None, recipe.get("optimizer")):
        recipe.pop("lr", None)                # the recipe's lr is for the recipe's optimizer
    fill = {**TRAIN_DEFAULTS, **recipe}
    for name, value in fill.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.lr is None:
        args.lr = 1.0 if args.optimizer == "adadelta" else 0.01


def cmd_lenet_train(args) -> int:
    """Train; with --save, the weights are written (atomically) after every completed epoch."""
    import loopc
    from loopc.nn import datasets
    from loopc.nn.lenet import LeNet
    from loopc.nn.runtime import untuned_summary
    from loopc.nn.train import TrainConfig, fit

    _resolve_recipe(args)
    with _as_options():
        cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, optimizer=args.optimizer, lr=args.lr,
                          momentum=args.momentum, gamma=args.gamma, seed=args.seed,
                          test_batch_size=args.test_batch_size)
    if args.model == "chapter":
        return _train_chapter(args, cfg)
    _check_outputs(args)
    _check_target(args.target)
    _set_threads(args.threads)
    data = _limited(datasets.mnist(args.data), args.limit)
    print(f"data: {data.source}: {len(data.train)} train / {len(data.test)} test images")
    model = LeNet(seed=args.seed, target=args.target)
    _check_memory(model, min(args.batch_size, max(len(data.train), 1)), "--batch-size")
    print(f"model: LeNet-5 on loopc kernels ({args.target}): {cfg.epochs} epochs, batch {cfg.batch_size} "
          f"(test {cfg.test_batch}), {cfg.optimizer} lr {cfg.lr:g}, StepLR gamma {cfg.gamma:g}")
    writer = None
    if args.logdir:
        from loopc.nn.tensorboard import SummaryWriter
        writer = SummaryWriter(args.logdir)
    saved = []                                   # epochs whose weights are on disk

    def save_epoch(result):
        model.save(args.save)
        saved.append(result.epoch)

    profiling = args.profile or args.trace
    prof = loopc.profile()
    try:
        with _saying_what_is_saved(args, saved), prof if profiling else contextlib.nullcontext():
            fit(model, data, cfg, writer=writer, on_epoch=save_epoch if args.save else None)
    finally:
        if writer is not None:
            writer.close()
    if args.save:
        print(f"weights saved to {args.save}")
    print(untuned_summary())
    _print_profile(args, prof)
    if args.logdir:
        print(f"TensorBoard logs in {args.logdir}: tensorboard --logdir {args.logdir}")
    return 0


def _print_profile(args, prof) -> None:
    """--profile's table and --trace's file, after training."""
    if args.profile or args.trace:
        print("\ntop-10 operators (loopc.profile):")
        print(prof.table(top=10))
    if args.trace:
        from loopc.runtime.files import atomic_path
        with atomic_path(args.trace) as tmp:
            prof.export_chrome_trace(tmp)
        print(f"Chrome trace written to {args.trace} (open it in chrome://tracing or ui.perfetto.dev)")


def _limited(data, limit):
    """``data`` cut to the first ``limit`` images of each split (--limit), or as it is."""
    if limit is None or (len(data.train) <= limit and len(data.test) <= limit):
        return data
    from loopc.nn.datasets import MNIST
    return MNIST(data.train.take(limit), data.test.take(limit), f"{data.source}, first {limit} of each split")





def _train_chapter(args, cfg) -> int:
    """``lenet train --model chapter``: the chapter's PyTorch Net through torch.compile(backend="loopc")
    (loopc.apps.chapter_train); --save writes its state_dict (.npz) after every completed epoch."""
    from loopc.errors import ArgumentError
    from loopc.nn import datasets
    from loopc.nn.weights import save_weights
    from loopc.target import kind_of

    _require_torch("--model chapter")
    if args.logdir:
        raise ArgumentError("--logdir: TensorBoard logs are written for --model lenet only; drop --logdir "
                            "with --model chapter")
    if kind_of(args.target) != "llvm":
        raise ArgumentError(f"--target {args.target}: --model chapter runs on this CPU (the loopc backend of "
                            "torch.compile builds llvm kernels); drop --target")
    _check_outputs(args)
    import loopc
    import torch

    from loopc.apps import chapter_train
    from loopc.torch.graph import Report
    from loopc.torch.models import ChapterNet
    _set_threads(args.threads)
    data = _limited(datasets.mnist(args.data), args.limit)
    print(f"data: {data.source}: {len(data.train)} train / {len(data.test)} test images")
    test_batch = cfg.test_batch_size or chapter_train.TEST_BATCH_SIZE
    _check_fits(chapter_train.activation_bytes(min(args.batch_size, max(len(data.train), 1))),
                f"--batch-size {args.batch_size}: a training step", "--batch-size")
    _check_fits(chapter_train.activation_bytes(min(test_batch, max(len(data.test), 1)), training=False),
                f"a test batch of {test_batch}", "--limit")
    print(f"model: the chapter's Net (loopc.torch.models.ChapterNet) through torch.compile(backend=\"loopc\"): "
          f"{cfg.epochs} epochs, batch {cfg.batch_size} (test {test_batch}), {cfg.optimizer} lr {cfg.lr:g}, "
          f"StepLR gamma {cfg.gamma:g}")
    torch.manual_seed(cfg.seed)
    model = ChapterNet()
    report = Report()
    saved = []

    def save_epoch(metrics):
        save_weights(chapter_train.state_arrays(model), args.save)
        saved.append(metrics.epoch)

    prof = loopc.profile()
    with _saying_what_is_saved(args, saved), prof if args.profile or args.trace else contextlib.nullcontext(), \
            chapter_train.backend_reports_silenced():
        chapter_train.fit(model, data, epochs=cfg.epochs, batch_size=cfg.batch_size, test_batch_size=test_batch,
                          optimizer=cfg.optimizer, lr=cfg.lr, momentum=cfg.momentum, gamma=cfg.gamma,
                          seed=cfg.seed, report=report, on_epoch=save_epoch if args.save else None)
    if args.save:
        print(f"state_dict saved to {args.save} (numpy arrays: model.load_state_dict("
              f"{{k: torch.from_numpy(v) for k, v in numpy.load(path).items()}}))")
    print(f"loopc backend: {report}")
    _print_profile(args, prof)
    return 0


@contextlib.contextmanager
def _as_options():
    """ArgumentErrors about TrainConfig fields, reworded with the option names (--batch-size)."""
    import re
    from loopc.errors import ArgumentError
    try:
        yield
    except ArgumentError as e:
        text = re.sub(r"TrainConfig\.(\w+)", lambda m: "--" + m.group(1).replace("_", "-"), str(e))
        raise ArgumentError(text) from None


@contextlib.contextmanager
def _saying_what_is_saved(args, saved):
    """An interrupted or failed training run (both ``lenet train`` models) also says which epoch's
    weights --save holds (``saved``: the epochs written so far)."""
    from loopc.errors import LoopcError
    try:
        yield
    except KeyboardInterrupt:
        raise KeyboardInterrupt(_kept(args, saved)) from None
    except LoopcError as e:
        if not args.save:
            raise
        raise LoopcError(f"{e}; {_kept(args, saved)}") from e


def _kept(args, saved) -> str:
    """What --save holds after an interrupted or failed training run."""
    if not args.save:
        return "no weights saved (no --save)"
    if not saved:
        return f"nothing saved to {args.save} (no epoch ended with usable weights)"
    return f"the weights of epoch {saved[-1]} are in {args.save}"


def _check_outputs(args) -> None:
    """Up front: distinct output files, and the TensorBoard package when --logdir asks for it."""
    from loopc.errors import ArgumentError
    if args.save and args.trace and os.path.abspath(args.save) == os.path.abspath(args.trace):
        raise ArgumentError(f"--save and --trace both write {args.save}; give two different files")
    if args.logdir:
        from loopc.nn import tensorboard
        if not tensorboard.available():
            raise ArgumentError("--logdir needs the tensorboard package: pip install 'loopc[tensorboard]'")


def _check_target(target: str) -> None:
    """A CUDA target needs a usable GPU (or numba's simulator): say so before any work starts."""
    from loopc.target import kind_of
    if kind_of(target) != "cuda":
        return
    from loopc.errors import LoopcError
    if not _cuda_usable():
        raise LoopcError("--target cuda: no usable CUDA GPU here (numba found no driver or device); use "
                         "--target llvm, or set NUMBA_ENABLE_CUDASIM=1 to run in numba's (slow) simulator")


def _check_memory(model, batch: int, option: str) -> None:
    """ArgumentError when one training step at ``batch`` needs more memory than the machine has."""
    _check_fits(model.activation_bytes(batch), f"{option} {batch}: a training step", option)





def cmd_lenet_eval(args) -> int:
    """Test accuracy of saved weights (the weights are read first: a bad file fails fast)."""
    from loopc.nn import datasets
    from loopc.nn.lenet import LeNet

    _check_target(args.target)
    _set_threads(args.threads)
    model = LeNet(target=args.target)
    model.load(args.load)
    data = datasets.mnist(args.data)
    loss, acc = model.evaluate(*data.test.tensors(), batch=args.batch_size)
    print(f"{args.load}: test accuracy {acc:.2%}, loss {loss:.4f} on {len(data.test)} images ({data.source})")
    if not math.isfinite(loss):
        print(f"loopc: warning: the test loss is {loss}: these weights overflow float32 on some images; "
              "the accuracy is not meaningful", file=sys.stderr)
    return 0


def cmd_lenet_bench(args) -> int:
    """Bench on --target; with --compare-cpu, the CPU and the GPU side by side. Without a GPU the
    GPU side is the figures recorded on a lent GPU (loopc.apps.recorded_gpu), labelled so, after a
    one-line note; ``--target cuda`` alone then prints them and exits with 2."""
    from loopc.apps import lenet_bench as bench, recorded_gpu
    from loopc.nn.lenet import LeNet
    from loopc.runtime import threads
    from loopc.target import kind_of
    model = LeNet()
    for b in args.batch_sizes:
        _check_memory(model, b, "--batch-sizes")
    on_gpu = kind_of(args.target) == "cuda"
    gpu_here = not (on_gpu or args.compare_cpu) or _cuda_usable()
    if not gpu_here:
        run = recorded_gpu.LENET
        print(f"loopc: no usable CUDA GPU here (numba found no driver or device); the GPU figures below were "
              f"recorded on an {run.gpu} on {run.date}, not measured here", file=sys.stderr)
        if not args.compare_cpu:
            print(recorded_gpu.describe())
            return 2
    common = dict(batch_sizes=args.batch_sizes, threads=args.threads, number=args.number, repeat=args.repeat,
                  with_torch=not args.no_torch, optimizer=args.optimizer)
    if not args.compare_cpu:
        bench.run(target=args.target, **common)
        return 0
    cpu = bench.run(target="llvm", **common)
    if gpu_here:
        gpu, label = bench.run(target=args.target if on_gpu else "cuda", **common), "the GPU"
    else:
        print("\n" + recorded_gpu.describe())
        gpu, label = recorded_gpu.bench_results(), recorded_gpu.label()
    print("\n" + bench.compare_table(cpu, gpu, threads.num_threads(), label))
    return 0


def _cuda_usable() -> bool:
    """A real GPU, or numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1, slow) when asked for."""
    from loopc.targets.cuda import device
    return device.simulator() or device.gpu_available()


def _add_lenet(sub):
    lenet = sub.add_parser("lenet", help="LeNet-5 on loopc kernels: train, eval, bench")
    lsub = lenet.add_subparsers(dest="lenet_command", required=True)
    train = lsub.add_parser("train", help="train on MNIST (IDX files from --data, else the embedded subset)")
    train.add_argument("--data", metavar="DIR", type=data_dir,
                       help="folder with MNIST's IDX files (raw or .gz; MNIST/raw too)")
    train.add_argument("--recipe", choices=sorted(RECIPES), default=None,
                       help="chapter: the chapter script's settings (14 epochs, batch 64, test batch 1000, Adadelta "
                            "lr 1.0, StepLR gamma 0.7); the options below override it")
    train.add_argument("--epochs", type=positive_int, default=None, help="default: 3")
    train.add_argument("--batch-size", type=positive_int, default=None, help="default: 64")
    train.add_argument("--test-batch-size", type=positive_int, default=None,
                       help="the test pass's batch (default: --batch-size; 1000 for --model chapter)")
    train.add_argument("--optimizer", choices=["adadelta", "sgd"], default=None, help="default: adadelta")
    train.add_argument("--lr", type=positive_float, default=None, help="default: 1.0 for adadelta, 0.01 for sgd")
    train.add_argument("--momentum", type=momentum_float, default=0.9, help="sgd only, in [0, 1)")
    train.add_argument("--gamma", type=positive_float, default=None,
                       help="learning-rate decay per epoch (StepLR; default 0.7)")
    train.add_argument("--seed", type=nonnegative_int, default=0)
    train.add_argument("--threads", type=thread_count, default=None)
    train.add_argument("--profile", action="store_true", help="print the top-10 operator table")
    train.add_argument("--trace", metavar="PATH", type=output_file,
                       help="also write a Chrome trace of every kernel call")
    train.add_argument("--logdir", metavar="DIR", type=log_dir, help="TensorBoard event files: scalars and the graph")
    train.add_argument("--save", metavar="PATH", type=weights_file,
                       help="write the weights (.npz, appended when missing) after every epoch")
    train.add_argument("--target", default="llvm", type=target_arg,
                       help="'llvm' (this CPU) or 'cuda' (an NVIDIA GPU, or numba's simulator with "
                       "NUMBA_ENABLE_CUDASIM=1); the optimizer update runs on the CPU")
    train.add_argument("--model", choices=["lenet", "chapter"], default="lenet",
                       help="lenet: LeNet-5 on loopc.nn (default); chapter: the chapter's PyTorch Net "
                       "(pytorch/examples' MNIST script) through torch.compile(backend=\"loopc\"), needs torch")
    train.add_argument("--limit", metavar="N", type=positive_int, default=None,
                       help="use only the first N images of the training and of the test split (a quick run)")
    train.set_defaults(fn=cmd_lenet_train)
    ev = lsub.add_parser("eval", help="test accuracy of saved weights")
    ev.add_argument("--load", metavar="PATH", required=True, help="weights written by `lenet train --save`")
    ev.add_argument("--data", metavar="DIR", type=data_dir)
    ev.add_argument("--batch-size", type=positive_int, default=64)
    ev.add_argument("--target", default="llvm", type=target_arg, help="'llvm' or 'cuda'")
    ev.add_argument("--threads", type=thread_count, default=None)
    ev.set_defaults(fn=cmd_lenet_eval)
    bn = lsub.add_parser("bench", help="per-operator profile and latency per batch size, beside PyTorch")
    bn.add_argument("--batch-sizes", type=positive_int, nargs="+", default=[1, 16, 64])
    bn.add_argument("--threads", type=thread_count, default=None)
    bn.add_argument("--number", type=positive_int, default=10, help="calls per timing round")
    bn.add_argument("--repeat", type=positive_int, default=5, help="timing rounds (the median is reported)")
    bn.add_argument("--no-torch", action="store_true", help="skip the PyTorch comparison")
    bn.add_argument("--target", default="llvm", type=target_arg, help="'llvm' (this CPU) or 'cuda' (the GPU)")
    bn.add_argument("--compare-cpu", action="store_true",
                    help="the CPU and the GPU side by side (without a GPU: the figures recorded on a lent one)")
    bn.add_argument("--optimizer", choices=["sgd", "adadelta"], default="sgd",
                    help="the update of the timed training step")
    bn.set_defaults(fn=cmd_lenet_bench)


def cmd_lab(args) -> int:
    """The chapter's lab, run and written up in --out (loopc.apps.lab): training with the chapter's
    recipe, TensorBoard logs, the top-10 operators, batch sizes beside PyTorch, CPU vs GPU, memory per
    layer and the machine table."""
    from loopc.apps import lab
    from loopc.nn.lenet import LeNet
    model = LeNet()
    for b in {*args.batch_sizes, RECIPES["chapter"]["batch_size"]}:
        _check_memory(model, b, "--batch-sizes")
    opts = [f"--{k.replace('_', '-')} {v}" for k, v in (("epochs", args.epochs), ("limit", args.limit),
                                                         ("threads", args.threads)) if v is not None]
    command = " ".join(["loopc lab --out", args.out, *opts, "--batch-sizes", *map(str, args.batch_sizes),
                        *(["--no-torch"] if args.no_torch else [])])
    lab.run(args.out, RECIPES["chapter"], epochs=args.epochs, limit=args.limit, batch_sizes=args.batch_sizes,
            with_torch=not args.no_torch, threads=args.threads, command=command)
    return 0


def _add_lab(sub):
    lab = sub.add_parser("lab", help="the chapter's lab end to end, written up as DIR/report.html and report.md",
                         description="Train LeNet with the chapter's recipe on the embedded MNIST digits (TensorBoard "
                         "logs in DIR/tensorboard), profile the top-10 operators, time batch sizes beside PyTorch, "
                         "compare CPU and GPU (recorded figures without a GPU), estimate memory per layer, and "
                         "write DIR/report.md and DIR/report.html with PNG plots. Only the report's own files are "
                         "written in DIR. The default run takes about one to two minutes on a 2-core machine (most "
                         "of it compiling kernels; the 14 epochs take 10-20 s); --epochs, --limit and --batch-sizes "
                         "shrink it.")
    lab.add_argument("--out", metavar="DIR", type=log_dir, required=True,
                     help="folder for the report (created when missing)")
    lab.add_argument("--epochs", type=positive_int, default=None, help="default: 14 (the chapter's recipe)")
    lab.add_argument("--limit", metavar="N", type=positive_int, default=None,
                     help="use only the first N images of each split (default: all 4,000 / 1,000)")
    lab.add_argument("--batch-sizes", type=positive_int, nargs="+", default=[1, 16, 64],
                     help="the batch sizes to time and profile (default: 1 16 64)")
    lab.add_argument("--no-torch", action="store_true", help="no PyTorch columns")
    lab.add_argument("--threads", type=thread_count, default=None, help="default: the free cores")
    lab.set_defaults(fn=cmd_lab)


TUNERS = ("model", "ga", "random", "grid")
#: loopc.schedules.tasks: the library's tunable ops
LIBRARY_OPS = ("matmul", "dense", "conv2d_nchw", "depthwise_conv2d_nchw", "group_conv2d_nchw")
OP_ALIASES = {"conv2d": "conv2d_nchw"}


def cmd_tune(args) -> int:
    """Tune a registered template (the built-in ``gemm``, or the operator library's ``matmul``,
    ``dense``, ``conv2d_nchw``) and log every measurement. Everything that can be checked is
    checked before any tuning work: the target (a GPU for cuda), the number of --shape values
    the template takes, the values themselves (the template's own checks) and the log file."""
    from loopc import autotune
    from loopc.autotune.dispatcher import target_key
    from loopc.autotune.record import check_writable, failure_summary
    from loopc.autotune.task import check_arity
    from loopc.errors import ArgumentError, LoopcError
    from loopc.target import kind_of
    typed = args.op
    args.op = OP_ALIASES.get(args.op, args.op)
    if kind_of(args.target) == "cuda" and args.op in LIBRARY_OPS:
        args.op += "_cuda"          # the operator library's GPU templates
    _check_target(args.target)
    if args.op not in autotune.list_templates():
        try:                      # the operator library registers its templates when imported
            import loopc.schedules  # noqa: F401
        except ImportError:
            pass
    shape = tuple(args.shape)
    check_arity(args.op, shape, f"--shape: {typed}", optional=False)
    try:
        task = autotune.create_task(args.op, shape, target=args.target)
    except LoopcError:
        raise
    except Exception as err:  # noqa: BLE001 - the template rejects these values its own way
        raise ArgumentError(f"--shape {' '.join(map(str, shape))}: {typed} cannot be built for these values "
                            f"({type(err).__name__}: {err})") from None
    check_writable(args.log)
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
    tkey = target_key(task.target_string)
    mine = [r for r in autotune.load_records(args.log, warn=False)
            if r.workload == task.workload and target_key(r.target) == tkey]
    best = [r for r in mine if r.ok]
    if not best:
        print(f"loopc: tune: no successful measurement of {task.name}{task.args}: {failure_summary(mine)}",
              file=sys.stderr)
        return 1
    r = max(best, key=lambda r: r.gflops)
    print(f"best: {r.gflops:.2f} GFLOP/s ({r.cost * 1e3:.3f} ms), config {r.config_entity()}")
    if args.op.removesuffix("_cuda") in LIBRARY_OPS:
        print(f"schedules.schedule uses it inside `with autotune.apply_history_best({args.log!r}):`")
    return 0


def _add_tune(sub):
    def process_count(text):
        """Build processes: 1 .. MAX_THREADS."""
        value = positive_int(text)
        if value > MAX_THREADS:
            raise argparse.ArgumentTypeError(f"at most {MAX_THREADS} build processes (this machine has "
                                             f"{os.cpu_count()} cores), got {value}")
        return value

    tune = sub.add_parser("tune", help="tune a template's knobs and log the measurements (JSON Lines)")
    tune.add_argument("op", help="a registered template (built in: gemm; the operator library's matmul (M N K), "
                                 "dense (batch in out), conv2d_nchw or conv2d (N C H W K R S stride padding), "
                                 "depthwise_conv2d_nchw or group_conv2d_nchw (... padding groups))")
    tune.add_argument("--shape", type=nonnegative_int, nargs="+", required=True,
                      help="the template's arguments, e.g. M N K")
    tune.add_argument("--trials", type=positive_int, default=64)
    tune.add_argument("--tuner", choices=TUNERS, default="model")
    tune.add_argument("--log", type=output_file, required=True,
                      help="JSON Lines log in an existing folder (appended; a rerun resumes from it)")
    tune.add_argument("--target", type=target_arg, default="llvm", help="'llvm' (this CPU) or 'cuda' (the GPU "
                      "templates of the library ops: block/thread tiles, shared-memory staging, unroll)")
    tune.add_argument("--n-parallel", type=process_count, default=None, help="build processes (default: CPU count)")
    tune.add_argument("--timeout", type=positive_float, default=10.0, help="seconds per build and per run")
    tune.add_argument("--number", type=positive_int, default=4, help="calls per timing repeat")
    tune.add_argument("--repeat", type=positive_int, default=3, help="timing repeats (the median counts)")
    tune.add_argument("--early-stopping", type=positive_int, default=None,
                      help="stop after this many trials without improvement")
    tune.add_argument("--seed", type=int, default=0)
    tune.add_argument("--no-check", action="store_true", help="skip the correctness check against the reference")
    tune.add_argument("--quiet", action="store_true", help="no progress bar")
    tune.set_defaults(fn=cmd_tune)


class _LadderSteps:
    """The choices of ``show --step``: the GEMM ladder's step names, read from loopc.apps.ladder
    only when argparse checks or lists them (no other command imports the ladder)."""

    @staticmethod
    def _names():
        from loopc.apps import ladder
        return [n for n, _ in ladder.STEPS]

    def __contains__(self, name):
        return name in self._names()

    def __iter__(self):
        return iter(self._names())


class _ShowableOps:
    """The choices of ``show OP``: gemm and every op of loopc.apps.show's catalog."""

    @staticmethod
    def _names():
        from loopc.apps import show
        return ["gemm", *show.CATALOG, *show.ALIASES]

    def __contains__(self, name):
        return name in self._names()

    def __iter__(self):
        return iter(self._names())


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="loopc", description="loopc: a tensor-program compiler with a loop-scheduling DSL")
    sub = p.add_subparsers(dest="command", required=True)

    info = sub.add_parser("info", help="target triple, CPU name and features, threads, versions")
    info.add_argument("--all-features", action="store_true", help="list every LLVM feature flag")
    info.set_defaults(fn=cmd_info)

    show = sub.add_parser("show", help="print an op's lowered IR, LLVM IR or assembly under its default or tuned "
                                       "schedule")
    show.add_argument("op", choices=_ShowableOps(), metavar="OP",
                      help="gemm (the GEMM ladder's schedules) or a library op: %(choices)s")
    show.add_argument("--shape", type=nonnegative_int, nargs="+", default=None,
                      help="the ints that declare a library op (e.g. conv2d: N C H W K R S [stride padding "
                           "dilation groups]; a wrong count says what the op takes)")
    show.add_argument("--target", default="llvm", type=target_arg, help="'llvm' (this CPU) or 'cuda'")
    show.add_argument("--step", default="parallel", choices=_LadderSteps(), metavar="STEP",
                      help="gemm only: which schedule of the GEMM ladder: %(choices)s")
    show.add_argument("--format", default="ir", choices=["ir", "llvm", "asm", "cuda", "ptx"],
                      help="ir: the lowered loop nest; llvm, asm: the CPU code; cuda (numba source), ptx: the GPU's")
    show.add_argument("-M", type=positive_int, default=64, help="gemm only")
    show.add_argument("-N", type=positive_int, default=64, help="gemm only")
    show.add_argument("-K", type=positive_int, default=64, help="gemm only")
    show.set_defaults(fn=cmd_show)

    sp = sub.add_parser("bench", help="time the operator suite (or --ladder) beside numpy/PyTorch")
    sp.add_argument("--size", type=positive_int, default=1024, help="M = N = K of the GEMM ladder")
    sp.add_argument("--repeat", type=positive_int, default=3)
    sp.set_defaults(fn=cmd_bench)
    sp.add_argument("--ladder", action="store_true", help="the GEMM schedule ladder instead of the suite")
    sp.add_argument("--threads", type=thread_count, nargs="+", default=[1, 2])
    sp.add_argument("--quick", action="store_true", help="small shapes only")

    _add_lenet(sub)
    _add_lab(sub)
    _add_tune(sub)
    _add_tune_model(sub)

    demo = sub.add_parser("demo", help="train LeNet on loopc kernels (embedded MNIST subset), profile, "
                                       "compare with PyTorch")
    demo.add_argument("--epochs", type=positive_int, default=None, help="default: 6")
    demo.add_argument("--batch-size", type=positive_int, default=None, help="default: 32")
    demo.add_argument("--threads", type=thread_count, default=None)
    demo.add_argument("--no-torch", action="store_true", help="skip the PyTorch comparison")
    demo.set_defaults(fn=cmd_demo)
    return p


def main(argv=None) -> int:
    """Run one command. A LoopcError (a user mistake: bad input, a missing file) is one line on
    stderr and exit code 2; Ctrl-C is one line and 130; any other exception is a bug and keeps
    its traceback."""
    from loopc.errors import LoopcError
    try:
        args = build_parser().parse_args(argv)
        return args.fn(args)
    except LoopcError as e:
        print(f"loopc: error: {one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        print(f"loopc: interrupted{'; ' + one_line(e) if str(e) else ''}", file=sys.stderr)
        return 130





if __name__ == "__main__":
    sys.exit(main())
