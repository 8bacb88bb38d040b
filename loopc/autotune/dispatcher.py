"""Which config a template gets: dispatch contexts and ``get_config()``.

There is no process-global "current config". A template wrapper asks the innermost active
dispatch context (a ``contextvars.ContextVar`` set only by ``with``-blocks) for the config of
its workload, and makes that config visible to ``get_config()`` for the duration of the call:

    with autotune.apply_history_best("matmul.jsonl"):   # ApplyHistoryBest
        s, args = matmul(1024, 1024, 1024)              # template picks its best record

Tuners and workers use :class:`ApplyConfig` (one fixed config); ``create_task`` collects the
space with a context whose "config" is the ConfigSpace itself.
"""
from __future__ import annotations

import shlex
import warnings
from contextvars import ContextVar

from ..errors import BuildError, LoopcError

_CONFIG: ContextVar = ContextVar("loopc_autotune_config", default=None)
_DISPATCH: ContextVar = ContextVar("loopc_autotune_dispatch", default=None)


class AutotuneWarning(UserWarning):
    """A visible warning from the autotuner (missing records, records of another CPU ...)."""


def get_config():
    """The config of the template call in progress (a ConfigSpace while a task collects its
    space, a ConfigEntity otherwise). Only valid inside a template run by a dispatch context."""
    cfg = _CONFIG.get()
    if cfg is None:
        raise LoopcError(
            "autotune.get_config() is only valid inside a template (a function decorated with "
            "@autotune.template) that runs under autotune: autotune.create_task(...), a tuner, or "
            "`with autotune.apply_history_best(log):`")
    return cfg


def current_context():
    """The innermost active dispatch context, or None."""
    return _DISPATCH.get()


class DispatchContext:
    """Answers "which config does template T use for workload W?" while active (``with``)."""

    def __init__(self):
        self._tokens = []

    def query(self, workload, template):  # pragma: no cover - overridden
        raise NotImplementedError

    def reject(self, workload, config, err) -> bool:
        """A template call with ``config`` (from :meth:`query`) raised ``err``: True when the
        context dropped the record it came from and the call may be retried."""
        return False

    def __enter__(self):
        self._tokens.append(_DISPATCH.set(self))
        return self

    def __exit__(self, *exc):
        _DISPATCH.reset(self._tokens.pop())
        return False


#: what a record's config or schedule trace can make a template or a replay raise (a record is
#: untrusted input): the record is skipped, not the program
RECORD_FAILURES = (LoopcError, KeyError, TypeError, ValueError, AttributeError, IndexError, RecursionError,
                   ArithmeticError)


def run_template(template, workload, args):
    """Call ``template``'s function with the config the active context picks for ``workload``.
    When a config taken from a tuning record makes the template fail, the context skips that
    record (with a warning naming its file and line) and the call is retried with the next."""
    ctx = _DISPATCH.get()
    if ctx is None:
        raise LoopcError(
            f"template {workload[0]!r} was called outside a tuning or apply context, so it has no config. "
            f"Use `with autotune.apply_history_best(log):` around the call (or autotune.ApplyConfig(cfg), "
            f"or tune it: autotune.create_task({workload[0]!r}, {list(workload[1])!r}))")
    while True:
        cfg = ctx.query(workload, template)
        token = _CONFIG.set(cfg)
        try:
            return template.__wrapped__(*args)
        except RECORD_FAILURES as err:
            if not ctx.reject(workload, cfg, err):
                raise
        finally:
            _CONFIG.reset(token)


def skip_message(record, workload, err, here=False) -> str:
    """The warning for a record whose schedule does not apply: where it is, and why. ``here``:
    it replays on its template's graph but not on the caller's (other tensor names or wiring)."""
    why = f"{type(err).__name__}: {err}".replace("\n", " ")
    if len(why) > 300:
        why = why[:300] + " ..."
    if here:
        return (f"autotune: {record.where}: the tuned schedule of this record for {_fmt(workload)} does not apply "
                f"to this graph ({why}); skipped here, using the next-best record or the default schedule.")
    return (f"autotune: {record.where}: the tuned schedule of this record for {_fmt(workload)} does not apply "
            f"({why}); record skipped, using the next-best record or the default schedule. Delete that line "
            f"or tune again (`loopc tune {workload[0]} ...`).")


class ApplyConfig(DispatchContext):
    """Every template call inside the block uses ``config`` (a ConfigEntity or ConfigSpace)."""

    def __init__(self, config):
        super().__init__()
        self.config = config

    def query(self, workload, template):
        return self.config


def target_key(target: str):
    """(cpu name, sorted enabled features) of a target string; records match on it. A
    string that does not split (an unbalanced quote) raises BuildError."""
    try:
        parts = shlex.split(str(target))
    except ValueError as err:
        text = str(target) if len(str(target)) <= 80 else str(target)[:80] + "..."
        raise BuildError(f"malformed target string ({err}: an unbalanced quote?) {text!r}: write it as "
                         "'llvm -mcpu=NAME -mattr=+f,...'") from None
    cpu, feats = "", ""
    for p in parts[1:]:
        key, _, val = p.partition("=")
        if key == "-mcpu":
            cpu = val
        elif key == "-mattr":
            feats = val
        elif key == "-arch":           # cuda: the compute capability stands for the CPU name
            cpu = val
    enabled = tuple(sorted(f[1:] for f in feats.split(",") if f.startswith("+")))
    return (parts[0] if parts else "", cpu, enabled)


def resolve_target(target) -> str:
    """The full target string (CPU name and features) of ``target`` on this machine."""
    target = "llvm" if target is None else target
    kind = str(target).split()[0] if str(target).strip() else ""
    if kind == "llvm":
        from loopc.targets.llvm import parse_target
        return str(parse_target(target))
    if kind == "cuda":
        from loopc.targets.cuda import device, parse_target
        tgt = parse_target(target)
        if tgt.arch is None and device.gpu_available():     # records name the GPU generation
            import dataclasses
            tgt = dataclasses.replace(tgt, arch=tuple(device.cuda().get_current_device().compute_capability))
        return str(tgt)
    return str(target)


class ApplyHistoryBest(DispatchContext):
    """Templates inside the block take the best measured config of their workload on this
    target. With no record for a workload: one visible warning naming the workload and how to
    tune it, then the template's fallback config (each knob's first choice). Records tuned on
    another CPU are used only with a warning (``other_cpu="warn"``), or ignored (``"ignore"``).
    """

    def __init__(self, records, target=None, other_cpu="warn"):
        from .record import Record, load_records
        super().__init__()
        if other_cpu not in ("warn", "ignore"):
            raise LoopcError(f"other_cpu must be 'warn' or 'ignore', got {other_cpu!r}")
        self.other_cpu = other_cpu
        self.target = resolve_target(target)
        self._target_key = target_key(self.target)
        if isinstance(records, (str, bytes)) or hasattr(records, "__fspath__"):
            self.source = str(records)
            records = load_records(records)
        else:
            records = list(records)
            self.source = "the given records"
        self._by_workload = {}
        for r in records:
            if not isinstance(r, Record):
                raise LoopcError(f"apply_history_best: expected records (autotune.load_records), got {r!r}")
            if r.ok:
                self._by_workload.setdefault(r.workload_key, []).append(r)
        for rs in self._by_workload.values():
            rs.sort(key=lambda r: r.cost)
        self._cache = {}
        self._spaces = {}
        self._warned = set()
        self._rejected = {}   # id(record) -> record whose schedule did not apply (skipped)
        self._said = set()    # warnings given once
        self.replay_checked = {}   # id(record) -> its trace, checked (loopc.autotune.library's cache)
        self.fallbacks = []   # workloads that got no record (inspectable)

    def warn_once(self, message, stacklevel=3):
        """One AutotuneWarning per distinct ``message`` in this context."""
        if message not in self._said:
            self._said.add(message)
            warnings.warn(message, AutotuneWarning, stacklevel=stacklevel)

    def skip(self, record, workload, err, stacklevel=3):
        """Never use ``record`` again in this context; one warning names its file:line and why."""
        if id(record) in self._rejected:
            return
        self._rejected[id(record)] = record
        self._cache.pop(_key(workload), None)
        warnings.warn(skip_message(record, workload, err), AutotuneWarning, stacklevel=stacklevel)

    def is_skipped(self, record) -> bool:
        return id(record) in self._rejected

    def reject(self, workload, config, err) -> bool:
        chosen = self._cache.get(_key(workload), (None, None))[0]
        if chosen is None or id(chosen) in self._rejected:
            return False                 # the fallback config failed: not a record's fault
        self.skip(chosen, workload, err, stacklevel=5)
        return True

    def _space(self, template, workload):
        from .task import collect_space, workload_key
        key = workload_key(workload)
        if key not in self._spaces:
            self._spaces[key] = collect_space(template, workload[1])
        return self._spaces[key]

    def best_record(self, workload, template=None):
        """The record a template call for ``workload`` would use, or None."""
        return self._pick(workload, template)[0]

    def _pick(self, workload, template):
        from .task import workload_key
        key = workload_key(workload)
        if key in self._cache:
            return self._cache[key]
        recs = [r for r in self._by_workload.get(key, []) if id(r) not in self._rejected]
        space = self._space(template, workload) if template is not None and recs else None

        def fits(r):
            if space is None:
                return True
            return space.index_of(r.config_entity()) is not None

        mine = [r for r in recs if target_key(r.target) == self._target_key]
        others = [r for r in recs if target_key(r.target) != self._target_key]
        chosen = next((r for r in mine if fits(r)), None)
        note = None
        if chosen is None and others:
            other = next((r for r in others if fits(r)), None)
            if other is not None:
                theirs, ours = target_key(other.target)[1], self._target_key[1]
                if self.other_cpu == "warn":
                    chosen = other
                    note = (f"autotune: the records for workload {_fmt(workload)} in {self.source} were tuned on "
                            f"CPU '{theirs}' (other features), not this machine's '{ours}': using the best of them. "
                            f"Tune on this machine for the best speed.")
                else:
                    note = (f"autotune: the records for workload {_fmt(workload)} in {self.source} were tuned on "
                            f"CPU '{theirs}', not this machine's '{ours}': ignored (other_cpu='ignore').")
        if chosen is None and recs and not note:
            note = (f"autotune: {len(recs)} record(s) for workload {_fmt(workload)} in {self.source} do not match "
                    "the template's current knobs (the template changed): ignored.")
        self._cache[key] = (chosen, note)
        return chosen, note

    def query(self, workload, template):
        chosen, note = self._pick(workload, template)
        key = workload[0], workload[1]
        if note and key not in self._warned:
            warnings.warn(note, AutotuneWarning, stacklevel=4)
        if chosen is not None:
            self._warned.add(key)
            return chosen.config_entity()
        if key not in self._warned:
            warnings.warn(
                f"autotune: no tuning record for workload {_fmt(workload)} on CPU '{self._target_key[1]}' in "
                f"{self.source}; the template uses its fallback config, which can be far slower. Tune it with "
                f"`loopc tune {workload[0]} ...` or autotune.create_task({workload[0]!r}, {list(workload[1])!r}) "
                f"and a tuner with callbacks=[autotune.log_to_file({self.source!r})].",
                AutotuneWarning, stacklevel=4)
            self._warned.add(key)
        if workload not in self.fallbacks:
            self.fallbacks.append(workload)
        return self._space(template, workload).fallback()


def _key(workload):
    from .task import workload_key
    return workload_key(workload)


def _fmt(workload):
    name, args = workload
    return f"{name}{tuple(args)!r}"


def apply_history_best(records, target=None, other_cpu="warn"):
    """A context manager: templates called inside take the best record of their workload from
    ``records`` (a JSON Lines log path, or records from ``load_records``)."""
    return ApplyHistoryBest(records, target=target, other_cpu=other_cpu)
