"""Tutorial 6 — LeNet end to end: the lifecycle of a framework, on loopc kernels.

The chapter follows one small program — a LeNet trained on MNIST — through the four stages of
a deep-learning framework, and asks what each costs. loopc.nn makes every stage printable:

1. **The forward graph.** The model's Python code becomes a dataflow graph: typed values
   (shapes inferred from each operator's te declaration) and operator nodes.
2. **Automatic differentiation.** ``loopc.nn.autodiff`` walks the forward graph backwards and
   asks each operator's gradient rule for its backward nodes; forward and backward join into
   one graph. The input image needs no gradient, so conv1 gets no backward-data kernel.
3. **Code generation.** Every node becomes a loopc kernel: its te compute, the operator
   library's schedule for this CPU, lowered to a loop nest and compiled by LLVM, once per
   (operator, shape). We print the loop nest of conv1.
4. **Scheduled execution.** The runtime calls the kernels in dependency order on buffers
   allocated once; ``loopc.profile()`` records every call. We train, print the ten most
   expensive operators, then compare batch sizes 1, 16 and 64 (the chapter's lab, steps 4-5).

Last, the chapter's sizing question: how many bytes does each layer need — weights,
activations, gradients, and the scratch space of its kernels — and does it fit in the caches?

Run:  python tutorials/06_lenet_end_to_end.py [--small] [--threads N]
"""
import argparse
import time

import numpy as np

import loopc
from loopc.apps import lenet_bench as bench
from loopc.nn import datasets
from loopc.nn.lenet import LeNet
from loopc.nn.optim import Adadelta
from loopc.nn.train import train_epoch
from loopc.runtime import threads


def section(title):
    print(f"\n{'=' * 8} {title} {'=' * (70 - len(title))}")


def main(small=False):
    batch = 16 if small else 64
    model = LeNet(seed=0)

    section("1. the forward graph")
    tg = model.build_graph(batch)
    text = str(tg.graph)
    forward, backward = text.split("  # backward\n")
    print(forward)

    section("2. the backward graph, derived by autodiff")
    print(backward)
    n_fwd = sum(n.phase == "forward" for n in tg.graph.nodes)
    n_bwd = sum(n.phase == "backward" for n in tg.graph.nodes)
    print(f"\n{n_fwd} forward nodes, {n_bwd} backward nodes; gradients for {len(tg.grads)} parameters "
          f"({model.store.count:,} numbers)")
    assert "conv2d_backward_data[conv1]" not in {n.label for n in tg.graph.nodes}

    section("3. generated code: conv1's kernel")
    t0 = time.perf_counter()
    ex = model.executor(batch)
    print(f"{len(ex.steps)} kernels compiled (or taken from the cache) in {time.perf_counter() - t0:.1f} s")
    conv1 = next(st for st in ex.steps if st.label.startswith("conv2d") and st.node.scope == "conv1")
    print(f"{conv1.label}: conv2d, bias_add and relu fused into one kernel, {conv1.kernel.module.name}()\n")
    ir = conv1.kernel.module.get_source("ir").splitlines()
    print("\n".join(ir[:24] + ([f"  ... ({len(ir) - 24} more lines)"] if len(ir) > 24 else [])))

    section("4. scheduled execution, profiled")
    data = datasets.mnist()
    n = 640 if small else len(data.train)
    x, y = data.train.take(n).tensors()
    tx, ty = data.test.tensors()
    opt = Adadelta(model.store, lr=1.0)
    with loopc.profile() as prof:
        loss, acc = train_epoch(model, opt, x, y, batch, np.random.default_rng(0))
    test_loss, test_acc = model.evaluate(tx, ty, batch=batch)
    print(f"one epoch on {n} digits, batch {batch}: train loss {loss:.3f}; "
          f"test accuracy {test_acc:.1%} on {len(ty)} held-out digits\n")
    print(prof.table(top=10))
    assert np.isfinite(loss) and test_acc > 0.5

    section("5. batch sizes 1, 16 and 64")
    results = []
    for b in (1, 16, 64):
        fwd, train, table, compile_s = bench.time_loopc(model, b, number=3 if small else 10,
                                                        repeat=3 if small else 5)
        top = [line.split()[0] for line in table.splitlines()[1:4]]
        results.append((b, fwd, train, top))
    print(f"{'batch':>5}  {'forward ms':>10}  {'train step ms':>13}  {'per image us':>12}   top-3 operators")
    for b, fwd, train, top in results:
        print(f"{b:>5}  {fwd:10.3f}  {train:13.3f}  {train / b * 1e3:12.1f}   {', '.join(top)}")
    print("Larger batches amortise the per-kernel overhead (and the optimizer step) over more images;\n"
          "at batch 1 the small kernels and the weight update dominate, at 64 the convolutions.")

    section("6. memory per layer (training, batch 64)")
    mem = model.executor(64).memory()
    print(mem.table())
    per_image = sum(r[2] for r in mem.rows) / 64
    print(f"\nactivations: {per_image / 1024:.1f} KiB per image; the weights ({mem.totals[0] / 1024:.0f} KiB) fit in "
          "a core's L2 cache, a batch of 64 images' activations and gradients do not — that is what\n"
          "tiling each kernel (tutorials 2-4) is for, and why a bigger network needs a memory plan.")
    return results


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="a short epoch and fewer timing rounds (for the tests)")
    ap.add_argument("--threads", type=int, default=None)
    a = ap.parse_args()
    if a.threads:
        threads.set_num_threads(a.threads)
    elif a.small:
        threads.set_num_threads(1)   # the test suite shares its cores: one thread keeps timings sane
    main(small=a.small)
