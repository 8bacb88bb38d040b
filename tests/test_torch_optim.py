"""loopc.torch.optim: SGD and Adadelta on loopc kernels match torch.optim step for step."""
import copy

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from loopc.errors import ArgumentError, UnsupportedError  # noqa: E402
from loopc.runtime import profiling  # noqa: E402
from loopc.torch import optim as lo  # noqa: E402


def _models(seed=0):
    torch.manual_seed(seed)
    mlp = nn.Sequential(nn.Linear(7, 5), nn.ReLU(), nn.Linear(5, 3))
    conv = nn.Conv2d(3, 5, kernel_size=3, stride=1, padding=1)      # weight 5x3x3x3 = 135, bias 5
    return nn.ModuleList([mlp, conv])


def _set_grads(params, gen):
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen)


def _run(make_ours, make_ref, steps=4, seed=0, scheduler=None):
    """Same initial weights and gradients through both optimizers; their weights after each step."""
    ours, ref = _models(seed), _models(seed)
    opt_a, opt_b = make_ours(ours.parameters()), make_ref(ref.parameters())
    scheds = [scheduler(o) for o in (opt_a, opt_b)] if scheduler else []
    ga, gb = torch.Generator().manual_seed(seed + 1), torch.Generator().manual_seed(seed + 1)
    for _ in range(steps):
        _set_grads(ours.parameters(), ga)
        _set_grads(ref.parameters(), gb)
        opt_a.step()
        opt_b.step()
        for s in scheds:
            s.step()
        for pa, pb in zip(ours.parameters(), ref.parameters()):
            torch.testing.assert_close(pa, pb, rtol=1e-5, atol=1e-6)
    return ours, ref, opt_a, opt_b


@pytest.mark.parametrize("momentum", [0.9, 0.0])
def test_sgd_matches_torch(momentum):
    ours, ref, opt_a, opt_b = _run(lambda p: lo.SGD(p, lr=0.05, momentum=momentum),
                                   lambda p: torch.optim.SGD(p, lr=0.05, momentum=momentum))
    assert opt_a.state_dict()["state"].keys() == opt_b.state_dict()["state"].keys()
    assert bool(opt_a.state) == bool(momentum)
    for pa, pb in zip(ours.parameters(), ref.parameters()):
        assert opt_a.state[pa].keys() == opt_b.state[pb].keys()
        if momentum:
            torch.testing.assert_close(opt_a.state[pa]["momentum_buffer"], opt_b.state[pb]["momentum_buffer"],
                                       rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("lr", [1.0, 0.5])
def test_adadelta_matches_torch(lr):
    ours, ref, opt_a, opt_b = _run(lambda p: lo.Adadelta(p, lr=lr), lambda p: torch.optim.Adadelta(p, lr=lr))
    for pa, pb in zip(ours.parameters(), ref.parameters()):
        sa, sb = opt_a.state[pa], opt_b.state[pb]
        assert list(sa) == list(sb) == ["step", "square_avg", "acc_delta"]
        assert float(sa["step"]) == float(sb["step"]) == 4
        for k in ("square_avg", "acc_delta"):
            torch.testing.assert_close(sa[k], sb[k], rtol=1e-5, atol=1e-6)


def test_adadelta_rho_eps_and_first_step_state():
    _run(lambda p: lo.Adadelta(p, lr=0.7, rho=0.8, eps=1e-4), lambda p: torch.optim.Adadelta(p, lr=0.7, rho=0.8,
                                                                                               eps=1e-4), steps=3)


def test_param_without_grad_is_skipped():
    torch.manual_seed(0)
    a, b = nn.Parameter(torch.randn(4, 3)), nn.Parameter(torch.randn(6))
    before = b.detach().clone()
    opt = lo.SGD([a, b], lr=0.1, momentum=0.9)
    a.grad = torch.ones(4, 3)
    opt.step()
    assert torch.equal(b, before) and b not in opt.state
    torch.testing.assert_close(a.grad, opt.state[a]["momentum_buffer"])


def test_lr_scheduler_changes_lr():
    sched = lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=1, gamma=0.5)  # noqa: E731
    _, _, opt_a, _ = _run(lambda p: lo.SGD(p, lr=0.1, momentum=0.9), lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9),
                          steps=4, scheduler=sched)
    assert opt_a.param_groups[0]["lr"] == pytest.approx(0.1 * 0.5 ** 4)
    _run(lambda p: lo.Adadelta(p), lambda p: torch.optim.Adadelta(p), steps=3, scheduler=sched)


def test_param_groups_with_own_lr():
    ours, ref = _models(), _models()
    opt_a = lo.SGD([{"params": ours[0].parameters()}, {"params": ours[1].parameters(), "lr": 0.2}], lr=0.01,
                   momentum=0.5)
    opt_b = torch.optim.SGD([{"params": ref[0].parameters()}, {"params": ref[1].parameters(), "lr": 0.2}], lr=0.01,
                            momentum=0.5)
    gen_a, gen_b = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    for _ in range(3):
        _set_grads(ours.parameters(), gen_a)
        _set_grads(ref.parameters(), gen_b)
        opt_a.step()
        opt_b.step()
    for pa, pb in zip(ours.parameters(), ref.parameters()):
        torch.testing.assert_close(pa, pb, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["sgd", "adadelta"])
def test_state_dict_round_trip(kind):
    make = {"sgd": lambda p: lo.SGD(p, lr=0.05, momentum=0.9), "adadelta": lambda p: lo.Adadelta(p, lr=0.5)}[kind]
    ref_make = {"sgd": lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9),
                "adadelta": lambda p: torch.optim.Adadelta(p, lr=0.5)}[kind]
    ours, _, opt_a, opt_b = _run(make, ref_make, steps=2)
    sd = copy.deepcopy(opt_a.state_dict())
    assert sd["state"].keys() == opt_b.state_dict()["state"].keys()
    # a fresh loopc optimizer and a torch one resume from it; both continue identically
    twin = copy.deepcopy(ours)
    opt_c, opt_d = make(twin.parameters()), ref_make(ours.parameters())
    opt_c.load_state_dict(copy.deepcopy(sd))     # load_state_dict may keep the tensors it is given
    opt_d.load_state_dict(copy.deepcopy(sd))
    gen_c, gen_d = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    for _ in range(2):
        _set_grads(twin.parameters(), gen_c)
        _set_grads(ours.parameters(), gen_d)
        opt_c.step()
        opt_d.step()
    for pc, pd in zip(twin.parameters(), ours.parameters()):
        torch.testing.assert_close(pc, pd, rtol=1e-5, atol=1e-6)


def test_zero_grad_and_closure():
    model = _models()
    opt = lo.Adadelta(model.parameters())
    x = torch.randn(2, 7)

    def closure():
        opt.zero_grad()
        loss = model[0](x).sum()
        loss.backward()
        return loss
    loss = opt.step(closure)
    assert isinstance(loss, torch.Tensor)
    assert all(p.grad is None for p in model[1].parameters())
    opt.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_profiling_event():
    model = _models()
    opt = lo.SGD(model.parameters(), lr=0.1, momentum=0.9)
    _set_grads(model.parameters(), torch.Generator().manual_seed(0))
    with profiling.Profiler() as prof:
        opt.step()
    assert any(ev.label == "sgd_momentum[optimizer]" for ev in prof.events)


@pytest.mark.parametrize("make, option", [
    (lambda p: lo.SGD(p, lr=0.1, momentum=0.9, weight_decay=1e-4), "weight_decay"),
    (lambda p: lo.SGD(p, lr=0.1, momentum=0.9, nesterov=True), "nesterov"),
    (lambda p: lo.SGD(p, lr=0.1, momentum=0.9, dampening=0.1), "dampening"),
    (lambda p: lo.SGD(p, lr=0.1, maximize=True), "maximize"),
    (lambda p: lo.SGD(p, lr=0.1, foreach=True), "foreach"),
    (lambda p: lo.SGD(p, lr=0.1, fused=True), "fused"),
    (lambda p: lo.Adadelta(p, weight_decay=0.1), "weight_decay"),
    (lambda p: lo.Adadelta(p, maximize=True), "maximize"),
    (lambda p: lo.Adadelta(p, foreach=True), "foreach"),
    (lambda p: lo.Adadelta(p, capturable=True), "capturable"),
    (lambda p: lo.SGD([{"params": p, "weight_decay": 0.1}], lr=0.1), "weight_decay"),
])
def test_unsupported_options(make, option):
    with pytest.raises(UnsupportedError, match=option) as err:
        make(_models().parameters())
    assert "torch.optim" in str(err.value)


def test_unsupported_option_set_after_construction():
    model = _models()
    opt = lo.SGD(model.parameters(), lr=0.1)
    opt.param_groups[0]["nesterov"] = True
    _set_grads(model.parameters(), torch.Generator().manual_seed(0))
    with pytest.raises(UnsupportedError, match="nesterov"):
        opt.step()


def test_bad_tensors():
    p = nn.Parameter(torch.randn(3, 4, dtype=torch.float64))
    p.grad = torch.randn(3, 4, dtype=torch.float64)
    with pytest.raises(ArgumentError, match="float64"):
        lo.SGD([p], lr=0.1).step()

    q = nn.Parameter(torch.randn(3, 4))
    q.grad = torch.randn(4, 3).t()
    with pytest.raises(ArgumentError, match="contiguous"):
        lo.SGD([q], lr=0.1).step()

    r = nn.Parameter(torch.randn(5))
    r.grad = torch.randn(5).to_sparse()
    with pytest.raises(UnsupportedError, match="sparse"):
        lo.Adadelta([r]).step()
