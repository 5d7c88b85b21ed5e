"""BitBrick (exhaustive) and FusionUnit (exhaustive lane sets at 2x2 / 4x2 / 2x4, random at the other pairs)
against Python integer arithmetic through jaq.hw.packing, in Amaranth's simulator."""

import itertools
import random

from amaranth.sim import Simulator

from jaq.hw.packing import pack_lanes, pf, value_range
from rtl_gen.bitbrick import BitBrick
from rtl_gen.fusion_unit import BITS_MODE, FusionUnit


def _run(dut, bench):
    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()


def test_bitbrick_exhaustive():
    dut = BitBrick()
    seen = []

    async def bench(ctx):
        for x, y, sx, sy in itertools.product(range(4), range(4), (0, 1), (0, 1)):
            ctx.set(dut.x, x)
            ctx.set(dut.y, y)
            ctx.set(dut.x_signed, sx)
            ctx.set(dut.y_signed, sy)
            xv = x - 4 if sx and x >= 2 else x
            yv = y - 4 if sy and y >= 2 else y
            assert ctx.get(dut.p) == xv * yv, (x, y, sx, sy)
            seen.append(1)

    _run(dut, bench)
    assert len(seen) == 64


def _fu_cases(a, w, exhaustive, rng):
    """Yield (acts, wgts, act_signed, lanes)."""
    n = pf(a, w)
    for act_signed in (False, True):
        alo, ahi = value_range(a, act_signed)
        wlo, whi = value_range(w, True)
        if exhaustive:
            # every (activation, weight) value pair in every lane, other lanes random, all lanes active
            for lane in range(n):
                for x in range(alo, ahi + 1):
                    for y in range(wlo, whi + 1):
                        acts = [rng.randint(alo, ahi) for _ in range(n)]
                        wgts = [rng.randint(wlo, whi) for _ in range(n)]
                        acts[lane], wgts[lane] = x, y
                        yield acts, wgts, act_signed, n
            # every lane extent with extreme values (masking)
            for ext in range(n + 1):
                yield [alo] * n, [wlo] * n, act_signed, ext
                yield [ahi] * n, [wlo] * n, act_signed, ext
        else:
            for _ in range(60):
                acts = [rng.randint(alo, ahi) for _ in range(n)]
                wgts = [rng.randint(wlo, whi) for _ in range(n)]
                yield acts, wgts, act_signed, rng.randint(0, n) if rng.random() < 0.3 else n
            yield [alo] * n, [wlo] * n, act_signed, n
            yield [ahi] * n, [wlo] * n, act_signed, n
            yield [ahi] * n, [whi] * n, act_signed, n


def test_fusion_unit_all_precisions():
    rng = random.Random(1)
    dut = FusionUnit()
    count = {}

    async def bench(ctx):
        for a in (2, 4, 8):
            for w in (2, 4, 8):
                exhaustive = (a, w) in ((2, 2), (4, 2), (2, 4))
                ctx.set(dut.a_mode, BITS_MODE[a])
                ctx.set(dut.w_mode, BITS_MODE[w])
                for acts, wgts, s, ext in _fu_cases(a, w, exhaustive, rng):
                    ctx.set(dut.act, pack_lanes(acts, a))
                    ctx.set(dut.wgt, pack_lanes(wgts, w))
                    ctx.set(dut.act_signed, int(s))
                    ctx.set(dut.lanes, ext)
                    want = sum(x * y for x, y in list(zip(acts, wgts))[:ext])
                    got = ctx.get(dut.out)
                    assert got == want, (a, w, acts, wgts, s, ext, got, want)
                    count[(a, w)] = count.get((a, w), 0) + 1

    _run(dut, bench)
    assert count[(2, 2)] >= 16 * 16 * 2 and len(count) == 9


def test_brick_grid_mapping_and_tree():
    """Every configuration's 16 (lane, i, j) digit pairs are served by exactly one brick each, the brick digits
    follow jaq.hw.packing, each brick's weight 4^(i+j) is the shift the tree applies to it, the digit multiplexers
    stay small, and the unsigned tree nodes never overflow."""
    from rtl_gen.fusion_unit import ACT_DIGITS, CONFIGS, SUM_BITS, TREE, WGT_DIGITS, brick_map, tree_ranges

    for a, w in CONFIGS:
        da, dw = a // 2, w // 2
        seen = set()
        for k in range(16):
            lane, ad, wd, sh, atop, wtop = brick_map(a, w, k)
            i, j = ad - lane * da, wd - lane * dw
            assert 0 <= i < da and 0 <= j < dw and lane < pf(a, w)
            assert (atop, wtop) == (i == da - 1, j == dw - 1)
            seen.add((lane, i, j))
            X, Y = divmod(k, 4)
            tree_shift = sum((2 << bit) for op, bit in TREE
                             if ((X if op == "X" else Y) >> bit) & 1 and (a if op == "X" else w) // 2 > (1 << bit))
            assert sh == tree_shift == 2 * (i + j), (a, w, k)
        assert len(seen) == 16, (a, w)
    assert max(map(len, ACT_DIGITS)) <= 3 and max(map(len, WGT_DIGITS)) <= 7
    root = tree_ranges()[-1][0]
    assert all(0 <= lo and hi < 1 << (SUM_BITS - 1) for lo, hi in root.values())
