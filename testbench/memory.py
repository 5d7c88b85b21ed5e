"""Off-chip memory model for the accelerator's DRAM port (cocotb 2.x): driver + monitor of the read and write channels.

Timing contract (docs/execution-model.md section 2 and 5, docs/verification.md):

* the port moves one beat of ``W`` bits per cycle; a read request (``rd_req_valid & rd_req_ready``) asks for
  ``rd_req_bits`` bits of the flat off-chip memory starting at bit ``rd_req_addr``; its data arrive on
  ``rd_resp_valid/rd_resp_data`` **exactly L cycles** after the request's handshake edge (the DUT samples the
  datum at the ``L``-th rising edge after the one that took the request), in request order, one per cycle;
* writes (``wr_valid & wr_ready``) store the low ``wr_bits`` bits of ``wr_data`` at bit ``wr_addr``; they are
  posted (no response);
* data are LSB first: bit ``j`` of a beat is memory bit ``addr + j`` (:mod:`jaq.hw.packing` packs elements so).

In the exact mode ``rd_req_ready`` and ``wr_ready`` are always high and every response comes exactly ``L``
cycles after its request: this is the memory the cost model assumes. The stalling mode drops the ready signals
at random and delays responses by random extra cycles (order kept), for correctness under backpressure; cycles
are then not compared.

Cycle ``k`` is the simulation time in clock periods (falling edge of cycle ``k`` at ``(k + 1/2)`` periods). In
the exact mode the model sleeps while the port is idle (no response outstanding, no valid raised) and wakes on
the rising edge of ``rd_req_valid`` or ``wr_valid``: it behaves exactly as if it acted every cycle.

Sampling scheme: the model acts once per cycle at the falling clock edge. The DUT is synchronous to the rising
edge and its outputs do not depend combinationally on these inputs, so the values seen at falling edge ``k``
are the ones the DUT presents at rising edge ``k+1``, where a handshake with the inputs driven now happens.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field

import numpy as np

import cocotb
from cocotb.triggers import FallingEdge, First, RisingEdge
from cocotb.utils import get_sim_time

from rtl_gen.protocol import TENSOR_ACT, TENSOR_NAMES, TENSOR_OUT, TENSOR_PSUM, TENSOR_SCALE, TENSOR_WGT  # noqa: F401


@dataclass
class StallConfig:
    """Random backpressure: probabilities per cycle (0..1) and the largest extra response delay (cycles)."""

    rd_ready_p: float = 0.6
    wr_ready_p: float = 0.6
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


@dataclass
class MemoryStats:
    """What the monitor saw: beats and bits per tensor tag, write beats and bits, protocol violations, response
    latencies."""

    rd_beats: dict[str, int] = field(default_factory=lambda: {n: 0 for n in TENSOR_NAMES.values()})
    rd_bits: dict[str, int] = field(default_factory=lambda: {n: 0 for n in TENSOR_NAMES.values()})
    wr_beats: int = 0
    wr_bits: int = 0
    violations: list[str] = field(default_factory=list)
    min_latency: int | None = None
    max_latency: int | None = None
    first_rd_cycle: int | None = None
    last_wr_cycle: int | None = None


class OffChipMemory:
    """Driver + monitor of the DRAM read-request/response and write channels of the accelerator top level.

    ``memory``: the :class:`FlatMemory`; a read asks for ``rd_req_bits`` bits at bit address ``rd_req_addr``,
    a write stores ``wr_bits`` bits of ``wr_data`` at ``wr_addr``; the tensor tags (``rd_req_tensor``,
    ``wr_tensor``, rtl_gen.protocol's ids) are only counted.
    ``width_bits``: W; ``latency``: L (>= 1); ``stall``: None for the exact memory.
    Cycle ``k`` counts falling edges since :meth:`start`.
    """

    def __init__(self, dut, memory: FlatMemory, width_bits: int, latency: int,
                 stall: StallConfig | None = None, max_violations: int = 20, clock_ns: int = 10):
        if latency < 1:
            raise ValueError("the memory model needs dram_latency_cycles >= 1")
        self.dut = dut
        self.clk = dut.clk
        self.memory = memory
        self.width = width_bits
        self.latency = latency
        self.stall = stall
        self.rng = random.Random(stall.seed if stall else 0)
        self.stats = MemoryStats()
        self.max_violations = max_violations
        self._pending: deque[tuple[int, int, int, int]] = deque()  # (due, addr, nbits, req_cycle)
        self._last_due = -1
        self._task = None
        self._stopped = False
        self.cycle = 0
        self.clock_ns = clock_ns

    # -- control ----------------------------------------------------------------------------------------------
    def reset_signals(self) -> None:
        self.dut.rd_req_ready.value = 0
        self.dut.rd_resp_valid.value = 0
        self.dut.rd_resp_data.value = 0
        self.dut.wr_ready.value = 0

    def start(self) -> None:
        if self._task is not None:
            raise RuntimeError("memory model already started")
        self._task = cocotb.start_soon(self._run())

    def stop(self) -> None:
        """Stop at the next wake-up (the task returns by itself; it never drives again)."""
        self._stopped = True
        self._task = None

    @property
    def idle(self) -> bool:
        """No read response outstanding."""
        return not self._pending

    # -- per-cycle behaviour ----------------------------------------------------------------------------------
    def _violation(self, msg: str) -> None:
        if len(self.stats.violations) < self.max_violations:
            self.stats.violations.append(f"cycle {self.cycle}: {msg}")

    async def _run(self) -> None:
        dut = self.dut
        fall = FallingEdge(self.clk)
        resp_driven = False
        while True:
            if (self.stall is None and not self._pending and not resp_driven and not int(dut.rd_req_valid.value)
                    and not int(dut.wr_valid.value)):
                # idle port: nothing can happen before the DUT raises a valid
                await First(RisingEdge(dut.rd_req_valid), RisingEdge(dut.wr_valid))
                if self._stopped:
                    return
            await fall
            if self._stopped:
                return
            k = self.cycle = int(get_sim_time("ns") // self.clock_ns)
            # ---- read request channel: decide ready, observe valid -> handshake at the next rising edge
            ready = 1 if self.stall is None or self.rng.random() < self.stall.rd_ready_p else 0
            dut.rd_req_ready.value = ready
            if ready and int(dut.rd_req_valid.value):
                self._accept_read(k, int(dut.rd_req_tensor.value), int(dut.rd_req_addr.value),
                                  int(dut.rd_req_bits.value))
            # ---- read response channel: present the datum due now
            if self._pending and self._pending[0][0] == k:
                _, addr, nbits, req_k = self._pending.popleft()
                dut.rd_resp_data.value = self.memory.read(addr, nbits)
                dut.rd_resp_valid.value = 1
                resp_driven = True
                lat = k - req_k
                s = self.stats
                s.min_latency = lat if s.min_latency is None else min(s.min_latency, lat)
                s.max_latency = lat if s.max_latency is None else max(s.max_latency, lat)
            else:
                dut.rd_resp_valid.value = 0
                resp_driven = False
            # ---- write channel
            wready = 1 if self.stall is None or self.rng.random() < self.stall.wr_ready_p else 0
            dut.wr_ready.value = wready
            if wready and int(dut.wr_valid.value):
                self._accept_write(k, int(dut.wr_tensor.value), int(dut.wr_addr.value), int(dut.wr_bits.value),
                                   int(dut.wr_data.value))

    def _check(self, what: str, tensor: int, addr: int, nbits: int) -> str | None:
        name = TENSOR_NAMES.get(tensor)
        if name is None:
            self._violation(f"{what} tagged with unknown tensor id {tensor}")
        elif not 1 <= nbits <= self.width:
            self._violation(f"{what} of {nbits} bits in one beat (1..{self.width} allowed)")
        elif addr + nbits > self.memory.size_bits:
            self._violation(f"{what} of bits [{addr}, {addr + nbits}) beyond the {self.memory.size_bits}-bit memory")
        else:
            return name
        return None

    def _accept_read(self, k: int, tensor: int, addr: int, nbits: int) -> None:
        name = self._check("read", tensor, addr, nbits)
        if name is None:
            return
        extra = self.rng.randint(0, self.stall.resp_extra_max) if self.stall else 0
        # The request is taken at rising edge k+1; the DUT samples the datum at rising edge k+1+L, so the model
        # drives it at falling edge k+L (never earlier than one per cycle, in order).
        due = max(k + self.latency + extra, self._last_due + 1)
        self._last_due = due
        self._pending.append((due, addr, nbits, k))
        s = self.stats
        s.rd_beats[name] += 1
        s.rd_bits[name] += nbits
        if s.first_rd_cycle is None:
            s.first_rd_cycle = k

    def _accept_write(self, k: int, tensor: int, addr: int, nbits: int, data: int) -> None:
        if self._check("write", tensor, addr, nbits) is None:
            return
        self.memory.write(addr, nbits, data)
        self.stats.wr_beats += 1
        self.stats.wr_bits += nbits
        self.stats.last_wr_cycle = k


__all__ = ["OffChipMemory", "FlatMemory", "StallConfig", "MemoryStats", "TENSOR_ACT", "TENSOR_WGT",
           "TENSOR_PSUM", "TENSOR_OUT", "TENSOR_SCALE", "TENSOR_NAMES"]
