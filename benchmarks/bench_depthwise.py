"""Depthwise layers on the native machine: cycles against their per-layer bound, array scaling, depthwise share.

    python benchmarks/bench_depthwise.py [--layers] [--unit-lines N] [--sweep-unit-lines]

The figures issue "machine v2, part 2" targets (docs/execution-model.md section 8), measured with the cost model
at each layer's BatchTile-optimal tiling over all loop orders, per dataflow (one dataflow per accelerator; the
best one is named):

* per depthwise layer of the FBNet-CIFAR subnet (bench_batchtile.py) and of MobileNetV2-CIFAR at 16x16 PEs:
  cycles, bound, ratio; the bound is max(compute, traffic): compute = MACs / (X * Y * pf) cycles (every fusion
  unit busy, pf = (8/a)(8/w) products per cycle), traffic = every operand moved once (padded input at a bits,
  weights at w bits, outputs at out_bits) / W cycles;
* FBNet-CIFAR subnet total cycles at 8x8, 16x16, 32x32 and 64x64 PEs (256 KB buffers, W = 128);
* every layer finished on chip (part 1): final outputs at the consumer's bits, the FBNet subnet's residual adds
  and pooled head as ``bench_output_unit.py`` builds them;
* MobileNetV2-CIFAR (53 layers, 8/8 bits, 128 KB buffers, W = 64) at 16x16: depthwise share of all cycles;
* every accelerator with an output unit of ``--unit-lines`` OBUF lines per cycle (section 7.4; default the
  accelerator default); ``--sweep-unit-lines`` also prints the FBNet subnet at 16x16 for 1, 2, 4, 8, 16.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_batchtile import cifar_fbnet_subnet  # noqa: E402
from bench_output_unit import on_chip, residual_projects, with_out_bits  # noqa: E402

from jaq.hw.records import OUT_UNIT_LINES, Accelerator, Layer  # noqa: E402

#: MobileNetV2 inverted-residual settings (expansion t, channels c, repeats n, stride s), Sandler et al. CVPR 2018,
#: Table 2; CIFAR variant: stem stride 1 and the second stage at stride 1 (32x32 input).
MBV2_SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                 (6, 320, 1, 1))


def mobilenet_v2_cifar(bits: int = 8) -> list[Layer]:
    """MobileNetV2 for 32x32 inputs: stem conv3x3 3->32, 17 inverted-residual blocks, 1x1 -> 1280, fc -> 10."""
    b = dict(act_bits=bits, wgt_bits=bits)
    layers = [Layer("conv", 3, 32, 32, 32, kernel=3, name="stem", **b)]
    c_in, res, k = 32, 32, 0
    for t, c, n, s in MBV2_SETTINGS:
        for i in range(n):
            stride = s if i == 0 else 1
            mid, out = c_in * t, res // stride
            if t != 1:
                layers.append(Layer("pointwise", c_in, mid, res, res, name=f"b{k}.expand", **b))
            layers.append(Layer("depthwise", mid, mid, out, out, kernel=3, stride=stride, groups=mid,
                                name=f"b{k}.dw", **b))
            layers.append(Layer("pointwise", mid, c, out, out, name=f"b{k}.project", **b))
            c_in, res, k = c, out, k + 1
    layers.append(Layer("pointwise", c_in, 1280, res, res, name="head", **b))
    layers.append(Layer("fc", 1280, 10, 1, 1, name="fc", **b))
    return layers


def layer_bound(layer: Layer, accel: Accelerator) -> tuple[float, float]:
    """(compute, traffic) lower bounds in cycles (module docstring)."""
    cg = layer.in_ch // layer.groups
    pf = (8 // layer.act_bits) * (8 // layer.wgt_bits)
    macs = layer.out_ch * layer.out_h * layer.out_w * layer.kernel ** 2 * cg
    ih, iw = (layer.out_h - 1) * layer.stride + layer.kernel, (layer.out_w - 1) * layer.stride + layer.kernel
    bits = (ih * iw * layer.in_ch * layer.act_bits + layer.out_ch * layer.kernel ** 2 * cg * layer.wgt_bits
            + layer.out_h * layer.out_w * layer.out_ch * layer.out_bits)
    return math.ceil(macs / (accel.pe_x * accel.pe_y * pf)), math.ceil(bits / accel.dram_bits_per_cycle)


def best(layers, accel):
    """(dataflow, BatchTile's choices) of the dataflow with the fewest total cycles."""
    from jaq.hw.batchtile import batch_tile

    runs = {df: batch_tile(layers, replace(accel, dataflow=df), loop_orders="all") for df in ("WS", "OS", "RS")}
    df = min(runs, key=lambda d: sum(c.cost.cycles for c in runs[d]))
    return df, runs[df], {d: sum(c.cost.cycles for c in r) for d, r in runs.items()}


def depthwise_table(name: str, layers, accel, show: bool) -> None:
    df, choices, per_df = best(layers, accel)
    total = sum(c.cost.cycles for c in choices)
    dw = [(l, c) for l, c in zip(layers, choices) if l.kind == "depthwise"]
    ratios = []
    if show:
        print(f"  {'layer':<12} {'bits':>5} {'dataflow':>8} {'cycles':>10} {'bound':>8} {'ratio':>7}")
    for l, c in dw:
        bound = max(layer_bound(l, accel))
        ratios.append(c.cost.cycles / bound)
        if show:
            print(f"  {l.name:<12} {l.act_bits}/{l.wgt_bits:<3} {c.dataflow:>8} {c.cost.cycles:>10,.0f} "
                  f"{bound:>8,} {ratios[-1]:>7.1f}")
    dw_cycles = sum(c.cost.cycles for _, c in dw)
    print(f"{name}: {len(layers)} layers, {len(dw)} depthwise; per dataflow "
          + ", ".join(f"{d} {v:,.0f}" for d, v in per_df.items()) + f" cycles; best {df}:")
    print(f"  total {total:,.0f} cycles, depthwise "
          f"{dw_cycles:,.0f} ({100 * dw_cycles / total:.1f} %); depthwise cycles / bound: min {min(ratios):.1f}, "
          f"median {sorted(ratios)[len(ratios) // 2]:.1f}, max {max(ratios):.1f} (target: every layer <= 2)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", action="store_true", help="print every depthwise layer")
    ap.add_argument("--unit-lines", type=int, default=Accelerator().out_unit_lines, choices=OUT_UNIT_LINES,
                    help="OBUF lines the output unit finishes per cycle (1, 2, 4, 8, 16; default %(default)s)")
    ap.add_argument("--sweep-unit-lines", action="store_true",
                    help="also print the FBNet subnet at 16x16 for every output-unit width")
    args = ap.parse_args(argv)
    u = args.unit_lines
    fb = cifar_fbnet_subnet()
    fb = on_chip(fb, residual_projects(fb))  # machine v2 part 1: outputs at the consumer's bits, residuals, pooling
    a16 = Accelerator(pe_x=16, pe_y=16, act_buf_kb=256, wgt_buf_kb=256, out_buf_kb=256, dram_bits_per_cycle=128,
                      out_unit_lines=u)
    print(f"[per-layer bounds at 16x16 PEs, BatchTile's tiling and loop order per layer, best dataflow; output unit "
          f"{u} line(s) per cycle]")
    depthwise_table("FBNet-CIFAR subnet (256 KB, W=128)", fb, a16, args.layers)
    mb = with_out_bits(mobilenet_v2_cifar(), set())  # outputs at the consumer's bits
    a_mb = Accelerator(pe_x=16, pe_y=16, act_buf_kb=128, wgt_buf_kb=128, out_buf_kb=128, dram_bits_per_cycle=64,
                       out_unit_lines=u)
    depthwise_table("MobileNetV2-CIFAR 8/8 bits (128 KB, W=64)", mb, a_mb, args.layers)
    print("[FBNet-CIFAR subnet: array scaling, 256 KB buffers, W=128; target: 8x8 -> 32x32 at least 3x fewer]")
    cyc = {}
    for n in (8, 16, 32, 64):
        df, choices, _ = best(fb, replace(a16, pe_x=n, pe_y=n))
        cyc[n] = sum(c.cost.cycles for c in choices)
        print(f"  {n}x{n}: {cyc[n]:>12,.0f} cycles, {df} ({cyc[8] / cyc[n]:.2f}x fewer than 8x8)")
    if args.sweep_unit_lines:
        print("[FBNet-CIFAR subnet at 16x16 per output-unit width: cycles, area]")
        for n in (1, 2, 4, 8, 16):
            acc = replace(a16, out_unit_lines=n)
            df, choices, _ = best(fb, acc)
            print(f"  {n:>2} line(s)/cycle: {sum(c.cost.cycles for c in choices):>12,.0f} cycles, {df}, "
                  f"area {choices[0].cost.area_mm2:.3f} mm^2")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
