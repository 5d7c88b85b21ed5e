"""cocotb testbench of the whole accelerator (rtl_gen top level ``JaqAccelerator``) on Verilator.

Jobs (one per layer program, written by :mod:`sim.harness`) are listed, one path per line, in the file named by
``$JAQ_TB_JOBS``. For each job the testbench hands the memory image and the encoded program to the wrapper's C++
transactor (``testbench/hdl/transactor.cpp``: off-chip memory with exact latency/bandwidth or stalling,
instruction feeder), resets the DUT, waits for ``tb_finished``, reads the performance counters and writes
``<job>.result.npz``. The checker here asserts what needs no model: the program finished, the memory protocol
was respected and the checked memory (the outputs) is bit-exact against the integer reference; the harness compares the
counters with :func:`jaq.hw.schedule.walk` and :func:`jaq.hw.model.estimate` afterwards.
"""

import os
from pathlib import Path

import cocotb

from testbench.env import Job, result_path, run_job

JOBS_ENV = "JAQ_TB_JOBS"


@cocotb.test()
async def accelerator_layers(dut):
    """Run every listed layer program; outputs must be bit-exact and the memory protocol clean."""
    jobs = [l.strip() for l in Path(os.environ[JOBS_ENV]).read_text().splitlines() if l.strip()]
    failures = []
    for i, path in enumerate(jobs):
        job = Job.load(path)
        res = await run_job(dut, job, start_clock=(i == 0))
        res.save(result_path(path))
        if not res.finished:
            failures.append(f"{job.name}: no done within {job.max_cycles} cycles "
                            f"({res.mem['instructions']}/{len(job.program)} instructions taken)")
        elif res.mem["violations"]:
            failures.append(f"{job.name}: memory protocol: {res.mem['violations'][:3]}")
        elif res.mismatches:
            bad = job.mismatched_bytes(res.memory)
            failures.append(f"{job.name}: {res.mismatches} checked memory bytes differ (first byte addresses "
                            f"{bad[:5].tolist()})")
    assert not failures, "; ".join(failures)
