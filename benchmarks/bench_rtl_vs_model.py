"""RTL vs cost model on random (layer, accelerator, tiling) cases, on Verilator.

Draws ``--cases`` random cases spread over ``--configs`` random accelerator configurations (one Verilator build
each, every dataflow represented), simulates them with the exact memory model and prints: the number of
bit-exact layers; max and mean relative difference |RTL - model| / model of the cycles and of every counter;
build time per configuration (cold/cached) and simulated cycles per second.

    python benchmarks/bench_rtl_vs_model.py --cases 50 --configs 6 --seed 0 [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from jaq.errors import JaqError  # noqa: E402
from jaq.hw.model import estimate_one  # noqa: E402
from jaq.hw.records import DATAFLOWS, LOOP_ORDERS, Accelerator, Layer, Tiling  # noqa: E402
from jaq.hw.schedule import check_tiling  # noqa: E402
from sim.harness import COUNTER_MAP, LayerCase, build_accelerator, simulate_layers  # noqa: E402


def random_layer(rng: random.Random, i: int) -> Layer:
    kind = rng.choice(["conv", "conv", "depthwise", "pointwise", "fc"])
    a, w = rng.choice((2, 4, 8)), rng.choice((2, 4, 8))
    signed = rng.random() < 0.3
    if kind == "fc":
        return Layer("fc", rng.randint(4, 48), rng.randint(2, 16), 1, 1, act_bits=a, wgt_bits=w, act_signed=signed,
                     name=f"fc{i}")
    k = 1 if kind == "pointwise" else rng.choice((3, 3, 5))
    s = rng.choice((1, 1, 2))
    oh, ow = rng.randint(1, 7), rng.randint(1, 7)
    if kind == "depthwise":
        c = rng.randint(2, 12)
        return Layer("depthwise", c, c, oh, ow, kernel=k, stride=s, groups=c, act_bits=a, wgt_bits=w,
                     act_signed=signed, name=f"dw{i}")
    g = rng.choice((1, 1, 1, 2))
    cin, cout = g * rng.randint(1, 12), g * rng.randint(1, 10)
    return Layer(kind, cin, cout, oh, ow, kernel=k, stride=s, groups=g, act_bits=a, wgt_bits=w, act_signed=signed,
                 name=f"{kind}{i}")


def random_tiling(rng: random.Random, layer: Layer, accel: Accelerator) -> Tiling:
    def pow2_upto(n):
        return rng.choice([1 << e for e in range(0, int(math.log2(n)) + 1)])

    for _ in range(100):
        t = Tiling(pow2_upto(layer.in_ch_per_group), pow2_upto(layer.out_ch_per_group), pow2_upto(layer.out_h),
                   pow2_upto(layer.out_w), rng.choice(LOOP_ORDERS))
        try:
            check_tiling(layer, accel, t)
            return t
        except JaqError:
            continue
    return Tiling(1, 1, 1, 1, rng.choice(LOOP_ORDERS))


def random_accel(rng: random.Random, dataflow: str) -> Accelerator:
    return Accelerator(pe_x=rng.randint(3, 6), pe_y=rng.randint(3, 6), act_buf_kb=64, wgt_buf_kb=64, out_buf_kb=64,
                       dataflow=dataflow, dram_bits_per_cycle=rng.choice((64, 128)),
                       dram_latency_cycles=rng.randint(2, 12))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=50)
    ap.add_argument("--configs", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)
    accels = [random_accel(rng, DATAFLOWS[i % 3]) for i in range(args.configs)]
    per = [args.cases // args.configs + (1 if i < args.cases % args.configs else 0) for i in range(args.configs)]
    rows, builds = [], []
    sim_s = sim_cycles = 0
    exact = total = 0
    for ci, (accel, n) in enumerate(zip(accels, per)):
        cases = []
        for j in range(n):
            layer = random_layer(rng, len(rows) + j)
            cases.append(LayerCase(layer, random_tiling(rng, layer, accel), name=layer.name))
        t0 = time.perf_counter()
        b = build_accelerator(accel, [c.layer for c in cases])
        builds.append({"config": ci, "dataflow": accel.dataflow, "seconds": time.perf_counter() - t0,
                       "cached": not b.built})
        rep = simulate_layers(accel, cases, build=b, seed=args.seed * 1000 + ci)
        sim_s += rep.sim_seconds
        sim_cycles += rep.simulated_cycles
        for e in rep.errors:
            print(f"config {ci}: error: {e}", file=sys.stderr)
        print(f"config {ci}: {accel.dataflow} {accel.pe_y}x{accel.pe_x} W={accel.dram_bits_per_cycle} "
              f"L={accel.dram_latency_cycles}: {n} cases, build {builds[-1]['seconds']:.1f} s"
              f"{' (cached)' if builds[-1]['cached'] else ''}, sim {rep.sim_seconds:.1f} s, "
              f"bit-exact {sum(l.bit_exact for l in rep.layers)}/{n}", flush=True)
        for case, lr in zip(cases, rep.layers):
            total += 1
            exact += int(lr.bit_exact)
            m = estimate_one(case.layer, accel, case.tiling)
            model = {"cnt_cycles": int(round(m.cycles))}
            model.update({port: int(round(m.accesses[key])) for port, key in COUNTER_MAP.items()
                          if key in m.accesses})
            rows.append({"config": ci, "dataflow": accel.dataflow, "layer": case.layer.to_dict(),
                         "tiling": case.tiling.to_dict(), "bit_exact": lr.bit_exact, "rtl": lr.counters_rtl,
                         "model": model})
    print(f"cases: {total} on {len(accels)} configurations; bit-exact layers: {exact}/{total}")
    print(f"{'counter':<20} {'max rel diff':>13} {'mean rel diff':>14} {'exact':>7}")
    summary = {}
    for port in COUNTER_MAP:
        rels = []
        for r in rows:
            if port in r["rtl"] and port in r["model"]:
                mv, rv = r["model"][port], r["rtl"][port]
                rels.append(abs(rv - mv) / mv if mv else float(rv != mv))
        if rels:
            summary[port] = {"max": max(rels), "mean": sum(rels) / len(rels),
                             "exact": sum(1 for x in rels if x == 0), "n": len(rels)}
            print(f"{port:<20} {max(rels):>13.3g} {sum(rels) / len(rels):>14.3g} "
                  f"{summary[port]['exact']:>3}/{len(rels)}")
        else:
            print(f"{port:<20} {'(no RTL value)':>13}")
    cold = [b["seconds"] for b in builds if not b["cached"]]
    print(f"builds: {len(builds)} ({len(cold)} cold, mean {sum(cold) / len(cold):.1f} s)" if cold else
          f"builds: {len(builds)} (all cached)")
    print(f"simulated {sim_cycles} cycles in {sim_s:.1f} s: {sim_cycles / sim_s if sim_s else 0:,.0f} cycles/s")
    if args.json:
        Path(args.json).write_text(json.dumps({"cases": total, "bit_exact": exact, "counters": summary,
                                               "builds": builds, "sim_seconds": sim_s,
                                               "simulated_cycles": sim_cycles, "rows": rows}, indent=1))
    ok = exact == total and all(v["max"] == 0 for v in summary.values()) and len(summary) == len(COUNTER_MAP)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
