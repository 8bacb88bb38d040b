"""loopc.torch: drop-in torch.nn layers whose forward and backward run loopc kernels."""
import subprocess
import sys
import warnings

import pytest

torch = pytest.importorskip("torch")
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from loopc import torch as lt  # noqa: E402


def check_layer(ours, theirs, x_shape, seed=0):
    """Same parameters, same input and upstream gradient: outputs and all gradients agree."""
    torch.manual_seed(seed)
    theirs.load_state_dict(ours.state_dict())
    x1 = torch.randn(*x_shape, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_(True)
    y1, y2 = ours(x1), theirs(x2)
    torch.testing.assert_close(y1, y2, rtol=1e-4, atol=1e-5)
    dy = torch.randn_like(y2)
    y1.backward(dy)
    y2.backward(dy)
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-4, atol=1e-5)
    for (name, p1), (_, p2) in zip(ours.named_parameters(), theirs.named_parameters()):
        torch.testing.assert_close(p1.grad, p2.grad, rtol=1e-4, atol=1e-4, msg=name)


@pytest.mark.parametrize("kw", [dict(stride=1, padding=0), dict(stride=2, padding=1, dilation=2),
                                dict(stride=(1, 2), padding=(2, 1), bias=False)])
def test_conv2d(kw):
    check_layer(lt.Conv2d(3, 4, 3, **kw), nn.Conv2d(3, 4, 3, **kw), (2, 3, 9, 11))


def test_linear_on_2d_and_3d_inputs():
    check_layer(lt.Linear(7, 5), nn.Linear(7, 5), (3, 7))
    check_layer(lt.Linear(7, 5), nn.Linear(7, 5), (2, 3, 7))
    check_layer(lt.Linear(7, 5, bias=False), nn.Linear(7, 5, bias=False), (4, 7))


@pytest.mark.parametrize("args", [(2,), (3, 2, 1), (3, 1)])
def test_maxpool2d(args):
    check_layer(lt.MaxPool2d(*args), nn.MaxPool2d(*args), (2, 3, 9, 11))


def test_relu():
    check_layer(lt.ReLU(), nn.ReLU(), (3, 4, 5))


def test_layers_are_torch_modules_with_torch_state():
    conv = lt.Conv2d(1, 6, 5, padding=2)
    assert isinstance(conv, nn.Conv2d) and "weight" in conv.state_dict()
    assert repr(conv) == repr(nn.Conv2d(1, 6, 5, padding=2))
    with pytest.raises(ValueError, match="padding_mode"):
        lt.Conv2d(4, 4, 3, padding_mode="reflect")
    with pytest.raises(ValueError, match="indices"):
        lt.MaxPool2d(2, return_indices=True)
    with pytest.raises(TypeError, match="float32"):
        lt.ReLU()(torch.zeros(3, dtype=torch.float64))


@pytest.mark.parametrize("make, shape", [
    (lambda m: m.Conv2d(4, 6, 3, groups=2, padding="same"), (2, 4, 7, 5)),
    (lambda m: m.Conv2d(3, 3, 3, groups=3, stride=2), (1, 3, 9, 8)),
    (lambda m: m.MaxPool2d(3, 2, ceil_mode=True), (2, 3, 10, 9)),
])
def test_layers_take_what_torch_takes(make, shape):
    """Grouped and 'same'-padded convolutions, ceil_mode pooling: loopc where it can, PyTorch for the
    rest (a grouped convolution's backward), the same numbers either way."""
    torch.manual_seed(3)
    check_layer(make(lt), make(nn), shape)


def test_layers_run_loopc_kernels():
    """The profile records the layers' loopc kernels, forward and backward."""
    import loopc
    torch.manual_seed(0)
    model = nn.Sequential(lt.Conv2d(2, 3, 3), lt.ReLU(), lt.MaxPool2d(2), nn.Flatten(), lt.Linear(12, 5))
    x = torch.randn(4, 2, 6, 6, requires_grad=True)
    with loopc.profile() as prof:
        model(x).sum().backward()
    labels = " ".join(e.label for e in prof.events)
    for op in ("convolution", "relu", "max_pool2d", "addmm", "convolution_backward", "threshold_backward"):
        assert op in labels, (op, labels)


def test_functional_forms_with_int64_labels():
    import loopc.torch.functional as LF
    torch.manual_seed(1)
    x = torch.randn(5, 7, requires_grad=True)
    w = torch.randn(3, 7, requires_grad=True)
    labels = torch.tensor([0, 2, 1, 1, 0])            # int64, as PyTorch's data loaders give them
    loss = LF.nll_loss(LF.log_softmax(LF.relu(LF.linear(x, w)), dim=1), labels)
    x2, w2 = x.detach().clone().requires_grad_(True), w.detach().clone().requires_grad_(True)
    ref = F.nll_loss(F.log_softmax(F.relu(F.linear(x2, w2)), dim=1), labels)
    torch.testing.assert_close(loss, ref, rtol=1e-5, atol=1e-6)
    loss.backward()
    ref.backward()
    torch.testing.assert_close(x.grad, x2.grad, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(w.grad, w2.grad, rtol=1e-4, atol=1e-6)


def test_tensorboard_graph_keeps_every_layer():
    """SummaryWriter.add_graph traces the model: every loopc layer is a node under its module scope."""
    pytest.importorskip("tensorboard")
    from torch.utils.tensorboard._pytorch_graph import graph
    model = nn.Sequential(lt.Conv2d(1, 6, 5, padding=2), lt.ReLU(), lt.MaxPool2d(2), nn.Flatten(),
                          lt.Linear(6 * 14 * 14, 10))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # the tracer's notes on Python values
        graph_def, _ = graph(model, (torch.randn(2, 1, 28, 28),))
    ops = [(n.name, n.op) for n in graph_def.node]
    for scope, op in (("Conv2d[0]", "aten::_convolution"), ("ReLU[1]", "aten::relu"),
                      ("MaxPool2d[2]", "aten::max_pool2d"), ("Linear[4]", "aten::linear")):
        assert (scope, op) in [(n.split("/")[1], o) for n, o in ops if n.count("/") >= 2], (scope, op, ops)


def chapter_lenet(mod):
    return nn.Sequential(mod.Conv2d(1, 6, 5, padding=2), mod.ReLU(), mod.MaxPool2d(2),
                         mod.Conv2d(6, 16, 5), mod.ReLU(), mod.MaxPool2d(2), nn.Flatten(),
                         mod.Linear(400, 120), mod.ReLU(), mod.Linear(120, 84), mod.ReLU(),
                         mod.Linear(84, 10), nn.LogSoftmax(dim=1))


def test_swapped_lenet_trains_like_pytorch():
    """The chapter's LeNet with its layers swapped for loopc.torch: same losses, step by step."""
    torch.manual_seed(0)
    ref = chapter_lenet(nn)
    ours = chapter_lenet(lt)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(8, 1, 28, 28)
    y = torch.randint(0, 10, (8,))
    opt_ref = torch.optim.Adadelta(ref.parameters(), lr=1.0)
    opt_ours = torch.optim.Adadelta(ours.parameters(), lr=1.0)
    for _ in range(4):
        losses = []
        for net, opt in ((ref, opt_ref), (ours, opt_ours)):
            opt.zero_grad()
            loss = F.nll_loss(net(x), y)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        assert losses[1] == pytest.approx(losses[0], rel=1e-4)
    for (k, a), (_, b) in zip(ref.state_dict().items(), ours.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-5, msg=k)


def test_import_without_torch_is_a_clear_error():
    code = ("import sys; sys.modules['torch'] = None\n"
            "try:\n    import loopc.torch\nexcept ImportError as e:\n    print('ERR', e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout
    assert "ERR loopc.torch needs PyTorch" in out and "loopc[torch]" in out
