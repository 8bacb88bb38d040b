"""AutoTVM-style tuning: templates, config spaces, tuners, isolated measurement, records.

    from loopc import autotune

    @autotune.template("matmul")
    def matmul(M, N, K):
        cfg = autotune.get_config()
        ...                                   # cfg.define_split / define_knob ..., then apply
        return s, [A, B, C]

    task = autotune.create_task("matmul", (1024, 1024, 1024))
    autotune.ModelTuner(task).tune(64, autotune.measure_option(),
                                   callbacks=[autotune.log_to_file("matmul.jsonl")])
    with autotune.apply_history_best("matmul.jsonl"):
        s, args = matmul(1024, 1024, 1024)

The package is split by concern, as TVM's is:

    space.py       knobs, ConfigSpace, ConfigEntity
    task.py        @template, create_task, Task, workloads
    dispatcher.py  get_config, ApplyConfig, apply_history_best (context managers only)
    tuner.py       the Tuner interface and measurement loop (resuming from a log)
    index_tuners.py, ga_tuner.py, model_tuner.py   the search strategies
    features.py, cost_model.py                     what ModelTuner learns from, and how
    measure.py, pool.py, worker.py                 LocalBuilder / LocalRunner in worker processes
    dask_runner.py records on a Dask cluster
    record.py      JSON Lines records: load_records, pick_best
    callbacks.py   log_to_file, progress_bar
    plot.py        plot_tuning_curve
    templates.py   built-in templates (gemm)

The operator library's templates (``matmul``, ``dense``, ``conv2d_nchw`` and their ``_cuda``
variants) are defined by ``loopc.schedules`` (schedules/tasks.py) when it is imported, which also
applies tuned records in ``schedules.schedule``; autotune itself never imports loopc.schedules.
"""
from .callbacks import log_to_file, progress_bar
from .dispatcher import (ApplyConfig, ApplyHistoryBest, AutotuneWarning, DispatchContext, apply_history_best,
                         get_config)
from .ga_tuner import GATuner
from .index_tuners import GridSearchTuner, RandomTuner
from .measure import (ERROR_KINDS, LocalBuilder, LocalRunner, MeasureInput, MeasureResult, measure_option)
from .model_tuner import ModelTuner
from .plot import plot_tuning_curve
from .record import Record, RecordError, load_records, pick_best
from .space import ConfigEntity, ConfigSpace
from .task import Task, create_task, get_template, list_templates, template
from .tuner import Tuner
from . import templates  # noqa: F401 - registers the built-in templates


def __getattr__(name):
    if name == "DaskRunner":      # dask is an optional extra: imported on first use
        from .dask_runner import DaskRunner
        return DaskRunner
    raise AttributeError(f"module 'loopc.autotune' has no attribute {name!r}")


__all__ = ["template", "get_config", "create_task", "Task", "ConfigSpace", "ConfigEntity",
           "RandomTuner", "GridSearchTuner", "GATuner", "ModelTuner", "Tuner",
           "measure_option", "LocalBuilder", "LocalRunner", "DaskRunner", "MeasureInput", "MeasureResult",
           "ERROR_KINDS", "log_to_file", "progress_bar", "load_records", "pick_best", "Record", "RecordError",
           "apply_history_best", "ApplyHistoryBest", "ApplyConfig", "DispatchContext", "AutotuneWarning",
           "plot_tuning_curve", "get_template", "list_templates"]
