"""Tutorial 9 — the convolutions of a MobileNet: depthwise, grouped, pointwise.

A ResNet's 3x3 convolution mixes every input channel into every output channel. A MobileNet
splits that work in two: a *depthwise* 3x3 convolution (each channel filtered on its own:
groups = channels, 9 multiply-adds per output) and a *pointwise* 1x1 convolution (a GEMM over
the channels). Both take few FLOPs, so neither looks like the convolution the chapter tiled for
the FMA units: the depthwise one is bound by memory, the pointwise one is a GEMM of an odd shape.

1. ``conv2d_nchw(X, W, groups=g)``: the declaration, its tag, checked against numpy;
2. padding given per side (TVM's (top, left, bottom, right)), as "same" padding of an even
   kernel needs;
3. the depthwise schedule the library picks (a padded plane next to its use, the 3x3 taps
   unrolled, a vector of output columns), printed;
4. MobileNetV2's layers timed beside PyTorch (benchmarks/conv_suite.py runs them all).

Run:  python tutorials/09_grouped_convolutions.py [--small]
"""
import argparse
import warnings

import numpy as np

import loopc
from loopc import te
from loopc import schedules as S
from loopc.apps import convsuite
from loopc.schedules import testing as ref

RNG = np.random.default_rng(0)


def build(Y, inputs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", S.NoTunedRecordWarning)
        s = S.schedule(Y)
    return s, loopc.build(s, [*inputs, Y])


def run(f, shapes, out_shape):
    arrays = [RNG.standard_normal(sh).astype("float32") for sh in shapes]
    y = np.zeros(out_shape, "float32")
    f(*arrays, y)
    return arrays, y


def declare_and_check(C, H):
    print("1. groups: each group of C/groups input channels makes K/groups output channels")
    for groups, K in ((C, C), (C, 2 * C), (C // 2, C), (1, C)):
        X = te.placeholder((2, C, H, H), name="X")
        W = te.placeholder((K, C // groups, 3, 3), name="W")
        Y = S.conv2d_nchw(X, W, stride=2, padding=1, groups=groups)
        _, f = build(Y, [X, W])
        (x, w), y = run(f, [X.shape, W.shape], Y.shape)
        err = np.abs(y - ref.conv2d_nchw(x, w, 2, 1, groups=groups)).max()
        print(f"   groups={groups:3d} K={K:3d}: tag {Y.op.tag:22s} W{W.shape}  max error vs numpy {err:.1e}")
        assert err < 1e-4
    print()


def padding_per_side(C, H):
    print("2. a 4x4 filter with 'same' padding pads 1 above and left, 2 below and right")
    X = te.placeholder((1, C, H, H), name="X")
    W = te.placeholder((C, 1, 4, 4), name="W")
    Y = S.conv2d_nchw(X, W, padding=(1, 1, 2, 2), groups=C)
    _, f = build(Y, [X, W])
    (x, w), y = run(f, [X.shape, W.shape], Y.shape)
    print(f"   input {X.shape[2:]} -> output {Y.shape[2:]} (same size)")
    assert Y.shape[2:] == X.shape[2:]
    assert np.allclose(y, ref.conv2d_nchw(x, w, 1, (1, 1, 2, 2), groups=C), atol=1e-4)
    print()


def the_depthwise_schedule(C, H):
    print("3. the depthwise schedule (one channel plane per parallel iteration):")
    X = te.placeholder((1, C, H, H), name="X")
    W = te.placeholder((C, 1, 3, 3), name="W")
    Y = S.conv2d_nchw(X, W, padding=1, groups=C)
    s, _ = build(Y, [X, W])
    text = str(loopc.lower(s, [X, W, Y]))
    print("\n".join("   " + line for line in text.splitlines()[:14]), "\n   ...\n")


def mobilenet_layers(small):
    print("4. MobileNetV2's convolutions at batch 1, 1 thread, beside PyTorch (ratio > 1: loopc faster)")
    try:
        import torch  # noqa: F401
    except ImportError:
        print("   (PyTorch is not installed: skipped)")
        return
    layers = convsuite.mobilenet_v2(1)
    if small:
        layers = [convsuite.Conv(1, 32, 28, 32, 3, 1, 1, groups=32), convsuite.Conv(1, 24, 28, 48, 1)]
    for layer in layers:
        f, build_s = convsuite.build(layer)
        r = convsuite.measure(layer, f, "default", build_s, (1,), repeat=1 if small else 3,
                              min_repeat_ms=5 if small else 50)
        print(f"   {str(layer):26s} torch {r.torch_ms[1]:7.3f} ms  loopc {r.loopc_ms[1]:7.3f} ms  "
              f"x{r.ratio[1]:.2f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--small", action="store_true")
    small = ap.parse_args().small
    C, H = (8, 9) if small else (32, 28)
    declare_and_check(C, H)
    padding_per_side(C, H)
    the_depthwise_schedule(C, H)
    mobilenet_layers(small)


if __name__ == "__main__":
    main()
