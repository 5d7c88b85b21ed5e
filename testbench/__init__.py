"""cocotb 2.x testbenches (run on Verilator through sim.verilator; docs/verification.md).

:mod:`testbench.wrapper` the SystemVerilog wrapper whose C++ transactor (``hdl/transactor.cpp``) plays the
off-chip memory (exact / stalling) and the instruction stream, :mod:`testbench.memory` the flat memory in Python,
:mod:`testbench.driver` the counter reader, :mod:`testbench.env` job files and the run loop, :mod:`testbench.accel_tb` the accelerator top
level, unit testbenches :mod:`testbench.fusion_unit_tb` and :mod:`testbench.buffers_tb`, and the loopback DMA
(:mod:`testbench.loopback`, :mod:`testbench.loopback_tb`) that tests the testbench itself.
"""
