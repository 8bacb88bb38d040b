"""The loopc command line."""
import subprocess
import sys

import llvmlite.binding as llvm
import pytest

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


#: one odd-sized --shape per op `loopc show` knows (the catalog must not grow without a case here)
SHOW_CASES = {
    "matmul": "17 19 5", "dense": "3 13 7", "conv2d": "1 3 13 13 5 3 3 2 1", "max_pool2d": "2 3 9 9 3 2 1",
    "avg_pool2d": "1 2 7 7 2", "relu": "7 5", "bias_add": "2 3 5", "softmax": "3 11", "log_softmax": "1 7",
    "conv2d_backward_data": "2 3 9 9 4 3 3 2 1", "conv2d_backward_weight": "1 2 7 7 3 3 3 1 1 2",
    "dense_backward_data": "3 13 7", "dense_backward_weight": "3 13 7", "bias_backward": "2 3 4 4",
    "max_pool2d_backward": "1 2 7 7 2", "relu_backward": "5 3", "nll_loss": "5 7", "nll_loss_backward": "5 7",
    "log_softmax_backward": "3 7", "sgd_momentum": "37", "adadelta": "9",
    "sparse_dense": "5 13 7 30", "sparse_dense_bsr": "5 12 8 40 4 2",
}


def test_show_covers_every_library_op(capsys):
    from loopc.apps import show
    assert set(SHOW_CASES) == set(show.CATALOG)
    for op, shape in SHOW_CASES.items():
        assert cli.main(["show", op, "--shape", *shape.split()]) == 0
        out = capsys.readouterr().out
        head, signature = out.splitlines()[:2]
        assert head.startswith(f"# {op} {shape} on llvm: ") and signature.startswith(f"def {op}(")
        inputs, outputs = show.declare(op, [int(v) for v in shape.split()])
        for t in [*inputs, *outputs]:      # every argument with its shape, in the printed signature
            assert f"{t.name}: {t.dtype}[{', '.join(map(str, t.shape))}]" in signature


def test_show_prints_llvm_and_asm_of_a_library_op(capsys):
    assert cli.main(["show", "conv2d_nchw", "--shape", "1", "3", "9", "9", "4", "3", "3", "--format", "llvm"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("; conv2d 1 3 9 9 4 3 3 on llvm: ") and "define" in out
    assert cli.main(["show", "max_pool2d", "--shape", "1", "3", "9", "9", "3", "--format", "asm"]) == 0
    assert "ret" in capsys.readouterr().out


def test_show_names_the_shipped_tuned_record_on_its_cpu(capsys):
    if llvm.get_host_cpu_name() != "znver3":
        pytest.skip("the shipped tuned records (schedules/tuned/znver3.jsonl) apply on znver3 only")
    assert cli.main(["show", "conv2d", "--shape", "64", "1", "28", "28", "6", "5", "5", "1", "2"]) == 0
    assert capsys.readouterr().out.splitlines()[0].endswith("a tuned record")
    assert cli.main(["show", "conv2d", "--shape", "3", "1", "28", "28", "6", "5", "5", "1", "2"]) == 0
    assert "default schedule" in capsys.readouterr().out.splitlines()[0]


def test_show_of_a_library_op_with_bad_shapes_is_one_line(capsys):
    for argv, what in ((["show", "conv2d"], "takes 7 to 11 ints (N C H W K R S"),
                       (["show", "matmul", "--shape", "3", "4"], "matmul takes 3 ints (M N K), got 2"),
                       (["show", "conv2d", "--shape", "1", "3", "2", "2", "5", "3", "3"], "does not fit"),
                       (["show", "relu", "--shape", "3", "0"], "positive")):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert what in err and len(err.strip().splitlines()) == 1, err
    with pytest.raises(SystemExit) as exit_:
        cli.main(["show", "cumsum", "--shape", "3"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "invalid choice: 'cumsum'" in err and len(err.strip().splitlines()) == 1
