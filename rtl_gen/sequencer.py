"""COMPUTE engine: the step sequencer (stage 1: buffer addresses) + the PE array + the OBUF write-back.

A COMPUTE whose instruction was issued in cycle ``c0`` (``start`` high) runs its body in cycles
``c0+1 .. c0+steps+D`` (``D = 4``, :data:`rtl_gen.params.PIPELINE_DEPTH`): one step is issued per cycle for
``steps`` cycles, then the pipeline drains for ``D`` cycles; ``last`` is high in the body's last cycle. The step
order and the per-step accesses are those of docs/execution-model.md section 5 (see :mod:`rtl_gen.pe_array`
for the pipeline stages). Every read of an inactive row, column or port is disabled, so the buffers' access
counters equal the contract's formulas.

Address arithmetic (32-bit words, tile-local, fields of the COMPUTE instruction, see :mod:`rtl_gen.isa`):
activation vector ``v`` of input pixel ``(y, x)``: ``y*arow + x*pa + (v >> la)``, sub-word ``v & (2^la - 1)``
with ``la = w_mode`` (``w/2`` vectors per word); weight vector ``v`` of output channel ``mm`` at ``(kh, kw)``:
``mm*wm + (kh*K + kw)*pw + (v >> lw)`` with ``lw = a_mode``; output word of pixel ``(oh, ow)``, channel ``mm``:
``(oh*w + ow)*po + mm``.
"""

from amaranth import Array, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from rtl_gen.buffers import CNT_BITS, select_vector
from rtl_gen.params import EXTENT_BITS, PIPELINE_DEPTH, HWParams
from rtl_gen.pe_array import PEArray

AW = 26  # width of intermediate address arithmetic (words); buffers hold < 2^18 words


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


class ComputeEngine(wiring.Component):
    """Sequencer + array + OBUF write-back of one dataflow.

    Inputs: ``start`` (issue cycle of a COMPUTE), layer fields (``k``, ``s``, ``a_mode``, ``w_mode``,
    ``act_signed``, ``rs_r``, ``rs_q``) and COMPUTE fields (``c, m, h, w, cv, acc, iw, pa, pw, po, wm, arow``),
    which must stay stable during the body. Outputs: ``busy``, ``last``; buffer ports (act/wgt read ports,
    OBUF read-modify-write ports; connect to :class:`rtl_gen.buffers.VectorBuffer` / ``OutBuffer``);
    ``cnt_fu_active`` (FU-active cycles: active rows x active columns per compute step).
    """

    def __init__(self, p: HWParams):
        self.p = p
        nA, nW, nO = p.n_act_ports, p.n_wgt_ports, p.n_out_ports
        sig = {
            "start": In(1), "busy": Out(1), "last": Out(1),
            "k": In(p.kbits), "s": In(p.sbits), "a_mode": In(2), "w_mode": In(2), "act_signed": In(1),
            "rs_r": In(7), "rs_q": In(7),
            "c": In(EXTENT_BITS), "m": In(EXTENT_BITS), "h": In(EXTENT_BITS), "w": In(EXTENT_BITS),
            "cv": In(EXTENT_BITS), "acc": In(1), "iw": In(16), "pa": In(16), "pw": In(16), "po": In(16),
            "wm": In(20), "arow": In(20),
            "act_addr": Out(p.act_abits).array(nA), "act_en": Out(1).array(nA), "act_data": In(32).array(nA),
            "wgt_addr": Out(p.wgt_abits).array(nW), "wgt_en": Out(1).array(nW), "wgt_data": In(32).array(nW),
            "out_raddr": Out(p.out_abits).array(nO), "out_ren": Out(1).array(nO), "out_rdata": In(32).array(nO),
            "out_waddr": Out(p.out_abits).array(nO), "out_wdata": Out(32).array(nO), "out_wen": Out(1).array(nO),
            "cnt_fu_active": Out(CNT_BITS),
        }
        super().__init__(sig)

    def elaborate(self, platform):
        m = Module()
        p = self.p
        X, Y, df = p.X, p.Y, p.dataflow
        D = PIPELINE_DEPTH
        m.submodules.array = arr = PEArray(p)
        self.array = arr
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

        K, S = self.k, self.s
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
        out_addr1 = [Signal(AW, name=f"out_addr1_{i}") for i in range(p.n_out_ports)]
        out_en1 = [Signal(name=f"out_en1_{i}") for i in range(p.n_out_ports)]
        overwrite1 = Signal()
        fu_inc = Signal(16)
        act_sub1 = [Signal(2, name=f"act_sub1_{i}") for i in range(p.n_act_ports)]
        wgt_sub1 = [Signal(2, name=f"wgt_sub1_{i}") for i in range(p.n_wgt_ports)]

        def set_act(i, addr, en, sub):
            m.d.comb += [self.act_addr[i].eq(addr), self.act_en[i].eq(en & step_valid), act_sub1[i].eq(sub)]

        def set_wgt(i, addr, en, sub):
            m.d.comb += [self.wgt_addr[i].eq(addr), self.wgt_en[i].eq(en & step_valid), wgt_sub1[i].eq(sub)]

        la_mask = Signal(2)
        lw_mask = Signal(2)
        m.d.comb += [la_mask.eq((Const(1, 3) << la) - 1), lw_mask.eq((Const(1, 3) << lw) - 1)]

        if df == "WS":
            kh = _Loop("kh", 1, K)
            kw = _Loop("kw", 1, K)
            mb = _Loop("mbase", X, self.m)
            vb = _Loop("vbase", Y, self.cv)
            t = _Loop("t", 1, 0, 8)     # limit set below (r)
            oh = _Loop("oh", 1, self.h)
            ow = _Loop("ow", 1, self.w)
            phase_str = Signal()
            r = Signal(8)
            cols = Signal(8)
            m.d.comb += [r.eq(_min(self.cv - vb.v, Y)), cols.eq(_min(self.m - mb.v, X))]
            t.limit = r
            t.last = t.v + 1 >= r
            with m.If(self.start):
                m.d.sync += [lp.v.eq(0) for lp in (kh, kw, mb, vb, t, oh, ow)] + [phase_str.eq(0)]
            with m.Elif(running):
                with m.If(~phase_str):
                    with m.If(t.last):
                        m.d.sync += [phase_str.eq(1), t.v.eq(0)]
                    with m.Else():
                        m.d.sync += t.v.eq(t.v + 1)
                with m.Else():
                    pix_last = _advance(m, [oh, ow])
                    with m.If(pix_last):
                        m.d.sync += phase_str.eq(0)
                        _advance(m, [kh, kw, mb, vb])
            m.d.comb += steps_done.eq(phase_str & oh.last & ow.last & kh.last & kw.last & mb.last & vb.last)
            kwoff = (kh.v * K + kw.v) * self.pw
            # preload: column x reads the weight vector for row r-1-t
            vpre = vb.v + r - 1 - t.v
            for x in range(X):
                addr = (mb.v + x) * self.wm + kwoff + (vpre >> lw)
                set_wgt(x, addr, ~phase_str & (x < cols), vpre & lw_mask)
            pix = (oh.v * S + kh.v) * self.arow + (ow.v * S + kw.v) * self.pa
            for i in range(Y):
                vi = vb.v + i
                act_i = phase_str & (i < r)
                set_act(i, pix + (vi >> la), act_i, vi & la_mask)
                m.d.comb += row_lanes1[i].eq(Mux(act_i, lanes_of(vi), 0))
            obase = (oh.v * self.w + ow.v) * self.po + mb.v
            for x in range(X):
                m.d.comb += [out_addr1[x].eq(obase + x), out_en1[x].eq(phase_str & (x < cols) & step_valid)]
            m.d.comb += [overwrite1.eq(~self.acc & (kh.v == 0) & (kw.v == 0) & (vb.v == 0)),
                         fu_inc.eq(Mux(phase_str & step_valid, r * cols, 0))]
            wshift2 = _delay(m, ~phase_str & step_valid, 1, "wshift")[0]
            m.d.comb += arr.wgt_shift.eq(wshift2)
            for x in range(X):
                sub2 = _delay(m, wgt_sub1[x], 1, f"wsub{x}")[0]
                m.d.comb += arr.col_wgt[x].eq(select_vector(self.wgt_data[x], sub2, lw))
            for i in range(Y):
                sub2 = _delay(m, act_sub1[i], 1, f"asub{i}")[0]
                m.d.comb += arr.row_act[i].eq(select_vector(self.act_data[i], sub2, la))
            res_value = [arr.res[x] for x in range(X)]

        elif df == "OS":
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
            kwoff = (kh.v * K + kw.v) * self.pw
            lanes = lanes_of(v.v)
            for i in range(Y):
                act_i = strm & (i < rr)
                set_wgt(i, (mb.v + i) * self.wm + kwoff + (v.v >> lw), act_i, v.v & lw_mask)
                m.d.comb += row_lanes1[i].eq(Mux(act_i, lanes, 0))
            for j in range(X):
                addr = (oh.v * S + kh.v) * self.arow + ((ob.v + j) * S + kw.v) * self.pa + (v.v >> la)
                set_act(j, addr, strm & (j < cols), v.v & la_mask)
            obase = (oh.v * self.w + ob.v) * self.po + mb.v + t.v
            for j in range(X):
                m.d.comb += [out_addr1[j].eq(obase + j * self.po),
                             out_en1[j].eq(phase_drn & (j < cols) & step_valid)]
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

        else:  # RS
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
            for i in range(Y):
                rep_i = Signal(8, name=f"rep_{i}")
                kr_i = Signal(8, name=f"kr_{i}")
                with m.Switch(R):
                    for rv in range(1, Rm + 1):
                        with m.Case(rv):
                            m.d.comb += [rep_i.eq(i // rv), kr_i.eq(i % rv)]
                    with m.Default():
                        m.d.comb += [rep_i.eq(255), kr_i.eq(255)]
                act_i = (kr_i < rows_k) & (rep_i < reps)
                addr = (mb.v + rep_i) * self.wm + ((kh0.v + kr_i) * K + kw.v) * self.pw + (v.v >> lw)
                set_wgt(i, addr, act_i, v.v & lw_mask)
                m.d.comb += row_lanes1[i].eq(Mux(act_i, lanes, 0))
            colpart = (ow.v * S + kw.v) * self.pa + (v.v >> la)
            rowbase = hb.v * S + kh0.v
            for d in range(p.n_act_ports):
                rowoff = Signal(16, name=f"rowoff_{d}")
                with m.Switch(seff):
                    for sv in range(1, Rm + 1):
                        with m.Case(sv):
                            m.d.comb += rowoff.eq((d // sv) * S + (d % sv))
                set_act(d, (rowbase + rowoff) * self.arow + colpart, d < n_in, v.v & la_mask)
            col_end = kw.last & v.last
            for j in range(X):
                for k in range(Y):
                    idx = j * Y + k
                    m.d.comb += [
                        out_addr1[idx].eq(((hb.v + j) * self.w + ow.v) * self.po + mb.v + k),
                        out_en1[idx].eq(col_end & (j < cols) & (k < reps) & step_valid)]
            m.d.comb += [overwrite1.eq(~self.acc & (kh0.v == 0)),
                         fu_inc.eq(Mux(step_valid, reps * rows_k * cols, 0))]
            acc_en3 = _delay(m, step_valid, 2, "acc_en")[1]
            acc_clear3 = _delay(m, (kw.v == 0) & (v.v == 0), 2, "acc_clear")[1]
            seff2 = _delay(m, seff, 1, "seff")[0]
            m.d.comb += [arr.acc_en.eq(acc_en3), arr.acc_clear.eq(acc_clear3), arr.rs_r.eq(R),
                         arr.rs_seff.eq(seff2), arr.rs_r4.eq(R)]
            for i in range(Y):
                sub2 = _delay(m, wgt_sub1[i], 1, f"wsub{i}")[0]
                m.d.comb += arr.row_wgt[i].eq(select_vector(self.wgt_data[i], sub2, lw))
            sub2 = _delay(m, act_sub1[0], 1, "asub")[0]   # every port reads the same vector index v
            for d in range(p.n_act_ports):
                m.d.comb += arr.port_act[d].eq(select_vector(self.act_data[d], sub2, la))
            res_value = [arr.res[idx] for idx in range(p.n_out_ports)]

        # lanes to the array at S2
        for i in range(Y):
            m.d.comb += arr.row_lanes[i].eq(_delay(m, row_lanes1[i], 1, f"lanes{i}")[0])
        # OBUF write-back: read at S3, add and write at S4
        ow3 = _delay(m, overwrite1, 3, "overwrite")
        for o in range(p.n_out_ports):
            a = _delay(m, out_addr1[o][:p.out_abits], 3, f"oaddr{o}")
            e = _delay(m, out_en1[o], 3, f"oen{o}")
            m.d.comb += [self.out_raddr[o].eq(a[1]), self.out_ren[o].eq(e[1]),
                         self.out_waddr[o].eq(a[2]), self.out_wen[o].eq(e[2]),
                         self.out_wdata[o].eq(res_value[o] + Mux(ow3[2], 0, self.out_rdata[o]))]
        m.d.sync += self.cnt_fu_active.eq(self.cnt_fu_active + fu_inc)
        return m
