"""Sparse weights: ``sparse_dense`` (TOPI's ``topi.nn.sparse_dense``): Y = X · Wᵀ with W
(N x K) stored in CSR or BSR, so the loops run only over W's nonzeros.

    CSR (W_data 1-D):  Y[i, j] = sum_{e in row j} W_data[e] * X[i, W_indices[e]]
    BSR (W_data 3-D, nnz_blocks x bs_r x bs_c, block row nb of rows nb*bs_r ...):
        Y_block[i, nb, r] = sum_{e in block row nb, c < bs_c} W_data[e, r, c] * X[i, bs_c*W_indices[e] + c]
        Y[i, j] = Y_block[i, j // bs_r, j % bs_r]

Row ``j``'s elements are ``W_indptr[j] .. W_indptr[j + 1] - 1``: a reduce axis whose extent
reads W_indptr (a data-dependent loop, ``loopc.te.reduction``), so an empty row costs nothing.
The number of nonzeros is fixed at compile time by W_data's shape; W_indices and W_indptr are
int32, and their values are only checked at run time (``loopc.build(..., bounds_check=True)``).
"""
from __future__ import annotations

from loopc import te
from loopc.errors import LoopcError


def sparse_dense(X, W_data, W_indices, W_indptr, name="sparse_dense"):
    """Y = X · Wᵀ, W sparse: CSR when ``W_data`` is 1-D, BSR when it is 3-D (blocks of
    bs_r x bs_c). X is (M, K); Y is (M, N) with N = (len(W_indptr) - 1) * bs_r (bs_r = 1 for CSR)."""
    if len(X.shape) != 2:
        raise LoopcError(f"sparse_dense: X must be 2-D (batch, in), got shape {X.shape}")
    for t in (W_indices, W_indptr):
        if len(t.shape) != 1 or t.dtype not in ("int32", "int64"):
            raise LoopcError(f"sparse_dense: {t.name} must be a 1-D int32/int64 tensor, got {t.shape} {t.dtype}")
    if len(W_data.shape) == 1:
        return _csr(X, W_data, W_indices, W_indptr, name)
    if len(W_data.shape) == 3:
        return _bsr(X, W_data, W_indices, W_indptr, name)
    raise LoopcError(f"sparse_dense: W_data must be 1-D (CSR) or 3-D (BSR: blocks x bs_r x bs_c), got {W_data.shape}")


def _check_nnz(W_data, W_indices, what):
    if W_indices.shape[0] != W_data.shape[0]:
        raise LoopcError(f"sparse_dense: W_indices has {W_indices.shape[0]} entries but W_data has "
                         f"{W_data.shape[0]} {what}; give one column index per {what[:-1]}")


def _csr(X, W_data, W_indices, W_indptr, name):
    _check_nnz(W_data, W_indices, "nonzeros")
    M, N = X.shape[0], W_indptr.shape[0] - 1
    if N < 1:
        raise LoopcError("sparse_dense: W_indptr needs at least 2 entries (one row)")

    def row(i, j):
        start = W_indptr[j]
        elem = te.reduce_axis((0, W_indptr[j + 1] - start), name="elem")
        e = start + elem
        return te.sum(W_data[e] * X[i, W_indices[e]], axis=elem)
    return te.compute((M, N), row, name=name, tag="sparse_dense_csr")


def _bsr(X, W_data, W_indices, W_indptr, name):
    _check_nnz(W_data, W_indices, "blocks")
    (M, K), (_, bs_r, bs_c) = X.shape, W_data.shape
    if K % bs_c:
        raise LoopcError(f"sparse_dense: X has {K} columns, not a multiple of the blocks' {bs_c} columns")
    NB = W_indptr.shape[0] - 1
    if NB < 1:
        raise LoopcError("sparse_dense: W_indptr needs at least 2 entries (one block row)")

    def block(i, nb, r):
        start = W_indptr[nb]
        elem = te.reduce_axis((0, W_indptr[nb + 1] - start), name="elem")
        c = te.reduce_axis((0, bs_c), name="c")
        e = start + elem
        return te.sum(W_data[e, r, c] * X[i, bs_c * W_indices[e] + c], axis=[elem, c])
    Yb = te.compute((M, NB, bs_r), block, name=name + "_block", tag="sparse_dense_bsr_block")
    return te.compute((M, NB * bs_r), lambda i, j: Yb[i, j // bs_r, j % bs_r], name=name, tag="sparse_dense_bsr")
