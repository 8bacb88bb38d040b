"""Isolated measurement: crashing, hanging and wrong candidates cost one trial, never the run."""
import ctypes
import os
import time

import pytest

from loopc import LoopcError, autotune
from loopc.autotune.pool import IsolatedPool

import test_autotune_templates  # noqa: F401 - registers the test templates


def _ok(x):
    return x * 2


def _job(payload):
    kind, x = payload
    if kind == "segv":
        ctypes.string_at(0)          # reads address 0: SIGSEGV
    if kind == "hang":
        time.sleep(3600)
    return x * 2


def test_pool_survives_segfaults_and_hangs():
    pool = IsolatedPool(n_workers=2, max_tasks_per_child=2)
    jobs = [("ok", 1), ("segv", 2), ("ok", 3), ("hang", 4), ("ok", 5), ("ok", 6), ("segv", 7)]
    try:
        t0 = time.monotonic()
        out = dict(pool.run(_job, jobs, timeout=1.5))
        again = dict(pool.run(_ok, list(range(5)), timeout=5))
    finally:
        pool.close()
    assert sorted(out) == list(range(len(jobs)))
    assert [out[i].status for i in range(len(jobs))] == ["ok", "crash", "ok", "timeout", "ok", "ok", "crash"]
    assert [out[i].value for i in (0, 2, 4, 5)] == [2, 6, 10, 12]
    assert [again[i].value for i in range(5)] == [0, 2, 4, 6, 8]     # workers retire and come back
    assert time.monotonic() - t0 < 30


def test_pool_reports_exceptions_of_unpicklable_payloads():
    pool = IsolatedPool(1)
    try:
        (i, oc), = list(pool.run(_ok, [lambda: 1], timeout=5))
    finally:
        pool.close()
    assert oc.status == "error"


def test_bad_candidates_are_recorded_as_errors_and_tuning_goes_on(tmp_path):
    log = tmp_path / "modes.jsonl"
    task = autotune.create_task("test_modes", (64,))
    option = autotune.measure_option(builder=autotune.LocalBuilder(n_parallel=2, timeout=4),
                                     runner=autotune.LocalRunner(number=2, repeat=2, timeout=5))
    tuner = autotune.GridSearchTuner(task)
    t0 = time.monotonic()
    tuner.tune(len(task.config_space), option, callbacks=[autotune.log_to_file(log)])
    elapsed = time.monotonic() - t0
    records = autotune.load_records(log)
    by_mode = {r.config_entity()["mode"].val: r for r in records}
    assert len(records) == 6 and set(by_mode) == {"ok", "crash", "hang", "wrong", "raise", "ok_vec"}
    assert by_mode["ok"].ok and by_mode["ok_vec"].ok
    assert by_mode["crash"].error_kind == "crash"
    assert by_mode["hang"].error_kind == "timeout"
    assert by_mode["wrong"].error_kind == "wrong_answer"
    assert "relative error" in by_mode["wrong"].error["message"]
    assert by_mode["raise"].error_kind == "build_error"
    assert "split" in by_mode["raise"].error["message"]
    assert tuner.n_errors == 4 and tuner.best_config["mode"].val in ("ok", "ok_vec")
    assert elapsed < 45


def test_without_check_correctness_a_wrong_kernel_counts(tmp_path):
    task = autotune.create_task("test_modes", (32,))
    option = autotune.measure_option(builder=autotune.LocalBuilder(n_parallel=1),
                                     runner=autotune.LocalRunner(number=1, repeat=1, check_correctness=False))
    inp = autotune.MeasureInput(task, task.config_space.get(3))          # "wrong"
    from loopc.autotune.measure import close_option, measure_batch
    try:
        (i, res), = list(measure_batch(option, [inp]))
    finally:
        close_option(option)
    assert res.ok and res.target == task.target_string


def test_measure_option_rejects_other_objects():
    with pytest.raises(LoopcError, match="builder"):
        autotune.measure_option(builder=object())
    opt = autotune.measure_option()
    assert isinstance(opt["builder"], autotune.LocalBuilder) and isinstance(opt["runner"], autotune.LocalRunner)
    assert opt["builder"].n_parallel == (os.cpu_count() or 1)
