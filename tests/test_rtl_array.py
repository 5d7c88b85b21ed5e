"""ComputeEngine (sequencer + PE array + OBUF write-back) per dataflow on tiny convolutions in Amaranth's simulator:
outputs bit-exact against numpy, body cycles == steps + D, and every access counter == jaq.hw.timing."""

from dataclasses import replace

import numpy as np
import pytest
from amaranth import Module
from amaranth.sim import Simulator

from jaq.hw import timing as T
from jaq.hw.packing import value_range, window_vectors
from jaq.hw.records import Accelerator
from rtl_gen.buffers import OutBuffer, VectorBuffer
from rtl_gen.isa import compute_fields, set_layer_fields
from sim.layout import act_tile_words, out_tile_from_words, out_tile_words, wgt_tile_words
from rtl_gen.params import MaxLayer, derive
from rtl_gen.sequencer import ComputeEngine


def run_compute(df, X, Y, K, S, a, w, act_signed, c, m, h, wo, acc, W=64, seed=0, dw=False, second_half=False):
    """One COMPUTE on resident tiles; ``dw``: the depthwise mapping (docs/execution-model.md section 8: act
    ``[ih][iw][m']``, weights ``[K][K][m']``, c' = 1); ``second_half``: a double-buffered engine whose tiles sit
    in the second half of every buffer (section 9)."""
    rng = np.random.default_rng(seed)
    ih, iw = (h - 1) * S + K, (wo - 1) * S + K
    alo, ahi = value_range(a, act_signed)
    wlo, whi = value_range(w, True)
    act = rng.integers(alo, ahi + 1, size=(ih, iw, m if dw else c))
    wgt = rng.integers(wlo, whi + 1, size=(m, K, K, c))
    old = rng.integers(-1000, 1000, size=(h, wo, m)) if acc else np.zeros((h, wo, m), np.int64)
    ref = np.zeros((h, wo, m), np.int64)
    for kh in range(K):
        for kw in range(K):
            patch = act[kh:kh + (h - 1) * S + 1:S, kw:kw + (wo - 1) * S + 1:S, :]  # h, wo, c (dw: m)
            ref += patch * wgt[:, kh, kw, 0] if dw else np.einsum("yxc,mc->yxm", patch, wgt[:, kh, kw, :])
    ref += old

    accel = Accelerator(pe_x=X, pe_y=Y, dataflow=df, dram_bits_per_cycle=W)
    p = derive(accel, MaxLayer(max_kernel=max(K, 3), max_stride=max(S, 2), max_in_ch=64))
    if dw:  # window vectors: one run of m' pf-weight vectors per window group (section 8)
        vec = window_vectors(wgt[:, :, :, 0], T.fusion_factor(a, w))
        wtile = vec.reshape(vec.shape[0], 1, 1, -1)
    else:
        wtile = wgt
    aw, ww, ow = act_tile_words(act, a, W), wgt_tile_words(wtile, w, W), out_tile_words(old, W)
    EW = W // 32
    n_half = 2 if second_half else 1
    la, lw, lo = len(aw) // EW + 1, len(ww) // EW + 1, len(ow) // EW + 1
    p = replace(p, act_words=n_half * la * EW, wgt_words=n_half * lw * EW, out_words=n_half * lo * EW,
                act_lines=n_half * la, wgt_lines=n_half * lw, out_lines=n_half * lo, double_buffer=second_half)
    o0 = lo * EW if second_half else 0   # first word of the out tile
    if second_half:
        aw, ww, ow = [0] * (la * EW) + aw, [0] * (lw * EW) + ww, [0] * o0 + ow
    # the output unit's and the residual's SET_LAYER fields are not the engine's
    unit = ("shift", "relu", "o_mode", "o_signed", "res", "r_mode", "r_signed", "res_mult", "st_rlog", "overlap")
    fields = {**{k: v for k, v in set_layer_fields(K, S, a, w, act_signed, Y, dw=dw).items() if k not in unit},
              **compute_fields(c, m, h, wo, acc, K, S, a, w, W, dw_mapped=dw, halves=(n_half - 1,) * 3)}

    top = Module()
    top.submodules.eng = eng = ComputeEngine(p)
    top.submodules.ab = ab = VectorBuffer(p.act_lines, W, p.n_act_ports, init=aw)
    top.submodules.wb = wb = VectorBuffer(p.wgt_lines, W, p.n_wgt_ports, init=ww)
    top.submodules.ob = ob = OutBuffer(p.out_lines, W, p.n_out_ports, init=ow)
    for i in range(p.n_act_ports):
        top.d.comb += [ab.rd_addr[i].eq(eng.act_addr[i]), ab.rd_en[i].eq(eng.act_en[i]),
                       eng.act_data[i].eq(ab.rd_data[i])]
    for i in range(p.n_wgt_ports):
        top.d.comb += [wb.rd_addr[i].eq(eng.wgt_addr[i]), wb.rd_en[i].eq(eng.wgt_en[i]),
                       eng.wgt_data[i].eq(wb.rd_data[i])]
    for i in range(p.n_out_ports):
        top.d.comb += [ob.rmw_raddr[i].eq(eng.out_raddr[i]), ob.rmw_ren[i].eq(eng.out_ren[i]),
                       eng.out_rdata[i].eq(ob.rmw_rdata[i]), ob.rmw_waddr[i].eq(eng.out_waddr[i]),
                       ob.rmw_wdata[i].eq(eng.out_wdata[i]), ob.rmw_wen[i].eq(eng.out_wen[i])]
    result = {}

    async def bench(ctx):
        for k, v in fields.items():
            ctx.set(getattr(eng, k), v)
        ctx.set(eng.start, 1)
        await ctx.tick()
        ctx.set(eng.start, 0)
        n = 1
        while not ctx.get(eng.last):
            await ctx.tick()
            n += 1
            assert n < 100000
        await ctx.tick()
        result["body"] = n
        result["words"] = [ctx.get(ob.mem.data[i]) for i in range(o0, len(ow))]
        result.update(act_rd=ctx.get(ab.cnt_rd), wgt_rd=ctx.get(wb.cnt_rd), out_rd=ctx.get(ob.cnt_rd),
                      out_wr=ctx.get(ob.cnt_wr), fu=ctx.get(eng.cnt_fu_active))

    sim = Simulator(top)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    got = out_tile_from_words(result["words"], h, wo, m, W)
    cp = T.ComputeParams(K, S, X, Y, T.fusion_factor(a, w), a)
    want = {k: T.sum_terms(ts, c, m, h, wo) for k, ts in T.compute_terms(df, cp, dw).items()}
    return got, ref, result, want


CASES = [
    # df, X, Y, K, S, a, w, signed, c, m, h, w, acc
    ("WS", 3, 3, 3, 1, 8, 8, False, 4, 4, 3, 2, False),
    ("WS", 3, 4, 1, 2, 2, 2, True, 40, 5, 2, 2, True),
    ("WS", 4, 3, 3, 2, 4, 2, False, 19, 2, 2, 3, False),
    ("OS", 3, 3, 3, 1, 8, 8, False, 3, 4, 2, 4, True),
    ("OS", 3, 4, 1, 1, 2, 4, True, 20, 6, 2, 5, False),
    ("OS", 4, 3, 3, 2, 4, 4, False, 9, 2, 2, 3, False),
    ("RS", 3, 4, 3, 1, 8, 8, False, 3, 3, 4, 2, False),
    ("RS", 3, 6, 3, 2, 4, 2, True, 10, 3, 4, 2, True),
    ("RS", 3, 4, 1, 1, 2, 2, False, 18, 5, 4, 2, False),
    ("RS", 2 + 1, 3, 5, 1, 8, 4, False, 3, 2, 2, 2, True),   # K > Y: two kernel-row passes
]


#: the depthwise mapping on WS (section 8): channel blocks with edges, passes of Y kernel positions, word windows
#: at every channel offset, every bit pair
DW_CASES = [("WS", X, Y, K, S, a, w, (a + w + K) % 3 == 0, 1, m, h, wo, False)
            for X, Y, K, S, a, w, m, h, wo in (
                (4, 3, 3, 2, 8, 2, 7, 2, 3), (4, 3, 5, 1, 4, 4, 13, 2, 3), (3, 4, 7, 2, 2, 8, 11, 2, 2),
                (5, 3, 3, 1, 2, 2, 18, 3, 2), (3, 5, 3, 1, 8, 8, 9, 2, 2), (6, 4, 5, 2, 2, 4, 14, 2, 1),
                (4, 4, 3, 1, 4, 2, 10, 1, 3), (3, 3, 7, 1, 4, 8, 5, 1, 2), (7, 3, 3, 2, 8, 4, 15, 2, 2),
                (3, 4, 1, 1, 2, 8, 4, 2, 2),
                # channel replicas (q > 1) with edge blocks: 4/4 bits q=2, 2/2 bits K=5 q=3, 2/4 bits S=2 q=3
                (3, 8, 3, 1, 4, 4, 14, 2, 2), (4, 6, 5, 1, 2, 2, 29, 1, 2), (5, 7, 3, 2, 2, 4, 33, 2, 2))]


@pytest.mark.parametrize("case,dw", [(c, False) for c in CASES] + [(c, True) for c in DW_CASES],
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)] + [f"dw-{i}" for i in range(len(DW_CASES))])
def test_compute_engine(case, dw):
    df, X, Y, K, S, a, w, sg, c, m, h, wo, acc = case
    got, ref, res, want = run_compute(df, X, Y, K, S, a, w, sg, c, m, h, wo, acc, dw=dw)
    assert (got == ref).all(), (got, ref)
    assert res["body"] == want["steps"] + T.pipeline_depth(df)
    assert res["act_rd"] == want["act_vectors"]
    assert res["wgt_rd"] == want["wgt_vectors"]
    assert res["out_rd"] == res["out_wr"] == want["out_words"]
    assert res["fu"] == want["fu_active"]


@pytest.mark.parametrize("case,dw", [(CASES[1], False), (CASES[3], False), (CASES[7], False), (DW_CASES[11], True)],
                         ids=["WS", "OS", "RS", "dw"])
def test_compute_engine_reads_the_second_buffer_halves(case, dw):
    """A double-buffered engine (docs section 9) with ``act_half = wgt_half = out_half = 1`` reads and accumulates
    the tiles in the second halves: the same results and accesses."""
    df, X, Y, K, S, a, w, sg, c, m, h, wo, acc = case
    got, ref, res, want = run_compute(df, X, Y, K, S, a, w, sg, c, m, h, wo, acc, dw=dw, second_half=True)
    assert (got == ref).all(), (got, ref)
    assert res["body"] == want["steps"] + T.pipeline_depth(df)
    assert res["act_rd"] == want["act_vectors"] and res["wgt_rd"] == want["wgt_vectors"]
    assert res["out_rd"] == res["out_wr"] == want["out_words"]
