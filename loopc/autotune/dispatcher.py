"""Which config a template gets: dispatch contexts and ``get_config()``.

There is no process-global "current config". A template wrapper asks the innermost active
dispatch context (a ``contextvars.ContextVar`` set only by ``with``-blocks) for the config of
its workload, and makes that config visible to ``get_config()`` for the duration of the call:

    with autotune.apply_history_best("matmul.jsonl"):   # ApplyHistoryBest
        s, args = matmul(1024, 1024, 1024)              # template picks its best record

Tuners and workers use :class:`ApplyConfig` (one fixed config); ``create_task`` collects the
space with an ApplyConfig whose "config" is the ConfigSpace itself. A context may also carry
the target its templates schedule for (:func:`current_target`): the operator library's
templates read vector widths and register counts from it.
"""
from __future__ import annotations

import warnings
from contextvars import ContextVar

from ..errors import LoopcError
from ..target import Target, key_of, kind_of
from .record import Record, load_records
from .space import ConfigSpace
from .workload import AutotuneWarning, workload_key  # noqa: F401 - AutotuneWarning re-exported

_CONFIG: ContextVar = ContextVar("loopc_autotune_config", default=None)
_DISPATCH: ContextVar = ContextVar("loopc_autotune_dispatch", default=None)


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


def current_target(kind: str) -> Target:
    """The Target a template of target ``kind`` ("llvm" or "cuda") schedules for: the innermost
    dispatch context's, when it has one of that kind, else the default of the kind (this
    machine's CPU; the CUDA defaults)."""
    ctx = _DISPATCH.get()
    target = getattr(ctx, "target", None)
    if target is not None and kind_of(target) == kind:
        return Target.parse(target)
    return Target.parse(kind)


class DispatchContext:
    """Answers "which config does template T use for workload W?" while active (``with``).
    ``target`` (a string or Target, or None) is what templates inside schedule for."""

    def __init__(self, target=None):
        self._tokens = []
        self.target = target

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
    """Every template call inside the block uses ``config`` (a ConfigEntity, or a ConfigSpace
    while a task collects its space), scheduling for ``target`` when given."""

    def __init__(self, config, target=None):
        super().__init__(target)
        self.config = config

    def query(self, workload, template):
        return self.config


#: (kind, cpu name or GPU arch, sorted enabled features) of a target string: what records match on
target_key = key_of


def collect_space(template, args, target=None) -> ConfigSpace:
    """The config space of ``template`` for workload ``args`` (scheduling for ``target``): the
    template runs once with the ConfigSpace as its config, each knob at its first choice."""
    space = ConfigSpace()
    with ApplyConfig(space, target=target):
        template(*args)
    return space


def resolve_target(target) -> str:
    """The full target string of ``target`` on this machine (CPU name and features; a CUDA
    target without ``-arch`` gets the current GPU's, when there is one: records name the GPU
    generation)."""
    parsed = Target.parse("llvm" if target is None else target)
    if parsed.kind == "cuda" and parsed.arch is None:
        from loopc.targets.cuda import device
        if device.gpu_available():
            import dataclasses
            parsed = dataclasses.replace(parsed, arch=tuple(device.cuda().get_current_device().compute_capability))
    return str(parsed)


class ApplyHistoryBest(DispatchContext):
    """Templates inside the block take the best measured config of their workload on this
    target. With no record for a workload: one visible warning naming the workload and how to
    tune it, then the template's fallback config (each knob's first choice). Records tuned on
    another CPU are used only with a warning (``other_cpu="warn"``), or ignored (``"ignore"``).
    """

    def __init__(self, records, target=None, other_cpu="warn"):
        super().__init__()
        if other_cpu not in ("warn", "ignore"):
            raise LoopcError(f"other_cpu must be 'warn' or 'ignore', got {other_cpu!r}")
        self.other_cpu = other_cpu
        self.target = resolve_target(target)
        self._target_key = key_of(self.target)
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
        self.replay_checked = {}   # id(record) -> its trace, checked (loopc.schedules.records' cache)
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
        key = workload_key(workload)
        if key not in self._spaces:
            self._spaces[key] = collect_space(template, workload[1], target=self.target)
        return self._spaces[key]

    def records(self, workload, tkey=None):
        """The usable records of ``workload`` (skipped ones left out), best first, in two lists:
        those tuned on target key ``tkey`` (``key_of``; default: this context's target) and
        those tuned elsewhere."""
        tkey = self._target_key if tkey is None else tkey
        recs = [r for r in self._by_workload.get(_key(workload), []) if id(r) not in self._rejected]
        return [r for r in recs if key_of(r.target) == tkey], [r for r in recs if key_of(r.target) != tkey]

    def fitting(self, workload, template, records):
        """The records among ``records`` whose config is a point of ``template``'s space for
        ``workload`` (lazily: the space is collected only when a record is asked about)."""
        for r in records:
            if template is None or self._space(template, workload).index_of(r.config_entity()) is not None:
                yield r

    def best_record(self, workload, template=None):
        """The record a template call for ``workload`` would use, or None."""
        return self._pick(workload, template)[0]

    def _pick(self, workload, template):
        key = _key(workload)
        if key in self._cache:
            return self._cache[key]
        mine, others = self.records(workload)
        chosen = next(self.fitting(workload, template, mine), None)
        note = None
        if chosen is None and others:
            other = next(self.fitting(workload, template, others), None)
            if other is not None:
                theirs, ours = key_of(other.target)[1], self._target_key[1]
                if self.other_cpu == "warn":
                    chosen = other
                    note = (f"autotune: the records for workload {_fmt(workload)} in {self.source} were tuned on "
                            f"CPU '{theirs}' (other features), not this machine's '{ours}': using the best of them. "
                            f"Tune on this machine for the best speed.")
                else:
                    note = (f"autotune: the records for workload {_fmt(workload)} in {self.source} were tuned on "
                            f"CPU '{theirs}', not this machine's '{ours}': ignored (other_cpu='ignore').")
        if chosen is None and (mine or others) and not note:
            note = (f"autotune: {len(mine) + len(others)} record(s) for workload {_fmt(workload)} in {self.source} "
                    "do not match the template's current knobs (the template changed): ignored.")
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
    return workload_key(workload)


def _fmt(workload):
    name, args = workload
    return f"{name}{tuple(args)!r}"


def apply_history_best(records, target=None, other_cpu="warn"):
    """A context manager: templates called inside take the best record of their workload from
    ``records`` (a JSON Lines log path, or records from ``load_records``)."""
    return ApplyHistoryBest(records, target=target, other_cpu=other_cpu)
