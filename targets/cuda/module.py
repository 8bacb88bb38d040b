"""A compiled CUDA function: the CPU Module's interface, with arrays on either side.

    f = loopc.build(s, [A, B, C], target="cuda")
    f(a, b, c)                  # numpy arrays: copied to the GPU, outputs copied back into c
    f(da, db, dc)               # device arrays (numba, CuPy, PyTorch CUDA tensors): used in place
    f.get_source("cuda")        # the generated numba CUDA Python; also "ir" and "ptx"
    f.time_evaluator(number=10, repeat=3)(a, b, c).mean    # seconds per call, CUDA events

Calls on device arrays return once the kernels are queued on the default stream (as CuPy's
and PyTorch's default streams are, by default); numpy calls return after the copy back.
"""
from __future__ import annotations

import statistics
import warnings

import numpy as np

from loopc.errors import ArgumentError, BuildError, LoopcError
from loopc.runtime.args import check_arguments
from loopc.runtime.module import Module
from loopc.runtime.timing import ProfileResult, time_evaluator

from . import device

NUMBA_DTYPES = {"float32": "float32", "float64": "float64", "int32": "int32", "int64": "int64", "bool": "boolean"}


def _describe(b):
    return f"{b.dtype}[{', '.join(map(str, b.shape))}]"


class CUDAModule(Module):
    """``f(*arrays)`` runs the kernels; outputs are written in place."""

    def __init__(self, func, plan, source, host, kernels, kernel_names, target, build_seconds=0.0):
        sources = {"cuda": lambda: source, "ptx": self._ptx}
        super().__init__(func, None, keepalive=(host, kernels), sources=sources, target=str(target),
                         build_seconds=build_seconds)
        self.plan = plan
        self.source = source
        self.kernel_names = list(kernel_names)
        self.launches = [(name, k.grid, k.block) for name, k in zip(kernel_names, plan.kernels)]
        self._target = target
        self._host = host
        self._kernels = kernels
        self._intermediates = None

    # ------------------------------------------------------------------ arguments

    def check(self, arrays):
        """Raise ArgumentError unless ``arrays`` fit the parameters; returns one entry per
        argument: ``("host", ndarray)`` or ``("device", DeviceArg)``."""
        arrays = tuple(arrays)
        if len(arrays) != len(self.params):
            check_arguments(self.name, self.params, arrays, self.written)  # raises the count message
        kinds = []
        for pos, (buf, arr) in enumerate(zip(self.params, arrays)):
            where = f"{self.name}() argument {pos} ('{buf.name}')"
            if isinstance(arr, np.ndarray):
                kinds.append(("host", arr))
                continue
            try:
                dev = device.device_arg(arr)
            except ValueError as err:
                raise ArgumentError(f"{where} cannot be passed to the GPU: {err}") from None
            if dev is None:
                raise ArgumentError(
                    f"{where} must be a numpy.ndarray or a CUDA device array (numba, CuPy, a PyTorch CUDA "
                    f"tensor) of {_describe(buf)}, got {type(arr).__module__}.{type(arr).__name__}; "
                    f"convert it with numpy.asarray(x, dtype='{buf.dtype}') or move it to the GPU")
            if dev.dtype != np.dtype(buf.dtype):
                raise ArgumentError(f"{where} has dtype {dev.dtype}, expected {buf.dtype}; pass x.astype('{buf.dtype}')")
            if tuple(dev.shape) != tuple(buf.shape):
                raise ArgumentError(f"{where} has shape {tuple(dev.shape)}, expected {tuple(buf.shape)}")
            if not dev.c_contiguous:
                raise ArgumentError(f"{where} is not C-contiguous (a transposed or sliced view?); "
                                    "pass a contiguous copy (x.contiguous() / cupy.ascontiguousarray(x))")
            if buf in self.written and dev.readonly:
                raise ArgumentError(f"{where} is an output but the device array is read-only")
            kinds.append(("device", dev))
        if all(k == "host" for k, _ in kinds):
            check_arguments(self.name, self.params, arrays, self.written)
        else:
            for pos, (buf, (kind, arr)) in enumerate(zip(self.params, kinds)):
                if kind == "host":
                    try:
                        check_arguments(self.name, (buf,), (arr,), self.written)
                    except ArgumentError as err:
                        raise ArgumentError(str(err).replace("argument 0 ", f"argument {pos} ", 1)) from None
        self._check_overlap(kinds)
        return kinds

    def _check_overlap(self, kinds):
        for pos, (buf, (kind, arr)) in enumerate(zip(self.params, kinds)):
            if buf not in self.written:
                continue
            for other_pos, (other_kind, other) in enumerate(kinds):
                if other_pos == pos or other_kind != kind:
                    continue
                if kind == "host":
                    overlap = np.shares_memory(arr, other)
                else:
                    overlap = arr.ptr < other.ptr + other.nbytes and other.ptr < arr.ptr + arr.nbytes
                if overlap:
                    raise ArgumentError(
                        f"{self.name}() output argument {pos} ('{buf.name}') overlaps argument {other_pos} "
                        f"('{self.params[other_pos].name}'); compiled kernels assume outputs do not alias "
                        "inputs: pass a separate output array")

    @staticmethod
    def _require_device():
        if not device.simulator() and not device.gpu_available():
            raise BuildError("no usable CUDA GPU here (numba found no driver or device): run on a machine with "
                             "an NVIDIA GPU, or set NUMBA_ENABLE_CUDASIM=1 before numba.cuda is imported to "
                             "run the kernels in numba's (slow) simulator")

    def _to_device(self, kinds):
        """Device views of every argument (numpy inputs copied over, numpy outputs allocated),
        plus the (device, host) pairs to copy back."""
        cuda = device.cuda()
        args, back = [], []
        for buf, (kind, arr) in zip(self.params, kinds):
            if kind == "device":
                args.append(arr.flat())
                continue
            flat = arr.reshape(-1)
            if buf in self.written:
                d = cuda.device_array(flat.shape, dtype=flat.dtype)
                back.append((d, flat))
            else:
                d = cuda.to_device(flat)
            args.append(d)
        if self._intermediates is None:
            self._intermediates = [cuda.device_array(b.size, dtype=np.dtype(b.dtype))
                                   for b in self.plan.intermediates]
        return args + list(self._intermediates), back

    # ------------------------------------------------------------------ running

    def _launch(self, args):
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*(under-utilization|Grid size).*")
                self._host(*args)
        except LoopcError:
            raise
        except Exception as err:
            from numba.core.errors import NumbaError
            if isinstance(err, NumbaError):
                raise BuildError(f"numba could not compile the kernels generated for {self.name}; "
                                 f"see get_source('cuda'):\n{err}") from err
            raise

    def __call__(self, *arrays):
        kinds = self.check(arrays)
        self._require_device()
        args, back = self._to_device(kinds)
        self._launch(args)
        for d, host in back:
            d.copy_to_host(host)

    def bind(self, arrays):
        """A no-argument callable that launches the kernels on ``arrays`` — device arrays,
        checked once here — without the per-call checks (a runtime's preallocated buffers)."""
        kinds = self.check(arrays)
        if any(kind == "host" for kind, _ in kinds):
            raise ArgumentError(f"{self.name}: bind() takes device arrays; numpy arrays are copied per call, "
                                "so call the module instead")
        self._require_device()
        args, _ = self._to_device(kinds)
        return lambda: self._launch(args)

    def time_evaluator(self, number: int = 10, repeat: int = 3, min_repeat_ms: float = 0):
        """A function that times calls: ``.mean``, ``.median`` and ``.results`` in seconds.

        numpy arguments are copied to the GPU once, before timing: only the kernels are timed
        (with CUDA events; wall clock around a device synchronise in the simulator). The
        outputs are copied back at the end, as a call would.
        """
        def evaluator(*arrays):
            kinds = self.check(arrays)
            self._require_device()
            args, back = self._to_device(kinds)
            if device.simulator():
                cuda = device.cuda()
                result = time_evaluator(lambda: self._launch(args), number, repeat, min_repeat_ms,
                                        sync=cuda.synchronize)()
            else:
                result = _time_with_events(lambda: self._launch(args), number, repeat, min_repeat_ms)
            for d, host in back:
                d.copy_to_host(host)
            return result
        return evaluator

    # ------------------------------------------------------------------ sources

    def _ptx(self) -> str:
        if device.simulator():
            raise BuildError("PTX is not available in numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1): the "
                             "simulator runs the generated Python directly. Unset it where numba's CUDA "
                             "compiler libraries are installed")
        import numba
        from numba import types
        cuda = device.cuda()
        cc = self._target.arch
        if cc is None:
            cc = cuda.get_current_device().compute_capability if device.gpu_available() else (9, 0)
        parts = []
        for name, k, kern in zip(self.kernel_names, self.plan.kernels, self._kernels):
            sig = types.void(*[types.Array(getattr(numba, NUMBA_DTYPES[b.dtype]), 1, "C") for b in k.args])
            try:
                ptx, _ = cuda.compile_ptx(kern.py_func, sig, cc=tuple(cc))
            except Exception as err:
                raise BuildError(
                    f"numba could not produce PTX for {name}: {type(err).__name__}: {err}\n"
                    "PTX needs NVIDIA's compiler libraries (libNVVM and NVRTC): install a CUDA toolkit, or "
                    "pip install 'numba-cuda[cu13]' (about 456 MB); get_source('cuda') shows the kernel "
                    "source without them") from err
            parts.append(f"// ---- {name}\n{ptx}")
        return "\n".join(parts)

    def __repr__(self):
        args = ", ".join(f"{b.name}: {_describe(b)}" for b in self.params)
        return f"<loopc.CUDAModule {self.name}({args}) target={self.target!r}, {len(self.launches)} kernel(s)>"


def _time_with_events(call, number, repeat, min_repeat_ms, warmup=1) -> ProfileResult:
    if number < 1 or repeat < 1:
        raise ValueError("time_evaluator needs number >= 1 and repeat >= 1")
    cuda = device.cuda()
    for _ in range(warmup):
        call()
    cuda.synchronize()
    start, end = cuda.event(), cuda.event()
    n, results = number, []
    for _ in range(repeat):
        while True:
            start.record()
            for _ in range(n):
                call()
            end.record()
            end.synchronize()
            ms = start.elapsed_time(end)
            if ms >= min_repeat_ms or n >= 1 << 30:
                break
            n = max(n * 2, int(n * min_repeat_ms / max(ms, 1e-3)) + 1)
        results.append(ms / 1e3 / n)
    return ProfileResult(statistics.fmean(results), statistics.median(results), tuple(results))
