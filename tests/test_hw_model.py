"""The vectorised native cost model (jaq.hw.model): exact equality with the program walker, properties,
gradients, constants and pinned regression values."""

from __future__ import annotations

import math
from dataclasses import replace
import random

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from jaq.hw import constants as C
from jaq.hw import space
from jaq.hw.batch import AccelBatch, LayerBatch, TileBatch
from jaq.hw.model import estimate, estimate_layers, estimate_one, total_cost
from jaq.hw.records import DATAFLOWS, Accelerator, Layer, Tiling
from jaq.hw.schedule import COUNTERS, compile_layer, walk


def _random_case(rng: random.Random, pow2: bool):
    kind = rng.choice(["conv", "gconv", "depthwise", "pointwise", "fc"])
    K = rng.choice([1, 3, 5, 7])
    S = rng.choice([1, 2])
    if kind == "fc":
        layer = Layer("fc", rng.randint(1, 70), rng.randint(1, 70), 1, 1)
    elif kind == "pointwise":
        layer = Layer("pointwise", rng.randint(1, 48), rng.randint(1, 48), rng.randint(1, 9), rng.randint(1, 9),
                      stride=S)
    elif kind == "depthwise":
        c = rng.randint(1, 40)
        layer = Layer("depthwise", c, c, rng.randint(1, 8), rng.randint(1, 8), kernel=max(K, S), stride=S, groups=c)
    else:
        G = 1 if kind == "conv" else rng.choice([2, 3, 4])
        layer = Layer("conv", G * rng.randint(1, 20), G * rng.randint(1, 20), rng.randint(1, 9), rng.randint(1, 9),
                      kernel=max(K, S), stride=S, groups=G)
    out_bits = rng.choice([2, 4, 8, 32])
    layer = replace(layer.with_bits(rng.choice([2, 4, 8]), rng.choice([2, 4, 8])), out_bits=out_bits,
                    out_signed=out_bits == 32 or rng.random() < 0.5)
    accel = Accelerator(pe_x=rng.randint(3, 12), pe_y=rng.randint(3, 12), dataflow=rng.choice(DATAFLOWS),
                        act_buf_kb=528, wgt_buf_kb=528, out_buf_kb=528,
                        dram_bits_per_cycle=rng.choice([32, 64, 96, 128, 256]),
                        dram_latency_cycles=rng.randint(1, 40), out_unit_lines=rng.choice([1, 2, 4, 8, 16]),
                        double_buffer=rng.random() < 0.5)
    u = rng.random()
    if kind in ("conv", "pointwise") and u < 0.2:  # a pooled head: its out tile covers every pixel
        layer = replace(layer, pool=True)
    elif u < 0.45:  # a residual operand of 2/4/8 bits read beside each final store
        layer = replace(layer, res_bits=rng.choice([2, 4, 8]), res_signed=rng.random() < 0.5)
    if pow2:
        ts = [rng.choice(c) for c in space.layer_candidates(layer)]
    else:  # arbitrary tile sizes: many edge tiles
        ts = [rng.randint(1, d) for d in space.layer_dims(layer)]
        if layer.pool:
            ts[2:] = [layer.out_h, layer.out_w]
    if layer.depthwise and accel.dataflow != "WS":  # one channel per tile without the depthwise mapping
        ts[1] = 1
    return layer, accel, Tiling(*ts, loop_order=rng.randrange(120))


def test_model_equals_walk_on_random_cases():
    rng = random.Random(1234)
    cases = [_random_case(rng, pow2=i % 2 == 0) for i in range(240)]
    # one batched call over all cases (rows with different layers, accelerators, tilings, dataflows, loop orders)
    cb = estimate(LayerBatch.from_layers([c[0] for c in cases]), AccelBatch.from_accels([c[1] for c in cases]),
                  TileBatch.from_tilings([c[2] for c in cases]))
    assert bool(cb.legal.all())
    for i, (layer, accel, tiling) in enumerate(cases):
        g = walk(compile_layer(layer, accel, tiling))
        assert int(cb.cycles[i]) == g["cycles"], (layer, accel, tiling)
        for k in COUNTERS:
            if k != "cycles":
                assert int(cb.accesses[k][i]) == g[k], (k, layer, accel, tiling)


def test_estimate_one_and_layers_and_total():
    layer = Layer("conv", 16, 32, 8, 8, kernel=3, act_bits=4, wgt_bits=4)
    accel = Accelerator(pe_x=8, pe_y=8)
    t = Tiling(16, 16, 4, 8)
    one = estimate_one(layer, accel, t)
    g = walk(compile_layer(layer, accel, t))
    assert one.cycles == g["cycles"] and one.accesses["macs"] == layer.macs
    assert one.latency_ms == pytest.approx(g["cycles"] / (accel.clock_mhz * 1e3))
    both = estimate_layers([layer, layer], accel, [t, t])
    tot = total_cost(both)
    assert tot.cycles == 2 * one.cycles and tot.area_mm2 == one.area_mm2
    assert tot.energy_total_pj == pytest.approx(2 * one.energy_total_pj)
    assert set(one.energy_pj) == {"mac", "act_buf_rd", "act_buf_wr", "wgt_buf_rd", "wgt_buf_wr", "out_buf_rd",
                                  "out_buf_wr", "scale_buf", "out_unit", "dram"}
    # energy components are the counters times the constants
    assert one.energy_pj["mac"] == pytest.approx(g["fu_active_cycles"] * C.FU_ENERGY_PJ.value)
    assert one.energy_pj["out_unit"] == pytest.approx(g["out_unit_lanes"] * C.OUTPUT_UNIT_PJ.value)
    assert g["out_unit_lanes"] == g["final_store_lines"] * accel.dram_bits_per_cycle // 32
    assert one.energy_pj["dram"] == pytest.approx((g["dram_rd_bits"] + g["dram_wr_bits"]) * 15.0)


def test_legality_mask():
    layer = Layer("conv", 512, 512, 16, 16, kernel=3)
    accel = Accelerator(pe_x=16, pe_y=16, act_buf_kb=64, wgt_buf_kb=64, out_buf_kb=64)
    # wgt tile 512*9*ceil(512/16) = 147456 lines > 4096
    assert not estimate_one(layer, accel, Tiling(512, 512, 1, 1)).legal
    assert estimate_one(layer, accel, Tiling(16, 16, 4, 4)).legal
    # a tile larger than its dimension is illegal, never silently accepted
    small = Layer("conv", 8, 8, 4, 4, kernel=3)
    assert not estimate_one(small, accel, Tiling(16, 8, 4, 4)).legal


# ---------------------------------------------------------------------------------------------------------------
# Properties (which hold, stated precisely in docs/cost-model-native.md)
# ---------------------------------------------------------------------------------------------------------------
layers_st = st.builds(
    lambda cin, cout, h, w, k, s, a, wb: Layer("conv", cin, cout, h, w, kernel=max(k, s), stride=s, act_bits=a,
                                                wgt_bits=wb),
    st.integers(1, 64), st.integers(1, 64), st.integers(1, 12), st.integers(1, 12), st.sampled_from([1, 3, 5]),
    st.sampled_from([1, 2]), st.sampled_from([2, 4, 8]), st.sampled_from([2, 4, 8]))


def _tiling_for(layer, data):
    dims = (layer.in_ch_per_group, layer.out_ch_per_group, layer.out_h, layer.out_w)
    ts = [data.draw(st.sampled_from(space.tile_candidates(d))) for d in dims]
    return Tiling(*ts, loop_order=data.draw(st.integers(0, 119)))


@settings(max_examples=60, deadline=None)
@given(layer=layers_st, data=st.data(), df=st.sampled_from(DATAFLOWS), x=st.integers(3, 40), y=st.integers(3, 40))
def test_more_pes_never_raise_cycles(layer, data, df, x, y):
    t = _tiling_for(layer, data)
    base = Accelerator(pe_x=x, pe_y=y, dataflow=df, act_buf_kb=528, wgt_buf_kb=528, out_buf_kb=528)
    ax = Accelerator(pe_x=x + data.draw(st.integers(1, 24)), pe_y=y, dataflow=df, act_buf_kb=528, wgt_buf_kb=528,
                     out_buf_kb=528)
    ay = Accelerator(pe_x=x, pe_y=y + data.draw(st.integers(1, 24)), dataflow=df, act_buf_kb=528, wgt_buf_kb=528,
                     out_buf_kb=528)
    c0, cx, cy = (estimate_one(layer, a, t) for a in (base, ax, ay))
    for c in (cx, cy):
        assert c.accesses["compute_steps"] <= c0.accesses["compute_steps"]
        assert c.cycles <= c0.cycles
        assert c.accesses["fu_active_cycles"] == c0.accesses["fu_active_cycles"]


@settings(max_examples=40, deadline=None)
@given(layer=layers_st, data=st.data(), kb=st.sampled_from(space.BUF_KB_CHOICES[:-1]))
def test_larger_buffers_keep_traffic_and_legality(layer, data, kb):
    t = _tiling_for(layer, data)
    kb2 = data.draw(st.sampled_from([k for k in space.BUF_KB_CHOICES if k > kb]))
    small = Accelerator(act_buf_kb=kb, wgt_buf_kb=kb, out_buf_kb=kb)
    large = Accelerator(act_buf_kb=kb2, wgt_buf_kb=kb2, out_buf_kb=kb2)
    cs, cl = estimate_one(layer, small, t), estimate_one(layer, large, t)
    # off-chip traffic of a fixed tiling does not depend on the buffer size; legality is monotone
    assert cs.accesses["dram_rd_bits"] == cl.accesses["dram_rd_bits"]
    assert cs.accesses["dram_wr_bits"] == cl.accesses["dram_wr_bits"]
    assert cs.cycles == cl.cycles
    assert cl.legal or not cs.legal


@settings(max_examples=60, deadline=None)
@given(layer=layers_st, data=st.data(), df=st.sampled_from(DATAFLOWS))
def test_more_bits_never_lower_cycles_traffic_or_mac_energy(layer, data, df):
    t = _tiling_for(layer, data)
    accel = Accelerator(dataflow=df, act_buf_kb=528, wgt_buf_kb=528, out_buf_kb=528)
    lo_a, lo_w = data.draw(st.sampled_from([2, 4])), data.draw(st.sampled_from([2, 4]))
    lo = estimate_one(layer.with_bits(lo_a, lo_w), accel, t)
    for hi_bits in ((lo_a * 2, lo_w), (lo_a, lo_w * 2)):
        hi = estimate_one(layer.with_bits(*hi_bits), accel, t)
        assert hi.cycles >= lo.cycles
        assert hi.accesses["dram_rd_bits"] >= lo.accesses["dram_rd_bits"]
        assert hi.accesses["fu_active_cycles"] >= lo.accesses["fu_active_cycles"]
        assert hi.energy_pj["mac"] >= lo.energy_pj["mac"]
        assert hi.energy_pj["dram"] >= lo.energy_pj["dram"]


def test_total_energy_can_fall_when_bits_rise_at_a_fixed_tiling():
    # Documented non-property: with one input channel per tile the vector lanes are mostly padding, and a weight
    # vector is 64/a bits wide, so raising the activation bits shrinks the weight-buffer read energy.
    layer = Layer("conv", 51, 20, 8, 5, kernel=5, stride=2)
    accel = Accelerator(dataflow="RS")
    t = Tiling(1, 1, 2, 4, ("B", "IC", "OW", "OH", "OC"))
    e = [estimate_one(layer.with_bits(a, 8), accel, t).energy_total_pj for a in (2, 4, 8)]
    assert e[0] > e[1] > e[2]


# ---------------------------------------------------------------------------------------------------------------
# Gradients
# ---------------------------------------------------------------------------------------------------------------
def test_gradients_reach_soft_accelerator_fields():
    layers = [Layer("conv", 32, 64, 8, 8, kernel=3, act_bits=4, wgt_bits=4), Layer("pointwise", 64, 16, 8, 8)]
    tilings = [Tiling(32, 16, 4, 4), Tiling(16, 16, 8, 8)]
    ab = AccelBatch.from_accels([Accelerator(pe_x=8, pe_y=8, act_buf_kb=128, wgt_buf_kb=128, out_buf_kb=128)])
    soft = {k: getattr(ab, k).clone().requires_grad_(True) for k in ("pe_x", "pe_y", "act_buf_kb", "wgt_buf_kb",
                                                                      "out_buf_kb")}
    for k, v in soft.items():
        setattr(ab, k, v)
    cb = estimate(LayerBatch.from_layers(layers), ab, TileBatch.from_tilings(tilings))
    hard = estimate_layers(layers, Accelerator(pe_x=8, pe_y=8, act_buf_kb=128, wgt_buf_kb=128, out_buf_kb=128),
                           tilings)
    assert [int(c) for c in cb.cycles.detach()] == [c.cycles for c in hard]  # straight-through: exact values
    loss = (0.33 * cb.energy_total_pj * 1e-9 + 0.33 * cb.latency_ms + 0.33 * cb.area_mm2).sum()
    loss.backward()
    for k, v in soft.items():
        assert v.grad is not None and torch.isfinite(v.grad).all(), k
    assert float(soft["pe_x"].grad) != 0.0 and float(soft["pe_y"].grad) != 0.0
    assert float(soft["act_buf_kb"].grad) > 0.0  # bigger buffers: more area and larger banks


def test_gradients_reach_soft_bits():
    layer = Layer("conv", 32, 32, 8, 8, kernel=3)
    accel = AccelBatch.from_accels([Accelerator(pe_x=8, pe_y=8)])
    t = TileBatch.from_tilings([Tiling(32, 32, 8, 8)])
    # weighted sum over candidate bit widths (Gumbel-softmax style)
    logits = torch.zeros(3, requires_grad=True)
    probs = torch.softmax(logits, 0)
    lb = LayerBatch.from_layers([layer.with_bits(b, 8) for b in (2, 4, 8)])
    cb = estimate(lb, accel, t.expand_to(3))
    cost = (probs * (cb.energy_total_pj * 1e-9 + cb.latency_ms)).sum()
    cost.backward()
    assert logits.grad is not None and float(logits.grad.abs().sum()) > 0
    assert float(logits.grad[2]) > 0  # 8-bit is the most expensive candidate
    # and a directly soft (float) bit width passes a straight-through gradient
    lb2 = LayerBatch.from_layers([layer.with_bits(4, 4)])
    lb2.act_bits = lb2.act_bits.clone().requires_grad_(True)
    cb2 = estimate(lb2, accel, t)
    cb2.energy_total_pj.sum().backward()
    assert lb2.act_bits.grad is not None and torch.isfinite(lb2.act_bits.grad).all()


# ---------------------------------------------------------------------------------------------------------------
# Constants
# ---------------------------------------------------------------------------------------------------------------
def test_banking_reproduces_bitfusion_buffer_areas():
    # bf_e_conf: 16 rows x 32 columns; WBUF 64 KB, IBUF 32 KB, OBUF 16 KB -> 0.767, 0.242, 0.243 mm²
    assert C.buffer_costs(64, "wgt", 32, 16)["area_mm2"] == pytest.approx(0.767, abs=1e-3)
    assert C.buffer_costs(32, "act", 32, 16)["area_mm2"] == pytest.approx(0.242, abs=1e-3)
    assert C.buffer_costs(16, "out", 32, 16)["area_mm2"] == pytest.approx(0.243, abs=1e-3)
    assert C.fu_array_area_mm2(32, 16) == pytest.approx(0.888, abs=1e-3)
    # table points are reproduced exactly, sizes in between interpolate monotonically
    for b, r, w, a in C.CACTI_TABLE:
        assert C.sram_read_pj_per_bit(b) == pytest.approx(r) and C.sram_bank_area_mm2(b) == pytest.approx(a)
    assert C.sram_read_pj_per_bit(1024) < C.sram_read_pj_per_bit(1500) < C.sram_read_pj_per_bit(2048)
    # beyond the table: more banks of 16 KB, same per-bit energy
    big = C.buffer_costs(528, "act", 3, 3)
    assert big["bank_bytes"] == 16384 and big["banks"] == pytest.approx(33)
    assert big["rd_pj_per_bit"] == pytest.approx(0.31193)


def test_constants_table_names_sources():
    txt = C.render_table(Accelerator())
    for c in C.all_constants():
        assert c.name in txt and c.source in txt
    assert "16384" in txt and "act" in txt


# ---------------------------------------------------------------------------------------------------------------
# Regression: pinned outputs of three reference configurations (machine v2 part 1: final stores through the
# output unit, one OBUF line per cycle; cycles agree with the walker)
# ---------------------------------------------------------------------------------------------------------------
REFERENCE = [
    (Layer("conv", 64, 64, 32, 32, kernel=3, act_bits=8, wgt_bits=8),
     Accelerator(pe_x=32, pe_y=16, act_buf_kb=64, wgt_buf_kb=64, out_buf_kb=64, dataflow="WS",
                 out_unit_lines=1),
     Tiling(64, 32, 4, 4, ("B", "OC", "OH", "IC", "OW")),
     (194476, 110425313.11615999, 2.9085737099999998, 3047424, 2097152)),
    (Layer("depthwise", 96, 96, 16, 16, kernel=5, stride=2, groups=96, act_bits=4, wgt_bits=2),
     Accelerator(pe_x=8, pe_y=12, act_buf_kb=128, wgt_buf_kb=96, out_buf_kb=80, dataflow="RS",
                 dram_bits_per_cycle=64, dram_latency_cycles=30, out_unit_lines=1),
     Tiling(1, 1, 8, 16, ("B", "IC", "OC", "OH", "OW")),
     (187586, 154698367.09706295, 2.7260301468062123, 8361984, 1572864)),
    (Layer("pointwise", 120, 40, 8, 8, act_bits=2, wgt_bits=4),
     Accelerator(pe_x=5, pe_y=7, act_buf_kb=528, wgt_buf_kb=256, out_buf_kb=64, dataflow="OS",
                 out_unit_lines=1),
     Tiling(32, 16, 8, 2, ("OW", "B", "IC", "OH", "OC")),
     (17194, 11091447.010901699, 6.390571241086588, 375808, 327680)),
]


@pytest.mark.parametrize("layer,accel,tiling,want", REFERENCE)
def test_regression_reference_configurations(layer, accel, tiling, want):
    c = estimate_one(layer, accel, tiling)
    cycles, energy, area, rd, wr = want
    assert c.legal
    assert c.cycles == cycles
    assert c.energy_total_pj == pytest.approx(energy, rel=1e-12)
    assert c.area_mm2 == pytest.approx(area, rel=1e-12)
    assert (c.accesses["dram_rd_bits"], c.accesses["dram_wr_bits"]) == (rd, wr)
    assert math.isfinite(c.edap)


def test_wider_output_unit_costs_its_lanes_and_saves_store_cycles():
    """Section 7.4: N_u lines per cycle cost N_u * W/32 lanes of area and cut the final-store steps by n_u."""
    layer = Layer("conv", 64, 64, 16, 16, kernel=3, act_bits=4, wgt_bits=4, out_bits=4)
    tiling = Tiling(64, 64, 16, 16, ("B", "OC", "OH", "OW", "IC"))
    one = estimate_one(layer, Accelerator(out_unit_lines=1), tiling)
    eight = estimate_one(layer, Accelerator(out_unit_lines=8), tiling)
    lanes = 7 * 128 / 32
    assert eight.area_mm2 - one.area_mm2 == pytest.approx(
        lanes * C.OUTPUT_UNIT_LANE_UM2.value * 1e-6 * (1 + C.AREA_OVERHEAD_FRAC.value), rel=1e-9)
    lines = 16 * 16 * 64 // 4  # one 64-channel run of 16 lines per pixel
    assert one.accesses["final_store_steps"] == lines
    assert eight.accesses["final_store_steps"] == lines // 8
    assert one.cycles - eight.cycles == lines - lines // 8
