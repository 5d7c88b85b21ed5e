"""Instruction-stream driver and performance-counter monitor of the accelerator top level (cocotb 2.x).

Same sampling scheme as :mod:`testbench.memory`: act at the falling edge, handshakes happen at the next
rising edge (``instr_valid & instr_ready``).
"""

from __future__ import annotations

import random
from typing import Sequence

import cocotb
from cocotb.triggers import FallingEdge

#: Counter ports of the top level (docs/rtl.md), in report order.
COUNTER_NAMES: tuple[str, ...] = ("cnt_cycles", "cnt_fu_active", "cnt_act_rd", "cnt_wgt_rd", "cnt_out_rd",
                                  "cnt_out_wr", "cnt_act_wr", "cnt_wgt_wr", "cnt_dram_rd_beats",
                                  "cnt_dram_wr_beats")


class InstructionDriver:
    """Feeds ``program`` (a list of ``INSTR_BITS``-wide integers) on instr_valid/instr_ready/instr_data.

    ``gap_p`` > 0 inserts random idle cycles between instructions (stalling mode). ``accepted_cycles[i]`` is the
    falling-edge cycle before the rising edge that took instruction ``i``.
    """

    def __init__(self, dut, program: Sequence[int], gap_p: float = 0.0, seed: int = 2):
        self.dut = dut
        self.program = [int(p) for p in program]
        self.gap_p = gap_p
        self.rng = random.Random(seed)
        self.index = 0
        self.cycle = 0
        self.accepted_cycles: list[int] = []
        self._task = None

    def reset_signals(self) -> None:
        self.dut.instr_valid.value = 0
        self.dut.instr_data.value = 0

    @property
    def finished(self) -> bool:
        return self.index >= len(self.program)

    def start(self) -> None:
        if self._task is not None:
            raise RuntimeError("instruction driver already started")
        self._task = cocotb.start_soon(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _run(self) -> None:
        dut = self.dut
        fall = FallingEdge(dut.clk)
        n = len(self.program)
        while self.index < n:
            await fall
            self.cycle += 1
            if self.gap_p and self.rng.random() < self.gap_p:
                dut.instr_valid.value = 0
                continue
            dut.instr_data.value = self.program[self.index]
            dut.instr_valid.value = 1
            if int(dut.instr_ready.value):
                self.accepted_cycles.append(self.cycle)
                self.index += 1
        await fall
        dut.instr_valid.value = 0


def read_counters(dut, names: Sequence[str] = COUNTER_NAMES) -> dict[str, int]:
    """Current values of the counter ports that exist on ``dut`` (missing ones are left out)."""
    out = {}
    for n in names:
        try:
            h = getattr(dut, n)
        except AttributeError:
            continue
        out[n] = int(h.value)
    return out


__all__ = ["InstructionDriver", "read_counters", "COUNTER_NAMES"]
