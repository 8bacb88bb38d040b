"""Timing compiled functions: ``time_evaluator`` in TVM's style, medians included.

One timing loop serves every backend; what differs is the clock. A clock has ``start()`` and
``stop() -> seconds`` around one round of calls: :class:`WallClock` (``time.perf_counter``,
with an optional device synchronise before each read) is the CPU's; the CUDA backend passes
one that records CUDA events (see ``loopc.targets.cuda.device.clock``).
"""
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


class WallClock:
    """``time.perf_counter`` around a round of calls; ``sync`` (e.g. a device synchronise)
    runs before each clock read."""

    def __init__(self, sync=None):
        self.sync = sync
        self._t0 = 0.0

    def start(self) -> None:
        if self.sync is not None:
            self.sync()
        self._t0 = time.perf_counter()

    def stop(self) -> float:
        if self.sync is not None:
            self.sync()
        return time.perf_counter() - self._t0


def check_timing_options(number, repeat, min_repeat_ms, warmup=1) -> None:
    """ArgumentError unless the counts are ints >= 1 (warmup >= 0) and min_repeat_ms is finite >= 0."""
    for name, value in (("number", number), ("repeat", repeat), ("warmup", warmup)):
        if not isinstance(value, int) or isinstance(value, bool) or value < (0 if name == "warmup" else 1):
            raise ArgumentError(f"time_evaluator: {name}={value!r} must be an int >= "
                                f"{0 if name == 'warmup' else 1}")
    if not isinstance(min_repeat_ms, (int, float)) or not 0 <= min_repeat_ms < float("inf"):
        raise ArgumentError(f"time_evaluator: min_repeat_ms={min_repeat_ms!r} must be a finite number >= 0")


def time_evaluator(call, number: int = 10, repeat: int = 3, min_repeat_ms: float = 0,
                   sync=None, warmup: int = 1, clock=None):
    """A function that times ``call(*args)``: ``repeat`` rounds of ``number`` calls each.

    With ``min_repeat_ms``, ``number`` grows until one round lasts at least that long.
    ``clock`` (default: a :class:`WallClock` with ``sync``, e.g. a device synchronise, before
    each clock read) measures each round.
    """
    check_timing_options(number, repeat, min_repeat_ms, warmup)
    clock = clock if clock is not None else WallClock(sync)

    def evaluator(*args) -> ProfileResult:
        for _ in range(warmup):
            call(*args)
        n = number
        results = []
        for _ in range(repeat):
            while True:
                clock.start()
                for _ in range(n):
                    call(*args)
                elapsed = clock.stop()
                if elapsed * 1e3 >= min_repeat_ms or n >= 1 << 30:
                    break
                n = max(n * 2, int(n * min_repeat_ms / max(elapsed * 1e3, 1e-3)) + 1)
            results.append(elapsed / n)
        return ProfileResult(statistics.fmean(results), statistics.median(results), tuple(results))
    return evaluator
