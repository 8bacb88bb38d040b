"""Optimizer updates as kernels (schedules/optim.py): three steps against torch.optim.SGD
(momentum) and torch.optim.Adadelta, the numpy references, and the reference interpreter.

A kernel never writes its inputs: each step returns new state and weights, and the caller
swaps buffers, as loopc.nn's runtime does.
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


def build(inputs, outs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", S.NoTunedRecordWarning)
        s = S.schedule(list(outs))
    return loopc.build(s, list(inputs) + list(outs))


def step(f, arrays, outs):
    results = [np.full(t.shape, np.nan, np.float32) for t in outs]
    f(*arrays, *results)
    return results


# odd 1-D (a flat parameter arena), 2-D and 4-D (conv weights) shapes; the last one is big
# enough for the parallel loop
SHAPES = [(37,), (13, 7), (5, 3, 5, 5), (120, 401)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("weight_decay", [0, 1e-2])
def test_sgd_momentum_three_steps_vs_torch(shape, weight_decay):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    p0 = rng.standard_normal(shape).astype(np.float32)
    grads = [rng.standard_normal(shape).astype(np.float32) for _ in range(3)]
    lrs = [0.1, 0.05, 0.02]                      # the runtime input changes; nothing recompiles

    P, G, V = (te.placeholder(shape, name=n) for n in ("param", "grad", "velocity"))
    LR = te.placeholder((1,), name="lr")
    new_v, new_p = S.sgd_momentum(P, G, V, LR, momentum=0.9, weight_decay=weight_decay)
    f = build([P, G, V, LR], [new_v, new_p])

    tp = torch.nn.Parameter(torch.tensor(p0))
    opt = torch.optim.SGD([tp], lr=lrs[0], momentum=0.9, weight_decay=weight_decay)
    p, v = p0.copy(), np.zeros(shape, np.float32)
    rp, rv = p0.copy(), np.zeros(shape, np.float32)
    for g, lr in zip(grads, lrs):
        v, p = step(f, [p, g, v, np.array([lr], np.float32)], [new_v, new_p])     # swap buffers
        rv, rp = ref.sgd_momentum(rp, g, rv, lr, 0.9, weight_decay)
        for group in opt.param_groups:
            group["lr"] = lr
        tp.grad = torch.tensor(g)
        opt.step()
    np.testing.assert_allclose(p, tp.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(v, opt.state[tp]["momentum_buffer"].numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(p, rp, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape", SHAPES)
def test_adadelta_three_steps_vs_torch(shape):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    p0 = rng.standard_normal(shape).astype(np.float32)
    grads = [rng.standard_normal(shape).astype(np.float32) for _ in range(3)]
    lrs = [1.0, 0.7, 0.49]                      # the chapter's StepLR(gamma=0.7), as a runtime input

    P, G, SQ, AC = (te.placeholder(shape, name=n) for n in ("param", "grad", "square_avg", "acc_delta"))
    LR = te.placeholder((1,), name="lr")
    outs = S.adadelta(P, G, SQ, AC, LR, rho=0.9, eps=1e-6)
    f = build([P, G, SQ, AC, LR], outs)

    tp = torch.nn.Parameter(torch.tensor(p0))
    opt = torch.optim.Adadelta([tp], lr=lrs[0], rho=0.9, eps=1e-6)
    p, sq, ac = p0.copy(), np.zeros(shape, np.float32), np.zeros(shape, np.float32)
    r = (np.zeros(shape, np.float32), np.zeros(shape, np.float32), p0.copy())
    for g, lr in zip(grads, lrs):
        sq, ac, p = step(f, [p, g, sq, ac, np.array([lr], np.float32)], outs)
        r = ref.adadelta(r[2], g, r[0], r[1], lr)
        for group in opt.param_groups:
            group["lr"] = lr
        tp.grad = torch.tensor(g)
        opt.step()
    state = opt.state[tp]
    np.testing.assert_allclose(p, tp.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sq, state["square_avg"].numpy(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(ac, state["acc_delta"].numpy(), rtol=1e-4, atol=1e-9)
    np.testing.assert_allclose(p, r[2], rtol=1e-5, atol=1e-6)


def test_hyperparameters_as_constants_or_runtime_inputs():
    """Numbers are baked into the kernel (and its workload key); (1,) tensors are read at run time."""
    rng = np.random.default_rng(2)
    p, g, v = (rng.standard_normal((7, 3)).astype(np.float32) for _ in range(3))
    P, G, V = (te.placeholder((7, 3), name=n) for n in ("param", "grad", "velocity"))
    M, LR = te.placeholder((1,), name="momentum"), te.placeholder((1,), name="lr")
    baked = S.sgd_momentum(P, G, V, 0.05, 0.8)
    runtime = S.sgd_momentum(P, G, V, LR, M)
    assert baked[1].op.attrs["lr"] == 0.05 and runtime[1].op.attrs["lr"] == "runtime"
    a = step(build([P, G, V], baked), [p, g, v], baked)
    b = step(build([P, G, V, LR, M], runtime), [p, g, v, np.array([0.05], np.float32),
                                                  np.array([0.8], np.float32)], runtime)
    for x, y, z in zip(a, b, ref.sgd_momentum(p, g, v, 0.05, 0.8)):
        np.testing.assert_allclose(x, y, rtol=1e-6)
        np.testing.assert_allclose(x, z, rtol=1e-5, atol=1e-6)


def test_optimizers_interp():
    rng = np.random.default_rng(3)
    shape = (2, 3, 5)
    p, g = rng.standard_normal(shape).astype(np.float32), rng.standard_normal(shape).astype(np.float32)
    v = rng.standard_normal(shape).astype(np.float32)
    sq, ac = (np.abs(rng.standard_normal(shape)).astype(np.float32) for _ in range(2))
    lr = np.array([0.3], np.float32)
    P, G, V, SQ, AC = (te.placeholder(shape, name=n) for n in ("param", "grad", "velocity", "sq", "acc"))
    LR = te.placeholder((1,), name="lr")
    for outs, inputs, arrays, want in [
            (S.sgd_momentum(P, G, V, LR, 0.9, 1e-3), [P, G, V, LR], [p, g, v, lr],
             ref.sgd_momentum(p, g, v, lr, 0.9, 1e-3)),
            (S.adadelta(P, G, SQ, AC, LR, 0.95, 1e-5), [P, G, SQ, AC, LR], [p, g, sq, ac, lr],
             ref.adadelta(p, g, sq, ac, lr, 0.95, 1e-5))]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", S.NoTunedRecordWarning)
            s = S.schedule(list(outs))
        results = [np.full(shape, np.nan, np.float32) for _ in outs]
        loopc.interp.run(loopc.lower(s, inputs + list(outs)), *arrays, *results)
        for got, exp in zip(results, want):
            np.testing.assert_allclose(got, exp, rtol=1e-5, atol=1e-6)


def test_optimizer_argument_checks():
    P, G = te.placeholder((4, 3), name="param"), te.placeholder((4, 3), name="grad")
    with pytest.raises(LoopcError, match="velocity"):
        S.sgd_momentum(P, G, te.placeholder((3, 4), name="v"), 0.1, 0.9)
    with pytest.raises(LoopcError, match="lr"):
        S.sgd_momentum(P, G, te.placeholder((4, 3), name="v"), te.placeholder((2,), name="lr"), 0.9)
    with pytest.raises(LoopcError, match="rho"):
        S.adadelta(P, G, te.placeholder((4, 3), name="s"), te.placeholder((4, 3), name="a"), 1.0, rho="0.9")
