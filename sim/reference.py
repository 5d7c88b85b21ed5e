"""Integer reference convolution and random layer data, in the execution model's layouts (numpy, int64).

This is the golden function the RTL outputs are compared against, bit for bit (docs/verification.md).

Layouts (docs/execution-model.md section 2, all channel-innermost, batch 1):

* activations: the host's zero-padded input ``x[IH][IW][in_ch]`` with ``IH = (OH-1)*S + K`` (no padding is
  applied here: the array *is* the padded tensor);
* weights: PyTorch's ``w[out_ch][in_ch/G][K][K]`` (signed); the per-tile off-chip arrangement is
  :mod:`sim.memory_image`'s business;
* outputs: 32-bit accumulators ``y[OH][OW][out_ch]`` (int64 array holding values that fit in int32).

Group ``g`` reads input channels ``[g*Cg, (g+1)*Cg)`` and writes output channels ``[g*Mg, (g+1)*Mg)``, as in
``torch.nn.functional.conv2d(groups=G)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from jaq.errors import JaqError
from jaq.hw.packing import value_range
from jaq.hw.records import Layer

#: Accumulator width of the accelerator's output buffer and off-chip outputs, in bits.
ACC_BITS = 32


def wrap_acc(values: np.ndarray, bits: int = ACC_BITS) -> np.ndarray:
    """Two's complement wrap of integers to ``bits`` bits (what a ``bits``-bit accumulator holds), as int64."""
    v = np.asarray(values, dtype=np.int64)
    m = np.int64(1) << np.int64(bits)
    half = np.int64(1) << np.int64(bits - 1)
    return ((v + half) % m) - half


def conv_reference(x: np.ndarray, w: np.ndarray, stride: int = 1, groups: int = 1,
                   psum: np.ndarray | None = None) -> np.ndarray:
    """Integer convolution of a padded input, the accelerator's arithmetic (exact int64, no wrap).

    ``x``: ``[IH][IW][C]`` integers (already zero-padded); ``w``: ``[M][C/groups][K][K]`` integers;
    ``stride``: 1, 2, ...; ``groups`` divides C and M (``groups == C == M`` is depthwise; a fully connected layer
    is ``IH = IW = K = 1``). ``psum`` (optional, ``[OH][OW][M]``) is added, like a partial sum loaded back.
    Returns ``y[OH][OW][M]`` int64 with ``OH = (IH-K)//S + 1``.
    """
    x = np.asarray(x)
    w = np.asarray(w)
    if x.ndim != 3 or w.ndim != 4:
        raise JaqError(f"expected x[IH][IW][C] and w[M][Cg][K][K], got shapes {x.shape} and {w.shape}", "shape")
    ih, iw, c = x.shape
    m, cg, k, k2 = w.shape
    if k != k2:
        raise JaqError(f"kernel must be square, got {k}x{k2}", "kernel")
    if c % groups or m % groups or c // groups != cg:
        raise JaqError(f"groups={groups} does not match C={c}, M={m}, Cg={cg}", "groups")
    if ih < k or iw < k:
        raise JaqError(f"input {ih}x{iw} smaller than kernel {k}", "shape")
    oh, ow = (ih - k) // stride + 1, (iw - k) // stride + 1
    g, mg = groups, m // groups
    # windows[oh][ow][c][kh][kw]
    win = np.lib.stride_tricks.sliding_window_view(x.astype(np.int64), (k, k), axis=(0, 1))
    win = win[: (oh - 1) * stride + 1: stride, : (ow - 1) * stride + 1: stride]
    win = win.reshape(oh, ow, g, cg * k * k)
    wk = w.astype(np.int64).reshape(g, mg, cg * k * k)
    # y[oh][ow][g][mg] = sum_r win[oh][ow][g][r] * wk[g][mg][r]  (int64 matmul per group, exact)
    y = np.einsum("hwgr,gmr->hwgm", win, wk, optimize=False).reshape(oh, ow, m)
    if psum is not None:
        y = y + np.asarray(psum, dtype=np.int64)
    return y


def layer_reference(layer: Layer, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """:func:`conv_reference` of one :class:`~jaq.hw.records.Layer`, checking shapes against it."""
    expect_x = (layer.in_h, layer.in_w, layer.in_ch)
    expect_w = (layer.out_ch, layer.in_ch_per_group, layer.kernel, layer.kernel)
    if tuple(x.shape) != expect_x:
        raise JaqError(f"activations shape {tuple(x.shape)} != {expect_x} for layer {layer.name!r}", "x")
    if tuple(w.shape) != expect_w:
        raise JaqError(f"weights shape {tuple(w.shape)} != {expect_w} for layer {layer.name!r}", "w")
    y = conv_reference(x, w, layer.stride, layer.groups)
    if np.any(y != wrap_acc(y)):
        raise JaqError(f"layer {layer.name!r}: an accumulator exceeds 32 bits (max |y| = {np.abs(y).max()})", "x")
    return y


@dataclass
class LayerData:
    """Integer operands and golden output of one layer. Shapes as in this module's docstring."""

    layer: Layer
    x: np.ndarray  #: [IH][IW][in_ch] int64, padded input (activation bits, signedness of the layer)
    w: np.ndarray  #: [out_ch][in_ch/G][K][K] int64, signed weight bits
    y: np.ndarray  #: [OH][OW][out_ch] int64, 32-bit accumulators
    #: [OH][OW][out_ch] int64, the residual operand (layer.res_bits bits, res_signed); None without one
    res: np.ndarray | None = None

    def to_npz_dict(self) -> dict[str, np.ndarray]:
        d = {"x": self.x, "w": self.w, "y": self.y}
        if self.res is not None:
            d["res"] = self.res
        return d


def random_layer_data(layer: Layer, rng: np.random.Generator | int | None = 0, pad: int | None = None,
                      extremes: float = 0.1) -> LayerData:
    """Random operands for ``layer`` at its bit widths and signedness (ranges from :func:`jaq.hw.packing.value_range`).

    ``pad``: width of the zero border the host would add (default ``kernel // 2``, "same" padding; 0 for none);
    the border is part of the padded tensor and stays zero. ``extremes``: fraction of elements set to the range's
    minimum or maximum (sign-extension and overflow corners). Returns :class:`LayerData` with the golden output.
    """
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    pad = layer.kernel // 2 if pad is None else int(pad)
    alo, ahi = value_range(layer.act_bits, layer.act_signed)
    wlo, whi = value_range(layer.wgt_bits, True)

    def draw(shape, lo, hi):
        v = rng.integers(lo, hi + 1, size=shape, dtype=np.int64)
        sel = rng.random(shape) < extremes
        v[sel] = np.where(rng.random(int(sel.sum())) < 0.5, lo, hi)
        return v

    x = draw((layer.in_h, layer.in_w, layer.in_ch), alo, ahi)
    if pad > 0:
        p = min(pad, (layer.in_h - 1) // 2, (layer.in_w - 1) // 2)
        if p > 0:
            x[:p] = 0
            x[-p:] = 0
            x[:, :p] = 0
            x[:, -p:] = 0
    w = draw((layer.out_ch, layer.in_ch_per_group, layer.kernel, layer.kernel), wlo, whi)
    res = None
    if layer.res_bits:
        res = draw((layer.out_h, layer.out_w, layer.out_ch), *value_range(layer.res_bits, layer.res_signed))
    return LayerData(layer, x, w, layer_reference(layer, x, w), res)


def random_requant(layer: Layer, rng: np.random.Generator | int | None = 0):
    """Random output-unit constants for ``layer`` (its ``out_bits``/``out_signed``): per-channel multipliers that
    map the layer's accumulator range onto a few output ranges (so outputs both saturate and stay inside),
    biases of a few output LSBs, ReLU half of the time, the pooled mean for a pooled layer
    (:class:`jaq.hw.requant.Requant`)."""
    from jaq.hw.requant import Requant

    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    alo, ahi = value_range(layer.act_bits, layer.act_signed)
    wlo, whi = value_range(layer.wgt_bits, True)
    span = max(abs(alo), ahi) * max(abs(wlo), whi) * layer.in_ch_per_group * layer.kernel ** 2
    out_span = 2.0 ** min(layer.out_bits, 24)
    scale = out_span / max(span, 1) * 4.0 ** rng.uniform(-1.5, 1.0, size=layer.out_ch)
    mult = scale * np.where(rng.random(layer.out_ch) < 0.2, -1.0, 1.0)
    bias = rng.uniform(-0.3, 0.3, size=layer.out_ch) * out_span
    # a residual moves the output by up to a quarter of its range (either sign)
    res_mult = float(rng.uniform(-0.25, 0.25)) * out_span / (1 << layer.res_bits) if layer.res_bits else None
    return Requant.from_real(mult.tolist(), bias.tolist(), res_mult, out_bits=layer.out_bits, out_signed=layer.out_signed,
                             relu=bool(rng.random() < 0.5), where=f"layer {layer.name or layer.kind}",
                             pool_pixels=layer.out_h * layer.out_w if layer.pool else 1)


__all__ = ["ACC_BITS", "wrap_acc", "conv_reference", "layer_reference", "LayerData", "random_layer_data",
           "random_requant"]
