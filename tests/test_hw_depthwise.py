"""The depthwise mapping (docs/execution-model.md section 8): its per-COMPUTE counts against an explicit
enumeration of the step schedule, the closed form of the row word reads, legality per dataflow, BatchTile
against the exhaustive reference on depthwise layers, and monotonicity in the array's columns."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaq.errors import JaqError
from jaq.hw import timing as T
from jaq.hw.batchtile import batch_tile
from jaq.hw.oracle import exhaustive_reference
from jaq.hw.model import estimate_one
from jaq.hw.records import Accelerator, Layer, Tiling
from jaq.hw.schedule import compile_layer, walk


def _enumerate_ws_dw(K: int, X: int, Y: int, a: int, pf: int, m: int, h: int, w: int) -> dict[str, int]:
    """The WS depthwise COMPUTE step by step, as the sequencer issues it (section 8): rows <- (channel replica,
    window group of pf kernel positions), columns <- channels of the replica."""
    c = dict(steps=0, act_vectors=0, wgt_vectors=0, out_words=0, fu_active=0, macs=0)
    ng = -(-K * K // pf)
    q = Y // ng if ng <= Y else 1
    for g0 in range(0, ng, Y):
        gp = min(Y, ng - g0)
        for cb in range(0, m, q * X):
            reps = [(cb + j * X, min(X, m - cb - j * X)) for j in range(q) if cb + j * X < m]
            c["steps"] += len(reps) * gp         # preload: one row per step, one word per active column
            c["wgt_vectors"] += gp * sum(cols for _, cols in reps)
            for _ in range(h * w):               # stream: one output pixel per step
                c["steps"] += 1
                for ch0, cols in reps:
                    words = -(-((ch0 * a) % 32 + cols * a) // 32)   # one lane's channel window
                    for g in range(g0, g0 + gp):
                        lanes = min(pf, K * K - g * pf)
                        c["act_vectors"] += lanes * words
                        c["fu_active"] += cols
                        c["macs"] += lanes * cols
                    c["out_words"] += cols
    return c


@settings(max_examples=400, deadline=None)
@given(K=st.sampled_from([1, 3, 5, 7]), X=st.integers(3, 20), Y=st.integers(3, 20), a=st.sampled_from([2, 4, 8]),
       w_bits=st.sampled_from([2, 4, 8]), m=st.integers(1, 90), h=st.integers(1, 5), w=st.integers(1, 5))
def test_ws_dw_terms_equal_the_step_enumeration(K, X, Y, a, w_bits, m, h, w):
    pf = T.fusion_factor(a, w_bits)
    p = T.ComputeParams(K, 1, X, Y, pf, a)
    got = {k: T.sum_terms(ts, 1, m, h, w) for k, ts in T.compute_terms("WS", p, depthwise=True).items()}
    assert got == _enumerate_ws_dw(K, X, Y, a, pf, m, h, w)


def test_lane_windows_fit_the_row_ports():
    for X in range(3, 65):
        for a in (2, 4, 8):
            for cb in range(0, 1024, X):
                off = (cb * a) % 32
                assert -(-(off + X * a) // 32) <= T.dw_window_words(X, a)
            assert (32 // a) * T.dw_window_words(X, a) <= T.dw_row_ports(X)


def _dw(c=24, hw=6, K=3, S=1, bits=(4, 4)):
    return Layer("depthwise", c, c, hw, hw, kernel=K, stride=S, groups=c).with_bits(*bits)


def test_channel_tiles_only_on_the_mapped_dataflow():
    layer = _dw()
    for df in ("OS", "RS"):
        acc = Accelerator(pe_x=8, pe_y=8, dataflow=df)
        with pytest.raises(JaqError) as e:
            compile_layer(layer, acc, Tiling(1, 4, 6, 6))
        assert e.value.field == "tiling.t_oc" and "\n" not in str(e.value)
        assert not estimate_one(layer, acc, Tiling(1, 4, 6, 6)).legal
        assert estimate_one(layer, acc, Tiling(1, 1, 6, 6)).legal
    acc = Accelerator(pe_x=8, pe_y=8, dataflow="WS")
    prog = compile_layer(layer, acc, Tiling(1, 16, 6, 6))
    assert walk(prog) == estimate_one(layer, acc, Tiling(1, 16, 6, 6)).accesses | {"cycles": walk(prog)["cycles"]}
    with pytest.raises(JaqError):
        compile_layer(layer, acc, Tiling(2, 16, 6, 6))   # the IC dimension of a depthwise layer is 1


def test_act_runs_carry_all_channels_of_a_pixel():
    layer = _dw(c=32, hw=4)
    acc = Accelerator(pe_x=16, pe_y=16, dataflow="WS", dram_bits_per_cycle=128)
    prog = compile_layer(layer, acc, Tiling(1, 32, 4, 4))
    la = [i for i in prog if i.op == "LOAD_ACT"]
    assert len(la) == 1 and la[0].run_len == 32 and la[0].beats == 6 * 6 * 1   # 32 4-bit channels in one beat
    lw = [i for i in prog if i.op == "LOAD_WGT"]
    # window vectors: 3 groups of pf = 4 positions (the 12th zero), 32 channels x 4 weights x 4 bits per group
    assert lw[0].n_runs == 3 and lw[0].run_len == 128 and lw[0].beats == 3 * 4


@pytest.mark.parametrize("seed", range(4))
def test_batchtile_equals_exhaustive_on_depthwise_layers(seed):
    rng = random.Random(seed)
    layers = [_dw(c=rng.randint(3, 70), hw=rng.randint(2, 9), K=rng.choice([3, 5, 7]), S=rng.choice([1, 2]),
                  bits=(rng.choice([2, 4, 8]), rng.choice([2, 4, 8]))) for _ in range(3)]
    acc = Accelerator(pe_x=rng.randint(3, 20), pe_y=rng.randint(3, 20), dataflow="WS", act_buf_kb=64,
                      wgt_buf_kb=64, out_buf_kb=64)
    fast = batch_tile(layers, acc, dataflows="all")
    ref = exhaustive_reference(layers, acc, dataflows="all")
    for f, r in zip(fast, ref):
        assert (f.tiling, f.dataflow, f.cost.cycles) == (r.tiling, r.dataflow, r.cost.cycles)


@settings(max_examples=200, deadline=None)
@given(c=st.integers(1, 200), hw=st.integers(1, 16), K=st.sampled_from([3, 5, 7]), x=st.integers(3, 63),
       y=st.integers(3, 63), t_oc=st.sampled_from([1, 2, 8, 32, 128]), a=st.sampled_from([2, 4, 8]),
       w=st.sampled_from([2, 4, 8]))
def test_more_columns_or_rows_never_raise_depthwise_compute(c, hw, K, x, y, t_oc, a, w):
    layer = _dw(c=c, hw=hw, K=K, bits=(a, w))
    t = Tiling(1, min(t_oc, c), hw, hw)
    steps = {xy: estimate_one(layer, Accelerator(pe_x=xy[0], pe_y=xy[1], dataflow="WS"), t).accesses["compute_steps"]
             for xy in ((x, y), (x + 1, y), (x, y + 1))}
    assert steps[(x + 1, y)] <= steps[(x, y)] and steps[(x, y + 1)] <= steps[(x, y)]
