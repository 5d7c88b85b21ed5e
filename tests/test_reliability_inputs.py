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
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 2 and p.stdout == ""
    assert "Traceback" not in p.stderr and len(p.stderr.strip().splitlines()) == 1
    assert p.stderr.startswith("jaq emit-rtl: error: provenance.extra.l0: YAML anchor &l0 refused")
    assert not (tmp_path / "b").exists()
