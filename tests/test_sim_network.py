"""sim.network's host loop (pad -> accelerator conv -> shared requantize) against jaq.nn.integer.IntegerNet.run.

With the integer reference standing in for the accelerator, the loop must reproduce the integer model's logits
exactly: this pins the layout conversions ([C][H][W] <-> [IH][IW][C], weights, residuals, pooling) that the
simulated network run relies on.
"""

from dataclasses import replace

import numpy as np
import pytest
import torch

from jaq.hw.records import Layer
from jaq.nn.integer import IntegerNet, IntLayer
from sim.network import run_layers


def _draws(seed):
    """Random integer weights of ``bits`` bits and BN (mul, add) pairs from one generator."""
    g = torch.Generator().manual_seed(seed)

    def w(shape, bits):
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        return torch.randint(lo, hi + 1, shape, generator=g, dtype=torch.int64)

    def bn(c):
        return torch.rand(c, generator=g, dtype=torch.float64) + 0.5, torch.randn(c, generator=g, dtype=torch.float64)

    return w, bn


def _net_on_chip():
    """stem -> dw -> pw (+ residual of the dw input, on chip) -> pooled head (on chip) -> fc: no host operation."""
    w, bn = _draws(3)

    L0 = Layer("conv", 3, 8, 6, 6, kernel=3, stride=2, act_bits=8, wgt_bits=4, act_signed=True, name="stem",
               out_bits=4, out_signed=False)
    L1 = Layer("depthwise", 8, 8, 3, 3, kernel=3, stride=2, groups=8, act_bits=4, wgt_bits=8, name="dw",
               out_bits=2, out_signed=False)
    L2 = Layer("pointwise", 8, 8, 3, 3, kernel=1, act_bits=2, wgt_bits=2, name="pw", out_bits=4, out_signed=False,
               res_bits=2)
    L3 = Layer("pointwise", 8, 12, 3, 3, kernel=1, act_bits=4, wgt_bits=4, name="head", out_bits=8,
               out_signed=False, pool=True)
    L4 = Layer("fc", 12, 5, 1, 1, act_bits=8, wgt_bits=8, name="fc")
    (m0, a0), (m1, a1), (m2, a2), (m3, a3) = bn(8), bn(8), bn(8), bn(12)
    layers = [
        IntLayer(L0, w((8, 3, 3, 3), 4), 0.02, 0.05, m0, a0, True, 0, out_scale=0.1, out_bits=4),
        IntLayer(L1, w((8, 1, 3, 3), 8), 0.01, 0.1, m1, a1, True, 1, out_scale=0.2, out_bits=2),
        IntLayer(L2, w((8, 8, 1, 1), 2), 0.3, 0.2, m2, a2, False, 2, residual_src=2, residual_scale=0.2,
                 out_scale=0.15, out_bits=4),
        IntLayer(L3, w((12, 8, 1, 1), 4), 0.05, 0.15, m3, a3, True, 3, pool=True, out_scale=0.05, out_bits=8),
        IntLayer(L4, w((5, 12, 1, 1), 8), 0.01, 0.05, torch.ones(5, dtype=torch.float64),
                 torch.zeros(5, dtype=torch.float64), False, 4),
    ]
    return IntegerNet(layers, 8, True, 0.05)


def _net():
    w, bn = _draws(0)

    # stem and dw are finished on chip (out_bits = the consumer's bits), the residual + pooled pw by the host
    L0 = Layer("conv", 3, 8, 6, 6, kernel=3, stride=1, act_bits=8, wgt_bits=4, act_signed=True, name="stem",
               out_bits=4, out_signed=False)
    L1 = Layer("depthwise", 8, 8, 3, 3, kernel=3, stride=2, groups=8, act_bits=4, wgt_bits=8, name="dw",
               out_bits=2, out_signed=False)
    L2 = Layer("pointwise", 8, 8, 3, 3, kernel=1, act_bits=2, wgt_bits=2, name="pw")
    L3 = Layer("fc", 8, 5, 1, 1, act_bits=8, wgt_bits=8, name="fc")
    m0, a0 = bn(8)
    m1, a1 = bn(8)
    m2, a2 = bn(8)
    layers = [
        IntLayer(L0, w((8, 3, 3, 3), 4), 0.02, 0.05, m0, a0, True, 0, out_scale=0.1, out_bits=4),
        IntLayer(L1, w((8, 1, 3, 3), 8), 0.01, 0.1, m1, a1, True, 1, out_scale=0.2, out_bits=2),
        IntLayer(L2, w((8, 8, 1, 1), 2), 0.3, 0.2, m2, a2, True, 2, residual_src=2, residual_scale=0.2, pool=True,
                 out_scale=0.05, out_bits=8),
        IntLayer(L3, w((5, 8, 1, 1), 8), 0.01, 0.05, torch.ones(5, dtype=torch.float64),
                 torch.zeros(5, dtype=torch.float64), False, 3),
    ]
    return IntegerNet(layers, 8, True, 0.05)


def test_host_loop_with_reference_equals_integer_model():
    net = _net()
    img = torch.randn(3, 6, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    logits, accs, host_ops = run_layers(net, img, lambda j, d, rq: (rq.apply(d.y, channel_axis=-1), d.y))
    model = net.run(img.unsqueeze(0)).numpy()
    assert host_ops == 1  # the residual + pooled layer; stem, dw and the classifier finish on chip
    assert logits.shape == model.shape == (1, 5)
    np.testing.assert_array_equal(logits, model)
    # accumulators of the trace agree with the reference layer by layer
    _, trace = net.run(img.unsqueeze(0), trace=True)
    for acc, rec in zip(accs, trace):
        np.testing.assert_array_equal(acc, rec["acc"][0].permute(1, 2, 0).numpy())


@pytest.mark.verilator
@pytest.mark.slow
def test_network_on_simulated_accelerator_equals_integer_model():
    """The 4-layer integer net layer by layer on the Verilator model (WS build shared with test_sim_rtl_ws):
    final logits identical to IntegerNet.run, every layer bit-exact and counter-exact."""
    from jaq.hw.records import Accelerator, Tiling
    from sim.network import run_integer_net

    acc = Accelerator(pe_x=4, pe_y=3, act_buf_kb=64, wgt_buf_kb=64, out_buf_kb=64, dataflow="WS",
                      dram_bits_per_cycle=64, dram_latency_cycles=3)
    net = _net()
    tilings = [Tiling(2, 4, 4, 4), Tiling(1, 1, 2, 2), Tiling(8, 4, 2, 2), Tiling(8, 4, 1, 1)]
    img = torch.randn(3, 6, 6, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    res = run_integer_net(net, acc, tilings, img)
    assert res.logits_equal, (res.logits_rtl, res.logits_model)
    assert len(res.layer_reports) == 4 and all(r.ok for r in res.layer_reports)
    assert res.ok and res.simulated_cycles > 0 and res.host_ops == 1


@pytest.mark.verilator
@pytest.mark.slow
def test_network_fully_on_chip_is_one_stream():
    """Residual add and pooled head finished by the output unit: 0 host operations, one program stream from the
    quantized image to the logits on the RS build (layer-by-layer outputs and counters, logits equal)."""
    from jaq.hw.records import Accelerator, Tiling
    from sim.network import run_integer_net

    acc = Accelerator(pe_x=3, pe_y=4, act_buf_kb=64, wgt_buf_kb=64, out_buf_kb=64, dataflow="RS",
                      dram_bits_per_cycle=64, dram_latency_cycles=2)
    net = _net_on_chip()
    tilings = [Tiling(2, 4, 2, 2), Tiling(1, 1, 2, 2), Tiling(4, 8, 2, 2), Tiling(8, 4, 3, 3), Tiling(8, 4, 1, 1)]
    img = torch.randn(3, 11, 11, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    res = run_integer_net(net, acc, tilings, img)
    assert res.host_ops == 0 and res.logits_equal, (res.logits_rtl, res.logits_model)
    assert len(res.layer_reports) == 5 and all(r.ok for r in res.layer_reports), [
        (r.name, r.mismatches, r.counter_diffs) for r in res.layer_reports if not r.ok]


@pytest.mark.parametrize("edit,field", [
    (lambda n: setattr(n.layers[1], "src", 0), "in_ch"),                      # dw reads the 3-channel input
    (lambda n: setattr(n.layers[2], "residual_src", 0), "residual_src"),      # residual of another shape
    (lambda n: setattr(n.layers[0], "out_bits", 8), "out_bits"),              # stem writes 4 bits, dw reads 8
    (lambda n: setattr(n.layers[1], "src", 5), "src"),                        # a tensor that does not exist
])
def test_layers_that_do_not_chain_are_one_line_errors(edit, field):
    _refused(_net(), edit, field)


@pytest.mark.parametrize("edit,field", [
    # the on-chip residual adds a 4-bit tensor but the dw wrote 2-bit values into it
    (lambda n: setattr(n.layers[2], "layer", replace(n.layers[2].layer, res_bits=4)), "res_bits"),
    # the head pools in the integer model but its accelerator layer does not
    (lambda n: setattr(n.layers[3], "layer", replace(n.layers[3].layer, pool=False)), "pool"),
])
def test_on_chip_residual_and_pooling_that_do_not_match_are_one_line_errors(edit, field):
    _refused(_net_on_chip(), edit, field)


def _refused(net, edit, field):
    from jaq.errors import JaqError

    edit(net)
    img = torch.zeros(3, 6, 6, dtype=torch.float64)
    with pytest.raises(JaqError) as e:
        run_layers(net, img, lambda j, d, rq: (rq.apply(d.y, channel_axis=-1), d.y))
    msg = str(e.value)
    assert field in msg and "\n" not in msg and "layers[" in msg
