"""Double-buffered programs (docs/execution-model.md section 9): the stage table against a brute-force walk of the
loop nest, the closed form against the walker on random cases, buffer halves free of hazards, the overlap itself,
half-capacity legality and BatchTile's exact search by bounds."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from jaq.errors import JaqError
from jaq.hw import overlap as OV
from jaq.hw import space
from jaq.hw import timing as T
from jaq.hw.batch import AccelBatch, LayerBatch, TileBatch
from jaq.hw.batchtile import batch_tile
from jaq.hw.model import estimate, estimate_one
from jaq.hw.oracle import exhaustive_reference
from jaq.hw.records import DATAFLOWS, LOOP_ORDERS, Accelerator, Layer, Tiling
from jaq.hw.schedule import COUNTERS, DMA_OPS, compile_layer, walk

ORDERS4 = sorted({tuple(d for d in lo if d != "B") for lo in LOOP_ORDERS})


def test_class_counts_partition_every_loop():
    for n in range(1, 9):
        counts = OV.class_counts(torch.tensor(float(n)))
        assert float(counts.sum()) == n


def _classify(x: int, n: int) -> int:
    return OV.CLASSES.index((x == 0, x == n - 2, x == n - 1))


@pytest.mark.parametrize("order", ORDERS4[::5])
@pytest.mark.parametrize("ns", [(1, 1, 1, 1), (2, 3, 1, 4), (3, 2, 2, 1), (1, 4, 3, 2), (5, 1, 2, 3)])
def test_stage_table_matches_the_loop_nest(order, ns):
    """Every iteration's stage facts, found by walking the odometer, are those of its class combination."""
    tab = OV.stage_table(order)
    n = dict(zip(OV.DIMS, ns))
    its = list(itertools.product(*[range(n[d]) for d in order]))
    key = lambda it, dims: tuple(dict(zip(order, it))[d] for d in dims)  # noqa: E731
    for i, it in enumerate(its):
        x = dict(zip(order, it))
        combo = 0
        for d in OV.DIMS:
            combo = combo * len(OV.CLASSES) + _classify(x[d], n[d])
        prev = its[i - 1] if i else None
        nxt = its[i + 1] if i + 1 < len(its) else None
        chg = lambda a, b, dims: a is not None and b is not None and key(a, dims) != key(b, dims)  # noqa: E731
        assert bool(tab.store[combo]) == chg(prev, it, ("OC", "OH", "OW"))
        if prev is not None and bool(tab.store[combo]):
            assert bool(tab.final[combo]) == (dict(zip(order, prev))["IC"] == n["IC"] - 1)
        assert bool(tab.act_next[combo]) == chg(it, nxt, ("IC", "OH", "OW"))
        assert bool(tab.act_next_dw[combo]) == chg(it, nxt, ("OC", "OH", "OW"))
        assert bool(tab.wgt_next[combo]) == chg(it, nxt, ("IC", "OC"))
        assert bool(tab.psum_next[combo]) == (chg(it, nxt, ("OC", "OH", "OW")) and dict(zip(order, nxt))["IC"] > 0)
        for d in OV.DIMS:
            assert bool(tab.edge_cur[d][combo]) == (x[d] == n[d] - 1)
            if prev is not None:
                assert bool(tab.edge_prev[d][combo]) == (dict(zip(order, prev))[d] == n[d] - 1)
            if nxt is not None:
                assert bool(tab.edge_next[d][combo]) == (dict(zip(order, nxt))[d] == n[d] - 1)


def _layer(kind: str, c: int, m: int, h: int, w: int, k: int, s: int, g: int) -> Layer:
    if kind == "depthwise":
        return Layer("depthwise", c, c, h, w, kernel=max(k, s), stride=s, groups=c)
    if kind == "fc":
        return Layer("fc", c, m, 1, 1)
    return Layer("conv", g * c, g * m, h, w, kernel=max(k, s), stride=s, groups=g)


cases = st.builds(
    lambda kind, c, m, h, w, k, s, g, bits, out_bits, res, x, y, df, W, L, nu, ts, lo: (
        kind, c, m, h, w, k, s, g, bits, out_bits, res, x, y, df, W, L, nu, ts, lo),
    st.sampled_from(["conv", "gconv", "depthwise", "fc"]), st.integers(1, 24), st.integers(1, 24),
    st.integers(1, 7), st.integers(1, 7), st.sampled_from([1, 3, 5]), st.sampled_from([1, 2]),
    st.sampled_from([2, 3]), st.tuples(st.sampled_from([2, 4, 8]), st.sampled_from([2, 4, 8])),
    st.sampled_from([4, 8, 32]), st.sampled_from([0, 4, 8]), st.integers(3, 10), st.integers(3, 10),
    st.sampled_from(DATAFLOWS), st.sampled_from([32, 64, 128]), st.integers(1, 30), st.sampled_from([1, 4, 16]),
    st.tuples(*[st.floats(0, 1)] * 4), st.integers(0, 119))


def _build(case):
    kind, c, m, h, w, k, s, g, bits, out_bits, res, x, y, df, W, L, nu, ts, lo = case
    layer = _layer(kind, c, m, h, w, k, s, g if kind == "gconv" else 1)
    layer = replace(layer.with_bits(*bits), out_bits=out_bits, res_bits=res if kind != "fc" else 0)
    accel = Accelerator(pe_x=x, pe_y=y, dataflow=df, act_buf_kb=528, wgt_buf_kb=528, out_buf_kb=528,
                        dram_bits_per_cycle=W, dram_latency_cycles=L, out_unit_lines=nu, double_buffer=True)
    dims = space.layer_dims(layer)
    tile = [max(1, min(d, 1 + int(f * d))) for f, d in zip(ts, dims)]
    if layer.depthwise and df != "WS":
        tile[1] = 1
    return layer, accel, Tiling(*tile, loop_order=LOOP_ORDERS[lo])


@settings(max_examples=400, deadline=None)
@given(case=cases)
def test_closed_form_equals_walk_double_buffered(case):
    layer, accel, tiling = _build(case)
    got = walk(compile_layer(layer, accel, tiling))
    cost = estimate_one(layer, accel, tiling)
    assert cost.legal
    assert cost.cycles == got["cycles"]
    for k in COUNTERS:
        if k != "cycles":
            assert cost.accesses[k] == got[k], k
    single = walk(compile_layer(layer, replace(accel, double_buffer=False), tiling))
    assert got["cycles"] <= single["cycles"] + got["n_sync"]  # a stage never costs more than its parts in a row
    dma = sum(got[f"cycles_{k}"] for k in ("load_act", "load_wgt", "load_psum", "load_scale", "set_res",
                                          "store_out"))
    assert got["cycles"] >= got["n_sync"] + 2 + max(got["cycles_compute"], dma)  # BatchTile's lower bound


def test_batched_rows_with_mixed_buffering_and_loop_orders():
    """One estimator call over rows of both modes, several loop orders and dataflows equals the walker."""
    built = [_build(c) for c in [
        ("conv", 8, 12, 5, 6, 3, 1, 1, (4, 4), 8, 0, 4, 5, "WS", 64, 7, 4, (0.3, 0.6, 0.4, 0.9), 7),
        ("depthwise", 20, 20, 6, 6, 3, 2, 1, (2, 4), 4, 4, 6, 3, "WS", 128, 3, 1, (0, 0.3, 0.5, 0.2), 50),
        ("gconv", 5, 7, 4, 4, 1, 1, 2, (8, 8), 32, 0, 3, 8, "OS", 32, 12, 16, (0.5, 0.5, 0.5, 0.5), 99),
        ("conv", 6, 9, 7, 3, 5, 1, 1, (8, 2), 8, 8, 5, 5, "RS", 64, 1, 4, (0.9, 0.1, 0.3, 0.6), 3)]]
    built = built + [(l, replace(a, double_buffer=False), t) for l, a, t in built]
    cb = estimate(LayerBatch.from_layers([b[0] for b in built]), AccelBatch.from_accels([b[1] for b in built]),
                  TileBatch.from_tilings([b[2] for b in built]))
    for i, (layer, accel, tiling) in enumerate(built):
        assert int(cb.cycles[i]) == walk(compile_layer(layer, accel, tiling))["cycles"], i


def test_halves_never_collide():
    """In every stage the loads fill halves COMPUTE does not read, the store reads the previous out half, and a
    partial sum reloaded into that half comes after its store."""
    layer = Layer("conv", 24, 20, 6, 6, kernel=3).with_bits(4, 4)
    accel = Accelerator(pe_x=4, pe_y=4, double_buffer=True)
    for lo in (0, 17, 45, 80, 119):
        prog = compile_layer(layer, accel, Tiling(8, 8, 4, 3, LOOP_ORDERS[lo]))
        comp = None
        stored = set()
        for ins in prog.instructions:
            if ins.op == "COMPUTE":
                comp, stored = ins, set()
            elif comp is not None and ins.op in ("LOAD_ACT", "LOAD_WGT"):
                assert ins.half != getattr(comp, f"{'act' if ins.op == 'LOAD_ACT' else 'wgt'}_half")
            elif comp is not None and ins.op == "STORE_OUT":
                stored.add(ins.half)
                if ins.half == comp.out_half:  # only the epilogue, after SYNC, stores the tile just computed
                    assert prog.instructions[prog.instructions.index(ins) - 1].op in ("SYNC", "LOAD_SCALE",
                                                                                      "SET_RES")
            elif comp is not None and ins.op == "LOAD_PSUM":
                assert ins.half != comp.out_half and ins.half in stored
            elif ins.op == "SYNC":
                comp = None
        assert prog.counts_by_op()["SYNC"] == 1


def test_overlap_is_real():
    """A layer whose loads and compute take about as long: double buffering nearly halves its cycles."""
    layer = Layer("pointwise", 32, 128, 8, 8).with_bits(8, 8)
    accel = Accelerator(pe_x=8, pe_y=8, dram_bits_per_cycle=64, dram_latency_cycles=4)
    tiling = Tiling(32, 8, 8, 8, ("B", "OH", "OW", "OC", "IC"))
    single = walk(compile_layer(layer, accel, tiling))
    double = walk(compile_layer(layer, replace(accel, double_buffer=True), tiling))
    comp = single["cycles_compute"]
    dma = single["cycles"] - comp - 2
    assert 0.8 < comp / dma < 1.25
    assert double["cycles"] < 0.6 * single["cycles"]
    assert double["cycles"] >= max(comp, dma)
    assert estimate_one(layer, replace(accel, double_buffer=True), tiling).cycles == double["cycles"]
    assert {k: v for k, v in double.items() if not k.startswith("cycles") and k != "n_sync"} == \
        {k: v for k, v in single.items() if not k.startswith("cycles") and k != "n_sync"}


def test_a_tile_must_fit_half_a_double_buffer():
    # 64 KB of 128-bit lines: 4096 lines, 2048 per half; the act tile needs 18 * 18 * ceil(128/16) = 2592
    layer = Layer("conv", 128, 64, 16, 16, kernel=3).with_bits(8, 8)
    accel = Accelerator(act_buf_kb=64, wgt_buf_kb=64, out_buf_kb=64, dram_bits_per_cycle=128)
    tiling = Tiling(128, 8, 16, 16, ("B", "OC", "OH", "OW", "IC"))
    assert estimate_one(layer, accel, tiling).legal
    assert not estimate_one(layer, replace(accel, double_buffer=True), tiling).legal
    with pytest.raises(JaqError, match="half of the act buffer has 2048"):
        compile_layer(layer, replace(accel, double_buffer=True), tiling)


def test_batch_tile_equals_exhaustive_on_a_double_buffered_accelerator():
    accel = Accelerator(pe_x=8, pe_y=8, act_buf_kb=64, wgt_buf_kb=64, out_buf_kb=64, dataflow="WS",
                        double_buffer=True, dram_bits_per_cycle=64)
    layers = [Layer("conv", 12, 20, 6, 6, kernel=3).with_bits(4, 4),
              Layer("depthwise", 20, 20, 6, 6, kernel=3, stride=2, groups=20).with_bits(4, 8),
              Layer("pointwise", 20, 24, 3, 3).with_bits(8, 8)]
    got = batch_tile(layers, accel)
    want = exhaustive_reference(layers, accel)
    for g, w in zip(got, want):
        assert g.tiling == w.tiling
        assert g.cost.cycles == w.cost.cycles
        assert g.objective == pytest.approx(w.objective, rel=1e-12)


def test_the_generator_builds_double_buffered_accelerators():
    """derive() sizes the second halves from the buffer lines (jaq.hw.timing.usable_lines); a bad field value is
    still a one-line error."""
    from rtl_gen.params import derive
    p = derive(Accelerator(double_buffer=True))
    assert p.double_buffer and p.half_base(p.act_lines) == T.usable_lines(p.act_lines, True) == p.act_lines // 2
    assert derive(Accelerator()).half_base(p.act_lines) == 0
    with pytest.raises(JaqError, match="double_buffer"):
        Accelerator(double_buffer=1)