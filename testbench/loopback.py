"""A small DMA "loopback" design with the accelerator's top-level port protocol, to verify the testbench itself.

It is not part of the accelerator: it exercises the off-chip memory model (latency, bandwidth, packing,
backpressure), the instruction driver, the counter monitor and the harness's build cache without depending on
the generated accelerator. Each 64-bit instruction copies ``beats`` beats within the flat bit-addressed memory:

    bits [1:0]   tensor tag of the reads (0 act, 1 wgt, 2 psum)   bits [21:2]  source bit address
    bits [41:22] destination bit address                          bits [51:42] bits per read beat (nbits)
    bits [59:52] beats                                            bit  60      end of program (sets ``done``)

A read beat (``rd_req_bits = nbits``, zero above) is written back whole (``wr_bits = W``, tag psum), destination
advancing by ``W`` bits per beat; the source advances by ``nbits``. Counters: ``cnt_cycles`` (cycles while busy),
``cnt_dram_rd_beats``, ``cnt_dram_wr_beats`` and ``lat_first`` (cycles from the first read handshake to the
first response, which must equal the memory latency ``L``).
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from rtl_gen.protocol import ADDR_BITS, TENSOR_ID_BITS, TENSOR_PSUM

INSTR_BITS = 64


def encode(tensor: int, src: int, dst: int, nbits: int, beats: int, end: bool = False) -> int:
    """One loopback instruction word (field layout in the module docstring)."""
    return (tensor & 3) | (src & 0xFFFFF) << 2 | (dst & 0xFFFFF) << 22 | (nbits & 0x3FF) << 42 | (
        beats & 0xFF) << 52 | int(end) << 60


class Loopback(wiring.Component):
    """DMA loopback with ``W``-bit beats (see module docstring)."""

    def __init__(self, width_bits: int = 128, fifo_depth: int = 64):
        self.W = width_bits
        self.fifo_depth = fifo_depth
        super().__init__({
            "instr_valid": In(1), "instr_ready": Out(1), "instr_data": In(INSTR_BITS),
            "rd_req_valid": Out(1), "rd_req_ready": In(1), "rd_req_tensor": Out(TENSOR_ID_BITS),
            "rd_req_addr": Out(ADDR_BITS), "rd_req_bits": Out(width_bits.bit_length()), "rd_resp_valid": In(1),
            "rd_resp_data": In(width_bits),
            "wr_valid": Out(1), "wr_ready": In(1), "wr_tensor": Out(TENSOR_ID_BITS), "wr_addr": Out(ADDR_BITS),
            "wr_bits": Out(width_bits.bit_length()),
            "wr_data": Out(width_bits),
            "busy": Out(1), "done": Out(1),
            "cnt_cycles": Out(32), "cnt_dram_rd_beats": Out(32), "cnt_dram_wr_beats": Out(32),
            "lat_first": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        W = self.W
        m.submodules.fifo = fifo = SyncFIFOBuffered(width=W, depth=self.fifo_depth)
        tensor = Signal(2)
        src = Signal(ADDR_BITS)
        dst = Signal(ADDR_BITS)
        count = Signal(10)
        to_req = Signal(9)     # read beats still to request
        to_wr = Signal(9)      # beats still to write
        inflight = Signal(9)   # requested, not yet in the FIFO (the FIFO must never overflow)
        measuring = Signal()
        lat_seen = Signal()
        lat = Signal(32)
        busy = Signal()
        done = Signal()

        m.d.comb += [self.busy.eq(busy), self.done.eq(done), self.lat_first.eq(lat)]
        m.d.comb += self.instr_ready.eq(~busy & ~done)
        with m.If(self.instr_valid & self.instr_ready):
            d = self.instr_data
            m.d.sync += [tensor.eq(d[0:2]), src.eq(d[2:22]), dst.eq(d[22:42]), count.eq(d[42:52]),
                         to_req.eq(d[52:60]), to_wr.eq(d[52:60])]
            with m.If(d[60]):
                m.d.sync += done.eq(1)
            with m.Elif(d[52:60] != 0):
                m.d.sync += busy.eq(1)

        # read requests: one per cycle while beats remain and the FIFO has room for everything in flight
        room = Signal()
        m.d.comb += room.eq((inflight + fifo.level) < self.fifo_depth)
        m.d.comb += [self.rd_req_valid.eq(busy & (to_req != 0) & room), self.rd_req_tensor.eq(tensor),
                     self.rd_req_addr.eq(src), self.rd_req_bits.eq(count)]
        req_fire = Signal()
        m.d.comb += req_fire.eq(self.rd_req_valid & self.rd_req_ready)
        with m.If(req_fire):
            m.d.sync += [src.eq(src + count), to_req.eq(to_req - 1), self.cnt_dram_rd_beats.eq(
                self.cnt_dram_rd_beats + 1)]
        # responses go into the FIFO
        m.d.comb += [fifo.w_en.eq(self.rd_resp_valid), fifo.w_data.eq(self.rd_resp_data)]
        m.d.sync += inflight.eq(inflight + req_fire - self.rd_resp_valid)
        # latency of the very first read
        with m.If(req_fire & ~measuring & ~lat_seen):
            m.d.sync += [measuring.eq(1), lat.eq(0)]
        with m.If(measuring):
            m.d.sync += lat.eq(lat + 1)
            with m.If(self.rd_resp_valid):
                m.d.sync += [measuring.eq(0), lat_seen.eq(1)]
        # writes from the FIFO
        m.d.comb += [self.wr_valid.eq(busy & fifo.r_rdy), self.wr_data.eq(fifo.r_data), self.wr_addr.eq(dst),
                     self.wr_bits.eq(W), self.wr_tensor.eq(TENSOR_PSUM)]
        wr_fire = Signal()
        m.d.comb += [wr_fire.eq(self.wr_valid & self.wr_ready), fifo.r_en.eq(wr_fire)]
        with m.If(wr_fire):
            m.d.sync += [dst.eq(dst + W), to_wr.eq(to_wr - 1),
                         self.cnt_dram_wr_beats.eq(self.cnt_dram_wr_beats + 1)]
            with m.If(to_wr == 1):
                m.d.sync += busy.eq(0)
        with m.If(busy):
            m.d.sync += self.cnt_cycles.eq(self.cnt_cycles + 1)
        return m


def loopback_verilog(width_bits: int = 128, name: str = "loopback") -> str:
    """Verilog text of :class:`Loopback` (Amaranth's back end); ports keep their signature names."""
    from amaranth.back import verilog

    return verilog.convert(Loopback(width_bits), name=name)


__all__ = ["Loopback", "encode", "loopback_verilog", "INSTR_BITS"]
