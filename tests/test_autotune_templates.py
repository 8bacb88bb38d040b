"""Templates for the autotune tests, and tests of templates and config spaces (no measuring).

Measurement workers import this module by name (``test_autotune_templates``, the tests
directory is on ``sys.path``), so the templates live at its top level.
"""
import json
import multiprocessing
import os
import sys
import time

import numpy as np
import pytest

import loopc
from loopc import LoopcError, autotune, te
from loopc.autotune.space import ConfigSpace


def _in_worker() -> bool:
    """True inside a measurement worker (never in the test process itself): a multiprocessing
    child, or the ``python -m loopc.autotune.worker`` child a Dask worker starts."""
    main_spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    return multiprocessing.parent_process() is not None or getattr(main_spec, "name", "") == "loopc.autotune.worker"


@autotune.template("test_matmul")
def small_matmul(M, N, K):
    """A matmul with split, reorder and annotate knobs (a few hundred configs)."""
    cfg = autotune.get_config()
    A = te.placeholder((M, K), name="A")
    B = te.placeholder((K, N), name="B")
    k = te.reduce_axis((0, K), name="k")
    C = te.compute((M, N), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    s = te.create_schedule(C.op)
    i, j = C.op.axis
    cfg.define_split("tile_i", i, num_outputs=2, policy="power2", filter=lambda e: e.size[-1] <= 8)
    cfg.define_split("tile_j", j, num_outputs=2, policy="candidate", candidate=[[-1, 4], [-1, 8], [-1, 16]])
    cfg.define_split("tile_k", k, num_outputs=2, policy="factors", max_factor=8)
    io, ii = cfg["tile_i"].apply(s, C, i)
    jo, ji = cfg["tile_j"].apply(s, C, j)
    ko, ki = cfg["tile_k"].apply(s, C, k)
    s[C].reorder(io, jo, ko, ki, ii, ji)
    cfg.define_reorder("inner", [ki, ii], policy="all")
    cfg["inner"].apply(s, C, [ki, ii])
    cfg.define_annotate("ann", [ii, ji], policy="try_unroll_vec")
    cfg["ann"].apply(s, C, [ii, ji])
    return s, [A, B, C]


@autotune.template("test_modes")
def modes(n):
    """Each knob value misbehaves in its own way inside the measurement worker."""
    cfg = autotune.get_config()
    cfg.define_knob("mode", ["ok", "crash", "hang", "wrong", "raise", "ok_vec"])
    mode = cfg["mode"].val
    if mode == "crash" and _in_worker():
        os.abort()
    if mode == "hang" and _in_worker():
        time.sleep(3600)
    A = te.placeholder((n,), name="A")
    if mode == "wrong":
        B = te.compute((n,), lambda i: A[i] * 2.0 + 1.0, name="B")
    else:
        B = te.compute((n,), lambda i: A[i] * 2.0, name="B")
    s = te.create_schedule(B.op)
    if mode == "raise":
        s[B].split(B.op.axis[0], factor=0)         # a ScheduleError: a build_error
    if mode == "ok_vec":
        _, inner = s[B].split(B.op.axis[0], factor=8)
        s[B].vectorize(inner)
    return s, [A, B]


@autotune.template("test_noflop")
def noflop(n):
    cfg = autotune.get_config()
    cfg.define_knob("x", [1, 2])
    A = te.placeholder((n, n), name="A")
    B = te.compute((n, n), lambda i, j: A[i, j] * 3.0 + A[j, i], name="B")
    return te.create_schedule(B.op), [A, B]


# --------------------------------------------------------------------------- spaces


def _space(define):
    space = ConfigSpace()
    define(space)
    return space


def test_split_policies_enumerate_as_documented():
    sp = _space(lambda c: c.define_split("s", 12, num_outputs=2))
    assert [e.size for e in sp.space_map["s"].entities] == [(1, 12), (2, 6), (3, 4), (4, 3), (6, 2), (12, 1)]
    three = _space(lambda c: c.define_split("s", 8, num_outputs=3)).space_map["s"]
    assert len(three) == 10 and all(np.prod(e.size) == 8 for e in three.entities)
    p2 = _space(lambda c: c.define_split("s", 10, policy="power2")).space_map["s"]
    assert [e.size for e in p2.entities] == [(10, 1), (5, 2), (3, 4), (2, 8)]      # outer = ceil
    cand = _space(lambda c: c.define_split("s", 10, policy="candidate", candidate=[[-1, 3], [2, 5]]))
    assert [e.size for e in cand.space_map["s"].entities] == [(4, 3), (2, 5)]
    filt = _space(lambda c: c.define_split("s", 12, filter=lambda e: e.size[-1] % 2 == 0)).space_map["s"]
    assert [e.size[-1] for e in filt.entities] == [12, 6, 4, 2]
    k = te.reduce_axis((0, 6), name="k")
    assert len(_space(lambda c: c.define_split("s", k)).space_map["s"]) == 4        # an axis: its extent


def test_reorder_annotate_and_knob_spaces():
    A = te.placeholder((8, 8), name="A")
    B = te.compute((8, 8), lambda i, j: A[i, j] + 1.0, name="B")
    i, j = B.op.axis
    sp = ConfigSpace()
    sp.define_reorder("all", [i, j], policy="all")
    sp.define_reorder("cand", [i, j], policy="candidate", candidate=[[j, i]])
    sp.define_annotate("u", [i, j], policy="try_unroll")
    sp.define_annotate("v", [i, j], policy="try_vectorize")
    sp.define_annotate("uv", [i, j], policy="try_unroll_vec")
    sp.define_knob("k", [1, "two", None])
    assert [len(sp.space_map[n]) for n in ("all", "cand", "u", "v", "uv", "k")] == [2, 1, 4, 2, 6, 3]
    assert len(sp) == 2 * 1 * 4 * 2 * 6 * 3
    assert sp["cand"].perm == (1, 0)
    with pytest.raises(LoopcError, match="defined twice"):
        sp.define_knob("k", [1])
    with pytest.raises(LoopcError, match="unknown policy"):
        sp.define_split("bad", 8, policy="fancy")
    with pytest.raises(LoopcError, match="JSON"):
        sp.define_knob("obj", [object()])


def test_gemm_space_is_the_product_of_its_knobs_and_prints():
    task = autotune.create_task("gemm", (64, 64, 64))
    space = task.config_space
    sizes = [len(k) for k in space.space_map.values()]
    assert len(space) == int(np.prod(sizes)) > 1000
    text = str(space)
    for name in ("tile_i", "tile_j", "tile_k", "pack_b", "parallel", "order", "unroll_k"):
        assert name in text
    assert str(len(space)) in text
    assert task.flop == 2 * 64 ** 3
    json.dumps(task.workload)                                   # JSON-serialisable
    assert task.workload == ("gemm", (64, 64, 64))
    rng = np.random.default_rng(0)
    seen = set()
    for idx in [0, len(space) - 1] + [int(x) for x in rng.integers(0, len(space), 6)]:
        cfg = space.get(idx)
        assert space.index_of(cfg) == idx
        assert space.index_from_knobs(space.knob_indices(idx)) == idx
        assert autotune.ConfigEntity.from_json(json.loads(json.dumps(cfg.to_json()))) == cfg
        s, args = task.instantiate(cfg)
        seen.add(s.trace_json())
        splits = [st["args"] for st in s.trace if st["primitive"] == "split" and st["stage"] == "C"]
        assert splits[0] == {"axis": "i", "factor": cfg["tile_i"].size[-1]}          # the knob, applied
    assert len(seen) == 8                                       # different configs, different schedules


def test_apply_returns_new_axes_and_schedules_agree_with_numpy():
    task = autotune.create_task("test_matmul", (13, 17, 12))
    space = task.config_space
    assert len(space) == int(np.prod([len(k) for k in space.space_map.values()]))
    a = np.random.default_rng(0).random((13, 12), dtype=np.float32)
    b = np.random.default_rng(1).random((12, 17), dtype=np.float32)
    for idx in (0, len(space) // 3, len(space) - 1):
        s, args = task.instantiate(idx)
        c = np.zeros((13, 17), np.float32)
        loopc.build(s, args)(a, b, c)
        np.testing.assert_allclose(c, a @ b, rtol=1e-5, atol=1e-5)
    cfg = space.get(5)
    A = te.placeholder((16,), name="A")
    B = te.compute((16,), lambda i: A[i] + 1.0, name="B")
    s = te.create_schedule(B.op)
    from loopc.autotune.space import SplitEntity
    axes = SplitEntity((2, 4, 2)).apply(s, B, B.op.axis[0])
    assert [ax.extent for ax in axes] == [2, 4, 2] and list(s[B].leaf_iter_vars) == axes
    assert cfg.index == 5


def test_get_config_is_only_valid_inside_a_context():
    with pytest.raises(LoopcError, match="only valid inside a template"):
        autotune.get_config()
    with pytest.raises(LoopcError, match="outside a tuning or apply context"):
        small_matmul(8, 8, 8)
    task = autotune.create_task("test_matmul", (8, 8, 8))
    with autotune.ApplyConfig(task.config_space.get(3)):
        s, _ = small_matmul(8, 8, 8)
        with pytest.raises(LoopcError):
            autotune.get_config()                               # only during the template call
    assert s.trace_json() == task.instantiate(3)[0].trace_json()


def test_template_errors_are_clear():
    with pytest.raises(LoopcError, match="no template named 'nope'"):
        autotune.create_task("nope", (1,))
    with pytest.raises(LoopcError, match="JSON value"):
        autotune.create_task("test_matmul", (8, object(), 8))
    with pytest.raises(LoopcError, match="already registered"):
        autotune.template("test_matmul")(lambda n: None)
    cfg = autotune.create_task("test_matmul", (8, 8, 8)).config_space.get(0)
    with pytest.raises(LoopcError, match="no knob 'missing'"):
        cfg["missing"]


def test_flop_is_estimated_when_the_template_does_not_declare_it():
    task = autotune.create_task("test_noflop", (10,))
    assert task.flop == 10 * 10 * 2                             # a mul and an add per element
    assert autotune.create_task("test_matmul", (4, 5, 6)).flop == 2 * 4 * 5 * 6
