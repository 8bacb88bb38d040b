"""``torch.compile(backend="loopc")`` operator by operator, against eager PyTorch.

Every case runs an operator (a functional call, or a small module) twice from the same seeded
inputs — compiled by the loopc backend and eagerly — and compares the outputs (rtol 1e-4) and
the gradients of every input (and parameter) that requires grad (rtol 2e-3) under the same random
upstream gradient. ``loopc.torch.explain`` then has to show that the operators ran on loopc:
any op that fell back to PyTorch fails the case unless the case names it in ``allow`` (a known,
deliberate fallback such as dropout's random mask). Shapes are odd on purpose: primes, ones,
strides and paddings that divide nothing.
"""
import copy
import random

import pytest

torch = pytest.importorskip("torch")
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from loopc.torch.backend import explain  # noqa: E402
from loopc.torch.graph import Report  # noqa: E402

OUT_TOL = dict(rtol=1e-4, atol=1e-5)
GRAD_TOL = dict(rtol=2e-3, atol=1e-4)


@pytest.fixture(autouse=True)
def fresh_dynamo():
    """Each case compiles from scratch (no guard or recompile state from the previous one)."""
    torch._dynamo.reset()
    torch.manual_seed(0)
    yield
    torch._dynamo.reset()


def randn(*shape, grad=True, scale=1.0):
    return (torch.randn(shape) * scale).requires_grad_(grad)


def _copies(inputs):
    return [x.detach().clone().requires_grad_(x.requires_grad) if isinstance(x, torch.Tensor) else x
            for x in inputs]


def _needs_grad(fn, inputs):
    params = list(fn.parameters()) if isinstance(fn, nn.Module) else []
    return any(isinstance(x, torch.Tensor) and x.requires_grad for x in list(inputs) + params)


def check(fn, *inputs, allow=(), backward=True, seed=1234):
    """``fn`` compiled by loopc against eager ``fn``: output, every input's (and parameter's)
    gradient, and the explain() report, which must show no fallback but the ``allow``ed ops.
    Returns (report, the compiled copy of ``fn``) — a module's buffers can be compared after."""
    backward = backward and _needs_grad(fn, inputs)
    report = Report()
    ours = copy.deepcopy(fn) if isinstance(fn, nn.Module) else fn
    compiled = torch.compile(ours, backend="loopc", options={"report": report})
    a, b = _copies(inputs), _copies(inputs)
    torch.manual_seed(seed)
    y = compiled(*a)
    torch.manual_seed(seed)
    want = fn(*b)
    torch.testing.assert_close(y, want, **OUT_TOL, msg=lambda m: f"output: {m}")
    if backward:
        dy = torch.randn(want.shape, generator=torch.Generator().manual_seed(seed))
        y.backward(dy)
        want.backward(dy)
        for n, (x1, x2) in enumerate(zip(a, b)):
            if isinstance(x2, torch.Tensor) and x2.requires_grad:
                torch.testing.assert_close(x1.grad, x2.grad, **GRAD_TOL, msg=lambda m, n=n: f"grad of input {n}: {m}")
        if isinstance(fn, nn.Module):
            for (name, p1), (_, p2) in zip(ours.named_parameters(), fn.named_parameters()):
                if p2.requires_grad:
                    torch.testing.assert_close(p1.grad, p2.grad, **GRAD_TOL, msg=lambda m, k=name: f"grad of {k}: {m}")
    fell_back = set(report.fallback) - set(allow)
    assert not fell_back, f"fell back to PyTorch:\n{report}"
    assert report.loopc_nodes > 0, str(report)
    assert report.graphs >= (2 if backward else 1), str(report)
    return report, ours


# --------------------------------------------------------------------------- convolution

def _conv_out(size, k, s, p, d):
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def random_conv(rng, groups_kind="dense"):
    """A random legal conv2d: (x shape, w shape, stride, padding, dilation, groups)."""
    if groups_kind == "depthwise":
        C = rng.choice([1, 3, 5])
        K, groups = C * rng.choice([1, 2]), C
    elif groups_kind == "grouped":
        groups = rng.choice([2, 3])
        C, K = groups * rng.choice([1, 2]), groups * rng.choice([1, 2])
    else:
        C, K, groups = rng.choice([1, 2, 3, 5]), rng.choice([1, 3, 4]), 1
    kh, kw = rng.choice([1, 2, 3, 5]), rng.choice([1, 3])
    stride = (rng.randint(1, 3), rng.randint(1, 3)) if rng.random() < 0.5 else rng.randint(1, 3)
    padding = (rng.randint(0, 2), rng.randint(0, 2)) if rng.random() < 0.5 else rng.randint(0, 2)
    dilation = rng.choice([1, 1, 2])
    while True:
        H, W = rng.choice([1, 5, 7, 11]), rng.choice([1, 6, 9, 13])
        s2, p2 = (stride, stride) if isinstance(stride, int) else stride, \
            (padding, padding) if isinstance(padding, int) else padding
        if _conv_out(H, kh, s2[0], p2[0], dilation) >= 1 and _conv_out(W, kw, s2[1], p2[1], dilation) >= 1:
            break
    return (rng.choice([1, 2]), C, H, W), (K, C // groups, kh, kw), stride, padding, dilation, groups


@pytest.mark.parametrize("seed", range(6))
def test_conv2d_random_geometries_forward_and_backward(seed):
    rng = random.Random(seed)
    xs, ws, stride, padding, dilation, groups = random_conv(rng)
    bias = rng.random() < 0.7
    x, w = randn(*xs), randn(*ws)
    args = (x, w, randn(ws[0])) if bias else (x, w)

    def conv(x, w, b=None):
        return F.conv2d(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups)
    check(conv, *args)


@pytest.mark.filterwarnings("ignore:Using padding=.same.")
@pytest.mark.parametrize("kw", [dict(padding="same"), dict(padding="same", dilation=2),
                                dict(padding="valid", stride=3), dict(padding=(2, 0), stride=(1, 3)),
                                dict(padding=1, stride=2, dilation=2)])
def test_conv2d_padding_modes(kw):
    # a 4x2 kernel: 'same' needs an uneven padding (PyTorch pads first: constant_pad_nd)
    check(lambda x, w, b: F.conv2d(x, w, b, **kw), randn(2, 3, 11, 13), randn(5, 3, 4, 2), randn(5))


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("kind", ["depthwise", "grouped"])
def test_grouped_and_depthwise_conv2d(kind, seed):
    """Forward on loopc; the backward of a grouped convolution falls back to PyTorch (allowed)
    but must still give the right gradients."""
    xs, ws, stride, padding, dilation, groups = random_conv(random.Random(100 + seed), kind)

    def conv(x, w, b):
        return F.conv2d(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups)
    allow = {"convolution_backward.default"} if groups > 1 else set()
    check(conv, randn(*xs), randn(*ws), randn(ws[0]), allow=allow)


def test_conv2d_module_with_batch_norm_and_relu():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.BatchNorm2d(4), nn.ReLU()).train()
    _, ours = check(model, randn(2, 3, 9, 7))
    # the compiled copy and the eager model ran one training forward each: same running stats
    torch.testing.assert_close(ours[1].running_mean, model[1].running_mean, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(ours[1].running_var, model[1].running_var, rtol=1e-4, atol=1e-4)


# --------------------------------------------------------------------------- matrix products

@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("x_shape", [(5, 7), (1, 7), (2, 3, 7)])
def test_linear(x_shape, bias):
    args = (randn(*x_shape), randn(3, 7)) + ((randn(3),) if bias else ())
    check(lambda x, w, b=None: F.linear(x, w, b), *args)


@pytest.mark.parametrize("fn, shapes", [
    (torch.mm, [(5, 7), (7, 3)]),
    (torch.mm, [(1, 7), (7, 1)]),
    (torch.matmul, [(2, 5, 7), (7, 3)]),
    (torch.matmul, [(3, 5, 7), (3, 7, 2)]),
    (torch.bmm, [(3, 5, 7), (3, 7, 2)]),
    (torch.bmm, [(1, 1, 7), (1, 7, 5)]),
], ids=["mm", "mm_1", "matmul_3d_2d", "matmul_batched", "bmm", "bmm_1"])
def test_matrix_products(fn, shapes):
    check(fn, *[randn(*s) for s in shapes])


def test_addmm():
    check(torch.addmm, randn(3), randn(5, 7), randn(7, 3))
    torch._dynamo.reset()
    check(torch.addmm, randn(5, 3), randn(5, 7), randn(7, 3))


@pytest.mark.parametrize("beta, alpha", [(0.5, 2.0), (1.0, -1.5)])
def test_addmm_with_beta_alpha_is_correct(beta, alpha):
    check(lambda c, a, b: torch.addmm(c, a, b, beta=beta, alpha=alpha), randn(5, 3), randn(5, 7), randn(7, 3))


def test_addmm_with_beta_alpha_runs_on_loopc():
    check(lambda c, a, b: torch.addmm(c, a, b, beta=0.5, alpha=2.0), randn(3), randn(5, 7), randn(7, 3),
          backward=False)


# --------------------------------------------------------------------------- batch norm

def _batch_norm(c, train):
    bn = nn.BatchNorm2d(c)
    with torch.no_grad():
        bn.weight.normal_()
        bn.bias.normal_()
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2.0)
    return bn.train(train)


def test_batch_norm_eval():
    check(_batch_norm(3, train=False), randn(2, 3, 5, 7))


@pytest.mark.parametrize("shape", [(2, 3, 5, 7), (1, 5, 3, 1)])
def test_batch_norm_train_updates_running_stats(shape):
    bn = _batch_norm(shape[1], train=True)
    _, ours = check(bn, randn(*shape))
    torch.testing.assert_close(ours.running_mean, bn.running_mean, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(ours.running_var, bn.running_var, rtol=1e-4, atol=1e-4)
    assert int(ours.num_batches_tracked) == int(bn.num_batches_tracked) == 1


# --------------------------------------------------------------------------- activations

ACTIVATIONS = {
    "relu": F.relu,
    "relu6": F.relu6,
    "hardtanh": lambda x: F.hardtanh(x, -0.5, 2.0),
    "leaky_relu": lambda x: F.leaky_relu(x, 0.2),
    "leaky_relu_default": F.leaky_relu,
    "gelu": F.gelu,
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "silu": F.silu,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "hardswish": F.hardswish,
    "hardsigmoid": F.hardsigmoid,
}


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_activation(name):
    # scaled so that every piece of the piecewise ones (relu6, hard*) is hit
    check(ACTIVATIONS[name], randn(3, 5, 7, scale=4.0))


def test_activation_modules_on_odd_shapes():
    check(nn.Sequential(nn.ReLU6(), nn.Hardswish(), nn.GELU(), nn.SiLU()), randn(1, 13, scale=4.0))
    torch._dynamo.reset()
    check(nn.Sequential(nn.LeakyReLU(0.3), nn.Hardsigmoid(), nn.Tanh()), randn(11, scale=4.0))


# --------------------------------------------------------------------------- arithmetic

BINARY = {
    "add_broadcast": (lambda a, b: a + b, [(3, 1, 7), (5, 1)]),
    "add_alpha": (lambda a, b: torch.add(a, b, alpha=2.5), [(3, 5, 7), (7,)]),
    "sub_broadcast": (lambda a, b: a - b, [(1, 5, 1), (3, 1, 7)]),
    "sub_alpha": (lambda a, b: torch.sub(a, b, alpha=0.5), [(5, 7), (5, 7)]),
    "mul_broadcast": (lambda a, b: a * b, [(3, 5, 7), (5, 1)]),
    "div_broadcast": (lambda a, b: a / (b * b + 0.5), [(3, 5, 7), (1, 7)]),
    "scalars": (lambda a: ((a + 2) * 3 - 1.5) / 4, [(3, 5)]),
    "scalar_on_left": (lambda a: 2.0 - 3.0 / (a * a + 1.0), [(3, 5)]),
    "scalar_0d_tensor": (lambda a, b: a * b + b, [(3, 5), ()]),
}


@pytest.mark.parametrize("name", list(BINARY))
def test_arithmetic(name):
    fn, shapes = BINARY[name]
    check(fn, *[randn(*s) for s in shapes])


def test_bitwise_ops_on_integers_are_bitwise_and_on_masks_logical():
    """``&``/``|``/``^``/``~`` of int64 tensors against eager (bit patterns, negatives), and of
    boolean masks, used to select values."""
    gen = torch.Generator().manual_seed(5)
    a, b = (torch.randint(-2**40, 2**40, (3, 7), generator=gen) for _ in range(2))
    check(lambda a, b: ((a & b) | (~a ^ b)) + (a ^ 12345), a, b, backward=False)
    x, y = randn(5, 3, grad=False), randn(5, 3, grad=False)
    check(lambda x, y: torch.where(((x > 0) & (y < 0)) | ~(x > y) ^ (y > 1.0), x, y * 2.0), x, y, backward=False)


# --------------------------------------------------------------------------- pooling

@pytest.mark.parametrize("args", [
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=(2, 3), stride=(3, 1), padding=(1, 0)),
    dict(kernel_size=2, stride=1),
    dict(kernel_size=3),
])
def test_max_pool2d(args):
    check(lambda x: F.max_pool2d(x, **args), randn(2, 3, 11, 13))


def test_max_pool2d_ceil_mode_runs_on_loopc():
    """ceil_mode (and dilation) used to fall back to PyTorch; the library's pooling runs them.
    8 rows, kernel 3, stride 2, ceil mode: 4 windows, the last one reaching past the input."""
    report, _ = check(lambda x: F.max_pool2d(x, 3, 2, ceil_mode=True).relu(), randn(1, 2, 8, 9))
    assert not report.fallback, str(report)
    report, _ = check(lambda x: F.max_pool2d(x, 3, 2, 1, dilation=2, ceil_mode=True), randn(1, 2, 10, 9))
    assert not report.fallback, str(report)


@pytest.mark.parametrize("pool", [F.max_pool2d, F.avg_pool2d])
def test_pool2d_ceil_mode_drops_a_window_starting_in_the_padding(pool):
    """PyTorch's last-window rule, which the library follows: 5 rows padded by 1, kernel 2,
    stride 2 round up to 4 windows, but the 4th would start in the trailing padding: 3."""
    assert _ceil_out(5, 2, 2, 1, 1, True) == 3 and pool(torch.zeros(1, 1, 5, 5), 2, 2, 1, ceil_mode=True).shape[-1] == 3
    check(lambda x: pool(x, 2, 2, 1, ceil_mode=True), randn(2, 3, 5, 7))


@pytest.mark.parametrize("pool", [F.max_pool2d, F.avg_pool2d])
def test_pool2d_ceil_mode_window_longer_than_the_input(pool):
    """Ceil mode counts a window that overhangs the padded input by less than the stride:
    1 row, kernel 2, stride 2 is one window (PyTorch's rule; the library's before this change: none)."""
    check(lambda x: pool(x, 2, 2, ceil_mode=True), randn(2, 3, 1, 5))
    check(lambda x: pool(x, (2, 4), 3, (0, 1), ceil_mode=True), randn(1, 2, 1, 1))      # padded too


def _ceil_out(size, k, s, p, d, ceil_mode):
    """PyTorch's pooling_output_shape: ceil mode drops a last window starting in the trailing padding."""
    span = size + 2 * p - d * (k - 1) - 1
    out = (span + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


def test_library_windows_follow_pytorchs_output_lengths():
    """The library's window count (``schedules.windows.Window.out``) is PyTorch's, ceil mode's
    last-window rule included, on every small geometry PyTorch accepts."""
    from loopc.schedules.windows import Window
    checked = 0
    for size in range(1, 11):
        for k in range(1, 5):
            for d in range(1, 4):
                for s in range(1, 4):
                    for p in range(k // 2 + 1):
                        for ceil_mode in (False, True):
                            try:
                                want = F.max_pool2d(torch.zeros(1, 1, 1, size), (1, k), (1, s), (0, p), (1, d),
                                                    ceil_mode).shape[-1]
                            except RuntimeError:
                                continue              # the window does not fit: PyTorch refuses
                            got = Window(size, k, s, d, p, p, ceil_mode).out
                            assert got == want == _ceil_out(size, k, s, p, d, ceil_mode), (size, k, s, p, d, ceil_mode)
                            checked += 1
    assert checked > 1000


def random_pool_geometry(rng, pool_type):
    """A seeded pooling call: kernel 1-4, stride 1-3, padding up to half the kernel (PyTorch's
    limit), dilation 1-3 (max), ceil_mode and count_include_pad either way, a divisor_override
    one time in three (avg); an input of 1-2 images, 1-3 channels, just large enough or larger."""
    kernel = tuple(int(k) for k in rng.integers(1, 5, 2))
    stride = tuple(int(s) for s in rng.integers(1, 4, 2))
    padding = tuple(int(rng.integers(0, k // 2 + 1)) for k in kernel)
    dilation = tuple(int(d) for d in rng.integers(1, 4, 2)) if pool_type == "max" else (1, 1)
    extent = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    hw = tuple(max(1, e - 2 * p) + int(rng.integers(0, 9)) for e, p in zip(extent, padding))
    args = dict(kernel_size=kernel, stride=stride, padding=padding, ceil_mode=bool(rng.integers(0, 2)))
    if pool_type == "max":
        args["dilation"] = dilation
    else:
        args["count_include_pad"] = bool(rng.integers(0, 2))
        args["divisor_override"] = int(rng.integers(1, 10)) if rng.integers(0, 3) == 0 else None
    shape = (int(rng.integers(1, 3)), int(rng.integers(1, 4))) + hw
    return args, shape


def _random_pool_case(pool_type, case):
    import numpy as np
    rng = np.random.default_rng(1000 * (pool_type == "max") + case)
    while True:
        args, shape = random_pool_geometry(rng, pool_type)
        k, st, p = args["kernel_size"], args["stride"], args["padding"]
        d = args.get("dilation", (1, 1))
        outs = [_ceil_out(shape[2 + a], k[a], st[a], p[a], d[a], args["ceil_mode"]) for a in range(2)]
        if min(outs) >= 1:
            return args, shape


def _kernel_tags(report):
    """The tags of every stage of the kernels a compile built."""
    from loopc.schedule import post_order_ops
    return {getattr(op, "tag", "") for outs in report.outputs for op in post_order_ops([t.op for t in outs])}


@pytest.mark.parametrize("case", range(10))
def test_max_pool2d_random_geometries(case):
    """Seeded geometries (dilation and ceil_mode included), forward and backward on loopc, and
    the indices max_pool2d_with_indices returns. Integer-valued inputs make ties: the value, the
    index and the gradient go to the window's first maximum, as in PyTorch."""
    args, shape = _random_pool_case("max", case)
    x = randn(*shape)
    if case % 2:
        x = torch.randint(-2, 3, shape, generator=torch.Generator().manual_seed(case)).float().requires_grad_()
    report, _ = check(lambda x: F.max_pool2d(x, **args), x)
    assert {"max_pool2d", "max_pool2d_backward"} <= _kernel_tags(report)       # the library's ops
    torch._dynamo.reset()
    report, _ = check(lambda x: F.max_pool2d(x, **args, return_indices=True), x.detach(), backward=False)
    assert not report.fallback, str(report)


@pytest.mark.parametrize("case", range(10))
def test_avg_pool2d_random_geometries(case):
    """Seeded geometries (ceil_mode, count_include_pad, divisor_override), forward and backward on loopc."""
    args, shape = _random_pool_case("avg", case)
    report, _ = check(lambda x: F.avg_pool2d(x, **args), randn(*shape))
    assert {"avg_pool2d", "avg_pool2d_backward"} <= _kernel_tags(report)       # the library's ops


def test_pool_random_geometries_cover_the_options():
    """The seeded cases above hold every option that used to fall back or has a path of its own."""
    maxes = [_random_pool_case("max", c)[0] for c in range(10)]
    avgs = [_random_pool_case("avg", c)[0] for c in range(10)]
    assert any(a["ceil_mode"] and max(a["dilation"]) > 1 for a in maxes)
    assert any(a["ceil_mode"] for a in avgs) and any(not a["count_include_pad"] for a in avgs)
    assert any(a["divisor_override"] for a in avgs)
    assert any(a["divisor_override"] and a["ceil_mode"] for a in avgs)


@pytest.mark.parametrize("args", [
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
    dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
    dict(kernel_size=(2, 3), stride=(1, 2), padding=(1, 0), count_include_pad=False),
    dict(kernel_size=2, ceil_mode=True),
    dict(kernel_size=3, padding=1, divisor_override=5),
])
def test_avg_pool2d(args):
    check(lambda x: F.avg_pool2d(x, **args), randn(2, 3, 11, 13))


@pytest.mark.parametrize("size, x_shape", [((1, 1), (2, 3, 11, 13)), ((3, 5), (2, 3, 9, 10)),
                                           ((4, 7), (2, 3, 11, 13)), ((6, 9), (1, 2, 5, 7))])
def test_adaptive_avg_pool2d(size, x_shape):
    report, _ = check(lambda x: F.adaptive_avg_pool2d(x, size), randn(*x_shape))
    if size != (1, 1):              # PyTorch makes a 1x1 adaptive average a mean
        assert "adaptive_pool" in _kernel_tags(report)                          # the library's op


# --------------------------------------------------------------------------- reductions, shapes

@pytest.mark.parametrize("keepdim", [False, True])
@pytest.mark.parametrize("dims", [(1, 3), -1, (0, 2), (0, 1, 2, 3)])
@pytest.mark.parametrize("op", ["mean", "sum"])
def test_reductions(op, dims, keepdim):
    check(lambda x: getattr(x, op)(dims, keepdim=keepdim), randn(2, 3, 5, 7))


def test_full_reductions():
    check(lambda x: x.mean() + x.sum(), randn(3, 5, 7))


def test_views_feeding_kernels():
    """flatten / view / permute / transpose read by loopc kernels (strided views made contiguous)."""
    x = randn(2, 3, 5, 7)
    check(lambda x: x.flatten(1) * 2.0, x)
    torch._dynamo.reset()
    check(lambda x: x.view(6, 35).sum(0) + 1.0, x)
    torch._dynamo.reset()
    check(lambda x: torch.sigmoid(x.permute(0, 2, 3, 1)), x)
    torch._dynamo.reset()
    check(lambda x: x.transpose(1, 3) * x.transpose(1, 3), x)


def test_reshape_of_a_permuted_view():
    """reshape after permute needs a contiguous copy (a clone of a view: a loopc kernel copies it)."""
    x = randn(2, 3, 5, 7)
    check(lambda x: (x.permute(0, 2, 3, 1).reshape(2, -1) * 3.0).relu(), x)
    torch._dynamo.reset()
    check(lambda x: torch.cat([x.flatten(1), x.transpose(1, 3).reshape(2, -1)], 1) - 1.0, x)


@pytest.mark.parametrize("dim, shapes", [(1, [(2, 3, 5), (2, 4, 5)]), (-1, [(2, 3, 5), (2, 3, 1), (2, 3, 2)]),
                                         (0, [(1, 3), (4, 3)])])
def test_cat(dim, shapes):
    inputs = [randn(*s) for s in shapes]
    check(lambda *xs: torch.cat([x * (n + 1) for n, x in enumerate(xs)], dim), *inputs)


def test_cat_with_an_empty_part_falls_back_cleanly():
    """A zero-size tensor cannot be a loopc kernel's argument: cat runs in PyTorch, the rest on loopc."""
    report, _ = check(lambda a, e, b: torch.cat([a, e, b]) * 2.0, randn(7), randn(0, grad=False), randn(2),
                      allow={"cat.default"})
    assert report.reasons["cat.default"] == "a zero-size tensor"


def test_clone_of_a_view_of_an_input_is_a_copy():
    x = torch.randn(3, 4)
    y = torch.compile(lambda x: x.view(-1).clone(), backend="loopc")(x)
    assert y.data_ptr() != x.data_ptr()
    y.add_(1.0)
    assert torch.equal(y, x.view(-1) + 1.0)


def test_constant_pad():
    check(lambda x: F.pad(x, (1, 2, 0, 3), value=0.5), randn(2, 3, 5, 7))
    torch._dynamo.reset()
    check(lambda x: F.pad(x, (-1, 2, -2, 0)), randn(2, 3, 5, 7))


# --------------------------------------------------------------------------- softmax, losses

@pytest.mark.parametrize("dim", [0, 1, -1])
@pytest.mark.parametrize("fn", [F.softmax, F.log_softmax], ids=["softmax", "log_softmax"])
def test_softmax(fn, dim):
    check(lambda x: fn(x, dim), randn(3, 5, 7, scale=3.0))


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("loss", ["nll_loss", "cross_entropy"])
def test_classification_losses(loss, reduction):
    logits = randn(7, 5, scale=2.0)
    labels = torch.randint(0, 5, (7,), dtype=torch.int64)
    if loss == "nll_loss":
        check(lambda x, t: F.nll_loss(F.log_softmax(x, 1), t, reduction=reduction), logits, labels)
    else:
        check(lambda x, t: F.cross_entropy(x, t, reduction=reduction), logits, labels)


def test_cross_entropy_ignores_ignore_index():
    labels = torch.tensor([1, -100, 4, 0, -100], dtype=torch.int64)
    check(lambda x, t: F.cross_entropy(x, t), randn(5, 5), labels)


def test_cross_entropy_of_a_batch_of_one():
    check(lambda x, t: F.cross_entropy(x, t), randn(1, 3), torch.tensor([2]))


# --------------------------------------------------------------------------- dropout

def test_dropout_eval_is_identity():
    model = nn.Sequential(nn.Dropout(0.4), nn.ReLU()).eval()
    report, _ = check(model, randn(3, 5, 7))
    assert "native_dropout.default" not in report.fallback


def test_dropout_train_uses_pytorchs_mask():
    """The mask is PyTorch's (native_dropout falls back: loopc has no RNG); the same seed gives the
    same mask, and the backward (native_dropout_backward) runs on loopc."""
    report, _ = check(lambda x: F.dropout(x, 0.3, training=True) * 2.0, randn(3, 5, 7),
                      allow={"native_dropout.default"})
    assert set(report.fallback) == {"native_dropout.default"}


# --------------------------------------------------------------------------- the report itself

def test_explain_reports_what_check_saw():
    """check() reads the Report that explain() fills (the backend's "report" option; one compile per
    case instead of two): on a small network both say the same."""
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(4 * 3 * 2, 5)).train()
    x, labels = randn(2, 3, 7, 5), torch.tensor([4, 0])

    def step(x, t):
        return F.cross_entropy(model(x), t)
    seen, _ = check(step, x, labels)
    torch._dynamo.reset()
    report = explain(step, *_copies([x, labels]), backward=True)
    assert not report.fallback, str(report)
    assert (report.loopc_nodes, report.kernels, report.graphs) == (seen.loopc_nodes, seen.kernels, seen.graphs)


def test_explain_names_what_fell_back_and_why():
    report = explain(lambda x: torch.cumsum(x, 0).relu(), randn(3, 5))
    assert report.fallback["cumsum.default"] == 1 and report.reasons["cumsum.default"]
    assert report.loopc_nodes >= 1
