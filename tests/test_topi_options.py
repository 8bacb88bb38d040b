"""TOPI's operator options (issue 16, item 8): conv2d and pooling with asymmetric and
"SAME"/"VALID" padding; pool1d / pool2d / pool3d with ceil_mode, dilation,
count_include_pad=False and channels-last layouts; adaptive pooling; the pooling gradients
(``pool_grad``, ``avg_pool2d_backward``, ``max_pool2d_backward``).

Each op is built through its default template (``schedules.schedule``) on the LLVM target and
checked against PyTorch (forward, and autograd for the gradients) on seeded random geometries
over odd sizes; the numpy references of ``loopc.schedules.testing`` against the same values;
a few cases through the reference interpreter, and one case per op family in numba's CUDA
simulator (a subprocess).
"""
import warnings

import numpy as np
import pytest

import loopc
import loopc.interp
from loopc import te
from loopc import schedules as S
from loopc.errors import LoopcError, UnsupportedError
from loopc.schedules import registry
from loopc.schedules import testing as ref

torch = pytest.importorskip("torch")
F = torch.nn.functional

TOL = dict(rtol=1e-5, atol=1e-5)
#: channels-last layouts of each rank, and the permutation from channels-first to it
CHANNELS_LAST = {1: ("NWC", (0, 2, 1)), 2: ("NHWC", (0, 2, 3, 1)), 3: ("NDHWC", (0, 2, 3, 4, 1))}
TORCH_MAX = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
TORCH_AVG = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}
TORCH_ADAPTIVE = {(1, "avg"): F.adaptive_avg_pool1d, (2, "avg"): F.adaptive_avg_pool2d,
                  (3, "avg"): F.adaptive_avg_pool3d, (1, "max"): F.adaptive_max_pool1d,
                  (2, "max"): F.adaptive_max_pool2d, (3, "max"): F.adaptive_max_pool3d}


def schedule(out, target="llvm"):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", S.NoTunedRecordWarning)
        return S.schedule(out, target=target)


def run(inputs, out, arrays, interp=False):
    """``out`` built with its default schedule (LLVM, or lowered for the interpreter)."""
    result = np.full(out.shape, np.nan, dtype=out.dtype)
    s, args = schedule(out), [*inputs, out]
    if interp:
        loopc.interp.run(loopc.lower(s, args), *arrays, result)
    else:
        loopc.build(s, args)(*arrays, result)
    return result


def rand(rng, shape):
    return rng.standard_normal(shape).astype(np.float32)


def to_layout(x, layout_perm):
    return np.ascontiguousarray(x.transpose(layout_perm)) if layout_perm else x


def random_pool(rng, nd, pool_type):
    """A geometry PyTorch accepts: kernel 1-4, stride 1-3, symmetric padding up to half the
    kernel, dilation 1-2 (max pooling only), ceil_mode and count_include_pad either way."""
    kernel = tuple(int(k) for k in rng.integers(1, 5, nd))
    stride = tuple(int(s) for s in rng.integers(1, 4, nd))
    padding = tuple(int(rng.integers(0, k // 2 + 1)) for k in kernel)
    dilation = tuple(int(d) for d in rng.integers(1, 3, nd)) if pool_type == "max" else (1,) * nd
    return dict(kernel=kernel, stride=stride, padding=padding, dilation=dilation,
                ceil_mode=bool(rng.integers(2)), count_include_pad=bool(rng.integers(2)))


def torch_pool(x, nd, pool_type, g):
    t = x if isinstance(x, torch.Tensor) else torch.from_numpy(x)
    if pool_type == "max":
        return TORCH_MAX[nd](t, g["kernel"], g["stride"], g["padding"], g["dilation"], ceil_mode=g["ceil_mode"])
    return TORCH_AVG[nd](t, g["kernel"], g["stride"], g["padding"], ceil_mode=g["ceil_mode"],
                         count_include_pad=g["count_include_pad"])


def loopc_pool(X, nd, pool_type, g, layout):
    fn = {1: S.pool1d, 2: S.pool2d, 3: S.pool3d}[nd]
    return fn(X, g["kernel"], g["stride"], g["dilation"], g["padding"], pool_type, g["ceil_mode"], layout,
              g["count_include_pad"])


# --------------------------------------------------------------------------- pooling vs PyTorch

SHAPES = {1: (2, 3, 17), 2: (2, 3, 11, 13), 3: (1, 2, 7, 9, 5)}


@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("pool_type", ["max", "avg"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_pool_random_geometries_vs_torch(nd, pool_type, channels_last):
    """Seeded random kernel / stride / padding / dilation / ceil_mode / count_include_pad
    combinations, channels first and last: loopc == PyTorch == the numpy reference."""
    rng = np.random.default_rng(100 * nd + 10 * (pool_type == "max") + channels_last)
    x = rand(rng, SHAPES[nd])
    layout, perm = CHANNELS_LAST[nd] if channels_last else ("NC" + "DHW"[-nd:], None)
    xl = to_layout(x, perm)
    X = te.placeholder(xl.shape, name="X")
    for _ in range(3 if nd < 3 else 2):
        g = random_pool(rng, nd, pool_type)
        want = to_layout(torch_pool(x, nd, pool_type, g).numpy(), perm)
        Y = loopc_pool(X, nd, pool_type, g, layout)
        np.testing.assert_allclose(run([X], Y, [xl]), want, **TOL, err_msg=str(g))
        got_ref = ref.pool(xl, g["kernel"], g["stride"], g["dilation"], g["padding"], pool_type, g["ceil_mode"],
                           layout, g["count_include_pad"])
        np.testing.assert_allclose(got_ref, want, **TOL, err_msg=str(g))


def test_max_and_avg_pool2d_take_the_new_options():
    """The library's PyTorch-style max_pool2d / avg_pool2d: ceil_mode, dilation, count_include_pad."""
    rng = np.random.default_rng(3)
    x = rand(rng, (2, 3, 10, 7))
    X = te.placeholder(x.shape, name="X")
    t = x if isinstance(x, torch.Tensor) else torch.from_numpy(x)
    got = run([X], S.max_pool2d(X, (3, 2), (2, 3), (1, 1), dilation=(2, 1), ceil_mode=True), [x])
    np.testing.assert_allclose(got, F.max_pool2d(t, (3, 2), (2, 3), 1, (2, 1), ceil_mode=True).numpy(), **TOL)
    got = run([X], S.avg_pool2d(X, 3, 2, 1, ceil_mode=True, count_include_pad=False), [x])
    np.testing.assert_allclose(got, F.avg_pool2d(t, 3, 2, 1, ceil_mode=True, count_include_pad=False).numpy(), **TOL)


@pytest.mark.parametrize("pool_type", ["max", "avg"])
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_pool2d_asymmetric_padding(pool_type, layout):
    """TOPI's (top, left, bottom, right): PyTorch pads explicitly (with -inf for max, zeros
    for a count_include_pad average), then pools without padding."""
    rng = np.random.default_rng(5)
    x = rand(rng, (2, 3, 9, 10))
    perm = (0, 2, 3, 1) if layout == "NHWC" else None
    xl = to_layout(x, perm)
    X = te.placeholder(xl.shape, name="X")
    for pads, kernel, stride in (((1, 0, 0, 1), 3, 2), ((0, 2, 1, 0), (2, 4), (1, 3)), ((1, 1, 0, 0), 2, 1)):
        top, left, bottom, right = pads
        fill = -np.inf if pool_type == "max" else 0.0
        tp = F.pad(torch.from_numpy(x), (left, right, top, bottom), value=fill)
        want = (F.max_pool2d if pool_type == "max" else F.avg_pool2d)(tp, kernel, stride).numpy()
        Y = S.pool2d(X, kernel, stride, 1, pads, pool_type, layout=layout)
        np.testing.assert_allclose(run([X], Y, [xl]), to_layout(want, perm), **TOL, err_msg=str(pads))


def test_pool2d_same_and_valid_padding():
    """"SAME" pads the window minus one, the odd one on top / left (TOPI), "VALID" nothing."""
    rng = np.random.default_rng(6)
    x = rand(rng, (1, 2, 8, 7))
    X = te.placeholder(x.shape, name="X")
    same = S.pool2d(X, (4, 3), 1, 1, "SAME", "max")
    assert same.shape == x.shape and same.op.attrs["padding"] == (2, 1, 1, 1)
    tp = F.pad(torch.from_numpy(x), (1, 1, 2, 1), value=-np.inf)
    np.testing.assert_allclose(run([X], same, [x]), F.max_pool2d(tp, (4, 3), 1).numpy(), **TOL)
    valid = S.pool2d(X, 3, 2, 1, "valid", "avg")
    np.testing.assert_allclose(run([X], valid, [x]), F.avg_pool2d(torch.from_numpy(x), 3, 2).numpy(), **TOL)


@pytest.mark.parametrize("count_include_pad", [True, False])
def test_dilated_average_pooling_vs_a_torch_convolution(count_include_pad):
    """Average pooling with dilation (TOPI has it, PyTorch's avg_pool does not): the window
    sums are a depthwise convolution by a dilated all-ones kernel, the divisors the same
    convolution of a mask of the (padded) input; ceil_mode's extra windows padded further."""
    rng = np.random.default_rng(7)
    x = rand(rng, (2, 3, 13, 10))
    (kh, kw), (sh, sw), (dh, dw), (top, left, bottom, right) = (3, 2), (2, 3), (2, 3), (2, 1, 1, 2)
    X = te.placeholder(x.shape, name="X")
    Y = S.pool2d(X, (kh, kw), (sh, sw), (dh, dw), (top, left, bottom, right), "avg", True, "NCHW", count_include_pad)
    P, Q = Y.shape[2:]
    extra_h = max(0, (P - 1) * sh + (kh - 1) * dh + 1 - (13 + top + bottom))   # ceil mode's last window
    extra_w = max(0, (Q - 1) * sw + (kw - 1) * dw + 1 - (10 + left + right))
    t = torch.from_numpy(x)
    inside = F.pad(torch.ones_like(t), (left, right + extra_w, top, bottom + extra_h))
    padded = F.pad(F.pad(torch.ones_like(t), (left, right, top, bottom), value=1.0), (0, extra_w, 0, extra_h))
    ones = torch.ones(3, 1, kh, kw)

    def window_sum(a):
        return F.conv2d(a, ones, stride=(sh, sw), dilation=(dh, dw), groups=3)
    total = window_sum(F.pad(t, (left, right + extra_w, top, bottom + extra_h)))
    want = (total / window_sum(padded if count_include_pad else inside)).numpy()
    assert want.shape == tuple(Y.shape)
    np.testing.assert_allclose(run([X], Y, [x]), want, **TOL)


# --------------------------------------------------------------------------- adaptive pooling


@pytest.mark.parametrize("nd,shape,output_size", [
    (1, (2, 3, 13), 5), (2, (2, 3, 11, 7), (4, 3)), (2, (1, 2, 9, 9), (3, None)), (2, (1, 2, 5, 3), (7, 4)),
    (2, (1, 2, 9, 7), (3, 3)),                     # one axis divides evenly, the other not
    (3, (1, 2, 7, 5, 6), (3, 2, 4)),
])
@pytest.mark.parametrize("pool_type", ["avg", "max"])
def test_adaptive_pool_vs_torch(nd, shape, output_size, pool_type):
    """Non-divisible sizes (overlapping windows), an output larger than the input, None keeps an axis."""
    rng = np.random.default_rng(sum(shape))
    x = rand(rng, shape)
    t_size = output_size if not isinstance(output_size, tuple) else tuple(output_size)
    want = TORCH_ADAPTIVE[(nd, pool_type)](torch.from_numpy(x), t_size)
    want = (want[0] if isinstance(want, tuple) else want).numpy()
    fn = {1: S.adaptive_pool1d, 2: S.adaptive_pool, 3: S.adaptive_pool3d}[nd]
    for layout, perm in (("NC" + "DHW"[-nd:], None), CHANNELS_LAST[nd]):
        xl = to_layout(x, perm)
        X = te.placeholder(xl.shape, name="X")
        Y = fn(X, output_size, pool_type, layout)
        np.testing.assert_allclose(run([X], Y, [xl]), to_layout(want, perm), **TOL, err_msg=layout)
        np.testing.assert_allclose(ref.adaptive_pool(xl, output_size, pool_type, layout), to_layout(want, perm), **TOL)


# --------------------------------------------------------------------------- gradients vs autograd


def torch_grad(x, dy_seed, forward):
    tx = torch.tensor(x, requires_grad=True)
    ty = forward(tx)
    dy = rand(np.random.default_rng(dy_seed), tuple(ty.shape))
    ty.backward(torch.from_numpy(dy))
    return dy, tx.grad.numpy()


@pytest.mark.parametrize("pool_type", ["max", "avg"])
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_pool_grad_random_geometries_vs_autograd(pool_type, layout):
    rng = np.random.default_rng(40 + (pool_type == "max") + 2 * (layout == "NHWC"))
    x = rand(rng, (2, 3, 11, 9))
    perm = (0, 2, 3, 1) if layout == "NHWC" else None
    xl = to_layout(x, perm)
    X = te.placeholder(xl.shape, name="X")
    for i in range(3):
        g = random_pool(rng, 2, pool_type)
        dy, want = torch_grad(x, i, lambda t: torch_pool(t, 2, pool_type, g))
        dyl = to_layout(dy, perm)
        dY = te.placeholder(dyl.shape, name="dY")
        if pool_type == "max":
            dX = S.max_pool2d_backward(dY, X, g["kernel"], g["stride"], g["padding"], g["dilation"], g["ceil_mode"],
                                       layout)
            got = run([dY, X], dX, [dyl, xl])
        else:
            dX = S.pool_grad(dY, X, g["kernel"], g["stride"], g["padding"], "avg", g["ceil_mode"],
                             g["count_include_pad"], layout)
            got = run([dY], dX, [dyl])
        np.testing.assert_allclose(got, to_layout(want, perm), **TOL, err_msg=str(g))
        got_ref = ref.pool_grad(dyl, xl, g["kernel"], g["stride"], g["padding"], pool_type, g["ceil_mode"],
                                g["count_include_pad"], layout, g["dilation"])
        np.testing.assert_allclose(got_ref, to_layout(want, perm), **TOL, err_msg=str(g))


@pytest.mark.parametrize("pool_type", ["max", "avg"])
def test_ceil_mode_window_longer_than_the_padded_input(pool_type):
    """PyTorch's ceil mode counts a window that overhangs the padded input by less than the
    stride (1 element, kernel 2, stride 2: one window); the forward, the gradient and the numpy
    references agree with it."""
    rng = np.random.default_rng(60)
    for shape, kernel, stride, padding in (((2, 3, 1, 5), 2, 2, 0), ((1, 2, 1, 1), (2, 4), 3, (0, 1))):
        x = rand(rng, shape)
        X = te.placeholder(shape, name="X")
        pool = F.max_pool2d if pool_type == "max" else F.avg_pool2d
        want = pool(torch.from_numpy(x), kernel, stride, padding, ceil_mode=True).numpy()
        Y = S.pool2d(X, kernel, stride, 1, padding, pool_type, ceil_mode=True)
        np.testing.assert_allclose(run([X], Y, [x]), want, **TOL)
        np.testing.assert_allclose(ref.pool2d(x, kernel, stride, 1, padding, pool_type, True), want, **TOL)
        dy, dx = torch_grad(x, 1, lambda t: pool(t, kernel, stride, padding, ceil_mode=True))
        dY = te.placeholder(dy.shape, name="dY")
        dX = S.pool_grad(dY, X, kernel, stride, padding, pool_type, True)
        got = run([dY, X] if pool_type == "max" else [dY], dX, [dy, x] if pool_type == "max" else [dy])
        np.testing.assert_allclose(got, dx, **TOL)
        np.testing.assert_allclose(ref.pool_grad(dy, x, kernel, stride, padding, pool_type, True), dx, **TOL)


@pytest.mark.parametrize("pool_type", ["max", "avg"])
def test_pool_grad_asymmetric_padding_vs_autograd(pool_type):
    """TOPI's pool_grad with (top, left, bottom, right): autograd through an explicit pad."""
    rng = np.random.default_rng(50)
    x = rand(rng, (2, 2, 9, 8))
    X = te.placeholder(x.shape, name="X")
    for pads, kernel, stride in (((1, 0, 0, 1), 3, 2), ((0, 1, 1, 1), (2, 3), (2, 1))):
        top, left, bottom, right = pads
        fill = -np.inf if pool_type == "max" else 0.0
        pool = F.max_pool2d if pool_type == "max" else F.avg_pool2d
        dy, want = torch_grad(x, 1, lambda t: pool(F.pad(t, (left, right, top, bottom), value=fill), kernel, stride))
        dY = te.placeholder(dy.shape, name="dY")
        dX = S.pool_grad(dY, X, kernel, stride, pads, pool_type)
        got = run([dY, X] if pool_type == "max" else [dY], dX, [dy, x] if pool_type == "max" else [dy])
        np.testing.assert_allclose(got, want, **TOL, err_msg=str(pads))


def test_max_pool2d_backward_ties_go_to_the_first_maximum():
    """Few distinct values: most windows hold several maxima (padding 1, stride 1, ceil_mode)."""
    rng = np.random.default_rng(51)
    x = np.round(rand(rng, (1, 2, 7, 6))).astype(np.float32)
    dy, want = torch_grad(x, 2, lambda t: F.max_pool2d(t, 3, 2, 1, ceil_mode=True))
    X, dY = te.placeholder(x.shape, name="X"), te.placeholder(dy.shape, name="dY")
    got = run([dY, X], S.max_pool2d_backward(dY, X, 3, 2, 1, ceil_mode=True), [dy, x])
    np.testing.assert_allclose(got, want, **TOL)


# --------------------------------------------------------------------------- the interpreter


def test_new_ops_in_the_interpreter():
    """The same declarations through the reference interpreter (one small case each)."""
    rng = np.random.default_rng(60)
    x = rand(rng, (1, 2, 7, 6))
    X = te.placeholder(x.shape, name="X")
    Y = S.pool2d(X, 3, 2, 1, (1, 0, 1, 1), "avg", True, "NCHW", False)
    want = ref.pool2d(x, 3, 2, 1, (1, 0, 1, 1), "avg", True, "NCHW", False)
    np.testing.assert_allclose(run([X], Y, [x], interp=True), want, **TOL)
    A = S.adaptive_pool(X, (4, 4), "max")
    np.testing.assert_allclose(run([X], A, [x], interp=True), F.adaptive_max_pool2d(torch.from_numpy(x), 4).numpy())
    dy, want = torch_grad(x, 3, lambda t: F.avg_pool2d(t, 2, 2, 1, ceil_mode=True, count_include_pad=False))
    dY = te.placeholder(dy.shape, name="dY")
    dX = S.avg_pool2d_backward(dY, X, 2, 2, 1, ceil_mode=True, count_include_pad=False)
    np.testing.assert_allclose(run([dY], dX, [dy], interp=True), want, **TOL)
    xn = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    dy, want = torch_grad(x, 4, lambda t: F.max_pool2d(t, 3, 1, 1, dilation=2))
    dyn = np.ascontiguousarray(dy.transpose(0, 2, 3, 1))
    Xn, dY = te.placeholder(xn.shape, name="Xn"), te.placeholder(dyn.shape, name="dY")
    dX = S.max_pool2d_backward(dY, Xn, 3, 1, 1, dilation=2, layout="NHWC")
    got = run([dY, Xn], dX, [dyn, xn], interp=True)
    np.testing.assert_allclose(got, want.transpose(0, 2, 3, 1), **TOL)
    w = rand(rng, (3, 2, 3, 2))
    Wt = te.placeholder(w.shape, name="W")
    want = F.conv2d(F.pad(torch.from_numpy(x), (0, 1, 1, 2)), torch.from_numpy(w), stride=2).numpy()
    got = run([X, Wt], S.conv2d_nchw(X, Wt, 2, (1, 0, 2, 1)), [x, w], interp=True)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


# --------------------------------------------------------------------------- conv2d padding


@pytest.mark.parametrize("seed", range(4))
def test_conv2d_asymmetric_same_valid_padding_vs_torch(seed):
    """conv2d_nchw with random (top, left, bottom, right), and "SAME" (TOPI: the dilated
    kernel - 1, the odd one on top / left) / "VALID": PyTorch pads explicitly."""
    rng = np.random.default_rng(70 + seed)
    N, C, H, W, K = 2, 3, int(rng.integers(5, 12)), int(rng.integers(5, 12)), 5
    R, S_ = (int(v) for v in rng.integers(1, 5, 2))
    stride, dilation = (int(v) for v in rng.integers(1, 3, 2))
    x, w = rand(rng, (N, C, H, W)), rand(rng, (K, C, R, S_))
    X, Wt = te.placeholder(x.shape, name="X"), te.placeholder(w.shape, name="W")
    eh, ew = (R - 1) * dilation + 1, (S_ - 1) * dilation + 1
    pads = tuple(int(p) for p in rng.integers(0, 3, 4))
    same = (eh // 2, ew // 2, (eh - 1) // 2, (ew - 1) // 2)
    for padding, (top, left, bottom, right) in ((pads, pads), ("SAME", same), ("VALID", (0, 0, 0, 0))):
        tp = F.pad(torch.from_numpy(x), (left, right, top, bottom))
        want = F.conv2d(tp, torch.from_numpy(w), stride=stride, dilation=dilation).numpy()
        Y = S.conv2d_nchw(X, Wt, stride, padding, dilation)
        np.testing.assert_allclose(run([X, Wt], Y, [x, w]), want, rtol=1e-4, atol=1e-4, err_msg=str(padding))
        np.testing.assert_allclose(ref.conv2d_nchw(x, w, stride, padding, dilation), want, rtol=1e-4, atol=1e-4)
        if padding == "SAME" and stride == 1:
            assert Y.shape == x.shape[:1] + (K,) + x.shape[2:]


# --------------------------------------------------------------------------- templates and bad options


def test_every_pool_tag_has_a_cpu_template():
    A, B = te.placeholder((1, 2, 9), name="A"), te.placeholder((1, 2, 6, 6), name="B")
    V = te.placeholder((1, 2, 6, 6, 6), name="V")
    dY = te.placeholder((1, 2, 3, 3), name="dY")
    outs = [S.pool1d(A, 2), S.pool2d(B, 2, pool_type="avg"), S.pool3d(V, 2), S.adaptive_pool(B, 3),
            S.pool_grad(dY, B, 2, 2, 0, "avg"), S.pool_grad(dY, B, 3, 2, 1, "max")]
    for Y in outs:
        assert registry.lookup(Y.op.tag, "llvm") is not None, Y.op.tag


def _error(fn):
    with pytest.raises(LoopcError) as info:
        fn()
    message = str(info.value)
    assert "\n" not in message, message
    return message


def test_bad_options_are_one_line_errors():
    X = te.placeholder((1, 2, 8, 8), name="X")
    assert "unknown layout 'NCHWX'" in _error(lambda: S.pool2d(X, 2, layout="NCHWX"))
    assert "unknown layout 'NCDW'" in _error(lambda: S.pool2d(X, 2, layout="NCDW"))
    with pytest.raises(UnsupportedError, match="packed layout"):
        S.pool2d(X, 2, layout="NCHW16c")
    assert "pool_type 'sum'" in _error(lambda: S.pool2d(X, 2, pool_type="sum"))
    assert "pool_type 'min'" in _error(lambda: S.pool_grad(X, X, 2, 2, 0, "min"))
    assert "more than half" in _error(lambda: S.pool2d(X, 3, 1, 1, 2))
    assert "more than half" in _error(lambda: S.pool2d(X, 3, 1, 1, (0, 0, 2, 0)))
    assert "more than half" in _error(lambda: S.max_pool2d_backward(X, X, 2, 1, (0, 0, 0, 2)))
    assert "unknown padding 'FULL'" in _error(lambda: S.pool2d(X, 3, padding="FULL"))
    assert "got (1, 1, 1)" in _error(lambda: S.pool2d(X, 3, padding=(1, 1, 1)))
    assert "negative" in _error(lambda: S.pool2d(X, 3, padding=(-1, 0)))
    assert "does not fit" in _error(lambda: S.pool2d(X, 9))
    assert "expected 4 dimensions" in _error(lambda: S.pool2d(te.placeholder((8, 8), name="Z"), 2))
    assert "output_size" in _error(lambda: S.adaptive_pool(X, (0, 2)))
    assert "stride" in _error(lambda: S.pool1d(te.placeholder((1, 2, 9), name="A"), 2, stride=0))
    assert "expected (1, 2, 4, 4)" in _error(lambda: S.pool_grad(te.placeholder((1, 2, 3, 3), name="dY"), X, 2, 2,
                                                                  0, "avg"))
    assert "unknown padding" in _error(lambda: S.conv2d_nchw(X, te.placeholder((3, 2, 3, 3), name="W"),
                                                             padding="HALF"))


# --------------------------------------------------------------------------- the CUDA target


def case_pooling_on_cuda():
    """One case per new op family on the CUDA target (the flat kernel), in the simulator."""
    rng = np.random.default_rng(80)

    def check(inputs, out, arrays, want):
        f = loopc.build(schedule(out, "cuda"), [*inputs, out], target="cuda")
        got = np.full(out.shape, np.nan, dtype=np.float32)
        f(*arrays, got)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4, err_msg=out.op.tag)

    x = rand(rng, (1, 5, 7, 3))                    # NHWC
    X = te.placeholder(x.shape, name="X")
    check([X], S.pool2d(X, 3, 2, 1, (1, 0, 1, 1), "avg", True, "NHWC", False), [x],
          ref.pool2d(x, 3, 2, 1, (1, 0, 1, 1), "avg", True, "NHWC", False))
    check([X], S.adaptive_pool(X, (3, 2), "max", "NHWC"), [x], ref.adaptive_pool(x, (3, 2), "max", "NHWC"))
    a = rand(rng, (1, 2, 11))
    A = te.placeholder(a.shape, name="A")
    check([A], S.pool1d(A, 3, 2, 2, 1, "max", True), [a], ref.pool1d(a, 3, 2, 2, 1, "max", True))
    v = rand(rng, (1, 2, 5, 4, 5))
    V = te.placeholder(v.shape, name="V")
    check([V], S.pool3d(V, 2, 2, 1, 1, "avg", True), [v], ref.pool3d(v, 2, 2, 1, 1, "avg", True))
    xc = rand(rng, (1, 2, 7, 6))
    Xc = te.placeholder(xc.shape, name="Xc")
    for pool_type in ("max", "avg"):
        y = ref.pool2d(xc, 3, 2, 1, 1, pool_type, True)
        dy = rand(rng, y.shape)
        dY = te.placeholder(dy.shape, name="dY")
        dX = S.pool_grad(dY, Xc, 3, 2, 1, pool_type, True, False)
        ins, arrs = ([dY, Xc], [dy, xc]) if pool_type == "max" else ([dY], [dy])
        check(ins, dX, arrs, ref.pool_grad(dy, xc, 3, 2, 1, pool_type, True, False))
    w = rand(rng, (3, 2, 3, 2))
    Wt = te.placeholder(w.shape, name="W")
    check([Xc, Wt], S.conv2d_nchw(Xc, Wt, 1, "SAME"), [xc, w], ref.conv2d_nchw(xc, w, 1, "SAME"))


def test_pooling_on_the_cuda_target():
    from test_cuda_sim import run_in_simulator
    proc = run_in_simulator("case_pooling_on_cuda", module="test_topi_options", timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("pool_type", ["max", "avg"])
def test_vectorized_and_parallel_templates(layout, pool_type):
    """Shapes that take the templates' vector and parallel paths: 19 channels (a vector of
    channels with a tail, NHWC), 9 output columns without padding (a vector of columns, NCHW),
    and enough outputs to run in parallel; with and without padding and ceil_mode."""
    rng = np.random.default_rng(90)
    x = rand(rng, (2, 19, 33, 31))
    perm = (0, 2, 3, 1) if layout == "NHWC" else None
    xl = to_layout(x, perm)
    X = te.placeholder(xl.shape, name="X")
    for kernel, stride, pad, ceil in ((3, 1, 1, False), (3, 3, 0, False), (2, 2, 1, True)):
        g = dict(kernel=kernel, stride=stride, padding=pad, dilation=1, ceil_mode=ceil, count_include_pad=False)
        want = to_layout(torch_pool(x, 2, pool_type, g).numpy(), perm)
        np.testing.assert_allclose(run([X], loopc_pool(X, 2, pool_type, g, layout), [xl]), want, **TOL,
                                   err_msg=str(g))


@pytest.mark.parametrize("pool_type", ["max", "avg"])
def test_a_wide_nchw_row_is_computed_a_vector_at_a_time(pool_type):
    """A 3/2/1 pool of 113 columns: 57 outputs per row, wider than two vectors, are split into
    vectors of outputs (with a masked tail) — not computed one at a time — and agree with torch."""
    rng = np.random.default_rng(91)
    x = rand(rng, (1, 3, 9, 113))
    X = te.placeholder(x.shape, name="X")
    g = dict(kernel=3, stride=2, padding=1, dilation=1, ceil_mode=False, count_include_pad=True)
    Y = loopc_pool(X, 2, pool_type, g, "NCHW")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = S.schedule(Y)
    text = str(loopc.lower(s, [X, Y]))
    assert "in vectorized(" in text, text
    np.testing.assert_allclose(run([X], Y, [x]), torch_pool(x, 2, pool_type, g).numpy(), **TOL)
