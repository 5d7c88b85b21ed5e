"""Whole-network simulation speed: the FBNet-CIFAR subnet (69 layers, 32x32 input) on a 16x16 accelerator,
end to end on Verilator as one program stream; prints cycles, wall time, simulated cycles per second, logits.

The network: the CIFAR FBNet space's 22 blocks alternating k5_e6 / k3_e3 (the subnet of bench_batchtile.py),
every block's activation and weight bits drawn from {2, 4, 8} with a fixed seed, random initial weights folded
to the integer model (``jaq.nn.integer.export_integer``), one random 32x32 image. Accelerator: 16x16 PEs,
256 KB buffers, 128 bits/cycle, the given dataflow, BatchTile's tilings (all loop orders). Checks: logits equal
to ``IntegerNet.run``, every layer's outputs bit-exact and its counters equal to the walk and the model.

    python benchmarks/bench_sim_network.py                 # RS (the fastest dataflow for this subnet)
    python benchmarks/bench_sim_network.py --blocks 4      # a shorter network (first 4 blocks + head)
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def fbnet_cifar_integer_net(seed: int = 0, blocks: int | None = None):
    """(IntegerNet, input image) of the alternating k5_e6 / k3_e3 CIFAR subnet with random weights."""
    import torch

    from jaq.nn.integer import export_integer
    from jaq.nn.space import preset
    from jaq.nn.subnet import BlockChoice, SubnetChoice, build_subnet

    space = preset("cifar", num_classes=10)
    rng = random.Random(seed)
    n = space.num_blocks
    ops = [("k5_e6", "k3_e3")[b % 2] if blocks is None or b < blocks else "skip" for b in range(n)]
    choice = SubnetChoice(tuple(BlockChoice(op, rng.choice((2, 4, 8)), rng.choice((2, 4, 8))) for op in ops))
    torch.manual_seed(seed)
    net = build_subnet(space, choice)
    # make the random network's activations non-degenerate: unit BN scales (the residual branches' last BN is
    # zero-initialised for training) and BN statistics of random inputs, so every layer's tensor is used
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            torch.nn.init.ones_(m.weight)
            m.momentum = None
    net.train()
    with torch.no_grad():
        for _ in range(4):
            net(torch.rand(16, 3, 32, 32) * 2 - 1)
    net.eval()
    image = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    return export_integer(net), image


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataflow", choices=("WS", "OS", "RS"), default="RS")
    ap.add_argument("--pe", type=int, default=16, help="PE array side (default 16)")
    ap.add_argument("--blocks", type=int, default=None, help="searchable blocks kept (default all 22)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    from jaq.hw.batchtile import batch_tile
    from jaq.hw.records import Accelerator
    from sim.network import run_integer_net

    inet, image = fbnet_cifar_integer_net(args.seed, args.blocks)
    layers = [L.layer for L in inet.layers]
    accel = Accelerator(pe_x=args.pe, pe_y=args.pe, act_buf_kb=256, wgt_buf_kb=256, out_buf_kb=256,
                        dataflow=args.dataflow, dram_bits_per_cycle=128)
    choices = batch_tile(layers, accel, loop_orders="all")
    tilings = [c.tiling for c in choices]
    model_cycles = sum(c.cost.cycles for c in choices)
    print(f"network: {len(layers)} layers ({sum(l.kind == 'depthwise' for l in layers)} depthwise); accelerator "
          f"{args.pe}x{args.pe} {args.dataflow}, 256 KB buffers, W=128; model cycles {model_cycles:,}; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    t0 = time.perf_counter()
    res = run_integer_net(inet, accel, tilings, image)
    wall = time.perf_counter() - t0
    bad = [r.name for r in res.layer_reports if not r.ok]
    print(f"build {res.build_seconds:.1f} s; simulation {res.sim_seconds:.1f} s for {res.simulated_cycles:,} "
          f"cycles = {res.simulated_cycles / max(res.sim_seconds, 1e-9):,.0f} simulated cycles/s; wall {wall:.1f} s")
    print(f"layers exact (outputs, counters == walk == model): {len(res.layer_reports) - len(bad)}/"
          f"{len(res.layer_reports)}{'; failing: ' + ', '.join(bad[:5]) if bad else ''}")
    print(f"logits equal to the integer model: {res.logits_equal}; host operations: {res.host_ops}")
    print(f"logits: {res.logits_rtl.ravel().tolist()}")
    return 0 if res.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
