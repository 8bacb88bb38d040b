"""Every tuner on a short budget; records reproduce their schedules; a killed run resumes."""
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import loopc
from loopc import autotune, te
from loopc.autotune.cost_model import GBTModel

import test_autotune_templates  # noqa: F401 - registers the test templates

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
SHAPE = (13, 17, 12)          # no tile divides 13 or 17


def _option():
    return autotune.measure_option(builder=autotune.LocalBuilder(n_parallel=2, timeout=20),
                                   runner=autotune.LocalRunner(number=2, repeat=2, timeout=10))


def _assert_records_reproduce(task, records):
    """Rebuilding a record's config gives the same schedule trace, and replaying the trace on a
    fresh schedule of the same compute gives the same loop nest."""
    for r in records:
        cfg = r.config_entity()
        s, args = task.instantiate(cfg)
        assert json.loads(s.trace_json()) == r.trace
        fresh = te.create_schedule([t.op for t in args if not isinstance(t.op, te.tensor.PlaceholderOp)])
        fresh.replay(r.trace)
        assert str(loopc.lower(fresh, args)) == str(loopc.lower(s, args))


@pytest.mark.parametrize("tuner_cls", [autotune.RandomTuner, autotune.GridSearchTuner, autotune.GATuner,
                                       autotune.ModelTuner])
def test_each_tuner_measures_a_short_budget_without_repeats(tmp_path, tuner_cls):
    log = tmp_path / "log.jsonl"
    task = autotune.create_task("test_matmul", SHAPE)
    kwargs = {"pop_size": 4} if tuner_cls is autotune.GATuner else {}
    if tuner_cls is autotune.ModelTuner:
        kwargs = {"n_init": 4, "plan_size": 2}
    tuner = tuner_cls(task, seed=1, **kwargs) if tuner_cls is not autotune.GridSearchTuner else tuner_cls(task)
    bar = io.StringIO()
    tuner.tune(8, _option(), callbacks=[autotune.log_to_file(log), autotune.progress_bar(8, file=bar)])
    records = autotune.load_records(log)
    assert len(records) == 8
    indices = [r.config["index"] for r in records]
    assert len(set(indices)) == 8                                   # never the same config twice
    assert all(r.ok for r in records), [r.error for r in records if not r.ok]
    assert all(r.tuner == tuner_cls.__name__ for r in records)
    assert tuner.best_flops > 0 and tuner.best_config.index in indices
    if tuner_cls is autotune.GridSearchTuner:
        assert indices == list(range(8))
    _assert_records_reproduce(task, records)
    out = bar.getvalue()
    assert "8/8" in out and "GFLOP/s" in out and "trial" in out


def test_a_killed_tuning_run_resumes_without_measuring_again(tmp_path):
    log = tmp_path / "log.jsonl"
    script = textwrap.dedent(f"""
        import sys
        import test_autotune_templates
        from loopc import autotune
        task = autotune.create_task("test_matmul", {SHAPE!r})
        option = autotune.measure_option(builder=autotune.LocalBuilder(n_parallel=1, timeout=20),
                                         runner=autotune.LocalRunner(number=1, repeat=1, timeout=10))
        autotune.RandomTuner(task, seed=int(sys.argv[2])).tune(10, option,
                                                               callbacks=[autotune.log_to_file(sys.argv[1])])
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([TESTS_DIR, os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, "-c", script, str(log)]
    proc = subprocess.Popen(cmd + ["1"], env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if log.exists() and log.read_text().count("\n") >= 3:
            break
        time.sleep(0.05)
    assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
    os.killpg(proc.pid, signal.SIGKILL)                     # the tuner, its forkserver and workers
    proc.wait()
    first = [r.config["index"] for r in autotune.load_records(log)]
    assert 3 <= len(first) < 10
    done = subprocess.run(cmd + ["2"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    final = [r.config["index"] for r in autotune.load_records(log)]
    assert len(final) == 10 and len(set(final)) == 10       # nothing measured twice
    assert final[:len(first)] == first                       # the first run's records are kept


def test_resuming_in_process_counts_logged_trials(tmp_path):
    log = tmp_path / "log.jsonl"
    task = autotune.create_task("test_matmul", SHAPE)
    autotune.GridSearchTuner(task).tune(3, _option(), callbacks=[autotune.log_to_file(log)])
    tuner = autotune.GridSearchTuner(task)
    tuner.tune(5, _option(), callbacks=[autotune.log_to_file(log)])
    assert [r.config["index"] for r in autotune.load_records(log)] == [0, 1, 2, 3, 4]
    assert tuner.n_trials == 5                              # 3 resumed + 2 measured


def test_cost_model_learns_a_threshold_and_an_interaction():
    rng = np.random.default_rng(0)
    X = rng.random((120, 6))
    y = np.where(X[:, 0] > 0.5, 1.0, 0.2) * (1 + X[:, 1] * (X[:, 2] > 0.3))
    model = GBTModel(n_trees=60, seed=0).fit(X[:90], y[:90])
    pred = model.predict(X[90:])
    assert np.corrcoef(pred, y[90:])[0, 1] > 0.9


def test_cli_tune_logs_and_reports_the_best(tmp_path, capsys):
    from loopc import cli
    log = tmp_path / "gemm.jsonl"
    assert cli.main(["tune", "gemm", "--shape", "24", "24", "24", "--trials", "4", "--tuner", "random",
                     "--log", str(log), "--quiet", "--number", "1", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert "best:" in out and "GFLOP/s" in out
    recs = autotune.load_records(log)
    assert len(recs) == 4 and all(r.workload == ("gemm", (24, 24, 24)) for r in recs)
