"""BitBrick: the 2-bit x 2-bit multiplier of BitFusion (Sharma et al., ISCA 2018, section IV).

Each 2-bit operand is sign-extended to 3 bits according to its own control input (``x_signed`` / ``y_signed``): a
digit that is the most significant digit of a signed operand is signed, every other digit unsigned. The product of
two 3-bit values fits a 6-bit signed result (range -6..9 used: unsigned 3*3 = 9, signed -2 * 3 = -6).
"""


from amaranth import Cat, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

#: Width of a BitBrick product (signed).
PRODUCT_BITS = 6


def extend_digit(digit, is_signed):
    """A 3-bit signed value: the 2-bit ``digit`` sign-extended when ``is_signed`` else zero-extended."""
    return Cat(digit, Mux(is_signed, digit[1], 0)).as_signed()


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
        xs = Signal(signed(3))
        ys = Signal(signed(3))
        m.d.comb += [
            xs.eq(extend_digit(self.x, self.x_signed)),
            ys.eq(extend_digit(self.y, self.y_signed)),
            self.p.eq(xs * ys),
        ]
        return m
