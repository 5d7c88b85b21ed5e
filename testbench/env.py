"""Testbench environment shared by the top-level testbenches: job files in/out and the run loop.

The harness (``sim.harness``) writes a *job* (``.npz``) and passes its path in ``$JAQ_TB_JOB``; the cocotb test
loads it, plays the memory and the instruction stream, waits for ``done``, and writes ``$JAQ_TB_JOB`` with the
suffix ``.result.npz``: the final output region, the counters and what the memory monitor saw. The checker
(bit-exact outputs) runs in the testbench as an assertion, and again in the harness, which also compares the
counters with the schedule walk and the cost model.

Job fields: ``mem_act``, ``mem_wgt``, ``mem_out`` (the 32-bit partial-sum region), ``mem_final`` (the out tensor
at ``out_bits``/``out_signed``), ``mem_scale`` (the output unit's constants) (int64 element arrays),
``act_bits``, ``wgt_bits``, ``act_signed``, ``width_bits`` (W), ``latency`` (L), ``program`` (instruction words
as hex strings), ``expected_out`` (int64, optional: golden out tensor), ``stall`` (0/1), ``seed``,
``max_cycles``, ``counters`` (names of the counter ports to read). The result's ``mem_out`` is the out tensor
(the psum region for a job without ``mem_final``, e.g. the testbench's own loopback design).
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
    """Everything one simulated program needs (units: elements, bits, cycles)."""

    mem_act: np.ndarray
    mem_wgt: np.ndarray
    mem_out: np.ndarray
    act_bits: int
    wgt_bits: int
    act_signed: bool
    width_bits: int
    latency: int
    program: list[int]
    expected_out: np.ndarray | None = None
    stall: bool = False
    seed: int = 1
    max_cycles: int = 10_000_000
    counters: Sequence[str] = ()
    name: str = ""
    mem_final: np.ndarray | None = None
    mem_scale: np.ndarray | None = None
    out_bits: int = 32
    out_signed: bool = True

    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        d = dict(mem_act=np.asarray(self.mem_act, np.int64), mem_wgt=np.asarray(self.mem_wgt, np.int64),
                 mem_out=np.asarray(self.mem_out, np.int64), act_bits=self.act_bits, wgt_bits=self.wgt_bits,
                 act_signed=int(self.act_signed), width_bits=self.width_bits, latency=self.latency,
                 program=np.array([format(int(p), "x") for p in self.program], dtype=np.str_),
                 stall=int(self.stall), seed=self.seed, max_cycles=self.max_cycles,
                 counters=np.array(list(self.counters), dtype=np.str_), name=np.str_(self.name),
                 mem_scale=np.asarray(self.mem_scale if self.mem_scale is not None else [], np.int64),
                 out_bits=self.out_bits, out_signed=int(self.out_signed))
        if self.mem_final is not None:
            d["mem_final"] = np.asarray(self.mem_final, np.int64)
        if self.expected_out is not None:
            d["expected_out"] = np.asarray(self.expected_out, np.int64)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            np.savez(f, **d)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Job":
        z = np.load(path, allow_pickle=False)
        return cls(mem_act=z["mem_act"], mem_wgt=z["mem_wgt"], mem_out=z["mem_out"], act_bits=int(z["act_bits"]),
                   wgt_bits=int(z["wgt_bits"]), act_signed=bool(int(z["act_signed"])),
                   width_bits=int(z["width_bits"]), latency=int(z["latency"]),
                   program=[int(str(h), 16) for h in z["program"]],
                   expected_out=z["expected_out"] if "expected_out" in z.files else None,
                   stall=bool(int(z["stall"])), seed=int(z["seed"]), max_cycles=int(z["max_cycles"]),
                   counters=[str(c) for c in z["counters"]], name=str(z["name"]),
                   mem_final=z["mem_final"] if "mem_final" in z.files else None,
                   mem_scale=z["mem_scale"], out_bits=int(z["out_bits"]), out_signed=bool(int(z["out_signed"])))


def result_path(job_path: str | os.PathLike) -> Path:
    p = Path(job_path)
    return p.with_name(p.name.replace(".npz", "") + ".result.npz")


@dataclass
class TbResult:
    """What a testbench run observed. ``tb_cycles``: falling edges from the first instruction handshake to
    ``done``; counters as read from the ports at ``done``; ``mem`` is the memory monitor's summary."""

    mem_out: np.ndarray
    counters: dict[str, int]
    tb_cycles: int
    mem: dict = field(default_factory=dict)
    finished: bool = True
    mismatches: int = 0

    def save(self, path: str | os.PathLike) -> None:
        meta = json.dumps({"counters": self.counters, "tb_cycles": self.tb_cycles, "mem": self.mem,
                           "finished": self.finished, "mismatches": self.mismatches})
        with open(path, "wb") as f:
            np.savez(f, mem_out=np.asarray(self.mem_out, np.int64), meta=np.str_(meta))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "TbResult":
        z = np.load(path, allow_pickle=False)
        meta = json.loads(str(z["meta"]))
        return cls(mem_out=z["mem_out"], counters={k: int(v) for k, v in meta["counters"].items()},
                   tb_cycles=int(meta["tb_cycles"]), mem=meta["mem"], finished=bool(meta["finished"]),
                   mismatches=int(meta["mismatches"]))


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
    from testbench.memory import (TENSOR_ACT, TENSOR_OUT, TENSOR_PSUM, TENSOR_SCALE, TENSOR_WGT, OffChipMemory,
                                  StallConfig, TensorMemory)

    tensors = {
        TENSOR_ACT: TensorMemory("act", job.act_bits, job.act_signed, job.mem_act),
        TENSOR_WGT: TensorMemory("wgt", job.wgt_bits, True, job.mem_wgt),
        TENSOR_PSUM: TensorMemory("psum", 32, True, job.mem_out),
        TENSOR_OUT: TensorMemory("out", job.out_bits, job.out_signed,
                                 job.mem_final if job.mem_final is not None else []),
        TENSOR_SCALE: TensorMemory("scale", 32, True, job.mem_scale if job.mem_scale is not None else []),
    }
    stall = StallConfig(seed=job.seed) if job.stall else None
    mem = OffChipMemory(dut, tensors, job.width_bits, job.latency, stall, clock_ns=clock_ns)
    drv = InstructionDriver(dut, job.program, gap_p=0.3 if job.stall else 0.0, seed=job.seed + 1,
                            clock_ns=clock_ns)
    if start_clock:
        Clock(dut.clk, clock_ns, unit="ns").start()
    mem.reset_signals()
    drv.reset_signals()
    dut.rst.value = 1
    for _ in range(reset_cycles):
        await RisingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0
    names = list(job.counters) if job.counters else None
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
    # the result is the out tensor of an accelerator job, the psum region of a job without one (the loopback)
    out = tensors[TENSOR_OUT if job.mem_final is not None else TENSOR_PSUM].values
    mismatches = 0
    if job.expected_out is not None:
        mismatches = int(np.count_nonzero(out != np.asarray(job.expected_out, np.int64)))
    return TbResult(mem_out=out, counters=counters, tb_cycles=k - start, finished=finished, mismatches=mismatches,
                    mem={"rd_beats": s.rd_beats, "rd_elems": s.rd_elems, "wr_beats": s.wr_beats,
                         "wr_elems": s.wr_elems, "violations": s.violations, "min_latency": s.min_latency,
                         "max_latency": s.max_latency, "instructions": len(drv.accepted_cycles)})


__all__ = ["Job", "TbResult", "run_job", "result_path", "JOB_ENV"]
