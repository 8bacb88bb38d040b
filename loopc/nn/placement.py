"""Where an executor's kernels find their buffers: the host's arrays, or a GPU twin of each.

An ``Executor`` keeps every value's host buffer (``ex.buffers``: what ``feed`` writes, what the
optimizer updates, what ``ex[value]`` returns) and asks its placement for the rest:

    placement.add(value)               a buffer was allocated for ``value``
    placement.alias(value, source)     ``value`` is a view (reshape) of ``source``'s buffer
    placement.arrays(values)           the arrays a kernel runs on
    placement.before_run()             before the kernels of a run
    placement.synchronize()            after each kernel, when the profiler times them
    placement.after_run(values)        after them (``values``: what the run was asked for)
    placement.read(value)              before the host buffer of ``value`` is handed out

``HostPlacement`` (CPU targets) does nothing: kernels run on the host buffers. On a GPU target
``DevicePlacement`` gives every buffer a device twin: a run uploads the inputs and parameters,
launches the kernels on the device arrays, and downloads the requested outputs; ``read`` of
another value downloads it first. The optimizer stays on the CPU.
"""
from __future__ import annotations

from loopc.target import kind_of


def placement_for(target):
    """The placement class for ``target`` (a target string or Target)."""
    return DevicePlacement if kind_of(target) == "cuda" else HostPlacement


class HostPlacement:
    """Kernels run on the host buffers themselves: nothing to allocate, copy or wait for."""

    def __init__(self, executor, grads):
        self.buffers = executor.buffers

    def add(self, value) -> None:
        pass

    def alias(self, value, source) -> None:
        pass

    def arrays(self, values) -> list:
        return [self.buffers[v] for v in values]

    def before_run(self) -> None:
        pass

    def synchronize(self) -> None:
        pass

    def after_run(self, values) -> None:
        pass

    def read(self, value) -> None:
        pass


class DevicePlacement:
    """A device array per host buffer. Inputs and weights: the host's buffers are the originals
    (``feed`` and the optimizer write them) and go up before each run; other values are copied
    back after a run (those asked for) or when read."""

    def __init__(self, executor, grads):
        from loopc.targets.cuda import device
        from loopc.targets.cuda.module import CUDAModule
        CUDAModule._require_device()     # a clear BuildError, not numba's CudaSupportError
        self._cuda = device.cuda
        self.graph, self.store, self.buffers = executor.graph, executor.store, executor.buffers
        self.device = {}                 # value -> device array
        self._host_owned = set(self.graph.inputs) | set(self.graph.params)
        self._fresh = set()              # values whose host buffer holds the device's contents
        self._arenas(grads)
        for v in self.buffers:
            if v not in self.device:
                self.add(v)

    def _arenas(self, grads):
        """Parameters and gradients as views of two device arenas, like the host's: one copy
        moves every weight (or every gradient)."""
        cuda = self._cuda()
        self._arena = {}
        for kind, host_flat, values in (("params", self.store.flat, list(self.graph.params)),
                                        ("grads", self.store.grad_flat, list(grads.values()))):
            arena = cuda.device_array(host_flat.shape, dtype=host_flat.dtype)
            self._arena[kind] = (arena, host_flat, set(values))
            for v in values:
                host = self.buffers[v]
                start = (host.ctypes.data - host_flat.ctypes.data) // host.itemsize
                self.device[v] = arena[start:start + host.size].reshape(host.shape)

    def add(self, value) -> None:
        host = self.buffers[value]
        self.device[value] = self._cuda().device_array(host.shape, dtype=host.dtype)

    def alias(self, value, source) -> None:
        self.device[value] = self.device[source].reshape(value.shape)

    def arrays(self, values) -> list:
        return [self.device[v] for v in values]

    def before_run(self) -> None:
        """Inputs and parameters (the host owns them: feed, the optimizer) go to the GPU."""
        for v in self.graph.inputs:
            self.device[v].copy_to_device(self.buffers[v])
        arena, host, _ = self._arena["params"]
        arena.copy_to_device(host)
        self._fresh = set()

    def synchronize(self) -> None:
        self._cuda().synchronize()

    def after_run(self, values) -> None:
        """Copy ``values`` back to their host buffers (gradients as one arena copy)."""
        arena, host, grads = self._arena["grads"]
        if any(v in grads for v in values):
            arena.copy_to_host(host)
            self._fresh |= grads
        for v in values:
            if v not in grads:
                self.device[v].copy_to_host(self.buffers[v])
                self._fresh.add(v)

    def read(self, value) -> None:
        """The host buffer of ``value`` gets the device's current contents (once per run)."""
        if value not in self._fresh and value not in self._host_owned:
            self.device[value].copy_to_host(self.buffers[value])
            self._fresh.add(value)
