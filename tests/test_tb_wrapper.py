"""The testbench wrapper generator (testbench.wrapper): port parsing, its errors, the generated module."""

import pytest

from jaq.errors import JaqError
from testbench.loopback import loopback_verilog
from testbench.wrapper import PROTOCOL_OUT, WRAPPER_TOP, parse_ports, wrapped_sources, wrapper_verilog


def test_ports_of_the_loopback():
    p = parse_ports(loopback_verilog(128), "loopback")
    assert p.width == 128 and p.instr_bits == 64
    assert p.counters == ("busy", "cnt_cycles", "cnt_dram_rd_beats", "cnt_dram_wr_beats", "lat_first")
    assert p.outputs["rd_req_addr"] == 40 and p.inputs["rd_resp_valid"] == 1


def test_wrapper_registers_every_input_and_passes_counters():
    p = parse_ports(loopback_verilog(64), "loopback")
    text = wrapper_verilog(p)
    assert f"module {WRAPPER_TOP}" in text and 'import "DPI-C" function void jaq_tb_tick' in text
    for n in ("instr_valid_q", "instr_data_q", "rd_req_ready_q", "rd_resp_valid_q", "rd_resp_data_q", "wr_ready_q",
              "rst_q"):
        assert f"{n} <= " in text                     # every DUT input is a register set at the clock edge
    for n in p.counters:
        assert f"output wire [{p.outputs[n] - 1}:0] {n}" in text and f".{n}({n})" in text
    assert '"busy,cnt_cycles,cnt_dram_rd_beats,cnt_dram_wr_beats,lat_first"' in text  # names for the marks


def test_missing_protocol_port_is_a_one_line_error():
    v = loopback_verilog(64).replace("wr_ready", "wr_rdy")
    with pytest.raises(JaqError, match=r"lacks the accelerator protocol's ports \['wr_ready'\]"):
        parse_ports(v, "loopback")
    with pytest.raises(JaqError, match="module nosuch not found"):
        parse_ports(v, "nosuch")


def test_counters_wider_than_64_bits_are_refused():
    v = loopback_verilog(64).replace("output [31:0] lat_first;", "output [79:0] lat_first;")
    assert "output [79:0] lat_first;" in v
    with pytest.raises(JaqError, match="wider than 64 bits"):
        parse_ports(v, "loopback")


def test_wrapped_sources_add_the_wrapper_and_transactor():
    srcs, ports = wrapped_sources({"loopback.v": loopback_verilog(64)}, "loopback")
    assert set(srcs) == {"loopback.v", f"{WRAPPER_TOP}.sv", "transactor.cpp"}
    assert "jaq_tb_tick" in srcs["transactor.cpp"] and set(PROTOCOL_OUT) <= set(ports.outputs)
