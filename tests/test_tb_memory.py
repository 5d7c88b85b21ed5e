"""Testbench self-test: the C++ transactor (off-chip memory, instruction feeder) and build cache on the loopback DMA.

The loopback copies beats within the flat bit-addressed memory, so its outputs are predictable from the packing
rule alone; it checks latency exactness (first response exactly L cycles after the request), bandwidth (one beat
per cycle: exact cycle count), bit-addressed reads of 2/8/32-bit elements at unaligned bit addresses, and
correctness under random stalls.
"""

import numpy as np
import pytest

from jaq.hw.packing import pack_bytes
from sim.verilator import ensure_importable, run_cocotb, wrapped_build
from testbench.env import Job, TbResult, result_path
from testbench.loopback import encode, loopback_verilog

W, L = 128, 7

pytestmark = pytest.mark.verilator


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    ensure_importable()
    return wrapped_build({"loopback.v": loopback_verilog(W)}, "loopback")


def _job(stall: bool, seed: int = 1, latency: int = L):
    """A flat memory: 2-bit activations at byte 0, 8-bit weights at byte 64, 32-bit words at byte 512, an output
    region at byte 2560; each move copies beats of ``count`` elements (``count*bits`` bits) to the output."""
    rng = np.random.default_rng(seed)
    act = rng.integers(0, 4, size=200)          # 2-bit unsigned activations
    wgt = rng.integers(-128, 128, size=300)     # 8-bit signed weights
    words = rng.integers(-2**31, 2**31, size=400)  # 32-bit words
    mem = np.zeros(4096, np.uint8)
    for base, vals, bits in ((0, act, 2), (64, wgt, 8), (512, words, 32)):
        b = pack_bytes(vals, bits)
        mem[base:base + len(b)] = np.frombuffer(b, np.uint8)
    out0 = 2560
    mem[out0:] = rng.integers(0, 256, size=4096 - out0)  # garbage the copies must overwrite
    expected = mem.copy()
    prog = []
    # (tensor, byte base, bits, source array, first element, elements per beat, beats, destination beat)
    moves = [(0, 0, 2, act, 3, 64, 2, 0), (1, 64, 8, wgt, 5, 13, 3, 4), (2, 512, 32, words, 100, 4, 5, 10),
             (0, 0, 2, act, 150, 7, 1, 20)]
    for t, base, bits, src_arr, src, cnt, beats, dst in moves:
        prog.append(encode(t, base * 8 + src * bits, out0 * 8 + dst * W, cnt * bits, beats))
        for b in range(beats):
            beat = pack_bytes(src_arr[src + b * cnt: src + (b + 1) * cnt], bits).ljust(W // 8, b"\0")
            a = out0 + (dst + b) * W // 8
            expected[a:a + W // 8] = np.frombuffer(beat, np.uint8)
    prog.append(encode(0, 0, 0, 0, 0, end=True))
    mask = np.zeros_like(mem)
    mask[out0:] = 255
    return Job(memory=mem, width_bits=W, latency=latency, program=prog, expected=expected, mask=mask, stall=stall,
               seed=seed, max_cycles=5000, counters=["cnt_cycles", "cnt_dram_rd_beats", "cnt_dram_wr_beats"]), \
        sum(m[6] for m in moves)


def _run(build, tmp_path, stall, seed=1, latency=L):
    job, beats = _job(stall, seed, latency)
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


def test_latency_one_answers_at_the_next_edge(build, tmp_path):
    """L = 1: the response is registered at the request's own edge (the transactor's earliest case)."""
    res, beats = _run(build, tmp_path, stall=False, latency=1)
    assert res.mismatches == 0
    assert res.counters["lat_first"] == 1 and res.mem["min_latency"] == res.mem["max_latency"] == 1
    assert res.counters["cnt_cycles"] == sum(n + 1 + 2 for n in (2, 3, 5, 1))


def test_protocol_violations_are_reported(build, tmp_path):
    """A read beyond the memory is a violation the monitor reports (and the data read as zeros)."""
    job, _ = _job(False)
    job.program = [encode(0, 4096 * 8 - 64, 2560 * 8, 128, 1), encode(0, 0, 0, 0, 0, end=True)]
    job.expected = None
    path = job.save(tmp_path / "job.npz")
    run_cocotb(build, "testbench.loopback_tb", tmp_path, extra_env={"JAQ_TB_JOB": str(path)})
    res = TbResult.load(result_path(path))
    assert res.finished and len(res.mem["violations"]) == 1
    assert "beyond the 32768-bit memory" in res.mem["violations"][0]


def test_stalling_memory_still_exact(build, tmp_path):
    res, beats = _run(build, tmp_path, stall=True, seed=5)
    assert res.mismatches == 0
    assert res.mem["max_latency"] > L                 # responses really were delayed
    assert res.counters["cnt_cycles"] > sum(n + L + 2 for n in (2, 3, 5, 1))


def test_build_cache_hit(build):
    again = wrapped_build({"loopback.v": loopback_verilog(W)}, "loopback")
    assert not again.built and again.build_dir == build.build_dir
