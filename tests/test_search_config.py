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
    ({"search": {"warmup_sampling": "mean"}}, "search.warmup_sampling"),
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


# -- hostile numbers, names and spaces (issue 12) ---------------------------------------------------------------

from jaq.search.config import _RANGES  # noqa: E402  (the table under test)


def _nested(dotted: str, value) -> dict:
    raw: dict = {}
    node = raw
    keys = dotted.split(".")
    for k in keys[:-1]:
        node = node.setdefault(k, {})
    node[keys[-1]] = value
    return raw


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf"), 1e300, 2 ** 64, -(2 ** 70)],
                         ids=["nan", "inf", "-inf", "1e300", "2^64", "-2^70"])
@pytest.mark.parametrize("dotted", [r[0] for r in _RANGES])
def test_every_number_has_a_finite_range(dotted, value):
    with pytest.raises(JaqError) as e:
        validate_config(_nested(dotted, value))
    msg = str(e.value)
    assert msg.startswith(dotted + ":") and "\n" not in msg, msg
    assert ".." in msg and len(msg) < 200, msg  # the valid range is stated


@pytest.mark.parametrize("raw, field, words", [
    ({"name": "../escape"}, "name", "no '..'"),
    ({"name": "a/b"}, "name", "path separators"),
    ({"name": "a\\b"}, "name", "plain run name"),
    ({"name": "..."}, "name", "plain run name"),
    ({"name": ""}, "name", "plain run name"),
    ({"name": "x" * 200}, "name", "at most 128"),
    ({"data": {"root": "a\nb"}}, "data.root", "one-line path"),
    ({"hardware": {"dram_latency_cycles": 0}}, "hardware.dram_latency_cycles", "1..100000"),
    ({"hardware": {"out_unit_lines": 3}}, "hardware.out_unit_lines", "1, 2, 4, 8, 16"),
    ({"hardware": {"out_unit_lines": 32}}, "hardware.out_unit_lines", "1..16"),
    ({"hardware": {"double_buffer": 1}}, "hardware.double_buffer", "bool"),
    ({"space": "tinyy"}, "space", "unknown preset"),
    ({"space": {"preset": "tinyy"}}, "space.preset", "unknown preset"),
    ({"space": {"preset": "tiny", "stem": {"channels": 0}}}, "space.stem.channels", "out of range"),
    ({"space": {"preset": "tiny", "gumbel": {"tau0": float("nan")}}}, "space.gumbel.tau0", "finite"),
    ({"space": {"preset": "tiny", "ops": [[[[[["k3_e1"]]]]]]}}, "space.ops[0][0][0][0]", "nested deeper"),
    ({"sweep_lambda": [float("nan")]}, "sweep_lambda[0]", "0..1e+09"),
    ({"sweep_lambda": [0.1] * 65}, "sweep_lambda", "1..64"),
    ({"seed": 2 ** 64}, "seed", "65-bit integer"),
    ({"seed": 1.5}, "seed", "expected int in 0..9223372036854775807"),
])
def test_names_spaces_and_limits_are_checked_up_front(raw, field, words):
    with pytest.raises(JaqError) as e:
        validate_config(raw)
    msg = str(e.value)
    assert msg.startswith(field + ":") and words in msg and "\n" not in msg, msg


def test_plain_names_and_spaces_still_accepted():
    assert validate_config({"name": "c10-lambda0.5_v2+x"})["name"] == "c10-lambda0.5_v2+x"
    cfg = validate_config({"space": {"preset": "tiny", "gumbel": {"decay": 0.9}}})
    assert cfg["space"] == {"preset": "tiny", "gumbel": {"decay": 0.9}}
    assert validate_config({"seed": 2 ** 63 - 1})["seed"] == 2 ** 63 - 1


def test_lambda_lists_refuse_nan_and_infinity():
    with pytest.raises(JaqError, match="--sweep-lambda"):
        parse_lambda_list("0.1,nan")
    with pytest.raises(JaqError, match="--sweep-lambda"):
        parse_lambda_list("inf")


# --set KEY=VALUE and the named flags: one override path (jaq.search.config.apply_overrides)
@pytest.mark.parametrize("text, field", [
    ("search.epochs", "--set"), ("=3", "--set"), ("search..lr=1", "--set"), ("search.lr=[1, 2]", "search.lr"),
    ("search.nope=1", "search.nope"), ("nope.lr=1", "nope"), ("search=3", "search"),
    ("search.lr=fast", "search.lr"), ("search.epochs=0", "search.epochs"), ("data.augment=3", "data.augment"),
])
def test_set_errors_name_the_key(text, field):
    from jaq.search.config import apply_overrides, parse_set
    with pytest.raises(JaqError) as e:
        apply_overrides(validate_config({}), dict([parse_set(text)]))
    assert e.value.field == field and "\n" not in str(e.value)


def test_set_values_are_typed_like_the_yaml():
    from jaq.search.config import apply_overrides, parse_set
    cfg = apply_overrides(validate_config({}), dict(parse_set(t) for t in (
        "search.lr=0.05", "search.sampling=hard", "data.root=/tmp/x", "retrain.budget_minutes=null", "seed=7")))
    assert cfg["search"]["lr"] == 0.05 and cfg["search"]["sampling"] == "hard" and cfg["seed"] == 7
    assert cfg["data"]["root"] == "/tmp/x" and cfg["retrain"]["budget_minutes"] is None


def test_epochs_override_lowers_the_warmup_in_every_command():
    from jaq.search.config import apply_overrides
    base = validate_config({"search": {"epochs": 10, "warmup_epochs": 4}})
    assert apply_overrides(base, {"search.epochs": 3})["search"]["warmup_epochs"] == 2
    with pytest.raises(JaqError) as e:  # an explicit warm-up is checked, not lowered
        apply_overrides(base, {"search.epochs": 3, "search.warmup_epochs": 4})
    assert e.value.field == "search.warmup_epochs"


@pytest.mark.parametrize("cmd", ["co-search", "flow"])
def test_cli_set_is_a_one_line_error(cmd, tmp_path, capsys):
    from jaq import cli
    rc = cli.main([cmd, "--config", "configs/tiny.yaml", "--out", str(tmp_path / "r"), "--set", "search.lr=fast"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "search.lr" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "r").exists()
