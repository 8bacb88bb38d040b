"""``loopc.torch``: loopc kernels under PyTorch models.

    compiled = torch.compile(model, backend="loopc")        # any model; PyTorch runs what loopc lacks
    loopc.torch.explain(model, x)                           # what ran on loopc, what fell back

    from loopc import torch as lt                           # or drop-in layers, one at a time
    model = nn.Sequential(lt.Conv2d(1, 6, 5, padding=2), lt.ReLU(), lt.MaxPool2d(2), ...)

    opt = lt.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)   # torch.optim's math, loopc kernels

Modules: ``aten`` (how each ATen operator becomes a loopc compute; ``tv`` and ``pointwise``
its vocabulary), ``graph`` (an FX graph partitioned into loopc kernels and PyTorch fallback),
``cache`` (compiled kernels in memory and on disk), ``backend`` (the TorchDynamo backend,
``explain``), ``functional`` (F's forms on the same compiler) and ``layers`` (the drop-in
modules built on it), ``optim``, ``tuning`` (``tune``, ``extract_tasks``), ``models``.
"""
from __future__ import annotations

try:
    import torch as _torch  # noqa: F401
except ImportError as e:  # pragma: no cover - exercised where torch is missing
    raise ImportError("loopc.torch needs PyTorch, which is not installed: pip install 'loopc[torch]' "
                      "(or pip install torch)") from e

from . import functional, optim
from .backend import backend, explain
from .layers import Conv2d, Linear, MaxPool2d, ReLU, run_op
from .tuning import extract_tasks, tune

__all__ = ["Conv2d", "Linear", "MaxPool2d", "ReLU", "run_op", "backend", "explain", "functional", "optim",
           "extract_tasks", "tune"]
