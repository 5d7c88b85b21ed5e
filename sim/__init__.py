"""Simulation side of JAQ's model <-> RTL check (docs/verification.md).

:mod:`sim.reference` integer reference conv + random layer data; :mod:`sim.memory_image` off-chip images;
:mod:`sim.program_model` tile-level functional model of a program; :mod:`sim.verilator` cached Verilator builds
and cocotb runs; :mod:`sim.harness` layer jobs, comparisons and reports (``simulate_layers``);
:mod:`sim.build_dir` reads ``jaq emit-rtl`` output; :mod:`sim.network` whole networks (``run_network``).
"""
