"""Peak memory and time of one supernet search step: float vs full multi-bit quantization vs CSQ (paper Fig. 4,
"Channel-wise Sparse Quantization").

    python benchmarks/bench_csq_memory.py [--space cifar] [--batch 8] [--k 3] [--repeats 2] [--device cpu|cuda]

One search iteration has two steps (paper, "The Overall Joint Pipeline"): a *weight step* (forward + backward,
gradients to the supernet weights; alpha/beta frozen) and an *arch step* (forward + backward, gradients to
alpha/beta; weights frozen). Both use the soft Gumbel mixture over all 9 ops and all bit candidates (Eq. 5).
Modes: ``float`` (no quantization: the plain DNAS supernet), ``full`` (every activation channel quantized at
every bit candidate, Eq. 5), ``csq`` (Eq. 6, top-K% channels; the default implementation that adds the conv of
the quantization difference on the selected channels), ``csq-scatter`` (CSQ that scatters the quantized
channels into a copy of the input, the literal Eq. 6), ``channel0``, ``hetero`` (Auto-NBA-style sampling).

Memory measure: the step's peak of *allocated bytes above what was resident before the step* (parameters,
inputs, buffers excluded).
* CPU: torch.profiler with ``profile_memory=True`` records every allocation and free of the c10 CPU allocator
  (the "[memory]" events, with their byte counts and time stamps); the peak of their running sum is the step's
  peak. This is an allocator measure, not RSS (glibc keeps freed pages, RSS would mislead).
* CUDA: ``torch.cuda.max_memory_allocated()`` after ``reset_peak_memory_stats()``, minus the memory allocated
  before the step.
Step time is measured separately, without the profiler (median of ``--repeats`` runs, after a warm-up run).
On a shared CPU, use ``--threads 1``: OpenMP threads spinning on an oversubscribed machine distort times badly.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
import torch.nn.functional as F

from jaq.nn.ops import QConv2d
from jaq.nn.space import preset
from jaq.nn.supernet import Supernet

MODES = ("float", "full", "csq", "csq-scatter", "channel0", "hetero")


def configure(net: Supernet, mode: str) -> None:
    net.mode = {"float": "none", "csq-scatter": "csq"}.get(mode, mode)
    for m in net.modules():
        if isinstance(m, QConv2d):
            m.materialize = mode == "csq-scatter"


def step(net: Supernet, x: torch.Tensor, y: torch.Tensor, which: str) -> None:
    arch = which == "arch"
    for p in net.arch_parameters():
        p.requires_grad_(arch)
        p.grad = None
    for p in net.weight_parameters():
        p.requires_grad_(not arch)
        p.grad = None
    loss = F.cross_entropy(net(x), y)
    loss.backward()


def peak_cpu(fn) -> int:
    """Peak bytes allocated above the starting point while ``fn`` runs (torch.profiler memory events)."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = [e for e in prof.profiler.kineto_results.events()
              if e.name() == "[memory]" and str(e.device_type()).endswith("CPU")]
    events.sort(key=lambda e: e.start_ns())
    run = peak = 0
    for e in events:
        run += e.nbytes()
        peak = max(peak, run)
    return peak


def peak_cuda(fn) -> int:
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - base


def timed(fn, device: str, repeats: int) -> float:
    """Median wall time of ``repeats`` runs (the caller has already warmed up)."""
    ts = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--space", default="cifar")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--k", type=float, default=3.0, help="CSQ K (percent)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--modes", default="float,full,csq,csq-scatter")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave)")
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    modes = [m.strip() for m in a.modes.split(",") if m.strip()]
    for m in modes:
        if m not in MODES:
            ap.error(f"unknown mode {m}; use {', '.join(MODES)}")
    torch.manual_seed(0)
    space = preset(a.space, csq={"k_percent": a.k})
    dev = torch.device(a.device)
    net = Supernet(space).to(dev).train()
    x = torch.randn(a.batch, space.in_channels, space.input_size, space.input_size, device=dev)
    y = torch.randint(0, space.num_classes, (a.batch,), device=dev)
    measure = peak_cuda if a.device == "cuda" else peak_cpu
    how = ("torch.cuda.max_memory_allocated" if a.device == "cuda"
           else "torch.profiler profile_memory (CPU allocator events)")
    nparam = sum(p.numel() for p in net.parameters())
    print(f"space={a.space} batch={a.batch} K={a.k}% blocks={space.num_blocks} ops={len(space.ops)} "
          f"bits={list(space.bits)} params={nparam / 1e6:.2f}M device={a.device} threads={torch.get_num_threads()}")
    print(f"memory: peak bytes allocated above resident during the step, measured with {how}")
    res = {}
    for m in modes:
        configure(net, m)
        r = {}
        for which in ("weight", "arch"):
            torch.manual_seed(1)
            fn = (lambda w=which: step(net, x, y, w))
            fn()  # warm-up (range trackers initialised, allocator caches)
            r[f"{which}_mb"] = measure(fn) / 2 ** 20
            r[f"{which}_s"] = timed(fn, a.device, a.repeats)
        res[m] = r
        print(f"  {m:12s} weight step: {r['weight_mb']:9.1f} MB {r['weight_s']:7.2f} s   "
              f"arch step: {r['arch_mb']:9.1f} MB {r['arch_s']:7.2f} s", flush=True)
    if "float" in res:
        f = res["float"]
        print("ratios (vs float; quantization-attributable part = peak - float peak):")
        for m, r in res.items():
            if m == "float":
                continue
            parts = []
            for which in ("weight", "arch"):
                parts.append(f"{which}: peak x{r[f'{which}_mb'] / f[f'{which}_mb']:.2f}, "
                             f"time x{r[f'{which}_s'] / f[f'{which}_s']:.2f}, "
                             f"quant part {r[f'{which}_mb'] - f[f'{which}_mb']:.1f} MB")
            print(f"  {m:12s} " + " | ".join(parts))
        if "full" in res:
            for m in ("csq", "csq-scatter", "channel0"):
                if m in res:
                    for which in ("weight", "arch"):
                        qf = res["full"][f"{which}_mb"] - f[f"{which}_mb"]
                        qc = res[m][f"{which}_mb"] - f[f"{which}_mb"]
                        ratio = qf / qc if qc > 0 else float("inf")
                        print(f"  full / {m} quantization-attributable memory, {which} step: "
                              f"{qf:.1f} / {qc:.1f} MB = x{ratio:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
