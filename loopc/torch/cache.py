"""Compiled kernels of the PyTorch frontend, kept in memory and on disk.

    kernel = KERNELS.get(key, lambda: (schedule, args, name))    # compiled once per key, per machine

A key names what a kernel computes (the ATen nodes, their arguments, the input shapes and
dtypes, the tuning records in effect). On a miss in memory, the object code is looked up on
disk under a hash of the key, the host CPU and loopc's own source files (an edited loopc never
loads stale code); on a miss there too, the schedule is lowered and compiled to object code,
which is written to disk (atomically) and loaded. A second process compiling the same model
skips lowering and LLVM entirely.

The folder is ``$LOOPC_CACHE_DIR`` or ``~/.cache/loopc/kernels``; ``LOOPC_CACHE_DIR=""``
turns the disk cache off. A file that cannot be read or written is skipped, never fatal.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import struct
import time
from pathlib import Path

from loopc.errors import LoopcError


class CompiledKernel:
    """A loaded kernel: ``cfunc(*pointers) -> fault code``; ``seconds`` it took to get it."""

    def __init__(self, cfunc, keepalive, name, seconds, from_disk):
        self.cfunc, self._keepalive, self.name = cfunc, keepalive, name
        self.seconds, self.from_disk = seconds, from_disk

    def fault_error(self, code) -> LoopcError:
        return LoopcError(f"{self.name}(): the kernel reported fault code {code} (out of memory for its "
                          "scratch buffers?)")


def cache_dir() -> Path | None:
    """The disk cache's folder, or None when ``LOOPC_CACHE_DIR`` is set empty."""
    value = os.environ.get("LOOPC_CACHE_DIR")
    if value is not None:
        return Path(value) if value.strip() else None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "loopc" / "kernels"


@functools.lru_cache(maxsize=1)
def _fingerprint() -> str:
    """loopc's source files (names, sizes, modification times): code from another loopc never loads."""
    import loopc
    import loopc.schedules
    import loopc.targets
    h = hashlib.sha256()
    for pkg in (loopc, loopc.schedules, loopc.targets):
        root = Path(pkg.__file__).parent
        for path in sorted(root.rglob("*.py")):
            st = path.stat()
            h.update(f"{path.relative_to(root)}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()


def _host() -> str:
    from loopc.target import Target
    return str(Target.parse("llvm"))


class KernelStore:
    """Kernels by key: in memory, then on disk (see the module doc). ``stats``: built, loaded, hits."""

    def __init__(self):
        self._kernels = {}
        self.stats = {"built": 0, "loaded": 0, "hits": 0, "seconds": 0.0}

    def __len__(self):
        return len(self._kernels)

    def get(self, key, declare) -> CompiledKernel:
        """The kernel of ``key``; ``declare()`` gives ``(schedule, args, name)`` when it must be built."""
        k = self._kernels.get(key)
        if k is not None:
            self.stats["hits"] += 1
            return k
        t0 = time.perf_counter()
        path = self._path(key)
        k = self._load(path, t0)
        if k is None:
            k = self._build(declare, path, t0)
        self._kernels[key] = k
        self.stats["loaded" if k.from_disk else "built"] += 1
        self.stats["seconds"] += k.seconds
        return k

    def clear(self):
        """Forget the kernels held in memory (the disk cache stays)."""
        self._kernels.clear()

    # ---------------------------------------------------------------- disk
    @staticmethod
    def _path(key) -> Path | None:
        folder = cache_dir()
        if folder is None:
            return None
        digest = hashlib.sha256(repr((key, _host(), _fingerprint())).encode()).hexdigest()
        return folder / digest[:2] / f"{digest}.kernel"

    @staticmethod
    def _load(path, t0):
        if path is None or not path.is_file():
            return None
        try:
            data = path.read_bytes()
            (n,) = struct.unpack("<I", data[:4])
            meta = json.loads(data[4:4 + n])
            obj = data[4 + n:]
            from loopc.targets.llvm import load_object
            cfunc, engine = load_object(obj, meta["name"], meta["nparams"])
        except Exception:  # noqa: BLE001 - a damaged or foreign file is rebuilt, never fatal
            return None
        return CompiledKernel(cfunc, engine, meta["name"], time.perf_counter() - t0, True)

    @staticmethod
    def _build(declare, path, t0):
        import loopc
        from loopc.targets.llvm import compile_object, load_object
        schedule, args, name = declare()
        func = loopc.lower(schedule, args, name=name)
        obj, _ = compile_object(func)
        cfunc, engine = load_object(obj, func.name, len(func.params))
        if path is not None:
            _write(path, {"name": func.name, "nparams": len(func.params)}, obj)
        return CompiledKernel(cfunc, engine, func.name, time.perf_counter() - t0, False)


def _write(path: Path, meta: dict, obj: bytes) -> None:
    """The kernel file, written whole or not at all (``loopc.runtime.files.atomic_path``; no fsync:
    a kernel lost to a crash is only compiled again)."""
    from loopc.runtime.files import atomic_path
    head = json.dumps(meta).encode()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            Path(tmp).write_bytes(struct.pack("<I", len(head)) + head + obj)
    except (OSError, LoopcError):
        pass          # a read-only or full disk: the kernel still runs, it is just not kept


#: the frontend's kernels, shared by every compiled graph of this process
KERNELS = KernelStore()
