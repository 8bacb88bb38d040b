"""The thread pool behind parallel loops: libgomp's, when the machine has it.

Generated code calls ``GOMP_parallel`` with an outlined loop body (about 1 us per call).
Where libgomp is missing, parallel loops run serially and loopc says so once.
``OMP_WAIT_POLICY`` is respected; when unset and ``CI`` is set (shared cores), loopc asks
for the passive policy, since spinning threads can run slower than serial there.

Unless the thread count was set (``set_num_threads(n)``, ``OMP_NUM_THREADS``), it follows the
machine's load: a parallel kernel waits for its slowest thread, and a thread that another
process keeps off its core costs a time slice per kernel (a LeNet training step ran 3-25x
slower at 2 threads than at 1 with one of two cores busy). ``adapt()``, called on every
kernel launch, looks at most every ``WINDOW`` seconds at how much CPU time *other* processes
took (``/proc/stat`` minus this process's ``getrusage``) and uses the cores they leave free.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import resource
import threading
import time
import warnings
from functools import lru_cache

from ..errors import ArgumentError


@lru_cache(maxsize=None)
def libgomp():
    """The loaded libgomp (ctypes.CDLL), also made visible to the JIT; None when absent."""
    if os.environ.get("LOOPC_NO_OPENMP"):
        return None
    if "OMP_WAIT_POLICY" not in os.environ and os.environ.get("CI"):
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    path = ctypes.util.find_library("gomp")
    if path is None:
        warnings.warn("libgomp was not found: loopc runs parallel loops serially "
                      "(install gcc's libgomp1 for multi-core kernels)", RuntimeWarning, stacklevel=2)
        return None
    import llvmlite.binding as llvm
    lib = ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
    llvm.load_library_permanently(path)
    return lib


def num_threads() -> int:
    """Threads a parallel loop uses when called from this Python thread."""
    lib = libgomp()
    return int(lib.omp_get_max_threads()) if lib is not None else 1


def set_num_threads(n: int | None) -> None:
    """Use ``n`` threads for parallel loops called from this Python thread; ``None``: follow
    the machine's load again (the default, see the module docstring)."""
    if n is None:
        _monitor.enable()
        return
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ArgumentError(f"set_num_threads needs a positive int (or None for automatic), got {n!r}")
    _monitor.disable()
    lib = libgomp()
    if lib is not None:
        lib.omp_set_num_threads(ctypes.c_int(n))


def adapt() -> None:
    """Follow the machine's load (cheap: a clock read, except once per ``WINDOW``)."""
    if _monitor.active and time.monotonic() >= _monitor.next_check:
        _monitor.check()


#: seconds between two looks at the machine's load
WINDOW = 0.1
#: other processes using this many cores (or more) take a core from loopc ...
BUSY_CORE = 0.5
#: ... and it is given back when they use less than this
FREE_CORE = 0.3


class LoadMonitor:
    """Sets libgomp's thread count to the cores other processes leave free (at least 1)."""

    def __init__(self):
        self.cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        self.active = (self.cores > 1 and "OMP_NUM_THREADS" not in os.environ
                       and os.path.exists("/proc/stat"))
        self.next_check = 0.0
        self.threads = None          # what adapt() last set (None: libgomp's default)
        self.last = None             # (wall, machine busy seconds, own cpu seconds) of the last look
        self.lock = threading.Lock()

    def enable(self):
        """Follow the load again, from the last decision; the first look compares with the last
        sample (a fresh baseline when that is older than ten windows)."""
        self.active = self.cores > 1 and os.path.exists("/proc/stat")
        lib = libgomp()
        if self.active and lib is not None:
            lib.omp_set_num_threads(ctypes.c_int(self.threads or self.cores))

    def disable(self):
        self.active = False

    @staticmethod
    def _machine_busy() -> float:
        """Seconds of CPU time all processes have used (``/proc/stat``: every state but idle)."""
        with open("/proc/stat") as f:
            fields = f.readline().split()[1:]
        ticks = [int(x) for x in fields[:8]]
        return (sum(ticks) - ticks[3] - ticks[4]) / _CLOCK_TICKS      # minus idle and iowait

    @staticmethod
    def _own() -> float:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    def check(self):
        if not self.lock.acquire(blocking=False):
            return
        try:
            now = time.monotonic()
            self.next_check = now + WINDOW
            sample = (now, self._machine_busy(), self._own())
            last, self.last = self.last, sample
            if last is None or sample[0] - last[0] > 10 * WINDOW:    # a fresh baseline after a pause
                return
            wall = sample[0] - last[0]
            others = max(0.0, (sample[1] - last[1]) - (sample[2] - last[2])) / wall
            current = self.threads or self.cores
            if others >= BUSY_CORE:
                want = max(1, self.cores - int(others + 0.5))
            elif others < FREE_CORE:
                want = self.cores
            else:
                want = current
            if want != current or self.threads is None:
                self.threads = want
                lib = libgomp()
                if lib is not None:
                    lib.omp_set_num_threads(ctypes.c_int(want))
        except (OSError, ValueError, IndexError):       # no /proc/stat as expected: stop looking
            self.active = False
        finally:
            self.lock.release()


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_monitor = LoadMonitor()
