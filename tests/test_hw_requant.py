"""The output unit's arithmetic (jaq.hw.requant): hand values, rounding ties, saturation, pooling, the real-to-
integer conversion, and properties (monotone in the accumulator, within half an LSB of the exact quotient)."""

from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from jaq.errors import JaqError
from jaq.hw.requant import BIAS_BITS, MULT_BITS, Requant, saturation_range

INT32 = st.integers(-(1 << 31), (1 << 31) - 1)


def test_saturation_ranges():
    assert saturation_range(4, False, False) == (0, 15)
    assert saturation_range(4, True, False) == (-8, 7)
    assert saturation_range(2, True, True) == (0, 1)
    assert saturation_range(32, True, False) == (-(1 << 31), (1 << 31) - 1)


def test_round_half_up_on_both_signs():
    rq = Requant(mult=(1,), bias=(0,), shift=1, out_bits=8, out_signed=True)
    # acc / 2: ties go toward +infinity on both signs
    assert [rq.apply_one(a, 0) for a in (-5, -3, -1, 1, 3, 5)] == [-2, -1, 0, 1, 2, 3]
    assert [rq.apply_one(a, 0) for a in (-4, -2, 0, 2, 4)] == [-2, -1, 0, 1, 2]


def test_saturation_at_both_ends_and_relu():
    rq = Requant(mult=(1, 1), bias=(0, 0), shift=0, out_bits=4, out_signed=True)
    assert [rq.apply_one(a, 0) for a in (-100, -9, -8, 7, 8, 100)] == [-8, -8, -8, 7, 7, 7]
    rl = Requant(mult=(1,), bias=(0,), shift=0, out_bits=2, out_signed=False, relu=True)
    assert [rl.apply_one(a, 0) for a in (-7, 0, 2, 3, 4)] == [0, 0, 2, 3, 3]


def test_residual_and_bias_per_channel():
    rq = Requant(mult=(3, -2), bias=(4, -8), shift=2, res_mult=8, out_bits=8, out_signed=True)
    # ch0: (10*3 + 1*8 + 4 + 2) >> 2 = 44 >> 2 = 11 ; ch1: (10*-2 + 1*8 - 8 + 2) >> 2 = -18 >> 2 = -5
    assert rq.apply_one(10, 0, 1) == 11 and rq.apply_one(10, 1, 1) == -5
    acc = np.array([[[10, 10]]])
    assert rq.apply(acc, np.array([[[1, 1]]])).tolist() == [[[11, -5]]]


def test_tensor_forms_equal_the_scalar_definition():
    g = torch.Generator().manual_seed(0)
    rq = Requant.from_real([0.013, -0.07, 0.2], [1.5, -3.25, 0.0], 0.6, out_bits=4, out_signed=True, relu=False)
    acc = torch.randint(-3000, 3000, (1, 3, 4, 5), generator=g)
    res = torch.randint(-8, 8, (1, 3, 4, 5), generator=g)
    t = rq.apply(acc, res, channel_axis=-3)
    n = rq.apply(acc.numpy(), res.numpy(), channel_axis=-3)
    ref = [[[[rq.apply_one(int(acc[0, c, y, x]), c, int(res[0, c, y, x])) for x in range(5)] for y in range(4)]
            for c in range(3)]]
    assert t.tolist() == n.tolist() == ref


def test_pooling_is_one_rounding_of_the_mean():
    real_m, real_b = [0.5, 0.25], [0.0, -1.0]
    rq = Requant.from_real(real_m, real_b, out_bits=8, out_signed=False, relu=True, pool_pixels=4)
    acc = np.array([[[[3, 5], [7, -20]], [[40, 0], [8, 9]]]])       # N, C, H, W
    out = rq.apply(acc, channel_axis=-3, pool_axes=(-2, -1))
    for c in range(2):
        mean = sum(max(Fraction(int(a)) * Fraction(real_m[c]) + Fraction(real_b[c]), 0)
                   for a in acc[0, c].flatten()) / 4
        assert out[0, c, 0, 0] == int(np.floor(float(mean) + 0.5))
        assert rq.apply_one([int(a) for a in acc[0, c].flatten()], c) == out[0, c, 0, 0]
    with pytest.raises(ValueError):
        rq.apply(acc, channel_axis=-3, pool_axes=(-1,))


def test_from_real_uses_the_largest_shift_and_refuses_overflow():
    rq = Requant.from_real([0.013, -0.5], [3.2, -1.1], 0.7, out_bits=4, out_signed=False, relu=True)
    assert rq.shift == 31 and rq.mult[1] == -(1 << 30) and rq.res_mult == round(0.7 * 2 ** 31)
    assert max(abs(m) for m in rq.mult) < 1 << (MULT_BITS - 1)
    big = Requant.from_real([1e-9], [0.0], out_bits=8, out_signed=True, relu=False)
    assert big.shift == 60 and (1 << 29) < big.mult[0] < (1 << 31)   # 1e-9 * 2^60 ~ 1.15e9: 30 bits kept
    with pytest.raises(JaqError, match="overflows the output unit"):
        Requant.from_real([3e9], [0.0], out_bits=8, out_signed=True, relu=False, where="layer dw3")
    with pytest.raises(JaqError, match="not finite"):
        Requant.from_real([float("nan")], [0.0], out_bits=8, out_signed=True, relu=False)
    with pytest.raises(JaqError):
        Requant(mult=(1 << 31,), bias=(0,), shift=0)
    with pytest.raises(JaqError):
        Requant(mult=(1,), bias=(1 << (BIAS_BITS - 1),), shift=0)
    with pytest.raises(JaqError):
        Requant(mult=(1,), bias=(0,), shift=0, out_bits=3)


@settings(max_examples=300, deadline=None)
@given(m=st.floats(-4.0, 4.0, allow_nan=False), b=st.floats(-300.0, 300.0, allow_nan=False),
       a0=INT32, a1=INT32, bits=st.sampled_from([2, 4, 8, 32]), relu=st.booleans())
def test_monotone_in_the_accumulator(m, b, a0, a1, bits, relu):
    rq = Requant.from_real([m], [b], out_bits=bits, out_signed=True, relu=relu)
    lo, hi = sorted((a0, a1))
    y0, y1 = rq.apply_one(lo, 0), rq.apply_one(hi, 0)
    assert (y0 <= y1) if rq.mult[0] >= 0 else (y0 >= y1)


@settings(max_examples=300, deadline=None)
@given(m=st.floats(-4.0, 4.0, allow_nan=False), b=st.floats(-300.0, 300.0, allow_nan=False),
       r=st.floats(-2.0, 2.0, allow_nan=False), acc=st.integers(-(1 << 24), 1 << 24), res=st.integers(-128, 127),
       relu=st.booleans())
def test_within_half_an_lsb_of_the_exact_value(m, b, r, acc, res, relu):
    """Unsaturated outputs are the exact rational value of the integer constants rounded: error <= 1/2, and the
    constants themselves are within 2^-(shift+1) of the real multipliers."""
    rq = Requant.from_real([m], [b], r, out_bits=32, out_signed=True, relu=relu)
    exact = Fraction(acc * rq.mult[0] + res * rq.res_mult + rq.bias[0], 1 << rq.shift)
    if relu:
        exact = max(exact, Fraction(0))
    y = rq.apply_one(acc, 0, res)
    if rq.lo < y < rq.hi:
        assert abs(Fraction(y) - exact) <= Fraction(1, 2)
    assert abs(Fraction(rq.mult[0], 1 << rq.shift) - Fraction(m)) <= Fraction(1, 1 << (rq.shift + 1))
