"""The hardware search space in one place (paper, "Search Space").

* PE_x, PE_y: 3..64.  Buffers (act / wgt / out): 64..528 KB in 16 KB steps (30 choices).
* Dataflow: WS, OS, RS.  Loop order: the 120 permutations of (B, IC, OC, OH, OW), outermost first.
* Tiles: batch tile 1; t_ic, t_oc, t_oh, t_ow powers of two 2^0..2^10, capped at the dimension
  (t_ic/t_oc within one group).

:func:`enumerate_tilings` lists every tiling of a layer (all tile-size combinations x the requested loop orders)
as one :class:`~jaq.hw.batch.TileBatch`, rows in lexicographic order of (t_ic, t_oc, t_oh, t_ow, loop_order) —
BatchTile's tie-break relies on this order.
"""

from __future__ import annotations

from typing import Sequence

import torch

from jaq.hw.batch import DTYPE, TileBatch
from jaq.hw.records import (BUF_KB_MAX, BUF_KB_MIN, BUF_KB_STEP, DATAFLOWS, LOOP_ORDERS, PE_MAX, PE_MIN,
                            TILE_EXP_MAX, Layer)

PE_CHOICES: tuple[int, ...] = tuple(range(PE_MIN, PE_MAX + 1))
BUF_KB_CHOICES: tuple[int, ...] = tuple(range(BUF_KB_MIN, BUF_KB_MAX + 1, BUF_KB_STEP))
DATAFLOW_CHOICES: tuple[str, ...] = DATAFLOWS
LOOP_ORDER_IDS: tuple[int, ...] = tuple(range(len(LOOP_ORDERS)))
TILE_CHOICES: tuple[int, ...] = tuple(1 << e for e in range(TILE_EXP_MAX + 1))


def tile_candidates(dim: int) -> list[int]:
    """Powers of two 2^0..2^10 not larger than ``dim``."""
    return [t for t in TILE_CHOICES if t <= dim]


def layer_dims(layer: Layer) -> tuple[int, int, int, int]:
    """The four tiled dimensions (IC, OC, OH, OW) of a layer: :attr:`~jaq.hw.records.Layer.tile_dims`."""
    return tuple(layer.tile_dims.values())


def layer_candidates(layer: Layer) -> tuple[tuple[int, ...], ...]:
    """Candidate tiles of (IC, OC, OH, OW) (:func:`layer_dims`): :func:`tile_candidates` of each dimension; a
    pooled layer's out tile covers every pixel (t_oh = OH, t_ow = OW; docs/execution-model.md section 7.2)."""
    dims = layer_dims(layer)
    c = [tuple(tile_candidates(d)) for d in dims]
    if layer.pool:
        c[2], c[3] = (dims[2],), (dims[3],)
    return tuple(c)


def tiling_grid(cands: Sequence[Sequence[int]], loop_orders: Sequence[int], dtype=DTYPE) -> torch.Tensor:
    """All tilings with per-dimension candidate tiles ``cands`` (:func:`layer_candidates`) as an (N, 5) tensor of
    (t_ic, t_oc, t_oh, t_ow, loop_order), rows in lexicographic order."""
    axes = [torch.tensor(list(c), dtype=dtype) for c in cands]
    axes.append(torch.tensor(sorted(loop_orders), dtype=dtype))
    grids = torch.meshgrid(*axes, indexing="ij")
    return torch.stack([g.reshape(-1) for g in grids], dim=1)


def enumerate_tilings(layer: Layer, loop_orders: Sequence[int] | None = None) -> TileBatch:
    """Every tiling of ``layer`` (default: all 120 loop orders) as a TileBatch (tile-size fields float, loop order
    long)."""
    lo = LOOP_ORDER_IDS if loop_orders is None else tuple(loop_orders)
    g = tiling_grid(layer_candidates(layer), lo)
    return TileBatch(t_ic=g[:, 0], t_oc=g[:, 1], t_oh=g[:, 2], t_ow=g[:, 3], loop_order=g[:, 4].long())


def space_size(layer: Layer, loop_orders: int = 120, dataflows: int = 1) -> int:
    """Number of tilings of ``layer`` (before the buffer legality filter)."""
    n = loop_orders * dataflows
    for c in layer_candidates(layer):
        n *= len(c)
    return n
