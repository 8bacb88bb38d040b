"""Tuning records: JSON Lines, one measurement per line.

    {"schema": 1, "workload": ["gemm", [64, 64, 64]],
     "target": "llvm -mtriple=x86_64-unknown-linux-gnu -mcpu=znver3 -mattr=+avx2,...",
     "config": {"index": 17, "knobs": [["tile_i", "sp", [8, 2, 4]], ...], "trace": {...}},
     "result": {"costs": [1.2e-05, 1.1e-05, 1.1e-05], "error": null, "build_seconds": 0.12},
     "flop": 524288, "timestamp": 1764000000.0, "loopc_version": "0.1.0", "tuner": "ModelTuner"}

An error has ``"costs": []`` and ``"error": {"kind": "crash", "stage": "run", "message": ...}``.
Lines are parsed with ``json`` only (never eval'd or unpickled); a torn last line (the tuner
was killed while writing) and garbage lines (bad JSON, nesting deeper than ``MAX_DEPTH``, an
unparsable target string ...) are skipped with a warning naming ``file:line``. A record loaded
from a file remembers that place (``Record.source``, ``Record.line``) so that a record whose
schedule later fails to replay can be named the same way. A log that cannot be read or
written (a directory, no permission) raises :class:`RecordError`.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import statistics
import time
import warnings
from dataclasses import dataclass, field

from ..errors import LoopcError
from ..target import key_of as target_key
from .space import ConfigEntity
from .workload import AutotuneWarning, workload_from_json, workload_key

SCHEMA_VERSION = 1
#: the deepest JSON nesting a record line may have (a real record nests about 8 levels)
MAX_DEPTH = 64


class RecordError(LoopcError):
    """A tuning log that cannot be read or appended to (a directory, a missing or read-only
    folder ...)."""


@dataclass
class Record:
    workload: tuple
    target: str
    config: dict
    costs: tuple = ()
    error: dict | None = None
    flop: int = 0
    timestamp: float = field(default_factory=time.time)
    loopc_version: str = ""
    build_seconds: float = 0.0
    tuner: str = ""
    source: str = field(default="", compare=False, repr=False)   # the log it was loaded from
    line: int = field(default=0, compare=False, repr=False)      # its line number there (1-based)

    @property
    def where(self) -> str:
        """``file:line`` of a record loaded from a log, else a description of the record."""
        if self.source:
            return f"{self.source}:{self.line}" if self.line else self.source
        return f"the record of config {self.config.get('index')!r} (not loaded from a file)"

    @property
    def ok(self) -> bool:
        return self.error is None and len(self.costs) > 0

    @property
    def error_kind(self):
        return None if self.error is None else self.error.get("kind")

    @property
    def mean_cost(self) -> float:
        return sum(self.costs) / len(self.costs) if self.ok else math.inf

    @property
    def cost(self) -> float:
        """The median of the costs (robust to one slow repeat on a busy machine); inf on error."""
        return statistics.median(self.costs) if self.ok else math.inf

    @property
    def gflops(self) -> float:
        return self.flop / self.cost / 1e9 if self.ok and self.cost > 0 else 0.0

    @property
    def workload_key(self) -> str:
        return workload_key(self.workload)

    @property
    def trace(self):
        return self.config.get("trace")

    @property
    def cpu(self) -> str:
        return target_key(self.target)[1]

    def config_entity(self) -> ConfigEntity:
        return ConfigEntity.from_json(self.config)

    def to_json(self) -> dict:
        return {"schema": SCHEMA_VERSION, "workload": [self.workload[0], list(_listify(self.workload[1]))],
                "target": self.target, "config": self.config,
                "result": {"costs": list(self.costs), "error": self.error, "build_seconds": self.build_seconds},
                "flop": self.flop, "timestamp": self.timestamp, "loopc_version": self.loopc_version,
                "tuner": self.tuner}

    def dumps(self) -> str:
        return json.dumps(self.to_json(), separators=(",", ":"), allow_nan=False)


def _listify(x):
    return [_listify(v) for v in x] if isinstance(x, (list, tuple)) else x


def make_record(inp, res, tuner="") -> Record:
    """The record of one measurement (a MeasureInput and its MeasureResult)."""
    from .. import __version__
    config = inp.config.to_json()
    if res.trace is not None:
        config["trace"] = res.trace
    return Record(workload=inp.task.workload, target=res.target or inp.task.target_string, config=config,
                  costs=tuple(float(c) for c in res.costs), error=res.error, flop=int(inp.task.flop),
                  timestamp=float(res.timestamp), loopc_version=__version__,
                  build_seconds=float(res.build_seconds), tuner=tuner)


def _num(x, what):
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        raise ValueError(f"{what} must be a finite number, got {x!r}")
    return x


def _depth_exceeds(obj, limit) -> bool:
    """Whether JSON value ``obj`` nests deeper than ``limit`` (iterative: no recursion)."""
    stack = [(obj, 1)]
    while stack:
        x, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(x, dict):
            stack.extend((v, depth + 1) for v in x.values())
        elif isinstance(x, list):
            stack.extend((v, depth + 1) for v in x)
    return False


def decode(line: str) -> Record:
    """Parse one record line; raises ValueError when it is not a valid record."""
    try:
        d = json.loads(line)
    except RecursionError:
        raise ValueError(f"JSON nested too deeply (more than {MAX_DEPTH} levels)") from None
    if not isinstance(d, dict):
        raise ValueError("a record is a JSON object")
    if _depth_exceeds(d, MAX_DEPTH):
        raise ValueError(f"JSON nested too deeply (more than {MAX_DEPTH} levels)")
    if d.get("schema") != SCHEMA_VERSION:
        raise ValueError(f"schema version {d.get('schema')!r} is not {SCHEMA_VERSION} (a newer or older loopc wrote it)")
    try:
        workload = workload_from_json(d["workload"])
    except LoopcError as err:
        raise ValueError(str(err)) from None
    target, config, result = d["target"], d["config"], d["result"]
    if not isinstance(target, str) or not isinstance(config, dict) or not isinstance(result, dict):
        raise ValueError("target must be a string, config and result objects")
    try:
        target_key(target)
    except LoopcError as err:
        raise ValueError(str(err)) from None
    ConfigEntity.from_json(config)        # validates the knobs
    costs = tuple(_num(c, "a cost") for c in result.get("costs", []))
    error = result.get("error")
    if error is not None and not (isinstance(error, dict) and isinstance(error.get("kind"), str)):
        raise ValueError("error must be null or an object with a 'kind'")
    if error is None and not costs:
        raise ValueError("a record needs costs or an error")
    return Record(workload=workload, target=target, config=config, costs=costs, error=error,
                  flop=int(_num(d.get("flop", 0), "flop")), timestamp=float(_num(d.get("timestamp", 0), "timestamp")),
                  loopc_version=str(d.get("loopc_version", "")),
                  build_seconds=float(_num(result.get("build_seconds", 0.0), "build_seconds")),
                  tuner=str(d.get("tuner", "")))


def load_records(path, warn=True) -> list:
    """Every valid record of a JSON Lines log, in file order (a missing file has none). A torn
    last line and garbage lines are skipped with a warning naming ``file:line``; a path that
    is a directory or cannot be read raises RecordError."""
    path = os.fspath(path)
    if not os.path.exists(path):
        return []
    data = _read(path)
    text = data.decode("utf-8", errors="replace")
    lines = text.split("\n")
    torn_possible = not text.endswith("\n")
    records, bad = [], []
    last = max((k for k, ln in enumerate(lines) if ln.strip()), default=-1)
    for k, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rec = decode(line)
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError, LoopcError) as err:
            bad.append((k + 1, k == last and torn_possible, err))
            continue
        rec.source, rec.line = path, k + 1
        records.append(rec)
    if warn:
        _warn_bad_lines(path, bad)
    return records


def _read(path) -> bytes:
    """The bytes of the log ``path``; RecordError when it is a directory or unreadable."""
    if os.path.isdir(path):
        raise RecordError(f"the tuning log {path!r} is a directory; give a file in it, e.g. "
                          f"{os.path.join(path, 'tune.jsonl')!r}")
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as err:
        raise RecordError(f"cannot read the tuning log {path!r}: {err.strerror or err}; check the path and its "
                          "permissions") from None


def _short(err, limit=200) -> str:
    text = str(err).replace("\n", " ")
    return text if len(text) <= limit else text[:limit] + " ..."


def _warn_bad_lines(path, bad):
    for lineno, torn, err in bad[:5]:
        if torn:
            warnings.warn(f"autotune: {path}:{lineno}: torn last line skipped (the tuner was probably "
                          "killed while writing it)", AutotuneWarning, stacklevel=3)
        else:
            warnings.warn(f"autotune: {path}:{lineno}: not a valid record, skipped ({_short(err)})",
                          AutotuneWarning, stacklevel=3)
    if len(bad) > 5:
        warnings.warn(f"autotune: {path}: {len(bad) - 5} more invalid lines skipped", AutotuneWarning,
                      stacklevel=3)


def check_writable(path):
    """Raise RecordError now (before any tuning work) when records cannot be appended to
    ``path``: it is a directory, its folder cannot be created, or it is not writable. A missing
    folder is created, as append_record would."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise RecordError(f"the tuning log {path!r} is a directory; give a file in it, e.g. "
                          f"{os.path.join(path, 'tune.jsonl')!r}")
    existed = os.path.exists(path)
    try:
        if os.path.dirname(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "ab"):
            pass
    except OSError as err:
        raise RecordError(f"cannot write the tuning log {path!r}: {err.strerror or err}; give a path in a "
                          "writable folder") from None
    if not existed:
        try:
            os.remove(path)            # nothing measured yet: leave no empty log behind
        except OSError:
            pass


def append_record(path, record: Record):
    """Append one line and flush it to the OS (a new line starts after a torn one)."""
    path = os.fspath(path)
    line = record.dumps() + "\n"
    try:
        if os.path.dirname(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "ab+") as f:
            f.seek(0, os.SEEK_END)
            if f.tell() > 0:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    line = "\n" + line
            f.write(line.encode())
            f.flush()
            os.fsync(f.fileno())
    except OSError as err:
        kind = "is a directory" if os.path.isdir(path) else (err.strerror or str(err))
        raise RecordError(f"cannot append to the tuning log {path!r}: {kind}; give a writable file path") from None


def save_records(path, records):
    """Write ``records`` to ``path`` (replacing it atomically: a crash leaves the old file)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise RecordError(f"cannot write records to {path!r}: it is a directory; give a file path")
    tmp = path + ".tmp"
    try:
        with open(tmp, "w") as f:
            for r in records:
                f.write(r.dumps() + "\n")
        os.replace(tmp, path)
    except OSError as err:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise RecordError(f"cannot write records to {path!r}: {err.strerror or err}; give a writable file path") \
            from None


def best_by_workload(records) -> dict:
    """``{(workload key, cpu key): best record}`` over the successful records."""
    best = {}
    for r in records:
        if not r.ok:
            continue
        key = (r.workload_key, target_key(r.target))
        if key not in best or r.cost < best[key].cost:
            best[key] = r
    return best


_HINTS = {"timeout": "give each candidate more time (--timeout / timeout=)",
          "build_error": "the template or the target cannot build these configs",
          "wrong_answer": "the kernels disagree with the reference (--no-check / check_correctness=False skips it)",
          "crash": "a worker process died while building or running a candidate",
          "runtime_error": "loading or calling the kernel failed"}


def failure_summary(records) -> str:
    """Why every one of ``records`` (all failed) failed, in two lines: the most common error
    kind with its count and one of its messages."""
    failed = [r for r in records if not r.ok]
    if not failed:
        return "no measurement was made"
    kinds = {}
    for r in failed:
        kinds.setdefault(r.error_kind or "unknown", []).append(r)
    kind, recs = max(kinds.items(), key=lambda kv: len(kv[1]))
    message = "; ".join(line.strip() for line in str((recs[-1].error or {}).get("message", "")).splitlines()
                        if line.strip())
    if len(message) > 300:
        message = message[:300] + " ..."
    hint = _HINTS.get(kind)
    return (f"all {len(failed)} measured trials failed; most often {kind} ({len(recs)} of {len(failed)})"
            f"{': ' + hint if hint else ''}\n  last {kind}: {message or '(no message)'}")


def pick_best(in_path, out_path) -> list:
    """Write the best record of each workload and target of ``in_path`` to ``out_path`` (a
    compact log to ship or apply); returns those records."""
    best = list(best_by_workload(load_records(in_path)).values())
    best.sort(key=lambda r: (r.workload_key, r.target))
    save_records(out_path, best)
    return best
