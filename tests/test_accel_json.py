"""accel.json (contract 2): schema, validation with one-line errors naming the field, round trips, examples."""

from __future__ import annotations

import copy
import json
import re
from dataclasses import fields
from pathlib import Path

import pytest
import yaml

from jaq.accel_json import (SCHEMA_VERSION, AccelSpec, Predicted, Provenance, Totals, build_spec, dump,
                            load_spec, parse_spec, save)
from jaq.errors import JaqError
from jaq.hw.bitfusion import BF_E_CONF
from jaq.hw.records import Accelerator, Cost, Layer, Tiling

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

BASE = {  # a hand-off document (schema_version): every hardware field given
    "schema_version": SCHEMA_VERSION,
    "network": {"input_shape": [3, 16, 16], "layers": [
        {"kind": "conv", "in_ch": 3, "out_ch": 8, "out_h": 16, "out_w": 16, "kernel": 3, "stride": 1,
         "act_bits": 8, "wgt_bits": 8},
        {"kind": "pointwise", "in_ch": 8, "out_ch": 16, "out_h": 16, "out_w": 16, "kernel": 1, "stride": 1,
         "act_bits": 4, "wgt_bits": 2},
    ]},
    "accelerator": {"pe_x": 8, "pe_y": 8, "act_buf_kb": 64, "wgt_buf_kb": 64, "out_buf_kb": 64, "dataflow": "WS",
                    "loop_order": ["B", "OC", "OH", "OW", "IC"], "clock_mhz": 500.0, "dram_bits_per_cycle": 128,
                    "dram_latency_cycles": 20, "out_unit_lines": 4, "double_buffer": False},
}


def _err(obj) -> str:
    with pytest.raises(JaqError) as ei:
        parse_spec(obj)
    msg = str(ei.value)
    assert "\n" not in msg
    return msg


def _with(path: str, value):
    obj = copy.deepcopy(BASE)
    node = obj
    keys = path.split(".")
    for k in keys[:-1]:
        node = node[int(k)] if isinstance(node, list) else node[k]
    last = keys[-1]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return obj


@pytest.mark.parametrize("name", ["bitfusion_reference.yaml", "small_net.accel.json", "mobilenet_block.yaml"])
def test_examples_load_and_round_trip(name, tmp_path):
    spec = load_spec(EXAMPLES / name)
    assert spec.layers and all(isinstance(l, Layer) for l in spec.layers)
    d = dump(spec)
    assert d["schema_version"] == SCHEMA_VERSION
    again = parse_spec(json.loads(json.dumps(d)))
    assert again.layers == spec.layers and again.tilings == spec.tilings
    assert again.accelerator == spec.accelerator and again.bitfusion == spec.bitfusion
    out = save(again, tmp_path / "sub" / "accel.json")
    assert load_spec(out).layers == spec.layers
    assert not list((tmp_path / "sub").glob("*.tmp"))


def test_reference_example_contents():
    spec = load_spec(EXAMPLES / "bitfusion_reference.yaml")
    assert spec.mode == "bitfusion" and spec.accelerator is None
    assert spec.bitfusion_config() == BF_E_CONF
    l0 = spec.layers[0]
    assert (l0.in_ch, l0.out_ch, l0.out_h, l0.out_w, l0.kernel, l0.stride) == (64, 64, 32, 32, 3, 1)
    assert spec.tilings[0] == Tiling(64, 32, 4, 4, ("B", "OC", "OH", "IC", "OW"))
    assert spec.tilings[1] is None  # missing tilings are left to BatchTile


def test_minimal_hand_written_and_defaults():
    spec = parse_spec({"layers": [{"kind": "fc", "in_ch": 16, "out_ch": 4, "out_h": 1, "out_w": 1}],
                       "accelerator": {}})
    assert spec.accelerator == Accelerator()
    assert spec.mode == "native" and spec.tilings == [None]
    # a tiling without loop order takes the accelerator's
    spec = parse_spec(_with("network.layers.1.tiling", {"t_ic": 8, "t_oc": 8, "t_oh": 4, "t_ow": 4}))
    assert spec.tilings[1].loop_order == spec.accelerator.loop_order


def test_derived_output_extents_from_input_and_padding():
    layer = {"kind": "conv", "in_ch": 3, "out_ch": 8, "in_h": 16, "in_w": 12, "padding": 1, "kernel": 3,
             "stride": 2, "act_bits": 8, "wgt_bits": 8}
    obj = _with("network.layers.0", layer)
    obj["network"]["input_shape"] = [3, 16, 12]
    spec = parse_spec(obj)
    assert (spec.layers[0].out_h, spec.layers[0].out_w) == (8, 6)
    obj["network"]["input_shape"] = [3, 16, 16]
    assert _err(obj).startswith("layers[0].in_w: 12 does not match network.input_shape")
    assert dump(spec)["network"]["layers"][0]["in_h"] == 16


@pytest.mark.parametrize("path,value,field,words", [
    ("network.layers.1.kind", "conv3d", "layers[1].kind", "unknown op kind"),
    ("network.layers.0.in_ch", 0, "layers[0].in_ch", "at least 1"),
    ("network.layers.1.out_ch", -4, "layers[1].out_ch", "at least 1"),
    ("network.layers.0.kernel", 0, "layers[0].kernel", "out of range"),
    ("network.layers.0.act_bits", 3, "layers[0].act_bits", "2, 4, 8"),
    ("network.layers.1.frobnicate", 1, "layers[1].frobnicate", "unknown"),
    ("accelerator.pe_x", 70, "accelerator.pe_x", "out of range 3..64"),
    ("accelerator.pe_y", 2, "accelerator.pe_y", "out of range"),
    ("accelerator.act_buf_kb", 70, "accelerator.act_buf_kb", "16 KB grid"),
    ("accelerator.out_buf_kb", 1024, "accelerator.out_buf_kb", "out of range"),
    ("accelerator.dataflow", "XS", "accelerator.dataflow", "unknown dataflow"),
    ("accelerator.loop_order", "B,IC,OC", "accelerator.loop_order", "permutation"),
    ("schema_version", "jaq.accel/2", "schema_version", "not supported"),
    ("mode", "fast", "mode", "unknown mode"),
    ("network.input_shape", [4, 16, 16], "layers[0].in_ch", "input_shape"),
    ("network.input_shape", [3, 16], "network.input_shape", "[C, H, W]"),
    ("network.layers.1.tiling", {"t_ic": 16, "t_oc": 8, "t_oh": 4, "t_ow": 4}, "layers[1].tiling.t_ic",
     "larger than the layer's 8 input channels"),
    ("network.layers.1.tiling", {"t_ic": 8, "t_oc": 8, "t_oh": 4}, "layers[1].tiling.t_ow", "missing"),
    ("network.layers.1.tiling", {"t_ic": 8, "t_oc": 8, "t_oh": 4, "t_ow": 4, "loop_order": "B,B,OC,OH,OW"},
     "layers[1].tiling.loop_order", "permutation"),
    ("network.layers.1.predicted", {"cycles": -1}, "layers[1].predicted.cycles", "integer count in 0.."),
    ("network.layers.1.block", "two", "layers[1].block", "block index"),
    ("objective_weights", [1, 2], "objective_weights", "[lE, lL, lA]"),
    ("totals", {"cycles": 1}, "totals.latency_ms", "missing"),
    ("provenance", {"seed": "x"}, "provenance.seed", "integer"),
    ("accuracy", {"top1": [1]}, "accuracy.top1", "number"),
])
def test_validation_names_the_field(path, value, field, words):
    msg = _err(_with(path, value))
    assert msg.startswith(field + ":"), msg
    if words:
        assert words in msg, msg


def test_kernel_larger_than_input():
    bits = {"act_bits": 8, "wgt_bits": 8}
    layer = {"kind": "conv", "in_ch": 3, "out_ch": 8, "in_h": 3, "in_w": 3, "kernel": 7, "stride": 1, **bits}
    msg = _err(_with("network.layers.0", layer))
    assert msg.startswith("layers[0].kernel: 7 larger than the padded input"), msg
    layer = {"kind": "conv", "in_ch": 3, "out_ch": 8, "in_h": 16, "in_w": 16, "padding": 1, "kernel": 3,
             "stride": 1, "out_h": 15, "out_w": 16, **bits}
    assert _err(_with("network.layers.0", layer)).startswith("layers[0].out_h: 15 does not follow")


def test_structure_errors():
    assert _err([1, 2]).startswith("expected a mapping")
    assert _err({"layers": [], "accelerator": {}}).startswith("layers: expected a non-empty list")
    assert _err({"layers": [BASE["network"]["layers"][0]]}).startswith("accelerator: missing")
    both = copy.deepcopy(BASE)
    both["layers"] = both["network"]["layers"]
    assert _err(both).startswith("layers:")
    assert _err({**BASE, "acclerator": {}}).startswith("acclerator: unknown field")
    assert _err(_with("bitfusion", {"rows": 0})).startswith("bitfusion.rows:")


def test_malformed_files(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text('{"layers": [')
    with pytest.raises(JaqError, match="malformed JSON"):
        load_spec(p)
    y = tmp_path / "bad.yaml"
    y.write_text("layers: [a, b\naccelerator: {")
    with pytest.raises(JaqError, match="malformed YAML"):
        load_spec(y)
    with pytest.raises(JaqError, match="file not found"):
        load_spec(tmp_path / "missing.json")


def test_predictions_totals_provenance_round_trip(tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("seed: 3\n")
    spec = parse_spec(copy.deepcopy(BASE), source=tmp_path / "x.json")
    costs = [Cost(cycles=1000 * (i + 1), latency_ms=0.002 * (i + 1), energy_pj={"mac": 10.0, "dram": 5.0},
                  area_mm2=1.5, accesses={"dram_rd_bits": 64}) for i in range(2)]
    for e, c in zip(spec.network.layers, costs):
        e.predicted = Predicted("native", c)
        e.weights = "weights/layer.npz"
    spec.totals = Totals.from_costs(costs, "native")
    spec.provenance = Provenance.now(config=cfg, seed=3, command="test")
    spec.accuracy = {"top1": 0.91, "dataset": "digits"}
    assert spec.totals.cycles == 3000 and spec.totals.energy_mj == pytest.approx(30e-9)
    assert spec.totals.edap == pytest.approx(30e-12 * 0.006e-3 * 1.5)
    assert len(spec.provenance.config_sha256) == 64 and spec.provenance.code_version.startswith("jaq ")
    assert spec.resolve("weights/layer.npz") == tmp_path / "weights" / "layer.npz"
    out = save(spec, tmp_path / "accel.json")
    back = load_spec(out)
    assert back.network.layers[1].predicted.cost.cycles == 2000
    assert back.network.layers[1].predicted.cost.energy_pj == {"mac": 10.0, "dram": 5.0}
    assert back.totals == spec.totals and back.accuracy == spec.accuracy
    assert back.provenance.seed == 3 and back.provenance.config_sha256 == spec.provenance.config_sha256
    assert isinstance(back, AccelSpec) and back.network.layers[0].weights == "weights/layer.npz"


def test_build_spec_from_results(tmp_path):
    from jaq.hw.model import estimate_layers

    acc = Accelerator(pe_x=8, pe_y=8, act_buf_kb=64, wgt_buf_kb=64, out_buf_kb=64)
    layers = [Layer("conv", 1, 8, 8, 8, kernel=3, name="stem"), Layer("fc", 8, 10, 1, 1, name="fc")]
    tilings = [Tiling(1, 8, 8, 8, acc.loop_order), Tiling(8, 8, 1, 1, acc.loop_order)]
    costs = estimate_layers(layers, acc, tilings)
    spec = build_spec(layers, acc, tilings=tilings, costs=costs, input_shape=(1, 8, 8),
                      labels=[{"op": "stem"}, {"op": "head", "weights": "w/fc.npz"}], objective_weights=(1, 1, 0),
                      accuracy={"top1": 0.5})
    assert spec.totals.cycles == sum(c.cycles for c in costs)
    back = load_spec(save(spec, tmp_path / "a.json"))
    assert back.layers == layers and back.tilings == tilings
    assert [e.predicted.cost.cycles for e in back.network.layers] == [c.cycles for c in costs]
    assert back.network.layers[1].op == "head" and back.provenance.code_version.startswith("jaq ")
    with pytest.raises(JaqError, match=r"layers\[0\].in_ch"):
        build_spec(layers, acc, input_shape=(3, 8, 8))


# -- hostile numbers and hand-off requirements (issue 12) -------------------------------------------------------

_PRED = {"mode": "native", "cycles": 10, "latency_ms": 0.1, "energy_pj": {"mac": 1.0}, "energy_total_pj": 1.0,
         "area_mm2": 1.0, "accesses": {"macs": 5}}
_TOT = {"mode": "native", "cycles": 10, "latency_ms": 0.1, "energy_mj": 1e-9, "area_mm2": 1.0, "edap": 1e-20}
#: every numeric field of the file: (path for _with, dotted field in the message, document sections to add)
_NUMERIC = [(f"accelerator.{k}", f"accelerator.{k}", {}) for k in
            ("pe_x", "pe_y", "act_buf_kb", "wgt_buf_kb", "out_buf_kb", "clock_mhz", "dram_bits_per_cycle",
             "dram_latency_cycles", "out_unit_lines")] + \
    [(f"network.layers.0.{k}", f"layers[0].{k}", {}) for k in
     ("in_ch", "out_ch", "out_h", "out_w", "kernel", "stride", "groups", "act_bits", "wgt_bits", "in_h", "in_w",
      "padding", "block")] + \
    [(f"network.layers.1.predicted.{k}", f"layers[1].predicted.{k}", {"predicted": _PRED}) for k in
     ("cycles", "latency_ms", "area_mm2", "energy_total_pj", "energy_pj.mac", "accesses.macs")] + \
    [(f"totals.{k}", f"totals.{k}", {"totals": _TOT}) for k in _TOT if k != "mode"] + \
    [(f"objective_weights.{i}", f"objective_weights[{i}]", {"objective_weights": [1.0, 1.0, 1.0]})
     for i in range(3)] + \
    [("provenance.seed", "provenance.seed", {"provenance": {"seed": 1}}),
     ("network.input_shape.1", "network.input_shape", {}),
     ("network.layers.0.scales.wgt_scale", "layers[0].scales.wgt_scale", {"scales": {"wgt_scale": 0.5}}),
     ("provenance.extra.lr", "provenance.extra.lr", {"provenance": {"extra": {"lr": 0.1}}})]


def _doc_with(sections: dict) -> dict:
    obj = copy.deepcopy(BASE)
    for k, v in sections.items():
        if k in ("predicted",):
            obj["network"]["layers"][1][k] = copy.deepcopy(v)
        elif k == "scales":
            obj["network"]["layers"][0][k] = copy.deepcopy(v)
        else:
            obj[k] = copy.deepcopy(v)
    return obj


def _set(obj: dict, path: str, value) -> dict:
    node = obj
    keys = path.split(".")
    for k in keys[:-1]:
        node = node[int(k)] if isinstance(node, list) else node[k]
    if isinstance(node, list):
        node[int(keys[-1])] = value
    else:
        node[keys[-1]] = value
    return obj


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf"), 1e300, 2 ** 128, -(2 ** 70)],
                         ids=["nan", "inf", "-inf", "1e300", "2^128", "-2^70"])
@pytest.mark.parametrize("path,field,sections", _NUMERIC, ids=[f for _, f, _ in _NUMERIC])
def test_hostile_numbers_name_the_field_and_range(path, field, sections, value):
    free_form = field.startswith(("provenance.extra", "layers[0].scales"))
    obj = _set(_doc_with(sections), path, value)
    if free_form and value == 1e300:  # a finite float is plain data
        assert parse_spec(obj)
        return
    msg = _err(obj)
    assert msg.startswith(field + ":"), msg
    if free_form:  # plain data: finite numbers, 64-bit integers
        assert "finite" in msg or "64 bits" in msg, msg
    else:  # the schema states the valid range
        assert re.search(r"\d\.\.\d|\(0, 10000\]|one of (1, )?2, 4, 8", msg), msg
    assert len(msg) < 300, msg


@pytest.mark.parametrize("section,key", [("accelerator", f.name) for f in fields(Accelerator)] +
                         [("layer", k) for k in ("kernel", "stride", "act_bits", "wgt_bits")])
def test_hand_off_files_require_every_hardware_field(section, key, tmp_path):
    obj = copy.deepcopy(BASE)
    if section == "accelerator":
        del obj["accelerator"][key]
        field = f"accelerator.{key}"
    else:
        del obj["network"]["layers"][1][key]
        field = f"layers[1].{key}"
    assert _err(obj).startswith(f"{field}: missing (required in a hand-off file")
    # the same document without schema_version, from YAML, is a hand-written sketch: defaults apply
    del obj["schema_version"]
    y = tmp_path / "sketch.yaml"
    y.write_text(yaml.safe_dump(obj))
    assert load_spec(y).layers[1].kind == "pointwise"
    # ... but never from a .json file
    j = tmp_path / "accel.json"
    j.write_text(json.dumps(obj))
    with pytest.raises(JaqError, match=re.escape(field)):
        load_spec(j)


def test_bitfusion_section_complete_in_hand_off_files():
    bf = {"rows": 16, "cols": 32, "wbuf_bytes": 65536, "ibuf_bytes": 32768, "obuf_bytes": 16384, "if_width": 192,
          "clock_mhz": 500}
    spec = parse_spec({**copy.deepcopy(BASE), "bitfusion": bf})
    assert spec.bitfusion.rows == 16
    del bf["if_width"]
    assert _err({**copy.deepcopy(BASE), "bitfusion": bf}).startswith("bitfusion.if_width: missing (required")


@pytest.mark.parametrize("path,value,field", [
    ("network.layers.0.name", 7, "layers[0].name"),
    ("network.layers.0.name", "two\nlines", "layers[0].name"),
    ("network.layers.0.op", ["stem"], "layers[0].op"),
    ("network.name", "x" * 5000, "network.name"),
    ("network.layers.0.scales", b"raw", "layers[0].scales"),
    ("network.layers.0.scales", {"w": {1: 2}}, "layers[0].scales.w"),
    ("network.layers.0.scales", [[[[[[1]]]]]], "layers[0].scales[0][0][0][0]"),
    ("provenance", {"extra": {"blob": "x" * 70_000}}, "provenance.extra.blob"),
    ("provenance", {"extra": {"s": {1, 2}}}, "provenance.extra.s"),
    ("provenance", {"notes": 3}, "provenance.notes"),
    ("accuracy", {f"k{i}": 1 for i in range(300)}, "accuracy"),
])
def test_free_form_fields_are_plain_and_bounded(path, value, field):
    msg = _err(_with(path, value))
    assert msg.startswith(field), msg
    assert len(msg) < 300, msg


def test_free_form_fields_round_trip_as_plain_copies(tmp_path):
    scales = {"wgt_scale": 0.25, "act_scale": 0.5, "out_scale": None}
    obj = _with("network.layers.0.scales", scales)
    obj["provenance"] = {"extra": {"resolved_config": {"search": {"lr": 0.01}}, "refs": [1, 2]}}
    spec = parse_spec(obj)
    assert spec.network.layers[0].scales == scales and spec.network.layers[0].scales is not scales
    back = load_spec(save(spec, tmp_path / "a.json"))
    assert back.provenance.extra == obj["provenance"]["extra"]


def test_yaml_sketch_can_be_held_to_the_hand_off_rules(tmp_path):
    y = tmp_path / "sketch.yaml"
    y.write_text(yaml.safe_dump({"accelerator": {}, "layers": [{"kind": "fc", "in_ch": 8, "out_ch": 2, "out_h": 1,
                                                                "out_w": 1}]}))
    assert load_spec(y).accelerator == Accelerator()
    with pytest.raises(JaqError, match=r"^accelerator\.pe_x: missing \(required in a hand-off file"):
        load_spec(y, hand_off=True)
