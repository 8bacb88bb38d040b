"""Bad input to the autotuner gets a clear error (or a skipped record with a warning naming
file:line), never a traceback, a crash or a hang: edited record traces, unreadable logs,
malformed lines, bad `loopc tune` arguments, and worker processes that outlive a killed tuner."""
import copy
import json
import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

import loopc
from loopc import LoopcError, autotune, te
from loopc import schedules as S
from loopc.autotune.dispatcher import resolve_target
from loopc.autotune.record import MAX_DEPTH, Record, RecordError, append_record, load_records, save_records
from loopc.schedules import testing as ref


@pytest.fixture(autouse=True)
def _fresh_untuned_warnings(monkeypatch):
    """schedules warns once per workload and process: each test here sees its own first warning."""
    monkeypatch.setattr(S, "_warned", set())

HOST = resolve_target("llvm")
RNG = np.random.default_rng(7)
MATMUL = (24, 40, 20)                          # M N K
CONV = (2, 3, 10, 10, 4, 3, 3, 1, 1)           # its default is im2col: stages conv2d_pad, conv2d.col, conv2d


def rand(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def record_of(name, args, index, cost):
    """A measured-looking record of config ``index`` with its schedule trace, and that schedule."""
    task = autotune.create_task(name, args)
    cfg = task.config_space.get(index)
    s, _ = task.instantiate(cfg)
    config = cfg.to_json()
    config["trace"] = json.loads(s.trace_json())
    return Record(workload=task.workload, target=HOST, config=config, costs=(cost,) * 3, flop=task.flop), s


def edited(rec, edit):
    """A copy of ``rec`` whose trace went through ``edit(steps)`` (a hand edit of the log)."""
    out = copy.deepcopy(rec)
    edit(out.config["trace"]["steps"])
    return out


def lowered(s):
    """The loop nest of a schedule (placeholders first, then its outputs)."""
    from loopc.schedule import post_order_ops
    from loopc.te.tensor import PlaceholderOp
    ins = [op.output(0) for op in post_order_ops([o.op for o in s.outputs]) if isinstance(op, PlaceholderOp)]
    return str(loopc.lower(s, [*ins, *s.outputs]))


def matmul_op():
    M, N, K = MATMUL
    A, B = te.placeholder((M, K), name="A"), te.placeholder((K, N), name="B")
    return A, B, S.matmul(A, B)


def conv_op():
    N, C, H, W, K, R, Sz, stride, pad = CONV
    X, Wt = te.placeholder((N, C, H, W), name="X"), te.placeholder((K, C, R, Sz), name="W")
    return X, Wt, S.conv2d_nchw(X, Wt, stride=stride, padding=pad)


def run(s, tensors, expect):
    """Build ``s`` and compare its output with ``expect`` (numpy)."""
    *ins, out = tensors
    arrays = [rand(*t.shape) for t in ins]
    y = np.full(out.shape, np.nan, np.float32)
    loopc.build(s, tensors)(*arrays, y)
    np.testing.assert_allclose(y, expect(*arrays), rtol=1e-4, atol=1e-4)


def messages(caught, category=autotune.AutotuneWarning):
    return [str(w.message) for w in caught if issubclass(w.category, category)]


# --------------------------------------------------------------------------- edited traces


def _set(path_value):
    """An edit that sets steps[i]['args'][key] = value."""
    i, key, value = path_value

    def edit(steps):
        steps[i]["args"][key] = value
    return edit


MATMUL_EDITS = {       # config 15 of matmul(24, 40, 20): cache_read B, split i/j by 8, reorder, ..., vectorize j.inner
    "factor_is_a_string": _set((1, "factor", "8")),
    "axis_renamed": _set((7, "axis", "jj.inner")),
    "vectorize_a_reduction_axis": _set((7, "axis", "k.inner")),
    "compute_at_an_output_stage": lambda steps: steps.append(
        {"stage": "matmul", "primitive": "compute_at", "args": {"parent": "B.global", "axis": "ax0"}}),
    "step_not_an_object": lambda steps: steps.insert(2, ["split", "i"]),
    "args_not_an_object": _set((3, "axes", {"i": 1})),
}


@pytest.mark.parametrize("edit", sorted(MATMUL_EDITS))
def test_edited_trace_is_skipped_for_the_next_best_record(tmp_path, edit):
    """The best record's trace was edited: it is skipped with a warning naming the log's line,
    and schedules.schedule uses the next-best record, which computes the right numbers."""
    second, second_s = record_of("matmul", MATMUL, 5, 2e-5)
    best, best_s = record_of("matmul", MATMUL, 15, 1e-5)
    assert lowered(second_s) != lowered(best_s)
    log = tmp_path / "tuned.jsonl"
    save_records(log, [second, edited(best, MATMUL_EDITS[edit])])
    A, B, C = matmul_op()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with autotune.apply_history_best(str(log)):
            s = S.schedule(C)
    skipped = [m for m in messages(caught) if "skipped" in m]
    assert len(skipped) == 1, messages(caught)
    assert f"{log}:2:" in skipped[0] and "matmul(24, 40, 20)" in skipped[0]
    assert not messages(caught, S.NoTunedRecordWarning)      # a record (the next best) was used
    assert lowered(s) == lowered(second_s)
    run(s, [A, B, C], ref.matmul)


def _compute_at_through_a_stage_not_inlined(steps):
    """conv2d_pad computed at conv2d's loop n, while conv2d.col, the one stage that reads it, is
    computed deeper inside conv2d: every step replays (TVM accepts it, in case col is inlined
    later), but lowering cannot place the pad."""
    k = next(k for k, st in enumerate(steps) if k > 1 and st["primitive"] == "compute_inline")
    steps[k] = {"stage": "conv2d_pad", "primitive": "compute_at", "args": {"parent": "conv2d", "axis": "n"}}
    at = next(st for st in steps if st["stage"] == "conv2d.col" and st["primitive"] == "compute_at")
    at["args"]["axis"] = "p.q.fused.outer"


def test_only_record_broken_falls_back_to_the_default_schedule(tmp_path):
    """The only record's trace replays but places a stage where lowering cannot compute it:
    skipped (file:line), and the default template schedules the convolution, correctly."""
    rec, _ = record_of("conv2d_nchw", CONV, 0, 1e-5)
    assert rec.config["trace"]["steps"][1]["primitive"] == "im2col"
    other = record_of("dense", (4, 32, 6), 1, 1e-5)[0]
    log = tmp_path / "conv.jsonl"
    save_records(log, [other, other, edited(rec, _compute_at_through_a_stage_not_inlined)])
    X, W, Y = conv_op()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with autotune.apply_history_best(str(log)):
            s = S.schedule(Y)
    skipped = [m for m in messages(caught) if "skipped" in m]
    assert len(skipped) == 1 and f"{log}:3:" in skipped[0], messages(caught)
    assert messages(caught, S.NoTunedRecordWarning)          # the default template, said so
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        default = S.schedule(conv_op()[2])
    assert s.trace == default.trace
    run(s, [X, W, Y], lambda x, w: ref.conv2d_nchw(x, w, stride=1, padding=1))


def test_a_record_that_does_not_fit_the_callers_graph_is_skipped_there_only(tmp_path):
    """A matmul reading an inlined relu, under other names: the record's trace replays on the
    template's graph but not on this one. It is skipped here (file:line), the default schedule
    is used (correct numbers), and the record still applies to a plain matmul."""
    best, best_s = record_of("matmul", MATMUL, 15, 1e-5)
    log = tmp_path / "t.jsonl"
    save_records(log, [best])
    M, N, K = MATMUL
    A, B = te.placeholder((M, K), name="A"), te.placeholder((K, N), name="B")
    C = S.matmul(S.relu(A), B, name="layer1")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with autotune.apply_history_best(str(log)):
            s = S.schedule(C)
            s_plain = S.schedule(matmul_op()[2])
    here = [m for m in messages(caught) if "does not apply to this graph" in m]
    assert len(here) == 1 and f"{log}:1:" in here[0], messages(caught)
    assert messages(caught, S.NoTunedRecordWarning)
    assert lowered(s_plain) == lowered(best_s)
    run(s, [A, B, C], lambda a, b: ref.matmul(np.maximum(a, 0), b))


def test_a_failing_replay_leaves_the_callers_schedule_untouched():
    """The check replays on a copy: a trace whose later step fails changes nothing in ``s``."""
    A, B, C = matmul_op()
    s = te.create_schedule([C.op])
    s[C].split(C.op.axis[0], factor=4)
    before = copy.deepcopy(s.trace)
    trace = {"version": 1, "steps": [{"stage": "matmul", "primitive": "split", "args": {"axis": "j", "factor": 8}},
                                     {"stage": "matmul", "primitive": "vectorize", "args": {"axis": "k"}}]}
    with pytest.raises(loopc.ScheduleError, match="reduction"):
        S._check_replay(s, s[C], trace)
    assert s.trace == before and len(s[C].leaf_iter_vars) == 4


@autotune.template("robust_rowsum")
def rowsum(n, m):
    """A row sum whose ``bad`` knob vectorizes the reduction axis (an illegal schedule)."""
    cfg = autotune.get_config()
    cfg.define_knob("mode", ["plain", "unroll", "bad"])
    A = te.placeholder((n, m), name="A")
    k = te.reduce_axis((0, m), name="k")
    R = te.compute((n,), lambda i: te.sum(A[i, k], axis=k), name="R")
    s = te.create_schedule(R.op)
    if cfg["mode"].val == "bad":
        s[R].vectorize(k)
    elif cfg["mode"].val == "unroll":
        s[R].unroll(k)
    return s, [A, R]


def test_apply_history_best_skips_a_record_whose_config_fails_the_template(tmp_path):
    """A user template under apply_history_best: the best record's config makes the template
    raise; that record is skipped (file:line) and the next one is used."""
    task = autotune.create_task("robust_rowsum", (5, 8))
    recs = [Record(workload=task.workload, target=HOST, config=task.config_space.get(i).to_json(),
                   costs=(c, c), flop=task.flop) for i, c in ((1, 3e-6), (2, 1e-6))]
    log = tmp_path / "rowsum.jsonl"
    save_records(log, recs)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with autotune.apply_history_best(str(log)):
            s, (A, R) = rowsum(5, 8)
            s2, _ = rowsum(5, 8)                  # the skipped record stays skipped, silently
    skipped = [m for m in messages(caught) if "skipped" in m]
    assert len(skipped) == 1 and f"{log}:2:" in skipped[0] and "reduction" in skipped[0]
    assert s.trace == s2.trace and s.trace[0]["primitive"] == "unroll"
    a = rand(5, 8)
    r = np.zeros(5, np.float32)
    loopc.build(s, [A, R])(a, r)
    np.testing.assert_allclose(r, a.sum(axis=1), rtol=1e-5, atol=1e-5)
    with autotune.apply_history_best(recs[1:]):     # not from a file: named by its config
        with pytest.warns(autotune.AutotuneWarning, match="not loaded from a file"):
            rowsum(5, 8)


# --------------------------------------------------------------------------- bad logs and lines


def test_a_directory_as_the_log_is_a_clear_error(tmp_path):
    rec, _ = record_of("dense", (4, 32, 6), 1, 1e-5)
    for call in (lambda: load_records(tmp_path), lambda: autotune.apply_history_best(str(tmp_path)),
                 lambda: autotune.pick_best(tmp_path, tmp_path / "out.jsonl"),
                 lambda: save_records(tmp_path, []), lambda: append_record(tmp_path, rec)):
        with pytest.raises(RecordError, match="is a directory"):
            call()
    assert issubclass(RecordError, LoopcError)


def test_bad_lines_are_skipped_with_file_and_line(tmp_path):
    """Nesting deep enough to overflow json's recursion, nesting past MAX_DEPTH, and a target
    with an unbalanced quote: each line is skipped with a warning naming file:line."""
    good, _ = record_of("dense", (4, 32, 6), 1, 1e-5)
    deep = "[" * 200_000 + "]" * 200_000
    nested = copy.deepcopy(good.to_json())
    nested["config"]["trace"]["extra"] = json.loads("[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5))
    quote = copy.deepcopy(good.to_json())
    quote["target"] = HOST.replace("-mcpu=", '"-mcpu=')
    log = tmp_path / "log.jsonl"
    log.write_text("\n".join([good.dumps(), deep, json.dumps(nested), json.dumps(quote), good.dumps()]) + "\n")
    with pytest.warns(autotune.AutotuneWarning) as caught:
        recs = load_records(log)
    text = " | ".join(messages(caught))
    for line in (2, 3, 4):
        assert f"{log}:{line}: not a valid record" in text
    assert "nested too deeply" in text and "No closing quotation" in text
    assert [(r.source, r.line) for r in recs] == [(str(log), 1), (str(log), 5)]
    with pytest.warns(autotune.AutotuneWarning):
        with autotune.apply_history_best(str(log)) as ctx:       # usable despite the bad lines
            assert ctx.best_record(good.workload) is not None


class _NoMeasuring:
    """A builder and runner that fail the test if anything is measured."""
    n_parallel = 1
    builds_remotely = True

    def build(self, inputs):  # pragma: no cover - must not be reached
        raise AssertionError("measured although the log is not writable")

    def run(self, inputs, builds):  # pragma: no cover
        raise AssertionError("measured although the log is not writable")


def test_an_unwritable_log_fails_before_tuning(tmp_path):
    task = autotune.create_task("robust_rowsum", (5, 8))
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    bad = [tmp_path, blocker / "log.jsonl"]
    if os.geteuid() != 0:                              # root may write anywhere
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o555)
        bad.append(ro / "log.jsonl")
    for path in bad:
        option = {"builder": _NoMeasuring(), "runner": _NoMeasuring()}
        with pytest.raises(RecordError, match="tuning log"):
            autotune.RandomTuner(task, seed=0).tune(3, option, callbacks=[autotune.log_to_file(path)])
    for kwargs in ({"n_trial": -1}, {"n_trial": 2, "early_stopping": 0}):
        with pytest.raises(LoopcError, match="must be an integer"):
            autotune.RandomTuner(task, seed=0).tune(measure_option={"builder": _NoMeasuring(),
                                                                    "runner": _NoMeasuring()}, **kwargs)


# --------------------------------------------------------------------------- loopc tune


def cli(argv, capsys):
    """``loopc`` in this process: (exit code, stdout, stderr)."""
    from loopc.cli import main
    try:
        rc = main(argv)
    except SystemExit as e:                   # argparse's errors
        rc = e.code
    out, err = capsys.readouterr()
    return rc, out, err


QUICK = ["--n-parallel", "1", "--number", "1", "--repeat", "1", "--quiet", "--tuner", "random"]


@pytest.mark.parametrize("args,expect", [
    (["gemm", "--shape", "16", "16"], "gemm takes 3 arguments: M N K; got 2"),
    (["conv2d", "--shape", "1", "2", "3"], "conv2d takes 9 arguments: N C H W K R S stride padding"),
    (["dense", "--shape", "1", "2", "3", "4"], "dense takes 3 arguments: batch in_features out_features"),
    (["gemm", "--shape", "8", "8", "8", "--trials", "-5"], "--trials"),
    (["gemm", "--shape", "8", "8", "8", "--timeout", "0"], "--timeout"),
    (["gemm", "--shape", "8", "8", "8", "--early-stopping", "0"], "--early-stopping"),
    (["gemm", "--shape", "8", "8", "8", "--n-parallel", "0"], "--n-parallel"),
    (["gemm", "--shape", "8", "8", "8", "--number", "0"], "--number"),
    (["gemm", "--shape", "8", "8", "8", "--repeat", "0"], "--repeat"),
    (["gemm", "--shape", "8", "8", "8", "--target", "bogus"], "bogus"),
    (["gemm", "--shape", "8", "-8", "8"], "--shape"),
    (["gemm", "--shape", "0", "8", "8"], "positive"),
    (["conv2d", "--shape", "1", "1", "4", "4", "1", "9", "9", "1", "0"], "does not fit"),
    (["nosuch", "--shape", "8"], "no template named 'nosuch'"),
])
def test_bad_tune_arguments_are_one_line_and_exit_2(tmp_path, capsys, args, expect):
    log = tmp_path / "t.jsonl"
    rc, out, err = cli(["tune", *args, "--log", str(log), *QUICK], capsys)
    assert rc == 2 and expect in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not log.exists()                   # nothing was tuned


@pytest.mark.parametrize("log", ["dir", "missing_folder"])
def test_bad_log_path_is_an_error_before_tuning(tmp_path, capsys, log):
    path = tmp_path if log == "dir" else tmp_path / "nope" / "t.jsonl"
    rc, out, err = cli(["tune", "gemm", "--shape", "8", "8", "8", "--log", str(path), *QUICK], capsys)
    assert rc == 2 and "--log" in err and "Traceback" not in err
    assert "tuning gemm" not in out


def test_an_unknown_cpu_is_refused_up_front(tmp_path, capsys):
    from loopc.targets.llvm import parse_target
    try:
        parse_target("llvm -mcpu=bogus")
    except LoopcError:
        pass
    else:
        pytest.skip("loopc.targets.llvm.parse_target does not check -mcpu names")
    rc, out, err = cli(["tune", "gemm", "--shape", "8", "8", "8", "--target", "llvm -mcpu=bogus",
                        "--log", str(tmp_path / "t.jsonl"), *QUICK], capsys)
    assert rc == 2 and "--target" in err and "bogus" in err and "Traceback" not in err
    assert "tuning gemm" not in out


def test_cuda_without_a_gpu_is_refused_up_front(tmp_path):
    """In a clean process without numba's simulator: one line naming the fix, exit 2."""
    code = textwrap.dedent("""
        import sys, numba.cuda
        if numba.cuda.is_available():
            print("GPU"); sys.exit(0)
        from loopc.cli import main
        sys.exit(main(sys.argv[1:]))
    """)
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    out = subprocess.run([sys.executable, "-c", code, "tune", "matmul", "--shape", "8", "8", "8", "--target", "cuda",
                          "--log", str(tmp_path / "c.jsonl"), "--quiet"], capture_output=True, text=True, env=env,
                         timeout=120)
    if out.stdout.strip() == "GPU":
        pytest.skip("a CUDA GPU is present")
    assert out.returncode == 2, out.stderr
    assert "no usable CUDA GPU" in out.stderr and "NUMBA_ENABLE_CUDASIM=1" in out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "c.jsonl").exists()


@autotune.template("robust_unbuildable")
def unbuildable(n):
    """Collects its space, but no config builds in a measurement worker."""
    import multiprocessing
    cfg = autotune.get_config()
    cfg.define_knob("unroll", [0, 1, 2])
    A = te.placeholder((n,), name="A")
    B = te.compute((n,), lambda i: A[i] + 1.0, name="B")
    s = te.create_schedule(B.op)
    if multiprocessing.parent_process() is not None:
        raise loopc.ScheduleError("unroll", "B", "simulated: this config cannot be built", "none")
    return s, [A, B]


def test_every_trial_failing_names_the_error(tmp_path, capsys):
    """Every build fails: the command says which error, how often, and its message."""
    log = tmp_path / "t.jsonl"
    rc, out, err = cli(["tune", "robust_unbuildable", "--shape", "4", "--trials", "2", "--log", str(log), *QUICK],
                       capsys)
    assert rc == 1, err
    assert "no successful measurement of robust_unbuildable(4,)" in err
    assert "most often build_error (2 of 2)" in err and "simulated: this config cannot be built" in err
    assert len(err.strip().splitlines()) == 2 and "Traceback" not in err
    assert len(load_records(log)) == 2


def test_tune_resumes_a_log_with_garbage_lines_and_keeps_them(tmp_path, capsys):
    """Deeply nested JSON and a target with an unbalanced quote in the log: `loopc tune` warns,
    tunes, and leaves those lines where they were (the log is the user's)."""
    good, _ = record_of("dense", (4, 32, 6), 1, 1e-5)
    quote = copy.deepcopy(good.to_json())
    quote["target"] = 'llvm "-mcpu=x'
    lines = ["[" * 100_000 + "]" * 100_000, json.dumps(quote)]
    log = tmp_path / "t.jsonl"
    log.write_text("\n".join(lines) + "\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rc, out, err = cli(["tune", "gemm", "--shape", "8", "8", "8", "--trials", "2", "--log", str(log), *QUICK],
                           capsys)
    assert rc == 0, err
    text = " | ".join(messages(caught))
    assert f"{log}:1: not a valid record" in text and "nested too deeply" in text
    assert f"{log}:2: not a valid record" in text and "unbalanced quote" in text
    kept = log.read_text().splitlines()
    assert kept[:2] == lines and len(kept) == 4 and "best:" in out


# --------------------------------------------------------------------------- kill -9 of the tuner

_CRASH_TEST = r'''
import json, os, signal, subprocess, sys, time

def table():
    """{pid: (ppid, start time, cmdline)} of every process."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        rest = stat[stat.rindex(")") + 2:].split()
        out[int(d)] = (int(rest[1]), rest[19], cmd)
    return out

def descendants(root):
    procs, found, todo = table(), {}, [root]
    while todo:
        parent = todo.pop()
        for pid, (ppid, start, cmd) in procs.items():
            if ppid == parent and pid not in found:
                found[pid] = (start, cmd)
                todo.append(pid)
    return found

log, pidfile, loopc = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
p = subprocess.Popen([*loopc, "tune", "gemm", "--shape", "16", "16", "16", "--trials", "500", "--tuner", "random",
                      "--n-parallel", "2", "--number", "1", "--repeat", "1", "--quiet", "--log", log],
                     start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
with open(pidfile, "w") as f:
    f.write(str(p.pid))
deadline = time.time() + 60
kids = {}
while time.time() < deadline:      # mid-run: records written, forkserver, tracker and workers up
    kids = descendants(p.pid)
    if os.path.exists(log) and os.path.getsize(log) > 0 and len(kids) >= 4:
        break
    time.sleep(0.1)
else:
    p.kill()
    print("NOT STARTED", kids); sys.exit(3)
kids = descendants(p.pid)
os.kill(p.pid, signal.SIGKILL)
p.wait()
deadline = time.time() + 10
while time.time() < deadline:
    now = table()
    left = {pid: cmd for pid, (start, cmd) in kids.items() if pid in now and now[pid][1] == start}
    if not left:
        print("CLEAN", len(kids)); sys.exit(0)
    time.sleep(0.2)
for pid in left:                  # clean up what this test started
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
print("LEFT", left); sys.exit(1)
'''


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_kill_9_of_tune_leaves_no_process_behind(tmp_path):
    """SIGKILL of `loopc tune` mid-run: its forkserver, resource tracker and pool workers all
    end within 10 s (run in a child process, so a failure cannot take pytest along)."""
    loopc_bin = os.path.join(os.path.dirname(sys.executable), "loopc")
    command = [loopc_bin] if os.path.exists(loopc_bin) else [sys.executable, "-m", "loopc.cli"]
    pidfile = tmp_path / "tune.pid"
    clean = False
    try:
        out = subprocess.run([sys.executable, "-c", _CRASH_TEST, str(tmp_path / "k.jsonl"), str(pidfile),
                              json.dumps(command)], capture_output=True, text=True, timeout=120)
        clean = out.returncode == 0
    finally:                          # a failure: nothing of the tuner's own session survives the test
        if not clean and pidfile.exists():
            try:
                os.killpg(int(pidfile.read_text()), 9)
            except (ProcessLookupError, PermissionError, ValueError):
                pass
    assert out.returncode == 0 and out.stdout.startswith("CLEAN"), out.stdout + out.stderr
    assert int(out.stdout.split()[1]) >= 4          # tracker, forkserver and workers were seen
    assert load_records(tmp_path / "k.jsonl")       # records written before the kill are intact
