"""Testbench environment shared by the top-level testbenches: job files in/out and the run loop.

The harness (``sim.harness``) writes a *job* (``.npz``) and passes its path in ``$JAQ_TB_JOB``; the cocotb test
loads it, hands it to the C++ transactor of the wrapper (:mod:`testbench.wrapper`: memory and instruction stream
played in the simulator, per cycle), waits for ``tb_finished``, and writes ``$JAQ_TB_JOB`` with the suffix
``.result.npz``: the final memory, the counters (in total and at every ``SET_LAYER``: one program stream
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
    """What a testbench run observed. ``tb_cycles``: clock cycles from the first instruction handshake to
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


_TB_DIR: Path | None = None
_JOBS_RUN = 0


def _tb_dir() -> Path:
    """This simulator process's exchange folder with the transactor (``$JAQ_TB_DIR``, created once)."""
    global _TB_DIR
    if _TB_DIR is None:
        import tempfile

        _TB_DIR = Path(tempfile.mkdtemp(prefix="jaq_tb_"))
        os.environ["JAQ_TB_DIR"] = str(_TB_DIR)
    return _TB_DIR


def write_transactor_files(job: Job, folder: Path, number: int, instr_bits: int) -> None:
    """Job ``number``'s files for testbench/hdl/transactor.cpp: configuration, memory image, program words."""
    from rtl_gen.protocol import OPCODE_BITS
    from testbench.memory import StallConfig

    st = StallConfig(seed=job.seed)
    cfg = {"width": job.width_bits, "latency": job.latency, "stall": int(job.stall), "seed": job.seed,
           "mark_opcode": job.mark_opcode, "opcode_bits": OPCODE_BITS, "instr_bits": instr_bits,
           "rd_ready_p": st.rd_ready_p, "wr_ready_p": st.wr_ready_p, "gap_p": st.gap_p,
           "resp_extra_max": st.resp_extra_max}
    (folder / f"tb{number}.cfg").write_text("".join(f"{k} {v}\n" for k, v in cfg.items()))
    (folder / f"tb{number}.mem").write_bytes(np.asarray(job.memory, np.uint8).tobytes())
    nbytes = 4 * ((instr_bits + 31) // 32)
    (folder / f"tb{number}.prog").write_bytes(b"".join(int(w).to_bytes(nbytes, "little") for w in job.program))


async def run_job(dut, job: Job, *, clock_ns: int = 10, reset_cycles: int = 3, start_clock: bool = True) -> TbResult:
    """Load ``job`` into the transactor, reset, run until ``tb_finished`` (or ``max_cycles``), collect results.

    ``dut`` is the wrapper ``jaq_tb`` (testbench.wrapper); everything per cycle happens in the transactor, so
    this coroutine wakes a handful of times per job. The clock is cocotb's ``Clock`` on ``dut.clk`` (started
    here unless an earlier job of the same test started it); ``tb_rst`` resets the DUT before every job.
    """
    from cocotb.clock import Clock
    from cocotb.triggers import FallingEdge, First, RisingEdge, Timer

    from testbench.driver import read_counters
    from testbench.wrapper import CMD_DUMP, CMD_LOAD

    global _JOBS_RUN
    number, _JOBS_RUN = _JOBS_RUN, _JOBS_RUN + 1
    folder = _tb_dir()
    write_transactor_files(job, folder, number, int(dut.tb_instr_bits.value))
    names = list(job.counters) if job.counters else None
    if start_clock:
        Clock(dut.clk, clock_ns, unit="ns").start()
    dut.tb_rst.value = 1
    dut.tb_arg.value = number
    await FallingEdge(dut.clk)
    dut.tb_cmd.value = CMD_LOAD
    await FallingEdge(dut.clk)
    dut.tb_cmd.value = 0
    for _ in range(reset_cycles):
        await FallingEdge(dut.clk)
    before = read_counters(dut, names) if names else read_counters(dut)  # counters may not reset with rst
    dut.tb_rst.value = 0
    if not int(dut.tb_finished.value):
        await First(RisingEdge(dut.tb_finished), Timer(job.max_cycles * clock_ns, "ns"))
    await FallingEdge(dut.clk)
    after = read_counters(dut, names) if names else read_counters(dut)
    dut.tb_cmd.value = CMD_DUMP
    await FallingEdge(dut.clk)
    dut.tb_cmd.value = 0
    final = np.fromfile(folder / f"tb{number}.out", np.uint8)
    stats = json.loads((folder / f"tb{number}.json").read_text())
    for ext in (".cfg", ".mem", ".prog", ".out", ".json"):
        (folder / f"tb{number}{ext}").unlink(missing_ok=True)
    counters = {k: v - before.get(k, 0) for k, v in after.items()}
    order = [n for n in stats["counter_names"].split(",") if n]
    marks = [{n: v - before.get(n, 0) for n, v in zip(order, m) if names is None or n in names}
             for m in stats["marks"]]
    from rtl_gen.protocol import TENSOR_NAMES

    per_tag = lambda key: {n: int(stats[key][t]) for t, n in TENSOR_NAMES.items()}  # noqa: E731
    lat = lambda key: None if stats[key] < 0 else int(stats[key])  # noqa: E731
    return TbResult(memory=final, counters=counters, tb_cycles=int(stats["cycles"]), finished=stats["finished"],
                    mismatches=int(job.mismatched_bytes(final).size), marks=marks,
                    mem={"rd_beats": per_tag("rd_beats"), "rd_bits": per_tag("rd_bits"),
                         "wr_beats": stats["wr_beats"], "wr_bits": stats["wr_bits"],
                         "violations": stats["violations"], "min_latency": lat("min_latency"),
                         "max_latency": lat("max_latency"), "instructions": stats["instructions"]})


__all__ = ["Job", "TbResult", "run_job", "result_path", "JOB_ENV"]
