"""cocotb test of the memory model + instruction driver on the loopback DMA (testbench.loopback).

Run by tests/test_tb_memory.py through sim.verilator; the job file path is in ``$JAQ_TB_JOB``.
"""

import os

import numpy as np

import cocotb

from testbench.env import JOB_ENV, Job, result_path, run_job


@cocotb.test()
async def loopback_program(dut):
    """Copy beats between tensors; outputs must equal the job's expected output region."""
    path = os.environ[JOB_ENV]
    job = Job.load(path)
    res = await run_job(dut, job)
    res.counters["lat_first"] = int(dut.lat_first.value)
    res.save(result_path(path))
    assert res.finished, f"no done within {job.max_cycles} cycles"
    assert not res.mem["violations"], res.mem["violations"]
    if job.expected_out is not None:
        bad = np.flatnonzero(res.mem_out != job.expected_out)
        assert bad.size == 0, f"{bad.size} output elements differ, first at {bad[:5].tolist()}"
