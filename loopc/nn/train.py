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

import math
import time
from dataclasses import dataclass, field

import numpy as np

from loopc.errors import ArgumentError, LoopcError

from loopc.runtime.files import atomic_path, atomic_write  # noqa: F401 - re-exported

from .optim import OPTIMIZERS


class TrainingDiverged(LoopcError):
    """The loss became NaN or infinite: the weights are no longer usable."""


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
    test_batch_size: int | None = None   # the test pass's batch (default: batch_size)

    def __post_init__(self):
        self.validate()

    def validate(self) -> "TrainConfig":
        """Raise ArgumentError naming the first field out of range (checked before training)."""
        for name in ("epochs", "batch_size", "log_every"):
            check_int(f"TrainConfig.{name}", getattr(self, name), low=1)
        check_int("TrainConfig.seed", self.seed, low=0)
        if self.test_batch_size is not None:
            check_int("TrainConfig.test_batch_size", self.test_batch_size, low=1)
        if self.optimizer not in OPTIMIZERS:
            raise ArgumentError(f"TrainConfig.optimizer: unknown optimizer {self.optimizer!r}; "
                                f"choose {' or '.join(map(repr, OPTIMIZERS))}")
        check_float("TrainConfig.lr", self.lr, low=0.0, low_open=True)
        check_float("TrainConfig.momentum", self.momentum, low=0.0, high=1.0)
        check_float("TrainConfig.gamma", self.gamma, low=0.0, low_open=True)
        last = self.lr_at(self.epochs)
        if not (math.isfinite(last) and last > 0):
            raise ArgumentError(f"TrainConfig.gamma: lr {self.lr:g} x gamma {self.gamma:g}^{self.epochs - 1} "
                                f"is {last:g} in the last epoch; choose a gamma closer to 1 or fewer epochs")
        return self

    @property
    def test_batch(self) -> int:
        return self.batch_size if self.test_batch_size is None else self.test_batch_size

    def lr_at(self, epoch: int) -> float:
        """The learning rate of ``epoch`` (1-based): lr * gamma^(epoch - 1); inf on overflow."""
        try:
            return self.lr * self.gamma ** (epoch - 1)
        except OverflowError:
            return math.inf


def check_int(name: str, value, low: int = None) -> int:
    """``value`` as an int >= ``low``; ArgumentError naming ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or (low is not None and value < low):
        bound = f" >= {low}" if low is not None else ""
        raise ArgumentError(f"{name} must be an int{bound}, got {value!r}")
    return int(value)


def check_float(name: str, value, low: float = None, high: float = None, low_open: bool = False) -> float:
    """``value`` as a finite float in [low, high) (``(low, ...`` with ``low_open``); ArgumentError otherwise."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    ok = ok and math.isfinite(value)
    ok = ok and (low is None or (value > low if low_open else value >= low)) and (high is None or value < high)
    if not ok:
        lo = "" if low is None else f"{'>' if low_open else '>='} {low:g}"
        hi = "" if high is None else f"< {high:g}"
        bound = " and ".join(b for b in (lo, hi) if b)
        raise ArgumentError(f"{name} must be a finite number{' ' + bound if bound else ''}, got {value!r}")
    return float(value)


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
        if not self.epochs:
            raise LoopcError("History.last: no epoch has completed yet")
        return self.epochs[-1]


def make_optimizer(model, cfg: TrainConfig):
    """The optimizer ``cfg`` names, over ``model``'s parameters."""
    cfg.validate()
    if cfg.optimizer == "sgd":
        return OPTIMIZERS["sgd"](model.store, lr=cfg.lr, momentum=cfg.momentum, kernels=model.kernels)
    return OPTIMIZERS[cfg.optimizer](model.store, lr=cfg.lr, kernels=model.kernels)


def train_epoch(model, opt, x, labels, batch_size, rng, *, progress=None, on_step=None):
    """One pass over (x, labels) in shuffled minibatches; returns (mean loss, accuracy).
    Raises TrainingDiverged at the first step whose loss is NaN or infinite."""
    batch_size = check_int("batch_size", batch_size, low=1)
    if len(x) != len(labels):
        raise ArgumentError(f"train_epoch: {len(x)} images but {len(labels)} labels")
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
        if not math.isfinite(loss):
            raise TrainingDiverged(f"the loss became {loss} at step {start // batch_size + 1} of the epoch (lr "
                                   f"{opt.lr:g}): training diverged; lower the learning rate "
                                   "(--lr), --momentum or --gamma")
        total_loss += loss * len(idx)
        correct += int((ex[tg.logp].argmax(axis=1) == ex[tg.labels]).sum())
        seen += len(idx)
        if progress is not None:
            progress.update(len(idx))
            progress.set_postfix(loss=f"{loss:.4f}", refresh=False)
        if on_step is not None:
            on_step(loss)
    return total_loss / max(seen, 1), correct / max(seen, 1)


def fit(model, data, cfg: TrainConfig, *, writer=None, progress: bool = True, log=print,
        on_epoch=None) -> History:
    """Train ``model`` on ``data.train`` for ``cfg.epochs``; evaluate on ``data.test`` after each.
    ``on_epoch(result)`` runs after each completed epoch whose weights are all finite (save them
    there); a NaN or infinite loss or weight raises TrainingDiverged."""
    from tqdm import tqdm

    if not isinstance(cfg, TrainConfig):
        raise ArgumentError(f"fit(cfg): expected a TrainConfig, got {type(cfg).__name__}")
    cfg.validate()
    x, y = _split_tensors(data, "train")
    tx, ty = _split_tensors(data, "test")
    if len(y) == 0:
        raise ArgumentError("fit: the training split is empty; give a dataset with training images")
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

    compile_s = prepare_kernels(model, cfg.batch_size, len(y), cfg.test_batch, len(ty))
    if log is not None:
        log(f"kernels compiled or fetched in {compile_s:.1f} s (before epoch 1: the epoch times exclude it)")
    for epoch in range(1, cfg.epochs + 1):
        lr = cfg.lr_at(epoch)
        opt.set_lr(lr)
        bar = tqdm(total=len(y), desc=f"epoch {epoch}/{cfg.epochs}", unit="img", disable=None if progress else True,
                   leave=False, dynamic_ncols=True)
        t0 = time.perf_counter()
        with bar:
            train_loss, train_acc = train_epoch(model, opt, x, y, cfg.batch_size, rng, progress=bar, on_step=on_step)
        seconds = time.perf_counter() - t0
        test_loss, test_acc = model.evaluate(tx, ty, batch=cfg.test_batch)
        _check_finite(model, epoch, test_loss)
        r = EpochResult(epoch, train_loss, train_acc, test_loss, test_acc, seconds, len(y) / seconds, lr)
        history.epochs.append(r)
        if log is not None:
            log(r.line())
        if writer is not None:
            for tag, v in (("train/loss_epoch", train_loss), ("train/accuracy", train_acc),
                           ("test/loss", test_loss), ("test/accuracy", test_acc), ("train/lr", lr)):
                writer.add_scalar(tag, v, epoch)
            writer.flush()
        if on_epoch is not None:
            on_epoch(r)
    return history


def prepare_kernels(model, batch_size: int, n_train: int, test_batch: int, n_test: int) -> float:
    """Build (or fetch from the kernel cache) every executor an epoch uses: the training batch,
    the shorter last batch and the test batch; returns the seconds it took, so that epoch
    times measure training alone."""
    t0 = time.perf_counter()
    sizes = {min(batch_size, n_train)} | ({n_train % batch_size} if n_train > batch_size else set())
    for b in sorted(sizes - {0}):
        model.executor(b)
    if n_test:
        model.executor(min(test_batch, n_test), train=False)    # log_probs pads a short last chunk
    return time.perf_counter() - t0


def _split_tensors(data, split: str):
    """``data.<split>.tensors()``; ArgumentError when ``data`` is not a dataset (loopc.nn.datasets.MNIST)."""
    tensors = getattr(getattr(data, split, None), "tensors", None)
    if not callable(tensors):
        raise ArgumentError(f"fit(data): expected a dataset with .train and .test splits (loopc.nn.datasets.mnist()), "
                            f"got {type(data).__name__}")
    return tensors()


def _check_finite(model, epoch: int, test_loss: float) -> None:
    """TrainingDiverged when the weights or the test loss after ``epoch`` are NaN or infinite."""
    bad = [k for k in model.param_shapes if not np.isfinite(model.store[k]).all()]
    if bad or not math.isfinite(test_loss):
        what = f"the weights {', '.join(bad)} hold NaN or inf" if bad else f"the test loss is {test_loss}"
        raise TrainingDiverged(f"after epoch {epoch} {what}: training diverged; lower the learning rate "
                               "(--lr), --momentum or --gamma")
