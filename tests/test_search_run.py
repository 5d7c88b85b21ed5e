"""Run directories: refusal to overwrite, atomic checkpoints, exact resume, outputs of a finished run."""

import json

import pytest
import torch

from jaq.errors import JaqError
from jaq.search.config import validate_config
from jaq.search.cosearch import run_cosearch
from jaq.search.rundir import prepare_run_dir

TINY = {"name": "t", "seed": 3, "threads": 1, "plots": False, "data": {"dataset": "digits", "augment": False},
        "space": "tiny",
        "search": {"epochs": 2, "warmup_epochs": 0, "batch_size": 32, "max_steps_per_epoch": 2, "lambda": 0.5,
                   "log_every_steps": 1},
        "hardware": {"generator_hidden": 16}, "retrain": {"epochs": 1, "max_steps_per_epoch": 2}}


def tiny_cfg(plots=False, **search):
    raw = json.loads(json.dumps(TINY))
    raw["search"].update(search)
    raw["plots"] = plots
    return validate_config(raw)


def _comparable(path):
    d = json.loads(path.read_text())
    d["provenance"].pop("created", None)
    d["provenance"].pop("command", None)
    d["provenance"].pop("config", None)
    d["provenance"].pop("config_sha256", None)  # run a also writes plots (plots: true), run b does not
    return d


def test_refuses_nonempty_run_dir(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "keep.txt").write_text("x")
    with pytest.raises(JaqError) as e:
        prepare_run_dir(tmp_path / "run", resume=False, force=False)
    assert "--resume" in str(e.value) and "--force" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(JaqError, match="nothing to resume"):
        prepare_run_dir(tmp_path / "empty", resume=True, force=False)
    with pytest.raises(JaqError, match="not a jaq run directory"):  # --force empties only jaq's run directories
        prepare_run_dir(tmp_path / "run", resume=False, force=True)
    assert (tmp_path / "run" / "keep.txt").exists()
    run = prepare_run_dir(tmp_path / "jaq", resume=False, force=False)
    (run / "metrics.jsonl").write_text("{}\n")
    (run / "keep.txt").write_text("x")
    prepare_run_dir(run, resume=False, force=True)
    assert not (run / "metrics.jsonl").exists() and (run / "keep.txt").exists()


def test_resume_is_exact(tmp_path):
    cfg = tiny_cfg()
    a = tmp_path / "a"
    run_cosearch(tiny_cfg(plots=True), a, quiet=True)
    b = tmp_path / "b"
    r = run_cosearch(cfg, b, quiet=True, stop_after_epoch=1)  # "killed" after the first checkpoint
    assert r == {"stopped_at_epoch": 1} and not (b / "accel.json").exists()
    assert len((b / "metrics.jsonl").read_text().splitlines()) == 3  # two step records + one epoch record
    with pytest.raises(JaqError, match="differs"):
        run_cosearch(tiny_cfg(lr=0.02), b, resume=True, quiet=True)
    run_cosearch(cfg, b, resume=True, quiet=True)
    before = (b / "accel.json").read_text()
    run_cosearch(cfg, b, resume=True, quiet=True)  # resuming a finished run leaves its accel.json alone
    assert (b / "accel.json").read_text() == before
    da, db = _comparable(a / "accel.json"), _comparable(b / "accel.json")
    da["provenance"]["extra"]["resolved_config"].pop("plots")
    db["provenance"]["extra"]["resolved_config"].pop("plots")
    assert da == db
    sa = torch.load(a / "checkpoint.pt", weights_only=True)  # checkpoints hold tensors and plain data only
    sb = torch.load(b / "checkpoint.pt", weights_only=True)
    for k in sa["net"]:
        assert torch.equal(sa["net"][k], sb["net"][k]), k
    for k in sa["gen"]:
        assert torch.equal(sa["gen"][k], sb["gen"][k]), k
    assert [m["hw_cost"] for m in sa["metrics"]] == [m["hw_cost"] for m in sb["metrics"]]
    assert [m["kind"] for m in sa["metrics"]] == ["step", "step", "epoch"] * 2

    # the finished run has everything the brief lists
    for f in ("config.yaml", "metrics.jsonl", "checkpoint.pt", "subnet.json", "accel.json", "plots/alpha_beta.png",
              "plots/bits.png", "plots/layer_cost.png", "plots/cost.png"):
        assert (a / f).is_file(), f
    from jaq.accel_json import load_spec
    spec = load_spec(a / "accel.json")
    assert spec.accelerator is not None and spec.totals.edap > 0
    assert all(e.tiling is not None and e.predicted is not None for e in spec.network.layers)
    assert spec.provenance.seed == 3
    lines = [json.loads(x) for x in (a / "metrics.jsonl").read_text().splitlines()
     if json.loads(x)["kind"] == "epoch"]
    assert [x["epoch"] for x in lines] == [1, 2]
    assert all(x["searched_arch"] for x in lines)


def test_lambda_changes_the_search(tmp_path):
    """A stronger hardware weight pulls the expected hardware cost down faster (same seed, same data)."""
    lo = run_cosearch(tiny_cfg(**{"lambda": 0.0}), tmp_path / "lo", quiet=True)
    hi = run_cosearch(tiny_cfg(**{"lambda": 5.0}), tmp_path / "hi", quiet=True)
    ml = [json.loads(x) for x in (tmp_path / "lo" / "metrics.jsonl").read_text().splitlines()
     if json.loads(x)["kind"] == "epoch"]
    mh = [json.loads(x) for x in (tmp_path / "hi" / "metrics.jsonl").read_text().splitlines()
     if json.loads(x)["kind"] == "epoch"]
    assert mh[-1]["hw_cost"] < ml[-1]["hw_cost"]
    assert lo["accel"].totals.edap > 0 and hi["accel"].totals.edap > 0


def test_warmup_sampling_holds_one_path_then_hard(tmp_path, monkeypatch):
    """search.warmup_sampling: argmax during the weight-only warm-up epochs, search.sampling afterwards
    (issue 17: a hard-sampled single-path supernet did not learn from scratch; the warm-up holds one path)."""
    from jaq.search import cosearch
    seen = []
    orig = cosearch.CoSearch.train_epoch

    def spy(self, *a, **k):
        seen.append(None)
        rec = orig(self, *a, **k)
        seen[-1] = (self.epoch, self.net.sampling, rec["searched_arch"])
        return rec

    monkeypatch.setattr(cosearch.CoSearch, "train_epoch", spy)
    cfg = tiny_cfg(epochs=3, warmup_epochs=2, sampling="hard", warmup_sampling="argmax")
    run_cosearch(cfg, tmp_path / "r", quiet=True)
    assert seen == [(0, "argmax", False), (1, "argmax", False), (2, "hard", True)]
    assert validate_config({})["search"]["warmup_sampling"] is None  # default: warm-up samples like the search
