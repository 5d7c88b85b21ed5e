"""`jaq simulate`: exit codes (0 agree, 1 mismatch, 2 user error) and the end-to-end emit-rtl -> simulate path.

The accelerator equals the WS configuration of tests/test_sim_rtl_ws.py, so the Verilator build is shared through
the cache (same Verilog text).
"""

import json

import pytest

from jaq.cli import main

pytestmark = [pytest.mark.verilator, pytest.mark.slow]

SPEC = {
    "schema_version": "jaq.accel/1",
    "accelerator": {"pe_x": 4, "pe_y": 3, "act_buf_kb": 64, "wgt_buf_kb": 64, "out_buf_kb": 64, "dataflow": "WS",
                    "loop_order": "B,OC,OH,OW,IC", "clock_mhz": 500, "dram_bits_per_cycle": 64,
                    "dram_latency_cycles": 3, "out_unit_lines": 4, "double_buffer": False},
    "network": {"layers": [
        {"kind": "conv", "in_ch": 5, "out_ch": 4, "out_h": 3, "out_w": 3, "kernel": 3, "stride": 1, "act_bits": 8,
         "wgt_bits": 4, "name": "c0", "tiling": {"t_ic": 4, "t_oc": 2, "t_oh": 2, "t_ow": 2,
                                                "loop_order": "B,OH,OW,OC,IC"}},
        {"kind": "fc", "in_ch": 20, "out_ch": 6, "out_h": 1, "out_w": 1, "kernel": 1, "stride": 1, "act_bits": 4,
         "wgt_bits": 8, "name": "fc1", "tiling": {"t_ic": 16, "t_oc": 4, "t_oh": 1, "t_ow": 1,
                                                 "loop_order": "B,OC,IC,OH,OW"}},
    ]},
}


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("emit")
    spec = d / "accel.json"
    spec.write_text(json.dumps(SPEC))
    assert main(["emit-rtl", str(spec), "-o", str(d / "build")]) == 0
    return d / "build"


def test_simulate_build_dir_agrees(build_dir, capsys):
    assert main(["simulate", str(build_dir), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["ok"] and len(rep["layers"]) == 2
    for l in rep["layers"]:
        assert l["bit_exact"] and l["counters_ok"] and l["model_ok"]
        assert l["counters_rtl"]["cnt_cycles"] == l["walk_cycles"]
    assert (build_dir / "sim" / "report.json").is_file()


def test_simulate_detects_a_wrong_program(build_dir, tmp_path, capsys):
    """Flip act_signed in layer 0's SET_LAYER: activations >= 128 read negative, outputs differ -> exit 1."""
    import shutil

    from rtl_gen import isa

    bad = tmp_path / "bad"
    shutil.copytree(build_dir, bad, ignore=shutil.ignore_patterns("sim"))
    hexf = bad / "programs" / "layer_000.hex"
    words = isa.from_hex(hexf.read_text())
    fixed = []
    for w in words:
        ins = isa.decode(w)
        if ins.op == "SET_LAYER":
            f = dict(ins.fields)
            f["act_signed"] ^= 1
            w = isa.encode("SET_LAYER", **f)
        fixed.append(w)
    hexf.write_text(isa.to_hex(fixed))
    # a deliberate edit with its manifest re-hashed (an unhashed edit is refused before simulation:
    # tests/test_reliability_outputs.py); here the simulation itself must catch the wrong program
    from jaq.commands.emit_rtl import file_hashes
    man = json.loads((bad / "manifest.json").read_text())
    man["sha256"] = file_hashes(bad, list(man["sha256"]))
    (bad / "manifest.json").write_text(json.dumps(man))
    assert main(["simulate", str(bad), "--layer", "0"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "expected" in out


def test_user_errors_exit_2(build_dir, tmp_path, capsys):
    assert main(["simulate", str(tmp_path / "missing")]) == 2
    assert main(["simulate", str(tmp_path)]) == 2
    assert main(["simulate", str(build_dir), "--layer", "7"]) == 2
    err = capsys.readouterr().err
    assert err.count("jaq simulate: error:") == 3 and len(err.strip().splitlines()) == 3  # one line each


def test_generator_index_is_skipped_when_sources_changed_under_the_process(monkeypatch, tmp_path):
    """Sources edited after this process loaded them: the Verilog comes from the modules in memory, so the
    generator-level index (keyed by the files on disk) is neither read nor written."""
    import sim.harness as H
    from jaq.hw.records import Accelerator

    calls = []
    monkeypatch.setattr(H, "_SOURCES_AT_IMPORT", "stale")
    monkeypatch.setattr(H, "accel_verilog", lambda accel, layers=(): {"x.v": "module x; endmodule"})
    monkeypatch.setattr(H, "wrapped_build", lambda v, top, **kw: calls.append((v, top)) or "built")
    assert H.build_accelerator(Accelerator(), cache_dir=tmp_path) == "built"
    assert calls and not (tmp_path / "gen").exists()
