"""cocotb unit testbenches of the RTL's lower-level blocks on Verilator (built once, cached by sim.verilator)."""

import pytest

from sim.verilator import ensure_importable, run_cocotb, verilator_build

pytestmark = pytest.mark.verilator


def _verilog(component, name):
    from amaranth.back import verilog

    return verilog.convert(component, name=name)


def test_fusion_unit_on_verilator(tmp_path):
    from rtl_gen.fusion_unit import FusionUnit

    ensure_importable()
    b = verilator_build({"fusion_unit.v": _verilog(FusionUnit(), "fusion_unit")}, "fusion_unit")
    r = run_cocotb(b, "testbench.fusion_unit_tb", tmp_path, extra_env={"JAQ_FU_VECTORS": "200"})
    assert r.ok, r.log_tail()


@pytest.mark.parametrize("kind,lines,W,ports", [("vector", 16, 64, 3), ("out", 8, 128, 2)])
def test_buffers_on_verilator(tmp_path, kind, lines, W, ports):
    from rtl_gen.buffers import OutBuffer, VectorBuffer

    ensure_importable()
    comp = VectorBuffer(lines, W, ports) if kind == "vector" else OutBuffer(lines, W, ports)
    name = f"{kind}_buffer"
    b = verilator_build({f"{name}.v": _verilog(comp, name)}, name)
    r = run_cocotb(b, "testbench.buffers_tb", tmp_path, testcase=name,
                   extra_env={"JAQ_BUF_LINES": str(lines), "JAQ_BUF_W": str(W), "JAQ_BUF_PORTS": str(ports)})
    assert r.ok, r.log_tail()
