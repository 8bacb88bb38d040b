"""Per-kernel profiling: ``with loopc.profile() as prof: ...`` then ``prof.table(top=10)``.

Every Module call made while a profiler is active is recorded (label, start, duration, FLOPs).
Modules are labelled by ``module.label`` (default: the function name) and count
``module.flop`` floating-point operations per call when their builder sets it.
"""
from __future__ import annotations

import json
import os
import threading
import time
from collections import defaultdict
from dataclasses import dataclass

from .files import atomic_write

_active = []          # profilers currently recording (innermost last)
_lock = threading.Lock()


@dataclass(frozen=True)
class Event:
    label: str
    start: float      # seconds, perf_counter
    seconds: float
    flop: int
    thread: int


def recording() -> bool:
    return bool(_active)


def record(label: str, start: float, seconds: float, flop: int = 0) -> None:
    ev = Event(label, start, seconds, flop, threading.get_ident())
    with _lock:
        for prof in _active:
            prof.events.append(ev)


class Profiler:
    """Collects kernel events while active (a context manager)."""

    def __init__(self):
        self.events = []
        self._t0 = None

    def __enter__(self):
        self._t0 = time.perf_counter()
        with _lock:
            _active.append(self)
        return self

    def __exit__(self, *exc):
        with _lock:
            _active.remove(self)
        return False

    def summary(self):
        """Per label: calls, total seconds, FLOPs — sorted by total time, largest first."""
        agg = defaultdict(lambda: [0, 0.0, 0])
        for ev in self.events:
            a = agg[ev.label]
            a[0] += 1
            a[1] += ev.seconds
            a[2] += ev.flop
        rows = [(label, n, total, flop) for label, (n, total, flop) in agg.items()]
        return sorted(rows, key=lambda r: -r[2])

    def table(self, top: int = 10) -> str:
        """The ``top`` operators by total time: calls, total, mean, GFLOP/s and share."""
        rows = self.summary()
        grand = sum(r[2] for r in rows) or 1e-30
        width = max([len("operator")] + [len(r[0]) for r in rows[:top]])
        lines = [f"{'operator':<{width}}  {'calls':>6}  {'total ms':>9}  {'mean us':>9}  {'GFLOP/s':>8}  {'share':>6}"]
        for label, n, total, flop in rows[:top]:
            gflops = f"{flop / total / 1e9:8.2f}" if flop and total > 0 else f"{'-':>8}"
            lines.append(f"{label:<{width}}  {n:>6}  {total * 1e3:9.3f}  {total / n * 1e6:9.1f}  {gflops}  "
                         f"{total / grand:6.1%}")
        lines.append(f"{'total':<{width}}  {sum(r[1] for r in rows):>6}  {grand * 1e3:9.3f}")
        return "\n".join(lines)

    def export_chrome_trace(self, path) -> None:
        """A trace in the Chrome trace-event format (chrome://tracing, Perfetto)."""
        t0 = self._t0 if self._t0 is not None else min((e.start for e in self.events), default=0.0)
        trace = [{"name": e.label, "cat": "kernel", "ph": "X", "ts": (e.start - t0) * 1e6, "dur": e.seconds * 1e6,
                  "pid": os.getpid(), "tid": e.thread, "args": {"flop": e.flop}} for e in self.events]
        atomic_write(path, lambda f: json.dump({"traceEvents": trace, "displayTimeUnit": "ms"}, f), mode="w")


def profile() -> Profiler:
    """``with loopc.profile() as prof:`` records every compiled-kernel call inside the block."""
    return Profiler()
