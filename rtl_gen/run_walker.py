"""RunWalker: the beats of a DMA descriptor, one per ``adv`` (docs/execution-model.md section 2).

Runs ``(o, i)`` for ``o < n_outer`` (outer), ``i < n_inner`` start at bit ``base + o*ostride + i*istride``; each
run of ``run_len`` elements of ``2^elog`` bits is cut into beats of at most ``elems`` elements. After ``start``
the walker presents beat 0: ``addr`` (its bit address), ``count`` (its elements), ``beat`` (its index within the
run), ``run_last`` (the run's last beat); ``adv`` moves to the next beat, and ``active`` falls after the last.
The descriptor inputs are held for the whole walk.
"""

from amaranth import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from jaq.errors import JaqError
from rtl_gen.protocol import ADDR_BITS


class RunWalkerSignature(wiring.Signature):
    """Ports of a :class:`RunWalker` with ``count_bits``-bit element counts (equal for equal widths)."""

    def __init__(self, count_bits: int):
        if isinstance(count_bits, bool) or not isinstance(count_bits, int) or not 1 <= count_bits <= 16:
            raise JaqError(f"{count_bits!r} count bits out of range 1..16", "run_walker.count_bits")
        self._count_bits = count_bits
        super().__init__({
            "start": In(1), "adv": In(1),
            "base": In(ADDR_BITS), "n_outer": In(16), "ostride": In(32), "n_inner": In(16), "istride": In(32),
            "run_len": In(16), "elems": In(count_bits + 1), "elog": In(3),
            "active": Out(1), "addr": Out(ADDR_BITS), "count": Out(count_bits), "beat": Out(16), "run_last": Out(1),
        })

    @property
    def count_bits(self) -> int:
        return self._count_bits

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.count_bits == self.count_bits

    def __hash__(self) -> int:
        return hash((type(self), self._count_bits))


class RunWalker(wiring.Component):
    """Walks a DMA descriptor beat by beat (module docstring); ``count_bits``: width of ``count``."""

    def __init__(self, count_bits: int = 8):
        super().__init__(RunWalkerSignature(count_bits))

    @property
    def count_bits(self) -> int:
        return self.signature.count_bits

    def elaborate(self, platform):
        m = Module()
        o, i, e = Signal(16), Signal(16), Signal(16)
        row_addr = Signal(ADDR_BITS)    # o*ostride
        run_addr = Signal(ADDR_BITS)    # row_addr + i*istride
        rem = Signal(17)
        m.d.comb += [rem.eq(self.run_len - e), self.addr.eq(self.base + run_addr + (e << self.elog)),
                     self.count.eq(Mux(rem > self.elems, self.elems, rem)),
                     self.run_last.eq(e + self.elems >= self.run_len)]
        i_last = i + 1 >= self.n_inner
        o_last = o + 1 >= self.n_outer
        with m.If(self.start):
            m.d.sync += [self.active.eq(1), o.eq(0), i.eq(0), e.eq(0), self.beat.eq(0), row_addr.eq(0),
                         run_addr.eq(0)]
        with m.Elif(self.adv):
            with m.If(~self.run_last):
                m.d.sync += [e.eq(e + self.elems), self.beat.eq(self.beat + 1)]
            with m.Else():
                m.d.sync += [e.eq(0), self.beat.eq(0)]
                with m.If(~i_last):
                    m.d.sync += [i.eq(i + 1), run_addr.eq(run_addr + self.istride)]
                with m.Else():
                    m.d.sync += [i.eq(0), run_addr.eq(row_addr + self.ostride), row_addr.eq(row_addr + self.ostride)]
                    with m.If(~o_last):
                        m.d.sync += o.eq(o + 1)
                    with m.Else():
                        m.d.sync += self.active.eq(0)
        return m
