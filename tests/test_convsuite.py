"""The convolution suite of benchmarks/conv_suite.py: the layers it lists are the models' layers,
and one tiny layer goes through build, check, timing and the table."""
import pytest

from loopc.apps import convsuite as cs


def test_resnet18_lists_its_eleven_distinct_convolutions():
    layers = cs.resnet18(1)
    assert len(layers) == len(set(layers)) == 11
    assert layers[0] == cs.Conv(1, 3, 224, 64, 7, 2, 3) and layers[0].P == 112
    # every 3x3/2 halves the image and doubles the channels, like its 1x1/2 shortcut
    for c, h in ((64, 56), (128, 28), (256, 14)):
        assert cs.Conv(1, c, h, 2 * c, 3, 2, 1).P == cs.Conv(1, c, h, 2 * c, 1, 2, 0).P == h // 2


def test_mobilenet_v2_layers_chain_and_end_at_1280_channels():
    layers = cs.mobilenet_v2(16)
    assert all(layer.N == 16 for layer in layers)
    assert layers[0].P == 112 and layers[-1] == cs.Conv(16, 320, 7, 1280, 1)
    depthwise = [layer for layer in layers if layer.groups > 1]
    assert all(layer.groups == layer.C == layer.K and layer.R == 3 for layer in depthwise)
    # the seventeen blocks' depthwise layers, deduplicated: 32@112, 96@112/2, 144@56, 144@56/2, ...
    assert [(d.C, d.H, d.stride) for d in depthwise] == [
        (32, 112, 1), (96, 112, 2), (144, 56, 1), (144, 56, 2), (192, 28, 1), (192, 28, 2), (384, 14, 1),
        (576, 14, 1), (576, 14, 2), (960, 7, 1)]


def test_a_tiny_layer_is_built_checked_timed_and_tabled():
    pytest.importorskip("torch")
    layer = cs.Conv(1, 6, 9, 6, 3, 2, 1, groups=3)
    f, build_s = cs.build(layer)
    r = cs.measure(layer, f, "default", build_s, (1,), repeat=1, min_repeat_ms=1)
    assert r.loopc_ms[1] > 0 and r.torch_ms[1] > 0 and r.ratio[1] > 0
    table = cs.format_table([r], (1,))
    assert "| g3 6->6 9^2 3x3/2 | default |" in table and "**geomean, default**" in table
