"""A compiled CUDA function: the CPU Module's interface, with arrays on either side.

    f = loopc.build(s, [A, B, C], target="cuda")
    f(a, b, c)                  # numpy arrays: copied to the GPU, outputs copied back into c
    f(da, db, dc)               # device arrays (numba, CuPy, PyTorch CUDA tensors): used in place
    f.get_source("cuda")        # the generated numba CUDA Python; also "ir" and "ptx"
    f.time_evaluator(number=10, repeat=3)(a, b, c).mean    # seconds per call, CUDA events

Calls on device arrays return once the kernels are queued on the default stream (as CuPy's
and PyTorch's default streams are, by default); numpy calls return after the copy back.

Argument checks and the timing loop are the runtime's (``loopc.runtime.args`` with this
backend's ``device_arg``, ``loopc.runtime.timing`` with its clock).
"""
from __future__ import annotations

import warnings

import numpy as np

from loopc.errors import ArgumentError, BuildError, LoopcError
from loopc.arith.extents import evaluate
from loopc.runtime.args import check_arguments, check_overlap
from loopc.runtime.module import Module
from loopc.runtime.sizes import bind_sizes, size_values, split_call

from . import device


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
        self._sizes = ()       # the symbolic sizes of this call (ints, in the kernels' order)

    # ------------------------------------------------------------------ arguments

    def check(self, arrays):
        """Raise ArgumentError unless ``arrays`` fit the parameters; returns one entry per
        argument: ``("host", ndarray)`` or ``("device", DeviceArg)``. Symbolic sizes listed in
        ``build``'s args are ints among ``arrays``; every size is bound here for the launch."""
        arrays, scalars = split_call(self.func, tuple(arrays))
        sizes = bind_sizes(self.func, arrays, scalars)
        checked = check_arguments(self.name, self.params, arrays, self.written, device.device_arg, sizes=sizes)
        check_overlap(self.name, self.params, checked, self.written)
        self._sizes = size_values(self.func, sizes)
        return checked

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
        sizes = dict(zip(self.func.size_vars, self._sizes))
        if self._intermediates is None or self._intermediates[0] != self._sizes:   # sized per call's sizes
            self._intermediates = (self._sizes, [cuda.device_array(max(1, evaluate(b.size, sizes)),
                                                                   dtype=np.dtype(b.dtype))
                                                 for b in self.plan.intermediates])
        return args + list(self._sizes) + list(self._intermediates[1]), back

    # ------------------------------------------------------------------ running

    def _launch(self, args) -> int:
        """Queue the kernels; 0 (a CUDA kernel reports no fault code)."""
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
        return 0

    def __call__(self, *arrays):
        kinds = self.check(arrays)
        self._require_device()
        args, back = self._to_device(kinds)
        self._launch(args)
        for d, host in back:
            d.copy_to_host(host)

    def bind(self, arrays):
        """A no-argument callable that launches the kernels on ``arrays`` — device arrays,
        checked once here — without the per-call checks (a runtime's preallocated buffers);
        it returns 0, the fault code of a kernel that cannot fault."""
        kinds = self.check(arrays)
        if any(kind == "host" for kind, _ in kinds):
            raise ArgumentError(f"{self.name}: bind() takes device arrays; numpy arrays are copied per call, "
                                "so call the module instead")
        self._require_device()
        args, _ = self._to_device(kinds)
        return lambda: self._launch(args)

    # ------------------------------------------------------------------ timing

    def clock(self):
        """CUDA events around each round (wall clock around a synchronise in the simulator)."""
        return device.clock()

    def _timed_call(self, arrays):
        """numpy arguments are copied to the GPU once, before timing: only the kernels are
        timed. The outputs are copied back at the end, as a call would."""
        kinds = self.check(arrays)
        self._require_device()
        args, back = self._to_device(kinds)

        def copy_back():
            for d, host in back:
                d.copy_to_host(host)
        return (lambda: self._launch(args)), copy_back

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
            sig = types.void(*[types.Array(numba.from_dtype(np.dtype(b.dtype)), 1, "C") for b in k.args])
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
