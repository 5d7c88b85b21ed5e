"""Short co-search + retrain on the real CIFAR-10 JPEGs (../shared/datasets/cifar10-jpeg), on the CPU.

This is a *smoke-scale* run, not the paper's experiment: a subset of the images (default 2,000 train / 1,000
test), a few search epochs capped at a few steps each and a short retrain, so that it finishes in minutes on a
small CPU machine. It exercises the whole path on real data (JPEG archives -> extraction + decode cache ->
FBNet-CIFAR supernet with CSQ -> hardware generator + BatchTile -> accel.json -> QAT retrain -> integer export)
and prints: test accuracy, EDAP of the derived design, time per search epoch, and the hardware-search time per
iteration (generator + BatchTile + cost model; the paper reports < 0.15 s for BatchTile on a GPU).

Usage:
    python benchmarks/bench_cifar10.py [--data DIR] [--out DIR] [--train N] [--test N] [--epochs E]
                                       [--steps S] [--retrain-epochs R] [--space cifar|small] [--threads T]
    python benchmarks/bench_cifar10.py --speed [--config configs/cifar10-cpu.yaml] [--threads T] [--steps S]
        throughput only: images/s of the batch pipeline (gather + crop/flip + normalise), of a search step
        (weights step + architecture step + hardware step) and of a retrain step, the hardware step's median,
        and a torch.profiler table of where a retrain step and a search step spend their time

Skips (exit 0, with a message) when the data folder is absent.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "datasets" / "cifar10-jpeg"

#: A reduced FBNet-CIFAR space for quick CPU runs (same ops and bits, 7 blocks, narrower head).
SMALL_SPACE = {
    "preset": "cifar", "name": "cifar-small", "stem": {"channels": 16, "stride": 1},
    "stages": [{"channels": 16, "blocks": 1, "stride": 1}, {"channels": 24, "blocks": 2, "stride": 2},
               {"channels": 32, "blocks": 2, "stride": 2}, {"channels": 64, "blocks": 2, "stride": 2}],
    "head_channels": 256, "csq": {"mode": "csq", "k_percent": 3.0}, "gumbel": {"tau0": 5.0, "decay": 0.7},
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--out", default=str(ROOT / "runs" / "bench_cifar10"))
    ap.add_argument("--train", type=int, default=2000, help="training images used (subset)")
    ap.add_argument("--test", type=int, default=1000, help="test images used (subset)")
    ap.add_argument("--epochs", type=int, default=2, help="search epochs")
    ap.add_argument("--steps", type=int, default=8, help="max steps per search epoch")
    ap.add_argument("--retrain-epochs", type=int, default=6)
    ap.add_argument("--retrain-lr", type=float, default=0.01, help="paper: 0.01, cosine")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--space", choices=("cifar", "small"), default="small",
                    help="cifar: the full 22-block FBNet-CIFAR space; small: 7 blocks (default, CPU-friendly)")
    ap.add_argument("--lambda", dest="lam", type=float, default=0.5)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--speed", action="store_true", help="measure throughput and profile (no accuracy run)")
    ap.add_argument("--config", default=str(ROOT / "configs" / "cifar10-cpu.yaml"), help="with --speed")
    a = ap.parse_args(argv)

    data = Path(a.data)
    if not (data / "train.tar.gz").is_file() or not (data / "test.tar.gz").is_file():
        print(f"SKIP: CIFAR-10 JPEG archives not found in {data} (expected train.tar.gz + test.tar.gz; "
              f"pass --data DIR)")
        return 0

    if a.speed:
        return speed(a, data)
    from jaq.search.config import validate_config
    from jaq.search.cosearch import run_cosearch
    from jaq.search.retrain import run_retrain

    cfg = validate_config({
        "name": "bench_cifar10", "seed": 0, "threads": a.threads,
        "data": {"dataset": "cifar10", "root": str(data), "train_subset": a.train, "test_subset": a.test,
                 "augment": True},
        "space": {"preset": "cifar", "num_classes": 10} if a.space == "cifar" else dict(SMALL_SPACE),
        "search": {"epochs": a.epochs, "batch_size": a.batch, "max_steps_per_epoch": a.steps, "lambda": a.lam,
                   "arch_lr": 0.05, "hw_lr": 0.05},
        "retrain": {"epochs": a.retrain_epochs, "batch_size": 64, "lr": a.retrain_lr},
    }, "benchmark")
    out = Path(a.out)
    if out.exists():
        shutil.rmtree(out)
    print(f"CIFAR-10 JPEG benchmark (CPU, subset: {a.train} train / {a.test} test images, {a.epochs} search "
          f"epochs x <= {a.steps} steps, {a.retrain_epochs} retrain epochs, space {a.space}); not the paper's "
          f"full-scale run")
    t0 = time.perf_counter()
    from jaq.data import load_data
    load_data(cfg["data"], seed=0)  # extract + decode once (cached for later runs)
    t_data = time.perf_counter() - t0
    t1 = time.perf_counter()
    res = run_cosearch(cfg, out, device=a.device, quiet=not sys.stderr.isatty())
    t_search = time.perf_counter() - t1
    metrics = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()
     if json.loads(x)["kind"] == "epoch"]
    t2 = time.perf_counter()
    r = run_retrain(out, device=a.device, quiet=not sys.stderr.isatty())
    t_retrain = time.perf_counter() - t2
    spec = res["accel"]
    acc = spec.accelerator
    print(f"data load (first run: extract + decode, later: cache): {t_data:.1f} s")
    print(f"search: {t_search:.1f} s total, {sum(m['epoch_s'] for m in metrics) / len(metrics):.2f} s per epoch "
          f"({metrics[0]['steps']} steps), hardware search "
          f"{sum(m['hw_search_s_per_iter'] for m in metrics) / len(metrics):.3f} s per iteration "
          f"(of which BatchTile {sum(m['batchtile_s_per_iter'] for m in metrics) / len(metrics):.3f} s)")
    print(f"retrain: {t_retrain:.1f} s; test accuracy {100 * r['test_acc']:.2f}% (integer model "
          f"{100 * r['integer_test_acc']:.2f}%) on {a.test} test images")
    print(f"derived: {spec.network.name}")
    print(f"accelerator: {acc.pe_x}x{acc.pe_y} PEs, act/wgt/out {acc.act_buf_kb}/{acc.wgt_buf_kb}/{acc.out_buf_kb} KB, "
          f"{acc.dataflow}; latency {spec.totals.latency_ms:.4g} ms, energy {spec.totals.energy_mj:.4g} mJ, "
          f"area {spec.totals.area_mm2:.4g} mm^2, EDAP {spec.totals.edap:.4g} J*s*mm^2")
    return 0


def _profile_table(fn, rows: int = 12) -> str:
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)


def speed(a, data: Path) -> int:
    """Throughput of the data path, a search step and a retrain step on ``a.config`` (see module docstring)."""
    import statistics

    import torch
    import torch.nn.functional as F

    from jaq.data import load_data
    from jaq.search.config import load_config
    from jaq.search.cosearch import CoSearch, cpu_threads
    cfg = load_config(a.config)
    cfg["data"]["root"] = str(data)
    if a.threads:
        cfg["threads"] = a.threads
    steps = max(2, a.steps)
    out = Path(a.out) / "speed"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    with cpu_threads(cfg["threads"]):
        t0 = time.perf_counter()
        b = load_data(cfg["data"], seed=0)
        print(f"data: {len(b.train)} train / {len(b.test)} test images in memory (uint8) in "
              f"{time.perf_counter() - t0:.1f} s; threads {torch.get_num_threads()}")
        g = torch.Generator().manual_seed(0)
        t0, n = time.perf_counter(), 0
        for x, _ in b.train.batches(cfg["retrain"]["batch_size"], shuffle=True, generator=g, max_steps=50):
            n += len(x)
        print(f"batch pipeline (gather + crop/flip{' + cutout' if cfg['data']['cutout'] else ''} + normalise): "
              f"{n / (time.perf_counter() - t0):.0f} images/s")
        cfg["search"].update(epochs=2, warmup_epochs=0, max_steps_per_epoch=steps)
        cs = CoSearch(cfg, out, device=a.device, quiet=True)
        with torch.no_grad():
            cs.hw.calibrate(__import__("jaq.search.model_api", fromlist=["x"]).candidate_rows(cs.net))
        rec = cs.train_epoch()
        n_img = rec["steps"] * cfg["search"]["batch_size"]
        print(f"search step (weights {cfg['search']['batch_size']} + arch images, hardware step): "
              f"{rec['epoch_s'] / rec['steps']:.2f} s/step, {n_img / rec['epoch_s']:.1f} weight-step images/s; "
              f"hardware step median {rec['hw_search_s_median']:.3f} s (p90 {rec['hw_search_s_p90']:.3f} s, "
              f"BatchTile misses {rec['batchtile_miss_iters']}/{rec['steps']})")
        net = cs.net.build_subnet()
        if cfg["data"].get("channels_last"):
            net = net.to(memory_format=torch.channels_last)
        opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
        bs = cfg["retrain"]["batch_size"]
        batches = list(b.train.batches(bs, shuffle=True, generator=g, max_steps=steps + 1))

        def rstep(xy):
            out_ = net(xy[0])
            loss = F.cross_entropy(out_, xy[1])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        rstep(batches[0])
        ts = []
        for xy in batches[1:]:
            t = time.perf_counter()
            rstep(xy)
            ts.append(time.perf_counter() - t)
        med = statistics.median(ts)
        print(f"retrain step (derived subnet, batch {bs}): {med:.2f} s/step, {bs / med:.1f} images/s")
        print("profile of one retrain step:\n" + _profile_table(lambda: rstep(batches[1])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
