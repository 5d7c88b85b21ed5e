"""DMA engine: executes LOAD_ACT / LOAD_WGT / LOAD_PSUM (off-chip reads into a buffer) and STORE_OUT (OBUF to
off-chip writes) from a run descriptor (:mod:`rtl_gen.isa`: ``base, n_outer, ostride, n_inner, istride,
run_len``).

Addresses are bits of the flat off-chip memory (docs/execution-model.md section 2). Runs are visited outer index
first; run ``(o, i)`` starts at bit ``base + o*ostride + i*istride`` and is cut into beats of ``E = W/b``
elements of ``b = 2^elog`` bits (the last beat of a run may be shorter: ``count = min(E, remaining)``); beat
``j`` of a run starts ``j*E*b`` bits after the run and moves ``count*b`` bits (``rd_req_bits``/``wr_bits``);
every beat is one buffer line, lines consecutive from line 0.

Timing (docs/execution-model.md section 5), instruction issued in cycle ``c0`` (``start``):

* loads: request ``k`` is presented in cycle ``c0+1+k`` (one per cycle while ``rd_req_ready``); response ``k``
  arrives ``L`` cycles after its handshake and is written to buffer line ``k`` in that cycle; ``last`` is high in
  the cycle of the final response, so the body is ``L + beats`` cycles when the memory never stalls;
* partial stores: line ``k`` is read from the OBUF in cycle ``c0+1+k`` and offered on ``wr_*`` (psum tensor) in
  the next cycle; ``last`` is high in the cycle of the final write handshake: body ``beats + 1``;
* final stores (``final``, sections 7.1 and 7.4): step ``k`` reads up to ``n_u = 2^st_rlog`` lines (the next
  ones of its pixel run, which has ``px_lines``) and their scale chunks in cycle ``c0+1+k``; they enter the output
  unit the next cycle, leave it ``OUTPUT_UNIT_LATENCY`` later and are packed ``(32/out_bits)/n_u`` steps to a
  beat (a run's last beat may hold fewer); a completed beat is offered on ``wr_*`` (out tensor) in the next
  cycle: body ``steps + 1 + OUTPUT_UNIT_LATENCY + STORE_PACK_LATENCY``;
* pooled final stores (``pool_px`` > 0, section 7.2): the same timing, steps read chunk group by chunk group,
  pixel by pixel (lines ``p*px_lines + j*n_u + r``); the unit sums the ``pool_px`` steps of a group into one
  result and the one-run walker advances once per group.

``rd_req_valid`` and ``wr_valid`` are registered (they never depend combinationally on the ready inputs). A
store's pipeline advances only when the write register is free or being taken (``~wr_valid | wr_ready``), so
backpressure stalls it as a whole. Requires ``L >= 1``.
"""

from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from jaq.errors import JaqError
from jaq.hw.records import OUT_UNIT_LINES
from jaq.hw.timing import OUTPUT_UNIT_LATENCY
from rtl_gen.buffers import CNT_BITS
from rtl_gen.output_unit import OutputUnit
from rtl_gen.protocol import ADDR_BITS, TENSOR_ID_BITS, TENSOR_OUT, TENSOR_PSUM, TENSOR_RES
from rtl_gen.run_walker import RunWalker



def beat_bits(W: int) -> int:
    """Width of ``rd_req_bits`` / ``wr_bits``: 0..W bits in one beat."""
    return W.bit_length()


class DMA(wiring.Component):
    """Ports: ``start``, ``is_store``, ``final`` (a final store), ``pool`` (a pooled one; these three sampled
    with ``start``), ``pool_px``/``px_lines`` (held during the body), ``tensor`` (read tensor id, rtl_gen.protocol),
    ``elems`` (E of this transfer; ``W/32`` for stores), ``elog`` (log2 of the addressed tensor's element bits:
the operand's for loads, 5 for 32-bit words, the output's for final stores), descriptor fields (bits);
off-chip ``rd_req_*``, ``rd_resp_*``,
    ``wr_*`` (``wr_tensor``: psum or out); buffer side ``line`` (line index), ``line_data`` (W bits, a response),
    ``line_wr_en`` (write a response line), ``lr_line``/``lr_en``/``lr_data`` (OBUF read of up to ``store_lines`` lines from ``lr_line``, one enable
    bit each, for stores);
    output unit: layer constants ``o_mode`` (0/1/2/3: 2/4/8/32 output bits), ``shift``, ``relu``, ``lo``/``hi``,
    ``st_rlog`` (log2 of the lines per step of final stores), scale memories ``sc_line``/``sc_en`` (read the chunks
    of the lines being read) and ``sc_mult``/``sc_bias_lo``/``sc_bias_hi`` (``store_lines * W`` bits each, the
    cycle after); ``busy``, ``last``; counters ``cnt_rd_beats``, ``cnt_wr_beats``."""

    def __init__(self, W: int, line_bits: int, count_bits: int = 8, scale_line_bits: int = 1, res_depth: int = 4,
                 store_lines: int = 1):
        if type(store_lines) is not int or store_lines not in OUT_UNIT_LINES:
            raise JaqError(f"{store_lines!r} lines per output-unit step; use one of "
                           f"{', '.join(map(str, OUT_UNIT_LINES))}", "dma.store_lines")
        self.W = W
        self.lines_per_step = store_lines
        self.line_lanes = W // 32                # accumulators per OBUF line
        self.lanes = store_lines * W // 32       # output-unit lanes
        self.count_bits = count_bits
        self.res_depth = res_depth
        NU = store_lines
        super().__init__({
            "start": In(1), "is_store": In(1), "final": In(1), "tensor": In(TENSOR_ID_BITS),
            "pool": In(1), "pool_px": In(12), "px_lines": In(11), "res": In(1),
            "r_base": In(ADDR_BITS), "r_ostride": In(32), "r_istride": In(32), "r_elems": In(count_bits + 1),
            "r_elog": In(3), "r_signed": In(1), "res_mult": In(signed(32)),
            "elems": In(count_bits + 1), "elog": In(3),
            "base": In(ADDR_BITS), "n_outer": In(16), "ostride": In(32), "n_inner": In(16), "istride": In(32),
            "run_len": In(16),
            "rd_req_valid": Out(1), "rd_req_ready": In(1), "rd_req_tensor": Out(TENSOR_ID_BITS),
            "rd_req_addr": Out(ADDR_BITS), "rd_req_bits": Out(beat_bits(W)), "rd_resp_valid": In(1),
            "rd_resp_data": In(W),
            "wr_valid": Out(1), "wr_ready": In(1), "wr_tensor": Out(TENSOR_ID_BITS), "wr_addr": Out(ADDR_BITS),
            "wr_bits": Out(beat_bits(W)), "wr_data": Out(W),
            "line": Out(line_bits), "line_data": Out(W), "line_wr_en": Out(1),
            "lr_line": Out(line_bits), "lr_en": Out(NU), "lr_data": In(NU * W),
            "o_mode": In(2), "shift": In(6), "relu": In(1), "lo": In(32), "hi": In(32), "st_rlog": In(3),
            "sc_line": Out(scale_line_bits), "sc_en": Out(NU),
            "sc_mult": In(NU * W), "sc_bias_lo": In(NU * W), "sc_bias_hi": In(NU * W),
            "busy": Out(1), "last": Out(1),
            "cnt_rd_beats": Out(CNT_BITS), "cnt_wr_beats": Out(CNT_BITS),
        })

    def elaborate(self, platform):
        m = Module()
        NU = self.lines_per_step
        # ---- run walker (shared by loads and stores): current beat's address/count, advance on `adv` ----
        m.submodules.walk = wk = RunWalker(self.count_bits)
        for f in ("start", "base", "n_outer", "ostride", "n_inner", "istride", "run_len", "elems", "elog"):
            m.d.comb += getattr(wk, f).eq(getattr(self, f))
        active, cur_addr, cur_count, run_last, jr = wk.active, wk.addr, wk.count, wk.run_last, wk.beat
        adv = wk.adv

        is_load = Signal()
        is_final = Signal()
        is_pool = Signal()       # a pooled final store (section 7.2)
        has_res = Signal()       # a final store with a residual operand (section 7.3)
        running = Signal()       # body in progress
        with m.If(self.start):
            m.d.sync += [running.eq(1), is_load.eq(~self.is_store), is_final.eq(self.is_store & self.final),
                         is_pool.eq(self.is_store & self.final & self.pool),
                         has_res.eq(self.is_store & self.final & self.res)]
        m.d.comb += self.busy.eq(running)

        # ---- loads, and the residual reads of a final store ----
        req_cnt = Signal(32)
        resp_cnt = Signal(32)
        req_fire = Signal()
        rq = self._residual_reads(m, running & has_res, self.start, jr, run_last, self.st_rlog)
        m.d.comb += [self.rd_req_valid.eq(Mux(has_res, rq["valid"], running & is_load & active)),
                     self.rd_req_tensor.eq(Mux(has_res, TENSOR_RES, self.tensor)),
                     self.rd_req_addr.eq(Mux(has_res, rq["addr"], cur_addr)),
                     self.rd_req_bits.eq(Mux(has_res, rq["bits"], cur_count << self.elog)),
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

        # ---- stores: stage A reads a line (and its scale chunk, its residual lanes), stage B holds them ----
        b_valid = Signal()
        b_addr = Signal(ADDR_BITS)
        b_count = Signal(self.count_bits)
        b_run_last = Signal()
        line_cnt = Signal(32)
        st = Signal()
        m.d.comb += st.eq(running & ~is_load)
        st_adv = Signal()        # the store pipeline advances: the write register is free or being taken
        m.d.comb += st_adv.eq(st & (~self.wr_valid | self.wr_ready))
        rd = Signal()            # stage A reads a line: the pipeline advances and the line's residual is there
        m.d.comb += rd.eq(st_adv & active & (~has_res | rq["ready"]))
        # pooled stores read the pixels of one chunk after another: line p*px_lines + chunk, p < pool_px
        px = Signal(12)          # pixel of the current chunk
        px_line = Signal(32)     # px * px_lines
        px_first, px_last = Signal(), Signal()
        m.d.comb += [px_first.eq(~is_pool | (px == 0)), px_last.eq(~is_pool | (px + 1 == self.pool_px))]
        b_first, b_last = Signal(), Signal()
        b_res = Signal(self.lanes * 9)
        # a final store's step reads n_lines = min(n_u, lines left in the pixel run) lines (section 7.4)
        step_line = Signal(16)   # the step's first line within its pixel run
        left = Signal(17)
        n_u = Signal(range(2 * NU + 1))
        n_lines = Signal(range(NU + 1))
        m.d.comb += [step_line.eq(jr << self.st_rlog), left.eq(self.px_lines - step_line),
                     n_u.eq(Const(1, 5) << self.st_rlog),
                     n_lines.eq(Mux(is_final, Mux(left < n_u, left, n_u), 1))]
        m.d.comb += [self.lr_line.eq(Mux(is_pool, px_line + step_line, line_cnt)),
                     self.sc_line.eq(step_line), rq["pop"].eq(rd & has_res & rq["beat_end"])]
        for r in range(NU):
            m.d.comb += [self.lr_en[r].eq(rd & (n_lines > r)), self.sc_en[r].eq(rd & is_final & (n_lines > r))]
        with m.If(self.start):
            m.d.sync += [b_valid.eq(0), line_cnt.eq(0), px.eq(0), px_line.eq(0)]
        with m.Elif(st_adv):
            m.d.sync += [b_valid.eq(rd), b_addr.eq(cur_addr), b_count.eq(cur_count), b_run_last.eq(run_last),
                         b_first.eq(px_first), b_last.eq(px_last), b_res.eq(Mux(has_res, rq["lanes"], 0))]
            with m.If(rd):
                m.d.sync += line_cnt.eq(line_cnt + n_lines)
                with m.If(px_last):
                    m.d.sync += [px.eq(0), px_line.eq(0)]
                with m.Else():
                    m.d.sync += [px.eq(px + 1), px_line.eq(px_line + self.px_lines)]
        f = self._final_path(m, st_adv, st & is_final, b_valid, (b_addr, b_count, b_run_last), self.start,
                             is_pool, b_first, b_last, b_res, Mux(has_res, self.res_mult, 0))
        # partial stores offer stage B itself; final stores the packed beat register
        m.d.comb += [self.wr_valid.eq(st & Mux(is_final, f["valid"], b_valid)),
                     self.wr_addr.eq(Mux(is_final, f["addr"], b_addr)),
                     self.wr_bits.eq(Mux(is_final, f["count"], b_count) << self.elog),
                     self.wr_data.eq(Mux(is_final, f["data"], self.lr_data[:self.W])),
                     self.wr_tensor.eq(Mux(is_final, TENSOR_OUT, TENSOR_PSUM))]
        wr_fire = Signal()
        m.d.comb += wr_fire.eq(self.wr_valid & self.wr_ready)
        store_last = Signal()
        m.d.comb += store_last.eq(wr_fire & ~active & Mux(is_final, f["drained"], 1))

        m.d.comb += adv.eq(Mux(is_load, req_fire, rd & px_last))
        m.d.comb += self.last.eq(load_last | store_last)
        with m.If(self.last):
            m.d.sync += running.eq(0)
        m.d.sync += [self.cnt_rd_beats.eq(self.cnt_rd_beats + req_fire),
                     self.cnt_wr_beats.eq(self.cnt_wr_beats + wr_fire)]
        return m

    def _residual_reads(self, m: Module, on, start, step, step_run_last, rlog) -> dict:
        """The residual stream of a final store (sections 7.3, 7.4): a second walker over the residual view (same
        runs as the store, ``r_*`` fields, ``2^r_elog``-bit elements) requests one beat per cycle into a FIFO of
        ``res_depth`` beats while fewer than that are requested and not yet consumed; stage A takes the lanes of
        step ``s`` of a run (``2^rlog`` lines) from slot group ``s mod ((32/r_bits) >> rlog)`` of the FIFO's head
        and pops it after the group's last step (``pop``, driven by the caller). Returns valid/addr/bits of the
        request, ``ready`` (the head beat is there), ``lanes`` (the step's residuals, 9-bit signed each),
        ``beat_end``, ``pop``."""
        E, L, D = self.line_lanes, self.lanes, self.res_depth
        m.submodules.res_walk = rw = RunWalker(self.count_bits)
        m.submodules.res_fifo = fifo = SyncFIFO(width=self.W, depth=D)
        for f in ("n_outer", "n_inner", "run_len"):
            m.d.comb += getattr(rw, f).eq(getattr(self, f))
        m.d.comb += [rw.start.eq(start), rw.base.eq(self.r_base), rw.ostride.eq(self.r_ostride),
                     rw.istride.eq(self.r_istride), rw.elems.eq(self.r_elems), rw.elog.eq(self.r_elog)]
        owed = Signal(range(D + 2))   # requested, not yet popped
        pop = Signal()
        valid = Signal()
        m.d.comb += [valid.eq(on & rw.active & (owed < D)),
                     rw.adv.eq(valid & self.rd_req_ready),
                     fifo.w_en.eq(on & self.rd_resp_valid), fifo.w_data.eq(self.rd_resp_data), fifo.r_en.eq(pop)]
        with m.If(start):
            m.d.sync += owed.eq(0)
        with m.Else():
            m.d.sync += owed.eq(owed + (valid & self.rd_req_ready) - pop)
        # the step's slot group within its residual beat, and the group's first line slot
        g_mask, group, slot0 = Signal(5), Signal(5), Signal(5)
        m.d.comb += [g_mask.eq(((Const(32, 7) >> self.r_elog) >> rlog) - 1), group.eq(step & g_mask),
                     slot0.eq(group << rlog)]
        lanes = Signal(L * 9)
        with m.Switch(self.r_elog):
            for elog in (1, 2, 3):
                b = 1 << elog
                with m.Case(elog):
                    for s in range(32 // b):
                        with m.If(slot0 == s):
                            for i in range(min(L, (32 // b - s) * E)):  # lanes past the beat stay 0
                                e = s * E + i
                                v = fifo.r_data[e * b:(e + 1) * b]
                                sign = Mux(self.r_signed, v[-1], 0)
                                m.d.comb += lanes[i * 9:(i + 1) * 9].eq(Cat(v, *([sign] * (9 - b))))
        return {"valid": valid, "addr": rw.addr, "bits": rw.count << self.r_elog, "ready": fifo.r_rdy,
                "lanes": lanes, "beat_end": (group == g_mask) | step_run_last, "pop": pop}

    def _final_path(self, m: Module, en, final_st, b_valid, meta, start, pool, first, last, res, res_mult) -> dict:
        """Output unit + packer of final stores. Stage B's step (``b_valid``, ``lr_data``, the scale chunks, its
        ``meta`` = (address, count, run_last)) enters the unit when ``en``; results are packed
        ``(32/out_bits) >> st_rlog`` steps to a beat into the write register. Returns the register's ``valid/addr/count/data`` and
        ``drained`` (no line in flight and no partial beat: the register holds the store's last beat). With
        ``pool`` the unit sums the lines from ``first`` to ``last`` (one pixel each) into one result."""
        E = self.lanes
        m.submodules.out_unit = ou = OutputUnit(E)   # n_u lines of W/32 accumulators per step
        m.d.comb += [ou.en.eq(en), ou.in_valid.eq(b_valid & final_st), ou.shift.eq(self.shift),
                     ou.relu.eq(self.relu), ou.lo.eq(self.lo), ou.hi.eq(self.hi), ou.res_mult.eq(res_mult), ou.pool.eq(pool),
                     ou.first.eq(first), ou.last.eq(last)]
        for i in range(E):
            m.d.comb += [ou.acc[i].eq(self.lr_data.word_select(i, 32)), ou.mult[i].eq(self.sc_mult.word_select(i, 32)),
                         ou.bias[i].eq(Cat(self.sc_bias_lo.word_select(i, 32), self.sc_bias_hi.word_select(i, 32))),
                         ou.res[i].eq(res[i * 9:(i + 1) * 9])]
        delayed = meta
        for k in range(OUTPUT_UNIT_LATENCY):  # the line's address, count and run end travel beside the unit
            regs = tuple(Signal.like(x, name=f"ou_meta{k}_{j}") for j, x in enumerate(meta))
            with m.If(en):
                m.d.sync += [r.eq(x) for r, x in zip(regs, delayed)]
            delayed = regs
        addr, count, run_last = delayed
        take = Signal()
        m.d.comb += take.eq(ou.out_valid & en)
        return self._packer(m, ou, take, addr, count, run_last, final_st, b_valid & last, en, start)

    def _packer(self, m: Module, ou, take, addr, count, run_last, final_st, b_valid, en, start) -> dict:
        """Packs the unit's lanes at ``out_bits`` (lane i of step slot s at bits ``[(s*n_u*E + i)*b, +b)``, E the
        lanes of a line); a beat is complete after ``(32/b) >> st_rlog`` steps or at a run's last step. Lanes past a
        step's ``n_u*E`` spill into the next slot, which that step overwrites (or the write's bit count cuts)."""
        E, L, W = self.line_lanes, self.lanes, self.W
        slot = Signal(5)         # steps already in the beat
        slot0 = Signal(5)        # the step's first line slot: slot * n_u
        m.d.comb += slot0.eq(slot << self.st_rlog)
        pk = Signal(W, name="pack_data")   # the beat being filled
        nd = Signal(W)           # the beat with this step's lanes in place
        m.d.comb += nd.eq(Mux(slot == 0, 0, pk))
        slots_of = {0: 16, 1: 8, 2: 4, 3: 1}   # line slots per beat
        with m.Switch(self.o_mode):
            for mode, n_slots in slots_of.items():
                b = 32 // n_slots
                with m.Case(mode):
                    contrib = Cat(*(ou.out[i][:b] for i in range(L)))
                    with m.Switch(slot0):
                        for s in range(n_slots):
                            with m.Case(s):
                                width = min(L * b, W - s * E * b)
                                m.d.comb += nd[s * E * b:s * E * b + width].eq(contrib[:width])
        last_slot = Signal()
        with m.Switch(self.o_mode):
            for mode, n_slots in slots_of.items():
                with m.Case(mode):
                    m.d.comb += last_slot.eq(slot == (Const(n_slots, 5) >> self.st_rlog) - 1)
        complete = Signal()
        m.d.comb += complete.eq(take & (last_slot | run_last))
        g_addr, g_count = Signal(ADDR_BITS), Signal(self.count_bits)
        n_addr, n_count = Signal(ADDR_BITS), Signal(self.count_bits)
        m.d.comb += [n_addr.eq(Mux(slot == 0, addr, g_addr)), n_count.eq(Mux(slot == 0, 0, g_count) + count)]
        f_valid, f_addr, f_count, f_data = Signal(), Signal(ADDR_BITS), Signal(self.count_bits), Signal(W)
        inflight = Signal(range(OUTPUT_UNIT_LATENCY + 3))
        read = Signal()
        m.d.comb += read.eq(en & final_st & b_valid)   # a line enters the unit
        with m.If(start):
            m.d.sync += [slot.eq(0), f_valid.eq(0), inflight.eq(0)]
        with m.Else():
            m.d.sync += inflight.eq(inflight + read - take)
            with m.If(take):
                m.d.sync += [pk.eq(nd), g_addr.eq(n_addr), g_count.eq(n_count),
                             slot.eq(Mux(complete, 0, slot + 1))]
            with m.If(complete):
                m.d.sync += [f_valid.eq(1), f_addr.eq(n_addr), f_count.eq(n_count), f_data.eq(nd)]
            with m.Elif(self.wr_valid & self.wr_ready):
                m.d.sync += f_valid.eq(0)
        drained = Signal()
        m.d.comb += drained.eq((inflight == 0) & (slot == 0) & ~read & ~complete)
        return {"valid": f_valid, "addr": f_addr, "count": f_count, "data": f_data, "drained": drained}

