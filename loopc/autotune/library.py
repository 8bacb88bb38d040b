"""Autotune templates for the operator library (``loopc.schedules``), and the tuned-record hook.

Templates (their workloads are what ``loopc tune`` takes as ``--shape``):

    matmul       (M, N, K)                                 schedules.matmul
    dense        (batch, in, out)                          schedules.dense
    conv2d_nchw  (N, C, H, W, K, R, S, stride, padding)    schedules.conv2d_nchw

Each declares its tensors with the library's compute functions (so the stage names are the
ones ``schedules.schedule`` sees) and applies the default CPU template of schedules/cpu.py with
its constants turned into knobs; each knob's first choice is today's default.

The hook (``loopc.schedules.tuned_record_lookup``) maps a library workload to a template
workload and returns the schedule trace of the best record for this CPU: first from an active
``with autotune.apply_history_best(log):``, then from the records shipped with the package
(``loopc/schedules/tuned/<llvm cpu name>.jsonl``). Records tuned on another CPU (name or
features) are not applied: one AutotuneWarning per workload says so.
"""
from __future__ import annotations

import copy
import os
import warnings

import numpy as np

from .. import te
from ..errors import LoopcError
from .dispatcher import RECORD_FAILURES, ApplyConfig, ApplyHistoryBest, AutotuneWarning, current_context, \
    get_config, resolve_target, skip_message, target_key
from .task import get_template, template, workload_key

import loopc.schedules as _S
from loopc.schedules import cpu as _cpu

_DTYPE = "float32"


# --------------------------------------------------------------------------- templates


def _names(s, out):
    """Op names of ``out``'s graph, producers first (placeholders included): what the hook
    uses to rename a trace onto a graph whose tensors are named differently."""
    from loopc.schedule import post_order_ops
    return [op.name for op in post_order_ops([out.op])]


@template("matmul")
def matmul(M, N, K):
    """``schedules.matmul(A[M, K], B[K, N])`` with schedules/cpu.py's schedule_gemm."""
    cfg = get_config()
    cfg.define_knob("tile_rows", [r for r in (4, 2, 6, 8) if r <= M] or [M])
    cfg.define_knob("vec", [16, 8])
    cfg.define_knob("k_tile", [k for k in (0, 128, 256) if k < K])
    cfg.define_knob("parallel", [1, 0])
    cfg.add_flop(2 * M * N * K)
    A = te.placeholder((M, K), dtype=_DTYPE, name="A")
    B = te.placeholder((K, N), dtype=_DTYPE, name="B")
    C = _S.matmul(A, B)
    s = te.create_schedule([C.op])
    _cpu.schedule_gemm(s, s[C], B, tile_rows=cfg["tile_rows"].val, vec=cfg["vec"].val,
                       k_tile=cfg["k_tile"].val, parallel=bool(cfg["parallel"].val))
    return s, [A, B, C]


@template("dense")
def dense(batch, in_features, out_features):
    """``schedules.dense(X[batch, in], W[out, in])`` with schedule_dense (0 = the default tile)."""
    cfg = get_config()
    cfg.define_knob("lanes", [8, 16])
    cfg.define_knob("tile_i", [0, 1, 2, 4, 8])
    cfg.define_knob("tile_o", [0, 1, 2, 4, 5])
    cfg.define_knob("parallel", [1, 0])
    cfg.add_flop(2 * batch * in_features * out_features)
    X = te.placeholder((batch, in_features), dtype=_DTYPE, name="X")
    W = te.placeholder((out_features, in_features), dtype=_DTYPE, name="W")
    Y = _S.dense(X, W)
    s = te.create_schedule([Y.op])
    ti, to = cfg["tile_i"].val, cfg["tile_o"].val
    _cpu.schedule_dense(s, s[Y], lanes=cfg["lanes"].val, i_tiles=(ti,) if ti else (4, 2),
                        o_tiles=(to,) if to else (3, 2), parallel=bool(cfg["parallel"].val))
    return s, [X, W, Y]


@template("conv2d_nchw")
def conv2d_nchw(N, C, H, W, K, R, S, stride, padding):
    """``schedules.conv2d_nchw`` with schedule_conv2d. Config 0 is the library's default
    schedule. A convolution whose default is the direct method (output channels filling whole
    vectors) tunes its register tile (``tile_q`` pixels, 0 = by shape), channel blocks
    (``c_block``, -1 = by window length) and the window unroll, and may fall back to im2col;
    the others tune im2col's knobs (``per_image`` 0 = by the patch matrix's size)."""
    cfg = get_config()
    X = te.placeholder((N, C, H, W), dtype=_DTYPE, name="X")
    Wt = te.placeholder((K, C, R, S), dtype=_DTYPE, name="W")
    Y = _S.conv2d_nchw(X, Wt, stride=stride, padding=padding)
    s = te.create_schedule([Y.op])
    for st in list(s.stages):          # as schedules.schedule does before the template
        if st.op is not Y.op and st.op.tag in ("injective", "bias_add", "pad"):
            st.compute_inline()
    _, _, P, Q = Y.shape
    if _cpu.default_conv2d_method(K, P, Q) == "direct":
        cfg.define_knob("method", ["direct", "im2col"])
        cfg.define_knob("tile_q", [0, 4, 5, 6, 3])
        cfg.define_knob("c_block", [-1, 0, 16, 32])
        cfg.define_knob("unroll_s", [1, 0])
        cfg.define_knob("parallel", [1, 0])
        parallel = bool(cfg["parallel"].val)
        if cfg["method"].val == "im2col":
            _cpu.schedule_conv2d(s, s[Y], method="im2col", parallel=parallel)
        else:
            cb = cfg["c_block"].val
            _cpu.schedule_conv2d(s, s[Y], method="direct", tile_q=cfg["tile_q"].val or None,
                                 c_block=None if cb < 0 or (cb and C % cb) else cb,
                                 unroll_s=bool(cfg["unroll_s"].val), parallel=parallel)
        return s, [X, Wt, Y]
    cfg.define_knob("vec", [16, 8])
    cfg.define_knob("tile_k", [0, 2, 4, 8])
    cfg.define_knob("per_image", [0, 1, 2])       # 0: by the patch matrix's size, 1: per image, 2: per panel
    cfg.define_knob("parallel", [1, 0])
    tk, pi = cfg["tile_k"].val, cfg["per_image"].val
    _cpu.schedule_conv2d(s, s[Y], method="im2col", vec=cfg["vec"].val, k_tiles=(tk,) if tk else (6, 4, 3, 2),
                         per_image=None if pi == 0 else pi == 1, parallel=bool(cfg["parallel"].val))
    return s, [X, Wt, Y]


# --------------------------------------------------------------------------- CUDA templates


def _first(default, choices):
    """``choices`` with ``default`` moved to the front (a knob's first choice is the fallback)."""
    return [default] + [c for c in choices if c != default]


def _gemm_knobs(cfg, M, N, K):
    from loopc.schedules import cuda as _cuda
    auto = _cuda.gemm_config(M, N)
    (bm, bn), (tm, tn) = auto["block"], auto["thread"]
    cfg.define_knob("block_m", _first(bm, (32, 64, 128)))
    cfg.define_knob("block_n", _first(bn, (32, 64, 128)))
    cfg.define_knob("thread_m", _first(tm, (2, 4, 8)))
    cfg.define_knob("thread_n", _first(tn, (2, 4, 8)))
    cfg.define_knob("k_tile", _first(auto["k_tile"], (8, 16, 32)))
    cfg.define_knob("unroll_k", _first(int(auto["unroll_k"]), (0, 1)))
    cfg.define_knob("fetch", _first(auto["fetch"], ("2d", "fuse")))
    cfg.add_flop(2 * M * N * K)
    return dict(block=(cfg["block_m"].val, cfg["block_n"].val), thread=(cfg["thread_m"].val, cfg["thread_n"].val),
                k_tile=cfg["k_tile"].val, unroll_k=bool(cfg["unroll_k"].val), fetch=cfg["fetch"].val)


def _matmul_reference(a, b):
    return (a.astype(np.float64) @ b).astype(np.float32)


def _dense_reference(x, w):
    return (x.astype(np.float64) @ w.T.astype(np.float64)).astype(np.float32)


@template("matmul_cuda", reference=_matmul_reference)
def matmul_cuda(M, N, K):
    """``schedules.matmul`` on the GPU: the shared-memory tiled GEMM with its tiles as knobs
    (block tile, thread tile, k depth of the shared tiles, unroll, how threads fetch a tile)."""
    from loopc.schedules import cuda as _cuda
    cfg = get_config()
    knobs = _gemm_knobs(cfg, M, N, K)
    A = te.placeholder((M, K), dtype=_DTYPE, name="A")
    B = te.placeholder((K, N), dtype=_DTYPE, name="B")
    C = _S.matmul(A, B)
    s = te.create_schedule([C.op])
    _cuda.schedule_matmul(s, s[C], **knobs)
    return s, [A, B, C]


@template("dense_cuda", reference=_dense_reference)
def dense_cuda(batch, in_features, out_features):
    """``schedules.dense`` on the GPU: the tiled GEMM of matmul_cuda on X . W^T."""
    from loopc.schedules import cuda as _cuda
    cfg = get_config()
    knobs = _gemm_knobs(cfg, batch, out_features, in_features)
    X = te.placeholder((batch, in_features), dtype=_DTYPE, name="X")
    W = te.placeholder((out_features, in_features), dtype=_DTYPE, name="W")
    Y = _S.dense(X, W)
    s = te.create_schedule([Y.op])
    _cuda.schedule_dense(s, s[Y], **knobs)
    return s, [X, W, Y]


@template("conv2d_nchw_cuda")
def conv2d_nchw_cuda(N, C, H, W, K, R, S, stride, padding):
    """``schedules.conv2d_nchw`` on the GPU: direct or im2col, output channels per thread,
    threads per block."""
    from loopc.schedules import cuda as _cuda
    cfg = get_config()
    P = (H + 2 * padding - R) // stride + 1
    Q = (W + 2 * padding - S) // stride + 1
    default_method = "im2col" if C * R * S >= _cuda.IM2COL_MIN_CRS else "direct"
    cfg.define_knob("method", _first(default_method, ("direct", "im2col")))
    cfg.define_knob("tile_k", _first(min(_cuda.CONV_TK, K), [t for t in (1, 2, 4, 8, 16) if t <= K]))
    cfg.define_knob("threads", _first(min(_cuda.THREADS, -(-P * Q // 32) * 32), (64, 128, 256)))
    cfg.add_flop(2 * N * K * P * Q * C * R * S)
    X = te.placeholder((N, C, H, W), dtype=_DTYPE, name="X")
    Wt = te.placeholder((K, C, R, S), dtype=_DTYPE, name="W")
    Y = _S.conv2d_nchw(X, Wt, stride=stride, padding=padding)
    s = te.create_schedule([Y.op])
    _cuda.schedule_conv2d(s, s[Y], method=cfg["method"].val, tile_k=cfg["tile_k"].val, threads=cfg["threads"].val)
    return s, [X, Wt, Y]


LIBRARY_TEMPLATES = ("matmul", "dense", "conv2d_nchw", "matmul_cuda", "dense_cuda", "conv2d_nchw_cuda")


# --------------------------------------------------------------------------- workloads


def library_workload(key, target="llvm"):
    """The template workload ``(name, args)`` of a ``schedules.workload_key`` on ``target``
    (the ``_cuda`` templates for a GPU), or None."""
    workload = _cpu_workload(key)
    if workload is not None and str(target).split()[:1] == ["cuda"]:
        return (workload[0] + "_cuda", workload[1])
    return workload


def _cpu_workload(key):
    try:
        tag, inputs, dtype, attrs = key
        attrs = dict(attrs)
        if dtype != _DTYPE or any(dt != _DTYPE for _, dt in inputs):
            return None
        shapes = [tuple(sh) for sh, _ in inputs]
        if tag == "matmul" and len(shapes) == 2:
            (M, K), (_, N) = shapes
            return ("matmul", (M, N, K))
        if tag == "dense" and len(shapes) == 2:
            (B, K), (O, _) = shapes
            return ("dense", (B, K, O))
        if tag == "conv2d_nchw" and len(shapes) == 2:
            (N, C, H, W), (K, _, R, S) = shapes
            st, pad, dil = tuple(attrs["stride"]), tuple(attrs["padding"]), tuple(attrs.get("dilation", (1, 1)))
            if st[0] != st[1] or pad[0] != pad[1] or dil != (1, 1):
                return None
            return ("conv2d_nchw", (N, C, H, W, K, R, S, st[0], pad[0]))
    except (TypeError, ValueError, KeyError):
        return None
    return None


# --------------------------------------------------------------------------- shipped records

TUNED_DIR = os.path.join(os.path.dirname(_S.__file__), "tuned")
_shipped = {}          # directory -> ApplyHistoryBest over every shipped record (all CPUs)
_warned = set()


def shipped_records(directory=None) -> list:
    """Every record shipped in ``loopc/schedules/tuned/*.jsonl`` (all CPUs)."""
    from .record import load_records
    directory = directory or TUNED_DIR
    out = []
    if os.path.isdir(directory):
        for name in sorted(os.listdir(directory)):
            if name.endswith(".jsonl"):
                out.extend(load_records(os.path.join(directory, name)))
    return out


def _shipped_context():
    if TUNED_DIR not in _shipped:
        _shipped[TUNED_DIR] = ApplyHistoryBest(shipped_records(), other_cpu="ignore")
        _shipped[TUNED_DIR].source = f"the records shipped in {TUNED_DIR}"
    return _shipped[TUNED_DIR]


def _candidates(ctx, workload, tkey):
    """The records of ``ctx`` for ``workload`` tuned on ``tkey`` (cpu and features) whose config
    fits the template's current knobs, best first (a generator: the space is collected only
    when there is a record); and the records tuned elsewhere."""
    from .task import collect_space
    recs = [r for r in ctx._by_workload.get(workload_key(workload), []) if not ctx.is_skipped(r)]
    mine = [r for r in recs if target_key(r.target) == tkey]
    others = [r for r in recs if target_key(r.target) != tkey]

    def fitting():
        space = None
        for r in mine:
            if space is None:
                space = collect_space(get_template(workload[0]), workload[1])
            if space.index_of(r.config_entity()) is not None:
                yield r
    return fitting(), others


def _trace_of(record, workload):
    """The record's schedule trace (re-derived from its config when the record has none), with
    the template graph's op names for renaming. The trace is replayed on a fresh schedule of
    the template's graph and lowered: a record whose trace does not replay (edited, or written
    by another loopc) raises here, so that it is skipped rather than applied."""
    import loopc
    tmpl = get_template(workload[0])
    with ApplyConfig(record.config_entity()):
        s, tensors = tmpl(*workload[1])
    trace = record.trace if record.trace is not None else {"version": 1, "steps": s.trace}
    if not isinstance(trace, dict) or not isinstance(trace.get("steps"), list):
        raise LoopcError(f"the record's trace is not {{'version': 1, 'steps': [...]}}: {str(trace)[:100]}")
    trace = copy.deepcopy(trace)
    if record.trace is not None:
        fresh = te.create_schedule([tensors[-1].op]).replay(copy.deepcopy(trace))
        loopc.lower(fresh, list(tensors))
    trace["names"] = _names(s, tensors[-1])
    return trace


def _checked_trace(ctx, record, workload, check):
    """The trace of ``record`` when it replays on the template's graph (else the record is
    skipped for good) and, through ``check``, on the caller's (else it is skipped for this
    call); None when skipped. Each skip is a warning naming the record's file and line."""
    try:
        if id(record) not in ctx.replay_checked:
            ctx.replay_checked[id(record)] = _trace_of(record, workload)
    except RECORD_FAILURES as err:
        ctx.skip(record, workload, err, stacklevel=6)
        return None
    trace = ctx.replay_checked[id(record)]
    if check is not None:
        try:
            check(copy.deepcopy(trace))
        except RECORD_FAILURES as err:
            ctx.warn_once(skip_message(record, workload, err, here=True), stacklevel=6)
            return None
    return copy.deepcopy(trace)


def tuned_record_lookup(key, target="llvm", check=None):
    """The hook of ``schedules.schedule``: the trace of the best record for this library
    workload on this CPU, or None. ``check(trace)``, when given, replays the trace where it
    will be used and raises if it does not apply there. A record whose trace fails either way
    is skipped with a warning naming its file and line, and the next-best record is tried."""
    workload = library_workload(key, target)
    if workload is None:
        return None
    try:
        full = resolve_target(target)
    except Exception:            # pragma: no cover - an unparsable target: no records apply
        return None
    tkey = target_key(full)
    contexts = []
    ctx = current_context()
    if isinstance(ctx, ApplyHistoryBest):
        contexts.append(ctx)
    contexts.append(_shipped_context())
    elsewhere = []
    for c in contexts:
        fitting, others = _candidates(c, workload, tkey)
        for rec in fitting:
            trace = _checked_trace(c, rec, workload, check)
            if trace is not None:
                return trace
        elsewhere += [(c, r) for r in others]
    if elsewhere:
        wkey = (workload_key(workload), tkey)
        if wkey not in _warned:
            _warned.add(wkey)
            c, r = elsewhere[0]
            warnings.warn(f"autotune: the records for {workload[0]}{tuple(workload[1])!r} in {c.source} were tuned "
                          f"on CPU '{r.cpu}' (or other features), not this machine's '{tkey[1]}': not applied. "
                          f"Tune it here with `loopc tune {workload[0]} --shape "
                          f"{' '.join(map(str, workload[1]))} --log FILE`.", AutotuneWarning, stacklevel=4)
    return None


def install():
    """Make ``schedules.schedule`` consult tuned records (idempotent)."""
    _S.tuned_record_lookup = tuned_record_lookup


install()
