"""torch.compile(model, backend="loopc") on whole models: inference and training agree with
eager PyTorch (outputs, losses, every gradient, batch-norm running statistics), unsupported
ops fall back and are counted, and the chapter's Net trains like eager."""
import copy
import os
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import loopc.torch  # noqa: E402,F401  (registers the backend)
from loopc.torch import explain  # noqa: E402
from loopc.torch.graph import Report  # noqa: E402
from loopc.apps.torchbench import BasicBlock  # noqa: E402  (ResNet's block, as the benchmark writes it)
from loopc.torch.models import ChapterNet  # noqa: E402


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def compiled(model, report=None):
    return torch.compile(model, backend="loopc", options={"report": report or Report()})


class SmallResNet(nn.Module):
    def __init__(self, classes=7):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.layers = nn.Sequential(BasicBlock(8, 8, 1), BasicBlock(8, 12, 2))
        self.fc = nn.Linear(12, classes)

    def forward(self, x):
        x = self.layers(self.stem(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class InvertedResidual(nn.Module):
    """MobileNetV2's block: 1x1 expand, 3x3 depthwise, 1x1 project, ReLU6, residual add."""

    def __init__(self, c=6, expand=3):
        super().__init__()
        h = c * expand
        self.body = nn.Sequential(
            nn.Conv2d(c, h, 1, bias=False), nn.BatchNorm2d(h), nn.ReLU6(),
            nn.Conv2d(h, h, 3, 1, 1, groups=h, bias=False), nn.BatchNorm2d(h), nn.ReLU6(),
            nn.Conv2d(h, c, 1, bias=False), nn.BatchNorm2d(c))

    def forward(self, x):
        return x + self.body(x)


class WithUnsupported(nn.Module):
    """A model holding ops loopc lacks (cumsum, sort): they run in PyTorch between loopc kernels."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(11, 5)

    def forward(self, x):
        y = torch.relu(self.fc(x))
        y = torch.cumsum(y, dim=1)
        y = torch.sort(y, dim=1).values
        return torch.tanh(y * 2.0 + 1.0)


def close(a, b, rtol=1e-4, atol=1e-5, msg=""):
    torch.testing.assert_close(a, b, rtol=rtol, atol=atol, msg=msg)


def check_inference(model, x):
    model.eval()
    ours = copy.deepcopy(model)
    report = Report()
    with torch.no_grad():
        close(compiled(ours, report)(x), model(x))
    return report


def check_train_step(model, x, labels, loss_fn=F.cross_entropy):
    """One training step: loss, every parameter gradient and every buffer (running statistics)."""
    model.train()
    ours = copy.deepcopy(model)
    report = Report()
    torch.manual_seed(7)
    ref_loss = loss_fn(model(x), labels)
    ref_loss.backward()
    torch.manual_seed(7)
    loss = loss_fn(compiled(ours, report)(x), labels)
    loss.backward()
    close(loss, ref_loss, msg="loss")
    for (name, p), (_, q) in zip(ours.named_parameters(), model.named_parameters()):
        close(p.grad, q.grad, rtol=2e-3, atol=1e-4, msg=f"gradient of {name}")
    for (name, b), (_, c) in zip(ours.named_buffers(), model.named_buffers()):
        close(b.float(), c.float(), rtol=1e-4, atol=1e-5, msg=f"buffer {name}")
    return report


def test_chapter_net_inference_batch_sizes():
    torch.manual_seed(0)
    model = ChapterNet().eval()
    c = compiled(copy.deepcopy(model))
    with torch.no_grad():
        for batch in (1, 3, 5):        # a second size makes Dynamo's shapes symbolic: compiled per shape
            x = torch.randn(batch, 1, 28, 28)
            close(c(x), model(x))


def test_chapter_net_train_step_matches_eager():
    torch.manual_seed(1)
    report = check_train_step(ChapterNet(), torch.randn(5, 1, 28, 28), torch.tensor([3, 1, 4, 1, 5]), F.nll_loss)
    assert report.loopc_nodes >= 20
    # only dropout runs in PyTorch (its mask comes from PyTorch's RNG, as in eager)
    assert set(report.fallback) <= {"native_dropout.default"}, report


def test_small_resnet_inference_and_training():
    torch.manual_seed(2)
    model = SmallResNet()
    x = torch.randn(3, 3, 11, 9)
    rep = check_inference(model, x)
    assert not rep.fallback, rep
    rep = check_train_step(model, x, torch.tensor([0, 6, 2]))
    assert not rep.fallback, rep


def test_inverted_residual_with_depthwise_convolution():
    torch.manual_seed(3)
    model = nn.Sequential(InvertedResidual(), InvertedResidual())
    x = torch.randn(2, 6, 7, 13)
    rep = check_inference(model, x)
    assert not rep.fallback, rep
    model.train()
    ours = copy.deepcopy(model)
    out = compiled(ours)(x)
    ref = model(x)
    close(out, ref)
    dy = torch.randn_like(ref)
    out.backward(dy)
    ref.backward(dy)
    for (name, p), (_, q) in zip(ours.named_parameters(), model.named_parameters()):
        close(p.grad, q.grad, rtol=2e-3, atol=1e-4, msg=f"gradient of {name}")


def test_unsupported_ops_fall_back_in_place():
    torch.manual_seed(4)
    model = WithUnsupported()
    x = torch.randn(6, 11, requires_grad=True)
    rep = check_inference(model, x.detach())
    assert rep.fallback["cumsum.default"] == 1 and rep.fallback["sort.default"] == 1, rep
    assert rep.loopc_nodes >= 3           # linear, relu, and the tanh chain still ran on loopc
    assert "cumsum" in str(rep) and "PyTorch" in str(rep)
    ours = copy.deepcopy(model)
    x2 = x.detach().clone().requires_grad_(True)
    compiled(ours)(x2).sum().backward()
    model(x).sum().backward()
    close(x2.grad, x.grad, rtol=2e-3, atol=1e-4)


def test_explain_counts_forward_and_backward():
    torch.manual_seed(5)
    model = nn.Sequential(nn.Linear(7, 5), nn.ReLU(), nn.Linear(5, 3))
    x = torch.randn(4, 7)
    fwd = explain(model, x)
    both = explain(model, x, backward=True)
    assert fwd.graphs == 1 and both.graphs == 2
    assert both.loopc_nodes > fwd.loopc_nodes > 0 and not both.fallback


def test_backend_option_errors_are_loopc_errors():
    from loopc.errors import LoopcError
    model = nn.Linear(3, 2)
    c = torch.compile(model, backend="loopc", options={"bogus": 1})
    with pytest.raises(Exception) as info:
        c(torch.randn(2, 3))
    assert isinstance(info.value, LoopcError) or isinstance(info.value.__cause__, LoopcError) or \
        "bogus" in str(info.value)


def test_backend_found_by_entry_point_without_import():
    """A fresh process: torch.compile(..., backend="loopc") with no import of loopc."""
    code = ("import torch\n"
            "m = torch.nn.Linear(3, 2)\n"
            "x = torch.randn(4, 3)\n"
            "y = torch.compile(m, backend='loopc')(x)\n"
            "assert torch.allclose(y, m(x), atol=1e-5)\n"
            "import sys; assert 'loopc.torch.backend' in sys.modules\n"
            "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-2000:]


def test_chapter_net_trains_like_eager_on_embedded_digits():
    """Two epochs on a slice of the embedded MNIST digits: accuracy within 1 point of eager."""
    from loopc.nn.datasets import mnist
    data = mnist()
    n_train, n_test = 640, 500
    xs, ys = (torch.from_numpy(a) for a in data.train.take(n_train).tensors())
    xt, yt = (torch.from_numpy(a) for a in data.test.take(n_test).tensors())
    ys, yt = ys.long(), yt.long()                  # int64 labels, as PyTorch's loaders give them

    def train(model, step_model):
        torch.manual_seed(11)
        opt = torch.optim.Adadelta(model.parameters(), lr=1.0)
        for _ in range(2):
            model.train()
            for i in range(0, n_train, 64):
                opt.zero_grad()
                F.nll_loss(step_model(xs[i:i + 64]), ys[i:i + 64]).backward()
                opt.step()
        model.eval()
        with torch.no_grad():
            return (step_model(xt).argmax(1) == yt).float().mean().item() * 100

    torch.manual_seed(0)
    ref = ChapterNet()
    ours = copy.deepcopy(ref)
    acc_eager = train(ref, ref)
    acc_loopc = train(ours, compiled(ours))
    assert acc_eager > 60
    assert abs(acc_loopc - acc_eager) <= 1.0, (acc_loopc, acc_eager)


def test_disk_cache_serves_a_second_process(tmp_path):
    """A second process compiling the same model loads every kernel from the disk cache."""
    code = ("import torch, loopc.torch\n"
            "from loopc.torch.cache import KERNELS\n"
            "torch.manual_seed(0)\n"
            "m = torch.nn.Sequential(torch.nn.Conv2d(3, 5, 3), torch.nn.ReLU(), torch.nn.Flatten(),\n"
            "                        torch.nn.Linear(5 * 5 * 7, 4)).eval()\n"
            "x = torch.randn(2, 3, 7, 9)\n"
            "with torch.no_grad():\n"
            "    y = torch.compile(m, backend='loopc')(x)\n"
            "    assert torch.allclose(y, m(x), atol=1e-5)\n"
            "print(KERNELS.stats['built'], KERNELS.stats['loaded'])\n")
    env = dict(os.environ, LOOPC_CACHE_DIR=str(tmp_path))
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
            for _ in range(2)]
    for r in runs:
        assert r.returncode == 0, r.stderr[-2000:]
    (built1, loaded1), (built2, loaded2) = (map(int, r.stdout.split()[-2:]) for r in runs)
    assert built1 > 0 and loaded1 == 0
    assert built2 == 0 and loaded2 == built1
    # a damaged file is rebuilt, not fatal
    for f in tmp_path.rglob("*.kernel"):
        f.write_bytes(b"garbage")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0 and r.stdout.split()[-2:] == [str(built1), "0"], r.stderr[-2000:]


def test_kernels_of_graphs_that_differ_only_in_shapes_are_not_shared():
    """nll_loss's backward reads the labels, not the log-probabilities, whose shape still sets the
    gradient's: two class counts in one process must get two kernels (a cache key that left the
    unread input out once returned the first one's kernel, and garbage)."""
    for classes in (3, 5, 3):
        torch._dynamo.reset()
        x = torch.randn(5, classes, requires_grad=True)
        labels = torch.tensor([1, -100, 2, 0, -100])
        loss = compiled(lambda x, t: F.cross_entropy(x, t))(x, labels)
        loss.backward()
        x2 = x.detach().clone().requires_grad_(True)
        F.cross_entropy(x2, labels).backward()
        close(loss, F.cross_entropy(x2, labels))
        close(x.grad, x2.grad, rtol=2e-3, atol=1e-5)


def test_changed_buffers_and_inputs_are_seen_on_the_next_call():
    """Nothing is kept between calls: batch norm's running statistics changed in place, through
    ``.data`` (no version bump), and an input rewritten through numpy all show in the next result."""
    torch.manual_seed(6)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU()).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    c = compiled(model)
    x = torch.randn(2, 3, 6, 7)
    with torch.no_grad():
        close(c(x), model(x))
        model[1].running_var.mul_(3.0)             # in place: a new version
        model[1].running_mean.add_(0.5)
        close(c(x), model(x))
        x.numpy()[:] = 2.0 * x.numpy()            # same tensor, same version, new values
        close(c(x), model(x))
        model[1].weight.data.mul_(0.5)             # .data: the parameter's version does not move
        close(c(x), model(x))
