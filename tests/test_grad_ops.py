"""Backward operators of the library (schedules/grad.py), each built through its default CPU
template (``schedules.schedule``) and checked against PyTorch autograd (when installed), the
numpy references in ``loopc.schedules.testing``, and numpy finite differences; the tiniest
case of every op also runs through the reference interpreter.

Shapes are small and odd (primes, stride 2, padding 1 and 2, dilation 2, batch > 1) so that no
vector width or tile divides them.
"""
import warnings

import numpy as np
import pytest

import loopc
import loopc.interp
from loopc import te
from loopc import schedules as S
from loopc.errors import LoopcError
from loopc.schedules import testing as ref

RTOL = ATOL = 1e-4


def rand(rng, shape, low=-1.0, high=1.0):
    return rng.uniform(low, high, size=shape).astype(np.float32)


def schedule(outs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", S.NoTunedRecordWarning)
        return S.schedule(outs)


def run(inputs, outs, arrays, interp=False):
    """Build ``schedule(outs)`` (LLVM) or lower it for the interpreter; returns the outputs."""
    outs = list(outs) if isinstance(outs, (list, tuple)) else [outs]
    args = list(inputs) + outs
    results = [np.full(t.shape, np.nan, dtype=t.dtype) for t in outs]
    s = schedule(outs)
    if interp:
        loopc.interp.run(loopc.lower(s, args), *arrays, *results)
    else:
        loopc.build(s, args)(*arrays, *results)
    return results if len(results) > 1 else results[0]


def torch_or_skip():
    return pytest.importorskip("torch")


def conv_out(size, k, stride, pad, dil):
    return (size + 2 * pad - dil * (k - 1) - 1) // stride + 1


# --------------------------------------------------------------------------- convolution

# N, C, H, W, K, R, S, stride, padding, dilation
CONVS = [
    (2, 3, 11, 13, 5, 3, 3, 2, 1, 1),          # stride 2, padding 1
    (3, 2, 13, 11, 4, 3, 5, 1, 2, 2),          # dilation 2, padding 2, R != S
    (2, 3, 10, 7, 3, 3, 3, (2, 1), (0, 1), (1, 2)),
    (1, 5, 9, 9, 7, 1, 1, 1, 0, 1),            # batch 1 (the GEMM is not per image), 1x1 filter
    (4, 1, 13, 13, 6, 5, 5, 1, 2, 1),          # LeNet's conv1 shape, smaller: parallel, rfactor over images
    (2, 6, 7, 7, 29, 5, 5, 1, 0, 1),           # 29 output channels: vectors of 16 + a masked tail
]


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def conv_case(N, C, H, W, K, R, S_, stride, pad, dil):
    (sh, sw), (ph, pw), (dh, dw) = _pair(stride), _pair(pad), _pair(dil)
    P, Q = conv_out(H, R, sh, ph, dh), conv_out(W, S_, sw, pw, dw)
    return (N, C, H, W), (K, C, R, S_), (N, K, P, Q)


@pytest.mark.parametrize("N,C,H,W,K,R,S_,stride,pad,dil", CONVS)
def test_conv2d_backward_vs_torch(N, C, H, W, K, R, S_, stride, pad, dil):
    torch = torch_or_skip()
    xs, ws, ys = conv_case(N, C, H, W, K, R, S_, stride, pad, dil)
    rng = np.random.default_rng(1)
    x, w, dy = rand(rng, xs), rand(rng, ws), rand(rng, ys)
    tx = torch.tensor(x.astype(np.float64), requires_grad=True)
    tw = torch.tensor(w.astype(np.float64), requires_grad=True)
    ty = torch.nn.functional.conv2d(tx, tw, stride=stride, padding=pad, dilation=dil)
    assert tuple(ty.shape) == ys
    ty.backward(torch.tensor(dy.astype(np.float64)))

    dY, Wt, X = te.placeholder(ys, name="dY"), te.placeholder(ws, name="W"), te.placeholder(xs, name="X")
    dx = run([dY, Wt], S.conv2d_backward_data(dY, Wt, xs, stride, pad, dil), [dy, w])
    dw = run([dY, X], S.conv2d_backward_weight(dY, X, ws, stride, pad, dil), [dy, x])
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(dw, tw.grad.numpy(), rtol=RTOL, atol=ATOL)
    # the numpy references agree too (they serve where torch is missing)
    np.testing.assert_allclose(ref.conv2d_backward_data(dy, w, xs, stride, pad, dil), dx, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(ref.conv2d_backward_weight(dy, x, ws, stride, pad, dil), dw, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("N,C,H,W,K,R,S_,stride,pad,dil", [CONVS[0], CONVS[1]])
def test_conv2d_backward_finite_differences(N, C, H, W, K, R, S_, stride, pad, dil):
    """dX and dW are the gradients of L(X, W) = sum(conv2d(X, W) * dY), checked by central
    differences in float64 on a few coordinates."""
    xs, ws, ys = conv_case(N, C, H, W, K, R, S_, stride, pad, dil)
    rng = np.random.default_rng(2)
    x, w, dy = rand(rng, xs), rand(rng, ws), rand(rng, ys)
    dY, Wt, X = te.placeholder(ys, name="dY"), te.placeholder(ws, name="W"), te.placeholder(xs, name="X")
    dx = run([dY, Wt], S.conv2d_backward_data(dY, Wt, xs, stride, pad, dil), [dy, w])
    dw = run([dY, X], S.conv2d_backward_weight(dY, X, ws, stride, pad, dil), [dy, x])

    def loss(xv, wv):
        return float((ref.conv2d_nchw(xv, wv, stride, pad, dil) * dy).sum())

    x64, w64, eps = x.astype(np.float64), w.astype(np.float64), 1e-3
    for grad, arr, which in ((dx, x64, 0), (dw, w64, 1)):
        for flat in rng.choice(arr.size, size=6, replace=False):
            idx = np.unravel_index(flat, arr.shape)
            plus, minus = arr.copy(), arr.copy()
            plus[idx] += eps
            minus[idx] -= eps
            args_p = (plus, w64) if which == 0 else (x64, plus)
            args_m = (minus, w64) if which == 0 else (x64, minus)
            numeric = (loss(*args_p) - loss(*args_m)) / (2 * eps)
            assert abs(numeric - grad[idx]) < 1e-3 * max(1.0, abs(numeric)), (which, idx, numeric, grad[idx])


def test_conv2d_backward_interp():
    xs, ws, ys = conv_case(2, 2, 5, 6, 3, 3, 2, 2, 1, 1)
    rng = np.random.default_rng(3)
    x, w, dy = rand(rng, xs), rand(rng, ws), rand(rng, ys)
    dY, Wt, X = te.placeholder(ys, name="dY"), te.placeholder(ws, name="W"), te.placeholder(xs, name="X")
    dx = run([dY, Wt], S.conv2d_backward_data(dY, Wt, xs, 2, 1), [dy, w], interp=True)
    dw = run([dY, X], S.conv2d_backward_weight(dY, X, ws, 2, 1), [dy, x], interp=True)
    np.testing.assert_allclose(dx, ref.conv2d_backward_data(dy, w, xs, 2, 1), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(dw, ref.conv2d_backward_weight(dy, x, ws, 2, 1), rtol=RTOL, atol=ATOL)


def test_conv2d_backward_checks_shapes():
    dY, W = te.placeholder((2, 4, 5, 5), name="dY"), te.placeholder((4, 3, 3, 3), name="W")
    with pytest.raises(LoopcError, match="expected"):
        S.conv2d_backward_data(dY, W, (2, 3, 9, 9))                # the conv output would be 7x7
    with pytest.raises(LoopcError, match="channels"):
        S.conv2d_backward_weight(dY, te.placeholder((2, 2, 7, 7), name="X"), (4, 3, 3, 3))
    with pytest.raises(LoopcError, match="input_shape"):
        S.conv2d_backward_data(dY, W, (2, 3, 7))


# --------------------------------------------------------------------------- dense, bias, relu


@pytest.mark.parametrize("B,I,O", [(7, 13, 5), (3, 37, 29), (64, 84, 10)])
def test_dense_backward(B, I, O):
    rng = np.random.default_rng(4)
    x, w, dy = rand(rng, (B, I)), rand(rng, (O, I)), rand(rng, (B, O))
    dY, W, X = te.placeholder((B, O), name="dY"), te.placeholder((O, I), name="W"), te.placeholder((B, I), name="X")
    dx = run([dY, W], S.dense_backward_data(dY, W), [dy, w])
    dw = run([dY, X], S.dense_backward_weight(dY, X), [dy, x])
    np.testing.assert_allclose(dx, ref.dense_backward_data(dy, w), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(dw, ref.dense_backward_weight(dy, x), rtol=RTOL, atol=ATOL)
    torch = pytest.importorskip("torch")
    tx = torch.tensor(x, requires_grad=True)
    tw = torch.tensor(w, requires_grad=True)
    torch.nn.functional.linear(tx, tw).backward(torch.tensor(dy))
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(dw, tw.grad.numpy(), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("shape,axis", [((7, 13), 1), ((7, 37), -1), ((3, 5, 7, 11), 1), ((3, 5, 7, 11), 0),
                                        ((4, 6, 13, 13), 1), ((37, 3), 0)])
def test_bias_backward(shape, axis):
    rng = np.random.default_rng(5)
    dy = rand(rng, shape)
    dY = te.placeholder(shape, name="dY")
    np.testing.assert_allclose(run([dY], S.bias_backward(dY, axis), [dy]), ref.bias_backward(dy, axis),
                               rtol=RTOL, atol=ATOL)


def test_dense_bias_relu_backward_interp():
    rng = np.random.default_rng(6)
    x, w, dy = rand(rng, (3, 5)), rand(rng, (2, 5)), rand(rng, (3, 2))
    dY, W, X = te.placeholder((3, 2), name="dY"), te.placeholder((2, 5), name="W"), te.placeholder((3, 5), name="X")
    np.testing.assert_allclose(run([dY, W], S.dense_backward_data(dY, W), [dy, w], interp=True),
                               ref.dense_backward_data(dy, w), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(run([dY, X], S.dense_backward_weight(dY, X), [dy, x], interp=True),
                               ref.dense_backward_weight(dy, x), rtol=RTOL, atol=ATOL)
    d4 = rand(rng, (2, 3, 5, 17))
    D4 = te.placeholder(d4.shape, name="dY")
    np.testing.assert_allclose(run([D4], S.bias_backward(D4), [d4], interp=True), ref.bias_backward(d4),
                               rtol=RTOL, atol=ATOL)
    X4 = te.placeholder(d4.shape, name="X")
    x4 = rand(rng, d4.shape)
    x4[0, 0, 0, :3] = 0.0                                           # relu'(0) = 0, like PyTorch
    np.testing.assert_array_equal(run([D4, X4], S.relu_backward(D4, X4), [d4, x4], interp=True),
                                  ref.relu_backward(d4, x4))


@pytest.mark.parametrize("shape", [(3, 5, 7, 11), (64, 6, 28, 28)])
def test_relu_backward(shape):
    torch = torch_or_skip()
    rng = np.random.default_rng(7)
    x, dy = rand(rng, shape), rand(rng, shape)
    x.reshape(-1)[::7] = 0.0
    dY, X = te.placeholder(shape, name="dY"), te.placeholder(shape, name="X")
    got = run([dY, X], S.relu_backward(dY, X), [dy, x])
    tx = torch.tensor(x, requires_grad=True)
    torch.relu(tx).backward(torch.tensor(dy))
    np.testing.assert_array_equal(got, tx.grad.numpy())


# --------------------------------------------------------------------------- max pooling

# shape, kernel, stride, padding
POOLS = [
    ((2, 3, 13, 11), 2, None, 0),        # tiling windows, odd sizes: the last row/column is in no window
    ((3, 2, 12, 12), 2, None, 0),        # LeNet's pool, smaller
    ((2, 3, 9, 11), 3, 2, 1),            # overlapping windows with padding
    ((2, 2, 8, 9), 2, 1, 1),             # stride 1
    ((2, 3, 7, 7), (3, 2), (2, 3), (1, 0)),
    ((4, 6, 28, 28), 2, None, 0),        # parallel over planes
]


@pytest.mark.parametrize("shape,kernel,stride,pad", POOLS)
@pytest.mark.parametrize("ties", [False, True])
def test_max_pool2d_backward_vs_torch(shape, kernel, stride, pad, ties):
    torch = torch_or_skip()
    rng = np.random.default_rng(8)
    x = rand(rng, shape)
    if ties:                     # few distinct values: most windows hold several maxima
        x = np.round(x * 2).astype(np.float32)
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.max_pool2d(tx, kernel, stride, pad)
    dy = rand(rng, tuple(ty.shape))
    ty.backward(torch.tensor(dy))
    X, dY = te.placeholder(shape, name="X"), te.placeholder(dy.shape, name="dY")
    got = run([dY, X], S.max_pool2d_backward(dY, X, kernel, stride, pad), [dy, x])
    np.testing.assert_allclose(got, tx.grad.numpy(), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(ref.max_pool2d_backward(dy, x, kernel, stride, pad), got, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("shape,kernel,stride,pad", [((1, 2, 5, 4), 2, None, 0), ((1, 2, 5, 5), 3, 2, 1)])
def test_max_pool2d_backward_interp(shape, kernel, stride, pad):
    rng = np.random.default_rng(9)
    x = np.round(rand(rng, shape) * 2).astype(np.float32)
    y = ref.max_pool2d(x, kernel, stride, pad)
    dy = rand(rng, y.shape)
    X, dY = te.placeholder(shape, name="X"), te.placeholder(dy.shape, name="dY")
    got = run([dY, X], S.max_pool2d_backward(dY, X, kernel, stride, pad), [dy, x], interp=True)
    np.testing.assert_allclose(got, ref.max_pool2d_backward(dy, x, kernel, stride, pad), rtol=RTOL, atol=ATOL)


# --------------------------------------------------------------------------- log_softmax and nll_loss


@pytest.mark.parametrize("B,C", [(7, 5), (64, 10), (3, 37)])
def test_log_softmax_nll_loss_vs_torch(B, C):
    torch = torch_or_skip()
    rng = np.random.default_rng(10)
    logits = rand(rng, (B, C), -3, 3)
    labels = rng.integers(0, C, size=B).astype(np.int32)
    tz = torch.tensor(logits, requires_grad=True)
    tlogp = torch.log_softmax(tz, dim=1)
    tlogp.retain_grad()
    tloss = torch.nn.functional.nll_loss(tlogp, torch.tensor(labels.astype(np.int64)))
    tloss.backward()
    logp = tlogp.detach().numpy()

    LP, L = te.placeholder((B, C), name="logp"), te.placeholder((B,), "int32", name="labels")
    loss = run([LP, L], S.nll_loss(LP, L), [logp, labels])
    np.testing.assert_allclose(loss, [tloss.item()], rtol=1e-5, atol=1e-6)
    dlogp = run([L], S.nll_loss_backward(L, B, C), [labels])
    np.testing.assert_allclose(dlogp, tlogp.grad.numpy(), rtol=1e-6, atol=1e-7)
    dLP = te.placeholder((B, C), name="dlogp")
    dz = run([dLP, LP], S.log_softmax_backward(dLP, LP), [dlogp, logp])
    np.testing.assert_allclose(dz, tz.grad.numpy(), rtol=RTOL, atol=1e-6)
    # with an upstream gradient dLoss as a runtime input
    dL = te.placeholder((1,), name="dloss")
    scaled = run([L, dL], S.nll_loss_backward(L, B, C, dL), [labels, np.array([2.5], np.float32)])
    np.testing.assert_allclose(scaled, 2.5 * dlogp, rtol=1e-6)


@pytest.mark.parametrize("shape,axis", [((7, 5), 0), ((3, 4, 5), 1), ((3, 4, 5), -1), ((11,), 0)])
def test_log_softmax_backward_axes(shape, axis):
    rng = np.random.default_rng(11)
    z = rand(rng, shape, -2, 2)
    logp = ref.log_softmax(z, axis)
    dlogp = rand(rng, shape)
    dLP, LP = te.placeholder(shape, name="dlogp"), te.placeholder(shape, name="logp")
    got = run([dLP, LP], S.log_softmax_backward(dLP, LP, axis), [dlogp, logp])
    np.testing.assert_allclose(got, ref.log_softmax_backward(dlogp, logp, axis), rtol=RTOL, atol=1e-6)
    # finite differences of L(z) = sum(log_softmax(z) * dlogp) at a few coordinates
    z64, eps = z.astype(np.float64), 1e-4
    for flat in rng.choice(z.size, size=4, replace=False):
        idx = np.unravel_index(flat, shape)
        plus, minus = z64.copy(), z64.copy()
        plus[idx] += eps
        minus[idx] -= eps
        numeric = ((ref.log_softmax(plus, axis) - ref.log_softmax(minus, axis)) * dlogp).sum() / (2 * eps)
        assert abs(numeric - got[idx]) < 1e-3, (idx, numeric, got[idx])


def test_loss_ops_interp():
    rng = np.random.default_rng(12)
    logp = ref.log_softmax(rand(rng, (3, 4)), 1)
    labels = np.array([0, 3, 1], np.int32)
    LP, L = te.placeholder((3, 4), name="logp"), te.placeholder((3,), "int32", name="labels")
    np.testing.assert_allclose(run([LP, L], S.nll_loss(LP, L), [logp, labels], interp=True),
                               ref.nll_loss(logp, labels), rtol=1e-6)
    dlogp = run([L], S.nll_loss_backward(L, 3, 4), [labels], interp=True)
    np.testing.assert_allclose(dlogp, ref.nll_loss_backward(labels, 3, 4), rtol=1e-6)
    dLP = te.placeholder((3, 4), name="dlogp")
    np.testing.assert_allclose(run([dLP, LP], S.log_softmax_backward(dLP, LP), [dlogp, logp], interp=True),
                               ref.log_softmax_backward(dlogp, logp), rtol=RTOL, atol=1e-6)


def test_nll_loss_out_of_range_label_is_nan_not_a_crash():
    LP, L = te.placeholder((3, 4), name="logp"), te.placeholder((3,), "int32", name="labels")
    logp = np.full((3, 4), -1.0, np.float32)
    loss = run([LP, L], S.nll_loss(LP, L), [logp, np.array([0, 4, -1], np.int32)])
    assert np.isnan(loss[0])
    dlogp = run([L], S.nll_loss_backward(L, 3, 4), [np.array([0, 4, 1], np.int32)])
    np.testing.assert_array_equal(dlogp[1], 0.0)                  # no gradient for the bad row
    with pytest.raises(LoopcError, match="int32"):
        S.nll_loss(LP, te.placeholder((3,), "float32", name="labels"))


# --------------------------------------------------------------------------- dispatch


def test_every_backward_op_has_a_template():
    """schedules.schedule dispatches each backward op to its template: the output stage (or a
    helper) ends up split, fused or annotated, never in the default loop nest."""
    dY, W, X = (te.placeholder((2, 4, 9, 9), name="dY"), te.placeholder((4, 3, 3, 3), name="W"),
                te.placeholder((2, 3, 11, 11), name="X"))
    P4 = te.placeholder((2, 3, 22, 22), name="P")
    dP = te.placeholder((2, 3, 11, 11), name="dP")
    D2, W2, X2 = te.placeholder((5, 7), name="d"), te.placeholder((7, 3), name="w"), te.placeholder((5, 3), name="x")
    L = te.placeholder((5,), "int32", name="labels")
    outs = [S.conv2d_backward_data(dY, W, (2, 3, 11, 11)), S.conv2d_backward_weight(dY, X, (4, 3, 3, 3)),
            S.max_pool2d_backward(dP, P4, 2), S.relu_backward(dP, X), S.bias_backward(dY),
            S.dense_backward_data(D2, W2), S.dense_backward_weight(D2, X2), S.nll_loss_backward(L, 5, 7),
            S.log_softmax_backward(D2, D2)]
    for out in outs:
        s = schedule(out)
        touched = [st for st in s.stages if st.relations or st.iter_kinds or st.attach.value != "root"]
        assert touched, f"{out.op.tag}: no template applied"
    dY1, X1 = te.placeholder((1, 2, 5, 5), name="dY"), te.placeholder((1, 1, 7, 7), name="X")
    with pytest.warns(S.NoTunedRecordWarning, match=r"conv2d_backward_weight\(.*kernel_shape=\(2, 1, 3, 3\)"):
        S.schedule(S.conv2d_backward_weight(dY1, X1, (2, 1, 3, 3)))
