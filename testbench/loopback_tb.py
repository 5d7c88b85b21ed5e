"""cocotb test of the memory model + instruction driver on the loopback DMA (testbench.loopback).

Run by tests/test_tb_memory.py through sim.verilator; the job file path is in ``$JAQ_TB_JOB``.
"""

import os

import cocotb

from testbench.env import JOB_ENV, Job, result_path, run_job


@cocotb.test()
async def loopback_program(dut):
    """Copy beats within the flat memory; the checked bytes must equal the job's expected image."""
    path = os.environ[JOB_ENV]
    job = Job.load(path)
    res = await run_job(dut, job)
    res.counters["lat_first"] = int(dut.lat_first.value)
    res.save(result_path(path))
    assert res.finished, f"no done within {job.max_cycles} cycles"
    assert not res.mem["violations"], res.mem["violations"]
    bad = job.mismatched_bytes(res.memory)
    assert bad.size == 0, f"{bad.size} checked bytes differ, first at {bad[:5].tolist()}"
