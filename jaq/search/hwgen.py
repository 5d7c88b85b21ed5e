"""The hardware generation network (paper, "Accelerator Parameters Search", Fig. 2).

Input: the current optimal subnet, one *operator encoding vector* per layer: kernel, stride, output rows, input
channels, output channels, activation bits, weight bits (the paper's seven), plus a depthwise flag, each
normalised to about [0, 1] (sizes as log2(x)/12, kernel/7, stride/2, bits/8). A per-operator MLP embeds every
layer; mean- and max-pooling over the layers gives one vector per subnet (the subnet has any number of layers).
Five residual blocks (Linear-LayerNorm-ReLU-Linear + skip) follow, then seven classifier heads, one per
accelerator parameter: PE_x, PE_y (3..64), activation / weight / output buffer (64..528 KB, 16 KB steps),
dataflow (WS/OS/RS) and tile loop order (120 permutations).

Each head is a Gumbel-softmax with a straight-through hard one-hot: the forward value is exactly one grid point
(``value = sum(onehot * grid)``), the backward pass sees the soft probabilities, so a cost computed from the
float values (PE counts, buffer KB) sends gradients to the generator. The dataflow and loop order are indices,
not magnitudes: their gradients come from comparing the costs of alternative choices (see
:mod:`jaq.search.hwcost`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from jaq.hw.batch import DTYPE, AccelBatch
from jaq.hw.records import (BUF_KB_MAX, BUF_KB_MIN, BUF_KB_STEP, DATAFLOWS, LOOP_ORDERS, PE_MAX, PE_MIN,
                            Accelerator, Layer)

#: The grids of the seven heads, in head order. Numeric heads carry magnitudes; the last two are categorical.
PE_GRID = torch.arange(PE_MIN, PE_MAX + 1, dtype=DTYPE)
BUF_GRID = torch.arange(BUF_KB_MIN, BUF_KB_MAX + 1, BUF_KB_STEP, dtype=DTYPE)
HEADS: tuple[tuple[str, int], ...] = (
    ("pe_x", len(PE_GRID)), ("pe_y", len(PE_GRID)), ("act_buf_kb", len(BUF_GRID)),
    ("wgt_buf_kb", len(BUF_GRID)), ("out_buf_kb", len(BUF_GRID)), ("dataflow", len(DATAFLOWS)),
    ("loop_order", len(LOOP_ORDERS)),
)
NUMERIC_HEADS = ("pe_x", "pe_y", "act_buf_kb", "wgt_buf_kb", "out_buf_kb")
#: Accelerator fields the search holds fixed (config section ``hardware``).
FIXED_FIELDS = ("clock_mhz", "dram_bits_per_cycle", "dram_latency_cycles", "out_unit_lines", "double_buffer")
N_FEATURES = 8


def grid_of(head: str) -> torch.Tensor:
    return PE_GRID if head.startswith("pe_") else BUF_GRID


def encode_layers(layers: Sequence[Layer]) -> torch.Tensor:
    """Operator encoding vectors [n_layers, 8] (float32), normalised to about [0, 1]."""
    rows = [[l.kernel / 7.0, l.stride / 2.0, math.log2(l.out_h) / 12.0, math.log2(l.in_ch) / 12.0,
             math.log2(l.out_ch) / 12.0, l.act_bits / 8.0, l.wgt_bits / 8.0, float(l.kind == "depthwise")]
            for l in layers]
    if not rows:
        rows = [[0.0] * N_FEATURES]
    return torch.tensor(rows, dtype=torch.float32)


class _ResBlock(nn.Module):
    def __init__(self, h: int):
        super().__init__()
        self.fc1, self.norm, self.fc2 = nn.Linear(h, h), nn.LayerNorm(h), nn.Linear(h, h)

    def forward(self, x):
        return x + self.fc2(F.relu(self.norm(self.fc1(x))))


@dataclass
class HWSample:
    """One generated accelerator.

    ``onehot[name]``: straight-through hard one-hot (forward exact, backward soft); ``probs[name]``: softmax of
    the logits (no noise); ``index[name]``: the chosen grid index (int); ``values[name]``: the float tensors
    (shape [1], gradients to the generator) for the numeric heads.
    """

    onehot: dict[str, torch.Tensor]
    probs: dict[str, torch.Tensor]
    logits: dict[str, torch.Tensor]
    index: dict[str, int]
    values: dict[str, torch.Tensor]

    def accelerator(self, fixed: dict) -> Accelerator:
        """The discrete accelerator (``fixed``: the :data:`FIXED_FIELDS`)."""
        v = {n: int(round(float(self.values[n].detach()))) for n in NUMERIC_HEADS}
        return Accelerator(dataflow=DATAFLOWS[self.index["dataflow"]],
                           loop_order=LOOP_ORDERS[self.index["loop_order"]], **v, **fixed)

    def accel_batch(self, fixed: dict, device=None) -> AccelBatch:
        """A one-row :class:`AccelBatch` whose numeric fields carry the generator's gradients (on ``device``,
        default the CPU, where the cost model runs; ``.to`` keeps the gradient path to a CUDA generator)."""
        f = {n: self.values[n].reshape(1).to(device="cpu" if device is None else device, dtype=DTYPE)
             for n in NUMERIC_HEADS}
        for k in FIXED_FIELDS:
            f[k] = torch.tensor([float(fixed[k])], dtype=DTYPE, device=device)
        f["dataflow"] = torch.tensor([self.index["dataflow"]], dtype=torch.long, device=device)
        return AccelBatch(**f)


class HWGenerator(nn.Module):
    """Subnet encoding -> seven Gumbel-softmax heads (see module docstring). ``hidden`` = residual width."""

    def __init__(self, hidden: int = 64, blocks: int = 5):
        super().__init__()
        self.embed = nn.Sequential(nn.Linear(N_FEATURES, hidden), nn.ReLU(), nn.Linear(hidden, hidden))
        self.mix = nn.Linear(2 * hidden, hidden)
        self.blocks = nn.Sequential(*[_ResBlock(hidden) for _ in range(blocks)])
        self.out_norm = nn.LayerNorm(hidden)
        self.heads = nn.ModuleDict({name: nn.Linear(hidden, n) for name, n in HEADS})
        for h in self.heads.values():  # start from (almost) uniform choices
            nn.init.normal_(h.weight, std=1e-3)
            nn.init.zeros_(h.bias)

    def forward(self, layers_or_feats) -> dict[str, torch.Tensor]:
        """Logits of the seven heads for one subnet (a list of Layers or their [n, 8] encodings)."""
        feats = layers_or_feats if torch.is_tensor(layers_or_feats) else encode_layers(layers_or_feats)
        feats = feats.to(next(self.parameters()).device)
        e = self.embed(feats)
        z = self.mix(torch.cat([e.mean(0), e.max(0).values], dim=-1))
        z = F.relu(self.out_norm(self.blocks(z)))
        return {name: head(z) for name, head in self.heads.items()}

    def generate(self, layers_or_feats, tau: float = 1.0, sample: bool = True,
                 generator: torch.Generator | None = None) -> "HWSample":
        return sample_heads(self(layers_or_feats), tau, sample, generator)


def draw_noise(logits: dict[str, torch.Tensor], generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """The uniform draws :func:`sample_heads` would make for ``logits`` (same order, same generator use)."""
    return {name: torch.rand(l.shape, generator=generator, dtype=l.dtype) for name, l in logits.items()}


def sample_heads(logits: dict[str, torch.Tensor], tau: float = 1.0, sample: bool = True,
                 generator: torch.Generator | None = None, noise: dict[str, torch.Tensor] | None = None
                 ) -> HWSample:
    """Gumbel-softmax (temperature ``tau``) with straight-through hard one-hots on every head.

    ``sample=False`` drops the Gumbel noise: the argmax of the logits (the search's result). ``noise``: the
    uniform draws to use (from :func:`draw_noise`; e.g. held for several steps), instead of drawing new ones.
    """
    onehot, probs, index, values = {}, {}, {}, {}
    for name, l in logits.items():
        p = F.softmax(l, dim=-1)
        if sample:
            u = noise[name] if noise is not None else torch.rand(l.shape, generator=generator, dtype=l.dtype)
            u = u.to(device=l.device, dtype=l.dtype).clamp(1e-9, 1 - 1e-9)
            soft = F.softmax((l - torch.log(-torch.log(u))) / tau, dim=-1)
        else:
            soft = F.softmax(l / tau, dim=-1)
        i = int(torch.argmax(soft))
        hard = F.one_hot(torch.tensor(i, device=l.device), l.shape[-1]).to(soft.dtype)
        oh = hard - soft.detach() + soft
        onehot[name], probs[name], index[name] = oh, p, i
        if name in NUMERIC_HEADS:
            values[name] = (oh.to(DTYPE) * grid_of(name).to(l.device)).sum().reshape(1)
    return HWSample(onehot, probs, logits, index, values)
