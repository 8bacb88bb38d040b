"""The chapter's sizing question, per layer: weights, activations, gradients, kernel workspace.

    print(model.executor(64).memory().table())

Activations and gradients are the buffers an executor allocated (results fused away inside a
kernel count as that kernel's workspace); workspace is the scratch memory the generated code
allocates (e.g. the im2col patch matrix), the largest kernel's per layer, since kernels run one
at a time.
"""
from __future__ import annotations

from dataclasses import dataclass

from .ops import OPS


@dataclass
class MemoryReport:
    """Per layer: (layer, weights, activations, gradients, workspace) in bytes."""
    rows: list

    @property
    def totals(self):
        w = sum(r[1] for r in self.rows)
        a = sum(r[2] for r in self.rows)
        g = sum(r[3] for r in self.rows)
        ws = max((r[4] for r in self.rows), default=0)   # kernels run one at a time: the largest
        return w, a, g, ws

    @property
    def total(self) -> int:
        return sum(self.totals)

    def table(self) -> str:
        def kib(n):
            return f"{n / 1024:10.1f}"
        lines = [f"{'layer':<10s} {'weights':>10s} {'activations':>12s} {'gradients':>10s} {'workspace':>10s}   (KiB)"]
        for name, w, a, g, ws in self.rows:
            lines.append(f"{name:<10s} {kib(w)} {kib(a):>12s} {kib(g)} {kib(ws)}")
        w, a, g, ws = self.totals
        lines.append(f"{'total':<10s} {kib(w)} {kib(a):>12s} {kib(g)} {kib(ws)}   = {self.total / 2**20:.2f} MiB "
                     "(workspace: the largest kernel's, reused)")
        return "\n".join(lines)


def memory_report(graph, nodes, buffers, steps) -> MemoryReport:
    """Bytes per layer (scope) of an executor's ``graph``, the ``nodes`` it runs, the
    ``buffers`` it allocated ({value: array}) and its ``steps`` (each with ``.node`` and
    ``.kernel.workspace``)."""
    rows = {}

    def row(scope):
        return rows.setdefault(scope or "-", [0, 0, 0, 0])
    for v in graph.inputs:
        row("input")[1] += v.nbytes
    for p in graph.params:
        row(p.name.rsplit(".", 1)[0])[0] += p.nbytes
    for node in nodes:
        if not OPS[node.op].view and node.output in buffers:   # fused-away results: workspace
            row(node.scope)[2 if node.phase == "backward" else 1] += node.output.nbytes
    for st in steps:
        r = row(st.node.scope)
        r[3] = max(r[3], st.kernel.workspace)
    return MemoryReport([(k, *v) for k, v in rows.items()])
