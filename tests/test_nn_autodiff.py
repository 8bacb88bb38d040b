"""loopc.nn: the forward graph, the derived backward graph, and the runtime that runs both."""
import numpy as np
import pytest

from loopc.errors import LoopcError
from loopc.nn import autodiff
from loopc.nn.graph import Graph
from loopc.nn.lenet import LeNet

from nn_models import Tiny, random_batch, tiny_torch_loss


def test_backward_graph_is_derived_by_rules():
    tg = Tiny().build_graph(4)
    text = str(tg.graph)
    fwd, bwd = text.split("# backward")
    assert "conv2d(" in fwd and "backward" not in fwd
    for op in ("nll_loss_backward", "log_softmax_backward", "dense_backward_weight", "dense_backward_data",
               "bias_backward", "relu_backward", "max_pool2d_backward", "conv2d_backward_weight"):
        assert op in bwd, op
    # the input image needs no gradient: no conv2d_backward_data at all
    assert "conv2d_backward_data" not in text
    # h feeds relu and the skip add: its gradient is the sum of two contributions
    assert any(n.op == "add" and n.phase == "backward" for n in tg.graph.nodes)
    assert set(tg.grads) == set(tg.graph.params)


def test_gradients_match_torch_autograd():
    pytest.importorskip("torch")
    model = Tiny(seed=1)
    x, labels = random_batch(model, 6)
    loss = model.train_step(x, labels)
    want_loss, want = tiny_torch_loss(model.store.arrays, x, labels)
    assert loss == pytest.approx(want_loss, rel=1e-5)
    for name, g in want.items():
        np.testing.assert_allclose(model.store.grads[name], g, rtol=1e-4, atol=1e-6, err_msg=name)


def test_gradients_match_finite_differences():
    """No torch needed: central differences of the loss, computed by the same kernels."""
    model = Tiny(seed=2)
    x, labels = random_batch(model, 3, seed=3)
    model.train_step(x, labels)
    grads = {k: v.copy() for k, v in model.store.grads.items()}
    rng = np.random.default_rng(0)
    eps = 1e-2
    for name in model.param_shapes:
        w = model.store[name]
        for flat in rng.choice(w.size, size=3, replace=False):
            idx = np.unravel_index(flat, w.shape)
            old = w[idx]
            w[idx] = old + eps
            up = model.train_step(x, labels)
            w[idx] = old - eps
            down = model.train_step(x, labels)
            w[idx] = old
            numeric = (up - down) / (2 * eps)
            assert grads[name][idx] == pytest.approx(numeric, rel=5e-2, abs=2e-3), (name, idx)


def test_lenet_graph_shapes_and_memory_estimate():
    model = LeNet()
    tg = model.build_graph(8)
    shapes = {n.name: n.output.shape for n in tg.graph.nodes}
    assert shapes["conv1/conv2d"] == (8, 6, 28, 28)
    assert shapes["pool2/max_pool2d"] == (8, 16, 5, 5)
    assert shapes["output/log_softmax"] == (8, 10)
    assert model.store.count == 61706
    mem = model.executor(8).memory()
    w, a, g, ws = mem.totals
    assert w == 61706 * 4
    assert a > 0 and g > 0 and ws > 0
    table = mem.table()
    for layer in ("conv1", "pool1", "conv2", "fc1", "fc3", "total"):
        assert layer in table
    assert "MiB" in table


def test_executor_buffers_are_allocated_once():
    model = Tiny()
    ex = model.executor(4)
    before = {id(v): (b.ctypes.data, b.shape) for v, b in ex.buffers.items()}
    x, labels = random_batch(model, 4)
    for _ in range(3):
        model.train_step(x, labels)
    assert {id(v): (b.ctypes.data, b.shape) for v, b in ex.buffers.items()} == before
    assert all(b.ctypes.data % 64 == 0 for v, b in ex.buffers.items() if v.producer is None or
               v.producer.op != "reshape")
    assert model.executor(4) is ex


def test_fused_kernels_compute_what_separate_kernels_do():
    from loopc.nn.runtime import Executor
    model = Tiny(seed=7)
    tg = model.build_graph(4)
    outs = [tg.loss, tg.logp, *tg.grads.values()]
    fused = Executor(tg.graph, outs, model.store, tg.grads)
    x, labels = random_batch(model, 4)
    fused.run(x=x, labels=labels)
    got = {v: fused[v].copy() for v in outs}
    plain = Executor(tg.graph, outs, model.store, tg.grads, fuse=False)
    plain.run(x=x, labels=labels)
    for v in outs:
        np.testing.assert_allclose(got[v], plain[v], rtol=1e-5, atol=1e-7, err_msg=v.name)
    labels_ = [st.label for st in fused.steps]
    assert "conv2d+bias_add+relu[conv]" in labels_ and len(fused.steps) < len(plain.steps)
    # h feeds two nodes (relu and the skip add): it must stay in memory, unfused
    assert "dense+bias_add[fc1]" in labels_


def test_kernels_are_compiled_once_per_op_and_shape():
    from loopc.nn import runtime
    Tiny().executor(4)
    built = runtime.compile_stats["built"]
    Tiny(seed=5).executor(4)             # same shapes: everything comes from the cache
    assert runtime.compile_stats["built"] == built


def test_errors():
    g = Graph("bad")
    x = g.input("x", (2, 3))
    with pytest.raises(LoopcError, match="unknown op"):
        g.add_node("conv3d", (x,))
    w = g.param("w", (4, 3))
    with pytest.raises(LoopcError, match="exists already"):
        g.param("w", (4, 3))
    labels = g.input("labels", (2,), "int32")
    loss = g.nll_loss(g.log_softmax(g.dense(x, w), axis=1), labels)
    unused = g.param("unused", (5,))
    grads = autodiff.gradients(g, loss)
    assert w in grads and unused not in grads
    g2 = Graph("nothing to learn")
    x2 = g2.input("x", (2, 3))
    loss2 = g2.nll_loss(g2.log_softmax(x2, axis=1), g2.input("labels", (2,), "int32"))
    with pytest.raises(LoopcError, match="does not depend on any parameter"):
        autodiff.gradients(g2, loss2)


def test_out_of_range_labels_are_refused():
    model = Tiny()
    x, labels = random_batch(model, 4)
    labels[2] = model.classes
    with pytest.raises(LoopcError, match="class index"):
        model.train_step(x, labels)
