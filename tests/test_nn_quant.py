"""Quantizer Q(.) (paper Eq. 2), its integer form and the straight-through estimator; CSQ channel handling."""

import pytest
import torch

from jaq.nn.ops import QConv2d, num_selected, select_channels
from jaq.nn.quant import (fake_quant, fake_quant_multi, int_range, minmax_scale, mix_bits, mixed_fake_quant,
                          quantize_int)


def test_int_ranges():
    assert int_range(2, True) == (-2, 1)
    assert int_range(4, True) == (-8, 7)
    assert int_range(8, True) == (-128, 127)
    assert int_range(2, False) == (0, 3)
    assert int_range(8, False) == (0, 255)


def test_signed_hand_values_2_4_8_bits():
    x = torch.tensor([-0.8, -0.5, 0.0, 0.35, 1.0])
    # s = (max - min) / (2^b - 1) = 1.8 / (2^b - 1); x / s clipped to the signed range, then rounded
    q, s = quantize_int(x, 2, True)
    assert s.item() == pytest.approx(0.6)
    assert q.tolist() == [-1, -1, 0, 1, 1]  # -1.33, -0.83, 0, 0.58, 1.67 (clips to 1)
    q, s = quantize_int(x, 4, True)
    assert s.item() == pytest.approx(0.12)
    assert q.tolist() == [-7, -4, 0, 3, 7]  # -6.67, -4.17, 0, 2.92, 8.33 (clips to 7)
    q, s = quantize_int(x, 8, True)
    assert s.item() == pytest.approx(1.8 / 255)
    assert q.tolist() == [-113, -71, 0, 50, 127]  # -113.3, -70.8, 0, 49.6, 141.7 (clips to 127)
    assert q.dtype == torch.int64
    # rounding is half to even (torch.round), on exact halves
    q, _ = quantize_int(torch.tensor([-1.5, -0.5, 0.5, 2.5, -9.0]), 4, True, scale=1.0)
    assert q.tolist() == [-2, 0, 0, 2, -8]


def test_unsigned_and_given_scale_and_clipping():
    q, s = quantize_int(torch.tensor([0.0, 1.0, 2.0, 3.0]), 2, False)
    assert s.item() == pytest.approx(1.0) and q.tolist() == [0, 1, 2, 3]
    q, _ = quantize_int(torch.tensor([-0.5, 0.0, 0.104, 1.0, 2.56, 3.0]), 8, False, scale=0.01)
    assert q.tolist() == [0, 0, 10, 100, 255, 255]  # negatives clip to 0, overflow clips to 255
    # an unsigned grid starts at 0: a positive minimum does not shift it (no zero point)
    q, s = quantize_int(torch.tensor([1.0, 2.0]), 2, False)
    assert s.item() == pytest.approx(2 / 3) and q.tolist() == [2, 3]


@pytest.mark.parametrize("bits", [2, 4, 8])
@pytest.mark.parametrize("signed", [True, False])
def test_levels_and_fake_quant_is_int_times_scale(bits, signed):
    torch.manual_seed(bits)
    x = torch.randn(4000)
    q, s = quantize_int(x, bits, signed)
    lo, hi = int_range(bits, signed)
    assert q.min() >= lo and q.max() <= hi
    assert len(torch.unique(q)) <= 2 ** bits
    assert q.max() == hi  # the max of the range is used
    fq = fake_quant_multi(x, torch.tensor([float(bits)]), signed, x.min(), x.max())[0]
    assert torch.equal(fq, q.to(x.dtype) * s)  # bit-identical: training sees exactly the exported integers


def test_ste_gradient_clipped():
    x = torch.tensor([-3.0, -1.0, 0.2, 0.9, 5.0], requires_grad=True)
    s = torch.tensor(0.5)
    y = fake_quant(x, s, -2, 1)  # x/s = -6, -2, 0.4, 1.8, 10 -> inside only for -1.0 and 0.2
    assert y.tolist() == [-1.0, -1.0, 0.0, 0.5, 0.5]
    y.sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 0.0, 0.0]


def test_multi_bit_mixture_gradient_reaches_weights():
    x = torch.randn(3, 5, requires_grad=True)
    bits = torch.tensor([2.0, 4.0, 8.0])
    w = torch.tensor([0.2, 0.3, 0.5], requires_grad=True)
    q = fake_quant_multi(x, bits, True, x.detach().min(), x.detach().max())
    assert q.shape == (3, 3, 5)
    y = mix_bits(q, w)
    y.sum().backward()
    assert torch.all(w.grad != 0) and x.grad is not None


def test_fused_weight_mixture_equals_autograd_mixture():
    torch.manual_seed(3)
    bits = torch.tensor([2.0, 4.0, 8.0])
    x1 = torch.randn(6, 4, 3, 3, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_(True)
    w1 = torch.tensor([0.2, 0.3, 0.5], requires_grad=True)
    w2 = w1.detach().clone().requires_grad_(True)
    g = torch.randn(6, 4, 3, 3)
    lo, hi = x1.detach().min(), x1.detach().max() * 0.8  # some values clip
    y1 = mix_bits(fake_quant_multi(x1, bits, True, lo, hi), w1)
    y2 = mixed_fake_quant(x2, bits, True, lo, hi, w2)
    assert torch.allclose(y1, y2, atol=1e-6)
    (y1 * g).sum().backward()
    (y2 * g).sum().backward()
    assert torch.allclose(x1.grad, x2.grad, atol=1e-6) and torch.allclose(w1.grad, w2.grad, atol=1e-5)


def test_scale_includes_zero():
    s = minmax_scale(torch.tensor(1.0), torch.tensor(4.0), torch.tensor(2.0), True)
    assert s.item() == pytest.approx(4 / 3)  # range widened to [0, 4]


def test_select_channels():
    imp = torch.tensor([0.1, 0.5, 0.3, 0.9, 0.5, 0.0, 0.2, 0.4])
    assert select_channels(imp, 25).tolist() == [1, 3]  # top 2 of 8
    assert select_channels(imp, 37.5).tolist() == [1, 3, 4]  # tie 0.5/0.5 -> both; next 0.4 excluded
    assert select_channels(torch.ones(8), 25).tolist() == [0, 1]  # ties: lower index first
    assert select_channels(imp, 1).tolist() == [3]  # at least one channel
    assert select_channels(imp, 25, "channel0").tolist() == [0, 1]
    assert num_selected(352, 3) == 11 and num_selected(16, 3) == 1 and num_selected(10, 100) == 10


def test_csq_quantizes_only_selected_channels_others_bit_identical():
    torch.manual_seed(0)
    conv = QConv2d(8, 4, 3, act_bits=(2, 4, 8), wgt_bits=(2, 4, 8), act_signed=True)
    x = torch.randn(2, 8, 5, 5)
    ab = torch.tensor([0.2, 0.3, 0.5])
    omega = torch.tensor([1, 6])
    xt = conv.quantize_input(x, ab, omega=omega)
    rest = [c for c in range(8) if c not in (1, 6)]
    assert torch.equal(xt[:, rest], x[:, rest])  # bit-identical
    q = fake_quant_multi(x, conv.act_bits, True, x.min(), x.max())  # range from the whole tensor
    expect = mix_bits(q, ab)
    assert torch.allclose(xt[:, [1, 6]], expect[:, [1, 6]], atol=1e-6)
    assert not torch.allclose(xt[:, [1, 6]], x[:, [1, 6]])


@pytest.mark.parametrize("groups,in_ch,out_ch,stride", [(1, 8, 6, 1), (8, 8, 8, 2), (2, 8, 6, 1), (2, 8, 8, 2)])
def test_csq_delta_conv_equals_materialised(groups, in_ch, out_ch, stride):
    torch.manual_seed(1)
    conv = QConv2d(in_ch, out_ch, 3, stride, groups, act_bits=(2, 4, 8), wgt_bits=(2, 4, 8), act_signed=False)
    x = torch.relu(torch.randn(2, in_ch, 7, 7))
    ab, wb = torch.tensor([0.5, 0.3, 0.2]), torch.tensor([0.1, 0.6, 0.3])
    omega = torch.tensor([0, 3, 5])
    y_delta = conv(x, ab=ab, wb=wb, omega=omega)
    conv.materialize = True
    y_mat = conv(x, ab=ab, wb=wb, omega=omega)
    assert torch.allclose(y_delta, y_mat, atol=1e-5)
