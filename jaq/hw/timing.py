"""Per-instruction cost functions of the native execution model (docs/execution-model.md, sections 1-5).

This module is the ONE place where the formulas live. The program walker (:func:`jaq.hw.schedule.walk`), the
vectorised estimator (:mod:`jaq.hw.model`), the scalar reference (:mod:`jaq.hw.batchtile`) and the RTL
generator's tests all import it. Every function works on Python ``int`` values (exact integer arithmetic) and
on torch tensors (float, broadcasting; integer rounding is *straight-through*: the value is exactly the rounded
one, the gradient is that of the unrounded expression), so the same code serves the golden walker and the
differentiable model.

Units: cycles, elements, beats (one ``W``-bit off-chip transfer), lines (one ``W``-bit buffer line), vectors
(one fusion-unit operand: ``pf`` activations or ``pf`` weights), words (one 32-bit accumulator).

Dataflow counters are written as *sums of separable terms*: ``value(c', m', h', w') = sum_t coef_t *
f_ic,t(c') * f_oc,t(m') * f_oh,t(h') * f_ow,t(w')``. A single tile evaluates the product; the closed form of
a whole layer sums each factor over that dimension's tiles (full tiles plus one edge tile) and multiplies the
sums, which is exact because the loop nest visits the full Cartesian grid of tiles (docs section 4).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import torch

from jaq.hw.records import DATAFLOWS

# ----------------------------------------------------------------------------------------------------------------
# Fixed micro-architectural constants (cycles). The RTL implements exactly these.
# ----------------------------------------------------------------------------------------------------------------
#: Cycles every instruction spends being issued (decode + dispatch), before its body.
ISSUE_CYCLES = 1
#: STORE_OUT: cycles of output-buffer read latency before the first beat leaves (writes are posted).
STORE_READ_LATENCY = 1
#: COMPUTE fill/drain per dataflow: buffer read, fusion-unit multiply, reduction, accumulate write.
PIPELINE_DEPTH = {"WS": 4, "OS": 4, "RS": 4}
#: Width in bits of an output / partial-sum element (32-bit accumulators).
OUT_BITS = 32
#: Bits of a fusion unit's product sum: a fusion unit is 16 2-bit BitBricks -> 64 bit-products per cycle.
FU_BITBRICK_BITS = 64
#: Cycles from an accumulator line entering the output unit to its result (products, sum, round/saturate).
OUTPUT_UNIT_LATENCY = 3
#: Cycles from the output unit's result to the packed beat on the write port (the beat register).
STORE_PACK_LATENCY = 1
#: 32-bit words per lane chunk of the scale tensor: multiplier, bias low word, bias high word (section 7.1).
SCALE_BEATS_PER_CHUNK = 3

Num = Any  # int | float | torch.Tensor


# ----------------------------------------------------------------------------------------------------------------
# int / tensor dispatching arithmetic
# ----------------------------------------------------------------------------------------------------------------
def is_tensor(*xs) -> bool:
    return any(isinstance(x, torch.Tensor) for x in xs)


def ste_ceil(x: torch.Tensor) -> torch.Tensor:
    """ceil(x) in value, identity in gradient."""
    if not x.requires_grad:
        return torch.ceil(x)
    return x + (torch.ceil(x) - x).detach()


def ste_floor(x: torch.Tensor) -> torch.Tensor:
    """floor(x) in value, identity in gradient."""
    if not x.requires_grad:
        return torch.floor(x)
    return x + (torch.floor(x) - x).detach()


def ceil_div(a: Num, b: Num) -> Num:
    """ceil(a / b): exact integer division for ints, straight-through ceil for tensors."""
    if is_tensor(a, b):
        return ste_ceil(a / b)
    return -(-a // b)


def floor_div(a: Num, b: Num) -> Num:
    """floor(a / b): exact integer division for ints, straight-through floor for tensors."""
    if is_tensor(a, b):
        return ste_floor(a / b)
    return a // b


def minimum(a: Num, b: Num) -> Num:
    if is_tensor(a, b):
        a_t, b_t = _as_tensors(a, b)
        return torch.minimum(a_t, b_t)
    return min(a, b)


def maximum(a: Num, b: Num) -> Num:
    if is_tensor(a, b):
        a_t, b_t = _as_tensors(a, b)
        return torch.maximum(a_t, b_t)
    return max(a, b)


def where(cond: Num, a: Num, b: Num) -> Num:
    """``a if cond else b`` elementwise."""
    if is_tensor(cond, a, b):
        ref = next(x for x in (a, b, cond) if isinstance(x, torch.Tensor) and x.is_floating_point()) \
            if any(isinstance(x, torch.Tensor) and x.is_floating_point() for x in (a, b, cond)) else None
        dt = ref.dtype if ref is not None else torch.float64
        dev = next(x for x in (a, b, cond) if isinstance(x, torch.Tensor)).device
        a_t = a if isinstance(a, torch.Tensor) else torch.tensor(a, dtype=dt, device=dev)
        b_t = b if isinstance(b, torch.Tensor) else torch.tensor(b, dtype=dt, device=dev)
        c_t = cond if isinstance(cond, torch.Tensor) else torch.tensor(bool(cond), device=dev)
        return torch.where(c_t, a_t, b_t)
    return a if cond else b


def _as_tensors(a: Num, b: Num):
    ref = a if isinstance(a, torch.Tensor) else b
    a_t = a if isinstance(a, torch.Tensor) else torch.tensor(a, dtype=ref.dtype, device=ref.device)
    b_t = b if isinstance(b, torch.Tensor) else torch.tensor(b, dtype=ref.dtype, device=ref.device)
    return a_t, b_t


# ----------------------------------------------------------------------------------------------------------------
# Section 1-2: packing and beats
# ----------------------------------------------------------------------------------------------------------------
def fusion_factor(act_bits: Num, wgt_bits: Num) -> Num:
    """pf = floor(8/a) * floor(8/w): MACs per fusion unit per cycle (BitFusion, Sharma et al. ISCA 2018)."""
    return floor_div(8, act_bits) * floor_div(8, wgt_bits)


def elems_per_beat(bus_bits: Num, elem_bits: Num) -> Num:
    """E_b = W / b elements of ``b`` bits per ``W``-bit beat (W is a multiple of 32, b in {2,4,8,32})."""
    return floor_div(bus_bits, elem_bits)


def act_vector_bits(act_bits: Num, wgt_bits: Num) -> Num:
    """Bits of one activation vector: pf * a (= 64/w for the supported bit widths)."""
    return fusion_factor(act_bits, wgt_bits) * act_bits


def wgt_vector_bits(act_bits: Num, wgt_bits: Num) -> Num:
    """Bits of one weight vector: pf * w (= 64/a)."""
    return fusion_factor(act_bits, wgt_bits) * wgt_bits


def in_extent(out_extent: Num, kernel: Num, stride: Num) -> Num:
    """Input rows (columns) an output tile of ``out_extent`` rows needs: (h'-1)S + K."""
    return (out_extent - 1) * stride + kernel


def act_tile_beats(c: Num, h: Num, w: Num, kernel: Num, stride: Num, e_act: Num) -> Num:
    """LOAD_ACT beats: ih' * iw' runs (one per input pixel) of c' elements each, ceil(c'/E_a) beats per run."""
    return in_extent(h, kernel, stride) * in_extent(w, kernel, stride) * ceil_div(c, e_act)


def wgt_tile_beats(c: Num, m: Num, kernel: Num, e_wgt: Num, dw_mapped: Num = False, pf: Num = 1) -> Num:
    """LOAD_WGT beats: m' * K^2 runs (one per (oc, kh, kw)) of c' elements each; under the depthwise mapping
    ``n_g`` runs (one per window group) of the m' channels' ``pf``-weight window vectors (section 8)."""
    return where(dw_mapped, dw_groups(kernel, pf) * ceil_div(m * pf, e_wgt),
                 m * kernel * kernel * ceil_div(c, e_wgt))


def out_tile_beats(m: Num, h: Num, w: Num, e_out: Num) -> Num:
    """LOAD_PSUM / partial STORE_OUT beats (and the OBUF lines of an out tile): h' * w' runs (one per output
    pixel) of m' elements each, ``e_out`` per beat (``W/32`` for 32-bit words, ``W/out_bits`` for final outputs)."""
    return h * w * ceil_div(m, e_out)


def scale_tile_beats(m: Num, e_o: Num) -> Num:
    """LOAD_SCALE beats: ``ceil(m'/E_o)`` chunks of ``E_o`` channels, three 32-bit words per channel each."""
    return SCALE_BEATS_PER_CHUNK * ceil_div(m, e_o)


# ----------------------------------------------------------------------------------------------------------------
# Section 5: instruction cycle costs (issue + body)
# ----------------------------------------------------------------------------------------------------------------
def set_layer_cycles() -> int:
    """SET_LAYER: issue only (body 0)."""
    return ISSUE_CYCLES


def end_cycles() -> int:
    """END: issue only (body 0); the controller raises ``done`` after it."""
    return ISSUE_CYCLES


def load_cycles(beats: Num, latency: Num) -> Num:
    """LOAD_ACT / LOAD_WGT / LOAD_PSUM: issue + L + beats (one request per cycle, last datum L cycles later)."""
    return ISSUE_CYCLES + latency + beats


def store_cycles(beats: Num) -> Num:
    """Partial STORE_OUT: issue + one cycle of buffer read latency + one beat per cycle (writes posted)."""
    return ISSUE_CYCLES + STORE_READ_LATENCY + beats


def final_store_cycles(steps: Num) -> Num:
    """Final STORE_OUT: issue + buffer read latency + output unit + beat register + one step of up to ``n_u``
    OBUF lines per cycle (``steps`` = :func:`final_store_steps`; the packed writes never outpace the reads)."""
    return ISSUE_CYCLES + STORE_READ_LATENCY + OUTPUT_UNIT_LATENCY + STORE_PACK_LATENCY + steps


def store_lines_per_step(unit_lines: Num, out_bits: Num, res_bits: Num = 0) -> Num:
    """``n_u``: OBUF lines a layer's final stores finish per cycle on a unit built for ``unit_lines``:
    ``min(N_u, 32/out_bits, 32/res_bits)``, the last term only with a residual (``res_bits`` > 0; section 7.4)."""
    n = minimum(unit_lines, floor_div(OUT_BITS, out_bits))
    if is_tensor(res_bits):
        safe = where(res_bits > 0, res_bits, 1.0)
        return where(res_bits > 0, minimum(n, floor_div(OUT_BITS, safe)), n)
    return min(n, OUT_BITS // res_bits) if res_bits else n


def final_store_steps(m: Num, h: Num, w: Num, e_o: Num, lines_per_step: Num) -> Num:
    """Steps of a final STORE_OUT: h' * w' pixel runs of ``ceil(m'/(n_u E_o))`` steps each (section 7.4)."""
    return h * w * ceil_div(m, e_o * lines_per_step)


def residual_wait_cycles(latency: Num) -> Num:
    """Extra cycles of a final STORE_OUT with a residual operand: its first residual beat arrives ``L`` cycles
    after its request and enters the FIFO one cycle later, then one line per cycle as before (the residual
    FIFO keeps :func:`residual_fifo_depth` beats in flight, so the stream never waits again; section 7.3)."""
    return latency + 1


def residual_fifo_depth(latency: int) -> int:
    """Beats of the residual FIFO: enough in flight to cover the latency whatever the lines per beat."""
    return latency + 4


def sync_cycles() -> int:
    """SYNC (double-buffered programs): issue only, once the engine and the DMA are idle (section 9)."""
    return ISSUE_CYCLES


def stage_cycles(compute_body: Num, dma_cycles: Num) -> Num:
    """One stage of a double-buffered program: COMPUTE's issue cycle, then its body (``steps + D``) beside the
    stage's DMA instructions (``dma_cycles``: their issue + body, one after another); the next COMPUTE waits for
    both (section 9)."""
    return ISSUE_CYCLES + maximum(compute_body, dma_cycles)


def pipeline_depth(dataflow: Any) -> Num:
    """Fill/drain cycles D of one COMPUTE. ``dataflow``: "WS"/"OS"/"RS", an index 0..2, or a tensor of indices."""
    if isinstance(dataflow, torch.Tensor):
        table = torch.tensor([float(PIPELINE_DEPTH[d]) for d in DATAFLOWS], dtype=torch.float64,
                             device=dataflow.device)
        return table[dataflow.long()]
    if isinstance(dataflow, int):
        dataflow = DATAFLOWS[dataflow]
    return PIPELINE_DEPTH[dataflow]


def compute_cycles(steps: Num, depth: Num) -> Num:
    """COMPUTE: issue + steps + D."""
    return ISSUE_CYCLES + steps + depth


# ----------------------------------------------------------------------------------------------------------------
# Section 5: per-dataflow compute steps and buffer accesses as separable terms
# ----------------------------------------------------------------------------------------------------------------
#: Counters every dataflow defines per COMPUTE (names used by walk() and the model).
COMPUTE_COUNTERS: tuple[str, ...] = ("steps", "act_vectors", "wgt_vectors", "out_words", "fu_active", "macs")

Factor = Callable[[Num], Num]


def _one(x: Num) -> Num:
    return 1


def _ident(x: Num) -> Num:
    return x


@dataclass(frozen=True)
class Term:
    """``coef * ic(c') * oc(m') * oh(h') * ow(w')``; a factor of ``None`` is the constant 1."""

    coef: Num
    ic: Factor | None = None
    oc: Factor | None = None
    oh: Factor | None = None
    ow: Factor | None = None

    def at(self, c: Num, m: Num, h: Num, w: Num) -> Num:
        v = self.coef
        for f, x in ((self.ic, c), (self.oc, m), (self.oh, h), (self.ow, w)):
            if f is not None:
                v = v * f(x)
        return v


@dataclass(frozen=True)
class ComputeParams:
    """What the per-dataflow formulas need besides the tile extents (ints or broadcastable tensors)."""

    kernel: Num
    stride: Num
    pe_x: Num  # X columns
    pe_y: Num  # rows Y
    pf: Num
    act_bits: Num = 8  # a: the depthwise mapping's word reads depend on it (section 8)


def _cv(pf: Num) -> Factor:
    return lambda c: ceil_div(c, pf)


def ws_terms(p: ComputeParams) -> dict[str, list[Term]]:
    """Weight stationary: rows <- channel vectors, columns <- output channels (docs section 5)."""
    k2 = p.kernel * p.kernel
    cv = _cv(p.pf)
    mx = lambda m: ceil_div(m, p.pe_x)  # noqa: E731
    cvy = lambda c: ceil_div(ceil_div(c, p.pf), p.pe_y)  # noqa: E731
    return {
        # K^2 * ceil(m'/X) * (cv + ceil(cv/Y) * h' * w')
        "steps": [Term(k2, cv, mx), Term(k2, cvy, mx, _ident, _ident)],
        "act_vectors": [Term(k2, cv, mx, _ident, _ident)],
        "wgt_vectors": [Term(k2, cv, _ident)],
        "out_words": [Term(k2, cvy, _ident, _ident, _ident)],
        "fu_active": [Term(k2, cv, _ident, _ident, _ident)],
        "macs": [Term(k2, _ident, _ident, _ident, _ident)],
    }


def os_terms(p: ComputeParams) -> dict[str, list[Term]]:
    """Output stationary: rows <- output channels, columns <- output columns (docs section 5)."""
    k2 = p.kernel * p.kernel
    cv = _cv(p.pf)
    my = lambda m: ceil_div(m, p.pe_y)  # noqa: E731
    wx = lambda w: ceil_div(w, p.pe_x)  # noqa: E731
    return {
        # h' * ceil(w'/X) * (ceil(m'/Y) * K^2 * cv + m')
        "steps": [Term(k2, cv, my, _ident, wx), Term(1, None, _ident, _ident, wx)],
        "act_vectors": [Term(k2, cv, my, _ident, _ident)],
        "wgt_vectors": [Term(k2, cv, _ident, _ident, wx)],
        "out_words": [Term(1, None, _ident, _ident, _ident)],
        "fu_active": [Term(k2, cv, _ident, _ident, _ident)],
        "macs": [Term(k2, _ident, _ident, _ident, _ident)],
    }


def rs_geometry(kernel: Num, stride: Num, pe_y: Num) -> tuple[Num, Num, Num]:
    """Row stationary: (P passes over kernel rows, q output-channel replicas, kernel rows of the last pass)."""
    passes = ceil_div(kernel, pe_y)
    q = maximum(1, floor_div(pe_y, kernel))
    last_rows = kernel - (passes - 1) * pe_y
    return passes, q, last_rows


def rs_input_rows(h: Num, rows_k: Num, stride: Num, pe_x: Num) -> Num:
    """Distinct input rows read per step, summed over the ceil(h'/X) blocks of output rows of a tile of h' rows,
    for a pass of ``rows_k`` kernel rows: a block of x output rows touches (x-1)S + rows_k input rows when
    S <= rows_k (overlapping windows), else rows_k * x."""
    nb = ceil_div(h, pe_x)
    return where(stride <= rows_k, stride * h + nb * (rows_k - stride), rows_k * h)


def rs_terms(p: ComputeParams) -> dict[str, list[Term]]:
    """Row stationary (Eyeriss-like): rows <- (kernel row, oc replica), columns <- output rows (docs section 5)."""
    k2 = p.kernel * p.kernel
    passes, q, last_rows = rs_geometry(p.kernel, p.stride, p.pe_y)
    full_rows = minimum(p.kernel, p.pe_y)
    cv = _cv(p.pf)
    mq = lambda m: ceil_div(m, q)  # noqa: E731
    hx = lambda h: ceil_div(h, p.pe_x)  # noqa: E731

    def f_in(h):
        return (passes - 1) * rs_input_rows(h, full_rows, p.stride, p.pe_x) + \
            rs_input_rows(h, last_rows, p.stride, p.pe_x)

    return {
        # P * ceil(m'/q) * ceil(h'/X) * w' * K * cv
        "steps": [Term(passes * p.kernel, cv, mq, hx, _ident)],
        "act_vectors": [Term(p.kernel, cv, mq, f_in, _ident)],
        "wgt_vectors": [Term(k2, cv, _ident, hx, _ident)],
        "out_words": [Term(passes, None, _ident, _ident, _ident)],
        "fu_active": [Term(k2, cv, _ident, _ident, _ident)],
        "macs": [Term(k2, _ident, _ident, _ident, _ident)],
    }


def _gcd32(n: Num) -> Num:
    """gcd(32, n) for a positive integer n (int or integer-valued tensor, no gradient)."""
    if is_tensor(n):
        return torch.gcd(n.detach().round().long(), torch.tensor(32, device=n.device)).to(n.dtype)
    return math.gcd(32, int(n))


def dw_row_words(m: Num, pe_x: Num, act_bits: Num) -> Num:
    """Depthwise mapping: 32-bit words one row reads per stream step, summed over the ``ceil(m'/X)`` channel
    blocks of a tile of m' channels. Block b covers channels [bX, bX + cols) at ``a`` bits, i.e.
    ``ceil(((bXa mod 32) + cols*a)/32)`` words; the sum telescopes to
    ``ceil(m'a/32) - 1 + nb - floor((nb-1)/per)`` with ``nb = ceil(m'/X)``, ``per = 32/gcd(32, X*a)`` (section 8)."""
    nb = ceil_div(m, pe_x)
    per = 32 / _gcd32(pe_x * act_bits) if is_tensor(pe_x, act_bits) else 32 // _gcd32(pe_x * act_bits)
    return ceil_div(m * act_bits, 32) - 1 + nb - floor_div(nb - 1, per)


def dw_window_words(pe_x: int, act_bits: int) -> int:
    """32-bit words that X consecutive ``act_bits``-bit channels can span from the largest offset into a word
    (``32 - a`` bits): one lane's window under the depthwise mapping (section 8)."""
    return -(-(32 - act_bits + act_bits * pe_x) // 32)


def dw_row_ports(pe_x: int) -> int:
    """Act read ports per array row of the depthwise mapping: its lanes' windows in the widest case over the
    activation precisions, ``max over a of (32/a) * dw_window_words(X, a)`` (at most 32/a lanes at a bits)."""
    return max((32 // a) * dw_window_words(pe_x, a) for a in (2, 4, 8))


def dw_groups(kernel: Num, pf: Num) -> Num:
    """Window groups per channel of the depthwise mapping: ``n_g = ceil(K^2/pf)`` (section 8)."""
    return ceil_div(kernel * kernel, pf)


def dw_geometry(kernel: Num, pf: Num, pe_y: Num) -> tuple[Num, Num, Num]:
    """Depthwise mapping: (``n_g`` window groups, ``P = ceil(n_g/Y)`` passes, ``q`` channel replicas:
    ``floor(Y/n_g)`` when the groups fit the rows, else 1) (section 8)."""
    ng = dw_groups(kernel, pf)
    return ng, ceil_div(ng, pe_y), maximum(1, floor_div(pe_y, ng))


def ws_dw_terms(p: ComputeParams) -> dict[str, list[Term]]:
    """Depthwise mapping on a WS array: rows <- (channel replica, window group), columns <- channels, lanes
    <- kernel positions (docs section 8). ``steps = n_g*ceil(m'/X) + P*ceil(m'/(qX))*h'*w'``; c' is 1, unused."""
    k2 = p.kernel * p.kernel
    ng, passes, q = dw_geometry(p.kernel, p.pf, p.pe_y)
    mx = lambda m: ceil_div(m, p.pe_x)  # noqa: E731
    mqx = lambda m: ceil_div(m, q * p.pe_x)  # noqa: E731
    span = lambda m: dw_row_words(m, p.pe_x, p.act_bits)  # noqa: E731
    return {
        "steps": [Term(ng, None, mx), Term(passes, None, mqx, _ident, _ident)],
        "act_vectors": [Term(k2, None, span, _ident, _ident)],   # 32-bit word reads
        "wgt_vectors": [Term(ng, None, _ident)],                 # 32-bit word reads (one vector each)
        "out_words": [Term(passes, None, _ident, _ident, _ident)],
        "fu_active": [Term(ng, None, _ident, _ident, _ident)],
        "macs": [Term(k2, None, _ident, _ident, _ident)],
    }


DATAFLOW_TERMS = {"WS": ws_terms, "OS": os_terms, "RS": rs_terms}
#: Dataflows with a depthwise mapping (section 8); the others run a depthwise layer one channel per tile.
DW_MAPPED = ("WS",)


def uses_dw_mapping(dataflow: str | int, depthwise: bool) -> bool:
    """Whether a (depthwise) layer's COMPUTE follows :func:`ws_dw_terms` on this dataflow."""
    if isinstance(dataflow, int):
        dataflow = DATAFLOWS[dataflow]
    return bool(depthwise) and dataflow in DW_MAPPED


def compute_terms(dataflow: str | int, p: ComputeParams, depthwise: bool = False) -> dict[str, list[Term]]:
    """The separable terms of every counter in :data:`COMPUTE_COUNTERS` for one dataflow (``depthwise``: the
    layer is depthwise, section 8)."""
    if isinstance(dataflow, int):
        dataflow = DATAFLOWS[dataflow]
    if uses_dw_mapping(dataflow, depthwise):
        return ws_dw_terms(p)
    return DATAFLOW_TERMS[dataflow](p)


def read_bits(act_bits: Num, wgt_bits: Num, dw_mapped: Num = False) -> tuple[Num, Num]:
    """Bits of one array read of the act and of the wgt buffer: a vector (section 1), or a 32-bit word under the
    depthwise mapping (section 8)."""
    return where(dw_mapped, 32, act_vector_bits(act_bits, wgt_bits)), \
        where(dw_mapped, 32, wgt_vector_bits(act_bits, wgt_bits))


def compute_counts(dataflow: str | int, p: ComputeParams, c: Num, m: Num, h: Num, w: Num) -> dict[str, Num]:
    """Counters of ONE COMPUTE instruction with tile extents (c', m', h', w'). ``out_words`` counts the 32-bit
    OBUF words read and also the words written (read-modify-write; with ``acc`` clear the read value is
    replaced by zero but the read still happens)."""
    return {k: sum_terms(ts, c, m, h, w) for k, ts in compute_terms(dataflow, p).items()}


def sum_terms(terms: list[Term], c: Num, m: Num, h: Num, w: Num) -> Num:
    total = 0
    for t in terms:
        total = total + t.at(c, m, h, w)
    return total


# ----------------------------------------------------------------------------------------------------------------
# Section 3: legality
# ----------------------------------------------------------------------------------------------------------------
def buffer_lines(capacity_kb: Num, bus_bits: Num) -> Num:
    """Lines of ``W`` bits in a buffer of ``capacity_kb`` KB (1 KB = 1024 B): capacity*8192/W, floored."""
    return floor_div(capacity_kb * 8192, bus_bits)


def usable_lines(lines: Num, double_buffer: Num) -> Num:
    """Lines one tile may use: the whole buffer, or one half of a double buffer (sections 3 and 9)."""
    return where(double_buffer, floor_div(lines, 2), lines)


def footprints(t_ic: Num, t_oc: Num, t_oh: Num, t_ow: Num, kernel: Num, stride: Num,
               e_act: Num, e_wgt: Num, e_out: Num, depthwise: Num = False, dw_mapped: Num = False,
               pf: Num = 1) -> tuple[Num, Num, Num]:
    """Buffer lines the full tiles need: (act, wgt, out) (docs sections 3 and 8: a depthwise layer's act runs
    hold its t_oc channels; under the depthwise mapping its weights are window vectors)."""
    act = act_tile_beats(where(depthwise, t_oc, t_ic), t_oh, t_ow, kernel, stride, e_act)
    wgt = wgt_tile_beats(t_ic, t_oc, kernel, e_wgt, dw_mapped, pf)
    out = out_tile_beats(t_oc, t_oh, t_ow, e_out)
    return act, wgt, out
