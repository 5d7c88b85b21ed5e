"""The exhaustive oracle of BatchTile: the same search as :func:`jaq.hw.batchtile.batch_tile` (native mode) as a
plain Python loop, one candidate at a time, with an independent scalar closed form of every counter (pure Python
ints built on :mod:`jaq.hw.timing`: per-dimension sums by explicit iteration, refetch factors by scanning the
loop order). Tests and ``benchmarks/bench_batchtile.py`` check that both choose identical tilings with identical
costs."""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import torch

from jaq.errors import JaqError
from jaq.hw import space
from jaq.hw import timing as T
from jaq.hw.batch import AccelBatch
from jaq.hw.batchtile import TileChoice, _dataflow_ids, _loop_order_ids
from jaq.hw.model import ENERGY_COMPONENTS, energy_terms
from jaq.hw.objective import DEFAULT_WEIGHTS, check_weights, objective_value
from jaq.hw.records import DATAFLOWS, LOOP_ORDERS, Accelerator, Cost, Layer, Tiling
from jaq.hw.schedule import compile_layer, derive_counters, walk


def _dim_sum(dim: int, tile: int, fn) -> int:
    """Sum of fn(extent) over a dimension's tiles, by explicit iteration."""
    return sum(fn(min(tile, dim - s)) for s in range(0, dim, tile))


def scalar_counts(layer: Layer, accel: Accelerator, tiling: Tiling, dataflow: str | None = None) -> dict:
    """Every counter of the program (pure Python ints): per-dimension sums by explicit iteration over tiles and the
    refetch factors by scanning the loop order. Independent of the tensor code of :mod:`jaq.hw.model`."""
    df = dataflow or accel.dataflow
    K, S, G = layer.kernel, layer.stride, layer.tile_groups
    dw = layer.depthwise  # section 8: channels tiled as OC, the act tile follows the OC tile
    dw_mapped = T.uses_dw_mapping(df, dw)
    dims = layer.tile_dims
    tile = {"IC": tiling.t_ic, "OC": tiling.t_oc, "OH": tiling.t_oh, "OW": tiling.t_ow}
    n = {d: T.ceil_div(dims[d], tile[d]) for d in dims}
    n["B"] = 1
    W = accel.dram_bits_per_cycle
    pf = T.fusion_factor(layer.act_bits, layer.wgt_bits)
    e_a, e_w, e_o = (T.elems_per_beat(W, b) for b in (layer.act_bits, layer.wgt_bits, T.OUT_BITS))
    e_f = T.elems_per_beat(W, layer.out_bits)
    n_u = T.store_lines_per_step(accel.out_unit_lines, layer.out_bits, layer.res_bits)
    ds = lambda d, fn: _dim_sum(dims[d], tile[d], fn)  # noqa: E731
    terms = T.compute_terms(df, T.ComputeParams(K, S, accel.pe_x, accel.pe_y, pf, layer.act_bits), dw)
    comp = {}
    for name, ts in terms.items():
        comp[name] = sum(tm.coef * ds("IC", tm.ic or (lambda x: 1)) * ds("OC", tm.oc or (lambda x: 1))
                         * ds("OH", tm.oh or (lambda x: 1)) * ds("OW", tm.ow or (lambda x: 1)) for tm in ts)
    order = tiling.loop_order

    def factors(rel, skip=()):
        j = -1
        for p, d in enumerate(order):
            if d in rel and n[d] > 1:
                j = p
        r = 1
        for d in order[:j + 1]:
            if d not in rel and d not in skip:
                r *= n[d]
        return j, r

    _, r_act = factors(("OC", "OH", "OW") if dw else ("IC", "OH", "OW"))
    _, r_wgt = factors(("IC", "OC"))
    j_out, r_out = factors(("OC", "OH", "OW"))
    _, r_noic = factors(("OC", "OH", "OW"), skip=("IC",))
    r_psum = r_noic if order.index("IC") < j_out else 0
    out_vol = ds("OC", lambda m: T.ceil_div(m, e_o)) * ds("OH", lambda x: x) * ds("OW", lambda x: x)
    n_out = n["OC"] * n["OH"] * n["OW"]
    final_beats = G * ds("OC", lambda m: T.ceil_div(m, e_f)) * (
        1 if layer.pool else ds("OH", lambda x: x) * ds("OW", lambda x: x))  # a pooled layer writes one pixel
    c = {
        "compute_steps": G * comp["steps"], "act_buf_rd_vectors": G * comp["act_vectors"],
        "wgt_buf_rd_vectors": G * comp["wgt_vectors"], "out_buf_rd_words": G * comp["out_words"],
        "out_buf_wr_words": G * comp["out_words"], "fu_active_cycles": G * comp["fu_active"],
        "macs": G * comp["macs"],
        "act_load_beats": G * r_act * ds("OC" if dw else "IC", lambda x: T.ceil_div(x, e_a))
        * ds("OH", lambda h: T.in_extent(h, K, S)) * ds("OW", lambda x: T.in_extent(x, K, S)),
        "wgt_load_beats": G * r_wgt * (T.dw_groups(K, pf) * ds("OC", lambda m: T.ceil_div(m * pf, e_w)) if dw_mapped
                                       else K * K * ds("IC", lambda x: T.ceil_div(x, e_w)) * ds("OC", lambda x: x)),
        "store_beats": G * (r_out - 1) * out_vol + final_beats, "final_store_beats": final_beats,
        "final_store_lines": G * out_vol,
        "final_store_steps": G * ds("OC", lambda m: T.ceil_div(m, e_o * n_u)) * ds("OH", lambda x: x)
        * ds("OW", lambda x: x), "psum_load_beats": G * r_psum * (n["IC"] - 1) * out_vol,
        "scale_load_beats": G * ds("OC", lambda m: T.scale_tile_beats(m, e_o)) * n["OH"] * n["OW"],
        "n_store_final": G * n_out, "n_load_scale": G * n_out,
        "n_set_res": G * n_out if layer.res_bits else 0, "n_store_res": G * n_out if layer.res_bits else 0,
        "res_load_beats": G * ds("OC", lambda m: T.ceil_div(m, T.elems_per_beat(W, layer.res_bits)))
        * ds("OH", lambda x: x) * ds("OW", lambda x: x) if layer.res_bits else 0,
        "n_set_layer": 1, "n_end": 1, "n_compute": G * n["IC"] * n_out, "n_sync": G if accel.double_buffer else 0,
        "n_load_act": G * r_act * n["OC" if dw else "IC"] * n["OH"] * n["OW"],
        "n_load_wgt": G * r_wgt * n["IC"] * n["OC"],
        "n_store_out": G * r_out * n_out, "n_load_psum": G * r_psum * (n["IC"] - 1) * n_out,
        "_act_vec_bits": T.read_bits(layer.act_bits, layer.wgt_bits, dw_mapped)[0],
        "_wgt_vec_bits": T.read_bits(layer.act_bits, layer.wgt_bits, dw_mapped)[1], "_bus_bits": W,
        "_latency": accel.dram_latency_cycles, "_depth": T.pipeline_depth(df),
    }
    derive_counters(c)
    if accel.double_buffer:  # overlapped cycles (section 9): the stages as the walker times them
        c["cycles"] = walk(compile_layer(layer, replace(accel, dataflow=df), tiling))["cycles"]
    return c


def scalar_legal(layer: Layer, accel: Accelerator, tiling: Tiling, dataflow: str | None = None) -> bool:
    dims = tuple(layer.tile_dims.values())
    if any(t > d for t, d in zip((tiling.t_ic, tiling.t_oc, tiling.t_oh, tiling.t_ow), dims)):
        return False
    if layer.depthwise and not T.uses_dw_mapping(dataflow or accel.dataflow, True) and tiling.t_oc > 1:
        return False  # one channel per tile without the depthwise mapping (section 8)
    if layer.pool and (tiling.t_oh, tiling.t_ow) != (layer.out_h, layer.out_w):
        return False  # a pooled layer's out tile covers every pixel
    W = accel.dram_bits_per_cycle
    e = [T.elems_per_beat(W, b) for b in (layer.act_bits, layer.wgt_bits, T.OUT_BITS)]
    fa, fw, fo = T.footprints(tiling.t_ic, tiling.t_oc, tiling.t_oh, tiling.t_ow, layer.kernel, layer.stride, *e,
                              layer.depthwise, T.uses_dw_mapping(dataflow or accel.dataflow, layer.depthwise),
                              T.fusion_factor(layer.act_bits, layer.wgt_bits))
    have = [T.usable_lines(T.buffer_lines(kb, W), accel.double_buffer)
            for kb in (accel.act_buf_kb, accel.wgt_buf_kb, accel.out_buf_kb)]
    return fa <= have[0] and fw <= have[1] and fo <= have[2]


class _ScalarEnergy:
    """Per-accelerator energy coefficients and area as Python floats (computed once, like the model does)."""

    def __init__(self, accel: Accelerator):
        terms, area = energy_terms(AccelBatch.from_accels([accel]))
        fl = lambda v: float(v[0]) if isinstance(v, torch.Tensor) else float(v)  # noqa: E731
        self.terms = {comp: [(name, fl(coef)) for name, coef in ts] for comp, ts in terms.items()}
        self.area = fl(area)

    def energy(self, c: dict) -> dict[str, float]:
        return {comp: sum(float(c[name]) * coef for name, coef in ts) for comp, ts in self.terms.items()}


def scalar_cost(layer: Layer, accel: Accelerator, tiling: Tiling, dataflow: str | None = None,
                _en: _ScalarEnergy | None = None) -> Cost:
    """The native cost of one candidate in pure Python (the exhaustive reference's evaluator)."""
    en = _en or _ScalarEnergy(accel)
    c = scalar_counts(layer, accel, tiling, dataflow)
    e = en.energy(c)
    cyc = c.pop("cycles")
    return Cost(cyc, cyc / (accel.clock_mhz * 1e3), e, en.area, c, scalar_legal(layer, accel, tiling, dataflow))


def exhaustive_reference(layers: Sequence[Layer], accel: Accelerator, weights=DEFAULT_WEIGHTS,
                         loop_orders="accel", dataflows="accel") -> list[TileChoice]:
    """The same search as :func:`batch_tile` (native mode) as a pure-Python loop, one candidate at a time."""
    weights = check_weights(weights)
    lo_ids, df_ids = _loop_order_ids(accel, loop_orders), _dataflow_ids(accel, dataflows)
    en = _ScalarEnergy(accel)
    out = []
    for i, layer in enumerate(layers):
        best = None
        best_key = None
        cands = space.layer_candidates(layer)
        for ti in cands[0]:
            for to in cands[1]:
                for th in cands[2]:
                    for tw in cands[3]:
                        for lo in lo_ids:
                            t = Tiling(ti, to, th, tw, LOOP_ORDERS[lo])
                            if not scalar_legal(layer, accel, t, "WS" if layer.depthwise else None):
                                continue  # (the buffer rules; below: the dataflow's own rule, section 8)
                            for df in df_ids:
                                if not scalar_legal(layer, accel, t, DATAFLOWS[df]):
                                    continue
                                c = scalar_cost(layer, accel, t, DATAFLOWS[df], en)
                                e_tot = 0
                                for k in ENERGY_COMPONENTS:
                                    e_tot = e_tot + c.energy_pj[k]
                                ob = objective_value(e_tot, float(c.cycles), accel.clock_mhz, en.area, weights)
                                key = (ob, c.cycles)
                                if best_key is None or key < best_key:
                                    best_key, best = key, TileChoice(t, c, ob, DATAFLOWS[df])
        if best is None:
            raise JaqError("no legal tiling", f"layers[{i}]")
        out.append(best)
    return out
