"""Timing compiled functions: ``time_evaluator`` in TVM's style, medians included."""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Tuple

from ..errors import ArgumentError


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
    for name, value in (("number", number), ("repeat", repeat), ("warmup", warmup)):
        if not isinstance(value, int) or isinstance(value, bool) or value < (0 if name == "warmup" else 1):
            raise ArgumentError(f"time_evaluator: {name}={value!r} must be an int >= "
                                f"{0 if name == 'warmup' else 1}")
    if not isinstance(min_repeat_ms, (int, float)) or not 0 <= min_repeat_ms < float("inf"):
        raise ArgumentError(f"time_evaluator: min_repeat_ms={min_repeat_ms!r} must be a finite number >= 0")
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
