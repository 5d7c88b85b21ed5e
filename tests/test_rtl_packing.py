"""jaq.hw.packing: the one operand-packing rule (scalar and numpy forms agree and round-trip)."""

import numpy as np
import pytest

from jaq.errors import JaqError
from jaq.hw.packing import (act_vector_bits, pack_lanes, pack_lanes_np, pack_words, pf, unpack_lanes,
                            unpack_lanes_np, unpack_words, value_range, wgt_vector_bits)


def test_pf_table():
    assert {(a, w): pf(a, w) for a in (2, 4, 8) for w in (2, 4, 8)} == {
        (8, 8): 1, (8, 4): 2, (4, 8): 2, (4, 4): 4, (8, 2): 4, (2, 8): 4, (4, 2): 8, (2, 4): 8, (2, 2): 16}
    assert act_vector_bits(2, 2) == 32 and wgt_vector_bits(8, 2) == 8 and act_vector_bits(8, 2) == 32
    with pytest.raises(JaqError):
        pf(3, 8)


def test_lane_positions_and_twos_complement():
    assert pack_lanes([1, 2, 3], 4) == 0x321
    assert pack_lanes([-1, 0], 2) == 0b0011
    assert pack_lanes([-128, 127], 8) == 0x7F80
    assert unpack_lanes(0x7F80, 8, 2, True) == [-128, 127]
    assert unpack_lanes(0x7F80, 8, 2, False) == [128, 127]
    with pytest.raises(JaqError):
        pack_lanes([4], 2)


@pytest.mark.parametrize("bits", [2, 4, 8, 32])
@pytest.mark.parametrize("signed", [False, True])
def test_vectorised_matches_scalar(bits, signed):
    rng = np.random.default_rng(bits * 2 + signed)
    lo, hi = value_range(bits, signed)
    v = rng.integers(lo, hi + 1, size=(9, 5))
    wide = pack_words(v, bits, 512)
    assert wide == [pack_lanes(r, bits) for r in v.tolist()]
    assert (unpack_words(wide, bits, 5, signed) == v).all()
    if 5 * bits <= 64:
        p = pack_lanes_np(v, bits)
        assert [int(x) for x in p] == wide
        assert (unpack_lanes_np(p, bits, 5, signed) == v).all()
