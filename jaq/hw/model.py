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

from typing import Sequence

import torch

from jaq.hw import constants as C
from jaq.hw import timing as T
from jaq.hw.batch import DTYPE, AccelBatch, CostBatch, LayerBatch, TileBatch
from jaq.hw.records import DATAFLOWS, LOOP_DIMS, LOOP_ORDERS, Accelerator, Cost, Layer, Tiling
from jaq.hw.schedule import COUNTERS, derive_counters

MODES = ("native", "bitfusion")
#: Energy components (pJ) of CostBatch.energy_pj, in this order.
ENERGY_COMPONENTS = ("mac", "act_buf_rd", "act_buf_wr", "wgt_buf_rd", "wgt_buf_wr", "out_buf_rd", "out_buf_wr",
                     "dram")

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
    ``n`` maps IC/OC/OH/OW to trip-count tensors; all tensors broadcast to the rows of ``loop_order``."""
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


def _as_float(x: torch.Tensor, dtype) -> torch.Tensor:
    return x if x.dtype == dtype else x.to(dtype)


def native_counts(layers: LayerBatch, accels: AccelBatch, tiles: TileBatch) -> tuple[dict, torch.Tensor]:
    """Every counter of :data:`jaq.hw.schedule.COUNTERS` per row (tensors) and the legality mask."""
    dt = next((getattr(b, f) for b in (accels, layers, tiles) for f in ("pe_x", "in_ch", "t_ic")
               if hasattr(b, f) and getattr(b, f).is_floating_point()), torch.zeros(0, dtype=DTYPE)).dtype
    f = lambda x: _as_float(x, dt)  # noqa: E731
    G = f(layers.groups)
    Cg, Mg = f(layers.in_ch) / G, f(layers.out_ch) / G
    OH, OW, K, S = f(layers.out_h), f(layers.out_w), f(layers.kernel), f(layers.stride)
    a, w = f(layers.act_bits), f(layers.wgt_bits)
    X, Y = f(accels.pe_x), f(accels.pe_y)
    W, Lat = f(accels.dram_bits_per_cycle), f(accels.dram_latency_cycles)
    t = {"IC": f(tiles.t_ic), "OC": f(tiles.t_oc), "OH": f(tiles.t_oh), "OW": f(tiles.t_ow)}
    dims = {"IC": Cg, "OC": Mg, "OH": OH, "OW": OW}
    pf = T.fusion_factor(a, w)
    e_a, e_w, e_o = T.elems_per_beat(W, a), T.elems_per_beat(W, w), T.elems_per_beat(W, float(T.OUT_BITS))
    n = {d: T.ceil_div(dims[d], t[d]) for d in dims}
    last = {d: dims[d] - (n[d] - 1) * t[d] for d in dims}

    cache: dict = {}

    def dsum(d: str, fn) -> torch.Tensor:
        """Sum of fn(extent) over dimension d's tiles; fn None is the constant 1."""
        if fn is None:
            return n[d]
        key = (d, fn)  # the key keeps fn alive, so identities cannot be reused
        if key not in cache:
            cache[key] = (n[d] - 1) * fn(t[d]) + fn(last[d])
        return cache[key]

    def grid_sum(terms) -> torch.Tensor:
        tot = 0
        for tm in terms:
            tot = tot + tm.coef * dsum("IC", tm.ic) * dsum("OC", tm.oc) * dsum("OH", tm.oh) * dsum("OW", tm.ow)
        return tot

    R = refetch(tiles.loop_order, n)
    c: dict = {}
    # --- compute counters, per dataflow present in the batch -------------------------------------------------
    df = accels.dataflow
    present = [int(v) for v in torch.unique(df)] if df.numel() > 1 else [int(df.item())]
    params = T.ComputeParams(K, S, X, Y, pf)
    per_df = {}
    for k in present:
        per_df[k] = {name: grid_sum(ts) for name, ts in T.compute_terms(DATAFLOWS[k], params).items()}
    if len(present) == 1:
        comp = per_df[present[0]]
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
    ncu = n["IC"] * n["OC"] * n["OH"] * n["OW"]
    s_oc_o = dsum("OC", lambda m: T.ceil_div(m, e_o))
    s_oh, s_ow = dsum("OH", T._ident), dsum("OW", T._ident)
    out_vol = s_oc_o * s_oh * s_ow
    c["act_load_beats"] = G * R["R_act"] * dsum("IC", lambda x: T.ceil_div(x, e_a)) * \
        dsum("OH", lambda h: T.in_extent(h, K, S)) * dsum("OW", lambda x: T.in_extent(x, K, S))
    c["wgt_load_beats"] = G * R["R_wgt"] * dsum("IC", lambda x: T.ceil_div(x, e_w)) * dsum("OC", T._ident) * K * K
    c["store_beats"] = G * R["R_out"] * out_vol
    c["psum_load_beats"] = G * R["R_psum"] * (n["IC"] - 1) * out_vol
    c["n_set_layer"] = torch.ones_like(ncu)
    c["n_end"] = torch.ones_like(ncu)
    c["n_compute"] = G * ncu
    c["n_load_act"] = G * R["R_act"] * n["IC"] * n["OH"] * n["OW"]
    c["n_load_wgt"] = G * R["R_wgt"] * n["IC"] * n["OC"]
    c["n_store_out"] = G * R["R_out"] * n["OC"] * n["OH"] * n["OW"]
    c["n_load_psum"] = G * R["R_psum"] * (n["IC"] - 1) * n["OC"] * n["OH"] * n["OW"]
    depth = T.pipeline_depth(df).to(dt)
    c.update(_act_vec_bits=T.act_vector_bits(a, w), _wgt_vec_bits=T.wgt_vector_bits(a, w), _bus_bits=W,
             _latency=Lat, _depth=depth)
    derive_counters(c)
    # --- legality -----------------------------------------------------------------------------------------------
    with torch.no_grad():
        fa, fw, fo = T.footprints(t["IC"], t["OC"], t["OH"], t["OW"], K, S, e_a, e_w, e_o)
        legal = (fa <= T.buffer_lines(f(accels.act_buf_kb), W)) & (fw <= T.buffer_lines(f(accels.wgt_buf_kb), W)) \
            & (fo <= T.buffer_lines(f(accels.out_buf_kb), W))
        for d in dims:
            legal = legal & (t[d] <= dims[d]) & (t[d] >= 1)
    return c, legal


def energy_area(c: dict, accels: AccelBatch, dt=None) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Energy by component (pJ) from the counters and area (mm²) of the accelerator (constants.py)."""
    X, Y = accels.pe_x, accels.pe_y
    if dt is not None:
        X, Y = X.to(dt), Y.to(dt)
    bufs = {name: C.buffer_costs(getattr(accels, f"{name}_buf_kb").to(X.dtype), name, X, Y)
            for name in ("act", "wgt", "out")}
    e = {"mac": c["fu_active_cycles"] * C.FU_ENERGY_PJ.value}
    for name in ("act", "wgt", "out"):
        e[f"{name}_buf_rd"] = c[f"{name}_buf_rd_bits"] * bufs[name]["rd_pj_per_bit"]
        e[f"{name}_buf_wr"] = c[f"{name}_buf_wr_bits"] * bufs[name]["wr_pj_per_bit"]
    e["dram"] = (c["dram_rd_bits"] + c["dram_wr_bits"]) * C.DRAM_PJ_PER_BIT.value
    area = (C.fu_array_area_mm2(X, Y) + bufs["act"]["area_mm2"] + bufs["wgt"]["area_mm2"]
            + bufs["out"]["area_mm2"]) * (1.0 + C.AREA_OVERHEAD_FRAC.value)
    return e, area


def estimate(layers: LayerBatch, accels: AccelBatch, tiles: TileBatch, mode: str = "native") -> CostBatch:
    """Cost of N (layer, accelerator, tiling) rows; batches of length 1 broadcast. ``mode``: "native" (this
    module, the execution model the RTL implements) or "bitfusion" (jaq.hw.bitfusion.estimate_bitfusion)."""
    if mode == "bitfusion":
        try:
            from jaq.hw.bitfusion import estimate_bitfusion
        except ImportError as e:  # pragma: no cover - depends on the other module being present
            raise NotImplementedError("the bitfusion mode needs jaq/hw/bitfusion.py") from e
        return estimate_bitfusion(layers, accels, tiles)
    if mode != "native":
        raise ValueError(f"unknown cost-model mode {mode!r}; use one of {', '.join(MODES)}")
    N = _broadcast_len(layers, accels, tiles)
    c, legal = native_counts(layers, accels, tiles)
    dt = c["cycles"].dtype
    energy, area = energy_area(c, accels, dt)
    full = lambda x: x.expand(N) if x.shape[0] != N else x  # noqa: E731
    acc = {k: full(c[k]) for k in COUNTERS if k != "cycles"}
    return CostBatch(cycles=full(c["cycles"]), energy_pj={k: full(v) for k, v in energy.items()},
                     area_mm2=full(area), accesses=acc, legal=full(legal),
                     clock_mhz=full(accels.clock_mhz.to(dt)))


def cost_row(cb: CostBatch, i: int) -> Cost:
    """Row ``i`` of a CostBatch as a :class:`jaq.hw.Cost` (ints for counts)."""
    cyc = int(round(float(cb.cycles[i])))
    return Cost(cycles=cyc, latency_ms=float(cb.latency_ms[i]),
                energy_pj={k: float(v[i]) for k, v in cb.energy_pj.items()}, area_mm2=float(cb.area_mm2[i]),
                accesses={k: int(round(float(v[i]))) for k, v in cb.accesses.items()}, legal=bool(cb.legal[i]))


def estimate_layers(layers: Sequence[Layer], accel: Accelerator, tilings: Sequence[Tiling],
                    mode: str = "native") -> list[Cost]:
    """Cost of each layer on one accelerator under its tiling (one estimator call)."""
    if len(layers) != len(tilings):
        raise ValueError("one tiling per layer")
    if not layers:
        return []
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
