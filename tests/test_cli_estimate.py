"""``jaq estimate``: through the console script (subprocess) and through jaq.cli.main."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from jaq.accel_json import load_spec
from jaq.cli import main

#: Seconds after which a subprocess counts as hung (not slow: a loaded CI machine never decides a test).
HANG_S = 3000

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
JAQ = str(Path(sys.executable).parent / "jaq") if (Path(sys.executable).parent / "jaq").exists() \
    else (shutil.which("jaq") or "jaq")


def _run(capsys, *argv) -> tuple[int, str, str]:
    rc = main(["estimate", *map(str, argv)])
    out, err = capsys.readouterr()
    return rc, out, err


def test_console_script_reference_case_json():
    p = subprocess.run([JAQ, "estimate", str(EXAMPLES / "bitfusion_reference.yaml"), "--json"],
                       capture_output=True, text=True, timeout=HANG_S)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["mode"] == "bitfusion"
    l0, l1 = doc["layers"]
    assert l0["tiling_source"] == "pinned" and l0["cost"]["cycles"] == 74_764
    assert l0["cost"]["accesses"]["dram_rd_bits"] == 4_751_360
    assert l0["cost"]["accesses"]["dram_wr_bits"] == 2_097_152
    assert l0["cost"]["energy_total_pj"] / 1e6 == pytest.approx(145.2, abs=0.05)
    assert l1["tiling_source"] == "BatchTile" and l1["cost"]["cycles"] == 23_425
    assert doc["totals"]["cycles"] == 74_764 + 23_425
    assert doc["totals"]["area_mm2"] == pytest.approx(2.14, abs=0.005)


def test_console_script_bad_input_one_line_exit_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"accelerator": {}, "layers": [
        {"kind": "conv", "in_ch": 3, "out_ch": 8, "in_h": 3, "in_w": 3, "kernel": 7}]}))
    p = subprocess.run([JAQ, "estimate", str(bad)], capture_output=True, text=True, timeout=HANG_S)
    assert p.returncode == 2
    assert p.stdout == ""
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in p.stderr
    assert lines[0].startswith("jaq estimate: error: layers[0].kernel: 7 larger than")


def test_search_tiles_finds_reference_cost(capsys):
    rc, out, _ = _run(capsys, EXAMPLES / "bitfusion_reference.yaml", "--search-tiles", "--json")
    assert rc == 0
    doc = json.loads(out)
    assert [l["tiling_source"] for l in doc["layers"]] == ["BatchTile", "BatchTile"]
    assert doc["layers"][0]["cost"]["cycles"] == 74_764
    assert doc["layers"][0]["cost"]["energy_total_pj"] / 1e6 == pytest.approx(145.2, abs=0.05)
    assert doc["layers"][1]["cost"]["cycles"] == 23_425


def test_native_table_and_totals(capsys):
    rc, out, err = _run(capsys, EXAMPLES / "small_net.accel.json")
    assert rc == 0, err
    assert "native mode" in out and "totals (native)" in out and "EDAP" in out
    assert "pinned" in out and "BatchTile" in out
    rc, out, _ = _run(capsys, EXAMPLES / "small_net.accel.json", "--json")
    doc = json.loads(out)
    assert [l["tiling_source"] for l in doc["layers"]] == ["pinned", "BatchTile", "BatchTile", "pinned",
                                                           "BatchTile"]
    assert doc["layers"][0]["tiling"]["t_oc"] == 16  # the pinned tiling as given
    assert doc["totals"]["cycles"] == sum(l["cost"]["cycles"] for l in doc["layers"])
    e = sum(l["cost"]["energy_total_pj"] for l in doc["layers"]) * 1e-9
    assert doc["totals"]["energy_mj"] == pytest.approx(e)
    t = doc["totals"]
    assert t["edap"] == pytest.approx(t["energy_mj"] * 1e-3 * t["latency_ms"] * 1e-3 * t["area_mm2"])
    # --search-tiles: every layer searched, never worse under the same objective weights
    rc, out, _ = _run(capsys, EXAMPLES / "small_net.accel.json", "--json", "--search-tiles")
    doc2 = json.loads(out)
    assert all(l["tiling_source"] == "BatchTile" for l in doc2["layers"])


def test_mode_and_weights_flags(capsys):
    rc, out, _ = _run(capsys, EXAMPLES / "mobilenet_block.yaml", "--mode", "bitfusion", "--json")
    assert rc == 0 and json.loads(out)["mode"] == "bitfusion"
    rc, out, _ = _run(capsys, EXAMPLES / "mobilenet_block.yaml", "--weights", "0,1,0", "--json")
    lat = json.loads(out)
    rc, out, _ = _run(capsys, EXAMPLES / "mobilenet_block.yaml", "--weights", "1,0,0", "--json")
    en = json.loads(out)
    for a, b in zip(lat["layers"][:2], en["layers"][:2]):  # the third layer is pinned
        assert a["cost"]["cycles"] <= b["cost"]["cycles"]
        assert b["cost"]["energy_total_pj"] <= a["cost"]["energy_total_pj"] + 1e-6
    rc, _, err = _run(capsys, EXAMPLES / "mobilenet_block.yaml", "--weights", "1,2")
    assert rc == 2 and err.startswith("jaq estimate: error: --weights:")


def test_explain_prints_constants_and_both_modes(capsys):
    rc, out, _ = _run(capsys, EXAMPLES / "bitfusion_reference.yaml", "--explain")
    assert rc == 0
    assert "CACTI" in out and "source" in out and "hsharma35/bitfusion" in out
    assert "native vs bitfusion" in out and "74,764" in out
    rc, out, _ = _run(capsys, EXAMPLES / "small_net.accel.json", "--explain", "--json")
    doc = json.loads(out)
    assert set(doc["explain"]) >= {"native", "bitfusion", "constants"}
    assert doc["explain"]["native"]["mode"] == "native" and doc["explain"]["bitfusion"]["mode"] == "bitfusion"


def test_output_writes_accel_json(capsys, tmp_path):
    out_path = tmp_path / "accel.json"
    rc, _, _ = _run(capsys, EXAMPLES / "bitfusion_reference.yaml", "-o", out_path)
    assert rc == 0
    spec = load_spec(out_path)
    assert spec.mode == "bitfusion" and all(t is not None for t in spec.tilings)
    assert spec.network.layers[0].predicted.cost.cycles == 74_764
    assert spec.totals.cycles == 74_764 + 23_425
    rc, out, _ = _run(capsys, out_path, "--json")  # the written file evaluates to the same numbers
    assert json.loads(out)["totals"]["cycles"] == spec.totals.cycles


@pytest.mark.parametrize("doc,field", [
    ({"accelerator": {}, "layers": [{"kind": "conv3d", "in_ch": 3, "out_ch": 8, "out_h": 4, "out_w": 4}]},
     "layers[0].kind"),
    ({"accelerator": {}, "layers": [{"kind": "conv", "in_ch": 0, "out_ch": 8, "out_h": 4, "out_w": 4}]},
     "layers[0].in_ch"),
    ({"accelerator": {"pe_x": 65}, "layers": [{"kind": "fc", "in_ch": 3, "out_ch": 8, "out_h": 1, "out_w": 1}]},
     "accelerator.pe_x"),
    ({"accelerator": {"wgt_buf_kb": 32}, "layers": [{"kind": "fc", "in_ch": 3, "out_ch": 8, "out_h": 1,
                                                     "out_w": 1}]}, "accelerator.wgt_buf_kb"),
    ({"accelerator": {}, "layers": [{"kind": "conv", "in_ch": 512, "out_ch": 512, "out_h": 32, "out_w": 32,
                                     "kernel": 3, "tiling": {"t_ic": 512, "t_oc": 512, "t_oh": 32, "t_ow": 32}}]},
     "layers[0].tiling"),
])
def test_bad_input_names_field_exit_2(capsys, tmp_path, doc, field):
    f = tmp_path / "in.yaml"
    f.write_text(yaml.safe_dump(doc))
    rc, out, err = _run(capsys, f)
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith(f"jaq estimate: error: {field}"), err


def test_malformed_and_missing_files(capsys, tmp_path):
    f = tmp_path / "broken.json"
    f.write_text("{not json")
    rc, _, err = _run(capsys, f)
    assert rc == 2 and "malformed JSON" in err and err.count("\n") == 1
    rc, _, err = _run(capsys, tmp_path / "nope.yaml")
    assert rc == 2 and "file not found" in err
