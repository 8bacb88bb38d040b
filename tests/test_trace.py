"""Schedules are replayable records: ``s.trace_json()`` replays onto a fresh schedule of the
same compute and gives the same loop nest and the same numbers; malformed traces are refused
with ScheduleError."""
from __future__ import annotations

import json

import numpy as np
import pytest

from loopc import ScheduleError, te

from conftest import conv2d, inputs_for, lowered_text, matmul, run_interp, run_llvm, softmax


# --------------------------------------------------------------------------- schedules to record
# Each takes a workload and a fresh schedule of it and applies primitives.


def sch_matmul_classic(wl, s):
    C = wl.C
    i, j = C.op.axis
    io, jo, ii, ji = s[C].tile(i, j, 4, 8)
    ko, ki = s[C].split(wl.k, factor=3)
    s[C].reorder(io, jo, ko, ki, ii, ji)
    s[C].vectorize(ji)
    s[C].unroll(ki)
    s[C].parallel(io)


def sch_matmul_nparts_fuse(wl, s):
    C = wl.C
    i, j = C.op.axis
    jo, ji = s[C].split(j, nparts=3)
    s[C].reorder(wl.k, i, jo, ji)
    f = s[C].fuse(i, jo)
    s[C].parallel(f)
    s[C].split(ji, factor=4)


def sch_conv(wl, s):
    O = wl.conv
    n, f, y, x = O.op.axis
    fused = s[O].fuse(n, f, y)
    xo, xi = s[O].split(x, factor=4)
    r = s[O].fuse(wl.ry, wl.rx)
    s[O].reorder(fused, xo, wl.c, r, xi)
    s[O].vectorize(xi)
    s[O].parallel(fused)


def sch_conv_inline_pad(wl, s):
    s[wl.pad].compute_inline()
    O = wl.conv
    s[O].unroll(wl.rx)
    s[O].split(O.op.axis[3], nparts=2)


def sch_softmax(wl, s):
    s[wl.expo].compute_inline()
    s[wl.expo].compute_root()
    for name in ("expo", "softmax"):
        t = getattr(wl, name)
        _, ji = s[t].split(t.op.axis[1], factor=8)
        s[t].vectorize(ji)
    s[wl.rowsum].parallel(wl.rowsum.op.axis[0])
    ko, ki = s[wl.rowmax].split(wl.k1, factor=5)
    s[wl.rowmax].unroll(ki)


def sch_softmax_inline(wl, s):
    s[wl.expo].compute_inline()
    s[wl.softmax].parallel(wl.softmax.op.axis[0])


CASES = [
    ("matmul_classic", lambda: matmul(13, 7, 29), sch_matmul_classic),
    ("matmul_nparts_fuse", lambda: matmul(13, 7, 29), sch_matmul_nparts_fuse),
    ("conv", lambda: conv2d(), sch_conv),
    ("conv_inline_pad", lambda: conv2d(padding_stage=True), sch_conv_inline_pad),
    ("softmax", lambda: softmax(7, 37), sch_softmax),
    ("softmax_inline", lambda: softmax(7, 37), sch_softmax_inline),
]


@pytest.mark.parametrize("name,make,apply", CASES, ids=[c[0] for c in CASES])
def test_replay_gives_identical_loop_nest_and_numbers(name, make, apply):
    wl = make()
    s1 = wl.schedule()
    apply(wl, s1)
    trace = s1.trace_json()
    assert isinstance(trace, str)

    s2 = wl.schedule().replay(trace)     # a fresh schedule of the same compute
    text1, text2 = lowered_text(s1, wl.args), lowered_text(s2, wl.args)
    assert text1 == text2
    assert s2.trace_json() == trace      # replaying records the same steps again

    inputs = inputs_for(wl.args, seed=5)
    out1 = run_llvm(s1, wl.args, inputs)
    out2 = run_llvm(s2, wl.args, inputs)
    for a, b in zip(out1, out2):
        np.testing.assert_array_equal(a, b)
    want = wl.ref(*inputs)
    np.testing.assert_allclose(out2[0], want, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(run_interp(s2, wl.args, inputs)[0], want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name,make,apply", CASES, ids=[c[0] for c in CASES])
def test_replay_onto_a_redeclared_compute(name, make, apply):
    """A trace names stages and axes, not Python objects: it replays onto the same operator
    declared again (as when a tuning record is applied in another process)."""
    wl1, wl2 = make(), make()
    s1 = wl1.schedule()
    apply(wl1, s1)
    s2 = wl2.schedule().replay(s1.trace_json())
    assert lowered_text(s1, wl1.args) == lowered_text(s2, wl2.args)


def test_trace_format():
    wl = matmul(13, 7, 29)
    s = wl.schedule()
    i, j = wl.C.op.axis
    s[wl.C].tile(i, j, 4, 8)
    s[wl.C].split(wl.k, nparts=2)
    doc = json.loads(s.trace_json())
    assert doc["version"] == 1
    steps = doc["steps"]
    assert [st["primitive"] for st in steps] == ["split", "split", "reorder", "split"]
    assert all(st["stage"] == "C" for st in steps)
    assert steps[0]["args"] == {"axis": "i", "factor": 4}
    assert steps[2]["args"] == {"axes": ["i.outer", "j.outer", "i.inner", "j.inner"]}
    assert steps[3]["args"] == {"axis": "k", "nparts": 2}


def test_failed_primitive_is_not_recorded():
    wl = matmul(13, 7, 29)
    s = wl.schedule()
    with pytest.raises(ScheduleError):
        s[wl.C].vectorize(wl.k)
    assert json.loads(s.trace_json())["steps"] == []


def test_replay_accepts_dict_and_list():
    wl = matmul(13, 7, 29)
    s1 = wl.schedule()
    sch_matmul_classic(wl, s1)
    want = lowered_text(s1, wl.args)
    doc = json.loads(s1.trace_json())
    assert lowered_text(wl.schedule().replay(doc), wl.args) == want
    assert lowered_text(wl.schedule().replay(doc["steps"]), wl.args) == want


def test_replay_of_an_illegal_step_raises():
    wl = matmul(13, 7, 29)
    trace = json.dumps({"version": 1, "steps": [{"stage": "C", "primitive": "vectorize", "args": {"axis": "k"}}]})
    with pytest.raises(ScheduleError, match="reduction"):
        wl.schedule().replay(trace)


def test_replay_onto_a_different_compute_raises():
    wl = matmul(13, 7, 29)
    s1 = wl.schedule()
    sch_matmul_classic(wl, s1)
    other = softmax(7, 37)
    with pytest.raises(ScheduleError, match="'C'"):
        other.schedule().replay(s1.trace_json())


STEP = {"stage": "C", "primitive": "split", "args": {"axis": "i", "factor": 4}}


def _doc(*steps, version=1):
    return json.dumps({"version": version, "steps": list(steps)})


MALFORMED = [
    pytest.param(_doc({**STEP, "stage": "nosuch"}), id="unknown stage"),
    pytest.param(_doc({**STEP, "primitive": "explode"}), id="unknown primitive"),
    pytest.param(_doc({**STEP, "args": {"axis": "zz", "factor": 4}}), id="unknown axis"),
    pytest.param(_doc({"primitive": "split", "args": STEP["args"]}), id="step without stage"),
    pytest.param(_doc({"stage": "C", "args": STEP["args"]}), id="step without primitive"),
    pytest.param(_doc(5), id="step not an object"),
    pytest.param(json.dumps({"version": 1, "steps": "oops"}), id="steps not a list"),
    pytest.param(_doc({**STEP, "args": {"axis": "i", "factor": 0}}), id="bad factor"),
    pytest.param(_doc({**STEP, "args": {"axis": "i", "factor": "4"}}), id="factor as string"),
    pytest.param("[1, 2]", id="list of numbers"),
    pytest.param("not json at all", id="not json"),
    pytest.param(json.dumps({"version": 1}), id="no steps"),
    pytest.param("42", id="a number"),
    pytest.param(_doc({**STEP, "args": {"factor": 4}}), id="split without axis"),
    pytest.param(_doc({"stage": "C", "primitive": "fuse", "args": {}}), id="fuse without axes"),
    pytest.param(_doc({**STEP, "args": "oops"}), id="args not an object"),
    pytest.param(_doc({"stage": "C", "primitive": "fuse", "args": {"axes": "ij"}}), id="axes as a string"),
    pytest.param(_doc(STEP, version=99), id="unknown version"),
]


@pytest.mark.parametrize("trace", MALFORMED)
def test_malformed_trace_raises_schedule_error(trace):
    wl = matmul(13, 7, 29)
    s = wl.schedule()
    with pytest.raises(ScheduleError) as info:
        s.replay(trace)
    assert "replay" in str(info.value) or info.value.primitive in ("split", "fuse", "reorder")


def test_replay_with_default_named_reduce_axes():
    A = te.placeholder((5, 7, 3), name="A")
    r1, r2 = te.reduce_axis((0, 7)), te.reduce_axis((0, 3))
    C = te.compute((5,), lambda i: te.sum(A[i, r1, r2], axis=[r1, r2]), name="C")
    s1 = te.create_schedule(C.op)
    s1[C].split(r2, factor=2)
    s2 = te.create_schedule(C.op).replay(s1.trace_json())
    assert lowered_text(s1, [A, C]) == lowered_text(s2, [A, C])
