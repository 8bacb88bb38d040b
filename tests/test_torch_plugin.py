"""loopc.torch: drop-in torch.nn layers whose forward and backward run loopc kernels."""
import subprocess
import sys

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
    with pytest.raises(ValueError, match="groups=1"):
        lt.Conv2d(4, 4, 3, groups=2)
    with pytest.raises(ValueError, match="ceil_mode"):
        lt.MaxPool2d(2, ceil_mode=True)
    with pytest.raises(TypeError, match="float32"):
        lt.ReLU()(torch.zeros(3, dtype=torch.float64))


def test_zero_copy_inputs_and_outputs():
    relu = lt.ReLU()
    x = torch.randn(4, 5)
    seen = []
    from loopc.nn import runtime
    real = runtime.compile_op

    def spy(op, specs, attrs, target="llvm"):
        k = real(op, specs, attrs, target)
        seen.append(k)
        return k
    import loopc.torch.layers as mod
    mod.compile_op, saved = spy, mod.compile_op
    try:
        y = relu(x)
    finally:
        mod.compile_op = saved
    assert torch.equal(y, x.clamp(min=0)) and len(seen) == 1
    # the numpy view handed to the kernel is the tensor's own memory
    assert x.detach().contiguous().numpy().ctypes.data == x.data_ptr()


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
