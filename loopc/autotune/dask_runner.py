"""Measuring on a Dask cluster: each candidate is built and timed on a worker.

    runner = autotune.DaskRunner("tcp://scheduler:8786")       # or a Client / LocalCluster
    tuner.tune(64, autotune.measure_option(runner=runner))

Every candidate is one Dask task. On the worker it runs in a fresh child process
(``python -m loopc.autotune.worker``; Dask worker processes are daemons, which may not have
multiprocessing children), so a crash or a hang there costs one trial: the child is killed
after ``build_timeout + timeout`` (plus a few seconds to start). The code is compiled for and timed on that worker's CPU,
and the record names the worker's target. With one thread per worker, each worker times one
candidate at a time. The check_correctness reference is computed once on the cluster and
scattered to every worker.

Needs ``pip install 'loopc[dask]'``; imported lazily.
"""
from __future__ import annotations

import os
import pickle
import subprocess
import sys

from ..errors import LoopcError
from .measure import MeasureResult, _payload, error_result
from .task import workload_key


def _distributed():
    try:
        import distributed
    except ImportError as err:
        raise LoopcError("DaskRunner needs dask.distributed: pip install 'loopc[dask]' "
                         "(or pip install 'dask[distributed]')") from err
    return distributed


def _child(job: bytes, extra: dict, timeout: float) -> dict:
    """Run one job in ``python -m loopc.autotune.worker`` on this machine."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    data = job + pickle.dumps(extra)
    try:
        proc = subprocess.run([sys.executable, "-m", "loopc.autotune.worker"], input=data,
                              capture_output=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"_status": "timeout", "message": f"still running after {timeout:g} s: killed"}
    if proc.returncode < 0:
        return {"_status": "crash", "message": f"the measuring process died with signal {-proc.returncode}"}
    if proc.returncode != 0:
        return {"_status": "error", "message": proc.stderr.decode(errors="replace")[-2000:]}
    try:
        return {"_status": "ok", **pickle.loads(proc.stdout)}
    except Exception as err:  # noqa: BLE001
        return {"_status": "error", "message": f"unreadable result ({err}): {proc.stderr[-1000:]!r}"}


def _dask_measure(job: bytes, reference, timeout: float) -> dict:
    """A Dask task: build and time one candidate in a child process of this worker."""
    out = _child(job, {"reference": reference}, timeout)
    try:
        from distributed import get_worker
        out["worker"] = get_worker().address
    except Exception:  # noqa: BLE001 - not on a worker (tests call it directly)
        out["worker"] = ""
    if "target" not in out:
        out["target"] = _host_target("llvm")
    return out


def _dask_reference(job: bytes, timeout: float) -> dict:
    return _child(job, {}, timeout)


def _host_target(target) -> str:
    from .dispatcher import resolve_target
    return resolve_target(target)


class DaskRunner:
    """Builds and measures each candidate on a Dask cluster (``address``: a scheduler address,
    a ``distributed.Client`` or a ``LocalCluster``). The timing options mean what they mean
    for LocalRunner; ``build_timeout`` bounds the build."""

    builds_remotely = True
    #: seconds allowed, beyond build_timeout + timeout, for the child process to start (imports)
    START_SLACK = 8.0

    def __init__(self, address, number=4, repeat=3, min_repeat_ms=0, timeout=10.0, build_timeout=20.0,
                 check_correctness=True, rtol=1e-3, seed=0, cutoff=10.0, reference_timeout=None):
        self._distributed = _distributed()
        self.address = address
        self.number, self.repeat, self.min_repeat_ms = int(number), int(repeat), float(min_repeat_ms)
        self.timeout, self.build_timeout = float(timeout), float(build_timeout)
        self.check_correctness = bool(check_correctness)
        self.rtol, self.seed = float(rtol), int(seed)
        self.cutoff = None if cutoff is None else float(cutoff)
        self._best = {}
        self.reference_timeout = float(reference_timeout or max(120.0, 10 * self.timeout))
        self._client = None
        self._own_client = False
        self._refs = {}

    @property
    def client(self):
        if self._client is None:
            Client = self._distributed.Client
            if isinstance(self.address, Client):
                self._client = self.address
            else:
                self._client = Client(self.address)
                self._own_client = True
        return self._client

    @property
    def n_parallel(self):
        """Candidates in flight at once: the cluster's worker threads."""
        return max(1, sum(self.client.nthreads().values()))

    def targets(self, task):
        """The target strings of the workers (records are keyed by them)."""
        return set(self.client.run(_host_target, task.target).values())

    def _job(self, payload, kind):
        import cloudpickle
        return cloudpickle.dumps({"_job": kind, **payload})

    def _reference(self, task):
        key = (workload_key(task.workload), str(task.target))
        if key not in self._refs:
            payload = {"template": task.template, "args": task.args, "target": task.target, "seed": self.seed,
                       "config": task.config_space.fallback().to_json()}
            out = self.client.submit(_dask_reference, self._job(payload, "reference"), self.reference_timeout,
                                     pure=False).result()
            if out["_status"] != "ok" or not out.get("ok"):
                raise LoopcError(f"check_correctness: the reference of {task.name}{task.args} failed on the "
                                 f"cluster: {out.get('message')}. Fix the template, or pass check_correctness=False")
            self._refs[key] = self.client.scatter({"ref": out["outputs"]}, broadcast=True)["ref"]
        return self._refs[key]

    def run(self, inputs, builds=None):
        """Yield ``(index, MeasureResult)`` as the cluster finishes candidates."""
        as_completed = self._distributed.as_completed
        futures = {}
        for i, inp in enumerate(inputs):
            payload = {**_payload(inp), "number": self.number, "repeat": self.repeat,
                       "min_repeat_ms": self.min_repeat_ms, "timeout": self.timeout, "seed": self.seed,
                       "rtol": self.rtol}
            wk = workload_key(inp.task.workload)
            if self.cutoff is not None and wk in self._best:
                payload["cutoff_seconds"] = self.cutoff * self._best[wk]
            ref = self._reference(inp.task) if self.check_correctness else None
            fut = self.client.submit(_dask_measure, self._job(payload, "measure"), ref,
                                     self.build_timeout + self.timeout + self.START_SLACK, pure=False)
            futures[fut] = i
        for fut in as_completed(list(futures)):
            i = futures[fut]
            try:
                out = fut.result()
            except Exception as err:  # noqa: BLE001 - a lost worker, a cancelled task
                yield i, error_result("crash", "measure", f"the Dask task failed: {type(err).__name__}: {err}")
                continue
            res = self._result(out)
            if res.ok:
                wk = workload_key(inputs[i].task.workload)
                self._best[wk] = min(self._best.get(wk, float("inf")), res.cost)
            yield i, res

    def _result(self, out) -> MeasureResult:
        status = out["_status"]
        common = {"target": out.get("target", ""), "worker": out.get("worker", "")}
        if status in ("timeout", "crash"):
            return error_result(status, "measure", out["message"], **common)
        if status != "ok":
            return error_result("runtime_error", "measure", out["message"], **common)
        build = out["build"]
        if not build["ok"]:
            return error_result("build_error", "build", build["message"], **common)
        common.update(target=build["target"], build_seconds=build["build_seconds"], trace=build["trace"])
        run = out["run"]
        if run["ok"]:
            return MeasureResult(costs=tuple(run["costs"]), **common)
        return error_result(run.get("kind", "runtime_error"), "run", run["message"], **common)

    def close(self):
        if self._client is not None and self._own_client:
            self._client.close()
        self._client = None
        self._refs = {}
