"""OutputUnit: the requantization pipeline between the output buffer and the DMA store (32-bit accumulators ->
the consumer's 2/4/8-bit integers or 32-bit logits).

It implements exactly :meth:`jaq.hw.requant.Requant.apply_one`, the one definition of the arithmetic: per lane

    v   = acc * mult + res * res_mult + bias        # exact, 64-bit signed
    u   = max(v, 0) if relu else v
    U   = u, or with ``pool`` the sum of u over the pixels first..last of one output
    out = min(max((U + 2^(shift-1)) >> shift, lo), hi)      # >> : floor; no 2^(shift-1) when shift = 0

``lanes`` accumulators per cycle (one W-bit beat of 32-bit words, ``lanes = W/32``), each with its own channel's
``mult`` and ``bias``; the layer constants are shared. The 64-bit datapath is exact for every constant set
:class:`~jaq.hw.requant.Requant` accepts (its datapath bound keeps the products, every partial and pooled sum and
the rounding term below 2^63); ``res`` is a 9-bit signed operand, so an unsigned 8-bit activation fits.

Pipeline (:data:`OUTPUT_UNIT_LATENCY` = 3 register stages, all advancing together when ``en`` is high):

1. products: ``acc*mult`` (64 bits), ``res*res_mult`` (41 bits), ``bias`` registered;
2. sum: ``v``, ReLU, and the pooling sum (restarted by ``first``); the stage is valid when the input was, and,
   with ``pool``, only for the ``last`` pixel;
3. round and saturate into ``out``.
"""

from __future__ import annotations

from amaranth import Const, Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from jaq.errors import JaqError
from jaq.hw.requant import BIAS_BITS, MULT_BITS, Requant
# Cycles from an accepted input (``in_valid & en``) to its output's ``out_valid``, with ``en`` held high: the
# execution model's constant (the cost model counts it).
from jaq.hw.timing import OUTPUT_UNIT_LATENCY

#: Largest lane count: 16 lines per cycle (``Accelerator.out_unit_lines``) of a 4096-bit bus of 32-bit words.
MAX_LANES = 2048
#: Signed bits of an accumulator, a residual operand, an output; unsigned bits of the shift.
ACC_BITS, RES_BITS, OUT_BITS, SHIFT_BITS = 32, 9, 32, 6
#: Signed bits of the internal sum (products, pooled sum, rounding).
DATAPATH_BITS = 64


def check_lanes(lanes: object) -> int:
    """``lanes`` as an int in 1..:data:`MAX_LANES`, else a one-line :class:`JaqError`."""
    if isinstance(lanes, bool) or not isinstance(lanes, int) or not 1 <= lanes <= MAX_LANES:
        raise JaqError(f"{lanes!r} lanes out of range 1..{MAX_LANES} (W/32 for a 32..4096-bit bus)",
                       "output_unit.lanes")
    return lanes


def _lanes_of(bits: int, lanes: int) -> data.ArrayLayout:
    """``lanes`` signed ``bits``-bit fields, lane ``i`` at bits ``[i*bits, (i+1)*bits)``."""
    return data.ArrayLayout(signed(bits), lanes)


class OutputUnitSignature(wiring.Signature):
    """The output unit's ports for ``lanes`` lanes (see :class:`OutputUnit`); equal for equal lane counts."""

    def __init__(self, lanes: int):
        self._lanes = check_lanes(lanes)
        super().__init__({
            "en": In(1), "in_valid": In(1), "first": In(1), "last": In(1),
            "acc": In(_lanes_of(ACC_BITS, lanes)), "res": In(_lanes_of(RES_BITS, lanes)),
            "mult": In(_lanes_of(MULT_BITS, lanes)), "bias": In(_lanes_of(BIAS_BITS, lanes)),
            "shift": In(SHIFT_BITS), "res_mult": In(signed(MULT_BITS)), "relu": In(1),
            "lo": In(signed(OUT_BITS)), "hi": In(signed(OUT_BITS)), "pool": In(1),
            "out_valid": Out(1), "out": Out(_lanes_of(OUT_BITS, lanes)),
        })

    @property
    def lanes(self) -> int:
        return self._lanes

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.lanes == self.lanes

    def __hash__(self) -> int:
        return hash((type(self), self._lanes))

    def __repr__(self) -> str:
        return f"OutputUnitSignature({self._lanes})"


def layer_constants(rq: Requant) -> dict[str, int]:
    """Values of the layer-constant ports (``shift``, ``res_mult``, ``relu``, ``lo``, ``hi``, ``pool``) for
    ``rq``; ``pool`` is set when ``rq.pool_pixels > 1``. The per-lane ``mult``/``bias`` are ``rq.mult[c]`` and
    ``rq.bias[c]`` of the lane's channel ``c``."""
    return {"shift": rq.shift, "res_mult": rq.res_mult, "relu": int(rq.relu), "lo": rq.lo, "hi": rq.hi,
            "pool": int(rq.pool_pixels > 1)}


class OutputUnit(wiring.Component):
    """Requantization of ``lanes`` 32-bit accumulators per cycle (module docstring; :mod:`jaq.hw.requant`).

    Ports (lane ``i`` of a vector port at bits ``[i*b, (i+1)*b)``, every lane signed):

    * ``en`` (1): the pipeline advances when high and holds every register when low (store backpressure); an
      input is accepted in a cycle with ``in_valid & en``; an output is delivered in a cycle with
      ``out_valid & en`` (with ``en`` low ``out_valid`` and ``out`` hold);
    * ``in_valid`` (1), ``acc`` (32 x lanes), ``res`` (9 x lanes: residual operand, 0 without a residual),
      ``mult`` (32 x lanes) and ``bias`` (48 x lanes): the lane's channel's multiplier and bias;
    * ``first``, ``last`` (1 each, read with ``pool``): the input is the first / last pixel of a pooled output;
      the lane sums restart at ``first``, and ``last`` sends them on to rounding (one output per P inputs;
      ``first & last`` for P = 1). Without ``pool`` every accepted input yields one output;
    * layer constants, held stable from a stream's first input until its last output: ``shift`` (6, 0..62),
      ``res_mult`` (signed 32), ``relu`` (1), ``lo``, ``hi`` (signed 32: the saturation range), ``pool`` (1);
      :func:`layer_constants` gives them for a :class:`~jaq.hw.requant.Requant`;
    * ``out_valid`` (1), ``out`` (32 x lanes): the saturated results, :data:`OUTPUT_UNIT_LATENCY` cycles after
      the input (the ``last`` pixel's, when pooling) was accepted, with ``en`` held high.
    """

    def __init__(self, lanes: int):
        super().__init__(OutputUnitSignature(lanes))

    @property
    def lanes(self) -> int:
        return self.signature.lanes

    @property
    def latency(self) -> int:
        """Cycles from an accepted input to its ``out_valid`` (``en`` high): :data:`OUTPUT_UNIT_LATENCY`."""
        return OUTPUT_UNIT_LATENCY

    def elaborate(self, platform):
        m = Module()
        v1, v2 = Signal(name="s1_valid"), Signal(name="s2_valid")
        first1, last1 = Signal(name="s1_first"), Signal(name="s1_last")
        rnd = _round_term(m, self.shift)
        with m.If(self.en):
            m.d.sync += [v1.eq(self.in_valid), first1.eq(self.first), last1.eq(self.last),
                         v2.eq(v1 & (~self.pool | last1)), self.out_valid.eq(v2)]
        for i in range(self.lanes):
            prod, rprod, bias = _products(m, self.en, i, self.acc[i], self.mult[i], self.res[i], self.res_mult,
                                          self.bias[i])
            total = _accumulate(m, self.en & v1, i, prod + rprod + bias, self.relu, self.pool & ~first1)
            _finish(m, self.en, i, total, rnd, self.shift, self.lo, self.hi, self.out[i])
        return m


def _round_term(m: Module, shift) -> Signal:
    """``2^(shift-1)``, or 0 when ``shift`` is 0 (``(1 << shift) >> 1``)."""
    rnd = Signal(DATAPATH_BITS - 1, name="round_term")
    m.d.comb += rnd.eq((Const(1, DATAPATH_BITS) << shift)[1:DATAPATH_BITS])
    return rnd


def _products(m: Module, en, i: int, acc, mult, res, res_mult, bias) -> tuple[Signal, Signal, Signal]:
    """Stage 1 of lane ``i``: registered ``acc*mult``, ``res*res_mult`` and ``bias``."""
    prod = Signal(signed(ACC_BITS + MULT_BITS), name=f"l{i}_prod", reset_less=True)
    rprod = Signal(signed(RES_BITS + MULT_BITS), name=f"l{i}_res_prod", reset_less=True)
    b = Signal(signed(BIAS_BITS), name=f"l{i}_bias", reset_less=True)
    with m.If(en):
        m.d.sync += [prod.eq(acc * mult), rprod.eq(res * res_mult), b.eq(bias)]
    return prod, rprod, b


def _accumulate(m: Module, take, i: int, v, relu, keep) -> Signal:
    """Stage 2 of lane ``i``: ``u = max(v, 0)`` with ``relu``; on ``take`` the register becomes ``u``, or its
    own value + ``u`` when ``keep`` (a pooled pixel after the first)."""
    vs = Signal(signed(DATAPATH_BITS), name=f"l{i}_v")
    u = Signal(signed(DATAPATH_BITS), name=f"l{i}_u")
    total = Signal(signed(DATAPATH_BITS), name=f"l{i}_sum", reset_less=True)
    m.d.comb += [vs.eq(v), u.eq(Mux(relu & vs[-1], 0, vs))]
    with m.If(take):
        m.d.sync += total.eq(Mux(keep, total, 0) + u)
    return total


def _finish(m: Module, en, i: int, total, rnd, shift, lo, hi, out) -> None:
    """Stage 3 of lane ``i``: ``out = min(max((total + rnd) >> shift, lo), hi)`` (arithmetic shift: floor)."""
    q = Signal(signed(DATAPATH_BITS + 1), name=f"l{i}_quot")
    ql = Signal(signed(DATAPATH_BITS + 1), name=f"l{i}_quot_lo")
    m.d.comb += [q.eq((total + rnd) >> shift), ql.eq(Mux(q < lo, lo, q))]
    with m.If(en):
        m.d.sync += out.eq(Mux(ql > hi, hi, ql))
