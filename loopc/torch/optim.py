"""``loopc.torch.optim``: drop-in ``torch.optim.SGD`` / ``torch.optim.Adadelta`` whose ``step()``
runs loopc's update kernels (``loopc.schedules.sgd_momentum`` / ``adadelta``).

    from loopc.torch import optim as lo

    opt = lo.SGD(model.parameters(), lr=0.01, momentum=0.9)     # or lo.Adadelta(model.parameters())
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.7)
    loss.backward(); opt.step(); opt.zero_grad(); sched.step()

Both subclass ``torch.optim.Optimizer``: param groups, ``zero_grad``, ``state_dict`` /
``load_state_dict`` (torch's state names: ``momentum_buffer``; ``step``, ``square_avg``,
``acc_delta``), hooks and LR schedulers are PyTorch's own. The math is torch.optim's (SGD:
dampening 0, no Nesterov; the first step's buffer is the gradient, as the kernel computes it
from a zero buffer). Each parameter with a gradient is updated by a kernel compiled once per
(numel, hyper-parameters) in ``loopc.nn.kernels.SHARED``; the learning rate is a runtime input
read from the param group at every step, so schedulers need no recompiling. Parameters,
gradients and state must be float32, contiguous, on the CPU. Options the kernels lack
(weight decay, Nesterov, dampening, maximize, foreach/fused/capturable/differentiable) raise
``UnsupportedError``: use ``torch.optim`` for those.
"""
from __future__ import annotations

import time

import numpy as np

try:
    import torch
except ImportError as e:  # pragma: no cover - exercised where torch is missing
    raise ImportError("loopc.torch needs PyTorch, which is not installed: pip install 'loopc[torch]' "
                      "(or pip install torch)") from e

from loopc.errors import ArgumentError, UnsupportedError
from loopc.nn.kernels import SHARED
from loopc.runtime import profiling, threads

__all__ = ["SGD", "Adadelta"]


def _check(t: "torch.Tensor", what: str) -> None:
    if t.is_sparse or t.layout != torch.strided:
        raise UnsupportedError(f"loopc.torch.optim: {what} is {t.layout}; loopc's optimizers take dense "
                               "tensors only (use torch.optim for sparse gradients)")
    if t.device.type != "cpu":
        raise ArgumentError(f"loopc.torch.optim: {what} is on {t.device}; loopc's update kernels run on CPU tensors")
    if t.dtype != torch.float32:
        raise ArgumentError(f"loopc.torch.optim: {what} has dtype {t.dtype}; loopc's update kernels take float32")
    if not t.is_contiguous():
        raise ArgumentError(f"loopc.torch.optim: {what} is not contiguous; call .contiguous() on it "
                            "(or use torch.optim)")


def _flat(t: "torch.Tensor") -> np.ndarray:
    """A 1-D numpy view sharing ``t``'s memory (``t`` checked: contiguous float32 CPU)."""
    return t.detach().numpy().reshape(-1)


class _Optimizer(torch.optim.Optimizer):
    kind = ""                 # the loopc.schedules update kernel
    state_names = ()          # torch's names of the per-parameter state tensors, in kernel order
    flop_per_weight = 0
    fixed = {}                # option -> the only values the kernels implement

    def add_param_group(self, param_group: dict) -> None:
        super().add_param_group(param_group)
        self._check_group(self.param_groups[-1])

    def _check_group(self, group: dict) -> None:
        name = type(self).__name__
        for opt, allowed in self.fixed.items():
            if opt in group and group[opt] not in allowed:
                raise UnsupportedError(f"loopc.torch.optim.{name} does not support {opt}={group[opt]!r} "
                                       f"(loopc's {self.kind} kernel implements {opt}={allowed[0]!r} only); "
                                       f"use torch.optim.{name} instead")

    def _hyper(self, group: dict) -> tuple:
        raise NotImplementedError

    def _names(self, group: dict) -> tuple:
        return self.state_names

    def _state(self, p, group: dict) -> list:
        """The kernel's state inputs for ``p`` (torch tensors, created as zeros on first use)."""
        names = self._names(group)
        if not names:
            return []          # no entry in self.state, as torch's SGD without momentum
        state, out = self.state[p], []
        for name in names:
            t = state.get(name)
            if not (isinstance(t, torch.Tensor) and t.dtype == torch.float32 and t.device.type == "cpu"
                    and t.shape == p.shape and t.is_contiguous() and t.layout == torch.strided):
                t = torch.zeros_like(p, memory_format=torch.contiguous_format) if t is None \
                    else t.detach().to(torch.float32).contiguous().reshape(p.shape).clone()
                state[name] = t
            out.append(t)
        return out

    def _scratch(self, n_out: int, n: int) -> list:
        """Output buffers (kernel outputs never alias inputs), reused across parameters."""
        bufs = getattr(self, "_bufs", None)
        if bufs is None or len(bufs) < n_out or bufs[0].size < n:
            size = max(n, bufs[0].size if bufs else 0)
            self._bufs = bufs = [np.empty(size, np.float32) for _ in range(n_out)]
        return [b[:n] for b in bufs[:n_out]]

    @torch.no_grad()
    def step(self, closure=None):
        """One update of every parameter with a gradient (one loopc kernel call per parameter)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        t0, flop = time.perf_counter(), 0
        threads.adapt()
        for group in self.param_groups:
            self._check_group(group)
            hyper = self._hyper(group)
            lr = np.array([float(group["lr"])], dtype=np.float32)
            for i, p in enumerate(group["params"]):
                if p.grad is None or p.numel() == 0:
                    continue
                _check(p.grad, f"the gradient of parameter {i} {tuple(p.shape)}")
                _check(p, f"parameter {i} {tuple(p.shape)}")
                n = p.numel()
                state = self._state(p, group)
                inputs = [_flat(s) for s in state] or [self._zeros(n)]
                new = self._scratch(len(inputs) + 1, n)
                module = SHARED.update(self.kind, n, len(inputs), hyper).module
                code = module.bind([_flat(p), _flat(p.grad), *inputs, lr, *new])()
                if code:
                    raise module.fault_error(code)
                for dst, src in zip([*state, p], new[len(inputs) - len(state):]):
                    dst.copy_(torch.from_numpy(src).view(dst.shape))   # in place: bumps versions
                self._after(p)
                flop += self.flop_per_weight * n
        if profiling.recording():
            profiling.record(f"{self.kind}[optimizer]", t0, time.perf_counter() - t0, flop)
        return loss

    def _zeros(self, n: int) -> np.ndarray:
        z = getattr(self, "_zero_buf", None)
        if z is None or z.size < n:
            self._zero_buf = z = np.zeros(n, np.float32)
        return z[:n]

    def _after(self, p) -> None:
        pass


class SGD(_Optimizer):
    """``torch.optim.SGD`` with momentum (dampening 0, no Nesterov, no weight decay) on loopc:
    v = m*v + g (v = g on the first step); w -= lr*v. With momentum 0: w -= lr*g, no state."""
    kind = "sgd_momentum"
    flop_per_weight = 4
    fixed = {"dampening": (0,), "weight_decay": (0,), "nesterov": (False,), "maximize": (False,),
             "foreach": (None, False), "fused": (None, False), "differentiable": (False,)}

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, *,
                 maximize=False, foreach=None, differentiable=False, fused=None):
        if float(lr) < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if momentum < 0.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=nesterov, maximize=maximize, foreach=foreach, differentiable=differentiable,
                        fused=fused)
        super().__init__(params, defaults)

    def _hyper(self, group):
        return (float(group["momentum"]),)

    def _names(self, group):
        return ("momentum_buffer",) if group["momentum"] != 0 else ()


class Adadelta(_Optimizer):
    """``torch.optim.Adadelta`` (lr 1.0, rho 0.9, eps 1e-6; no weight decay) on loopc."""
    kind = "adadelta"
    state_names = ("square_avg", "acc_delta")
    flop_per_weight = 14
    fixed = {"weight_decay": (0,), "maximize": (False,), "foreach": (None, False), "capturable": (False,),
             "differentiable": (False,)}

    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0, foreach=None, *,
                 capturable=False, maximize=False, differentiable=False):
        if float(lr) < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 <= rho <= 1.0:
            raise ValueError(f"Invalid rho value: {rho}")
        if not 0.0 <= eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        defaults = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize,
                        capturable=capturable, foreach=foreach, differentiable=differentiable)
        super().__init__(params, defaults)

    def _hyper(self, group):
        return (float(group["rho"]), float(group["eps"]))

    def _state(self, p, group):
        if not isinstance(self.state[p].get("step"), torch.Tensor):
            self.state[p]["step"] = torch.zeros((), dtype=torch.float32)   # torch's first key
        return super()._state(p, group)

    def _after(self, p):
        self.state[p]["step"] += 1
