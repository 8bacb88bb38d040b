"""Tuning callbacks: ``callback(tuner, inputs, results)`` after each measurement.

A callback may also have ``on_tune_start(tuner, n_done)`` and ``on_tune_end(tuner)``.
"""
from __future__ import annotations

import os
import sys

from .record import append_record, check_writable, load_records, make_record


class LogToFile:
    """Appends one JSON line per measurement to ``path`` and flushes it. A tuner that gets this
    callback resumes from the records already in ``path`` (they are not measured again)."""

    def __init__(self, path):
        self.path = os.fspath(path)

    def prepare(self):
        """Before any measurement: RecordError when the log is a directory or not writable."""
        check_writable(self.path)

    def __call__(self, tuner, inputs, results):
        for inp, res in zip(inputs, results):
            append_record(self.path, make_record(inp, res, tuner=type(tuner).__name__))

    def history(self):
        """The records already in the file (for resuming)."""
        return load_records(self.path)

    def __repr__(self):
        return f"log_to_file({self.path!r})"


def log_to_file(path) -> LogToFile:
    """A callback that appends every measurement to the JSON Lines log ``path``."""
    return LogToFile(path)


class ProgressBar:
    """A tqdm bar: trials done, trials/s, ETA, and the best GFLOP/s so far."""

    def __init__(self, total, prefix="", file=None, **tqdm_kwargs):
        self.total = int(total)
        self.prefix = prefix
        self.file = file
        self.tqdm_kwargs = tqdm_kwargs
        self.bar = None

    def on_tune_start(self, tuner, n_done):
        from tqdm.auto import tqdm
        desc = self.prefix or f"{tuner.task.name}"
        self.bar = tqdm(total=self.total, initial=min(n_done, self.total), desc=desc, unit="trial",
                        file=self.file if self.file is not None else sys.stderr, dynamic_ncols=True,
                        **self.tqdm_kwargs)
        self._postfix(tuner)

    def _postfix(self, tuner):
        self.bar.set_postfix_str(f"best {tuner.best_flops / 1e9:.2f} GFLOP/s, errors {tuner.n_errors}",
                                 refresh=False)

    def __call__(self, tuner, inputs, results):
        if self.bar is None:
            self.on_tune_start(tuner, 0)
        self._postfix(tuner)
        self.bar.update(len(results))

    def on_tune_end(self, tuner):
        if self.bar is not None:
            self._postfix(tuner)
            self.bar.close()
            self.bar = None


def progress_bar(total, prefix="", file=None, **tqdm_kwargs) -> ProgressBar:
    """A callback that draws a progress bar of ``total`` trials with the best GFLOP/s so far,
    trials per second and the ETA."""
    return ProgressBar(total, prefix, file, **tqdm_kwargs)
