"""Batched (struct-of-tensors) forms of the records, the input and output of the vectorised estimators.

Every field is a 1-D torch tensor of length N (one row per (layer, accelerator, tiling) triple); rows are
independent. Float dtype (float64 by default) so that differentiable callers may pass soft values; integer
semantics are kept by the estimator with straight-through rounding (exact values, identity gradients).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Sequence

import torch

from jaq.hw.records import DATAFLOWS, Accelerator, BitFusionConfig, Layer, Tiling, LOOP_ORDER_INDEX

DTYPE = torch.float64


def _stack(rows: Sequence, names: Sequence[str], dtype=DTYPE, device=None) -> dict[str, torch.Tensor]:
    return {n: torch.tensor([float(getattr(r, n)) for r in rows], dtype=dtype, device=device) for n in names}


class _Batch:
    def __len__(self) -> int:
        return int(getattr(self, fields(self)[0].name).shape[0])

    def index(self, idx) -> "_Batch":
        """Rows ``idx`` (a tensor of indices or a bool mask) as a new batch."""
        return type(self)(**{f.name: getattr(self, f.name)[idx] for f in fields(self)})

    def repeat_interleave(self, n) -> "_Batch":
        return type(self)(**{f.name: getattr(self, f.name).repeat_interleave(n) for f in fields(self)})

    def expand_to(self, n: int) -> "_Batch":
        """Broadcast a batch of one row to ``n`` rows (no copy)."""
        assert len(self) == 1
        return type(self)(**{f.name: getattr(self, f.name).expand(n) for f in fields(self)})


@dataclass
class LayerBatch(_Batch):
    """Layers; ``act_signed``/``out_signed`` do not change cost and are not carried. ``out_bits`` (the width of
    the final outputs) defaults to 32 for every row, ``pool`` and ``res_bits`` to 0."""

    in_ch: torch.Tensor
    out_ch: torch.Tensor
    out_h: torch.Tensor
    out_w: torch.Tensor
    kernel: torch.Tensor
    stride: torch.Tensor
    groups: torch.Tensor
    act_bits: torch.Tensor
    wgt_bits: torch.Tensor
    out_bits: torch.Tensor | None = None
    pool: torch.Tensor | None = None  #: 1.0 for a pooled layer (the head), else 0.0
    res_bits: torch.Tensor | None = None  #: bits of the residual operand, 0.0 for none

    def __post_init__(self) -> None:
        if self.res_bits is None:
            self.res_bits = torch.zeros_like(self.in_ch)
        if self.out_bits is None:
            self.out_bits = torch.full_like(self.in_ch, 32.0)
        if self.pool is None:
            self.pool = torch.zeros_like(self.in_ch)

    @classmethod
    def from_layers(cls, layers: Sequence[Layer], device=None) -> "LayerBatch":
        return cls(**_stack(layers, [f.name for f in fields(cls)], device=device))


#: The layer columns the estimators read (one definition: the fields of LayerBatch).
LAYER_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(LayerBatch))


@dataclass
class AccelBatch(_Batch):
    """Accelerators; ``dataflow`` is an index into :data:`jaq.hw.records.DATAFLOWS` (0 WS, 1 OS, 2 RS)."""

    pe_x: torch.Tensor
    pe_y: torch.Tensor
    act_buf_kb: torch.Tensor
    wgt_buf_kb: torch.Tensor
    out_buf_kb: torch.Tensor
    dataflow: torch.Tensor
    clock_mhz: torch.Tensor
    dram_bits_per_cycle: torch.Tensor
    dram_latency_cycles: torch.Tensor
    out_unit_lines: torch.Tensor
    double_buffer: torch.Tensor | None = None  # 1.0 where the buffers are double (section 9); None: all single

    def __post_init__(self) -> None:
        if self.double_buffer is None:
            self.double_buffer = torch.zeros_like(self.pe_x)

    @classmethod
    def from_accels(cls, accels: Sequence[Accelerator], device=None) -> "AccelBatch":
        names = [f.name for f in fields(cls) if f.name != "dataflow"]
        d = _stack(accels, names, device=device)
        d["dataflow"] = torch.tensor([DATAFLOWS.index(a.dataflow) for a in accels], dtype=torch.long,
                                     device=device)
        return cls(**d)

    @classmethod
    def from_bitfusion(cls, cfg: BitFusionConfig, device=None) -> "AccelBatch":
        """One row from a :class:`~jaq.hw.records.BitFusionConfig`: pe_x = cols, pe_y = rows, buffers in KB
        (bytes / 1024, possibly fractional), dram_bits_per_cycle = if_width; dataflow WS and latency 0 (unused by
        BitFusion mode)."""
        t = lambda v: torch.tensor([float(v)], dtype=DTYPE, device=device)  # noqa: E731
        return cls(pe_x=t(cfg.cols), pe_y=t(cfg.rows), act_buf_kb=t(cfg.ibuf_bytes / 1024),
                   wgt_buf_kb=t(cfg.wbuf_bytes / 1024), out_buf_kb=t(cfg.obuf_bytes / 1024),
                   dataflow=torch.zeros(1, dtype=torch.long, device=device), clock_mhz=t(cfg.clock_mhz),
                   dram_bits_per_cycle=t(cfg.if_width), dram_latency_cycles=t(0), out_unit_lines=t(1))


@dataclass
class TileBatch(_Batch):
    """Tilings; ``loop_order`` is an index 0..119 into :data:`jaq.hw.records.LOOP_ORDERS`."""

    t_ic: torch.Tensor
    t_oc: torch.Tensor
    t_oh: torch.Tensor
    t_ow: torch.Tensor
    loop_order: torch.Tensor

    @classmethod
    def from_tilings(cls, tilings: Sequence[Tiling], device=None) -> "TileBatch":
        d = _stack(tilings, ["t_ic", "t_oc", "t_oh", "t_ow"], device=device)
        d["loop_order"] = torch.tensor([LOOP_ORDER_INDEX[t.loop_order] for t in tilings], dtype=torch.long,
                                       device=device)
        return cls(**d)


@dataclass
class CostBatch:
    """Estimator output, one row per input row. Units: cycles; pJ; mm²; counts (see :class:`jaq.hw.Cost`).

    ``energy_pj`` and ``accesses`` map component names to tensors; ``legal`` is a bool tensor (illegal rows
    carry finite but meaningless numbers; callers mask them, BatchTile never selects them).
    """

    cycles: torch.Tensor
    energy_pj: dict[str, torch.Tensor]
    area_mm2: torch.Tensor
    accesses: dict[str, torch.Tensor]
    legal: torch.Tensor
    clock_mhz: torch.Tensor

    @property
    def energy_total_pj(self) -> torch.Tensor:
        return sum(self.energy_pj.values())

    @property
    def latency_ms(self) -> torch.Tensor:
        return self.cycles / (self.clock_mhz * 1e3)
