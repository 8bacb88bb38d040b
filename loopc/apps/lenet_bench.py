"""``loopc lenet bench``: per-operator profiles and end-to-end latency per batch size.

For each batch size: the forward pass (inference) and the training step (forward, backward
and the SGD-momentum update) of LeNet are timed on loopc kernels — median of several rounds
after a warm-up — and a profiled run of training steps gives the top-10 operator table (the
chapter's lab, steps 4 and 5). Where PyTorch is installed, the same network with the same
weights runs in eager mode beside it, with the same thread count.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

import loopc
from loopc.runtime.timing import time_evaluator
from loopc.target import kind_of

from loopc.nn.lenet import LeNet
from loopc.nn.optim import SGD, Adadelta

#: ``lenet bench --optimizer``: the update of the timed training step, loopc's and PyTorch's
OPTIMIZERS = {"sgd": (lambda store, kernels: SGD(store, lr=0.01, momentum=0.9, kernels=kernels),
                      lambda params, torch: torch.optim.SGD(params, lr=0.01, momentum=0.9)),
              "adadelta": (lambda store, kernels: Adadelta(store, lr=1.0, kernels=kernels),
                           lambda params, torch: torch.optim.Adadelta(params, lr=1.0))}


@dataclass
class BenchResult:
    batch: int
    forward_ms: float
    train_ms: float
    torch_forward_ms: float | None
    torch_train_ms: float | None
    table: str
    compile_s: float


def torch_lenet(model=None):
    """The same LeNet in PyTorch (``torch.nn``), with ``model``'s weights when given."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class TorchLeNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
            self.conv2 = nn.Conv2d(6, 16, 5)
            self.fc1 = nn.Linear(400, 120)
            self.fc2 = nn.Linear(120, 84)
            self.fc3 = nn.Linear(84, 10)

        def forward(self, x):
            x = F.max_pool2d(F.relu(self.conv1(x)), 2)
            x = F.max_pool2d(F.relu(self.conv2(x)), 2)
            x = torch.flatten(x, 1)
            x = F.relu(self.fc1(x))
            x = F.relu(self.fc2(x))
            return F.log_softmax(self.fc3(x), dim=1)

    net = TorchLeNet()
    if model is not None:
        net.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in model.store.arrays.items()})
    return net


def _ms(call, number, repeat):
    return time_evaluator(call, number=number, repeat=repeat, warmup=2)().median * 1e3


def time_loopc(model, batch, number=10, repeat=5, rng=None, optimizer="sgd"):
    """(forward ms, training-step ms, top-10 table, compile s) of ``model`` at ``batch``; the
    training step updates the weights with ``optimizer`` ("sgd" with momentum, or "adadelta")."""
    rng = rng or np.random.default_rng(0)
    t0 = time.perf_counter()
    ex = model.executor(batch)
    tg = ex.train_graph
    opt = OPTIMIZERS[optimizer][0](model.store, model.kernels)
    compile_s = time.perf_counter() - t0
    ex.feed(x=rng.standard_normal((batch, 1, 28, 28)).astype(np.float32),
            labels=rng.integers(0, 10, batch).astype(np.int32))
    saved = model.store.flat.copy()
    fwd = _ms(lambda: ex.run(outputs=(tg.logp,)), number, repeat)

    def step():
        ex.run()
        opt.step()
    train = _ms(step, number, repeat)
    with loopc.profile() as prof:
        for _ in range(number):
            step()
    model.store.flat[...] = saved             # benchmarking leaves the weights as they were
    return fwd, train, prof.table(top=10), compile_s


def time_torch(model, batch, number=10, repeat=5, rng=None, compile=False, optimizer="sgd", device="cpu"):
    """(forward ms, training-step ms) of PyTorch eager (or torch.compile'd) on the same weights,
    on ``device`` ("cpu" or "cuda": each call then waits for the GPU)."""
    import torch
    rng = rng or np.random.default_rng(0)
    net = torch_lenet(model).to(device)
    x = torch.from_numpy(rng.standard_normal((batch, 1, 28, 28)).astype(np.float32)).to(device)
    y = torch.from_numpy(rng.integers(0, 10, batch).astype(np.int64)).to(device)
    forward, step = torch_forward_and_step(net, x, y, torch.compile(net) if compile else net, optimizer)
    if device != "cpu":
        forward, step = (_synchronised(f, torch) for f in (forward, step))
    return _ms(forward, number, repeat), _ms(step, number, repeat)


def _synchronised(call, torch):
    def run():
        call()
        torch.cuda.synchronize()
    return run


def torch_forward_and_step(net, x, y, run=None, optimizer="sgd"):
    """``(forward(), step())`` closures of a PyTorch LeNet on the batch ``x`` with labels ``y``:
    a forward pass without gradients, and one training step with ``optimizer`` (the recipe
    loopc's benchmark uses). ``run`` calls the network (e.g. a torch.compile'd ``net``; default ``net``)."""
    import torch
    import torch.nn.functional as F
    run = net if run is None else run
    opt = OPTIMIZERS[optimizer][1](net.parameters(), torch)

    def forward():
        with torch.no_grad():
            run(x)

    def step():
        opt.zero_grad(set_to_none=True)
        F.nll_loss(run(x), y).backward()
        opt.step()
    return forward, step


def torch_available() -> bool:
    try:
        import torch  # noqa: F401
        return True
    except ImportError:
        return False


def run(batch_sizes=(1, 16, 64), threads=None, number=10, repeat=5, top=10, log=print, with_torch=True,
        target="llvm", optimizer="sgd"):
    """Bench every batch size on ``target``; prints (through ``log``) each profile table and a
    summary table. Beside it, PyTorch eager on the CPU (or, for a CUDA target, on the GPU
    when PyTorch has one)."""
    from loopc.runtime import threads as th
    from loopc.nn.train import check_int
    batch_sizes = [check_int("bench.run(batch_sizes)", b, low=1) for b in batch_sizes]
    for name, value in (("number", number), ("repeat", repeat), ("top", top)):
        check_int(f"bench.run({name})", value, low=1)
    if optimizer not in OPTIMIZERS:
        raise loopc.ArgumentError(f"bench.run(optimizer): {optimizer!r} is not one of {', '.join(OPTIMIZERS)}")
    if threads is not None:
        th.set_num_threads(threads)
    nthreads = th.num_threads()
    device = "cuda" if kind_of(target) == "cuda" else "cpu"
    has_torch = with_torch and torch_available()
    if has_torch:
        import torch
        torch.set_num_threads(nthreads)
        has_torch = device == "cpu" or torch.cuda.is_available()
    model = LeNet(seed=0, target=target)
    results = []
    for b in batch_sizes:
        fwd, train, table, compile_s = time_loopc(model, b, number, repeat, optimizer=optimizer)
        tf = tt = None
        if has_torch:
            tf, tt = time_torch(model, b, number, repeat, optimizer=optimizer, device=device)
        r = BenchResult(b, fwd, train, tf, tt, table, compile_s)
        results.append(r)
        log(f"\nbatch {b} on {target}: top-{top} operators over {number} training steps "
            f"(kernels compiled or fetched in {compile_s:.1f} s)")
        log(table)
    log("\n" + summary(results, nthreads, target, optimizer))
    return results


def summary(results, nthreads, target="llvm", optimizer="sgd") -> str:
    has_torch = any(r.torch_forward_ms is not None for r in results)
    where = "the GPU" if kind_of(target) == "cuda" else \
        f"{nthreads} CPU thread{'s' if nthreads > 1 else ''}"
    head = f"LeNet-5 latency on {where} (median ms)"
    cols = f"{'batch':>5}  {'loopc fwd':>10}  {'loopc train':>11}"
    if has_torch:
        cols += f"  {'torch fwd':>10}  {'torch train':>11}  {'fwd ratio':>9}  {'train ratio':>11}"
    lines = [head, cols]
    for r in results:
        line = f"{r.batch:>5}  {r.forward_ms:10.3f}  {r.train_ms:11.3f}"
        if r.torch_forward_ms is not None:
            line += (f"  {r.torch_forward_ms:10.3f}  {r.torch_train_ms:11.3f}  {r.forward_ms / r.torch_forward_ms:8.2f}x"
                     f"  {r.train_ms / r.torch_train_ms:10.2f}x")
        lines.append(line)
    lines.append(f"train = forward + backward + {_OPTIMIZER_NAMES[optimizer]} update" +
                 ("; ratio = loopc time / PyTorch eager time (below 1: loopc is faster)" if has_torch else ""))
    return "\n".join(lines)


_OPTIMIZER_NAMES = {"sgd": "SGD-momentum", "adadelta": "Adadelta"}


def compare_table(cpu, gpu, nthreads, gpu_label="GPU") -> str:
    """CPU and GPU side by side per batch size (``cpu``/``gpu``: BenchResults of the same batches;
    ``gpu`` rows may be recorded figures, which ``gpu_label`` then says)."""
    by_batch = {r.batch: r for r in gpu}
    lines = [f"LeNet-5, CPU ({nthreads} thread{'s' if nthreads > 1 else ''}) vs {gpu_label} (median ms)",
             f"{'batch':>5}  {'CPU fwd':>9}  {'GPU fwd':>9}  {'CPU train':>9}  {'GPU train':>9}  "
             f"{'fwd CPU/GPU':>11}  {'train CPU/GPU':>13}"]
    for c in cpu:
        g = by_batch.get(c.batch)
        if g is None:
            lines.append(f"{c.batch:>5}  {c.forward_ms:9.3f}  {'-':>9}  {c.train_ms:9.3f}  {'-':>9}  {'-':>11}  {'-':>13}")
            continue
        lines.append(f"{c.batch:>5}  {c.forward_ms:9.3f}  {g.forward_ms:9.3f}  {c.train_ms:9.3f}  {g.train_ms:9.3f}  "
                     f"{c.forward_ms / g.forward_ms:10.2f}x  {c.train_ms / g.train_ms:12.2f}x")
    lines.append("CPU/GPU above 1: the GPU is faster; '-': no GPU figure for that batch size")
    return "\n".join(lines)


def train_torch(model, data, cfg, log=None):
    """Train PyTorch's LeNet eagerly with ``model``'s initial weights, the same batches (same
    shuffling seed) and the same optimizer and schedule as ``loopc.nn.train.fit``.
    Returns (test accuracy, seconds)."""
    import torch
    import torch.nn.functional as F
    net = torch_lenet(model)
    x, y = data.train.tensors()
    tx, ty = data.test.tensors()
    xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
    if cfg.optimizer == "sgd":
        opt = torch.optim.SGD(net.parameters(), lr=cfg.lr, momentum=cfg.momentum)
    else:
        opt = torch.optim.Adadelta(net.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=cfg.gamma)
    rng = np.random.default_rng(cfg.seed)
    t0 = time.perf_counter()
    for epoch in range(cfg.epochs):
        order = torch.from_numpy(rng.permutation(len(y)))
        for start in range(0, len(order), cfg.batch_size):
            idx = order[start:start + cfg.batch_size]
            opt.zero_grad(set_to_none=True)
            F.nll_loss(net(xt[idx]), yt[idx]).backward()
            opt.step()
        sched.step()
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        acc = float((net(torch.from_numpy(tx)).argmax(1).numpy() == ty).mean())
    return acc, seconds
