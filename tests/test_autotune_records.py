"""Tuning records: JSON Lines, torn and garbage lines, apply_history_best, pick_best, plots."""
import json
import os
import sys
import warnings

import pytest

from loopc import LoopcError, autotune
from loopc.autotune.record import Record, append_record, save_records

import test_autotune_templates  # noqa: F401 - registers the test templates
from test_autotune_templates import small_matmul

OTHER_CPU = "llvm -mtriple=x86_64-unknown-linux-gnu -mcpu=othercpu -mattr=+sse2,+avx"


def _record(task, index, cost, target=None, error=None):
    cfg = task.config_space.get(index)
    return Record(workload=task.workload, target=target or task.target_string, config=cfg.to_json(),
                  costs=() if error else (cost, cost), error=error, flop=task.flop, loopc_version="test")


@pytest.fixture
def task():
    return autotune.create_task("test_matmul", (16, 16, 16))


def test_records_round_trip_through_json_lines(tmp_path, task):
    path = tmp_path / "log.jsonl"
    recs = [_record(task, 3, 2e-5), _record(task, 4, None, error={"kind": "crash", "stage": "run", "message": "x"})]
    for r in recs:
        append_record(path, r)
    lines = path.read_text().splitlines()
    assert len(lines) == 2
    d = json.loads(lines[0])
    assert d["schema"] == 1 and d["workload"] == ["test_matmul", [16, 16, 16]]
    assert "-mcpu=" in d["target"] and "-mattr=" in d["target"]
    assert d["config"]["index"] == 3 and d["result"]["costs"] == [2e-5, 2e-5]
    assert d["loopc_version"] == "test" and d["timestamp"] > 0
    back = autotune.load_records(path)
    assert back[0].config_entity() == task.config_space.get(3) and back[0].ok
    assert back[1].error_kind == "crash" and not back[1].ok and back[1].gflops == 0.0
    assert back[0].gflops == pytest.approx(task.flop / 2e-5 / 1e9)


def test_torn_and_garbage_lines_are_skipped_with_a_warning(tmp_path, task):
    path = tmp_path / "log.jsonl"
    good = [_record(task, i, 1e-5 * (i + 1)).dumps() for i in range(2)]
    marker = tmp_path / "pwned"
    evil = f"__import__('os').system('touch {marker}')"
    path.write_text(good[0] + "\nnot json at all\n" + evil + "\n" + good[1] + "\n" + good[0][:40])
    with pytest.warns(autotune.AutotuneWarning) as caught:
        recs = autotune.load_records(path)
    assert len(recs) == 2 and not marker.exists()
    text = " | ".join(str(w.message) for w in caught)
    assert "torn last line" in text and ":5: torn" in text
    assert ":2: not a valid record" in text and ":3: not a valid record" in text
    append_record(path, _record(task, 7, 3e-5))                 # a new line after the torn one
    with pytest.warns(autotune.AutotuneWarning):
        recs = autotune.load_records(path)
    assert len(recs) == 3 and recs[-1].config["index"] == 7
    assert autotune.load_records(tmp_path / "missing.jsonl") == []


def test_apply_history_best_picks_the_best_record(tmp_path, task):
    path = tmp_path / "log.jsonl"
    save_records(path, [_record(task, 1, 5e-5), _record(task, 9, 1e-5), _record(task, 4, 3e-5),
                        _record(task, 2, None, error={"kind": "timeout", "stage": "run", "message": ""})])
    with warnings.catch_warnings():
        warnings.simplefilter("error")                          # no warning: a record exists
        with autotune.apply_history_best(path) as ctx:
            s, _ = small_matmul(16, 16, 16)
    assert s.trace_json() == task.instantiate(9)[0].trace_json()
    assert ctx.best_record(task.workload).config["index"] == 9


def test_a_missing_record_warns_once_and_names_the_workload(tmp_path, task):
    path = tmp_path / "log.jsonl"
    save_records(path, [_record(task, 1, 5e-5)])
    with autotune.apply_history_best(path) as ctx:
        with pytest.warns(autotune.AutotuneWarning, match=r"no tuning record for workload test_matmul\(8, 8, 8\)") as w:
            s, _ = small_matmul(8, 8, 8)
            small_matmul(8, 8, 8)
        assert len(w) == 1 and "loopc tune test_matmul" in str(w[0].message)
        assert ctx.fallbacks == [("test_matmul", (8, 8, 8))]
    fallback = autotune.create_task("test_matmul", (8, 8, 8)).config_space.fallback()
    assert fallback.is_fallback
    assert s.trace_json() == autotune.create_task("test_matmul", (8, 8, 8)).instantiate(fallback)[0].trace_json()


def test_records_of_another_cpu_are_not_applied_silently(tmp_path, task):
    path = tmp_path / "log.jsonl"
    save_records(path, [_record(task, 6, 1e-5, target=OTHER_CPU)])
    with autotune.apply_history_best(path):
        with pytest.warns(autotune.AutotuneWarning, match="othercpu"):
            s, _ = small_matmul(16, 16, 16)
    assert s.trace_json() == task.instantiate(6)[0].trace_json()
    with autotune.apply_history_best(path, other_cpu="ignore"):
        with pytest.warns(autotune.AutotuneWarning) as w:
            s, _ = small_matmul(16, 16, 16)
    assert any("ignored" in str(x.message) for x in w) and any("no tuning record" in str(x.message) for x in w)
    assert s.trace_json() == task.instantiate(0)[0].trace_json()


def test_pick_best_writes_one_record_per_workload_and_target(tmp_path, task):
    other = autotune.create_task("test_matmul", (8, 8, 8))
    src, dst = tmp_path / "all.jsonl", tmp_path / "best.jsonl"
    save_records(src, [_record(task, 1, 5e-5), _record(task, 2, 2e-5), _record(other, 3, 4e-5),
                       _record(other, 4, 1e-5), _record(task, 5, 1e-6, target=OTHER_CPU)])
    best = autotune.pick_best(src, dst)
    assert len(best) == 3 and len(dst.read_text().splitlines()) == 3
    idx = {(r.workload[1], r.cpu): r.config["index"] for r in autotune.load_records(dst)}
    assert idx[((16, 16, 16), task.target_string.split("-mcpu=")[1].split()[0])] == 2
    assert idx[((8, 8, 8), other.target_string.split("-mcpu=")[1].split()[0])] == 4
    assert idx[((16, 16, 16), "othercpu")] == 5


def test_plot_tuning_curve_writes_a_png_or_says_what_to_install(tmp_path, task, monkeypatch):
    path = tmp_path / "log.jsonl"
    save_records(path, [_record(task, i, 1e-5 * (5 - i)) for i in range(4)])
    try:
        import matplotlib  # noqa: F401 - only where it is installed
        png = tmp_path / "curve.png"
        autotune.plot_tuning_curve(path, png)
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    except ImportError:
        pass
    for mod in ("matplotlib", "matplotlib.figure", "matplotlib.backends", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, mod, None)
    with pytest.raises(LoopcError, match="pip install"):
        autotune.plot_tuning_curve(path, tmp_path / "no.png")
    assert not os.path.exists(tmp_path / "no.png")
