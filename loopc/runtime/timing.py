"""Timing compiled functions: ``time_evaluator`` in TVM's style, medians included."""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Tuple


@dataclass(frozen=True)
class ProfileResult:
    """Seconds per call: ``results`` holds one mean per repeat."""
    mean: float
    median: float
    results: Tuple[float, ...]

    @property
    def min(self) -> float:
        return min(self.results)


def time_evaluator(call, number: int = 10, repeat: int = 3, min_repeat_ms: float = 0,
                   sync=None, warmup: int = 1):
    """A function that times ``call(*args)``: ``repeat`` rounds of ``number`` calls each.

    With ``min_repeat_ms``, ``number`` grows until one round lasts at least that long.
    ``sync`` (e.g. a device synchronise) runs before each clock read.
    """
    if number < 1 or repeat < 1:
        raise ValueError("time_evaluator needs number >= 1 and repeat >= 1")
    sync = sync or (lambda: None)

    def evaluator(*args) -> ProfileResult:
        for _ in range(warmup):
            call(*args)
        n = number
        results = []
        for _ in range(repeat):
            while True:
                sync()
                t0 = time.perf_counter()
                for _ in range(n):
                    call(*args)
                sync()
                elapsed = time.perf_counter() - t0
                if elapsed * 1e3 >= min_repeat_ms or n >= 1 << 30:
                    break
                n = max(n * 2, int(n * min_repeat_ms / max(elapsed * 1e3, 1e-3)) + 1)
            results.append(elapsed / n)
        return ProfileResult(statistics.fmean(results), statistics.median(results), tuple(results))

    return evaluator
