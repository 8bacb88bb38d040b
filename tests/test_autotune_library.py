"""The autotuner connected to the operator library: loopc.schedules' tuning templates, its
tuned-record lookup (``schedules.tuned_record_lookup``), and the records shipped in loopc/schedules/tuned/."""
import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import loopc
from loopc import autotune, te
from loopc import schedules as S
from loopc.schedules import records as L
from loopc.autotune.dispatcher import resolve_target, target_key
from loopc.autotune.record import Record, load_records, save_records
from loopc.schedules import testing as ref

RNG = np.random.default_rng(0)
HOST = resolve_target("llvm")
HOST_CPU = target_key(HOST)[1]


def rand(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def library_op(name, args, names=None, op_name=None):
    """The library op of a template workload, declared as a user would (any tensor names; by
    default the template's)."""
    a, b = names or (("A", "B") if name == "matmul" else ("X", "W"))
    kw = {"name": op_name} if op_name else {}
    if name == "matmul":
        M, N, K = args
        A, B = te.placeholder((M, K), name=a), te.placeholder((K, N), name=b)
        return [A, B, S.matmul(A, B, **kw)]
    if name == "dense":
        batch, fin, fout = args
        X, W = te.placeholder((batch, fin), name=a), te.placeholder((fout, fin), name=b)
        return [X, W, S.dense(X, W, **kw)]
    N, C, H, Wd, K, R, Sz, stride, pad = args
    X, W = te.placeholder((N, C, H, Wd), name=a), te.placeholder((K, C, R, Sz), name=b)
    return [X, W, S.conv2d_nchw(X, W, stride=stride, padding=pad, **kw)]


def make_record(name, args, index=-1, target=HOST):
    """A measured-looking record of config ``index`` (with its schedule trace), as a tuner logs it."""
    task = autotune.create_task(name, args)
    cfg = task.config_space.get(index % len(task.config_space))
    s, _ = task.instantiate(cfg)
    config = cfg.to_json()
    config["trace"] = json.loads(s.trace_json())
    return Record(workload=task.workload, target=target, config=config, costs=(1e-5, 1e-5, 1e-5), flop=task.flop), s


def schedule_quietly(out):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", S.NoTunedRecordWarning)
        warnings.simplefilter("ignore", autotune.AutotuneWarning)
        return S.schedule(out)


def test_hook_installed_without_importing_autotune_explicitly():
    assert S.tuned_record_lookup is L.tuned_record_lookup
    assert {"matmul", "dense", "conv2d_nchw"} <= set(autotune.list_templates())
    code = ("import sys, warnings; warnings.simplefilter('ignore'); from loopc import te, schedules as S; "
            "X = te.placeholder((4, 32), name='X'); W = te.placeholder((3, 32), name='W'); "
            "S.schedule(S.dense(X, W)); assert S.tuned_record_lookup is not None; "
            "print('loopc.schedules.records' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True"


def test_cli_tunes_a_library_op(tmp_path, capsys):
    from loopc.cli import main
    log = tmp_path / "dense.jsonl"
    rc = main(["tune", "dense", "--shape", "4", "32", "6", "--trials", "2", "--tuner", "random", "--log", str(log),
               "--n-parallel", "1", "--number", "1", "--repeat", "1", "--quiet"])
    assert rc == 0
    recs = load_records(log)
    assert recs and all(r.workload == ("dense", (4, 32, 6)) for r in recs)
    assert "apply_history_best" in capsys.readouterr().out


@pytest.mark.parametrize("name,args", [("dense", (8, 48, 12)), ("matmul", (24, 40, 20)),
                                       ("conv2d_nchw", (2, 3, 10, 10, 4, 3, 3, 1, 1)),
                                       ("conv2d_nchw", (2, 32, 9, 9, 16, 3, 3, 1, 1))])
def test_config_0_of_a_library_template_is_the_default_schedule(name, args):
    """Tuning starts from what schedules.schedule already does: config 0 replays to the same
    loop nest (the 16-channel convolution's default is the direct method, the 4-channel one's
    im2col), and every config of the space computes the op correctly."""
    task = autotune.create_task(name, args)
    s0, _ = task.instantiate(task.config_space.get(0))
    X, W, Y = library_op(name, args)
    default = schedule_quietly(Y)
    assert str(loopc.lower(default, [X, W, Y])) == str(loopc.lower(s0, [*_inputs_of(s0), s0.outputs[0]]))
    x, w = rand(*X.shape), rand(*W.shape)
    expect = {"matmul": lambda: ref.matmul(x, w), "dense": lambda: ref.dense(x, w),
              "conv2d_nchw": lambda: ref.conv2d_nchw(x, w, stride=args[7], padding=args[8])}[name]()
    space = task.config_space
    for index in sorted({1, len(space) // 3, len(space) // 2, len(space) - 1}):
        s, tensors = task.instantiate(space.get(index))
        y = np.zeros(Y.shape, np.float32)
        loopc.build(s, tensors)(x, w, y)
        np.testing.assert_allclose(y, expect, rtol=1e-4, atol=1e-4, err_msg=str(space.get(index)))


@pytest.mark.parametrize("name,args", [("dense", (8, 48, 12)), ("matmul", (24, 40, 20)),
                                       ("conv2d_nchw", (2, 3, 10, 10, 4, 3, 3, 1, 1)),
                                       ("conv2d_nchw", (2, 32, 9, 9, 16, 3, 3, 1, 1))])
def test_apply_history_best_record_used_by_schedule(tmp_path, name, args):
    rec, tuned = make_record(name, args)
    log = tmp_path / "tuned.jsonl"
    save_records(log, [rec])
    X, W, Y = library_op(name, args)
    with warnings.catch_warnings():
        warnings.simplefilter("error")            # no NoTunedRecordWarning: the record is used
        with autotune.apply_history_best(str(log)):
            s = S.schedule(Y)
    assert str(loopc.lower(s, [X, W, Y])) == str(loopc.lower(tuned, [*_inputs_of(tuned), tuned.outputs[0]]))
    default = schedule_quietly(library_op(name, args)[2])
    assert s.trace != default.trace               # the chosen config is not the default one
    # the same record applies to the op declared under other tensor names
    X2, W2, Y2 = library_op(name, args, names=("in0", "in1"), op_name="layer3")
    with autotune.apply_history_best(str(log)):
        s2 = S.schedule(Y2)
    f = loopc.build(s2, [X2, W2, Y2])
    x, w = rand(*X2.shape), rand(*W2.shape)
    y = np.zeros(Y2.shape, np.float32)
    f(x, w, y)
    expect = {"matmul": lambda: ref.matmul(x, w), "dense": lambda: ref.dense(x, w),
              "conv2d_nchw": lambda: ref.conv2d_nchw(x, w, stride=args[7], padding=args[8])}[name]()
    np.testing.assert_allclose(y, expect, rtol=1e-4, atol=1e-4)


def _inputs_of(s):
    from loopc.schedule import post_order_ops
    from loopc.te.tensor import PlaceholderOp
    return [op.output(0) for op in post_order_ops([o.op for o in s.outputs]) if isinstance(op, PlaceholderOp)]


def test_record_of_another_cpu_is_not_applied(tmp_path):
    args = (8, 40, 6)
    other = HOST.replace(f"-mcpu={HOST_CPU}", "-mcpu=someothercpu")
    assert target_key(other)[1] == "someothercpu"
    rec, tuned = make_record("dense", args, target=other)
    log = tmp_path / "other.jsonl"
    save_records(log, [rec])
    X, W, Y = library_op("dense", args)
    with pytest.warns(autotune.AutotuneWarning, match="someothercpu.*not applied"):
        with pytest.warns(S.NoTunedRecordWarning):
            with autotune.apply_history_best(str(log)):
                s = S.schedule(Y)
    assert s.trace == schedule_quietly(library_op("dense", args)[2]).trace != tuned.trace


def test_untuned_workload_still_warns():
    X, W, Y = library_op("dense", (5, 33, 7))
    with pytest.warns(S.NoTunedRecordWarning, match=r"dense\(5x33 float32, 7x33 float32\)"):
        S.schedule(Y)
    A, B, C = library_op("conv2d_nchw", (1, 2, 9, 9, 3, 3, 3, 2, 1))   # stride 2: no record
    with pytest.warns(S.NoTunedRecordWarning):
        S.schedule(C)


def test_library_workload_mapping():
    X, W, Y = library_op("conv2d_nchw", (64, 6, 14, 14, 16, 5, 5, 1, 0))
    assert L.library_workload(S.workload_key(Y)) == ("conv2d_nchw", (64, 6, 14, 14, 16, 5, 5, 1, 0))
    X, W, Y = library_op("dense", (64, 400, 120))
    assert L.library_workload(S.workload_key(Y)) == ("dense", (64, 400, 120))
    A, B, C = library_op("matmul", (3, 5, 7))
    assert L.library_workload(S.workload_key(C)) == ("matmul", (3, 5, 7))


SHIPPED = sorted(f for f in os.listdir(L.TUNED_DIR) if f.endswith(".jsonl")) if os.path.isdir(L.TUNED_DIR) else []


@pytest.mark.parametrize("fname", SHIPPED)
def test_shipped_records_parse_and_replay(fname):
    path = os.path.join(L.TUNED_DIR, fname)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        records = load_records(path)
    assert records and all(r.ok and r.trace for r in records)
    cpu = fname[:-len(".jsonl")]
    assert {r.cpu for r in records} == {cpu}
    assert len({r.workload_key for r in records}) == len(records)     # the best one per workload
    for r in records:
        name, args = r.workload
        assert name in L.LIBRARY_TEMPLATES
        X, W, Y = library_op(name, args)
        te.create_schedule([Y.op]).replay(r.trace)                    # onto a fresh default schedule
        if cpu == HOST_CPU and target_key(r.target) == target_key(HOST):
            with warnings.catch_warnings():
                warnings.simplefilter("error", S.NoTunedRecordWarning)
                s = S.schedule(Y)
            s_ref = te.create_schedule([Y.op]).replay(r.trace)
            assert str(loopc.lower(s, [X, W, Y])) == str(loopc.lower(s_ref, [X, W, Y]))


def test_lenet_conv1_computes_correctly():
    """LeNet's first convolution (a shipped record on znver3), by schedules.schedule."""
    args = (64, 1, 28, 28, 6, 5, 5, 1, 2)
    X, W, Y = library_op("conv2d_nchw", args, names=("in0", "in1"))
    s = schedule_quietly(Y)
    f = loopc.build(s, [X, W, Y])
    x, w = rand(*X.shape), rand(*W.shape)
    y = np.zeros(Y.shape, np.float32)
    f(x, w, y)
    np.testing.assert_allclose(y, ref.conv2d_nchw(x, w, stride=1, padding=2), rtol=1e-4, atol=1e-4)
