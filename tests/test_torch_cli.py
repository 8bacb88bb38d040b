"""The PyTorch commands of the CLI, in a subprocess: ``lenet train --model chapter`` (the chapter's
Net through torch.compile(backend="loopc")) and ``tune-model MODULE:CLASS``; bad input is one
line on stderr, exit code 2, no traceback."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("torch")

from test_cli_errors import assert_one_line_error  # noqa: E402  (one check of one-line CLI errors)

TINY = textwrap.dedent("""
    import torch


    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(16, 8)

        def forward(self, x):
            return torch.relu(self.fc(x))


    class NeedsArgs(torch.nn.Module):
        def __init__(self, width, depth=2):
            super().__init__()
""")


def run_cli(*args, cwd=None, env=None, timeout=300):
    """The CLI in a subprocess: (exit code, stdout, stderr)."""
    proc = subprocess.run([sys.executable, "-m", "loopc.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env=env)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    (folder / "tiny_models.py").write_text(TINY)
    return folder


def test_chapter_train_one_epoch_on_a_slice(tmp_path):
    code, out, err = run_cli("lenet", "train", "--model", "chapter", "--limit", "128", "--epochs", "1",
                             "--recipe", "chapter", "--save", tmp_path / "chapter", cwd=tmp_path)
    assert code == 0, err
    assert "128 train / 128 test images" in out
    assert "1 epochs, batch 64 (test 1000), adadelta lr 1, StepLR gamma 0.7" in out
    assert "kernels compiled or fetched in" in out
    assert "Train Epoch: 1\tAverage loss: " in out
    line = next(s for s in out.splitlines() if s.startswith("Test set: Average loss: "))
    assert ", Accuracy: " in line and "/128 (" in line and line.endswith("%)"), line
    assert "loopc backend: " in out and "ATen nodes ran on loopc" in out
    assert out.count("ATen nodes ran on loopc") == 1           # the summary once, not per graph
    assert "Traceback" not in err
    import numpy as np
    import torch

    from loopc.torch.models import ChapterNet
    saved = np.load(tmp_path / "chapter.npz")                  # --save appends .npz, as for lenet
    ChapterNet().load_state_dict({k: torch.from_numpy(v) for k, v in saved.items()})


def test_chapter_rejects_options_it_does_not_have(tmp_path):
    code, _, err = run_cli("lenet", "train", "--model", "chapter", "--logdir", tmp_path / "logs")
    assert code == 2
    assert_one_line_error(err, "--logdir")


def test_tune_model_from_a_file_writes_records(models, tmp_path):
    log = tmp_path / "tiny.jsonl"
    code, out, err = run_cli("tune-model", models / "tiny_models.py:Tiny", "--input-shape", 4, 16,
                             "--trials", 4, "--seconds", 30, "--log", log, cwd=tmp_path)
    assert code == 0, err
    assert "tuned dense(" in out
    assert 'backend="loopc", options={"records": ' in out
    records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    assert records and records[0]["workload"][0] == "dense"


@pytest.mark.parametrize("spec, names", [
    ("no_such_module:Tiny", ["no_such_module"]),
    ("tiny_models:Missing", ["Missing", "Tiny"]),
    ("tiny_models:NeedsArgs", ["NeedsArgs", "width"]),
    ("missing/file.py:Tiny", ["missing/file.py"]),
])
def test_tune_model_bad_class_is_one_line(models, tmp_path, spec, names):
    code, _, err = run_cli("tune-model", spec, "--input-shape", 4, 16, "--log", tmp_path / "x.jsonl", cwd=models)
    assert code == 2, err
    assert_one_line_error(err, *names)
    assert not (tmp_path / "x.jsonl").exists()


@pytest.mark.parametrize("shape, names", [
    (["1", "1", "28", "28"], ["--input-shape", "1 1 28 28"]),      # the forward fails on it
    (["4", "0"], ["--input-shape"]),                                # not a positive size
    (["4", "x"], ["--input-shape"]),
])
def test_tune_model_bad_shape_is_one_line(models, tmp_path, shape, names):
    code, _, err = run_cli("tune-model", "tiny_models:Tiny", "--input-shape", *shape, "--log", tmp_path / "x.jsonl",
                           cwd=models)
    assert code == 2, err
    assert_one_line_error(err, *names)


def test_tune_model_unwritable_log_is_one_line(models, tmp_path):
    code, _, err = run_cli("tune-model", "tiny_models:Tiny", "--input-shape", 4, 16,
                           "--log", tmp_path / "no" / "folder" / "x.jsonl", cwd=models)
    assert code == 2
    assert_one_line_error(err, "--log")


def test_without_torch_both_commands_say_so(models, tmp_path):
    fake = tmp_path / "fake" / "torch"            # shadows the installed torch: importing it fails
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text('raise ImportError("No module named \'torch\'", name="torch")\n')
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path / "fake"),
                                                                      os.environ.get("PYTHONPATH")]))}
    code, _, err = run_cli("lenet", "train", "--model", "chapter", "--limit", 8, env=env)
    assert code == 2
    assert_one_line_error(err, "--model chapter", "PyTorch")
    code, _, err = run_cli("tune-model", "tiny_models:Tiny", "--input-shape", 4, 16, "--log", tmp_path / "x.jsonl",
                           env=env, cwd=models)
    assert code == 2
    assert_one_line_error(err, "tune-model", "PyTorch")
