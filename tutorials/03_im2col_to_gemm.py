"""Tutorial 3 — im2col: the seven loops of a convolution become one matrix multiply.

The chapter's second question: can the seven loops of Conv2d become a simpler matrix
computation? Libraries such as cuDNN answer with several algorithms (im2col + GEMM, FFT,
Winograd) and pick one per layer by timing them. This tutorial makes im2col runnable:

1. Declare a convolution as seven loops (padding through ``te.if_then_else``), rewrite it with
   ``col, out = s.im2col(Y)`` and print the loop nest: a stage that copies every R x S input
   patch into one column of a "patch matrix", and a GEMM that reduces over one axis of extent
   C*R*S. For a 4x4 input and a 3x3 filter we print the patch matrix itself, then check it and
   the GEMM against numpy:

       col[n, (c*R + r)*S + s, p*Q + q] = X[n, c, p*stride + r - pad, q*stride + s - pad]
       Y[n] (K x P*Q) = W (K x C*R*S) @ col[n] (C*R*S x P*Q)

2. Schedule both algorithms — direct (the seven loops, register-tiled: a block of output
   channels x a vector of output columns) and im2col + GEMM (a register-tiled GEMM, as in
   tutorial 2) — and time them on LeNet's two convolutions (batch 64) and a ResNet 3x3 layer.
   Like cuDNN's benchmark mode, each algorithm gets the best of a few register-tile shapes.

3. A third algorithm, the library's default when the output channels fill whole vectors
   (``loopc.schedules``, method "direct"): output channels in the vector lanes. The weights
   are packed a block of 16 output channels at a time, channels innermost, by
   ``s.cache_read(W, "global", [Y], block={0: 16})`` (W.global[k.outer, c, r, s, k.inner]:
   the 16 weights a vector uses are contiguous, and so is a block's whole filter — a 1 KiB
   stride between them would fight over 4 of L1's 64 cache sets), and a q x 16 register tile
   of outputs is kept channel-innermost by ``s.cache_write(Y, "local", layout=(0, 2, 3, 1))``,
   so each input value is broadcast to 16 multiply-adds. We print
   its loop nest for a small layer and check it against numpy.

The patch matrix repeats every input pixel up to R*S times (the "blow-up" column), so im2col
buys a regular GEMM with the price of extra memory traffic: whether it wins depends on the layer.

Both schedules mark an outer loop parallel, but the comparison runs on one thread by default:
it is about the algorithms, and one thread gives stable numbers even where other processes share
the cores. ``--threads 0`` uses every core.

Run:  python tutorials/03_im2col_to_gemm.py [--small] [--threads N]
"""
import argparse
import os
from dataclasses import dataclass

import numpy as np

import loopc
from loopc import te
from loopc.runtime import threads


# ----------------------------------------------------------------------------- declarations


def out_size(H, R, stride, pad):
    return (H + 2 * pad - R) // stride + 1


def conv2d(N, C, H, W, K, R, S, stride=1, pad=0):
    """Y[n, k, p, q] = sum_{c, r, s} X[n, c, p*stride + r - pad, q*stride + s - pad] * Wt[k, c, r, s]."""
    P, Q = out_size(H, R, stride, pad), out_size(W, S, stride, pad)
    X = te.placeholder((N, C, H, W), name="X")
    Wt = te.placeholder((K, C, R, S), name="Wt")
    c = te.reduce_axis((0, C), name="c")
    r = te.reduce_axis((0, R), name="r")
    s = te.reduce_axis((0, S), name="s")

    def body(n, k, p, q):
        h = p * stride + r - pad
        w = q * stride + s - pad
        x = X[n, c, h, w]
        if pad:  # zero padding: read 0 outside the image (without padding every read is inside)
            x = te.if_then_else(te.all(h >= 0, h < H, w >= 0, w < W), x, 0.0)
        return te.sum(x * Wt[k, c, r, s], axis=[c, r, s])

    Y = te.compute((N, K, P, Q), body, name="Y")
    return X, Wt, Y


# ----------------------------------------------------------------------------- numpy references


def conv2d_numpy(x, w, stride, pad):
    """The convolution in float64, one (r, s) filter tap at a time (no im2col): the reference."""
    N, C, H, W = x.shape
    K, _, R, S = w.shape
    P, Q = out_size(H, R, stride, pad), out_size(W, S, stride, pad)
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    y = np.zeros((N, K, P, Q))
    for r in range(R):
        for s in range(S):
            patch = xp[:, :, r: r + stride * (P - 1) + 1: stride, s: s + stride * (Q - 1) + 1: stride]
            y += np.einsum("ncpq,kc->nkpq", patch, w[:, :, r, s])
    return y


def im2col_numpy(x, R, S, stride, pad):
    """The patch matrix col[n, (c*R + r)*S + s, p*Q + q], built with numpy slicing."""
    N, C, H, W = x.shape
    P, Q = out_size(H, R, stride, pad), out_size(W, S, stride, pad)
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    col = np.empty((N, C, R, S, P * Q), dtype=x.dtype)
    for r in range(R):
        for s in range(S):
            col[:, :, r, s, :] = xp[:, :, r: r + stride * (P - 1) + 1: stride,
                                    s: s + stride * (Q - 1) + 1: stride].reshape(N, C, P * Q)
    return col.reshape(N, C * R * S, P * Q)


def max_rel_err(got, ref):
    return float(np.max(np.abs(got - ref)) / max(1.0, float(np.max(np.abs(ref)))))


# ----------------------------------------------------------------------------- part 1: the rewrite


def show_the_rewrite():
    """A 1x1x4x4 input, one 3x3 filter: print the loop nest and the patch matrix, check both."""
    X, Wt, Y = conv2d(N=1, C=1, H=4, W=4, K=1, R=3, S=3)
    s = te.create_schedule(Y.op)
    print("Before: the seven loops (tutorial 1)\n")
    print(loopc.lower(s, [X, Wt, Y], name="conv2d"))
    col, out = s.im2col(Y)
    print(f"After s.im2col(Y): a patch-matrix stage {col.name}{list(col.shape)} and a GEMM over "
          f"crs < C*R*S = {col.shape[1]}\n")
    print(loopc.lower(s, [X, Wt, Y], name="conv2d_im2col"))

    # The patch matrix is an intermediate: listing it among the arguments makes the caller own
    # its buffer, so we can print exactly what the GEMM reads.
    f = loopc.build(s, [X, Wt, col, Y], name="conv2d_im2col")
    x = np.arange(16, dtype=np.float32).reshape(X.shape)
    w = np.arange(1, 10, dtype=np.float32).reshape(Wt.shape)
    c = np.zeros(col.shape, dtype=np.float32)
    y = np.zeros(Y.shape, dtype=np.float32)
    f(x, w, c, y)
    print("input X[0, 0] =\n", x[0, 0], sep="")
    print(f"\npatch matrix col[0] ({col.shape[1]} rows = (c, r, s) taps, {col.shape[2]} columns = "
          "output pixels p*Q + q):\n", c[0], sep="")
    assert np.array_equal(c, im2col_numpy(x, 3, 3, 1, 0)), "the patch matrix disagrees with numpy's im2col"
    gemm = w.reshape(1, 9) @ c[0]
    print(f"\nW viewed as 1x9 = {w.reshape(-1)}\nW @ col[0] = {gemm}  ->  Y[0, 0] =\n{y[0, 0]}")
    assert np.array_equal(y.reshape(1, 4), gemm)
    assert np.allclose(y, conv2d_numpy(x, w, 1, 0)), "the im2col convolution disagrees with numpy"
    print("patch matrix == numpy im2col, and Y == W @ col == numpy convolution: checked\n")


# ----------------------------------------------------------------------------- part 3: channels in lanes


def show_channels_in_lanes():
    """The library's direct template on a 1x3x8x8 input and 16 filters 3x3, stride 1."""
    from loopc.schedules import cpu as library_cpu
    X, Wt, Y = conv2d(N=1, C=3, H=8, W=8, K=16, R=3, S=3)
    s = te.create_schedule(Y.op)
    for st in s.stages:
        if st.op.tag == "pad":
            st.compute_inline()
    library_cpu.schedule_conv2d(s, s[Y], method="direct", tile_q=3)
    print("Direct, output channels in vector lanes (loopc.schedules' default for 16k output channels):\n")
    print(loopc.lower(s, [X, Wt, Y], name="conv2d_lanes"))
    rng = np.random.default_rng(3)
    x = rng.standard_normal(X.shape).astype(np.float32)
    w = rng.standard_normal(Wt.shape).astype(np.float32)
    y = np.zeros(Y.shape, dtype=np.float32)
    loopc.build(s, [X, Wt, Y], name="conv2d_lanes")(x, w, y)
    err = max_rel_err(y, conv2d_numpy(x, w, 1, 0))
    assert err < 1e-5, f"the channels-in-lanes convolution disagrees with numpy ({err:.1e})"
    print(f"checked against numpy (relative error {err:.1e})\n")


# ----------------------------------------------------------------------------- part 2: schedules


def schedule_direct(shape, kf, vf):
    """The seven loops with a (kf output channels) x (vf output columns) register tile:

        for n, k.outer (parallel):  for p:  for q.outer:
          for c, r, s:  for k.inner (unrolled):  for q.inner (vector lanes):  Y += X * W
    """
    X, Wt, Y = conv2d(*shape)
    s = te.create_schedule(Y.op)
    n, k, p, q = Y.op.axis
    c, r, rs = Y.op.reduce_axis
    ko, ki = s[Y].split(k, factor=kf)
    qo, qi = s[Y].split(q, factor=vf)
    s[Y].reorder(n, ko, p, qo, c, r, rs, ki, qi)
    s[Y].unroll(ki)
    s[Y].vectorize(qi)
    s[Y].parallel(s[Y].fuse(n, ko))
    return s, [X, Wt, Y], None


def schedule_col_stage(s, col, Q):
    """col[n, crs, pq]: split pq into (p, q) — exactly, by Q — and run q as vector lanes."""
    n, crs, pq = col.op.axis
    _, q = s[col].split(pq, factor=Q)
    if Q > 32:  # too wide for one vector loop: split q by its largest divisor up to 32 (16 if none)
        _, q = s[col].split(q, factor=max([d for d in range(4, 33) if Q % d == 0] or [16]))
    s[col].vectorize(q)
    s[col].parallel(s[col].fuse(n, crs))


def schedule_im2col(shape, kf, vf):
    """im2col, then a GEMM per image, Y[n] (K x PQ) = W (K x CRS) @ col[n] (CRS x PQ), with a
    (kf rows of W) x (vf columns of col) register tile, as in tutorial 2:

        for n, pq.outer (parallel):  for k.outer:  for crs:
          for k.inner (unrolled):  for pq.inner (vector lanes):  Y += W * col
    """
    X, Wt, Y = conv2d(*shape)
    s = te.create_schedule(Y.op)
    col, out = s.im2col(Y)
    n, k, p, q = out.op.axis
    crs = s[out].leaf_iter_vars[-1]
    pq = s[out].fuse(p, q)  # the GEMM's column index p*Q + q: one contiguous loop
    fo, fi = s[out].split(pq, factor=vf)
    ko, ki = s[out].split(k, factor=kf)
    s[out].reorder(n, fo, ko, crs, ki, fi)  # a block of col stays in cache for every k.outer
    s[out].unroll(ki)
    s[out].vectorize(fi)
    s[out].parallel(s[out].fuse(n, fo))
    schedule_col_stage(s, col, Y.shape[3])
    return s, [X, Wt, Y], col


def divisors(n, among):
    return [d for d in among if n % d == 0]


def candidates(method, shape, small):
    """A few register-tile shapes (kf, vf) per algorithm; factors that divide avoid tail masks."""
    N, C, H, W, K, R, S, stride, pad = shape
    if small:  # factors that divide none of the small shapes: every tail guard runs
        return [(2, 4)]
    P, Q = out_size(H, R, stride, pad), out_size(W, S, stride, pad)
    kfs = divisors(K, (3, 4, 6, 8)) or [1]
    if method == "direct":
        vfs = divisors(Q, (7, 8, 10, 14, 16)) or [8]
    else:
        vfs = divisors(P * Q, (5, 8, 10, 16, 20, 32)) or [8]
    return [(kf, vf) for kf in kfs for vf in vfs]


LAYERS = [
    # name, (N, C, H, W, K, R, S, stride, pad)
    ("LeNet conv1", (64, 1, 32, 32, 6, 5, 5, 1, 0)),
    ("LeNet conv2", (64, 6, 14, 14, 16, 5, 5, 1, 0)),
    ("ResNet 3x3", (1, 64, 56, 56, 64, 3, 3, 1, 1)),
]
SMALL_LAYERS = [
    ("small s2 p1", (2, 3, 11, 13, 5, 3, 3, 2, 1)),
    ("small s1 p1", (3, 4, 7, 5, 7, 3, 3, 1, 1)),
]


def best_seconds(f, *arrays, budget_s=0.25):
    """Seconds per call: the fastest of many single calls (timeit's convention). Slower calls
    measure other processes competing for the cores — a parallel loop waits for its slowest
    thread — more than the code; on an idle machine the fastest and the typical call agree."""
    first = f.time_evaluator(number=1, repeat=3)(*arrays).min
    repeat = int(min(200, max(5, budget_s / first)))
    return f.time_evaluator(number=1, repeat=repeat)(*arrays).min


def build_and_check(make, shape, kf, vf, x, w, ref):
    s, args, col = make(shape, kf, vf)
    f = loopc.build(s, args, name="conv2d")
    y = np.zeros(ref.shape, dtype=np.float32)
    f(x, w, y)
    err = max_rel_err(y, ref)
    assert err < 1e-4, f"{make.__name__} (kf={kf}, vf={vf}) disagrees with numpy: relative error {err:.2e}"
    return f, y, col


def best_of(make, method, shape, x, w, ref, small):
    """Build, check and time every candidate; keep the fastest (cuDNN's benchmark mode in miniature)."""
    best = None
    for kf, vf in candidates(method, shape, small):
        f, y, col = build_and_check(make, shape, kf, vf, x, w, ref)
        t = best_seconds(f, x, w, y, budget_s=0.02 if small else 0.1)
        if best is None or t < best[0]:
            best = (t, f, y, col, (kf, vf))
    _, f, y, col, tile = best
    return best_seconds(f, x, w, y, budget_s=0.02 if small else 0.5), tile, col


def time_patch_matrix(col, x, shape, small):
    """The patch-matrix stage alone (te.create_schedule on the col tensor), checked against numpy."""
    N, C, H, W, K, R, S, stride, pad = shape
    s = te.create_schedule(col.op)
    schedule_col_stage(s, col, out_size(W, S, stride, pad))
    X = col.op.input_tensors[0]
    f = loopc.build(s, [X, col], name="im2col")
    c = np.zeros(col.shape, dtype=np.float32)
    f(x, c)
    assert np.array_equal(c, im2col_numpy(x, R, S, stride, pad)), "the patch matrix disagrees with numpy"
    return best_seconds(f, x, c, budget_s=0.02 if small else 0.25)


@dataclass
class Row:
    name: str
    shape: tuple
    flops: float
    direct_s: float
    direct_tile: tuple
    im2col_s: float
    im2col_tile: tuple
    col_s: float       # the patch-matrix stage alone
    col_bytes: int
    blowup: float      # patch matrix size / input size


def compare(layers, small):
    rng = np.random.default_rng(0)
    rows = []
    for name, shape in layers:
        N, C, H, W, K, R, S, stride, pad = shape
        x = rng.standard_normal((N, C, H, W), dtype=np.float32)
        w = rng.standard_normal((K, C, R, S), dtype=np.float32)
        ref = conv2d_numpy(x, w, stride, pad)
        flops = 2.0 * ref.size * C * R * S
        t_direct, tile_direct, _ = best_of(schedule_direct, "direct", shape, x, w, ref, small)
        t_gemm, tile_gemm, col = best_of(schedule_im2col, "im2col", shape, x, w, ref, small)
        t_col = time_patch_matrix(col, x, shape, small)
        col_elems = int(np.prod(col.shape))
        rows.append(Row(name, shape, flops, t_direct, tile_direct, t_gemm, tile_gemm, t_col,
                        4 * col_elems, col_elems / x.size))
        print(f"  {name}: direct {t_direct * 1e3:.3f} ms, im2col + GEMM {t_gemm * 1e3:.3f} ms", flush=True)
    return rows


def print_table(rows):
    head = (f"{'layer':<13s} {'N,C,HxW -> K,RxS /stride,pad':<30s} {'MFLOP':>6s} | "
            f"{'direct ms':>9s} {'GFLOP/s':>7s} {'tile':>5s} | {'im2col ms':>9s} {'GFLOP/s':>7s} {'tile':>5s} "
            f"{'(col ms)':>8s} {'col MB':>6s} {'blowup':>6s} | {'faster':>13s}")
    print("\n" + head + "\n" + "-" * len(head))
    for r in rows:
        N, C, H, W, K, R, S, stride, pad = r.shape
        desc = f"{N},{C},{H}x{W} -> {K},{R}x{S} /{stride},{pad}"
        td, tg = r.direct_s, r.im2col_s
        winner = f"direct {tg / td:.2f}x" if td < tg else f"im2col {td / tg:.2f}x"
        print(f"{r.name:<13s} {desc:<30s} {r.flops / 1e6:6.1f} | "
              f"{td * 1e3:9.3f} {r.flops / td / 1e9:7.1f} {r.direct_tile[0]:>2d}x{r.direct_tile[1]:<2d} | "
              f"{tg * 1e3:9.3f} {r.flops / tg / 1e9:7.1f} {r.im2col_tile[0]:>2d}x{r.im2col_tile[1]:<2d} "
              f"{r.col_s * 1e3:8.3f} {r.col_bytes / 1e6:6.2f} {r.blowup:5.1f}x | {winner:>13s}")
    print("\ntile: the register tile, output channels (unrolled) x output pixels (vector lanes), best of a few;"
          "\n(col ms): the patch-matrix stage timed on its own (it is part of im2col ms); "
          "blowup: patch matrix size / input size.")


def main(small=False, n_threads=1):
    threads.set_num_threads(n_threads or os.cpu_count() or 1)
    show_the_rewrite()
    show_channels_in_lanes()
    layers = SMALL_LAYERS if small else LAYERS
    print(f"Direct convolution vs im2col + GEMM, float32, {threads.num_threads()} thread(s); every result "
          "checked against numpy;\ntimes: the fastest of many calls")
    rows = compare(layers, small)
    print_table(rows)
    ratios = [r.direct_s / r.im2col_s for r in rows]  # > 1: im2col + GEMM is faster
    shares = [r.col_s / r.im2col_s for r in rows]
    print(f"\nConclusion: im2col + GEMM was faster on {sum(x > 1 for x in ratios)} of {len(rows)} layers "
          f"(direct time / im2col time: {min(ratios):.2f} to {max(ratios):.2f}). Its patch matrix is "
          f"{min(r.blowup for r in rows):.0f} to {max(r.blowup for r in rows):.0f} times the input,\nand building "
          f"it takes {100 * min(shares):.0f}% to {100 * max(shares):.0f}% of im2col's time: the price of turning "
          "the convolution into one regular GEMM.")
    return rows


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--small", action="store_true", help="tiny odd shapes with stride 2 and padding (test suite)")
    ap.add_argument("--threads", type=int, default=1, help="threads for the parallel loops (default 1; 0: all cores)")
    a = ap.parse_args()
    main(small=a.small, n_threads=a.threads)
