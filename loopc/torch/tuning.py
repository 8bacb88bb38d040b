"""Tuning a PyTorch model's kernels (AutoTVM's extract_from_program, then a tuning loop).

    tasks = loopc.torch.extract_tasks(model, (x,))          # the tunable workloads, biggest first
    loopc.torch.tune(model, (x,), trials=200, log="model.jsonl")
    fast = torch.compile(model, backend="loopc", options={"records": "model.jsonl"})

The workloads are the convolutions, dense layers and matrix products the backend compiles
for the model (forward, and backward with ``training=True``) that have a tuning template.
The trial budget is shared in proportion to each workload's share of the model's floating-point
work (each gets at least ``min_trials``): time goes where the FLOPs are.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from loopc.errors import ArgumentError


@dataclass
class TuningTask:
    """One tunable workload of a model: the autotune task, how often the model runs it, its FLOPs."""
    task: object
    description: str
    count: int
    flop: int

    @property
    def weight(self) -> int:
        return self.flop * self.count


def extract_tasks(model, example_inputs, training: bool = False) -> list:
    """The model's tunable workloads (``TuningTask``), largest share of the FLOPs first."""
    from loopc import autotune
    from loopc.schedule import post_order_ops
    from loopc.schedules import tasks
    from loopc.te.tensor import ComputeOp

    from .backend import explain
    torch._dynamo.reset()
    report = explain(model, *example_inputs, backward=training)
    torch._dynamo.reset()
    found = {}
    for outs in report.outputs:
        for op in post_order_ops([o.op for o in outs]):
            if not isinstance(op, ComputeOp):
                continue
            out = op.output(0)
            name, args = tasks.workload(out)
            tw = tasks.task_workload(tasks.workload_key(out), "llvm")
            if tw is None:
                continue
            key = (tw[0], tuple(tw[1]))
            if key not in found:
                task = autotune.create_task(tw[0], tuple(tw[1]), target="llvm")
                flop = 2 * math.prod(out.shape) * math.prod(iv.extent for iv in op.reduce_axis)
                found[key] = TuningTask(task, tasks.describe(out), 0, flop)
            found[key].count += 1
    return sorted(found.values(), key=lambda t: -t.weight)


def _share(tasks, trials, min_trials):
    total = sum(t.weight for t in tasks) or 1
    return [max(min_trials, round(trials * t.weight / total)) for t in tasks]


def tune(model, example_inputs, trials: int = 200, log="loopc_model.jsonl", training: bool = False,
         min_trials: int = 8, seconds: float | None = None, n_parallel: int | None = None,
         progress=print) -> list:
    """Tune ``model``'s workloads for ``example_inputs`` (a tuple of tensors) with about ``trials``
    measurements in all (``seconds``: also stop when this much time has passed), appending every
    measurement to ``log``. Returns ``[(TuningTask, trials spent, best GFLOP/s or None)]``.
    Compile with ``options={"records": log}`` to use the results."""
    from loopc import autotune
    from loopc.autotune.record import check_writable
    if not isinstance(example_inputs, (tuple, list)):
        raise ArgumentError("loopc.torch.tune: example_inputs must be a tuple of tensors, e.g. (x,)")
    if not isinstance(trials, int) or trials < 1:
        raise ArgumentError(f"loopc.torch.tune: trials must be a positive int, got {trials!r}")
    check_writable(str(log))
    found = extract_tasks(model, example_inputs, training)
    deadline = None if seconds is None else time.perf_counter() + seconds
    option = autotune.measure_option(builder=autotune.LocalBuilder(n_parallel=n_parallel, timeout=10.0),
                                     runner=autotune.LocalRunner(number=2, repeat=3, timeout=10.0))
    results = []
    for t, n in zip(found, _share(found, trials, min_trials)):
        if deadline is not None and time.perf_counter() > deadline:
            results.append((t, 0, None))
            continue
        tuner = autotune.ModelTuner(t.task, seed=0)
        done = 0
        while done < n and tuner.has_next() and (deadline is None or time.perf_counter() < deadline):
            step = min(8, n - done)
            tuner.tune(done + step, option, callbacks=[autotune.log_to_file(str(log))])
            done += step
        best = [r for r in autotune.load_records(str(log), warn=False) if r.ok and r.workload == t.task.workload]
        gflops = max((r.gflops for r in best), default=None)
        results.append((t, done, gflops))
        if progress is not None:
            shown = "-" if gflops is None else f"{gflops:.1f} GFLOP/s"
            progress(f"tuned {t.description} (x{t.count}, {done} trials): best {shown}")
    return results
