"""The chapter's MNIST script (pytorch/examples' ``mnist/main.py``) on ``torch.compile(backend="loopc")``
(``loopc lenet train --model chapter``).

    from loopc.apps import chapter_train
    from loopc.nn import datasets
    from loopc.torch.models import ChapterNet

    report = loopc.torch.graph.Report()
    history = chapter_train.fit(ChapterNet(), datasets.mnist(), epochs=1, report=report)
    print(history[-1].test_line())       # Test set: Average loss: 0.1021, Accuracy: 968/1000 (97%)
    print(report)                        # what ran on loopc kernels, what fell back to PyTorch

The recipe is the chapter's: Adadelta lr 1.0 (``loopc.torch.optim.Adadelta``: torch.optim's math on
loopc's update kernel), ``StepLR(step_size=1, gamma=0.7)``, shuffled training batches of 64, test
batches of 1000, ``F.nll_loss`` on the model's log-softmax, int64 labels, dropout as the model
has it (``model.train()`` while training, ``model.eval()`` and ``torch.no_grad()`` while testing).
The model's forward and backward run through the loopc TorchDynamo backend; the optimizer
step runs loopc's kernel. A NaN or infinite loss raises ``TrainingDiverged``.
"""
from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import dataclass

from loopc.errors import ArgumentError
from loopc.nn.train import TrainingDiverged, check_float, check_int

#: the chapter's recipe
BATCH_SIZE = 64
TEST_BATCH_SIZE = 1000
LR = 1.0
GAMMA = 0.7

#: float32 values one image keeps alive in ChapterNet's forward (input, conv1 and its relu,
#: conv2 and its relu, the pooled map with its indices and dropout mask, fc1, fc2)
_FLOATS_PER_IMAGE = 784 + 2 * 26 * 26 * 32 + 2 * 24 * 24 * 64 + 4 * 12 * 12 * 64 + 4 * 128 + 3 * 10


def activation_bytes(batch: int, training: bool = True) -> int:
    """About the memory one step of ChapterNet at ``batch`` images needs (gradients double it)."""
    return 4 * batch * _FLOATS_PER_IMAGE * (2 if training else 1)


@dataclass
class EpochMetrics:
    """One epoch: the mean training loss and accuracy, the test loss (mean of the per-image
    nll_loss) and the count of correct test predictions, the time and learning rate."""
    epoch: int
    train_loss: float
    train_correct: int
    train_total: int
    test_loss: float
    test_correct: int
    test_total: int
    seconds: float
    lr: float

    @property
    def train_accuracy(self) -> float:
        return self.train_correct / max(self.train_total, 1)

    @property
    def test_accuracy(self) -> float:
        return self.test_correct / max(self.test_total, 1)

    @property
    def images_per_second(self) -> float:
        return self.train_total / self.seconds if self.seconds > 0 else math.inf

    def train_line(self) -> str:
        return (f"Train Epoch: {self.epoch}\tAverage loss: {self.train_loss:.6f}, Accuracy: "
                f"{self.train_correct}/{self.train_total} ({100.0 * self.train_accuracy:.0f}%)\t"
                f"({self.seconds:.1f} s, {self.images_per_second:,.0f} img/s, lr {self.lr:g})")

    def test_line(self) -> str:
        """The chapter script's line."""
        return (f"Test set: Average loss: {self.test_loss:.4f}, Accuracy: {self.test_correct}/{self.test_total} "
                f"({100.0 * self.test_accuracy:.0f}%)")


def make_optimizer(model, optimizer: str = "adadelta", lr: float = LR, momentum: float = 0.9):
    """``loopc.torch.optim.Adadelta`` (the chapter's) or ``SGD`` with momentum over ``model``'s parameters."""
    from loopc.torch import optim
    if optimizer == "adadelta":
        return optim.Adadelta(model.parameters(), lr=lr)
    if optimizer == "sgd":
        return optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    raise ArgumentError(f"chapter_train: unknown optimizer {optimizer!r}; choose 'adadelta' or 'sgd'")


def _split(data, split: str):
    """(float32 images (N, 1, 28, 28), int64 labels) of ``data.<split>`` as torch tensors."""
    import torch
    tensors = getattr(getattr(data, split, None), "tensors", None)
    if not callable(tensors):
        raise ArgumentError(f"chapter_train.fit(data): expected a dataset with .train and .test splits "
                            f"(loopc.nn.datasets.mnist()), got {type(data).__name__}")
    x, y = tensors()
    return torch.from_numpy(x), torch.from_numpy(y).long()


def evaluate(model, x, y, batch_size: int = TEST_BATCH_SIZE):
    """(mean nll_loss, correct predictions) of ``model`` on (x, y), in eval mode without gradients."""
    import torch
    import torch.nn.functional as F
    model.eval()
    total, correct = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(y), batch_size):
            data, target = x[start:start + batch_size], y[start:start + batch_size]
            output = model(data)
            total += F.nll_loss(output, target, reduction="sum").item()
            correct += int((output.argmax(dim=1) == target).sum())
    return total / max(len(y), 1), correct


def warm_up(model, x, y, batch_size: int, tx, ty, test_batch_size: int) -> float:
    """Compile (or fetch) every graph an epoch runs — a training step at the batch size and at
    the shorter last batch, the test pass — without changing the weights, the buffers, the
    gradients or torch's random state; returns the seconds it took, so that epoch times measure training."""
    import torch
    import torch.nn.functional as F
    t0 = time.perf_counter()
    rng = torch.get_rng_state()
    buffers = [(b, b.detach().clone()) for b in model.buffers()]     # batch norm's running statistics
    sizes = {min(batch_size, len(y))} | ({len(y) % batch_size} if len(y) > batch_size else set())
    model.train()
    for b in sorted(sizes - {0}):
        F.nll_loss(model(x[:b]), y[:b]).backward()
    for p in model.parameters():
        p.grad = None
    if len(ty):
        evaluate(model, tx[:test_batch_size], ty[:test_batch_size], test_batch_size)
        if len(ty) > test_batch_size and len(ty) % test_batch_size:
            evaluate(model, tx[:len(ty) % test_batch_size], ty[:len(ty) % test_batch_size], test_batch_size)
    torch.set_rng_state(rng)
    with torch.no_grad():
        for b, saved in buffers:
            b.copy_(saved)
    return time.perf_counter() - t0


def train_epoch(model, opt, x, y, batch_size: int, generator, epoch: int = 1, progress=None):
    """One shuffled pass over (x, y) in ``model.train()`` mode: (mean loss, correct predictions).
    Raises TrainingDiverged at the first step whose loss is NaN or infinite."""
    import torch
    import torch.nn.functional as F
    model.train()
    order = torch.randperm(len(y), generator=generator)
    total, correct = 0.0, 0
    for step, start in enumerate(range(0, len(y), batch_size), 1):
        idx = order[start:start + batch_size]
        data, target = x[idx], y[idx]
        opt.zero_grad()
        output = model(data)
        loss = F.nll_loss(output, target)
        loss.backward()
        opt.step()
        value = loss.item()
        if not math.isfinite(value):
            raise TrainingDiverged(f"the loss became {value} at step {step} of epoch {epoch} (lr "
                                   f"{opt.param_groups[0]['lr']:g}): training diverged; lower the learning rate "
                                   "(--lr), --momentum or --gamma")
        total += value * len(idx)
        correct += int((output.detach().argmax(dim=1) == target).sum())
        if progress is not None:
            progress.update(len(idx))
            progress.set_postfix(loss=f"{value:.4f}", refresh=False)
    return total / max(len(y), 1), correct


def fit(model, data, epochs: int = 1, batch_size: int = BATCH_SIZE, test_batch_size: int = TEST_BATCH_SIZE,
        optimizer: str = "adadelta", lr: float = LR, momentum: float = 0.9, gamma: float = GAMMA, seed: int = 1,
        report=None, records=None, compiled: bool = True, progress: bool = True, log=print,
        on_epoch=None) -> list:
    """Train ``model`` (a ``torch.nn.Module`` returning log-probabilities, e.g. ChapterNet) on
    ``data.train`` and test it on ``data.test`` after every epoch (``data``: a
    ``loopc.nn.datasets.MNIST``). With ``compiled`` the model runs as
    ``torch.compile(model, backend="loopc", options={"report": report, "records": records})``
    (``report``: a ``loopc.torch.graph.Report`` to fill). ``seed`` seeds torch (dropout) and the
    shuffling. ``log`` gets the chapter's per-epoch lines (None: quiet); ``on_epoch(metrics)``
    runs after each epoch whose weights are finite (save them there). Returns the
    ``EpochMetrics`` of every epoch."""
    import torch
    from tqdm import tqdm

    epochs = check_int("epochs", epochs, low=1)
    batch_size = check_int("batch_size", batch_size, low=1)
    test_batch_size = check_int("test_batch_size", test_batch_size, low=1)
    seed = check_int("seed", seed, low=0)
    lr = check_float("lr", lr, low=0.0, low_open=True)
    gamma = check_float("gamma", gamma, low=0.0, low_open=True)
    if not isinstance(model, torch.nn.Module):
        raise ArgumentError(f"chapter_train.fit(model): expected a torch.nn.Module, got {type(model).__name__}")
    x, y = _split(data, "train")
    tx, ty = _split(data, "test")
    if len(y) == 0:
        raise ArgumentError("chapter_train.fit: the training split is empty; give a dataset with training images")
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    opt = make_optimizer(model, optimizer, lr, momentum)
    scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=gamma)
    run = model
    if compiled:
        options = {k: v for k, v in (("report", report), ("records", records)) if v is not None}
        run = torch.compile(model, backend="loopc", options=options)
    compile_s = warm_up(run, x, y, batch_size, tx, ty, test_batch_size) if compiled else 0.0
    if log is not None and compiled:
        log(f"kernels compiled or fetched in {compile_s:.1f} s (before epoch 1: the epoch times exclude it)")
    history = []
    for epoch in range(1, epochs + 1):
        epoch_lr = opt.param_groups[0]["lr"]
        bar = tqdm(total=len(y), desc=f"epoch {epoch}/{epochs}", unit="img", disable=None if progress else True,
                   leave=False, dynamic_ncols=True)
        t0 = time.perf_counter()
        with bar:
            train_loss, train_correct = train_epoch(run, opt, x, y, batch_size, generator, epoch, progress=bar)
        seconds = time.perf_counter() - t0
        test_loss, test_correct = evaluate(run, tx, ty, test_batch_size) if len(ty) else (math.nan, 0)
        scheduler.step()
        m = EpochMetrics(epoch, train_loss, train_correct, len(y), test_loss, test_correct, len(ty), seconds, epoch_lr)
        history.append(m)
        if log is not None:
            log(m.train_line())
            log(m.test_line())
        bad = [name for name, p in model.named_parameters() if not torch.isfinite(p).all()]
        if bad:
            raise TrainingDiverged(f"after epoch {epoch} the weights {', '.join(bad)} hold NaN or inf: training "
                                   "diverged; lower the learning rate (--lr), --momentum or --gamma")
        if on_epoch is not None:
            on_epoch(m)
    return history


def state_arrays(model) -> dict:
    """``model.state_dict()`` as numpy arrays (copies), for ``loopc.nn.weights.save_weights``;
    load them back with ``model.load_state_dict({k: torch.from_numpy(v) for k, v in numpy.load(path).items()})``."""
    return {k: v.detach().cpu().numpy().copy() for k, v in model.state_dict().items()}


class _DropReports(logging.Filter):
    def filter(self, record):
        return record.msg != "loopc.torch: %s"


@contextlib.contextmanager
def backend_reports_silenced():
    """The backend's per-graph "loopc.torch: N graphs: ..." log lines left out inside the block
    (for a caller that prints the whole ``Report`` once itself)."""
    logger = logging.getLogger("loopc.torch")
    f = _DropReports()
    logger.addFilter(f)
    try:
        yield
    finally:
        logger.removeFilter(f)
