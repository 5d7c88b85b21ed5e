"""Issue 12, part A: no code runs from a run directory, nothing is deleted or overwritten that jaq did not write,
builds are atomic and verified, and bad flags or output paths are one-line errors raised before anything is
written.

Every CLI case checks the exit code (2), that stderr is one ``jaq CMD: error:`` line, and that what existed before
is still there. Nothing here runs Verilator (``jaq simulate`` refuses before it builds).
"""

from __future__ import annotations

import builtins
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from jaq.cli import main
from jaq.errors import JaqError
from jaq.search.config import validate_config
from jaq.search.rundir import MARKER, prepare_run_dir, safe_torch_load, write_config

TINY = {"name": "t", "seed": 3, "threads": 1, "plots": False, "data": {"dataset": "digits", "augment": False},
        "space": "tiny",
        "search": {"epochs": 1, "warmup_epochs": 0, "batch_size": 32, "max_steps_per_epoch": 1, "lambda": 0.5},
        "hardware": {"generator_hidden": 16}, "retrain": {"epochs": 1, "max_steps_per_epoch": 1}}

#: tests/test_sim_cli.py's hand-off file, every hardware-defining field spelled out.
SPEC = {
    "schema_version": "jaq.accel/1",
    "accelerator": {"pe_x": 4, "pe_y": 3, "act_buf_kb": 64, "wgt_buf_kb": 64, "out_buf_kb": 64, "dataflow": "WS",
                    "loop_order": "B,OC,OH,OW,IC", "clock_mhz": 500, "dram_bits_per_cycle": 64,
                    "dram_latency_cycles": 3, "out_unit_lines": 4, "double_buffer": False},
    "network": {"layers": [
        {"kind": "conv", "in_ch": 5, "out_ch": 4, "out_h": 3, "out_w": 3, "kernel": 3, "stride": 1, "act_bits": 8,
         "wgt_bits": 4, "name": "c0", "tiling": {"t_ic": 4, "t_oc": 2, "t_oh": 2, "t_ow": 2,
                                                "loop_order": "B,OH,OW,OC,IC"}},
        {"kind": "fc", "in_ch": 20, "out_ch": 6, "out_h": 1, "out_w": 1, "kernel": 1, "stride": 1, "act_bits": 4,
         "wgt_bits": 8, "name": "fc1", "tiling": {"t_ic": 16, "t_oc": 4, "t_oh": 1, "t_ow": 1,
                                                 "loop_order": "B,OC,IC,OH,OW"}},
    ]},
}


def one_line_error(capsys, cmd: str) -> str:
    """stderr of the last command: exactly one ``jaq CMD: error:`` line (returned)."""
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"jaq {cmd}: error:"), err
    return err


def argparse_error(capsys, argv: list[str]) -> str:
    """``argv`` is refused by argparse: exit 2 and one error line (no usage block, no traceback)."""
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "error: argument" in err, err
    return err


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def cfg_file(tmp_path) -> Path:
    f = tmp_path / "tiny.yaml"
    f.write_text(yaml.safe_dump(TINY))
    return f


# ---------------------------------------------------------------------------------------------------------------
# 1. Never unpickle from a run directory
# ---------------------------------------------------------------------------------------------------------------
class Payload:
    """Unpickling this creates ``path`` (``open(path, "w")``): the stand-in for arbitrary code."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return builtins.open, (self.path, "w")


def plant(target: Path, marker: Path) -> None:
    """A ``.pt`` file whose unpickling would run code; checked live once (weights_only=False runs it)."""
    torch.save({"history": [Payload(marker)], "state_dict": {}, "space": {}, "choice": {}}, target)
    f = torch.load(target, weights_only=False)  # the control: an unsafe load does run the payload
    f["history"][0].close()
    assert marker.exists()
    marker.unlink()


def test_report_does_not_run_a_checkpoint_payload(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    write_config(run, validate_config(json.loads(json.dumps(TINY))))
    (run / "metrics.jsonl").write_text(json.dumps({"kind": "epoch", "epoch": 1}) + "\n")
    plant(run / "checkpoint.pt", tmp_path / "PWNED")
    assert main(["report", str(run)]) == 2
    err = one_line_error(capsys, "report")
    assert "checkpoint.pt" in err and "could run code" in err
    assert not (tmp_path / "PWNED").exists()


def test_resume_does_not_run_a_checkpoint_payload(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    write_config(run, validate_config(json.loads(json.dumps(TINY))))
    plant(run / "checkpoint.pt", tmp_path / "PWNED")
    assert main(["co-search", "--out", str(run), "--resume", "--quiet"]) == 2
    assert "could run code" in one_line_error(capsys, "co-search")
    assert not (tmp_path / "PWNED").exists()


def test_network_simulation_does_not_run_a_retrained_payload(tmp_path):
    from sim.network import load_run

    run = tmp_path / "run"
    run.mkdir()
    (run / "accel.json").write_text(json.dumps(SPEC))
    plant(run / "retrained.pt", tmp_path / "PWNED")
    with pytest.raises(JaqError, match="could run code") as e:
        load_run(run)
    assert "\n" not in str(e.value) and "retrained.pt" in str(e.value)
    assert not (tmp_path / "PWNED").exists()


def test_checkpoints_load_weights_only_and_old_rng_states_still_load(tmp_path):
    """New checkpoints hold the numpy RNG state as a tensor; an older one (an ndarray) still loads safely and
    restores the same random stream."""
    from jaq.search.cosearch import _rng_state, _set_rng_state

    np.random.seed(11)
    np.random.randn()  # a cached Gaussian is part of the state
    torch.save({"rng": _rng_state()}, tmp_path / "new.pt")
    torch.save({"rng": {**_rng_state(), "numpy": np.random.get_state()}}, tmp_path / "old.pt")
    want = np.random.rand(4)
    for name in ("new.pt", "old.pt"):
        st = torch.load(tmp_path / name, weights_only=True) if name == "new.pt" else safe_torch_load(
            tmp_path / name)
        _set_rng_state(st["rng"])
        assert np.array_equal(np.random.rand(4), want), name


def test_damaged_checkpoint_is_one_line(tmp_path):
    f = tmp_path / "checkpoint.pt"
    f.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(JaqError) as e:
        safe_torch_load(f)
    assert "\n" not in str(e.value) and "cannot read" in str(e.value)


# ---------------------------------------------------------------------------------------------------------------
# 2. --force deletes only what jaq wrote, only in a marked run directory
# ---------------------------------------------------------------------------------------------------------------
def test_force_refuses_to_delete_a_non_run_directory(tmp_path, cfg_file, capsys):
    d = tmp_path / "project"
    (d / "src").mkdir(parents=True)
    (d / "src" / "main.c").write_text("int main(void) { return 0; }\n")
    (d / "notes.txt").write_text("keep me")
    before = snapshot(d)
    for cmd in ("co-search", "flow"):
        assert main([cmd, "--config", str(cfg_file), "--out", str(d), "--force", "--quiet"]) == 2
        assert "not a jaq run directory" in one_line_error(capsys, cmd)
        assert snapshot(d) == before


def test_force_refuses_the_current_directory(tmp_path, cfg_file, capsys, monkeypatch):
    (tmp_path / MARKER).write_text("{}")  # even a marked one: it holds the current directory
    (tmp_path / "notes.txt").write_text("keep me")
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)
    assert main(["co-search", "--config", str(cfg_file), "--out", ".", "--force", "--quiet"]) == 2
    assert "current directory" in one_line_error(capsys, "co-search")
    assert snapshot(tmp_path) == before


def test_force_refuses_a_run_directory_holding_the_config(tmp_path, capsys):
    run = prepare_run_dir(tmp_path / "run", resume=False, force=False)
    cfg = run / "my.yaml"
    cfg.write_text(yaml.safe_dump(TINY))
    (run / "metrics.jsonl").write_text("{}\n")
    before = snapshot(run)
    for cmd in ("co-search", "flow"):
        assert main([cmd, "--config", str(cfg), "--out", str(run), "--force", "--quiet"]) == 2
        assert "my.yaml is inside" in one_line_error(capsys, cmd)
        assert snapshot(run) == before


def test_force_deletes_only_jaq_outputs(tmp_path):
    run = prepare_run_dir(tmp_path / "run", resume=False, force=False)
    assert (run / MARKER).is_file()
    for f in ("config.yaml", "metrics.jsonl", "checkpoint.pt", "accel.json", "flow.json", ".accel.json.x1.tmp"):
        (run / f).write_text("jaq")
    (run / "plots").mkdir()
    (run / "plots" / "cost.png").write_text("png")
    sub = prepare_run_dir(run / "lambda_0.5", resume=False, force=False)  # a sweep's sub-run
    (sub / "accel.json").write_text("jaq")
    (sub / "mine.txt").write_text("user")
    (run / "README.txt").write_text("user")
    (run / "data").mkdir()
    (run / "data" / "x.csv").write_text("user")
    prepare_run_dir(run, resume=False, force=True)
    left = sorted(str(p.relative_to(run)) for p in run.rglob("*"))
    assert left == [MARKER, "README.txt", "data", "data/x.csv", "lambda_0.5", f"lambda_0.5/{MARKER}",
                    "lambda_0.5/mine.txt"]


def test_a_run_that_failed_before_its_first_epoch_may_start_again(tmp_path):
    run = prepare_run_dir(tmp_path / "run", resume=False, force=False)
    write_config(run, validate_config(json.loads(json.dumps(TINY))))
    assert prepare_run_dir(run, resume=False, force=False) == run  # only marker + config.yaml: not refused
    (run / "metrics.jsonl").write_text("{}\n")
    with pytest.raises(JaqError, match="not empty"):
        prepare_run_dir(run, resume=False, force=False)


def test_unknown_space_preset_fails_before_the_run_directory_exists(tmp_path, capsys):
    bad = dict(TINY, space="tinyy")
    f = tmp_path / "bad.yaml"
    f.write_text(yaml.safe_dump(bad))
    for cmd in ("co-search", "flow"):
        out = tmp_path / f"run-{cmd}"
        assert main([cmd, "--config", str(f), "--out", str(out), "--quiet"]) == 2
        assert "unknown preset" in one_line_error(capsys, cmd)
        assert not out.exists()


def test_unknown_device_fails_before_the_run_directory_exists(tmp_path, cfg_file, capsys):
    out = tmp_path / "run"
    assert main(["co-search", "--config", str(cfg_file), "--out", str(out), "--device", "tpu", "--quiet"]) == 2
    assert "--device" in one_line_error(capsys, "co-search")
    assert not out.exists()


# ---------------------------------------------------------------------------------------------------------------
# 3 and 5. emit-rtl / estimate outputs; atomic, verified builds
# ---------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def emitted(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("emit")
    (d / "accel.json").write_text(json.dumps(SPEC))
    assert main(["emit-rtl", str(d / "accel.json"), "-o", str(d / "build")]) == 0
    return d / "build"


def copy_build(emitted: Path, dest: Path) -> Path:
    shutil.copytree(emitted, dest)
    return dest


def test_emit_rtl_refuses_a_non_empty_out_without_force(emitted, tmp_path, capsys):
    b = copy_build(emitted, tmp_path / "build")
    before = snapshot(b)
    assert main(["emit-rtl", str(b / "accel.json"), "-o", str(tmp_path / "build")]) == 2
    assert "holds the input" in one_line_error(capsys, "emit-rtl")  # -o is the input's folder
    spec = tmp_path / "accel.json"
    spec.write_text(json.dumps(SPEC))
    assert main(["emit-rtl", str(spec), "-o", str(b)]) == 2
    assert "--force" in one_line_error(capsys, "emit-rtl")
    assert snapshot(b) == before
    assert main(["emit-rtl", str(b / "accel.json"), "-o", str(b), "--force"]) == 2  # never over the input
    assert "holds the input" in one_line_error(capsys, "emit-rtl")
    assert snapshot(b) == before
    assert main(["emit-rtl", str(spec), "-o", str(b), "--force"]) == 0
    from sim.build_dir import load_build_dir
    assert load_build_dir(b).toplevel == "jaq_accel"


def test_emit_rtl_into_a_linked_build_replaces_the_target(emitted, tmp_path, capsys):
    target = copy_build(emitted, tmp_path / "scratch" / "build")
    (tmp_path / "build").symlink_to(target, target_is_directory=True)
    spec = tmp_path / "accel.json"
    other = json.loads(json.dumps(SPEC))
    other["network"]["layers"] = other["network"]["layers"][:1]
    spec.write_text(json.dumps(other))
    assert main(["emit-rtl", str(spec), "-o", str(tmp_path / "build"), "--force"]) == 0
    capsys.readouterr()
    assert (tmp_path / "build").is_symlink() and not (target / "programs" / "layer_001.hex").exists()
    from sim.build_dir import load_build_dir
    assert len(load_build_dir(tmp_path / "build").layers) == 1


def test_emit_rtl_force_replaces_only_a_build(tmp_path, capsys):
    d = tmp_path / "src"
    d.mkdir()
    (d / "notes.txt").write_text("keep me")
    spec = tmp_path / "accel.json"
    spec.write_text(json.dumps(SPEC))
    assert main(["emit-rtl", str(spec), "-o", str(d), "--force"]) == 2
    assert "not a jaq emit-rtl build" in one_line_error(capsys, "emit-rtl")
    assert (d / "notes.txt").read_text() == "keep me"


def test_emit_rtl_refuses_bad_output_paths_and_top(tmp_path, capsys):
    spec = tmp_path / "accel.json"
    spec.write_text(json.dumps(SPEC))
    (tmp_path / "afile").write_text("x")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    for out, words in (("afile", "not a directory"), ("dangling", "dangling symbolic link"),
                       ("afile/build", "is a file")):
        assert main(["emit-rtl", str(spec), "-o", str(tmp_path / out)]) == 2
        assert words in one_line_error(capsys, "emit-rtl"), out
    for top in ("../x", "a/b", "1abc", "module", "x y", "top$"):
        assert "not a Verilog identifier" in argparse_error(capsys, ["emit-rtl", str(spec), "--top", top])
    assert not (tmp_path / "x").exists() and not (tmp_path / "build").exists()
    assert (tmp_path / "afile").read_text() == "x"


def test_emit_rtl_interrupted_leaves_the_old_build(emitted, tmp_path, monkeypatch, capsys):
    """A kill after the programs were written (here: KeyboardInterrupt in the Verilog generator) leaves OUT as
    it was, verified, and no temporary folder behind; the other design's files never mix in."""
    import rtl_gen.top

    b = copy_build(emitted, tmp_path / "build")
    before = snapshot(b)
    other = json.loads(json.dumps(SPEC))
    other["network"]["layers"] = other["network"]["layers"][:1]
    other["accelerator"]["pe_x"] = 5
    spec = tmp_path / "other.json"
    spec.write_text(json.dumps(other))

    def killed(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(rtl_gen.top, "emit_verilog", killed)
    assert main(["emit-rtl", str(spec), "-o", str(b), "--force"]) == 130
    capsys.readouterr()
    assert snapshot(b) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["build", "other.json"]
    from sim.build_dir import load_build_dir
    assert load_build_dir(b).accel.pe_x == 4


def test_simulate_refuses_an_edited_or_incomplete_build(emitted, tmp_path, capsys):
    edited = copy_build(emitted, tmp_path / "edited")
    with open(edited / "rtl" / "jaq_accel.v", "a") as f:
        f.write("// edited\n")
    incomplete = copy_build(emitted, tmp_path / "incomplete")
    (incomplete / "programs" / "layer_001.hex").unlink()
    for b, what in ((edited, "rtl/jaq_accel.v differs"), (incomplete, "programs/layer_001.hex is missing")):
        assert main(["simulate", str(b)]) == 2
        err = one_line_error(capsys, "simulate")
        assert "incomplete or stale build" in err and what in err and "re-run emit-rtl" in err
        assert not (b / "sim").exists()


def test_simulate_refuses_hardware_the_simulator_cannot_run(emitted, tmp_path, capsys):
    """dram_latency_cycles 0 (the memory model needs >= 1): one line naming the field, before any build."""
    from jaq.commands.emit_rtl import file_hashes

    b = copy_build(emitted, tmp_path / "build")
    spec = json.loads((b / "accel.json").read_text())
    spec["accelerator"]["dram_latency_cycles"] = 0
    (b / "accel.json").write_text(json.dumps(spec))
    man = json.loads((b / "manifest.json").read_text())
    man["sha256"] = file_hashes(b, list(man["sha256"]))  # a consistent manifest: only the value is wrong
    (b / "manifest.json").write_text(json.dumps(man))
    assert main(["simulate", str(b)]) == 2
    assert "dram_latency_cycles" in one_line_error(capsys, "simulate")


def test_simulate_report_path_checks(emitted, tmp_path, capsys):
    b = copy_build(emitted, tmp_path / "build")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    for rep, words in ((tmp_path, "is a directory"), (tmp_path / "dangling", "dangling symbolic link")):
        assert main(["simulate", str(b), "--report", str(rep)]) == 2
        assert words in one_line_error(capsys, "simulate")


def test_estimate_output_needs_force(tmp_path, capsys):
    spec = tmp_path / "accel.json"
    spec.write_text(json.dumps(SPEC))
    out = tmp_path / "out.json"
    out.write_text("mine")
    assert main(["estimate", str(spec), "-o", str(out)]) == 2
    assert "--force" in one_line_error(capsys, "estimate")
    assert out.read_text() == "mine"
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    for bad, words in ((tmp_path, "is a directory"), (tmp_path / "dangling", "dangling symbolic link"),
                       (out / "x.json", "is a file")):
        assert main(["estimate", str(spec), "-o", str(bad)]) == 2
        assert words in one_line_error(capsys, "estimate")
    assert main(["estimate", str(spec), "-o", str(out), "--force"]) == 0
    capsys.readouterr()
    assert json.loads(out.read_text())["totals"]["cycles"] > 0


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only directory anyway, so there is no "
                                                 "refusal to observe")
def test_unwritable_outputs(tmp_path, cfg_file, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    spec = tmp_path / "accel.json"
    spec.write_text(json.dumps(SPEC))
    ro.chmod(0o555)
    try:
        assert main(["estimate", str(spec), "-o", str(ro / "x.json")]) == 2
        assert "not writable" in one_line_error(capsys, "estimate")
        assert main(["emit-rtl", str(spec), "-o", str(ro / "build")]) == 2
        assert "not writable" in one_line_error(capsys, "emit-rtl")
        assert main(["co-search", "--config", str(cfg_file), "--out", str(ro / "run"), "--quiet"]) == 2
        assert "not writable" in one_line_error(capsys, "co-search")
    finally:
        ro.chmod(0o755)


def test_unwritable_outputs_as_seen_by_access(tmp_path, cfg_file, capsys, monkeypatch):
    """The same refusals when the process's own rights say no (``os.access``), which also holds for root."""
    ro = tmp_path / "ro"
    ro.mkdir()
    spec = tmp_path / "accel.json"
    spec.write_text(json.dumps(SPEC))
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **k: Path(p) != ro and real(p, mode, **k))
    for argv, cmd in (([str(spec), "-o", str(ro / "x.json")], "estimate"),
                      ([str(spec), "-o", str(ro / "build")], "emit-rtl"),
                      (["--config", str(cfg_file), "--out", str(ro / "run"), "--quiet"], "co-search"),
                      ([str(tmp_path), "-o", str(ro)], "report")):
        assert main([cmd, *argv]) == 2
        assert "not writable" in one_line_error(capsys, cmd), cmd
    assert list(ro.iterdir()) == []


def test_run_dir_output_paths(tmp_path, cfg_file, capsys):
    (tmp_path / "afile").write_text("x")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    for out, words in (("afile", "not a directory"), ("dangling", "dangling symbolic link"),
                       ("afile/run", "is not a directory")):
        assert main(["co-search", "--config", str(cfg_file), "--out", str(tmp_path / out), "--quiet"]) == 2
        assert words in one_line_error(capsys, "co-search"), out
    for out, words in (("afile", "not a directory"), ("dangling", "dangling symbolic link"),
                       ("afile/report", "is a file")):
        assert main(["report", str(tmp_path), "-o", str(tmp_path / out)]) == 2
        assert words in one_line_error(capsys, "report"), out
    assert (tmp_path / "afile").read_text() == "x"


# ---------------------------------------------------------------------------------------------------------------
# Numeric flags: NaN / Infinity / out of range refused by argparse, at once
# ---------------------------------------------------------------------------------------------------------------
BAD_FLAGS = [
    ["co-search", "--config", "c.yaml", "--lambda", "nan"],
    ["co-search", "--config", "c.yaml", "--lambda", "inf"],
    ["co-search", "--config", "c.yaml", "--lambda", "-1"],
    ["co-search", "--config", "c.yaml", "--seed", str(2 ** 64)],
    ["co-search", "--config", "c.yaml", "--seed", "-1"],
    ["co-search", "--config", "c.yaml", "--epochs", "0"],
    ["co-search", "--config", "c.yaml", "--epochs", "1e3"],
    ["co-search", "--config", "c.yaml", "--threads", "0"],
    ["co-search", "--config", "c.yaml", "--sweep-lambda", "0.1,nan"],
    ["co-search", "--config", "c.yaml", "--sweep-lambda", "0.1,Infinity"],
    ["flow", "--config", "c.yaml", "--synth-timeout", "nan"],
    ["flow", "--config", "c.yaml", "--synth-timeout", "-5"],
    ["flow", "--config", "c.yaml", "--max-steps", "0"],
    ["flow", "--config", "c.yaml", "--epochs", "nan"],
    ["flow", "--config", "c.yaml", "--retrain-epochs", "-1"],
    ["retrain", "run", "--epochs", "-3"],
    ["emit-rtl", "a.json", "--max-kernel", "0"],
    ["emit-rtl", "a.json", "--max-kernel", "nan"],
    ["simulate", "build", "--layer", "-1"],
    ["simulate", "build", "--seed", str(2 ** 40)],
]


@pytest.mark.parametrize("argv", BAD_FLAGS, ids=[" ".join(a[:1] + a[-2:]) for a in BAD_FLAGS])
def test_bad_numeric_flags_fail_at_once(argv, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # none of the named files exist: argparse must refuse before any is opened
    err = argparse_error(capsys, argv)
    assert argv[-2] in err
    assert list(tmp_path.iterdir()) == []


def test_cli_types_accept_good_values():
    from jaq.cli_types import bounded_int, finite_float, finite_float_list, verilog_identifier

    assert finite_float(0, 1e9)("0.05") == 0.05 and finite_float(0)("0") == 0.0
    assert bounded_int(0, 10)(" 7 ") == 7
    assert finite_float_list(0)("0.05, 0.5,2") == [0.05, 0.5, 2.0]
    assert verilog_identifier("jaq_accel") == "jaq_accel" and verilog_identifier("_T1") == "_T1"


# ---------------------------------------------------------------------------------------------------------------
# --help documents --force; a crashed simulator's log is kept
# ---------------------------------------------------------------------------------------------------------------
def test_help_documents_force(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    top = capsys.readouterr().out
    assert "--force" in top
    for cmd in ("co-search", "flow", "emit-rtl", "estimate"):
        with pytest.raises(SystemExit):
            main([cmd, "--help"])
        text = capsys.readouterr().out
        assert "--force" in text, cmd


def test_crashed_simulator_log_is_kept(tmp_path):
    from sim.harness import keep_log

    work = tmp_path / "work"
    work.mkdir()
    (work / "sim.log").write_text("segfault\n")
    kept = keep_log(work / "sim.log", tmp_path / "sim")
    shutil.rmtree(work)  # the temporary work directory goes away; the kept log stays
    assert kept == tmp_path / "sim" / "sim.log" and kept.read_text() == "segfault\n"
    default = keep_log(_write(tmp_path / "w2" / "sim.log", "x"))
    assert default is not None and default.is_file() and default.parent != tmp_path / "w2"
    shutil.rmtree(default.parent)
    assert keep_log(tmp_path / "missing.log", tmp_path / "sim2") is None


def _write(p: Path, text: str) -> Path:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


def test_simulator_crash_names_a_log_that_exists(emitted, tmp_path, monkeypatch):
    """The simulator dies without results (stand-in: a runner that only writes its log): the report's errors
    name the kept log, which still exists after the temporary work directory is gone."""
    import sim.harness as harness
    from sim.build_dir import load_build_dir
    from sim.verilator import CocotbResult, SimBuild

    def crashed(build, module, test_dir, **kw):
        log = Path(test_dir) / "sim.log"
        log.write_text("%Error: simulator died\n")
        return CocotbResult(0, 0, Path(test_dir) / "results.xml", 0.0, log)

    monkeypatch.setattr(harness, "run_cocotb", crashed)
    b = load_build_dir(emitted)
    cases = [harness.LayerCase(b.layers[0], b.tilings[0], name="c0")]
    fake = SimBuild(tmp_path / "model", "jaq_accel", "k", False, 0.0, False)
    rep = harness.simulate_layers(b.accel, cases, build=fake, programs=[b.programs[0]], log_dir=tmp_path / "sim")
    assert not rep.ok and rep.errors
    kept = tmp_path / "sim" / "sim.log"
    assert all(str(kept) in e for e in rep.errors) and kept.read_text() == "%Error: simulator died\n"
