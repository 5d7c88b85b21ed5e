"""Integer inference of a derived subnet: the bit-exact reference of the accelerator (DESIGN.md contract 3).

The accelerator computes each conv on integers into 32-bit accumulators; the output unit then finishes the
layer with integer arithmetic only, ONE definition in :mod:`jaq.hw.requant` (docs/execution-model.md,
"Output unit"), used here, by the simulator's host loop and by the RTL's tests:

    acc  = conv(x_int (zero-padded), w_int)                               # int64 here, must fit in int32
    out  = sat((acc*mult[c] + res*res_mult + bias[c] + 2^(shift-1)) >> shift)   # BN, residual, ReLU, bits
    pool: u = sum over H, W of the activations before rounding          # head: one rounding of the mean

The integer constants come from the real scales by :meth:`jaq.hw.requant.Requant.from_real`: per channel
``mult = s_act * s_wgt * bn_mul / s_next`` and ``bias = bn_add / s_next`` (output LSBs), ``res_mult =
s_residual / s_next``. ``s_act`` is the layer's input scale (from its quantizer's running range), ``s_wgt`` its
weight scale (Eq. 2 min-max of the weight tensor), ``s_next`` the next layer's input scale. The head's unit
averages its ReLU outputs over H x W before the one rounding to the classifier's input. The classifier's unit writes 32-bit logits in units of ``s_act * s_wgt`` (:attr:`IntLayer.logit_scale`);
:meth:`IntegerNet.run` returns them as float64 real logits.

Tensors: activations N x C x H x W int64 (the accelerator's own layout, [IH][IW][C], is the simulator's
concern), weights out_ch x in_ch/groups x K x K int64 (PyTorch order). The conv runs in float64, which is exact
for these integers: |acc| <= C/g * K^2 * 2^8 * 2^7 < 2^53 (the result is checked against int32).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from jaq.hw.records import Layer
from jaq.hw.requant import Requant
from jaq.nn.ops import MBConvOp, QConv2d
from jaq.nn.quant import quantize_int
from jaq.nn.subnet import SubNet

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


def layer_requant(*, in_scale: float, wgt_scale: float, bn_mul, bn_add, relu: bool,
                  out_scale: float | None = None, out_bits: int | None = None, out_signed: bool = False,
                  residual_scale: float | None = None, pool_pixels: int = 1, where: str = "layer") -> Requant:
    """The output-unit constants of one layer from its real scales (module docstring). ``out_bits`` None: the
    classifier, 32-bit logits in units of ``in_scale * wgt_scale``."""
    mul = torch.as_tensor(bn_mul, dtype=torch.float64).flatten()
    add = torch.as_tensor(bn_add, dtype=torch.float64).flatten()
    if out_bits is None:
        out_scale, out_bits, out_signed = float(in_scale) * float(wgt_scale), 32, True
    s_acc = float(in_scale) * float(wgt_scale) / float(out_scale)
    res = None if residual_scale is None else float(residual_scale) / float(out_scale)
    return Requant.from_real((mul * s_acc).tolist(), (add / float(out_scale)).tolist(), res, out_bits=int(out_bits),
                             out_signed=bool(out_signed), relu=bool(relu), pool_pixels=pool_pixels, where=where)


def requantize(acc: torch.Tensor, *, in_scale: float, wgt_scale: float, bn_mul: torch.Tensor,
               bn_add: torch.Tensor, relu: bool, out_scale: float | None = None, out_bits: int | None = None,
               out_signed: bool = False, residual: torch.Tensor | None = None, residual_scale: float | None = None,
               pool: bool = False) -> torch.Tensor:
    """One layer's output unit on accumulators ``acc`` [..., C, H, W] (see the module docstring).

    ``residual``: integers of the block input, same shape as the output, with scale ``residual_scale``.
    Returns int64 integers at ``out_bits`` (signed per ``out_signed``), pooled over H, W if ``pool``; with
    ``out_bits`` None (the classifier) the float64 real logits."""
    pixels = acc.shape[-2] * acc.shape[-1] if pool else 1
    rq = layer_requant(in_scale=in_scale, wgt_scale=wgt_scale, bn_mul=bn_mul, bn_add=bn_add, relu=relu,
                       out_scale=out_scale, out_bits=out_bits, out_signed=out_signed,
                       residual_scale=residual_scale if residual is not None else None, pool_pixels=pixels)
    out = rq.apply(acc, residual, channel_axis=-3, pool_axes=(-2, -1) if pool else ())
    if out_bits is None:
        return out.to(torch.float64) * (float(in_scale) * float(wgt_scale))
    return out


def pad_input(x: torch.Tensor, layer: Layer) -> torch.Tensor:
    """Zero-pad integer activations [..., C, H, W] the way the host stores them: kernel//2 rows/cols on the top
    and left, then cut or extend to the padded extents ``layer.in_h`` x ``layer.in_w`` (jaq.hw.records)."""
    p = layer.kernel // 2
    h, w = x.shape[-2], x.shape[-1]
    bottom = layer.in_h - h - p
    right = layer.in_w - w - p
    x = F.pad(x, (p, 0, p, 0))
    if bottom >= 0 and right >= 0:
        return F.pad(x, (0, right, 0, bottom))
    return F.pad(x, (0, max(right, 0), 0, max(bottom, 0)))[..., :layer.in_h, :layer.in_w]


def conv_int(x_padded: torch.Tensor, weight: torch.Tensor, stride: int, groups: int) -> torch.Tensor:
    """The accelerator's conv: integer inputs (already padded) x integer weights -> int64 accumulators
    [N, out_ch, out_h, out_w]. Raises OverflowError if an accumulator leaves the 32-bit range."""
    squeeze = x_padded.dim() == 3
    xp = x_padded.unsqueeze(0) if squeeze else x_padded
    acc = F.conv2d(xp.to(torch.float64), weight.to(torch.float64), None, stride, 0, 1, groups)
    acc = acc.round().to(torch.int64)
    if acc.numel() and (int(acc.min()) < INT32_MIN or int(acc.max()) > INT32_MAX):
        raise OverflowError("accumulator outside the 32-bit range")
    return acc[0] if squeeze else acc


@dataclass
class IntLayer:
    """One accelerator layer of an integer network.

    ``src``: index of the input tensor (0 = network input, j + 1 = output of layer j); ``residual_src``: tensor
    added after BN (an MBConv block input) with ``residual_scale``. Scales are in real units per integer step.
    ``out_*``: the consumer's quantizer (None for the classifier, whose output is the float logits).
    """

    layer: Layer
    weight: torch.Tensor
    wgt_scale: float
    act_scale: float
    bn_mul: torch.Tensor
    bn_add: torch.Tensor
    relu: bool
    src: int
    residual_src: int | None = None
    residual_scale: float | None = None
    pool: bool = False
    out_scale: float | None = None
    out_bits: int | None = None
    out_signed: bool = False

    @property
    def requant(self) -> Requant:
        """This layer's output-unit constants (:mod:`jaq.hw.requant`)."""
        return layer_requant(in_scale=self.act_scale, wgt_scale=self.wgt_scale, bn_mul=self.bn_mul,
                             bn_add=self.bn_add, relu=self.relu, out_scale=self.out_scale, out_bits=self.out_bits,
                             out_signed=self.out_signed, residual_scale=self.residual_scale,
                             pool_pixels=self.layer.out_h * self.layer.out_w if self.pool else 1,
                             where=f"layer {self.layer.name or self.layer.kind}")

    @property
    def logit_scale(self) -> float:
        """Real value of one LSB of the classifier's 32-bit output (``act_scale * wgt_scale``)."""
        return float(self.act_scale) * float(self.wgt_scale)

    def requantize(self, acc: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        return requantize(acc, in_scale=self.act_scale, wgt_scale=self.wgt_scale, bn_mul=self.bn_mul,
                          bn_add=self.bn_add, relu=self.relu, out_scale=self.out_scale, out_bits=self.out_bits,
                          out_signed=self.out_signed, residual=residual, residual_scale=self.residual_scale,
                          pool=self.pool)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form: the Layer fields plus integer weights (flat, PyTorch order) and the host constants."""
        d = self.layer.to_dict()
        d.update({"weights": self.weight.flatten().tolist(), "weight_shape": list(self.weight.shape),
                  "wgt_scale": self.wgt_scale, "act_scale": self.act_scale,
                  "bn_mul": self.bn_mul.tolist(), "bn_add": self.bn_add.tolist(), "relu": self.relu,
                  "src": self.src, "residual_src": self.residual_src, "residual_scale": self.residual_scale,
                  "pool": self.pool, "out_scale": self.out_scale, "out_bits": self.out_bits,
                  "out_signed": self.out_signed})
        return d


@dataclass
class IntegerNet:
    """A subnet in integer arithmetic. ``layers`` in execution order; input quantized by ``quantize_input``."""

    layers: list[IntLayer]
    input_bits: int
    input_signed: bool
    input_scale: float
    meta: dict[str, Any] = field(default_factory=dict)

    def quantize_input(self, x: torch.Tensor) -> torch.Tensor:
        """Real input images N x C x H x W -> the stem's integers (jaq.nn.quant.quantize_int)."""
        return quantize_int(x, self.input_bits, self.input_signed, self.input_scale)[0]

    def run(self, x: torch.Tensor, trace: bool = False):
        """Logits (float64, N x classes) for real inputs ``x``; with ``trace``, also a list per layer of
        ``{"input": padded input ints, "acc": int64 accumulators, "output": requantized ints / logits}``."""
        tensors = [self.quantize_input(x)]
        records = []
        for L in self.layers:
            xin = pad_input(tensors[L.src], L.layer)
            acc = conv_int(xin, L.weight, L.layer.stride, L.layer.groups)
            res = tensors[L.residual_src] if L.residual_src is not None else None
            out = L.requantize(acc, res)
            tensors.append(out)
            if trace:
                records.append({"input": xin, "acc": acc, "output": out})
        logits = tensors[-1].flatten(1)
        return (logits, records) if trace else logits

    __call__ = run

    def to_dict(self) -> dict[str, Any]:
        return {"input_bits": self.input_bits, "input_signed": self.input_signed, "input_scale": self.input_scale,
                "layers": [L.to_dict() for L in self.layers], **({"meta": self.meta} if self.meta else {})}


def _bn_fold(bn: torch.nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    var = bn.running_var.detach().to(torch.float64)
    mean = bn.running_mean.detach().to(torch.float64)
    gamma = bn.weight.detach().to(torch.float64)
    beta = bn.bias.detach().to(torch.float64)
    mul = gamma / torch.sqrt(var + bn.eps)
    return mul, beta - mean * mul


@torch.no_grad()
def export_integer(net: SubNet) -> IntegerNet:
    """Integer weights, scales and folded BN of a trained subnet (uses its eval-mode running statistics)."""
    net.eval()
    layers = net.layers()
    # (conv, bn, relu, src, residual_src, pool) in execution order; tensor 0 = input, tensor j+1 = out of j
    seq: list[tuple[QConv2d, Any, bool, int, int | None, bool]] = [(net.stem, net.stem_bn, True, 0, None, False)]
    for op in net.blocks:
        if op.is_identity:
            continue
        block_in = len(seq)
        if isinstance(op, MBConvOp):
            seq.append((op.expand, op.bn1, True, block_in, None, False))
            seq.append((op.dw, op.bn2, True, block_in + 1, None, False))
            seq.append((op.project, op.bn3, False, block_in + 2, block_in if op.residual else None, False))
        else:
            seq.append((op.conv, op.bn, False, block_in, None, False))
    seq.append((net.head, net.head_bn, True, len(seq), None, True))
    seq.append((net.fc, None, False, len(seq), None, False))
    assert len(seq) == len(layers)

    out: list[IntLayer] = []
    for j, ((conv, bn, relu, src, rsrc, pool), lay) in enumerate(zip(seq, layers)):
        w_int, s_w = quantize_int(conv.weight, lay.wgt_bits, True)
        s_a = float(conv.act_scale(lay.act_bits))
        if bn is not None:
            mul, add = _bn_fold(bn)
        else:
            mul = torch.ones(conv.out_ch, dtype=torch.float64)
            add = conv.bias.detach().to(torch.float64) if conv.bias is not None else torch.zeros(conv.out_ch,
                                                                                                  dtype=torch.float64)
        il = IntLayer(layer=lay, weight=w_int, wgt_scale=float(s_w), act_scale=s_a, bn_mul=mul, bn_add=add,
                      relu=relu, src=src, pool=pool)
        if rsrc is not None:
            il.residual_src = rsrc
            il.residual_scale = s_a  # the block input, quantized at this block's first conv (== layer rsrc)
        if j + 1 < len(seq):
            nxt, nlay = seq[j + 1][0], layers[j + 1]
            il.out_scale = float(nxt.act_scale(nlay.act_bits))
            il.out_bits = nlay.act_bits
            il.out_signed = nlay.act_signed
        out.append(il)
    # the residual adds the block input as its first conv quantized it: that conv's scale, not the project's
    for il in out:
        if il.residual_src is not None:
            il.residual_scale = out[il.residual_src].act_scale
    first = layers[0]
    return IntegerNet(out, first.act_bits, first.act_signed, float(net.stem.act_scale(first.act_bits)),
                      meta={"space": net.space.name, "choice": net.choice.to_dict()})
