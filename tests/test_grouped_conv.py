"""Grouped and depthwise convolution (``conv2d_nchw(..., groups=)``) and asymmetric padding:
seeded random shapes nobody chose (prime channels, multipliers, odd strides and padding pairs,
batch 1 and 3) under the default schedule and random tuning configs, against the numpy
reference — which is itself checked against PyTorch when PyTorch is installed."""
import warnings

import numpy as np
import pytest

import loopc
from loopc import LoopcError, autotune, te
from loopc import schedules as S
from loopc.schedules import tasks
from loopc.schedules import testing as ref
from loopc.schedules.ops import padding4

RNG = np.random.default_rng(2026)


def random_conv(rng):
    """(N, C, H, W, K, R, S, stride, padding, dilation, groups) of a random legal grouped conv."""
    kind = rng.choice(["depthwise", "depthwise_x2", "grouped", "dense"])
    groups = int(rng.choice([1, 2, 3, 5, 7]))
    if kind.startswith("depthwise"):
        C = groups = int(rng.choice([1, 3, 5, 7, 11]))
        K = C * (2 if kind == "depthwise_x2" else 1)
    else:
        C = groups * int(rng.choice([1, 2, 3]))
        K = groups * int(rng.choice([1, 2, 4]))
        groups = 1 if kind == "dense" else groups
    R, S_ = int(rng.choice([1, 2, 3, 5])), int(rng.choice([1, 3]))
    stride = (int(rng.integers(1, 4)), int(rng.integers(1, 3)))
    padding = (tuple(int(v) for v in rng.integers(0, 3, 4)) if rng.random() < 0.5
               else int(rng.integers(0, 3)))
    dilation = int(rng.choice([1, 1, 2]))
    H = int(rng.integers(dilation * (R - 1) + 1, 19))
    W = int(rng.integers(dilation * (S_ - 1) + 1, 23))
    return int(rng.choice([1, 3])), C, H, W, K, R, S_, stride, padding, dilation, groups


def _build_and_run(case):
    N, C, H, W, K, R, S_, stride, padding, dilation, groups = case
    X = te.placeholder((N, C, H, W), name="X")
    Wt = te.placeholder((K, C // groups, R, S_), name="W")
    Y = S.conv2d_nchw(X, Wt, stride, padding, dilation, groups=groups)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", S.NoTunedRecordWarning)
        s = S.schedule(Y)
    x = RNG.standard_normal((N, C, H, W)).astype(np.float32)
    w = RNG.standard_normal((K, C // groups, R, S_)).astype(np.float32)
    y = np.full(Y.shape, np.nan, np.float32)
    loopc.build(s, [X, Wt, Y])(x, w, y)
    return Y, x, w, y, ref.conv2d_nchw(x, w, stride, padding, dilation, groups)


@pytest.mark.parametrize("seed", range(24))
def test_default_schedules_of_random_grouped_convolutions_match_numpy(seed):
    case = random_conv(np.random.default_rng(seed))
    Y, x, w, y, want = _build_and_run(case)
    np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-4, err_msg=f"{Y.op.tag} {case}")


def _task_case(case):
    """The tuning task of a grouped convolution (the tuner's workloads: equal strides and padding)."""
    N, C, H, W, K, R, S_, stride, padding, dilation, groups = case
    return autotune.create_task("depthwise_conv2d_nchw" if C == groups else "group_conv2d_nchw",
                                (N, C, H, W, K, R, S_, stride[0], padding4(padding)[0], groups))


@pytest.mark.parametrize("seed", range(6))
def test_random_configs_of_the_grouped_template_match_numpy(seed):
    rng = np.random.default_rng(100 + seed)
    case = random_conv(rng)
    while case[-1] == 1 or case[9] != 1:
        case = random_conv(rng)
    task = _task_case(case)
    N, C, H, W, K, R, S_, stride, pad, groups = task.args
    x = RNG.standard_normal((N, C, H, W)).astype(np.float32)
    w = RNG.standard_normal((K, C // groups, R, S_)).astype(np.float32)
    want = ref.conv2d_nchw(x, w, stride, pad, 1, groups)
    space = task.config_space
    for index in sorted({0, *rng.integers(len(space), size=3).tolist()}):
        s, tensors = task.instantiate(space.get(index))
        y = np.full(want.shape, np.nan, np.float32)
        loopc.build(s, tensors)(x, w, y)
        np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-4, err_msg=f"{task.args} {space.get(index)}")


def test_the_reference_agrees_with_pytorch_on_groups_and_padding_pairs():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    for _ in range(20):
        N, C, H, W, K, R, S_, stride, padding, dilation, groups = random_conv(rng)
        x = rng.standard_normal((N, C, H, W)).astype(np.float32)
        w = rng.standard_normal((K, C // groups, R, S_)).astype(np.float32)
        top, left, bottom, right = padding4(padding)
        tx = torch.nn.functional.pad(torch.from_numpy(x), (left, right, top, bottom))
        want = torch.nn.functional.conv2d(tx, torch.from_numpy(w), stride=stride, dilation=dilation,
                                          groups=groups).numpy()
        got = ref.conv2d_nchw(x, w, stride, padding, dilation, groups)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_tags_name_the_case_and_the_tuner_has_a_template_for_each():
    X = te.placeholder((1, 6, 8, 8), name="X")
    assert S.conv2d_nchw(X, te.placeholder((6, 1, 3, 3)), groups=6).op.tag == "depthwise_conv2d_nchw"
    assert S.conv2d_nchw(X, te.placeholder((12, 1, 3, 3)), groups=6).op.tag == "depthwise_conv2d_nchw"
    assert S.conv2d_nchw(X, te.placeholder((4, 3, 3, 3)), groups=2).op.tag == "group_conv2d_nchw"
    assert S.conv2d_nchw(X, te.placeholder((4, 6, 3, 3)), padding=(0, 1, 2, 1)).op.tag == "conv2d_nchw"
    Y = S.conv2d_nchw(X, te.placeholder((6, 1, 3, 3)), stride=2, padding=1, groups=6)
    assert tasks.workload(Y) == ("depthwise_conv2d_nchw", (1, 6, 8, 8, 6, 3, 3, 2, 1, 6))
    assert {"depthwise_conv2d_nchw", "group_conv2d_nchw"} <= set(tasks.TASKS)


@pytest.mark.parametrize("case", [(1, 8, 15, 15, 16, 3, 3, 2, 1, 8), (3, 6, 9, 11, 4, 3, 1, 1, 0, 2),
                                  (1, 5, 7, 7, 5, 5, 5, 1, 2, 5)])
def test_config_zero_of_the_tuning_space_is_the_default_schedule(case):
    task = autotune.create_task("depthwise_conv2d_nchw" if case[1] == case[-1] else "group_conv2d_nchw", case)
    s0, tensors = task.instantiate(task.config_space.get(0))
    _, Y = tasks.declare_grouped_conv2d_nchw(*case)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", S.NoTunedRecordWarning)
        default = S.schedule(Y)
    assert s0.trace == default.trace


@pytest.mark.parametrize("bad, match", [
    (dict(groups=4), "groups=4 must divide the 6 input"),
    (dict(groups=0), "groups must be a positive int"),
    (dict(groups=3, w=(6, 3, 3, 3)), "needs 2 channels per filter"),
    (dict(padding=(1, 2, 3)), "padding"),
    (dict(padding=(1, -1, 0, 0)), "negative"),
])
def test_bad_groups_and_padding_are_clear_errors(bad, match):
    X = te.placeholder((1, 6, 8, 8), name="X")
    W = te.placeholder(bad.pop("w", (6, 6, 3, 3)), name="W")
    with pytest.raises(LoopcError, match=match):
        S.conv2d_nchw(X, W, **bad)


def test_avx512_facts_widen_the_depthwise_vector_and_compute_the_same():
    from dataclasses import replace

    from loopc.target import host
    h = host()
    feats = ",".join(f for f in h.features.split(",") if f[1:] != "avx512f") + ",+avx512f"
    avx512 = replace(h, cpu="skylake-avx512", features=feats)     # only the facts: code is for this host
    X = te.placeholder((1, 8, 32, 32), name="X")
    W = te.placeholder((8, 1, 3, 3), name="W")
    Y = S.conv2d_nchw(X, W, padding=1, groups=8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", S.NoTunedRecordWarning)
        s = S.schedule(Y, target=avx512)
    factors = {st["args"]["axis"]: st["args"]["factor"] for st in s.trace
               if st["primitive"] == "split" and st["stage"] == "conv2d"}
    assert factors["q"] == 32                       # two 16-lane registers of columns
    x = RNG.standard_normal(X.shape).astype(np.float32)
    w = RNG.standard_normal(W.shape).astype(np.float32)
    y = np.zeros(Y.shape, np.float32)
    loopc.build(s, [X, W, Y])(x, w, y)
    np.testing.assert_allclose(y, ref.conv2d_nchw(x, w, 1, 1, groups=8), rtol=1e-4, atol=1e-4)
