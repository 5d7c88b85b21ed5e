"""DMA engine: executes LOAD_ACT / LOAD_WGT / LOAD_PSUM (off-chip reads into a buffer) and STORE_OUT (OBUF to
off-chip writes) from a run descriptor (:mod:`rtl_gen.isa`: ``base, n_outer, ostride, n_inner, istride,
run_len``).

Runs are visited outer index first; run ``(o, i)`` starts at element ``base + o*ostride + i*istride`` and is cut
into beats of ``E = W/b`` elements (the last beat of a run may be shorter: ``count = min(E, remaining)``); every
beat is one buffer line, lines consecutive from line 0 (docs/execution-model.md section 2).

Timing (docs/execution-model.md section 5), instruction issued in cycle ``c0`` (``start``):

* loads: request ``k`` is presented in cycle ``c0+1+k`` (one per cycle while ``rd_req_ready``); response ``k``
  arrives ``L`` cycles after its handshake and is written to buffer line ``k`` in that cycle; ``last`` is high in
  the cycle of the final response, so the body is ``L + beats`` cycles when the memory never stalls;
* stores: line ``k`` is read from the OBUF in cycle ``c0+1+k`` and offered on ``wr_*`` in the next cycle; ``last``
  is high in the cycle of the final write handshake: body ``beats + 1``.

``rd_req_valid`` and ``wr_valid`` are registered (they never depend combinationally on the ready inputs).
Requires ``L >= 1``.
"""

from amaranth import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from rtl_gen.buffers import CNT_BITS



class DMA(wiring.Component):
    """Ports: ``start``, ``is_store``, ``tensor`` (0 act, 1 wgt, 2 psum), ``elems`` (E of this transfer),
    descriptor fields; off-chip ``rd_req_*``, ``rd_resp_*``, ``wr_*``; buffer side ``line`` (line index),
    ``line_data`` (W bits, a response), ``line_wr_en`` (write a response line), ``lr_line``/``lr_en``/``lr_data``
    (OBUF line read for stores); ``busy``, ``last``; counters ``cnt_rd_beats``, ``cnt_wr_beats``."""

    def __init__(self, W: int, line_bits: int, count_bits: int = 8):
        self.W = W
        self.count_bits = count_bits
        super().__init__({
            "start": In(1), "is_store": In(1), "tensor": In(2), "elems": In(count_bits + 1),
            "base": In(32), "n_outer": In(16), "ostride": In(32), "n_inner": In(16), "istride": In(32),
            "run_len": In(16),
            "rd_req_valid": Out(1), "rd_req_ready": In(1), "rd_req_tensor": Out(2), "rd_req_addr": Out(32),
            "rd_req_count": Out(count_bits), "rd_resp_valid": In(1), "rd_resp_data": In(W),
            "wr_valid": Out(1), "wr_ready": In(1), "wr_addr": Out(32), "wr_count": Out(count_bits),
            "wr_data": Out(W),
            "line": Out(line_bits), "line_data": Out(W), "line_wr_en": Out(1),
            "lr_line": Out(line_bits), "lr_en": Out(1), "lr_data": In(W),
            "busy": Out(1), "last": Out(1),
            "cnt_rd_beats": Out(CNT_BITS), "cnt_wr_beats": Out(CNT_BITS),
        })

    def elaborate(self, platform):
        m = Module()
        # ---- run walker (shared by loads and stores): current beat's address/count, advance on `adv` ----
        active = Signal()        # walker has beats left
        o = Signal(16)
        i = Signal(16)
        e = Signal(16)
        row_addr = Signal(32)    # base + o*ostride (relative to base)
        run_addr = Signal(32)    # row_addr + i*istride
        rem = Signal(17)
        m.d.comb += rem.eq(self.run_len - e)
        cur_addr = Signal(32)
        cur_count = Signal(self.count_bits)
        m.d.comb += [cur_addr.eq(self.base + run_addr + e),
                     cur_count.eq(Mux(rem > self.elems, self.elems, rem))]
        adv = Signal()
        run_last = e + self.elems >= self.run_len
        i_last = i + 1 >= self.n_inner
        o_last = o + 1 >= self.n_outer
        with m.If(self.start):
            m.d.sync += [active.eq(1), o.eq(0), i.eq(0), e.eq(0), row_addr.eq(0), run_addr.eq(0)]
        with m.Elif(adv):
            with m.If(~run_last):
                m.d.sync += e.eq(e + self.elems)
            with m.Else():
                m.d.sync += e.eq(0)
                with m.If(~i_last):
                    m.d.sync += [i.eq(i + 1), run_addr.eq(run_addr + self.istride)]
                with m.Else():
                    m.d.sync += [i.eq(0), run_addr.eq(row_addr + self.ostride), row_addr.eq(row_addr + self.ostride)]
                    with m.If(~o_last):
                        m.d.sync += o.eq(o + 1)
                    with m.Else():
                        m.d.sync += active.eq(0)

        is_load = Signal()
        running = Signal()       # body in progress
        with m.If(self.start):
            m.d.sync += [running.eq(1), is_load.eq(~self.is_store)]
        m.d.comb += self.busy.eq(running)

        # ---- loads ----
        req_cnt = Signal(32)
        resp_cnt = Signal(32)
        req_fire = Signal()
        m.d.comb += [self.rd_req_valid.eq(running & is_load & active), self.rd_req_tensor.eq(self.tensor),
                     self.rd_req_addr.eq(cur_addr), self.rd_req_count.eq(cur_count),
                     req_fire.eq(self.rd_req_valid & self.rd_req_ready)]
        resp = Signal()
        m.d.comb += resp.eq(running & is_load & self.rd_resp_valid)
        with m.If(self.start):
            m.d.sync += [req_cnt.eq(0), resp_cnt.eq(0)]
        with m.Else():
            with m.If(req_fire):
                m.d.sync += req_cnt.eq(req_cnt + 1)
            with m.If(resp):
                m.d.sync += resp_cnt.eq(resp_cnt + 1)
        load_last = Signal()
        m.d.comb += load_last.eq(resp & ~active & (resp_cnt + 1 == req_cnt))
        m.d.comb += [self.line.eq(resp_cnt), self.line_data.eq(self.rd_resp_data), self.line_wr_en.eq(resp)]

        # ---- stores: stage A reads a line, stage B offers it on wr_* ----
        b_valid = Signal()
        b_addr = Signal(32)
        b_count = Signal(self.count_bits)
        line_cnt = Signal(32)
        st = Signal()
        m.d.comb += st.eq(running & ~is_load)
        wr_fire = Signal()
        m.d.comb += [self.wr_valid.eq(st & b_valid), self.wr_addr.eq(b_addr), self.wr_count.eq(b_count),
                     self.wr_data.eq(self.lr_data), wr_fire.eq(self.wr_valid & self.wr_ready)]
        st_adv = Signal()
        m.d.comb += st_adv.eq(st & (~b_valid | self.wr_ready))
        m.d.comb += [self.lr_line.eq(line_cnt), self.lr_en.eq(st_adv & active)]
        with m.If(self.start):
            m.d.sync += [b_valid.eq(0), line_cnt.eq(0)]
        with m.Elif(st_adv):
            m.d.sync += [b_valid.eq(active), b_addr.eq(cur_addr), b_count.eq(cur_count)]
            with m.If(active):
                m.d.sync += line_cnt.eq(line_cnt + 1)
        store_last = Signal()
        m.d.comb += store_last.eq(wr_fire & ~active)

        m.d.comb += adv.eq(Mux(is_load, req_fire, st_adv & active))
        m.d.comb += self.last.eq(load_last | store_last)
        with m.If(self.last):
            m.d.sync += running.eq(0)
        m.d.sync += [self.cnt_rd_beats.eq(self.cnt_rd_beats + req_fire),
                     self.cnt_wr_beats.eq(self.cnt_wr_beats + wr_fire)]
        return m
