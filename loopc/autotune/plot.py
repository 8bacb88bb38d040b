"""Tuning curves: the best GFLOP/s found after each trial, from a log."""
from __future__ import annotations

import os

from ..errors import LoopcError
from .record import load_records


def tuning_curves(records, workload_key=None):
    """``{(workload key, tuner name): [best GFLOP/s after trial 1, 2, ...]}`` in log order."""
    curves = {}
    for r in records:
        if workload_key is not None and r.workload_key != workload_key:
            continue
        key = (r.workload_key, r.tuner or "?")
        best = curves[key][-1] if key in curves else 0.0
        curves.setdefault(key, []).append(max(best, r.gflops))
    return curves


def plot_tuning_curve(log_path, png_path, workload=None, title=None):
    """Write a PNG of best-so-far GFLOP/s against trials, one line per workload and tuner.

    Needs matplotlib (``pip install 'loopc[plot]'``); ``workload`` (a workload tuple) picks one.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:
        raise LoopcError("plot_tuning_curve needs matplotlib: pip install 'loopc[plot]' "
                         "(or pip install matplotlib)") from err
    from .task import workload_key as _wk
    records = load_records(log_path)
    curves = tuning_curves(records, _wk(workload) if workload is not None else None)
    if not curves:
        raise LoopcError(f"no records to plot in {os.fspath(log_path)}")
    fig = Figure(figsize=(7, 4.2), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    several = len({wk for wk, _ in curves}) > 1
    for (wk, tuner), ys in curves.items():
        label = f"{tuner} {wk}" if several else tuner
        ax.plot(range(1, len(ys) + 1), ys, label=label, drawstyle="steps-post")
    ax.set_xlabel("trials")
    ax.set_ylabel("best GFLOP/s so far")
    ax.set_title(title or f"tuning curve: {os.path.basename(os.fspath(log_path))}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.fspath(png_path))
    return os.fspath(png_path)
