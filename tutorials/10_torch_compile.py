"""Tutorial 10 — the chapter's PyTorch script on loopc: ``torch.compile(model, backend="loopc")``.

The chapter's script is pytorch/examples' MNIST Net (``loopc.torch.models.ChapterNet``: two
3x3 convolutions, max-pool, dropout, two linear layers, log_softmax) trained with Adadelta.
Nothing in it knows about loopc. One added line hands it to loopc:

    model = torch.compile(model, backend="loopc")

Dynamo captures the forward; AOTAutograd derives the backward and lowers both to ATen
operators; loopc partitions each graph into its own kernels and PyTorch fallback, fuses
elementwise work (bias, batch norm, activations) into the kernel that produces its input, and
compiles one LLVM kernel per group (cached in memory and on disk). This tutorial:

1. runs the Net both ways and compares outputs and gradients;
2. asks ``loopc.torch.explain`` what ran on loopc and what fell back (dropout's mask comes from
   PyTorch's random generator, as in eager, so that op stays in PyTorch);
3. trains a few steps on the embedded MNIST digits with loopc's Adadelta and prints the
   profile's top 10 kernels;
4. tunes the model's convolutions and dense layers (``loopc.torch.tune``) and compiles with
   the records;
5. times eager, inductor (PyTorch's own compiler) and loopc side by side.

Run:  python tutorials/10_torch_compile.py [--small]
(benchmarks/torch_models.py measures ResNet-18 and MobileNetV2 as well.)
"""
import argparse
import copy
import statistics
import sys
import tempfile
import time
from pathlib import Path


def timed(fn, x, rounds):
    fn(x)
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="a quick run (the test suite's)")
    args = parser.parse_args()
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        print("this tutorial needs PyTorch: pip install 'loopc[torch]'")
        return 0
    import loopc
    import loopc.torch as lt
    from loopc.nn.datasets import mnist
    from loopc.torch.models import ChapterNet

    torch.manual_seed(0)
    model = ChapterNet()
    reference = copy.deepcopy(model)

    # 1. one added line
    compiled = torch.compile(model, backend="loopc")
    x = torch.randn(4, 1, 28, 28)
    labels = torch.tensor([3, 1, 4, 1])
    torch.manual_seed(1)
    loss = F.nll_loss(compiled(x), labels)
    loss.backward()
    torch.manual_seed(1)
    ref_loss = F.nll_loss(reference(x), labels)
    ref_loss.backward()
    worst = max(((p.grad - q.grad).abs().max() / q.grad.abs().max()).item()
                for p, q in zip(model.parameters(), reference.parameters()))
    print(f"1. loss: loopc {loss.item():.6f}, eager {ref_loss.item():.6f}; "
          f"largest gradient difference {worst:.1e} (relative)")
    assert abs(loss.item() - ref_loss.item()) < 1e-4 and worst < 2e-3

    # 2. what ran where
    torch._dynamo.reset()
    report = lt.explain(model, x, backward=True)
    print(f"2. explain (forward and backward):\n{report}")
    assert report.loopc_nodes > 20 and set(report.fallback) <= {"native_dropout.default"}

    # 3. a few training steps on the embedded digits, profiled
    data = mnist()
    n = 256 if args.small else 2048
    xs, ys = (torch.from_numpy(a) for a in data.train.take(n).tensors())
    ys = ys.long()
    opt = lt.optim.Adadelta(model.parameters(), lr=1.0)
    model.train()
    with loopc.profile() as prof:
        for i in range(0, n, 64):
            opt.zero_grad()
            step_loss = F.nll_loss(compiled(xs[i:i + 64]), ys[i:i + 64])
            step_loss.backward()
            opt.step()
    print(f"3. {n // 64} steps of batch 64, last loss {step_loss.item():.3f}; the profile's top 10:")
    print(prof.table(top=10))

    # 4. tune the model's workloads (convolutions, dense layers) and compile with the records
    model.eval()
    batch = torch.randn(1 if args.small else 64, 1, 28, 28)
    with tempfile.TemporaryDirectory() as folder:
        log = Path(folder) / "chapter_net.jsonl"
        tasks = lt.extract_tasks(model, (batch,))
        print(f"4. {len(tasks)} tunable workloads, the largest first:")
        for t in tasks:
            print(f"   {t.description}  ({t.flop / 1e6:.1f} MFLOP)")
        lt.tune(model, (batch,), trials=8 if args.small else 120, log=log, min_trials=2 if args.small else 8,
                progress=lambda line: print("   " + line))
        torch._dynamo.reset()
        tuned = torch.compile(model, backend="loopc", options={"records": str(log)})
        reference.load_state_dict(model.state_dict())      # the weights step 3 trained
        reference.eval()
        with torch.no_grad():
            err = (tuned(batch) - reference(batch)).abs().max().item()
            print(f"   tuned kernels agree with eager: max |difference| {err:.1e}")
            assert err < 1e-4

            # 5. eager vs inductor vs loopc
            rounds = 5 if args.small else 30
            rows = [("eager", timed(reference, batch, rounds)), ("loopc", timed(tuned, batch, rounds))]
            if not args.small:
                try:
                    rows.insert(1, ("inductor", timed(torch.compile(copy.deepcopy(reference)), batch, rounds)))
                except Exception as e:  # noqa: BLE001 - inductor needs a C++ compiler
                    print(f"   inductor unavailable: {type(e).__name__}")
    print(f"5. inference at batch {batch.shape[0]} (median ms): " + ", ".join(f"{k} {v:.2f}" for k, v in rows))
    return 0


if __name__ == "__main__":     # loopc's tuner starts worker processes that import this file
    sys.exit(main())
