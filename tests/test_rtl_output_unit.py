# amaranth: UnusedElaboratable=no
"""OutputUnit (rtl_gen.output_unit) in Amaranth's simulator against the one definition of the arithmetic,
jaq.hw.requant.Requant.apply_one: every output width and signedness, ReLU, rounding ties on both signs,
saturation at both ends, the residual path, per-lane constants, pooling over 1/4/16 pixels, `en` stalls and
bubbles, thousands of random cases from Requant.from_real; the latency; constructor validation; Verilator lint.

Every test runs through one scoreboard: a driver coroutine feeds streams of outputs (each the P input beats of
one output vector), a monitor coroutine records every delivered output (`out_valid & en`) with its cycle and
checks that nothing moves while `en` is low, and the model (apply_one) gives the expected vectors in order.
(The first line silences Amaranth's warning for the units the constructor test refuses.)"""

import random
from dataclasses import dataclass

import pytest
from amaranth import Module, Value
from amaranth.hdl import Fragment
from amaranth.lib import wiring
from amaranth.back import verilog
from amaranth.sim import Simulator

from jaq.errors import JaqError
from jaq.hw.requant import OUT_BITS, SHIFT_MAX, Requant
from rtl_gen.output_unit import (MAX_LANES, OUTPUT_UNIT_LATENCY, OutputUnit, OutputUnitSignature,
                                 layer_constants)

I32_MIN, I32_MAX = -(1 << 31), (1 << 31) - 1
LAT = OUTPUT_UNIT_LATENCY


@dataclass(frozen=True)
class Item:
    """One output vector: the channel of each lane and its P input beats (``accs[p][lane]``, ``ress[p][lane]``)."""

    chans: tuple
    accs: tuple
    ress: tuple

    def expected(self, rq: Requant) -> list:
        return [rq.apply_one([px[lane] for px in self.accs], c, [px[lane] for px in self.ress])
                for lane, c in enumerate(self.chans)]


@dataclass(frozen=True)
class Stream:
    """Items sharing one layer's constants; ``pool`` overrides the pooling mode (P = 1 with ``pool`` high)."""

    rq: Requant
    items: tuple
    pool: bool | None = None


@dataclass
class Run:
    """What the scoreboard saw: delivered outputs ``(cycle, lanes)``, and the cycle each item's last beat was
    accepted in."""

    outputs: list
    accepted: list


def run_streams(lanes: int, streams, *, seed: int = 0, stall: float = 0.0, gap: float = 0.0) -> Run:
    """Drive ``streams`` through an ``OutputUnit(lanes)``; ``stall``: probability of ``en`` low in a cycle,
    ``gap``: of a bubble (``in_valid`` low). Inputs that must be ignored carry random values."""
    dut, rng, run = OutputUnit(lanes), random.Random(seed), Run([], [])

    async def driver(ctx):
        cycle = 0
        for s in streams:
            consts = layer_constants(s.rq) | ({} if s.pool is None else {"pool": int(s.pool)})
            for port, value in consts.items():
                ctx.set(getattr(dut, port), value)
            for item in s.items:
                for p in range(len(item.accs)):
                    while True:
                        en, bubble = rng.random() >= stall, rng.random() < gap
                        ctx.set(dut.en, en)
                        if en and not bubble:
                            _set_beat(ctx, dut, s.rq, item, p)
                        else:
                            _set_noise(ctx, dut, rng, lanes, valid=rng.random() < 0.5 and not en)
                        await ctx.tick()
                        cycle += 1
                        if en and not bubble:
                            break
                run.accepted.append(cycle - 1)
            ctx.set(dut.en, 1)
            ctx.set(dut.in_valid, 0)
            await ctx.tick().repeat(LAT + 1)            # drain: the last output is sampled
            cycle += LAT + 1

    async def monitor(ctx):
        cycle, prev = 0, None
        async for _, _, en, valid, out in ctx.tick().sample(dut.en, dut.out_valid, dut.out):
            now = (valid, list(out))
            if prev is not None and not prev[0]:
                assert now == prev[1], f"output moved during a stall in cycle {cycle}"
            if valid and en:
                run.outputs.append((cycle, now[1]))
            prev = (en, now)
            cycle += 1

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(driver)
    sim.add_testbench(monitor, background=True)
    sim.run()
    return run


def _set_beat(ctx, dut, rq, item, p):
    P = len(item.accs)
    ctx.set(dut.in_valid, 1)
    ctx.set(dut.first, p == 0)
    ctx.set(dut.last, p == P - 1)
    ctx.set(dut.acc, list(item.accs[p]))
    ctx.set(dut.res, list(item.ress[p]))
    ctx.set(dut.mult, [rq.mult[c] for c in item.chans])
    ctx.set(dut.bias, [rq.bias[c] for c in item.chans])


def _set_noise(ctx, dut, rng, lanes, valid):
    """Random data on every per-beat input (what a stalled or idle store path may present)."""
    ctx.set(dut.in_valid, valid)
    ctx.set(dut.first, rng.random() < 0.5)
    ctx.set(dut.last, rng.random() < 0.5)
    ctx.set(dut.acc, [rng.randint(I32_MIN, I32_MAX) for _ in range(lanes)])
    ctx.set(dut.res, [rng.randint(-256, 255) for _ in range(lanes)])
    ctx.set(dut.mult, [rng.randint(I32_MIN, I32_MAX) for _ in range(lanes)])
    ctx.set(dut.bias, [rng.randint(-(1 << 47), (1 << 47) - 1) for _ in range(lanes)])


def check(lanes, streams, **kw) -> Run:
    """Run the scoreboard and compare every delivered output, in order, with the model; with ``en`` always high
    each output must come exactly LAT cycles after its last beat was accepted."""
    run = run_streams(lanes, streams, **kw)
    want = [item.expected(s.rq) for s in streams for item in s.items]
    got = [out for _, out in run.outputs]
    assert len(got) == len(want), (len(got), len(want))
    for k, (g, w) in enumerate(zip(got, want)):
        assert g == w, f"output {k}: got {g}, want {w}"
    if not kw.get("stall"):
        assert [c for c, _ in run.outputs] == [c + LAT for c in run.accepted]
    return run


def single(chans, accs, ress=None):
    """An item of one pixel: ``accs[lane]`` (and ``ress[lane]``, else 0)."""
    ress = ress if ress is not None else [0] * len(accs)
    return Item(tuple(chans), (tuple(accs),), (tuple(ress),))


def _clamp32(v: int) -> int:
    return max(I32_MIN, min(I32_MAX, v))


def _formats():
    """Every (out_bits, out_signed, relu) the unit produces."""
    return [(b, s, r) for b in OUT_BITS for s in (False, True) for r in (False, True) if b != 32 or s]


# --------------------------------------------------------------------------------------------------------------
# directed cases


def test_widths_signedness_relu_and_saturation_at_both_ends():
    """Accumulators at and around lo / hi (and the int32 extremes) through multipliers 1, -1, 3, +-2^31 and a big
    bias, at shift 0 and 3, for every output format."""
    mult = (1, -1, 3, I32_MIN, I32_MAX, 7, -5, 1)
    bias = (0, 0, 0, 0, 0, 1 << 40, -(1 << 40), -3)
    streams = []
    for bits, signed, relu in _formats():
        for shift in (0, 3):
            rq = Requant(mult=mult, bias=bias, shift=shift, out_bits=bits, out_signed=signed, relu=relu)
            lo, hi = rq.lo, rq.hi
            vals = [lo - 1, lo, lo + 1, hi - 1, hi, hi + 1, 0, -1, 1, I32_MIN, I32_MAX]
            accs = [_clamp32(v << shift) for v in vals] + [I32_MIN, I32_MAX]
            items = [single(chans, [a] * 4) for a in accs for chans in ((0, 1, 2, 3), (4, 5, 6, 7))]
            streams.append(Stream(rq, tuple(items)))
    check(4, streams)
    # the cases reach both ends of every range and values strictly inside it (where it has any)
    for s in streams:
        outs = {v for item in s.items for v in item.expected(s.rq)}
        assert s.rq.lo in outs and s.rq.hi in outs
        assert any(s.rq.lo < v < s.rq.hi for v in outs) or s.rq.hi - s.rq.lo < 2


def _tie_streams():
    """Per shift: lanes at exact .5 points t = (2k+1) 2^(s-1) of u (both signs) and their neighbours t +- 1,
    made of acc*mult + bias with mult = +-1; and shift 62 with ties at +-2^61 from mult = 2^31 - 1."""
    streams = []
    for shift in (1, 2, 5, 17, 31, 40):
        mult, bias, cases = [], [], []
        for k in range(-3, 3):
            for d in (-1, 0, 1):
                t = (2 * k + 1) * (1 << (shift - 1)) + d
                for sign in (1, -1):
                    acc = _clamp32(sign * t)
                    mult.append(sign)
                    bias.append(t - sign * acc)
                    cases.append((len(mult) - 1, acc, k + 1 if d == 0 else None))
        rq = Requant(mult=tuple(mult), bias=tuple(bias), shift=shift, out_bits=32, out_signed=True)
        for c, acc, tie in cases:
            if tie is not None:      # the case really is a tie and rounds up: (2k+1)/2 -> k+1
                assert rq.apply_one(acc, c) == tie
        items = [single([c for c, _, _ in cases[i:i + 4]], [a for _, a, _ in cases[i:i + 4]])
                 for i in range(0, len(cases), 4)]
        streams.append(Stream(rq, tuple(items)))
    rq = Requant(mult=(I32_MAX, I32_MAX), bias=(1 << 30, -(1 << 30)), shift=SHIFT_MAX, out_bits=8, out_signed=True)
    assert rq.apply_one(1 << 30, 0) == 1 and rq.apply_one(-(1 << 30), 1) == 0   # +-2^61 / 2^62 = +-0.5
    items = [single((0, 1, 0, 1), (1 << 30, -(1 << 30), (1 << 30) - 1, 1 - (1 << 30)))]
    streams.append(Stream(rq, tuple(items)))
    return streams


def test_rounding_ties_on_both_signs():
    check(4, _tie_streams())


def test_residual_path():
    """Residual operands at the 9-bit extremes and as unsigned 8-bit activations, positive and negative residual
    multipliers, with and without ReLU."""
    rng = random.Random(3)
    streams = []
    for res_mult in (0.73, -1.9, 1.0 / 3):
        for relu in (False, True):
            rq = Requant.from_real([0.011, -0.02, 0.5, -0.003], [1.5, -2.25, 0.0, 7.0], res_mult, out_bits=8,
                                   out_signed=True, relu=relu)
            items = []
            for r in (-256, -255, -1, 0, 1, 127, 128, 255):
                items.append(single((0, 1, 2, 3), [rng.randint(-300, 300) for _ in range(4)], [r] * 4))
            for _ in range(16):
                items.append(single((0, 1, 2, 3), [rng.randint(-3000, 3000) for _ in range(4)],
                                    [rng.randint(0, 255) for _ in range(4)]))
            streams.append(Stream(rq, tuple(items)))
    assert all(s.rq.has_residual for s in streams)
    run = check(4, streams)
    assert len({tuple(o) for _, o in run.outputs}) > len(run.outputs) // 2     # the cases are not degenerate


def test_per_lane_constants_on_sixteen_lanes():
    """16 lanes, each its own channel (distinct multipliers and biases), lanes permuted between items."""
    rng = random.Random(4)
    mult = [(-1) ** c * (c + 1) * 0.01 for c in range(16)]
    bias = [c * 3.5 - 20 for c in range(16)]
    rq = Requant.from_real(mult, bias, out_bits=8, out_signed=True, relu=False)
    assert len(set(rq.mult)) == 16 and len(set(rq.bias)) == 16
    items = []
    for _ in range(24):
        chans = rng.sample(range(16), 16)
        items.append(single(chans, [rng.randint(-6000, 6000) for _ in range(16)]))
    check(16, [Stream(rq, tuple(items))])


def _pool_items(rng, lanes, P, channels):
    """10 pooled outputs of P pixels (accumulators alternately small and full-range, residuals 0..255) and two
    of all-extreme pixels (the largest pooled sums the constants allow; needs ``lanes <= channels``)."""
    items = []
    for n in range(10):
        lim = 20000 if n % 2 else 1 << 31
        accs = tuple(tuple(_clamp32(rng.randint(-lim, lim)) for _ in range(lanes)) for _ in range(P))
        ress = tuple(tuple(rng.randint(0, 255) for _ in range(lanes)) for _ in range(P))
        items.append(Item(tuple(rng.randrange(channels) for _ in range(lanes)), accs, ress))
    for extreme in (I32_MIN, I32_MAX):
        items.append(Item(tuple(range(lanes)), ((extreme,) * lanes,) * P, ((255,) * lanes,) * P))
    return items


@pytest.mark.parametrize("P", [1, 4, 16])
def test_pooling_with_first_and_last(P):
    """Global average pooling over P pixels (``pool`` high, ``first``/``last`` framing; P = 1 is ``first &
    last`` on every beat), ReLU per pixel before the sum, bubbles between the pixels of one output."""
    rng = random.Random(P)
    streams = []
    for relu in (False, True):
        for bits, signed in ((8, False), (4, True), (32, True)):
            rq = Requant.from_real([0.04, -0.013, 1.5, -0.7], [2.0, -1.25, -30.0, 5.5], 0.25, out_bits=bits,
                                   out_signed=signed, relu=relu, pool_pixels=P)
            streams.append(Stream(rq, tuple(_pool_items(rng, 4, P, 4)), pool=True))
    check(4, streams, gap=0.25, seed=P)
    if P > 1:    # ReLU before pooling matters: some pooled outputs differ from pooling without it
        s0, s1 = streams[0], streams[3]
        assert any(a.expected(s0.rq) != a.expected(s1.rq) for a in s0.items)


def test_en_stalls_in_the_middle_of_streams():
    """``en`` low in ~35% of the cycles (with noise on every input), bubbles, pooled and plain streams back to
    back: outputs identical and in order, and nothing moves while ``en`` is low."""
    rng = random.Random(5)
    streams = [_random_stream(rng, lanes=4, items=12, pool_pixels=P) for P in (1, 4, 1, 16, 1)]
    run = check(4, streams, stall=0.35, gap=0.2, seed=6)
    assert len(run.outputs) == sum(len(s.items) for s in streams)


# --------------------------------------------------------------------------------------------------------------
# random constants from real multipliers


def _random_requant(rng, channels: int, pool_pixels: int) -> Requant:
    bits = rng.choice(OUT_BITS)
    signed = bits == 32 or rng.random() < 0.5
    mult = [rng.choice((-1, 1)) * 10 ** rng.uniform(-6, 1) for _ in range(channels)]
    bias = [rng.uniform(-1, 1) * 10 ** rng.uniform(-1, 3) for _ in range(channels)]
    res = None if rng.random() < 0.4 else rng.uniform(-3, 3)
    return Requant.from_real(mult, bias, res, out_bits=bits, out_signed=signed, relu=rng.random() < 0.5,
                             pool_pixels=pool_pixels)


def _aimed_acc(rng, rq: Requant, c: int, res: int) -> int:
    """An accumulator whose output lands near or inside [lo, hi] (20% full-range, 10% int32 extremes)."""
    x = rng.random()
    if x < 0.2:
        return rng.randint(I32_MIN, I32_MAX)
    if x < 0.3:
        return rng.choice((I32_MIN, I32_MAX, 0, -1, 1))
    m, b, r = rq.real_multipliers()
    lo, hi = (rq.lo, rq.hi) if rq.out_bits < 32 else (-5000, 5000)
    target = rng.uniform(lo - 2, hi + 2) / rq.pool_pixels      # per pixel: m, b are already divided by P
    if m[c] == 0:
        return rng.randint(-1000, 1000)
    return _clamp32(round((target - b[c] - res * r) / m[c]) + rng.randint(-2, 2))


def _random_stream(rng, lanes: int, items: int, pool_pixels: int, channels: int = 8) -> Stream:
    rq = _random_requant(rng, channels, pool_pixels)
    out = []
    for _ in range(items):
        chans = tuple(rng.randrange(channels) for _ in range(lanes))
        ress = tuple(tuple(rng.randint(-256, 255) for _ in range(lanes)) for _ in range(pool_pixels))
        accs = tuple(tuple(_aimed_acc(rng, rq, c, r) for c, r in zip(chans, px)) for px in ress)
        out.append(Item(chans, accs, ress))
    return Stream(rq, tuple(out))


def test_random_constants_from_real_multipliers():
    """60 random layers (random real multipliers, biases, residual multipliers, formats, ReLU), 30 output
    vectors of 4 lanes each (7,200 lane results), P = 1 and some pooled layers, with bubbles."""
    rng = random.Random(7)
    streams = [_random_stream(rng, lanes=4, items=30, pool_pixels=rng.choice((1, 1, 1, 1, 4))) for _ in range(60)]
    run = check(4, streams, gap=0.1, seed=8)
    results = [v for _, o in run.outputs for v in o]
    assert len(results) == 60 * 30 * 4
    inside = sum(1 for s in streams for it in s.items for v in it.expected(s.rq) if s.rq.lo < v < s.rq.hi)
    assert inside > len(results) // 4          # most cases are not just saturated


def test_one_lane_random():
    rng = random.Random(9)
    check(1, [_random_stream(rng, lanes=1, items=40, pool_pixels=P) for P in (1, 4)])


# --------------------------------------------------------------------------------------------------------------
# latency, construction, interface, lint


def test_latency_of_a_single_input():
    """An input accepted in cycle t gives ``out_valid`` exactly in cycle t + latency, and nothing before."""
    dut = OutputUnit(2)
    rq = Requant(mult=(5, -7), bias=(3, 0), shift=1, out_bits=8, out_signed=True)
    seen = []

    async def bench(ctx):
        for port, value in layer_constants(rq).items():
            ctx.set(getattr(dut, port), value)
        ctx.set(dut.en, 1)
        await ctx.tick().repeat(2)                       # cycles 0, 1 idle; the input is accepted in cycle 2
        ctx.set(dut.in_valid, 1)
        ctx.set(dut.acc, [10, 10])
        ctx.set(dut.mult, list(rq.mult))
        ctx.set(dut.bias, list(rq.bias))
        for cycle in range(2, 2 + LAT + 3):
            seen.append((cycle, ctx.get(dut.out_valid), list(ctx.get(dut.out))))
            await ctx.tick()
            ctx.set(dut.in_valid, 0)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert [c for c, v, _ in seen if v] == [2 + LAT]
    assert [o for _, v, o in seen if v] == [[rq.apply_one(10, 0), rq.apply_one(10, 1)]]


def test_pooled_output_comes_latency_cycles_after_last():
    rng = random.Random(10)
    run = check(2, [Stream(_random_requant(rng, 4, 4), tuple(_pool_items(rng, 2, 4, 4)), pool=True)])
    assert len(run.outputs) == len(run.accepted) == 12


@pytest.mark.parametrize("bad", [0, -1, MAX_LANES + 1, 2.0, True, "4", None])
def test_constructor_rejects_bad_lane_counts(bad):
    with pytest.raises(JaqError, match="output_unit.lanes") as e:
        OutputUnit(bad)
    assert "\n" not in str(e.value)


def test_interface_widths_and_read_only_properties():
    for lanes in (1, 3, MAX_LANES):
        dut = OutputUnit(lanes)
        assert dut.lanes == lanes and dut.latency == OUTPUT_UNIT_LATENCY == 3
        assert dut.signature == OutputUnitSignature(lanes) != OutputUnitSignature(lanes % MAX_LANES + 1)
        widths = {name: len(Value.cast(getattr(dut, name))) for name in
                  ("acc", "res", "mult", "bias", "out", "shift", "res_mult", "lo", "hi", "en", "pool")}
        assert widths == {"acc": 32 * lanes, "res": 9 * lanes, "mult": 32 * lanes, "bias": 48 * lanes,
                          "out": 32 * lanes, "shift": 6, "res_mult": 32, "lo": 32, "hi": 32, "en": 1, "pool": 1}
        with pytest.raises(AttributeError):
            dut.lanes = 2
        with pytest.raises(AttributeError):
            dut.latency = 1
        Fragment.get(dut, None)                         # and it elaborates
    assert layer_constants(Requant(mult=(1,), bias=(0,), shift=4, res_mult=-3, out_bits=4, out_signed=True,
                                   relu=True, pool_pixels=4)) == \
        {"shift": 4, "res_mult": -3, "relu": 1, "lo": 0, "hi": 7, "pool": 1}


def test_signature_connects_to_a_flipped_host():
    """A host built from the flipped signature connects with ``wiring.connect`` and drives the unit."""
    rq = Requant(mult=(3, -2), bias=(4, -8), shift=2, res_mult=8, out_bits=8, out_signed=True)
    m, ou = Module(), OutputUnit(2)
    host = OutputUnitSignature(2).flip().create()
    m.submodules.ou = ou
    wiring.connect(m, host, ou)
    got = []

    async def bench(ctx):
        for port, value in layer_constants(rq).items():
            ctx.set(getattr(host, port), value)
        for port, value in (("en", 1), ("in_valid", 1), ("acc", [10, 10]), ("res", [1, 1]),
                            ("mult", list(rq.mult)), ("bias", list(rq.bias))):
            ctx.set(getattr(host, port), value)
        await ctx.tick()
        ctx.set(host.in_valid, 0)
        for _ in range(LAT):
            got.append((ctx.get(host.out_valid), list(ctx.get(host.out))))
            await ctx.tick()

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert got[-1] == (1, [rq.apply_one(10, 0, 1), rq.apply_one(10, 1, 1)]) == (1, [11, -5])
    assert [v for v, _ in got[:-1]] == [0] * (LAT - 1)


@pytest.mark.verilator
@pytest.mark.parametrize("lanes", [1, 4, 64])  # 64: 16 lines of a 128-bit bus
def test_verilator_lint(lanes, tmp_path):
    from test_rtl_lint import lint

    text = verilog.convert(OutputUnit(lanes), name="jaq_output_unit", emit_src=False)
    lint(text, tmp_path, top="jaq_output_unit")
    assert f"input [{32 * lanes - 1}:0] acc;" in text and f"output [{32 * lanes - 1}:0] out;" in text
    assert f"input [{48 * lanes - 1}:0] bias;" in text and f"input [{9 * lanes - 1}:0] res;" in text
