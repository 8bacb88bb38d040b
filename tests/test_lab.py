"""``loopc lab --out DIR`` (loopc.apps.lab): the chapter's lab on a tiny budget — the report's files,
every section, tables that agree with the figures the run returned, an HTML page that is
well-formed and references only PNGs that exist, the GPU figures labelled as recorded on a
machine without a GPU, ``loopc info``'s machine rows, and bad input as one line with exit 2.

The runs train on 8 images at batch 8 and time batch sizes 1 and 8, so one process compiles
two sets of kernels (the batch-8 ones are shared with test_nn_train and test_cli_errors)."""
import dataclasses
import glob
import html.parser
import os
import re
import shutil
import subprocess
import sys

import pytest

from loopc import cli
from loopc.apps import lab, lab_report, machine, recorded_gpu
from loopc.runtime import threads

from test_cli_errors import assert_one_line_error, cli_error

LIMIT, BATCHES = 8, (1, 8)
TINY = ["--epochs", "1", "--limit", str(LIMIT), "--batch-sizes", *map(str, BATCHES), "--threads", "1"]
SECTIONS = ("Machine", "1. Training", "2. Dataflow graph", "3. Loss and accuracy curves", "4. Top-10 operators",
            "5. Batch sizes", "6. CPU vs GPU", "Memory per layer")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One tiny lab run without a GPU: (LabResult, DIR); DIR held a file of the user's before."""
    out = tmp_path_factory.mktemp("lab")
    (out / "notes.txt").write_text("the user's own notes")
    try:
        result = lab.run(str(out), cli.RECIPES["chapter"], epochs=1, limit=LIMIT, batch_sizes=BATCHES, threads=1,
                         number=3, repeat=2, use_gpu=False, command="loopc lab (test)", log=lambda *a: None)
    finally:
        threads.set_num_threads(None)         # automatic again, for the tests after these
    return result, out


def sections(md: str) -> dict:
    """{"## heading": its text} of a Markdown report."""
    parts = re.split(r"^## (.+)$", md, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


def section(md: str, prefix: str) -> str:
    found = [text for title, text in sections(md).items() if title.startswith(prefix)]
    assert len(found) == 1, (prefix, list(sections(md)))
    return found[0]


def tables(text: str) -> list:
    """Every Markdown table of ``text``: [(header cells, [row cells, ...]), ...]."""
    out, current = [], None
    for line in text.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            if current is None:
                current = (cells, [])
                out.append(current)
            elif not all(set(c) <= {"-"} for c in cells):
                current[1].append(cells)
        else:
            current = None
    return out


def column(table, name) -> list:
    head, rows = table
    return [row[head.index(name)] for row in rows]


def close(text, value, rel=1e-3):
    """The 4-significant-digit cell ``text`` is ``value``."""
    return float(text) == pytest.approx(value, rel=rel, abs=1e-9)


# ------------------------------------------------------------------------- the files


def test_writes_the_report_files_and_nothing_else(run):
    result, out = run
    names = set(os.listdir(out))
    assert {"report.md", "report.html", "training_curves.png", "top10_operators.png", "batch_sizes.png",
            "tensorboard"} <= names
    assert names - {"tensorboard", "notes.txt"} <= set(lab.REPORT_FILES)
    assert (out / "notes.txt").read_text() == "the user's own notes"
    assert glob.glob(str(out / "tensorboard" / "events.out.tfevents.*"))
    assert sorted(result.files) == sorted(lab.REPORT_FILES)
    for png in glob.glob(str(out / "*.png")):
        assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_markdown_has_a_section_per_lab_step(run):
    _, out = run
    md = (out / "report.md").read_text()
    titles = list(sections(md))
    for prefix in SECTIONS:
        assert any(t.startswith(prefix) for t in titles), (prefix, titles)
    for prefix in SECTIONS:
        assert tables(section(md, prefix)), f"section {prefix!r} has no table"


def test_training_table_is_the_history(run):
    result, out = run
    text = section((out / "report.md").read_text(), "3. Loss")
    epochs = tables(text)[0]
    assert [int(e) for e in column(epochs, "epoch")] == [e.epoch for e in result.history]
    for cell, e in zip(column(epochs, "test acc %"), result.history):
        assert float(cell) == pytest.approx(100 * e.test_accuracy, abs=0.05)
    assert "training_curves.png" in text
    config = section((out / "report.md").read_text(), "1. Training")
    assert 0 <= result.compile_s <= result.seconds
    assert f"| kernel compilation (before epoch 1) | {result.compile_s:.1f} s |" in config
    assert "Adadelta lr 1" in config and "StepLR gamma 0.7" in config and "test batch 1000" in config


def test_top10_shares_and_times_agree_with_the_profile(run):
    result, out = run
    top = tables(section((out / "report.md").read_text(), "4. Top-10"))[0]
    assert 1 <= len(top[1]) <= 10
    assert column(top, "operator") == [o.label for o in result.top]
    shares = [float(s) for s in column(top, "share %")]
    assert sum(shares) <= 100 + 0.05 * len(shares)               # each rounded to 0.1
    assert sum(o.share for o in result.top) <= 1 + 1e-9
    for cell, share in zip(shares, (o.share for o in result.top)):
        assert cell == pytest.approx(100 * share, abs=0.05)
    totals = [float(t) for t in column(top, "total ms")]
    assert totals == sorted(totals, reverse=True)
    assert all(close(t, o.total_ms) for t, o in zip(column(top, "total ms"), result.top))
    assert sum(o.total_ms for o in result.top) <= result.profile_ms * (1 + 1e-9)


def test_batch_table_ratios_are_the_time_columns_ratio(run):
    result, out = run
    bench = tables(section((out / "report.md").read_text(), "5. Batch sizes"))[0]
    assert [int(b) for b in column(bench, "batch")] == list(BATCHES)
    assert "torch fwd ms" in bench[0], "torch is installed in the test environment"
    for kind, mine, theirs in (("fwd", "forward_ms", "torch_forward_ms"), ("train", "train_ms", "torch_train_ms")):
        for r, a, b, q in zip(result.bench, column(bench, f"loopc {kind} ms"), column(bench, f"torch {kind} ms"),
                              column(bench, f"{kind} ratio")):
            assert close(a, getattr(r, mine)) and close(b, getattr(r, theirs))
            assert q.endswith("x")
            want = float(a) / float(b)
            assert float(q[:-1]) == pytest.approx(want, abs=0.005 + 2e-3 * want)
    for r in result.bench:                    # each batch size's own profile
        assert f"batch {r.batch}\noperator" in section((out / "report.md").read_text(), "5. Batch sizes")


def test_without_a_gpu_the_gpu_figures_are_labelled_recorded(run):
    result, out = run
    md = (out / "report.md").read_text()
    text = section(md, "6. CPU vs GPU")
    rec = recorded_gpu.LENET
    assert not result.gpu.measured
    assert "recorded, not measured here" in text and rec.gpu in text and rec.date in text
    head, rows = tables(text)[0]
    assert "GPU fwd ms (recorded)" in head and "GPU train ms (recorded)" in head
    recorded = {r[0]: r for r in rec.rows}
    for cells, r in zip(rows, result.bench):
        assert close(cells[head.index("CPU fwd ms")], r.forward_ms)
        gpu = cells[head.index("GPU fwd ms (recorded)")]
        assert gpu == ("-" if r.batch not in recorded else lab_report.ms(recorded[r.batch][1]))
    assert [int(b) for b in column(tables(text)[1], "batch")] == sorted(recorded)
    assert re.search(r"\| gpu \| none \|", section(md, "Machine"))


def test_memory_table_is_the_executors_estimate(run):
    result, out = run
    head, rows = tables(section((out / "report.md").read_text(), "Memory"))[0]
    assert [r[0] for r in rows] == [r[0] for r in result.memory.rows] + ["total"]
    w, a, g, ws = result.memory.totals
    assert rows[-1][1:] == [lab_report.kib(n) for n in (w, a, g, ws)]
    assert float(rows[[r[0] for r in rows].index("fc1")][1]) == pytest.approx((120 * 400 + 120) * 4 / 1024, abs=0.05)


def test_machine_table_is_the_info_rows(run, capsys):
    result, out = run
    head, rows = tables(section((out / "report.md").read_text(), "Machine"))[0]
    names = [r[0] for r in rows]
    for name in ("cpu model", "cpu", "cores", "vector bits", "caches", "gpu", "cuda", "os", "python", "numpy",
                 "llvmlite", "numba", "torch"):
        assert name in names
    assert cli.main(["info"]) == 0
    info = capsys.readouterr().out
    for name, value in machine.machine_rows():
        if name != "threads":             # the lab ran on --threads 1
            assert re.search(rf"^{re.escape(name)} +{re.escape(value)}$", info, flags=re.M), (name, value)
    assert re.search(r"^gpu +none$", info, flags=re.M) or machine.gpu_usable()


# ------------------------------------------------------------------------- the HTML page


class _Page(html.parser.HTMLParser):
    """Checks nesting (every element closed in order, void elements excepted) and collects the
    images, tables and any reference to another resource."""
    VOID = {"meta", "img", "br", "hr", "link", "input"}

    def __init__(self):
        super().__init__()
        self.stack, self.images, self.tables, self.refs, self.errors = [], [], 0, [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs)
        if tag == "table":
            self.tables += 1
        for key in ("href", "src"):
            if key in attrs and tag != "img":
                self.refs.append((tag, attrs[key]))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()


def test_html_is_well_formed_and_references_only_its_pngs(run):
    _, out = run
    page = _Page()
    text = (out / "report.html").read_text(encoding="utf-8")
    page.feed(text)
    page.close()
    assert text.startswith("<!DOCTYPE html>")
    assert not page.errors and not page.stack, (page.errors, page.stack)
    assert not page.refs and "http" not in text and "@import" not in text
    srcs = [i["src"] for i in page.images]
    assert sorted(srcs) == sorted(f for f in lab.REPORT_FILES if f.endswith(".png"))
    for i in page.images:
        assert "/" not in i["src"] and (out / i["src"]).is_file() and i.get("alt")
    md = (out / "report.md").read_text()
    assert page.tables == len(tables(md))
    for title in sections(md):
        assert f"<h2>{title}</h2>" in text.replace("&#x27;", "'")


CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome", "chrome")
                 if shutil.which(n)), None)


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium or Chrome on this machine")
def test_html_renders_in_headless_chromium(run, tmp_path):
    _, out = run
    url = (out / "report.html").as_uri()
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files"]
    dom = subprocess.run([CHROMIUM, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=60).stdout
    assert dom.count("<table") == (out / "report.html").read_text().count("<table")
    assert dom.count("<img") == 3 and "Top-10 operators" in dom
    shot = tmp_path / "report.png"
    subprocess.run([CHROMIUM, *flags, f"--screenshot={shot}", "--window-size=1200,3000", url],
                   capture_output=True, timeout=60)
    assert shot.is_file() and shot.stat().st_size > 10_000     # a page of tables and plots, not a blank one


# ------------------------------------------------------------------------- other paths


def test_report_without_matplotlib_says_so_and_has_no_images(run, tmp_path, monkeypatch):
    result, _ = run
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)       # import fails as when not installed
    written = lab_report.write(dataclasses.replace(result, out=str(tmp_path)))
    assert written == ["report.md", "report.html"]
    assert sorted(os.listdir(tmp_path)) == ["report.html", "report.md"]
    assert "matplotlib is not installed" in (tmp_path / "report.md").read_text()
    page = (tmp_path / "report.html").read_text()
    assert "<img" not in page and "matplotlib is not installed" in page


def test_a_measured_gpu_is_labelled_measured(run, tmp_path, monkeypatch):
    """Where numba finds a GPU, step 6 times the same benchmark on it (faked here: no GPU needed)."""
    result, _ = run
    calls = []

    def bench(**kw):
        calls.append(kw)
        return [dataclasses.replace(r, forward_ms=r.forward_ms / 4, train_ms=r.train_ms / 2) for r in result.bench]
    monkeypatch.setattr(machine, "gpu_rows", lambda: ("Fake GPU (compute capability 9.0)", "driver 12.4"))
    monkeypatch.setattr(lab.lenet_bench, "run", bench)
    gpu = lab._gpu(list(BATCHES), 3, 2, True, True, log=lambda *a: None)
    assert gpu.measured and calls[0]["target"] == "cuda" and calls[0]["batch_sizes"] == list(BATCHES)
    lab_report.write(dataclasses.replace(result, out=str(tmp_path), gpu=gpu), plots=False)
    text = section((tmp_path / "report.md").read_text(), "6. CPU vs GPU")
    assert "Measured here" in text and "Fake GPU" in text and "recorded" not in text
    head, rows = tables(text)[0]
    assert "GPU fwd ms" in head and [r[head.index("fwd CPU/GPU")] for r in rows] == ["4.00x"] * len(BATCHES)
    assert "No plots were drawn" in (tmp_path / "report.md").read_text()


def test_cli_lab_without_torch_or_tensorboard(run, tmp_path, monkeypatch, capsys):
    from loopc.nn import tensorboard
    monkeypatch.setattr(machine, "gpu_usable", lambda: False)
    monkeypatch.setattr(tensorboard, "available", lambda: False)
    out = tmp_path / "new" / "lab"                                    # created, parents too
    try:
        assert cli.main(["lab", "--out", str(out), *TINY, "--no-torch"]) == 0
    finally:
        threads.set_num_threads(None)
    md = (out / "report.md").read_text()
    head, _ = tables(section(md, "5. Batch sizes"))[0]
    assert head == ["batch", "loopc fwd ms", "loopc train ms", "fwd us/image", "train us/image", "compile s"]
    assert "--no-torch" in md and "PyTorch was not run" in md
    assert "No TensorBoard logs: the tensorboard package is not installed" in section(md, "2. Dataflow graph")
    assert not (out / "tensorboard").exists()
    assert "report.html" in capsys.readouterr().out


@pytest.mark.parametrize("bad", [["--epochs", "0"], ["--limit", "x"], ["--batch-sizes", "0"], ["--threads", "0"],
                                 ["--batch-sizes"]])
def test_bad_numbers_are_one_line(tmp_path, capsys, bad):
    code, err = cli_error(capsys, "lab", "--out", tmp_path / "r", *bad)
    assert code == 2
    assert_one_line_error(err, bad[0])
    assert not (tmp_path / "r").exists()


def test_bad_out_is_one_line(tmp_path, capsys):
    a_file = tmp_path / "file.txt"
    a_file.write_text("mine")
    for out in (a_file, a_file / "sub"):
        code, err = cli_error(capsys, "lab", "--out", out, *TINY)
        assert code == 2
        assert_one_line_error(err, "--out", "file")
    assert a_file.read_text() == "mine"
    taken = tmp_path / "taken"
    (taken / "report.md").mkdir(parents=True)                        # a folder where the report goes
    code, err = cli_error(capsys, "lab", "--out", taken, *TINY)
    assert code == 2
    assert_one_line_error(err, "--out", "report.md")
    (tmp_path / "tb").mkdir()
    (tmp_path / "tb" / "tensorboard").write_text("not a folder")
    code, err = cli_error(capsys, "lab", "--out", tmp_path / "tb", *TINY)
    assert code == 2
    assert_one_line_error(err, "tensorboard")


def test_unwritable_out_is_one_line(tmp_path, capsys, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    if os.geteuid() == 0:                     # root writes anywhere: deny it as the OS would deny a user
        access = os.access
        monkeypatch.setattr(os, "access", lambda path, mode: access(path, mode) and
                            not (os.fspath(path).startswith(str(locked)) and mode & os.W_OK))
    try:
        for out in (locked, locked / "sub"):
            code, err = cli_error(capsys, "lab", "--out", out, *TINY)
            assert code == 2
            assert_one_line_error(err, "--out", "not writable")
        assert os.listdir(locked) == []
    finally:
        locked.chmod(0o700)
