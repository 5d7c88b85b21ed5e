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


from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from rtl_gen.bitbrick import PRODUCT_BITS, extend_digit

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


#: Width of the decoded brick-control bus: per brick act digit index (4), wgt digit index (4), shift (4),
#: act digit signed (1), wgt digit signed (1), lane (5).
BRICK_CTL_BITS = 19
CTL_BITS = 16 * BRICK_CTL_BITS


def build_decoder(m, a_mode, w_mode, act_signed, ctl):
    """Decode (a_mode, w_mode, act_signed) into the brick-control bus ``ctl`` (:data:`CTL_BITS` bits).

    The mapping depends only on the layer's precision, so one decoder can serve every fusion unit of an array
    (BitFusion likewise configures all fusion units at once)."""
    cfg = Signal(4, name="fu_cfg")
    m.d.comb += cfg.eq(Cat(w_mode, a_mode))
    for k in range(16):
        f = ctl.word_select(k, BRICK_CTL_BITS)
        with m.Switch(cfg):
            for amode, a in MODE_BITS.items():
                for wmode, w in MODE_BITS.items():
                    ln, ad, wd, sh, atop, wtop = brick_map(a, w, k)
                    with m.Case(wmode | (amode << 2)):
                        m.d.comb += f.eq(Cat(Const(ad, 4), Const(wd, 4), Const(sh, 4),
                                             act_signed if atop else Const(0, 1), Const(1 if wtop else 0, 1),
                                             Const(ln, 5)))


def build_core(m, act, wgt, ctl, lanes, out):
    """The 16 BitBricks + shift-add of one fusion unit, steered by the decoded control bus ``ctl``."""
    terms = []
    for k in range(16):
        f = ctl.word_select(k, BRICK_CTL_BITS)
        aidx, widx, shift, xs, ys, lane = f[0:4], f[4:8], f[8:12], f[12], f[13], f[14:19]
        x = Signal(2, name=f"bb{k}_x")
        y = Signal(2, name=f"bb{k}_y")
        p = Signal(signed(PRODUCT_BITS), name=f"bb{k}_p")
        m.d.comb += [x.eq(act.bit_select(aidx * 2, 2)), y.eq(wgt.bit_select(widx * 2, 2)),
                     p.eq(extend_digit(x, xs) * extend_digit(y, ys))]
        term = Signal(signed(SUM_BITS), name=f"term{k}")
        m.d.comb += term.eq(Mux(lane < lanes, p << shift, 0))
        terms.append(term)
    while len(terms) > 1:
        nxt = []
        for i in range(0, len(terms) - 1, 2):
            s = Signal(signed(SUM_BITS), name=f"add{len(terms)}_{i}")
            m.d.comb += s.eq(terms[i] + terms[i + 1])
            nxt.append(s)
        if len(terms) % 2:
            nxt.append(terms[-1])
        terms = nxt
    m.d.comb += out.eq(terms[0])


class FusionCore(wiring.Component):
    """A fusion unit without its precision decoder: ``act``, ``wgt`` (32 bits), ``ctl`` (the shared decoded
    brick-control bus, :func:`build_decoder`), ``lanes`` (5 bits), ``out`` (signed SUM_BITS). The array
    instantiates one core per FU and one decoder for all of them."""

    act: In(32)
    wgt: In(32)
    ctl: In(CTL_BITS)
    lanes: In(5)
    out: Out(signed(SUM_BITS))

    def elaborate(self, platform):
        m = Module()
        build_core(m, self.act, self.wgt, self.ctl, self.lanes, self.out)
        return m


class FusionUnit(wiring.Component):
    """Combinational fusion unit (decoder + core).

    Ports: ``act`` (32 bits: pf activations of a bits), ``wgt`` (32 bits: pf weights of w bits), ``a_mode``,
    ``w_mode`` (2 bits each, see module doc), ``act_signed`` (1 bit), ``lanes`` (5 bits: active lanes 0..16, the
    channel extent of this vector; lanes at or above it contribute 0), ``out`` (signed SUM_BITS-bit sum).
    Brick ``k`` is a :class:`rtl_gen.bitbrick.BitBrick`'s equations (3-bit sign-extended digits, product).
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
        ctl = Signal(CTL_BITS)
        build_decoder(m, self.a_mode, self.w_mode, self.act_signed, ctl)
        build_core(m, self.act, self.wgt, ctl, self.lanes, self.out)
        return m
