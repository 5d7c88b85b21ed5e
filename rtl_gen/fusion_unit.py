"""FusionUnit: 16 BitBricks fused by shift-add into one run-time-precision multiply-accumulate lane group.

Per cycle it multiplies ``pf = (8/a)*(8/w)`` activation/weight pairs and returns the signed sum of the products
(docs/execution-model.md section 1; BitFusion, Sharma et al. ISCA 2018). Operands are packed by
:mod:`jaq.hw.packing` (lane ``l`` of ``b`` bits at bits ``[l*b, (l+1)*b)``): the activation vector uses ``pf*a``
bits of ``act`` and the weight vector ``pf*w`` bits of ``wgt``.

Structure (BitFusion's fixed brick grid): brick ``(X, Y)`` (``k = 4*X + Y``, ``X, Y`` in 0..3) is the brick of
activation digit ``X`` and weight digit ``Y`` of an 8x8 multiplier. With ``da = a/2``, ``dw = w/2`` digits per
lane, in configuration (a, w) it serves digit pair ``i = X % da``, ``j = Y % dw`` of lane
``l = (Y // dw) * (4 // da) + X // da`` (:func:`brick_map`): activation digit ``l*da + i = X + 4*(Y // dw)``
times weight digit ``l*dw + j``, each picked by a per-brick multiplexer over only the digits that brick serves
across the 9 configurations (<= 3 activation, <= 7 weight digits; :data:`ACT_DIGITS`, :data:`WGT_DIGITS`). A
digit is signed when it is the top digit of a signed operand (``i == da-1`` and ``act_signed``; ``j == dw-1``
for weights, always signed). Each brick outputs the unsigned Baugh-Wooley form ``q = p + corr`` (0..9) of its
product :func:`rtl_gen.bitbrick.brick_q`. The weight ``4^(i+j)`` is applied by a fixed shift-add tree
(:data:`TREE`): each level adds node pairs that differ in one bit of ``X`` or ``Y``, the upper one shifted left
by 2 (bit 0) or 4 (bit 1) when that bit is a digit bit in the configuration (X bit 0: ``a >= 4``, X bit 1:
``a == 8``; Y likewise with ``w``) and unshifted otherwise (lanes of lower precision are simply summed). Nodes are
unsigned and only as wide as their range (4, 6, 8, 12, 16 bits); the last adder adds ``-sum(corr * 4^(i+j))``
mod 2^17, a per-configuration constant, and the result is read as ``SUM_BITS = 17`` signed bits (|sum| <=
255*128 = 32640 < 2^15). Lanes ``>= lanes`` are masked by zeroing activation digits ``d >= lanes * da`` (digit
``d`` is in lane ``d // da``); a zero digit gives ``q = corr``, i.e. a zero product.

The precision decoder (:func:`build_decoder`, one per array) turns (a_mode, w_mode, act_signed) into the control
bus: per brick the digit-select codes and the two signedness flags, the four tree shift conditions and the
correction constant (:data:`CTL_FIELDS`); fields are split into bits, bits that never change are constants in the
core and bits with equal tables share one bus line (:data:`CTL_BITS` lines).

Precision codes (``a_mode`` / ``w_mode``): 0 -> 2 bits, 1 -> 4 bits, 2 -> 8 bits (``bits = 2 << mode``).
"""


from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from jaq.hw.packing import BITS_OF_MODE, MODE_OF_BITS
from rtl_gen.bitbrick import brick_q

#: Width of the fusion unit's signed sum.
SUM_BITS = 17
#: Precision code -> bits.
MODE_BITS, BITS_MODE = BITS_OF_MODE, MODE_OF_BITS  # the definitions live in jaq.hw.packing
#: The 9 (a, w) configurations, in a fixed order.
CONFIGS = tuple((a, w) for a in (2, 4, 8) for w in (2, 4, 8))
#: Shift-add tree levels, leaves first: (operand 'X' or 'Y', bit): the level adds node pairs that differ in that bit.
TREE = (("Y", 0), ("X", 0), ("Y", 1), ("X", 1))


def brick_map(a: int, w: int, k: int) -> tuple[int, int, int, int, bool, bool]:
    """For config (a, w) and brick ``k = 4*X + Y``: (lane, act digit index, wgt digit index, shift, act top digit,
    wgt top digit)."""
    X, Y = divmod(k, 4)
    da, dw = a // 2, w // 2
    i, j = X % da, Y % dw
    lane = (Y // dw) * (4 // da) + X // da
    return lane, lane * da + i, lane * dw + j, 2 * (i + j), i == da - 1, j == dw - 1


def _digit_sets():
    """Per brick: sorted activation digits and weight digits it serves over :data:`CONFIGS`."""
    acts = [sorted({brick_map(a, w, k)[1] for a, w in CONFIGS}) for k in range(16)]
    wgts = [sorted({brick_map(a, w, k)[2] for a, w in CONFIGS}) for k in range(16)]
    return acts, wgts


ACT_DIGITS, WGT_DIGITS = _digit_sets()


def _shift_cond(a: int, w: int, op: str, bit: int) -> int:
    """Whether tree level (op, bit) shifts in config (a, w): that bit of X (Y) is a digit bit of a (w)."""
    d = (a if op == "X" else w) // 2
    return int(d > (1 << bit))


def _brick_signs(a: int, w: int, s: int, k: int) -> tuple[int, int]:
    """(activation digit signed, weight digit signed) of brick ``k`` in config (a, w), act_signed ``s``."""
    _, _, _, _, atop, wtop = brick_map(a, w, k)
    return int(atop and bool(s)), int(wtop)


def _corr(sx: int, sy: int) -> int:
    """Baugh-Wooley correction of a brick: product = q - corr (:func:`rtl_gen.bitbrick.brick_q`)."""
    return 2 * sx + 2 * sy + 4 * (sx ^ sy)


def _fields():
    """The control fields: name -> table of unsigned values per (config, act_signed), in :data:`CONFIGS` order
    with act_signed 0 then 1."""
    tables = {}
    cs = [(a, w, s) for a, w in CONFIGS for s in (0, 1)]
    for k in range(16):
        tables[f"asel{k}"] = tuple(ACT_DIGITS[k].index(brick_map(a, w, k)[1]) for a, w, s in cs)
        tables[f"wsel{k}"] = tuple(WGT_DIGITS[k].index(brick_map(a, w, k)[2]) for a, w, s in cs)
        tables[f"xs{k}"] = tuple(_brick_signs(a, w, s, k)[0] for a, w, s in cs)
        tables[f"ys{k}"] = tuple(_brick_signs(a, w, s, k)[1] for a, w, s in cs)
    for op, bit in TREE:
        tables[f"sh{op}{bit}"] = tuple(_shift_cond(a, w, op, bit) for a, w, s in cs)
    # minus the sum of the bricks' corrections, mod 2^SUM_BITS
    tables["corr"] = tuple(-sum(_corr(*_brick_signs(a, w, s, k)) << brick_map(a, w, k)[3] for k in range(16))
                           % (1 << SUM_BITS) for a, w, s in cs)
    return tables


_TABLES = _fields()


def _layout():
    """name -> list of per-bit places, each (offset,) on the bus or ('const', bit); the bus width. Every field is
    split into bits; a bit that never changes is a constant, bits with equal tables share one bus line."""
    layout, seen, off = {}, {}, 0
    for name, table in _TABLES.items():
        places = []
        for b in range(max(1, max(table).bit_length())):
            bits = tuple((v >> b) & 1 for v in table)
            if len(set(bits)) == 1:
                places.append(("const", bits[0]))
                continue
            if bits not in seen:
                seen[bits] = off
                off += 1
            places.append((seen[bits],))
        layout[name] = places
    return layout, off


#: Control-bus fields: name -> per-bit places (bus offset, or ('const', bit)); the bus width.
CTL_FIELDS, CTL_BITS = _layout()


def build_decoder(m, a_mode, w_mode, act_signed, ctl):
    """Decode (a_mode, w_mode, act_signed) into the control bus ``ctl`` (:data:`CTL_BITS` bits).

    The control depends only on the layer's precision, so one decoder can serve every fusion unit of an array
    (BitFusion likewise configures all fusion units at once)."""
    cfg = Signal(4, name="fu_cfg")
    m.d.comb += cfg.eq(Cat(w_mode, a_mode))
    bits = {}
    for name, table in _TABLES.items():
        for b, pl in enumerate(CTL_FIELDS[name]):
            if pl[0] != "const":
                bits[pl[0]] = tuple((v >> b) & 1 for v in table)
    with m.Switch(cfg):
        for n, (a, w) in enumerate(CONFIGS):
            with m.Case(BITS_MODE[w] | (BITS_MODE[a] << 2)):
                for off, table in bits.items():
                    v0, v1 = table[2 * n], table[2 * n + 1]
                    m.d.comb += ctl[off].eq(v0 if v0 == v1 else (act_signed if v1 else ~act_signed))


def _field(ctl, name):
    return Cat(*(Const(pl[1], 1) if pl[0] == "const" else ctl[pl[0]] for pl in CTL_FIELDS[name]))


def _mux(cands, sel):
    """``cands[sel]`` for a binary code ``sel`` (len(cands) - 1 two-input multiplexers)."""
    if len(cands) == 1:
        return cands[0]
    top = (len(cands) - 1).bit_length() - 1
    lo, hi = cands[:1 << top], cands[1 << top:]
    return Mux(sel[top], _mux(hi, sel), _mux(lo, sel))


def tree_ranges():
    """Per tree level (leaves first): node (keyed by its lowest brick) -> {(a, w, act_signed): (min, max)} of
    its unsigned value. Used to size the nodes."""
    leaves = {}
    for k in range(16):
        leaves[k] = {}
        for a, w in CONFIGS:
            for s in (0, 1):
                sx, sy = _brick_signs(a, w, s, k)
                q = [x * y + _corr(sx, sy) for x in _digit_values(sx) for y in _digit_values(sy)]
                leaves[k][(a, w, s)] = (min(q), max(q))
    levels = [leaves]
    for op, bit in TREE:
        step = (1 << bit) * (4 if op == "X" else 1)
        cur, nxt = levels[-1], {}
        for k, rl in cur.items():
            if k & step:
                continue
            rr = cur[k + step]
            node = {}
            for (a, w, s), (llo, lhi) in rl.items():
                f = 1 << (2 << bit) if _shift_cond(a, w, op, bit) else 1
                rlo, rhi = rr[(a, w, s)]
                node[(a, w, s)] = (llo + rlo * f, lhi + rhi * f)
            nxt[k] = node
        levels.append(nxt)
    return levels


def _digit_values(signed_: int) -> range:
    return range(-2, 2) if signed_ else range(4)


def build_core(m, act, wgt, ctl, lanes, out):
    """Lane mask, the 16 BitBricks with their digit multiplexers, and the shift-add tree of one fusion unit,
    steered by the shared control bus ``ctl``."""
    sh = {(op, bit): _field(ctl, f"sh{op}{bit}") for op, bit in TREE}
    # lane mask: activation digit d is in lane d // da (da = 1, 2, 4), active iff d < lanes * da
    a4, a8 = sh[("X", 0)], sh[("X", 1)]    # a >= 4, a == 8
    digits = Signal(7, name="active_digits")
    actm = Signal(32, name="act_masked")
    m.d.comb += digits.eq(Mux(a8, lanes << 2, Mux(a4, lanes << 1, lanes)))
    for d in range(16):
        m.d.comb += actm[2 * d:2 * d + 2].eq(Mux(digits > d, act[2 * d:2 * d + 2], 0))
    ranges = tree_ranges()

    def width(level, k):
        return max(hi for _, hi in ranges[level][k].values()).bit_length()

    nodes = {}
    for k in range(16):
        x = Signal(2, name=f"bb{k}_x")
        y = Signal(2, name=f"bb{k}_y")
        q = Signal(width(0, k), name=f"bb{k}_q")
        m.d.comb += [
            x.eq(_mux([actm[2 * d:2 * d + 2] for d in ACT_DIGITS[k]], _field(ctl, f"asel{k}"))),
            y.eq(_mux([wgt[2 * d:2 * d + 2] for d in WGT_DIGITS[k]], _field(ctl, f"wsel{k}"))),
            q.eq(brick_q(x, y, _field(ctl, f"xs{k}"), _field(ctl, f"ys{k}"))),
        ]
        nodes[k] = q
    for lvl, (op, bit) in enumerate(TREE, start=1):
        step = (1 << bit) * (4 if op == "X" else 1)
        nxt = {}
        for k in nodes:
            if k & step:
                continue
            hi = nodes[k + step]
            t = Signal(width(lvl, k), name=f"t{lvl}_{k}")
            m.d.comb += t.eq(nodes[k] + Mux(sh[(op, bit)], hi << (2 << bit), hi))
            nxt[k] = t
        nodes = nxt
    total = Signal(SUM_BITS, name="total")
    m.d.comb += [total.eq(nodes[0] + _field(ctl, "corr")), out.eq(total.as_signed())]


class FusionCore(wiring.Component):
    """A fusion unit without its precision decoder: ``act``, ``wgt`` (32 bits), ``ctl`` (the shared control bus,
    :func:`build_decoder`), ``lanes`` (5 bits), ``out`` (signed SUM_BITS). The array instantiates one core per FU
    and one decoder for all of them."""

    act: In(32)
    wgt: In(32)
    ctl: In(CTL_BITS)
    lanes: In(5)
    out: Out(signed(SUM_BITS))

    def elaborate(self, platform):
        m = Module()
        build_core(m, self.act, self.wgt, self.ctl, self.lanes, self.out)
        return m


class FusionUnit(wiring.Component):
    """Combinational fusion unit (decoder + core).

    Ports: ``act`` (32 bits: pf activations of a bits), ``wgt`` (32 bits: pf weights of w bits), ``a_mode``,
    ``w_mode`` (2 bits each, see module doc), ``act_signed`` (1 bit), ``lanes`` (5 bits: active lanes 0..16, the
    channel extent of this vector; lanes at or above it contribute 0), ``out`` (signed SUM_BITS-bit sum).
    Brick ``k`` is a :class:`rtl_gen.bitbrick.BitBrick`'s equations in Baugh-Wooley form (:func:`brick_q`).
    """

    act: In(32)
    wgt: In(32)
    a_mode: In(2)
    w_mode: In(2)
    act_signed: In(1)
    lanes: In(5)
    out: Out(signed(SUM_BITS))

    def elaborate(self, platform):
        m = Module()
        ctl = Signal(CTL_BITS)
        build_decoder(m, self.a_mode, self.w_mode, self.act_signed, ctl)
        build_core(m, self.act, self.wgt, ctl, self.lanes, self.out)
        return m
