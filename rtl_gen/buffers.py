"""On-chip buffers: W-bit lines stored as 32-bit words (``lib.memory``), a DMA line port and array ports.

A buffer of ``KB`` kilobytes has ``lines = KB*1024*8/W`` lines of ``W`` bits (docs/execution-model.md section 3);
it is stored as ``lines * W/32`` 32-bit words so that the array reads aligned 8/16/32-bit vectors (a vector never
straddles a 32-bit word: vectors are 8, 16 or 32 bits and aligned to their size) and the OBUF read-modify-writes
single 32-bit accumulator words. A DMA line write stores the ``W/32`` words of one line in one cycle; a DMA line
read (OBUF, ``STORE_OUT``) returns one line one cycle after the request.

Counters (48 bits, reset never, count since power-up) are the number of enabled ports per cycle, i.e. the
hardware's actual accesses: ``cnt_rd`` vector (or word) reads, ``cnt_line_wr`` line writes; the OBUF adds
``cnt_wr`` word writes and ``cnt_line_rd`` line reads.
"""

from amaranth import Array, ClockSignal, Const, Instance, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from jaq.errors import JaqError
from rtl_gen.params import clog2

CNT_BITS = 48


class _Port:
    def __init__(self, abits, prefix):
        self.addr = Signal(abits, name=f"{prefix}_addr")
        self.data = Signal(32, name=f"{prefix}_data")
        self.en = Signal(name=f"{prefix}_en")


class Ram:
    """A 32-bit-word RAM with any number of write ports and synchronous read ports (1-cycle latency, data held
    while the read enable is low, optionally transparent to one write port).

    ``blackbox=False``: an Amaranth ``lib.memory.Memory`` (simulation, unit tests; ``self.mem`` is it).
    ``blackbox=True``: an instance of the Verilog macro ``module_name`` whose behavioural model
    :func:`sram_verilog` writes (emitted designs: no per-word init in the netlist, memories stay macros in
    synthesis)."""

    def __init__(self, depth: int, init=None, blackbox: bool = False, module_name: str = "jaq_sram"):
        self.depth, self.abits = depth, clog2(depth)
        self.blackbox, self.module_name = blackbox, module_name
        self.mem = None if blackbox else Memory(shape=32, depth=depth, init=init or [])
        self.wports: list[_Port] = []
        self.rports: list[tuple[_Port, int | None]] = []

    def write_port(self) -> _Port:
        p = _Port(self.abits, f"w{len(self.wports)}")
        self.wports.append(p)
        return p

    def read_port(self, transparent_for: _Port | None = None) -> _Port:
        p = _Port(self.abits, f"r{len(self.rports)}")
        self.rports.append((p, None if transparent_for is None else self.wports.index(transparent_for)))
        return p

    def build(self, m: Module, name: str = "mem") -> None:
        if not self.blackbox:
            m.submodules[name] = self.mem
            wps = []
            for p in self.wports:
                wp = self.mem.write_port()
                wps.append(wp)
                m.d.comb += [wp.addr.eq(p.addr), wp.data.eq(p.data), wp.en.eq(p.en)]
            for p, t in self.rports:
                rp = self.mem.read_port(transparent_for=() if t is None else (wps[t],))
                m.d.comb += [rp.addr.eq(p.addr), rp.en.eq(p.en), p.data.eq(rp.data)]
            return
        for k, (module, rports) in enumerate(self._macros()):
            kw = {"i_clk": ClockSignal()}
            for i, p in enumerate(self.wports):
                kw.update({f"i_w{i}_addr": p.addr, f"i_w{i}_data": p.data, f"i_w{i}_en": p.en})
            for i, (p, _) in enumerate(rports):
                kw.update({f"i_r{i}_addr": p.addr, f"i_r{i}_en": p.en, f"o_r{i}_data": p.data})
            m.submodules[name if k == 0 else f"{name}_{k}"] = Instance(module, **kw)

    def _macros(self) -> list[tuple[str, list]]:
        """(module name, read ports) of each macro instance. A macro has at most :data:`MAX_READ_PORTS` read
        ports (Amaranth limits one instance to 65,536 output bits); beyond that the RAM is replicated, one copy
        per group of read ports, every copy taking all writes, so all copies always hold the same words."""
        groups = [self.rports[i:i + MAX_READ_PORTS] for i in range(0, len(self.rports), MAX_READ_PORTS)] or [[]]
        if len(groups) == 1:
            return [(self.module_name, groups[0])]
        return [(f"{self.module_name}_copy{k}", g) for k, g in enumerate(groups)]

    def verilog(self) -> str:
        return "\n".join(sram_verilog(module, self.depth, len(self.wports), [t for _, t in rports])
                         for module, rports in self._macros())


#: Read ports per RAM macro instance (x 32 data bits stays under Amaranth's 65,536 output bits per instance).
MAX_READ_PORTS = 1024


def sram_verilog(name: str, depth: int, n_w: int, transparent: list) -> str:
    """Behavioural Verilog of a RAM macro: ``depth`` 32-bit words, ``n_w`` write ports (a later port wins on the
    same address), one synchronous read port per entry of ``transparent`` (the index of the write port it is
    transparent to, or None)."""
    ab = clog2(depth)
    ports = ["clk"] + [f"w{i}_{s}" for i in range(n_w) for s in ("addr", "data", "en")] + \
        [f"r{i}_{s}" for i in range(len(transparent)) for s in ("addr", "en", "data")]
    # One port per line: Verilator refuses lines of more than 40,000 tokens (4,096-port macros of RS arrays).
    out = [f"module {name}(", ",\n".join(f"  {p}" for p in ports) + ");", "  input clk;"]
    for i in range(n_w):
        out += [f"  input [{ab - 1}:0] w{i}_addr;", f"  input [31:0] w{i}_data;", f"  input w{i}_en;"]
    for i in range(len(transparent)):
        out += [f"  input [{ab - 1}:0] r{i}_addr;", f"  input r{i}_en;", f"  output reg [31:0] r{i}_data;"]
    out += [f"  reg [31:0] mem [0:{depth - 1}];", "  always @(posedge clk) begin"]
    out += [f"    if (w{i}_en) mem[w{i}_addr] <= w{i}_data;" for i in range(n_w)]
    out += ["  end"]
    for i, t in enumerate(transparent):
        if t is None:
            out += [f"  always @(posedge clk) if (r{i}_en) r{i}_data <= mem[r{i}_addr];"]
        else:
            out += [f"  always @(posedge clk) if (r{i}_en) r{i}_data <= (w{t}_en && w{t}_addr == r{i}_addr) ? "
                    f"w{t}_data : mem[r{i}_addr];"]
    out += ["endmodule", ""]
    return "\n".join(out)


def popcount(bits):
    """Sum of the bits of a list of 1-bit values (adder tree)."""
    bits = list(bits)
    if not bits:
        return Const(0, 1)
    while len(bits) > 1:
        nxt = [bits[i] + bits[i + 1] for i in range(0, len(bits) - 1, 2)]
        if len(bits) % 2:
            nxt.append(bits[-1])
        bits = nxt
    return bits[0]


def select_vector(word, sub, vpw_log2):
    """Vector ``sub`` of a 32-bit ``word`` holding ``2**vpw_log2`` vectors (of 32, 16 or 8 bits), LSB first,
    zero-extended to 32 bits.

    Multiplexers over constant slices, not variable shifts: a large array has thousands of these selectors and
    Yosys' ``share`` pass pairs variable shifters quadratically (64x64 RS: over an hour in ``share``)."""
    half = Mux(sub[0], word[16:32], word[0:16])
    byte = Mux(sub[1], Mux(sub[0], word[24:32], word[16:24]), Mux(sub[0], word[8:16], word[0:8]))
    return Mux(vpw_log2 == 0, word, Mux(vpw_log2 == 1, half, byte))


def window_lane(window, off, x, b):
    """Element ``off/b + x`` (``b`` bits) of a window of consecutive 32-bit words holding ``b``-bit elements, ``b``
    fixed (``off``: the bit offset of element 0 in the first word, a multiple of ``b``; a multiplexer over constant
    slices): one lane of the depthwise mapping's act vectors (docs/execution-model.md section 8)."""
    n = len(window)
    sl = [window[(x + k) * b:(x + k + 1) * b] if (x + k + 1) * b <= n else Const(0, b) for k in range(32 // b)]
    return Array(sl)[off[b.bit_length() - 1:5]]


class VectorBuffer(wiring.Component):
    """Activation or weight buffer: one DMA line-write port, ``n_rd`` word read ports (1-cycle latency).

    Ports: ``wr_line``, ``wr_data`` (W bits), ``wr_en``; ``rd_addr[i]`` (word address), ``rd_en[i]``,
    ``rd_data[i]`` (32 bits, valid the cycle after ``rd_en``); counters ``cnt_rd``, ``cnt_line_wr``.
    """

    def __init__(self, lines: int, W: int, n_rd: int, init=None, blackbox: bool = False,
                 module_name: str = "jaq_sram"):
        self.lines, self.W, self.n_rd = lines, W, n_rd
        self.EW = W // 32
        self.depth = lines * self.EW
        self.abits = clog2(self.depth)
        self.ram = Ram(self.depth, init, blackbox, module_name)
        self.mem = self.ram.mem
        super().__init__({
            "wr_line": In(clog2(lines)), "wr_data": In(W), "wr_en": In(1),
            "rd_addr": In(self.abits).array(n_rd), "rd_en": In(1).array(n_rd), "rd_data": Out(32).array(n_rd),
            "cnt_rd": Out(CNT_BITS), "cnt_line_wr": Out(CNT_BITS),
        })

    def elaborate(self, platform):
        m = Module()
        mem = self.ram
        for k in range(self.EW):
            wp = mem.write_port()
            m.d.comb += [wp.addr.eq(self.wr_line * self.EW + k), wp.data.eq(self.wr_data.word_select(k, 32)),
                         wp.en.eq(self.wr_en)]
        for i in range(self.n_rd):
            rp = mem.read_port()
            m.d.comb += [rp.addr.eq(self.rd_addr[i]), rp.en.eq(self.rd_en[i]), self.rd_data[i].eq(rp.data)]
        mem.build(m)
        m.d.sync += [self.cnt_rd.eq(self.cnt_rd + popcount(self.rd_en[i] for i in range(self.n_rd))),
                     self.cnt_line_wr.eq(self.cnt_line_wr + self.wr_en)]
        return m


class OutBuffer(wiring.Component):
    """Output/partial-sum buffer of 32-bit words.

    DMA side: ``wr_line``/``wr_data``/``wr_en`` (``LOAD_PSUM`` line write) and ``lr_line``/``lr_en``/``lr_data``
    (``STORE_OUT`` read of ``read_lines`` consecutive lines: bit ``r`` of ``lr_en`` reads line ``lr_line + r`` into
    bits ``[r*W, (r+1)*W)`` of ``lr_data``, the cycle after; held while its enable is low; section 7.4).
    Array side: ``n_rmw`` read-modify-write word ports: ``rmw_raddr[i]``/``rmw_ren[i]`` read (data
    ``rmw_rdata[i]`` next cycle, transparent to the same port's write), ``rmw_waddr[i]``/``rmw_wdata[i]``/
    ``rmw_wen[i]`` write. Counters: ``cnt_rd``/``cnt_wr`` (array word reads/writes), ``cnt_line_wr``,
    ``cnt_line_rd`` (DMA lines).
    """

    def __init__(self, lines: int, W: int, n_rmw: int, init=None, blackbox: bool = False,
                 module_name: str = "jaq_sram", read_lines: int = 1):
        if isinstance(read_lines, bool) or not isinstance(read_lines, int) or not 1 <= read_lines <= 16:
            raise JaqError(f"{read_lines!r} lines per read; need an integer 1..16", "out_buffer.read_lines")
        self.lines, self.W, self.n_rmw, self.read_lines = lines, W, n_rmw, read_lines
        self.EW = W // 32
        self.depth = lines * self.EW
        self.abits = clog2(self.depth)
        self.ram = Ram(self.depth, init, blackbox, module_name)
        self.mem = self.ram.mem
        lb = clog2(lines)
        super().__init__({
            "wr_line": In(lb), "wr_data": In(W), "wr_en": In(1),
            "lr_line": In(lb), "lr_en": In(read_lines), "lr_data": Out(W * read_lines),
            "rmw_raddr": In(self.abits).array(n_rmw), "rmw_ren": In(1).array(n_rmw),
            "rmw_rdata": Out(32).array(n_rmw),
            "rmw_waddr": In(self.abits).array(n_rmw), "rmw_wdata": In(32).array(n_rmw),
            "rmw_wen": In(1).array(n_rmw),
            "cnt_rd": Out(CNT_BITS), "cnt_wr": Out(CNT_BITS), "cnt_line_wr": Out(CNT_BITS),
            "cnt_line_rd": Out(CNT_BITS),
        })

    def elaborate(self, platform):
        m = Module()
        mem = self.ram
        for k in range(self.EW):
            wp = mem.write_port()
            m.d.comb += [wp.addr.eq(self.wr_line * self.EW + k), wp.data.eq(self.wr_data.word_select(k, 32)),
                         wp.en.eq(self.wr_en)]
        for r in range(self.read_lines):
            for k in range(self.EW):
                rp = mem.read_port()
                m.d.comb += [rp.addr.eq((self.lr_line + r) * self.EW + k), rp.en.eq(self.lr_en[r]),
                             self.lr_data.word_select(r * self.EW + k, 32).eq(rp.data)]
        for i in range(self.n_rmw):
            wp = mem.write_port()
            rp = mem.read_port(transparent_for=wp)
            m.d.comb += [wp.addr.eq(self.rmw_waddr[i]), wp.data.eq(self.rmw_wdata[i]), wp.en.eq(self.rmw_wen[i]),
                         rp.addr.eq(self.rmw_raddr[i]), rp.en.eq(self.rmw_ren[i]),
                         self.rmw_rdata[i].eq(rp.data)]
        mem.build(m)
        m.d.sync += [
            self.cnt_rd.eq(self.cnt_rd + popcount(self.rmw_ren[i] for i in range(self.n_rmw))),
            self.cnt_wr.eq(self.cnt_wr + popcount(self.rmw_wen[i] for i in range(self.n_rmw))),
            self.cnt_line_wr.eq(self.cnt_line_wr + self.wr_en),
            self.cnt_line_rd.eq(self.cnt_line_rd + popcount(self.lr_en[r] for r in range(self.read_lines))),
        ]
        return m
