"""Small CUDA schedules that show one idea each, shared by the GPU check
(``benchmarks/gpu_check.py``) and the simulator tests."""
from __future__ import annotations

from loopc import te


def block_reduce(M, N, threads=16):
    """B = 2A staged per block (a "global" stage computed at the block loop, so it lives in
    shared memory), filled by all ``threads``; the row sum runs once per block, on thread 0.
    Returns (schedule, [A, S])."""
    A = te.placeholder((M, N), name="A")
    Bs = te.compute((M, N), lambda i, j: A[i, j] * 2.0, name="B")
    k = te.reduce_axis((0, N), name="k")
    S = te.compute((M,), lambda i: te.sum(Bs[i, k], axis=k), name="S")
    s = te.create_schedule(S.op)
    s[S].bind(S.op.axis[0], te.thread_axis("blockIdx.x"))
    s[Bs].compute_at(s[S], S.op.axis[0])
    _, tx = s[Bs].split(s[Bs].op.axis[1], factor=threads)
    s[Bs].bind(tx, te.thread_axis("threadIdx.x"))
    return s, [A, S]
