"""Every accel.json accelerator field changes what `jaq emit-rtl` generates: array size, buffer depths, the
datapath per dataflow, bus width, and the program for the loop order (elaboration only: fast)."""

from dataclasses import replace

import pytest
from amaranth.hdl import Fragment

from jaq.hw.records import Accelerator, Layer, Tiling
from jaq.hw.schedule import compile_layer, walk
from jaq.hw.timing import dw_row_ports
from rtl_gen import isa
from rtl_gen.params import derive
from rtl_gen.top import JaqAccelerator

BASE = Accelerator(pe_x=3, pe_y=4, act_buf_kb=64, wgt_buf_kb=80, out_buf_kb=96, dataflow="WS",
                   dram_bits_per_cycle=64, dram_latency_cycles=5)


def elaborate(accel):
    # RAM macros (blackbox) instead of lib.memory: elaboration does not build 100k-word memory models
    dut = JaqAccelerator(accel, params=replace(derive(accel), extra={"blackbox": True}))
    Fragment.get(dut, None)
    return dut


def summary(accel):
    dut = elaborate(accel)
    arr = dut.engine.array
    ab, wb, ob = dut.buffers
    return {
        "fu_grid": arr.fu_grid,
        "depths": (ab.depth, wb.depth, ob.depth),
        "array_ports": tuple(sorted(arr.signature.members.keys())),
        "port_counts": (ab.n_rd, wb.n_rd, ob.n_rmw),
        "resp_width": dut.signature.members["rd_resp_data"].shape,
    }


@pytest.fixture(scope="module")
def base():
    return summary(BASE)


def test_base_structure(base):
    assert base["fu_grid"] == (4, 3)
    assert base["depths"] == (64 * 256, 80 * 256, 96 * 256)   # KB -> 32-bit words
    # WS: act 16 lanes x a 2-word window per row (2-bit depthwise lanes, section 8), wgt per column, out per
    # (replica, column)
    assert base["port_counts"] == (4 * dw_row_ports(3), 3, 3 * 4) == (4 * 32, 3, 12)
    assert base["resp_width"] == 64


@pytest.mark.parametrize("field,value,key", [
    ("pe_x", 5, "fu_grid"), ("pe_y", 6, "fu_grid"),
    ("act_buf_kb", 528, "depths"), ("wgt_buf_kb", 64, "depths"), ("out_buf_kb", 112, "depths"),
    ("dataflow", "OS", "array_ports"), ("dataflow", "RS", "array_ports"),
    ("dram_bits_per_cycle", 256, "resp_width"),
])
def test_field_changes_hardware(base, field, value, key):
    s = summary(replace(BASE, **{field: value}))
    assert s[key] != base[key]


def test_dataflows_are_different_datapaths():
    ws, os_, rs = (summary(replace(BASE, dataflow=d)) for d in ("WS", "OS", "RS"))
    assert "wgt_shift" in ws["array_ports"] and "row_act" in ws["array_ports"]
    assert "drain_row" in os_["array_ports"] and "col_act" in os_["array_ports"]
    assert "port_act" in rs["array_ports"] and "rs_seff" in rs["array_ports"]
    assert ws["port_counts"] == (4 * dw_row_ports(3), 3, 3 * 4) and os_["port_counts"] == (3, 4, 3)
    p = derive(replace(BASE, dataflow="RS"))
    assert rs["port_counts"] == (3 * p.rmax, 4, 3 * 4)


def test_loop_order_changes_program():
    layer = Layer("conv", 8, 8, 4, 4, kernel=3, act_bits=4, wgt_bits=4)
    progs = []
    for order in (("B", "OC", "OH", "OW", "IC"), ("B", "IC", "OC", "OH", "OW")):
        acc = replace(BASE, loop_order=order)
        progs.append(isa.encode_program(compile_layer(layer, acc, Tiling(4, 4, 2, 2, acc.loop_order)), acc))
    assert progs[0] != progs[1]
    ops = [[isa.decode(w).op for w in p] for p in progs]
    assert ops[0].count("LOAD_PSUM") == 0 and ops[1].count("LOAD_PSUM") > 0


def test_latency_and_clock_are_timing_assumptions():
    """The DMA works for any latency >= 1 and the logic has no clock constant: L changes the expected cycles
    (walk), not the netlist; clock_mhz only goes to config.json/README (documented in docs/rtl.md)."""
    layer = Layer("pointwise", 8, 8, 2, 2, act_bits=8, wgt_bits=8)
    t = Tiling(8, 8, 2, 2)
    c5 = walk(compile_layer(layer, BASE, t))["cycles"]
    c9 = walk(compile_layer(layer, replace(BASE, dram_latency_cycles=9), t))["cycles"]
    assert c9 > c5
