"""Window geometry shared by convolution and pooling, forward and backward (TOPI's conventions).

One place answers: which axes of a layout string are spatial, what a padding spec means
(an int, per-axis ints, before/after ints, or "SAME"/"VALID"), how long a window op's output
is (floor or ceil mode), and how many taps of a window fall inside the (padded) input::

    lay = parse_layout("NHWC", 2, "pool2d")                 # batch 0, channel 3, spatial (1, 2)
    before, after = resolve_padding((1, 0, 2, 1), (3, 3), "pool2d")   # (1, 0), (2, 1)
    Window(size=7, kernel=3, stride=2, dilation=1, before=1, after=2, ceil_mode=True).out   # 5

Only ``loopc.te`` is imported here, so that ``ops.py``, ``pooling.py`` and the backward ops
can all use it without an import cycle.
"""
from __future__ import annotations

from dataclasses import dataclass

from loopc import te
from loopc.errors import LoopcError, UnsupportedError

#: the spatial letters of a layout, outermost first; an n-D window op uses the last n
SPATIAL = "DHW"


def ints(v, n, what, op):
    """``v`` as a tuple of ``n`` ints: an int repeats, a sequence must have ``n`` ints."""
    if isinstance(v, int) and not isinstance(v, bool):
        return (v,) * n
    if isinstance(v, (tuple, list)) and len(v) == n and all(isinstance(x, int) and not isinstance(x, bool)
                                                           for x in v):
        return tuple(v)
    raise LoopcError(f"{op}: {what} must be an int or {n} ints, got {v!r}")


def positive(v, n, what, op):
    """:func:`ints`, each at least 1."""
    out = ints(v, n, what, op)
    if min(out) < 1:
        raise LoopcError(f"{op}: {what} {v!r} must be positive")
    return out


def conv_out(size, kernel, stride=1, pad=0, dilation=1) -> int:
    """Output length of a window op (convolution, pooling) along one axis: the windows of
    ``kernel`` taps ``dilation`` apart, ``stride`` apart, over ``size`` padded by ``pad`` each side."""
    return (size + 2 * pad - dilation * (kernel - 1) - 1) // stride + 1


@dataclass(frozen=True)
class Layout:
    """A data layout such as "NCHW" or "NDHWC": where the batch, channel and spatial axes are
    (``spatial`` in D, H, W order)."""
    name: str
    batch: int
    channel: int
    spatial: tuple

    def sizes(self, shape):
        return tuple(shape[a] for a in self.spatial)

    def at(self, index, spatial_index):
        """``index`` (one per axis) with its spatial entries replaced by ``spatial_index``."""
        index = list(index)
        for axis, v in zip(self.spatial, spatial_index):
            index[axis] = v
        return tuple(index)


def parse_layout(layout, nd, op) -> Layout:
    """The :class:`Layout` of ``layout``, a permutation of N, C and the last ``nd`` of D, H, W
    (TOPI's "NCHW", "NHWC", "NCW", "NWC", "NCDHW", "NDHWC" ...); LoopcError otherwise. TOPI's
    packed layouts ("NCHW16c") are not supported."""
    letters = "NC" + SPATIAL[-nd:]
    if not isinstance(layout, str) or sorted(layout) != sorted(letters):
        if isinstance(layout, str) and any(ch.islower() or ch.isdigit() for ch in layout):
            raise UnsupportedError(f"{op}: packed layout {layout!r} is not supported; use a permutation of "
                                   f"{letters!r} such as {'NC' + SPATIAL[-nd:]!r} or {'N' + SPATIAL[-nd:] + 'C'!r}")
        raise LoopcError(f"{op}: unknown layout {layout!r}; expected a permutation of {letters!r} such as "
                         f"{'NC' + SPATIAL[-nd:]!r} or {'N' + SPATIAL[-nd:] + 'C'!r}")
    return Layout(layout, layout.index("N"), layout.index("C"), tuple(layout.index(ch) for ch in SPATIAL[-nd:]))


def resolve_padding(padding, extents, op):
    """``(before, after)`` tuples of a padding spec for windows of ``extents`` (the dilated
    kernel, one per spatial axis), TOPI's conventions:

    - an int: that much on every side;
    - ``n`` ints (one per axis): that much on both sides of each axis;
    - ``2n`` ints: all the befores, then all the afters — (top, left, bottom, right) in 2-D,
      (left, right) in 1-D, (front, top, left, back, bottom, right) in 3-D;
    - "VALID": none; "SAME": ``extent - 1`` per axis, the odd one before (TOPI's
      ``get_pad_tuple``: top/left get ``ceil``; PyTorch's padding="same" puts it after).
      Like TOPI, "SAME" keeps the size only at stride 1.
    """
    n = len(extents)
    if isinstance(padding, str):
        mode = padding.upper()
        if mode == "VALID":
            return (0,) * n, (0,) * n
        if mode == "SAME":
            total = [e - 1 for e in extents]
            before = tuple((t + 1) // 2 for t in total)
            return before, tuple(t - b for t, b in zip(total, before))
        raise LoopcError(f"{op}: unknown padding {padding!r}; use 'SAME', 'VALID', an int, {n} ints or {2 * n} ints")
    if isinstance(padding, (tuple, list)) and len(padding) == 2 * n and n > 0:
        pads = ints(padding, 2 * n, "padding", op)
        before, after = pads[:n], pads[n:]
    elif isinstance(padding, (int, tuple, list)) and not isinstance(padding, bool):
        try:
            before = after = ints(padding, n, "padding", op)
        except LoopcError:
            raise LoopcError(f"{op}: padding must be 'SAME', 'VALID', an int, {n} ints or {2 * n} ints "
                             f"(befores then afters), got {padding!r}") from None
    else:
        raise LoopcError(f"{op}: padding must be 'SAME', 'VALID', an int, {n} ints or {2 * n} ints, got {padding!r}")
    if min(before + after) < 0:
        raise LoopcError(f"{op}: padding {padding!r} is negative; pad with >= 0 on each side")
    return before, after


@dataclass(frozen=True)
class Window:
    """One spatial axis of a window op: ``size`` input elements padded by ``before`` and
    ``after``, windows of ``kernel`` taps ``dilation`` apart, ``stride`` apart.

    ``ceil_mode`` (PyTorch's rule, which TOPI lacks): the output length rounds up, but a last
    window must start inside the input or the leading padding, never in the trailing one."""
    size: int
    kernel: int
    stride: int = 1
    dilation: int = 1
    before: int = 0
    after: int = 0
    ceil_mode: bool = False

    @property
    def extent(self) -> int:
        """The dilated window: from its first tap to its last, inclusive."""
        return (self.kernel - 1) * self.dilation + 1

    @property
    def out(self) -> int:
        span = self.size + self.before + self.after - self.extent
        if not self.ceil_mode:
            return max(span // self.stride + 1, 0)
        # rounded up, a window longer than the padded input by less than the stride still
        # counts (PyTorch's pooling_output_shape: 1 window of 2 over 1 element, stride 2)
        n = -(-span // self.stride) + 1
        if (n - 1) * self.stride >= self.size + self.before:
            n -= 1
        return max(n, 0)

    @property
    def reaches_past_padding(self) -> bool:
        """Whether the last window (ceil mode) has taps past the trailing padding."""
        return (self.out - 1) * self.stride + self.extent > self.size + self.before + self.after

    def position(self, o, r):
        """The input index of tap ``r`` of window ``o`` (may be in the padding)."""
        return o * self.stride + r * self.dilation - self.before

    def taps(self, o, include_pad):
        """How many taps of window ``o`` fall in the input (``include_pad``: in the padded
        input), an int expression; a constant when it is the same for every window."""
        lo, hi = (-self.before, self.size + self.after) if include_pad else (0, self.size)
        if include_pad and not self.reaches_past_padding:
            return self.kernel
        if not include_pad and self.before == 0 and (self.out - 1) * self.stride + self.extent <= self.size:
            return self.kernel
        start = o * self.stride - self.before
        if self.dilation == 1:
            return te.max(te.min(start + self.kernel, hi) - te.max(start, lo), 1)
        count = None
        for r in range(self.kernel):
            p = start + r * self.dilation
            hit = te.if_then_else(te.all(p >= lo, p < hi), 1, 0)
            count = hit if count is None else count + hit
        return te.max(count, 1)


def windows(op, layout, shape, kernel, stride, dilation, padding, ceil_mode=False):
    """The :class:`Window` of each spatial axis of a window op over data of ``shape`` in
    ``layout`` (a :class:`Layout`); LoopcError naming ``op`` when a window does not fit."""
    nd = len(layout.spatial)
    kernel = positive(kernel, nd, "kernel", op)
    stride = positive(kernel if stride is None else stride, nd, "stride", op)
    dilation = positive(dilation, nd, "dilation", op)
    extents = tuple((k - 1) * d + 1 for k, d in zip(kernel, dilation))
    before, after = resolve_padding(padding, extents, op)
    sizes = layout.sizes(shape)
    wins = tuple(Window(*args, bool(ceil_mode)) for args in zip(sizes, kernel, stride, dilation, before, after))
    if any(w.out <= 0 for w in wins):
        raise LoopcError(f"{op}: the {'x'.join(map(str, extents))} window does not fit the "
                         f"{'x'.join(map(str, sizes))} input with padding {padding!r}; "
                         f"pad more or use a smaller kernel")
    return wins


def check_half_window(op, wins, padding):
    """PyTorch's rule for pooling: no side padded by more than half the (dilated) window, so
    that every window holds an input element."""
    for w in wins:
        if 2 * max(w.before, w.after) > w.extent:
            raise LoopcError(f"{op}: padding {padding!r} pads a side by {max(w.before, w.after)}, more than half "
                             f"the window of {w.extent}; pad at most {w.extent // 2} per side")
