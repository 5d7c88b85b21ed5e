"""FusionUnit: 16 BitBricks fused by shift-add into one run-time-precision multiply-accumulate lane group.

Per cycle it multiplies ``pf = (8/a)*(8/w)`` activation/weight pairs and returns the signed sum of the products
(docs/execution-model.md section 1; BitFusion, Sharma et al. ISCA 2018). Operands are packed by
:mod:`jaq.hw.packing` (lane ``l`` of ``b`` bits at bits ``[l*b, (l+1)*b)``): the activation vector uses ``pf*a``
bits of ``act`` and the weight vector ``pf*w`` bits of ``wgt``.

Brick mapping: with ``da = a/2`` activation digits and ``dw = w/2`` weight digits per lane, a lane needs
``da*dw`` bricks; brick ``k`` serves lane ``l = k // (da*dw)`` and digit pair ``(i, j)`` with
``r = k % (da*dw)``, ``i = r // dw``, ``j = r % dw``. It multiplies activation digit ``l*da + i`` by weight digit
``l*dw + j`` and is shifted left by ``2*(i+j)``; the digit is signed when it is the top digit of a signed operand
(``i == da-1`` and ``act_signed``; ``j == dw-1`` for weights, which are always signed). Lanes ``>= lanes`` are
masked to zero. The sum is exact: |sum| <= 255*128 = 32640 < 2^15, so ``SUM_BITS = 17`` signed bits suffice.

Precision codes (``a_mode`` / ``w_mode``): 0 -> 2 bits, 1 -> 4 bits, 2 -> 8 bits (``bits = 2 << mode``).
"""


from amaranth import Cat, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from rtl_gen.bitbrick import BitBrick

#: Width of the fusion unit's signed sum.
SUM_BITS = 17
#: Precision code -> bits.
MODE_BITS = {0: 2, 1: 4, 2: 8}
BITS_MODE = {2: 0, 4: 1, 8: 2}


def brick_map(a: int, w: int, k: int) -> tuple[int, int, int, int, bool, bool]:
    """For config (a, w) and brick ``k``: (lane, act digit index, wgt digit index, shift, act top digit, wgt top)."""
    da, dw = a // 2, w // 2
    group = da * dw
    lane, r = divmod(k, group)
    i, j = divmod(r, dw)
    return lane, lane * da + i, lane * dw + j, 2 * (i + j), i == da - 1, j == dw - 1


class FusionUnit(wiring.Component):
    """Combinational fusion unit.

    Ports: ``act`` (32 bits: pf activations of a bits), ``wgt`` (32 bits: pf weights of w bits), ``a_mode``,
    ``w_mode`` (2 bits each, see module doc), ``act_signed`` (1 bit), ``lanes`` (5 bits: active lanes 0..16, the
    channel extent of this vector; lanes at or above it contribute 0), ``out`` (signed SUM_BITS-bit sum).
    """

    act: In(32)
    wgt: In(32)
    a_mode: In(2)
    w_mode: In(2)
    act_signed: In(1)
    lanes: In(5)
    out: Out(signed(SUM_BITS))

    def elaborate(self, platform):
        m = Module()
        cfg = Signal(4)
        m.d.comb += cfg.eq(Cat(self.w_mode, self.a_mode))
        terms = []
        for k in range(16):
            bb = BitBrick()
            m.submodules[f"bb{k}"] = bb
            lane = Signal(5, name=f"lane{k}")
            shift = Signal(4, name=f"shift{k}")
            with m.Switch(cfg):
                for amode, a in MODE_BITS.items():
                    for wmode, w in MODE_BITS.items():
                        ln, ad, wd, sh, atop, wtop = brick_map(a, w, k)
                        with m.Case(wmode | (amode << 2)):
                            m.d.comb += [
                                bb.x.eq(self.act.word_select(ad, 2)),
                                bb.y.eq(self.wgt.word_select(wd, 2)),
                                bb.x_signed.eq(self.act_signed if atop else 0),
                                bb.y_signed.eq(1 if wtop else 0),
                                lane.eq(ln),
                                shift.eq(sh),
                            ]
            term = Signal(signed(SUM_BITS), name=f"term{k}")
            m.d.comb += term.eq(Mux(lane < self.lanes, bb.p << shift, 0))
            terms.append(term)
        # balanced adder tree
        while len(terms) > 1:
            nxt = []
            for i in range(0, len(terms) - 1, 2):
                s = Signal(signed(SUM_BITS), name=f"add{len(terms)}_{i}")
                m.d.comb += s.eq(terms[i] + terms[i + 1])
                nxt.append(s)
            if len(terms) % 2:
                nxt.append(terms[-1])
            terms = nxt
        m.d.comb += self.out.eq(terms[0])
        return m
