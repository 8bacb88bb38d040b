"""The TorchDynamo backend "loopc": ``torch.compile(model, backend="loopc")``.

    compiled = torch.compile(model, backend="loopc")                 # inference and training
    compiled = torch.compile(model, backend="loopc", options={"records": "model.jsonl"})
    report = loopc.torch.explain(model, x)                           # what ran where, as data
    print(report)                                                    # 9 nodes on loopc, ...

Dynamo captures the model's graph; AOTAutograd turns it into ATen forward and backward graphs
(PyTorch's decompositions of batch norm and a few activations first: ``aten.DECOMPOSE``); each
graph is partitioned into loopc kernels and PyTorch fallback by ``graph.compile_graph``.

Options: ``records`` (a tuning log, ``loopc.torch.tune``'s output, applied while compiling),
``report`` (a ``graph.Report`` to fill). The backend is registered under the name "loopc" by
the ``torch_dynamo_backends`` entry point of loopc's package (no import needed) and on import
of this module.
"""
from __future__ import annotations

import contextlib
import functools
import logging

import torch

from .graph import Report, compile_graph

log = logging.getLogger("loopc.torch")
_logged = set()


def _records(path):
    if not path:
        return contextlib.nullcontext()
    from loopc import autotune
    return autotune.apply_history_best(str(path))


def _records_key(path):
    """The records in effect, as part of a kernel's cache key: the file and its last change."""
    if not path:
        return None
    import os
    try:
        return (os.path.abspath(path), os.stat(path).st_mtime_ns)
    except OSError:
        from loopc.errors import ArgumentError
        raise ArgumentError(f"loopc backend: records file {path!r} cannot be read; give the log "
                            "loopc.torch.tune wrote") from None


def graph_compiler(report: Report, records=None):
    """AOTAutograd's compiler for one ATen graph: ``compile_graph`` under the ``records``, boxed."""
    def compile_one(gm, example_inputs):
        from functorch.compile import make_boxed_func
        with _records(records):
            compiled = compile_graph(gm, report, variant=_records_key(records))
        return make_boxed_func(compiled.forward)
    return compile_one


def _log_once(report: Report, key):
    if key in _logged:
        return
    _logged.add(key)
    if report.unexpected_fallback:
        log.warning("loopc.torch: %s", report)
    else:
        log.info("loopc.torch: %s", report)


def backend(gm: torch.fx.GraphModule, example_inputs, options: dict | None = None):
    """A Dynamo backend: ``gm`` compiled to loopc kernels with PyTorch fallback (see module doc)."""
    from torch._decomp import get_decompositions
    from torch._dynamo.backends.common import aot_autograd

    from .aten import DECOMPOSE
    options = dict(options or {})
    unknown = set(options) - {"records", "report"}
    if unknown:
        from loopc.errors import ArgumentError
        raise ArgumentError(f"loopc backend: unknown options {sorted(unknown)}; it takes 'records' and 'report'")
    report = options.get("report") or Report()
    compiler = graph_compiler(report, options.get("records"))
    aot = aot_autograd(fw_compiler=compiler, bw_compiler=compiler,
                       decompositions=get_decompositions(DECOMPOSE))
    if _symbolic(example_inputs):
        compiled = _per_shape(gm, aot)
    else:
        compiled = aot(gm, example_inputs)

    @functools.wraps(compiled)
    def run(*args):
        out = compiled(*args)
        _log_once(report, id(gm))
        return out
    return run


def _symbolic(inputs) -> bool:
    return any(isinstance(a, torch.SymInt) or (isinstance(a, torch.Tensor) and not all(
        isinstance(d, int) for d in a.shape)) for a in inputs)


def _per_shape(gm, aot):
    """Dynamo made the graph's shapes symbolic (a second batch size): loopc's kernels are
    compiled per shape, so the graph is compiled again for each concrete set of shapes."""
    compiled = {}

    def run(*args):
        key = tuple((tuple(a.shape), a.dtype) if isinstance(a, torch.Tensor) else a for a in args)
        fn = compiled.get(key)
        if fn is None:
            fn = compiled[key] = aot(gm, list(args))
        return fn(*args)
    return run


def explain(model, *inputs, backward: bool = False) -> Report:
    """Compile ``model`` for ``inputs`` with the loopc backend and run it once (and its backward
    when ``backward``); the Report says how many ATen nodes ran on loopc, in how many kernels,
    and which ops fell back to PyTorch and why."""
    report = Report()
    compiled = torch.compile(model, backend=functools.partial(backend, options={"report": report}))
    out = compiled(*inputs)
    if backward:
        loss = sum(o.float().sum() for o in (out if isinstance(out, (tuple, list)) else [out]))
        loss.backward()
    return report


def register() -> None:
    """Register "loopc" with Dynamo, unless the installed package's entry point does (Dynamo finds
    it on first use; importing Dynamo here would cost seconds of every ``import loopc.torch``)."""
    from importlib.metadata import entry_points
    if any(ep.name == "loopc" for ep in entry_points(group="torch_dynamo_backends")):
        return
    from torch._dynamo.backends.registry import _BACKENDS, register_backend
    if "loopc" not in _BACKENDS:
        register_backend(name="loopc")(backend)


register()
