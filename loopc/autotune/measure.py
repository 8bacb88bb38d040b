"""Measuring candidates: LocalBuilder compiles a batch in parallel worker processes, LocalRunner
times the results one at a time in another worker process, each checked against a reference.

    option = autotune.measure_option(builder=autotune.LocalBuilder(n_parallel=2, timeout=10),
                                     runner=autotune.LocalRunner(number=4, repeat=3, timeout=10))

A candidate that fails costs one trial and is recorded with an error kind:

    build_error    the template, lowering or LLVM raised (e.g. an illegal schedule for this config)
    runtime_error  loading or calling the kernel raised
    timeout        the build or the run outlived its timeout: its worker was killed
    crash          the worker died (segfault, abort) while building or running it
    wrong_answer   its outputs differ from the reference on seeded random inputs
"""
from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass, field

from ..errors import LoopcError
from .pool import IsolatedPool
from .task import workload_key
from . import worker

ERROR_KINDS = ("build_error", "runtime_error", "timeout", "crash", "wrong_answer")


@dataclass
class MeasureInput:
    task: object
    config: object


@dataclass
class MeasureResult:
    """``costs``: seconds per call, one per repeat (empty on error); ``error``: None or
    ``{"kind", "stage", "message"}``; ``target``: the full target string where it was measured."""
    costs: tuple = ()
    error: dict | None = None
    build_seconds: float = 0.0
    timestamp: float = field(default_factory=time.time)
    target: str = ""
    trace: dict | None = None
    worker: str = ""

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.costs)

    @property
    def error_kind(self):
        return None if self.error is None else self.error["kind"]

    @property
    def mean_cost(self) -> float:
        return sum(self.costs) / len(self.costs) if self.ok else float("inf")

    @property
    def cost(self) -> float:
        """The median of the costs: what tuners rank by (robust to one slow repeat)."""
        return statistics.median(self.costs) if self.ok else float("inf")


def error_result(kind, stage, message, **kw) -> MeasureResult:
    return MeasureResult(error={"kind": kind, "stage": stage, "message": str(message)[:4000]}, **kw)


def _payload(inp: MeasureInput) -> dict:
    task = inp.task
    return {"template": task.template, "args": task.args, "config": inp.config.to_json(),
            "target": task.target, "name": f"{task.name}_kernel"}


@dataclass
class BuildResult:
    ok: bool
    artifact: dict | None = None
    error: MeasureResult | None = None


class LocalBuilder:
    """Compiles candidates in ``n_parallel`` worker processes (default: the CPU count)."""

    def __init__(self, n_parallel=None, timeout=10.0, max_tasks_per_child=16):
        self.n_parallel = int(n_parallel or os.cpu_count() or 1)
        self.timeout = float(timeout)
        self._pool = IsolatedPool(self.n_parallel, max_tasks_per_child)

    def build(self, inputs):
        """One BuildResult per input, in order."""
        out = [None] * len(inputs)
        payloads = [_payload(inp) for inp in inputs]
        for i, oc in self._pool.run(worker.build_job, payloads, self.timeout):
            if oc.status == "ok" and oc.value["ok"]:
                out[i] = BuildResult(True, oc.value)
            elif oc.status == "ok":
                v = oc.value
                out[i] = BuildResult(False, error=error_result("build_error", "build", v["message"]))
            else:
                kind = {"timeout": "timeout", "crash": "crash"}.get(oc.status, "build_error")
                out[i] = BuildResult(False, error=error_result(kind, "build", oc.message or oc.status))
        return out

    def close(self):
        self._pool.close()


class LocalRunner:
    """Times built candidates one at a time in a worker process.

    ``number`` calls per repeat (more when a repeat is shorter than ``min_repeat_ms``),
    ``repeat`` repeats; a candidate too slow to fit ``number*repeat`` calls in ``timeout`` is
    timed with fewer calls. With ``check_correctness`` each candidate's outputs must match the
    reference (relative error <= ``rtol``) before its time counts.

    ``cutoff``: a candidate whose first (checked) call is already ``cutoff`` times slower than the
    best of its workload so far is not timed further; that one call is its cost. It saves
    minutes on large workloads, where a poor schedule runs for seconds. None: time every one.
    """

    def __init__(self, number=4, repeat=3, min_repeat_ms=0, timeout=10.0, check_correctness=True,
                 rtol=1e-3, seed=0, cutoff=10.0, max_tasks_per_child=64, reference_timeout=None):
        if number < 1 or repeat < 1:
            raise LoopcError("LocalRunner needs number >= 1 and repeat >= 1")
        self.number, self.repeat, self.min_repeat_ms = int(number), int(repeat), float(min_repeat_ms)
        self.timeout = float(timeout)
        self.check_correctness = bool(check_correctness)
        self.rtol = float(rtol)
        self.seed = int(seed)
        self.cutoff = None if cutoff is None else float(cutoff)
        self._best = {}
        self.reference_timeout = float(reference_timeout or max(120.0, 10 * self.timeout))
        self._pool = IsolatedPool(1, max_tasks_per_child)
        self._refs = {}

    def targets(self, task):
        """The target strings this runner's measurements are recorded with."""
        return {task.target_string}

    def reference(self, task):
        """Expected outputs of ``task`` on the seeded inputs (computed once, in a worker)."""
        key = (workload_key(task.workload), str(task.target))
        if key not in self._refs:
            payload = {"template": task.template, "args": task.args, "target": task.target, "seed": self.seed,
                       "config": task.config_space.fallback().to_json()}
            outcome = next(iter(self._pool.run(worker.reference_job, [payload], self.reference_timeout)))[1]
            if outcome.status != "ok" or not outcome.value["ok"]:
                why = outcome.value["message"] if outcome.status == "ok" else f"{outcome.status}: {outcome.message}"
                raise LoopcError(f"check_correctness: the reference of {task.name}{task.args} (its default schedule) "
                                 f"failed: {why}. Fix the template, or pass LocalRunner(check_correctness=False)")
            self._refs[key] = outcome.value["outputs"]
        return self._refs[key]

    def run_payload(self, artifact):
        code = {k: artifact[k] for k in ("object", "cuda") if k in artifact}     # CPU object code or GPU config
        return {**code, "name": artifact["name"], "params": artifact["params"],
                "number": self.number, "repeat": self.repeat, "min_repeat_ms": self.min_repeat_ms,
                "timeout": self.timeout, "seed": self.seed, "rtol": self.rtol}

    def run(self, inputs, builds):
        """Yield ``(index, MeasureResult)`` for each successfully built input, one at a time."""
        for i, (inp, b) in enumerate(zip(inputs, builds)):
            if not b.ok:
                continue
            art = b.artifact
            payload = self.run_payload(art)
            payload["reference"] = self.reference(inp.task) if self.check_correctness else None
            wk = workload_key(inp.task.workload)
            if self.cutoff is not None and wk in self._best:
                payload["cutoff_seconds"] = self.cutoff * self._best[wk]
            oc = next(iter(self._pool.run(worker.run_job, [payload], self.timeout + 2.0)))[1]
            common = {"build_seconds": art["build_seconds"], "target": art["target"], "trace": art["trace"]}
            res = run_outcome(oc, common, self.timeout)
            if res.ok:
                self._best[wk] = min(self._best.get(wk, float("inf")), res.cost)
            yield i, res

    def close(self):
        self._pool.close()


def run_outcome(oc, common, timeout) -> MeasureResult:
    if oc.status == "ok" and oc.value["ok"]:
        return MeasureResult(costs=tuple(oc.value["costs"]), **common)
    if oc.status == "ok":
        v = oc.value
        return error_result(v.get("kind", "runtime_error"), "run", v["message"], **common)
    if oc.status == "timeout":
        return error_result("timeout", "run", f"the kernel ran longer than {timeout:g} s: killed", **common)
    if oc.status == "crash":
        return error_result("crash", "run", oc.message, **common)
    return error_result("runtime_error", "run", oc.message, **common)


def measure_option(builder="local", runner="local"):
    """Bundle a builder and a runner for ``tuner.tune(measure_option=...)``.

    ``"local"`` means ``LocalBuilder()`` / ``LocalRunner()``. A ``DaskRunner`` builds and
    measures on the cluster itself; the builder is then unused.
    """
    if builder == "local":
        builder = LocalBuilder()
    if runner == "local":
        runner = LocalRunner()
    for what, obj, need in (("builder", builder, "build"), ("runner", runner, "run")):
        if not callable(getattr(obj, need, None)):
            raise LoopcError(f"measure_option: {what} must be a LocalBuilder/LocalRunner-like object, got {obj!r}")
    return {"builder": builder, "runner": runner}


def measure_batch(option, inputs):
    """Yield ``(index, MeasureResult)`` for every input, each as soon as it is known."""
    builder, runner = option["builder"], option["runner"]
    if getattr(runner, "builds_remotely", False):
        yield from runner.run(inputs, None)
        return
    builds = builder.build(inputs)
    for i, b in enumerate(builds):
        if not b.ok:
            yield i, b.error
    yield from runner.run(inputs, builds)


def close_option(option):
    for key in ("builder", "runner"):
        close = getattr(option.get(key), "close", None)
        if close is not None:
            close()
