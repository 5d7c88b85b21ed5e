"""Model <-> RTL agreement on Verilator for the output-stationary and row-stationary builds.

Array shapes are chosen not to divide the layers (OS 5x3, RS 3x4 with kernels larger than the rows: several
kernel-row passes) and the memory differs from the WS build (W = 128 and 64, latencies 5 and 2).
"""

from dataclasses import replace

import pytest

from jaq.hw.records import Accelerator, Layer, Tiling
from sim.harness import LayerCase, simulate_layers

pytestmark = [pytest.mark.verilator, pytest.mark.slow]

CASES = [
    LayerCase(Layer("conv", 6, 7, 4, 5, kernel=3, act_bits=4, wgt_bits=8), Tiling(4, 4, 2, 4,
              ("B", "OH", "OC", "IC", "OW")), name="conv3x3"),
    LayerCase(Layer("conv", 5, 4, 3, 3, kernel=5, stride=2, act_bits=2, wgt_bits=2, act_signed=True),
              Tiling(4, 4, 2, 2, ("B", "IC", "OC", "OH", "OW")), name="conv5x5s2"),
    LayerCase(Layer("depthwise", 6, 6, 3, 4, kernel=3, stride=2, groups=6, act_bits=8, wgt_bits=4),
              Tiling(1, 1, 2, 4, ("B", "OW", "OH", "IC", "OC")), name="dw3x3s2"),
    LayerCase(Layer("pointwise", 11, 9, 3, 3, act_bits=4, wgt_bits=2), Tiling(8, 8, 2, 2,
              ("B", "OC", "OH", "OW", "IC")), name="pw1x1"),
    LayerCase(Layer("fc", 33, 10, 1, 1, act_bits=8, wgt_bits=8), Tiling(32, 4, 1, 1,
              ("B", "IC", "OC", "OH", "OW")), name="fc"),
    # a pooled head: 3x3 pixels of each channel chunk summed by the output unit, one 8-bit pixel written
    LayerCase(Layer("pointwise", 10, 9, 3, 3, act_bits=8, wgt_bits=4, out_bits=8, pool=True), Tiling(8, 4, 3, 3,
              ("B", "OC", "IC", "OH", "OW")), name="head_pool"),
    # a residual project conv: the block input's tile (4-bit, signed) streamed beside every final store
    LayerCase(Layer("pointwise", 12, 10, 3, 3, act_bits=2, wgt_bits=4, out_bits=4, out_signed=False, res_bits=4,
                    res_signed=True), Tiling(8, 8, 2, 2, ("B", "OH", "IC", "OW", "OC")), name="project_res"),
]


def _check(rep):
    assert not rep.errors, rep.errors
    assert len(rep.layers) == len(CASES)
    for l in rep.layers:
        assert l.finished, f"{l.name}: did not finish"
        assert l.bit_exact, f"{l.name}: {l.mismatches} outputs differ: {l.first_mismatches}"
        assert l.counters_ok, f"{l.name}: counters differ (RTL, walk): {l.counter_diffs}"
        assert l.monitor_ok and l.model_ok, (l.monitor_beats, l.model_diffs)
        assert l.counters_rtl["cnt_cycles"] == l.walk_cycles == l.model_cycles


OS = Accelerator(pe_x=5, pe_y=3, act_buf_kb=64, wgt_buf_kb=64, out_buf_kb=64, dataflow="OS",
                 dram_bits_per_cycle=128, dram_latency_cycles=5)
RS = Accelerator(pe_x=3, pe_y=4, act_buf_kb=64, wgt_buf_kb=64, out_buf_kb=64, dataflow="RS",
                 dram_bits_per_cycle=64, dram_latency_cycles=2)


def test_output_stationary():
    _check(simulate_layers(OS, CASES, seed=21))


def test_row_stationary():
    _check(simulate_layers(RS, CASES, seed=31))


@pytest.mark.parametrize("accel", [OS, RS], ids=["OS", "RS"])
def test_double_buffered(accel):
    """Both dataflows double-buffered (docs/execution-model.md section 9): bit-exact, counter-exact, overlapped."""
    rep = simulate_layers(replace(accel, double_buffer=True), CASES, seed=22)
    _check(rep)
    serial = simulate_layers(accel, CASES[:1], seed=22).layers[0].walk_cycles
    assert rep.layers[0].walk_cycles < serial


def test_replicated_ram_macros(monkeypatch):
    """Past MAX_READ_PORTS read ports a RAM macro is replicated (every copy takes all writes): with a limit of
    3 ports the RS output buffer (12 read-modify-write ports) becomes several copies and stays exact."""
    import rtl_gen.buffers as buffers
    from rtl_gen.top import verilog_for

    monkeypatch.setattr(buffers, "MAX_READ_PORTS", 3)
    acc = Accelerator(pe_x=3, pe_y=4, act_buf_kb=64, wgt_buf_kb=64, out_buf_kb=64, dataflow="RS",
                      dram_bits_per_cycle=64, dram_latency_cycles=2)
    cases = [CASES[0], CASES[3]]
    text = verilog_for(acc, [c.layer for c in cases])
    assert "module jaq_sram_out_copy1" in text
    rep = simulate_layers(acc, cases, verilog={"jaq_accel.v": text}, toplevel="jaq_accel", seed=41)
    assert not rep.errors, rep.errors
    for l in rep.layers:
        assert l.finished and l.bit_exact and l.counters_ok, (l.name, l.mismatches, l.counter_diffs)
