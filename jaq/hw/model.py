"""The vectorised analytical cost model (native mode): closed form of the compiled program's counts.

``estimate(layers, accels, tiles)`` evaluates N (layer, accelerator, tiling) rows at once with torch tensor
operations only (no Python loop over rows) and returns a :class:`~jaq.hw.batch.CostBatch`. Every count equals
what :func:`jaq.hw.schedule.walk` counts on ``compile_layer(layer, accel, tiling)`` — exactly (tests check
thousands of random cases) — because both are built from the same per-instruction functions of
:mod:`jaq.hw.timing`:

* trip counts ``n_d = ceil(D/t_d)``; each dimension is split into ``n_d - 1`` full tiles and one edge tile of
  extent ``D - (n_d-1) t_d``, so the sum of any per-tile factor over a dimension is ``(n_d-1) f(t_d) + f(edge)``;
* compute counters are sums of separable terms (timing.compute_terms): their sum over the full tile grid is the
  product of the per-dimension sums;
* refetches come from the loop order: operand X (act <- IC,OH,OW; wgt <- IC,OC; out <- OC,OH,OW) is loaded
  ``G * prod(n_d for loops at or outside j*)`` times, j* the innermost loop X depends on *whose trip count is
  above 1* (a loop of one iteration never changes a tile index); the multiset of loaded tiles is every distinct
  tile, each ``R_X = prod(n_d, irrelevant d at or outside j*)`` times, so volumes are ``G * R_X * prod(sums)``;
* a partial sum is loaded back at each visit of an out tile with ic > 0: ``G * R' * (n_ic-1) * n_oc n_oh n_ow``
  visits when the IC loop is outside j*(out) (R' the irrelevant product without IC), none otherwise.

Differentiable: any field may be a float tensor with ``requires_grad`` (PE counts, buffer KB, channels, bits);
integer roundings are straight-through (exact values, identity gradients), so a weighted cost backpropagates to
soft choices. The legality mask (docs/execution-model.md section 3) has no gradient.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from jaq.hw import constants as C
from jaq.hw import overlap as OV
from jaq.hw import timing as T
from jaq.errors import JaqError
from jaq.hw.batch import DTYPE, LAYER_FIELDS as _LAYER_FIELDS, AccelBatch, CostBatch, LayerBatch, TileBatch
from jaq.hw.bitfusion import estimate_bitfusion
from jaq.hw.records import (COST_MODES, DATAFLOWS, LOOP_DIMS, LOOP_ORDERS, Accelerator, Cost, Layer, Tiling,
                             is_depthwise)
from jaq.hw.schedule import COUNTERS, derive_counters

MODES = COST_MODES
#: Energy components (pJ) of CostBatch.energy_pj, in this order.
ENERGY_COMPONENTS = ("mac", "act_buf_rd", "act_buf_wr", "wgt_buf_rd", "wgt_buf_wr", "out_buf_rd", "out_buf_wr",
                     "scale_buf", "out_unit", "dram")

# (120, 5): DIM_AT[lo, p] = index into LOOP_DIMS of the dim at position p (outermost first).
_DIM_AT = torch.tensor([[LOOP_DIMS.index(d) for d in lo] for lo in LOOP_ORDERS], dtype=torch.long)
_REL = {"act": ("IC", "OH", "OW"), "wgt": ("IC", "OC"), "out": ("OC", "OH", "OW")}
# (120, 5) bool: is the dim at position p relevant to the operand
_REL_BY_POS = {k: torch.tensor([[d in rel for d in lo] for lo in LOOP_ORDERS]) for k, rel in _REL.items()}
_IC_BY_POS = torch.tensor([[d == "IC" for d in lo] for lo in LOOP_ORDERS])
_POS = torch.arange(5)


def _broadcast_len(*batches) -> int:
    ns = {len(b) for b in batches}
    n = max(ns)
    if not ns <= {1, n}:
        raise ValueError(f"batch lengths {sorted(ns)} do not broadcast")
    return n


def refetch(loop_order: torch.Tensor, n: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Loop-order refetch factors per row: ``R_act``, ``R_wgt``, ``R_out`` (multiplicity of each distinct tile)
    and ``R_psum`` (visits of an out tile with a given ic > 0; 0 when IC is inside the out loops).
    ``n`` maps IC/OC/OH/OW to trip-count tensors; ``loop_order`` holds indices 0..119 (one per row, or one for
    all rows)."""
    if loop_order.numel() == 1:
        return refetch_static(LOOP_ORDERS[int(loop_order.reshape(-1)[0])], n)
    lo = loop_order.long()
    ref = n["IC"]
    one = torch.ones((), dtype=ref.dtype, device=ref.device)
    cols = [one.expand_as(lo).to(ref.dtype)] + [torch.broadcast_to(n[d], lo.shape) for d in LOOP_DIMS[1:]]
    n_full = torch.stack(cols, dim=1)  # (N, 5) in LOOP_DIMS order
    dim_at = _DIM_AT.to(lo.device)[lo]
    n_pos = torch.gather(n_full, 1, dim_at)  # (N, 5) by position
    nontriv = n_pos.detach() > 1
    pos = _POS.to(lo.device)
    ones_col = torch.ones_like(n_pos[:, :1])
    out = {}
    jstar = {}
    for k in ("act", "wgt", "out"):
        rel = _REL_BY_POS[k].to(lo.device)[lo]
        j = torch.where(rel & nontriv, pos, -1).amax(dim=1)
        jstar[k] = j
        irr = torch.where(rel, torch.ones_like(n_pos), n_pos)
        cum = torch.cat([ones_col, torch.cumprod(irr, dim=1)], dim=1)
        out["R_" + k] = torch.gather(cum, 1, (j + 1).unsqueeze(1)).squeeze(1)
    is_ic = _IC_BY_POS.to(lo.device)[lo]
    rel_o = _REL_BY_POS["out"].to(lo.device)[lo]
    irr = torch.where(rel_o | is_ic, torch.ones_like(n_pos), n_pos)
    cum = torch.cat([ones_col, torch.cumprod(irr, dim=1)], dim=1)
    r_noic = torch.gather(cum, 1, (jstar["out"] + 1).unsqueeze(1)).squeeze(1)
    pos_ic = (is_ic.long() * pos).sum(dim=1)
    ic_outside = pos_ic < jstar["out"]
    out["R_psum"] = torch.where(ic_outside, r_noic, torch.zeros_like(r_noic))
    return out


def refetch_static(order: Sequence[str], n: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """:func:`refetch` for one loop order shared by all rows: an irrelevant loop multiplies an operand's loads iff
    some relevant loop with more than one iteration lies inside it (j* is the innermost such loop)."""
    live = {d: n[d].detach() > 1 for d in ("IC", "OC", "OH", "OW")}
    dims = [d for d in order if d != "B"]
    out = {}
    for k, rel in list(_REL.items()) + [("psum", _REL["out"])]:
        r = None
        inner = None  # a live relevant loop lies inside the current position
        ic_outside = None
        for d in reversed(dims):
            if d in rel:
                inner = live[d] if inner is None else (inner | live[d])
            elif inner is not None:
                if k == "psum" and d == "IC":
                    ic_outside = inner
                    continue
                fac = torch.where(inner, n[d], 1.0)
                r = fac if r is None else r * fac
        if r is None:
            r = torch.ones_like(n["IC"])
        if k == "psum":
            r = torch.zeros_like(r) if ic_outside is None else torch.where(ic_outside, r, 0.0)
        out["R_" + k] = r
    return out


@dataclass
class TileGrid:
    """BatchTile's enumeration in factored form. Rows are ``(size row, loop order, dataflow)`` triples in that
    nesting order (dataflow innermost): ``N = N_s * len(lo_ids) * len(df_ids)``. A size row is one layer with one
    combination of candidate tiles: ``layers_col`` holds the L layers as (L, 1) columns, ``cand[d]`` the (L, S)
    candidate tiles of dimension d (padded with 1), ``idx[d]`` (N_s,) each size row's flat index into
    ``cand[d]``. With a grid, :func:`estimate` takes the N_s size rows as ``layers``/``tiles`` (their
    ``loop_order`` and the accelerator's ``dataflow`` are ignored: ``lo_ids``/``df_ids`` are used)."""

    layers_col: LayerBatch
    cand: dict
    idx: dict
    lo_ids: tuple = (0,)
    df_ids: tuple = (0,)

    @property
    def inner(self) -> int:
        return len(self.lo_ids) * len(self.df_ids)


def _as_float(x: torch.Tensor, dtype) -> torch.Tensor:
    return x if x.dtype == dtype else x.to(dtype)


class _Params:
    """Layer/accelerator quantities the per-dimension factors need, aligned to one domain (rows or a table)."""

    def __init__(self, layers, X, Y, W, NU, f):
        g = f(layers.groups)
        self.dw = is_depthwise(f(layers.in_ch), f(layers.out_ch), g).detach()  # section 8: channels tiled as OC
        one = torch.ones_like(g)
        self.G = torch.where(self.dw, one, g)
        self.dims = {"IC": torch.where(self.dw, one, f(layers.in_ch) / g),
                     "OC": torch.where(self.dw, f(layers.out_ch), f(layers.out_ch) / g), "OH": f(layers.out_h),
                     "OW": f(layers.out_w)}
        self.K, self.S = f(layers.kernel), f(layers.stride)
        self.a, self.w = f(layers.act_bits), f(layers.wgt_bits)
        self.pf = T.fusion_factor(self.a, self.w)
        self.e_a, self.e_w = T.elems_per_beat(W, self.a), T.elems_per_beat(W, self.w)
        self.e_o = T.elems_per_beat(W, float(T.OUT_BITS))
        self.e_f = T.elems_per_beat(W, f(layers.out_bits))
        self.pool = f(layers.pool)
        self.res = f(layers.res_bits)
        self.e_r = T.elems_per_beat(W, torch.where(self.res > 0, self.res, torch.full_like(self.res, 8.0)))
        self.n_u = T.store_lines_per_step(NU, f(layers.out_bits), self.res)  # section 7.4
        self.compute = T.ComputeParams(self.K, self.S, X, Y, self.pf, self.a)


class _RowDomain:
    """Per-dimension sums evaluated on the rows themselves (any batch)."""

    def __init__(self, P: _Params, t: dict):
        self.P, self.t = P, t
        self.n = {d: T.ceil_div(P.dims[d], t[d]) for d in t}
        self.last = {d: P.dims[d] - (self.n[d] - 1) * t[d] for d in t}
        self.cache: dict = {}

    def dsum(self, d: str, fn) -> torch.Tensor:
        """Sum of fn(extent) over dimension d's tiles: (n-1) f(full) + f(edge); fn None is the constant 1."""
        if fn is None:
            return self.n[d]
        key = (d, fn)  # the key keeps fn alive, so identities cannot be reused
        if key not in self.cache:
            self.cache[key] = (self.n[d] - 1) * fn(self.t[d]) + fn(self.last[d])
        return self.cache[key]


class _GridDomain(_RowDomain):
    """Per-dimension sums evaluated once per (layer, candidate tile) on small (L, S) tables, then gathered to the
    rows (rows of BatchTile's enumeration are Cartesian grids of per-dimension candidates). Same arithmetic on
    the same values as :class:`_RowDomain`, hence identical results."""

    def __init__(self, P: _Params, t_tab: dict, idx: dict):
        super().__init__(P, t_tab)
        self.idx = idx
        self.n_tab = self.n
        self.n = {d: self.n_tab[d].reshape(-1)[idx[d]].reshape(-1, 1, 1) for d in t_tab}

    def dsum(self, d: str, fn) -> torch.Tensor:
        if fn is None:
            return self.n[d]
        key = (d, fn)
        if key not in self.cache:
            tab = (self.n_tab[d] - 1) * fn(self.t[d]) + fn(self.last[d])
            self.cache[key] = tab.reshape(-1)[self.idx[d]].reshape(-1, 1, 1)
        return self.cache[key]


def _dtype_of(*batches) -> torch.dtype:
    for b in batches:
        for f in ("pe_x", "in_ch", "t_ic"):
            v = getattr(b, f, None)
            if v is not None and v.is_floating_point():
                return v.dtype
    return DTYPE


def native_counts(layers: LayerBatch, accels: AccelBatch, tiles: TileBatch, grid=None,
                  overlap: bool = True) -> tuple[dict, torch.Tensor]:
    """Every counter of :data:`jaq.hw.schedule.COUNTERS` per row (tensors) and the legality mask.

    ``overlap`` False: double-buffered rows keep the sum of their instructions' cycles (an upper bound of their
    overlapped cycles, section 9; BatchTile's first pass) instead of the exact overlapped cycles.

    ``grid`` (BatchTile's fast path, see :class:`TileGrid`): the rows are per-layer Cartesian grids of candidate
    tiles; per-dimension sums are then computed on the small candidate tables and gathered."""
    dt = _dtype_of(accels, layers, tiles)
    f = lambda x: _as_float(x, dt)  # noqa: E731
    X, Y = f(accels.pe_x), f(accels.pe_y)
    W, Lat = f(accels.dram_bits_per_cycle), f(accels.dram_latency_cycles)
    NU = f(accels.out_unit_lines)
    t = {"IC": f(tiles.t_ic), "OC": f(tiles.t_oc), "OH": f(tiles.t_oh), "OW": f(tiles.t_ow)}
    if grid is None:
        P = _Params(layers, X, Y, W, NU, f)  # row-aligned
        dom = _RowDomain(P, t)
        Pd = P
    else:  # size rows as (N_s, 1, 1): loop orders broadcast along dim 1, dataflows along dim 2
        P = _Params(LayerBatch(**{k: getattr(layers, k).reshape(-1, 1, 1) for k in _LAYER_FIELDS}), X, Y, W, NU, f)
        t = {d: v.reshape(-1, 1, 1) for d, v in t.items()}
        Pd = _Params(grid.layers_col, X, Y, W, NU, f)  # (L, 1) columns, broadcast against (L, S) tables
        dom = _GridDomain(Pd, {d: f(grid.cand[d]) for d in grid.cand}, grid.idx)
    G, K, S = P.G, P.K, P.S
    n = dom.n

    def grid_sum(terms_dom, terms_row) -> torch.Tensor:
        tot = 0
        for td, tr in zip(terms_dom, terms_row):
            tot = tot + tr.coef * dom.dsum("IC", td.ic) * dom.dsum("OC", td.oc) * dom.dsum("OH", td.oh) \
                * dom.dsum("OW", td.ow)
        return tot

    if grid is None:
        R = refetch(tiles.loop_order, n)
    else:
        Rs = [refetch_static(LOOP_ORDERS[i], n) for i in grid.lo_ids]
        R = Rs[0] if len(Rs) == 1 else {k: torch.cat([r[k] for r in Rs], dim=1) for k in Rs[0]}
    c: dict = {}
    # --- compute counters, per dataflow present in the batch -------------------------------------------------
    df = accels.dataflow if grid is None else torch.tensor(grid.df_ids).reshape(1, 1, -1)
    if grid is not None:
        present = list(grid.df_ids)
    else:
        present = [int(v) for v in torch.unique(df)] if df.numel() > 1 else [int(df.item())]
    per_df = {}
    for k in present:
        td = T.compute_terms(DATAFLOWS[k], Pd.compute)
        tr = td if Pd is P else T.compute_terms(DATAFLOWS[k], P.compute)
        per_df[k] = {name: grid_sum(td[name], tr[name]) for name in td}
        if T.uses_dw_mapping(DATAFLOWS[k], True) and bool(P.dw.any()):  # depthwise rows: section 8
            td = T.compute_terms(DATAFLOWS[k], Pd.compute, depthwise=True)
            tr = td if Pd is P else T.compute_terms(DATAFLOWS[k], P.compute, depthwise=True)
            per_df[k] = {name: torch.where(P.dw, grid_sum(td[name], tr[name]), v) for name, v in per_df[k].items()}
    if len(present) == 1:
        comp = per_df[present[0]]
    elif grid is not None:
        comp = {name: torch.cat([per_df[k][name] for k in present], dim=2) for name in per_df[present[0]]}
    else:
        comp = {}
        for name in T.COMPUTE_COUNTERS:
            v = per_df[present[0]][name]
            for k in present[1:]:
                v = torch.where(df == k, per_df[k][name], v)
            comp[name] = v
    c["compute_steps"] = G * comp["steps"]
    c["act_buf_rd_vectors"] = G * comp["act_vectors"]
    c["wgt_buf_rd_vectors"] = G * comp["wgt_vectors"]
    c["out_buf_rd_words"] = G * comp["out_words"]
    c["out_buf_wr_words"] = c["out_buf_rd_words"]
    c["fu_active_cycles"] = G * comp["fu_active"]
    c["macs"] = G * comp["macs"]
    # --- transfers ----------------------------------------------------------------------------------------------
    n_o = n["OC"] * n["OH"] * n["OW"]
    ncu = n["IC"] * n_o
    out_vol = dom.dsum("OC", lambda m: T.ceil_div(m, Pd.e_o)) * dom.dsum("OH", T._ident) * dom.dsum("OW", T._ident)
    dw = P.dw
    # a depthwise layer's act tile follows its channel (OC) tile, as its out tile does (section 8)
    R["R_act"] = torch.where(dw, R["R_out"], R["R_act"])
    act_ch = torch.where(dw, dom.dsum("OC", lambda m: T.ceil_div(m, Pd.e_a)),
                         dom.dsum("IC", lambda x: T.ceil_div(x, Pd.e_a)))
    c["act_load_beats"] = G * R["R_act"] * act_ch * \
        dom.dsum("OH", lambda h: T.in_extent(h, Pd.K, Pd.S)) * dom.dsum("OW", lambda x: T.in_extent(x, Pd.K, Pd.S))
    dw_mapped = dw & torch.isin(df, torch.tensor([DATAFLOWS.index(d) for d in T.DW_MAPPED], device=df.device))
    # window vectors under the depthwise mapping (section 8); elsewhere K^2 runs per (oc, ic tile)
    c["wgt_load_beats"] = G * R["R_wgt"] * torch.where(
        dw_mapped, T.dw_groups(K, P.pf) * dom.dsum("OC", lambda m: T.ceil_div(m * Pd.pf, Pd.e_w)),
        dom.dsum("IC", lambda x: T.ceil_div(x, Pd.e_w)) * dom.dsum("OC", T._ident) * (K * K))
    # one final store per distinct out tile (through the output unit, preceded by LOAD_SCALE), R_out - 1 partial
    sum_hw = dom.dsum("OH", T._ident) * dom.dsum("OW", T._ident)
    c["final_store_lines"] = G * out_vol
    c["final_store_steps"] = G * dom.dsum("OC", lambda m: T.ceil_div(m, Pd.e_o * Pd.n_u)) * sum_hw
    # a pooled layer writes one pixel per out tile (its tile covers every pixel)
    c["final_store_beats"] = G * dom.dsum("OC", lambda m: T.ceil_div(m, Pd.e_f)) * T.where(P.pool > 0, 1.0, sum_hw)
    c["store_beats"] = G * (R["R_out"] - 1) * out_vol + c["final_store_beats"]
    c["scale_load_beats"] = G * dom.dsum("OC", lambda m: T.scale_tile_beats(m, Pd.e_o)) * n["OH"] * n["OW"]
    psum_visits = G * R["R_psum"] * (n["IC"] - 1)
    c["psum_load_beats"] = psum_visits * out_vol
    c["n_set_layer"] = torch.ones_like(ncu)
    c["n_end"] = c["n_set_layer"]
    c["n_compute"] = G * ncu
    c["n_load_act"] = G * R["R_act"] * torch.where(dw, n["OC"], n["IC"]) * n["OH"] * n["OW"]
    c["n_load_wgt"] = G * R["R_wgt"] * n["IC"] * n["OC"]
    c["n_store_out"] = G * R["R_out"] * n_o
    c["n_store_final"] = G * n_o
    c["n_load_scale"] = c["n_store_final"]
    # a residual layer: SET_RES + the block input's tile read beside every final store (section 7.3)
    has_res = (P.res > 0).to(dt)
    c["n_set_res"] = c["n_store_final"] * has_res
    c["n_store_res"] = c["n_set_res"]
    c["res_load_beats"] = G * dom.dsum("OC", lambda m: T.ceil_div(m, Pd.e_r)) * sum_hw * has_res
    c["n_load_psum"] = psum_visits * n_o
    db = accels.double_buffer.to(dt)
    c["n_sync"] = G * db  # one per group's pipeline (section 9)
    depth = T.pipeline_depth(df).to(dt)
    avb, wvb = T.read_bits(P.a, P.w, dw_mapped)
    c.update(_act_vec_bits=avb, _wgt_vec_bits=wvb, _bus_bits=W, _latency=Lat, _depth=depth)
    derive_counters(c)
    if overlap and bool((db > 0).any()):  # double-buffered rows: overlapped cycles (section 9)
        lo = tiles.loop_order if grid is None else torch.tensor(grid.lo_ids).reshape(1, -1, 1)
        over = overlap_cycles(layers, accels, tiles, lo, df, dt)
        c["cycles"] = torch.where(db > 0, over, c["cycles"])
    # --- legality -----------------------------------------------------------------------------------------------
    with torch.no_grad():
        fa, fw, fo = T.footprints(t["IC"], t["OC"], t["OH"], t["OW"], K, S, P.e_a, P.e_w, P.e_o, dw, dw_mapped,
                                  P.pf)
        db = accels.double_buffer > 0
        have = {k: T.usable_lines(T.buffer_lines(f(getattr(accels, f"{k}_buf_kb")), W), db) for k in ("act", "wgt", "out")}
        legal = (fa <= have["act"]) & (fw <= have["wgt"]) & (fo <= have["out"])
        # without the depthwise mapping a depthwise layer runs one channel per tile (section 8)
        legal = legal & ~(dw & ~dw_mapped & (t["OC"] > 1))
        if grid is None:  # grid candidates are within their dimensions (a pooled layer's cover it) by construction
            for d in t:
                legal = legal & (t[d] <= P.dims[d]) & (t[d] >= 1)
            legal = legal & ((P.pool == 0) | ((t["OH"] >= P.dims["OH"]) & (t["OW"] >= P.dims["OW"])))
    return c, legal


#: Rows evaluated at once by :func:`overlap_cycles` (each carries a trailing axis of 6^4 class combinations).
OVERLAP_ROWS_PER_CHUNK = 1024


def overlap_cycles(layers: LayerBatch, accels: AccelBatch, tiles: TileBatch, loop_order: torch.Tensor,
                   dataflow: torch.Tensor, dt=DTYPE) -> torch.Tensor:
    """Cycles of each row's double-buffered program (:mod:`jaq.hw.overlap`, docs section 9). ``layers``/``tiles``
    are N rows (``tiles.loop_order`` unused), ``accels`` 1 or N rows; ``loop_order`` and ``dataflow`` index tensors
    that broadcast against (N, 1, 1): per row, or along axis 1 (loop orders) and 2 (dataflows) as in BatchTile's
    grid. Returns the broadcast shape, squeezed to (N,) for per-row indices."""
    N = _broadcast_len(layers, tiles)
    layers = layers if len(layers) == N else layers.expand_to(N)
    tiles = tiles if len(tiles) == N else tiles.expand_to(N)
    lo = loop_order.long().reshape(-1, 1, 1) if loop_order.dim() <= 1 else loop_order.long()
    df = dataflow.long().reshape(-1, 1, 1) if dataflow.dim() <= 1 else dataflow.long()
    shape = torch.broadcast_shapes((N, 1, 1), lo.shape, df.shape)
    lo_b, df_b = lo.expand(shape), df.expand(shape)
    out = torch.zeros(shape, dtype=dt)
    pairs = torch.unique(torch.stack([lo_b.reshape(-1), df_b.reshape(-1)], dim=1), dim=0).tolist()
    one_accel = len(accels) == 1
    for lo_id, df_id in pairs:
        at = torch.nonzero((lo_b == lo_id) & (df_b == df_id))  # (k, 3): the positions of this pair
        for s in range(0, at.shape[0], OVERLAP_ROWS_PER_CHUNK):
            pos = at[s:s + OVERLAP_ROWS_PER_CHUNK]
            r = pos[:, 0]
            out[pos[:, 0], pos[:, 1], pos[:, 2]] = _overlap_rows(
                layers.index(r), accels if one_accel else accels.index(r), tiles.index(r), LOOP_ORDERS[lo_id],
                DATAFLOWS[df_id], dt)
    return out.reshape(-1) if loop_order.dim() <= 1 and dataflow.dim() <= 1 else out


def _overlap_rows(layers: LayerBatch, accels: AccelBatch, tiles: TileBatch, order, dataflow: str, dt) -> torch.Tensor:
    """:func:`overlap_cycles` of rows sharing one loop order and dataflow: (n,)."""
    f = lambda x: _as_float(x, dt).unsqueeze(-1)  # noqa: E731  (the trailing axis of class combinations)
    X, Y, W, Lat = f(accels.pe_x), f(accels.pe_y), f(accels.dram_bits_per_cycle), f(accels.dram_latency_cycles)
    P = _Params(layers, X, Y, W, f(accels.out_unit_lines), f)
    flat = lambda x: _as_float(x, dt)  # noqa: E731
    t = {"IC": flat(tiles.t_ic), "OC": flat(tiles.t_oc), "OH": flat(tiles.t_oh), "OW": flat(tiles.t_ow)}
    dims = {d: v.squeeze(-1) for d, v in P.dims.items()}
    n = {d: T.ceil_div(dims[d], t[d]) for d in t}
    last = {d: dims[d] - (n[d] - 1) * t[d] for d in t}
    dw = P.dw
    dw_mapped = dw & T.uses_dw_mapping(dataflow, True)
    terms = T.compute_terms(dataflow, P.compute)["steps"]
    dw_terms = T.compute_terms(dataflow, P.compute, depthwise=True)["steps"]
    depth = T.pipeline_depth(dataflow)
    has_res = (P.res > 0).to(dt)

    def compute(c, m, h, w):
        return torch.where(dw, T.sum_terms(dw_terms, c, m, h, w), T.sum_terms(terms, c, m, h, w)) + depth

    def store(m, h, w, final):
        if not final:
            return T.store_cycles(T.out_tile_beats(m, h, w, P.e_o))
        return T.load_cycles(T.scale_tile_beats(m, P.e_o), Lat) + has_res * (T.ISSUE_CYCLES + T.residual_wait_cycles(Lat)) \
            + T.final_store_cycles(T.final_store_steps(m, h, w, P.e_o, P.n_u))

    costs = OV.StageCosts(
        compute=compute,
        load_act=lambda c, m, h, w: T.load_cycles(T.act_tile_beats(torch.where(dw, m, c), h, w, P.K, P.S, P.e_a), Lat),
        load_wgt=lambda c, m: T.load_cycles(T.wgt_tile_beats(c, m, P.K, P.e_w, dw_mapped, P.pf), Lat),
        load_psum=lambda m, h, w: T.load_cycles(T.out_tile_beats(m, h, w, P.e_o), Lat),
        store=store)
    group = OV.group_cycles(order, n, t, last, dw.squeeze(-1), costs)
    return T.set_layer_cycles() + P.G.squeeze(-1) * group + T.end_cycles()


def energy_terms(accels: AccelBatch, dt=None) -> tuple[dict[str, list[tuple[str, object]]], object]:
    """The one definition of the energy and area assembly (constants.py): per energy component of
    :data:`ENERGY_COMPONENTS` a list of (counter name, pJ per counter unit), and the accelerator's area (mm²).
    Coefficients are tensors per accelerator row (floats for 0-d rows)."""
    X, Y, W = accels.pe_x, accels.pe_y, accels.dram_bits_per_cycle
    if dt is not None:
        X, Y, W = X.to(dt), Y.to(dt), W.to(dt)
    bufs = {name: C.buffer_costs(getattr(accels, f"{name}_buf_kb").to(X.dtype), name, X, Y)
            for name in ("act", "wgt", "out")}
    sc = C.scale_memory_costs()
    terms: dict[str, list[tuple[str, object]]] = {"mac": [("fu_active_cycles", C.FU_ENERGY_PJ.value)]}
    for name in ("act", "wgt", "out"):
        terms[f"{name}_buf_rd"] = [(f"{name}_buf_rd_bits", bufs[name]["rd_pj_per_bit"])]
        terms[f"{name}_buf_wr"] = [(f"{name}_buf_wr_bits", bufs[name]["wr_pj_per_bit"])]
    terms["scale_buf"] = [("scale_buf_rd_lines", W * sc["rd_pj_per_bit"]), ("scale_buf_wr_lines", W * sc["wr_pj_per_bit"])]
    terms["out_unit"] = [("out_unit_lanes", C.OUTPUT_UNIT_PJ.value)]
    terms["dram"] = [("dram_rd_bits", C.DRAM_PJ_PER_BIT.value), ("dram_wr_bits", C.DRAM_PJ_PER_BIT.value)]
    area = (C.fu_array_area_mm2(X, Y) + bufs["act"]["area_mm2"] + bufs["wgt"]["area_mm2"] + bufs["out"]["area_mm2"]
            + sc["area_mm2"] + C.output_unit_area_mm2(W, accels.out_unit_lines.to(X.dtype))) \
        * (1.0 + C.AREA_OVERHEAD_FRAC.value)
    return terms, area


def energy_area(c: dict, accels: AccelBatch, dt=None) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Energy by component (pJ) from the counters and area (mm²) of the accelerator (:func:`energy_terms`)."""
    terms, area = energy_terms(accels, dt)
    e = {}
    for comp, ts in terms.items():
        tot = 0
        for name, coef in ts:
            tot = tot + c[name] * coef
        e[comp] = tot
    return e, area


def estimate(layers: LayerBatch, accels: AccelBatch, tiles: TileBatch, mode: str = "native",
             grid: TileGrid | None = None) -> CostBatch:
    """Cost of N (layer, accelerator, tiling) rows; batches of length 1 broadcast. ``mode``: a key of
    :data:`COST_MODELS` ("native": this module, the execution model the RTL implements; "bitfusion":
    :func:`jaq.hw.bitfusion.estimate_bitfusion`). ``grid``: optional factored description of the rows (BatchTile's
    fast path; native mode only)."""
    model = COST_MODELS.get(mode)
    if model is None:
        raise ValueError(f"unknown cost-model mode {mode!r}; use one of {', '.join(MODES)}")
    if grid is not None and mode != "native":
        raise ValueError(f"the factored grid is the native model's fast path, not the {mode} model's")
    return model(layers, accels, tiles) if grid is None else model(layers, accels, tiles, grid)


def estimate_native(layers: LayerBatch, accels: AccelBatch, tiles: TileBatch,
                    grid: TileGrid | None = None, overlap: bool = True) -> CostBatch:
    """The native model's :class:`CostBatch` (:func:`native_counts`, energy and area; ``overlap`` as there)."""
    c, legal = native_counts(layers, accels, tiles, grid, overlap)
    dt = c["cycles"].dtype
    energy, area = energy_area(c, accels, dt)
    if grid is None:
        N = _broadcast_len(layers, accels, tiles)
        full = lambda x: x.expand(N) if x.shape[0] != N else x  # noqa: E731
    else:
        shape = (len(layers), len(grid.lo_ids), len(grid.df_ids))
        full = lambda x: x.expand(shape).reshape(-1)  # noqa: E731
    acc = {k: full(c[k]) for k in COUNTERS if k != "cycles"}
    return CostBatch(cycles=full(c["cycles"]), energy_pj={k: full(v) for k, v in energy.items()},
                     area_mm2=full(area), accesses=acc, legal=full(legal),
                     clock_mhz=full(accels.clock_mhz.to(dt)))


#: The cost models, by mode: each takes (LayerBatch, AccelBatch, TileBatch) and returns a CostBatch. The keys are
#: :data:`jaq.hw.records.COST_MODES` (what an accel.json may name).
COST_MODELS: dict[str, Callable[..., CostBatch]] = {"native": estimate_native, "bitfusion": estimate_bitfusion}
assert tuple(COST_MODELS) == COST_MODES


def cost_row(cb: CostBatch, i: int) -> Cost:
    """Row ``i`` of a CostBatch as a :class:`jaq.hw.Cost` (ints for counts)."""
    cyc = int(round(float(cb.cycles[i])))
    return Cost(cycles=cyc, latency_ms=float(cb.latency_ms[i]),
                energy_pj={k: float(v[i]) for k, v in cb.energy_pj.items()}, area_mm2=float(cb.area_mm2[i]),
                accesses={k: int(round(float(v[i]))) for k, v in cb.accesses.items()}, legal=bool(cb.legal[i]))


def require_batch_one(layers: Sequence[Layer]) -> None:
    """One-line :class:`JaqError` naming the first layer with ``batch`` > 1: the native machine runs one image at a
    time, and a LayerBatch carries no batch (so no mode of :func:`estimate` could cost it)."""
    for i, l in enumerate(layers):
        if l.batch != 1:
            raise JaqError(f"batch {l.batch}: the native machine runs one image at a time; use batch 1 (batches run "
                           "in BitFusion mode: jaq.hw.bitfusion)", f"layers[{i}].batch")


def estimate_layers(layers: Sequence[Layer], accel: Accelerator, tilings: Sequence[Tiling],
                    mode: str = "native") -> list[Cost]:
    """Cost of each layer on one accelerator under its tiling (one estimator call)."""
    if len(layers) != len(tilings):
        raise ValueError("one tiling per layer")
    if not layers:
        return []
    require_batch_one(layers)
    cb = estimate(LayerBatch.from_layers(layers), AccelBatch.from_accels([accel]),
                  TileBatch.from_tilings(tilings), mode=mode)
    return [cost_row(cb, i) for i in range(len(layers))]


def estimate_one(layer: Layer, accel: Accelerator, tiling: Tiling, mode: str = "native") -> Cost:
    """Cost of one layer on one accelerator under one tiling."""
    return estimate_layers([layer], accel, [tiling], mode=mode)[0]


def total_cost(costs: Sequence[Cost]) -> Cost:
    """Sum of per-layer costs of one accelerator (area is the accelerator's, not summed)."""
    if not costs:
        raise ValueError("no costs to sum")
    e: dict[str, float] = {}
    acc: dict[str, int] = {}
    for c in costs:
        for k, v in c.energy_pj.items():
            e[k] = e.get(k, 0.0) + v
        for k, v in c.accesses.items():
            acc[k] = acc.get(k, 0) + v
    return Cost(cycles=sum(c.cycles for c in costs), latency_ms=sum(c.latency_ms for c in costs), energy_pj=e,
                area_mm2=costs[0].area_mm2, accesses=acc, legal=all(c.legal for c in costs))
