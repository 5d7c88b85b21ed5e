"""The output unit's constants on chip: three memories of ``W``-bit lines (multipliers, bias low words, bias high
words), one line per chunk of ``W/32`` output channels (docs/execution-model.md section 7.1).

``LOAD_SCALE`` writes its beats in order: beat ``i`` goes to memory ``i mod 3``, line ``i div 3`` (``start``
restarts the count). A final ``STORE_OUT`` reads ``read_lines`` consecutive lines of all three at once: bit ``r``
of ``rd_en`` reads line ``rd_line + r`` into bits ``[r*W, (r+1)*W)`` of ``mult``/``bias_lo``/``bias_hi``, the cycle
after, held while its enable is low (section 7.4).
"""

from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from jaq.errors import JaqError
from jaq.hw.timing import SCALE_BEATS_PER_CHUNK
from rtl_gen.buffers import OutBuffer
from rtl_gen.params import clog2

#: Module name of the scale memories' RAM macro (all three are instances of it).
SCALE_MACRO = "jaq_sram_scale"


class ScaleMemory(wiring.Component):
    """``lines`` lines of ``W`` bits in each of the three memories. Ports: ``start``, ``wr_data`` (W), ``wr_en``;
    ``rd_line``, ``rd_en`` (``read_lines`` bits), ``mult``, ``bias_lo``, ``bias_hi`` (``read_lines * W`` each)."""

    def __init__(self, lines: int, W: int, blackbox: bool = False, read_lines: int = 1):
        if isinstance(lines, bool) or not isinstance(lines, int) or lines < 1:
            raise JaqError(f"{lines!r} scale-memory lines; need a positive integer", "scale_memory.lines")
        if isinstance(W, bool) or not isinstance(W, int) or W < 32 or W % 32:
            raise JaqError(f"{W!r} bits per line; need a multiple of 32", "scale_memory.W")
        self._lines, self._W = lines, W
        self.mems = tuple(OutBuffer(lines, W, 0, blackbox=blackbox, module_name=SCALE_MACRO, read_lines=read_lines)
                          for _ in range(SCALE_BEATS_PER_CHUNK))
        lb, R = clog2(lines), read_lines
        super().__init__({"start": In(1), "wr_data": In(W), "wr_en": In(1), "rd_line": In(lb), "rd_en": In(R),
                          "mult": Out(R * W), "bias_lo": Out(R * W), "bias_hi": Out(R * W)})

    @property
    def lines(self) -> int:
        return self._lines

    @property
    def W(self) -> int:
        return self._W

    @property
    def read_lines(self) -> int:
        return self.mems[0].read_lines

    def elaborate(self, platform):
        m = Module()
        sel = Signal(range(SCALE_BEATS_PER_CHUNK))
        line = Signal(clog2(self._lines))
        with m.If(self.start):
            m.d.sync += [sel.eq(0), line.eq(0)]
        with m.Elif(self.wr_en):
            with m.If(sel == SCALE_BEATS_PER_CHUNK - 1):
                m.d.sync += [sel.eq(0), line.eq(line + 1)]
            with m.Else():
                m.d.sync += sel.eq(sel + 1)
        for k, (mem, out) in enumerate(zip(self.mems, (self.mult, self.bias_lo, self.bias_hi))):
            m.submodules[f"mem{k}"] = mem
            m.d.comb += [mem.wr_line.eq(line), mem.wr_data.eq(self.wr_data), mem.wr_en.eq(self.wr_en & (sel == k)),
                         mem.lr_line.eq(self.rd_line), mem.lr_en.eq(self.rd_en), out.eq(mem.lr_data)]
        return m
