"""BatchTile: the best tiling of every layer of a subnet, from ONE batched estimator call (JAQ paper, "Compiler
Mapping Search: BatchTile").

All legal power-of-two tilings of all layers (x the loop orders, x the dataflows searched) are stacked into one
batch, evaluated by :func:`jaq.hw.model.estimate` in one call, and reduced per layer with a vectorised segment
argmin.

Objective (per layer): ``lam_E * E[mJ] + lam_L * L[ms] + lam_A * A[mm²]`` — the paper's Eq. 9 in the units of its
Table 6 (with its lam = 0.33 each, the three terms have comparable magnitudes). Area does not depend on the tiling,
so it shifts every candidate of a layer equally; it is kept so that objectives are comparable across
accelerators. Illegal tilings (docs/execution-model.md section 3) are never chosen.

Tie-break (deterministic): lowest objective; then lowest cycles; then the lexicographically smallest
``(t_ic, t_oc, t_oh, t_ow, loop_order_id, dataflow_id)``. Rows are enumerated in exactly that lexicographic order,
so the last criterion is "lowest row index".

:func:`jaq.hw.oracle.exhaustive_reference` is the same search as a plain Python loop over the same space, one
candidate at a time, with an independent scalar closed form (pure Python ints built on :mod:`jaq.hw.timing`);
tests and benchmarks/bench_batchtile.py check that both choose identical tilings with identical costs. The
objective lives in :mod:`jaq.hw.objective`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import torch

from jaq.errors import JaqError
from jaq.hw import space
from jaq.hw.batch import DTYPE, LAYER_FIELDS as _LAYER_FIELDS, AccelBatch, LayerBatch, TileBatch
from jaq.hw.model import ENERGY_COMPONENTS, TileGrid, estimate, estimate_layers, require_batch_one
from jaq.hw.records import DATAFLOWS, LOOP_ORDERS, Accelerator, Cost, Layer, Tiling
from jaq.hw.objective import DEFAULT_WEIGHTS, check_weights, objective_value
from jaq.hw.schedule import COUNTERS

#: Largest number of rows evaluated in one estimator call (memory bound: ~60 float64 tensors of this length).
#: The accelerator's own dataflow and loop order always fit in one call; the full space is chunked by layers.
MAX_ROWS_PER_CALL = 600_000


@dataclass
class TileChoice:
    """The chosen tiling of one layer, its cost (native or bitfusion mode), its objective value and the dataflow
    the cost was computed with (the accelerator's, unless ``dataflows="all"``)."""

    tiling: Tiling
    cost: Cost
    objective: float
    dataflow: str

    def to_dict(self) -> dict:
        return {"tiling": self.tiling.to_dict(), "cost": self.cost.to_dict(), "objective": self.objective,
                "dataflow": self.dataflow}


def _loop_order_ids(accel: Accelerator, loop_orders) -> tuple[int, ...]:
    if loop_orders == "accel":
        return (accel.loop_order_id,)
    if loop_orders == "all":
        return tuple(range(len(LOOP_ORDERS)))
    if isinstance(loop_orders, (list, tuple)):
        return tuple(sorted({int(i) for i in loop_orders}))
    raise JaqError(f"{loop_orders!r}: use 'accel', 'all' or a list of loop-order indices", "loop_orders")


def _dataflow_ids(accel: Accelerator, dataflows) -> tuple[int, ...]:
    if dataflows == "accel":
        return (DATAFLOWS.index(accel.dataflow),)
    if dataflows == "all":
        return tuple(range(len(DATAFLOWS)))
    if isinstance(dataflows, (list, tuple)):
        return tuple(sorted({DATAFLOWS.index(d) if isinstance(d, str) else int(d) for d in dataflows}))
    raise JaqError(f"{dataflows!r}: use 'accel', 'all' or a list of dataflows", "dataflows")


def distinct_loop_orders(lo_ids: Sequence[int]) -> tuple[int, ...]:
    """The loop orders among ``lo_ids`` that can differ in cost: orders that differ only in the position of B
    (batch 1: one iteration, never changes a tile index) price identically, and the tie-break would choose the
    lowest index among them, so only that representative is evaluated (120 orders -> 24). Exact: tests compare
    with the exhaustive search over all 120."""
    best: dict[tuple[str, ...], int] = {}
    for i in lo_ids:
        key = tuple(d for d in LOOP_ORDERS[i] if d != "B")
        if key not in best or i < best[key]:
            best[key] = i
    return tuple(sorted(best.values()))


# ----------------------------------------------------------------------------------------------------------------
# Enumeration cache
# ----------------------------------------------------------------------------------------------------------------

_BATCH_CACHE: dict = {}
_CACHE_LIMIT = 64


@dataclass
class _Enumerated:
    """Size rows (one per layer and combination of candidate tiles) x loop orders x dataflows, in that nesting."""

    layers: LayerBatch  # N_s size rows
    tiles: TileBatch  # N_s size rows (loop_order unused)
    grid: TileGrid  # factored form for the estimator
    seg: torch.Tensor  # (N,) long: layer index of each row
    n: int  # N = N_s * len(lo_ids) * len(df_ids)

    def row_info(self, rows: torch.Tensor) -> torch.Tensor:
        """(len(rows), 6) float64: t_ic, t_oc, t_oh, t_ow, loop order id, dataflow id of the given rows."""
        nl, nd = len(self.grid.lo_ids), len(self.grid.df_ids)
        s = rows // (nl * nd)
        lo = torch.tensor(self.grid.lo_ids, dtype=DTYPE)[(rows // nd) % nl]
        df = torch.tensor(self.grid.df_ids, dtype=DTYPE)[rows % nd]
        t = self.tiles
        return torch.stack([t.t_ic[s], t.t_oc[s], t.t_oh[s], t.t_ow[s], lo, df], dim=1)

    def row_batches(self) -> tuple[LayerBatch, TileBatch, torch.Tensor]:
        """The N rows as plain batches (for other modes' estimators): layers, tiles, dataflow."""
        k = self.grid.inner
        nl, nd = len(self.grid.lo_ids), len(self.grid.df_ids)
        lb = self.layers.repeat_interleave(k)
        t = self.tiles
        ns = len(t)
        lo = torch.tensor(self.grid.lo_ids).repeat_interleave(nd).repeat(ns)
        tb = TileBatch(t.t_ic.repeat_interleave(k), t.t_oc.repeat_interleave(k), t.t_oh.repeat_interleave(k),
                       t.t_ow.repeat_interleave(k), lo)
        df = torch.tensor(self.grid.df_ids).repeat(ns * nl)
        return lb, tb, df


_LAYER_GRID_CACHE: dict = {}


def _layer_grid(cs) -> tuple[torch.Tensor, torch.Tensor]:
    """Per layer's candidate tiles of (IC, OC, OH, OW) (:func:`jaq.hw.space.layer_candidates`), cached: the
    (4, S) candidate tiles (padded with 1) and the (n, 4) long tensor of candidate indices of every size
    combination, lexicographic."""
    hit = _LAYER_GRID_CACHE.get(cs)
    if hit is None:
        S = len(space.TILE_CHOICES)
        cand = torch.ones((4, S), dtype=DTYPE)
        for k, c in enumerate(cs):
            cand[k, :len(c)] = torch.tensor(c, dtype=DTYPE)
        axes = [torch.arange(len(c)) for c in cs]
        g = torch.stack([x.reshape(-1) for x in torch.meshgrid(*axes, indexing="ij")], dim=1)
        if len(_LAYER_GRID_CACHE) > 4096:
            _LAYER_GRID_CACHE.clear()
        hit = _LAYER_GRID_CACHE[cs] = (cand, g)
    return hit


def _enumerate(layers: Sequence[Layer], lo_ids, df_ids) -> _Enumerated:
    """All candidate rows of all layers, rows of a layer lexicographic in (t_ic, t_oc, t_oh, t_ow, loop order,
    dataflow); cached per (layer shapes and bits, loop orders, dataflows)."""
    key = (tuple(tuple(getattr(l, f) for f in _LAYER_FIELDS) for l in layers), lo_ids, df_ids)
    e = _BATCH_CACHE.get(key)
    if e is not None:
        return e
    L = len(layers)
    S = len(space.TILE_CHOICES)
    parts = [_layer_grid(space.layer_candidates(l)) for l in layers]
    cand_rows = torch.stack([p[0] for p in parts])  # (L, 4, S)
    cand = {d: cand_rows[:, k, :].contiguous() for k, d in enumerate(("IC", "OC", "OH", "OW"))}
    sizes = [p[1].shape[0] for p in parts]
    g = torch.cat([p[1] for p in parts]) + torch.arange(L).repeat_interleave(torch.tensor(sizes)).unsqueeze(1) * S
    idx = {d: g[:, k].contiguous() for k, d in enumerate(cand)}
    counts = torch.tensor(sizes)
    lrows = torch.tensor([[float(getattr(l, f)) for f in _LAYER_FIELDS] for l in layers], dtype=DTYPE)
    lfull = lrows.repeat_interleave(counts, dim=0)
    lb = LayerBatch(**{f: lfull[:, i].contiguous() for i, f in enumerate(_LAYER_FIELDS)})
    lcol = LayerBatch(**{f: lrows[:, i:i + 1].contiguous() for i, f in enumerate(_LAYER_FIELDS)})
    tb = TileBatch(t_ic=cand["IC"].reshape(-1)[idx["IC"]], t_oc=cand["OC"].reshape(-1)[idx["OC"]],
                   t_oh=cand["OH"].reshape(-1)[idx["OH"]], t_ow=cand["OW"].reshape(-1)[idx["OW"]],
                   loop_order=torch.tensor([lo_ids[0]]))
    inner = len(lo_ids) * len(df_ids)
    seg = torch.arange(L).repeat_interleave(counts * inner)
    e = _Enumerated(lb, tb, TileGrid(lcol, cand, idx, tuple(lo_ids), tuple(df_ids)), seg,
                    int(counts.sum()) * inner)
    if len(_BATCH_CACHE) >= _CACHE_LIMIT:
        _BATCH_CACHE.pop(next(iter(_BATCH_CACHE)))
    _BATCH_CACHE[key] = e
    return e


def clear_cache() -> None:
    _LAYER_GRID_CACHE.clear()
    _BATCH_CACHE.clear()


# ----------------------------------------------------------------------------------------------------------------
# BatchTile
# ----------------------------------------------------------------------------------------------------------------
def _accel_rows(accel: Accelerator, dataflow: torch.Tensor | None) -> AccelBatch:
    """One accelerator as length-1 fields (they broadcast over the rows: per-accelerator quantities such as the
    buffers' energy per bit are computed once), with a per-row dataflow when several are searched."""
    one = AccelBatch.from_accels([accel])
    if dataflow is not None:
        one.dataflow = dataflow
    return one


def _segment_best(obj: torch.Tensor, cycles: torch.Tensor, seg: torch.Tensor, n_seg: int) -> torch.Tensor:
    """Per segment: row index of (lowest obj, then lowest cycles, then lowest row index); -1 when all inf."""
    N = obj.shape[0]
    inf = torch.full((n_seg,), math.inf, dtype=obj.dtype)
    segmin = inf.scatter_reduce(0, seg, obj, "amin")
    is_min = obj == segmin[seg]
    cyc = torch.where(is_min, cycles, torch.full_like(cycles, math.inf))
    segcyc = inf.clone().scatter_reduce(0, seg, cyc, "amin")
    best = is_min & (cycles == segcyc[seg])
    idx = torch.where(best, torch.arange(N), torch.full((N,), N, dtype=torch.long))
    out = torch.full((n_seg,), N, dtype=torch.long).scatter_reduce(0, seg, idx, "amin")
    out[torch.isinf(segmin)] = -1
    return out


def _choices_from(cb, rows: torch.Tensor, obj: torch.Tensor, tinfo: torch.Tensor) -> list[TileChoice]:
    """Build TileChoice records of the given rows (one tensor gather per field, one .tolist())."""
    acc_names = [k for k in COUNTERS if k != "cycles" and k in cb.accesses] + \
        [k for k in cb.accesses if k not in COUNTERS]  # another mode may report other counters
    e_names = [k for k in ENERGY_COMPONENTS if k in cb.energy_pj] + [k for k in cb.energy_pj
                                                                     if k not in ENERGY_COMPONENTS]
    cols = [cb.cycles, cb.latency_ms, cb.area_mm2, obj] + [cb.energy_pj[k] for k in e_names] + \
        [cb.accesses[k] for k in acc_names]
    mat = torch.cat([torch.stack([c.detach()[rows].to(torch.float64) for c in cols], dim=1),
                     tinfo.to(torch.float64)], dim=1).tolist()
    legal = cb.legal[rows].tolist()
    ne = len(e_names)
    out = []
    for r, lg in zip(mat, legal):
        cyc, lat, area, ob = r[:4]
        e = dict(zip(e_names, r[4:4 + ne]))
        acc = {k: int(round(v)) for k, v in zip(acc_names, r[4 + ne:4 + ne + len(acc_names)])}
        ti, to, th, tw, lo, df = (int(round(v)) for v in r[-6:])
        out.append(TileChoice(Tiling(ti, to, th, tw, LOOP_ORDERS[lo]),
                              Cost(int(round(cyc)), lat, e, area, acc, bool(lg)), ob, DATAFLOWS[df]))
    return out


def batch_tile(layers: Sequence[Layer], accel: Accelerator, weights=DEFAULT_WEIGHTS, mode: str = "native",
               loop_orders="accel", dataflows="accel", pinned: Mapping[int, Tiling] | None = None
               ) -> list[TileChoice]:
    """The best tiling of each layer on ``accel``.

    ``loop_orders``: "accel" (the accelerator's loop order), "all" (the 120) or a list of indices;
    ``dataflows``: "accel", "all" (treats the dataflow as a per-layer mapping choice, for exploration; the RTL
    builds one dataflow per accelerator) or a list. ``pinned``: {layer index: Tiling} evaluated as-is (the
    tiling's own loop order, the accelerator's dataflow) instead of searched. Raises :class:`JaqError` when no
    legal tiling exists for a layer (or a pinned tiling is illegal)."""
    weights = check_weights(weights)
    layers = list(layers)
    if mode == "native":  # searched layers never pass through estimate_layers: refuse a batch > 1 here
        require_batch_one(layers)
    if not layers:
        return []
    pinned = dict(pinned or {})
    for i in pinned:
        if not 0 <= i < len(layers):
            raise JaqError(f"pinned layer index {i} out of range 0..{len(layers) - 1}", "pinned")
    search_idx = [i for i in range(len(layers)) if i not in pinned]
    result: list[TileChoice | None] = [None] * len(layers)
    if pinned:
        pin_idx = sorted(pinned)
        for i, ch in zip(pin_idx, evaluate_tilings([layers[i] for i in pin_idx], accel,
                                                   [pinned[i] for i in pin_idx], weights, mode)):
            if not ch.cost.legal:
                raise JaqError(f"pinned tiling {ch.tiling.to_dict()} does not fit (buffers or dimensions)",
                               f"layers[{i}].tiling")
            result[i] = ch
    lo_ids = _loop_order_ids(accel, loop_orders)
    if mode == "native":  # proven (and tested) for the native model only
        lo_ids = distinct_loop_orders(lo_ids)
    df_ids = _dataflow_ids(accel, dataflows)
    per_row = len(lo_ids) * len(df_ids)
    # chunks of layers, each evaluated in one estimator call
    chunk: list[int] = []
    rows = 0
    chunks = []
    for i in search_idx:
        r = space.space_size(layers[i], 1, 1) * per_row
        if chunk and rows + r > MAX_ROWS_PER_CALL:
            chunks.append(chunk)
            chunk, rows = [], 0
        chunk.append(i)
        rows += r
    if chunk:
        chunks.append(chunk)
    for ch in chunks:
        for i, choice in zip(ch, _search([layers[i] for i in ch], accel, weights, mode, lo_ids, df_ids)):
            if choice is None:
                raise JaqError(f"no legal tiling: even the smallest tiles do not fit the buffers of "
                               f"{accel.act_buf_kb}/{accel.wgt_buf_kb}/{accel.out_buf_kb} KB", f"layers[{i}]")
            result[i] = choice
    return result  # type: ignore[return-value]


def _search(layers, accel, weights, mode, lo_ids, df_ids) -> list[TileChoice | None]:
    e = _enumerate(layers, lo_ids, df_ids)
    if mode == "native" and accel.double_buffer:
        cb, obj = _search_overlapped(e, accel, weights, len(layers))
    else:
        if mode == "native":
            cb = estimate(e.layers, AccelBatch.from_accels([accel]), e.tiles, mode=mode, grid=e.grid)
        else:
            lb, tb, df = e.row_batches()
            cb = estimate(lb, _accel_rows(accel, df if len(df_ids) > 1 else None), tb, mode=mode)
        obj = objective_value(cb.energy_total_pj, cb.cycles, cb.clock_mhz, cb.area_mm2, weights)
        obj = torch.where(cb.legal, obj, torch.full_like(obj, math.inf))
    best = _segment_best(obj, cb.cycles, e.seg, len(layers))
    ok = best >= 0
    out: list[TileChoice | None] = [None] * len(layers)
    if bool(ok.any()):
        good = torch.nonzero(ok).squeeze(1)
        rows = best[good]
        for j, ch in zip(good.tolist(), _choices_from(cb, rows, obj, e.row_info(rows))):
            out[j] = ch
    return out


def _search_overlapped(e: _Enumerated, accel: Accelerator, weights, n_layers: int):
    """A double-buffered accelerator's candidates (docs/execution-model.md section 9), exact by bounds: a row's sum
    of instruction cycles bounds its overlapped cycles from above, ``SET_LAYER + END + SYNCs + max(engine busy,
    DMA busy)`` from below; only rows whose lower-bound objective does not exceed their layer's best upper-bound
    objective can be optimal, and only those get their exact overlapped cycles (:func:`jaq.hw.model.overlap_cycles`).
    Returns the CostBatch (exact cycles on those rows) and the objective (infinite on the others)."""
    from jaq.hw.model import estimate_native, overlap_cycles
    cb = estimate_native(e.layers, AccelBatch.from_accels([accel]), e.tiles, grid=e.grid, overlap=False)
    a = cb.accesses
    dma = sum(a[f"cycles_{k}"] for k in ("load_act", "load_wgt", "load_psum", "load_scale", "set_res", "store_out"))
    lower = a["cycles_set_layer"] + a["cycles_end"] + a["cycles_sync"] + torch.maximum(a["cycles_compute"], dma)
    inf = torch.full_like(cb.cycles, math.inf)
    ob = lambda cyc: objective_value(cb.energy_total_pj, cyc, cb.clock_mhz, cb.area_mm2, weights)  # noqa: E731
    ub, lb = torch.where(cb.legal, ob(cb.cycles), inf), torch.where(cb.legal, ob(lower), inf)
    best_ub = torch.full((n_layers,), math.inf, dtype=ub.dtype).scatter_reduce(0, e.seg, ub, "amin")
    rows = torch.nonzero(torch.isfinite(lb) & (lb <= best_ub[e.seg])).squeeze(1)
    info = e.row_info(rows)
    tiles = TileBatch(info[:, 0], info[:, 1], info[:, 2], info[:, 3], info[:, 4].long())
    exact = overlap_cycles(e.layers.index(rows // e.grid.inner), AccelBatch.from_accels([accel]), tiles,
                           info[:, 4].long(), info[:, 5].long(), cb.cycles.dtype)
    cb.cycles = cb.cycles.clone()
    cb.cycles[rows] = exact
    obj = inf.clone()
    obj[rows] = ob(cb.cycles)[rows]
    return cb, obj


def evaluate_tilings(layers: Sequence[Layer], accel: Accelerator, tilings: Sequence[Tiling],
                     weights=DEFAULT_WEIGHTS, mode: str = "native") -> list[TileChoice]:
    """Evaluate user-pinned tilings as-is (one estimator call); illegal ones come back with ``cost.legal`` False
    and an infinite objective."""
    weights = check_weights(weights)
    costs = estimate_layers(layers, accel, tilings, mode=mode)
    out = []
    for t, c in zip(tilings, costs):
        ob = objective_value(c.energy_total_pj, c.cycles, accel.clock_mhz, c.area_mm2, weights) if c.legal \
            else math.inf
        out.append(TileChoice(t, c, ob, accel.dataflow))
    return out


def summarize(choices: Sequence[TileChoice]) -> dict[str, float]:
    """Totals over layers: cycles, latency ms, energy mJ, area mm² (the accelerator's), objective sum."""
    return {"cycles": sum(c.cost.cycles for c in choices),
            "latency_ms": sum(c.cost.latency_ms for c in choices),
            "energy_mj": sum(c.cost.energy_total_pj for c in choices) * 1e-9,
            "area_mm2": choices[0].cost.area_mm2 if choices else 0.0,
            "objective": sum(c.objective for c in choices)}


__all__ = ["TileChoice", "batch_tile", "evaluate_tilings", "objective_value", "summarize", "DEFAULT_WEIGHTS",
           "clear_cache", "distinct_loop_orders"]
