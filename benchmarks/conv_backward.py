"""Convolution backward kernels: loopc's default templates beside PyTorch (oneDNN).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/conv_backward.py [--threads 1 2]

For each shape, ``conv2d_backward_data`` (dX from dY and W) and ``conv2d_backward_weight``
(dW from dY and X) are built through ``loopc.schedules.schedule`` (the default template, no
tuned record), checked against PyTorch, then timed beside ``torch.ops.aten.convolution_backward``
with ``output_mask`` selecting only dX or only dW, in interleaved rounds. Times are medians;
``x torch`` is the median of the per-round torch_time / loopc_time (> 1: loopc is faster).
``--only data|weight`` and ``--shapes NAME...`` pick a subset.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
import warnings

import numpy as np

# name: (N, C, H, W, K, R, S, stride, padding)
SHAPES = {
    "net-conv2": (64, 32, 26, 26, 64, 3, 3, 1, 0),       # the chapter Net's conv2
    "net-conv1": (64, 1, 28, 28, 32, 3, 3, 1, 0),        # the chapter Net's conv1 (weight only)
    "lenet-conv2": (64, 6, 14, 14, 16, 5, 5, 1, 0),
    "lenet-conv1": (64, 1, 32, 32, 6, 5, 5, 1, 0),
    "lenet-conv1-pad2": (64, 1, 28, 28, 6, 5, 5, 1, 2),
    "resnet-3x3-pad1": (8, 64, 28, 28, 64, 3, 3, 1, 1),
    "stride2-pad1": (4, 32, 15, 15, 48, 3, 3, 2, 1),
}
#: shapes whose X needs no gradient in the model (the first layer): dW only
WEIGHT_ONLY = {"net-conv1", "lenet-conv1", "lenet-conv1-pad2"}


def conv_out(size, k, stride, pad):
    return (size + 2 * pad - k) // stride + 1


def build(kind, shape):
    import loopc
    from loopc import te
    from loopc import schedules as S
    N, C, H, W, K, R, S_, st, pad = shape
    P, Q = conv_out(H, R, st, pad), conv_out(W, S_, st, pad)
    dY = te.placeholder((N, K, P, Q), name="dY")
    if kind == "data":
        Wt = te.placeholder((K, C, R, S_), name="W")
        out = S.conv2d_backward_data(dY, Wt, (N, C, H, W), st, pad)
        other = Wt
    else:
        X = te.placeholder((N, C, H, W), name="X")
        out = S.conv2d_backward_weight(dY, X, (K, C, R, S_), st, pad)
        other = X
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", S.NoTunedRecordWarning)
        s = S.schedule(out)
    t0 = time.perf_counter()
    f = loopc.build(s, [dY, other, out], name="bwd")
    return f, time.perf_counter() - t0, (N, K, P, Q)


def timed(fn, min_ms):
    """Seconds per call of ``fn``: calls repeated for at least ``min_ms`` milliseconds."""
    fn()
    n, t = 0, 0.0
    t0 = time.perf_counter()
    while t * 1e3 < min_ms or n < 3:
        fn()
        n += 1
        t = time.perf_counter() - t0
    return t / n


def main():
    import loopc
    import torch
    from loopc.runtime import threads
    from loopc.target import host

    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--min-ms", type=float, default=60.0)
    ap.add_argument("--only", choices=["data", "weight"])
    ap.add_argument("--shapes", nargs="+", default=list(SHAPES))
    args = ap.parse_args()
    print(f"machine: {platform.machine()}, loopc host target: {host()}, {os.cpu_count()} cores; "
          f"torch {torch.__version__} (mkldnn {torch.backends.mkldnn.is_available()})")
    print(f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')} "
          f"OPENBLAS_L2_SIZE={os.environ.get('OPENBLAS_L2_SIZE', '(unset)')}")
    print(f"{'shape':<18} {'op':<6} {'thr':>3} {'loopc ms':>9} {'GFLOP/s':>8} {'torch ms':>9} "
          f"{'GFLOP/s':>8} {'x torch':>7} {'build ms':>8}")
    rng = np.random.default_rng(0)
    kinds = [args.only] if args.only else ["data", "weight"]
    for name in args.shapes:
        shape = SHAPES[name]
        N, C, H, W, K, R, S_, st, pad = shape
        for kind in kinds:
            if kind == "data" and name in WEIGHT_ONLY:
                continue
            f, build_s, (_, _, P, Q) = build(kind, shape)
            flop = 2.0 * N * K * P * Q * C * R * S_
            dy = rng.standard_normal((N, K, P, Q)).astype(np.float32)
            x = rng.standard_normal((N, C, H, W)).astype(np.float32)
            w = rng.standard_normal((K, C, R, S_)).astype(np.float32)
            tdy, tx, tw = (torch.from_numpy(a) for a in (dy, x, w))
            mask = [kind == "data", kind == "weight", False]

            def torch_fn():
                return torch.ops.aten.convolution_backward(
                    tdy, tx, tw, None, [st, st], [pad, pad], [1, 1], False, [0, 0], 1, mask)

            if kind == "data":
                other, out = w, np.zeros((N, C, H, W), np.float32)
                want = torch_fn()[0].numpy()
            else:
                other, out = x, np.zeros((K, C, R, S_), np.float32)
                want = torch_fn()[1].numpy()
            f(dy, other, out)
            err = float(np.max(np.abs(out - want)) / max(1.0, float(np.max(np.abs(want)))))
            if err > 1e-4:
                raise AssertionError(f"{name} {kind}: loopc disagrees with torch (relative error {err:.1e})")
            for n in args.threads:
                threads.set_num_threads(n)
                torch.set_num_threads(n)
                lt, tt = [], []
                with torch.no_grad():
                    for _ in range(args.rounds):       # interleaved: a busy spell hits both alike
                        time.sleep(0.02)
                        lt.append(timed(lambda: f(dy, other, out), args.min_ms))
                        time.sleep(0.02)
                        tt.append(timed(torch_fn, args.min_ms))
                ml, mt = statistics.median(lt), statistics.median(tt)
                ratio = statistics.median(t / l for t, l in zip(tt, lt))
                print(f"{name:<18} {kind:<6} {n:>3} {ml * 1e3:9.3f} {flop / ml / 1e9:8.1f} {mt * 1e3:9.3f} "
                      f"{flop / mt / 1e9:8.1f} {ratio:7.2f} {build_s * 1e3:8.0f}", flush=True)
    threads.set_num_threads(None)


if __name__ == "__main__":
    main()
