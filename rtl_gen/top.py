"""``JaqAccelerator``: the top-level component (controller + DMA + buffers + compute engine).

Top-level ports (plain Verilog names; see docs/rtl.md for the protocol):

``clk``, ``rst``; instruction stream ``instr_valid`` (in), ``instr_ready`` (out), ``instr_data[INSTR_BITS]``;
DRAM read request ``rd_req_valid`` (out), ``rd_req_ready`` (in), ``rd_req_tensor[3]`` (tag, rtl_gen.protocol),
``rd_req_addr[ADDR_BITS]`` (bit address of the flat off-chip memory), ``rd_req_bits[B]`` (bits in the beat);
read response ``rd_resp_valid`` (in), ``rd_resp_data[W]`` (in, LSB first); DRAM write ``wr_valid`` (out),
``wr_ready`` (in), ``wr_tensor[3]``, ``wr_addr[ADDR_BITS]``, ``wr_bits[B]``, ``wr_data[W]``; status ``busy``,
``done``; counters (48 bits each) ``cnt_cycles``, ``cnt_fu_active``, ``cnt_act_rd``, ``cnt_wgt_rd``,
``cnt_out_rd``, ``cnt_out_wr``, ``cnt_act_wr``, ``cnt_wgt_wr``, ``cnt_dram_rd_beats``, ``cnt_dram_wr_beats``.
``B`` = bits of ``W`` (0..W bits per beat).
"""

import dataclasses
import re
from typing import Sequence

from amaranth import Const, Module, Mux, Signal
from amaranth.back import verilog
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from jaq.hw.records import Accelerator, Layer
from jaq.hw.timing import residual_fifo_depth
from rtl_gen import isa
from rtl_gen.buffers import CNT_BITS, OutBuffer, VectorBuffer
from rtl_gen.controller import Controller, ir_field
from rtl_gen.dma import DMA, beat_bits
from rtl_gen.fusion_unit import FusionCore
from rtl_gen.params import HWParams, MaxLayer, clog2, derive
from rtl_gen.pe_array import COLUMN_MODULE, FU_MODULE, PEColumn
from rtl_gen.protocol import (ADDR_BITS, COUNTER_WALK_NAMES, COUNTERS, TENSOR_ACT, TENSOR_ID_BITS,  # noqa: F401
                              TENSOR_PSUM, TENSOR_SCALE, TENSOR_WGT)
from rtl_gen.scale_memory import ScaleMemory
from rtl_gen.sequencer import ComputeEngine


_DMA_FIELDS = ("base", "n_outer", "ostride", "n_inner", "istride", "run_len")
_CMP_FIELDS = ("c", "m", "h", "w", "cv", "acc", "iw", "pa", "pw", "po", "wm", "arow", "act_half", "wgt_half",
               "out_half")


def count_bits(W: int) -> int:
    """Width of the DMA's element counts: enough for ``W/2`` elements (2-bit operands), at least 8."""
    return max(8, clog2(W // 2 + 1))


def accelerator_signature(p: HWParams) -> wiring.Signature:
    """The top-level ports of the accelerator with parameters ``p`` (module docstring)."""
    W = p.W
    bb = beat_bits(W)
    sig = {
        "instr_valid": In(1), "instr_ready": Out(1), "instr_data": In(isa.INSTR_BITS),
        "rd_req_valid": Out(1), "rd_req_ready": In(1), "rd_req_tensor": Out(TENSOR_ID_BITS),
        "rd_req_addr": Out(ADDR_BITS), "rd_req_bits": Out(bb), "rd_resp_valid": In(1), "rd_resp_data": In(W),
        "wr_valid": Out(1), "wr_ready": In(1), "wr_tensor": Out(TENSOR_ID_BITS), "wr_addr": Out(ADDR_BITS),
        "wr_bits": Out(bb), "wr_data": Out(W),
        "busy": Out(1), "done": Out(1),
    }
    sig.update({n: Out(CNT_BITS) for n in COUNTERS})
    return wiring.Signature(sig)


class JaqAccelerator(wiring.Component):
    """The generated accelerator for ``accel`` (sizes from accel.json), supporting layers up to ``max_layer``."""

    def __init__(self, accel: Accelerator, max_layer: MaxLayer | None = None, params: HWParams | None = None):
        self.accel = accel
        self.p = params or derive(accel, max_layer)
        super().__init__(accelerator_signature(self.p))
        p = self.p
        W = p.W
        bb = p.extra.get("blackbox", False)
        self._ctl = Controller(p)
        self._dma = DMA(W, clog2(max(p.act_lines, p.wgt_lines, p.out_lines)), count_bits(W), clog2(p.scale_lines),
                        res_depth=residual_fifo_depth(accel.dram_latency_cycles), store_lines=p.store_lines)
        self._engine = ComputeEngine(p)
        self._buffers = (VectorBuffer(p.act_lines, W, p.n_act_ports, blackbox=bb, module_name="jaq_sram_act"),
                         VectorBuffer(p.wgt_lines, W, p.n_wgt_ports, blackbox=bb, module_name="jaq_sram_wgt"),
                         OutBuffer(p.out_lines, W, p.n_out_ports, blackbox=bb, module_name="jaq_sram_out",
                                   read_lines=p.store_lines))
        self._scales = ScaleMemory(p.scale_lines, W, blackbox=bb, read_lines=p.store_lines)

    @property
    def engine(self) -> ComputeEngine:
        """The compute engine (sequencer + PE array + OBUF write-back)."""
        return self._engine

    @property
    def buffers(self) -> tuple:
        """(act, wgt, out) buffers."""
        return self._buffers

    @property
    def macros(self) -> tuple:
        """One RAM per macro module: act, wgt, out buffers and the scale memories (which share one)."""
        ab, wb, ob = self._buffers
        return ab.ram, wb.ram, ob.ram, self._scales.mems[0].ram

    def elaborate(self, platform):
        m = Module()
        p = self.p
        W = p.W
        m.submodules.ctl = ctl = self._ctl
        m.submodules.dma = dma = self._dma
        m.submodules.eng = eng = self._engine
        ab, wb, ob = self._buffers
        m.submodules.abuf, m.submodules.wbuf, m.submodules.obuf = ab, wb, ob
        m.submodules.sbuf = sb = self._scales
        ir, op = ctl.dma_ir, ctl.dma_op   # the DMA's instruction (the engine's is ctl.eng_ir)
        OPC = isa.OPCODES
        m.d.comb += [ctl.instr_valid.eq(self.instr_valid), self.instr_ready.eq(ctl.instr_ready),
                     ctl.instr_data.eq(self.instr_data), self.busy.eq(ctl.busy), self.done.eq(ctl.done)]
        # DMA
        # the opcode of the instruction being issued (the DMA samples it with `start`)
        op_in = self.instr_data[:isa.OPCODE_BITS]
        elems = Signal(count_bits(W) + 1)
        elog = Signal(3)  # log2 of the addressed tensor's element bits (precision code + 1; 5 for 32-bit words)
        final = ir_field(ir, "STORE_OUT", "final")
        with m.Switch(op):
            with m.Case(OPC["LOAD_ACT"]):
                m.d.comb += [elems.eq(Mux(ctl.a_mode == 0, W // 2, Mux(ctl.a_mode == 1, W // 4, W // 8))),
                             elog.eq(ctl.a_mode + 1)]
            with m.Case(OPC["LOAD_WGT"]):
                m.d.comb += [elems.eq(Mux(ctl.w_mode == 0, W // 2, Mux(ctl.w_mode == 1, W // 4, W // 8))),
                             elog.eq(ctl.w_mode + 1)]
            with m.Case(OPC["STORE_OUT"]):  # a final store's beats are steps of n_u lines (section 7.4)
                m.d.comb += [elems.eq(Mux(final, Const(W // 32, elems.shape()) << ctl.st_rlog, W // 32)),
                             elog.eq(Mux(final & (ctl.o_mode != 3), ctl.o_mode + 1, 5))]
            with m.Default():
                m.d.comb += [elems.eq(W // 32), elog.eq(5)]
        m.d.comb += [dma.start.eq(ctl.dma_start), dma.is_store.eq(op_in == OPC["STORE_OUT"]),
                     dma.final.eq(ir_field(self.instr_data, "STORE_OUT", "final")),
                     dma.pool.eq(ir_field(self.instr_data, "STORE_OUT", "pool_px") != 0),
                     dma.pool_px.eq(ir_field(ir, "STORE_OUT", "pool_px")),
                     dma.px_lines.eq(ir_field(ir, "STORE_OUT", "px_lines")),
                     dma.res.eq(ctl.res), dma.r_base.eq(ctl.r_base), dma.r_ostride.eq(ctl.r_ostride),
                     dma.r_istride.eq(ctl.r_istride), dma.r_elog.eq(ctl.r_mode + 1), dma.r_signed.eq(ctl.r_signed),
                     dma.r_elems.eq(Mux(ctl.r_mode == 0, W // 2, Mux(ctl.r_mode == 1, W // 4, W // 8))),
                     dma.res_mult.eq(ctl.res_mult),
                     dma.tensor.eq(Mux(op == OPC["LOAD_ACT"], TENSOR_ACT,
                                       Mux(op == OPC["LOAD_WGT"], TENSOR_WGT,
                                           Mux(op == OPC["LOAD_SCALE"], TENSOR_SCALE, TENSOR_PSUM)))),
                     dma.elems.eq(elems), dma.elog.eq(elog), ctl.dma_last.eq(dma.last)]
        self._output_unit_wiring(m, ctl, dma, sb, op)
        for f in _DMA_FIELDS:
            m.d.comb += getattr(dma, f).eq(ir_field(ir, "LOAD_ACT", f))
        m.d.comb += [self.rd_req_valid.eq(dma.rd_req_valid), dma.rd_req_ready.eq(self.rd_req_ready),
                     self.rd_req_tensor.eq(dma.rd_req_tensor), self.rd_req_addr.eq(dma.rd_req_addr),
                     self.rd_req_bits.eq(dma.rd_req_bits), dma.rd_resp_valid.eq(self.rd_resp_valid),
                     dma.rd_resp_data.eq(self.rd_resp_data),
                     self.wr_valid.eq(dma.wr_valid), dma.wr_ready.eq(self.wr_ready), self.wr_addr.eq(dma.wr_addr),
                     self.wr_tensor.eq(dma.wr_tensor),
                     self.wr_bits.eq(dma.wr_bits), self.wr_data.eq(dma.wr_data)]
        # buffers <- DMA, lines from the first of the instruction's buffer half (section 9)
        half = ir_field(ir, "LOAD_ACT", "half")
        for buf, code in ((ab, OPC["LOAD_ACT"]), (wb, OPC["LOAD_WGT"]), (ob, OPC["LOAD_PSUM"])):
            m.d.comb += [buf.wr_line.eq(_in_half(dma.line, half, p.half_base(buf.lines))),
                         buf.wr_data.eq(dma.line_data), buf.wr_en.eq(dma.line_wr_en & (op == code))]
        m.d.comb += [ob.lr_line.eq(_in_half(dma.lr_line, half, p.half_base(ob.lines))), ob.lr_en.eq(dma.lr_en),
                     dma.lr_data.eq(ob.lr_data)]
        # compute engine
        m.d.comb += [eng.start.eq(ctl.eng_start), ctl.eng_last.eq(eng.last)]
        for f in ("k", "s", "a_mode", "w_mode", "act_signed", "rs_r", "rs_q", "dw", "dw_ng", "dw_q"):
            m.d.comb += getattr(eng, f).eq(getattr(ctl, f))
        for f in _CMP_FIELDS:
            m.d.comb += getattr(eng, f).eq(ir_field(ctl.eng_ir, "COMPUTE", f))
        for i in range(p.n_act_ports):
            m.d.comb += [ab.rd_addr[i].eq(eng.act_addr[i]), ab.rd_en[i].eq(eng.act_en[i]),
                         eng.act_data[i].eq(ab.rd_data[i])]
        for i in range(p.n_wgt_ports):
            m.d.comb += [wb.rd_addr[i].eq(eng.wgt_addr[i]), wb.rd_en[i].eq(eng.wgt_en[i]),
                         eng.wgt_data[i].eq(wb.rd_data[i])]
        for i in range(p.n_out_ports):
            m.d.comb += [ob.rmw_raddr[i].eq(eng.out_raddr[i]), ob.rmw_ren[i].eq(eng.out_ren[i]),
                         eng.out_rdata[i].eq(ob.rmw_rdata[i]), ob.rmw_waddr[i].eq(eng.out_waddr[i]),
                         ob.rmw_wdata[i].eq(eng.out_wdata[i]), ob.rmw_wen[i].eq(eng.out_wen[i])]
        # counters
        m.d.comb += [self.cnt_cycles.eq(ctl.cnt_cycles), self.cnt_fu_active.eq(eng.cnt_fu_active),
                     self.cnt_act_rd.eq(ab.cnt_rd), self.cnt_wgt_rd.eq(wb.cnt_rd), self.cnt_out_rd.eq(ob.cnt_rd),
                     self.cnt_out_wr.eq(ob.cnt_wr), self.cnt_act_wr.eq(ab.cnt_line_wr),
                     self.cnt_wgt_wr.eq(wb.cnt_line_wr), self.cnt_dram_rd_beats.eq(dma.cnt_rd_beats),
                     self.cnt_dram_wr_beats.eq(dma.cnt_wr_beats)]
        return m

    @staticmethod
    def _output_unit_wiring(m: Module, ctl, dma, sb, op) -> None:
        """Scale memories <- LOAD_SCALE responses, -> the DMA's final-store path; the unit's layer constants."""
        OPC = isa.OPCODES
        lo, hi = saturation_bounds(ctl.o_mode, ctl.o_signed, ctl.relu)
        m.d.comb += [sb.start.eq(ctl.dma_start & (ctl.instr_data[:isa.OPCODE_BITS] == OPC["LOAD_SCALE"])),
                     sb.wr_data.eq(dma.line_data), sb.wr_en.eq(dma.line_wr_en & (op == OPC["LOAD_SCALE"])),
                     sb.rd_line.eq(dma.sc_line), sb.rd_en.eq(dma.sc_en),
                     dma.sc_mult.eq(sb.mult), dma.sc_bias_lo.eq(sb.bias_lo), dma.sc_bias_hi.eq(sb.bias_hi),
                     dma.o_mode.eq(ctl.o_mode), dma.shift.eq(ctl.shift), dma.relu.eq(ctl.relu),
                     dma.st_rlog.eq(ctl.st_rlog),
                     dma.lo.eq(lo), dma.hi.eq(hi)]


def _in_half(line, half, base: int):
    """Buffer line ``line`` of buffer half ``half`` (whose second half starts at line ``base``; 0: one half)."""
    return line + Mux(half, base, 0) if base else line


def saturation_bounds(o_mode, o_signed, relu) -> tuple:
    """The output unit's ``lo``/``hi`` (32-bit two's complement values) from SET_LAYER's constants, as
    :func:`jaq.hw.requant.saturation_range` defines them."""
    def bound(bits: int, signed_: bool, relu_: bool) -> tuple[int, int]:
        from jaq.hw.requant import saturation_range
        lo, hi = saturation_range(bits, signed_, relu_)
        return lo & 0xFFFFFFFF, hi & 0xFFFFFFFF

    table = {(mode, s, r): bound(2 << mode if mode < 3 else 32, bool(s), bool(r))
             for mode in range(4) for s in (0, 1) for r in (0, 1)}
    lo_v, hi_v = Const(0, 32), Const(0, 32)
    for (mode, s, r), (l, h) in table.items():
        hit = (o_mode == mode) & (o_signed == s) & (relu == r)
        lo_v, hi_v = Mux(hit, l, lo_v), Mux(hit, h, hi_v)
    return lo_v, hi_v


_ZERO_INIT = re.compile(r"^ *initial begin\n(?: *\\?[\w$.]+ ?\[\d+\] = \d+'[dh]0;\n)+ *end\n", re.M)


def strip_zero_init(text: str) -> str:
    """Remove Yosys' all-zero memory ``initial`` blocks (one line per word: megabytes for 528 KB buffers).

    Nothing in the design reads a buffer word that was not written first (lanes beyond a tile's extent are
    masked; OBUF words are overwritten when ``acc`` is clear), so the power-up contents do not matter."""
    return _ZERO_INIT.sub("", text)


def emit_verilog(accel: Accelerator, max_layer: MaxLayer | None = None, name: str = "jaq_accel") -> str:
    """One Verilog file: the top module ``name`` (+ its submodules), the shared column and fusion-unit modules.

    The array instantiates :data:`rtl_gen.pe_array.COLUMN_MODULE` once per column and each column
    :data:`rtl_gen.pe_array.FU_MODULE` once per row instead of flattening a copy per FU, which keeps a 64x64
    array's Verilog small; the buffers are instances of RAM macros
    ``jaq_sram_act``/``_wgt``/``_out`` whose behavioural models (:func:`rtl_gen.buffers.sram_verilog`) are
    appended (no per-word initialisation in the netlist; Yosys infers one memory per macro)."""
    p = dataclasses.replace(derive(accel, max_layer), extra={"blackbox": True})
    dut = JaqAccelerator(accel, params=p)
    top = verilog.convert(dut, name=name, emit_src=False)
    col = verilog.convert(PEColumn(p), name=COLUMN_MODULE, emit_src=False)
    fu = verilog.convert(FusionCore(), name=FU_MODULE, emit_src=False)
    srams = "\n".join(r.verilog() for r in dut.macros)
    return strip_zero_init(top) + "\n" + col + "\n" + fu + "\n" + srams


def verilog_for(accel: Accelerator, layers: Sequence[Layer] = (), name: str = "jaq_accel",
                max_layer: MaxLayer | None = None) -> str:
    """Verilog text of the accelerator for ``accel``, sized to cover ``layers`` (and ``max_layer`` if given)."""
    ml = MaxLayer.covering(layers, floor=max_layer or MaxLayer()) if layers else (max_layer or MaxLayer())
    return emit_verilog(accel, ml, name)
