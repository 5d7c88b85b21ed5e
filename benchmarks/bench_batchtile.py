"""BatchTile benchmark: time per co-search iteration vs a pure-Python exhaustive search, on the paper's CIFAR FBNet
subnet; plus the paper's Table 2 case.

    python benchmarks/bench_batchtile.py [--repeats 20] [--threads 2] [--skip-full]

Prints (a) BatchTile time per iteration (median), (b) exhaustive reference time on the same layers, (c) the
ratio, (d) whether tilings and costs are identical; then the same for the full space (all 120 loop orders x 3
dataflows; the exhaustive reference there runs on a sample of layers and is extrapolated, said so in the output);
then Table 2.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from jaq.hw.batchtile import MAX_ROWS_PER_CALL, batch_tile, clear_cache, evaluate_tilings  # noqa: E402
from jaq.hw.oracle import exhaustive_reference  # noqa: E402
from jaq.hw.records import Accelerator, Layer, Tiling  # noqa: E402
from jaq.hw import space  # noqa: E402

#: CIFAR FBNet space (Wu et al. 2019, CIFAR variant used by JAQ / Auto-NBA): (channels, blocks, stride) per stage.
CIFAR_STAGES = ((16, 1, 1), (24, 4, 1), (32, 4, 2), (64, 4, 2), (112, 4, 1), (184, 4, 2), (352, 1, 1))


def cifar_fbnet_subnet(seed: int = 0) -> list[Layer]:
    """A CIFAR FBNet subnet: stem conv3x3 3->16 @32x32, 22 MBConv blocks alternating k5_e6 / k3_e3 (pointwise
    expand, depthwise kxk with the stage stride, pointwise project), head 1x1 -> 1504, fc 1504 -> 10; every
    layer's (act, wgt) bits drawn from {2,4,8} with a fixed seed. Returns 69 layers."""
    rng = random.Random(seed)
    bits = lambda: dict(act_bits=rng.choice((2, 4, 8)), wgt_bits=rng.choice((2, 4, 8)))  # noqa: E731
    layers = [Layer("conv", 3, 16, 32, 32, kernel=3, name="stem", **bits())]
    c_in, res, b = 16, 32, 0
    for c_out, n, s in CIFAR_STAGES:
        for i in range(n):
            stride = s if i == 0 else 1
            k, e = ((5, 6), (3, 3))[b % 2]
            mid = c_in * e
            out_res = res // stride
            layers.append(Layer("pointwise", c_in, mid, res, res, name=f"b{b}.expand", **bits()))
            layers.append(Layer("depthwise", mid, mid, out_res, out_res, kernel=k, stride=stride, groups=mid,
                                name=f"b{b}.dw", **bits()))
            layers.append(Layer("pointwise", mid, c_out, out_res, out_res, name=f"b{b}.project", **bits()))
            c_in, res, b = c_out, out_res, b + 1
    layers.append(Layer("pointwise", c_in, 1504, res, res, name="head", **bits()))
    layers.append(Layer("fc", 1504, 10, 1, 1, name="fc", **bits()))
    return layers


def same(a, b) -> bool:
    return all(x.tiling == y.tiling and x.dataflow == y.dataflow and x.objective == y.objective
               and x.cost.cycles == y.cost.cycles and x.cost.energy_pj == y.cost.energy_pj
               and x.cost.accesses == y.cost.accesses for x, y in zip(a, b)) and len(a) == len(b)


def time_batchtile(layers, accel, repeats, **kw) -> tuple[float, float, list]:
    """(median wall seconds, median CPU seconds of this process, result). The machine may be shared: the CPU time
    (all threads) is the load-independent figure; wall time is what a co-search iteration waits."""
    clear_cache()
    res = batch_tile(layers, accel, **kw)  # warm-up: fills the enumeration cache (as in a co-search after step 1)
    ts, cs = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        res = batch_tile(layers, accel, **kw)
        ts.append(time.perf_counter() - t0)
        cs.append(time.process_time() - c0)
    return statistics.median(ts), statistics.median(cs), res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-full", action="store_true")
    ap.add_argument("--full-sample", type=int, default=3, help="layers the full-space exhaustive run times")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    layers = cifar_fbnet_subnet()
    accel = Accelerator(pe_x=16, pe_y=16, act_buf_kb=256, wgt_buf_kb=256, out_buf_kb=256, dataflow="WS",
                        loop_order=("B", "OC", "OH", "OW", "IC"))
    n_rows = sum(space.space_size(l, 1, 1) for l in layers)
    print(f"CIFAR FBNet subnet: {len(layers)} layers; accelerator 16x16 PEs, 256 KB buffers, WS, B>OC>OH>OW>IC; "
          f"torch threads {torch.get_num_threads()}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"[accelerator's dataflow and loop order] {n_rows} candidate tilings")
    t_bt, c_bt, res = time_batchtile(layers, accel, args.repeats)
    t0 = time.perf_counter()
    ref = exhaustive_reference(layers, accel)
    t_ex = time.perf_counter() - t0
    print(f"  (a) BatchTile per iteration (median of {args.repeats}): {t_bt * 1e3:.2f} ms wall, "
          f"{c_bt * 1e3:.2f} ms CPU (all threads)")
    t_best = t_bt
    if args.threads != 1:  # on a shared (oversubscribed) machine one intra-op thread is often faster
        torch.set_num_threads(1)
        t1, c1, _ = time_batchtile(layers, accel, args.repeats)
        torch.set_num_threads(args.threads)
        t_best = min(t_bt, t1)
        print(f"      with 1 torch thread: {t1 * 1e3:.2f} ms wall, {c1 * 1e3:.2f} ms CPU")
    print(f"  (b) exhaustive reference (pure Python, one candidate at a time): {t_ex * 1e3:.1f} ms")
    print(f"  (c) speed-up (exhaustive wall / best BatchTile wall): {t_ex / t_best:.0f}x")
    print(f"  (d) identical tilings and costs: {same(res, ref)}")
    if not args.skip_full:
        n_full = n_rows * 360
        print(f"[full space: 120 loop orders x 3 dataflows] {n_full} candidate tilings")
        torch.set_num_threads(1 if t_best < t_bt else args.threads)  # the faster setting of the first part
        t_full, c_full, res_f = time_batchtile(layers, accel, max(2, args.repeats // 10), loop_orders="all",
                                               dataflows="all")
        print(f"  torch threads {torch.get_num_threads()}")
        # the exhaustive reference over the full space takes hours: time the layers with the fewest candidates
        # and extrapolate per candidate (its cost per candidate hardly depends on the layer)
        idx = sorted(range(len(layers)), key=lambda i: (space.space_size(layers[i], 120, 3), i))[:args.full_sample]
        sample = [layers[i] for i in idx]
        t0 = time.perf_counter()
        ref_f = exhaustive_reference(sample, accel, loop_orders="all", dataflows="all")
        t_s = time.perf_counter() - t0
        rows_s = sum(space.space_size(l, 120, 3) for l in sample)
        t_ex_f = t_s * n_full / rows_s
        print(f"  (a) BatchTile per iteration (median): {t_full * 1e3:.1f} ms wall, {c_full * 1e3:.1f} ms CPU "
              f"(evaluated in chunks of at most {MAX_ROWS_PER_CALL} rows)")
        print(f"  (b) exhaustive reference: {t_s:.2f} s on {len(sample)} layers ({rows_s} candidates), "
              f"extrapolated to all layers: {t_ex_f:.1f} s")
        print(f"  (c) speed-up (extrapolated): {t_ex_f / t_full:.0f}x")
        print(f"  (d) identical tilings and costs on the sampled layers: {same([res_f[i] for i in idx], ref_f)}")
    table2(args)
    return 0


def table2(args) -> None:
    """The paper's Table 2: k5 s1, 7x7 out, 552->552, 8/8 bits on 16x16 PEs with 384 KB buffers."""
    layer = Layer("conv", 552, 552, 7, 7, kernel=5, stride=1, act_bits=8, wgt_bits=8, name="table2")
    accel = Accelerator(pe_x=16, pe_y=16, act_buf_kb=384, wgt_buf_kb=384, out_buf_kb=384, dataflow="WS")
    print("[Table 2 case: conv k5 s1, 7x7 output, 552->552, a8/w8; 16x16 PEs, 384 KB buffers; WS]")
    best = batch_tile([layer], accel, loop_orders="all", dataflows="accel")[0]
    paper = {"best": (3.2, 2.6), "paper best": (3.2, 2.6), "Case 0": (56.6, 8.3), "Case 1": (4.7, 5.1)}
    lo = best.tiling.loop_order
    # Paper rows: (OW/ow, OH/oh, IC/ic, OC/oc). Case 0: ow=4, oh=4, ic=2, oc=512; Case 1: ow=2, oh=2, ic=32, oc=128.
    # "paper best": the paper's optimal tile sizes (ic=oc=16, oh=ow=1) evaluated in our model
    cases = {"paper best": Tiling(16, 16, 1, 1, lo), "Case 0": Tiling(2, 512, 4, 4, lo),
             "Case 1": Tiling(32, 128, 2, 2, lo)}
    ev = evaluate_tilings([layer] * len(cases), accel, list(cases.values()))
    print(f"  {'tiling':<8} {'t_ic':>5} {'t_oc':>5} {'t_oh':>5} {'t_ow':>5}  {'loop order':<16} {'legal':>5} "
          f"{'lat ms':>8} {'E mJ':>8}   paper lat ms / E mJ")
    rows = [("best", best)] + list(zip(cases, ev))
    for name, ch in rows:
        t, c = ch.tiling, ch.cost
        print(f"  {name:<8} {t.t_ic:>5} {t.t_oc:>5} {t.t_oh:>5} {t.t_ow:>5}  {'>'.join(t.loop_order):<16} "
              f"{str(c.legal):>5} {c.latency_ms:>8.3f} {c.energy_total_pj * 1e-9:>8.3f}   "
              f"{paper[name][0]} / {paper[name][1]}")
    print("  notes: 'best' is BatchTile's choice over all 120 loop orders (objective 0.33 E[mJ] + 0.33 L[ms] + "
          "0.33 A[mm2]); the paper's best tiling (ic=oc=16, oh=ow=1) is the optimum of a different model (its "
          "estimator follows Choi et al. 2021). The paper's Case 0/1 tile sizes all lie within the layer's "
          "dimensions (oc=512 <= 552), so no clamping was needed; the three fixed tilings use the best tiling's "
          "loop order.")


if __name__ == "__main__":
    raise SystemExit(main())
