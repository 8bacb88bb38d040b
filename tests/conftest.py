"""Shared helpers for loopc's tests.

- Workload builders (``matmul``, ``conv2d``, ``maxpool``, ``softmax``, ``elementwise3d``) declare
  an operator with ``te`` and carry a NumPy / PyTorch reference of it.
- ``check(s, args, ref)`` runs a schedule twice — through the reference interpreter
  (``loopc.interp.run(loopc.lower(...))``) and through the LLVM backend (``loopc.build``) —
  and compares every output with the reference.

Sizes are primes (7, 13, 29, 37, ...) so that no split factor or tile divides them.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

# the PyTorch frontend's disk cache of kernels: one fresh folder per test session, so that tests
# neither read kernels an earlier loopc left in ~/.cache nor leave theirs there
if "LOOPC_CACHE_DIR" not in os.environ:
    import tempfile
    os.environ["LOOPC_CACHE_DIR"] = tempfile.mkdtemp(prefix="loopc-test-cache-")

import loopc  # noqa: E402
import loopc.interp  # noqa: E402
from loopc import te  # noqa: E402
from loopc.te.tensor import PlaceholderOp  # noqa: E402

try:  # torch is an optional extra; the references fall back to NumPy without it
    import torch
    import torch.nn.functional as F
except ImportError:  # pragma: no cover - exercised only where torch is missing
    torch = None
    F = None

RTOL = 1e-4
ATOL = 1e-4

#: the value an output buffer holds before a kernel runs: any element the kernel forgets to
#: write stays NaN (floats) or this sentinel (integers) and fails the comparison.
INT_SENTINEL = -77777


# --------------------------------------------------------------------------- arrays


def random_array(shape, dtype, rng, low=-2.0, high=2.0):
    """Random data of ``dtype``: floats in [low, high), small ints, or booleans."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return rng.uniform(low, high, size=shape).astype(dtype)
    if dtype.kind == "b":
        return rng.random(shape) < 0.5
    return rng.integers(-9, 10, size=shape).astype(dtype)


def empty_output(shape, dtype):
    """An output array filled with a value no correct kernel leaves behind."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return np.full(shape, np.nan, dtype=dtype)
    if dtype.kind == "b":
        # a bool has no spare value: callers run twice with opposite fills (see run_both)
        return np.zeros(shape, dtype=dtype)
    return np.full(shape, INT_SENTINEL, dtype=dtype)


def is_input(t) -> bool:
    return isinstance(t.op, PlaceholderOp)


def inputs_for(args, seed=0, low=-2.0, high=2.0):
    """Random arrays for the placeholders among ``args`` (in order)."""
    rng = np.random.default_rng(seed)
    return [random_array(t.shape, t.dtype, rng, low, high) for t in args if is_input(t)]


def _call_with_outputs(fn, args, inputs, fill_bool=False):
    it = iter(inputs)
    arrays, outs = [], []
    for t in args:
        if is_input(t):
            arrays.append(next(it))
        else:
            out = empty_output(t.shape, t.dtype)
            if out.dtype == np.bool_ and fill_bool:
                out[...] = True
            arrays.append(out)
            outs.append(out)
    fn(*arrays)
    return outs


def run_interp(s, args, inputs):
    """Outputs (the computed tensors among ``args``) from the reference interpreter."""
    func = loopc.lower(s, args)
    outs = _call_with_outputs(lambda *a: loopc.interp.run(func, *a), args, inputs)
    if any(o.dtype == np.bool_ for o in outs):  # bool outputs: once from all-False, once from all-True
        again = _call_with_outputs(lambda *a: loopc.interp.run(func, *a), args, inputs, fill_bool=True)
        for x, y in zip(outs, again):
            np.testing.assert_array_equal(x, y, err_msg="interp left bool outputs unwritten")
    return outs


def run_llvm(s, args, inputs, module=None):
    """Outputs from the LLVM backend (builds the schedule unless ``module`` is given)."""
    f = module if module is not None else loopc.build(s, args, target="llvm")
    outs = _call_with_outputs(f, args, inputs)
    if any(o.dtype == np.bool_ for o in outs):
        again = _call_with_outputs(f, args, inputs, fill_bool=True)
        for x, y in zip(outs, again):
            np.testing.assert_array_equal(x, y, err_msg="llvm left bool outputs unwritten")
    return outs


def assert_close(got, want, rtol=RTOL, atol=ATOL, what=""):
    want = np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    if got.dtype.kind in "fc":
        np.testing.assert_allclose(got, want.astype(got.dtype), rtol=rtol, atol=atol, err_msg=what)
    else:
        np.testing.assert_array_equal(got, want.astype(got.dtype), err_msg=what)


def check(s, args, ref_fn: Callable, inputs=None, *, rtol=RTOL, atol=ATOL, seed=0,
          interp=True, llvm=True):
    """Run ``s`` through the interpreter and LLVM and compare with ``ref_fn(*inputs)``.

    ``args`` is the argument list of ``loopc.lower``/``loopc.build`` (placeholders and
    computed tensors in any order). ``ref_fn`` takes the input arrays (placeholders, in
    ``args`` order) and returns one array, or a tuple with one array per computed tensor of
    ``args``. Returns ``(interp_outputs, llvm_outputs)``.
    """
    if inputs is None:
        inputs = inputs_for(args, seed)
    want = ref_fn(*inputs)
    if not isinstance(want, (tuple, list)):
        want = (want,)
    names = [t.name for t in args if not is_input(t)]
    assert len(want) == len(names), "ref_fn must return one array per output"
    got_i = got_l = None
    if interp:
        got_i = run_interp(s, args, inputs)
        for g, w, n in zip(got_i, want, names):
            assert_close(g, w, rtol, atol, f"interp: output {n}")
    if llvm:
        got_l = run_llvm(s, args, inputs)
        for g, w, n in zip(got_l, want, names):
            assert_close(g, w, rtol, atol, f"llvm: output {n}")
    return got_i, got_l


def lowered_text(s, args) -> str:
    return str(loopc.lower(s, args))


def loop_headers(text: str) -> list:
    """``[(loop name, kind, min, extent), ...]`` of every ``for`` line of a printed loop nest,
    in order. ``for x in range(8)`` has min 0; a partitioned tail ``for x in range(3, 3 + 1)``
    has min 3 and extent 1."""
    out = []
    for m in re.finditer(r"for (\S+) in (\w+)\((?:(\d+), \d+ \+ )?(\d+)\):", text):
        out.append((m.group(1), m.group(2), int(m.group(3) or 0), int(m.group(4))))
    return out


def loop_names(text: str) -> list:
    """The distinct loop names of a printed nest, in order of first appearance."""
    return list(dict.fromkeys(name for name, _, _, _ in loop_headers(text)))


def loop_kinds(text: str) -> dict:
    """``{loop name: set of kinds}`` of a printed nest (a partitioned loop may show several)."""
    kinds = {}
    for name, kind, _, _ in loop_headers(text):
        kinds.setdefault(name, set()).add(kind)
    return kinds


# --------------------------------------------------------------------------- workloads


@dataclass
class Workload:
    """An operator's tensors, its lowering argument list and its reference."""
    args: list
    ref: Callable
    t: dict = field(default_factory=dict)    # named tensors (e.g. "C", "pad") for scheduling
    axes: dict = field(default_factory=dict)  # named reduce axes

    def __getattr__(self, name):
        t = self.__dict__.get("t", {})
        if name in t:
            return t[name]
        axes = self.__dict__.get("axes", {})
        if name in axes:
            return axes[name]
        raise AttributeError(name)

    @property
    def out(self):
        return self.args[-1]

    def schedule(self):
        return te.create_schedule(self.out.op)

    def check(self, s, **kw):
        return check(s, self.args, self.ref, **kw)


def matmul(M=13, K=7, N=29, dtype="float32") -> Workload:
    """C[i, j] = sum_k A[i, k] * B[k, j]"""
    A = te.placeholder((M, K), dtype=dtype, name="A")
    B = te.placeholder((K, N), dtype=dtype, name="B")
    k = te.reduce_axis((0, K), name="k")
    C = te.compute((M, N), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")

    def ref(a, b):
        return (a.astype(np.float64) @ b.astype(np.float64)).astype(dtype)
    return Workload([A, B, C], ref, {"A": A, "B": B, "C": C}, {"k": k})


def conv_out_size(size, k, stride, pad, dilation):
    return (size + 2 * pad - dilation * (k - 1) - 1) // stride + 1


def conv2d_ref_numpy(x, w, stride, pad, dilation):
    """NCHW x OIHW direct convolution in float64, written independently of loopc and torch."""
    n, c, h, wd = x.shape
    f, _, kh, kw = w.shape
    oh = conv_out_size(h, kh, stride, pad, dilation)
    ow = conv_out_size(wd, kw, stride, pad, dilation)
    xp = np.zeros((n, c, h + 2 * pad, wd + 2 * pad), dtype=np.float64)
    xp[:, :, pad:pad + h, pad:pad + wd] = x
    out = np.zeros((n, f, oh, ow), dtype=np.float64)
    for ry in range(kh):
        for rx in range(kw):
            y0, x0 = ry * dilation, rx * dilation
            patch = xp[:, :, y0:y0 + stride * (oh - 1) + 1:stride, x0:x0 + stride * (ow - 1) + 1:stride]
            out += np.einsum("nchw,fc->nfhw", patch, w[:, :, ry, rx].astype(np.float64))
    return out


def conv2d_ref(x, w, stride, pad, dilation):
    """torch.nn.functional.conv2d when torch is importable, else the NumPy reference."""
    if torch is None:
        return conv2d_ref_numpy(x, w, stride, pad, dilation).astype(x.dtype)
    out = F.conv2d(torch.from_numpy(x.astype(np.float64)), torch.from_numpy(w.astype(np.float64)),
                   stride=stride, padding=pad, dilation=dilation)
    return out.numpy().astype(x.dtype)


def conv2d(N=2, C=3, H=13, W=17, F_=5, KH=3, KW=3, stride=2, pad=1, dilation=2,
           padding_stage=False) -> Workload:
    """The chapter's convolution as seven loops (n, f, y, x; c, ry, rx).

    Padding is a ``te.if_then_else`` inside the body, or (``padding_stage=True``) a separate
    ``pad`` stage that callers can ``compute_inline``.
    """
    X = te.placeholder((N, C, H, W), name="X")
    Wt = te.placeholder((F_, C, KH, KW), name="W")
    OH = conv_out_size(H, KH, stride, pad, dilation)
    OW = conv_out_size(W, KW, stride, pad, dilation)
    assert OH > 0 and OW > 0
    c = te.reduce_axis((0, C), name="c")
    ry = te.reduce_axis((0, KH), name="ry")
    rx = te.reduce_axis((0, KW), name="rx")
    tensors = {"X": X, "W": Wt}
    if padding_stage:
        P = te.compute(
            (N, C, H + 2 * pad, W + 2 * pad),
            lambda n, ci, y, x: te.if_then_else(
                te.all(y >= pad, y < H + pad, x >= pad, x < W + pad), X[n, ci, y - pad, x - pad], 0.0),
            name="pad")
        tensors["pad"] = P

        def body(n, f, y, x):
            return te.sum(P[n, c, y * stride + ry * dilation, x * stride + rx * dilation] * Wt[f, c, ry, rx],
                          axis=[c, ry, rx])
    else:
        def body(n, f, y, x):
            iy = y * stride + ry * dilation - pad
            ix = x * stride + rx * dilation - pad
            inside = te.all(iy >= 0, iy < H, ix >= 0, ix < W)
            return te.sum(te.if_then_else(inside, X[n, c, iy, ix], 0.0) * Wt[f, c, ry, rx], axis=[c, ry, rx])
    Out = te.compute((N, F_, OH, OW), body, name="conv")
    tensors["conv"] = Out

    def ref(x, w):
        return conv2d_ref(x, w, stride, pad, dilation)
    return Workload([X, Wt, Out], ref, tensors, {"c": c, "ry": ry, "rx": rx})


def maxpool_ref(x, size=3, stride=2):
    from loopc.schedules import testing
    return testing.max_pool2d(x, size, stride)


def maxpool(N=2, C=3, H=13, W=17, size=3, stride=2) -> Workload:
    """out[n, c, y, x] = max over a size x size window (stride ``stride``): te.max over 2 axes."""
    X = te.placeholder((N, C, H, W), name="X")
    OH, OW = (H - size) // stride + 1, (W - size) // stride + 1
    ry = te.reduce_axis((0, size), name="ry")
    rx = te.reduce_axis((0, size), name="rx")
    P = te.compute((N, C, OH, OW),
                   lambda n, c, y, x: te.max(X[n, c, y * stride + ry, x * stride + rx], axis=[ry, rx]),
                   name="pool")

    def ref(x):
        if torch is not None:
            return F.max_pool2d(torch.from_numpy(x), size, stride).numpy()
        return maxpool_ref(x, size, stride)
    return Workload([X, P], ref, {"X": X, "pool": P}, {"ry": ry, "rx": rx})


def softmax_ref(x):
    x = x.astype(np.float64)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def softmax(M=7, N=37) -> Workload:
    """Row softmax in four stages: row max, exp(x - max), row sum, divide."""
    X = te.placeholder((M, N), name="X")
    k1 = te.reduce_axis((0, N), name="k1")
    mx = te.compute((M,), lambda i: te.max(X[i, k1], axis=k1), name="rowmax")
    ex = te.compute((M, N), lambda i, j: te.exp(X[i, j] - mx[i]), name="expo")
    k2 = te.reduce_axis((0, N), name="k2")
    sm = te.compute((M,), lambda i: te.sum(ex[i, k2], axis=k2), name="rowsum")
    out = te.compute((M, N), lambda i, j: ex[i, j] / sm[i], name="softmax")
    return Workload([X, out], softmax_ref, {"X": X, "rowmax": mx, "expo": ex, "rowsum": sm, "softmax": out},
                    {"k1": k1, "k2": k2})


def elementwise3d(D0=5, D1=7, D2=13) -> Workload:
    """out[a, b, c] = A[a, b, c] * 2 + B[a, b, c] - 1 on a 3-D shape."""
    A = te.placeholder((D0, D1, D2), name="A")
    B = te.placeholder((D0, D1, D2), name="B")
    Out = te.compute((D0, D1, D2), lambda a, b, c: A[a, b, c] * 2.0 + B[a, b, c] - 1.0, name="out")
    return Workload([A, B, Out], lambda a, b: a * np.float32(2) + b - np.float32(1), {"A": A, "B": B, "out": Out})


# --------------------------------------------------------------------------- subprocesses

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))


def run_python(code: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter (``sys.executable -c``), with this directory on
    sys.path so it can import conftest. For code that might crash the process."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (TESTS_DIR, env.get("PYTHONPATH", "")) if p)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=TESTS_DIR)


def assert_subprocess_ok(proc: subprocess.CompletedProcess, expect_stdout: str | None = None):
    """The child exited 0 (a negative returncode is the signal that killed it)."""
    assert proc.returncode == 0, (f"child exited with {proc.returncode} "
                                  f"(negative: killed by signal {-proc.returncode})\n"
                                  f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-3000:]}")
    if expect_stdout is not None:
        assert expect_stdout in proc.stdout, proc.stdout


# --------------------------------------------------------------------------- hardware


def cpu_flags() -> set:
    """The host CPU's feature flags (from /proc/cpuinfo, else from LLVM's host features)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    try:
        from loopc.targets.llvm import host_target
        return {f[1:] for f in host_target().features.split(",") if f.startswith("+")}
    except Exception:  # pragma: no cover
        return set()


def has_cpu_flag(flag: str) -> bool:
    return flag in cpu_flags()


# golden-file options are added below


def pytest_addoption(parser):
    parser.addoption("--update-golden", action="store_true", default=False,
                     help="rewrite the golden files under tests/golden/ from the current output")
