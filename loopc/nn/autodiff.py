"""Reverse-mode automatic differentiation: the backward graph, derived from the forward graph.

``gradients(graph, loss)`` walks the forward nodes that ``loss`` depends on in reverse order
and asks each op's gradient rule (``RULES``) for the gradients of its inputs, given the
gradient of its output. The rules append backward nodes (``phase="backward"``) to the same
graph, so forward and backward become one dataflow graph — the chapter's second stage of a
framework. Where a value feeds several nodes, its gradient contributions are summed by
``add`` nodes. Only values that depend on a parameter get gradients (no gradient for the
input image, so conv1 runs no backward-data kernel).

A rule is ``rule(graph, node, dy, needs) -> tuple`` with one entry per input of ``node``:
the gradient Value, or None where ``needs`` says that input needs none. ``dy`` is None only
for the loss itself (the seed, d loss / d loss = 1).

    conv2d(x, w)        dx = conv2d_backward_data(dy, w)     dw = conv2d_backward_weight(dy, x)
    bias_add(x, b)      dx = dy                              db = bias_backward(dy)
    relu(x) -> y        dx = relu_backward(dy, y)            (y > 0 exactly where x > 0)
    max_pool2d(x)       dx = max_pool2d_backward(dy, x)
    dense(x, w)         dx = dense_backward_data(dy, w)      dw = dense_backward_weight(dy, x)
    reshape(x)          dx = reshape(dy) back to x's shape   (a view)
    log_softmax(x) -> y dx = log_softmax_backward(dy, y)
    nll_loss(logp, t)   dlogp = nll_loss_backward(t)         (the mean loss is the seed)
    add(a, b)           da = db = dy
"""
from __future__ import annotations

from loopc.errors import LoopcError

RULES = {}


def rule(op):
    def register(fn):
        RULES[op] = fn
        return fn
    return register


def _bwd(graph, node, op, inputs, **attrs):
    return graph.add_node(op, inputs, node.scope, phase="backward", **attrs)


@rule("conv2d")
def _conv2d(graph, node, dy, needs):
    x, w = node.inputs
    geo = {k: node.attrs[k] for k in ("stride", "padding", "dilation")}
    dx = _bwd(graph, node, "conv2d_backward_data", (dy, w), input_shape=x.shape, **geo) if needs[0] else None
    dw = _bwd(graph, node, "conv2d_backward_weight", (dy, x), kernel_shape=w.shape, **geo) if needs[1] else None
    return dx, dw


@rule("bias_add")
def _bias_add(graph, node, dy, needs):
    db = _bwd(graph, node, "bias_backward", (dy,), axis=node.attrs["axis"]) if needs[1] else None
    return dy, db


@rule("relu")
def _relu(graph, node, dy, needs):
    # relu's output is positive exactly where its input is: reading the output lets a runtime
    # fuse relu into its producer without keeping the pre-activation.
    return (_bwd(graph, node, "relu_backward", (dy, node.output)),)


@rule("max_pool2d")
def _max_pool2d(graph, node, dy, needs):
    (x,) = node.inputs
    a = node.attrs
    return (_bwd(graph, node, "max_pool2d_backward", (dy, x), kernel=a["kernel"], stride=a["stride"],
                 padding=a["padding"]),)


@rule("dense")
def _dense(graph, node, dy, needs):
    x, w = node.inputs
    dx = _bwd(graph, node, "dense_backward_data", (dy, w)) if needs[0] else None
    dw = _bwd(graph, node, "dense_backward_weight", (dy, x)) if needs[1] else None
    return dx, dw


@rule("reshape")
def _reshape(graph, node, dy, needs):
    (x,) = node.inputs
    return (_bwd(graph, node, "reshape", (dy,), shape=x.shape),)


@rule("log_softmax")
def _log_softmax(graph, node, dy, needs):
    return (_bwd(graph, node, "log_softmax_backward", (dy, node.output), axis=node.attrs["axis"]),)


@rule("nll_loss")
def _nll_loss(graph, node, dy, needs):
    if dy is not None:
        raise LoopcError("nll_loss must be the loss itself (the root of the backward graph): "
                         "its backward op assumes d loss / d loss = 1")
    logp, labels = node.inputs
    batch, classes = logp.shape
    return _bwd(graph, node, "nll_loss_backward", (labels,), batch=batch, classes=classes), None


@rule("add")
def _add(graph, node, dy, needs):
    return dy, dy


@rule("copy")
def _copy(graph, node, dy, needs):
    return (dy,)


def gradients(graph, loss, wrt=None) -> dict:
    """Append the backward graph of ``loss`` to ``graph``; return ``{param: gradient value}``.

    ``loss`` must be a value of shape (1,) that is the output of a node with a rule whose seed
    is implicit (``nll_loss``). ``wrt`` defaults to every parameter of the graph; a parameter
    that ``loss`` does not depend on gets no entry.
    """
    wrt = list(graph.params if wrt is None else wrt)
    forward = graph.needed_for([loss])
    requires = set(wrt)
    for n in forward:
        if any(v in requires for v in n.inputs):
            requires.add(n.output)
    if loss not in requires:
        raise LoopcError(f"%{loss.name} does not depend on any parameter: there is nothing to differentiate")
    pending = {}                       # value -> gradient contributions from its consumers
    for node in reversed(forward):
        out = node.output
        if out not in requires:
            continue
        if out is loss:
            dy = None
        elif out in pending:
            dy = _sum(graph, out, pending.pop(out))
        else:
            continue                   # no gradient flows back into this node
        rule_fn = RULES.get(node.op)
        if rule_fn is None:
            raise LoopcError(f"no gradient rule for op {node.op!r} (loopc.nn.autodiff.RULES)")
        needs = tuple(v in requires for v in node.inputs)
        for v, g, need in zip(node.inputs, rule_fn(graph, node, dy, needs), needs):
            if need and g is not None:
                pending.setdefault(v, []).append(g)
    grads = {}
    claimed = set()
    for p in wrt:
        if p not in pending:
            continue
        g = _sum(graph, p, pending[p])
        if g.producer is None or g in claimed or g.producer.op == "reshape":
            # a gradient that is another value (or another parameter's) gets its own buffer
            g = graph.add_node("copy", (g,), _scope(p), phase="backward")
        claimed.add(g)
        grads[p] = g
    return grads


def _scope(v):
    if v.producer is not None:
        return v.producer.scope
    return v.name.rsplit(".", 1)[0]


def _sum(graph, v, contributions):
    total = contributions[0]
    for g in contributions[1:]:
        total = graph.add_node("add", (total, g), _scope(v), phase="backward")
    return total
