"""Training: minibatch SGD-momentum or Adadelta on loopc kernels, with per-epoch metrics.

    model = LeNet(seed=0)
    data = datasets.mnist()
    history = fit(model, data, TrainConfig(epochs=3, batch_size=64, optimizer="adadelta", lr=1.0))

Each step gathers a batch straight into the executor's input buffers (``numpy.take`` with
``out=``: no allocation), runs the forward and backward kernels, then the optimizer kernel.
The shuffled epoch's last, shorter batch runs on an executor of its own size. After each
epoch the learning rate is multiplied by ``gamma`` (PyTorch's StepLR, as in the chapter's
script) and the test split is evaluated. A tqdm bar shows the running loss; a ``logdir``
gets TensorBoard scalars (per step and per epoch) and the forward+backward graph.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .optim import OPTIMIZERS


@dataclass
class TrainConfig:
    epochs: int = 3
    batch_size: int = 64
    optimizer: str = "adadelta"      # or "sgd" (with momentum)
    lr: float = 1.0
    momentum: float = 0.9            # sgd only
    gamma: float = 0.7               # learning-rate decay per epoch (StepLR, step 1)
    seed: int = 0                    # shuffling
    log_every: int = 10              # steps between TensorBoard loss points


@dataclass
class EpochResult:
    epoch: int
    train_loss: float
    train_accuracy: float
    test_loss: float
    test_accuracy: float
    seconds: float
    images_per_second: float
    lr: float

    def line(self) -> str:
        return (f"epoch {self.epoch}: train loss {self.train_loss:.4f}  train acc {self.train_accuracy:6.2%}  "
                f"test loss {self.test_loss:.4f}  test acc {self.test_accuracy:6.2%}  "
                f"({self.seconds:.1f} s, {self.images_per_second:,.0f} img/s, lr {self.lr:g})")


@dataclass
class History:
    epochs: list = field(default_factory=list)

    @property
    def last(self) -> EpochResult:
        return self.epochs[-1]


def make_optimizer(model, cfg: TrainConfig):
    if cfg.optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {cfg.optimizer!r}; choose {' or '.join(OPTIMIZERS)}")
    if cfg.optimizer == "sgd":
        return OPTIMIZERS["sgd"](model.store, lr=cfg.lr, momentum=cfg.momentum)
    return OPTIMIZERS[cfg.optimizer](model.store, lr=cfg.lr)


def train_epoch(model, opt, x, labels, batch_size, rng, *, progress=None, on_step=None):
    """One pass over (x, labels) in shuffled minibatches; returns (mean loss, accuracy)."""
    order = rng.permutation(len(labels))
    total_loss, correct, seen = 0.0, 0, 0
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        ex = model.executor(len(idx))
        tg = ex.train_graph
        np.take(x, idx, axis=0, out=ex[tg.x], mode="clip")   # "raise" would buffer
        np.take(labels, idx, axis=0, out=ex[tg.labels], mode="clip")
        ex.check_indices()
        ex.run()
        opt.step()
        loss = float(ex[tg.loss][0])
        total_loss += loss * len(idx)
        correct += int((ex[tg.logp].argmax(axis=1) == ex[tg.labels]).sum())
        seen += len(idx)
        if progress is not None:
            progress.update(len(idx))
            progress.set_postfix(loss=f"{loss:.4f}", refresh=False)
        if on_step is not None:
            on_step(loss)
    return total_loss / max(seen, 1), correct / max(seen, 1)


def fit(model, data, cfg: TrainConfig, *, writer=None, progress: bool = True, log=print) -> History:
    """Train ``model`` on ``data.train`` for ``cfg.epochs``; evaluate on ``data.test`` after each."""
    from tqdm import tqdm

    x, y = data.train.tensors()
    tx, ty = data.test.tensors()
    opt = make_optimizer(model, cfg)
    rng = np.random.default_rng(cfg.seed)
    history = History()
    step = 0
    if writer is not None:
        writer.add_graph(model.executor(min(cfg.batch_size, len(y))).train_graph.graph)

    def on_step(loss):
        nonlocal step
        step += 1
        if writer is not None and step % cfg.log_every == 0:
            writer.add_scalar("train/loss", loss, step)

    for epoch in range(1, cfg.epochs + 1):
        lr = cfg.lr * cfg.gamma ** (epoch - 1)
        opt.set_lr(lr)
        bar = tqdm(total=len(y), desc=f"epoch {epoch}/{cfg.epochs}", unit="img", disable=None if progress else True,
                   leave=False, dynamic_ncols=True)
        t0 = time.perf_counter()
        with bar:
            train_loss, train_acc = train_epoch(model, opt, x, y, cfg.batch_size, rng, progress=bar, on_step=on_step)
        seconds = time.perf_counter() - t0
        test_loss, test_acc = model.evaluate(tx, ty, batch=cfg.batch_size)
        r = EpochResult(epoch, train_loss, train_acc, test_loss, test_acc, seconds, len(y) / seconds, lr)
        history.epochs.append(r)
        if log is not None:
            log(r.line())
        if writer is not None:
            for tag, v in (("train/loss_epoch", train_loss), ("train/accuracy", train_acc),
                           ("test/loss", test_loss), ("test/accuracy", test_acc), ("train/lr", lr)):
                writer.add_scalar(tag, v, epoch)
            writer.flush()
    return history
