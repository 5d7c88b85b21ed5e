"""BitFusion mode on BitFusion's own benchmark networks: per-network cycles, energy and search time, against the
figures BitFusion's simulator published for the same layers.

    python benchmarks/bench_bitfusion.py [--file examples/bitfusion_benchmarks.yaml] [--threads 1] [--layers]

The file lists the 61 layers of BitFusion's eight benchmark networks (Sharma et al., ISCA 2018; layer shapes and
the simulator's published results from github.com/hsharma35/bitfusion) on its configuration bf_e_conf at batch
16. Every network is searched in BitFusion mode (jaq.hw.bitfusion.search_bitfusion: all 120 loop orders x batch,
spatial, IC and OC tiles, minimum cycles then energy), one call per network. Per network it prints:

* cycles: this mode's sum over the network's layers, BitFusion's published sum, and their ratio;
* energy (uJ): this mode's, and the energy of BitFusion's published counts (cycles less memory wait cycles on the
  array, bits per buffer, DRAM bits) under the same constants, and their ratio (the published results carry
  counts, not energy);
* layers whose cycles and all ten published counters are equal to this mode's;
* search time: wall seconds and process CPU seconds (the machine may be shared; CPU time is the steadier
  figure), and the size of the search space (candidate tilings; the search evaluates each distinct one once).

SVHN's layers have 1-bit operands, which the project's records refuse (bits must be 2, 4 or 8); the network is
reported as not run with the one-line error. ``--layers`` adds a per-layer table.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import yaml  # noqa: E402

from jaq.errors import JaqError  # noqa: E402
from jaq.hw.bitfusion import (E_CORE_PJ_PER_FU, DRAM_PJ_PER_BIT, BitFusionConfig, SimulatorLayer,  # noqa: E402
                              buffer_costs, candidate_tilings, layer_from_simulator, search_bitfusion)

DEFAULT_FILE = Path(__file__).resolve().parents[1] / "examples" / "bitfusion_benchmarks.yaml"
#: Published counter -> this mode's accesses key.
COUNTERS = {"wbuf_rd_bits": "wgt_buf_rd_bits", "wbuf_wr_bits": "wgt_buf_wr_bits", "ibuf_rd_bits": "act_buf_rd_bits",
            "ibuf_wr_bits": "act_buf_wr_bits", "obuf_rd_bits": "out_buf_rd_bits", "obuf_wr_bits": "out_buf_wr_bits",
            "dram_rd_bits": "dram_rd_bits", "dram_wr_bits": "dram_wr_bits"}


@dataclass
class NetworkResult:
    """One network's figures: cycles, energy in pJ, published cycles/energy (None when absent), equal layers,
    search seconds, candidate rows, and the error when it was not run."""

    name: str
    n_layers: int
    cycles: int = 0
    energy_pj: float = 0.0
    published_cycles: int | None = None
    published_energy_pj: float | None = None
    equal_layers: int = 0
    search_s: float = 0.0
    cpu_s: float = 0.0
    rows: int = 0
    error: str | None = None


def published_energy_pj(pub: dict, cfg: BitFusionConfig) -> float:
    """Energy of BitFusion's published counts of one layer (pJ): array cycles (cycles - memory wait) x N*M x E_FU
    + buffer bits x the mode's CACTI pJ/bit + DRAM bits x 15."""
    b = buffer_costs(cfg.to_accel_batch())
    e = (pub["cycles"] - pub["memory_wait_cycles"]) * cfg.rows * cfg.cols * E_CORE_PJ_PER_FU
    for buf, pre in (("wgt", "wbuf"), ("act", "ibuf"), ("out", "obuf")):
        e += pub[f"{pre}_rd_bits"] * float(b[buf]["rd_pj_bit"]) + pub[f"{pre}_wr_bits"] * float(b[buf]["wr_pj_bit"])
    return e + (pub["dram_rd_bits"] + pub["dram_wr_bits"]) * DRAM_PJ_PER_BIT


def equal_to_published(cost, pub: dict) -> bool:
    """Cycles, memory wait cycles and the eight bit counts all equal."""
    a = cost.accesses
    wait = a["stall_cycles"] + a["fill_cycles"] + a["drain_cycles"]
    return (cost.cycles == pub["cycles"] and wait == pub["memory_wait_cycles"]
            and all(a[ours] == pub[theirs] for theirs, ours in COUNTERS.items()))


def load(path: Path) -> tuple[BitFusionConfig, dict[str, list[tuple[dict, dict | None]]]]:
    """The configuration and, per network, (simulator layer keys, published figures or None)."""
    doc = yaml.safe_load(path.read_text())
    cfg = BitFusionConfig.from_dict(doc["configuration"], "configuration.")
    nets = {}
    for net, entries in doc["networks"].items():
        rows = []
        for d in entries:
            d = dict(d)
            rows.append((d, d.pop("published", None)))
        nets[net] = rows
    return cfg, nets


def run_network(name: str, entries, cfg: BitFusionConfig, per_layer: bool) -> NetworkResult:
    res = NetworkResult(name=name, n_layers=len(entries))
    try:
        sls: list[SimulatorLayer] = [layer_from_simulator(d, f"networks.{name}[{i}].")
                                     for i, (d, _) in enumerate(entries)]
    except JaqError as e:
        res.error = str(e)
        return res
    layers, flags = [s.layer for s in sls], [s.im2col for s in sls]
    res.rows = sum(len(candidate_tilings(l, cfg, f)) for l, f in zip(layers, flags))
    t0, c0 = time.perf_counter(), time.process_time()
    choices = search_bitfusion(layers, cfg, im2col=flags)
    res.search_s, res.cpu_s = time.perf_counter() - t0, time.process_time() - c0
    pubs = [p for _, p in entries]
    res.cycles = sum(c.cost.cycles for c in choices)
    res.energy_pj = sum(c.cost.energy_total_pj for c in choices)
    if all(p is not None for p in pubs):
        res.published_cycles = sum(p["cycles"] for p in pubs)
        res.published_energy_pj = sum(published_energy_pj(p, cfg) for p in pubs)
        res.equal_layers = sum(equal_to_published(c.cost, p) for c, p in zip(choices, pubs))
    if per_layer:
        for (d, p), c, f in zip(entries, choices, flags):
            t = c.tiling
            ref = f"{p['cycles']:>12,}" if p else f"{'-':>12}"
            print(f"    {d['name']:<36} {c.cost.cycles:>12,} {ref} {c.cost.energy_total_pj / 1e6:>10.3f} uJ  "
                  f"b{t.t_b} ic{t.t_ic} oc{t.t_oc} {t.t_oh}x{t.t_ow} {'>'.join(t.loop_order)}"
                  f"{'  im2col' if f else ''}")
    return res


def ratio(a, b) -> str:
    return f"{a / b:.6f}" if b else "-"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--file", type=Path, default=DEFAULT_FILE, help="benchmark layers (default: %(default)s)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (default: %(default)s; more threads only contend on a shared 2-core machine)")
    ap.add_argument("--layers", action="store_true", help="also print every layer")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg, nets = load(args.file)
    print(f"BitFusion mode on {sum(len(v) for v in nets.values())} layers of {len(nets)} networks "
          f"({args.file.name}); {cfg.rows}x{cfg.cols}, WBUF {cfg.wbuf_bytes:,} B, IBUF {cfg.ibuf_bytes:,} B, "
          f"OBUF {cfg.obuf_bytes:,} B, if_width {cfg.if_width}, {args.threads} torch threads")
    search_bitfusion([layer_from_simulator(nets[next(iter(nets))][0][0]).layer], cfg)  # warm-up, not timed
    head = (f"{'network':<10} {'layers':>6} {'cycles':>13} {'BitFusion':>13} {'ratio':>9} {'energy uJ':>11} "
            f"{'BitFusion':>11} {'ratio':>9} {'equal':>6} {'wall s':>7} {'cpu s':>7} {'candidates':>10}")
    print(head)
    print("-" * len(head))
    results = []
    for name, entries in nets.items():
        r = run_network(name, entries, cfg, args.layers)
        results.append(r)
        if r.error:
            print(f"{name:<10} {r.n_layers:>6}  not run: {r.error}")
            continue
        pc = f"{r.published_cycles:>13,}" if r.published_cycles is not None else f"{'-':>13}"
        pe = f"{r.published_energy_pj / 1e6:>11.3f}" if r.published_energy_pj is not None else f"{'-':>11}"
        print(f"{name:<10} {r.n_layers:>6} {r.cycles:>13,} {pc} {ratio(r.cycles, r.published_cycles):>9} "
              f"{r.energy_pj / 1e6:>11.3f} {pe} {ratio(r.energy_pj, r.published_energy_pj):>9} "
              f"{r.equal_layers:>3}/{r.n_layers:<2} {r.search_s:>7.2f} {r.cpu_s:>7.2f} {r.rows:>10,}")
    ran = [r for r in results if not r.error]
    n = sum(r.n_layers for r in ran)
    t = sum(r.search_s for r in ran)
    cpu = sum(r.cpu_s for r in ran)
    rows = sum(r.rows for r in ran)
    print("-" * len(head))
    print(f"{'all run':<10} {n:>6} {sum(r.cycles for r in ran):>13,} "
          f"{sum(r.published_cycles or 0 for r in ran):>13,} "
          f"{ratio(sum(r.cycles for r in ran), sum(r.published_cycles or 0 for r in ran)):>9} "
          f"{sum(r.energy_pj for r in ran) / 1e6:>11.3f} "
          f"{sum(r.published_energy_pj or 0 for r in ran) / 1e6:>11.3f} "
          f"{ratio(sum(r.energy_pj for r in ran), sum(r.published_energy_pj or 0 for r in ran)):>9} "
          f"{sum(r.equal_layers for r in ran):>3}/{n:<2} {t:>7.2f} {cpu:>7.2f} {rows:>10,}")
    print(f"search: {t / max(n, 1):.3f} s wall ({cpu / max(n, 1):.3f} s CPU) per layer, "
          f"{t / max(rows, 1) * 1e6:.2f} us wall per candidate; "
          f"not run: {', '.join(r.name for r in results if r.error) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
