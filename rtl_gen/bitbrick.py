"""BitBrick: the 2-bit x 2-bit multiplier of BitFusion (Sharma et al., ISCA 2018, section IV).

Each 2-bit operand is sign-extended to 3 bits according to its own control input (``x_signed`` / ``y_signed``): a
digit that is the most significant digit of a signed operand is signed, every other digit unsigned. The product of
two 3-bit values fits a 6-bit signed result (range -6..9 used: unsigned 3*3 = 9, signed -2 * 3 = -6).

The brick computes the product in Baugh-Wooley form (:func:`brick_q`): an unsigned 4-bit ``q`` minus a
correction that depends only on the two signedness inputs. The fusion unit adds the ``q`` of its bricks unsigned
and subtracts the summed corrections once (a per-configuration constant).
"""


from amaranth import Cat, Const, Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

#: Width of a BitBrick product (signed).
PRODUCT_BITS = 6


def brick_q(x, y, sx, sy):
    """Baugh-Wooley form of the brick product: the unsigned 4-bit ``q = p + corr`` (0..9), where ``p`` is the
    product of the digits ``x``, ``y`` (signed per ``sx``, ``sy``) and ``corr = 2*sx + 2*sy + 4*(sx ^ sy)``.

    With a signed digit ``x = x0 - 2*x1``, each partial product of weight 2 or 4 that carries exactly one negative
    digit bit is negated; ``-b = ~b - 1``, so it is inverted and the ``-1`` goes to ``corr``."""
    pp0 = x[0] & y[0]
    pp1 = (x[0] & y[1]) ^ sy
    pp2 = (x[1] & y[0]) ^ sx
    pp3 = (x[1] & y[1]) ^ sx ^ sy
    return pp0 + ((pp1 + pp2) << 1) + (pp3 << 2)


class BitBrick(wiring.Component):
    """Combinational 2-bit x 2-bit multiplier with per-operand signedness.

    Ports: ``x``, ``y`` (2 bits each), ``x_signed``, ``y_signed`` (1 bit each), ``p`` (signed 6-bit product).
    """

    x: In(2)
    y: In(2)
    x_signed: In(1)
    y_signed: In(1)
    p: Out(signed(PRODUCT_BITS))

    def elaborate(self, platform):
        m = Module()
        q = Signal(signed(PRODUCT_BITS))  # 0..9
        # corr = 2*sx + 2*sy + 4*(sx ^ sy)
        corr = Cat(Const(0, 1), self.x_signed ^ self.y_signed, self.x_signed | self.y_signed)
        m.d.comb += [
            q.eq(brick_q(self.x, self.y, self.x_signed, self.y_signed)),
            self.p.eq(q - corr),
        ]
        return m
