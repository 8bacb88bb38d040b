"""Files loopc writes for the user (weights, traces, logs): written whole or not at all."""
from __future__ import annotations

import contextlib
import os
import secrets

from ..errors import LoopcError


@contextlib.contextmanager
def atomic_path(path):
    """A fresh temporary path beside ``path`` to write; renamed to ``path`` when the block ends
    without an exception (removed otherwise): a reader never sees a half-written file, and a
    failure leaves the old file as it was. An OSError becomes a LoopcError naming the path."""
    path = os.fspath(path)
    folder, name = os.path.split(os.path.abspath(path))
    tmp = os.path.join(folder, f".{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as e:
        raise LoopcError(f"cannot write {path}: {e.strerror or e}; check that its folder exists and is "
                         "writable and that the disk has room") from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def atomic_write(path, write, mode: str = "wb") -> None:
    """``write(file)`` into a temporary file beside ``path``, then rename it to ``path`` (atomic_path)."""
    with atomic_path(path) as tmp:
        with open(tmp, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
