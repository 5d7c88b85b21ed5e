"""Machine v2 part 1: off-chip traffic with layers finished on chip (docs/execution-model.md section 7).

    python benchmarks/bench_output_unit.py [--dataflow RS] [--layers]

On the CIFAR FBNet subnet of bench_batchtile.py (69 layers) at 16x16 PEs, 256 KB buffers, 128 bits/cycle, each
layer at its BatchTile-optimal tiling, three machines from the same cost model:

* v1: the accelerator stores 32-bit accumulators, the host requantizes (v2's model at out_bits = 32, minus the
  output-unit constant loads it does not have);
* output unit only: final outputs at the consumer's bits, except residual projections, the head and the
  classifier (32-bit, finished by the host);
* v2 part 1 as built: every layer finished on chip (docs sections 7.1-7.3): residual projections read their block
  input beside the final store (``res_bits``), the head pools (one pixel written), the classifier writes logits.

Prints per layer (``--layers``) the off-chip write bits before/after and their ratio, and in total the off-chip
bits (reads + writes), cycles and energy of each machine, with the ratios measured in this run.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_batchtile import cifar_fbnet_subnet  # noqa: E402

from jaq.hw.batchtile import batch_tile  # noqa: E402
from jaq.hw.records import Accelerator  # noqa: E402


def residual_projects(layers) -> set[int]:
    """Indices of MBConv projections with an identity shortcut (stride 1, block input and output channels equal)."""
    out = set()
    for j, l in enumerate(layers):
        if l.name.endswith(".project"):
            expand = layers[j - 2]
            if layers[j - 1].stride == 1 and expand.in_ch == l.out_ch:
                out.add(j)
    return out


def with_out_bits(layers, wide: set[int]):
    """Each layer's final outputs at its consumer's activation bits, except ``wide`` ones and the last two."""
    keep = wide | {len(layers) - 2, len(layers) - 1}
    return [l if j in keep else replace(l, out_bits=layers[j + 1].act_bits, out_signed=layers[j + 1].act_signed)
            for j, l in enumerate(layers)]


def on_chip(layers, wide: set[int]):
    """Part 1 as built: outputs at the consumer's bits (the classifier's logits stay 32-bit), residual projections
    add their block input (its bits: the expand conv's activation bits), the head pools."""
    out = with_out_bits(layers, set())
    out[-2] = replace(out[-2], out_bits=layers[-1].act_bits, out_signed=layers[-1].act_signed, pool=True)
    for j in wide:
        out[j] = replace(out[j], res_bits=layers[j - 2].act_bits, res_signed=layers[j - 2].act_signed)
    return out


def run(layers, accel):
    ch = batch_tile(layers, accel)
    W = accel.dram_bits_per_cycle
    per = []
    for c in ch:
        a = c.cost.accesses
        per.append({"rd": a["dram_rd_bits"], "wr": a["dram_wr_bits"], "scale": a["scale_load_beats"] * W,
                    "cycles": c.cost.cycles, "energy": c.cost.energy_total_pj})
    return per


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataflow", default="WS", choices=("WS", "OS", "RS"))  # WS: the depthwise mapping
    ap.add_argument("--layers", action="store_true", help="print the per-layer table")
    args = ap.parse_args(argv)
    accel = Accelerator(pe_x=16, pe_y=16, act_buf_kb=256, wgt_buf_kb=256, out_buf_kb=256, dataflow=args.dataflow,
                        dram_bits_per_cycle=128)
    base = cifar_fbnet_subnet()
    wide = residual_projects(base)
    v1 = run(base, accel)                        # out_bits 32 everywhere
    p1 = run(with_out_bits(base, wide), accel)   # residual projections, head, fc at 32 bits
    full = run(on_chip(base, wide), accel)
    v1_rd = [r["rd"] - r["scale"] for r in v1]   # v1 has no constant loads
    if args.layers:
        print(f"{'layer':<14}{'out bits':>9}{'wr bits v1':>14}{'wr bits v2':>14}{'ratio':>8}")
        for l, l2, a, b in zip(base, with_out_bits(base, wide), v1, p1):
            print(f"{l.name:<14}{l2.out_bits:>9}{a['wr']:>14,}{b['wr']:>14,}{a['wr'] / max(b['wr'], 1):>8.2f}")
    tot = lambda per, key: sum(r[key] for r in per)  # noqa: E731
    v1_bits = sum(v1_rd) + tot(v1, "wr")
    print(f"CIFAR FBNet subnet ({len(base)} layers, {len(wide)} residual projections), 16x16 {args.dataflow}, 256 KB "
          f"buffers, 128 bits/cycle, BatchTile-optimal tilings per machine")
    print(f"{'machine':<34}{'off-chip Mbit':>14}{'ratio':>8}{'write Mbit':>12}{'Mcycles':>10}{'energy uJ':>11}")
    rows = [("v1 (32-bit outputs, host requant)", v1_bits, tot(v1, "wr"), tot(v1, "cycles"), tot(v1, "energy")),
            ("output unit, host residual/pool", tot(p1, "rd") + tot(p1, "wr"), tot(p1, "wr"), tot(p1, "cycles"),
             tot(p1, "energy")),
            ("v2 part 1: all layers on chip", tot(full, "rd") + tot(full, "wr"), tot(full, "wr"),
             tot(full, "cycles"), tot(full, "energy"))]
    for name, bits, wr, cyc, en in rows:
        print(f"{name:<34}{bits / 1e6:>14.2f}{bits / v1_bits:>8.3f}{wr / 1e6:>12.2f}{cyc / 1e6:>10.3f}{en / 1e6:>11.1f}")
    print("(v1's cycles and energy are v2's model at 32-bit outputs, constant loads included; its bits exclude them)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
