"""The model base class: parameter shapes, an initialiser and a forward function, run by executors.

    class Net(Model):
        name, input_shape, classes = "net", (1, 28, 28), 10
        param_shapes = {"fc.weight": (10, 784), "fc.bias": (10,)}
        def init(self, rng): ...
        def forward(self, g, x, params): return g.log_softmax(...)

    model = Net(seed=0)                      # kernels=KernelCache() for a cache of its own
    loss = model.train_step(x, labels)       # gradients land in model.store.grads
    model.predict(x); model.evaluate(x, labels); model.save("w.npz")
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .autodiff import gradients
from .executor import Executor
from .graph import Graph
from .kernels import SHARED
from .params import ParamStore


@dataclass
class TrainGraph:
    """A model's joint forward + backward graph for one batch size, and its named values."""
    graph: object
    x: object
    labels: object
    logp: object
    loss: object
    grads: dict


class Model:
    """A network: parameter shapes, an initialiser and a forward function that adds nodes to a
    graph. ``executor(batch)`` compiles (or fetches from the model's kernel cache) the joint
    graph for that batch size once and keeps it, so a last partial batch gets an executor of
    its own. ``kernels`` (a KernelCache) compiles the kernels: the shared cache unless given.

    Subclasses set ``name``, ``input_shape`` (one example), ``classes``, ``param_shapes`` and
    define ``forward(g, x, params) -> log-probabilities`` and ``init(rng)``.
    """
    name = "model"
    input_shape: tuple = ()
    classes: int = 0
    param_shapes: dict = {}

    def __init__(self, seed: int = 0, target: str = "llvm", kernels=None):
        self.target = target
        self.kernels = SHARED if kernels is None else kernels
        self.store = ParamStore(self.param_shapes)
        self.init(np.random.default_rng(seed))
        self._executors = {}

    def init(self, rng) -> None:
        raise NotImplementedError

    def forward(self, g, x, params):
        raise NotImplementedError

    def build_graph(self, batch: int) -> TrainGraph:
        """Forward graph for ``batch`` examples, the nll loss, and the derived backward graph."""
        g = Graph(self.name)
        x = g.input("x", (batch, *self.input_shape))
        labels = g.input("labels", (batch,), "int32")
        params = {name: g.param(name, shape) for name, shape in self.param_shapes.items()}
        logp = self.forward(g, x, params)
        loss = g.nll_loss(logp, labels, scope="loss")
        grads = gradients(g, loss)
        g.outputs = [loss, *grads.values()]
        return TrainGraph(g, x, labels, logp, loss, grads)

    def executor(self, batch: int, train: bool = True) -> Executor:
        """The executor for ``batch`` examples: forward + backward (``train``), or the forward
        pass only (``train=False``: only the forward kernels are compiled; a training executor
        of the same size serves as well)."""
        ex = self._executors.get((batch, True)) or (None if train else self._executors.get((batch, False)))
        if ex is None:
            tg = self.build_graph(batch)
            outputs = [tg.loss, tg.logp, *tg.grads.values()] if train else [tg.logp]
            ex = Executor(tg.graph, outputs, self.store, tg.grads if train else None, self.target,
                          kernels=self.kernels)
            ex.train_graph = tg
            self._executors[(batch, train)] = ex
        return ex

    def train_step(self, x, labels) -> float:
        """Forward + backward on one batch (any size): gradients land in ``store.grads``; returns the loss."""
        ex = self.executor(len(x))
        tg = ex.train_graph
        ex.run(x=x, labels=labels)
        return float(ex[tg.loss][0])

    def forward_batch(self, x):
        """The log-probabilities of one batch (a view of the executor's buffer)."""
        ex = self.executor(len(x), train=False)
        tg = ex.train_graph
        ex.run(outputs=(tg.logp,), x=x)
        return ex[tg.logp]

    def log_probs(self, x, batch: int = 64) -> np.ndarray:
        """Log-probabilities (N, classes) of every example of ``x``, ``batch`` at a time. A
        shorter last chunk is padded up to ``batch`` (rows are independent), so inference
        needs no executor beyond the training one."""
        out = np.empty((len(x), self.classes), dtype=np.float32)
        if len(x) == 0:
            return out
        batch = min(batch, len(x))
        ex = self.executor(batch, train=False)
        tg = ex.train_graph
        xbuf = ex[tg.x]
        for i in range(0, len(x), batch):
            chunk = x[i:i + batch]
            xbuf[:len(chunk)] = chunk
            xbuf[len(chunk):] = 0
            ex.run(outputs=(tg.logp,))
            out[i:i + len(chunk)] = ex[tg.logp][:len(chunk)]
        return out

    def predict(self, x, batch: int = 64) -> np.ndarray:
        """Predicted classes of every example of ``x``."""
        return self.log_probs(x, batch).argmax(axis=1)

    def evaluate(self, x, labels, batch: int = 64) -> tuple:
        """(mean negative log-likelihood, accuracy) on ``x``."""
        if len(x) == 0:
            return 0.0, 0.0
        logp = self.log_probs(x, batch)
        labels = np.asarray(labels)
        loss = float(-logp[np.arange(len(labels)), labels].astype(np.float64).mean())
        return loss, float((logp.argmax(axis=1) == labels).mean())

    def save(self, path):
        """Write the weights to ``path`` (``.npz`` appended when missing); returns the path written."""
        return self.store.save(path)

    def load(self, path, allow_nonfinite: bool = False) -> None:
        """Read weights written by ``save``; LoopcError for anything else (see loopc.nn.weights)."""
        self.store.load(path, allow_nonfinite)
