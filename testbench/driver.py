"""Instruction-stream driver and performance-counter monitor of the accelerator top level (cocotb 2.x).

Same sampling scheme as :mod:`testbench.memory`: act at the falling edge, handshakes happen at the next
rising edge (``instr_valid & instr_ready``).
"""

from __future__ import annotations

import random
from typing import Sequence

import cocotb
from cocotb.triggers import FallingEdge, RisingEdge
from cocotb.utils import get_sim_time

from rtl_gen.protocol import COUNTERS as COUNTER_NAMES
from rtl_gen.protocol import OPCODE_BITS


class InstructionDriver:
    """Feeds ``program`` (a list of ``INSTR_BITS``-wide integers) on instr_valid/instr_ready/instr_data.

    ``gap_p`` > 0 inserts random idle cycles between instructions (stalling mode). ``accepted_cycles[i]`` is the
    cycle (simulation time in clock periods) whose closing rising edge took instruction ``i``. While the DUT
    holds ``instr_ready`` low the driver sleeps until it rises (same behaviour as polling every cycle).
    """

    def __init__(self, dut, program: Sequence[int], gap_p: float = 0.0, seed: int = 2, clock_ns: int = 10,
                 mark_opcode: int = -1, counters: Sequence[str] | None = None):
        self.dut = dut
        self.program = [int(p) for p in program]
        self.gap_p = gap_p
        self.rng = random.Random(seed)
        self.index = 0
        self.cycle = 0
        self.accepted_cycles: list[int] = []
        self._task = None
        self._stopped = False
        self.clock_ns = clock_ns
        self.mark_opcode = mark_opcode
        self.counter_names = counters
        #: counters read in the cycle an instruction with ``mark_opcode`` was taken (before its issue cycle
        #: counts: the totals of everything before it, since the controller takes an instruction only when idle)
        self.marks: list[dict[str, int]] = []

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
        """Stop at the next wake-up (the task returns by itself; it never drives again)."""
        self._stopped = True
        self._task = None

    async def _run(self) -> None:
        dut = self.dut
        fall = FallingEdge(dut.clk)
        n = len(self.program)
        while self.index < n:
            await fall
            if self._stopped:
                return
            self.cycle = int(get_sim_time("ns") // self.clock_ns)
            if self.gap_p and self.rng.random() < self.gap_p:
                dut.instr_valid.value = 0
                continue
            dut.instr_data.value = self.program[self.index]
            dut.instr_valid.value = 1
            if int(dut.instr_ready.value):
                self.accepted_cycles.append(self.cycle)
                if self.program[self.index] & ((1 << OPCODE_BITS) - 1) == self.mark_opcode:
                    self.marks.append(read_counters(dut, self.counter_names or COUNTER_NAMES))
                self.index += 1
            elif not self.gap_p:
                await RisingEdge(dut.instr_ready)
                if self._stopped:
                    return
        await fall
        if not self._stopped:
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
