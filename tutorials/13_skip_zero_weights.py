"""Tutorial 13 — skipping zero weights: when does it pay? (the chapter's question 5)

A trained network's small weights can be set to zero (magnitude pruning) at little cost in
accuracy, especially after a short fine-tune with the zeros held. A dense kernel multiplies by
those zeros anyway; a sparse kernel stores only the nonzeros (CSR: each weight row's values
and column indices, ``W_indptr`` marking where each row starts) and loops over them alone:

    Y[i, j] = sum_{e in W_indptr[j] .. W_indptr[j + 1] - 1} W_data[e] * X[i, W_indices[e]]

In loopc that sum is a reduce axis whose extent reads a tensor — ``te.reduce_axis((0,
W_indptr[j + 1] - W_indptr[j]))`` — lowered to a real loop that runs the row's nonzeros only
(``loopc.schedules.sparse_dense``, TVM's topi.nn.sparse_dense). The loop count is data, so
the loop itself cannot be vectorized: the template puts the batch rows in the vector lanes.

Steps:
1. train LeNet (``loopc.nn``) on the embedded digits, and print one sparse kernel's loop nest;
2. prune its fully connected layers and both convolutions (their weights seen as the GEMM of
   im2col: K x C*R*S) by magnitude to 50, 75, 90, 95 and 99% zeros; accuracy before and after
   a short fine-tune that re-applies the mask after each step;
3. time each layer's GEMM as loopc's sparse_dense (CSR) against loopc's dense kernel, at
   batch 64 on one thread, and the large layer of benchmarks/sparse_dense.py for contrast;
4. answer the question from the measured numbers (and plot them with ``--plot PATH``).

Run:  python tutorials/13_skip_zero_weights.py [--small] [--plot skip_zeros.png]
"""
import argparse
import time
import warnings

import numpy as np

import loopc
from loopc import te
from loopc import schedules as S
from loopc.nn import datasets
from loopc.nn.lenet import LeNet
from loopc.nn.optim import Adadelta
from loopc.nn.train import train_epoch
from loopc.runtime import threads
from loopc.schedules import testing as ref

SPARSITIES = (50, 75, 90, 95, 99)
PRUNED = ("conv1.weight", "conv2.weight", "fc1.weight", "fc2.weight", "fc3.weight")


def section(title):
    print(f"\n{'=' * 8} {title} {'=' * (70 - len(title))}")


def prune(w, sparsity):
    """``w`` with its ``sparsity`` % smallest-magnitude weights set to zero, and the mask kept."""
    k = int(round(w.size * sparsity / 100))
    keep = np.ones(w.size, bool)
    keep[np.argsort(np.abs(w), axis=None, kind="stable")[:k]] = False
    keep = keep.reshape(w.shape)
    return w * keep, keep


def sparse_kernel(M, K, csr):
    """loopc's sparse_dense for X (M x K) and the CSR weight ``csr``: (module, schedule, args)."""
    data, indices, indptr = csr
    X = te.placeholder((M, K), name="X")
    Wd = te.placeholder(data.shape, name="W_data")
    Wi = te.placeholder(indices.shape, "int32", "W_indices")
    Wp = te.placeholder(indptr.shape, "int32", "W_indptr")
    Y = S.sparse_dense(X, Wd, Wi, Wp)
    s = S.schedule(Y)
    args = [X, Wd, Wi, Wp, Y]
    return loopc.build(s, args), s, args


def csr_of(w2d):
    data, indices, indptr = ref.dense_to_sparse(np.ascontiguousarray(w2d, np.float32))
    if not len(data):
        data, indices = np.zeros(1, np.float32), np.zeros(1, np.int32)
    return data, indices, indptr


def dense_kernel(M, K, N):
    X, W = te.placeholder((M, K), name="X"), te.placeholder((N, K), name="W")
    Y = S.dense(X, W)
    return loopc.build(S.schedule(Y), [X, W, Y])


def interleaved(calls, small):
    """Median seconds of each (module, arrays) in ``calls``, timed in turns over several rounds
    (a shared machine's load moves all of them alike)."""
    times = [[] for _ in calls]
    for _ in range(3 if small else 7):
        for t, (f, arrays) in zip(times, calls):
            t.append(f.time_evaluator(number=3 if small else 10, repeat=1)(*arrays).mean)
    return [float(np.median(t)) for t in times]


def gemm_shapes(batch):
    """Each pruned layer as Y (M x N) = X (M x K) · Wᵀ: a convolution's M is its output pixels."""
    return {"conv1.weight": (batch * 28 * 28, 25, 6), "conv2.weight": (batch * 10 * 10, 150, 16),
            "fc1.weight": (batch, 400, 120), "fc2.weight": (batch, 120, 84), "fc3.weight": (batch, 84, 10)}


def train(model, x, y, epochs, batch):
    opt = Adadelta(model.store, lr=1.0)
    rng = np.random.default_rng(0)
    for _ in range(epochs):
        train_epoch(model, opt, x, y, batch, rng)


def fine_tune(model, masks, x, y, batch, steps):
    """A few steps of training with the pruned weights held at zero after each step."""
    opt = Adadelta(model.store, lr=0.5)
    n = min(len(y), steps * batch)

    def hold(_loss):
        for name, keep in masks.items():
            w = model.store[name]
            w *= keep
    train_epoch(model, opt, x[:n], y[:n], batch, np.random.default_rng(1), on_step=hold)


def main(small=False, plot=None):
    threads.set_num_threads(1)
    warnings.simplefilter("ignore", S.NoTunedRecordWarning)
    batch = 64
    data = datasets.mnist()
    n_train = 1280 if small else len(data.train)
    x, y = data.train.take(n_train).tensors()
    tx, ty = data.test.tensors()

    section("1. a trained LeNet, and what a sparse kernel runs")
    model = LeNet(seed=0)
    t0 = time.perf_counter()
    train(model, x, y, epochs=2 if small else 3, batch=batch)
    _, base_acc = model.evaluate(tx, ty, batch=batch)
    trained = {name: model.store[name].copy() for name in model.param_shapes}
    print(f"trained on {n_train} digits in {time.perf_counter() - t0:.1f} s: test accuracy {base_acc:.1%} "
          f"on {len(ty)} held-out digits")
    w90, _ = prune(trained["fc3.weight"], 90)
    _, s, args = sparse_kernel(batch, 84, csr_of(w90))
    print("\nfc3 (84 -> 10) at 90% zeros, its default schedule (batch rows in the vector lanes):\n")
    print(loopc.lower(s, args))

    section("2. prune by magnitude, then fine-tune with the zeros held")
    steps = 10 if small else 60
    acc_pruned, acc_tuned = [], []
    for sp in (0,) + SPARSITIES:          # 0: the dense network gets the same fine-tune
        for name, w in trained.items():
            model.store[name][...] = w
        masks = {}
        for name in PRUNED:
            model.store[name][...], masks[name] = prune(trained[name], sp)
        acc_pruned.append(model.evaluate(tx, ty, batch=batch)[1])
        fine_tune(model, masks, x, y, batch, steps)
        assert all((model.store[name][~keep] == 0).all() for name, keep in masks.items())
        acc_tuned.append(model.evaluate(tx, ty, batch=batch)[1])
    dense_tuned = acc_tuned.pop(0)
    acc_pruned.pop(0)
    print(f"{'zeros':>6} {'pruned':>8} {'fine-tuned':>11}   (fine-tune: {steps} steps of {batch}, each followed by "
          "the mask)")
    print(f"{0:>5}% {base_acc:>8.1%} {dense_tuned:>11.1%}")
    for sp, a, b in zip(SPARSITIES, acc_pruned, acc_tuned):
        print(f"{sp:>5}% {a:>8.1%} {b:>11.1%}")

    section("3. time: each layer's GEMM, sparse (CSR) vs loopc's dense kernel, batch 64, one thread")
    shapes = gemm_shapes(batch)
    rng = np.random.default_rng(0)
    dense_s = {name: [] for name in shapes}
    sparse_s = {name: [] for name in shapes}
    for name, (M, K, N) in shapes.items():
        xs, ys = rng.standard_normal((M, K)).astype(np.float32), np.zeros((M, N), np.float32)
        dense_f = dense_kernel(M, K, N)
        for sp in SPARSITIES:
            w2d = prune(trained[name], sp)[0].reshape(N, K)
            csr = csr_of(w2d)
            f = sparse_kernel(M, K, csr)[0]
            f(xs, *csr, ys)
            np.testing.assert_allclose(ys, ref.dense(xs, w2d), rtol=1e-3, atol=1e-3)
            d, t = interleaved([(dense_f, (xs, w2d, ys)), (f, (xs, *csr, ys))], small)
            dense_s[name].append(d)
            sparse_s[name].append(t)
    print(f"{'layer':<14}{'GEMM M x K x N':>18}{'dense us':>10}" + "".join(f"{sp:>7}%" for sp in SPARSITIES)
          + "   (speed-up of sparse over dense)")
    for name, (M, K, N) in shapes.items():
        print(f"{name[:-7]:<14}{f'{M} x {K} x {N}':>18}{np.median(dense_s[name]) * 1e6:>10.1f}"
              + "".join(f"{d / t:>8.2f}" for d, t in zip(dense_s[name], sparse_s[name])))
    total = [sum(dense_s[n][k] for n in shapes) / sum(sparse_s[n][k] for n in shapes) for k in range(len(SPARSITIES))]
    print(f"{'all five':<14}{'':>18}{sum(np.median(v) for v in dense_s.values()) * 1e6:>10.1f}"
          + "".join(f"{r:>8.2f}" for r in total))

    big = None
    if not small:      # the large layer of benchmarks/sparse_dense.py, for contrast
        M, K, N = 64, 1024, 1024
        xs, ys = rng.standard_normal((M, K)).astype(np.float32), np.zeros((M, N), np.float32)
        wbig, csr = ref.random_sparse(N, K, 0.1, seed=1)
        d, t = interleaved([(dense_kernel(M, K, N), (xs, wbig, ys)), (sparse_kernel(M, K, csr)[0], (xs, *csr, ys))],
                           small)
        big = d / t
        print(f"\nfor contrast, a 64 x 1024 x 1024 layer at 90% zeros: dense {d * 1e3:.2f} ms, "
              f"sparse {t * 1e3:.2f} ms ({big:.2f}x)")

    section("4. when does skipping zeros pay?")
    from_here = next((k for k in range(len(SPARSITIES)) if all(r > 1 for r in total[k:])), None)
    best = int(np.argmax(total))
    held = [sp for sp, a in zip(SPARSITIES, acc_tuned) if a >= dense_tuned - 0.02]
    keep = max(held) if held else None
    when = (f"from {SPARSITIES[from_here]}% zeros on" if from_here is not None
            else "at none of the sparsities tried")
    print(f"Timed on LeNet's five layers (batch 64, one thread), the sparse kernels beat loopc's dense ones {when} "
          f"(at best {total[best]:.2f}x, at {SPARSITIES[best]}%): a sparse kernel saves the zeros' multiply-adds but "
          "pays for index loads and a transposed copy of the layer's input, which in convolutions of 6 and 16 "
          "output channels costs about as much as the whole dense product"
          + (f", while a 64 x 1024 x 1024 layer at 90% zeros runs {big:.2f}x faster." if big else "."))
    if keep:
        k = SPARSITIES.index(keep)
        ratio = {name[:-7]: dense_s[name][k] / sparse_s[name][k] for name in shapes}
        wins = [f"{n} ({r:.1f}x)" for n, r in ratio.items() if r > 1.05]
        rest = [n for n, r in ratio.items() if r <= 1.05]
        print(f"Magnitude pruning with a {steps}-step fine-tune keeps test accuracy within 2 points of the equally "
              f"fine-tuned dense network ({dense_tuned:.1%}) up to {keep}% zeros ({acc_tuned[k]:.1%}), and at that "
              f"sparsity {', '.join(wins) if wins else 'no layer'} run{'s' if len(wins) == 1 else ''} faster sparse"
              + (f" while {', '.join(rest)} do{'es' if len(rest) == 1 else ''} not" if rest else "")
              + ": skipping zeros pays where a layer reuses each weight over a batch of rows and most weights can go.")
    else:
        print("Pruning lost more than 2 points of accuracy at every sparsity tried, so on this network the zeros "
              "are not free and skipping them does not pay.")
    if plot:
        _plot(plot, total, sparse_s, dense_s, acc_pruned, acc_tuned, dense_tuned)
    return dict(total=total, acc_pruned=acc_pruned, acc_tuned=acc_tuned, base=base_acc, dense_tuned=dense_tuned)


def _plot(path, total, sparse_s, dense_s, acc_pruned, acc_tuned, dense_acc):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        print(f"(no plot: matplotlib is not installed; pip install 'loopc[plot]' to write {path})")
        return
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    for name, ts in sparse_s.items():
        a.plot(SPARSITIES, [d / t for d, t in zip(dense_s[name], ts)], "o-", lw=1, label=name[:-7])
    a.plot(SPARSITIES, total, "ks-", lw=2, label="all five")
    a.axhline(1, color="gray", ls=":")
    a.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%gx"))
    a.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    a.set(xlabel="weights set to zero (%)", ylabel="speed-up of sparse over dense", yscale="log",
          title="LeNet's GEMMs, batch 64, 1 thread")
    a.legend(fontsize=8)
    b.plot(SPARSITIES, [100 * v for v in acc_pruned], "o-", label="pruned")
    b.plot(SPARSITIES, [100 * v for v in acc_tuned], "s-", label="pruned + fine-tuned")
    b.axhline(100 * dense_acc, color="gray", ls=":", label="dense, fine-tuned alike")
    b.set(xlabel="weights set to zero (%)", ylabel="test accuracy (%)", title="accuracy")
    b.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="a short training run and fewer timing rounds (for the tests)")
    ap.add_argument("--plot", metavar="PATH", help="write speed-up and accuracy vs sparsity as a PNG")
    a = ap.parse_args()
    main(small=a.small, plot=a.plot)
