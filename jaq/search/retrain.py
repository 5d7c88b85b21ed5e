"""Retraining of the derived subnet (paper, "The Overall Joint Pipeline": retrain stage).

The subnet recorded by the search (``RUN/subnet.json``) is rebuilt with :func:`jaq.nn.subnet.build_subnet` at
its fixed bits (quantization-aware training: fake-quant with straight-through gradients, every channel
quantized) and trained from scratch on the whole training split: SGD with momentum, cosine-annealed from
``retrain.lr`` (paper: 0.01) over ``retrain.epochs`` (paper: 600 CIFAR, 180 ImageNet). The test accuracy is
written into ``accel.json`` (``accuracy.test``), the trained model to ``RUN/retrained.pt``, and the integer
weights + scales (``jaq.nn.integer``) to ``RUN/weights/`` for the RTL simulation.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from jaq.errors import JaqError
from jaq.io import atomic_write_bytes, atomic_write_json, load_json
from jaq.search.rundir import ACCEL, read_config


def _layer_sig(l: dict) -> tuple:
    return tuple(l[k] for k in ("kind", "in_ch", "out_ch", "out_h", "out_w", "kernel", "stride", "groups",
                                "act_bits", "wgt_bits"))


def run_retrain(run_dir: str | Path, *, epochs: int | None = None, device: str = "cpu", quiet: bool = False,
                max_steps_per_epoch: int | None = None) -> dict:
    """Retrain ``run_dir``'s subnet; returns ``{"test_acc": ..., "epochs": ..., "seconds": ...}``."""
    from jaq.search.config import validate_config

    run = Path(run_dir)
    if not run.is_dir():
        raise JaqError(f"run directory {run} does not exist", "RUN_DIR")
    for f in ("config.yaml", "subnet.json", ACCEL):
        if not (run / f).is_file():
            raise JaqError(f"{run / f} is missing: is {run} a finished co-search run?", "RUN_DIR")
    cfg = validate_config(read_config(run), str(run / "config.yaml"))
    from jaq.search.cosearch import cpu_threads
    with cpu_threads(cfg.get("threads")):
        return _retrain(run, cfg, epochs, device, quiet, max_steps_per_epoch)


#: Where an interrupted retrain keeps its state (inside ``weights/``, which ``--force`` clears with the run); deleted
#: once the retrain has finished.
RETRAIN_CKPT = "weights/retrain_checkpoint.pt"
#: Seconds between checkpoints inside an epoch (one is always written at the end of every epoch).
CKPT_EVERY_S = 600.0


def _ckpt_key(cfg: dict, choice, n_epochs: int, max_steps) -> dict:
    """What a retrain checkpoint must match to be resumed: the retrain section, data, seed, choice, epochs."""
    return {"retrain": cfg["retrain"], "data": cfg["data"], "seed": cfg["seed"], "choice": choice.to_dict(),
            "epochs": n_epochs, "max_steps": max_steps}


def _load_retrain_ckpt(run: Path, key: dict) -> dict | None:
    """The interrupted retrain's state when it belongs to this retrain (same key), else None."""
    from jaq.search.rundir import safe_torch_load
    f = run / RETRAIN_CKPT
    if not f.is_file():
        return None
    st = safe_torch_load(f)
    if not isinstance(st, dict) or st.get("key") != json.loads(json.dumps(key)):
        return None
    return st


def _save_retrain_ckpt(run: Path, key: dict, net, opt, sched, epoch: int, step: int, sums: list, log: list,
                       secs: float) -> None:
    buf = io.BytesIO()
    torch.save({"key": json.loads(json.dumps(key)), "net": net.state_dict(), "opt": opt.state_dict(),
                "sched": sched.state_dict(), "epoch": epoch, "step": step, "sums": sums, "log": log,
                "seconds": secs, "rng": torch.get_rng_state()}, buf)
    atomic_write_bytes(run / RETRAIN_CKPT, buf.getvalue())


def _retrain(run, cfg, epochs, device, quiet, max_steps_per_epoch):
    from jaq.data import load_data
    from jaq.nn.space import SpaceConfig
    from jaq.nn.subnet import SubnetChoice, build_subnet
    from jaq.search import artifact
    from jaq.search.cosearch import _seed_epoch, resolve_device, train_autocast
    r = cfg["retrain"]
    n_epochs = r["epochs"] if epochs is None else epochs
    if n_epochs < 1:
        raise JaqError(f"{n_epochs} must be >= 1", "--epochs")
    max_steps = max_steps_per_epoch if max_steps_per_epoch is not None else r["max_steps_per_epoch"]
    device = resolve_device(device)
    sub = load_json(run / "subnet.json")
    space_d = dict(sub["space"])
    space = SpaceConfig.from_dict(space_d)
    choice = SubnetChoice.from_dict(sub["choice"], space)
    seed = cfg["seed"]
    torch.manual_seed(_seed_epoch(seed, 10_000, 0))
    net = build_subnet(space, choice).to(device)
    channels_last = bool(cfg["data"].get("channels_last", False))
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    doc = artifact.read_accel(run / ACCEL)
    want = [_layer_sig(l.to_dict()) for l in doc.layers]
    have = [_layer_sig(l.to_dict()) for l in net.layers()]
    if want != have:
        raise JaqError(f"{run / 'subnet.json'} does not match the layers in {run / ACCEL}", "network.layers")

    data = load_data(cfg["data"], seed=seed)
    if str(device).startswith("cuda") and hasattr(data.train, "to"):
        data.train, data.test = data.train.to(device), data.test.to(device)  # GPU-resident uint8 images
    plan = None
    if epochs is None and r.get("budget_minutes"):
        plan = _plan_epochs(run, net, data, r, choice, max_steps, device, cfg.get("precision", "auto"))
        n_epochs = plan["epochs"]
    opt = torch.optim.SGD(net.parameters(), lr=r["lr"], momentum=r["momentum"], weight_decay=r["weight_decay"],
                          nesterov=bool(r.get("nesterov", False)) and r["momentum"] > 0)
    steps = data.train.num_batches(r["batch_size"], 1, max_steps)
    warm = min(float(r.get("warmup_epochs", 0) or 0), 0.5 * n_epochs)
    per_step = warm > 0
    if per_step:  # linear warm-up over `warm` epochs, then cosine to 0, stepped after every batch
        sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(int(round(warm * steps)), n_epochs * steps))
    else:
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=n_epochs)
    smoothing = float(r.get("label_smoothing", 0.0) or 0.0)
    precision = cfg.get("precision", "auto")
    fwd = _compiled(net, cfg.get("compile", "off"))
    key = _ckpt_key(cfg, choice, n_epochs, max_steps)
    log: list = [] if plan is None else [plan]
    start_ep, start_step, sums, secs0 = 0, 0, [0.0, 0, 0], 0.0
    st = _load_retrain_ckpt(run, key)
    if st is not None:  # continue an interrupted retrain of this very subnet and schedule
        net.load_state_dict(st["net"])
        opt.load_state_dict(st["opt"])
        sched.load_state_dict(st["sched"])
        start_ep, start_step, sums, log, secs0 = st["epoch"], st["step"], list(st["sums"]), list(st["log"]), \
            float(st["seconds"])
        torch.set_rng_state(st["rng"])
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)
    prog = Progress(TextColumn("[bold]retrain"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("loss {task.fields[loss]:.3f} acc {task.fields[acc]:5.1f}% {task.fields[ips]:.0f} img/s"),
                    TimeElapsedColumn(), TimeRemainingColumn(), disable=quiet)
    t0 = time.perf_counter()
    t_ck = t0
    with prog:
        task = prog.add_task("retrain", total=n_epochs * steps, completed=start_ep * steps + start_step,
                             loss=0.0, acc=0.0, ips=0.0)
        for ep in range(start_ep, n_epochs):
            g = torch.Generator().manual_seed(_seed_epoch(seed, 20_000 + ep, 0))
            net.train()
            first = start_step if ep == start_ep else 0
            tl, tc, tn = sums if ep == start_ep else (0.0, 0, 0)
            t_ep, n_ep = time.perf_counter(), 0
            for i, (x, y) in enumerate(data.train.batches(r["batch_size"], shuffle=True, generator=g,
                                                          max_steps=max_steps, device=device, start=first),
                                       start=first):
                with train_autocast(precision, device):
                    out = fwd(x)
                    loss = F.cross_entropy(out.float(), y, label_smoothing=smoothing)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
                opt.step()
                if per_step:
                    sched.step()
                tl += float(loss.detach()) * len(y)
                tc += int((out.argmax(1) == y).sum())
                tn += len(y)
                n_ep += len(y)
                prog.update(task, advance=1, loss=tl / tn, acc=100 * tc / tn,
                            ips=n_ep / max(1e-9, time.perf_counter() - t_ep))
                if time.perf_counter() - t_ck > CKPT_EVERY_S and i + 1 < steps:
                    _save_retrain_ckpt(run, key, net, opt, sched, ep, i + 1, [tl, tc, tn], log,
                                       secs0 + time.perf_counter() - t0)
                    t_ck = time.perf_counter()
            lr_end = opt.param_groups[0]["lr"]
            if not per_step:
                sched.step()
            log.append({"kind": "retrain_epoch", "epoch": ep + 1, "train_loss": tl / max(1, tn),
                        "train_acc": tc / max(1, tn), "lr": opt.param_groups[0]["lr"] if not per_step else lr_end,
                        "epoch_s": time.perf_counter() - t_ep, "images_per_s": n_ep / max(1e-9, time.perf_counter() - t_ep)})
            _write_log(run, log)
            _save_retrain_ckpt(run, key, net, opt, sched, ep + 1, 0, [0.0, 0, 0], log,
                               secs0 + time.perf_counter() - t0)
            t_ck = time.perf_counter()
    secs = secs0 + time.perf_counter() - t0
    test_acc = evaluate(net, data.test, device)
    log.append({"kind": "retrain_test", "test_acc": test_acc, "seconds": secs})
    buf = io.BytesIO()
    torch.save({"state_dict": net.state_dict(), "space": space.to_dict(), "choice": choice.to_dict()}, buf)
    atomic_write_bytes(run / "retrained.pt", buf.getvalue())
    _write_log(run, log)
    net = net.cpu().to(memory_format=torch.contiguous_format)
    weights_info = export_weights(net, run / "weights")
    t_int = time.perf_counter()
    int_acc = evaluate_integer(weights_info["integer_net"], data.test)
    log[-1].update({"test_acc_integer": int_acc, "integer_eval_s": time.perf_counter() - t_int})
    _write_log(run, log)
    acc = dict(doc.accuracy or {})
    acc.update({"top1": test_acc, "top1_integer": int_acc, "split": "test", "test_images": len(data.test),
                "retrain_epochs": n_epochs, "dataset": cfg["data"]["dataset"]})
    doc.accuracy = acc
    for e, w in zip(doc.network.layers, weights_info["layers"]):
        e.weights = w["weights"]
        e.scales = w["scales"]
    artifact.write_accel(run / ACCEL, doc)
    (run / RETRAIN_CKPT).unlink(missing_ok=True)
    (run / RETRAIN_PLAN).unlink(missing_ok=True)
    return {"test_acc": test_acc, "integer_test_acc": int_acc, "epochs": n_epochs, "seconds": secs,
            "weights": str(run / "weights")}


#: Where the epoch plan of a time-budgeted retrain (``retrain.budget_minutes``) is kept, so a resumed retrain keeps
#: the same schedule.
RETRAIN_PLAN = "weights/retrain_plan.json"


def _plan_epochs(run: Path, net, data, r: dict, choice, max_steps, device, precision) -> dict:
    """Epochs that fit ``retrain.budget_minutes`` (at most ``retrain.epochs``): a timing probe of a few training
    steps on a throw-away copy of the subnet, extrapolated to whole epochs (plus 3 % for the epoch-end
    checkpoints and the test pass). Stored in RUN/weights/retrain_plan.json and reused by a resumed retrain."""
    import copy

    from jaq.search.cosearch import train_autocast
    want = {"retrain": r, "choice": choice.to_dict(), "max_steps": max_steps}
    f = run / RETRAIN_PLAN
    if f.is_file():
        old = load_json(f)
        if old.get("key") == json.loads(json.dumps(want)):
            return old["plan"]
    probe = copy.deepcopy(net)
    opt = torch.optim.SGD(probe.parameters(), lr=r["lr"], momentum=r["momentum"])
    g = torch.Generator().manual_seed(12345)
    times = []
    for x, y in data.train.batches(r["batch_size"], shuffle=True, generator=g, max_steps=10, device=device):
        t = time.perf_counter()
        with train_autocast(precision, device):
            loss = F.cross_entropy(probe(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t)
    del probe, opt
    step_s = float(sorted(times[2:])[len(times[2:]) // 2]) if len(times) > 2 else float(max(times))
    steps = data.train.num_batches(r["batch_size"], 1, max_steps)
    epoch_s = 1.03 * steps * step_s
    n = max(1, min(int(r["epochs"]), int(float(r["budget_minutes"]) * 60.0 // epoch_s)))
    plan = {"kind": "retrain_plan", "epochs": n, "budget_minutes": float(r["budget_minutes"]),
            "probe_step_s": step_s, "probe_images_per_s": r["batch_size"] / step_s,
            "estimated_epoch_s": epoch_s, "max_epochs": int(r["epochs"])}
    f.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(f, {"key": want, "plan": plan})
    return plan


def warmup_cosine(warm_steps: int, total_steps: int):
    """LambdaLR factor: linear from 1/(warm_steps+1) to 1 over ``warm_steps``, then cosine to 0 at ``total_steps``."""
    import math

    def f(t: int) -> float:
        if t < warm_steps:
            return (t + 1) / (warm_steps + 1)
        rest = max(1, total_steps - warm_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (t - warm_steps) / rest)))
    return f


def _compiled(net, mode: str):
    """The training forward: ``net`` itself, or ``torch.compile(net)`` (``inductor``: fused kernels, pays on
    GPUs; ``eager``: dynamo tracing only, for tests). Evaluation and export always use ``net`` itself."""
    if mode == "off":
        return net
    return torch.compile(net, backend=mode)


def _write_log(run: Path, log: list) -> None:
    from jaq.io import atomic_write_text
    atomic_write_text(run / "retrain_metrics.jsonl", "".join(json.dumps(x) + "\n" for x in log))


@torch.no_grad()
def evaluate(net, src, device) -> float:
    net.eval()
    c = n = 0
    for x, y in src.batches(256, shuffle=False, device=device):
        c += int((net(x).argmax(1) == y).sum())
        n += len(y)
    net.train()
    return c / max(1, n)


def export_weights(net, folder: Path) -> dict:
    """Integer weights + host constants (scales, folded BN) of every layer via :mod:`jaq.nn.integer`.

    Writes ``folder/network.json`` (input quantization + the per-layer list) and ``folder/layer_NN.json`` (one
    :class:`jaq.nn.integer.IntLayer` each: integer weights in PyTorch order, weight/activation scales, BN
    multiplier/offset, requantization target). Returns ``{"integer_net": IntegerNet, "layers": [{weights,
    scales}, ...]}`` with paths relative to the run directory (what accel.json records).
    """
    from jaq.nn.integer import export_integer
    inet = export_integer(net)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for j, L in enumerate(inet.layers):
        name = f"layer_{j:02d}.json"
        atomic_write_json(folder / name, L.to_dict())
        entries.append({"weights": f"{folder.name}/{name}",
                        "scales": {"wgt_scale": L.wgt_scale, "act_scale": L.act_scale, "out_scale": L.out_scale}})
    atomic_write_json(folder / "network.json", {
        "input_bits": inet.input_bits, "input_signed": inet.input_signed, "input_scale": inet.input_scale,
        "layers": [e["weights"].split("/", 1)[1] for e in entries]})
    return {"integer_net": inet, "layers": entries}


@torch.no_grad()
def evaluate_integer(inet, src) -> float:
    """Test accuracy of the integer network (what the accelerator + host compute)."""
    c = n = 0
    for x, y in src.batches(256, shuffle=False):
        x, y = x.cpu().contiguous(), y.cpu()
        c += int((inet(x.to(torch.float64)).argmax(1) == y).sum())
        n += len(y)
    return c / max(1, n)
