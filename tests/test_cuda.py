"""The CUDA target without running kernels: generated source (golden), the checks that refuse
a schedule, argument checks, PTX. Kernels run in test_cuda_sim.py (numba's simulator) and, on
a machine with a GPU, in the ``gpu``-marked tests at the end of this file."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import loopc
from loopc import te
from loopc.runtime.module import Module
from loopc.targets import cuda as cuda_target
from loopc.schedules import cuda as schedules

from test_cuda_sim import (block_reduce_schedule, matmul_shared_schedule, matmul_tensors, softmax_schedule,
                           stencil_schedule)

GOLDEN = Path(__file__).parent / "golden"


def check_golden(request, name, text):
    path = GOLDEN / name
    if request.config.getoption("--update-golden", default=False):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"missing golden file {path}; run pytest --update-golden"
    assert text == path.read_text(), f"{name} changed; if intended, rerun with --update-golden and review the diff"


def source_of(s, args, name="main"):
    return cuda_target.generate_source(loopc.lower(s, args, name=name))


# --------------------------------------------------------------------------- generated source


def test_golden_matmul_kernel(request):
    """A 32x32x16 GEMM on 16x16 tiles: shared A/B tiles, barriers, a privatised 2x2 register tile."""
    s, args = matmul_shared_schedule(M=32, N=32, K=16, block=(16, 16), thread=(2, 2), k_tile=8, fetch="2d")
    src = source_of(s, args, name="matmul")
    compile(src, "<golden>", "exec")
    check_golden(request, "cuda_matmul_shared.py.txt", src)


def test_bound_loops_become_indices_and_launch_shape():
    A = te.placeholder((100,), name="A")
    B = te.compute((100,), lambda i: A[i] + 1.0, name="B")
    s = te.create_schedule(B.op)
    schedules.elementwise(s, B, threads=64)
    src = source_of(s, [A, B], name="add")
    assert "i_j_fused" not in src and "for " not in src.split("def add_kernel0")[1].split("def add(")[0]
    assert "cuda.blockIdx.x" in src and "cuda.threadIdx.x" in src
    assert "add_kernel0[(2,), (64,)](A, B)" in src
    assert "if i_outer*64 + i_inner < 100:" in src     # the tail guard


def test_one_kernel_per_root_stage_and_intermediates_as_arguments():
    s, args = softmax_schedule()
    src = source_of(s, args, name="softmax")
    assert src.count("@cuda.jit") == 4
    assert "def softmax(X, softmax_1, rowmax, expo, rowsum):" in src


def test_unbound_loops_stay_loops_and_thread0_guards_block_level_stores():
    s, args = block_reduce_schedule()
    src = source_of(s, args)
    assert "for k in range(40):" in src
    assert "if cuda.threadIdx.x == 0:" in src


def test_barrier_count_matmul():
    """Per k-tile: one barrier before refilling the tiles (the last k-tile's reads) and one
    before reading them; none between the A and B loads."""
    s, args = matmul_shared_schedule(M=32, N=32, K=32, block=(16, 16), thread=(2, 2), k_tile=8)
    src = source_of(s, args)
    loop = src.split("for k_outer in range(4):")[1]
    assert loop.count("cuda.syncthreads()") == 2


def test_extents_differing_between_nests_are_guarded():
    """Two nests of one kernel bind threadIdx.x to 17 (the producer's tile with its halo) and 16:
    the launch has 17 threads and the 16-thread nest is guarded; a barrier sits between them."""
    s, args = stencil_schedule(N=50, T=16, bind_producer=True)
    src = source_of(s, args)
    assert "main_kernel0[(4,), (17,)](A, C)" in src
    guard = re.search(r"if i_inner\w* < 16:", src)
    assert guard, src
    assert src.index("B[") < src.index("cuda.syncthreads()") < guard.start()


# --------------------------------------------------------------------------- schedules refused


def test_no_thread_binding_is_refused_with_a_fix():
    A, B, C = matmul_tensors(8, 8, 8)
    s = te.create_schedule(C.op)
    with pytest.raises(loopc.BuildError, match=r"(?s)no loop bound to blockIdx/threadIdx.*s\[C\]\.bind"):
        loopc.build(s, [A, B, C], target="cuda")


def test_block_too_large():
    A = te.placeholder((4096,), name="A")
    B = te.compute((4096,), lambda i: A[i] * 2.0, name="B")
    s = te.create_schedule(B.op)
    schedules.elementwise(s, B, threads=2048)
    with pytest.raises(loopc.BuildError, match=r"2048 threads per block.*more than the 1024"):
        loopc.build(s, [A, B], target="cuda")
    with pytest.raises(loopc.BuildError, match="more than the 512"):
        s2 = te.create_schedule(B.op)
        schedules.elementwise(s2, B, threads=1024)
        loopc.build(s2, [A, B], target="cuda -max_num_threads=512")


def test_shared_memory_over_48k():
    A, B, C = matmul_tensors(256, 256, 256)
    s = schedules.matmul(A, B, C, block=(128, 128), thread=(8, 8), k_tile=64)   # 2 x 32 KiB of tiles
    with pytest.raises(loopc.BuildError, match=r"65536 bytes of shared memory.*smaller tiles"):
        loopc.build(s, [A, B, C], target="cuda")


def test_binding_a_reduction_axis_to_blocks_is_refused_by_bind():
    """(to threadIdx it is a cross-thread reduction: tests/test_primitives_tvm.py)"""
    A, B, C = matmul_tensors(8, 8, 8)
    s = te.create_schedule(C.op)
    with pytest.raises(loopc.ScheduleError, match="(?s)reduction axis.*rfactor"):
        s[C].bind(C.op.reduce_axis[0], te.thread_axis("blockIdx.x"))


def test_parallel_loop_is_refused():
    A = te.placeholder((64,), name="A")
    B = te.compute((64,), lambda i: A[i] * 2.0, name="B")
    s = te.create_schedule(B.op)
    bx, tx = s[B].split(B.op.axis[0], factor=16)
    s[B].parallel(bx)
    s[B].bind(tx, te.thread_axis("threadIdx.x"))
    with pytest.raises(loopc.BuildError, match="parallel, a CPU annotation"):
        loopc.build(s, [A, B], target="cuda")


def test_shared_stage_inside_thread_loops_spans_the_block():
    """TVM's classic layout: shared tiles at the reduction loop of a per-thread accumulator.
    Bound inference widens a "shared" stage's region over the enclosing threadIdx loops, so
    the tile holds the rows of every threadIdx.y (rows ty*4 + tii for ty < 8: 29 x 8), not the
    one row of a single thread (1 x 8)."""
    from test_cuda_sim import classic_shared_schedule
    s, args = classic_shared_schedule()
    text = str(loopc.lower(s, args))
    assert 'A.shared = allocate(float32[29, 8], scope="shared")' in text
    loopc.build(s, args, target="cuda")  # accepted: no race between threads


def test_local_buffer_shared_between_threads_is_refused():
    A = te.placeholder((33,), name="A")
    C = te.compute((32,), lambda i: A[i] + A[i + 1], name="C")
    s = te.create_schedule(C.op)
    AL = s.cache_read(A, "local", [C])
    bx, tx = s[C].split(C.op.axis[0], factor=16)
    s[C].bind(bx, te.thread_axis("blockIdx.x"))
    s[C].bind(tx, te.thread_axis("threadIdx.x"))
    s[AL].compute_at(s[C], bx)
    _, ltx = s[AL].split(s[AL].op.axis[0], factor=16)
    s[AL].bind(ltx, te.thread_axis("threadIdx.x"))
    with pytest.raises(loopc.BuildError, match=r"local buffer 'A.local'.*scope 'shared'"):
        loopc.build(s, [A, C], target="cuda")


def test_target_options():
    assert str(cuda_target.parse_target("cuda -arch=sm_90")) == "cuda -arch=sm_90"
    assert cuda_target.parse_target("cuda -arch=sm_86").arch == (8, 6)
    with pytest.raises(loopc.BuildError, match="unknown CUDA target option"):
        cuda_target.parse_target("cuda -fast")


# --------------------------------------------------------------------------- the module (no GPU needed)


@pytest.fixture(scope="module")
def small_matmul():
    s, args = matmul_shared_schedule(M=16, N=16, K=8, block=(16, 16), thread=(2, 2))
    return loopc.build(s, args, target="cuda", name="mm")


def test_module_interface(small_matmul):
    f = small_matmul
    assert isinstance(f, Module)
    assert f.get_source("ir").startswith("def mm(")
    assert "@cuda.jit" in f.get_source("cuda")
    assert "kernel" in repr(f) and "mm(" in repr(f)
    with pytest.raises(loopc.LoopcError, match="unknown source format"):
        f.get_source("llvm")


def test_argument_errors(small_matmul):
    f = small_matmul
    a, b, c = np.zeros((16, 8), np.float32), np.zeros((8, 16), np.float32), np.zeros((16, 16), np.float32)
    with pytest.raises(loopc.ArgumentError, match="takes 3 arrays"):
        f(a, b)
    with pytest.raises(loopc.ArgumentError, match=r"argument 1 \('B'\) has shape \(16, 8\)"):
        f(a, a, c)
    with pytest.raises(loopc.ArgumentError, match="dtype float64"):
        f(a.astype(np.float64), b, c)
    with pytest.raises(loopc.ArgumentError, match="not C-contiguous"):
        f(a, b, np.zeros((16, 16), np.float32).T)
    with pytest.raises(loopc.ArgumentError, match="CUDA device array"):
        f(a.tolist(), b, c)
    ro = np.zeros((16, 16), np.float32)
    ro.flags.writeable = False
    with pytest.raises(loopc.ArgumentError, match="read-only"):
        f(a, b, ro)
    assert issubclass(loopc.ArgumentError, TypeError)


def test_ptx_or_a_clear_error(small_matmul):
    """PTX where numba's CUDA compiler libraries are installed; otherwise a BuildError saying so."""
    if cuda_target.simulator():
        pytest.skip("this process runs the simulator")
    try:
        ptx = small_matmul.get_source("ptx")
    except loopc.BuildError as err:
        assert "NVVM" in str(err) or "NVRTC" in str(err)
    else:
        assert ".entry" in ptx and "bar.sync" in ptx and "fma.rn.f32" in ptx


# --------------------------------------------------------------------------- on a real GPU

needs_gpu = pytest.mark.skipif(not cuda_target.gpu_available(), reason="no CUDA GPU")


@pytest.mark.gpu
@needs_gpu
def test_gpu_matmul_numpy_and_device_arrays():
    from numba import cuda
    s, args = matmul_shared_schedule(M=257, N=131, K=67, block=(64, 64), thread=(4, 4), k_tile=8)
    f = loopc.build(s, args, target="cuda")
    rng = np.random.default_rng(0)
    a = rng.standard_normal((257, 67)).astype(np.float32)
    b = rng.standard_normal((67, 131)).astype(np.float32)
    want = a.astype(np.float64) @ b
    c = np.full((257, 131), np.nan, np.float32)
    f(a, b, c)
    np.testing.assert_allclose(c, want, rtol=1e-4, atol=1e-3)
    dc = cuda.device_array((257, 131), np.float32)
    f(cuda.to_device(a), cuda.to_device(b), dc)
    np.testing.assert_allclose(dc.copy_to_host(), want, rtol=1e-4, atol=1e-3)
    assert f.time_evaluator(number=3, repeat=2)(a, b, c).mean > 0


@pytest.mark.gpu
@needs_gpu
def test_gpu_torch_tensors_in_place():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch without CUDA")
    s, args = softmax_schedule(M=8, N=100)
    f = loopc.build(s, args, target="cuda")
    x = torch.randn(8, 100, device="cuda")
    y = torch.empty_like(x)
    f(x, y)
    torch.cuda.synchronize()
    torch.testing.assert_close(y, torch.softmax(x, dim=1), rtol=1e-4, atol=1e-5)
    with pytest.raises(loopc.ArgumentError, match="not C-contiguous"):
        f(x.t().contiguous().t(), y)
