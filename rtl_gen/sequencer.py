"""COMPUTE engine: the step sequencer (stage 1: buffer addresses) + the PE array + the OBUF write-back.

A COMPUTE whose instruction was issued in cycle ``c0`` (``start`` high) runs its body in cycles
``c0+1 .. c0+steps+D`` (``D = 4``, :func:`jaq.hw.timing.pipeline_depth`): one step is issued per cycle for
``steps`` cycles, then the pipeline drains for ``D`` cycles; ``last`` is high in the body's last cycle. The step
order and the per-step accesses are those of docs/execution-model.md section 5 (see :mod:`rtl_gen.pe_array`
for the pipeline stages). Every read of an inactive row, column or port is disabled, so the buffers' access
counters equal the contract's formulas.

Address arithmetic (32-bit words, tile-local, fields of the COMPUTE instruction, see :mod:`rtl_gen.isa`):
activation vector ``v`` of input pixel ``(y, x)``: ``y*arow + x*pa + (v >> la)``, sub-word ``v & (2^la - 1)``
with ``la = w_mode`` (``w/2`` vectors per word); weight vector ``v`` of output channel ``mm`` at ``(kh, kw)``:
``mm*wm + (kh*K + kw)*pw + (v >> lw)`` with ``lw = a_mode``; output word of pixel ``(oh, ow)``, channel ``mm``:
``(oh*w + ow)*po + mm``.

Address logic (sized for 64x64 arrays): every port address is the same number modulo ``2^abits`` as the formula
above, computed from a shared per-step base (the few run-time products, e.g. ``mb*wm``, happen once per engine)
plus a per-port offset that is a multiple of a shared stride (``wm``, ``S*pa``, ``w*po``, ...), taken from a table
``[0, s, 2s, ...]`` built with one adder per entry (:func:`_series`) or selected from one by the run-time ``R`` /
``seff``. The OBUF write-back carries one base, one stride and the shared enable conditions through S1..S4 and
forms the per-port read (S3) and write (S4) addresses and enables there, ``out_abits`` wide. (Only difference
from per-port address registers: in the 3 cycles after reset, while every OBUF port is disabled, a port's address
is its offset from the reset base 0 rather than 0.)
"""

from types import SimpleNamespace

from amaranth import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from rtl_gen.buffers import CNT_BITS, select_vector, window_lane
from jaq.hw.timing import dw_window_words, pipeline_depth
from rtl_gen.params import EXTENT_BITS, HWParams
from rtl_gen.pe_array import PEArray


def _min(a, b):
    return Mux(a < b, a, b)


class _Loop:
    """A loop counter ``for v in range(0, limit, step)`` (``last`` when ``v + step >= limit``)."""

    def __init__(self, name, step, limit, width=EXTENT_BITS + 1):
        self.v = Signal(width, name=name)
        self.step, self.limit = step, limit
        self.last = self.v + self.step >= self.limit


def _advance(m, loops, domain="sync"):
    """Advance a loop nest (outermost first) by one iteration; returns the 'all last' expression."""
    carry = Const(1, 1)
    for lp in reversed(loops):
        with m.If(carry):
            m.d[domain] += lp.v.eq(Mux(lp.last, 0, lp.v + lp.step))
        carry = carry & lp.last
    return carry


def _cut(v, width):
    """The low ``width`` bits of ``v`` (``v`` itself if not wider: a short signed value keeps its sign)."""
    return v[:width] if len(v) > width else v


def _ring(m, value, width, name):
    """``value`` modulo ``2^width`` as a signal. Sums, differences and products modulo ``2^width`` depend only on
    the low ``width`` bits of their operands, so an address may be formed from truncated parts."""
    s = Signal(width, name=name)
    m.d.comb += s.eq(value)
    return s


def _mul(m, a, b, width, name):
    """``a*b`` modulo ``2^width`` (a run-time multiplier of ``width``-bit operands)."""
    return _ring(m, _cut(a, width) * _cut(b, width), width, name)


def _series(m, base, stride, n, width, name):
    """``[base + i*stride mod 2^width for i in range(n)]``: entry ``i`` = entry ``i & (i-1)`` + ``stride``
    shifted by the index of ``i``'s lowest set bit (one adder per entry, at most log2(n) adders deep)."""
    out = [base]
    for i in range(1, n):
        low = i & -i
        s = Signal(width, name=f"{name}{i}")
        m.d.comb += s.eq(out[i - low] + (stride << (low.bit_length() - 1)))
        out.append(s)
    return out


def _delay(m, value, n, name, shape=None):
    """``value`` delayed by ``n`` cycles (list of n registers; element k is delay k+1)."""
    out = []
    prev = value
    for k in range(n):
        r = Signal(shape if shape is not None else value.shape(), name=f"{name}_d{k + 1}")
        m.d.sync += r.eq(prev)
        out.append(r)
        prev = r
    return out


class _DwPorts:
    """What :meth:`ComputeEngine._dw_stream` returns: ``rows[i][k]`` = (address, enable) of row i's port k,
    ``lanes[i]`` its active lanes, ``off[i]`` the bit offset of its window's first channel."""

    def __init__(self):
        self.rows, self.lanes, self.off = [], [], []

    def __getitem__(self, i):
        return self.rows[i]


class ComputeEngine(wiring.Component):
    """Sequencer + array + OBUF write-back of one dataflow.

    Inputs: ``start`` (issue cycle of a COMPUTE), layer fields (``k``, ``s``, ``a_mode``, ``w_mode``,
    ``act_signed``, ``rs_r``, ``rs_q``, ``dw``, ``dw_ng``, ``dw_q``) and COMPUTE fields (``c, m, h, w, cv, acc,
    iw, pa, pw, po, wm, arow``, and the buffer halves ``act_half, wgt_half, out_half`` of a double-buffered
    design: its addresses start at a half's first word, docs section 9), which must stay stable during the body. Outputs: ``busy``, ``last``; buffer ports (act/wgt read ports,
    OBUF read-modify-write ports; connect to :class:`rtl_gen.buffers.VectorBuffer` / ``OutBuffer``);
    ``cnt_fu_active`` (FU-active cycles: active rows x active columns per compute step).
    """

    def __init__(self, p: HWParams):
        self.p = p
        nA, nW, nO = p.n_act_ports, p.n_wgt_ports, p.n_out_ports
        sig = {
            "start": In(1), "busy": Out(1), "last": Out(1),
            "k": In(p.kbits), "s": In(p.sbits), "a_mode": In(2), "w_mode": In(2), "act_signed": In(1),
            "rs_r": In(7), "rs_q": In(7), "dw": In(1), "dw_ng": In(10), "dw_q": In(7),
            "c": In(EXTENT_BITS), "m": In(EXTENT_BITS), "h": In(EXTENT_BITS), "w": In(EXTENT_BITS),
            "cv": In(EXTENT_BITS), "acc": In(1), "iw": In(16), "pa": In(16), "pw": In(16), "po": In(16),
            "wm": In(20), "arow": In(20), "act_half": In(1), "wgt_half": In(1), "out_half": In(1),
            "act_addr": Out(p.act_abits).array(nA), "act_en": Out(1).array(nA), "act_data": In(32).array(nA),
            "wgt_addr": Out(p.wgt_abits).array(nW), "wgt_en": Out(1).array(nW), "wgt_data": In(32).array(nW),
            "out_raddr": Out(p.out_abits).array(nO), "out_ren": Out(1).array(nO), "out_rdata": In(32).array(nO),
            "out_waddr": Out(p.out_abits).array(nO), "out_wdata": Out(32).array(nO), "out_wen": Out(1).array(nO),
            "cnt_fu_active": Out(CNT_BITS),
        }
        super().__init__(sig)
        self._array = PEArray(p)

    @property
    def array(self) -> PEArray:
        """The PE array this engine drives."""
        return self._array

    def _half_offset(self, m, half, lines: int, name: str):
        """First word of buffer half ``half`` (0 when the design is not double-buffered, docs section 9)."""
        base = self.p.half_base(lines) * self.p.EW
        if not base:
            return Const(0, 1)
        off = Signal(range(base + 1), name=f"{name}_half_off")
        m.d.comb += off.eq(Mux(half, base, 0))
        return off

    def _dw_stream(self, m, dwp, mb, gp, qb, rem, oh, ow, phase_str) -> "_DwPorts":
        """Stage-1 act reads of a depthwise stream step (docs section 8): row i = (replica i div g_r, group
        dwp + i mod g_r), lane l of it = kernel position (group*pf + l), reading the window of its replica's
        channels at that position's input pixel. Returns per row the (address, enable) of its ports, the active
        lanes and the bit offset of channel 0 of its window."""
        p = self.p
        X, Y, aA = p.X, p.Y, p.act_abits
        K, S = self.k, self.s
        NP = p.n_act_ports // Y
        kmax = p.max_layer.max_kernel
        log2pf = Signal(3, name="dw_log2pf")
        kk = Signal(12, name="dw_kk")
        seg = Signal(8, name="dw_seg")
        m.d.comb += [log2pf.eq(4 - self.a_mode - self.w_mode), kk.eq(K * K), seg.eq(_min(self.dw_ng, Y))]
        pfv = Const(1, 6) << log2pf
        # position offsets in words: kh*arow + kw*pa of position p = kh*K + kw (p < K^2 <= kmax^2)
        rowoff = _series(m, Const(0, aA), _ring(m, self.arow, aA, "dw_arow"), kmax, aA, "dw_rowoff")
        coloff = _series(m, Const(0, aA), _ring(m, self.pa, aA, "dw_pa"), kmax, aA, "dw_coloff")
        posoff = []
        for q_ in range(kmax * kmax):
            e = Signal(aA, name=f"dw_posoff{q_}")
            with m.Switch(K):
                for kv in range(1, kmax + 1):
                    if q_ < kv * kv:
                        with m.Case(kv):
                            m.d.comb += e.eq(rowoff[q_ // kv] + coloff[q_ % kv])
            posoff.append(e)
        posoff = Array(posoff)
        pix0 = _ring(m, _mul(m, oh.v * S, self.arow, aA, "dw_pixrow") + _mul(m, ow.v * S, self.pa, aA, "dw_pixcol"),
                     aA, "dw_pix0")
        out = _DwPorts()
        for i in range(Y):
            j_i = Signal(8, name=f"dw_j{i}")
            g_i = Signal(8, name=f"dw_g{i}")
            with m.Switch(seg):
                for rv in p.ws_segments:
                    with m.Case(rv):
                        m.d.comb += [j_i.eq(i // rv), g_i.eq(i % rv)]
            act_i = phase_str & (j_i < qb) & (g_i < gp)
            gpos = Signal(EXTENT_BITS + 4, name=f"dw_gpos{i}")       # first position of the row's group
            m.d.comb += gpos.eq((dwp.v + g_i) << log2pf)
            lanes = Signal(5, name=f"dw_lanes{i}")
            m.d.comb += lanes.eq(Mux(act_i, _min(kk - gpos, pfv), 0))
            ch0 = Signal(EXTENT_BITS + 8, name=f"dw_ch0_{i}")
            chbits = Signal(EXTENT_BITS + 12, name=f"dw_chbits{i}")
            colsb = Signal(12, name=f"dw_colsbits{i}")
            cols = _min(rem - j_i * X, X)
            m.d.comb += [ch0.eq(mb.v + j_i * X),
                         chbits.eq(Mux(self.a_mode == 0, ch0 << 1, Mux(self.a_mode == 1, ch0 << 2, ch0 << 3))),
                         colsb.eq(Mux(self.a_mode == 0, cols << 1, Mux(self.a_mode == 1, cols << 2, cols << 3)))]
            off = Signal(5, name=f"dw_off{i}")
            nw = Signal(8, name=f"dw_nw{i}")
            m.d.comb += [off.eq(chbits[:5]), nw.eq((off + colsb + 31) >> 5)]
            wbase = _ring(m, pix0 + (chbits >> 5), aA, f"dw_wbase{i}")
            lane_base = [_ring(m, wbase + posoff[gpos + l], aA, f"dw_lbase{i}_{l}") for l in range(16)]
            ports = []
            for k in range(NP):
                addr = Signal(aA, name=f"dw_aaddr{i}_{k}")
                en = Signal(name=f"dw_aen{i}_{k}")
                with m.Switch(self.a_mode):
                    for md, a in enumerate((2, 4, 8)):
                        wa = dw_window_words(X, a)
                        lane, wd = divmod(k, wa)
                        if lane < 32 // a:
                            with m.Case(md):
                                m.d.comb += [addr.eq(lane_base[lane] + wd), en.eq(act_i & (lane < lanes) & (wd < nw))]
                ports.append((addr, en))
            out.rows.append(ports)
            out.lanes.append(lanes)
            out.off.append(off)
        return out

    def _dw_vector(self, m, i, x, off2):
        """FU (i, x)'s act vector under the depthwise mapping (stage 2): lane l = element x of lane l's window of
        row i (ports ``i*NP + l*WA ..``, WA words per lane at a bits), pf lanes of a bits packed LSB first."""
        p = self.p
        NP = p.n_act_ports // p.Y
        opts = []
        for a in (2, 4, 8):
            wa = dw_window_words(p.X, a)
            lanes = [window_lane(Cat(*(self.act_data[i * NP + l * wa + k] for k in range(wa))), off2, x, a)
                     for l in range(32 // a)]
            opts.append(Cat(*lanes))
        return Mux(self.a_mode == 0, opts[0], Mux(self.a_mode == 1, opts[1], opts[2]))

    def _ws(self, c):
        """WS steps (docs section 5; the depthwise mapping, section 8): loops, buffer reads, OBUF write-back and array inputs; returns (ob1, ob_ports, res values)."""
        m, p, arr = c.m, self.p, c.arr
        X, Y, K, S = p.X, p.Y, self.k, self.s
        la, lw, la_mask, lw_mask = c.la, c.lw, c.la_mask, c.lw_mask
        aA, aW, aO = p.act_abits, p.wgt_abits, p.out_abits
        running, step_valid, steps_done, row_lanes1 = c.running, c.step_valid, c.steps_done, c.row_lanes1
        overwrite1, fu_inc, act_sub1, wgt_sub1 = c.overwrite1, c.fu_inc, c.act_sub1, c.wgt_sub1
        set_act, set_wgt, lanes_of = c.set_act, c.set_wgt, c.lanes_of
        # dense: kh, kw, mb, vb (dwp one iteration); depthwise mapping (docs section 8): dwp over passes of Y
        # window groups, mb over channel blocks of q*X channels (kh, kw, vb one iteration each)
        dw = self.dw
        ng, dq = self.dw_ng, self.dw_q
        dwp = _Loop("dwp", Y, Mux(dw, ng, 1))
        kh = _Loop("kh", 1, Mux(dw, 1, K))
        kw = _Loop("kw", 1, Mux(dw, 1, K))
        qx = Signal(EXTENT_BITS + 8, name="dw_qx")
        m.d.comb += qx.eq(dq * X)
        mb = _Loop("mbase", Mux(dw, qx, X), self.m)
        vb = _Loop("vbase", Y, Mux(dw, 1, self.cv))
        t = _Loop("t", 1, 0, 14)     # limit set below (r)
        oh = _Loop("oh", 1, self.h)
        ow = _Loop("ow", 1, self.w)
        phase_str = Signal()
        rem = Signal(EXTENT_BITS + 1, name="ws_rem")      # channels of the tile from mb on
        gp = Signal(8, name="dw_gp")                       # window groups in this pass
        qb = Signal(8, name="dw_qb")                       # replicas in use in this channel block
        r = Signal(14)
        cols = Signal(8)
        m.d.comb += [rem.eq(self.m - mb.v), cols.eq(_min(rem, X)), gp.eq(_min(ng - dwp.v, Y)),
                     qb.eq(sum(((j < dq) & (j * X < rem)) for j in range(Y))),
                     r.eq(Mux(dw, qb * gp, _min(self.cv - vb.v, Y)))]
        t.limit = r
        t.last = t.v + 1 >= r
        # preload position (tj, tg): step t loads row r-1-t = replica qb-1-tj, group gp-1-tg of the pass
        tj = Signal(8, name="dw_tj")
        tg = Signal(8, name="dw_tg")
        nest = [dwp, kh, kw, mb, vb]
        with m.If(self.start):
            m.d.sync += [lp.v.eq(0) for lp in nest + [t, oh, ow]] + [phase_str.eq(0), tj.eq(0), tg.eq(0)]
        with m.Elif(running):
            with m.If(~phase_str):
                with m.If(t.last):
                    m.d.sync += [phase_str.eq(1), t.v.eq(0), tj.eq(0), tg.eq(0)]
                with m.Else():
                    m.d.sync += t.v.eq(t.v + 1)
                    with m.If(tg + 1 >= gp):
                        m.d.sync += [tg.eq(0), tj.eq(tj + 1)]
                    with m.Else():
                        m.d.sync += tg.eq(tg + 1)
            with m.Else():
                pix_last = _advance(m, [oh, ow])
                with m.If(pix_last):
                    m.d.sync += phase_str.eq(0)
                    _advance(m, nest)
        inner_last = kh.last & kw.last & mb.last & vb.last
        all_last = dwp.last & inner_last
        m.d.comb += steps_done.eq(phase_str & oh.last & ow.last & all_last)
        # preload: column x reads the weight vector for row r-1-t: (mb + x)*wm + (kh*K + kw)*pw + (vpre >> lw)
        vpre = vb.v + r - 1 - t.v
        wbase = _ring(m, _mul(m, mb.v, self.wm, aW, "ws_mbwm") + _mul(m, kh.v * K + kw.v, self.pw, aW, "ws_kwoff")
                      + (vpre >> lw), aW, "ws_wbase")
        waddr = _series(m, wbase, _ring(m, self.wm, aW, "ws_wm"), X, aW, "ws_waddr")
        # depthwise: column x reads the window vector (group dwp + gp-1-tg, channel mb + (qb-1-tj)*X + x) of the
        # [n_g][m'] vector runs: word group*pw + (channel >> lw), vector (channel mod 2^lw) of the word
        pj = Signal(8, name="dw_pj")
        m.d.comb += pj.eq(qb - 1 - tj)
        dw_wpos = _mul(m, dwp.v + gp - 1 - tg, self.pw, aW, "dw_wpos")
        pch = _ring(m, mb.v + pj * X, EXTENT_BITS + 8, "dw_pch")
        for x in range(X):
            ch = Signal(EXTENT_BITS + 8, name=f"dw_wch_{x}")
            word = Signal(aW, name=f"dw_wword_{x}")
            sub = Signal(2, name=f"dw_wsub_{x}")
            m.d.comb += ch.eq(pch + x)
            with m.Switch(lw):  # 2^lw vectors per word
                for md in range(3):
                    with m.Case(md):
                        m.d.comb += [word.eq(ch >> md), sub.eq(ch & ((1 << md) - 1))]
            en = ~phase_str & Mux(dw, (pj * X + x) < rem, x < cols)
            set_wgt(x, Mux(dw, _ring(m, dw_wpos + word, aW, f"dw_waddr_{x}"), waddr[x]), en,
                    Mux(dw, sub, vpre & lw_mask))
        # row i: pix + ((vb + i) >> la) = pix + (vb >> la) + ((vlo + i) >> la), vlo = vb mod 2^la
        pix = _ring(m, _mul(m, oh.v * S + kh.v, self.arow, aA, "ws_pixrow")
                    + _mul(m, ow.v * S + kw.v, self.pa, aA, "ws_pixcol") + (vb.v >> la), aA, "ws_pix")
        vlo = Signal(3, name="ws_vlo")
        m.d.comb += vlo.eq(vb.v & ((Const(1, 4) << la) - 1))
        dw_ports = self._dw_stream(m, dwp, mb, gp, qb, rem, oh, ow, phase_str)
        NP = p.n_act_ports // Y
        for i in range(Y):
            lo_i = vlo + i
            act_i = phase_str & (i < r)
            set_act(i * NP, Mux(dw, dw_ports[i][0][0], pix + (lo_i >> la)), Mux(dw, dw_ports[i][0][1], act_i),
                    lo_i & la_mask)
            for k in range(1, NP):
                set_act(i * NP + k, dw_ports[i][k][0], dw & dw_ports[i][k][1], 0)
            m.d.comb += row_lanes1[i].eq(Mux(dw, dw_ports.lanes[i], Mux(act_i, lanes_of(vb.v + i), 0)))
        # OBUF word of (replica k, column x): (oh*w + ow)*po + mb + k*X + x (dense: replica 0 only)
        ob1 = {"base": _ring(m, _mul(m, oh.v * self.w + ow.v, self.po, aO, "ws_opix") + mb.v, aO, "ws_obase"),
               "en": phase_str & step_valid, "rem": rem, "qb": Mux(dw, qb, 1)}

        def ob_ports(sh):
            return ([sh["base"] + k * X + x for k in range(Y) for x in range(X)],
                    [sh["en"] & (k < sh["qb"]) & (k * X + x < sh["rem"]) for k in range(Y) for x in range(X)])
        m.d.comb += [overwrite1.eq(~self.acc & (dwp.v == 0) & (kh.v == 0) & (kw.v == 0) & (vb.v == 0)),
                     fu_inc.eq(Mux(phase_str & step_valid, Mux(dw, gp * _min(rem, qx), r * cols), 0))]
        wshift2 = _delay(m, ~phase_str & step_valid, 1, "wshift")[0]
        m.d.comb += [arr.wgt_shift.eq(wshift2), arr.dw.eq(dw), arr.seg.eq(Mux(dw, _min(ng, Y), Y))]
        for x in range(X):
            sub2 = _delay(m, wgt_sub1[x], 1, f"wsub{x}")[0]
            m.d.comb += arr.col_wgt[x].eq(select_vector(self.wgt_data[x], sub2, lw))
        for i in range(Y):
            sub2 = _delay(m, act_sub1[i * NP], 1, f"asub{i}")[0]
            m.d.comb += arr.row_act[i].eq(select_vector(self.act_data[i * NP], sub2, la))
            off2 = _delay(m, dw_ports.off[i], 1, f"dw_off{i}")[0]
            for x in range(X):
                m.d.comb += arr.dw_act[i * X + x].eq(self._dw_vector(m, i, x, off2))
        res_value = [arr.res[idx] for idx in range(p.n_out_ports)]
        return ob1, ob_ports, res_value

    def _os(self, c):
        """OS steps (docs section 5), as :meth:`_ws`."""
        m, p, arr = c.m, self.p, c.arr
        X, Y, K, S = p.X, p.Y, self.k, self.s
        la, lw, la_mask, lw_mask = c.la, c.lw, c.la_mask, c.lw_mask
        aA, aW, aO = p.act_abits, p.wgt_abits, p.out_abits
        running, step_valid, steps_done, row_lanes1 = c.running, c.step_valid, c.steps_done, c.row_lanes1
        overwrite1, fu_inc, act_sub1, wgt_sub1 = c.overwrite1, c.fu_inc, c.act_sub1, c.wgt_sub1
        set_act, set_wgt, lanes_of = c.set_act, c.set_wgt, c.lanes_of
        oh = _Loop("oh", 1, self.h)
        ob = _Loop("obase", X, self.w)
        mb = _Loop("mbase", Y, self.m)
        kh = _Loop("kh", 1, K)
        kw = _Loop("kw", 1, K)
        v = _Loop("v", 1, self.cv)
        t = _Loop("t", 1, 0, 8)
        phase_drn = Signal()
        rr = Signal(8)
        cols = Signal(8)
        m.d.comb += [rr.eq(_min(self.m - mb.v, Y)), cols.eq(_min(self.w - ob.v, X))]
        t.last = t.v + 1 >= rr
        with m.If(self.start):
            m.d.sync += [lp.v.eq(0) for lp in (oh, ob, mb, kh, kw, v, t)] + [phase_drn.eq(0)]
        with m.Elif(running):
            with m.If(~phase_drn):
                red_last = _advance(m, [kh, kw, v])
                with m.If(red_last):
                    m.d.sync += phase_drn.eq(1)
            with m.Else():
                with m.If(t.last):
                    m.d.sync += [phase_drn.eq(0), t.v.eq(0)]
                    _advance(m, [oh, ob, mb])
                with m.Else():
                    m.d.sync += t.v.eq(t.v + 1)
        m.d.comb += steps_done.eq(phase_drn & t.last & oh.last & ob.last & mb.last)
        strm = ~phase_drn
        lanes = lanes_of(v.v)
        # row i: (mb + i)*wm + (kh*K + kw)*pw + (v >> lw)
        wbase = _ring(m, _mul(m, mb.v, self.wm, aW, "os_mbwm") + _mul(m, kh.v * K + kw.v, self.pw, aW, "os_kwoff")
                      + (v.v >> lw), aW, "os_wbase")
        waddr = _series(m, wbase, _ring(m, self.wm, aW, "os_wm"), Y, aW, "os_waddr")
        for i in range(Y):
            act_i = strm & (i < rr)
            set_wgt(i, waddr[i], act_i, v.v & lw_mask)
            m.d.comb += row_lanes1[i].eq(Mux(act_i, lanes, 0))
        # column j: (oh*S + kh)*arow + ((ob + j)*S + kw)*pa + (v >> la) = base + j*(S*pa)
        abase = _ring(m, _mul(m, oh.v * S + kh.v, self.arow, aA, "os_arowoff")
                      + _mul(m, ob.v * S + kw.v, self.pa, aA, "os_acoloff") + (v.v >> la), aA, "os_abase")
        aaddr = _series(m, abase, _mul(m, S, self.pa, aA, "os_spa"), X, aA, "os_aaddr")
        for j in range(X):
            set_act(j, aaddr[j], strm & (j < cols), v.v & la_mask)
        # OBUF word of column j: (oh*w + ob)*po + mb + t + j*po
        ob1 = {"base": _ring(m, _mul(m, oh.v * self.w + ob.v, self.po, aO, "os_opix") + mb.v + t.v, aO, "os_obase"),
               "stride": _ring(m, self.po, aO, "os_po"), "en": phase_drn & step_valid, "cols": cols}

        def ob_ports(sh):
            addr = _series(m, sh["base"], sh["stride"], X, aO, f"os_oaddr_{sh['tag']}_")
            return addr, [sh["en"] & (j < sh["cols"]) for j in range(X)]
        m.d.comb += [overwrite1.eq(~self.acc), fu_inc.eq(Mux(strm & step_valid, rr * cols, 0))]
        acc_en1 = strm & step_valid
        acc_clear1 = (kh.v == 0) & (kw.v == 0) & (v.v == 0)
        acc_en3 = _delay(m, acc_en1, 2, "acc_en")[1]
        acc_clear3 = _delay(m, acc_clear1, 2, "acc_clear")[1]
        drain_row4 = _delay(m, t.v, 3, "drain_row")[2]
        m.d.comb += [arr.acc_en.eq(acc_en3), arr.acc_clear.eq(acc_clear3), arr.drain_row.eq(drain_row4)]
        for i in range(Y):
            sub2 = _delay(m, wgt_sub1[i], 1, f"wsub{i}")[0]
            m.d.comb += arr.row_wgt[i].eq(select_vector(self.wgt_data[i], sub2, lw))
        for j in range(X):
            sub2 = _delay(m, act_sub1[j], 1, f"asub{j}")[0]
            m.d.comb += arr.col_act[j].eq(select_vector(self.act_data[j], sub2, la))
        res_value = [arr.res[j] for j in range(X)]
        return ob1, ob_ports, res_value

    def _rs(self, c):
        """RS steps (docs section 5), as :meth:`_ws`."""
        m, p, arr = c.m, self.p, c.arr
        X, Y, K, S = p.X, p.Y, self.k, self.s
        la, lw, la_mask, lw_mask = c.la, c.lw, c.la_mask, c.lw_mask
        aA, aW, aO = p.act_abits, p.wgt_abits, p.out_abits
        running, step_valid, steps_done, row_lanes1 = c.running, c.step_valid, c.steps_done, c.row_lanes1
        overwrite1, fu_inc, act_sub1, wgt_sub1 = c.overwrite1, c.fu_inc, c.act_sub1, c.wgt_sub1
        set_act, set_wgt, lanes_of = c.set_act, c.set_wgt, c.lanes_of
        R, q = self.rs_r, self.rs_q
        kh0 = _Loop("kh0", R, K)
        mb = _Loop("mbase", q, self.m)
        hb = _Loop("hbase", X, self.h)
        ow = _Loop("ow", 1, self.w)
        kw = _Loop("kw", 1, K)
        v = _Loop("v", 1, self.cv)
        nest = [kh0, mb, hb, ow, kw, v]
        with m.If(self.start):
            m.d.sync += [lp.v.eq(0) for lp in nest]
        with m.Elif(running):
            _advance(m, nest)
        m.d.comb += steps_done.eq(kh0.last & mb.last & hb.last & ow.last & kw.last & v.last)
        rows_k = Signal(8)
        reps = Signal(8)
        cols = Signal(8)
        seff = Signal(8)
        n_in = Signal(16)
        m.d.comb += [rows_k.eq(_min(K - kh0.v, R)), reps.eq(_min(self.m - mb.v, q)),
                     cols.eq(_min(self.h - hb.v, X)), seff.eq(_min(S, rows_k)),
                     n_in.eq(Mux(S <= rows_k, (cols - 1) * S + rows_k, rows_k * cols))]
        lanes = lanes_of(v.v)
        Rm = p.rmax
        # row i = (replica rep_i, kernel row kr_i): (mb + rep_i)*wm + ((kh0 + kr_i)*K + kw)*pw + (v >> lw)
        # = base + rep_i*wm + kr_i*(K*pw); rep_i = kr_i = 255 if R is not 1..Rm
        wbase = _ring(m, _mul(m, mb.v, self.wm, aW, "rs_mbwm") + _mul(m, kh0.v * K + kw.v, self.pw, aW, "rs_kwoff")
                      + (v.v >> lw), aW, "rs_wbase")
        wm_w = _ring(m, self.wm, aW, "rs_wm")
        kpw = _mul(m, K, self.pw, aW, "rs_kpw")
        rep_wm = _series(m, Const(0, aW), wm_w, Y, aW, "rs_repwm")
        kr_kpw = _series(m, Const(0, aW), kpw, Rm, aW, "rs_krkpw")
        rep_wm_x = _ring(m, (wm_w << 8) - wm_w, aW, "rs_repwm255")
        kr_kpw_x = _ring(m, (kpw << 8) - kpw, aW, "rs_krkpw255")
        for i in range(Y):
            rep_i = Signal(8, name=f"rep_{i}")
            kr_i = Signal(8, name=f"kr_{i}")
            roff = Signal(aW, name=f"rs_wrep_{i}")
            koff = Signal(aW, name=f"rs_wkr_{i}")
            with m.Switch(R):
                for rv in range(1, Rm + 1):
                    with m.Case(rv):
                        m.d.comb += [rep_i.eq(i // rv), kr_i.eq(i % rv),
                                     roff.eq(rep_wm[i // rv]), koff.eq(kr_kpw[i % rv])]
                with m.Default():
                    m.d.comb += [rep_i.eq(255), kr_i.eq(255), roff.eq(rep_wm_x), koff.eq(kr_kpw_x)]
            act_i = (kr_i < rows_k) & (rep_i < reps)
            set_wgt(i, wbase + roff + koff, act_i, v.v & lw_mask)
            m.d.comb += row_lanes1[i].eq(Mux(act_i, lanes, 0))
        # port d reads input row rowbase + (d // seff)*S + d % seff (offset 0 if seff is not 1..Rm):
        # (rowbase*arow + (ow*S + kw)*pa + (v >> la)) + (d // seff)*(S*arow) + (d % seff)*arow
        nA = p.n_act_ports
        abase = _ring(m, _mul(m, hb.v * S + kh0.v, self.arow, aA, "rs_arowoff")
                      + _mul(m, ow.v * S + kw.v, self.pa, aA, "rs_acoloff") + (v.v >> la), aA, "rs_abase")
        grp = _series(m, Const(0, aA), _mul(m, S, self.arow, aA, "rs_sarow"), nA, aA, "rs_agrp")
        sub = _series(m, Const(0, aA), _ring(m, self.arow, aA, "rs_arow"), Rm, aA, "rs_asub")
        for d in range(nA):
            goff = Signal(aA, name=f"rs_agoff_{d}")
            soff = Signal(aA, name=f"rs_asoff_{d}")
            with m.Switch(seff):
                for sv in range(1, Rm + 1):
                    with m.Case(sv):
                        m.d.comb += [goff.eq(grp[d // sv]), soff.eq(sub[d % sv])]
            set_act(d, abase + goff + soff, d < n_in, v.v & la_mask)
        # OBUF word of (column j, replica k): ((hb + j)*w + ow)*po + mb + k = base + j*(w*po) + k
        col_end = kw.last & v.last
        ob1 = {"base": _ring(m, _mul(m, hb.v * self.w + ow.v, self.po, aO, "rs_opix") + mb.v, aO, "rs_obase"),
               "stride": _mul(m, self.w, self.po, aO, "rs_wpo"), "en": col_end & step_valid, "cols": cols,
               "reps": reps}

        def ob_ports(sh):
            colbase = _series(m, sh["base"], sh["stride"], X, aO, f"rs_ocol_{sh['tag']}_")
            col_en = [sh["en"] & (j < sh["cols"]) for j in range(X)]
            rep_ok = [k < sh["reps"] for k in range(Y)]
            return ([colbase[j] + k for j in range(X) for k in range(Y)],
                    [col_en[j] & rep_ok[k] for j in range(X) for k in range(Y)])
        m.d.comb += [overwrite1.eq(~self.acc & (kh0.v == 0)),
                     fu_inc.eq(Mux(step_valid, reps * rows_k * cols, 0))]
        acc_en3 = _delay(m, step_valid, 2, "acc_en")[1]
        acc_clear3 = _delay(m, (kw.v == 0) & (v.v == 0), 2, "acc_clear")[1]
        seff2 = _delay(m, seff, 1, "seff")[0]
        m.d.comb += [arr.acc_en.eq(acc_en3), arr.acc_clear.eq(acc_clear3), arr.rs_r.eq(R),
                     arr.rs_seff.eq(seff2)]
        for i in range(Y):
            sub2 = _delay(m, wgt_sub1[i], 1, f"wsub{i}")[0]
            m.d.comb += arr.row_wgt[i].eq(select_vector(self.wgt_data[i], sub2, lw))
        sub2 = _delay(m, act_sub1[0], 1, "asub")[0]   # every port reads the same vector index v
        for d in range(p.n_act_ports):
            m.d.comb += arr.port_act[d].eq(select_vector(self.act_data[d], sub2, la))
        res_value = [arr.res[idx] for idx in range(p.n_out_ports)]
        return ob1, ob_ports, res_value

    def elaborate(self, platform):
        m = Module()
        p = self.p
        Y, df = p.Y, p.dataflow
        D = pipeline_depth(df)
        m.submodules.array = arr = self._array
        m.d.comb += [arr.a_mode.eq(self.a_mode), arr.w_mode.eq(self.w_mode), arr.act_signed.eq(self.act_signed)]

        running = Signal()      # issuing steps
        draining = Signal(range(D + 1))
        m.d.comb += self.busy.eq(running | (draining != 0))
        step_valid = Signal()
        m.d.comb += step_valid.eq(running)
        steps_done = Signal()   # set combinationally when the current step is the last one

        with m.If(self.start):
            m.d.sync += running.eq(1)
        with m.Elif(running & steps_done):
            m.d.sync += [running.eq(0), draining.eq(D)]
        with m.Elif(draining != 0):
            m.d.sync += draining.eq(draining - 1)
        m.d.comb += self.last.eq(draining == 1)

        la, lw = self.w_mode, self.a_mode
        log2pf = Signal(3)
        m.d.comb += log2pf.eq(4 - self.a_mode - self.w_mode)
        pfv = Signal(6)
        m.d.comb += pfv.eq(Const(1, 6) << log2pf)

        def lanes_of(v):
            """Active lanes of channel vector v: min(pf, c - v*pf), 0 if v*pf >= c."""
            base = Signal(EXTENT_BITS + 6, name="vbase_lanes")
            m.d.comb += base.eq(v << log2pf)
            rem = self.c - base
            return Mux(base >= self.c, 0, Mux(rem > pfv, pfv, rem))

        # per-step S1 outputs (registered into the pipeline below)
        row_lanes1 = [Signal(5, name=f"row_lanes1_{i}") for i in range(Y)]
        # OBUF write-back: each dataflow sets ``ob1`` (S1 values of the shared signals: base address, stride, enable
        # conditions), delayed to S3 and S4, where ``ob_ports(shared)`` forms the per-port addresses and enables.
        overwrite1 = Signal()
        fu_inc = Signal(16)
        act_sub1 = [Signal(2, name=f"act_sub1_{i}") for i in range(p.n_act_ports)]
        wgt_sub1 = [Signal(2, name=f"wgt_sub1_{i}") for i in range(p.n_wgt_ports)]

        act_off, wgt_off, out_off = (self._half_offset(m, half, lines, name) for half, lines, name in (
            (self.act_half, p.act_lines, "act"), (self.wgt_half, p.wgt_lines, "wgt"),
            (self.out_half, p.out_lines, "out")))

        def set_act(i, addr, en, sub):
            m.d.comb += [self.act_addr[i].eq(addr + act_off), self.act_en[i].eq(en & step_valid),
                         act_sub1[i].eq(sub)]

        def set_wgt(i, addr, en, sub):
            m.d.comb += [self.wgt_addr[i].eq(addr + wgt_off), self.wgt_en[i].eq(en & step_valid),
                         wgt_sub1[i].eq(sub)]

        la_mask = Signal(2)
        lw_mask = Signal(2)
        m.d.comb += [la_mask.eq((Const(1, 3) << la) - 1), lw_mask.eq((Const(1, 3) << lw) - 1)]

        c = SimpleNamespace(m=m, arr=arr, running=running, step_valid=step_valid, steps_done=steps_done,
                            row_lanes1=row_lanes1, overwrite1=overwrite1, fu_inc=fu_inc, act_sub1=act_sub1,
                            wgt_sub1=wgt_sub1, set_act=set_act, set_wgt=set_wgt, lanes_of=lanes_of, la=la, lw=lw,
                            la_mask=la_mask, lw_mask=lw_mask)
        ob1, ob_ports, res_value = {"WS": self._ws, "OS": self._os, "RS": self._rs}[df](c)
        ob1["base"] = _ring(m, ob1["base"] + out_off, p.out_abits, "ob_base_half")

        # lanes to the array at S2
        for i in range(Y):
            m.d.comb += arr.row_lanes[i].eq(_delay(m, row_lanes1[i], 1, f"lanes{i}")[0])
        # OBUF write-back: read at S3, add and write at S4
        ow3 = _delay(m, overwrite1, 3, "overwrite")
        dl = {k: _delay(m, v, 3, f"ob_{k}") for k, v in ob1.items()}
        raddr, ren = ob_ports({"tag": "s3", **{k: v[1] for k, v in dl.items()}})
        waddr, wen = ob_ports({"tag": "s4", **{k: v[2] for k, v in dl.items()}})
        for o in range(p.n_out_ports):
            m.d.comb += [self.out_raddr[o].eq(raddr[o]), self.out_ren[o].eq(ren[o]),
                         self.out_waddr[o].eq(waddr[o]), self.out_wen[o].eq(wen[o]),
                         self.out_wdata[o].eq(res_value[o] + Mux(ow3[2], 0, self.out_rdata[o]))]
        m.d.sync += self.cnt_fu_active.eq(self.cnt_fu_active + fu_inc)
        return m
