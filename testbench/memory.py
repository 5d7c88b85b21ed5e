"""Off-chip memory model for the accelerator's DRAM port (cocotb 2.x): driver + monitor of the read and write channels.

Timing contract (docs/execution-model.md section 2 and 5, docs/verification.md):

* the port moves one beat of ``W`` bits per cycle; a read request (``rd_req_valid & rd_req_ready``) asks for
  ``rd_req_count`` consecutive elements of one tensor starting at element ``rd_req_addr``; its data arrive on
  ``rd_resp_valid/rd_resp_data`` **exactly L cycles** after the request's handshake edge (the DUT samples the
  datum at the ``L``-th rising edge after the one that took the request), in request order, one per cycle;
* writes (``wr_valid & wr_ready``) carry ``wr_count`` 32-bit elements (outputs / partial sums) for element
  address ``wr_addr`` of the output tensor; they are posted (no response);
* elements are packed LSB first, element ``i`` of a beat in bits ``[i*b, (i+1)*b)`` (:mod:`jaq.hw.packing`).

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

from jaq.hw.packing import to_unsigned

from rtl_gen.protocol import TENSOR_ACT, TENSOR_NAMES, TENSOR_OUT, TENSOR_PSUM, TENSOR_SCALE, TENSOR_WGT  # noqa: F401


@dataclass
class StallConfig:
    """Random backpressure: probabilities per cycle (0..1) and the largest extra response delay (cycles)."""

    rd_ready_p: float = 0.6
    wr_ready_p: float = 0.6
    resp_extra_max: int = 3
    seed: int = 1


@dataclass
class TensorMemory:
    """One element-addressed tensor region: ``bits``-bit elements (two's complement patterns when signed)."""

    name: str
    bits: int
    signed: bool
    values: np.ndarray  # int64, flat

    def __post_init__(self) -> None:
        self.values = np.asarray(self.values, dtype=np.int64).reshape(-1).copy()
        self._patterns: list[int] | None = None

    def patterns(self) -> list[int]:
        if self._patterns is None:
            self._patterns = [int(p) for p in to_unsigned(self.values, self.bits).tolist()]
        return self._patterns

    def read_beat(self, addr: int, count: int) -> int:
        """``count`` elements from ``addr`` packed LSB first into one integer."""
        pats = self.patterns()
        b = self.bits
        word = 0
        for i in range(count):
            word |= pats[addr + i] << (i * b)
        return word

    def write_beat(self, addr: int, count: int, data: int) -> None:
        """Store ``count`` ``bits``-bit elements of ``data`` (LSB first) at ``addr``."""
        b = self.bits
        mask = (1 << b) - 1
        half = 1 << (b - 1)
        pats = self._patterns
        vals = self.values
        for i in range(count):
            u = (data >> (i * b)) & mask
            vals[addr + i] = u - (1 << b) if self.signed and u >= half else u
            if pats is not None:
                pats[addr + i] = u


@dataclass
class MemoryStats:
    """What the monitor saw: beats per tensor, write beats, elements, protocol violations, response latencies."""

    rd_beats: dict[str, int] = field(default_factory=lambda: {n: 0 for n in TENSOR_NAMES.values()})
    rd_elems: dict[str, int] = field(default_factory=lambda: {n: 0 for n in TENSOR_NAMES.values()})
    wr_beats: int = 0
    wr_elems: int = 0
    violations: list[str] = field(default_factory=list)
    min_latency: int | None = None
    max_latency: int | None = None
    first_rd_cycle: int | None = None
    last_wr_cycle: int | None = None


class OffChipMemory:
    """Driver + monitor of the DRAM read-request/response and write channels of the accelerator top level.

    ``tensors``: ``{tensor id: TensorMemory}`` (rtl_gen.protocol's ids); reads and writes name their tensor
    (``rd_req_tensor``, ``wr_tensor``) and move elements of that tensor's width.
    ``width_bits``: W; ``latency``: L (>= 1); ``stall``: None for the exact memory.
    Cycle ``k`` counts falling edges since :meth:`start`.
    """

    def __init__(self, dut, tensors: dict[int, TensorMemory], width_bits: int, latency: int,
                 stall: StallConfig | None = None, max_violations: int = 20, clock_ns: int = 10):
        if latency < 1:
            raise ValueError("the memory model needs dram_latency_cycles >= 1")
        self.dut = dut
        self.clk = dut.clk
        self.tensors = tensors
        self.width = width_bits
        self.latency = latency
        self.stall = stall
        self.rng = random.Random(stall.seed if stall else 0)
        self.stats = MemoryStats()
        self.max_violations = max_violations
        self._pending: deque[tuple[int, int, int, int, int]] = deque()  # (due, tensor, addr, count, req_cycle)
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
                                  int(dut.rd_req_count.value))
            # ---- read response channel: present the datum due now
            if self._pending and self._pending[0][0] == k:
                _, t, addr, count, req_k = self._pending.popleft()
                dut.rd_resp_data.value = self.tensors[t].read_beat(addr, count)
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
                self._accept_write(k, int(dut.wr_tensor.value), int(dut.wr_addr.value), int(dut.wr_count.value),
                                   int(dut.wr_data.value))

    def _accept_read(self, k: int, tensor: int, addr: int, count: int) -> None:
        mem = self.tensors.get(tensor)
        if mem is None:
            self._violation(f"read request for unknown tensor id {tensor}")
            return
        per_beat = self.width // mem.bits
        if not 1 <= count <= per_beat:
            self._violation(f"read of {count} {mem.name} elements in one beat (1..{per_beat} allowed)")
            return
        if addr + count > mem.values.size:
            self._violation(f"read {mem.name}[{addr}:{addr + count}] beyond its {mem.values.size} elements")
            return
        extra = self.rng.randint(0, self.stall.resp_extra_max) if self.stall else 0
        # The request is taken at rising edge k+1; the DUT samples the datum at rising edge k+1+L, so the model
        # drives it at falling edge k+L (never earlier than one per cycle, in order).
        due = max(k + self.latency + extra, self._last_due + 1)
        self._last_due = due
        self._pending.append((due, tensor, addr, count, k))
        s = self.stats
        s.rd_beats[mem.name] += 1
        s.rd_elems[mem.name] += count
        if s.first_rd_cycle is None:
            s.first_rd_cycle = k

    def _accept_write(self, k: int, tensor: int, addr: int, count: int, data: int) -> None:
        mem = self.tensors.get(tensor)
        if mem is None:
            self._violation(f"write to unknown tensor id {tensor}")
            return
        per_beat = self.width // mem.bits
        if not 1 <= count <= per_beat:
            self._violation(f"write of {count} {mem.name} elements in one beat (1..{per_beat} allowed)")
            return
        if addr + count > mem.values.size:
            self._violation(f"write {mem.name}[{addr}:{addr + count}] beyond its {mem.values.size} elements")
            return
        mem.write_beat(addr, count, data)
        self.stats.wr_beats += 1
        self.stats.wr_elems += count
        self.stats.last_wr_cycle = k


__all__ = ["OffChipMemory", "TensorMemory", "StallConfig", "MemoryStats", "TENSOR_ACT", "TENSOR_WGT",
           "TENSOR_PSUM", "TENSOR_OUT", "TENSOR_SCALE", "TENSOR_NAMES"]
