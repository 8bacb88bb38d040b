"""TVM spellings loopc accepts (issue 16, item 9): ``T(i, j)`` and ``T[i][j]``, thread_axis with
the range first, ``str(expr)`` as an expression, and stages sharing TVM's default name
"compute" that traces still name one by one."""
import numpy as np
import pytest

import loopc
from loopc import te
from loopc.errors import LoopcError


def run(s, args, *arrays):
    f = loopc.build(s, args)
    out = np.zeros([int(d) for d in args[-1].shape], args[-1].dtype)
    f(*arrays, out)
    return out


@pytest.mark.parametrize("spelling", ["call", "chain", "tuple"])
def test_index_spellings_compute_the_same(spelling):
    rng = np.random.default_rng(0)
    M, N, K = 7, 5, 3
    A = te.placeholder((M, K), name="A")
    B = te.placeholder((K, N), name="B")
    k = te.reduce_axis((0, K), name="k")
    read = {"call": lambda T, i, j: T(i, j), "chain": lambda T, i, j: T[i][j], "tuple": lambda T, i, j: T[i, j]}
    r = read[spelling]
    C = te.compute((M, N), lambda i, j: te.sum(r(A, i, k) * r(B, k, j), axis=k), name="C")
    a, b = rng.standard_normal((M, K)).astype("float32"), rng.standard_normal((K, N)).astype("float32")
    np.testing.assert_allclose(run(te.create_schedule(C.op), [A, B, C], a, b), a @ b, rtol=1e-5, atol=1e-6)


def test_a_partial_index_used_as_a_value_is_a_clear_error():
    A = te.placeholder((4, 5), name="A")
    with pytest.raises(LoopcError, match="A has 2 dimensions"):
        te.compute((4,), lambda i: A[i] * 2.0)
    with pytest.raises(LoopcError, match="indexed with 3"):
        A[1, 2, 3]


def test_str_of_an_expression_prints_it():
    A = te.placeholder((4, 5), name="A")
    i, j = te.var("i"), te.var("j")
    text = str(A[i, j] * 2.0 + A[i][0])
    assert "object at" not in text and "A[i, j]" in text and "A[i, 0]" in text


def test_thread_axis_takes_tvm_argument_order():
    tx = te.thread_axis((0, 32), "threadIdx.x")
    assert tx.thread_tag == "threadIdx.x" and tx.extent == 32
    assert te.thread_axis("blockIdx.x").thread_tag == "blockIdx.x"
    with pytest.raises(LoopcError, match="unknown thread tag"):
        te.thread_axis((0, 32), "threadIdx.w")


def test_stages_sharing_the_default_name_replay_from_a_trace():
    """Three stages all named "compute" (TVM's default): every one is scheduled, the trace replays
    on a fresh schedule of the same program to the same loops, and the numbers are numpy's."""
    rng = np.random.default_rng(1)
    A = te.placeholder((13, 7), name="A")
    B = te.compute((13, 7), lambda i, j: A[i, j] * 2.0)
    C = te.compute((13, 7), lambda i, j: B[i, j] + 1.0)
    D = te.compute((13, 7), lambda i, j: C[i, j] * C[i, j])
    s = te.create_schedule(D.op)
    names = [st.name for st in s.stages]
    assert len(set(names)) == 3 and all(n.startswith("compute") for n in names)
    s[B].split(B.op.axis[1], factor=3)
    s.cache_read(C, "global", [s[D]])
    s[D].split(D.op.axis[0], factor=4)
    s2 = te.create_schedule(D.op)
    s2.replay(s.trace_json())
    assert str(loopc.lower(s2, [A, D])) == str(loopc.lower(s, [A, D]))
    a = rng.standard_normal((13, 7)).astype("float32")
    np.testing.assert_allclose(run(s2, [A, D], a), (a * 2 + 1) ** 2, rtol=1e-5)
