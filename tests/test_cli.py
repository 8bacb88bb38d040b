"""The loopc command line."""
import subprocess
import sys

import llvmlite.binding as llvm

from loopc import cli


def run_cli(*args):
    proc = subprocess.run([sys.executable, "-m", "loopc.cli", *args], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_info_names_cpu_triple_and_versions():
    out = run_cli("info")
    import numpy
    assert llvm.get_host_cpu_name() in out
    assert llvm.get_process_triple() in out
    assert numpy.__version__ in out
    assert "threads" in out


def test_show_prints_each_format():
    ir_text = run_cli("show", "gemm", "--step", "parallel", "-M", "17", "-N", "19", "-K", "5")
    assert "for i.outer in parallel(4):" in ir_text  # the guarded last row block is partitioned off
    assert "packedB" in ir_text
    assert "define" in run_cli("show", "gemm", "--step", "default", "--format", "llvm", "-M", "8", "-N", "8", "-K", "8")
    assert "gemm" in run_cli("show", "gemm", "--step", "default", "--format", "asm", "-M", "8", "-N", "8", "-K", "8")


def test_bench_suite_quick_checks_and_reports(capsys):
    assert cli.main(["bench", "--quick", "--repeat", "1", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    for row in ("matmul 64^3", "conv N2 C3 13x13", "dense 64x400 -> 120", "max_pool2d", "relu", "softmax"):
        assert row in out


def test_bench_ladder_small_checks_and_reports(capsys):
    assert cli.main(["bench", "--ladder", "--size", "37", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    for step in ("default", "tile 32x32", "vectorize", "reorder 4x16 regs", "pack B", "parallel", "numpy"):
        assert step in out
    assert "best step" in out
