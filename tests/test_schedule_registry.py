"""The registry of schedule templates (one per op and target kind, read by schedules.schedule and
by the tuner), and the Target facts the CPU templates derive their sizes from."""
import subprocess
import sys
import warnings
from dataclasses import replace

import numpy as np
import pytest

import loopc
from loopc import LoopcError, autotune, te
from loopc import schedules as S
from loopc.schedules import cpu, cuda, registry, tasks
from loopc.schedules import testing as ref
from loopc.schedules.facts import CPUFacts, cpu_facts
from loopc.target import host

RNG = np.random.default_rng(11)


def avx512_target():
    """This machine's target with AVX-512's facts (32 registers of 16 float32): schedules made
    for it build and run here (they are only loops; the code is compiled for the host)."""
    h = host()
    feats = ",".join(f for f in h.features.split(",") if f[1:] != "avx512f") + ",+avx512f"
    return replace(h, cpu="skylake-avx512", features=feats)


def test_facts_on_avx2_are_the_constants_the_templates_were_written_with():
    avx2 = CPUFacts(lanes=8, registers=16, l1d=32 * 1024, l2=512 * 1024)
    assert (avx2.vec, avx2.accumulators, avx2.gemm_rows, avx2.regs(16)) == (16, 12, 4, 2)
    avx512 = cpu_facts(avx512_target())
    assert (avx512.lanes, avx512.vec, avx512.accumulators, avx512.gemm_rows) == (16, 32, 28, 8)
    assert cpu.channel_vector(avx2, 16) == 16 and cpu.channel_vector(avx2, 24) is None
    assert cpu.channel_vector(avx512, 64) == 32 and cpu.channel_vector(avx512, 16) == 16


def test_one_template_per_op_and_kind_used_by_schedule_and_by_the_tuner():
    assert registry.lookup("conv2d_nchw", "llvm") is cpu.conv2d
    assert registry.lookup("dense", "cuda") is registry.lookup("matmul", "cuda") is cuda.gemm
    assert registry.lookup("injective", "llvm") is cpu.elementwise
    assert set(tasks.TASKS) == {"matmul", "dense", "conv2d_nchw", "depthwise_conv2d_nchw", "group_conv2d_nchw",
                                "matmul_cuda", "dense_cuda", "conv2d_nchw_cuda"}
    assert autotune.get_template("dense_cuda").__module__ == "loopc.schedules.tasks"
    X, W = te.placeholder((4, 32), name="X"), te.placeholder((6, 32), name="W")
    Y = S.dense(X, W)
    assert S.workload_key(Y) == autotune.task.workload_key(("dense", (4, 32, 6)))
    assert S.records.library_workload(S.workload_key(Y), "cuda") == ("dense_cuda", (4, 32, 6))
    assert S.records.library_workload(S.workload_key(S.relu(X))) is None


def test_autotune_never_imports_the_library():
    code = "import sys, loopc.autotune; print(any(m.startswith('loopc.schedules') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_a_template_called_with_a_knob_it_lacks_says_which():
    X, W = te.placeholder((8, 48), name="X"), te.placeholder((12, 48), name="W")
    Y = S.dense(X, W)
    s = te.create_schedule(Y.op)
    with pytest.raises(LoopcError, match="no knob 'tile_x'.*tile_i"):
        cpu.dense(s, s[Y], tile_x=2)
    s = te.create_schedule(Y.op)
    cpu.dense(s, s[Y], tile_i=2)                     # config 0 with one knob set
    assert {"stage": "dense.rf", "primitive": "split", "args": {"axis": "i", "factor": 2}} in s.trace


def _run(s, ins, out):
    arrays = [RNG.standard_normal(t.shape).astype(np.float32) for t in ins]
    y = np.zeros(out.shape, np.float32)
    loopc.build(s, [*ins, out])(*arrays, y)
    return arrays, y


@pytest.mark.parametrize("case", ["matmul", "dense", "conv_direct", "conv_im2col", "softmax"])
def test_avx512_facts_grow_the_register_tiles_and_compute_the_same(case):
    target = avx512_target()
    if case == "matmul":
        A, B = te.placeholder((24, 40), name="A"), te.placeholder((40, 64), name="B")
        ins, out, expect = [A, B], S.matmul(A, B), ref.matmul
    elif case == "dense":
        X, W = te.placeholder((8, 64), name="X"), te.placeholder((14, 64), name="W")
        ins, out, expect = [X, W], S.dense(X, W), ref.dense
    elif case == "softmax":
        X = te.placeholder((5, 70), name="X")
        ins, out, expect = [X], S.softmax(X), ref.softmax
    else:
        K = 64 if case == "conv_direct" else 6
        X, W = te.placeholder((2, 8, 12, 12), name="X"), te.placeholder((K, 8, 3, 3), name="W")
        ins, out = [X, W], S.conv2d_nchw(X, W, padding=1)
        expect = lambda x, w: ref.conv2d_nchw(x, w, padding=1)  # noqa: E731
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", S.NoTunedRecordWarning)
        s = S.schedule(out, target=target)
        default = S.schedule(out)
    factors = {(st["stage"], st["args"]["axis"]): st["args"]["factor"] for st in s.trace if st["primitive"] == "split"}
    if case == "matmul":                # 8 rows x 32 lanes: 16 of the 32 registers
        assert factors[("matmul", "i")] == 8 and factors[("matmul", "j")] == 32
    elif case == "dense":               # 16 lanes per dot product, 4 x 7 of them: 28 accumulators
        assert factors[("dense", "k")] == 16 and factors[("dense.rf", "o")] == 7
    elif case == "conv_direct":         # 32 output channels (2 registers) per pixel
        assert factors[("conv2d", "k")] == 32
    elif case == "conv_im2col":         # 32 pixels (2 registers) per tile row
        assert factors[("conv2d", "p.q.fused")] == 32
    assert s.trace != default.trace
    arrays, y = _run(s, ins, out)
    np.testing.assert_allclose(y, expect(*arrays), rtol=1e-4, atol=1e-4)
