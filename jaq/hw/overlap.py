"""Cycles of a double-buffered layer in closed form (docs/execution-model.md section 9).

A stage's cost ``1 + max(C_i, D_i)`` depends on the extents of tiles ``i-1``, ``i`` and ``i+1`` and on which operand
tiles change between them, and all of that follows from where each tile index stands in its loop. Per dimension
the index ``x`` of a loop of ``n`` iterations falls in one of the six :data:`CLASSES`; a combination of the four
dimensions' classes fixes, for one loop order, every extent, change and flag of the stage (:func:`stage_table`),
and the number of iterations in it is the product of the per-dimension class counts. So the sum over stages is a
sum over the ``6^4`` combinations, exact, evaluated with tensor operations on a trailing combination axis.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import torch

from jaq.hw import timing as T

DIMS = ("IC", "OC", "OH", "OW")
#: Index classes by (x = 0, x = n-2, x = n-1): n = 1; n = 2, x = 0; x = n-1 >= 1; n >= 3, x = 0; n >= 3, x = n-2;
#: 0 < x < n-2.
CLASSES: tuple[tuple[bool, bool, bool], ...] = ((True, False, True), (True, True, False), (False, False, True),
                                                 (True, False, False), (False, True, False), (False, False, False))
_OUT = ("OC", "OH", "OW")
_WGT = ("IC", "OC")
_ACT = ("IC", "OH", "OW")
_ACT_DW = ("OC", "OH", "OW")  # section 8: a depthwise act tile follows the channel (OC) tile


def class_counts(n: torch.Tensor) -> torch.Tensor:
    """Iterations of each class in a loop of ``n`` iterations: (..., 6) in :data:`CLASSES` order."""
    return torch.stack([(n == 1).to(n.dtype), (n == 2).to(n.dtype), (n >= 2).to(n.dtype), (n >= 3).to(n.dtype),
                        (n >= 3).to(n.dtype), torch.clamp(n - 3, min=0)], dim=-1)


@dataclass(frozen=True)
class StageTable:
    """Per combination of classes (a (M,) tensor each) for one loop order: the class of each dimension, the edge
    flags of its extents in tiles ``i-1`` (prev), ``i`` (cur) and ``i+1`` (next), and the stage's DMA work."""

    cls: dict            # dim -> (M,) long
    edge_prev: dict      # dim -> (M,) bool
    edge_cur: dict
    edge_next: dict
    store: torch.Tensor      # the out tile changes at i (and i > 0): tile i-1 is stored
    final: torch.Tensor      # that store is final (tile i-1 had the last ic index)
    act_next: torch.Tensor   # LOAD_ACT of tile i+1 (non-depthwise layers)
    act_next_dw: torch.Tensor  # LOAD_ACT of tile i+1 (depthwise layers)
    wgt_next: torch.Tensor
    psum_next: torch.Tensor  # LOAD_PSUM of tile i+1

    def select(self, keep: torch.Tensor) -> "StageTable":
        """The combinations ``keep`` (indices) only."""
        sel = lambda v: {d: x[keep] for d, x in v.items()} if isinstance(v, dict) else v[keep]  # noqa: E731
        return StageTable(**{k: sel(v) for k, v in vars(self).items()})


@lru_cache(maxsize=256)
def stage_table(order: tuple[str, ...]) -> StageTable:
    """The static table of one loop order (``order``: the four tile dimensions, outermost first; B is ignored)."""
    order = tuple(d for d in order if d != "B")
    pos = {d: order.index(d) for d in DIMS}
    combos = list(itertools.product(range(len(CLASSES)), repeat=4))
    cls = {d: [] for d in DIMS}
    e_prev, e_cur, e_next = ({d: [] for d in DIMS} for _ in range(3))
    flags = {k: [] for k in ("store", "final", "act_next", "act_next_dw", "wgt_next", "psum_next")}
    for combo in combos:
        c = dict(zip(DIMS, combo))
        zero = {d: CLASSES[c[d]][0] for d in DIMS}
        pen = {d: CLASSES[c[d]][1] for d in DIMS}
        last = {d: CLASSES[c[d]][2] for d in DIMS}
        p_in = max([pos[d] for d in DIMS if not zero[d]], default=-1)    # innermost loop with x > 0
        p_out = max([pos[d] for d in DIMS if not last[d]], default=-1)   # innermost loop with x < n-1
        chg_in, chg_out = {}, {}
        for d in DIMS:
            k = pos[d]
            cls[d].append(c[d])
            e_cur[d].append(last[d])
            e_prev[d].append(last[d] if k < p_in else k > p_in)
            e_next[d].append(last[d] if k < p_out else (pen[d] if k == p_out else c[d] == 0))
            chg_in[d] = p_in >= 0 and (k == p_in or (k > p_in and c[d] != 0))
            chg_out[d] = p_out >= 0 and (k == p_out or (k > p_out and c[d] != 0))
        ic = pos["IC"]
        out_next = any(chg_out[d] for d in _OUT)
        flags["store"].append(any(chg_in[d] for d in _OUT))
        flags["final"].append(last["IC"] if ic < p_in else ic > p_in)
        flags["act_next"].append(any(chg_out[d] for d in _ACT))
        flags["act_next_dw"].append(any(chg_out[d] for d in _ACT_DW))
        flags["wgt_next"].append(any(chg_out[d] for d in _WGT))
        ic_next_pos = (not zero["IC"]) if ic < p_out else ic == p_out
        flags["psum_next"].append(out_next and ic_next_pos)
    b = lambda v: torch.tensor(v, dtype=torch.bool)  # noqa: E731
    return StageTable({d: torch.tensor(v, dtype=torch.long) for d, v in cls.items()},
                      {d: b(v) for d, v in e_prev.items()}, {d: b(v) for d, v in e_cur.items()},
                      {d: b(v) for d, v in e_next.items()}, **{k: b(v) for k, v in flags.items()})


@dataclass
class StageCosts:
    """The costs of a stage's parts as functions of tile extents (tensors, broadcasting), in cycles:
    ``compute(c, m, h, w)`` COMPUTE's body (steps + D); ``load_act(c, m, h, w)``, ``load_wgt(c, m)``,
    ``load_psum(m, h, w)`` a load's issue + body; ``store(m, h, w, final)`` the store of an out tile with what
    precedes it (LOAD_SCALE, SET_RES when final)."""

    compute: Callable
    load_act: Callable
    load_wgt: Callable
    load_psum: Callable
    store: Callable


def group_cycles(order: tuple[str, ...], n: dict, t: dict, last: dict, dw: torch.Tensor,
                 costs: StageCosts) -> torch.Tensor:
    """Cycles of one group's pipeline: prologue + sum of stages + SYNC + epilogue (section 9). ``n``, ``t``,
    ``last``: per dimension the trip counts, full tile extents and edge extents (broadcastable tensors); ``dw``:
    the depthwise rows."""
    tab = stage_table(tuple(order))
    ax = lambda x: x.unsqueeze(-1)  # noqa: E731  (a trailing combination axis)
    count = None
    for d in DIMS:
        k = class_counts(n[d])[..., tab.cls[d]]
        count = k if count is None else count * k

    keep = torch.nonzero((count > 0).reshape(-1, count.shape[-1]).any(dim=0)).squeeze(1)
    if keep.numel() < count.shape[-1]:  # only the combinations some row has iterations in
        count = count[..., keep]
        tab = tab.select(keep)

    def ext(flags):
        return [torch.where(flags[d], ax(last[d]), ax(t[d])) for d in DIMS]

    c0, m0, h0, w0 = ext(tab.edge_cur)
    cp, mp, hp, wp = ext(tab.edge_prev)
    cn, mn, hn, wn = ext(tab.edge_next)
    f = lambda v: v.to(count.dtype)  # noqa: E731
    act_next = torch.where(ax(dw), tab.act_next_dw, tab.act_next)
    dma = f(tab.store) * torch.where(tab.final, costs.store(mp, hp, wp, True), costs.store(mp, hp, wp, False)) \
        + f(act_next) * costs.load_act(cn, mn, hn, wn) + f(tab.wgt_next) * costs.load_wgt(cn, mn) \
        + f(tab.psum_next) * costs.load_psum(mn, hn, wn)
    stages = (count * T.stage_cycles(costs.compute(c0, m0, h0, w0), dma)).sum(dim=-1)
    first = {d: ax(torch.where(n[d] > 1, t[d], last[d])) for d in DIMS}
    prologue = costs.load_act(first["IC"], first["OC"], first["OH"], first["OW"]) + \
        costs.load_wgt(first["IC"], first["OC"])
    epilogue = costs.store(ax(last["OC"]), ax(last["OH"]), ax(last["OW"]), True)
    return (prologue + epilogue).squeeze(-1) + stages + T.sync_cycles()
