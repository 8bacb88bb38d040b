"""DaskRunner on a LocalCluster with two worker processes (skipped without dask.distributed)."""
import pytest

from loopc import LoopcError, autotune

import test_autotune_templates  # noqa: F401 - registers the test templates

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=40) as c:
        yield c


class ListTuner(autotune.Tuner):
    """Measures the configs of the given knob values, in order (the Tuner interface at its smallest)."""

    def __init__(self, task, modes):
        super().__init__(task)
        self.todo = [i for m in modes for i, e in enumerate(task.config_space.space_map["mode"].entities)
                     if e.val == m]

    def next_batch(self, n):
        batch, self.todo = self.todo[:n], self.todo[n:]
        return [self.space.get(i) for i in batch]


def test_dask_runner_measures_on_the_cluster(tmp_path, cluster):
    log = tmp_path / "dask.jsonl"
    task = autotune.create_task("test_modes", (64,))
    runner = autotune.DaskRunner(cluster, number=2, repeat=2, timeout=5, build_timeout=5)
    assert runner.n_parallel == 2
    worker_targets = runner.targets(task)
    modes = ["ok", "crash", "wrong", "raise", "ok_vec"]
    tuner = ListTuner(task, modes)
    tuner.tune(10, autotune.measure_option(runner=runner), callbacks=[autotune.log_to_file(log)])
    records = autotune.load_records(log)
    by_mode = {r.config_entity()["mode"].val: r for r in records}
    assert len(records) == 5 and set(by_mode) == set(modes)
    assert by_mode["ok"].ok and by_mode["ok_vec"].ok
    assert by_mode["crash"].error_kind == "crash"
    assert by_mode["wrong"].error_kind == "wrong_answer"
    assert by_mode["raise"].error_kind == "build_error"
    for r in records:                                           # the worker's CPU names the record
        if r.ok:
            assert r.target in worker_targets and "-mcpu=" in r.target and "-mattr=" in r.target
    assert cluster.status.name == "running" and len(cluster.workers) == 2


def test_a_hanging_candidate_on_a_dask_worker_is_killed():
    """What a Dask task runs: the candidate in a child process, killed at its deadline."""
    from loopc.autotune.dask_runner import DaskRunner, _dask_measure
    task = autotune.create_task("test_modes", (64,))
    runner = DaskRunner.__new__(DaskRunner)
    runner.number, runner.repeat, runner.min_repeat_ms, runner.timeout, runner.seed, runner.rtol = 1, 1, 0, 1, 0, 1e-3
    from loopc.autotune.measure import _payload
    payload = {**_payload(autotune.MeasureInput(task, task.config_space.get(2))), "number": 1, "repeat": 1,
               "min_repeat_ms": 0, "timeout": 1.0, "seed": 0, "rtol": 1e-3}
    out = _dask_measure(runner._job(payload, "measure"), None, 4.0)
    assert out["_status"] == "timeout" and "killed" in out["message"]
    assert runner._result(out).error_kind == "timeout"


def test_dask_runner_needs_dask(monkeypatch):
    import sys
    from loopc.autotune import dask_runner
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(LoopcError, match="pip install 'loopc\\[dask\\]'"):
        dask_runner.DaskRunner("tcp://127.0.0.1:1")
