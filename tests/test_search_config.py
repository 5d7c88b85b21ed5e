"""Co-search config validation: one-line errors naming the field; the CLI exits 2."""

import pytest

from jaq.cli import main
from jaq.errors import JaqError
from jaq.search.config import DEFAULTS, load_config, parse_lambda_list, validate_config


def test_defaults_are_paper_settings():
    cfg = validate_config({})
    s = cfg["search"]
    assert s["lr"] == 0.01 and s["lambda_e"] == s["lambda_l"] == s["lambda_a"] == 0.33
    assert cfg["data"]["arch_fraction"] == 0.2


@pytest.mark.parametrize("raw, field", [
    ({"search": {"epochs": 0}}, "search.epochs"),
    ({"search": {"epochs": "ten"}}, "search.epochs"),
    ({"search": {"lr": -1}}, "search.lr"),
    ({"search": {"lambda": True}}, "search.lambda"),
    ({"search": {"bogus": 1}}, "search.bogus"),
    ({"serach": {}}, "serach"),
    ({"data": {"dataset": "mnist"}}, "data.dataset"),
    ({"data": {"arch_fraction": 1.0}}, "data.arch_fraction"),
    ({"search": {"warmup_epochs": 5, "epochs": 5}}, "search.warmup_epochs"),
    ({"sweep_lambda": [0.1, -1]}, "sweep_lambda"),
    ({"space": 3}, "space"),
    ({"threads": 0}, "threads"),
    ({"hardware": {"dram_bits_per_cycle": 16}}, "hardware.dram_bits_per_cycle"),
    ({"search": []}, "search"),
])
def test_bad_fields_are_named(raw, field):
    with pytest.raises(JaqError) as e:
        validate_config(raw)
    assert e.value.field == field or str(e.value).startswith(field)
    assert "\n" not in str(e.value)


def test_shipped_configs_validate():
    from pathlib import Path
    root = Path(__file__).resolve().parents[1] / "configs"
    names = {p.stem for p in root.glob("*.yaml")}
    assert {"tiny", "cifar10", "cifar100", "imagenet"} <= names
    for p in root.glob("*.yaml"):
        cfg = load_config(p)
        assert cfg["name"]
    c10 = load_config(root / "cifar10.yaml")
    assert c10["search"]["epochs"] == 90 and c10["retrain"]["epochs"] == 600
    assert load_config(root / "imagenet.yaml")["search"]["epochs"] == 45
    assert load_config(root / "imagenet.yaml")["retrain"]["epochs"] == 180


def test_lambda_list():
    assert parse_lambda_list("0.0005, 0.001,0.002") == [0.0005, 0.001, 0.002]
    with pytest.raises(JaqError):
        parse_lambda_list("0.1,x")


def test_cli_config_error_exits_2(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("search:\n  epochs: -3\n")
    assert main(["co-search", "--config", str(bad), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "search.epochs" in err
    assert main(["co-search", "--config", str(tmp_path / "missing.yaml")]) == 2
    assert "not found" in capsys.readouterr().err
    malformed = tmp_path / "m.yaml"
    malformed.write_text("search: [1,\n")
    assert main(["co-search", "--config", str(malformed)]) == 2
    assert "malformed YAML" in capsys.readouterr().err
    assert set(DEFAULTS) >= {"data", "search", "hardware", "retrain"}
