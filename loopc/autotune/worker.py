"""What runs inside measurement worker processes: build, reference and run jobs.

Every job takes one payload dict and returns a plain dict; it never raises (an exception
becomes ``{"ok": False, "error_type": ..., "message": ...}``), so nothing unpicklable crosses
the process boundary. A segfault or a hang is the parent's business (see pool.py).

- ``build_job``: template + config -> schedule -> loop IR -> object code (bytes), through the
  target's backend (``loopc.backend``: the same code generation and O3 steps as loopc.build).
  Compiling to an object file lets many workers build in parallel while one runner process
  loads the code (~3 ms) and times it alone. For a ``cuda`` target the build checks the kernel
  plan and generates the source; the runner compiles it with numba and times it on the GPU.
- ``reference_job``: the expected outputs on the seeded random inputs: the template's NumPy
  ``reference`` if it has one, else its default schedule (``te.create_schedule``) built once.
- ``run_job``: load the object code, run it once on the seeded inputs, compare with the
  reference, then time it.
- ``measure_job``: build + run in one process (what a Dask worker runs); ``main()`` serves one
  such job over stdin/stdout for ``python -m loopc.autotune.worker``.
"""
from __future__ import annotations

import json
import os
import pickle
import sys
import time
import traceback

import numpy as np


def _failure(err: BaseException, stage: str) -> dict:
    tb = traceback.format_exception(type(err), err, err.__traceback__)
    return {"ok": False, "stage": stage, "error_type": type(err).__name__,
            "message": f"{type(err).__name__}: {err}"[:4000], "traceback": "".join(tb[-6:])[-4000:]}


# --------------------------------------------------------------------------- inputs and outputs


def param_specs(tensors):
    """``[(name, shape, dtype, is_output)]`` in argument order."""
    from loopc.te.tensor import PlaceholderOp
    return [(t.name, tuple(t.shape), t.dtype, not isinstance(t.op, PlaceholderOp)) for t in tensors]


def make_arrays(params, seed):
    """Seeded random inputs (floats in [-1, 1), small ints, bools) and outputs that no correct
    kernel leaves behind (NaN, or a sentinel for integers)."""
    rng = np.random.default_rng(seed)
    arrays = []
    for _name, shape, dtype, is_output in params:
        dt = np.dtype(dtype)
        if is_output:
            fill = np.nan if dt.kind == "f" else (0 if dt.kind == "b" else -77777)
            arrays.append(np.full(shape, fill, dtype=dt))
        elif dt.kind == "f":
            arrays.append(rng.uniform(-1.0, 1.0, size=shape).astype(dt))
        elif dt.kind == "b":
            arrays.append(rng.random(shape) < 0.5)
        else:
            arrays.append(rng.integers(-8, 9, size=shape).astype(dt))
    return arrays


def outputs_of(params, arrays):
    return [a for (_n, _s, _d, is_out), a in zip(params, arrays) if is_out]


def compare(outputs, reference, rtol):
    """None when every output matches, else a message. Error is measured relative to the
    largest reference magnitude (reduction order differs between schedules)."""
    if len(outputs) != len(reference):
        return f"{len(outputs)} outputs but the reference has {len(reference)}"
    for k, (out, ref) in enumerate(zip(outputs, reference)):
        ref = np.asarray(ref)
        if out.shape != ref.shape:
            return f"output {k} has shape {out.shape}, the reference {ref.shape}"
        if out.dtype.kind == "f":
            if not np.all(np.isfinite(out) | ~np.isfinite(ref)):
                bad = int(np.sum(~np.isfinite(out) & np.isfinite(ref)))
                return f"output {k}: {bad} elements are NaN/inf (never written, or overflow)"
            diff = np.abs(out.astype(np.float64) - ref.astype(np.float64))
            diff = np.where(np.isfinite(ref), diff, 0.0)
            scale = max(1.0, float(np.max(np.abs(np.where(np.isfinite(ref), ref, 0.0)), initial=0.0)))
            err = float(np.max(diff, initial=0.0)) / scale
            if err > rtol:
                where = np.unravel_index(int(np.argmax(diff)), diff.shape)
                return (f"output {k}: relative error {err:.3g} > {rtol:g} (at {tuple(int(x) for x in where)}: "
                        f"got {out[where]!r}, expected {ref[where]!r})")
        elif not np.array_equal(out, ref):
            return f"output {k}: {int(np.sum(out != ref))} elements differ from the reference"
    return None


# --------------------------------------------------------------------------- compile and load


def compile_object(lowered, target):
    """Loop IR -> optimised object code for ``target`` (the backend's own steps, the ones
    loopc.build runs); returns (bytes, full target string)."""
    from loopc import backend
    from loopc.errors import BuildError
    be = backend.get(target)
    if be.compile_object is None:
        raise BuildError(f"the autotuner measures CPU (llvm) targets; got {target!r}")
    return be.compile_object(lowered, target)


def load_object(obj: bytes, name: str, nparams: int, target="llvm"):
    """JIT-load object code; returns (``call(*pointers)``, keepalive)."""
    from loopc import backend
    return backend.get(target).load_object(obj, name, nparams)


# --------------------------------------------------------------------------- jobs


def instantiate(payload):
    from .dispatcher import ApplyConfig
    from .space import ConfigEntity
    from .task import _check_output
    cfg = ConfigEntity.from_json(payload["config"])
    with ApplyConfig(cfg, target=payload.get("target")):
        return _check_output(payload["template"].template_name, payload["template"](*payload["args"]))


def build_job(payload) -> dict:
    """payload: template, args, config (JSON), target, name."""
    try:
        import loopc
        t0 = time.perf_counter()
        s, tensors = instantiate(payload)
        trace = json.loads(s.trace_json())
        lowered = loopc.lower(s, tensors, name=payload.get("name", "kernel"))
        if _is_cuda(payload["target"]):
            return {"ok": True, **build_cuda(lowered, payload), "name": lowered.name,
                    "params": param_specs(tensors), "trace": trace, "build_seconds": time.perf_counter() - t0}
        obj, target = compile_object(lowered, payload["target"])
        return {"ok": True, "object": obj, "name": lowered.name, "params": param_specs(tensors),
                "trace": trace, "target": target, "build_seconds": time.perf_counter() - t0}
    except BaseException as err:  # noqa: BLE001 - every failure is a result
        return _failure(err, "build")


def _is_cuda(target) -> bool:
    from loopc.target import kind_of
    return kind_of(target) == "cuda"


def build_cuda(lowered, payload) -> dict:
    """A GPU candidate's build: the kernel plan and source (launch shape, shared memory and
    thread limits are checked here, so an illegal config is a build error); numba compiles
    the source in the runner, at the first launch. The artifact carries the config to rebuild
    it there."""
    from .dispatcher import resolve_target
    from loopc.targets.cuda import generate_source
    generate_source(lowered, payload["target"])
    return {"cuda": {k: payload[k] for k in ("template", "args", "config")},
            "target": resolve_target(payload["target"])}


def _first_call(call, arrays, payload):
    """Run a candidate once; (seconds, None), or (seconds, a wrong_answer result) when its
    outputs differ from the payload's reference."""
    t0 = time.perf_counter()
    call()
    first = time.perf_counter() - t0
    if payload.get("reference") is not None:
        msg = compare(outputs_of(payload["params"], arrays), payload["reference"], payload.get("rtol", 1e-3))
        if msg is not None:
            return first, {"ok": False, "stage": "run", "error_type": "WrongAnswer", "kind": "wrong_answer",
                           "message": msg}
    return first, None


def run_cuda_job(payload) -> dict:
    """Build the candidate for the GPU, check one call against the reference, then time the
    kernels alone with CUDA events (``CUDAModule.time_evaluator``)."""
    import loopc
    spec = payload["cuda"]
    s, tensors = instantiate(spec)
    module = loopc.build(s, tensors, target="cuda", name=payload["name"])
    arrays = make_arrays(payload["params"], payload["seed"])
    first, wrong = _first_call(lambda: module(*arrays), arrays, payload)
    if wrong is not None:
        return wrong
    res = module.time_evaluator(number=payload["number"], repeat=payload["repeat"],
                                min_repeat_ms=payload.get("min_repeat_ms", 0))(*arrays)
    return {"ok": True, "costs": list(res.results), "first_run": first}


def reference_job(payload) -> dict:
    """payload: template, args, config (JSON, the fallback config), target, seed."""
    try:
        import loopc
        from loopc import te
        s, tensors = instantiate(payload)
        params = param_specs(tensors)
        arrays = make_arrays(params, payload["seed"])
        ref_fn = getattr(payload["template"], "reference", None)
        if ref_fn is not None:
            outs = ref_fn(*[a for (_n, _s, _d, is_out), a in zip(params, arrays) if not is_out])
            outs = list(outs) if isinstance(outs, (list, tuple)) else [outs]
            expected = outputs_of(params, arrays)
            outs = [np.asarray(o).astype(e.dtype).reshape(e.shape) for o, e in zip(outs, expected)]
        else:
            outputs = [t for t, p in zip(tensors, params) if p[3]]
            # the unscheduled loop nest; a GPU template's reference runs on the CPU (it has no binding)
            target = "llvm" if _is_cuda(payload["target"]) else payload["target"]
            f = loopc.build(te.create_schedule([t.op for t in outputs]), tensors, target=target, name="reference")
            f(*arrays)
            outs = outputs_of(params, arrays)
        return {"ok": True, "outputs": outs, "params": params}
    except BaseException as err:  # noqa: BLE001
        return _failure(err, "reference")


def run_job(payload) -> dict:
    """payload: object, name, params, number, repeat, min_repeat_ms, timeout, reference, seed, rtol,
    and optionally cutoff_seconds (a first call slower than this is the only one timed)."""
    try:
        if "cuda" in payload:
            return run_cuda_job(payload)
        from loopc import backend
        from loopc.runtime.timing import time_evaluator
        t_start = time.perf_counter()
        params = payload["params"]
        be = backend.get(payload.get("target", "llvm"))
        fn, keep = be.load_object(payload["object"], payload["name"], len(params))
        arrays = make_arrays(params, payload["seed"])
        ptrs = [a.ctypes.data for a in arrays]
        first, wrong = _first_call(lambda: fn(*ptrs), arrays, payload)
        if wrong is not None:
            return wrong
        cutoff = payload.get("cutoff_seconds")
        if cutoff is not None and first > cutoff:      # far slower than the best so far: one call
            return {"ok": True, "costs": [first], "first_run": first, "cut": True}
        number, repeat = payload["number"], payload["repeat"]
        budget = 0.8 * payload["timeout"] - (time.perf_counter() - t_start)
        if first * number * repeat > budget:      # a slow candidate: fewer calls, never a timeout
            number = max(1, int(budget / max(first * repeat, 1e-9)))
            if first * repeat > budget:
                repeat = max(1, int(budget / max(first, 1e-9)))
        res = time_evaluator(lambda: fn(*ptrs), number=number, repeat=repeat,
                             min_repeat_ms=payload.get("min_repeat_ms", 0), warmup=0, clock=be.clock())()
        del keep
        return {"ok": True, "costs": list(res.results), "first_run": first}
    except BaseException as err:  # noqa: BLE001
        return _failure(err, "run")


def measure_job(payload) -> dict:
    """Build, then run: what one Dask task does (in a child process of the Dask worker)."""
    built = build_job(payload)
    if not built["ok"]:
        return {"build": built}
    run = run_job({**payload, **{k: built[k] for k in ("object", "cuda", "name", "params") if k in built}})
    built.pop("object", None)
    return {"build": built, "run": run}


def main():
    """Serve one job from stdin (two pickles: the job, then a dict of extras, both written by
    loopc's own DaskRunner); write the pickled result to stdout."""
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())   # prints of the template go to stderr
    job = pickle.load(sys.stdin.buffer)
    job.update(pickle.load(sys.stdin.buffer))      # extras added by the Dask worker (the reference)
    kind = job.pop("_job")
    result = {"measure": measure_job, "reference": reference_job}[kind](job)
    pickle.dump(result, out)
    out.flush()


if __name__ == "__main__":
    main()
