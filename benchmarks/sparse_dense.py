"""Skipping zero weights: loopc's sparse_dense (CSR and BSR) beside loopc's dense, numpy's
dense (BLAS) and torch.sparse, over a sweep of sparsities, at one thread.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/sparse_dense.py \
        [--M 64 --K 1024 --N 1024 --sparsity 50 75 90 95 99 --block 4 4 --rounds 7]

Y = X · Wᵀ with X (M x K) and W (N x K): W has a seeded random pattern (CSR: each weight kept
with probability 1 - sparsity; BSR: each bs_r x bs_c block). Times are medians over
interleaved rounds (every candidate once per round); ratios are loopc dense / candidate
(above 1: faster than loopc's dense). The crossover is the sparsity above which loopc's CSR
kernel beats loopc's dense, interpolated between the measured points. Record results in
benchmarks/RESULTS.md.
"""
import argparse
import os
import platform
import statistics
import time
import warnings

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import loopc  # noqa: E402
import loopc.schedules as S  # noqa: E402
from loopc import te  # noqa: E402
from loopc.runtime.threads import set_num_threads  # noqa: E402
from loopc.schedules import testing as ref  # noqa: E402
from loopc.targets.llvm import host_target  # noqa: E402


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def build_dense(M, K, N):
    X, W = te.placeholder((M, K), name="X"), te.placeholder((N, K), name="W")
    Y = S.dense(X, W)
    return loopc.build(S.schedule(Y), [X, W, Y])


def build_sparse(M, K, data, indices, indptr):
    X = te.placeholder((M, K), name="X")
    Wd = te.placeholder(data.shape, name="W_data")
    Wi = te.placeholder(indices.shape, "int32", "W_indices")
    Wp = te.placeholder(indptr.shape, "int32", "W_indptr")
    Y = S.sparse_dense(X, Wd, Wi, Wp)
    return loopc.build(S.schedule(Y), [X, Wd, Wi, Wp, Y])


def seconds(call, min_s=0.05):
    """Mean seconds of ``call()`` over enough calls to last ``min_s``."""
    call()
    n, t0 = 0, time.perf_counter()
    while True:
        call()
        n += 1
        t = time.perf_counter() - t0
        if t >= min_s:
            return t / n


def torch_sparse(w, x):
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(1)
    wt = torch.from_numpy(w).to_sparse_csr()
    xt = torch.from_numpy(np.ascontiguousarray(x.T))
    return lambda: wt @ xt          # (N x M) = Y transposed: the layout torch's CSR kernel gives


def sweep(M, K, N, sparsities, block, rounds):
    set_num_threads(1)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((M, K)).astype("float32")
    y = np.zeros((M, N), np.float32)
    dense = build_dense(M, K, N)
    rows = []
    for sp in sparsities:
        density = 1 - sp / 100
        w, csr = ref.random_sparse(N, K, density, (1, 1), seed=1)
        wb, bsr = ref.random_sparse(N, K, density, tuple(block), seed=1)
        csr_f, bsr_f = build_sparse(M, K, *csr), build_sparse(M, K, *bsr)
        for f, args, wref in ((csr_f, csr, w), (bsr_f, bsr, wb)):
            f(x, *args, y)
            np.testing.assert_allclose(y, ref.dense(x, wref), rtol=1e-3, atol=1e-3)
        cands = {
            "loopc dense": lambda: dense(x, w, y),
            "numpy dense": lambda: x @ w.T,
            "loopc CSR": lambda: csr_f(x, *csr, y),
            f"loopc BSR {block[0]}x{block[1]}": lambda: bsr_f(x, *bsr, y),
        }
        ts = torch_sparse(w, x)
        if ts is not None:
            cands["torch.sparse CSR"] = ts
        times = {k: [] for k in cands}
        for _ in range(rounds):
            for k, call in cands.items():
                times[k].append(seconds(call))
        med = {k: statistics.median(v) for k, v in times.items()}
        rows.append((sp, len(csr[0]), med))
    return rows


def crossover(rows, name="loopc CSR"):
    """The sparsity where loopc dense / ``name`` crosses 1, interpolated; None if never."""
    prev = None
    for sp, _, med in rows:
        r = med["loopc dense"] / med[name]
        if r >= 1:
            if prev is None:
                return f"<= {sp}%"
            (sp0, r0) = prev
            return f"~{sp0 + (1 - r0) * (sp - sp0) / (r - r0):.0f}%"
        prev = (sp, r)
    return "never in the sweep"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--M", type=int, default=64)
    ap.add_argument("--K", type=int, default=1024)
    ap.add_argument("--N", type=int, default=1024)
    ap.add_argument("--sparsity", type=float, nargs="+", default=[50, 75, 90, 95, 99])
    ap.add_argument("--block", type=int, nargs=2, default=[4, 4])
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    print(f"machine: {cpu_name()}, LLVM cpu={host_target().cpu}, {os.cpu_count()} cores; 1 thread; "
          f"X {args.M}x{args.K}, W {args.N}x{args.K}; medians of {args.rounds} interleaved rounds")
    rows = sweep(args.M, args.K, args.N, args.sparsity, args.block, args.rounds)
    names = list(rows[0][2])
    print("| sparsity | nnz (CSR) | " + " | ".join(f"{n} ms" for n in names) + " | "
          + " | ".join(f"dense/{n.split()[1] if n.startswith('loopc') else n}" for n in names[2:]) + " |")
    print("|" + "---|" * (2 + len(names) + len(names) - 2))
    for sp, nnz, med in rows:
        ms = " | ".join(f"{med[n] * 1e3:.3f}" for n in names)
        ratios = " | ".join(f"{med['loopc dense'] / med[n]:.2f}" for n in names[2:])
        print(f"| {sp:g}% | {nnz} | {ms} | {ratios} |")
    print(f"crossover (loopc CSR beats loopc dense above): {crossover(rows)}; "
          f"BSR: {crossover(rows, names[3])}")


if __name__ == "__main__":
    main()
