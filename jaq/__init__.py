"""JAQ: joint search of network architecture, low-bit mixed precision and a BitFusion-style accelerator.

Data path (see docs/architecture.md):
config YAML -> ``jaq co-search`` (jaq.nn supernet + jaq.hw cost model) -> accel.json
-> ``jaq emit-rtl`` (rtl_gen) -> ``jaq simulate`` (sim + testbench) -> report.
"""

__version__ = "0.1.0"
