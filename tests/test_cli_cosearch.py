"""`jaq co-search` / `jaq retrain` end to end on a tiny budget, the run-dir refusal, and DDP with 2 gloo procs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from jaq.cli import main

#: Seconds after which a subprocess counts as hung (not slow: a loaded CI machine never decides a test).
HANG_S = 3000

CFG = """\
name: cli
seed: 5
threads: 1
plots: false
data: {dataset: digits, augment: false}
space: tiny
search: {epochs: 2, batch_size: 32, max_steps_per_epoch: 2, lambda: 0.5}
hardware: {generator_hidden: 16}
retrain: {epochs: 1, batch_size: 64, max_steps_per_epoch: 3}
"""


@pytest.fixture()
def cfg_file(tmp_path):
    p = tmp_path / "cfg.yaml"
    p.write_text(CFG)
    return p


def test_refuses_existing_run_dir(tmp_path, cfg_file, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "old.txt").write_text("keep me")
    assert main(["co-search", "--config", str(cfg_file), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--resume" in err[0] and "--force" in err[0]
    assert (out / "old.txt").read_text() == "keep me"
    assert main(["co-search", "--config", str(cfg_file), "--out", str(out), "--resume", "--force"]) == 2
    assert main(["co-search", "--out", str(tmp_path / "none"), "--resume"]) == 2
    assert main(["retrain", str(tmp_path / "none")]) == 2


def test_cosearch_then_retrain(tmp_path, cfg_file, capsys):
    out = tmp_path / "run"
    assert main(["co-search", "--config", str(cfg_file), "--out", str(out), "--quiet", "--lambda", "1.0"]) == 0
    text = capsys.readouterr().out
    assert "EDAP" in text and (out / "accel.json").is_file()
    cfg = (out / "config.yaml").read_text()
    assert "lambda: 1.0" in cfg
    assert main(["retrain", str(out), "--quiet"]) == 0
    assert "test accuracy" in capsys.readouterr().out
    from jaq.accel_json import load_spec
    spec = load_spec(out / "accel.json")
    assert 0.0 <= spec.accuracy["top1"] <= 1.0 and spec.accuracy["split"] == "test"
    # integer weights for the simulator, one file per layer, referenced from accel.json
    for e in spec.network.layers:
        w = json.loads(spec.resolve(e.weights).read_text())
        assert w["out_ch"] == e.layer.out_ch and len(w["weights"]) == e.layer.weight_count
        lo, hi = -(1 << (e.layer.wgt_bits - 1)), (1 << (e.layer.wgt_bits - 1)) - 1
        assert all(lo <= v <= hi for v in w["weights"])
    assert (out / "weights" / "network.json").is_file()


@pytest.mark.slow
def test_ddp_two_gloo_processes(tmp_path):
    cfg_file = tmp_path / "ddp.yaml"  # with a warm-up epoch (no-grad arch forward under DDP) and a search epoch
    cfg_file.write_text(CFG.replace("lambda: 0.5}", "lambda: 0.5, warmup_epochs: 1}"))
    out = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}",
           "-m", "jaq", "co-search", "--config", str(cfg_file), "--out", str(out), "--quiet"]
    r = subprocess.run(cmd, cwd=Path(__file__).resolve().parents[1], env=env, capture_output=True, text=True,
                       timeout=HANG_S)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.count("co-search done") == 1  # rank 0 reports and writes
    from jaq.accel_json import load_spec
    spec = load_spec(out / "accel.json")
    assert spec.totals.edap > 0
    metrics = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()
     if json.loads(x)["kind"] == "epoch"]
    # each rank takes a disjoint half of every batch: 2 steps of 16 images on rank 0
    assert [m["epoch"] for m in metrics] == [1, 2] and metrics[0]["steps"] == 2


def test_lambda_sweep(tmp_path, cfg_file, capsys):
    out = tmp_path / "sweep"
    assert main(["co-search", "--config", str(cfg_file), "--out", str(out), "--quiet", "--epochs", "1",
                 "--sweep-lambda", "0.0,4.0"]) == 0
    assert "sweep: 2 runs" in capsys.readouterr().out
    pts = json.loads((out / "sweep.json").read_text())["points"]
    assert [p["lambda"] for p in pts] == [0.0, 4.0]
    assert all(p["edap"] > 0 and 0 <= p["accuracy"] <= 1 for p in pts)
    assert (out / "pareto.png").stat().st_size > 0
    assert (out / "lambda_4" / "accel.json").is_file()
    # resuming a finished sweep reuses the runs
    assert main(["co-search", "--config", str(cfg_file), "--out", str(out), "--quiet", "--epochs", "1",
                 "--sweep-lambda", "0.0,4.0", "--resume"]) == 0
