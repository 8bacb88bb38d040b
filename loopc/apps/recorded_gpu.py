"""GPU figures measured on lent machines and recorded in benchmarks/RESULTS.md, for the commands
that compare CPU and GPU on a machine without one (``loopc lenet bench --compare-cpu``,
tutorial 07). They are always printed as recorded, with the GPU's name and the date, never as
measured here.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RecordedRun:
    gpu: str
    date: str
    source: str                     # where the run is written up
    command: str
    rows: tuple                     # (batch, loopc fwd ms, loopc train ms, torch fwd ms, torch train ms)
    notes: str


#: LeNet-5 on loopc's CUDA kernels, the second lent-GPU run of issue 7
LENET = RecordedRun(
    gpu="NVIDIA H200", date="2026-11-26",
    source="benchmarks/RESULTS.md, 'CUDA operator library and LeNet on the GPU (issue 7)', run 2",
    command="python benchmarks/gpu_check.py --sections sgemm lenet tune --tune-trials 10",
    rows=((64, 1.078, 2.469, 0.405, 2.410),),
    notes="training step = forward + backward + SGD-momentum (the update on the CPU); loopc's times include "
          "its executor's copies to and from the GPU; PyTorch CUDA with TF32 off")


def bench_results(run: RecordedRun = LENET):
    """The recorded rows as lenet_bench.BenchResults (no profile table)."""
    from .lenet_bench import BenchResult
    return [BenchResult(b, f, t, tf, tt, "", 0.0) for b, f, t, tf, tt in run.rows]


def label(run: RecordedRun = LENET) -> str:
    return f"{run.gpu} (recorded {run.date}, not measured here)"


def describe(run: RecordedRun = LENET) -> str:
    """The recorded LeNet figures as a table, labelled with the GPU, the date and the source."""
    lines = [f"LeNet-5 on {run.gpu}, recorded {run.date} — not measured on this machine",
             f"  source: {run.source}", f"  command: {run.command}",
             f"{'batch':>7}  {'loopc fwd':>10}  {'loopc train':>11}  {'torch fwd':>10}  {'torch train':>11}"]
    lines += [f"{b:>7}  {f:10.3f}  {t:11.3f}  {tf:10.3f}  {tt:11.3f}" for b, f, t, tf, tt in run.rows]
    lines.append(f"  ({run.notes}; ms, median)")
    return "\n".join(lines)
