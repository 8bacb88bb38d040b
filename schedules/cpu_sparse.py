"""CPU templates of ``sparse_dense`` (CSR and BSR weights), registered for the "llvm" kind.

A weight row's nonzeros are a data-dependent loop (``elem``): its count is known only at run
time, so it cannot be vectorized or unrolled. The vector lanes go over the batch rows instead,
with X read through a transposed copy (``X.global[k, i]``, a cache_read with layout (1, 0)) so
that one nonzero's column of X is one contiguous vector load:

    X.global[k, i] = X[i, k]                          # a block of rows at a time
    for j.outer, i.outer:                             # CSR: 16 rows of W x V batch rows
      for j in 16 (unrolled):
        Y.local[j, 0:V] = 0
        for elem in range(W_indptr[j + 1] - W_indptr[j]):
          Y.local[j, 0:V] += W_data[e] * X.global[W_indices[e], i.outer*V : +V]
      for i in V: Y[i, j.outer*16 : +16] = Y.local[0:16, i]       # a row of columns per store

V (``rows``) is as many vector registers as hide the multiply-add latency (CSR: one nonzero
feeds only the tile's own vectors) or two registers (BSR: the block's bs_r rows of
accumulators, unrolled, share each loaded vector of X); sizes come from the target's facts
(``facts.cpu_facts``). A batch of fewer rows than one register keeps the plain loops.
"""
from __future__ import annotations

from loopc.schedule.stage import MAX_VECTOR_LANES

from .cpu import PAR_MIN_WORK, _first, _work
from .facts import cpu_facts
from .registry import register

#: a BSR block row's accumulators are unrolled when bs_r x (V / lanes) registers fit the tile
MAX_BLOCK_ROWS = 16


def _rows_knob(cfg, f, M, wide):
    """Batch rows per vector tile. ``wide`` (CSR: one row of W at a time, so the tile's vectors
    are the only independent multiply-adds per nonzero): as many registers as hide the
    multiply-add latency (two thirds of the accumulators, at most 64 lanes), a multiple of two
    registers that divides M; else (BSR: the block's rows multiply that) two registers."""
    if M < f.lanes:
        cfg.define_knob("rows", [0])
    else:
        default = f.vec if f.vec <= M else f.lanes
        if wide:
            cap = min(MAX_VECTOR_LANES, f.accumulators * 2 // 3 * f.lanes)
            fits = [r for r in range(f.vec, cap + 1, f.vec) if M % r == 0]
            default = fits[-1] if fits else (-(-M // f.lanes) * f.lanes if M <= cap else default)
        choices = [r for r in (f.vec, f.lanes, 2 * f.vec, 4 * f.vec) if r <= max(M, f.lanes)]
        cfg.define_knob("rows", _first(default, choices))
    cfg.define_knob("parallel", [1, 0])
    return cfg["rows"].val, bool(cfg["parallel"].val)


def _x_of(op):
    """The dense operand X (the input read as X[i, ...] with two dimensions and a float dtype)."""
    return next(t for t in op.input_tensors if len(t.shape) == 2 and not t.dtype.startswith("int"))


@register("sparse_dense_csr", "llvm")
def sparse_dense_csr(cfg, s, stage, target):
    """CSR: lanes over the batch rows, one accumulator vector per (row tile, W row)."""
    f = cpu_facts(target)
    i, j = stage.op.axis
    rows, parallel = _rows_knob(cfg, f, i.extent, wide=True)
    if not rows:
        if parallel and _work(stage) >= PAR_MIN_WORK:
            stage.parallel(j)
        return
    xt = s.cache_read(_x_of(stage.op), "global", [stage], layout=(1, 0))
    local = s.cache_write(stage.op.output(0), "local", layout=(1, 0))      # local[j, i]: rows in lanes
    cols = min(f.vec, j.extent)
    io, ii = stage.split(i, factor=rows)
    jo, ji = stage.split(j, factor=cols)
    outer, inner = (io, jo) if io.extent >= jo.extent else (jo, io)    # threads over the longer loop
    # the copy-out writes Y a row of `cols` columns at a time (not one column of `rows` rows:
    # a column of a 4 KiB-wide Y maps every row to one L1 set)
    stage.reorder(outer, inner, ii, ji)
    if cols >= f.lanes:
        stage.vectorize(ji)
    lstage = s[local]
    lstage.compute_at(stage, inner)
    lj, li = lstage.op.axis
    lstage.reorder(lj, lstage.reduce_axes[0], li)
    lstage.unroll(lj)         # constant indices: each row's accumulators stay in registers
    lstage.vectorize(li)
    _vectorize_copy(s[xt], f)
    if parallel and _work(stage) >= PAR_MIN_WORK:
        stage.parallel(outer)


@register("sparse_dense_bsr", "llvm")
def sparse_dense_bsr(cfg, s, stage, target):
    """BSR: lanes over the batch rows, the block's bs_r rows of accumulators unrolled."""
    f = cpu_facts(target)
    block = next(t for t in stage.op.input_tensors if t.op.tag == "sparse_dense_bsr_block")
    bstage = s[block]
    i, nb, r = bstage.op.axis
    rows, parallel = _rows_knob(cfg, f, i.extent, wide=False)
    if rows:
        xt = s.cache_read(_x_of(block.op), "global", [bstage], layout=(1, 0))
        local = s.cache_write(block, "local", layout=(1, 2, 0))     # local[nb, r, i]: rows in lanes
        io, ii = bstage.split(i, factor=rows)
        nbo, nbi = bstage.split(nb, factor=max(1, min(f.vec // r.extent, nb.extent)))
        outer, inner = (io, nbo) if io.extent >= nbo.extent else (nbo, io)
        bstage.reorder(outer, inner, ii, nbi, r)     # the copy-out: a row of whole blocks at a time
        row = bstage.fuse(nbi, r)
        if f.lanes <= row.extent <= MAX_BLOCK_ROWS * 4:
            bstage.vectorize(row)
        lstage = s[local]
        lstage.compute_at(bstage, inner)
        lnb, lr, li = lstage.op.axis
        elem, c = lstage.reduce_axes
        lstage.reorder(lnb, elem, c, lr, li)
        if r.extent * f.regs(rows) <= min(MAX_BLOCK_ROWS, f.accumulators):
            lstage.unroll(lr)
        lstage.vectorize(li)
        _vectorize_copy(s[xt], f)
    else:
        outer = nb
    if parallel and _work(bstage) >= PAR_MIN_WORK:
        bstage.parallel(outer)
    # Y[i, j] = Y_block[i, j // bs_r, j % bs_r]: a contiguous copy
    yi, yj = stage.op.axis
    if yj.extent >= f.vec:
        _, vj = stage.split(yj, factor=f.vec)
        stage.vectorize(vj)
    if parallel and _work(stage) >= PAR_MIN_WORK:
        stage.parallel(yi)


def _vectorize_copy(stage, f):
    """The transposed copy of X, a block of rows at a time (its lines stay in L1 across k):
    vector stores along X.global's rows from a strided read of X."""
    k, i = stage.op.axis
    if i.extent >= f.lanes:
        io, ii = stage.split(i, factor=f.lanes)
        stage.reorder(io, k, ii)
        stage.vectorize(ii)
