"""The tuner interface and its measurement loop.

    tuner = autotune.ModelTuner(task, seed=0)
    tuner.tune(n_trial=64, measure_option=autotune.measure_option(),
               early_stopping=None, callbacks=[autotune.log_to_file("gemm.jsonl"),
                                               autotune.progress_bar(64)])

A subclass only decides *what* to measure: ``next_batch(n)`` returns up to ``n`` configs never
measured before, and ``update(inputs, results)`` learns from the measurements.

``n_trial`` is the budget of the whole log: a tuner given ``log_to_file(path)`` first reads the
records of this workload and target in ``path`` and counts them as done, so a run restarted
on the same log measures only the configs it has not measured yet.
"""
from __future__ import annotations

import numpy as np

from ..errors import LoopcError
from .dispatcher import target_key
from .measure import MeasureInput, MeasureResult, close_option, measure_batch
from .task import workload_key


class Tuner:
    def __init__(self, task, seed=None):
        self.task = task
        self.space = task.config_space
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.visited = set()        # config indices measured (or in flight)
        self.scores = {}            # config index -> GFLOP/s (0 for errors)
        self.best_flops = 0.0       # FLOP/s
        self.best_config = None
        self.best_result = None
        self.best_trial = 0
        self.n_trials = 0
        self.n_errors = 0
        self.trial_log = []         # [(config index, FLOP/s)] in measurement order

    # ------------------------------------------------------------------ search (subclasses)

    def next_batch(self, n):
        """Up to ``n`` configs (ConfigEntity) not in ``self.visited``."""
        raise NotImplementedError

    def update(self, inputs, results):
        """Learn from measurements (also called with the records of a resumed log)."""

    def has_next(self):
        return len(self.visited) < len(self.space)

    # ------------------------------------------------------------------ helpers

    def random_unvisited(self, n, exclude=()):
        """Up to ``n`` distinct random config indices outside ``visited`` and ``exclude``."""
        size = len(self.space)
        taken = set(self.visited) | set(exclude)
        left = size - len(taken)
        n = min(n, left)
        if n <= 0:
            return []
        if len(taken) > size // 2 and size <= 5_000_000:
            rest = np.setdiff1d(np.arange(size, dtype=np.int64), np.fromiter(taken, dtype=np.int64))
            return [int(x) for x in self.rng.choice(rest, n, replace=False)]
        out = []
        while len(out) < n:
            i = int(self.rng.integers(size))
            if i not in taken:
                taken.add(i)
                out.append(i)
        return out

    def _account(self, inp, res: MeasureResult):
        self.n_trials += 1
        flops = self.task.flop / res.cost if res.ok and res.cost > 0 else 0.0
        if not res.ok:
            self.n_errors += 1
        if inp.config.index is not None:
            self.scores[inp.config.index] = flops / 1e9
        self.trial_log.append((inp.config.index, flops))
        if flops > self.best_flops:
            self.best_flops, self.best_config, self.best_result = flops, inp.config, res
            self.best_trial = self.n_trials

    # ------------------------------------------------------------------ resuming

    def load_history(self, records):
        """Take measured records of this task as done; returns how many distinct configs."""
        wk = workload_key(self.task.workload)
        inputs, results = [], []
        for r in records:
            if r.workload_key != wk:
                continue
            idx = self.space.index_of(r.config_entity())
            if idx is None or idx in self.visited:
                continue
            self.visited.add(idx)
            inp = MeasureInput(self.task, self.space.get(idx))
            res = MeasureResult(costs=tuple(r.costs), error=r.error, build_seconds=r.build_seconds,
                                timestamp=r.timestamp, target=r.target, trace=r.trace)
            self._account(inp, res)
            inputs.append(inp)
            results.append(res)
        if inputs:
            self.update(inputs, results)
        return len(inputs)

    def _resume(self, callbacks, runner):
        targets = {target_key(t) for t in runner_targets(runner, self.task)}
        n = 0
        for cb in callbacks:
            history = getattr(cb, "history", None)
            if history is None:
                continue
            recs = [r for r in history() if targets is None or target_key(r.target) in targets]
            n += self.load_history(recs)
        return n

    # ------------------------------------------------------------------ the loop

    def tune(self, n_trial, measure_option, early_stopping=None, callbacks=()):
        """Measure up to ``n_trial`` configs (records already in a ``log_to_file`` log count),
        stopping early after ``early_stopping`` trials without improvement. A callback's
        ``prepare()`` runs first: a log that cannot be written fails before any measurement."""
        if not isinstance(measure_option, dict) or "runner" not in measure_option:
            raise LoopcError("tune(measure_option=...) needs autotune.measure_option(builder=..., runner=...)")
        n_trial = _count(n_trial, "n_trial", 0)
        if early_stopping is not None:
            early_stopping = _count(early_stopping, "early_stopping", 1)
        callbacks = list(callbacks)
        try:
            for cb in callbacks:
                prepare = getattr(cb, "prepare", None)
                if prepare is not None:
                    prepare()
            self._resume(callbacks, measure_option["runner"])
            done = self.n_trials
            for cb in callbacks:
                hook = getattr(cb, "on_tune_start", None)
                if hook is not None:
                    hook(self, done)
            while done < n_trial and self.has_next():
                if early_stopping is not None and self.n_trials - self.best_trial >= early_stopping:
                    break
                measured = self.measure_next(measure_option, n_trial - done, callbacks)
                if not measured:
                    break
                done += measured
        finally:
            close_option(measure_option)
            for cb in callbacks:
                hook = getattr(cb, "on_tune_end", None)
                if hook is not None:
                    hook(self)

    def batch_size(self, measure_option) -> int:
        """Candidates measured per batch: what the builder (or a remote runner) runs at once."""
        runner, builder = measure_option["runner"], measure_option["builder"]
        return max(1, int(getattr(runner, "n_parallel", None) or getattr(builder, "n_parallel", 1)))

    def measure_next(self, measure_option, limit=None, callbacks=()):
        """Measure one batch of new configs (at most ``limit``); returns how many were measured
        (0 when the tuner has nothing left to propose). ``tune`` is a loop around this."""
        n = self.batch_size(measure_option) if limit is None else min(self.batch_size(measure_option), limit)
        configs = [c for c in self.next_batch(n) if c.index not in self.visited]
        if not configs:
            return 0
        self.visited.update(c.index for c in configs)
        inputs = [MeasureInput(self.task, c) for c in configs]
        results = [None] * len(inputs)
        for i, res in measure_batch(measure_option, inputs):
            results[i] = res
            self._account(inputs[i], res)
            for cb in callbacks:
                cb(self, [inputs[i]], [res])
        self.update(inputs, results)
        return len(inputs)


def _count(value, what, least):
    """``value`` as an int >= ``least``; LoopcError naming ``what`` otherwise."""
    whole = isinstance(value, (int, np.integer)) or (isinstance(value, float) and value.is_integer())
    if isinstance(value, bool) or not whole or value < least:
        raise LoopcError(f"tune({what}=...) must be an integer >= {least}, got {value!r}")
    return int(value)


def runner_targets(runner, task):
    targets = getattr(runner, "targets", None)
    return set(targets(task)) if targets is not None else {task.target_string}
