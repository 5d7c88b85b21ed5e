"""sim.reference: the integer reference convolution against torch.nn.functional.conv2d (exact in float64)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from jaq.errors import JaqError
from jaq.hw.packing import value_range
from jaq.hw.records import Layer
from sim.reference import conv_reference, layer_reference, random_layer_data, wrap_acc


def _torch_conv(x, w, stride, groups):
    # x [IH][IW][C] -> [1][C][IH][IW]; float64 is exact for these magnitudes (< 2^53)
    xt = torch.from_numpy(x.astype(np.float64)).permute(2, 0, 1)[None]
    wt = torch.from_numpy(w.astype(np.float64))
    y = F.conv2d(xt, wt, stride=stride, groups=groups)
    return y[0].permute(1, 2, 0).numpy().astype(np.int64)


LAYERS = [
    Layer("conv", 5, 7, 6, 5, kernel=3, stride=1, act_bits=8, wgt_bits=8),
    Layer("conv", 6, 4, 3, 4, kernel=5, stride=2, act_bits=4, wgt_bits=2),
    Layer("conv", 8, 6, 4, 4, kernel=3, stride=1, groups=2, act_bits=2, wgt_bits=4, act_signed=True),
    Layer("depthwise", 9, 9, 5, 3, kernel=3, stride=2, groups=9, act_bits=8, wgt_bits=4),
    Layer("pointwise", 17, 5, 4, 3, kernel=1, stride=1, act_bits=2, wgt_bits=8),
    Layer("pointwise", 16, 8, 3, 3, kernel=1, stride=2, act_bits=4, wgt_bits=4),
    Layer("fc", 40, 10, 1, 1, act_bits=8, wgt_bits=2, act_signed=True),
]


@pytest.mark.parametrize("layer", LAYERS, ids=lambda l: f"{l.kind}{l.kernel}s{l.stride}g{l.groups}")
def test_reference_matches_torch(layer):
    d = random_layer_data(layer, rng=3)
    assert d.y.shape == (layer.out_h, layer.out_w, layer.out_ch)
    np.testing.assert_array_equal(d.y, _torch_conv(d.x, d.w, layer.stride, layer.groups))
    assert np.abs(d.y).max() > 0


@pytest.mark.parametrize("a,w,signed", [(2, 2, False), (4, 8, True), (8, 8, False), (8, 2, True)])
def test_generator_ranges_and_padding(a, w, signed):
    layer = Layer("conv", 12, 6, 5, 5, kernel=3, act_bits=a, wgt_bits=w, act_signed=signed)
    d = random_layer_data(layer, rng=1)
    lo, hi = value_range(a, signed)
    assert d.x.min() >= lo and d.x.max() <= hi
    interior = d.x[1:-1, 1:-1]
    assert interior.min() == lo and interior.max() == hi  # extremes are drawn
    assert not d.x[0].any() and not d.x[-1].any() and not d.x[:, 0].any() and not d.x[:, -1].any()
    wlo, whi = value_range(w, True)
    assert d.w.min() == wlo and d.w.max() == whi


def test_worst_case_accumulator_fits_and_wrap():
    # largest magnitude the search space allows per output: Cg*K*K = 1024*25 products of 255 * -128
    x = np.full((5, 5, 64), 255, np.int64)
    wt = np.full((2, 64, 5, 5), -128, np.int64)
    y = conv_reference(x, wt)
    assert y[0, 0, 0] == -255 * 128 * 64 * 25
    assert np.array_equal(wrap_acc(np.array([2**31, -2**31 - 1, 5])), [-2**31, 2**31 - 1, 5])


def test_psum_and_shape_errors():
    layer = Layer("conv", 4, 4, 3, 3, kernel=3)
    d = random_layer_data(layer, rng=0)
    y2 = conv_reference(d.x, d.w, psum=d.y)
    np.testing.assert_array_equal(y2, 2 * d.y)
    with pytest.raises(JaqError):
        layer_reference(layer, d.x[:-1], d.w)
    with pytest.raises(JaqError):
        conv_reference(d.x, d.w, groups=3)
