"""The compiler's schedule (jaq.hw.schedule) and the cost formulas (jaq.hw.timing): hand-computed cases, program
structure, loop-order refetches, and a functional execution of the program that must compute the convolution."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest
import torch

from jaq.errors import JaqError
from jaq.hw import timing as T
from jaq.hw.records import Accelerator, Layer, Tiling
from jaq.hw.schedule import (COUNTERS, arrange_weights, check_tiling, compile_layer, walk, weight_tile_bases)


def _accel(**kw):
    base = dict(pe_x=3, pe_y=3, act_buf_kb=64, wgt_buf_kb=64, out_buf_kb=64, dram_bits_per_cycle=32,
                dram_latency_cycles=10)
    base.update(kw)
    return Accelerator(**base)


# ---------------------------------------------------------------------------------------------------------------
# timing.py on hand-computed values
# ---------------------------------------------------------------------------------------------------------------
def test_fusion_factor_table():
    # BitFusion's table: pf = (8/a)(8/w)
    want = {(2, 2): 16, (2, 4): 8, (2, 8): 4, (4, 2): 8, (4, 4): 4, (4, 8): 2, (8, 2): 4, (8, 4): 2, (8, 8): 1}
    for (a, w), pf in want.items():
        assert T.fusion_factor(a, w) == pf
        assert T.act_vector_bits(a, w) == 64 // w and T.wgt_vector_bits(a, w) == 64 // a


def test_int_and_tensor_helpers_agree():
    for a in range(1, 40):
        for b in (1, 2, 3, 4, 7, 16):
            assert T.ceil_div(a, b) == -(-a // b)
            assert float(T.ceil_div(torch.tensor(float(a)), torch.tensor(float(b)))) == T.ceil_div(a, b)
            assert float(T.floor_div(torch.tensor(float(a)), b)) == a // b
    x = torch.tensor(5.0, requires_grad=True)
    y = T.ceil_div(x, 2.0)
    y.backward()
    assert float(y.detach()) == 3.0 and float(x.grad) == pytest.approx(0.5)  # straight-through: d(x/2)/dx


def test_instruction_costs():
    assert T.load_cycles(7, 20) == 1 + 20 + 7
    assert T.store_cycles(7) == 1 + 1 + 7
    assert T.compute_cycles(10, T.pipeline_depth("WS")) == 1 + 10 + 4
    assert T.set_layer_cycles() == 1 and T.end_cycles() == 1
    assert T.act_tile_beats(c=5, h=2, w=3, kernel=3, stride=2, e_act=4) == 5 * 7 * 2
    assert T.wgt_tile_beats(c=5, m=3, kernel=3, e_wgt=16) == 3 * 9 * 1
    assert T.out_tile_beats(m=5, h=2, w=3, e_out=4) == 6 * 2


def _hand_layer():
    # pointwise 4 -> 4, 2x2 output, 8/8 bits: pf = 1; W = 32: E_a = E_w = 4, E_o = 1
    return Layer("pointwise", 4, 4, 2, 2)


def test_hand_case_ws():
    layer, accel = _hand_layer(), _accel(dataflow="WS")
    prog = compile_layer(layer, accel, Tiling(4, 4, 2, 2))
    assert [i.op for i in prog] == ["SET_LAYER", "LOAD_ACT", "LOAD_WGT", "COMPUTE", "LOAD_SCALE", "STORE_OUT", "END"]
    c = walk(prog)
    # steps = K^2 ceil(m/X) (cv + ceil(cv/Y) h w) = 1*2*(4 + 2*4) = 24
    assert c["compute_steps"] == 24
    # LOAD_SCALE: 3 beats per chunk of E_o = 1 channel; the final store adds the output unit (3) and packing (1)
    assert c["cycles"] == 1 + (1 + 10 + 4) + (1 + 10 + 4) + (1 + 24 + 4) + (1 + 10 + 12) + (1 + 1 + 3 + 1 + 16) + 1
    assert c["act_buf_rd_vectors"] == 4 * 2 * 4  # K^2 cv ceil(m/X) h w
    assert c["wgt_buf_rd_vectors"] == 4 * 4  # K^2 cv m
    assert c["out_buf_rd_words"] == c["out_buf_wr_words"] == 2 * 4 * 4  # K^2 ceil(cv/Y) m h w
    assert c["fu_active_cycles"] == 64 and c["macs"] == 64
    assert c["dram_rd_beats"] == 8 + 12 and c["dram_wr_beats"] == 16
    assert c["dram_rd_bits"] == 20 * 32 and c["dram_wr_bits"] == 16 * 32
    assert c["n_store_final"] == c["n_load_scale"] == 1 and c["final_store_lines"] == 16
    assert c["act_buf_rd_bits"] == 32 * 8 and c["out_buf_rd_bits"] == 32 * 32 + 16 * 32


def test_hand_case_os():
    c = walk(compile_layer(_hand_layer(), _accel(dataflow="OS"), Tiling(4, 4, 2, 2)))
    # h ceil(w/X) (ceil(m/Y) K^2 cv + m) = 2*1*(2*4 + 4)
    assert c["compute_steps"] == 24
    assert c["act_buf_rd_vectors"] == 4 * 2 * 4  # K^2 cv ceil(m/Y) h w
    assert c["wgt_buf_rd_vectors"] == 2 * 1 * 4 * 4  # h ceil(w/X) m K^2 cv
    assert c["out_buf_rd_words"] == 16


def test_hand_case_rs():
    # K = 3 > Y = 2: two kernel-row passes (2 rows, then 1), q = 1 replica; X = 2 output rows per block
    layer = Layer("conv", 1, 1, 3, 1, kernel=3)
    c = walk(compile_layer(layer, _accel(dataflow="RS", pe_x=3, pe_y=3), Tiling(1, 1, 2, 1)))
    assert T.rs_geometry(3, 1, 2) == (2, 1, 1)
    params = T.ComputeParams(3, 1, 2, 2, 1)
    k = T.compute_counts("RS", params, 1, 1, 3, 1)
    assert k["steps"] == 2 * 1 * 2 * 1 * 3 * 1  # P ceil(m/q) ceil(h/X) w K cv
    assert k["wgt_vectors"] == 9 * 2  # K^2 cv m ceil(h/X) w
    # input rows: pass of 2 rows over blocks of 2 and 1 output rows: 3 + 2; pass of 1 row: 2 + 1
    assert k["act_vectors"] == 3 * (5 + 3)
    assert k["out_words"] == 2 * 3
    assert c["compute_steps"] > 0


def test_loop_order_refetch_counts():
    layer = Layer("conv", 8, 12, 5, 6, kernel=3, act_bits=4, wgt_bits=8)
    accel = Accelerator(pe_x=4, pe_y=3, act_buf_kb=64, wgt_buf_kb=64, out_buf_kb=64)
    # n: IC 2, OC 2, OH 3, OW 2
    c = walk(compile_layer(layer, accel, Tiling(4, 8, 2, 4, ("B", "OC", "IC", "OH", "OW"))))
    assert c["n_compute"] == 24
    assert c["n_load_act"] == 24  # innermost act loop OW: reloaded every iteration
    assert c["n_load_wgt"] == 4  # (oc, ic) each once
    assert c["n_store_out"] == 24 and c["n_load_psum"] == 12  # IC outside OH/OW: partial sums travel
    c = walk(compile_layer(layer, accel, Tiling(4, 8, 2, 4, ("B", "OC", "OH", "OW", "IC"))))
    assert c["n_load_psum"] == 0 and c["n_store_out"] == 12
    assert c["n_load_wgt"] == 2 * 2 * 6  # wgt tile changes with ic, inner to OH/OW


def test_trivial_loops_do_not_cause_refetch():
    layer = Layer("conv", 8, 8, 4, 4, kernel=3)
    accel = _accel(dram_bits_per_cycle=128)
    # IC has one tile and sits innermost: act is still loaded once per (oh, ow) tile
    c = walk(compile_layer(layer, accel, Tiling(8, 4, 2, 4, ("B", "OH", "OW", "OC", "IC"))))
    assert c["n_load_act"] == 2 and c["n_load_wgt"] == 4


def test_program_structure_and_final_flags():
    layer = Layer("conv", 6, 4, 3, 5, kernel=3, stride=2, groups=2)
    accel = _accel(pe_x=4, pe_y=5)
    prog = compile_layer(layer, accel, Tiling(2, 1, 2, 4, ("B", "IC", "OW", "OC", "OH")))
    ops = [i.op for i in prog]
    assert ops[0] == "SET_LAYER" and ops[-1] == "END" and ops.count("SET_LAYER") == ops.count("END") == 1
    stores = [i for i in prog if i.op == "STORE_OUT"]
    last = {}
    for s in stores:
        last[(s.g, s.oc, s.oh, s.ow)] = s
    for s in stores:
        assert s.final == (last[(s.g, s.oc, s.oh, s.ow)] is s)
    assert "LOAD_ACT" in prog.listing(limit=5) and "more instructions" in prog.listing(limit=5)
    assert set(walk(prog)) == set(COUNTERS)


def test_illegal_tilings_raise():
    layer = Layer("conv", 8, 8, 4, 4, kernel=3)
    with pytest.raises(JaqError, match="t_oc"):
        check_tiling(layer, _accel(), Tiling(8, 16, 4, 4))
    big = Layer("conv", 1024, 1024, 32, 32, kernel=5)
    with pytest.raises(JaqError, match="wgt"):
        compile_layer(big, _accel(), Tiling(1024, 1024, 1, 1))


# ---------------------------------------------------------------------------------------------------------------
# Functional execution: the program, run on numpy memories with its own addresses, computes the convolution
# ---------------------------------------------------------------------------------------------------------------
def _execute(prog, act_mem, wgt_mem):
    sl = prog.instructions[0]
    K, S = sl.kernel, sl.stride
    out_mem = np.zeros(sl.out_h * sl.out_w * sl.out_ch, dtype=np.int64)
    act_buf = wgt_buf = out_buf = None
    for ins in prog.instructions[1:]:
        if ins.op == "LOAD_ACT":
            act_buf = np.zeros((ins.ih, ins.iw, ins.c), dtype=np.int64)
            for y, x in itertools.product(range(ins.ih), range(ins.iw)):
                a0 = ins.dram_base + y * ins.row_stride + x * ins.col_stride
                act_buf[y, x] = act_mem[a0:a0 + ins.run_len]
        elif ins.op == "LOAD_WGT":
            runs = wgt_mem[ins.dram_base:ins.dram_base + ins.n_runs * ins.run_stride]
            wgt_buf = runs.reshape(ins.m, K, K, ins.c)
        elif ins.op in ("LOAD_PSUM", "STORE_OUT"):
            if ins.op == "LOAD_PSUM":
                out_buf = np.zeros((ins.h, ins.w, ins.m), dtype=np.int64)
            for y, x in itertools.product(range(ins.h), range(ins.w)):
                a0 = ins.dram_base + y * ins.row_stride + x * ins.col_stride
                if ins.op == "LOAD_PSUM":
                    out_buf[y, x] = out_mem[a0:a0 + ins.run_len]
                else:
                    out_mem[a0:a0 + ins.run_len] = out_buf[y, x]
        elif ins.op == "COMPUTE":
            res = np.zeros((ins.h, ins.w, ins.m), dtype=np.int64)
            for kh, kw in itertools.product(range(K), range(K)):
                patch = act_buf[kh:kh + (ins.h - 1) * S + 1:S, kw:kw + (ins.w - 1) * S + 1:S, :]  # h w c
                res += np.einsum("hwc,mc->hwm", patch, wgt_buf[:, kh, kw, :])
            out_buf = out_buf + res if ins.acc else res
    return out_mem


def _reference_conv(act, wgt, layer):
    # act [IH][IW][in_ch], wgt [out_ch][Cg][K][K] -> out [OH][OW][out_ch]
    K, S, G = layer.kernel, layer.stride, layer.groups
    Cg, Mg = layer.in_ch_per_group, layer.out_ch_per_group
    out = np.zeros((layer.out_h, layer.out_w, layer.out_ch), dtype=np.int64)
    for g in range(G):
        for kh, kw in itertools.product(range(K), range(K)):
            patch = act[kh:kh + (layer.out_h - 1) * S + 1:S, kw:kw + (layer.out_w - 1) * S + 1:S,
                        g * Cg:(g + 1) * Cg]
            out[:, :, g * Mg:(g + 1) * Mg] += np.einsum("hwc,mc->hwm", patch, wgt[g * Mg:(g + 1) * Mg, :, kh, kw])
    return out


@pytest.mark.parametrize("seed", range(12))
def test_program_computes_the_convolution(seed):
    rng = random.Random(seed)
    G = rng.choice([1, 1, 2, 3])
    K = rng.choice([1, 3, 5])
    S = rng.choice([1, 2]) if K > 1 else 1
    layer = Layer("conv", G * rng.randint(1, 7), G * rng.randint(1, 6), rng.randint(1, 6), rng.randint(1, 6),
                  kernel=K, stride=S, groups=G, act_bits=rng.choice([2, 4, 8]), wgt_bits=rng.choice([2, 4, 8]))
    tiling = Tiling(rng.randint(1, layer.in_ch_per_group), rng.randint(1, layer.out_ch_per_group),
                    rng.randint(1, layer.out_h), rng.randint(1, layer.out_w), rng.randrange(120))
    accel = _accel(dataflow=rng.choice(["WS", "OS", "RS"]), dram_bits_per_cycle=rng.choice([32, 64, 128]))
    nprng = np.random.default_rng(seed)
    act = nprng.integers(0, 1 << layer.act_bits, size=(layer.in_h, layer.in_w, layer.in_ch))
    wgt = nprng.integers(-(1 << (layer.wgt_bits - 1)), 1 << (layer.wgt_bits - 1),
                         size=(layer.out_ch, layer.in_ch_per_group, K, K))
    prog = compile_layer(layer, accel, tiling)
    flat, bases = arrange_weights(wgt, layer, tiling, accel.dataflow)
    assert np.array_equal(bases, weight_tile_bases(layer, tiling, accel.dataflow))
    out = _execute(prog, act.reshape(-1), flat)
    assert np.array_equal(out.reshape(layer.out_h, layer.out_w, layer.out_ch), _reference_conv(act, wgt, layer))


def test_output_unit_inputs_that_do_not_match_the_layer_are_one_line_errors():
    from jaq.hw.requant import Requant
    from jaq.hw.schedule import arrange_scales
    from rtl_gen import isa

    layer = Layer("pointwise", 4, 6, 2, 2, out_bits=8, out_signed=False)
    accel, t = _accel(dataflow="WS"), Tiling(4, 4, 2, 2)
    with pytest.raises(JaqError, match="5 multipliers"):
        arrange_scales([1] * 5, [0] * 5, layer, t, accel.dram_bits_per_cycle)
    with pytest.raises(JaqError, match="32-bit outputs") as e:
        isa.encode_program(compile_layer(layer, accel, t), accel, Requant.identity(6))
    assert "\n" not in str(e.value)
    words = arrange_scales(list(range(6)), [-1, 2**40, 0, 0, 0, 0], layer, t, accel.dram_bits_per_cycle)
    # E_o = 1 word per beat at W = 32: per channel (mult, bias low word, bias high word)
    assert words[:6].tolist() == [0, -1, -1, 1, 0, 256]


@pytest.mark.parametrize("fields,field", [
    ({"res_bits": 3}, "res_bits"),                               # residual bits outside {0, 2, 4, 8}
    ({"res_bits": 4, "pool": True, "out_bits": 8}, "res_bits"),  # a pooled head has no residual
    ({"pool": "yes"}, "pool"),                                   # flags are true or false
])
def test_bad_residual_and_pool_fields_are_one_line_errors(fields, field):
    from jaq.errors import JaqError

    d = {"kind": "pointwise", "in_ch": 4, "out_ch": 4, "out_h": 2, "out_w": 2, **fields}
    with pytest.raises(JaqError) as e:
        Layer.from_dict(d, "layers[0].")
    assert e.value.field == f"layers[0].{field}" and "\n" not in str(e.value)


def test_a_pooled_layer_tiled_spatially_is_a_one_line_error():
    from jaq.errors import JaqError

    layer = Layer("pointwise", 4, 6, 4, 4, out_bits=8, out_signed=False, pool=True)
    with pytest.raises(JaqError) as e:
        compile_layer(layer, Accelerator(pe_x=4, pe_y=4), Tiling(4, 6, 2, 4))
    assert e.value.field == "tiling.t_oh" and "t_oh=4" in str(e.value)
