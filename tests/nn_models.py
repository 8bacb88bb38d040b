"""Small models shared by the loopc.nn tests (helpers, not tests)."""
from __future__ import annotations

import importlib.util

import numpy as np

from loopc.nn.runtime import Model

HAS_MLXTEND = importlib.util.find_spec("mlxtend") is not None


class Tiny(Model):
    """conv (stride 2, padding 1, dilation 2) + bias + relu -> maxpool (3, stride 2, padding 1)
    -> flatten -> dense + bias, whose output also feeds a second dense through a relu (a
    value with two consumers: its gradient is a sum) -> log_softmax -> nll."""
    name = "tiny"
    input_shape = (2, 11, 9)
    classes = 5
    param_shapes = {"conv.weight": (3, 2, 3, 3), "conv.bias": (3,), "fc1.weight": (7, 18), "fc1.bias": (7,),
                    "fc2.weight": (5, 7)}

    def init(self, rng):
        for k, shape in self.param_shapes.items():
            self.store[k][...] = rng.uniform(-0.5, 0.5, size=shape)

    def forward(self, g, x, p):
        y = g.conv2d(x, p["conv.weight"], stride=2, padding=1, dilation=2, scope="conv")
        y = g.relu(g.bias_add(y, p["conv.bias"], scope="conv"), scope="conv")
        y = g.max_pool2d(y, 3, stride=2, padding=1, scope="pool")
        y = g.flatten(y, scope="flatten")
        h = g.bias_add(g.dense(y, p["fc1.weight"], scope="fc1"), p["fc1.bias"], scope="fc1")
        z = g.dense(g.add(g.relu(h, scope="fc1"), h, scope="skip"), p["fc2.weight"], scope="fc2")
        return g.log_softmax(z, axis=1, scope="out")


def tiny_torch_loss(params, x, labels):
    """The Tiny model in PyTorch (float64), from numpy parameters; returns (loss, {name: grad})."""
    import torch
    import torch.nn.functional as F
    P = {k: torch.tensor(v.astype(np.float64), requires_grad=True) for k, v in params.items()}
    y = F.conv2d(torch.tensor(x, dtype=torch.float64), P["conv.weight"], P["conv.bias"], stride=2, padding=1,
                 dilation=2)
    y = F.max_pool2d(F.relu(y), 3, stride=2, padding=1).flatten(1)
    h = F.linear(y, P["fc1.weight"], P["fc1.bias"])
    z = F.linear(F.relu(h) + h, P["fc2.weight"])
    loss = F.nll_loss(F.log_softmax(z, 1), torch.tensor(labels, dtype=torch.long))
    loss.backward()
    return float(loss.detach()), {k: v.grad.numpy() for k, v in P.items()}


def random_batch(model, n, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, *model.input_shape)).astype(np.float32)
    labels = rng.integers(0, model.classes, n).astype(np.int32)
    return x, labels


def tiny_data(model, n=12, seed=0):
    """A dataset for ``fit``: ``n`` random images as both its train and its test split."""
    x, y = random_batch(model, n, seed)

    class Data:
        class train:
            @staticmethod
            def tensors():
                return x, y
        test = train
    return Data
