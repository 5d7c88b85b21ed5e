"""jaq report: a run directory made by the real tiny co-search (a very small budget) plus RTL artifacts written by
their own writers (sim.harness reports, rtl_gen.synth report, the sweep's sweep.json), rendered to HTML/Markdown/
PNG and checked in headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from jaq import cli
from jaq.io import atomic_write_json

#: Seconds after which a subprocess counts as hung (not slow: a loaded CI machine never decides a test).
HANG_S = 3000

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

MICRO = """\
name: micro
seed: 0
threads: 1
data: {dataset: digits, augment: false, arch_fraction: 0.2, train_subset: 192, test_subset: 48}
space: tiny
search: {epochs: 2, warmup_epochs: 1, batch_size: 32, max_steps_per_epoch: 1, lambda: 0.1}
retrain: {epochs: 2, batch_size: 32, lr: 0.05, max_steps_per_epoch: 2}
"""


# ---------------------------------------------------------------------------------------------------------------
# Fixture: a real (tiny) search + retrain, then the RTL-side reports from their writers
# ---------------------------------------------------------------------------------------------------------------
def _sim_report(run: Path, *, break_layer: int | None = None) -> dict:
    """A sim.harness.SimReport of every layer: counters from the golden program walk (what a passing RTL run
    reports); ``break_layer`` gets two wrong outputs and a wrong cycle counter."""
    from jaq.accel_json import load_spec
    from jaq.hw.schedule import compile_layer, walk
    from sim.harness import COUNTER_MAP, LayerReport, SimReport

    spec = load_spec(run / "accel.json")
    reps = []
    for i, (L, T) in enumerate(zip(spec.layers, spec.tilings)):
        w = walk(compile_layer(L, spec.accelerator, T))
        exp = {port: int(w[k]) for port, k in COUNTER_MAP.items()}
        rtl = dict(exp)
        diffs, mism = {}, 0
        if i == break_layer:
            rtl["cnt_cycles"] += 3
            diffs = {"cnt_cycles": [rtl["cnt_cycles"], exp["cnt_cycles"]]}
            mism = 2
        reps.append(LayerReport(
            name=L.name, layer=L.to_dict(), tiling=T.to_dict(), bit_exact=mism == 0, finished=True, mismatches=mism,
            first_mismatches=[], counters_rtl=rtl, counters_expected=exp, counter_diffs=diffs,
            monitor_beats={"act": w["act_load_beats"], "wgt": w["wgt_load_beats"], "psum": w["psum_load_beats"],
                           "wr": w["store_beats"]}, monitor_ok=True, model_cycles=int(w["cycles"]),
            walk_cycles=int(w["cycles"]), model_ok=True, model_diffs={}, stall=False))
    return SimReport(accel=spec.accelerator.to_dict(), layers=reps, build_seconds=1.5, build_cached=False,
                     build_dir="cache", sim_seconds=2.0, simulated_cycles=sum(r.walk_cycles for r in reps),
                     stall=False).to_dict()


def _add_rtl_side(run: Path) -> None:
    from rtl_gen.synth import SynthReport

    build = run / "build"
    (build / "rtl").mkdir(parents=True)
    (build / "rtl" / "jaq_accel.v").write_text("module jaq_accel(input clk);\nendmodule\n")
    (build / "programs").mkdir()
    (build / "programs" / "layer_000.hex").write_text("0001\n0002\n")
    atomic_write_json(build / "manifest.json", {"accel_json": "accel.json", "verilog": ["rtl/jaq_accel.v"],
                                                "programs": ["programs/layer_000.hex"], "toplevel": "jaq_accel"})
    syn = SynthReport(top="jaq_accel", logic_area_um2=812345.0, cells={"NAND2": 1200, "DFF": 340, "$mem_v2": 3},
                      memories=3, memory_bits=4_500_000)
    atomic_write_json(build / "synth" / "report.json", syn.to_dict())
    atomic_write_json(build / "sim" / "report.json", _sim_report(run))


def _add_sweep(run: Path) -> None:
    from jaq.accel_json import load_spec
    spec = load_spec(run / "accel.json")
    t = spec.totals
    pts = []
    for lam, s, acc in ((0.01, 3.0, 0.93), (0.1, 1.0, 0.91), (1.0, 0.4, 0.85), (2.0, 0.5, 0.80)):
        pts.append({"lambda": lam, "run": str(run / f"lambda_{lam:g}"), "accuracy": acc,
                    "accuracy_kind": "test accuracy (retrained)", "edap": t.edap * s, "energy_mj": t.energy_mj * s,
                    "latency_ms": t.latency_ms, "area_mm2": t.area_mm2,
                    "bits": [[l.act_bits, l.wgt_bits] for l in spec.layers],
                    "accelerator": spec.accelerator.to_dict()})
    atomic_write_json(run / "sweep.json", {"points": pts})


@pytest.fixture(scope="module")
def searched(tmp_path_factory) -> Path:
    """A real co-search (2 epochs of 1 step on a digits subset) + retraining (2 x 2 steps)."""
    from jaq.search.config import load_config
    from jaq.search.cosearch import run_cosearch
    from jaq.search.retrain import run_retrain

    d = tmp_path_factory.mktemp("report")
    (d / "micro.yaml").write_text(MICRO)
    run = d / "run"
    run_cosearch(load_config(d / "micro.yaml"), run, quiet=True)
    run_retrain(run, quiet=True)
    return run


@pytest.fixture()
def full_run(searched, tmp_path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(searched, run)
    _add_rtl_side(run)
    _add_sweep(run)
    return run


@pytest.fixture(scope="module")
def full_report(searched, tmp_path_factory):
    """The report of a run with every part present, built once for the read-only checks."""
    from jaq.report import build_report

    run = tmp_path_factory.mktemp("full") / "run"
    shutil.copytree(searched, run)
    _add_rtl_side(run)
    _add_sweep(run)
    return build_report(run)


# ---------------------------------------------------------------------------------------------------------------
# HTML checks
# ---------------------------------------------------------------------------------------------------------------
class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.imgs, self.links, self.ids, self.scripts_src = [], [], set(), []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "img":
            self.imgs.append(a.get("src", ""))
        if tag in ("link", "a") and a.get("href"):
            self.links.append(a["href"])
        if tag == "script" and a.get("src"):
            self.scripts_src.append(a["src"])


def _parse(html: str) -> _Page:
    p = _Page()
    p.feed(html)
    return p


def test_full_report_files_sections_and_figures(full_report):
    res = full_report
    html = res.html.read_text()
    page = _parse(html)
    # every section is present and none of them is "not run" except the flow (not made by jaq flow)
    for sid in ("summary", "network", "accelerator", "breakdown", "accuracy", "area", "search", "pareto",
                "verification", "provenance"):
        assert sid in page.ids
    assert res.missing == ["flow"]
    assert "not run" not in html.split('id="network"')[1]
    # figures: PNG files next to the page, referenced relatively, all present
    for name in ("layers", "bits", "trajectory", "alpha", "beta", "accelerator_trajectory", "pareto", "area",
                 "sim_cycles", "retrain"):
        assert name in res.figures, name
        assert res.figures[name].read_bytes()[:8] == PNG_MAGIC
    assert sorted(page.imgs) == sorted(f"figures/{n}.png" for n in res.figures)
    # nothing from the network
    assert not page.scripts_src
    assert not [u for u in page.imgs + page.links if re.match(r"^[a-z]+://", u)]
    # content: the chosen network, accelerator, per-layer table, verification, Yosys, sweep
    d = res.data
    for l in d["network"]["layers"]:
        assert f"<code>{l['name']}</code>" in html
    a = d["accelerator"]
    assert f"{a['pe_x']} × {a['pe_y']} fusion units" in html
    assert " › ".join(a["loop_order"]) in html
    assert f"{len(d['network']['layers'])}/{len(d['network']['layers'])} bit-exact" in html
    assert "0.8123" in html  # Yosys logic area in mm²
    assert html.count('class="badge ok">front') == 3  # the dominated point (lambda 2) is not on the front
    md = res.markdown.read_text()
    assert "| # | layer | shape | bits | cycles |" in md
    assert "![per-layer latency, energy and traffic](figures/layers.png)" in md
    assert "not run" not in md


def test_missing_parts_are_not_run_with_commands(searched, tmp_path):
    """Only the co-search's files: every later part is 'not run' with the command that produces it."""
    from jaq.report import build_report

    run = tmp_path / "run"
    run.mkdir()
    for f in ("config.yaml", "accel.json", "metrics.jsonl", "subnet.json"):
        shutil.copy(searched / f, run / f)
    res = build_report(run)
    html = res.html.read_text()
    assert set(res.missing) == {"flow", "pareto", "verification"}
    assert f"jaq retrain {run}" in html
    assert f"jaq emit-rtl {run}/accel.json -o {run}/build" in html
    assert f"jaq simulate {run}/build" in html
    assert "--sweep-lambda" in html
    assert "retrain" not in res.figures and "sim_cycles" not in res.figures and "pareto" not in res.figures
    assert "supernet accuracy" in html
    # the page still has no broken image reference
    assert all((res.out_dir / src).is_file() for src in _parse(html).imgs)


def test_interrupted_search_metrics_only(searched, tmp_path):
    from jaq.report import build_report

    run = tmp_path / "run"
    run.mkdir()
    for f in ("config.yaml", "metrics.jsonl"):
        shutil.copy(searched / f, run / f)
    res = build_report(run)
    html = res.html.read_text()
    assert "the co-search has not finished" in html
    assert "trajectory" in res.figures and "layers" not in res.figures


def test_mismatch_is_shown_as_fail(full_run):
    from jaq.report import build_report

    atomic_write_json(full_run / "build" / "sim" / "report.json", _sim_report(full_run, break_layer=1))
    html = build_report(full_run).html.read_text()
    assert "FAIL" in html
    assert "2 differ" in html and "cnt_cycles" in html


def test_network_sim_result(full_run):
    """A whole-network result (sim/network.json as jaq flow writes it) is shown with its logits verdict."""
    from jaq.report import build_report

    rep = _sim_report(full_run)
    atomic_write_json(full_run / "build" / "sim" / "network.json", {
        "ok": True, "logits_equal": True, "logits_rtl": [[1, 2, 3]], "logits_model": [[1, 2, 3]],
        "build_seconds": 3.0, "sim_seconds": 4.0, "simulated_cycles": rep["simulated_cycles"],
        "layers": rep["layers"], "predicted_class": 2, "label": 2, "image": "first test image"})
    html = build_report(full_run).html.read_text()
    assert "network (real data)" in html
    assert "predicted class 2 (label 2)" in html


def test_cli(full_run, tmp_path, capsys):
    out = tmp_path / "elsewhere"
    assert cli.main(["report", str(full_run), "-o", str(out), "--embed"]) == 0
    assert f"report: {out / 'report.html'}" in capsys.readouterr().out
    html = (out / "report.html").read_text()
    page = _parse(html)
    assert page.imgs and all(s.startswith("data:image/png;base64,") for s in page.imgs)
    assert (out / "figures" / "layers.png").is_file()


def test_cli_errors(tmp_path, capsys):
    assert cli.main(["report", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "run directory not found" in err
    (tmp_path / "empty").mkdir()
    assert cli.main(["report", str(tmp_path / "empty")]) == 2
    assert "is not a run directory" in capsys.readouterr().err
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "metrics.jsonl").write_text("{not json\n")
    assert cli.main(["report", str(bad)]) == 2
    assert "malformed JSON" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------------------
# A real browser
# ---------------------------------------------------------------------------------------------------------------
def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        p = shutil.which(name)
        if p:
            return p
    return None


def _chrome(binary: str, tmp: Path, url: str, *extra: str) -> subprocess.CompletedProcess:
    cmd = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-dev-shm-usage", f"--user-data-dir={tmp / 'profile'}", "--window-size=1280,2000",
           "--virtual-time-budget=5000", *extra, url]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=HANG_S)


@pytest.mark.parametrize("embed", [False, True], ids=["png-files", "embedded"])
def test_renders_in_headless_chromium(full_report, tmp_path, embed):
    binary = _chromium()
    if binary is None:
        pytest.skip("no chromium on this machine (Debian: apt-get install -y chromium; .ci/run installs it)")
    from jaq.report.render import render_html

    html_p = full_report.html
    if embed:  # the same page with the figures inside (what `jaq report --embed` writes)
        html_p = tmp_path / "embedded.html"
        html_p.write_text(render_html(full_report.data, full_report.figures, full_report.out_dir, embed=True))
    n_img = len(_parse(html_p.read_text()).imgs)
    url = html_p.resolve().as_uri()
    r = _chrome(binary, tmp_path, url, "--dump-dom")
    assert r.returncode == 0, r.stderr[-2000:]
    dom = r.stdout
    m = re.search(r'<body[^>]*data-images="([^"]+)"', dom)
    assert m, "the page's script did not run: " + dom[:300]
    assert m.group(1) == "ok", f"images not loaded: {m.group(1)}"
    assert re.search(rf'data-image-count="{n_img}"', dom)
    assert n_img >= 8
    shot = tmp_path / "shot.png"
    r = _chrome(binary, tmp_path, url, f"--screenshot={shot}")
    assert r.returncode == 0, r.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 50_000  # a rendered page, not a blank one
