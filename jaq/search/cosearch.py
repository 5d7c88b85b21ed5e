"""The JAQ co-search: bilevel DNAS over network, bits and accelerator (paper, "The Overall Joint Pipeline").

Each iteration has two steps (paper):

1. **Weights.** A batch from the weights part of the training split (80 %) updates the supernet weights ``w``
   with cross-entropy (SGD with momentum, cosine-annealed from ``search.lr`` = 0.01).
2. **Architecture + accelerator.** A batch from the architecture part (20 %) gives the cross-entropy; the current
   optimal subnet (argmax of alpha/beta) is encoded and sent through the hardware generator, BatchTile picks the
   tilings for the generated (argmax) accelerator, and the cost model evaluates Eq. 9 with the soft tensors.
   Loss Eq. 4: ``CE + lambda * E_HW``; one backward pass updates alpha, beta (Adam, as usual in DNAS: DARTS,
   FBNet) and the generator (Adam), both cosine-annealed like the weights.

Gumbel-softmax temperatures follow the space's schedule (``space.gumbel``: tau0 = 5 by default, paper).

Determinism and resume: everything random in epoch ``e`` (data order, augmentation, Gumbel noise, CSQ) is drawn
from generators seeded by ``(seed, e, rank)`` at the start of the epoch, and the checkpoint written at the end of
every epoch holds the complete state (model, generator, optimizers, schedulers, HW-cost references, RNG states,
histories, metrics). A run killed anywhere and resumed with ``--resume`` redoes the interrupted epoch from the
last checkpoint and ends bit-identical to an uninterrupted run with the same seed.

Scaling out: under ``torchrun --nproc_per_node=N`` (env ``WORLD_SIZE`` > 1) the supernet and the generator are
wrapped in ``torch.nn.parallel.DistributedDataParallel`` (gloo on CPU, NCCL on CUDA); every rank reads its own
shard of each batch stream, gradients are averaged by DDP, rank 0 writes the run directory.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
import warnings
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import jaq
from jaq.errors import JaqError
from jaq.search import model_api as api
from jaq.search.hwcost import HWCost
from jaq.search.hwgen import FIXED_FIELDS, HWGenerator, draw_noise, encode_layers, sample_heads
from jaq.search.rundir import (ACCEL, load_checkpoint, prepare_run_dir, read_config, save_checkpoint,
                               write_config, write_metrics)


# ---------------------------------------------------------------------------------------------------------------
# Distributed helpers
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    def barrier(self) -> None:
        if self.enabled:
            torch.distributed.barrier()


def init_dist(device: str) -> Dist:
    """Join the process group when launched by torchrun (``WORLD_SIZE`` > 1); gloo on CPU, NCCL on CUDA."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch.distributed as td
    if not td.is_initialized():
        td.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
    d = Dist(td.get_rank(), td.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    return d


def resolve_device(device: str | None, dist: Dist | None = None) -> str:
    if device in (None, "auto"):
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise JaqError("CUDA is not available on this machine; use --device cpu", "--device")
        if dist is not None and dist.enabled and device == "cuda":
            device = f"cuda:{dist.local_rank}"
            torch.cuda.set_device(device)
    elif device != "cpu":
        raise JaqError(f"unknown device {device!r}; use cpu or cuda", "--device")
    return device


def _seed_epoch(seed: int, epoch: int, rank: int, stream: int = 0) -> int:
    return (seed * 1_000_003 + epoch * 7919 + rank * 104_729 + stream * 15_485_863) % (2 ** 63 - 1)


def _rng_state() -> dict:
    """Every RNG's state as tensors and plain data (loadable with ``torch.load(weights_only=True)``)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    st = {"torch": torch.get_rng_state(),
          "numpy": {"name": str(name), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                    "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
          "python": random.getstate()}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def _numpy_state(d) -> tuple:
    """np.random.set_state's tuple from :func:`_rng_state`'s dict (or an older checkpoint's tuple as is)."""
    if not isinstance(d, dict):
        return d
    keys = np.asarray(d["keys"].numpy() if isinstance(d["keys"], torch.Tensor) else d["keys"], dtype=np.uint32)
    return d["name"], keys, int(d["pos"]), int(d["has_gauss"]), float(d["cached_gaussian"])


def _set_rng_state(st: dict) -> None:
    torch.set_rng_state(st["torch"])
    np.random.set_state(_numpy_state(st["numpy"]))
    random.setstate(st["python"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


def _unwrap(m: nn.Module) -> nn.Module:
    return m.module if hasattr(m, "module") and isinstance(m, nn.parallel.DistributedDataParallel) else m


def code_version() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        rev = ""
    return f"jaq {jaq.__version__}" + (f" (git {rev})" if rev else "")


# ---------------------------------------------------------------------------------------------------------------
# The search
# ---------------------------------------------------------------------------------------------------------------
class CoSearch:
    """One co-search run. ``cfg``: a resolved config (:func:`jaq.search.config.validate_config`)."""

    def __init__(self, cfg: dict, run_dir: str | Path, *, device: str | None = "cpu", quiet: bool = False,
                 stop_after_epoch: int | None = None, cfg_path: str | None = None):
        self.cfg = cfg
        self.cfg_path = cfg_path
        self.run = Path(run_dir)
        self.quiet = quiet
        self.stop_after_epoch = stop_after_epoch  # tests: simulate a kill after this many epochs
        self.dist = init_dist(device or "cpu")
        self.device = resolve_device(device, self.dist)
        s = cfg["search"]
        from jaq.data import load_data
        torch.manual_seed(cfg["seed"])
        self.data = load_data(cfg["data"], seed=cfg["seed"])
        self.w_src, self.a_src = self.data.split_train(cfg["data"]["arch_fraction"], cfg["seed"])
        if self.device.startswith("cuda") and hasattr(self.w_src, "to"):  # uint8 images resident on the GPU
            self.w_src, self.a_src = self.w_src.to(self.device), self.a_src.to(self.device)
        self.precision = cfg.get("precision", "auto")
        self.space = api.make_space(cfg["space"], self.data)
        self.net = api.make_supernet(self.space).to(self.device)
        self.net.sampling = s.get("sampling", "soft")
        self.net.sample_blocks = s.get("sample_blocks")
        prior = float(s.get("path_prior") or 0.0)
        if prior:  # the held warm-up path (first op, lowest bits) starts ahead by `prior` logits, not by a tie
            with torch.no_grad():
                self.net.alpha[:, 0] += prior
                self.net.beta_act[..., 0] += prior
                self.net.beta_wgt[..., 0] += prior
        self.channels_last = bool(cfg["data"].get("channels_last", False))
        if self.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        self.hw_threads = cfg["hardware"].get("threads")
        self.resample_every = int(cfg["hardware"].get("resample_every", 1))
        self._hw_noise = None
        self.gen = HWGenerator(cfg["hardware"]["generator_hidden"], cfg["hardware"]["generator_blocks"]).to(
            self.device)
        self.fixed = {k: cfg["hardware"][k] for k in FIXED_FIELDS}
        self.fixed["clock_mhz"] = float(self.fixed["clock_mhz"])
        self.hw = HWCost((s["lambda_e"], s["lambda_l"], s["lambda_a"]), self.fixed,
                         cfg["hardware"]["loop_order_candidates"],
                         candidate_tiling=cfg["hardware"]["candidate_tiling"])
        self.lam = float(s["lambda"])
        arch = api.arch_parameters(self.net)
        arch_ids = {id(p) for p in arch}
        weights = [p for p in self.net.parameters() if id(p) not in arch_ids]
        self.w_opt = torch.optim.SGD(weights, lr=s["lr"], momentum=s["momentum"], weight_decay=s["weight_decay"],
                                     nesterov=False)
        self.a_opt = torch.optim.Adam(arch, lr=s["arch_lr"], betas=(0.5, 0.999), weight_decay=s["arch_weight_decay"])
        self.g_opt = torch.optim.Adam(self.gen.parameters(), lr=s["hw_lr"], betas=(0.5, 0.999))
        E = s["epochs"]
        self.scheds = [torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=E) for o in
                       (self.w_opt, self.a_opt, self.g_opt)]
        self.epoch = 0
        self.metrics: list[dict] = []
        self.history: list[dict] = []
        self.net_ddp: nn.Module = self.net
        self.gen_ddp: nn.Module = self.gen
        if self.dist.enabled:
            dev_ids = [self.device] if self.device.startswith("cuda") else None
            # soft sampling computes every candidate (no unused parameters); hard sampling skips some
            unused = getattr(self.net, "sampling", "soft") != "soft" or \
                s.get("warmup_sampling") not in (None, "soft")
            self.net_ddp = nn.parallel.DistributedDataParallel(self.net, device_ids=dev_ids,
                                                               find_unused_parameters=unused)
            self.gen_ddp = nn.parallel.DistributedDataParallel(self.gen, device_ids=dev_ids)

    # -- state -------------------------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "net": self.net.state_dict(), "gen": self.gen.state_dict(),
                "w_opt": self.w_opt.state_dict(), "a_opt": self.a_opt.state_dict(), "g_opt": self.g_opt.state_dict(),
                "scheds": [sc.state_dict() for sc in self.scheds], "hw": self.hw.state_dict(),
                "metrics": self.metrics, "history": self.history, "rng": _rng_state(), "config": self.cfg,
                "version": code_version()}

    def load_state(self, st: dict[str, Any]) -> None:
        self.net.load_state_dict(st["net"])
        self.gen.load_state_dict(st["gen"])
        self.w_opt.load_state_dict(st["w_opt"])
        self.a_opt.load_state_dict(st["a_opt"])
        self.g_opt.load_state_dict(st["g_opt"])
        for sc, d in zip(self.scheds, st["scheds"]):
            sc.load_state_dict(d)
        self.hw.load_state_dict(st["hw"])
        self.metrics, self.history = list(st["metrics"]), list(st["history"])
        self.epoch = int(st["epoch"])
        _set_rng_state(st["rng"])

    # -- one epoch ---------------------------------------------------------------------------------------------
    def _arch_batches(self, gen: torch.Generator, bs: int):
        """Endless stream over the architecture split (reshuffled on every pass)."""
        while True:
            yield from self.a_src.batches(bs, shuffle=True, generator=gen, rank=self.dist.rank,
                                          world=self.dist.world, device=self.device)

    def hw_step(self, tau: float, sample: bool = True, step: int = 0):
        """Candidate rows + argmax subnet -> generator -> HW cost (differentiable).

        The generator's Gumbel noise is drawn anew every ``hardware.resample_every`` steps (1: every step) and
        held in between, so the sampled accelerator, and with it BatchTile's cached tilings, can repeat.
        Runs with ``hardware.threads`` torch threads (small tensors: one thread avoids OpenMP overhead)."""
        with cpu_threads(self.hw_threads):
            rows = api.candidate_rows(self.net)
            subnet = api.derive_layers(self.net)
            feats = encode_layers(subnet).to(self.device)
            logits = self.gen_ddp(feats)
            noise = None
            if sample and self.resample_every > 1:
                if self._hw_noise is None or step % self.resample_every == 0:
                    self._hw_noise = draw_noise(logits)
                noise = self._hw_noise
            smp = sample_heads(logits, tau, sample=sample, noise=noise)
            return self.hw(rows, subnet, smp), smp

    def train_epoch(self, progress=None, task=None) -> dict:
        cfg, s = self.cfg, self.cfg["search"]
        e, rank = self.epoch, self.dist.rank
        torch.manual_seed(_seed_epoch(cfg["seed"], e, rank, 0))
        g_w = torch.Generator().manual_seed(_seed_epoch(cfg["seed"], e, rank, 1))
        g_a = torch.Generator().manual_seed(_seed_epoch(cfg["seed"], e, rank, 2))
        tau = api.set_tau(self.net, e)
        bs = s["batch_size"] // self.dist.world if self.dist.enabled else s["batch_size"]
        bs = max(1, bs)
        af = cfg["data"]["arch_fraction"]
        bs_a = max(1, int(round(bs * af / (1 - af))))  # same number of steps over both splits
        search_arch = e >= s["warmup_epochs"]
        # warm-up on one held path (warmup_sampling: argmax) before hard sampling: a single-path supernet sampled
        # uniformly from scratch did not learn in this budget (issue 17; docs/results.md)
        self.net.sampling = (s.get("warmup_sampling") or s.get("sampling", "soft")) if not search_arch \
            else s.get("sampling", "soft")
        self.net_ddp.train()
        self.gen_ddp.train()
        arch_it = self._arch_batches(g_a, bs_a)
        n_steps = self.w_src.num_batches(bs, self.dist.world, s["max_steps_per_epoch"])
        stats = {"ce_w": 0.0, "acc_w": 0.0, "ce_a": 0.0, "acc_a": 0.0, "hw": 0.0, "n_w": 0, "n_a": 0, "steps": 0,
                 "hw_s": 0.0, "bt_s": 0.0, "bt_layers": 0, "E": 0.0, "L": 0.0, "A": 0.0}
        t_epoch = time.perf_counter()
        last = None
        hw_times: list[float] = []
        bt_misses = 0
        self._hw_noise = None
        for x, y in self.w_src.batches(bs, shuffle=True, generator=g_w, rank=rank, world=self.dist.world,
                                       max_steps=s["max_steps_per_epoch"], device=self.device):
            # step 1: supernet weights
            self.w_opt.zero_grad(set_to_none=True)
            self.a_opt.zero_grad(set_to_none=True)
            with train_autocast(self.precision, self.device):
                out = self.net_ddp(x)
                loss = F.cross_entropy(out.float(), y)
            loss.backward()
            if s["grad_clip"]:
                nn.utils.clip_grad_norm_(self.w_opt.param_groups[0]["params"], s["grad_clip"])
            self.w_opt.step()
            stats["ce_w"] += float(loss.detach()) * len(y)
            stats["acc_w"] += float((out.argmax(1) == y).sum())
            stats["n_w"] += len(y)
            # step 2: alpha, beta and the hardware generator (Eq. 4)
            xa, ya = next(arch_it)
            self.w_opt.zero_grad(set_to_none=True)
            self.a_opt.zero_grad(set_to_none=True)
            self.g_opt.zero_grad(set_to_none=True)
            # warm-up: CE and cost are logged, not learned (no graph; DDP needs a backward after a grad forward)
            with nullcontext() if search_arch else torch.no_grad():
                with train_autocast(self.precision, self.device):
                    out = self.net_ddp(xa)
                    ce = F.cross_entropy(out.float(), ya)
                t0 = time.perf_counter()
                hwres, smp = self.hw_step(tau, step=stats["steps"])
                hw_times.append(time.perf_counter() - t0)
                stats["hw_s"] += hw_times[-1]
            total = ce + self.lam * hwres.loss.to(device=ce.device, dtype=ce.dtype)
            if search_arch:
                total.backward()
                self.a_opt.step()
                self.g_opt.step()
            stats["bt_s"] += hwres.batchtile_s
            stats["bt_layers"] += hwres.batchtile_layers
            bt_misses += hwres.batchtile_layers > 0
            stats["ce_a"] += float(ce.detach()) * len(ya)
            stats["acc_a"] += float((out.argmax(1) == ya).sum())
            stats["n_a"] += len(ya)
            stats["hw"] += float(hwres.loss.detach())
            for k in ("E", "L", "A"):
                stats[k] += hwres.terms[k]
            stats["steps"] += 1
            last = hwres
            le = s["log_every_steps"]
            if le and stats["steps"] % le == 0:
                self.metrics.append({"kind": "step", "epoch": e + 1, "step": stats["steps"],
                                     "ce": float(ce.detach()), "hw_cost": float(hwres.loss.detach()),
                                     "arch_acc_running": stats["acc_a"] / max(1, stats["n_a"]),
                                     "hw_search_s": time.perf_counter() - t0,
                                     "accelerator": hwres.accelerator.to_dict()})
            if progress is not None:
                progress.update(task, advance=1, acc=100 * stats["acc_a"] / max(1, stats["n_a"]),
                                cost=stats["hw"] / stats["steps"])
        lr_used = self.w_opt.param_groups[0]["lr"]
        with warnings.catch_warnings():  # during warm-up the arch/generator optimizers have not stepped yet
            warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step")
            for sc in self.scheds:
                sc.step()
        n = max(1, stats["steps"])
        rec = {"kind": "epoch", "epoch": e + 1, "tau": tau, "lr": lr_used,
               "train_ce": stats["ce_w"] / max(1, stats["n_w"]), "train_acc": stats["acc_w"] / max(1, stats["n_w"]),
               "arch_ce": stats["ce_a"] / max(1, stats["n_a"]), "arch_acc": stats["acc_a"] / max(1, stats["n_a"]),
               "hw_cost": stats["hw"] / n, "hw_E": stats["E"] / n, "hw_L": stats["L"] / n, "hw_A": stats["A"] / n,
               "searched_arch": search_arch, "steps": stats["steps"],
               "epoch_s": time.perf_counter() - t_epoch, "hw_search_s_per_iter": stats["hw_s"] / n,
               "batchtile_s_per_iter": stats["bt_s"] / n, "batchtile_layers": stats["bt_layers"],
               **_time_stats("hw_search_s", hw_times), "batchtile_miss_iters": bt_misses,
               "accelerator": last.accelerator.to_dict() if last else None}
        rec.update(self.snapshot())
        return rec

    @torch.no_grad()
    def snapshot(self) -> dict:
        """The current derived choice: argmax subnet bits, argmax accelerator and its EDAP (no noise)."""
        tau = float(self.space.tau(self.epoch))
        subnet = api.derive_layers(self.net)
        acc = self.current_accelerator(subnet, tau)
        choices = self.hw.final(subnet, acc)
        tot = totals(choices, acc)
        self.history.append({"epoch": self.epoch + 1, "alpha": api.alpha_probs(self.net),
                             "beta": api.beta_probs(self.net),
                             "bits": [[l.act_bits, l.wgt_bits] for l in subnet],
                             "layer_names": [l.name for l in subnet],
                             "latency_ms": [float(c.cost.latency_ms) for c in choices],
                             "energy_pj": [float(c.cost.energy_total_pj) for c in choices],
                             "accelerator": acc.to_dict(), "totals": tot})
        return {"derived": {"bits": [[l.act_bits, l.wgt_bits] for l in subnet], "accelerator": acc.to_dict(),
                            **{f"final_{k}": v for k, v in tot.items()}}}

    @torch.no_grad()
    def current_accelerator(self, subnet, tau: float):
        self.gen.eval()
        smp = sample_heads(self.gen(encode_layers(subnet).to(self.device)), tau, sample=False)
        self.gen.train()
        return smp.accelerator(self.fixed)

    @torch.no_grad()
    def evaluate_supernet(self, src) -> float:
        """Accuracy of the current derived subnet inside the supernet (argmax ops and bits, no noise).

        Batch-norm and activation-range statistics are recalibrated on each evaluation batch (train-mode
        statistics; the supernet's running statistics belong to the op mixture, not to one path) and
        restored afterwards, so the evaluation leaves the model untouched."""
        saved = {k: v.clone() for k, v in self.net.named_buffers()}
        old = getattr(self.net, "sampling", None)
        if old is not None:
            self.net.sampling = "argmax"
        self.net.train()
        correct = n = 0
        try:
            for x, y in src.batches(256, shuffle=False, device=self.device):
                correct += int((self.net(x).argmax(1) == y).sum())
                n += len(y)
        finally:
            if old is not None:
                self.net.sampling = old
            self.net.load_state_dict(saved, strict=False)
        return correct / max(1, n)

    # -- the whole run ------------------------------------------------------------------------------------------
    def fit(self) -> dict:
        s = self.cfg["search"]
        if self.hw.refs is None:
            with torch.no_grad():
                self.hw.calibrate(api.candidate_rows(self.net))
        show = self.dist.main and not self.quiet
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)
        prog = Progress(TextColumn("[bold]epoch {task.fields[ep]}/{task.fields[of]}"), BarColumn(),
                        MofNCompleteColumn(), TextColumn("acc {task.fields[acc]:5.1f}%  E_HW {task.fields[cost]:.3f}"),
                        TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), disable=not show,
                        transient=False)
        with prog if show else nullcontext():
            while self.epoch < s["epochs"]:
                n_steps = self.w_src.num_batches(max(1, s["batch_size"] // self.dist.world), self.dist.world,
                                                 s["max_steps_per_epoch"])
                task = prog.add_task("search", total=n_steps, ep=self.epoch + 1, of=s["epochs"], acc=0.0, cost=0.0)
                rec = self.train_epoch(prog, task)
                self.epoch += 1
                self.metrics.append(rec)
                if self.dist.main:
                    save_checkpoint(self.run, self.state())
                    write_metrics(self.run, self.metrics)
                self.dist.barrier()
                if self.stop_after_epoch is not None and self.epoch >= self.stop_after_epoch \
                        and self.epoch < s["epochs"]:
                    return {"stopped_at_epoch": self.epoch}
        return self.finish()

    def finish(self) -> dict:
        """Derive the final subnet + accelerator, write accel.json and the plots (rank 0)."""
        from jaq.search import artifact, plots
        tau = float(self.space.tau(self.epoch))
        subnet = api.derive_layers(self.net)
        acc = self.current_accelerator(subnet, tau)
        choices = self.hw.final(subnet, acc)
        arch_acc = self.evaluate_supernet(self.a_src)
        doc = None
        if self.dist.main:
            extra = {"resolved_config": self.cfg, "hw_cost_refs": self.hw.refs, "lambda": self.lam,
                     "lambdas_ELA": list(self.hw.lambdas), "choice": api.choice_dict(self.net),
                     "epochs_done": self.epoch}
            doc = artifact.build_accel_doc(self.cfg, self.space, self.net, subnet, acc, choices,
                                           provenance={"command": " ".join(sys.argv), **extra},
                                           accuracy={"supernet_arch_split": arch_acc,
                                                     "dataset": self.cfg["data"]["dataset"]},
                                           objective_weights=self.hw.cache.weights,
                                           config_path=self.cfg_path)
            doc.provenance.code_version = code_version()
            artifact.write_accel(self.run / ACCEL, doc)
            api.save_choice(self.run, self.net, self.space)
            if self.cfg["plots"]:
                plots.make_plots(self.run, self.metrics, self.history)
        self.dist.barrier()
        return {"accel": doc, "run_dir": str(self.run)}


def autocast_dtype(precision: str, device: str) -> torch.dtype | None:
    """The autocast dtype of ``precision`` (config key) on ``device``: auto = bf16 on CUDA, none on the CPU."""
    if precision == "bf16" or (precision == "auto" and str(device).startswith("cuda")):
        return torch.bfloat16
    return None


def train_autocast(precision: str, device: str):
    """Autocast context for a training forward pass (convs and matmuls in bf16; the quantizers, BN statistics
    and the loss stay float32), or a no-op for fp32."""
    dt = autocast_dtype(precision, device)
    if dt is None:
        return nullcontext()
    return torch.autocast("cuda" if str(device).startswith("cuda") else "cpu", dtype=dt)


def _time_stats(prefix: str, times: list[float]) -> dict:
    """Median, 90th percentile and maximum of per-iteration seconds (``prefix_median`` ...); {} when empty."""
    if not times:
        return {}
    t = sorted(times)
    return {f"{prefix}_median": float(np.median(t)), f"{prefix}_p90": t[min(len(t) - 1, int(0.9 * len(t)))],
            f"{prefix}_max": t[-1]}


def totals(choices, acc) -> dict:
    """Network totals from per-layer BatchTile choices: cycles, latency ms, energy pJ, area mm², EDAP."""
    cycles = sum(int(c.cost.cycles) for c in choices)
    lat = sum(float(c.cost.latency_ms) for c in choices)
    en = sum(float(c.cost.energy_total_pj) for c in choices)
    area = float(choices[0].cost.area_mm2) if choices else 0.0
    return {"cycles": cycles, "latency_ms": lat, "energy_pj": en, "area_mm2": area,
            "edap": en * 1e-12 * lat * 1e-3 * area}


# ---------------------------------------------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------------------------------------------
def run_cosearch(cfg: dict, out: str | Path, *, resume: bool = False, force: bool = False, device: str = "cpu",
                 quiet: bool = False, stop_after_epoch: int | None = None) -> dict:
    """Run (or resume) one co-search into ``out``; returns ``{"accel": doc, "run_dir": ...}``."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    with cpu_threads(cfg.get("threads")):
        return _run_cosearch(cfg, out, world, rank, resume=resume, force=force, device=device, quiet=quiet,
                             stop_after_epoch=stop_after_epoch)


class cpu_threads:
    """Context manager: torch intra-op threads = ``n`` (None: unchanged), restored on exit.

    Small networks on a few shared cores run far faster single-threaded (no OpenMP spin-waiting)."""

    def __init__(self, n: int | None):
        self.n, self.old = n, None

    def __enter__(self):
        if self.n:
            self.old = torch.get_num_threads()
            torch.set_num_threads(self.n)
        return self

    def __exit__(self, *exc):
        if self.old:
            torch.set_num_threads(self.old)
        return False


def _run_cosearch(cfg, out, world, rank, *, resume, force, device, quiet, stop_after_epoch):
    run = Path(out)
    if rank == 0:
        run = prepare_run_dir(out, resume=resume, force=force)
    if resume:
        saved = read_config(run)
        from jaq.search.config import config_diff, validate_config
        saved = validate_config(saved, str(run / "config.yaml"))
        diff = config_diff(saved, cfg)
        if diff:
            raise JaqError(f"differs from the run's config.yaml ({', '.join(diff)}); resume with the run's own "
                           f"config (omit --config and overrides)", diff[0])
        cfg = saved
    if rank == 0 and not resume:
        write_config(run, cfg)
    cs = CoSearch(cfg, run, device=device, quiet=quiet, stop_after_epoch=stop_after_epoch,
                  cfg_path=str(run / "config.yaml"))
    if resume:
        cs.load_state(load_checkpoint(run, map_location=cs.device))
    if resume and cs.epoch >= cfg["search"]["epochs"] and (run / ACCEL).is_file():
        # already finished: keep accel.json as it is (it may carry retraining results)
        from jaq.search import artifact
        res = {"accel": artifact.read_accel(run / ACCEL) if cs.dist.main else None, "run_dir": str(run)}
    else:
        res = cs.fit()
    if cs.dist.enabled:
        torch.distributed.destroy_process_group()
    return res
