#!/usr/bin/env bash
# The paper's CIFAR-10 recipe (configs/cifar10.yaml: soft Gumbel mixture over all 9 ops and 2/4/8 bits, CSQ K = 3,
# full 32x32 resolution, lr 0.01 cosine, tau0 5, lambdas 0.33) scaled to ~10 minutes of one GPU (an H200), on the
# CUDA path: uint8 images resident on the GPU, bf16 autocast (precision: auto), torch.compile of the retrained
# subnet (compile: inductor).
#
# It first measures seconds per search step and per retrain step (a few steps each, compile warm-up included),
# then sizes the search (SEARCH_S seconds) and the retrain (RETRAIN_S seconds) to fit, runs both, evaluates the
# fake-quant and the integer model on the 10,000 test images and writes everything to OUT:
#   OUT/plan.json            measured step times and the chosen epochs / steps
#   OUT/run/                 the run directory (accel.json, metrics.jsonl, retrain_metrics.jsonl, subnet.json)
#   OUT/results.json         accuracy (fake-quant, integer), mean bits, accelerator, EDAP, wall times, GPU name
#   OUT/nvidia-smi.txt
#
# Usage:  DATA=../shared/datasets/cifar10-jpeg OUT=runs/gpu_cifar bash benchmarks/gpu_cifar.sh
#         (SEARCH_S=240 RETRAIN_S=300 BATCH=256 DEVICE=cuda COMPILE=inductor override the defaults;
#          CONFIG=configs/cifar100.yaml for CIFAR-100; a CPU smoke test of the script itself:
#          CONFIG=configs/tiny.yaml DEVICE=cpu COMPILE=eager BATCH=16 SEARCH_S=1 RETRAIN_S=1)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/datasets/cifar10-jpeg}
OUT=${OUT:-runs/gpu_cifar}
SEARCH_S=${SEARCH_S:-240}
RETRAIN_S=${RETRAIN_S:-300}
BATCH=${BATCH:-256}
DEVICE=${DEVICE:-cuda}
COMPILE=${COMPILE:-inductor}
CONFIG=${CONFIG:-configs/cifar10.yaml}
TRAIN_SUBSET=${TRAIN_SUBSET:-}
TEST_SUBSET=${TEST_SUBSET:-}
if [ ! -d "$DATA" ]; then
  echo "SKIP: no CIFAR-10 at $DATA (set DATA=DIR: torchvision's cifar-10-batches-py/ or train/test .tar.gz)"
  exit 0
fi
[ -f .venv/bin/activate ] && . .venv/bin/activate
mkdir -p "$OUT"
(nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1) || true
export JAQ_GPU_DATA="$DATA" JAQ_GPU_OUT="$OUT" JAQ_GPU_SEARCH_S="$SEARCH_S" JAQ_GPU_RETRAIN_S="$RETRAIN_S" \
       JAQ_GPU_BATCH="$BATCH" JAQ_GPU_DEVICE="$DEVICE" JAQ_GPU_COMPILE="$COMPILE" JAQ_GPU_CONFIG="$CONFIG" \
       JAQ_GPU_TRAIN_SUBSET="$TRAIN_SUBSET" JAQ_GPU_TEST_SUBSET="$TEST_SUBSET"
python - <<'EOF'
import json, math, os, shutil, time
from pathlib import Path

import torch

from jaq.search.config import load_config, validate_config
from jaq.search.cosearch import run_cosearch
from jaq.search.retrain import run_retrain

out = Path(os.environ["JAQ_GPU_OUT"])
dev = os.environ["JAQ_GPU_DEVICE"]
bs = int(os.environ["JAQ_GPU_BATCH"])
base = load_config(os.environ["JAQ_GPU_CONFIG"])
base["data"]["root"] = os.environ["JAQ_GPU_DATA"]
base.update(precision="auto", compile=os.environ["JAQ_GPU_COMPILE"], plots=False)
for k in ("train_subset", "test_subset"):
    v = os.environ.get(f"JAQ_GPU_{k.upper()}")
    base["data"][k] = int(v) if v else None
base["search"].update(batch_size=bs, lr=0.01 * bs / 128)
base["retrain"].update(batch_size=bs, lr=0.01 * bs / 128)
base["hardware"]["threads"] = 1


def cfg_with(**over):
    c = json.loads(json.dumps(base))
    for sec, d in over.items():
        c[sec].update(d)
    return validate_config(c, "gpu_cifar")


def secs_per_step(kind, metrics, steps):
    if kind == "search":
        ep = [m for m in metrics if m["kind"] == "epoch"]
        return ep[-1]["epoch_s"] / max(1, ep[-1]["steps"])
    ep = [m for m in metrics if m["kind"] == "retrain_epoch"]
    return ep[-1]["epoch_s"] / steps


# 1. probe: 2 search epochs of 6 steps (the second one timed), 2 retrain epochs of 6 steps
t0 = time.perf_counter()
probe = out / "probe"
shutil.rmtree(probe, ignore_errors=True)
pc = cfg_with(search={"epochs": 2, "warmup_epochs": 1, "max_steps_per_epoch": 6},
              retrain={"epochs": 2, "max_steps_per_epoch": 6})
run_cosearch(pc, probe, device=dev, quiet=True)
s_search = secs_per_step("search", [json.loads(x) for x in (probe / "metrics.jsonl").read_text().splitlines()], 6)
run_retrain(probe, device=dev, quiet=True)
s_retrain = secs_per_step("retrain", [json.loads(x) for x in (probe / "retrain_metrics.jsonl").read_text().splitlines()], 6)
probe_s = time.perf_counter() - t0

# 2. plan: whole epochs where they fit, else capped steps per epoch (the paper's 90 / 600 epochs scaled down)
n_train = int(base["data"]["train_subset"] or (50_000 if base["data"]["dataset"].startswith("cifar") else 1_437))
n_w = math.ceil(n_train * 0.8 / bs)
n_r = math.ceil(n_train / bs)
search_steps = max(4, int(float(os.environ["JAQ_GPU_SEARCH_S"]) / s_search))
retrain_steps = max(4, int(float(os.environ["JAQ_GPU_RETRAIN_S"]) / s_retrain))
s_epochs = max(2, min(90, search_steps // n_w))
s_cap = None if search_steps >= 2 * n_w else max(2, search_steps // 2)
r_epochs = max(1, min(600, retrain_steps // n_r))
r_cap = None if retrain_steps >= n_r else retrain_steps
plan = {"seconds_per_search_step": s_search, "seconds_per_retrain_step": s_retrain, "probe_s": probe_s,
        "batch_size": bs, "search_epochs": s_epochs, "search_max_steps_per_epoch": s_cap,
        "retrain_epochs": r_epochs, "retrain_max_steps_per_epoch": r_cap,
        "device": torch.cuda.get_device_name(0) if dev.startswith("cuda") and torch.cuda.is_available() else dev}
(out / "plan.json").write_text(json.dumps(plan, indent=1))
print("plan:", json.dumps(plan))

# 3. the run
run = out / "run"
shutil.rmtree(run, ignore_errors=True)
cfg = cfg_with(search={"epochs": s_epochs, "warmup_epochs": max(1, s_epochs // 9), "max_steps_per_epoch": s_cap},
               retrain={"epochs": r_epochs, "max_steps_per_epoch": r_cap})
t1 = time.perf_counter()
res = run_cosearch(cfg, run, device=dev, quiet=True)
t_search = time.perf_counter() - t1
t2 = time.perf_counter()
r = run_retrain(run, device=dev, quiet=True)
t_retrain = time.perf_counter() - t2
spec = json.loads((run / "accel.json").read_text())
layers = spec["network"]["layers"]
ep = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
ep = [m for m in ep if m["kind"] == "epoch"]
hw = [m["hw_search_s_median"] for m in ep if "hw_search_s_median" in m]
results = {"top1_fake_quant": r["test_acc"], "top1_integer": r["integer_test_acc"],
           "mean_act_bits": sum(l["act_bits"] for l in layers) / len(layers),
           "mean_wgt_bits": sum(l["wgt_bits"] for l in layers) / len(layers),
           "accelerator": spec["accelerator"], "totals": spec["totals"],
           "search_s": t_search, "retrain_s": t_retrain, "hw_step_median_s_per_epoch": hw, "plan": plan}
(out / "results.json").write_text(json.dumps(results, indent=1))
print(json.dumps({k: v for k, v in results.items() if k not in ("accelerator", "plan")}, indent=1))
EOF
