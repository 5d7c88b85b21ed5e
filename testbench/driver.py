"""Counter reader of the testbench wrapper (cocotb 2.x): the counters are top-level ports of ``jaq_tb``."""

from __future__ import annotations

from typing import Sequence

from rtl_gen.protocol import COUNTERS as COUNTER_NAMES


def read_counters(dut, names: Sequence[str] = COUNTER_NAMES) -> dict[str, int]:
    """Current values of the counter ports that exist on ``dut`` (missing ones are left out)."""
    out = {}
    for n in names:
        try:
            h = getattr(dut, n)
        except AttributeError:
            continue
        out[n] = int(h.value)
    return out


__all__ = ["read_counters", "COUNTER_NAMES"]
