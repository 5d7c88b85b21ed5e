"""Hostile and malformed input files (issue 12, part B), through the CLI.

Every file under tests/fixtures/hostile/ is refused by the command that reads it -- `jaq estimate FILE -o OUT`,
`jaq emit-rtl FILE -o OUT` for the accel files, `jaq co-search --config FILE --out OUT` for the configs -- with
exit code 2, one line on stderr that names the field (where the file has one), no traceback and nothing written.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from jaq.cli import main

HOSTILE = Path(__file__).resolve().parent / "fixtures" / "hostile"
JAQ = str(Path(sys.executable).parent / "jaq") if (Path(sys.executable).parent / "jaq").exists() \
    else (shutil.which("jaq") or "jaq")

#: accel fixture -> (what the message starts with: the field, or "" for file-level refusals; words it contains)
ACCEL_CASES: dict[str, tuple[str, str]] = {
    "accel-alias-bomb.yaml": ("provenance.extra.l0:", "anchor &l0 refused"),
    "accel-alias.yaml": ("layers[1].scales:", "alias *s refused"),
    "accel-tag.yaml": ("layers[1].scales:", "!!binary refused"),
    "accel-duplicate-key.json": ("", "duplicate key 'pe_x'"),
    "accel-duplicate-key.yaml": ("accelerator.pe_y:", "duplicate key 'pe_y'"),
    "accel-sexagesimal.yaml": ("accelerator.pe_x:", "YAML 1.1 reads it as 60"),
    "accel-yaml11-bool.yaml": ("layers[0].act_signed:", "YAML 1.1 reads it as True"),
    "accel-octal.yaml": ("accelerator.out_buf_kb:", "YAML 1.1 reads it as 64"),
    "accel-deep.json": ("", "nested deeper than 64 levels"),
    "accel-deep.yaml": ("provenance.extra.x[0][0]", "nested deeper than 64 levels"),
    "accel-extra-nested.json": ("provenance.extra.k.k", "nested deeper than 16 levels"),
    "accel-nan-totals.json": ("totals.latency_ms:", "finite number in 0..1e+30, got nan"),
    "accel-inf-predicted.json": ("layers[0].predicted.energy_pj.mac:", "finite number in 0..1e+30, got inf"),
    "accel-huge-cycles.json": ("layers[1].predicted.cycles:", "integer count in 0..9223372036854775807"),
    "accel-huge-clock.json": ("accelerator.clock_mhz:", "inf must be a clock in MHz in (0, 10000]"),
    "accel-nan-clock.json": ("accelerator.clock_mhz:", "nan must be a clock in MHz in (0, 10000]"),
    "accel-nan.yaml": ("accelerator.clock_mhz:", "nan must be a clock in MHz in (0, 10000]"),
    "accel-huge-layer.json": ("layers[0].out_ch:", "out of range 1..65536"),
    "accel-inf-layer.json": ("layers[0].out_w:", "integer in 1..65536, got -inf"),
    "accel-layer-name-not-string.json": ("layers[1].name:", "one-line text label"),
    "accel-dram-latency-zero.json": ("accelerator.dram_latency_cycles:", "0 out of range 1..100000"),
    "accel-missing-kernel.json": ("layers[1].kernel:", "missing (required in a hand-off file"),
    "accel-missing-bits.json": ("layers[0].wgt_bits:", "missing (required in a hand-off file"),
    "accel-missing-accelerator-field.json": ("accelerator.dram_bits_per_cycle:", "missing (required"),
    "accel-scales-nan.json": ("layers[0].scales.wgt_scale:", "not a finite number"),
    "accel-seed-65-bits.json": ("provenance.seed:", "0..9223372036854775807, got a 65-bit integer"),
    "accel-objective-nan.json": ("objective_weights[0]:", "finite number in 0..1e+06, got nan"),
    "accel-accuracy-inf.json": ("accuracy.top1:", "finite number"),
}

#: config fixture -> (field the message starts with, words it contains)
CONFIG_CASES: dict[str, tuple[str, str]] = {
    "config-alias-bomb.yaml": ("space_extra.l0:", "anchor &l0 refused"),
    "config-tag.yaml": ("name:", "!!binary refused"),
    "config-duplicate-key.yaml": ("search.epochs:", "duplicate key 'epochs'"),
    "config-sexagesimal.yaml": ("search.epochs:", "YAML 1.1 reads it as 90"),
    "config-yaml11-bool.yaml": ("plots:", "YAML 1.1 reads it as False"),
    "config-octal.yaml": ("search.batch_size:", "YAML 1.1 reads it as 14"),
    "config-deep.yaml": ("space.stem[0][0]", "nested deeper than 64 levels"),
    "config-nan-lambda.yaml": ("search.lambda:", "nan out of range 0..1e+09"),
    "config-inf-lr.yaml": ("search.lr:", "inf out of range 0..10"),
    "config-huge-float.yaml": ("search.grad_clip:", "inf out of range 0..1e+09"),
    "config-seed-65-bits.yaml": ("seed:", "65-bit integer out of range 0..9223372036854775807"),
    "config-name-dotdot.yaml": ("name:", "not a plain run name"),
    "config-name-separator.yaml": ("name:", "not a plain run name"),
    "config-dram-latency-zero.yaml": ("hardware.dram_latency_cycles:", "0 out of range 1..100000"),
    "config-unknown-space.yaml": ("space:", "unknown preset 'tinyy'"),
    "config-bad-space-field.yaml": ("space.gumbel.tau0:", "not a finite number"),
}


def _refused(capsys, argv: list[str]) -> str:
    """Run ``jaq ARGV`` in-process; assert exit 2, nothing on stdout, one stderr line; return the message."""
    rc = main(argv)
    out, err = capsys.readouterr()
    assert rc == 2, (rc, out, err)
    assert out == ""
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    prefix = f"jaq {argv[0]}: error: "
    assert lines[0].startswith(prefix), lines[0]
    return lines[0][len(prefix):]


def _check(msg: str, expect: tuple[str, str]) -> None:
    field, words = expect
    assert msg.startswith(field), msg
    assert words in msg, msg
    assert len(msg) < 400, msg


def test_every_fixture_has_a_case():
    on_disk = {p.name for p in HOSTILE.iterdir()}
    assert on_disk == set(ACCEL_CASES) | set(CONFIG_CASES)
    assert all(p.stat().st_size < 32_000 for p in HOSTILE.iterdir())  # small files, the bomb included
    assert (HOSTILE / "accel-alias-bomb.yaml").stat().st_size < 1500


@pytest.mark.parametrize("name", sorted(ACCEL_CASES))
def test_estimate_refuses(name, capsys, tmp_path):
    out = tmp_path / "out" / "accel.json"
    _check(_refused(capsys, ["estimate", str(HOSTILE / name), "-o", str(out)]), ACCEL_CASES[name])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", sorted(ACCEL_CASES))
def test_emit_rtl_refuses(name, capsys, tmp_path):
    _check(_refused(capsys, ["emit-rtl", str(HOSTILE / name), "-o", str(tmp_path / "build")]), ACCEL_CASES[name])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", sorted(CONFIG_CASES))
def test_co_search_refuses(name, capsys, tmp_path):
    msg = _refused(capsys, ["co-search", "--config", str(HOSTILE / name), "--out", str(tmp_path / "run")])
    _check(msg, CONFIG_CASES[name])
    assert list(tmp_path.iterdir()) == []


def test_alias_bomb_through_the_console_script(tmp_path):
    """The ~1 KB billion-laughs file through the installed `jaq` (a fresh process): refused at load."""
    p = subprocess.run([JAQ, "emit-rtl", str(HOSTILE / "accel-alias-bomb.yaml"), "-o", str(tmp_path / "b")],
                       capture_output=True, text=True, timeout=HANG_S)
    assert p.returncode == 2 and p.stdout == ""
    assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1
    assert p.stderr.startswith("jaq emit-rtl: error: provenance.extra.l0: YAML anchor &l0 refused")
    assert not (tmp_path / "b").exists()


# -- the strict loaders themselves (jaq.io) ---------------------------------------------------------------------

from jaq import io as jio  # noqa: E402
from jaq.errors import JaqError  # noqa: E402

#: Seconds after which a subprocess counts as hung (not slow: a loaded CI machine never decides a test).
HANG_S = 3000


def _load_text(tmp_path, text: str, suffix: str = ".yaml"):
    p = tmp_path / f"f{suffix}"
    p.write_text(text)
    return jio.load_structured(p)


def _load_error(tmp_path, text: str, suffix: str = ".yaml") -> str:
    with pytest.raises(JaqError) as e:
        _load_text(tmp_path, text, suffix)
    msg = str(e.value)
    assert "\n" not in msg and len(msg) < 400, msg
    return msg


def test_yaml_reads_core_scalars(tmp_path):
    doc = _load_text(tmp_path, "a: 1\nb: -2.5\nc: 1e-3\nd: true\ne: null\nf: ~\ng: 2026-11-23\nh: '010'\n"
                               "i: .inf\nj: [x, 'yes', \"1:00\"]\nk: B,OC,OH,OW,IC\nl: 0\nm: +3\n")
    assert doc == {"a": 1, "b": -2.5, "c": 0.001, "d": True, "e": None, "f": None, "g": "2026-11-23", "h": "010",
                   "i": float("inf"), "j": ["x", "yes", "1:00"], "k": "B,OC,OH,OW,IC", "l": 0, "m": 3}


@pytest.mark.parametrize("text, field, words", [
    ("x:\n  y: 1:00\n", "x.y:", "reads it as 60"),
    ("x: [on]\n", "x[0]:", "reads it as True"),
    ("x: No\n", "x:", "reads it as False"),
    ("x: 010\n", "x:", "reads it as 8"),
    ("x: 0x1F\n", "x:", "reads it as 31"),
    ("x: 1_000\n", "x:", "reads it as 1000"),
    ("x: 1:30.5\n", "x:", "reads it as 90.5"),
    ("x: {a: 1, a: 2}\n", "x.a:", "duplicate key 'a'"),
    ("x: &a [1]\ny: *a\n", "x:", "anchor &a refused"),
    ("x: [1, *a]\n", "x[1]:", "alias *a refused"),
    ("x: !!python/tuple [1]\n", "x:", "!!python/tuple refused"),
    ("x: !!set {a}\n", "x:", "!!set refused"),
    ("x: !!timestamp 2026-01-01\n", "x:", "!!timestamp refused"),
    ("x: !!int 0x10\n", "x:", "not a valid int"),
    ("x: !custom 1\n", "x:", "!custom refused"),
    ("x: " + "9" * 4001 + "\n", "x:", "4001 digits"),
    ("x: " + "[" * 70 + "]" * 70 + "\n", "x[0][0]", "nested deeper than 64"),
    ("? [a]\n: 1\n", "", "mapping keys must be plain names"),
])
def test_yaml_refusals_name_the_field(tmp_path, text, field, words):
    msg = _load_error(tmp_path, text)
    assert msg.startswith(field) and words in msg, msg


@pytest.mark.parametrize("text, words", [
    ('{"a": {"b": 1, "b": 2}}', "duplicate key 'b'"),
    ("[" * 100_000 + "]" * 100_000, "nested deeper than 64 levels"),
    ('{"a": ' + "1" * 5000 + "}", "number too long"),
    ('{"a": [1, 2', "malformed JSON"),
])
def test_json_refusals_are_one_line(tmp_path, text, words):
    assert words in _load_error(tmp_path, text, ".json")


def test_files_that_are_not_text_or_too_large(tmp_path, monkeypatch):
    p = tmp_path / "bin.yaml"
    p.write_bytes(b"\xff\xfe\x00a")
    with pytest.raises(JaqError, match="not a UTF-8 text file"):
        jio.load_yaml(p)
    monkeypatch.setattr(jio, "MAX_FILE_BYTES", 16)
    p.write_text("a: 1\nb: 2\nc: 3\nd: 4\n")
    with pytest.raises(JaqError, match="jaq reads files up to 16 bytes"):
        jio.load_yaml(p)


def test_json_nan_reaches_the_schema_which_names_the_field(tmp_path):
    assert _load_text(tmp_path, '{"a": NaN, "b": -Infinity}', ".json")["b"] == float("-inf")


def test_dump_yaml_round_trips_through_the_strict_loader(tmp_path):
    shared = [1, 2]
    obj = {"yes": "yes", "t": "1e5", "o": "010", "s": "1:00", "f": 1e-5, "n": None, "b": False, "l": shared,
           "l2": shared, "date": "2026-11-23", "u": "päd", "e": ""}
    text = jio.dump_yaml(obj)
    assert "&" not in text and "*" not in text  # shared objects are written out, never as anchors
    p = tmp_path / "r.yaml"
    p.write_text(text)
    assert jio.load_yaml(p) == obj


@pytest.mark.parametrize("value, field, words", [
    ({"a": [1, float("nan")]}, "x.a[1]", "not a finite number"),
    ({"a": 2 ** 64}, "x.a", "fit 64 bits"),
    ({"a": b"raw"}, "x.a", "got bytes"),
    ({"a": {1: 2}}, "x.a", "keys must be text"),
    ({"a": "x" * 70_000}, "x.a", "at most 65536"),
    ([[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]], "x[0]", "nested deeper than 16"),
    (list(range(100_001)), "x", "more than 100000 values"),
])
def test_check_plain_bounds_free_form_values(value, field, words):
    with pytest.raises(JaqError) as e:
        jio.check_plain(value, "x")
    msg = str(e.value)
    assert msg.startswith(field) and words in msg, msg


def test_check_plain_returns_a_plain_copy():
    src = {"a": (1, 2.5, "t", None, True), "b": {"c": []}}
    out = jio.check_plain(src, "x")
    assert out == {"a": [1, 2.5, "t", None, True], "b": {"c": []}} and out["b"] is not src["b"]


def test_atomic_writes_get_ordinary_permissions(tmp_path):
    """An atomically written file has the mode an ordinary open() would give it (umask applied), not 0600."""
    import os

    from jaq.io import atomic_write_text

    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        (tmp_path / "b.txt").write_text("x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == (tmp_path / "b.txt").stat().st_mode & 0o777 == 0o644
