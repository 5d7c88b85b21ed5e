"""The JAQ supernet: FBNet stem + N searchable mixed blocks + head, with op parameters alpha and bit
parameters beta (activations and weights, per op per block), Gumbel-softmax relaxation, and CSQ.

Forward (paper Eq. 5-8)::

    x = ReLU(BN(stem(x)))                               # fixed bits, full quantization
    for block l:  Omega_l = TopK(Gamma_l, K%)            # CSQ channel selection of the block input (Eq. 8)
                  x = sum_i  a_li * op_li(x; beta_a[l,i], beta_w[l,i], Omega_l)
                  Gamma_{l+1} = sum_i softmax(alpha_l)_i * |gamma_li|   (|gamma| of op i's last BN;
                                                          identity skip passes Gamma_l through)
    x = ReLU(BN(head(x))); avgpool; fc                   # fixed bits

``a_l = GumbelSoftmax(alpha_l, tau)``; likewise for the bit weights. Modes (``sampling``): ``soft`` (every op and
bit candidate computed and mixed; the paper's formulation), ``hard`` (straight-through one-hot sample: only
the sampled op / bit candidates computed; gradients still reach every alpha/beta entry through the soft
sample), ``argmax`` (no noise, hard argmax: evaluation of the current subnet inside the supernet), ``mean``
(no noise, soft: softmax(alpha / tau) mixture; a deterministic validation of the supernet).

``sample_blocks`` (hard sampling only; None: every block): per forward only this many blocks, drawn uniformly
at random (torch's global RNG), take a Gumbel sample of op and bits; every other block runs its current argmax op
and bits (straight-through one-hot of softmax(alpha / tau), no noise, so alpha/beta still get gradients). The
supernet stays near its current (warmed-up) path while each step explores a few blocks (issue 17: a path
resampled in every block at every step did not learn in a CPU budget).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from jaq.hw.records import Layer
from jaq.nn.ops import QConv2d, bn_importance, make_op, select_channels
from jaq.nn.space import SpaceConfig, conv_out_size
from jaq.nn.subnet import BlockChoice, SubnetChoice, build_subnet, subnet_layers

SAMPLING_MODES = ("soft", "hard", "argmax", "mean")


def gumbel_softmax(logits: torch.Tensor, tau: float, hard: bool = False, noise: bool = True,
                   generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Gumbel-softmax over the last dim (Jang et al. 2016; the paper's Eq. 1).

    y = softmax((logits + g) / tau) with g = -log(-log(u)), u ~ U(0, 1) (standard Gumbel noise; the paper's text
    writes the uniform u itself, the cited method uses Gumbel(0, 1)). ``hard``: returns the straight-through
    one-hot (forward one-hot, backward d softmax) and the argmax indices; else ``(y, None)``.
    """
    if noise:
        u = torch.rand(logits.shape, generator=generator, device=logits.device, dtype=logits.dtype)
        g = -torch.log(-torch.log(u.clamp(1e-10, 1.0 - 1e-7)))
        y = F.softmax((logits + g) / tau, dim=-1)
    else:
        y = F.softmax(logits / tau, dim=-1)
    if not hard:
        return y, None
    idx = y.argmax(-1)
    one_hot = F.one_hot(idx, y.shape[-1]).to(y.dtype)
    return one_hot - y.detach() + y, idx


@dataclass
class BlockCandidates:
    """One searchable block for the expected-cost hook.

    ``layers[i]``: Layer templates of op ``op_names[i]`` (bits placeholder 8/8; an identity skip has none).
    ``op_probs``: [n_ops]; ``act_bit_probs``/``wgt_bit_probs``: [n_ops, n_bits] over ``Candidates.bits``;
    differentiable (connected to alpha / beta).
    """

    index: int
    in_size: int
    op_names: tuple[str, ...]
    layers: list[list[Layer]]
    op_probs: torch.Tensor
    act_bit_probs: torch.Tensor
    wgt_bit_probs: torch.Tensor


@dataclass
class Candidates:
    """What ``Supernet.candidates()`` returns: fixed layers (bits set) around the searchable blocks."""

    bits: tuple[int, ...]
    stem: list[Layer]
    blocks: list[BlockCandidates]
    head: list[Layer]  # head 1x1 conv and the fc classifier
    _flat: tuple | None = field(default=None, repr=False)  # static flat layer list (shared by the supernet)

    def expected_layers(self) -> tuple[list[Layer], torch.Tensor, torch.Tensor, torch.Tensor]:
        """Every layer of every (block, op, act bits, wgt bits) combination, flattened, with its probability.

        Returns ``(layers, weight, block, op)``: ``layers`` a list of R Layers with bits filled in (static: built
        once per supernet and cached); ``weight`` [R] = p_op * p_act * p_wgt (fixed stem/head/fc layers: 1),
        differentiable; ``block``/``op`` [R] int64 (-1 for the fixed layers). Row order: stem layers, then for
        each block, each non-identity op, each act bit, each wgt bit (bits in ``self.bits`` order), that op's
        layers in execution order; then head, fc. Expected network cost = ``(weight * cost_per_row).sum()``.
        """
        if self._flat is None:
            layers: list[Layer] = list(self.stem)
            blk = [-1] * len(self.stem)
            opi = [-1] * len(self.stem)
            for bc in self.blocks:
                for i, lays in enumerate(bc.layers):
                    for a in self.bits:
                        for wb in self.bits:
                            layers += [lay.with_bits(a, wb) for lay in lays]
                    blk += [bc.index] * (len(lays) * len(self.bits) ** 2)
                    opi += [i] * (len(lays) * len(self.bits) ** 2)
            layers += list(self.head)
            blk += [-1] * len(self.head)
            opi += [-1] * len(self.head)
            self._flat = (layers, torch.tensor(blk, dtype=torch.int64), torch.tensor(opi, dtype=torch.int64))
        layers, blk, opi = self._flat
        nb = len(self.bits)
        parts = []
        probs = self.blocks[0].op_probs if self.blocks else torch.ones(1)
        parts.append(probs.new_ones(len(self.stem)))
        for bc in self.blocks:
            # joint [n_ops, n_a * n_w] probabilities, each repeated once per template layer of its op
            joint = (bc.op_probs[:, None, None] * bc.act_bit_probs[:, :, None] * bc.wgt_bit_probs[:, None, :])
            parts.append(_repeat_rows(joint.reshape(len(bc.layers), nb * nb), [len(x) for x in bc.layers]))
        parts.append(probs.new_ones(len(self.head)))
        return layers, torch.cat(parts), blk, opi


def _repeat_rows(joint: torch.Tensor, reps: list[int]) -> torch.Tensor:
    """Flatten [n_ops, nc] to op-major, combination-next order with each entry repeated reps[op] times."""
    n_ops, nc = joint.shape
    m = max(reps) if reps else 0
    keep = torch.arange(m, device=joint.device)[None, :] < torch.tensor(reps, device=joint.device)[:, None]
    return joint.unsqueeze(-1).expand(n_ops, nc, m)[keep[:, None, :].expand(n_ops, nc, m)]


class Supernet(nn.Module):
    """The searchable network of a :class:`SpaceConfig` (input N x C x H x W real, output N x classes logits)."""

    def __init__(self, space: SpaceConfig):
        super().__init__()
        self.space = space
        fb = space.fixed_bits
        am, bm = space.act_momentum, space.bn_momentum
        self.stem = QConv2d(space.in_channels, space.stem.channels, space.stem.kernel, space.stem.stride,
                            act_bits=(fb.act,), wgt_bits=(fb.wgt,), act_signed=True, act_momentum=am)
        self.stem_bn = nn.BatchNorm2d(space.stem.channels, momentum=bm)
        self.blocks = nn.ModuleList()
        self._specs = space.block_specs()
        for i, (cin, cout, stride, _) in enumerate(self._specs):
            # block 0 reads the post-ReLU stem output; every later block input is a (mixture of) linear
            # projection outputs, hence signed.
            self.blocks.append(nn.ModuleList(
                make_op(o, cin, cout, stride, act_bits=space.bits, wgt_bits=space.bits, in_signed=i > 0,
                        bn_momentum=bm, act_momentum=am) for o in space.ops))
        last_c = space.stages[-1].channels
        self.head = QConv2d(last_c, space.head_channels, 1, 1, act_bits=(fb.act,), wgt_bits=(fb.wgt,),
                            act_signed=True, act_momentum=am)
        self.head_bn = nn.BatchNorm2d(space.head_channels, momentum=bm)
        self.fc = QConv2d(space.head_channels, space.num_classes, 1, 1, act_bits=(fb.act,), wgt_bits=(fb.wgt,),
                          act_signed=False, bias=True, act_momentum=am)
        nb, no, nbits = len(self._specs), len(space.ops), len(space.bits)
        self.alpha = nn.Parameter(torch.zeros(nb, no))
        self.beta_act = nn.Parameter(torch.zeros(nb, no, nbits))
        self.beta_wgt = nn.Parameter(torch.zeros(nb, no, nbits))
        #: Gumbel temperature (set per epoch with :meth:`set_epoch`).
        self.tau: float = space.gumbel.tau0
        #: ``soft`` | ``hard`` | ``argmax`` | ``mean`` (see module docstring).
        self.sampling: str = "soft"
        #: With ``hard`` sampling: how many blocks draw a Gumbel sample per forward (None: all; module docstring).
        self.sample_blocks: int | None = None
        #: Activation quantization mode (SpaceConfig.csq.mode); may be changed for ablations/benchmarks.
        self.mode: str = space.csq.mode
        self.k_percent: float = space.csq.k_percent
        #: CSQ selections of the last forward: Omega of each block input (None when not sparse). Diagnostics.
        self.last_omegas: list[torch.Tensor | None] = []
        self._templates = None  # static Layer templates and flat expected-cost rows (built once)
        self._derived_layers: dict[SubnetChoice, list[Layer]] = {}  # derive_layers() per derived choice

    # -- parameters -----------------------------------------------------------------------------------------
    def arch_parameters(self) -> list[nn.Parameter]:
        """[alpha (blocks x ops), beta_act (blocks x ops x bits), beta_wgt (blocks x ops x bits)]."""
        return [self.alpha, self.beta_act, self.beta_wgt]

    def weight_parameters(self) -> list[nn.Parameter]:
        """Every parameter except alpha/beta (conv weights, BN scales/shifts, fc bias)."""
        arch = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch]

    def set_epoch(self, epoch: float) -> float:
        """Set tau = space.gumbel.tau(epoch); returns it."""
        self.tau = self.space.tau(epoch)
        return self.tau

    # -- forward --------------------------------------------------------------------------------------------
    def _sample(self):
        if self.sampling not in SAMPLING_MODES:
            raise ValueError(f"sampling must be one of {SAMPLING_MODES}, got {self.sampling!r}")
        hard_ops = self.sampling in ("hard", "argmax")
        hard_bits = hard_ops or self.mode == "hetero"
        noise = self.sampling not in ("argmax", "mean")
        pa, ia = gumbel_softmax(self.alpha, self.tau, hard_ops, noise)
        pba, iba = gumbel_softmax(self.beta_act, self.tau, hard_bits, noise)
        pbw, ibw = gumbel_softmax(self.beta_wgt, self.tau, hard_bits, noise)
        k = self.sample_blocks
        nb = self.alpha.shape[0]
        if self.sampling == "hard" and k is not None and k < nb:
            # only k random blocks keep their Gumbel sample; the others take the noise-free argmax path
            keep = torch.zeros(nb, dtype=torch.bool)
            keep[torch.randperm(nb)[:k]] = True
            keep = keep.to(self.alpha.device)
            qa, ja = gumbel_softmax(self.alpha, self.tau, True, False)
            qba, jba = gumbel_softmax(self.beta_act, self.tau, True, False)
            qbw, jbw = gumbel_softmax(self.beta_wgt, self.tau, True, False)
            pa, ia = torch.where(keep[:, None], pa, qa), torch.where(keep, ia, ja)
            pba, iba = torch.where(keep[:, None, None], pba, qba), torch.where(keep[:, None], iba, jba)
            pbw, ibw = torch.where(keep[:, None, None], pbw, qbw), torch.where(keep[:, None], ibw, jbw)
        to_list = (lambda t: None if t is None else t.tolist())
        return pa, to_list(ia), pba, to_list(iba), pbw, to_list(ibw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mode = self.mode
        q = mode != "none"
        sparse = mode in ("csq", "channel0")
        pa, ia, pba, iba, pbw, ibw = self._sample()
        x = F.relu(self.stem_bn(self.stem(x, quant_act=q, quant_wgt=q)))
        importance = bn_importance(self.stem_bn)
        probs = F.softmax(self.alpha.detach(), dim=-1)
        self.last_omegas = []
        for l, ops in enumerate(self.blocks):
            omega = select_channels(importance, self.k_percent, mode) if sparse else None
            self.last_omegas.append(omega)
            chosen = [ia[l]] if ia is not None else range(len(ops))
            y = None
            for i in chosen:
                out = ops[i](x, ab=pba[l, i], wb=pbw[l, i], aidx=None if iba is None else iba[l][i],
                             widx=None if ibw is None else ibw[l][i], omega_in=omega, mode=mode,
                             k_percent=self.k_percent)
                out = pa[l, i] * out
                y = out if y is None else y + out
            if sparse:  # Eq. 8: Gamma of this block's output, over all candidates weighted by softmax(alpha)
                imps = torch.stack([importance if op.is_identity else bn_importance(op.out_bn()) for op in ops])
                importance = (probs[l, :, None] * imps).sum(0)
            x = y
        x = F.relu(self.head_bn(self.head(x, quant_act=q, quant_wgt=q)))
        x = F.adaptive_avg_pool2d(x, 1)
        return self.fc(x, quant_act=q, quant_wgt=q).flatten(1)

    # -- expected-cost hook ---------------------------------------------------------------------------------
    def candidates(self, tau: float = 1.0) -> Candidates:
        """Per block: the candidate ops' Layer templates and the probabilities softmax(alpha / tau) over ops,
        softmax(beta_act / tau) and softmax(beta_wgt / tau) over bits per op (no Gumbel noise; differentiable)."""
        sp = self.space
        fb = sp.fixed_bits
        pa = F.softmax(self.alpha / tau, -1)
        pba = F.softmax(self.beta_act / tau, -1)
        pbw = F.softmax(self.beta_wgt / tau, -1)
        if self._templates is None:
            stem_size = conv_out_size(sp.input_size, sp.stem.kernel, sp.stem.stride)
            stem = [self.stem.layer(stem_size, name="stem", act_bits=fb.act, wgt_bits=fb.wgt)]
            per_block = [[op.layers(in_size, 8, 8, prefix=f"b{l}.") for op in ops]
                         for l, ((_, _, _, in_size), ops) in enumerate(zip(self._specs, self.blocks))]
            head = [self.head.layer(sp.final_size, name="head", act_bits=fb.act, wgt_bits=fb.wgt),
                    self.fc.layer(1, name="fc", act_bits=fb.act, wgt_bits=fb.wgt, fc=True)]
            self._templates = [stem, per_block, head, None]
        stem, per_block, head, flat = self._templates
        blocks = [BlockCandidates(index=l, in_size=spec[3], op_names=tuple(sp.ops), layers=per_block[l],
                                  op_probs=pa[l], act_bit_probs=pba[l], wgt_bit_probs=pbw[l])
                  for l, spec in enumerate(self._specs)]
        c = Candidates(bits=tuple(sp.bits), stem=stem, blocks=blocks, head=head, _flat=flat)
        if flat is None:
            c.expected_layers()
            self._templates[3] = c._flat
        return c

    # -- derivation -----------------------------------------------------------------------------------------
    def derive(self) -> SubnetChoice:
        """argmax op per block, then argmax act / weight bits of that op (ties: the first). Deterministic."""
        alpha = self.alpha.detach().cpu().numpy()
        ba = self.beta_act.detach().cpu().numpy()
        bw = self.beta_wgt.detach().cpu().numpy()
        bits = self.space.bits
        out = []
        for l in range(alpha.shape[0]):
            i = int(np.argmax(alpha[l]))
            out.append(BlockChoice(self.space.ops[i], int(bits[int(np.argmax(ba[l, i]))]),
                                   int(bits[int(np.argmax(bw[l, i]))])))
        return SubnetChoice(tuple(out))

    def derive_layers(self) -> list[Layer]:
        """Every conv/fc layer of the derived subnet in execution order (stem, blocks, head, fc).

        Cached per derived choice (Layers are immutable records): the search asks every iteration."""
        choice = self.derive()
        cache = self._derived_layers
        layers = cache.get(choice)
        if layers is None:
            if len(cache) > 256:
                cache.clear()
            layers = cache[choice] = subnet_layers(self.space, choice)
        return list(layers)

    def build_subnet(self):
        """A fresh retrainable :class:`jaq.nn.subnet.SubNet` of the derived architecture."""
        return build_subnet(self.space, self.derive())
