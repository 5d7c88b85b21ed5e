"""rtl_gen: a BitFusion-style accelerator generated in Amaranth from an accel.json description.

Blocks (bottom up): :mod:`rtl_gen.bitbrick` (2-bit x 2-bit signed/unsigned multiplier), :mod:`rtl_gen.fusion_unit`
(16 BitBricks with run-time 2/4/8-bit precision), :mod:`rtl_gen.pe_array` (the PE_x x PE_y array, one datapath per
dataflow WS/OS/RS), :mod:`rtl_gen.buffers` (act/wgt/out buffers of W-bit lines), :mod:`rtl_gen.dma`,
:mod:`rtl_gen.controller`, :mod:`rtl_gen.isa` (binary instruction encoding) and :mod:`rtl_gen.top`
(``JaqAccelerator``). The cycle-level behaviour follows docs/execution-model.md; see docs/rtl.md.
"""
