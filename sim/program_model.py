"""Tile-level functional model of a compiled program, on the off-chip memory images (numpy).

Executes the instructions of :func:`jaq.hw.schedule.compile_layer` the way the accelerator does at the tile
level: loads gather tiles from the element-addressed images through the descriptors' addresses and strides,
``COMPUTE`` convolves the resident tiles into the output buffer (overwrite when ``acc`` is clear, accumulate
otherwise), ``STORE_OUT`` scatters the output tile's accumulators back (partial-sum layout ``[OH][OW][out_ch]``). It checks the program + memory layout independently of
the RTL: its final output region must equal the integer reference; when the RTL differs but this model agrees,
the fault is in the RTL (docs/verification.md, debugging).
"""

from __future__ import annotations

import numpy as np

from jaq.hw.timing import uses_dw_mapping
from sim.reference import conv_reference, wrap_acc


def _gather(img: np.ndarray, base: int, n_outer: int, ostride: int, n_inner: int, istride: int,
            run_len: int) -> np.ndarray:
    o = np.arange(n_outer)[:, None, None] * ostride
    i = np.arange(n_inner)[None, :, None] * istride
    e = np.arange(run_len)[None, None, :]
    return img[base + o + i + e]


def execute(program, act: np.ndarray, wgt: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Run ``program`` on copies of the images; returns the final output region (int64, 32-bit wrapped)."""
    out = np.array(out, dtype=np.int64, copy=True)
    layer = program.layer
    K, S = layer.kernel, layer.stride
    a_tile, w_tile, o_tile = {}, {}, {}  # per buffer half (double-buffered programs, docs section 9)
    for ins in program.instructions:
        op = ins.op
        if op == "LOAD_ACT":
            a_tile[ins.half] = _gather(act, ins.dram_base, ins.ih, ins.row_stride, ins.iw, ins.col_stride, ins.run_len)
        elif op == "LOAD_WGT":
            w = wgt[ins.dram_base: ins.dram_base + ins.n_runs * ins.run_len]
            if uses_dw_mapping(program.accel.dataflow, layer.depthwise):
                # window vectors [n_g][m'][pf] (docs/execution-model.md section 8) -> [m'][kh][kw][1]
                w = w.reshape(ins.n_runs, ins.m, -1).transpose(1, 0, 2).reshape(ins.m, -1)
                w_tile[ins.half] = w[:, :K * K].reshape(ins.m, K, K, 1)
            else:  # [m'][kh][kw][c']
                w_tile[ins.half] = w.reshape(ins.m, K, K, ins.c)
        elif op == "LOAD_PSUM":
            o_tile[ins.half] = _gather(out, ins.dram_base, ins.h, ins.row_stride, ins.w, ins.col_stride, ins.run_len)
        elif op == "COMPUTE":
            ih, iw = (ins.h - 1) * S + K, (ins.w - 1) * S + K
            a, w = a_tile[ins.act_half], w_tile[ins.wgt_half].transpose(0, 3, 1, 2)
            if layer.depthwise:  # the act tile holds the m' channels of the channel tile
                y = conv_reference(a[:ih, :iw, :ins.m], w, S, ins.m)
            else:
                y = conv_reference(a[:ih, :iw, :ins.c], w, S, 1)
            o_tile[ins.out_half] = wrap_acc(y + o_tile[ins.out_half]) if ins.acc else wrap_acc(y)
        elif op == "STORE_OUT":  # the 32-bit accumulators, in the partial-sum layout (the output unit is not modelled)
            t = program.tiling
            M, OW = layer.out_ch, layer.out_w
            base = (ins.oh * t.t_oh * OW + ins.ow * t.t_ow) * M + ins.g * layer.tile_dims["OC"] + ins.oc * t.t_oc
            o = np.arange(ins.h)[:, None, None] * (OW * M)
            i = np.arange(ins.w)[None, :, None] * M
            e = np.arange(ins.m)[None, None, :]
            out[base + o + i + e] = o_tile[ins.half]
    return out


__all__ = ["execute"]
