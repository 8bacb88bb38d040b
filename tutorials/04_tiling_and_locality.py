"""Tutorial 4 — tiling and locality: do the tensors fit in the caches, and is there reuse?

The chapter's third and fourth questions, answered with numbers on this machine:

3. Do the input, weight and output tensors fit in the caches (L1, L2)? If not, tile the loops.
   We read the host's cache sizes from the OS (as loopc's Target does), then run one kernel
   with its working set sized to fit L1d, L2, L3 and none of them, and show its GFLOP/s per
   level (and a PNG): that is what fitting a cache is worth. Then we time C = A @ B with tiles of growing size:
   for each tile we print the bytes of the A, B and C blocks it touches, whether they fit L1 or
   L2, and the speed. Inside a tile the loops run i-k-j: a row of the C block stays in vector
   registers while k runs, and the B block is re-read once per row of the tile — from L1 when
   the tile fits there, from L2 or L3 when it does not.

4. Is there locality to exploit? Spatial locality: a 64-byte cache line holds 16 float32
   neighbours; the i-j-k order reads B down a column (one useful float per line fetched), the
   i-k-j order reads B along a row (all 16 used; contiguous loads are also what lets the compiler
   use vector instructions). Temporal locality: untiled, an element of B is used again only after
   all of B has streamed through the caches; tiled, after one small block.

Everything runs on one core (no parallel loops): L1 and L2 are per-core caches. Every variant
is checked against numpy.

Run:  python tutorials/04_tiling_and_locality.py [--small] [--size N]
"""
import argparse
import statistics

import numpy as np

import loopc
from loopc import te

FLOAT = 4  # bytes per float32


# ----------------------------------------------------------------------------- the host's caches


def cache_sizes():
    """{'L1d', 'L2', 'L3', 'line': bytes} of one core, as loopc's Target reads them (sysfs), and
    where the numbers came from."""
    from loopc.target import DEFAULT_CACHES, read_caches
    found = read_caches()
    source = ("/sys/devices/system/cpu/cpu0/cache" if found != DEFAULT_CACHES
              else "loopc's defaults (the OS did not say)")
    try:
        line = int(open("/sys/devices/system/cpu/cpu0/cache/index0/coherency_line_size").read())
    except (OSError, ValueError):
        line = 64
    return {"L1d": found["l1d"], "L2": found["l2"], "L3": found["l3"], "line": line}, source


def human(nbytes):
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if nbytes >= scale:
            v = nbytes / scale
            return f"{v:.0f} {unit}" if v == int(v) or v >= 100 else f"{v:.1f} {unit}"
    return f"{nbytes} B"


def level_of(nbytes, caches):
    """The smallest cache level that holds ``nbytes``."""
    for name in ("L1d", "L2", "L3"):
        if name in caches and nbytes <= caches[name]:
            return name
    return "memory"


# ----------------------------------------------------------------------------- matmul schedules


def matmul(n):
    A = te.placeholder((n, n), name="A")
    B = te.placeholder((n, n), name="B")
    k = te.reduce_axis((0, n), name="k")
    C = te.compute((n, n), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    return A, B, C


def order_ijk(n):
    """for i: for j: for k: C[i, j] += A[i, k] * B[k, j]    (B read down a column)"""
    A, B, C = matmul(n)
    return te.create_schedule(C.op), [A, B, C]


def order_ikj(n):
    """for i: for k: for j: C[i, j] += A[i, k] * B[k, j]    (B and C read along rows)"""
    A, B, C = matmul(n)
    s = te.create_schedule(C.op)
    i, j = C.op.axis
    s[C].reorder(i, C.op.reduce_axis[0], j)
    return s, [A, B, C]


def tiled(n, ti, tj, tk):
    """for i.outer, j.outer, k.outer:            one ti x tj x tk tile
         for i.inner: for k.inner:               i-k-j inside the tile
           for j.inner in vectorized(tj): C += A * B   (a row of the C block stays in registers)"""
    A, B, C = matmul(n)
    s = te.create_schedule(C.op)
    i, j = C.op.axis
    io, jo, ii, ji = s[C].tile(i, j, ti, tj)
    ko, ki = s[C].split(C.op.reduce_axis[0], factor=tk)
    s[C].reorder(io, jo, ko, ii, ki, ji)
    s[C].vectorize(ji)
    return s, [A, B, C]


def working_set(ti, tj, tk):
    """Bytes of the A (ti x tk), B (tk x tj) and C (ti x tj) blocks one tile touches."""
    return FLOAT * ti * tk, FLOAT * tk * tj, FLOAT * ti * tj


# ----------------------------------------------------------------------------- measuring


class Bench:
    def __init__(self, n, small):
        rng = np.random.default_rng(0)
        self.n, self.small = n, small
        self.a = rng.random((n, n), dtype=np.float32)
        self.b = rng.random((n, n), dtype=np.float32)
        self.ref = self.a.astype(np.float64) @ self.b.astype(np.float64)
        self.flops = 2.0 * n ** 3

    def run(self, schedule_and_args, what):
        """Build, check against numpy, time: seconds per call, the fastest of several single calls
        (timeit's convention: slower calls measure other processes sharing the core, not the code)."""
        s, args = schedule_and_args
        f = loopc.build(s, args, name="matmul")
        c = np.zeros((self.n, self.n), dtype=np.float32)
        f(self.a, self.b, c)
        err = float(np.max(np.abs(c - self.ref)) / np.max(np.abs(self.ref)))
        assert err < 1e-4, f"{what} disagrees with numpy: relative error {err:.2e}"
        first = f.time_evaluator(number=1, repeat=1)(self.a, self.b, c).min
        budget = 0.02 if self.small else 0.6
        repeat = int(min(50, max(3, budget / first)))
        return f.time_evaluator(number=1, repeat=repeat)(self.a, self.b, c).min

    def gflops(self, seconds):
        return self.flops / seconds / 1e9


# ----------------------------------------------------------------------------- question 3


def question3(bench, caches, tiles):
    n = bench.n
    print("\nQuestion 3, continued — the matmul's tensors do not fit, so tile the loops.")
    total = 3 * FLOAT * n * n
    where = level_of(total, caches)
    verdict = ("they fit L1d: tiling has little to gain" if where == "L1d" else
               f"they do not fit L1d{'' if where == 'L2' else ' or L2'}, so we tile")
    print(f"C[{n}x{n}] = A @ B, float32: A, B and C are {human(FLOAT * n * n)} each, {human(total)} "
          f"together — {verdict}.\n")
    head = (f"{'tile ti x tj x tk':<18s} {'A block':>9s} {'B block':>9s} {'C block':>9s} {'total':>9s} "
            f"{'fits L1d':>8s} {'fits L2':>7s} {'ms':>9s} {'GFLOP/s':>8s}")
    print(head)
    print("-" * len(head))
    rows = []
    for ti, tj, tk in tiles:
        a_b, b_b, c_b = working_set(ti, tj, tk)
        total = a_b + b_b + c_b
        t = bench.run(tiled(n, ti, tj, tk), f"tile {ti}x{tj}x{tk}")
        level = level_of(total, caches)
        rows.append((ti, tj, tk, total, level, t))
        print(f"{f'{ti} x {tj} x {tk}':<18s} {human(a_b):>9s} {human(b_b):>9s} {human(c_b):>9s} {human(total):>9s} "
              f"{'yes' if total <= caches['L1d'] else 'no':>8s} {'yes' if total <= caches['L2'] else 'no':>7s} "
              f"{t * 1e3:9.2f} {bench.gflops(t):8.1f}", flush=True)
    in_l1 = [r for r in rows if r[4] == "L1d"]
    out_l1 = [r for r in rows if r[4] != "L1d"]
    if in_l1 and out_l1:
        best_in = min(in_l1, key=lambda r: r[5])
        best_out = min(out_l1, key=lambda r: r[5])
        worst_out = max(out_l1, key=lambda r: r[5])
        print(f"\nConclusion: the best tile that fits L1d ({best_in[0]}x{best_in[1]}x{best_in[2]}, "
              f"{human(best_in[3])}) ran {faster(best_out[5] / best_in[5])} than the best one that does not "
              f"({best_out[0]}x{best_out[1]}x{best_out[2]}, {human(best_out[3])}) and "
              f"{faster(worst_out[5] / best_in[5])} than the slowest ({worst_out[0]}x{worst_out[1]}x"
              f"{worst_out[2]}, {human(worst_out[3])}).")
    else:
        print(f"\nConclusion: every tile here {'fits' if in_l1 else 'spills out of'} L1d "
              f"({human(caches['L1d'])}); compare the full-size run for tiles on both sides.")
    return rows


# ----------------------------------------------------------------------------- question 3, per level


def streamed_gemv(rows, cols, sweeps):
    """y[j] = sum over sweeps r and rows i of A[i, j] * x[i]: every call streams A (rows x cols)
    ``sweeps`` times, so A is the working set and stays in whichever cache holds it. y lives
    in vector registers (a write cache), so each float of A costs one load and one multiply-add:

        for r in range(sweeps): for i in range(rows):
          for ju in unrolled(cols / lanes): for jv in vectorized(lanes):
            y.local[ju*lanes + jv] += A[i, ju*lanes + jv] * x[i]"""
    from loopc.target import host
    lanes = host().lanes("float32")
    A = te.placeholder((rows, cols), name="A")
    x = te.placeholder((rows,), name="x")
    r = te.reduce_axis((0, sweeps), name="r")
    i = te.reduce_axis((0, rows), name="i")
    y = te.compute((cols,), lambda j: te.sum(A[i, j] * x[i], axis=[r, i]), name="y")
    s = te.create_schedule(y.op)
    yl = s.cache_write(y, "local")
    jo, _ = s[y].split(y.op.axis[0], factor=cols)
    s[yl].compute_at(s[y], jo)
    ju, jv = s[yl].split(s[yl].op.axis[0], factor=lanes)
    s[yl].reorder(*s[yl].op.reduce_axis, ju, jv)
    s[yl].unroll(ju)
    s[yl].vectorize(jv)
    return loopc.build(s, [A, x, y], name="gemv")


def working_sets(caches):
    """One working set per level: half of L1d, half of L2, half of L3, and 4x L3 (memory)."""
    return [("L1d", caches["L1d"] // 2), ("L2", caches["L2"] // 2), ("L3", caches["L3"] // 2),
            ("memory", 4 * caches["L3"])]


def question3_levels(caches, small, plot=None):
    """GFLOP/s of the same kernel with its working set in L1d, L2, L3 and memory: median of
    interleaved rounds (each round times every level once, so a noisy moment hits all alike)."""
    from loopc.target import host
    cols = 4 * host().lanes("float32")            # 4 vector registers of y per row of A
    print("\nQuestion 3 — do the tensors fit in the caches? One kernel, four working sets.")
    print(f"y = A·x swept many times per call (A: rows x {cols} float32; the rows set the working set)\n")
    kernels = []
    rng = np.random.default_rng(1)
    for level, nbytes in working_sets(caches):
        rows = max(1, nbytes // (FLOAT * cols))
        sweeps = max(1, (4 << 20) // (rows * cols * FLOAT))   # stream ~4 MiB per call: calls cost little
        a = rng.random((rows, cols), dtype=np.float32)
        x = rng.random(rows, dtype=np.float32)
        y = np.empty(cols, np.float32)
        f = streamed_gemv(rows, cols, sweeps)
        f(a, x, y)
        ref = sweeps * (x.astype(np.float64) @ a.astype(np.float64))
        assert np.allclose(y, ref, rtol=1e-3), f"{level}: y disagrees with numpy"
        flops = 2.0 * rows * cols * sweeps
        kernels.append((level, rows * cols * FLOAT + rows * FLOAT, f, (a, x, y), flops))
    rounds, budget = (3, 0.01) if small else (7, 0.15)
    times = {level: [] for level, *_ in kernels}
    for _ in range(rounds):
        for level, _, f, args, _ in kernels:
            first = f.time_evaluator(number=1, repeat=1)(*args).min
            number = max(1, int(budget / max(first, 1e-7)))
            times[level].append(f.time_evaluator(number=number, repeat=1)(*args).min)
    head = f"{'working set in':<15s} {'bytes':>10s} {'GFLOP/s':>8s} {'GB/s of A':>10s} {'vs L1d':>7s}"
    print(head)
    print("-" * len(head))
    rates = {}
    for level, nbytes, _, _, flops in kernels:
        t = statistics.median(times[level])
        rates[level] = flops / t / 1e9
        print(f"{level:<15s} {human(nbytes):>10s} {rates[level]:8.1f} {rates[level] * 2:10.1f} "
              f"{rates[level] / rates['L1d']:6.2f}x")
    steps = list(zip(list(rates)[:-1], list(rates)[1:]))
    hidden = [(a, b) for a, b in steps if rates[a] < 1.1 * rates[b]]
    print(f"\nConclusion: {' -> '.join(f'{lvl} {rates[lvl]:.1f}' for lvl in rates)} GFLOP/s: "
          + ("each level out is slower, so a tensor that fits a nearer cache is worth tiling for."
             if not hidden else
             "this machine hides the step from " + ", ".join(f"{a} to {b} ({rates[a]:.1f} vs {rates[b]:.1f})"
                                                          for a, b in hidden)
             + " — its prefetchers stream those levels as fast as the nearer one (or other work shared the core); "
               "the other steps show."))
    if plot:
        _plot_levels(plot, kernels, rates, caches)
    return rates


def _plot_levels(path, kernels, rates, caches):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"(no plot: matplotlib is not installed; pip install 'loopc[plot]' to write {path})")
        return
    fig, ax = plt.subplots(figsize=(6, 3.5))
    labels = [f"{level}\n{human(nbytes)}" for level, nbytes, *_ in kernels]
    ax.bar(labels, [rates[level] for level, *_ in kernels], color=["#4c72b0", "#55a868", "#c44e52", "#8172b2"])
    ax.set_ylabel("GFLOP/s (1 core)")
    ax.set_title(f"y = A·x with A in each level (L1d {human(caches['L1d'])}, L2 {human(caches['L2'])}, "
                 f"L3 {human(caches['L3'])})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"(plot written to {path})")


# ----------------------------------------------------------------------------- question 4


def faster(ratio):
    return f"{ratio:.1f}x faster" if ratio >= 1 else f"{1 / ratio:.1f}x slower"


def question4(bench, caches, tile):
    n = bench.n
    ti, tj, tk = tile
    line = caches.get("line", 64)
    per_line = line // FLOAT
    b_bytes, block_bytes = FLOAT * n * n, FLOAT * tk * tj
    print(f"\nQuestion 4 — is there locality to exploit? (the same C[{n}x{n}] = A @ B)\n")
    variants = [  # loop order, tiling, schedule, how the inner loop walks B, its stride, B reused after
        ("i-j-k", "untiled", order_ijk(n), "down a column", FLOAT * n, 1, f"all of B, {human(b_bytes)}"),
        ("i-k-j", "untiled", order_ikj(n), "along a row", FLOAT, per_line, f"all of B, {human(b_bytes)}"),
        ("i-k-j", f"tiled {ti}x{tj}x{tk}", tiled(n, ti, tj, tk), "along a row", FLOAT, per_line,
         f"one B block, {human(block_bytes)}"),
    ]
    head = (f"{'loop order':<10s} {'tiling':<16s} {'inner loop reads B':<18s} {'stride':>7s} "
            f"{'floats used per line':>20s}   {'B reused after':<20s} {'ms':>9s} {'GFLOP/s':>8s} {'speedup':>8s}")
    print(head)
    print("-" * len(head))
    times = []
    for order, tiling, sched, walk, stride, used, reuse in variants:
        t = bench.run(sched, f"{order} {tiling}")
        times.append(t)
        print(f"{order:<10s} {tiling:<16s} {walk:<18s} {f'{stride} B':>7s} {f'{used} of {per_line}':>20s}   "
              f"{reuse:<20s} {t * 1e3:9.2f} {bench.gflops(t):8.1f} {times[0] / t:7.1f}x", flush=True)
    print(f"\nConclusion: reading B along rows (i-k-j) instead of down columns (i-j-k) ran "
          f"{faster(times[0] / times[1])} (spatial locality); tiling, so that B is reused from a "
          f"{human(block_bytes)} block instead of after all {human(b_bytes)} of B, ran {faster(times[1] / times[2])} "
          "again (temporal locality).")
    return times


def main(small=False, size=None, plot=None):
    caches, source = cache_sizes()
    print(f"This host's caches (from {source}):")
    for name in ("L1d", "L2", "L3"):
        if name in caches:
            print(f"  {name:<4s} {human(caches[name]):>9s}")
    print(f"  line {caches.get('line', 64):>7d} B  ({caches.get('line', 64) // FLOAT} float32 per line)")

    if small:
        n = size or 97  # prime: every tile has a tail
        tiles = [(4, 16, 8), (8, 16, 16), (32, 64, 97)]  # the last one spills out of a 32 KiB L1d
    else:
        # 576 = 9 x 64: divisible by every tile below, but not a power of two (a row stride of
        # 2^k bytes would map the rows of a B block onto the same few cache sets)
        n = size or 576
        tiles = [(16, 64, 32), (16, 64, 64), (32, 64, 96), (64, 64, 192), (64, 64, 576), (192, 64, 576)]
    tiles = list(dict.fromkeys(tuple(min(t, n) for t in tile) for tile in tiles))  # for --size below 576
    bench = Bench(n, small)
    rates = question3_levels(caches, small, plot)
    rows = question3(bench, caches, tiles)
    # question 4's tiled variant: the fastest tile of question 3 that fits L1d (else the fastest)
    fits = [r for r in rows if r[4] == "L1d"] or rows
    best = min(fits, key=lambda r: r[5])
    times = question4(bench, caches, best[:3])
    return rates, rows, times


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--small", action="store_true", help="a small prime size, a few seconds (test suite)")
    ap.add_argument("--size", type=int, default=None, help="matrix size N (default 576 = 9 x 64; "
                    "sizes that the tiles do not divide add masked tails, powers of two add cache-set conflicts)")
    ap.add_argument("--plot", default=None, metavar="PNG",
                    help="write the per-level GFLOP/s bar chart here (default: cache_fit.png, none with --small)")
    a = ap.parse_args()
    main(small=a.small, size=a.size, plot=a.plot or (None if a.small else "cache_fit.png"))
