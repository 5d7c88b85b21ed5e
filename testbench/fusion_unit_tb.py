"""cocotb unit testbench of rtl_gen.fusion_unit.FusionUnit on Verilator (combinational block).

Structure (as cocotb's matrix_multiplier example): a driver applies packed operand vectors, a monitor samples the
sum once the inputs settle, a reference model (:func:`jaq.hw.packing.fused_dot` on the unpacked lanes, masked to
the active lanes) predicts it, and the checker compares every transaction. All 9 precision pairs, both activation
signednesses, random lane masks, with the range corners over-represented. ``$JAQ_FU_VECTORS`` vectors per
configuration (default 300).
"""

import os
import random

import cocotb
from cocotb.triggers import Timer

from jaq.hw.packing import MODE_OF_BITS as MODE
from jaq.hw.packing import fused_dot, pack_lanes, pf, value_range


def _draw(rng, lo, hi):
    r = rng.random()
    return lo if r < 0.1 else hi if r < 0.2 else rng.randint(lo, hi)


class FusionUnitDriver:
    def __init__(self, dut):
        self.dut = dut

    async def apply(self, a, w, signed, acts, wgts, lanes):
        d = self.dut
        d.a_mode.value = MODE[a]
        d.w_mode.value = MODE[w]
        d.act_signed.value = int(signed)
        d.act.value = pack_lanes(acts, a)
        d.wgt.value = pack_lanes(wgts, w)
        d.lanes.value = lanes
        await Timer(1, unit="ns")


def model(acts, wgts, lanes):
    return fused_dot(acts[:lanes], wgts[:lanes])


@cocotb.test()
async def fusion_unit_all_precisions(dut):
    """Random vectors under every (a, w) pair and signedness; sums must equal the reference exactly."""
    rng = random.Random(int(os.environ.get("JAQ_TB_SEED", "7")))
    n = int(os.environ.get("JAQ_FU_VECTORS", "300"))
    drv = FusionUnitDriver(dut)
    checked = 0
    for a in (2, 4, 8):
        for w in (2, 4, 8):
            p = pf(a, w)
            for signed in (False, True):
                alo, ahi = value_range(a, signed)
                wlo, whi = value_range(w, True)
                for i in range(n):
                    acts = [_draw(rng, alo, ahi) for _ in range(p)]
                    wgts = [_draw(rng, wlo, whi) for _ in range(p)]
                    lanes = p if i % 3 else rng.randint(0, p)
                    await drv.apply(a, w, signed, acts, wgts, lanes)
                    got = dut.out.value.to_signed()   # monitor
                    exp = model(acts, wgts, lanes)    # reference model
                    assert got == exp, (f"a={a} w={w} signed={signed} lanes={lanes} acts={acts} wgts={wgts}: "
                                        f"got {got} expected {exp}")
                    checked += 1
    dut._log.info("fusion unit: %d vectors checked", checked)
