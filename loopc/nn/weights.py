"""Model weights on disk: one .npz with an array per parameter name.

``save_weights`` appends ``.npz`` when the path lacks it (as numpy does), writes atomically (a
temporary file beside it, renamed over it) and returns the real path. ``read_weights`` accepts
only such a file: anything else (a missing file, a .npy, a non-zip, other arrays or shapes,
NaN or infinite weights) raises a LoopcError naming the path and what is wrong.
"""
from __future__ import annotations

import os
import zipfile
import zlib
from pathlib import Path

import numpy as np

from loopc.errors import ArgumentError, LoopcError
from loopc.runtime.files import atomic_write


def weights_path(path) -> Path:
    """Where ``save(path)`` writes: ``path``, with ``.npz`` appended when it lacks that suffix."""
    path = _file_path(path)
    return path if path.suffix == ".npz" else path.with_name(path.name + ".npz")


def _file_path(path) -> Path:
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not isinstance(path, (str, os.PathLike)) or os.fspath(path) == "":
        raise ArgumentError(f"weights path: expected a file path (str or os.PathLike), got {path!r}")
    return Path(os.path.expanduser(os.fspath(path)))


def save_weights(state: dict, path) -> Path:
    """``state`` (name -> array) into an .npz at ``weights_path(path)``, atomically; returns that path."""
    real = weights_path(path)
    for p in (_file_path(path), real):
        if p.is_dir():
            raise LoopcError(f"cannot write weights to {p}: it is a directory; give a file path such as "
                             f"{p / 'weights.npz'}")
    atomic_write(real, lambda f: np.savez(f, **state))
    return real


def read_weights(path, shapes: dict, allow_nonfinite: bool = False) -> dict:
    """The arrays of an .npz of weights (``path``, else ``path.npz``), checked against ``shapes``."""
    path = _file_path(path)
    if not path.exists() and weights_path(path).exists():
        path = weights_path(path)                  # `--save w` wrote w.npz
    hint = "expected an .npz written by `loopc lenet train --save`"
    if not path.exists():
        raise LoopcError(f"cannot read weights from {path}: no such file ({hint})")
    if path.is_dir():
        raise LoopcError(f"cannot read weights from {path}: it is a directory ({hint})")
    try:
        f = np.load(path, allow_pickle=False)
        if not isinstance(f, np.lib.npyio.NpzFile):
            raise LoopcError(f"cannot read weights from {path}: it holds a single array (.npy); {hint}")
        with f:
            state = {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, KeyError) as e:
        why = "not an .npz (zip) file" if "pickle" in str(e) or isinstance(e, zipfile.BadZipFile) else str(e)
        raise LoopcError(f"cannot read weights from {path}: {why}; {hint}") from None
    check_weights(path, state, shapes, allow_nonfinite)
    return state


def check_weights(path, state: dict, shapes: dict, allow_nonfinite: bool = False) -> None:
    """LoopcError when ``state`` lacks an array of ``shapes``, has a wrong shape or dtype, or
    (unless ``allow_nonfinite``) holds NaN or inf."""
    missing = [k for k in shapes if k not in state]
    if missing:
        held = ", ".join(sorted(state)) or "no arrays"
        raise LoopcError(f"{path}: not this model's weights: the saved weights lack {', '.join(missing)} "
                         f"(it holds {held}); expected an .npz written by `loopc lenet train --save`")
    for k, shape in shapes.items():
        a = state[k]
        if a.shape != tuple(shape) or a.dtype.kind not in "fiu":
            raise LoopcError(f"{path}: saved weight {k} is {a.dtype} {a.shape}, the model expects float32 "
                             f"{tuple(shape)}; expected an .npz written by `loopc lenet train --save`")
    bad = [k for k in shapes if not np.isfinite(state[k]).all()]
    if bad and not allow_nonfinite:
        verb = "holds" if len(bad) == 1 else "hold"
        raise LoopcError(f"{path}: {', '.join(bad)} {verb} NaN or infinite values (weights of a diverged "
                         "training run?); retrain with a lower --lr")
