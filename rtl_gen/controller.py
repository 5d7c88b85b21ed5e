"""Controller: fetches the instruction stream and issues each instruction to the DMA or the compute engine.

Every instruction costs ``1 issue cycle + body`` (docs/execution-model.md sections 5 and 9): the issue cycle is
the cycle of the ``instr_valid & instr_ready`` handshake (the word is latched into the unit's instruction
register, ``dma_ir`` or ``eng_ir``, and the unit is started); the body runs in the following cycles until the unit
raises ``last`` (DMA for loads and stores, the compute engine for COMPUTE); SET_LAYER, SET_RES, SYNC and END have
an empty body. The issue rule (section 9): a DMA instruction (``LOAD_*``, ``SET_RES``, ``STORE_OUT``) is issued
when the DMA is idle and, unless SET_LAYER set ``overlap``, the engine too; every other instruction waits for
both. ``instr_ready`` is high exactly when the instruction offered may issue (it depends on its opcode), so with
a stream that never stalls an instruction issues in the cycle after the last body it waits for. ``cnt_cycles``
counts the cycles in which an instruction issues or a unit runs; cycles in which nothing runs and no instruction
is offered are not counted (an always-valid stream makes it the wall-clock cycle count of the program).

After END, ``done`` is high and ``busy`` low; a new instruction may follow (``done`` falls when it is issued).
"""

from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from rtl_gen import isa
from rtl_gen.buffers import CNT_BITS
from rtl_gen.params import HWParams
from rtl_gen.protocol import ADDR_BITS


def ir_field(ir, op: str, name: str):
    """Slice of the instruction register holding field ``name`` of opcode ``op``."""
    lsb, width = isa.field_offsets(op)[name]
    return ir[lsb:lsb + width]


#: Opcodes the DMA executes (docs/execution-model.md section 9); ``_BODY_DMA`` those with a body.
_DMA_OPS = ("LOAD_ACT", "LOAD_WGT", "LOAD_PSUM", "LOAD_SCALE", "SET_RES", "STORE_OUT")
_BODY_DMA = ("LOAD_ACT", "LOAD_WGT", "LOAD_PSUM", "LOAD_SCALE", "STORE_OUT")
_LAYER_REGS = ("k", "s", "a_mode", "w_mode", "act_signed", "rs_r", "rs_q", "shift", "relu", "o_mode", "o_signed",
               "res", "r_mode", "r_signed", "res_mult", "dw", "dw_ng", "dw_q", "st_rlog", "overlap")


class Controller(wiring.Component):
    """Instruction fetch/issue. Ports: instruction stream, the units' instruction registers ``dma_ir``/``dma_op``
    (the last DMA instruction and its opcode) and ``eng_ir`` (the last COMPUTE), layer registers (``k, s,
    a_mode, w_mode, act_signed, rs_r, rs_q``, the output unit's ``shift, relu, o_mode, o_signed``, ``res,
    r_mode, r_signed, res_mult``, ``dw``, ``dw_ng``, ``dw_q``, ``st_rlog``, ``overlap``), the residual view of
    SET_RES (``r_base, r_ostride, r_istride``), unit handshakes (``dma_start``, ``dma_last``, ``eng_start``,
    ``eng_last``), ``busy``, ``done``, ``cnt_cycles``."""

    def __init__(self, p: HWParams):
        self.p = p
        super().__init__({
            "instr_valid": In(1), "instr_ready": Out(1), "instr_data": In(isa.INSTR_BITS),
            "dma_ir": Out(isa.INSTR_BITS), "dma_op": Out(isa.OPCODE_BITS), "eng_ir": Out(isa.INSTR_BITS),
            "k": Out(p.kbits), "s": Out(p.sbits), "a_mode": Out(2), "w_mode": Out(2), "act_signed": Out(1),
            "rs_r": Out(7), "rs_q": Out(7), "shift": Out(6), "relu": Out(1), "o_mode": Out(2), "o_signed": Out(1),
            "res": Out(1), "r_mode": Out(2), "r_signed": Out(1), "res_mult": Out(32), "dw": Out(1),
            "dw_ng": Out(10), "dw_q": Out(7), "st_rlog": Out(3), "overlap": Out(1),
            "r_base": Out(ADDR_BITS), "r_ostride": Out(32), "r_istride": Out(32),
            "dma_start": Out(1), "dma_last": In(1), "eng_start": Out(1), "eng_last": In(1),
            "busy": Out(1), "done": Out(1), "cnt_cycles": Out(CNT_BITS),
        })

    def elaborate(self, platform):
        m = Module()
        d = self.instr_data
        op_in = Signal(isa.OPCODE_BITS)
        m.d.comb += op_in.eq(d[:isa.OPCODE_BITS])
        OPC = isa.OPCODES
        is_dma = Signal()
        m.d.comb += is_dma.eq(sum(op_in == OPC[o] for o in _DMA_OPS) != 0)
        dma_run, eng_run = Signal(), Signal()   # a unit's body is in progress
        started = Signal()
        m.d.comb += self.instr_ready.eq(~dma_run & (~eng_run | (self.overlap & is_dma)))
        fire = Signal()
        m.d.comb += fire.eq(self.instr_valid & self.instr_ready)
        with m.If(fire):
            m.d.sync += [started.eq(op_in != OPC["END"]), self.done.eq(op_in == OPC["END"])]
            with m.Switch(op_in):
                with m.Case(OPC["SET_LAYER"]):
                    m.d.sync += [getattr(self, r).eq(ir_field(d, "SET_LAYER", r)) for r in _LAYER_REGS]
                with m.Case(OPC["SET_RES"]):
                    m.d.sync += [self.r_base.eq(ir_field(d, "SET_RES", "base")),
                                 self.r_ostride.eq(ir_field(d, "SET_RES", "ostride")),
                                 self.r_istride.eq(ir_field(d, "SET_RES", "istride"))]
                with m.Case(*(OPC[o] for o in _BODY_DMA)):
                    m.d.comb += self.dma_start.eq(1)
                    m.d.sync += [self.dma_ir.eq(d), self.dma_op.eq(op_in), dma_run.eq(1)]
                with m.Case(OPC["COMPUTE"]):
                    m.d.comb += self.eng_start.eq(1)
                    m.d.sync += [self.eng_ir.eq(d), eng_run.eq(1)]
        with m.If(self.dma_last):
            m.d.sync += dma_run.eq(0)
        with m.If(self.eng_last):
            m.d.sync += eng_run.eq(0)
        m.d.comb += self.busy.eq(started | dma_run | eng_run)
        with m.If(fire | dma_run | eng_run):
            m.d.sync += self.cnt_cycles.eq(self.cnt_cycles + 1)
        return m
