"""Schedule -> loop IR, as one explicit list of passes.

Set ``LOOPC_DUMP_IR=1`` (or call ``lower(..., dump=True)``) to print the IR after each pass.
"""
from __future__ import annotations

import os
import sys

from ..ir.stmt import LoweredFunc
from .loop_nest import schedule_to_loops
from .passes import fit_loops_to_guards, flatten_buffers, partition_tails, privatize_lane_buffers, simplify, unroll_loops

#: The lowering pipeline after the loop nests are built, top to bottom.
PASSES = (
    ("flatten_buffers", flatten_buffers),   # T[i, j] -> T[i*N + j]
    ("privatize_lane_buffers", privatize_lane_buffers),  # buffers inside a vector loop: one per lane
    ("simplify", simplify),                 # fold constants, canonical index math, drop proven guards
    ("partition_tails", partition_tails),   # loops split where tail guards start to matter
    ("simplify_partitions", simplify),      # ... so the main parts lose their guards
    ("fit_loops_to_guards", fit_loops_to_guards),   # ... and a tail loop runs only its live iterations
    ("unroll_loops", unroll_loops),         # unrolled loops -> copies with constant indices
    ("simplify_after_unroll", simplify),
)


def lower(schedule, args, name: str = "main", dump: bool | None = None, target=None) -> LoweredFunc:
    """Lower ``schedule`` to a LoweredFunc whose parameters are ``args`` in order; with a
    ``target``, its backend's own passes (``loopc.backend``) run after these.

    ``str(result)`` is a readable loop nest.
    """
    if dump is None:
        dump = os.environ.get("LOOPC_DUMP_IR", "") not in ("", "0")
    func = schedule_to_loops(schedule, args, name)
    if dump:
        print(f"# ---- after schedule_to_loops\n{func}", file=sys.stderr)
    simplified = None     # simplify is idempotent: a pass that changed nothing needs no second one
    for pass_name, fn in PASSES:
        if fn is simplify and func is simplified:
            continue
        func = fn(func)
        if fn is simplify:
            simplified = func
        if dump:
            print(f"# ---- after {pass_name}\n{func}", file=sys.stderr)
    if target is not None:
        from ..backend import run_passes
        func = run_passes(func, target, dump)
    return func


__all__ = ["lower", "PASSES"]
