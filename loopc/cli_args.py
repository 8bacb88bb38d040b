"""The CLI's option types and the checks every command shares: each option type raises
argparse.ArgumentTypeError, so a bad option is one line and exit code 2 before any work starts;
the checks raise LoopcError subclasses (one line, exit 2, from ``loopc.cli.main``)."""
from __future__ import annotations

import argparse
import math
import os


# ---------------------------------------------------------------- option types (checked by argparse)
# Each raises argparse.ArgumentTypeError, so a bad option is one line, `... error: argument --x: ...`,
# and exit code 2, before any work starts.


def _int_at_least(text: str, low: int, what: str, bound: str) -> int:
    """``text`` as an int >= ``low`` (``what``: the expected value in words, ``bound``: the rule)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"must be {bound}, got {text}")
    return value


def positive_int(text: str) -> int:
    """An int >= 1."""
    return _int_at_least(text, 1, "a positive integer", "a positive integer (1 or more)")


def nonnegative_int(text: str) -> int:
    """An int >= 0."""
    return _int_at_least(text, 0, "an integer >= 0", "an integer >= 0")


def thread_count(text: str) -> int:
    """A positive int, at most MAX_THREADS (libgomp aborts when it cannot create its threads)."""
    value = positive_int(text)
    if value > MAX_THREADS:
        raise argparse.ArgumentTypeError(f"{value} threads is more than {MAX_THREADS} "
                                         f"(this machine has {os.cpu_count()} cores); give 1..{MAX_THREADS}")
    return value


MAX_THREADS = max(256, 16 * (os.cpu_count() or 1))


def finite_float(text: str) -> float:
    """A finite float (not nan or inf)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def positive_float(text: str) -> float:
    """A finite float > 0."""
    value = finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text}")
    return value


def momentum_float(text: str) -> float:
    """A finite float in [0, 1)."""
    value = finite_float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must lie in [0, 1) (0.9 is usual), got {text}")
    return value


def target_arg(text: str) -> str:
    """'llvm ...' or 'cuda ...', parsed as loopc.build parses it (loopc.target)."""
    from loopc.errors import LoopcError
    from loopc.target import Target
    try:
        Target.parse(text)
    except LoopcError as e:
        raise argparse.ArgumentTypeError(str(e).splitlines()[0]) from None
    return text


def _writable_dir(folder: str, what: str) -> None:
    if not os.path.isdir(folder):
        raise argparse.ArgumentTypeError(f"{what}: folder {folder} does not exist; create it first")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"{what}: folder {folder} is not writable")


def output_file(text: str) -> str:
    """A file to write: not a directory, in an existing writable folder."""
    path = os.path.expanduser(text)
    if not text or os.path.isdir(path):
        raise argparse.ArgumentTypeError(f"{text!r} is a directory, not a file; give a file path"
                                         if text else "expected a file path")
    _writable_dir(os.path.dirname(os.path.abspath(path)), text)
    return path


def weights_file(text: str) -> str:
    """Where --save writes (``.npz`` appended when missing, as numpy does): checked like output_file."""
    from loopc.nn.weights import weights_path
    if text and os.path.isdir(os.path.expanduser(text)):
        raise argparse.ArgumentTypeError(f"{text!r} is a directory; give a file path such as "
                                         f"{os.path.join(text, 'lenet.npz')}")
    return output_file(str(weights_path(text))) if text else output_file(text)


def data_dir(text: str) -> str:
    """A folder to read (whether it holds the right files is loopc.nn.datasets' to say)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a folder path, got ''")
    return text


def log_dir(text: str) -> str:
    """A folder for logs: an existing writable folder, or one that can be created (its nearest
    existing ancestor is a writable folder)."""
    path = os.path.abspath(os.path.expanduser(text)) if text else ""
    if not path:
        raise argparse.ArgumentTypeError("expected a folder path")
    if os.path.exists(path) and not os.path.isdir(path):
        raise argparse.ArgumentTypeError(f"{text} is a file, not a folder")
    ancestor = path
    while not os.path.exists(ancestor):
        ancestor = os.path.dirname(ancestor)
    if not os.path.isdir(ancestor):
        raise argparse.ArgumentTypeError(f"{text}: {ancestor} is a file, not a folder")
    _writable_dir(ancestor, text)
    return os.path.expanduser(text)


def _require_torch(what: str) -> None:
    """LoopcError (one line, exit 2) when PyTorch cannot be imported: ``what`` needs it."""
    from loopc.errors import LoopcError
    try:
        import torch  # noqa: F401
        import loopc.torch  # noqa: F401 - registers the "loopc" backend
    except ImportError as e:
        if getattr(e, "name", None) == "torch" or "not installed" in str(e):
            raise LoopcError(f"{what} needs PyTorch, which is not installed: pip install 'loopc[torch]' "
                             "(or pip install torch)") from None
        raise LoopcError(f"{what} needs PyTorch, which cannot be imported here ({type(e).__name__}: "
                         f"{one_line(e)})") from None


def _check_fits(need: int, what: str, option: str) -> None:
    """ArgumentError when ``need`` bytes exceed the machine's memory (a MemoryError or the OOM
    killer otherwise, after minutes of work)."""
    from loopc.errors import ArgumentError
    from loopc.target import host_memory
    total = host_memory()
    if total is not None and need > total:
        raise ArgumentError(f"{what} needs about {need / 2**30:.1f} GiB, more than this machine's "
                            f"{total / 2**30:.1f} GiB of memory; give a smaller {option}")


def one_line(error) -> str:
    """An exception's message on one line (its lines joined with '; ')."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return "; ".join(lines) or type(error).__name__
