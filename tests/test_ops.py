"""The operator library: every op, scheduled by its default CPU template, against numpy."""
import warnings

import numpy as np
import pytest

import loopc
from loopc import schedules as S
from loopc import te
from loopc.schedules import testing as ref

RNG = np.random.default_rng(0)


def rand(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def build_and_run(inputs, out, arrays):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", S.NoTunedRecordWarning)
        s = S.schedule(out)
    f = loopc.build(s, list(inputs) + [out])
    y = np.zeros(out.shape, np.float32)
    f(*arrays, y)
    return y


@pytest.mark.parametrize("M,N,K", [(37, 29, 13), (64, 48, 32), (5, 131, 3)])
def test_matmul(M, N, K):
    A, B = te.placeholder((M, K), name="A"), te.placeholder((K, N), name="B")
    a, b = rand(M, K), rand(K, N)
    np.testing.assert_allclose(build_and_run([A, B], S.matmul(A, B), [a, b]), ref.matmul(a, b), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("batch,fin,fout,bias", [(64, 400, 120, True), (7, 13, 5, False), (3, 37, 11, True)])
def test_dense(batch, fin, fout, bias):
    X, W = te.placeholder((batch, fin), name="X"), te.placeholder((fout, fin), name="W")
    x, w = rand(batch, fin), rand(fout, fin)
    if bias:
        b = te.placeholder((fout,), name="b")
        bb = rand(fout)
        got = build_and_run([X, W, b], S.dense(X, W, b), [x, w, bb])
        np.testing.assert_allclose(got, ref.dense(x, w, bb), rtol=1e-4, atol=1e-4)
    else:
        got = build_and_run([X, W], S.dense(X, W), [x, w])
        np.testing.assert_allclose(got, ref.dense(x, w), rtol=1e-4, atol=1e-4)


CONVS = [
    (2, 3, 11, 13, 5, 3, 3, 2, 1, 1),
    (3, 2, 13, 11, 4, 3, 5, 1, 2, 2),
    (2, 1, 28, 28, 6, 5, 5, 1, 2, 1),
    (1, 5, 9, 9, 7, 1, 1, 1, 0, 1),
    (2, 3, 10, 7, 3, 3, 3, (2, 1), (0, 1), (1, 2)),
]


@pytest.mark.parametrize("N,C,H,W,K,R,S_,stride,pad,dil", CONVS)
def test_conv2d(N, C, H, W, K, R, S_, stride, pad, dil):
    X, Wt = te.placeholder((N, C, H, W), name="X"), te.placeholder((K, C, R, S_), name="W")
    Y = S.conv2d_nchw(X, Wt, stride, pad, dil)
    x, w = rand(N, C, H, W), rand(K, C, R, S_)
    np.testing.assert_allclose(build_and_run([X, Wt], Y, [x, w]), ref.conv2d_nchw(x, w, stride, pad, dil),
                               rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("method", ["direct", "im2col"])
@pytest.mark.parametrize("N,C,H,W,K,R,S_,stride,pad,dil", CONVS + [(3, 5, 11, 11, 16, 3, 3, 2, 2, 1),
                                                             (1, 7, 13, 13, 32, 3, 3, 1, 1, 2),
                                                             # long windows: channel blocks, a tile
                                                             # over fused pixels (121: with a tail)
                                                             (1, 64, 13, 13, 16, 3, 3, 1, 0, 1),
                                                             (2, 32, 9, 9, 32, 5, 5, 2, 2, 1)])
def test_conv2d_both_cpu_methods(N, C, H, W, K, R, S_, stride, pad, dil, method):
    """Each CPU convolution template on its own (the default picks one by shape)."""
    from loopc.schedules import cpu
    X, Wt = te.placeholder((N, C, H, W), name="X"), te.placeholder((K, C, R, S_), name="W")
    Y = S.conv2d_nchw(X, Wt, stride, pad, dil)
    s = te.create_schedule(Y.op)
    for st in s.stages:
        if st.op.tag == "pad":
            st.compute_inline()
    cpu.schedule_conv2d(s, s[Y], method=method)
    x, w = rand(N, C, H, W), rand(K, C, R, S_)
    y = np.zeros(Y.shape, np.float32)
    loopc.build(s, [X, Wt, Y])(x, w, y)
    np.testing.assert_allclose(y, ref.conv2d_nchw(x, w, stride, pad, dil), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("image, kernel, method", [((2, 6, 14, 14), (16, 6, 5, 5), "direct"),
                                                   ((1, 3, 40, 40), (32, 3, 3, 3), "direct"),
                                                   ((1, 1, 70, 70), (16, 1, 3, 3), "im2col"),
                                                   ((1, 1, 32, 32), (6, 1, 5, 5), "im2col")])
def test_conv2d_default_method_is_direct_for_whole_vectors_of_channels_and_images_up_to_4096_pixels(
        image, kernel, method):
    X, Wt = te.placeholder(image, name="X"), te.placeholder(kernel, name="W")
    with pytest.warns(S.NoTunedRecordWarning):
        s = S.schedule(S.conv2d_nchw(X, Wt))
    stages = [st.name for st in s.stages if st.name.endswith((".global", ".local", ".col"))]
    assert stages == (["W.global", "conv2d.local"] if method == "direct" else ["conv2d.col"])


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("shape,kernel,stride,pad", [((2, 3, 11, 13), 3, 2, 1), ((3, 2, 8, 8), 2, None, 0),
                                                       ((1, 1, 7, 5), (3, 2), (1, 2), (1, 0))])
def test_pooling(kind, shape, kernel, stride, pad):
    X = te.placeholder(shape, name="X")
    op = S.max_pool2d if kind == "max" else S.avg_pool2d
    x = rand(*shape)
    got = build_and_run([X], op(X, kernel, stride, pad), [x])
    want = (ref.max_pool2d if kind == "max" else ref.avg_pool2d)(x, kernel, stride, pad)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape", [(7, 13), (2, 3, 5, 17), (10,)])
def test_relu(shape):
    X = te.placeholder(shape, name="X")
    x = rand(*shape)
    np.testing.assert_array_equal(build_and_run([X], S.relu(X), [x]), ref.relu(x))


@pytest.mark.parametrize("shape,axis", [((5, 4, 3, 7), 1), ((7, 13), 1), ((7, 13), 0)])
def test_bias_add(shape, axis):
    X, b = te.placeholder(shape, name="X"), te.placeholder((shape[axis],), name="b")
    x, bb = rand(*shape), rand(shape[axis])
    np.testing.assert_allclose(build_and_run([X, b], S.bias_add(X, b, axis), [x, bb]), ref.bias_add(x, bb, axis))


@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
@pytest.mark.parametrize("shape,axis", [((64, 10), -1), ((7, 13), 1), ((6, 5, 7), 1), ((11,), 0)])
def test_softmax_family(op, shape, axis):
    X = te.placeholder(shape, name="X")
    x = rand(*shape) * 3
    got = build_and_run([X], getattr(S, op)(X, axis), [x])
    np.testing.assert_allclose(got, getattr(ref, op)(x, axis), rtol=1e-5, atol=1e-5)


def test_relu_fused_into_conv_consumer_is_inlined():
    """Injective producers that are not outputs are inlined into their consumer."""
    X = te.placeholder((2, 3, 8, 8), name="X")
    R = S.relu(X)
    P = S.max_pool2d(R, 2)
    x = rand(2, 3, 8, 8)
    np.testing.assert_allclose(build_and_run([X], P, [x]), ref.max_pool2d(ref.relu(x), 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        text = str(loopc.lower(S.schedule(P), [X, P]))
    assert "relu = allocate" not in text


def test_missing_tuned_record_warns_once_naming_the_workload():
    A, B = te.placeholder((19, 23), name="A"), te.placeholder((23, 29), name="B")
    C = S.matmul(A, B)
    with pytest.warns(S.NoTunedRecordWarning, match=r"matmul\(19x23 float32, 23x29 float32\).*loopc tune"):
        S.schedule(C)
    with warnings.catch_warnings():
        warnings.simplefilter("error", S.NoTunedRecordWarning)
        S.schedule(S.matmul(A, B))  # the same workload again: no second warning


def test_shape_errors_are_clear():
    with pytest.raises(loopc.LoopcError, match="inner dimensions differ"):
        S.matmul(te.placeholder((3, 4)), te.placeholder((5, 6)))
    with pytest.raises(loopc.LoopcError, match="expects 3"):
        S.dense(te.placeholder((3, 4)), te.placeholder((5, 3)))
    with pytest.raises(loopc.LoopcError, match="channels"):
        S.conv2d_nchw(te.placeholder((1, 3, 8, 8)), te.placeholder((4, 2, 3, 3)))
    with pytest.raises(loopc.LoopcError, match="does not fit"):
        S.conv2d_nchw(te.placeholder((1, 1, 2, 2)), te.placeholder((1, 1, 5, 5)))
    with pytest.raises(loopc.LoopcError, match="bias has shape"):
        S.bias_add(te.placeholder((2, 3)), te.placeholder((4,)), axis=1)
