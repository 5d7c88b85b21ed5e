"""Retraining: an interrupted retrain resumes (end of epoch or inside one) and ends equal to an uninterrupted
one; bf16 autocast and the torch.compile path run on the CPU (the CUDA run uses the same code)."""

import json

import pytest
import torch

from jaq.search import retrain as rt
from jaq.search.config import validate_config
from jaq.search.cosearch import autocast_dtype, run_cosearch

TINY = {"name": "t", "seed": 5, "threads": 1, "plots": False, "data": {"dataset": "digits", "augment": True},
        "space": "tiny",
        "search": {"epochs": 1, "warmup_epochs": 0, "batch_size": 32, "max_steps_per_epoch": 2, "lambda": 0.5},
        "hardware": {"generator_hidden": 16},
        "retrain": {"epochs": 2, "batch_size": 64, "max_steps_per_epoch": 4, "lr": 0.05}}


def _run(tmp_path, name, **top):
    raw = json.loads(json.dumps(TINY))
    raw.update(top)
    run = tmp_path / name
    run_cosearch(validate_config(raw), run, quiet=True)
    return run


class _Stop(Exception):
    pass


def _stop_after(monkeypatch, n_saves):
    """Make the retrain 'die' right after its n-th checkpoint write."""
    real = rt._save_retrain_ckpt
    calls = {"n": 0}

    def save(*a, **k):
        real(*a, **k)
        calls["n"] += 1
        if calls["n"] == n_saves:
            raise _Stop()
    monkeypatch.setattr(rt, "_save_retrain_ckpt", save)


def _state(run):
    return torch.load(run / "retrained.pt", weights_only=True)["state_dict"]


@pytest.mark.parametrize("every_s, n_saves", [(1e9, 1), (0.0, 2)], ids=["end-of-epoch", "inside-epoch"])
def test_interrupted_retrain_resumes_exactly(tmp_path, monkeypatch, every_s, n_saves):
    a = _run(tmp_path, "a")
    ra = rt.run_retrain(a, quiet=True)
    b = _run(tmp_path, "b")
    monkeypatch.setattr(rt, "CKPT_EVERY_S", every_s)
    _stop_after(monkeypatch, n_saves)
    with pytest.raises(_Stop):
        rt.run_retrain(b, quiet=True)
    ck = rt._load_retrain_ckpt(b, json.loads(json.dumps(rt._ckpt_key(
        validate_config(TINY), _choice(b), 2, 4))))
    assert ck is not None and (ck["epoch"], ck["step"]) == ((1, 0) if n_saves == 1 else (0, 2))
    monkeypatch.undo()
    rb = rt.run_retrain(b, quiet=True)
    assert rb["test_acc"] == ra["test_acc"] and rb["integer_test_acc"] == ra["integer_test_acc"]
    sa, sb = _state(a), _state(b)
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not (b / rt.RETRAIN_CKPT).exists()  # removed once finished
    logs = [json.loads(x) for x in (b / "retrain_metrics.jsonl").read_text().splitlines()]
    assert [x["epoch"] for x in logs if x["kind"] == "retrain_epoch"] == [1, 2]


def _choice(run):
    from jaq.io import load_json
    from jaq.nn.space import SpaceConfig
    from jaq.nn.subnet import SubnetChoice
    sub = load_json(run / "subnet.json")
    return SubnetChoice.from_dict(sub["choice"], SpaceConfig.from_dict(sub["space"]))


def test_checkpoint_of_another_schedule_is_ignored(tmp_path, monkeypatch):
    run = _run(tmp_path, "c")
    _stop_after(monkeypatch, 1)
    with pytest.raises(_Stop):
        rt.run_retrain(run, quiet=True)
    monkeypatch.undo()
    r = rt.run_retrain(run, epochs=1, quiet=True)  # other epoch count: a fresh retrain, not a resume
    logs = [json.loads(x) for x in (run / "retrain_metrics.jsonl").read_text().splitlines()]
    assert r["epochs"] == 1 and [x["epoch"] for x in logs if x["kind"] == "retrain_epoch"] == [1]


def test_bf16_autocast_and_compile_path_on_cpu(tmp_path):
    assert autocast_dtype("auto", "cpu") is None and autocast_dtype("auto", "cuda") is torch.bfloat16
    assert autocast_dtype("bf16", "cpu") is torch.bfloat16 and autocast_dtype("fp32", "cuda") is None
    run = _run(tmp_path, "bf16", precision="bf16", compile="eager")
    m = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    ep = [x for x in m if x["kind"] == "epoch"][0]
    assert all(torch.isfinite(torch.tensor(ep[k])) for k in ("train_ce", "arch_ce", "hw_cost"))
    r = rt.run_retrain(run, epochs=1, quiet=True)
    logs = [json.loads(x) for x in (run / "retrain_metrics.jsonl").read_text().splitlines()]
    assert torch.isfinite(torch.tensor(logs[0]["train_loss"])) and 0.0 <= r["integer_test_acc"] <= 1.0
