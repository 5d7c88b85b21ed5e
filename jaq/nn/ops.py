"""Quantized conv and the FBNet candidate ops (MBConv k{3,5}_e{1,3,6}[_g2] and skip) with CSQ.

Op structure (docs/supernet.md):

* MBConv ``kK_eE[_gG]``: 1x1 expand conv (C_in -> E*C_in, G groups) + BN + ReLU, KxK depthwise conv (stride s)
  + BN + ReLU, 1x1 project conv (E*C_in -> C_out, G groups) + BN (linear), + residual when s == 1 and
  C_in == C_out. As in FBNet, ``e1`` ops keep the 1x1 expand conv (C_in -> C_in): otherwise ``k3_e1`` and
  ``k3_e1_g2`` would differ only in the projection. FBNet shuffles channels after the grouped expand; we do
  not (the accelerator has no shuffle unit; the two groups mix in the next block's dense 1x1 convs).
* ``skip``: identity when s == 1 and C_in == C_out, else a 1x1 conv with stride s + BN (linear; FBNet's
  projection shortcut).

Every conv is a :class:`QConv2d`: weights quantized at each of the op's weight-bit candidates and mixed by the
op's beta (Eq. 5), the input activation quantized at each of the op's act-bit candidates and mixed by beta,
on every channel (``full``) or only on the selected channels Omega (CSQ, Eq. 6).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from jaq.hw.records import Layer
from jaq.nn.quant import RangeTracker, fake_quant_multi, int_ranges, mix_bits, mixed_fake_quant
from jaq.nn.space import OP_SPECS, SKIP, conv_out_size


def num_selected(channels: int, k_percent: float) -> int:
    """Channels CSQ quantizes: ceil(K% of C), at least 1, at most C."""
    return max(1, min(channels, math.ceil(channels * k_percent / 100.0 - 1e-9)))


def select_channels(importance: torch.Tensor, k_percent: float, mode: str = "csq") -> torch.Tensor:
    """Omega (Eq. 8): indices (ascending, int64) of the channels to quantize.

    ``csq``: the top ceil(K% C) by ``importance`` (ties broken by the lower index: stable sort, deterministic);
    ``channel0``: the first ceil(K% C) channels regardless of importance (the paper's fixed-selection ablation).
    """
    c = importance.numel()
    n = num_selected(c, k_percent)
    if mode == "channel0":
        return torch.arange(n, device=importance.device)
    order = torch.sort(importance.detach(), descending=True, stable=True).indices[:n]
    return torch.sort(order).values


class QConv2d(nn.Module):
    """A conv whose weights and input activations are quantized (Eq. 2) and mixed over bit candidates (Eq. 5).

    ``act_bits``/``wgt_bits``: candidate widths (a single width for fixed layers). ``act_signed``: signedness
    of the input activation (see jaq.nn.quant). Padding is kernel // 2 (zeros; host-side on the accelerator).
    Conv has no bias (a BN follows) unless ``bias=True`` (the classifier).
    """

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 1, stride: int = 1, groups: int = 1,
                 act_bits=(8,), wgt_bits=(8,), act_signed: bool = False, bias: bool = False,
                 act_momentum: float = 0.1):
        super().__init__()
        self.in_ch, self.out_ch, self.kernel, self.stride, self.groups = in_ch, out_ch, kernel, stride, groups
        self.padding = kernel // 2
        self.act_signed = act_signed
        self.weight = nn.Parameter(torch.empty(out_ch, in_ch // groups, kernel, kernel))
        if bias:  # the classifier (no BN after it): small weights, so the initial logits are ~0 (loss ~ln C)
            nn.init.normal_(self.weight, 0.0, 0.01)
        else:  # convs followed by BN: He init on the fan-out
            nn.init.kaiming_normal_(self.weight, mode="fan_out", nonlinearity="relu")
        self.bias = nn.Parameter(torch.zeros(out_ch)) if bias else None
        self.register_buffer("act_bits", torch.tensor([float(b) for b in act_bits]), persistent=False)
        self.register_buffer("wgt_bits", torch.tensor([float(b) for b in wgt_bits]), persistent=False)
        self.range = RangeTracker(act_momentum)
        #: CSQ implementation: False = add the conv of the (quantized - float) difference on the selected
        #: channels (never builds a full quantized tensor); True = scatter the quantized channels into a copy
        #: of the input and convolve that (the literal Eq. 6; one extra full tensor per conv input).
        self.materialize = False

    # -- weights --------------------------------------------------------------------------------------------
    def quantized_weight(self, wb: torch.Tensor | None = None, widx: int | None = None) -> torch.Tensor:
        """W~ = sum_k wb[k] * Q_k(W) (Eq. 5). ``widx``: hard-sampled candidate (compute only that one)."""
        bits, weights = self.wgt_bits, wb
        if widx is not None:
            bits = bits[widx:widx + 1]
            weights = None if wb is None else wb[widx:widx + 1]
        w = self.weight
        if weights is None:
            if bits.numel() != 1:
                raise ValueError("several weight-bit candidates need weights")
            return fake_quant_multi(w, bits, True, w.detach().min(), w.detach().max())[0]
        # the m quantized weight copies are recomputed in backward rather than stored (weights are small,
        # but at small batch sizes 3 copies of every candidate's weights rival the activations)
        return mixed_fake_quant(w, bits, True, w.detach().min(), w.detach().max(), weights)

    def _conv(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, w, self.bias, self.stride, self.padding, 1, self.groups)

    # -- activations ----------------------------------------------------------------------------------------
    def quantize_input(self, x: torch.Tensor, ab: torch.Tensor | None = None, aidx: int | None = None,
                       omega: torch.Tensor | None = None) -> torch.Tensor:
        """A~ (Eq. 5, or Eq. 6 when ``omega`` is given: only those channels quantized, the rest bit-identical)."""
        bits, weights = self._act_candidates(ab, aidx)
        lo_obs, hi_obs = self.range.observe(x)
        if omega is None:
            return mix_bits(fake_quant_multi(x, bits, self.act_signed, lo_obs, hi_obs), weights)
        xs = x.index_select(1, omega)
        xq = mix_bits(fake_quant_multi(xs, bits, self.act_signed, lo_obs, hi_obs), weights)
        return x.index_copy(1, omega, xq)

    def _act_candidates(self, ab, aidx):
        bits, weights = self.act_bits, ab
        if aidx is not None:
            bits = bits[aidx:aidx + 1]
            weights = None if ab is None else ab[aidx:aidx + 1]
        if weights is None and bits.numel() != 1:
            raise ValueError("several act-bit candidates need weights")
        return bits, weights

    def forward(self, x: torch.Tensor, ab: torch.Tensor | None = None, wb: torch.Tensor | None = None,
                aidx: int | None = None, widx: int | None = None, omega: torch.Tensor | None = None,
                quant_act: bool = True, quant_wgt: bool = True) -> torch.Tensor:
        """conv(A~, W~). ``ab``/``wb``: mixing weights over act/weight bit candidates (None for one candidate);
        ``aidx``/``widx``: hard-sampled candidate index; ``omega``: CSQ channel indices (None: all channels);
        ``quant_act``/``quant_wgt`` False: float activations / weights (the unquantized baseline)."""
        w = self.quantized_weight(wb, widx) if quant_wgt else self.weight
        if not quant_act:
            return self._conv(x, w)
        if omega is None or self.materialize:
            return self._conv(self.quantize_input(x, ab, aidx, omega), w)
        # CSQ without materialising A~: conv is linear in its input, so
        # conv(A~, W) = conv(A, W) + conv(D, W) with D = A~ - A, non-zero only on the channels in omega.
        bits, weights = self._act_candidates(ab, aidx)
        lo_obs, hi_obs = self.range.observe(x)
        xs = x.index_select(1, omega)
        delta = mix_bits(fake_quant_multi(xs, bits, self.act_signed, lo_obs, hi_obs), weights) - xs
        y = self._conv(x, w)
        return self._add_sparse_conv(y, delta, omega, w)

    def _add_sparse_conv(self, y, delta, omega, w):
        """y += conv(delta on channels omega). In place: the conv's backward does not need its output, so this
        is autograd-safe and avoids a second full-size output tensor."""
        n = omega.numel()
        if self.groups == 1:
            return y.add_(F.conv2d(delta, w.index_select(1, omega), None, self.stride, self.padding))
        if self.groups == self.in_ch == self.out_ch:  # depthwise: output channel j sees only input channel j
            corr = F.conv2d(delta, w.index_select(0, omega), None, self.stride, self.padding, 1, n)
            return y.index_add_(1, omega, corr)
        cg, mg = self.in_ch // self.groups, self.out_ch // self.groups
        wl = w.index_select(1, omega % cg)  # [out, n, k, k]: weights of each selected channel's local index
        same_group = (torch.arange(self.out_ch, device=w.device) // mg).unsqueeze(1) == (omega // cg).unsqueeze(0)
        wl = wl * same_group.to(w.dtype)[:, :, None, None]
        return y.add_(F.conv2d(delta, wl, None, self.stride, self.padding))

    def act_scale(self, bits: int) -> torch.Tensor:
        """Eval-time activation scale at ``bits`` (from the running range)."""
        return self.range.scale(bits, self.act_signed)

    def weight_int_range(self, bits: int):
        return int_ranges(torch.tensor(float(bits)), True)

    def layer(self, out_size: int, kind: str | None = None, name: str = "", act_bits: int = 8,
              wgt_bits: int = 8, fc: bool = False) -> Layer:
        """The jaq.hw.Layer of this conv at output resolution ``out_size`` (bits as given)."""
        if fc:
            kind = "fc"
        elif kind is None:
            if self.groups == self.in_ch == self.out_ch and self.kernel > 1:
                kind = "depthwise"
            elif self.kernel == 1:
                kind = "pointwise"
            else:
                kind = "conv"
        return Layer(kind=kind, in_ch=self.in_ch, out_ch=self.out_ch, out_h=out_size, out_w=out_size,
                     kernel=self.kernel, stride=self.stride, groups=self.groups, act_bits=act_bits,
                     wgt_bits=wgt_bits, act_signed=self.act_signed, name=name)


def bn_importance(bn: nn.BatchNorm2d) -> torch.Tensor:
    """|gamma| of a BN layer (Eq. 7's scale factors), detached: the channel importance of its output."""
    return bn.weight.detach().abs()


class MBConvOp(nn.Module):
    """FBNet inverted-residual candidate (see module docstring). ``in_signed``: signedness of the block input."""

    def __init__(self, name: str, in_ch: int, out_ch: int, stride: int, act_bits=(8,), wgt_bits=(8,),
                 in_signed: bool = True, bn_momentum: float = 0.1, act_momentum: float = 0.1):
        super().__init__()
        k, e, g = OP_SPECS[name]
        self.name, self.kernel, self.expansion, self.groups = name, k, e, g
        self.in_ch, self.out_ch, self.stride = in_ch, out_ch, stride
        mid = in_ch * e
        self.mid = mid
        kw = dict(act_bits=act_bits, wgt_bits=wgt_bits, act_momentum=act_momentum)
        self.expand = QConv2d(in_ch, mid, 1, 1, g, act_signed=in_signed, **kw)
        self.bn1 = nn.BatchNorm2d(mid, momentum=bn_momentum)
        self.dw = QConv2d(mid, mid, k, stride, mid, act_signed=False, **kw)
        self.bn2 = nn.BatchNorm2d(mid, momentum=bn_momentum)
        self.project = QConv2d(mid, out_ch, 1, 1, g, act_signed=False, **kw)
        self.bn3 = nn.BatchNorm2d(out_ch, momentum=bn_momentum)
        self.residual = stride == 1 and in_ch == out_ch
        if self.residual:
            # zero-init the residual branch's last BN scale (Goyal et al. 2017): a residual block starts as the
            # identity. Without it the 22-block CIFAR net did not learn at lr 0.02 (all-k3_e3, float, 60 steps:
            # loss 2.32 -> 2.59, stem weight-gradient / weight norm 8.1 at init); with it, 21 % train accuracy.
            nn.init.zeros_(self.bn3.weight)

    @property
    def is_identity(self) -> bool:
        return False

    def convs(self) -> list[QConv2d]:
        return [self.expand, self.dw, self.project]

    def out_bn(self) -> nn.BatchNorm2d:
        return self.bn3

    def forward(self, x, ab=None, wb=None, aidx=None, widx=None, omega_in=None, mode: str = "full",
                k_percent: float = 3.0, quant_residual: bool = False):
        """Search mode: ``mode`` in csq/channel0 (CSQ on every conv input; ``omega_in`` is the block input's
        selection), full/hetero (all channels), none (float activations). ``quant_residual``: add the quantized
        block input (as the first conv consumed it) instead of the float one: the subnet's / accelerator's
        semantics."""
        qa = mode != "none"
        sparse = mode in ("csq", "channel0")
        kw = dict(ab=ab, wb=wb, aidx=aidx, widx=widx, quant_act=qa, quant_wgt=qa)
        if quant_residual:
            xq = self.expand.quantize_input(x, ab, aidx, omega_in if sparse else None) if qa else x
            h = self.expand(xq, ab=None, wb=wb, aidx=None, widx=widx, quant_act=False, quant_wgt=qa)
            x_res = xq
        else:
            h = self.expand(x, omega=omega_in if sparse else None, **kw)
            x_res = x
        h = F.relu(self.bn1(h))
        h = self.dw(h, omega=select_channels(bn_importance(self.bn1), k_percent, mode) if sparse else None, **kw)
        h = F.relu(self.bn2(h))
        h = self.project(h, omega=select_channels(bn_importance(self.bn2), k_percent, mode) if sparse else None,
                         **kw)
        h = self.bn3(h)
        return h + x_res if self.residual else h

    def layers(self, in_size: int, act_bits: int = 8, wgt_bits: int = 8, prefix: str = "") -> list[Layer]:
        """Layer records (expand, depthwise, project) for an input of ``in_size`` x ``in_size``."""
        out = conv_out_size(in_size, self.kernel, self.stride)
        return [self.expand.layer(in_size, name=f"{prefix}expand", act_bits=act_bits, wgt_bits=wgt_bits),
                self.dw.layer(out, name=f"{prefix}dw", act_bits=act_bits, wgt_bits=wgt_bits),
                self.project.layer(out, name=f"{prefix}project", act_bits=act_bits, wgt_bits=wgt_bits)]


class SkipOp(nn.Module):
    """FBNet's skip: identity when shapes match, else 1x1 conv (stride s) + BN."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, act_bits=(8,), wgt_bits=(8,), in_signed: bool = True,
                 bn_momentum: float = 0.1, act_momentum: float = 0.1):
        super().__init__()
        self.name = SKIP
        self.in_ch, self.out_ch, self.stride = in_ch, out_ch, stride
        self.identity = stride == 1 and in_ch == out_ch
        if not self.identity:
            self.conv = QConv2d(in_ch, out_ch, 1, stride, 1, act_bits=act_bits, wgt_bits=wgt_bits,
                                act_signed=in_signed, act_momentum=act_momentum)
            self.bn = nn.BatchNorm2d(out_ch, momentum=bn_momentum)

    @property
    def is_identity(self) -> bool:
        return self.identity

    def convs(self) -> list[QConv2d]:
        return [] if self.identity else [self.conv]

    def out_bn(self):
        return None if self.identity else self.bn

    def forward(self, x, ab=None, wb=None, aidx=None, widx=None, omega_in=None, mode: str = "full",
                k_percent: float = 3.0, quant_residual: bool = False):
        if self.identity:
            return x
        sparse = mode in ("csq", "channel0")
        return self.bn(self.conv(x, ab=ab, wb=wb, aidx=aidx, widx=widx, omega=omega_in if sparse else None,
                                 quant_act=mode != "none", quant_wgt=mode != "none"))

    def layers(self, in_size: int, act_bits: int = 8, wgt_bits: int = 8, prefix: str = "") -> list[Layer]:
        if self.identity:
            return []
        out = conv_out_size(in_size, 1, self.stride)
        return [self.conv.layer(out, name=f"{prefix}skip", act_bits=act_bits, wgt_bits=wgt_bits)]


def make_op(name: str, in_ch: int, out_ch: int, stride: int, **kw) -> nn.Module:
    """Build candidate ``name`` (an FBNet MBConv name or ``skip``)."""
    if name == SKIP:
        return SkipOp(in_ch, out_ch, stride, **kw)
    return MBConvOp(name, in_ch, out_ch, stride, **kw)
