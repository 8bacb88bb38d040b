"""LeNet-5 for 1x28x28 MNIST digits, on loopc kernels.

The variant (the usual one for 28x28 inputs: the chapter's listing takes 3x32x32 and no
padding; padding conv1 by 2 gives the same 6x28x28 feature maps from a 28x28 digit)::

    x       1x28x28
    conv1   6 filters 5x5, padding 2, + bias     -> 6x28x28     relu
    pool1   max 2x2, stride 2                    -> 6x14x14
    conv2   16 filters 5x5, + bias               -> 16x10x10    relu
    pool2   max 2x2, stride 2                    -> 16x5x5      flatten -> 400
    fc1     400 -> 120, + bias, relu
    fc2     120 -> 84, + bias, relu
    fc3     84 -> 10, + bias
    log_softmax over the 10 classes; the loss is the mean negative log-likelihood

61,706 parameters, initialised as PyTorch initialises Conv2d and Linear (uniform in
±1/sqrt(fan_in) for weights and biases).

``save(path)`` / ``load(path)`` keep the weights in one .npz (see loopc.nn.weights).
"""
from __future__ import annotations

import math

from loopc.errors import ArgumentError

from .model import Model
from .train import check_int

PARAM_SHAPES = {
    "conv1.weight": (6, 1, 5, 5), "conv1.bias": (6,),
    "conv2.weight": (16, 6, 5, 5), "conv2.bias": (16,),
    "fc1.weight": (120, 400), "fc1.bias": (120,),
    "fc2.weight": (84, 120), "fc2.bias": (84,),
    "fc3.weight": (10, 84), "fc3.bias": (10,),
}


class LeNet(Model):
    """``LeNet(seed=0)``; ``train_step(x, labels)``, ``predict(x)``, ``executor(batch)``."""
    name = "lenet5"
    input_shape = (1, 28, 28)
    classes = 10
    param_shapes = PARAM_SHAPES

    def __init__(self, seed: int = 0, target: str = "llvm", kernels=None):
        check_int("LeNet(seed)", seed, low=0)
        if not isinstance(target, str):
            raise ArgumentError(f"LeNet(target): expected a target string such as 'llvm' or 'cuda', got {target!r}")
        super().__init__(seed=seed, target=target, kernels=kernels)

    def init(self, rng) -> None:
        for name, shape in self.param_shapes.items():
            layer = name.rsplit(".", 1)[0]
            fan_in = math.prod(self.param_shapes[layer + ".weight"][1:])
            bound = 1.0 / math.sqrt(fan_in)
            self.store[name][...] = rng.uniform(-bound, bound, size=shape)

    def forward(self, g, x, p):
        y = g.conv2d(x, p["conv1.weight"], padding=2, scope="conv1")
        y = g.relu(g.bias_add(y, p["conv1.bias"], scope="conv1"), scope="conv1")
        y = g.max_pool2d(y, 2, scope="pool1")
        y = g.conv2d(y, p["conv2.weight"], scope="conv2")
        y = g.relu(g.bias_add(y, p["conv2.bias"], scope="conv2"), scope="conv2")
        y = g.max_pool2d(y, 2, scope="pool2")
        y = g.flatten(y, scope="flatten")
        for i, last in ((1, False), (2, False), (3, True)):
            y = g.bias_add(g.dense(y, p[f"fc{i}.weight"], scope=f"fc{i}"), p[f"fc{i}.bias"], scope=f"fc{i}")
            if not last:
                y = g.relu(y, scope=f"fc{i}")
        return g.log_softmax(y, axis=1, scope="output")

    def activation_bytes(self, batch: int) -> int:
        """Bytes of the inputs, activations and gradients of a training step at ``batch`` (weights not counted)."""
        g = self.build_graph(check_int("batch", batch, low=1)).graph
        return sum(v.nbytes for v in g.values() if v.kind != "param")
