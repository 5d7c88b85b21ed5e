"""BatchTile (jaq.hw.batchtile): identical to the exhaustive pure-Python search, tie-break, pinned tilings,
grid fast path == row evaluation."""

from __future__ import annotations

import random

import pytest
import torch

from jaq.errors import JaqError
from jaq.hw import batchtile as BT
from jaq.hw import oracle as OR
from jaq.hw import space
from jaq.hw.batch import AccelBatch
from jaq.hw.model import estimate, estimate_one
from jaq.hw.records import DATAFLOWS, LOOP_ORDERS, Accelerator, Layer, Tiling
from jaq.hw.schedule import compile_layer, walk


def _same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.tiling == y.tiling and x.dataflow == y.dataflow
        assert x.objective == y.objective
        assert x.cost.cycles == y.cost.cycles and x.cost.accesses == y.cost.accesses
        assert x.cost.energy_pj == y.cost.energy_pj and x.cost.area_mm2 == y.cost.area_mm2


def _random_layers(rng, n):
    out = []
    for _ in range(n):
        kind = rng.choice(["conv", "depthwise", "pointwise", "fc"])
        bits = dict(act_bits=rng.choice([2, 4, 8]), wgt_bits=rng.choice([2, 4, 8]))
        if kind == "conv":
            k = rng.choice([3, 5])
            out.append(Layer("conv", rng.randint(1, 40), rng.randint(1, 40), rng.randint(1, 12), rng.randint(1, 12),
                             kernel=k, stride=rng.choice([1, 2]), res_bits=rng.choice([0, 0, 4, 8]), **bits))
        elif kind == "depthwise":
            c = rng.randint(1, 64)
            out.append(Layer("depthwise", c, c, rng.randint(1, 12), rng.randint(1, 12), kernel=rng.choice([3, 5]),
                             stride=rng.choice([1, 2]), groups=c, **bits))
        elif kind == "pointwise":  # a third of them pooled heads (one out tile over every pixel, 8-bit outputs)
            pool = rng.random() < 0.33
            out.append(Layer("pointwise", rng.randint(1, 96), rng.randint(1, 96), rng.randint(1, 12),
                             rng.randint(1, 12), pool=pool, out_bits=8 if pool else 32, out_signed=not pool,
                             **bits))
        else:
            out.append(Layer("fc", rng.randint(1, 300), rng.randint(1, 20), 1, 1, **bits))
    return out


def _random_accel(rng):
    kb = lambda: rng.choice(space.BUF_KB_CHOICES[:6])  # noqa: E731  small buffers: legality matters
    return Accelerator(pe_x=rng.randint(3, 64), pe_y=rng.randint(3, 64), act_buf_kb=kb(), wgt_buf_kb=kb(),
                       out_buf_kb=kb(), dataflow=rng.choice(DATAFLOWS), loop_order=rng.randrange(120),
                       dram_bits_per_cycle=rng.choice([32, 64, 128]), dram_latency_cycles=rng.randint(0, 50))


@pytest.mark.parametrize("seed", range(6))
def test_batchtile_equals_exhaustive(seed):
    rng = random.Random(seed)
    layers, accel = _random_layers(rng, 5), _random_accel(rng)
    w = rng.choice([OR.DEFAULT_WEIGHTS, (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.2, 0.7, 0.1)])
    _same(BT.batch_tile(layers, accel, weights=w), OR.exhaustive_reference(layers, accel, weights=w))


def test_batchtile_equals_exhaustive_full_space_small():
    rng = random.Random(7)
    layers = [Layer("conv", 6, 5, 3, 2, kernel=3, act_bits=4, wgt_bits=2),
              Layer("depthwise", 4, 4, 2, 1, kernel=3, stride=2, groups=4)]
    accel = _random_accel(rng)
    got = BT.batch_tile(layers, accel, loop_orders="all", dataflows="all")
    _same(got, OR.exhaustive_reference(layers, accel, loop_orders="all", dataflows="all"))
    # searching a superset never gives a worse objective
    own = BT.batch_tile(layers, accel)
    assert all(g.objective <= o.objective for g, o in zip(got, own))


def test_chosen_tiling_is_legal_and_matches_the_walker():
    layers = _random_layers(random.Random(3), 4)
    accel = Accelerator(pe_x=6, pe_y=9, act_buf_kb=64, wgt_buf_kb=80, out_buf_kb=64, dataflow="OS")
    for layer, ch in zip(layers, BT.batch_tile(layers, accel)):
        g = walk(compile_layer(layer, accel, ch.tiling))
        assert ch.cost.legal and ch.cost.cycles == g["cycles"]
        assert ch.cost.accesses["dram_rd_bits"] == g["dram_rd_bits"]


def test_tie_break_is_lowest_cycles_then_lexicographic():
    # all weights zero: every objective ties at 0 -> lowest cycles, then the smallest (t_ic, t_oc, t_oh, t_ow, lo)
    layer = Layer("conv", 8, 8, 4, 4, kernel=3)
    accel = Accelerator(pe_x=4, pe_y=4, act_buf_kb=64, wgt_buf_kb=64, out_buf_kb=64)
    los = [0, 5, 17, 33, 64, 90, 119]
    ch = BT.batch_tile([layer], accel, weights=(0.0, 0.0, 0.0), loop_orders=los)[0]
    en = OR._ScalarEnergy(accel)
    best = None
    for ti in space.tile_candidates(8):
        for to in space.tile_candidates(8):
            for th in space.tile_candidates(4):
                for tw in space.tile_candidates(4):
                    for lo in los:
                        c = OR.scalar_cost(layer, accel, Tiling(ti, to, th, tw, LOOP_ORDERS[lo]), _en=en)
                        key = (c.cycles, ti, to, th, tw, lo)
                        best = key if best is None or key < best else best
    assert ch.objective == 0.0
    assert (ch.cost.cycles, ch.tiling.t_ic, ch.tiling.t_oc, ch.tiling.t_oh, ch.tiling.t_ow,
            LOOP_ORDERS.index(ch.tiling.loop_order)) == best


def test_latency_only_best_never_worsens_with_larger_buffers():
    layers = _random_layers(random.Random(11), 4)
    prev = None
    for kb in (64, 128, 256, 528):
        accel = Accelerator(pe_x=8, pe_y=8, act_buf_kb=kb, wgt_buf_kb=kb, out_buf_kb=kb)
        cyc = [c.cost.cycles for c in BT.batch_tile(layers, accel, weights=(0.0, 1.0, 0.0))]
        if prev is not None:
            assert all(a <= b for a, b in zip(cyc, prev))
        prev = cyc


def test_pinned_tilings_and_errors():
    layers = [Layer("conv", 16, 16, 8, 8, kernel=3), Layer("pointwise", 16, 32, 8, 8)]
    accel = Accelerator(pe_x=8, pe_y=8)
    pin = Tiling(4, 8, 2, 2, ("B", "IC", "OC", "OH", "OW"))
    res = BT.batch_tile(layers, accel, pinned={0: pin})
    assert res[0].tiling == pin
    assert res[0].cost.cycles == estimate_one(layers[0], accel, pin).cycles
    assert res[1].tiling == BT.batch_tile(layers[1:], accel)[0].tiling
    with pytest.raises(JaqError, match=r"layers\[0\]"):
        BT.batch_tile(layers, accel, pinned={0: Tiling(32, 8, 2, 2)})
    with pytest.raises(JaqError, match="pinned"):
        BT.batch_tile(layers, accel, pinned={5: pin})
    with pytest.raises(JaqError, match="weights"):
        BT.batch_tile(layers, accel, weights=(1.0, -1.0, 0.0))
    ev = BT.evaluate_tilings(layers[:1], accel, [Tiling(32, 8, 2, 2)])
    assert not ev[0].cost.legal and ev[0].objective == float("inf")


def test_native_search_refuses_a_batch(tmp_path, capsys):
    """Native mode runs one image at a time: a batch > 1 is a one-line error naming the layer (searched layers
    never reach estimate_layers, so batch_tile checks them itself), not silently costed as one image."""
    import yaml

    from jaq.cli import main

    layers = [Layer("conv", 16, 16, 8, 8, kernel=3), Layer("pointwise", 16, 32, 8, 8, batch=16)]
    accel = Accelerator(pe_x=8, pe_y=8)
    with pytest.raises(JaqError, match=r"^layers\[1\]\.batch: batch 16: .*one image at a time"):
        BT.batch_tile(layers, accel)
    with pytest.raises(JaqError, match=r"layers\[1\]\.batch"):  # pinned or searched alike
        BT.batch_tile(layers, accel, pinned={1: Tiling(4, 8, 2, 2)})
    # the same file through `jaq estimate --mode native` (no pinned tilings: every layer searched)
    f = tmp_path / "batch16.yaml"
    f.write_text(yaml.safe_dump({"layers": [l.to_dict() for l in layers],
                                 "accelerator": {"pe_x": 8, "pe_y": 8}}))
    assert main(["estimate", str(f), "--mode", "native"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "layers[1].batch" in err and "batch 16" in err
    # batch 1 is unchanged
    assert len(BT.batch_tile([layers[0], Layer("pointwise", 16, 32, 8, 8)], accel)) == 2


def test_grid_fast_path_equals_row_evaluation():
    layers = _random_layers(random.Random(5), 4)
    accel = _random_accel(random.Random(6))
    for lo_ids, df_ids in (((0, 17, 119), (0, 1, 2)), ((accel.loop_order_id,), (2,)), ((3, 50), (1,))):
        e = BT._enumerate(layers, lo_ids, df_ids)
        fast = estimate(e.layers, AccelBatch.from_accels([accel]), e.tiles, grid=e.grid)
        lb, tb, df = e.row_batches()
        slow = estimate(lb, BT._accel_rows(accel, df), tb)
        assert fast.cycles.shape == slow.cycles.shape == (e.n,)
        assert torch.equal(fast.cycles, slow.cycles) and torch.equal(fast.legal, slow.legal)
        for k in fast.accesses:
            assert torch.equal(fast.accesses[k], slow.accesses[k]), k
        for k in fast.energy_pj:
            assert torch.equal(fast.energy_pj[k], slow.energy_pj[k]), k
        info = e.row_info(torch.arange(e.n))
        assert torch.equal(info[:, 0], tb.t_ic) and torch.equal(info[:, 4].long(), tb.loop_order)
        assert torch.equal(info[:, 5].long(), df)


def test_enumeration_cache_and_order():
    layer = Layer("conv", 8, 4, 2, 2, kernel=3)
    e1 = BT._enumerate([layer], (3,), (0,))
    assert BT._enumerate([layer], (3,), (0,)) is e1
    rows = list(zip(e1.tiles.t_ic.tolist(), e1.tiles.t_oc.tolist(), e1.tiles.t_oh.tolist(), e1.tiles.t_ow.tolist()))
    assert rows == sorted(rows) and len(rows) == space.space_size(layer, 1, 1) == 4 * 3 * 2 * 2
    assert len(BT.distinct_loop_orders(range(120))) == 24
