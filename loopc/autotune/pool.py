"""Worker processes in which one job may crash or hang without taking the others along.

A ``concurrent.futures.ProcessPoolExecutor`` over the ``forkserver`` start method (fork
after an OpenMP region or beside a compiling thread hangs or kills children), whose workers
retire after ``max_tasks_per_child`` jobs (llvmlite leaks ~80 KB per compile).

- Each job reports ``(job id, pid)`` on a queue when it starts, so the parent knows which
  process runs it; a job past its timeout gets that process killed (``SIGKILL``).
- A dead worker breaks the whole pool (``BrokenProcessPool``): the pool is replaced. If the
  parent killed it, the killed job is a ``timeout`` and the others in flight are resubmitted.
  Otherwise the culprit is unknown when several jobs ran: each is resubmitted *alone*, and a
  job that breaks the pool while alone is a ``crash``.
- A worker ends when the process that made the pool dies, however it dies (``kill -9``
  included): a thread in each worker waits on multiprocessing's parent sentinel (a pipe the
  parent holds open) and exits the worker at EOF, and ``PR_SET_PDEATHSIG`` ends it with the
  forkserver. Without this an orphaned worker blocks forever on the job queue (it holds the
  queue's write end itself) while holding the forkserver's "alive" pipe and the resource
  tracker's pipe, so those two helpers never see EOF and linger as well.
"""
from __future__ import annotations

import ctypes
import itertools
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

_STARTED = None


def _init_worker(queue):
    global _STARTED
    _STARTED = queue
    _die_with_parent()


def _die_with_parent():
    """End this worker process when its pool's owner dies (see the module docstring)."""
    if sys.platform.startswith("linux"):
        try:                              # the forkserver (our OS parent) dying kills us
            PR_SET_PDEATHSIG = 1
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):  # pragma: no cover - no prctl
            pass
    parent = multiprocessing.parent_process()
    sentinel = getattr(parent, "sentinel", None)
    if sentinel is None:                   # pragma: no cover - not a multiprocessing child
        return
    threading.Thread(target=_watch_parent, args=(sentinel,), name="loopc-parent-watchdog", daemon=True).start()


def _watch_parent(sentinel):
    """Wait until the parent's end of the sentinel pipe closes (it died), then exit at once."""
    try:
        multiprocessing.connection.wait([sentinel])
    except OSError:                        # pragma: no cover - the fd went away
        pass
    os._exit(70)


def _call(job_id, fn, payload):
    if _STARTED is not None:
        _STARTED.put((job_id, os.getpid()))
    return fn(payload)


@dataclass(frozen=True)
class JobOutcome:
    """``status``: "ok" (``value`` is the job's return value), "timeout", "crash" or "error"."""
    status: str
    value: Any = None
    message: str = ""


@dataclass
class _Running:
    index: int
    job_id: int
    solo: bool
    submitted: float


class IsolatedPool:
    """Runs ``fn(payload)`` for many payloads in worker processes, at most ``n_workers`` at a
    time; yields ``(index, JobOutcome)`` as jobs finish."""

    #: seconds a submitted job may wait for a worker process to start it
    START_TIMEOUT = 120.0
    POLL = 0.02

    def __init__(self, n_workers=1, max_tasks_per_child=16):
        self.n_workers = max(1, int(n_workers))
        self.max_tasks_per_child = max(1, int(max_tasks_per_child))
        self._executor = None
        self._queue = None
        self._ids = itertools.count()
        self.restarts = 0

    def _ensure(self):
        if self._executor is None:
            ctx = multiprocessing.get_context("forkserver")
            # Workers fork from the forkserver with numpy, llvmlite and loopc already imported
            # (no effect once this process's forkserver runs; "__main__" is the default preload).
            ctx.set_forkserver_preload(["__main__", "loopc.autotune.worker"])
            self._queue = ctx.SimpleQueue()
            self._executor = ProcessPoolExecutor(self.n_workers, mp_context=ctx,
                                                 max_tasks_per_child=self.max_tasks_per_child,
                                                 initializer=_init_worker, initargs=(self._queue,))
        return self._executor

    def _discard(self):
        """Drop a broken (or poisoned) executor; a fresh one starts on the next job."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
            self.restarts += 1
        if self._queue is not None:
            self._queue.close()
            self._queue = None

    def close(self):
        """Stop the worker processes."""
        if self._executor is not None:
            ex = self._executor
            procs = list(getattr(ex, "_processes", {}).values())   # to make sure none lingers
            ex.shutdown(wait=False, cancel_futures=True)
            deadline = time.monotonic() + 5
            for p in procs:
                p.join(max(0.0, deadline - time.monotonic()))
                if p.is_alive():
                    p.kill()
            self._executor = None
        if self._queue is not None:
            self._queue.close()
            self._queue = None

    def _drain(self, started):
        q = self._queue
        while q is not None and not q.empty():
            job_id, pid = q.get()
            started[job_id] = (pid, time.monotonic())

    def run(self, fn, payloads, timeout):
        """Yield ``(index, JobOutcome)`` for each payload, in completion order. ``timeout``
        counts from the moment a worker starts the job."""
        todo = deque((i, False) for i in range(len(payloads)))
        running = {}
        started = {}
        killed = set()
        while todo or running:
            ex = self._ensure()
            while todo and len(running) < self.n_workers:
                i, solo = todo[0]
                if running and (solo or any(r.solo for r in running.values())):
                    break
                todo.popleft()
                job_id = next(self._ids)
                try:
                    fut = ex.submit(_call, job_id, fn, payloads[i])
                except BrokenProcessPool:
                    todo.appendleft((i, solo))
                    break
                running[fut] = _Running(i, job_id, solo, time.monotonic())
            if not running:
                self._discard()
                continue
            done, _ = wait(list(running), timeout=self.POLL, return_when=FIRST_COMPLETED)
            self._drain(started)
            lost = []
            for fut in done:
                r = running.pop(fut)
                try:
                    value = fut.result()
                except BrokenProcessPool:
                    lost.append(r)
                except Exception as err:  # noqa: BLE001 - e.g. a payload that does not pickle
                    yield r.index, JobOutcome("error", None, f"{type(err).__name__}: {err}")
                else:
                    yield r.index, JobOutcome("ok", value)
            now = time.monotonic()
            for r in running.values():
                if r.job_id in started:
                    pid, t0 = started[r.job_id]
                    if now - t0 > timeout and r.job_id not in killed:
                        killed.add(r.job_id)
                        try:
                            os.kill(pid, signal.SIGKILL)
                        except ProcessLookupError:
                            pass
                elif now - r.submitted > self.START_TIMEOUT + timeout and r.job_id not in killed:
                    killed.add(r.job_id)      # no worker ever took it: give up on this pool
                    self._discard()
            if not lost and not (killed & {r.job_id for r in running.values()} and self._executor is None):
                continue
            # The pool is broken: every job still in flight ends with BrokenProcessPool soon.
            for fut, r in list(running.items()):
                try:
                    value = fut.result(timeout=30)
                except BrokenProcessPool:
                    lost.append(r)
                except Exception:  # noqa: BLE001 - includes a wait that never ends
                    lost.append(r)
                else:
                    yield r.index, JobOutcome("ok", value)
            running.clear()
            self._drain(started)
            self._discard()
            ours = [r for r in lost if r.job_id in killed]
            others = [r for r in lost if r.job_id not in killed]
            for r in ours:
                if r.job_id in started:
                    yield r.index, JobOutcome("timeout", None, f"still running after {timeout:g} s: killed")
                else:
                    yield r.index, JobOutcome("crash", None, "no worker process started the job")
            if ours:
                todo.extendleft((r.index, r.solo) for r in reversed(others))
                continue
            began = [r for r in others if r.job_id in started]
            if len(others) == 1 or (len(began) == 1 and len(others) > 1):
                culprit = others[0] if len(others) == 1 else began[0]
                yield culprit.index, JobOutcome("crash", None, "the worker process died (segfault or abort)")
                todo.extendleft((r.index, r.solo) for r in reversed(others) if r is not culprit)
            else:
                solo_lost = [r for r in others if r.solo]
                for r in solo_lost:
                    yield r.index, JobOutcome("crash", None, "the worker process died (segfault or abort)")
                todo.extendleft((r.index, True) for r in reversed(others) if not r.solo)
