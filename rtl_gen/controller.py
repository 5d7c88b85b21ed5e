"""Controller: fetches the instruction stream, issues each instruction and waits for its body.

Every instruction costs exactly ``1 issue cycle + body`` (docs/execution-model.md section 5): the issue cycle is
the cycle of the ``instr_valid & instr_ready`` handshake (the word is latched into the instruction register and
the unit is started); the body runs in the following cycles until the unit raises ``last`` (DMA for loads and
stores, the compute engine for COMPUTE); SET_LAYER and END have an empty body. ``instr_ready`` is high exactly
when the controller waits for an instruction (so the next instruction is issued in the cycle after a body's
last cycle when the stream never stalls). ``cnt_cycles`` counts issue and body cycles; cycles spent waiting for
an instruction are not counted (an always-valid stream makes it the wall-clock cycle count of the program).

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


class Controller(wiring.Component):
    """Instruction fetch/issue FSM. Ports: instruction stream, ``ir`` (the latched instruction), ``opcode``,
    layer registers (``k, s, a_mode, w_mode, act_signed, rs_r, rs_q`` and the output unit's ``shift, relu, o_mode,
    o_signed``, ``res, r_mode, r_signed, res_mult``, ``dw``, ``dw_ng``, ``dw_q``, ``st_rlog``), the residual view of SET_RES (``r_base, r_ostride,
    r_istride``), unit handshakes (``dma_start``,
    ``dma_last``, ``eng_start``, ``eng_last``), ``busy``, ``done``, ``cnt_cycles``."""

    def __init__(self, p: HWParams):
        self.p = p
        super().__init__({
            "instr_valid": In(1), "instr_ready": Out(1), "instr_data": In(isa.INSTR_BITS),
            "ir": Out(isa.INSTR_BITS), "opcode": Out(isa.OPCODE_BITS),
            "k": Out(p.kbits), "s": Out(p.sbits), "a_mode": Out(2), "w_mode": Out(2), "act_signed": Out(1),
            "rs_r": Out(7), "rs_q": Out(7), "shift": Out(6), "relu": Out(1), "o_mode": Out(2), "o_signed": Out(1),
            "res": Out(1), "r_mode": Out(2), "r_signed": Out(1), "res_mult": Out(32), "dw": Out(1),
            "dw_ng": Out(10), "dw_q": Out(7),
            "st_rlog": Out(3),
            "r_base": Out(ADDR_BITS), "r_ostride": Out(32), "r_istride": Out(32),
            "dma_start": Out(1), "dma_last": In(1), "eng_start": Out(1), "eng_last": In(1),
            "busy": Out(1), "done": Out(1), "cnt_cycles": Out(CNT_BITS),
        })

    def elaborate(self, platform):
        m = Module()
        fire = Signal()
        m.d.comb += fire.eq(self.instr_valid & self.instr_ready)
        op_in = Signal(isa.OPCODE_BITS)
        m.d.comb += op_in.eq(self.instr_data[:isa.OPCODE_BITS])
        d = self.instr_data
        started = Signal()
        in_body = Signal()
        with m.FSM(name="ctl"):
            with m.State("FETCH"):
                m.d.comb += self.instr_ready.eq(1)
                with m.If(fire):
                    m.d.sync += [self.ir.eq(d), self.opcode.eq(op_in), started.eq(1), self.done.eq(0)]
                    with m.Switch(op_in):
                        with m.Case(isa.OPCODES["SET_LAYER"]):
                            m.d.sync += [self.k.eq(ir_field(d, "SET_LAYER", "k")),
                                         self.s.eq(ir_field(d, "SET_LAYER", "s")),
                                         self.a_mode.eq(ir_field(d, "SET_LAYER", "a_mode")),
                                         self.w_mode.eq(ir_field(d, "SET_LAYER", "w_mode")),
                                         self.act_signed.eq(ir_field(d, "SET_LAYER", "act_signed")),
                                         self.rs_r.eq(ir_field(d, "SET_LAYER", "rs_r")),
                                         self.rs_q.eq(ir_field(d, "SET_LAYER", "rs_q")),
                                         self.shift.eq(ir_field(d, "SET_LAYER", "shift")),
                                         self.relu.eq(ir_field(d, "SET_LAYER", "relu")),
                                         self.o_mode.eq(ir_field(d, "SET_LAYER", "o_mode")),
                                         self.o_signed.eq(ir_field(d, "SET_LAYER", "o_signed")),
                                         self.res.eq(ir_field(d, "SET_LAYER", "res")),
                                         self.r_mode.eq(ir_field(d, "SET_LAYER", "r_mode")),
                                         self.r_signed.eq(ir_field(d, "SET_LAYER", "r_signed")),
                                         self.res_mult.eq(ir_field(d, "SET_LAYER", "res_mult")),
                                         self.dw.eq(ir_field(d, "SET_LAYER", "dw")),
                                         self.dw_ng.eq(ir_field(d, "SET_LAYER", "dw_ng")),
                                         self.dw_q.eq(ir_field(d, "SET_LAYER", "dw_q")),
                                         self.st_rlog.eq(ir_field(d, "SET_LAYER", "st_rlog"))]
                        with m.Case(isa.OPCODES["SET_RES"]):
                            m.d.sync += [self.r_base.eq(ir_field(d, "SET_RES", "base")),
                                         self.r_ostride.eq(ir_field(d, "SET_RES", "ostride")),
                                         self.r_istride.eq(ir_field(d, "SET_RES", "istride"))]
                        with m.Case(isa.OPCODES["END"]):
                            m.d.sync += [self.done.eq(1), started.eq(0)]
                        with m.Case(isa.OPCODES["LOAD_ACT"], isa.OPCODES["LOAD_WGT"], isa.OPCODES["LOAD_PSUM"],
                                    isa.OPCODES["LOAD_SCALE"], isa.OPCODES["STORE_OUT"]):
                            m.d.comb += self.dma_start.eq(1)
                            m.next = "DMA"
                        with m.Case(isa.OPCODES["COMPUTE"]):
                            m.d.comb += self.eng_start.eq(1)
                            m.next = "COMPUTE"
            with m.State("DMA"):
                m.d.comb += in_body.eq(1)
                with m.If(self.dma_last):
                    m.next = "FETCH"
            with m.State("COMPUTE"):
                m.d.comb += in_body.eq(1)
                with m.If(self.eng_last):
                    m.next = "FETCH"
        m.d.comb += self.busy.eq(started | in_body)
        with m.If(fire | in_body):
            m.d.sync += self.cnt_cycles.eq(self.cnt_cycles + 1)
        return m
