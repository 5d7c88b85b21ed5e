"""Energy and area constants of the native cost model, each with its value, unit and source.

Sources:

* [BF] H. Sharma et al., "Bit Fusion: Bit-Level Dynamically Composable Architecture for Accelerating Deep Neural
  Networks", ISCA 2018, and its public simulator hsharma35/bitfusion (simulator/stats.py, energy.py,
  configuration bf_e_conf.ini): 45 nm, 500 MHz.
* [BF-CACTI] the CACTI 45 nm SRAM table used by that simulator (32-bit word, one bank), per bank size.
* [H14] M. Horowitz, "Computing's energy problem (and what we can do about it)", ISSCC 2014: 45 nm energies of
  integer arithmetic (32-bit multiply 3.1 pJ, 32-bit add 0.1 pJ).

Buffers of the search space (64-528 KB) are far beyond the CACTI table (128 B .. 16 KB). We *bank* each buffer
the way BitFusion does (simulator: WBUF one bank per fusion unit, IBUF one bank per array row, OBUF one bank per
array column), with the bank size clamped to the table's range [128 B, 16 KB] (a buffer whose natural bank would
exceed 16 KB gets more banks of 16 KB; one whose natural bank would be under 128 B gets fewer banks of 128 B).
Between table sizes, energy per bit and area per bank are interpolated linearly in log(size)-log(value) (the
table's own trend is close to a power law between neighbouring rows). This reproduces BitFusion's published
buffer areas of bf_e_conf exactly (WBUF 64 KB / 512 FUs = 128 B banks: 0.767 mm²; IBUF 32 KB / 16 rows = 2 KB
banks: 0.242 mm²; OBUF 16 KB / 32 columns = 512 B banks: 0.243 mm²) and never extrapolates beyond measured data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class Constant:
    name: str
    value: float
    unit: str
    source: str


BF = "BitFusion (Sharma et al., ISCA 2018) and its simulator (github.com/hsharma35/bitfusion), bf_e_conf 45 nm 500 MHz"
BF_CACTI = "CACTI 45 nm table of the BitFusion simulator (github.com/hsharma35/bitfusion; 32-bit word, one bank)"

#: Energy of one active fusion unit for one cycle (synthesized 4x4 BitFusion array, 500 MHz).
FU_ENERGY_PJ = Constant("fu_energy", 0.4592, "pJ per fusion-unit-cycle", BF)
#: Area of one fusion unit (16 BitBricks + shift/add tree).
FU_AREA_UM2 = Constant("fu_area", 1734.6, "um^2 per fusion unit", BF)
#: Leakage of one fusion unit (reported for reference; the model, like BitFusion's, counts dynamic energy only).
FU_LEAKAGE_UW = Constant("fu_leakage", 59.3, "uW per fusion unit (not used)", BF)
#: Off-chip DRAM access energy.
DRAM_PJ_PER_BIT = Constant("dram_energy", 15.0, "pJ per bit", BF)
#: Area overhead for the controller, instruction memory, address generators and DRAM interface, on top of FUs and
#: buffers. No published figure for BitFusion's controller: a project assumption, kept small and explicit.
AREA_OVERHEAD_FRAC = Constant("area_overhead", 0.05, "fraction of (FU + buffer) area",
                              "JAQ project assumption (controller/AGUs/DRAM interface; no published figure)")
#: Energy of one output-unit lane for one accumulator (docs/execution-model.md section 7): a 32-bit multiply
#: (3.1 pJ) and four 64-bit additions (2 x 0.1 pJ each) at 45 nm [H14].
OUTPUT_UNIT_PJ = Constant("out_unit_energy", 3.9, "pJ per output-unit lane per accumulator",
                          "Horowitz, ISSCC 2014 (45 nm): 32-bit multiply 3.1 pJ + four 64-bit adds")
#: Area of one output-unit lane (multipliers, 64-bit datapath, pipeline registers), calibrated on Yosys: the
#: OutputUnit synthesized to the project's 45 nm cell library (rtl_gen/synth.py, docs/rtl.md "Output unit"):
#: 59,084 um^2 at 4 lanes (14,949 at 1 lane), measured 2026-12-01.
OUTPUT_UNIT_LANE_UM2 = Constant("out_unit_area", 14771.0, "um^2 per output-unit lane (out_unit_lines * W/32 lanes)",
                                "JAQ Yosys synthesis of rtl_gen.output_unit.OutputUnit, 45 nm cells")
#: Words (channels) each of the three scale memories holds: one tile of up to 2^10 output channels.
SCALE_MEMORY_WORDS = 1024
#: Bank-size limits of the CACTI table.
BANK_MIN_BYTES = 128
BANK_MAX_BYTES = 16384

#: CACTI table rows used for interpolation: (bank bytes, read pJ/bit, write pJ/bit, area mm² per bank).
#: 4,096 B has two rows (ports 0 and 1): the single-port row (port 0) is used, as for every other size; 512 B
#: exists only as port 1 and 128 B only as port 0 (the table's only rows at those sizes).
CACTI_TABLE: tuple[tuple[int, float, float, float], ...] = (
    (128, 0.02137, 0.02892, 0.001499),
    (512, 0.03316, 0.07308, 0.007603),
    (1024, 0.03541, 0.10300, 0.008824),
    (2048, 0.05947, 0.11370, 0.015132),
    (4096, 0.10717, 0.13469, 0.030061),
    (8192, 0.19974, 0.17383, 0.057506),
    (16384, 0.31193, 0.26315, 0.108577),
)
#: The rows of the simulator's table left out of the interpolation (for the record).
CACTI_UNUSED_ROWS = ((4096, 1, 0.12448, 0.15785, 0.048574),)

_LOG_TABLE = torch.tensor([[math.log(v) for v in row] for row in CACTI_TABLE], dtype=torch.float64)


def _interp_loglog(bank_bytes: Any, col: int) -> Any:
    """Piecewise log-log interpolation of table column ``col`` (1 read, 2 write, 3 area) at ``bank_bytes``
    (clamped to the table range). Works on floats and tensors (differentiable in the bank size)."""
    is_t = isinstance(bank_bytes, torch.Tensor)
    x = bank_bytes if is_t else torch.tensor(float(bank_bytes), dtype=torch.float64)
    tab = _LOG_TABLE.to(device=x.device)
    lx = torch.log(x.clamp(BANK_MIN_BYTES, BANK_MAX_BYTES).to(torch.float64))
    xs = tab[:, 0].contiguous()
    i = torch.searchsorted(xs, lx.detach().contiguous(), right=True).clamp(1, len(xs) - 1)
    x0, x1 = xs[i - 1], xs[i]
    y0, y1 = tab[i - 1, col], tab[i, col]
    t = (lx - x0) / (x1 - x0)
    y = torch.exp(y0 + t * (y1 - y0))
    if is_t:
        return y.to(bank_bytes.dtype) if bank_bytes.is_floating_point() else y
    return float(y)


def sram_read_pj_per_bit(bank_bytes: Any) -> Any:
    return _interp_loglog(bank_bytes, 1)


def sram_write_pj_per_bit(bank_bytes: Any) -> Any:
    return _interp_loglog(bank_bytes, 2)


def sram_bank_area_mm2(bank_bytes: Any) -> Any:
    return _interp_loglog(bank_bytes, 3)


def natural_banks(buffer: str, pe_x: Any, pe_y: Any) -> Any:
    """BitFusion's bank count: wgt one per fusion unit (X*Y), act one per row (Y), out one per column (X)."""
    return {"wgt": pe_x * pe_y, "act": pe_y, "out": pe_x}[buffer]


def buffer_banking(capacity_kb: Any, buffer: str, pe_x: Any, pe_y: Any) -> tuple[Any, Any]:
    """(bank bytes, number of banks) of a buffer: natural banking, bank size clamped to [128 B, 16 KB]."""
    cap = capacity_kb * 1024.0
    nat = natural_banks(buffer, pe_x, pe_y)
    bank = cap / nat
    if isinstance(bank, torch.Tensor):
        bank = bank.clamp(BANK_MIN_BYTES, BANK_MAX_BYTES)
    else:
        bank = min(max(bank, BANK_MIN_BYTES), BANK_MAX_BYTES)
    return bank, cap / bank


def buffer_costs(capacity_kb: Any, buffer: str, pe_x: Any, pe_y: Any) -> dict[str, Any]:
    """Read/write energy (pJ per bit) and area (mm²) of one buffer; floats or tensors."""
    bank, n = buffer_banking(capacity_kb, buffer, pe_x, pe_y)
    return {"rd_pj_per_bit": sram_read_pj_per_bit(bank), "wr_pj_per_bit": sram_write_pj_per_bit(bank),
            "area_mm2": n * sram_bank_area_mm2(bank), "bank_bytes": bank, "banks": n}


def fu_array_area_mm2(pe_x: Any, pe_y: Any) -> Any:
    return pe_x * pe_y * FU_AREA_UM2.value * 1e-6


def scale_memory_costs() -> dict[str, float]:
    """The three scale memories of the output unit (one 32-bit word per channel each, one bank per memory):
    read/write pJ per bit and total mm²."""
    bank = SCALE_MEMORY_WORDS * 4
    return {"rd_pj_per_bit": float(sram_read_pj_per_bit(bank)), "wr_pj_per_bit": float(sram_write_pj_per_bit(bank)),
            "area_mm2": 3 * float(sram_bank_area_mm2(bank)), "bank_bytes": bank, "banks": 3}


def output_unit_area_mm2(bus_bits: Any, unit_lines: Any = 1) -> Any:
    """Area of the output unit (mm²): ``unit_lines * W/32`` lanes (docs/execution-model.md section 7.4)."""
    return unit_lines * bus_bits / 32 * OUTPUT_UNIT_LANE_UM2.value * 1e-6


def all_constants() -> list[Constant]:
    return [FU_ENERGY_PJ, FU_AREA_UM2, FU_LEAKAGE_UW, DRAM_PJ_PER_BIT, AREA_OVERHEAD_FRAC, OUTPUT_UNIT_PJ,
            OUTPUT_UNIT_LANE_UM2]


def render_table(accel=None) -> str:
    """The constants as a plain-text table (for ``jaq estimate --explain``). With an :class:`Accelerator`, also
    each buffer's banking and its interpolated per-bit energies and area."""
    lines = ["Native cost model constants (45 nm, 500 MHz)", "-" * 100,
             f"{'constant':<16}{'value':>12}  {'unit':<34}source"]
    for c in all_constants():
        lines.append(f"{c.name:<16}{c.value:>12g}  {c.unit:<34}{c.source}")
    lines += ["", f"CACTI table ({BF_CACTI}); interpolated log-log, banks clamped to 128 B..16 KB:",
              f"{'bank bytes':>10} {'read pJ/bit':>12} {'write pJ/bit':>13} {'area mm2/bank':>14}"]
    for b, r, w, a in CACTI_TABLE:
        lines.append(f"{b:>10d} {r:>12.5f} {w:>13.5f} {a:>14.6f}")
    if accel is not None:
        lines += ["", f"buffers of this accelerator (PE {accel.pe_y} rows x {accel.pe_x} columns):",
                  f"{'buffer':<6} {'KB':>5} {'banks':>7} {'bank B':>8} {'read pJ/bit':>12} {'write pJ/bit':>13} "
                  f"{'area mm2':>9}"]
        for name, kb in (("act", accel.act_buf_kb), ("wgt", accel.wgt_buf_kb), ("out", accel.out_buf_kb)):
            c = buffer_costs(kb, name, accel.pe_x, accel.pe_y)
            lines.append(f"{name:<6} {kb:>5d} {c['banks']:>7.1f} {c['bank_bytes']:>8.1f} "
                         f"{c['rd_pj_per_bit']:>12.5f} {c['wr_pj_per_bit']:>13.5f} {c['area_mm2']:>9.4f}")
        lines.append(f"fusion units: {accel.pe_x * accel.pe_y} x {FU_AREA_UM2.value} um^2 = "
                     f"{fu_array_area_mm2(accel.pe_x, accel.pe_y):.4f} mm^2; overhead "
                     f"{AREA_OVERHEAD_FRAC.value:.0%} of FU + buffers")
    return "\n".join(lines)
