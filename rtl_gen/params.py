"""Generator parameters derived from an :class:`jaq.hw.Accelerator` plus the largest layer the hardware must run.

Everything structural in the generated design comes from here: array size and dataflow, buffer depths (KB ->
W-bit lines -> 32-bit words), port counts per dataflow, field widths and accumulator widths.

Accumulator-width rule (docs/rtl.md): a fusion-unit sum is at most ``|s| <= 255*128 = 32640`` (< 2^15) in
magnitude, i.e. ``SUM_BITS = 17`` signed bits. A register that accumulates ``n`` such sums needs
``SUM_BITS + ceil(log2(n))`` bits to never overflow. The longest reduction of a layer is
``N = max_kernel^2 * max_in_ch`` products (one output), so every on-chip accumulator (per-FU accumulators in OS
and RS, column sums in WS, the OBUF words) is ``acc_bits = min(32, SUM_BITS + ceil(log2(N)))`` wide, capped at the
32-bit off-chip word: outputs are exact whenever the layer's true sums fit 32-bit two's complement (the OBUF adds
modulo 2^32, so partial sums that round-trip through DRAM stay exact under the same condition).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable

from jaq.errors import JaqError
from jaq.hw.records import Accelerator, Layer
from jaq.hw.constants import SCALE_MEMORY_WORDS
from jaq.hw.timing import buffer_lines, dw_groups, dw_row_ports, usable_lines

from rtl_gen.fusion_unit import SUM_BITS

#: Tile extents are at most 2^10 (paper's search space): 11-bit fields.
EXTENT_BITS = 11


def clog2(n: int) -> int:
    """Bits to index ``n`` items (at least 1)."""
    return max(1, math.ceil(math.log2(max(n, 2))))


@dataclass(frozen=True)
class MaxLayer:
    """Largest layer shape the generated hardware supports (sizes of run-time fields and accumulators).

    max_kernel: K (kernel side) up to this. max_stride: S up to this. max_in_ch: input channels per group.
    """

    max_kernel: int = 7
    max_stride: int = 4
    max_in_ch: int = 1024

    def __post_init__(self):
        for n in ("max_kernel", "max_stride", "max_in_ch"):
            v = getattr(self, n)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1 or v > 4096:
                raise JaqError(f"{v!r} must be an integer 1..4096", f"max_layer.{n}")

    @classmethod
    def covering(cls, layers: Iterable[Layer], floor: "MaxLayer | None" = None) -> "MaxLayer":
        """The smallest limits that cover ``layers`` (and ``floor`` if given)."""
        ks, ss, cs = [1], [1], [1]
        if floor is not None:
            ks.append(floor.max_kernel), ss.append(floor.max_stride), cs.append(floor.max_in_ch)
        for l in layers:
            ks.append(l.kernel), ss.append(l.stride), cs.append(l.in_ch_per_group)
        return cls(max(ks), max(ss), max(cs))


@dataclass(frozen=True)
class HWParams:
    """Structural parameters of one generated accelerator (all derived; see :func:`derive`)."""

    accel: Accelerator
    max_layer: MaxLayer
    X: int                      # columns (pe_x)
    Y: int                      # rows (pe_y)
    dataflow: str
    W: int                      # off-chip beat / buffer line width, bits
    EW: int                     # 32-bit words per line (W/32)
    latency: int                # DRAM read latency, cycles
    act_words: int              # act buffer depth in 32-bit words
    wgt_words: int
    out_words: int
    act_lines: int              # lines of W bits
    wgt_lines: int
    out_lines: int
    acc_bits: int
    rmax: int                   # RS: kernel rows per pass at most (min(max_kernel, Y))
    n_act_ports: int            # act vector read ports of the array
    n_wgt_ports: int            # wgt vector read ports
    n_out_ports: int            # OBUF read-modify-write word ports
    store_lines: int = 1        # N_u: OBUF (and scale) lines the output unit reads per cycle (section 7.4)
    double_buffer: bool = False  # act, wgt and out buffers are two halves each (section 9)
    kbits: int = 5
    sbits: int = 5
    extra: dict = field(default_factory=dict)

    @property
    def scale_lines(self) -> int:
        """Lines of each scale memory: one chunk of ``W/32`` channels of the largest out tile (2^10 channels)."""
        return -(-SCALE_MEMORY_WORDS // self.EW)

    @property
    def ws_segments(self) -> tuple[int, ...]:
        """WS column-sum segment lengths the array supports: Y (dense) and ``min(n_g, Y)`` of every depthwise
        geometry up to the largest kernel (:func:`jaq.hw.timing.dw_groups`, docs section 8)."""
        ks = range(1, self.max_layer.max_kernel + 1)
        return tuple(sorted({self.Y} | {min(dw_groups(k, pf), self.Y) for k in ks for pf in (1, 2, 4, 8, 16)}))

    def half_base(self, lines: int) -> int:
        """First line of the second half of a buffer of ``lines`` lines (section 9: a half is
        :func:`jaq.hw.timing.usable_lines`); 0 when the buffers are not double-buffered."""
        return usable_lines(lines, True) if self.double_buffer else 0

    @property
    def act_abits(self) -> int:
        return clog2(self.act_words)

    @property
    def wgt_abits(self) -> int:
        return clog2(self.wgt_words)

    @property
    def out_abits(self) -> int:
        return clog2(self.out_words)


def derive(accel: Accelerator, max_layer: MaxLayer | None = None) -> HWParams:
    """Derive :class:`HWParams` from an accelerator (buffer KB -> lines of W bits -> words)."""
    max_layer = max_layer or MaxLayer()
    W = accel.dram_bits_per_cycle
    EW = W // 32

    def lines(kb: int) -> int:
        return buffer_lines(kb, W)

    act_lines, wgt_lines, out_lines = lines(accel.act_buf_kb), lines(accel.wgt_buf_kb), lines(accel.out_buf_kb)
    X, Y = accel.pe_x, accel.pe_y
    n_red = max_layer.max_kernel ** 2 * max_layer.max_in_ch
    acc_bits = min(32, SUM_BITS + clog2(n_red))
    rmax = min(max_layer.max_kernel, Y)
    df = accel.dataflow
    if df == "WS":  # depthwise mapping (section 8): dw_row_ports(X) act words per row, X*Y (replica, column) words
        ports = (Y * dw_row_ports(X), X, X * Y)
    elif df == "OS":
        ports = (X, Y, X)
    else:  # RS: act ports = distinct input rows at most X*rmax; out ports = X columns x Y replica slots
        ports = (X * rmax, Y, X * Y)
    return HWParams(accel=accel, max_layer=max_layer, X=X, Y=Y, dataflow=df, W=W, EW=EW,
                    latency=accel.dram_latency_cycles,
                    act_words=act_lines * EW, wgt_words=wgt_lines * EW, out_words=out_lines * EW,
                    act_lines=act_lines, wgt_lines=wgt_lines, out_lines=out_lines, acc_bits=acc_bits,
                    rmax=rmax, n_act_ports=ports[0], n_wgt_ports=ports[1], n_out_ports=ports[2],
                    store_lines=accel.out_unit_lines, double_buffer=accel.double_buffer,
                    kbits=clog2(max_layer.max_kernel + 1), sbits=clog2(max_layer.max_stride + 1))
