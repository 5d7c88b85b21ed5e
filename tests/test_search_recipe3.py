"""Issue 17, recipe 3: partial hard sampling (search.sample_blocks) and the retrain's warm-up + cosine schedule
(retrain.warmup_epochs, retrain.nesterov); one-line errors for the new fields."""

import json

import pytest
import torch

from jaq.errors import JaqError
from jaq.nn.space import preset
from jaq.nn.supernet import Supernet
from jaq.search.config import validate_config
from jaq.search.cosearch import run_cosearch
from jaq.search.retrain import run_retrain, warmup_cosine

TINY = {"name": "t", "seed": 3, "threads": 1, "plots": False, "data": {"dataset": "digits", "augment": False},
        "space": "tiny",
        "search": {"epochs": 2, "warmup_epochs": 1, "batch_size": 32, "max_steps_per_epoch": 2, "lambda": 0.5,
                   "sampling": "hard", "warmup_sampling": "argmax", "sample_blocks": 1},
        "hardware": {"generator_hidden": 16},
        "retrain": {"epochs": 2, "batch_size": 64, "max_steps_per_epoch": 3, "lr": 0.05, "warmup_epochs": 1,
                    "nesterov": True}}


@pytest.mark.parametrize("raw, field", [
    ({"search": {"sample_blocks": 0, "sampling": "hard"}}, "search.sample_blocks"),
    ({"search": {"sample_blocks": 2.5, "sampling": "hard"}}, "search.sample_blocks"),
    ({"search": {"sample_blocks": 2}}, "search.sample_blocks"),           # needs sampling: hard
    ({"retrain": {"warmup_epochs": -1}}, "retrain.warmup_epochs"),
    ({"retrain": {"warmup_epochs": 3, "epochs": 3}}, "retrain.warmup_epochs"),
    ({"retrain": {"nesterov": "yes"}}, "retrain.nesterov"),
])
def test_new_fields_are_named(raw, field):
    with pytest.raises(JaqError) as e:
        validate_config(raw)
    assert (e.value.field == field or str(e.value).startswith(field)) and "\n" not in str(e.value)


def test_defaults_keep_old_behaviour():
    cfg = validate_config({})
    assert cfg["search"]["sample_blocks"] is None
    assert cfg["retrain"]["warmup_epochs"] == 0 and cfg["retrain"]["nesterov"] is False


def _forward_paths(net, x, n):
    paths = []
    for _ in range(n):
        pa, ia, _, iba, _, ibw = net._sample()
        paths.append((tuple(ia), tuple(map(tuple, iba)), tuple(map(tuple, ibw))))
    return paths


def test_sample_blocks_moves_only_k_blocks_off_the_argmax():
    torch.manual_seed(0)
    net = Supernet(preset("tiny"))
    with torch.no_grad():
        net.alpha[:, 0] = 0.5          # argmax: op 0 everywhere, but a Gumbel sample often differs
    net.sampling, net.tau = "hard", 5.0
    arg = tuple(int(i) for i in net.alpha.argmax(1))
    for k in (1, 2):
        net.sample_blocks = k
        for ia, _, _ in _forward_paths(net, None, 40):
            assert sum(a != b for a, b in zip(ia, arg)) <= k
    net.sample_blocks = None           # every block sampled: some step moves more than 2 blocks
    assert max(sum(a != b for a, b in zip(ia, arg)) for ia, _, _ in _forward_paths(net, None, 40)) > 2


def test_sample_blocks_forward_backward_reaches_alpha_of_held_blocks():
    torch.manual_seed(1)
    net = Supernet(preset("tiny"))
    net.sampling, net.sample_blocks = "hard", 1
    x = torch.randn(4, 1, 8, 8)
    net(x).logsumexp(1).sum().backward()
    # straight-through one-hot of the argmax path: every block's alpha gets a gradient
    assert (net.alpha.grad.abs().sum(1) > 0).all()


def test_recipe3_search_and_retrain_run(tmp_path):
    cfg = validate_config(json.loads(json.dumps(TINY)))
    run = tmp_path / "r"
    run_cosearch(cfg, run, quiet=True)
    res = run_retrain(run, quiet=True)
    log = [json.loads(x) for x in (run / "retrain_metrics.jsonl").read_text().splitlines()]
    eps = [r for r in log if r["kind"] == "retrain_epoch"]
    assert len(eps) == 2 and 0 <= res["test_acc"] <= 1
    assert eps[0]["lr"] == pytest.approx(0.05, rel=1e-6)   # end of warm-up: the peak lr
    assert eps[1]["lr"] == pytest.approx(0.0, abs=1e-9)    # cosine down to 0 at the last step


def test_warmup_cosine_shape():
    f = warmup_cosine(4, 12)
    v = [f(t) for t in range(13)]
    assert v[0] == pytest.approx(0.2) and v[3] == pytest.approx(0.8) and v[4] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(v[4:], v[5:])) and v[12] == pytest.approx(0.0)


def test_path_prior_favours_the_held_path(tmp_path):
    """search.path_prior: the first op and the lowest bits start ahead by that many logits (not by a tie), so
    the first architecture steps cannot flip the warmed-up path at once."""
    from jaq.search.cosearch import CoSearch
    raw = json.loads(json.dumps(TINY))
    raw["search"]["path_prior"] = 1.5
    cs = CoSearch(validate_config(raw), tmp_path / "r", quiet=True)
    a = cs.net.alpha.detach()
    assert torch.allclose(a[:, 0], torch.full_like(a[:, 0], 1.5)) and a[:, 1:].abs().max() == 0
    assert (cs.net.beta_act.detach()[..., 0] == 1.5).all() and (cs.net.beta_wgt.detach()[..., 1:] == 0).all()
    assert validate_config({})["search"]["path_prior"] == 0.0
    with pytest.raises(JaqError) as e:
        validate_config({"search": {"path_prior": -1}})
    assert e.value.field == "search.path_prior"


def _budgeted_search(tmp_path):
    """A searched run whose retrain has a time budget (retrain.budget_minutes) and at most 50 epochs."""
    raw = json.loads(json.dumps(TINY))
    raw["retrain"].update({"epochs": 50, "budget_minutes": 0.1, "warmup_epochs": 1})
    run = tmp_path / "r"
    run_cosearch(validate_config(raw), run, quiet=True)
    return run


def test_budget_minutes_plans_epochs_and_resume_keeps_the_plan(tmp_path):
    run = _budgeted_search(tmp_path)
    res = run_retrain(run, quiet=True)
    log = [json.loads(x) for x in (run / "retrain_metrics.jsonl").read_text().splitlines()]
    plan = [r for r in log if r["kind"] == "retrain_plan"]
    eps = [r for r in log if r["kind"] == "retrain_epoch"]
    assert len(plan) == 1 and 1 <= plan[0]["epochs"] <= 50 and plan[0]["probe_images_per_s"] > 0
    assert res["epochs"] == plan[0]["epochs"] == len(eps)
    assert plan[0]["epochs"] * plan[0]["estimated_epoch_s"] <= 6.0 or plan[0]["epochs"] == 1
    assert not (run / "weights" / "retrain_plan.json").exists()   # removed once the retrain finished
    with pytest.raises(JaqError) as e:
        validate_config({"retrain": {"budget_minutes": 0}})
    assert e.value.field == "retrain.budget_minutes"


def test_budget_plan_is_reused_by_a_resumed_retrain(tmp_path):
    """A retrain killed after its plan was made keeps that plan (the checkpoint's schedule depends on it)."""
    from jaq.io import atomic_write_json, load_json
    from jaq.nn.space import SpaceConfig
    from jaq.nn.subnet import SubnetChoice
    from jaq.search.rundir import read_config
    run = _budgeted_search(tmp_path)
    cfg = validate_config(read_config(run))
    sub = load_json(run / "subnet.json")
    choice = SubnetChoice.from_dict(sub["choice"], SpaceConfig.from_dict(sub["space"]))
    key = {"retrain": cfg["retrain"], "choice": choice.to_dict(), "max_steps": cfg["retrain"]["max_steps_per_epoch"]}
    atomic_write_json(run / "weights" / "retrain_plan.json",
                      {"key": key, "plan": {"kind": "retrain_plan", "epochs": 3, "budget_minutes": 0.1}})
    assert run_retrain(run, quiet=True)["epochs"] == 3
