"""Golden files: the printed loop nest of representative schedules, and one LLVM IR snippet.

Regenerate after an intended change with ``pytest tests/test_golden.py --update-golden``
and review the diff.
"""
from pathlib import Path

import pytest

import loopc
from loopc import te

GOLDEN = Path(__file__).parent / "golden"


def check_golden(request, name, text):
    path = GOLDEN / name
    if request.config.getoption("--update-golden"):
        path.write_text(text)
    assert path.exists(), f"missing golden file {path}; run pytest --update-golden"
    assert text == path.read_text(), f"{name} changed; if intended, rerun with --update-golden"


def _matmul(M=37, N=29, K=13):
    A = te.placeholder((M, K), name="A")
    B = te.placeholder((K, N), name="B")
    k = te.reduce_axis((0, K), name="k")
    C = te.compute((M, N), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    return A, B, C


def test_matmul_default(request):
    A, B, C = _matmul()
    s = te.create_schedule(C.op)
    check_golden(request, "matmul_default.txt", str(loopc.lower(s, [A, B, C], name="matmul")))


def test_matmul_tiled(request):
    A, B, C = _matmul()
    s = te.create_schedule(C.op)
    i, j = C.op.axis
    io, jo, ii, ji = s[C].tile(i, j, 8, 8)
    ko, ki = s[C].split(C.op.reduce_axis[0], factor=4)
    s[C].reorder(io, jo, ko, ki, ii, ji)
    s[C].vectorize(ji)
    s[C].parallel(io)
    s[C].unroll(ki)
    check_golden(request, "matmul_tiled.txt", str(loopc.lower(s, [A, B, C], name="matmul")))


def test_split_fuse_inline(request):
    """The before -> after pairs of split, fuse and compute_inline on a two-stage op."""
    A = te.placeholder((10, 7), name="A")
    B = te.compute((10, 7), lambda i, j: A[i, j] * 2.0, name="B")
    C = te.compute((10, 7), lambda i, j: B[i, j] + 1.0, name="C")
    s = te.create_schedule(C.op)
    before = str(loopc.lower(s, [A, C], name="f"))
    s[B].compute_inline()
    fused = s[C].fuse(*C.op.axis)
    s[C].split(fused, factor=4)
    after = str(loopc.lower(s, [A, C], name="f"))
    check_golden(request, "split_fuse_inline.txt", f"# before\n{before}\n# after\n{after}")


def test_conv_seven_loops(request):
    X = te.placeholder((2, 3, 9, 9), name="X")
    W = te.placeholder((4, 3, 3, 3), name="W")
    c, r, s_ = (te.reduce_axis((0, n), name=nm) for n, nm in ((3, "c"), (3, "r"), (3, "s")))

    def body(n, k, p, q):
        h, w = p * 2 + r - 1, q * 2 + s_ - 1
        return te.sum(te.if_then_else(te.all(h >= 0, h < 9, w >= 0, w < 9), X[n, c, h, w], 0.0) * W[k, c, r, s_],
                      axis=[c, r, s_])

    Y = te.compute((2, 4, 5, 5), body, name="Y")
    s = te.create_schedule(Y.op)
    check_golden(request, "conv_seven_loops.txt", str(loopc.lower(s, [X, W, Y], name="conv2d")))


def test_llvm_snippet(request):
    """The unoptimised LLVM IR of a vectorized add (the lines from `define` on)."""
    A = te.placeholder((16,), name="A")
    B = te.compute((16,), lambda i: A[i] + 1.0, name="B")
    s = te.create_schedule(B.op)
    _, ii = s[B].split(B.op.axis[0], factor=8)
    s[B].vectorize(ii)
    text = loopc.build(s, [A, B], name="add_one").get_source("llvm-unopt")
    body = text[text.index("define"):]
    assert "<8 x float>" in body
    check_golden(request, "llvm_add_one.ll", body)
