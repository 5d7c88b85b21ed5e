"""Render the collected run data (:mod:`jaq.report.collect`) as a static HTML page and a Markdown summary.

Templates (jinja2) live in ``jaq/report/templates/``: ``report.html.j2`` (one self-contained page: inline CSS,
figures referenced as relative PNG files in ``figures/`` or embedded as base64 ``data:`` URIs with ``embed``;
nothing loaded over the network) and ``report.md.j2``. This module turns the raw numbers into display rows
(units chosen per magnitude) so the templates stay free of arithmetic.
"""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path
from typing import Any

import yaml

from jaq.report.collect import CYCLE_PARTS, ENERGY_PARTS

TEMPLATES = Path(__file__).with_name("templates")

#: Section ids in page order, with titles (the navigation bar and the Markdown headings use them).
SECTIONS = (("summary", "Summary"), ("flow", "Flow"), ("network", "Network"), ("accelerator", "Accelerator"),
            ("breakdown", "Per-layer cost"), ("accuracy", "Accuracy"), ("area", "Area"),
            ("search", "Search trajectory"), ("pareto", "Pareto front"), ("verification", "Model vs RTL"),
            ("provenance", "Provenance"))


# ---------------------------------------------------------------------------------------------------------------
# Number formatting
# ---------------------------------------------------------------------------------------------------------------
def fmt(v: Any, digits: int = 4) -> str:
    """A number with ``digits`` significant digits, thousands separators for large integers; ``-`` for None."""
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        if v == 0:
            return "0"
        if 1e4 <= abs(v) < 1e12:
            return f"{v:,.0f}"
        if abs(v) >= 1e12 or abs(v) < 1e-3:
            return f"{v:.{max(1, digits - 1)}e}"
        return f"{v:.{digits}g}"
    return str(v)


def fmt_energy_pj(pj: float | None) -> str:
    if pj is None:
        return "–"
    for unit, scale in (("mJ", 1e9), ("µJ", 1e6), ("nJ", 1e3)):
        if abs(pj) >= scale:
            return f"{pj / scale:.4g} {unit}"
    return f"{pj:.4g} pJ"


def fmt_time_ms(ms: float | None) -> str:
    if ms is None:
        return "–"
    if ms >= 1000:
        return f"{ms / 1000:.4g} s"
    if ms >= 1:
        return f"{ms:.4g} ms"
    return f"{ms * 1000:.4g} µs"


def fmt_bits(bits: float | None) -> str:
    if bits is None:
        return "–"
    b = bits / 8
    for unit, scale in (("MB", 1e6), ("kB", 1e3)):
        if b >= scale:
            return f"{b / scale:.4g} {unit}"
    return f"{b:.4g} B"


def fmt_seconds(s: float | None) -> str:
    if s is None:
        return "–"
    if s >= 60:
        return f"{int(s // 60)} min {s % 60:.0f} s"
    return f"{s:.1f} s"


def pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.2f} %"


# ---------------------------------------------------------------------------------------------------------------
# View model
# ---------------------------------------------------------------------------------------------------------------
def _commands(d: dict) -> dict[str, str]:
    run = d["run"]
    cfg = (d.get("flow") or {}).get("config") or ((d.get("provenance") or {}).get("config")) or "CONFIG.yaml"
    build = d.get("build_path") or f"{run}/build"
    return {
        "co_search": f"jaq co-search --config {cfg} --out {run}",
        "retrain": f"jaq retrain {run}",
        "emit_rtl": f"jaq emit-rtl {run}/accel.json -o {build}",
        "synth": f"jaq emit-rtl {run}/accel.json -o {build} --synth",
        "simulate": f"jaq simulate {build}",
        "flow": f"jaq flow --config {cfg} --out {run} --resume",
        "sweep": f"jaq co-search --config {cfg} --out {run}-sweep --sweep-lambda 0.01,0.1,1 --retrain",
        "report": f"jaq report {run}",
    }


def _utilisation(l: dict, acc: dict | None) -> float | None:
    """MACs / (cycles x fusion units x MACs per unit per cycle at the layer's bits, 64 / (a·w)): the share of
    the array's peak that the layer sustains end to end (loads and stores included)."""
    if not acc or not l.get("cycles") or not l.get("macs"):
        return None
    peak = acc["pe_x"] * acc["pe_y"] * 64.0 / (l["act_bits"] * l["wgt_bits"])
    return l["macs"] / (l["cycles"] * peak)


def _layer_rows(d: dict) -> tuple[list[dict], dict]:
    net = d.get("network") or {}
    rows = []
    tot = {"cycles": 0, "latency_ms": 0.0, "energy": 0.0, "dram": 0, "onchip": 0, "macs": 0}
    layers = net.get("layers") or []
    total_cycles = sum(l["cycles"] or 0 for l in layers) or 1
    total_energy = sum(l["energy_total_pj"] or 0.0 for l in layers) or 1.0
    for l in layers:
        a = l["accesses"]
        dram = a.get("dram_rd_bits", 0) + a.get("dram_wr_bits", 0)
        onchip = sum(a.get(k, 0) for k in ("act_buf_rd_bits", "act_buf_wr_bits", "wgt_buf_rd_bits",
                                           "wgt_buf_wr_bits", "out_buf_rd_bits", "out_buf_wr_bits"))
        cyc = l["cycles"] or 0
        # the dominant latency part and energy part
        cparts = sorted(((a.get(k, 0), lab) for k, lab in CYCLE_PARTS), reverse=True)
        eparts = sorted(((l["energy_pj"].get(k, 0.0), lab) for k, lab in ENERGY_PARTS), reverse=True)
        T = l["tiling"]
        rows.append({
            **l,
            "shape": f"{l['in_ch']}→{l['out_ch']} @ {l['out_h']}×{l['out_w']}",
            "ksg": f"k{l['kernel']} s{l['stride']}" + (f" g{l['groups']}" if l["groups"] > 1 else ""),
            "bits_s": f"a{l['act_bits']}/w{l['wgt_bits']}",
            "tiling_s": (f"ic{T['t_ic']} oc{T['t_oc']} oh{T['t_oh']} ow{T['t_ow']}" if T else "BatchTile at emit"),
            "loop_s": "›".join(T["loop_order"]) if T and T.get("loop_order") else "",
            "cycles_s": fmt(cyc), "latency_s": fmt_time_ms(l["latency_ms"]),
            "energy_s": fmt_energy_pj(l["energy_total_pj"]),
            "dram_s": fmt_bits(dram), "onchip_s": fmt_bits(onchip), "macs_s": fmt(l["macs"]),
            "cycle_share": cyc / total_cycles, "energy_share": (l["energy_total_pj"] or 0.0) / total_energy,
            "bound": cparts[0][1] if cparts and cparts[0][0] > 0 else "",
            "top_energy": eparts[0][1] if eparts and eparts[0][0] > 0 else "",
            "util": _utilisation(l, d.get("accelerator")),
        })
        tot["cycles"] += cyc
        tot["latency_ms"] += l["latency_ms"] or 0.0
        tot["energy"] += l["energy_total_pj"] or 0.0
        tot["dram"] += dram
        tot["onchip"] += onchip
        tot["macs"] += l["macs"] or 0
    tot_s = {"cycles_s": fmt(tot["cycles"]), "latency_s": fmt_time_ms(tot["latency_ms"]),
             "energy_s": fmt_energy_pj(tot["energy"]), "dram_s": fmt_bits(tot["dram"]),
             "onchip_s": fmt_bits(tot["onchip"]), "macs_s": fmt(tot["macs"])}
    # energy split of the whole network (for the text under the figure)
    comp = {}
    for k, lab in ENERGY_PARTS:
        comp[lab] = sum(l["energy_pj"].get(k, 0.0) for l in layers)
    s = sum(comp.values()) or 1.0
    tot_s["energy_split"] = [(lab, v / s) for lab, v in sorted(comp.items(), key=lambda kv: -kv[1]) if v / s >= 0.005]
    cyc = {}
    for k, lab in CYCLE_PARTS:
        cyc[lab] = sum(l["accesses"].get(k, 0) for l in layers)
    s = sum(cyc.values()) or 1
    tot_s["cycle_split"] = [(lab, v / s) for lab, v in sorted(cyc.items(), key=lambda kv: -kv[1]) if v / s >= 0.005]
    return rows, tot_s


def _verification(d: dict) -> dict:
    rows = d.get("sim_rows") or []
    sim = d.get("sim") or {}
    net = sim.get("network")
    lay = sim.get("layers")
    n_layers = len((d.get("network") or {}).get("layers") or [])
    out: dict[str, Any] = {"rows": rows, "ran": bool(rows) or bool(net) or bool(lay), "groups": [],
                           "network": None, "layer_run": None}
    for kind in ("network (real data)", "layer (random data)"):
        rs = [r for r in rows if r["source"] == kind]
        if rs:
            out["groups"].append({
                "kind": kind, "rows": rs, "n": len(rs), "bit_exact": sum(r["bit_exact"] for r in rs),
                "counters": sum(r["counters_equal"] for r in rs), "ok": all(r["ok"] for r in rs),
                "cycles_equal": sum(1 for r in rs if r["cycles_rtl"] is not None and
                                    r["cycles_rtl"] == r["cycles_model"])})
    if net:
        out["network"] = {"ok": bool(net.get("ok")), "logits_equal": bool(net.get("logits_equal")),
                          "logits_rtl": net.get("logits_rtl"), "logits_model": net.get("logits_model"),
                          "sim_seconds": net.get("sim_seconds"), "build_seconds": net.get("build_seconds"),
                          "cycles": net.get("simulated_cycles"), "label": net.get("label"),
                          "predicted": net.get("predicted_class"), "image": net.get("image"),
                          "host_ops": net.get("host_ops"), "n_layers": len(net.get("layers") or [])}
    if lay:
        out["layer_run"] = {"ok": bool(lay.get("ok")), "sim_seconds": lay.get("sim_seconds"),
                            "build_seconds": lay.get("build_seconds"), "cycles": lay.get("simulated_cycles"),
                            "cycles_per_second": lay.get("cycles_per_second"), "errors": lay.get("errors") or [],
                            "stall": lay.get("stall")}
    out["all_ok"] = out["ran"] and all(g["ok"] for g in out.get("groups", [])) and \
        (not net or bool(net.get("ok"))) and (not lay or bool(lay.get("ok")))
    covered = max([g["n"] for g in out.get("groups", [])] or [0])
    out["coverage"] = f"{covered}/{n_layers}" if n_layers else str(covered)
    return out


def _accuracy_rows(d: dict) -> list[tuple[str, str]]:
    acc = d.get("accuracy") or {}
    names = {"top1": "test accuracy (retrained, fake-quant)", "top1_integer": "test accuracy (integer model)",
             "supernet_arch_split": "supernet accuracy on the architecture split (end of search)"}
    rows = []
    for k in ("top1", "top1_integer", "supernet_arch_split"):
        if isinstance(acc.get(k), (int, float)):
            rows.append((names[k], pct(acc[k])))
    for k, v in acc.items():
        if k in names:
            continue
        rows.append((k.replace("_", " "), fmt(v) if not isinstance(v, str) else v))
    return rows


def _kpis(d: dict, ver: dict) -> list[dict]:
    t = d.get("totals") or {}
    acc = d.get("accuracy") or {}
    k = []
    if "top1" in acc:
        k.append({"label": "test accuracy", "value": pct(acc["top1"]),
                  "note": f"integer model {pct(acc.get('top1_integer'))}" if "top1_integer" in acc else "retrained"})
    elif "supernet_arch_split" in acc:
        k.append({"label": "supernet accuracy", "value": pct(acc["supernet_arch_split"]),
                  "note": "not retrained yet"})
    if t:
        k.append({"label": "latency", "value": fmt_time_ms(t.get("latency_ms")), "note": f"{fmt(t.get('cycles'))} cycles"})
        k.append({"label": "energy", "value": fmt_energy_pj((t.get("energy_mj") or 0) * 1e9), "note": "per image"})
        k.append({"label": "area (model)", "value": f"{fmt(t.get('area_mm2'))} mm²", "note": "45 nm, incl. SRAM"})
        k.append({"label": "EDAP", "value": fmt(t.get("edap")), "note": "J·s·mm²"})
    if ver["ran"]:
        g = (ver.get("groups") or [{}])[0]
        val = "pass" if ver["all_ok"] else "FAIL"
        note = f"{g.get('bit_exact', 0)}/{g.get('n', 0)} layers bit-exact, counters equal {g.get('counters', 0)}/" \
               f"{g.get('n', 0)}" if g else ""
        k.append({"label": "RTL vs model", "value": val, "note": note, "status": "ok" if ver["all_ok"] else "bad"})
    else:
        k.append({"label": "RTL vs model", "value": "not run", "note": "jaq simulate", "status": "na"})
    for x in k:
        x.setdefault("status", "")
    return k


def _search_rows(d: dict) -> list[dict]:
    t = d.get("trajectory")
    if not t:
        return []
    rows = []
    for i, e in enumerate(t["epochs"]):
        a = t["accelerator"][i] or {}
        b = t["bits"][i] or []
        rows.append({"epoch": e, "tau": fmt(t["tau"][i], 3), "hw": fmt(t["hw_cost"][i], 3),
                     "acc": pct(t["arch_acc"][i]) if t["arch_acc"][i] is not None else "–",
                     "edap": fmt(t["edap"][i], 3), "lat": fmt_time_ms(t["latency_ms"][i]),
                     "accel": (f"{a.get('pe_x')}×{a.get('pe_y')} {a.get('dataflow')} "
                               f"{a.get('act_buf_kb')}/{a.get('wgt_buf_kb')}/{a.get('out_buf_kb')} KB") if a else "–",
                     "bits": " ".join(f"{x[0]}/{x[1]}" for x in b),
                     "phase": "search" if t["searched_arch"][i] else "warm-up",
                     "secs": fmt_seconds(t["epoch_s"][i])})
    return rows


def view_model(d: dict, figures: dict[str, str]) -> dict:
    """Everything the templates need: raw data ``d`` plus display-ready rows and strings."""
    rows, tot = _layer_rows(d)
    ver = _verification(d)
    acc = d.get("accelerator")
    acc_v = None
    if acc:
        am = d.get("area_model") or {}
        banks = am.get("banks", {})
        acc_v = {**acc, "num_pe": acc["pe_x"] * acc["pe_y"],
                 "loop_s": " › ".join(acc["loop_order"]),
                 "banks": banks,
                 "bricks": acc["pe_x"] * acc["pe_y"] * 16,
                 "peak_macs_8b": acc["pe_x"] * acc["pe_y"], "peak_macs_2b": acc["pe_x"] * acc["pe_y"] * 16,
                 "peak_gops_2b": acc["pe_x"] * acc["pe_y"] * 16 * 2 * acc["clock_mhz"] * 1e-3,
                 "dram_gbs": acc["dram_bits_per_cycle"] / 8 * acc["clock_mhz"] * 1e-3}
    am = d.get("area_model")
    area_rows = []
    if am:
        tot_a = am["total_mm2"] or 1.0
        area_rows = [(k, fmt(v), f"{100 * v / tot_a:.1f} %") for k, v in am["parts_mm2"].items()]
    ys = (d.get("build") or {}).get("yosys")
    cfg = d.get("config")
    flow = d.get("flow")
    flow_rows = []
    if flow:
        for s in flow.get("steps", []):
            row = {**s, "secs_s": fmt_seconds(s.get("seconds"))}
            if s.get("name") == "report" and s.get("status") == "pending":
                row.update(status="now", summary="this page")
            flow_rows.append(row)
    synth_outcome = ((flow or {}).get("synthesis") or {}).get("outcome")
    blocks = (d.get("network") or {}).get("blocks") or []
    n_skip = sum(1 for b in blocks if b.get("op") == "skip")
    present = {
        "summary": True, "flow": bool(flow_rows), "network": bool(d.get("network")),
        "accelerator": bool(acc), "breakdown": bool(rows), "accuracy": bool(d.get("accuracy")),
        "area": bool(am), "search": bool(d.get("trajectory")), "pareto": bool(d.get("sweep")),
        "verification": ver["ran"], "provenance": True,
    }
    return {
        "d": d, "run": d["run"], "name": d["name"], "figures": figures, "sections": SECTIONS, "present": present,
        "cmd": _commands(d), "layers": rows, "tot": tot, "ver": ver, "acc": acc_v, "kpis": _kpis(d, ver),
        "accuracy_rows": _accuracy_rows(d), "area_rows": area_rows, "yosys": ys, "search_rows": _search_rows(d),
        "flow_rows": flow_rows, "flow": flow,
        "sweep_rows": sorted((d.get("sweep") or {}).get("points", []), key=lambda p: p.get("lambda", 0.0)),
        "objective_s": ", ".join(fmt(float(w), 3) for w in d["objective_weights"]) if d.get("objective_weights")
        else None,
        "config_yaml": yaml.safe_dump(cfg, sort_keys=False) if cfg else None,
        "synth_outcome": synth_outcome if not ys else None, "n_skip": n_skip,
        "sweep_root": bool(d.get("sweep")) and not d.get("has_accel"),
        "sweep_links": _sweep_links(d),
        "fmt": fmt, "pct": pct, "fmt_energy_pj": fmt_energy_pj, "fmt_time_ms": fmt_time_ms, "fmt_bits": fmt_bits,
        "fmt_seconds": fmt_seconds,
    }


def _sweep_links(d: dict) -> dict[str, str]:
    """{run path as written in sweep.json: relative link to that run's report.html} for the runs that have one."""
    sw = d.get("sweep")
    if not sw:
        return {}
    run = Path(d["run"])
    out = {}
    for p in sw["points"]:
        name = Path(str(p.get("run", ""))).name
        if name and (run / name / "report" / "report.html").is_file():
            out[str(p.get("run"))] = f"../{name}/report/report.html"
    return out


def _env():
    import jinja2
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), undefined=jinja2.StrictUndefined,
                             autoescape=jinja2.select_autoescape(["html", "html.j2"]), trim_blocks=True,
                             lstrip_blocks=True, keep_trailing_newline=True)
    return env


def figure_sources(figures: dict[str, Path], out_dir: Path, embed: bool) -> dict[str, str]:
    """``{name: src}`` for the ``<img>`` tags: a path relative to ``out_dir`` or a base64 ``data:`` URI."""
    src = {}
    for name, p in figures.items():
        if embed:
            src[name] = "data:image/png;base64," + base64.b64encode(Path(p).read_bytes()).decode("ascii")
        else:
            src[name] = Path(p).relative_to(out_dir).as_posix()
    return src


def render_html(d: dict, figures: dict[str, Path], out_dir: Path, *, embed: bool = False) -> str:
    vm = view_model(d, figure_sources(figures, out_dir, embed))
    return _env().get_template("report.html.j2").render(**vm)


def render_markdown(d: dict, figures: dict[str, Path], out_dir: Path) -> str:
    vm = view_model(d, figure_sources(figures, out_dir, False))
    return _env().get_template("report.md.j2").render(**vm)


def escape(s: str) -> str:
    return html.escape(s)


__all__ = ["render_html", "render_markdown", "view_model", "fmt", "SECTIONS"]
