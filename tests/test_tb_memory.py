"""Testbench self-test: the off-chip memory model, instruction driver and build cache on the loopback DMA.

The loopback copies beats from a tensor to the output region, so its outputs are predictable from the packing
rule alone; it checks latency exactness (first response exactly L cycles after the request), bandwidth (one beat
per cycle: exact cycle count), packing of 2/8/32-bit elements, and correctness under random stalls.
"""

import numpy as np
import pytest

from jaq.hw.packing import pack_words, unpack_words
from sim.verilator import ensure_importable, run_cocotb, verilator_build
from testbench.env import Job, TbResult, result_path
from testbench.loopback import encode, loopback_verilog

W, L = 128, 7

pytestmark = pytest.mark.verilator


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    ensure_importable()
    return verilator_build({"loopback.v": loopback_verilog(W)}, "loopback")


def _job(stall: bool, seed: int = 1):
    rng = np.random.default_rng(seed)
    act = rng.integers(0, 4, size=200)          # 2-bit unsigned activations
    wgt = rng.integers(-128, 128, size=300)     # 8-bit signed weights
    out = rng.integers(-2**31, 2**31, size=400)  # 32-bit outputs / psums
    init = out.copy()
    prog, expected = [], out.copy()
    # (tensor, bits, signed, source array, src, count per beat, beats, dst)
    moves = [(0, 2, False, act, 3, 64, 2, 0), (1, 8, True, wgt, 5, 13, 3, 16), (2, 32, True, init, 100, 4, 5, 40),
             (0, 2, False, act, 150, 7, 1, 80)]
    for t, bits, signed, src_arr, src, cnt, beats, dst in moves:
        prog.append(encode(t, src, dst, cnt, beats))
        for b in range(beats):
            word = pack_words(src_arr[src + b * cnt: src + (b + 1) * cnt], bits, W)[0]
            expected[dst + 4 * b: dst + 4 * b + 4] = unpack_words([word], 32, 4, True)[0]
    prog.append(encode(0, 0, 0, 0, 0, end=True))
    return Job(mem_act=act, mem_wgt=wgt, mem_out=out, act_bits=2, wgt_bits=8, act_signed=False, width_bits=W,
               latency=L, program=prog, expected_out=expected, stall=stall, seed=seed, max_cycles=5000,
               counters=["cnt_cycles", "cnt_dram_rd_beats", "cnt_dram_wr_beats"]), sum(m[6] for m in moves)


def _run(build, tmp_path, stall, seed=1):
    job, beats = _job(stall, seed)
    path = job.save(tmp_path / "job.npz")
    r = run_cocotb(build, "testbench.loopback_tb", tmp_path, extra_env={"JAQ_TB_JOB": str(path)})
    assert r.ok, r.log_tail()
    return TbResult.load(result_path(path)), beats


def test_exact_memory_latency_and_bandwidth(build, tmp_path):
    res, beats = _run(build, tmp_path, stall=False)
    assert res.mismatches == 0
    assert res.counters["lat_first"] == L            # first datum exactly L cycles after its request
    assert res.mem["min_latency"] == res.mem["max_latency"] == L
    assert res.counters["cnt_dram_rd_beats"] == res.counters["cnt_dram_wr_beats"] == beats
    assert sum(res.mem["rd_beats"].values()) == beats and res.mem["wr_beats"] == beats
    # per instruction: n beats requested back to back, the last answered L later, through the loopback's
    # buffered FIFO (1 cycle) and written the cycle after: n + L + 2 busy cycles; nothing overlaps.
    assert res.counters["cnt_cycles"] == sum(n + L + 2 for n in (2, 3, 5, 1))


def test_stalling_memory_still_exact(build, tmp_path):
    res, beats = _run(build, tmp_path, stall=True, seed=5)
    assert res.mismatches == 0
    assert res.mem["max_latency"] > L                 # responses really were delayed
    assert res.counters["cnt_cycles"] > sum(n + L + 2 for n in (2, 3, 5, 1))


def test_build_cache_hit(build):
    again = verilator_build({"loopback.v": loopback_verilog(W)}, "loopback")
    assert not again.built and again.build_dir == build.build_dir
