"""The PE_y x PE_x array of fusion units, wired per dataflow (docs/execution-model.md section 5).

The array is the datapath of pipeline stages 2..4 of a COMPUTE step (stage 1, the buffer read, is the
sequencer's: :mod:`rtl_gen.sequencer`). Stage timing for a step issued in cycle ``c``:

* S2 (``c+1``): vectors from the buffers arrive (``row_*``/``col_*``/``port_act`` inputs); every FU multiplies
  and its sum is registered (``prod``). WS also shifts the weight registers down (``wgt_shift``) in this stage.
* S3 (``c+2``): WS registers the column reductions; OS and RS add ``prod`` into the per-FU accumulators
  (``acc_en``; ``acc_clear`` restarts an accumulation).
* S4 (``c+3``): results ``res[i]`` are read (combinationally from S3 registers) by the OBUF write-back, which
  read-modify-writes the 32-bit words at the end of this cycle.

Dataflows (X = pe_x columns, Y = pe_y rows, FU(i, j) at row i, column j):

* **WS**: FU(i, j) holds a weight vector in a register (loaded by a column shift: ``col_wgt[j]`` enters row 0, row
  i takes row i-1); ``row_act[i]`` is broadcast along row i; ``res[j]`` = sum over rows of column j.
* **OS**: ``row_wgt[i]`` broadcast along row i, ``col_act[j]`` down column j; FU(i, j) accumulates; the drain
  reads row ``drain_row`` (``res[j] = acc[drain_row][j]``).
* **RS**: rows are (replica, kernel row) pairs: row i = ``rep*R + kr`` with ``R = rs_r``; ``row_wgt[i]`` is broadcast
  along the row; column j takes activation port ``j*seff + kr`` (``seff = min(S, rows in this pass)``: the diagonal
  delivery shares an input row between (kernel row, output row) pairs that touch it); FU(i, j) accumulates over
  a window; ``res[j*Y + k]`` is replica k's sum over its R rows in column j.

Inactive rows get ``row_lanes[i] = 0`` (their products are zero). All accumulators are ``acc_bits`` wide (see
:mod:`rtl_gen.params` for the width rule); ``res`` is sign-extended to 32 bits.
"""

from amaranth import Array, Const, Instance, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from rtl_gen.fusion_unit import CTL_BITS, SUM_BITS, FusionCore, build_decoder
from rtl_gen.params import HWParams, clog2


#: Verilog module name of the fusion unit when the array instantiates it as a shared module.
FU_MODULE = "jaq_fusion_core"


class _FUPorts:
    """The signals of one fusion-unit instance (same names as :class:`FusionCore`'s ports)."""

    def __init__(self, i, j):
        self.act = Signal(32, name=f"fu_act_{i}_{j}")
        self.wgt = Signal(32, name=f"fu_wgt_{i}_{j}")
        self.out = Signal(signed(SUM_BITS), name=f"fu_out_{i}_{j}")


class PEArray(wiring.Component):
    """Array datapath for one dataflow. Ports depend on the dataflow (see module doc)."""

    def __init__(self, p: HWParams):
        self.p = p
        X, Y, df = p.X, p.Y, p.dataflow
        sig = {"a_mode": In(2), "w_mode": In(2), "act_signed": In(1), "row_lanes": In(5).array(Y)}
        if df == "WS":
            sig.update({"row_act": In(32).array(Y), "col_wgt": In(32).array(X), "wgt_shift": In(1)})
            n_res = X
        elif df == "OS":
            sig.update({"row_wgt": In(32).array(Y), "col_act": In(32).array(X), "acc_en": In(1),
                        "acc_clear": In(1), "drain_row": In(clog2(Y))})
            n_res = X
        else:
            sig.update({"row_wgt": In(32).array(Y), "port_act": In(32).array(p.n_act_ports), "rs_r": In(7),
                        "rs_seff": In(7), "acc_en": In(1), "acc_clear": In(1), "rs_r4": In(7)})
            n_res = X * Y
        sig["res"] = Out(signed(32)).array(n_res)
        self.n_res = n_res
        super().__init__(sig)

    def elaborate(self, platform):
        m = Module()
        p = self.p
        X, Y, df = p.X, p.Y, p.dataflow
        fus = [[None] * X for _ in range(Y)]
        prod = [[Signal(signed(SUM_BITS), name=f"prod_{i}_{j}") for j in range(X)] for i in range(Y)]
        blackbox = p.extra.get("blackbox", False)
        # one precision decoder for the whole array, one fusion core per FU
        ctl = Signal(CTL_BITS)
        build_decoder(m, self.a_mode, self.w_mode, self.act_signed, ctl)
        for i in range(Y):
            for j in range(X):
                if blackbox:
                    # one shared Verilog module (FU_MODULE) instead of one flattened copy per FU
                    fu = _FUPorts(i, j)
                    m.submodules[f"fu_{i}_{j}"] = Instance(
                        FU_MODULE, i_act=fu.act, i_wgt=fu.wgt, i_ctl=ctl, i_lanes=self.row_lanes[i], o_out=fu.out)
                else:
                    fu = FusionCore()
                    m.submodules[f"fu_{i}_{j}"] = fu
                    m.d.comb += [fu.ctl.eq(ctl), fu.lanes.eq(self.row_lanes[i])]
                fus[i][j] = fu
                m.d.sync += prod[i][j].eq(fu.out)
        self.fus = fus

        if df == "WS":
            wreg = [[Signal(32, name=f"wreg_{i}_{j}") for j in range(X)] for i in range(Y)]
            for i in range(Y):
                for j in range(X):
                    m.d.comb += [fus[i][j].act.eq(self.row_act[i]), fus[i][j].wgt.eq(wreg[i][j])]
                    with m.If(self.wgt_shift):
                        m.d.sync += wreg[i][j].eq(self.col_wgt[j] if i == 0 else wreg[i - 1][j])
            csw = min(32, SUM_BITS + clog2(Y) + 1)
            for j in range(X):
                colsum = Signal(signed(csw), name=f"colsum_{j}")
                terms = [prod[i][j] for i in range(Y)]
                while len(terms) > 1:
                    nxt = [terms[k] + terms[k + 1] for k in range(0, len(terms) - 1, 2)]
                    if len(terms) % 2:
                        nxt.append(terms[-1])
                    terms = nxt
                m.d.sync += colsum.eq(terms[0])
                m.d.comb += self.res[j].eq(colsum)
            return m

        acc = [[Signal(signed(p.acc_bits), name=f"acc_{i}_{j}") for j in range(X)] for i in range(Y)]
        for i in range(Y):
            for j in range(X):
                with m.If(self.acc_en):
                    m.d.sync += acc[i][j].eq(Mux(self.acc_clear, 0, acc[i][j]) + prod[i][j])

        if df == "OS":
            for i in range(Y):
                for j in range(X):
                    m.d.comb += [fus[i][j].act.eq(self.col_act[j]), fus[i][j].wgt.eq(self.row_wgt[i])]
            for j in range(X):
                col = Array(acc[i][j] for i in range(Y))
                m.d.comb += self.res[j].eq(col[self.drain_row])
            return m

        # RS: diagonal activation delivery. colv[j][kr] = port_act[j*seff + kr].
        R = p.rmax
        D = p.n_act_ports
        zero = Const(0, 32)
        for j in range(X):
            colv = []
            for kr in range(R):
                v = Signal(32, name=f"colv_{j}_{kr}")
                with m.Switch(self.rs_seff):
                    for s in range(1, R + 1):
                        idx = j * s + kr
                        with m.Case(s):
                            m.d.comb += v.eq(self.port_act[idx] if idx < D else zero)
                colv.append(v)
            colv_a = Array(colv)
            for i in range(Y):
                kr_i = Signal(range(R), name=f"kr_{i}_{j}")
                with m.Switch(self.rs_r):
                    for r in range(1, R + 1):
                        with m.Case(r):
                            m.d.comb += kr_i.eq(i % r)
                m.d.comb += [fus[i][j].act.eq(colv_a[kr_i]), fus[i][j].wgt.eq(self.row_wgt[i])]
        # replica sums (stage 4, from the accumulators): seg(i) = acc(i) + seg(i+1) unless row i+1 starts a replica
        for j in range(X):
            seg = [None] * Y
            for i in reversed(range(Y)):
                s = Signal(signed(32), name=f"seg_{i}_{j}")
                if i == Y - 1:
                    m.d.comb += s.eq(acc[i][j])
                else:
                    nxt_start = Signal(name=f"start_{i + 1}_{j}")
                    with m.Switch(self.rs_r4):
                        for r in range(1, R + 1):
                            with m.Case(r):
                                m.d.comb += nxt_start.eq(1 if (i + 1) % r == 0 else 0)
                    m.d.comb += s.eq(acc[i][j] + Mux(nxt_start, 0, seg[i + 1]))
                seg[i] = s
            for k in range(Y):
                out = self.res[j * Y + k]
                with m.Switch(self.rs_r4):
                    for r in range(1, R + 1):
                        with m.Case(r):
                            m.d.comb += out.eq(seg[k * r] if k * r < Y else 0)
        return m
