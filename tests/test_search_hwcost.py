"""The differentiable hardware cost (Eq. 9) and the hardware generator: gradients, normalisation, caching."""

import pytest
import torch

from jaq.hw.records import DATAFLOWS, LOOP_ORDERS, Accelerator, Layer
from jaq.nn.space import preset
from jaq.nn.supernet import Supernet
from jaq.search import model_api as api
from jaq.search.hwcost import HWCost
from jaq.search.hwgen import BUF_GRID, HEADS, PE_GRID, HWGenerator, encode_layers, sample_heads

FIXED = {"clock_mhz": 500.0, "dram_bits_per_cycle": 128, "dram_latency_cycles": 20, "out_unit_lines": 4,
         "double_buffer": False}


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    net = Supernet(preset("tiny"))
    gen = HWGenerator(hidden=32, blocks=5)
    hw = HWCost((0.33, 0.33, 0.33), FIXED, loop_order_candidates=6)
    hw.calibrate(api.candidate_rows(net))
    return net, gen, hw


def test_gradients_reach_alpha_beta_and_generator(setup):
    net, gen, hw = setup
    net.zero_grad()
    gen.zero_grad()
    rows = api.candidate_rows(net)
    subnet = api.derive_layers(net)
    smp = sample_heads(gen(encode_layers(subnet)), tau=5.0)
    res = hw(rows, subnet, smp)
    res.loss.backward()
    assert torch.isfinite(res.loss)
    for p in (net.alpha, net.beta_act, net.beta_wgt):
        assert p.grad is not None and p.grad.abs().sum() > 0
    # every head of the generator gets a gradient: numeric heads through the cost model, dataflow and loop
    # order through the relaxation over alternatives
    for name, _ in HEADS:
        g = gen.heads[name].weight.grad
        assert g is not None and g.abs().sum() > 0, name
    # and the residual trunk too
    assert gen.blocks[0].fc1.weight.grad.abs().sum() > 0


def test_normalisation_is_one_at_reference(setup):
    """At the reference accelerator with the initial probabilities each normalised term is exactly 1."""
    net, gen, hw = setup
    rows = api.candidate_rows(net)
    acc = hw.reference_accelerator()
    from jaq.hw.batch import AccelBatch
    e, l, a, _ = hw._expected(rows, acc, AccelBatch.from_accels([acc]))
    assert e.item() / hw.refs["energy_pj"] == pytest.approx(1.0, rel=1e-9)
    assert l.item() / hw.refs["latency_ms"] == pytest.approx(1.0, rel=1e-9)
    assert a.item() / hw.refs["area_mm2"] == pytest.approx(1.0, rel=1e-9)


def test_expected_cost_matches_enumeration(setup):
    """The batched expectation equals a plain sum over (op, act bits, wgt bits) of probability x cost."""
    net, gen, hw = setup
    rows = api.candidate_rows(net)
    acc = Accelerator(pe_x=8, pe_y=12, act_buf_kb=96, wgt_buf_kb=64, out_buf_kb=80, dataflow="OS", **FIXED)
    from jaq.hw.batch import AccelBatch
    e, l, _, _ = hw._expected(rows, acc, AccelBatch.from_accels([acc]))
    bits = rows.bits
    tot_e = tot_l = 0.0
    for i, lay in enumerate(rows.layers[:40]):
        for ia, a in enumerate(bits):
            for iw, w in enumerate(bits):
                p = (rows.op_prob[i] * rows.act_prob[i, ia] * rows.wgt_prob[i, iw]).item()
                if p == 0:
                    continue
                c = hw.cache.get_many([lay.with_bits(a, w)], acc)[0][0].cost
                tot_e += p * c.energy_total_pj
                tot_l += p * c.latency_ms
    # compare on the first 40 rows: recompute the batched version restricted to them
    from jaq.search.hwcost import CandidateRows
    sub = CandidateRows(rows.layers[:40], rows.op_prob[:40], rows.act_prob[:40], rows.wgt_prob[:40], bits)
    e40, l40, _, _ = hw._expected(sub, acc, AccelBatch.from_accels([acc]))
    assert e40.item() == pytest.approx(tot_e, rel=1e-6)
    assert l40.item() == pytest.approx(tot_l, rel=1e-6)
    assert e.item() > e40.item()


def test_tiling_cache_hits(setup):
    net, gen, hw = setup
    rows = api.candidate_rows(net)
    subnet = api.derive_layers(net)
    smp = sample_heads(gen(encode_layers(subnet)), tau=1.0, sample=False)
    hw(rows, subnet, smp)
    again = hw(rows, subnet, smp)  # same accelerator: every tiling comes from the cache
    assert again.batchtile_layers == 0 and again.batchtile_s == 0.0


def test_generator_values_on_grid():
    gen = HWGenerator(hidden=16, blocks=5)
    layers = [Layer("conv", 3, 16, 8, 8, 3), Layer("depthwise", 16, 16, 8, 8, 3, groups=16, act_bits=4)]
    g = torch.Generator().manual_seed(1)
    for _ in range(5):
        smp = sample_heads(gen(layers), tau=2.0, generator=g)
        acc = smp.accelerator(FIXED)
        assert acc.pe_x in PE_GRID.tolist() and acc.pe_y in PE_GRID.tolist()
        assert acc.act_buf_kb in BUF_GRID.tolist() and acc.dataflow in DATAFLOWS
        assert acc.loop_order in LOOP_ORDERS
        # forward values are exactly grid points
        assert smp.values["pe_x"].item() == pytest.approx(acc.pe_x, abs=1e-9)


def test_shared_candidate_tiling(setup):
    """'shared' reuses each layer's widest-bit tiling for every bit pair: legal, one search per layer."""
    net, gen, _ = setup
    hw = HWCost((0.33, 0.33, 0.33), FIXED, candidate_tiling="shared")
    rows = api.candidate_rows(net)
    refs = hw.calibrate(rows)
    subnet = api.derive_layers(net)
    res = hw(rows, subnet, sample_heads(gen(encode_layers(subnet)), tau=1.0, sample=False))
    assert res.batchtile_layers <= len({(l.kind, l.in_ch, l.out_ch, l.out_h, l.kernel, l.stride, l.groups)
                                        for l in rows.layers}) + len(subnet)
    assert torch.isfinite(res.loss) and refs["energy_pj"] > 0
    from jaq.hw.batch import AccelBatch
    acc = res.accelerator
    e, _, _, _ = hw._expected(rows, acc, AccelBatch.from_accels([acc]))
    assert e.item() > 0


def test_distinct_rows_equal_the_full_expansion_and_batchtile(setup):
    """The cost model runs once per distinct (shape, bits) row; the expectation, its gradient and the tilings are
    those of the full bit expansion with BatchTile called directly."""
    from jaq.hw.batch import AccelBatch, LayerBatch
    from jaq.hw.batchtile import batch_tile
    from jaq.hw.model import estimate
    from jaq.search.hwcost import _bit_expanded, tile_batch
    net, gen, hw = setup
    acc = Accelerator(pe_x=12, pe_y=5, act_buf_kb=80, wgt_buf_kb=64, out_buf_kb=96, dataflow="RS", **FIXED)
    ab = AccelBatch.from_accels([acc])
    net.zero_grad()
    rows = api.candidate_rows(net)
    e, l, a, _ = hw._expected(rows, acc, ab)
    (e / hw.refs["energy_pj"] + l / hw.refs["latency_ms"]).backward()
    g_fast = net.alpha.grad.clone()
    plan = hw._row_plan(rows)
    assert len(plan.uniq) < len(plan.inv) == len(rows.layers) * len(rows.bits) ** 2
    direct = batch_tile(plan.uniq, acc, weights=hw.cache.weights, mode="native", loop_orders="accel",
                        dataflows="accel")
    assert [c.tiling for c in direct] == [c.tiling for c in hw.cache.get_many(plan.uniq, acc)[0]]
    net.zero_grad()
    rows = api.candidate_rows(net)
    exp = _bit_expanded(rows.layers, rows.bits)
    til = [direct[plan.inv[i]].tiling for i in range(len(exp))]
    cb = estimate(LayerBatch.from_layers(exp), ab.expand_to(len(exp)), tile_batch(til))
    op, ap, wp = (t.double() for t in (rows.op_prob, rows.act_prob, rows.wgt_prob))
    w = (op[:, None, None] * ap[:, :, None] * wp[:, None, :]).reshape(-1)
    e_ref, l_ref = (w * cb.energy_total_pj).sum(), (w * cb.latency_ms).sum()
    (e_ref / hw.refs["energy_pj"] + l_ref / hw.refs["latency_ms"]).backward()
    assert e.item() == pytest.approx(e_ref.item(), rel=1e-12) and l.item() == pytest.approx(l_ref.item(), rel=1e-12)
    assert torch.allclose(g_fast, net.alpha.grad, rtol=1e-9, atol=1e-15)


def test_held_noise_repeats_the_accelerator():
    """draw_noise makes the draws sample_heads would make; held noise with unchanged logits gives the same
    accelerator (so BatchTile's cached tilings are reused)."""
    from jaq.search.hwgen import draw_noise
    gen = HWGenerator(hidden=16, blocks=2)
    layers = [Layer("conv", 3, 16, 8, 8, 3), Layer("pointwise", 16, 32, 8, 8, 1, act_bits=4)]
    logits = gen(layers)
    a = sample_heads(logits, tau=3.0, generator=torch.Generator().manual_seed(9))
    noise = draw_noise(logits, torch.Generator().manual_seed(9))
    b = sample_heads(logits, tau=3.0, noise=noise)
    c = sample_heads(logits, tau=0.5, noise=noise)
    assert a.accelerator(FIXED) == b.accelerator(FIXED) == c.accelerator(FIXED)
    assert all(torch.equal(a.onehot[k], b.onehot[k]) for k in a.onehot)
