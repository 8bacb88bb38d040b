"""Optimizer updates as kernels: each returns *new* tensors (a kernel never writes its inputs);
the caller swaps the old and new buffers after the call.

Hyperparameters are either

- a (1,) float32 tensor (``te.placeholder((1,), name="lr")``): a runtime input read as ``lr[0]``,
  so a learning-rate schedule changes it without recompiling (recommended for ``lr``); or
- a Python number: baked into the kernel as a constant (fine for momentum, rho, eps).

    p, g, v = (te.placeholder(shape, name=n) for n in ("p", "g", "v"))
    lr = te.placeholder((1,), name="lr")
    new_v, new_p = optim.sgd_momentum(p, g, v, lr, momentum=0.9)
    f = loopc.build(schedules.schedule([new_v, new_p]), [p, g, v, lr, new_v, new_p])
"""
from __future__ import annotations

from loopc import te
from loopc.errors import LoopcError
from loopc.te.tensor import Tensor


def _scalar(x, what, op):
    """A hyperparameter as an expression: ``x[0]`` for a (1,) tensor, a constant for a number."""
    if isinstance(x, Tensor):
        if x.shape != (1,) or x.dtype != "float32":
            raise LoopcError(f"{op}: {what} as a tensor must be float32 of shape (1,), got {x.dtype}{x.shape}")
        return x[0]
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        return te.const(float(x), "float32")
    raise LoopcError(f"{op}: {what} must be a Python number or a (1,) float32 tensor, got {x!r}")


def _is_zero(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool) and x == 0


def _check_same(op, ref, **tensors):
    for what, t in tensors.items():
        if t.shape != ref.shape or t.dtype != ref.dtype:
            raise LoopcError(f"{op}: {what} is {t.dtype}{t.shape} but param is {ref.dtype}{ref.shape}")


def _attrs(**hyper):
    """Number hyperparameters go into the workload key; tensor ones are runtime inputs."""
    return {k: (float(v) if not isinstance(v, Tensor) else "runtime") for k, v in hyper.items()}


def sgd_momentum(param, grad, velocity, lr, momentum, weight_decay=0, name="sgd_momentum"):
    """SGD with momentum, PyTorch semantics (dampening 0, not Nesterov); returns (new_velocity, new_param).

        g = grad + weight_decay * param
        new_velocity = momentum * velocity + g        # start from velocity = 0: the first step is v = g
        new_param = param - lr * new_velocity
    """
    op = "sgd_momentum"
    _check_same(op, param, grad=grad, velocity=velocity)
    lr_e, mom_e = _scalar(lr, "lr", op), _scalar(momentum, "momentum", op)
    wd_e = None if _is_zero(weight_decay) else _scalar(weight_decay, "weight_decay", op)
    attrs = _attrs(lr=lr, momentum=momentum, weight_decay=weight_decay)

    def g(i):
        return grad[i] if wd_e is None else grad[i] + wd_e * param[i]
    new_v = te.compute(param.shape, lambda *i: mom_e * velocity[i] + g(i), name=name + "_velocity",
                       tag="sgd_momentum", attrs={**attrs, "output": "velocity"})
    new_p = te.compute(param.shape, lambda *i: param[i] - lr_e * new_v[i], name=name + "_param",
                       tag="sgd_momentum", attrs={**attrs, "output": "param"})
    return new_v, new_p


def adadelta(param, grad, square_avg, acc_delta, lr, rho=0.9, eps=1e-6, weight_decay=0, name="adadelta"):
    """Adadelta, PyTorch's ``torch.optim.Adadelta`` semantics; returns
    (new_square_avg, new_acc_delta, new_param).

        g = grad + weight_decay * param
        new_square_avg = rho * square_avg + (1 - rho) * g * g
        delta = sqrt(acc_delta + eps) / sqrt(new_square_avg + eps) * g
        new_acc_delta = rho * acc_delta + (1 - rho) * delta * delta
        new_param = param - lr * delta
    """
    op = "adadelta"
    _check_same(op, param, grad=grad, square_avg=square_avg, acc_delta=acc_delta)
    lr_e, rho_e, eps_e = _scalar(lr, "lr", op), _scalar(rho, "rho", op), _scalar(eps, "eps", op)
    wd_e = None if _is_zero(weight_decay) else _scalar(weight_decay, "weight_decay", op)
    attrs = _attrs(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay)

    def g(i):
        return grad[i] if wd_e is None else grad[i] + wd_e * param[i]
    new_sq = te.compute(param.shape, lambda *i: rho_e * square_avg[i] + (1.0 - rho_e) * g(i) * g(i),
                        name=name + "_square_avg", tag="adadelta", attrs={**attrs, "output": "square_avg"})
    delta = te.compute(param.shape,
                       lambda *i: te.sqrt(acc_delta[i] + eps_e) / te.sqrt(new_sq[i] + eps_e) * g(i),
                       name=name + "_delta", tag="adadelta_delta")   # two sqrt and a divide: computed once
    new_acc = te.compute(param.shape, lambda *i: rho_e * acc_delta[i] + (1.0 - rho_e) * delta[i] * delta[i],
                         name=name + "_acc_delta", tag="adadelta", attrs={**attrs, "output": "acc_delta"})
    new_p = te.compute(param.shape, lambda *i: param[i] - lr_e * delta[i],
                       name=name + "_param", tag="adadelta", attrs={**attrs, "output": "param"})
    return new_sq, new_acc, new_p
