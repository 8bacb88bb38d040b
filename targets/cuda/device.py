"""numba.cuda access, device-array views and the GPU's clock, for the real driver and for the
simulator.

Set ``NUMBA_ENABLE_CUDASIM=1`` before ``numba.cuda`` is first imported to run kernels in
numba's simulator (slow: threads are Python threads, ~0.35 s per 256-thread block).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from loopc.errors import ArgumentError, BuildError
from loopc.runtime.timing import WallClock


def cuda():
    """``numba.cuda`` (imported on first use)."""
    if not hasattr(np, "row_stack"):
        # numba-cuda 0.30 registers an overload for np.row_stack (an alias of np.vstack that
        # numpy 2.5 removed); without the alias no kernel compiles with numpy >= 2.5
        np.row_stack = np.vstack
    try:
        from numba import cuda as mod
    except ImportError as err:  # pragma: no cover - numba is a core dependency
        raise BuildError(f"the CUDA target needs numba's CUDA support (pip install numba-cuda): {err}") from err
    return mod


def simulator() -> bool:
    """Whether kernels run in numba's CUDA simulator."""
    from numba import config
    return bool(getattr(config, "ENABLE_CUDASIM", False))


_GPU = []


def gpu_available() -> bool:
    """A real CUDA GPU is usable (False in the simulator). Asked once per process."""
    if simulator():
        return False
    if not _GPU:
        try:
            _GPU.append(bool(cuda().is_available()))
        except Exception:  # pragma: no cover - broken driver installs
            _GPU.append(False)
    return _GPU[0]


@dataclass
class DeviceArg:
    """A device array argument: what the checks need, and a flat view to launch with."""
    shape: tuple
    dtype: np.dtype
    c_contiguous: bool
    readonly: bool
    ptr: int
    nbytes: int
    source: object

    def flat(self):
        """A 1-D numba device array over the same memory."""
        arr = self.source
        if not simulator() and not _is_numba_device_array(arr):
            arr = cuda().as_cuda_array(arr)
        n = int(np.prod(self.shape, dtype=np.int64))
        return arr if arr.shape == (n,) else arr.reshape(n)


def _is_numba_device_array(x) -> bool:
    try:
        from numba.cuda.cudadrv.devicearray import DeviceNDArray
    except ImportError:  # pragma: no cover
        return False
    return isinstance(x, DeviceNDArray)


def _c_contiguous(shape, strides, itemsize) -> bool:
    if strides is None:
        return True
    expected = itemsize
    for n, st in zip(reversed(shape), reversed(strides)):
        if n != 1 and st != expected:
            return False
        expected *= n
    return True


def device_arg(x):
    """A :class:`DeviceArg` for a device array (numba's, or anything with
    ``__cuda_array_interface__``: CuPy arrays, PyTorch CUDA tensors); None for anything else.
    Raises ArgumentError when the object refuses to export its memory."""
    if simulator():
        from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray
        if not isinstance(x, FakeCUDAArray):
            return None
        host = x._ary
        return DeviceArg(tuple(x.shape), np.dtype(x.dtype), bool(host.flags.c_contiguous),
                         not host.flags.writeable, host.ctypes.data, host.nbytes, x)
    if isinstance(x, np.ndarray) or not hasattr(type(x), "__cuda_array_interface__"):
        return None
    try:
        cai = x.__cuda_array_interface__
    except Exception as err:  # e.g. a PyTorch tensor that requires grad
        raise ArgumentError(str(err)) from err
    shape = tuple(int(n) for n in cai["shape"])
    dtype = np.dtype(cai["typestr"])
    ptr, readonly = cai["data"]
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    return DeviceArg(shape, dtype, _c_contiguous(shape, cai.get("strides"), dtype.itemsize), bool(readonly),
                     int(ptr or 0), nbytes, x)


class EventClock:
    """Two CUDA events recorded on the default stream around a round of calls: the GPU's own
    clock, from the first queued kernel of the round to the end of the last."""

    def __init__(self):
        cuda_ = cuda()
        self._synchronize = cuda_.synchronize
        self._begin, self._end = cuda_.event(), cuda_.event()

    def start(self) -> None:
        self._synchronize()          # nothing queued before the round counts
        self._begin.record()

    def stop(self) -> float:
        self._end.record()
        self._end.synchronize()
        return self._begin.elapsed_time(self._end) / 1e3


def clock():
    """A fresh clock for ``loopc.runtime.timing``: CUDA events on a GPU; in the simulator
    (which has no events), the wall clock around a device synchronise."""
    if simulator():
        return WallClock(sync=cuda().synchronize)
    return EventClock()
