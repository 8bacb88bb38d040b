"""The lab report (loopc.apps.lab): one list of blocks — headings, paragraphs, tables, plots,
preformatted profiles — rendered twice, as Markdown (report.md) and as a self-contained HTML
page (report.html: inline CSS, the PNGs by relative path, no other resource), so the two say
the same thing. Plots are drawn with matplotlib's object API on the Agg canvas (no pyplot, no
global backend); without matplotlib the report says so and has no images.
"""
from __future__ import annotations

import html
import os
import re

from loopc.runtime.files import atomic_path

# ------------------------------------------------------------------------- number formats


def ms(x) -> str:
    """Milliseconds with 4 significant digits (whole numbers from 1000 on); "-" for None."""
    if x is None:
        return "-"
    return f"{x:.0f}" if abs(x) >= 1000 else f"{x:.4g}"


def ratio(a, b) -> str:
    """``a / b`` as ``1.23x``; "-" when either is missing."""
    return "-" if a is None or b is None or b == 0 else f"{a / b:.2f}x"


def kib(n) -> str:
    return f"{n / 1024:.1f}"


def pct(x) -> str:
    return f"{100 * x:.1f}"


# ------------------------------------------------------------------------- blocks

def h2(text):
    return ("h2", text)


def p(text):
    return ("p", text)


def table(headers, rows):
    return ("table", list(headers), [[str(c) for c in row] for row in rows])


def pre(text):
    return ("pre", text)


def img(name, alt):
    return ("img", name, alt)


NO_MATPLOTLIB = ("matplotlib is not installed, so this report has no plots (pip install 'loopc[plot]'); "
                 "the tables hold every figure.")


def blocks(r, plots: dict, no_plots: str = NO_MATPLOTLIB) -> list:
    """The report of a LabResult ``r``; ``plots``: {png name: written}; when it is empty, the
    paragraph ``no_plots`` says why."""
    cfg, last = r.config, r.final
    out = [("h1", "loopc lab report: LeNet-5 under the chapter's lab"),
           p(f"Run `{r.command}` on {r.started} in {r.seconds:.0f} s, {r.threads} CPU thread"
             f"{'s' if r.threads > 1 else ''}. Every forward, backward and optimizer kernel below was compiled "
             "by loopc (LLVM); PyTorch eager runs beside it only for comparison.")]
    if not plots:
        out.append(p(no_plots))

    out += [h2("Machine"), p("The lab's report table: CPU, GPU, OS and versions (the same rows as `loopc info`)."),
            table(["item", "value"], r.machine)]

    out += [h2("1. Training (the chapter's recipe)"),
            p(f"LeNet-5 on loopc kernels, {r.data}: {r.n_train} training and {r.n_test} test images. "
              f"{cfg.epochs} epoch{'s' if cfg.epochs > 1 else ''}, batch {cfg.batch_size}, test batch "
              f"{cfg.test_batch}, {cfg.optimizer.capitalize()} lr {cfg.lr:g}, StepLR gamma {cfg.gamma:g}, "
              f"seed {cfg.seed}."),
            table(["result", "value"], [
                ("test accuracy after the last epoch", f"{pct(last.test_accuracy)} %"),
                ("test loss after the last epoch", f"{last.test_loss:.4f}"),
                ("training time (all epochs, compilation excluded)", f"{sum(e.seconds for e in r.history):.1f} s"),
                ("kernel compilation (before epoch 1)", f"{r.compile_s:.1f} s")])]

    g = r.graph
    if r.tensorboard:
        where = (f"Event files in `{os.path.relpath(r.tensorboard, r.out)}/`; view them with "
                 f"`tensorboard --logdir {r.tensorboard}` (the Graphs tab for the graph, Scalars for the curves).")
    else:
        where = f"No TensorBoard logs: {r.tensorboard_note}."
    out += [h2("2. Dataflow graph (TensorBoard)"),
            p("The forward graph of the script, the backward graph derived from it by automatic "
              "differentiation, and the kernels loopc generated for the joint graph (elementwise ops fused "
              "into their producers). " + where),
            table(["", "count"], [("forward nodes", g["forward"]), ("backward nodes (derived)", g["backward"]),
                                  ("parameters (tensors)", g["params"]), ("weights (floats)", g["weights"]),
                                  ("views (no kernel)", g["views"]),
                                  (f"kernels per training step at batch {r.memory_batch}", g["kernels"])])]

    out += [h2("3. Loss and accuracy curves"),
            p("Per epoch (TensorBoard also has the training loss every "
              f"{cfg.log_every} steps: `train/loss`)." if r.tensorboard else "Per epoch.")]
    if "training_curves.png" in plots:
        out.append(img("training_curves.png", "training and test loss and accuracy per epoch"))
    out.append(table(["epoch", "train loss", "train acc %", "test loss", "test acc %", "lr", "seconds", "images/s"],
                     [(e.epoch, f"{e.train_loss:.4f}", pct(e.train_accuracy), f"{e.test_loss:.4f}",
                       pct(e.test_accuracy), f"{e.lr:g}", f"{e.seconds:.2f}", f"{e.images_per_second:.0f}")
                      for e in r.history]))

    top_share = sum(o.share for o in r.top)
    out += [h2("4. Top-10 operators"),
            p(f"loopc.profile over the whole training run (training steps and test passes): {r.profile_calls} "
              f"kernel calls, {ms(r.profile_ms)} ms of kernel time; these ten take {pct(top_share)} % of it.")]
    if "top10_operators.png" in plots:
        out.append(img("top10_operators.png", "the ten most expensive operators by total time"))
    out.append(table(["#", "operator", "calls", "total ms", "mean us", "GFLOP/s", "share %"],
                     [(i, o.label, o.calls, ms(o.total_ms), f"{o.mean_us:.1f}",
                       "-" if o.gflops is None else f"{o.gflops:.2f}", pct(o.share))
                      for i, o in enumerate(r.top, 1)]))

    out += _batch_section(r, plots) + _gpu_section(r) + _memory_section(r)
    return out


def _batch_section(r, plots) -> list:
    torch = r.torch is not None
    sizes = ", ".join(str(b.batch) for b in r.bench)
    out = [h2("5. Batch sizes"),
           p(f"Batch sizes {sizes}: the forward pass (inference) and one training step (forward, backward, "
             "SGD-momentum update), median of timed rounds after a warm-up, on loopc"
             + (f" and on PyTorch {r.torch} eager with the same weights and thread count. Ratio = loopc time / "
                "PyTorch time (below 1: loopc is faster)." if torch else f"; {r.torch_note}."))]
    if "batch_sizes.png" in plots:
        out.append(img("batch_sizes.png", "forward and training-step time per batch size"))
    if torch:
        head = ["batch", "loopc fwd ms", "torch fwd ms", "fwd ratio", "loopc train ms", "torch train ms",
                "train ratio", "compile s"]
        rows = [(b.batch, ms(b.forward_ms), ms(b.torch_forward_ms), ratio(b.forward_ms, b.torch_forward_ms),
                 ms(b.train_ms), ms(b.torch_train_ms), ratio(b.train_ms, b.torch_train_ms), f"{b.compile_s:.1f}")
                for b in r.bench]
    else:
        head = ["batch", "loopc fwd ms", "loopc train ms", "fwd us/image", "train us/image", "compile s"]
        rows = [(b.batch, ms(b.forward_ms), ms(b.train_ms), f"{b.forward_ms * 1e3 / b.batch:.1f}",
                 f"{b.train_ms * 1e3 / b.batch:.1f}", f"{b.compile_s:.1f}") for b in r.bench]
    out.append(table(head, rows))
    out.append(p("The profiles per batch size (top 10 over the timed training steps): where the time goes moves "
                 "as the batch grows."))
    for b in r.bench:
        out.append(pre(f"batch {b.batch}\n{b.table}"))
    return out


def _gpu_section(r) -> list:
    gpu = r.gpu
    if gpu.measured:
        intro = f"Measured here: the same benchmark on the CPU and on {gpu.label}."
    else:
        run = gpu.recorded
        intro = (f"No usable CUDA GPU on this machine (GPU: none). The GPU figures are recorded, not measured "
                 f"here: LeNet-5 on {run.gpu}, recorded {run.date} ({run.source}; command `{run.command}`; "
                 f"{run.notes}). '-': no recorded figure for that batch size.")
    tag = "" if gpu.measured else " (recorded)"
    by_batch = {g.batch: g for g in gpu.rows}
    rows = []
    for c in r.bench:
        g = by_batch.get(c.batch)
        rows.append((c.batch, ms(c.forward_ms), ms(g and g.forward_ms), ms(c.train_ms), ms(g and g.train_ms),
                     ratio(c.forward_ms, g and g.forward_ms), ratio(c.train_ms, g and g.train_ms)))
    out = [h2("6. CPU vs GPU"), p(intro + " CPU/GPU above 1: the GPU is faster."),
           table(["batch", "CPU fwd ms", f"GPU fwd ms{tag}", "CPU train ms", f"GPU train ms{tag}",
                  "fwd CPU/GPU", "train CPU/GPU"], rows)]
    if not gpu.measured:
        out += [p(f"The recorded figures themselves, on {gpu.recorded.gpu} on {gpu.recorded.date} (median ms):"),
                table(["batch", "loopc fwd ms", "loopc train ms", "torch fwd ms", "torch train ms"],
                      [(g.batch, ms(g.forward_ms), ms(g.train_ms), ms(g.torch_forward_ms), ms(g.torch_train_ms))
                       for g in gpu.rows])]
    return out


def _memory_section(r) -> list:
    mem = r.memory
    w, a, g, ws = mem.totals
    rows = [(name, kib(rw), kib(ra), kib(rg), kib(rws)) for name, rw, ra, rg, rws in mem.rows]
    rows.append(("total", kib(w), kib(a), kib(g), kib(ws)))
    return [h2("Memory per layer"),
            p(f"The chapter's sizing question for one training step at batch {r.memory_batch}: weights, "
              "activations and gradients are the buffers loopc's executor allocated per layer; workspace is the "
              "scratch memory of the layer's largest kernel (kernels run one at a time, so the total counts the "
              f"largest once). In all {mem.total / 2**20:.2f} MiB{_share_of_memory(mem.total)}."),
            table(["layer", "weights KiB", "activations KiB", "gradients KiB", "workspace KiB"], rows),
            p("Inputs, activations and gradients of a training step per batch size (weights not counted):"),
            table(["batch", "MiB"], [(b, f"{n / 2**20:.2f}") for b, n in r.step_bytes])]


def _share_of_memory(nbytes) -> str:
    """``", 0.02 % of this machine's 23.5 GiB"``, or "" where the OS does not say."""
    from loopc.target import host_memory
    total = host_memory()
    return f", {100 * nbytes / total:.2g} % of this machine's {total / 2**30:.1f} GiB" if total else ""


# ------------------------------------------------------------------------- renderers

def _md_cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown(report) -> str:
    lines = []
    for block in report:
        kind = block[0]
        if kind == "h1":
            lines += [f"# {block[1]}", ""]
        elif kind == "h2":
            lines += [f"## {block[1]}", ""]
        elif kind == "p":
            lines += [block[1], ""]
        elif kind == "pre":
            lines += ["```", block[1], "```", ""]
        elif kind == "img":
            lines += [f"![{block[2]}]({block[1]})", ""]
        elif kind == "table":
            head, rows = block[1], block[2]
            lines.append("| " + " | ".join(map(_md_cell, head)) + " |")
            lines.append("|" + "|".join("---" for _ in head) + "|")
            lines += ["| " + " | ".join(map(_md_cell, row)) + " |" for row in rows]
            lines.append("")
    return "\n".join(lines)


_CSS = """body { font-family: system-ui, sans-serif; max-width: 60em; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: right; }
th { background: #f3f3f3; }
td:first-child, th:first-child { text-align: left; }
pre { background: #f7f7f7; padding: 0.6em; overflow-x: auto; }
img { max-width: 100%; display: block; margin: 0.5em 0 1em; }
code { background: #f3f3f3; padding: 0 0.2em; }"""


def _inline(text) -> str:
    """Escaped text, with `code` spans as <code>."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(str(text)))


def html_page(report) -> str:
    title = next((b[1] for b in report if b[0] == "h1"), "loopc lab report")
    body = []
    for block in report:
        kind = block[0]
        if kind in ("h1", "h2", "p"):
            body.append(f"<{kind}>{_inline(block[1])}</{kind}>")
        elif kind == "pre":
            body.append(f"<pre>{html.escape(block[1])}</pre>")
        elif kind == "img":
            body.append(f'<img src="{html.escape(block[1])}" alt="{html.escape(block[2])}">')
        elif kind == "table":
            head = "".join(f"<th>{html.escape(h)}</th>" for h in block[1])
            rows = "\n".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                             for row in block[2])
            body.append(f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{rows}\n</tbody>\n</table>")
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{html.escape(title)}</title>\n<style>\n{_CSS}\n</style>\n</head>\n<body>\n"
            + "\n".join(body) + "\n</body>\n</html>\n")


# ------------------------------------------------------------------------- plots

def _figure_api():
    """matplotlib's Figure class, or None when matplotlib is not installed."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return None
    return Figure


def _save(fig, path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)


def plot_training(r, path, Figure) -> None:
    epochs = [e.epoch for e in r.history]
    fig = Figure(figsize=(9, 3.4), layout="constrained")
    loss, acc = fig.subplots(1, 2)
    loss.plot(epochs, [e.train_loss for e in r.history], "o-", label="train")
    loss.plot(epochs, [e.test_loss for e in r.history], "s-", label="test")
    loss.set(title="loss (negative log-likelihood)", xlabel="epoch")
    acc.plot(epochs, [100 * e.train_accuracy for e in r.history], "o-", label="train")
    acc.plot(epochs, [100 * e.test_accuracy for e in r.history], "s-", label="test")
    acc.set(title="accuracy (%)", xlabel="epoch")
    for ax in (loss, acc):
        ax.set_xticks(epochs if len(epochs) <= 15 else epochs[::max(1, len(epochs) // 10)])
        ax.grid(alpha=0.3)
        ax.legend()
    _save(fig, path)


def plot_top(r, path, Figure) -> None:
    ops = list(reversed(r.top))
    fig = Figure(figsize=(9, 0.45 * len(ops) + 1.2), layout="constrained")
    ax = fig.subplots()
    ax.barh([o.label for o in ops], [o.total_ms for o in ops], color="#4c72b0")
    for i, o in enumerate(ops):
        ax.text(o.total_ms, i, f" {pct(o.share)} %", va="center", fontsize=8)
    ax.set(title="top-10 operators of the training run (loopc.profile)", xlabel="total ms")
    ax.margins(x=0.15)
    _save(fig, path)


def plot_batches(r, path, Figure) -> None:
    import numpy as np
    from matplotlib.ticker import FuncFormatter, NullFormatter
    torch = r.torch is not None
    fig = Figure(figsize=(9, 3.4), layout="constrained")
    x = np.arange(len(r.bench))
    width = 0.38 if torch else 0.6
    for ax, what, mine, theirs in zip(fig.subplots(1, 2), ("forward pass", "training step"),
                                      ("forward_ms", "train_ms"), ("torch_forward_ms", "torch_train_ms")):
        ax.bar(x - (width / 2 if torch else 0), [getattr(b, mine) for b in r.bench], width, label="loopc")
        if torch:
            ax.bar(x + width / 2, [getattr(b, theirs) for b in r.bench], width, label=f"PyTorch {r.torch} eager")
        ax.set_xticks(x, [str(b.batch) for b in r.bench])
        ax.set(title=f"{what} (median ms, log scale)", xlabel="batch size", yscale="log")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8)
    _save(fig, path)


PLOTS = {"training_curves.png": plot_training, "top10_operators.png": plot_top, "batch_sizes.png": plot_batches}


def write(r, plots: bool = True) -> list:
    """The PNGs (where matplotlib is installed and ``plots``), report.md and report.html in
    ``r.out``, each written whole or not at all; returns the names written."""
    Figure = _figure_api() if plots else None
    drawn = {}
    for name, draw in PLOTS.items() if Figure is not None else ():
        draw(r, os.path.join(r.out, name), Figure)
        drawn[name] = True
    report = blocks(r, drawn, NO_MATPLOTLIB if plots else "No plots were drawn for this run; the tables hold "
                    "every figure.")
    for name, text in (("report.md", markdown(report)), ("report.html", html_page(report))):
        with atomic_path(os.path.join(r.out, name)) as tmp:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(text)
    return [*drawn, "report.md", "report.html"]
