"""The operator library on the CUDA target: ``schedules.schedule(out, target="cuda")`` for
every op, against ``loopc.schedules.testing``, and a model's training step on the GPU against
the same step on the CPU.

The kernels run in numba's CUDA simulator, one fresh interpreter per case (see
test_cuda_sim.py); shapes stay tiny (a few blocks) and awkward: primes, stride 2, padding 2,
dilation 2, batch 1 and 3.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import loopc
from loopc import te
import loopc.schedules as S
from loopc.schedules import testing as T

from test_cuda_sim import run_in_simulator


def _rand(*shape, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, size=shape).astype(np.float32)


def _check(s, tensors, inputs, want, rtol=1e-4, atol=1e-4):
    f = loopc.build(s, tensors, target="cuda")
    out = np.full(tensors[-1].shape, np.nan, dtype=np.float32)
    f(*inputs, out)
    np.testing.assert_allclose(out, want, rtol=rtol, atol=atol)
    return f


def _default(out, inputs, arrays, want, **tol):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", S.NoTunedRecordWarning)
        s = S.schedule(out, target="cuda")
    return _check(s, [*inputs, out], arrays, want, **tol)


# --------------------------------------------------------------------------- cases (run in the child)


def case_conv2d_direct_and_im2col():
    from loopc.schedules import cuda as C
    shapes = [  # (N, C, H, W, K, R, stride, padding, dilation)
        (3, 2, 11, 7, 5, 3, 2, 2, 1),
        (1, 3, 9, 9, 7, 3, 1, 1, 2),
        (1, 4, 8, 8, 3, 5, 1, 0, 1),
    ]
    for i, (N, Ci, H, W, K, R, st, pad, dil) in enumerate(shapes):
        X = te.placeholder((N, Ci, H, W), name="X")
        Wt = te.placeholder((K, Ci, R, R), name="W")
        x, w = _rand(N, Ci, H, W, seed=i), _rand(K, Ci, R, R, seed=10 + i)
        want = T.conv2d_nchw(x, w, st, pad, dil)
        Y = S.conv2d_nchw(X, Wt, stride=st, padding=pad, dilation=dil)
        _default(Y, [X, Wt], [x, w], want)
        for method, tile_k in (("direct", 2), ("im2col", 4)):
            Y = S.conv2d_nchw(X, Wt, stride=st, padding=pad, dilation=dil)
            s = te.create_schedule(Y.op)
            C.schedule_conv2d(s, s[Y], method=method, tile_k=tile_k)
            f = _check(s, [X, Wt, Y], [x, w], want)
            assert len(f.launches) == (2 if method == "im2col" else 1), f.launches
            src = f.get_source("cuda")
            assert f"cuda.local.array({min(tile_k, K)}, float32)" in src, src


def case_gemm_ops():
    A = te.placeholder((37, 13), name="A")
    B = te.placeholder((13, 29), name="B")
    a, b = _rand(37, 13), _rand(13, 29, seed=1)
    f = _default(S.matmul(A, B), [A, B], [a, b], a.astype(np.float64) @ b)
    assert "cuda.shared.array" in f.get_source("cuda") and f.launches[0][1] == (1, 2, 1)
    W = te.placeholder((11, 13), name="W")
    bias = te.placeholder((11,), name="bias")
    w, bv = _rand(11, 13, seed=2), _rand(11, seed=3)
    _default(S.dense(A, W, bias), [A, W, bias], [a, w, bv], T.dense(a, w, bv))


def case_pool_softmax_elementwise():
    X = te.placeholder((3, 2, 9, 7), name="X")
    x = _rand(3, 2, 9, 7)
    _default(S.max_pool2d(X, 3, 2, 1), [X], [x], T.max_pool2d(x, 3, 2, 1))
    _default(S.avg_pool2d(X, 2, 1, 1), [X], [x], T.avg_pool2d(x, 2, 1, 1))
    _default(S.relu(X), [X], [x], np.maximum(x, 0))
    b = te.placeholder((2,), name="b")
    bv = _rand(2, seed=4)
    _default(S.bias_add(X, b), [X, b], [x, bv], x + bv[None, :, None, None])
    M = te.placeholder((5, 23), name="M")
    m = _rand(5, 23, seed=5) * 4
    _default(S.softmax(M), [M], [m], T.softmax(m), atol=1e-5)
    _default(S.log_softmax(M, axis=0), [M], [m], T.log_softmax(m, axis=0), atol=1e-5)


def case_gradient_reductions_split_across_threads():
    """Weight and bias gradients (few outputs, long sums over batch and pixels) are split by
    rfactor into a partial-sum kernel over the batch and a short final sum."""
    dy, x = _rand(9, 3, 12, 12), _rand(9, 2, 14, 14, seed=1)
    DY, X = te.placeholder(dy.shape, name="dY"), te.placeholder(x.shape, name="X")
    f = _default(S.conv2d_backward_weight(DY, X, (3, 2, 3, 3)), [DY, X], [dy, x],
                 T.conv2d_backward_weight(dy, x, (3, 2, 3, 3)), atol=1e-3)
    # the partial sums over the batch (486 threads), their sum, the (c, r, s, k) -> (k, c, r, s) copy
    assert len(f.launches) == 3 and f.launches[0][1][0] * f.launches[0][2][0] >= 9 * 3 * 2 * 3 * 3, f.launches
    dz = _rand(9, 3, 13, 11, seed=2)
    DZ = te.placeholder(dz.shape, name="dZ")
    f = _default(S.bias_backward(DZ), [DZ], [dz], T.bias_backward(dz), atol=1e-3)
    assert len(f.launches) == 2, f.launches
    small = _rand(4, 3, 5, 5, seed=3)           # 100 terms per output: one kernel
    SM = te.placeholder(small.shape, name="small")
    f = _default(S.bias_backward(SM), [SM], [small], T.bias_backward(small))
    assert len(f.launches) == 1


def case_model_train_step_matches_cpu():
    """A small conv net's forward + backward on the GPU: every gradient and the loss as on the
    CPU; inference on a last partial batch too."""
    from nn_models import Tiny, random_batch
    from loopc.nn.optim import SGD
    cpu, gpu = Tiny(seed=0), Tiny(seed=0, target="cuda")
    x, labels = random_batch(cpu, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loss_cpu, loss_gpu = cpu.train_step(x, labels), gpu.train_step(x, labels)
        np.testing.assert_allclose(loss_gpu, loss_cpu, rtol=1e-5)
        for name in cpu.store.shapes:
            np.testing.assert_allclose(gpu.store.grads[name], cpu.store.grads[name], rtol=1e-4, atol=1e-5,
                                       err_msg=name)
        SGD(gpu.store, lr=0.1).step()          # the optimizer updates the host weights ...
        SGD(cpu.store, lr=0.1).step()
        np.testing.assert_allclose(gpu.log_probs(x[:2], batch=2), cpu.log_probs(x[:2], batch=2),
                                   rtol=1e-4, atol=1e-5)          # ... which the next run uploads
    ex, ex_cpu = gpu.executor(3), cpu.executor(3)
    assert all(hasattr(st.kernel.module, "launches") for st in ex.steps)
    pooled = next(n.output.name for n in ex.nodes if n.op == "max_pool2d")   # not an output: read back
    np.testing.assert_allclose(ex[pooled], ex_cpu[pooled], rtol=1e-5, atol=1e-6)


def case_tune_on_the_gpu_then_schedule_applies_the_best():
    """The GPU templates' knobs tuned for a few trials (builds checked in worker processes,
    runs timed with CUDA events, results checked against the CPU), then schedules.schedule
    applies the best record with no warning."""
    import os
    import tempfile
    from loopc import autotune
    import loopc.schedules  # noqa: F401 - registers the templates
    log = os.path.join(tempfile.mkdtemp(), "cuda.jsonl")
    task = autotune.create_task("conv2d_nchw_cuda", (1, 3, 7, 7, 5, 3, 3, 2, 1), target="cuda")
    assert list(task.config_space.space_map) == ["method", "tile_k", "threads"]
    option = autotune.measure_option(builder=autotune.LocalBuilder(n_parallel=2),
                                     runner=autotune.LocalRunner(number=1, repeat=1, timeout=60))
    autotune.GridSearchTuner(task).tune(3, option, callbacks=[autotune.log_to_file(log)])    # closes the pools
    records = autotune.load_records(log)
    assert len(records) == 3 and all(r.ok and r.target == "cuda" for r in records), [r.error for r in records]
    best = min(records, key=lambda r: r.cost)
    X = te.placeholder((1, 3, 7, 7), name="X")
    Wt = te.placeholder((5, 3, 3, 3), name="W")
    Y = S.conv2d_nchw(X, Wt, stride=2, padding=1)
    with autotune.apply_history_best(log):
        with warnings.catch_warnings():
            warnings.simplefilter("error", S.NoTunedRecordWarning)
            s = S.schedule(Y, target="cuda")
    x, w = _rand(1, 3, 7, 7), _rand(5, 3, 3, 3, seed=1)
    f = _check(s, [X, Wt, Y], [x, w], T.conv2d_nchw(x, w, 2, 1))
    knobs = {name: value for name, _, value in best.config_entity().to_json()["knobs"]}
    assert len(f.launches) == (2 if knobs["method"] == "im2col" else 1)
    assert f"cuda.local.array({knobs['tile_k']}, float32)" in f.get_source("cuda"), knobs


CASES = sorted(name for name in dir() if name.startswith("case_"))


@pytest.mark.parametrize("case", CASES)
def test_simulator(case):
    proc = run_in_simulator(case, timeout=300, module="test_cuda_library")
    assert proc.returncode == 0, f"{case} failed in the simulator:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"


# --------------------------------------------------------------------------- in process (no numba.cuda)


def test_untuned_workload_warns_once_naming_the_target():
    X = te.placeholder((2, 3, 13, 13), name="X")
    Wt = te.placeholder((4, 3, 3, 3), name="W")
    with pytest.warns(S.NoTunedRecordWarning, match=r"conv2d_nchw\(2x3x13x13 float32, 4x3x3x3 float32\).* on cuda"):
        S.schedule(S.conv2d_nchw(X, Wt, padding=1), target="cuda")
    with warnings.catch_warnings():
        warnings.simplefilter("error", S.NoTunedRecordWarning)
        S.schedule(S.conv2d_nchw(X, Wt, padding=1), target="cuda")     # once per workload


def test_every_root_stage_is_bound_and_the_source_generates():
    from loopc.targets.cuda import generate_source
    X = te.placeholder((3, 5, 7), name="X")
    Y = S.log_softmax(X, axis=1)
    s = S.schedule(Y, target="cuda")
    src = generate_source(loopc.lower(s, [X, Y], name="lsm"))
    assert src.count("@cuda.jit") == 3             # row max, row sum of exp, the result


def test_unknown_target_and_method_are_refused():
    X = te.placeholder((1, 1, 5, 5), name="X")
    Wt = te.placeholder((2, 1, 3, 3), name="W")
    with pytest.raises(loopc.LoopcError, match="'llvm' and 'cuda'"):
        S.schedule(S.relu(X), target="opencl")
    from loopc.schedules import cuda as C
    Y = S.conv2d_nchw(X, Wt)
    s = te.create_schedule(Y.op)
    with pytest.raises(loopc.ScheduleError, match="method='direct' or method='im2col'"):
        C.schedule_conv2d(s, s[Y], method="winograd")


def test_gpu_check_script_runs_in_the_simulator():
    """benchmarks/gpu_check.py (the script for a real GPU) on tiny sizes in the simulator, so
    it cannot rot between the runs on a lent GPU."""
    import os
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run([sys.executable, os.path.join(root, "benchmarks", "gpu_check.py"), "--sim",
                           "--sections", "ops", "arrays", "sgemm", "lenet"],
                          capture_output=True, text=True, timeout=600, cwd=root)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "wrong results: none" in proc.stdout
    assert "sections: environment=ok, ops=ok, arrays=ok, sgemm=ok, lenet=ok" in proc.stdout
