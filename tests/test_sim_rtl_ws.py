"""Model <-> RTL agreement on Verilator, weight-stationary build (one Verilator build for every case here).

Cases: all 9 (activation, weight) precision pairs on one small 3x3 conv (signed and unsigned activations; final
outputs through the output unit at 2/4/8/32 bits with random constants, sim.reference.random_requant), then
3x3/5x5/1x1/depthwise/grouped/fc shapes, stride 2, three loop orders, partial edge tiles and a 4x3 array that
divides none of the layer dimensions. Per layer: output region bit-exact vs sim.reference, every RTL counter ==
jaq.hw.schedule.walk, the testbench's memory monitor == walk, the closed-form model == walk. Plus a stalling-
memory run (outputs still bit-exact) and the counter map agreeing with rtl_gen's.
"""

from dataclasses import replace

import pytest

from jaq.hw.records import Accelerator, Layer, Tiling
from sim.harness import COUNTER_MAP, LayerCase, simulate_layers

pytestmark = [pytest.mark.verilator, pytest.mark.slow]

ACC = Accelerator(pe_x=4, pe_y=3, act_buf_kb=64, wgt_buf_kb=64, out_buf_kb=64, dataflow="WS",
                  dram_bits_per_cycle=64, dram_latency_cycles=3)

#: Output widths of the cases, in turn: final stores through the output unit at 2/4/8/32 bits, signed and not.
OUT = [(2, False), (4, True), (8, False), (32, True), (8, True), (2, True), (4, False)]


def _out(i):
    return {"out_bits": OUT[i % len(OUT)][0], "out_signed": OUT[i % len(OUT)][1]}


PRECISION = [LayerCase(Layer("conv", 9, 5, 3, 3, kernel=3, act_bits=a, wgt_bits=w, act_signed=(a + w) % 3 == 0,
                             **_out(3 * i + j)),
                       Tiling(8, 4, 2, 2, ("B", "OC", "OH", "OW", "IC")), name=f"a{a}w{w}")
             for i, a in enumerate((2, 4, 8)) for j, w in enumerate((2, 4, 8))]
SHAPES = [
    LayerCase(Layer("conv", 6, 5, 3, 4, kernel=5, stride=2, act_bits=4, wgt_bits=4, **_out(2)), Tiling(4, 2, 2, 2,
              ("B", "IC", "OC", "OH", "OW")), name="conv5x5s2"),
    LayerCase(Layer("depthwise", 7, 7, 4, 3, kernel=3, stride=2, groups=7, act_bits=8, wgt_bits=2, **_out(0)),
              Tiling(1, 1, 2, 2, ("B", "OH", "OW", "OC", "IC")), name="dw3x3s2"),
    # the depthwise mapping (docs/execution-model.md section 8): channel blocks of X with edges, passes of Y
    # kernel positions, word windows at every channel offset
    LayerCase(Layer("depthwise", 7, 7, 4, 3, kernel=3, stride=2, groups=7, act_bits=8, wgt_bits=2, **_out(3)),
              Tiling(1, 4, 2, 3, ("B", "OC", "OH", "OW", "IC")), name="dwmap3x3s2"),
    LayerCase(Layer("depthwise", 13, 13, 3, 3, kernel=5, groups=13, act_bits=4, wgt_bits=4, act_signed=True,
                    **_out(2)), Tiling(1, 8, 2, 3, ("B", "OH", "OC", "OW", "IC")), name="dwmap5x5"),
    LayerCase(Layer("depthwise", 11, 11, 2, 3, kernel=7, stride=2, groups=11, act_bits=2, wgt_bits=8, **_out(4)),
              Tiling(1, 11, 2, 2, ("B", "OW", "OH", "OC", "IC")), name="dwmap7x7s2"),
    LayerCase(Layer("depthwise", 18, 18, 3, 2, kernel=3, groups=18, act_bits=2, wgt_bits=2, **_out(6)),
              Tiling(1, 16, 3, 2, ("B", "OC", "OH", "OW", "IC")), name="dwmap_a2w2"),
    LayerCase(Layer("pointwise", 13, 6, 3, 5, act_bits=2, wgt_bits=4, act_signed=True, **_out(1)),
              Tiling(8, 4, 2, 4, ("B", "IC", "OW", "OH", "OC")), name="pw1x1"),
    LayerCase(Layer("conv", 8, 6, 3, 3, kernel=3, groups=2, act_bits=4, wgt_bits=8, **_out(5)), Tiling(2, 2, 2, 2,
              ("B", "OC", "IC", "OW", "OH")), name="grouped"),
    LayerCase(Layer("fc", 40, 11, 1, 1, act_bits=8, wgt_bits=8, act_signed=True),
              Tiling(16, 8, 1, 1, ("B", "OC", "IC", "OH", "OW")), name="fc"),
]


@pytest.fixture(scope="module")
def report():
    return simulate_layers(ACC, PRECISION + SHAPES, seed=11)


def _check(rep, names):
    assert not rep.errors, rep.errors
    got = {l.name: l for l in rep.layers}
    for n in names:
        l = got[n]
        assert l.finished, f"{n}: did not finish"
        assert l.bit_exact, f"{n}: {l.mismatches} outputs differ: {l.first_mismatches}"
        assert l.counters_ok, f"{n}: counters differ (RTL, walk): {l.counter_diffs}"
        assert l.monitor_ok, f"{n}: memory monitor {l.monitor_beats}"
        assert l.model_ok, f"{n}: model != walk {l.model_diffs}"
        assert l.counters_rtl["cnt_cycles"] == l.walk_cycles == l.model_cycles


def test_every_precision_pair(report):
    _check(report, [c.name for c in PRECISION])


def test_shapes_strides_loop_orders_edge_tiles(report):
    _check(report, [c.name for c in SHAPES])
    assert report.simulated_cycles > 0 and report.cycles_per_second > 0


def test_stalling_memory_still_bit_exact():
    rep = simulate_layers(ACC, [PRECISION[4], SHAPES[0]], stall=True, seed=3)
    assert not rep.errors, rep.errors
    for l in rep.layers:
        assert l.bit_exact and l.finished, l.first_mismatches
        # counters that do not depend on time still equal the walk; cycles grow under backpressure
        assert l.counters_ok, l.counter_diffs
        assert l.counters_rtl["cnt_cycles"] >= l.walk_cycles


DOUBLE = replace(ACC, double_buffer=True)


@pytest.fixture(scope="module")
def report_double():
    return simulate_layers(DOUBLE, PRECISION + SHAPES, seed=12)


def test_double_buffered_every_case(report, report_double):
    """Double buffering (docs/execution-model.md section 9) on every case of the single-buffered suite: bit-exact,
    every counter (the overlapped cycles included) equal to the walk and the closed form, and fewer cycles."""
    _check(report_double, [c.name for c in PRECISION + SHAPES])
    serial = sum(l.walk_cycles for l in report.layers)
    assert sum(l.walk_cycles for l in report_double.layers) < 0.9 * serial


def test_double_buffered_stalling_memory_still_bit_exact():
    rep = simulate_layers(DOUBLE, [PRECISION[7], SHAPES[2], SHAPES[6]], stall=True, seed=4)
    assert not rep.errors, rep.errors
    for l in rep.layers:
        assert l.bit_exact and l.finished, l.first_mismatches
        assert l.counters_ok, l.counter_diffs
        assert l.counters_rtl["cnt_cycles"] >= l.walk_cycles


def test_counter_map_is_rtl_gens():
    from rtl_gen.top import COUNTER_WALK_NAMES

    assert COUNTER_MAP == COUNTER_WALK_NAMES
