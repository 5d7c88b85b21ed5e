"""End-to-end: JaqAccelerator runs compiled layer programs in Amaranth's simulator against a Python DRAM model
(fixed latency L, one beat per cycle, the flat bit-addressed memory of testbench.memory): final outputs (through the output unit, at the layer's out_bits) bit-exact
against an integer convolution requantized by jaq.hw.requant, partial sums through the psum tensor, and every
counter equal to jaq.hw.schedule.walk. Tiny shapes so that the pure-Python simulator stays fast."""

from collections import deque
from dataclasses import replace

import numpy as np
import pytest
from amaranth.sim import Simulator

from jaq.hw.packing import value_range
from jaq.hw.records import Accelerator, Layer, Tiling
from jaq.hw.schedule import compile_layer, walk
from rtl_gen import isa
from rtl_gen.params import MaxLayer, derive
from rtl_gen.top import COUNTER_WALK_NAMES, COUNTERS, JaqAccelerator
from sim.memory_image import FlatImage, layer_job_image
from sim.reference import LayerData, random_requant
from testbench.memory import FlatMemory


def conv_ref(x, wt, layer):
    """Integer grouped conv: x [IH][IW][C] (padded), wt [M][Cg][K][K] -> [OH][OW][M] int64."""
    K, S, G = layer.kernel, layer.stride, layer.groups
    Cg, Mg = layer.in_ch_per_group, layer.out_ch_per_group
    y = np.zeros((layer.out_h, layer.out_w, layer.out_ch), np.int64)
    for g in range(G):
        xs = x[:, :, g * Cg:(g + 1) * Cg]
        ws = wt[g * Mg:(g + 1) * Mg]
        for kh in range(K):
            for kw in range(K):
                patch = xs[kh:kh + (layer.out_h - 1) * S + 1:S, kw:kw + (layer.out_w - 1) * S + 1:S, :]
                y[:, :, g * Mg:(g + 1) * Mg] += np.einsum("yxc,mc->yxm", patch, ws[:, :, kh, kw])
    return y


def run_layer(layer, accel, tiling, seed=0, max_cycles=200000, stall=False):
    """Run one layer; ``stall``: random rd_req_ready / wr_ready drops and random extra response delay (order
    kept), the memory model's backpressure mode (results must stay exact, cycles are not compared)."""
    rng = np.random.default_rng(seed)
    srng = np.random.default_rng(seed + 1)
    alo, ahi = value_range(layer.act_bits, layer.act_signed)
    wlo, whi = value_range(layer.wgt_bits, True)
    x = rng.integers(alo, ahi + 1, size=(layer.in_h, layer.in_w, layer.in_ch))
    wt = rng.integers(wlo, whi + 1, size=(layer.out_ch, layer.in_ch_per_group, layer.kernel, layer.kernel))
    rq = random_requant(layer, seed + 7)
    res = None
    if layer.res_bits:
        rlo, rhi = value_range(layer.res_bits, layer.res_signed)
        res = rng.integers(rlo, rhi + 1, size=(layer.out_h, layer.out_w, layer.out_ch))
    data = LayerData(layer, x, wt, conv_ref(x, wt, layer), res)
    img = layer_job_image(data, tiling, rq, accel, seed=seed + 3)
    prog = compile_layer(layer, accel, tiling, img.placement)
    words = isa.encode_program(prog, accel, rq)
    memory = FlatMemory(img.memory)
    W, L = accel.dram_bits_per_cycle, accel.dram_latency_cycles
    p = derive(accel, MaxLayer.covering([layer]))
    p = replace(p, act_lines=256, wgt_lines=256, out_lines=128, act_words=256 * p.EW, wgt_words=256 * p.EW,
                out_words=128 * p.EW)
    dut = JaqAccelerator(accel, params=p)
    res = {}

    async def bench(ctx):
        pending = deque()
        idx = 0
        cycle = 0
        last_due = -1
        while not ctx.get(dut.done):
            rd_ready = 1 if not stall else int(srng.random() < 0.6)
            wr_ready = 1 if not stall else int(srng.random() < 0.6)
            ctx.set(dut.rd_req_ready, rd_ready)
            ctx.set(dut.wr_ready, wr_ready)
            ctx.set(dut.instr_valid, idx < len(words))
            ctx.set(dut.instr_data, words[idx] if idx < len(words) else 0)
            if pending and pending[0][0] == cycle:
                ctx.set(dut.rd_resp_valid, 1)
                ctx.set(dut.rd_resp_data, pending.popleft()[1])
            else:
                ctx.set(dut.rd_resp_valid, 0)
            if ctx.get(dut.instr_ready) and idx < len(words):
                idx += 1
            if ctx.get(dut.rd_req_valid) and rd_ready:
                a, n = ctx.get(dut.rd_req_addr), ctx.get(dut.rd_req_bits)
                assert 1 <= n <= W and a + n <= memory.size_bits, (a, n)
                due = cycle + L + (int(srng.integers(0, 4)) if stall else 0)
                due = max(due, last_due + 1)
                last_due = due
                pending.append((due, memory.read(a, n)))
            if ctx.get(dut.wr_valid) and wr_ready:
                t, a, n = ctx.get(dut.wr_tensor), ctx.get(dut.wr_addr), ctx.get(dut.wr_bits)
                assert t in (2, 3) and 1 <= n <= W, (t, n)
                memory.write(a, n, ctx.get(dut.wr_data))
            await ctx.tick()
            cycle += 1
            assert cycle < max_cycles
        res.update({c: ctx.get(getattr(dut, c)) for c in COUNTERS})

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    out = FlatImage.get(memory.snapshot(), img.regions["out"])
    return out.reshape(img.expected_out.shape), img.expected_out, res, walk(prog)


CASES = [
    ("WS", Layer("conv", 6, 5, 3, 3, kernel=3, stride=1, act_bits=4, wgt_bits=4, out_bits=4, out_signed=False),
     Tiling(4, 3, 2, 3, "B,OC,OH,IC,OW")),
    ("OS", Layer("conv", 6, 5, 3, 3, kernel=3, stride=2, act_bits=8, wgt_bits=2, act_signed=True, out_bits=8),
     Tiling(4, 4, 2, 2, "B,IC,OW,OC,OH")),
    ("RS", Layer("conv", 4, 4, 3, 2, kernel=3, stride=1, groups=2, act_bits=2, wgt_bits=4),
     Tiling(1, 2, 2, 2, "B,IC,OH,OW,OC")),
    ("WS", Layer("conv", 9, 11, 2, 3, kernel=1, act_bits=2, wgt_bits=8, out_bits=2, out_signed=True),
     Tiling(4, 8, 2, 2, "B,OH,OC,IC,OW")),
    # pooled heads (section 7.2): the unit sums the 3x3 (2x3) pixels of each channel chunk, one pixel written
    ("OS", Layer("pointwise", 6, 7, 3, 3, kernel=1, act_bits=4, wgt_bits=4, out_bits=8, pool=True),
     Tiling(4, 4, 3, 3, "B,OC,IC,OH,OW")),
    ("RS", Layer("pointwise", 5, 3, 2, 3, kernel=1, act_bits=8, wgt_bits=8, out_bits=4, out_signed=False, pool=True),
     Tiling(2, 2, 2, 3, "B,IC,OC,OH,OW")),
    # residual layers (section 7.3): the block input's tile streamed beside the final store, added by the unit
    ("WS", Layer("pointwise", 6, 7, 3, 3, kernel=1, act_bits=4, wgt_bits=4, out_bits=4, out_signed=False,
                 res_bits=4), Tiling(4, 4, 2, 3, "B,OC,IC,OH,OW")),
    ("OS", Layer("pointwise", 5, 20, 2, 2, kernel=1, act_bits=8, wgt_bits=2, out_bits=8, res_bits=2,
                 res_signed=True), Tiling(4, 16, 1, 2, "B,IC,OH,OW,OC")),
    ("RS", Layer("pointwise", 4, 3, 3, 2, kernel=1, act_bits=2, wgt_bits=8, out_bits=2, out_signed=True,
                 res_bits=8), Tiling(4, 2, 2, 1, "B,OW,OC,OH,IC")),
]


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}-o{c[1].out_bits}" for c in CASES])
def test_layer_program_end_to_end(case):
    df, layer, tiling = case
    accel = Accelerator(pe_x=3, pe_y=3, act_buf_kb=64, wgt_buf_kb=64, out_buf_kb=64, dataflow=df,
                        dram_bits_per_cycle=64, dram_latency_cycles=3)
    got, ref, cnt, golden = run_layer(layer, accel, tiling)
    assert (got == ref).all()
    for port, name in COUNTER_WALK_NAMES.items():
        assert cnt[port] == golden[name], (port, cnt[port], golden[name])


def test_backpressure_keeps_results_exact():
    df, layer, tiling = CASES[1]
    accel = Accelerator(pe_x=3, pe_y=3, act_buf_kb=64, wgt_buf_kb=64, out_buf_kb=64, dataflow=df,
                        dram_bits_per_cycle=64, dram_latency_cycles=3)
    got, ref, cnt, golden = run_layer(layer, accel, tiling, stall=True, seed=5)
    assert (got == ref).all()
    assert cnt["cnt_cycles"] > golden["cycles"]
    for port, name in COUNTER_WALK_NAMES.items():
        if port != "cnt_cycles":
            assert cnt[port] == golden[name], (port, cnt[port], golden[name])


# Output units of N_u lines per cycle (section 7.4): each case's n_u = min(N_u, 32/out_bits, 32/res_bits)
UNIT_CASES = [(1, 0), (2, 4), (8, 3), (16, 3), (8, 6), (2, 8), (16, 5), (8, 7)]


@pytest.mark.parametrize("unit_lines,case", UNIT_CASES, ids=[f"N{u}-case{c}" for u, c in UNIT_CASES])
def test_output_unit_lines_per_cycle(unit_lines, case):
    df, layer, tiling = CASES[case]
    accel = Accelerator(pe_x=3, pe_y=3, act_buf_kb=64, wgt_buf_kb=64, out_buf_kb=64, dataflow=df,
                        dram_bits_per_cycle=64, dram_latency_cycles=3, out_unit_lines=unit_lines)
    got, ref, cnt, golden = run_layer(layer, accel, tiling, seed=case)
    assert (got == ref).all()
    for port, name in COUNTER_WALK_NAMES.items():
        assert cnt[port] == golden[name], (port, cnt[port], golden[name])
    n_u = min(unit_lines, 32 // layer.out_bits, 32 // layer.res_bits if layer.res_bits else 32)
    assert golden["final_store_steps"] <= golden["final_store_lines"] <= n_u * golden["final_store_steps"]
    if case in (3, 4, 7):  # tiles of more than one line per pixel: the steps are fewer than the lines
        assert golden["final_store_steps"] < golden["final_store_lines"]


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}-o{c[1].out_bits}" for c in CASES])
def test_double_buffered_program_end_to_end(case):
    """Double buffering (docs/execution-model.md section 9): DMA instructions issue beside COMPUTE into the other
    buffer halves; outputs bit-exact and every counter, the overlapped cycles included, equal to the walk."""
    df, layer, tiling = case
    accel = Accelerator(pe_x=3, pe_y=3, act_buf_kb=64, wgt_buf_kb=64, out_buf_kb=64, dataflow=df,
                        dram_bits_per_cycle=64, dram_latency_cycles=3, double_buffer=True)
    got, ref, cnt, golden = run_layer(layer, accel, tiling, seed=2)
    assert (got == ref).all()
    for port, name in COUNTER_WALK_NAMES.items():
        assert cnt[port] == golden[name], (port, cnt[port], golden[name])
    serial = walk(compile_layer(layer, replace(accel, double_buffer=False), tiling))
    assert golden["cycles"] < serial["cycles"]
