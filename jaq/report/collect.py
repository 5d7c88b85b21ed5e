"""Gather everything a report shows from a run directory alone (no recomputation of the search).

:func:`collect` reads, when present:

* ``config.yaml`` (resolved config), ``accel.json`` (network, accelerator, per-layer tilings and predicted costs,
  totals, accuracy, provenance), ``subnet.json`` (block choices), ``metrics.jsonl`` (one record per search epoch),
  ``checkpoint.pt`` (only its ``history``: alpha/beta probabilities per epoch), ``retrain_metrics.jsonl``;
* ``sweep.json`` (a lambda sweep: one point per lambda) in the run directory;
* the RTL build directory (default ``RUN/build``): ``manifest.json``, Verilog files, programs and a Yosys area
  report when ``jaq emit-rtl --synth`` wrote one;
* simulation reports (default ``BUILD/sim/report.json`` for per-layer runs and ``BUILD/sim/network.json`` for the
  whole network on the simulated accelerator).

Every part is optional except that the directory must look like a run (one of config.yaml, metrics.jsonl,
accel.json or sweep.json). A missing part becomes ``None`` (the report shows it as "not run" with the command that
produces it); a malformed file is a one-line :class:`jaq.errors.JaqError`.

Units in the returned dictionaries: cycles, ms, pJ (per layer), mJ (totals), mm², bits, J·s·mm² (EDAP).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from jaq.errors import JaqError
from jaq.io import load_json, load_yaml

#: Energy components of the native cost model (pJ), in stacking order, with display labels.
ENERGY_PARTS = (("mac", "MAC (fusion units)"), ("act_buf_rd", "act buffer read"), ("act_buf_wr", "act buffer write"),
                ("wgt_buf_rd", "wgt buffer read"), ("wgt_buf_wr", "wgt buffer write"),
                ("out_buf_rd", "out buffer read"), ("out_buf_wr", "out buffer write"), ("dram", "off-chip DRAM"))
#: Latency components (cycles of each instruction class; they add up to ``cycles``).
CYCLE_PARTS = (("cycles_compute", "compute"), ("cycles_load_act", "load act"), ("cycles_load_wgt", "load wgt"),
               ("cycles_load_psum", "load psum"), ("cycles_store_out", "store out"),
               ("cycles_set_layer", "set layer"), ("cycles_end", "end"))
#: Traffic components (bits moved), buffer side and off-chip side.
TRAFFIC_PARTS = (("act_buf_rd_bits", "act buffer read"), ("wgt_buf_rd_bits", "wgt buffer read"),
                 ("out_buf_rd_bits", "out buffer read"), ("out_buf_wr_bits", "out buffer write"),
                 ("dram_rd_bits", "DRAM read"), ("dram_wr_bits", "DRAM write"))
#: Yosys area report file names looked for in the build directory (first found wins).
AREA_FILES = ("area.json", "synth.json", "synth/area.json", "synth/report.json", "synth/synth.json",
              "yosys/area.json", "reports/area.json")


def _read_jsonl(path: Path) -> list[dict]:
    out = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise JaqError(f"malformed JSON in {path} at line {i}: {e.msg}") from None
        if isinstance(rec, dict):
            out.append(rec)
    return out


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


# ---------------------------------------------------------------------------------------------------------------
# Parts
# ---------------------------------------------------------------------------------------------------------------
def _network(spec, subnet: dict | None) -> dict:
    """Layers (execution order) with shape, bits, tiling and the model's per-layer cost; blocks summary."""
    layers = []
    for i, e in enumerate(spec.network.layers):
        L = e.layer
        p = e.predicted.cost if e.predicted is not None else None
        acc = dict(p.accesses) if p is not None else {}
        row = {
            "index": i, "name": L.name or f"layer{i}", "block": e.block, "role": e.role, "op": e.op,
            "kind": L.kind, "in_ch": L.in_ch, "out_ch": L.out_ch, "out_h": L.out_h, "out_w": L.out_w,
            "kernel": L.kernel, "stride": L.stride, "groups": L.groups, "act_bits": L.act_bits,
            "wgt_bits": L.wgt_bits, "macs": int(L.macs) if hasattr(L, "macs") else acc.get("macs"),
            "tiling": e.tiling.to_dict() if e.tiling is not None else None,
            "weights": e.weights,
            "cycles": int(p.cycles) if p is not None else None,
            "latency_ms": float(p.latency_ms) if p is not None else None,
            "energy_pj": dict(p.energy_pj) if p is not None else {},
            "energy_total_pj": float(p.energy_total_pj) if p is not None else None,
            "accesses": acc,
            "legal": bool(p.legal) if p is not None else None,
        }
        layers.append(row)
    blocks: list[dict] = []
    if subnet and isinstance(subnet.get("choice"), dict):
        for b, blk in enumerate(subnet["choice"].get("blocks", [])):
            n_layers = sum(1 for l in layers if l["block"] == b)
            blocks.append({"block": b, "op": blk.get("op"), "act_bits": blk.get("act_bits"),
                           "wgt_bits": blk.get("wgt_bits"), "layers": n_layers})
    else:  # rebuild from the layer labels
        seen: dict[int, dict] = {}
        for l in layers:
            if l["block"] is not None:
                d = seen.setdefault(l["block"], {"block": l["block"], "op": l["op"], "act_bits": l["act_bits"],
                                                 "wgt_bits": l["wgt_bits"], "layers": 0})
                d["layers"] += 1
        blocks = [seen[k] for k in sorted(seen)]
    n = spec.network
    return {"name": n.name, "dataset": n.dataset, "input_shape": list(n.input_shape) if n.input_shape else None,
            "layers": layers, "blocks": blocks,
            "total_macs": sum(l["macs"] or 0 for l in layers)}


def _area_breakdown(acc) -> dict | None:
    """Model area by component (mm²): fusion-unit array, the three buffers, overhead (jaq.hw.constants)."""
    try:
        from jaq.hw import constants as C
    except ImportError:  # pragma: no cover
        return None
    parts = {"fusion units": float(C.fu_array_area_mm2(acc.pe_x, acc.pe_y))}
    banks = {}
    for name in ("act", "wgt", "out"):
        b = C.buffer_costs(float(getattr(acc, f"{name}_buf_kb")), name, acc.pe_x, acc.pe_y)
        parts[f"{name} buffer"] = float(b["area_mm2"])
        banks[name] = {"banks": int(round(float(b["banks"]))), "bank_bytes": int(round(float(b["bank_bytes"])))}
    sub = sum(parts.values())
    parts["overhead"] = sub * float(C.AREA_OVERHEAD_FRAC.value)
    return {"parts_mm2": parts, "total_mm2": sum(parts.values()), "banks": banks}


def _yosys_area(build: Path, manifest: dict) -> dict | None:
    """A Yosys synthesis area report written by ``jaq emit-rtl --synth`` (JSON), if any."""
    cands = []
    for k in ("area", "area_report", "synth", "yosys"):
        v = manifest.get(k)
        if isinstance(v, str):
            cands.append(build / v)
        elif isinstance(v, dict):
            return _normalise_area(v, str(build / "manifest.json"))
    cands += [build / f for f in AREA_FILES]
    for f in cands:
        if f.is_file() and f.suffix == ".json":
            d = load_json(f)
            if isinstance(d, dict):
                out = _normalise_area(d, str(f))
                if out is not None:
                    return out
    return None


def _normalise_area(d: dict, source: str) -> dict | None:
    """Accept the common spellings of an area report: total area (µm² or mm²), cell count, per-module areas."""
    area_mm2 = _num(d.get("area_mm2"))
    if area_mm2 is None:
        area_mm2 = _num(d.get("logic_area_mm2"))
    for k in ("area_um2", "logic_area_um2"):
        if area_mm2 is None and _num(d.get(k)) is not None:
            area_mm2 = _num(d.get(k)) * 1e-6
    if area_mm2 is None and _num(d.get("chip_area_um2")) is not None:
        area_mm2 = _num(d.get("chip_area_um2")) * 1e-6
    if area_mm2 is None and isinstance(d.get("yosys"), dict):
        return _normalise_area(d["yosys"], source)
    cells = d.get("cells", d.get("cell_count", d.get("num_cells")))
    if isinstance(cells, dict):
        cell_count = sum(int(v) for v in cells.values() if isinstance(v, (int, float)))
    else:
        cell_count = int(cells) if isinstance(cells, (int, float)) else None
    if area_mm2 is None and cell_count is None:
        return None
    modules = d.get("modules") or d.get("per_module") or {}
    mods = {}
    if isinstance(modules, dict):
        for k, v in modules.items():
            if isinstance(v, dict):
                a = _num(v.get("area_mm2"))
                if a is None and _num(v.get("area_um2")) is not None:
                    a = _num(v.get("area_um2")) * 1e-6
                if a is not None:
                    mods[str(k)] = a
            elif _num(v) is not None:
                mods[str(k)] = _num(v)
    logic_only = "logic_area_um2" in d or "logic_area_mm2" in d
    return {"area_mm2": area_mm2, "cells": cell_count, "modules_mm2": mods, "source": source,
            "logic_only": logic_only, "memory_bits": d.get("memory_bits"), "memories": d.get("memories"),
            "cell_types": {k: v for k, v in cells.items()} if isinstance(cells, dict) else None,
            "top": d.get("top"),
            "liberty": d.get("liberty") or d.get("library"), "note": d.get("note") or d.get("notes"),
            "scale": d.get("scale") or d.get("technology")}


def _build(build: Path) -> dict | None:
    if not build.is_dir():
        return None
    man_p = build / "manifest.json"
    manifest = load_json(man_p) if man_p.is_file() else {}
    if not isinstance(manifest, dict):
        manifest = {}
    vfiles = sorted([p for p in build.rglob("*.v")] + [p for p in build.rglob("*.sv")])
    vfiles = [p for p in vfiles if "sim" not in p.relative_to(build).parts[:1]]
    progs = sorted((build / "programs").glob("*.hex")) if (build / "programs").is_dir() else []
    instr = 0
    for p in progs:
        instr += sum(1 for line in p.read_text().splitlines() if line.strip() and not line.startswith("//"))
    return {"path": str(build), "manifest": manifest,
            "verilog": [{"file": str(p.relative_to(build)), "lines": p.read_text(errors="replace").count("\n")}
                        for p in vfiles],
            "programs": len(progs), "instructions": instr, "yosys": _yosys_area(build, manifest)}


def _sim(build: Path, sim_dir: Path | None) -> dict:
    """Per-layer simulation report and whole-network result (either may be None)."""
    d = sim_dir if sim_dir is not None else build / "sim"
    layer_rep = network = None
    if (d / "report.json").is_file():
        layer_rep = load_json(d / "report.json")
    if (d / "network.json").is_file():
        network = load_json(d / "network.json")
    # a whole-network result may carry the per-layer reports itself
    return {"layers": layer_rep if isinstance(layer_rep, dict) else None,
            "network": network if isinstance(network, dict) else None, "dir": str(d)}


def _sim_rows(sim: dict, net_layers: list[dict]) -> list[dict]:
    """One row per simulated layer: outputs bit-exact, cycles RTL / walk / model, counters equal."""
    rows = []
    sources = []
    if sim.get("network") and sim["network"].get("layers"):
        sources.append(("network (real data)", sim["network"]["layers"]))
    if sim.get("layers") and sim["layers"].get("layers"):
        sources.append(("layer (random data)", sim["layers"]["layers"]))
    for kind, reps in sources:
        for i, r in enumerate(reps):
            crtl = r.get("counters_rtl") or {}
            cexp = r.get("counters_expected") or {}
            diffs = r.get("counter_diffs") or {}
            rows.append({
                "source": kind, "index": i, "name": r.get("name", f"layer{i}"),
                "bits": f"a{(r.get('layer') or {}).get('act_bits', '?')}w{(r.get('layer') or {}).get('wgt_bits', '?')}",
                "bit_exact": bool(r.get("bit_exact")), "mismatches": int(r.get("mismatches") or 0),
                "cycles_rtl": crtl.get("cnt_cycles"), "cycles_walk": r.get("walk_cycles"),
                "cycles_model": r.get("model_cycles"),
                "counters_equal": bool(r.get("counters_ok", not diffs)) and bool(r.get("monitor_ok", True)),
                "counters_checked": len(cexp), "counter_diffs": diffs,
                "model_ok": bool(r.get("model_ok", True)), "ok": bool(r.get("ok")),
                "stall": bool(r.get("stall")),
            })
    return rows


def _trajectory(metrics: list[dict], history: list[dict] | None) -> dict | None:
    if not metrics and not history:
        return None
    ep = [m.get("epoch") for m in metrics]
    t = {"epochs": ep,
         "hw_cost": [_num(m.get("hw_cost")) for m in metrics],
         "hw_E": [_num(m.get("hw_E")) for m in metrics], "hw_L": [_num(m.get("hw_L")) for m in metrics],
         "hw_A": [_num(m.get("hw_A")) for m in metrics],
         "train_acc": [_num(m.get("train_acc")) for m in metrics],
         "arch_acc": [_num(m.get("arch_acc")) for m in metrics],
         "tau": [_num(m.get("tau")) for m in metrics],
         "epoch_s": [_num(m.get("epoch_s")) for m in metrics],
         "searched_arch": [bool(m.get("searched_arch")) for m in metrics],
         "edap": [_num((m.get("derived") or {}).get("final_edap")) for m in metrics],
         "latency_ms": [_num((m.get("derived") or {}).get("final_latency_ms")) for m in metrics],
         "energy_pj": [_num((m.get("derived") or {}).get("final_energy_pj")) for m in metrics],
         "area_mm2": [_num((m.get("derived") or {}).get("final_area_mm2")) for m in metrics],
         "bits": [(m.get("derived") or {}).get("bits") for m in metrics],
         "accelerator": [(m.get("derived") or {}).get("accelerator") for m in metrics],
         "alpha": None, "beta": None, "alpha_epochs": None}
    if history:
        t["alpha"] = [h.get("alpha") for h in history]
        t["beta"] = [h.get("beta") for h in history]
        t["alpha_epochs"] = [h.get("epoch") for h in history]
        t["layer_names"] = history[-1].get("layer_names")
        if len(history) == len(metrics):
            t["history_names"] = [h.get("layer_names") for h in history]
    return t


def _history_from_checkpoint(run: Path) -> list[dict] | None:
    """alpha/beta history (per epoch) from ``checkpoint.pt`` (the only place the search keeps it)."""
    ck = run / "checkpoint.pt"
    if not ck.is_file():
        return None
    from jaq.search.rundir import UnsafeFileError, safe_torch_load
    try:
        st = safe_torch_load(ck)  # weights_only: a run directory never runs code when it is reported
    except UnsafeFileError:
        raise
    except JaqError:  # a damaged checkpoint only costs the alpha/beta figure
        return None
    h = st.get("history") if isinstance(st, dict) else None
    return list(h) if isinstance(h, list) else None


def _sweep(run: Path) -> dict | None:
    f = run / "sweep.json"
    if not f.is_file():
        return None
    d = load_json(f)
    pts = d.get("points") if isinstance(d, dict) else None
    if not isinstance(pts, list) or not pts:
        raise JaqError(f"{f}: expected {{\"points\": [...]}} with one point per lambda", "sweep.json")
    pts = sorted(pts, key=lambda p: p.get("edap", 0.0))
    best = -1.0
    for p in pts:  # Pareto front over (min EDAP, max accuracy)
        p["pareto"] = p.get("accuracy", 0.0) > best
        best = max(best, p.get("accuracy", 0.0))
    return {"points": pts, "path": str(f)}


def is_run_dir(path: Path) -> bool:
    return path.is_dir() and any((path / f).is_file() for f in ("config.yaml", "metrics.jsonl", "accel.json",
                                                                "sweep.json"))


def collect(run_dir: str | Path, *, build_dir: str | Path | None = None, sim_dir: str | Path | None = None) -> dict:
    """Everything the report shows, as plain dicts/lists (see the module docstring). ``build_dir`` defaults to
    ``RUN/build``; ``sim_dir`` to ``BUILD/sim``."""
    run = Path(run_dir)
    if not run.exists():
        raise JaqError(f"run directory not found: {run} (run `jaq co-search --config CONFIG --out {run}` or "
                       f"`jaq flow --config CONFIG --out {run}` first)", "RUN_DIR")
    if not is_run_dir(run):
        raise JaqError(f"{run} is not a run directory (no config.yaml, metrics.jsonl, accel.json or sweep.json); "
                       f"pass the --out folder of `jaq co-search` or `jaq flow`", "RUN_DIR")
    from jaq.accel_json import load_spec

    data: dict[str, Any] = {"run": str(run), "name": run.name}
    cfg = load_yaml(run / "config.yaml") if (run / "config.yaml").is_file() else None
    data["config"] = cfg if isinstance(cfg, dict) else None
    if data["config"]:
        data["name"] = data["config"].get("name", run.name)
    spec = load_spec(run / "accel.json") if (run / "accel.json").is_file() else None
    data["has_accel"] = spec is not None
    subnet = load_json(run / "subnet.json") if (run / "subnet.json").is_file() else None
    metrics = _read_jsonl(run / "metrics.jsonl") if (run / "metrics.jsonl").is_file() else []
    metrics = [m for m in metrics if m.get("kind", "epoch") == "epoch"]
    data["trajectory"] = _trajectory(metrics, _history_from_checkpoint(run))
    if data["trajectory"] is not None and subnet and isinstance(subnet.get("space"), dict):
        data["trajectory"]["ops"] = subnet["space"].get("ops")
    data["search_epochs_planned"] = (data["config"] or {}).get("search", {}).get("epochs")
    data["search_seconds"] = sum(m.get("epoch_s") or 0.0 for m in metrics) if metrics else None
    retrain = _read_jsonl(run / "retrain_metrics.jsonl") if (run / "retrain_metrics.jsonl").is_file() else []
    data["retrain"] = {"epochs": [r for r in retrain if r.get("kind") == "retrain_epoch"],
                       "test": next((r for r in retrain if r.get("kind") == "retrain_test"), None)} \
        if retrain else None
    data["sweep"] = _sweep(run)

    if spec is not None:
        data["network"] = _network(spec, subnet)
        a = spec.accelerator
        data["accelerator"] = a.to_dict() if a is not None else None
        data["area_model"] = _area_breakdown(a) if a is not None else None
        t = spec.totals
        data["totals"] = t.to_dict() if t is not None else None
        data["accuracy"] = dict(spec.accuracy or {})
        data["provenance"] = spec.provenance.to_dict()
        data["mode"] = spec.mode
        data["objective_weights"] = list(spec.objective_weights) if spec.objective_weights else None
    else:
        for k in ("network", "accelerator", "area_model", "totals", "accuracy", "provenance", "mode",
                  "objective_weights"):
            data[k] = None

    build = Path(build_dir) if build_dir is not None else run / "build"
    data["build"] = _build(build)
    data["build_path"] = str(build)
    data["sim"] = _sim(build, Path(sim_dir) if sim_dir is not None else None)
    data["sim_rows"] = _sim_rows(data["sim"], (data["network"] or {}).get("layers", []))
    flow = run / "flow.json"
    data["flow"] = load_json(flow) if flow.is_file() else None
    return data


__all__ = ["collect", "is_run_dir", "ENERGY_PARTS", "CYCLE_PARTS", "TRAFFIC_PARTS"]
