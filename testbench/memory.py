"""The flat, bit-addressed off-chip memory as Python sees it, and the stalling mode's parameters.

The cycle-level memory model of the Verilator testbench is C++ (``testbench/hdl/transactor.cpp``, timing contract
in its header and docs/verification.md); :class:`FlatMemory` is the same memory for Amaranth-simulator tests and
for building and reading images, :class:`StallConfig` the random backpressure both use.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class StallConfig:
    """Random backpressure: probabilities per cycle (0..1) that a ready is high / an instruction is withheld,
    and the largest extra response delay (cycles)."""

    rd_ready_p: float = 0.6
    wr_ready_p: float = 0.6
    gap_p: float = 0.3
    resp_extra_max: int = 3
    seed: int = 1


class FlatMemory:
    """The flat, bit-addressed off-chip memory (docs/execution-model.md section 2): a little-endian byte array;
    bit ``a`` is bit ``a % 8`` of byte ``a // 8``."""

    def __init__(self, data: bytes | bytearray | np.ndarray):
        self.data = bytearray(bytes(np.asarray(data, np.uint8)) if isinstance(data, np.ndarray) else data)

    @property
    def size_bits(self) -> int:
        return len(self.data) * 8

    def read(self, addr: int, nbits: int) -> int:
        """``nbits`` bits from bit ``addr``, LSB first."""
        lo, hi = addr >> 3, (addr + nbits + 7) >> 3
        return (int.from_bytes(self.data[lo:hi], "little") >> (addr & 7)) & ((1 << nbits) - 1)

    def write(self, addr: int, nbits: int, value: int) -> None:
        """Store the low ``nbits`` bits of ``value`` at bit ``addr`` (other bits of the touched bytes kept)."""
        lo, hi = addr >> 3, (addr + nbits + 7) >> 3
        sh = addr & 7
        mask = ((1 << nbits) - 1) << sh
        old = int.from_bytes(self.data[lo:hi], "little")
        new = (old & ~mask) | ((value << sh) & mask)
        self.data[lo:hi] = new.to_bytes(hi - lo, "little")

    def snapshot(self) -> np.ndarray:
        return np.frombuffer(bytes(self.data), np.uint8).copy()


__all__ = ["FlatMemory", "StallConfig"]
