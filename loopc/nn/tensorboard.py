"""TensorBoard event files: loss/accuracy scalars and the dataflow graph (the Graphs tab).

    w = SummaryWriter("runs/lenet")          # needs the ``tensorboard`` package (extra)
    w.add_graph(graph)                        # forward + backward nodes, shapes on the edges
    w.add_scalar("train/loss", 0.31, step)
    w.close()                                 # then: tensorboard --logdir runs

Events are written with TensorBoard's own writer (``EventFileWriter``) and protocol buffers,
as PyTorch's SummaryWriter does; TensorFlow is not needed. In the graph, forward nodes are
grouped by layer (``conv1/conv2d``) and backward nodes under ``backward/`` (like TensorFlow's
``gradients/`` scope); weights appear inside their layer (``conv1/weight``).
"""
from __future__ import annotations

import os
import time

from loopc.errors import ArgumentError, LoopcError


def _tb():
    try:
        from tensorboard.compat.proto import (attr_value_pb2, event_pb2, graph_pb2, node_def_pb2,
                                              summary_pb2, tensor_shape_pb2, versions_pb2)
        from tensorboard.summary.writer.event_file_writer import EventFileWriter
    except ImportError as e:
        raise LoopcError("writing TensorBoard logs needs the tensorboard package: "
                         "pip install 'loopc[tensorboard]'") from e
    return (attr_value_pb2, event_pb2, graph_pb2, node_def_pb2, summary_pb2, tensor_shape_pb2,
            versions_pb2, EventFileWriter)


def available() -> bool:
    try:
        _tb()
        return True
    except LoopcError:
        return False


def node_name(value) -> str:
    """The TensorBoard name of a graph value."""
    if value.kind == "param":
        layer, _, leaf = value.name.rpartition(".")
        return f"{layer}/{leaf}" if layer else leaf
    p = value.producer
    if p is not None and p.phase == "backward":
        return "backward/" + value.name
    return value.name


def graph_def(graph):
    """A GraphDef of ``graph``: one NodeDef per value, inputs as edges, shapes as attributes."""
    attr_value_pb2, _, graph_pb2, node_def_pb2, _, tensor_shape_pb2, versions_pb2, _ = _tb()

    def attrs(value, extra=""):
        shape = tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d)
                                                       for d in value.shape])
        out = {"_output_shapes": attr_value_pb2.AttrValue(list=attr_value_pb2.AttrValue.ListValue(shape=[shape])),
               "dtype": attr_value_pb2.AttrValue(s=value.dtype.encode())}
        if extra:
            out["attr"] = attr_value_pb2.AttrValue(s=extra.encode())
        return out

    nodes = []
    for v in graph.inputs:
        nodes.append(node_def_pb2.NodeDef(name=node_name(v), op="Input", attr=attrs(v)))
    for v in graph.params:
        nodes.append(node_def_pb2.NodeDef(name=node_name(v), op="Parameter", attr=attrs(v)))
    for n in graph.nodes:
        extra = ", ".join(f"{k}={v}" for k, v in n.attrs.items())
        nodes.append(node_def_pb2.NodeDef(name=node_name(n.output), op=n.op,
                                          input=[node_name(v) for v in n.inputs], attr=attrs(n.output, extra)))
    return graph_pb2.GraphDef(node=nodes, versions=versions_pb2.VersionDef(producer=22))


class SummaryWriter:
    """Scalars and a graph into ``logdir`` (an ``events.out.tfevents.*`` file)."""

    def __init__(self, logdir):
        *_, EventFileWriter = _tb()
        if not isinstance(logdir, (str, os.PathLike)) or os.fspath(logdir) == "":
            raise ArgumentError(f"SummaryWriter(logdir): expected a folder path, got {logdir!r}")
        self.logdir = os.path.expanduser(os.fspath(logdir))
        if os.path.exists(self.logdir) and not os.path.isdir(self.logdir):
            raise LoopcError(f"TensorBoard logdir {self.logdir} is a file, not a folder; give a folder path")
        try:
            self._writer = EventFileWriter(self.logdir)
        except OSError as e:
            raise LoopcError(f"cannot write TensorBoard logs to {self.logdir}: {e.strerror or e}; give a "
                             "folder whose parent exists and is writable") from None

    def _add(self, event, step=None):
        event.wall_time = time.time()
        if step is not None:
            event.step = int(step)
        self._writer.add_event(event)

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        _, event_pb2, _, _, summary_pb2, *_ = _tb()
        summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=float(value))])
        self._add(event_pb2.Event(summary=summary), step)

    def add_graph(self, graph) -> None:
        _, event_pb2, *_ = _tb()
        self._add(event_pb2.Event(graph_def=graph_def(graph).SerializeToString()))

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
