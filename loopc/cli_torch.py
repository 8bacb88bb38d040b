"""``loopc tune-model MODULE:CLASS --input-shape ... --log LOG``: tune the kernels the loopc
PyTorch backend compiles for a model (``loopc.torch.tune``)."""
from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys

from .cli_args import _check_fits, _require_torch, nonnegative_int, one_line, output_file, positive_float, positive_int


def model_spec(text: str) -> str:
    """``MODULE:CLASS`` or ``path/to/file.py:CLASS`` (whether it imports is checked later)."""
    module, sep, name = text.rpartition(":")
    if not sep or not module or not name:
        raise argparse.ArgumentTypeError(f"expected MODULE:CLASS or path/to/file.py:CLASS, got {text!r}")
    if not name.isidentifier():
        raise argparse.ArgumentTypeError(f"{name!r} is not a class name (in {text!r})")
    return text


def _is_file_spec(module: str) -> bool:
    return module.endswith(".py") or "/" in module or os.sep in module


def _import_model_module(module: str):
    """The module ``module`` names: a file path (``models/net.py``), or a dotted module importable
    from the current folder or sys.path. ArgumentError, one line, when it cannot be imported."""
    import importlib
    import importlib.util

    from loopc.errors import ArgumentError
    if _is_file_spec(module):
        path = os.path.abspath(os.path.expanduser(module))
        if not os.path.isfile(path):
            raise ArgumentError(f"{module}: no such file (give path/to/file.py:CLASS or MODULE:CLASS)")
        stem = os.path.splitext(os.path.basename(path))[0]
        name = stem if stem.isidentifier() and stem not in sys.modules else f"_loopc_model_{abs(hash(path))}"
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ArgumentError(f"{module}: not a Python file Python can import")
        mod = importlib.util.module_from_spec(spec)
        folder = os.path.dirname(path)
        sys.modules[name] = mod
        sys.path.insert(0, folder)               # its sibling modules import, as with `python file.py`
        try:
            spec.loader.exec_module(mod)
        except BaseException as e:
            sys.modules.pop(name, None)
            if isinstance(e, KeyboardInterrupt):
                raise
            raise ArgumentError(f"{module}: importing it failed: {type(e).__name__}: {one_line(e)}") from None
        finally:
            with contextlib.suppress(ValueError):
                sys.path.remove(folder)
        return mod
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())          # the `loopc` script: modules of the current folder
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name and (module == e.name or module.startswith(e.name + ".")):
            raise ArgumentError(f"{module}: no module named {e.name!r} (importable from {os.getcwd()} or "
                                "sys.path); give MODULE:CLASS or path/to/file.py:CLASS") from None
        raise ArgumentError(f"{module}: importing it failed: ModuleNotFoundError: {one_line(e)}") from None
    except KeyboardInterrupt:
        raise
    except BaseException as e:      # noqa: BLE001 - the user's module: SyntaxError, SystemExit, anything
        raise ArgumentError(f"{module}: importing it failed: {type(e).__name__}: {one_line(e)}") from None


def load_model(spec: str):
    """An instance of the torch.nn.Module class ``spec`` (MODULE:CLASS) names, built with no
    arguments. ArgumentError, one line, naming what is wrong."""
    import inspect

    import torch

    from loopc.errors import ArgumentError
    module, _, name = spec.rpartition(":")
    mod = _import_model_module(module)
    cls = getattr(mod, name, None)
    if cls is None:
        classes = sorted(k for k, v in vars(mod).items() if isinstance(v, type) and issubclass(v, torch.nn.Module)
                         and getattr(v, "__module__", None) == mod.__name__)
        found = f"its nn.Module classes: {', '.join(classes)}" if classes else "it defines no nn.Module class"
        raise ArgumentError(f"{spec}: {module} has no {name!r} ({found})")
    if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module)):
        raise ArgumentError(f"{spec}: {name} is a {type(cls).__name__}, not a torch.nn.Module class")
    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):
        signature = None
    if signature is not None:
        try:
            signature.bind()
        except TypeError:
            needed = [p.name for p in signature.parameters.values() if p.default is p.empty
                      and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
            raise ArgumentError(f"{spec}: {name}() needs arguments ({', '.join(needed)}); tune-model builds the "
                                "model with none: give a class whose arguments all have defaults") from None
    try:
        return cls()
    except KeyboardInterrupt:
        raise
    except Exception as e:      # noqa: BLE001 - the user's constructor
        raise ArgumentError(f"{spec}: {name}() failed: {type(e).__name__}: {one_line(e)}") from None


def cmd_tune_model(args) -> int:
    """Tune the kernels the loopc backend compiles for a PyTorch model (loopc.torch.tune) and log
    every measurement. Checked before any tuning: PyTorch, the log, the class (imports, is an
    nn.Module, builds with no arguments) and that its forward takes a float32 input of --input-shape."""
    from loopc.autotune.record import check_writable
    from loopc.errors import ArgumentError
    _require_torch("tune-model")
    import torch

    import loopc.torch
    shape = tuple(args.input_shape)
    shown = " ".join(map(str, shape))
    _check_fits(4 * math.prod(shape) * (4 if args.training else 2), f"--input-shape {shown}: the input",
                "--input-shape")
    check_writable(args.log)
    torch.manual_seed(args.seed)
    model = load_model(args.model)
    x = torch.randn(shape, dtype=torch.float32)
    try:
        with torch.no_grad():
            model(x)
    except KeyboardInterrupt:
        raise
    except Exception as e:      # noqa: BLE001 - the user's forward on this shape
        raise ArgumentError(f"--input-shape {shown}: {args.model}'s forward fails on a float32 input of shape "
                            f"{shape}: {type(e).__name__}: {one_line(e)}") from None
    kernels = " (forward and backward)" if args.training else ""
    limit = f", at most {args.seconds:g} s" if args.seconds else ""
    print(f"tuning {args.model} for a float32 input of shape {shape}{kernels}: {args.trials} trials{limit}, "
          f"log {args.log}")
    results = loopc.torch.tune(model, (x,), trials=args.trials, log=args.log, training=args.training,
                               seconds=args.seconds, min_trials=min(8, args.trials))
    if not results:
        print(f"loopc: tune-model: {args.model} has no tunable workload (convolution, dense layer or matrix "
              f"product) that loopc compiles for input {shape}; nothing tuned", file=sys.stderr)
        return 1
    for t, done, _ in results:
        if done == 0:
            print(f"not tuned {t.description} (x{t.count}): --seconds {args.seconds:g} ran out")
    if not any(g is not None for _, _, g in results):
        print(f"loopc: tune-model: no successful measurement of {args.model}'s kernels; see {args.log}",
              file=sys.stderr)
        return 1
    import json
    n = len(results)
    print(f"{sum(d for _, d, _ in results)} measurements of {n} workload{'s' if n > 1 else ''} in {args.log}; "
          "use them:")
    print(f'  torch.compile(model, backend="loopc", options={{"records": {json.dumps(args.log)}}})')
    return 0


def _add_tune_model(sub):
    tm = sub.add_parser("tune-model", help="tune the loopc kernels of a PyTorch model (torch.compile backend "
                                           "\"loopc\") and log the measurements")
    tm.add_argument("model", metavar="MODULE:CLASS", type=model_spec,
                    help="a torch.nn.Module class that builds with no arguments: a module importable from the "
                         "current folder (models:Net, pkg.models:Net) or a file (path/to/file.py:Net)")
    tm.add_argument("--input-shape", type=positive_int, nargs="+", required=True, metavar="N",
                    help="the shape of the model's float32 input, e.g. 1 1 28 28")
    tm.add_argument("--trials", type=positive_int, default=200, help="measurements in all, shared by FLOPs")
    tm.add_argument("--seconds", type=positive_float, default=None, help="also stop after this long")
    tm.add_argument("--log", type=output_file, required=True,
                    help="JSON Lines log in an existing folder (appended): the backend's records option")
    tm.add_argument("--training", action="store_true", help="tune the backward kernels too")
    tm.add_argument("--seed", type=nonnegative_int, default=0, help="seeds the model's weights and the random input")
    tm.set_defaults(fn=cmd_tune_model)
