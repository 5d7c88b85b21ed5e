"""Testbench environment shared by the top-level testbenches: job files in/out and the run loop.

The harness (``sim.harness``) writes a *job* (``.npz``) and passes its path in ``$JAQ_TB_JOB``; the cocotb test
loads it, plays the memory and the instruction stream, waits for ``done``, and writes ``$JAQ_TB_JOB`` with the
suffix ``.result.npz``: the final memory, the counters (in total and at every ``SET_LAYER``: one program stream
may hold many layers) and what the memory monitor saw. The checker (bit-exact outputs) runs in the testbench as
an assertion, and again in the harness, which also compares the counters with the schedule walk and the cost
model.

Job fields: ``memory`` (uint8: the flat off-chip memory image, jaq.hw.placement), ``expected`` / ``mask``
(uint8, optional: the bits the program must leave, and which bits are checked), ``width_bits`` (W), ``latency``
(L), ``program`` (instruction words as hex strings), ``stall`` (0/1), ``seed``, ``max_cycles``, ``counters``
(names of the counter ports to read), ``mark_opcode`` (counters are also read when an instruction with this
opcode is taken; -1: never).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

JOB_ENV = "JAQ_TB_JOB"


@dataclass
class Job:
    """Everything one simulated program needs (units: bytes of memory, bits, cycles)."""

    memory: np.ndarray
    width_bits: int
    latency: int
    program: list[int]
    expected: np.ndarray | None = None
    mask: np.ndarray | None = None
    stall: bool = False
    seed: int = 1
    max_cycles: int = 10_000_000
    counters: Sequence[str] = ()
    name: str = ""
    mark_opcode: int = -1

    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        d = dict(memory=np.asarray(self.memory, np.uint8), width_bits=self.width_bits, latency=self.latency,
                 program=np.array([format(int(p), "x") for p in self.program], dtype=np.str_),
                 stall=int(self.stall), seed=self.seed, max_cycles=self.max_cycles,
                 counters=np.array(list(self.counters), dtype=np.str_), name=np.str_(self.name),
                 mark_opcode=self.mark_opcode)
        if self.expected is not None:
            d["expected"] = np.asarray(self.expected, np.uint8)
            d["mask"] = np.asarray(self.mask if self.mask is not None else np.full(len(self.expected), 255),
                                   np.uint8)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            np.savez(f, **d)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Job":
        z = np.load(path, allow_pickle=False)
        return cls(memory=z["memory"], width_bits=int(z["width_bits"]), latency=int(z["latency"]),
                   program=[int(str(h), 16) for h in z["program"]],
                   expected=z["expected"] if "expected" in z.files else None,
                   mask=z["mask"] if "mask" in z.files else None,
                   stall=bool(int(z["stall"])), seed=int(z["seed"]), max_cycles=int(z["max_cycles"]),
                   counters=[str(c) for c in z["counters"]], name=str(z["name"]),
                   mark_opcode=int(z["mark_opcode"]))

    def mismatched_bytes(self, memory: np.ndarray) -> np.ndarray:
        """Indices of the checked bytes where ``memory`` differs from ``expected`` (empty without one)."""
        if self.expected is None:
            return np.zeros(0, np.int64)
        e, k = np.asarray(self.expected, np.uint8), np.asarray(self.mask, np.uint8)
        got = np.asarray(memory, np.uint8)[:len(e)]
        return np.flatnonzero((got & k) != (e & k))


def result_path(job_path: str | os.PathLike) -> Path:
    p = Path(job_path)
    return p.with_name(p.name.replace(".npz", "") + ".result.npz")


@dataclass
class TbResult:
    """What a testbench run observed. ``tb_cycles``: falling edges from the first instruction handshake to
    ``done``; counters as read from the ports at ``done`` (minus their values after reset); ``marks``: the same
    counters read whenever an instruction with the job's ``mark_opcode`` was taken (the totals of everything
    before it); ``memory``: the final off-chip memory; ``mem`` the memory monitor's summary."""

    memory: np.ndarray
    counters: dict[str, int]
    tb_cycles: int
    mem: dict = field(default_factory=dict)
    finished: bool = True
    mismatches: int = 0
    marks: list = field(default_factory=list)

    def save(self, path: str | os.PathLike) -> None:
        meta = json.dumps({"counters": self.counters, "tb_cycles": self.tb_cycles, "mem": self.mem,
                           "finished": self.finished, "mismatches": self.mismatches, "marks": self.marks})
        with open(path, "wb") as f:
            np.savez(f, memory=np.asarray(self.memory, np.uint8), meta=np.str_(meta))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "TbResult":
        z = np.load(path, allow_pickle=False)
        meta = json.loads(str(z["meta"]))
        return cls(memory=z["memory"], counters={k: int(v) for k, v in meta["counters"].items()},
                   tb_cycles=int(meta["tb_cycles"]), mem=meta["mem"], finished=bool(meta["finished"]),
                   mismatches=int(meta["mismatches"]), marks=[{k: int(v) for k, v in m.items()}
                                                               for m in meta["marks"]])


async def run_job(dut, job: Job, *, clock_ns: int = 10, reset_cycles: int = 3, start_clock: bool = True) -> TbResult:
    """Clock, reset, memory model, instruction driver; wait for ``done`` (or ``max_cycles``); collect results.

    The clock is owned by the testbench (cocotb ``Clock`` on ``dut.clk``, started here unless ``start_clock`` is
    False because an earlier job of the same test started it); reset is ``dut.rst``, active high, and clears the
    accelerator's state and counters before every job.
    """
    from cocotb.clock import Clock
    from cocotb.triggers import FallingEdge, First, RisingEdge, Timer
    from cocotb.utils import get_sim_time

    from testbench.driver import InstructionDriver, read_counters
    from testbench.memory import FlatMemory, OffChipMemory, StallConfig

    memory = FlatMemory(job.memory)
    stall = StallConfig(seed=job.seed) if job.stall else None
    mem = OffChipMemory(dut, memory, job.width_bits, job.latency, stall, clock_ns=clock_ns)
    names = list(job.counters) if job.counters else None
    drv = InstructionDriver(dut, job.program, gap_p=0.3 if job.stall else 0.0, seed=job.seed + 1,
                            clock_ns=clock_ns, mark_opcode=job.mark_opcode, counters=names)
    if start_clock:
        Clock(dut.clk, clock_ns, unit="ns").start()
    mem.reset_signals()
    drv.reset_signals()
    dut.rst.value = 1
    for _ in range(reset_cycles):
        await RisingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0
    before = read_counters(dut, names) if names else read_counters(dut)  # counters may not reset with rst
    mem.start()
    drv.start()
    fall = FallingEdge(dut.clk)
    t0 = int(get_sim_time("ns") // clock_ns)
    deadline = t0 + job.max_cycles
    finished = False
    if not int(dut.done.value):
        await First(RisingEdge(dut.done), Timer(job.max_cycles * clock_ns, "ns"))
    done_seen = False
    while int(get_sim_time("ns") // clock_ns) < deadline:
        await fall
        done_seen = done_seen or bool(int(dut.done.value))
        if done_seen and drv.finished and mem.idle:
            finished = True
            break
    k = int(get_sim_time("ns") // clock_ns)
    after = read_counters(dut, names) if names else read_counters(dut)
    counters = {k: v - before.get(k, 0) for k, v in after.items()}
    mem.stop()
    drv.stop()
    s = mem.stats
    start = drv.accepted_cycles[0] if drv.accepted_cycles else 0
    final = memory.snapshot()
    marks = [{n: v - before.get(n, 0) for n, v in m.items()} for m in drv.marks]
    return TbResult(memory=final, counters=counters, tb_cycles=k - start, finished=finished,
                    mismatches=int(job.mismatched_bytes(final).size), marks=marks,
                    mem={"rd_beats": s.rd_beats, "rd_bits": s.rd_bits, "wr_beats": s.wr_beats,
                         "wr_bits": s.wr_bits, "violations": s.violations, "min_latency": s.min_latency,
                         "max_latency": s.max_latency, "instructions": len(drv.accepted_cycles)})


__all__ = ["Job", "TbResult", "run_job", "result_path", "JOB_ENV"]
