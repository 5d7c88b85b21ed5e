"""Constants of the accelerator's external protocol, shared by the generator, the testbench and the harness.

No Amaranth here: the cocotb testbench (another process) and the cost-model side import it cheaply.
"""

from __future__ import annotations

from jaq.hw.placement import ADDR_BITS  # width of an off-chip bit address (rd_req_addr, wr_addr)  # noqa: F401

#: Tensor ids on ``rd_req_tensor`` / ``wr_tensor`` (docs/execution-model.md section 7.1): activations, weights,
#: 32-bit partial sums, final outputs (at the layer's ``out_bits``), output-unit constants (32-bit words), the
#: residual operand of a final store (the block input, at its bits).
TENSOR_ACT, TENSOR_WGT, TENSOR_PSUM, TENSOR_OUT, TENSOR_SCALE, TENSOR_RES = 0, 1, 2, 3, 4, 5
TENSOR_NAMES: dict[int, str] = {TENSOR_ACT: "act", TENSOR_WGT: "wgt", TENSOR_PSUM: "psum", TENSOR_OUT: "out",
                                TENSOR_SCALE: "scale", TENSOR_RES: "res"}
#: Bits [0, OPCODE_BITS) of every instruction word hold its opcode (rtl_gen.isa).
OPCODE_BITS = 4

#: Width of the tensor-id ports (the tag tells the monitor what a transfer is; addresses are flat bit addresses).
TENSOR_ID_BITS = 3

#: Counter port -> :func:`jaq.hw.schedule.walk` counter name, in report order. Units: cycles, FU-active cycles,
#: vectors read (act/wgt), 32-bit words read/written (OBUF), W-bit lines written by the DMA, W-bit beats.
COUNTER_WALK_NAMES: dict[str, str] = {
    "cnt_cycles": "cycles", "cnt_fu_active": "fu_active_cycles", "cnt_act_rd": "act_buf_rd_vectors",
    "cnt_wgt_rd": "wgt_buf_rd_vectors", "cnt_out_rd": "out_buf_rd_words", "cnt_out_wr": "out_buf_wr_words",
    "cnt_act_wr": "act_buf_wr_lines", "cnt_wgt_wr": "wgt_buf_wr_lines", "cnt_dram_rd_beats": "dram_rd_beats",
    "cnt_dram_wr_beats": "dram_wr_beats"}
#: The counter ports of the top level (48 bits each), in report order.
COUNTERS: tuple[str, ...] = tuple(COUNTER_WALK_NAMES)
