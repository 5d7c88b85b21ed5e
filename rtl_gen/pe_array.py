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
  i takes row i-1); ``row_act[i]`` is broadcast along row i; ``res[k*X + j]`` = sum of column j's rows
  ``[k*seg, (k+1)*seg)`` (``seg = Y``: the whole column in ``res[j]``). Under the depthwise mapping (``dw``, docs
  section 8) FU(i, j) takes its own activation vector ``dw_act[i*X + j]`` and ``seg`` is the rows per replica.
* **OS**: ``row_wgt[i]`` broadcast along row i, ``col_act[j]`` down column j; FU(i, j) accumulates; the drain
  reads row ``drain_row`` (``res[j] = acc[drain_row][j]``).
* **RS**: rows are (replica, kernel row) pairs: row i = ``rep*R + kr`` with ``R = rs_r``; ``row_wgt[i]`` is broadcast
  along the row; column j takes activation port ``j*seff + kr`` (``seff = min(S, rows in this pass)``: the diagonal
  delivery shares an input row between (kernel row, output row) pairs that touch it); FU(i, j) accumulates over
  a window; ``res[j*Y + k]`` is replica k's sum over its R rows in column j.

Inactive rows get ``row_lanes[i] = 0`` (their products are zero). All accumulators are ``acc_bits`` wide (see
:mod:`rtl_gen.params` for the width rule); ``res`` is sign-extended to 32 bits.

Hierarchy: the array is X identical :class:`PEColumn` s (Y fusion units and the column's dataflow logic); only
the RS diagonal delivery (which port feeds which column) differs between columns, and it stays in the array.
In the emitted Verilog a column is one shared module (:data:`COLUMN_MODULE`) instantiated X times and a fusion
core one module (:data:`FU_MODULE`) instantiated Y times per column, so the netlist, Verilator and Yosys work
grow with X + Y rather than X * Y for everything but the top-level wiring.
"""

from amaranth import Array, ClockSignal, Const, Instance, Module, Mux, ResetSignal, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from rtl_gen.fusion_unit import CTL_BITS, SUM_BITS, FusionCore, build_decoder
from rtl_gen.params import HWParams, clog2


#: Verilog module name of the fusion unit when the array instantiates it as a shared module.
FU_MODULE = "jaq_fusion_core"
#: Verilog module name of a column of the array (shared by the X columns).
COLUMN_MODULE = "jaq_pe_column"


class _FUPorts:
    """The signals of one fusion-unit instance (same names as :class:`FusionCore`'s ports)."""

    def __init__(self, i):
        self.act = Signal(32, name=f"fu_act_{i}")
        self.wgt = Signal(32, name=f"fu_wgt_{i}")
        self.out = Signal(signed(SUM_BITS), name=f"fu_out_{i}")


def column_signature(p: HWParams) -> dict:
    """Ports of a :class:`PEColumn` for ``p.dataflow`` (the shared control first, then the dataflow's)."""
    Y, df = p.Y, p.dataflow
    sig = {"ctl": In(CTL_BITS), "row_lanes": In(5).array(Y)}
    if df == "WS":
        sig.update({"row_act": In(32).array(Y), "wgt_in": In(32), "wgt_shift": In(1), "seg": In(7),
                    "res": Out(signed(32)).array(Y)})
    elif df == "OS":
        sig.update({"row_wgt": In(32).array(Y), "act_in": In(32), "acc_en": In(1), "acc_clear": In(1),
                    "drain_row": In(clog2(Y)), "res": Out(signed(32))})
    else:
        sig.update({"row_wgt": In(32).array(Y), "colv": In(32).array(p.rmax), "rs_r": In(7),
                    "acc_en": In(1), "acc_clear": In(1), "res": Out(signed(32)).array(Y)})
    return sig


class PEColumn(wiring.Component):
    """One column of the array: Y fusion units (FU ``i`` at row ``i``) and the column's dataflow logic.

    WS: weight registers shifted down from ``wgt_in``, ``row_act[i]`` into FU i, ``res`` = registered column
    sum. OS: ``act_in`` into every FU, ``row_wgt[i]`` into FU i, per-FU accumulators, ``res`` = accumulator of
    ``drain_row``. RS: FU i takes ``colv[i % rs_r]`` and ``row_wgt[i]``, per-FU accumulators, ``res[k]`` =
    replica k's sum (rows ``k*rs_r .. k*rs_r + rs_r - 1``; 0 past the last replica)."""

    def __init__(self, p: HWParams):
        self.p = p
        super().__init__(column_signature(p))

    def elaborate(self, platform):
        m = Module()
        p = self.p
        Y, df = p.Y, p.dataflow
        fus = []
        prod = [Signal(signed(SUM_BITS), name=f"prod_{i}") for i in range(Y)]
        for i in range(Y):
            if p.extra.get("blackbox", False):
                fu = _FUPorts(i)
                m.submodules[f"fu_{i}"] = Instance(
                    FU_MODULE, i_act=fu.act, i_wgt=fu.wgt, i_ctl=self.ctl, i_lanes=self.row_lanes[i], o_out=fu.out)
            else:
                fu = FusionCore()
                m.submodules[f"fu_{i}"] = fu
                m.d.comb += [fu.ctl.eq(self.ctl), fu.lanes.eq(self.row_lanes[i])]
            fus.append(fu)
            m.d.sync += prod[i].eq(fu.out)

        if df == "WS":
            wreg = [Signal(32, name=f"wreg_{i}") for i in range(Y)]
            for i in range(Y):
                m.d.comb += [fus[i].act.eq(self.row_act[i]), fus[i].wgt.eq(wreg[i])]
                with m.If(self.wgt_shift):
                    m.d.sync += wreg[i].eq(self.wgt_in if i == 0 else wreg[i - 1])
            # segmented column sum (stage 3): res[k] = rows [k*seg, (k+1)*seg), registered
            segs = p.ws_segments
            part = _segment_sums(m, prod, self.seg, segs, "ws")
            for k in range(Y):
                r = Signal(signed(min(32, SUM_BITS + clog2(Y) + 1)), name=f"colsum_{k}")
                m.d.sync += r.eq(part[k])
                m.d.comb += self.res[k].eq(r)
            return m

        acc = [Signal(signed(p.acc_bits), name=f"acc_{i}") for i in range(Y)]
        for i in range(Y):
            with m.If(self.acc_en):
                m.d.sync += acc[i].eq(Mux(self.acc_clear, 0, acc[i]) + prod[i])

        if df == "OS":
            for i in range(Y):
                m.d.comb += [fus[i].act.eq(self.act_in), fus[i].wgt.eq(self.row_wgt[i])]
            m.d.comb += self.res.eq(Array(acc)[self.drain_row])
            return m

        # RS: row i of a pass of R kernel rows takes the column's vector for kernel row i % R
        R = p.rmax
        colv = Array(self.colv)
        for i in range(Y):
            kr_i = Signal(range(R), name=f"kr_{i}")
            with m.Switch(self.rs_r):
                for r in range(1, R + 1):
                    with m.Case(r):
                        m.d.comb += kr_i.eq(i % r)
            m.d.comb += [fus[i].act.eq(colv[kr_i]), fus[i].wgt.eq(self.row_wgt[i])]
        # replica sums (stage 4, from the accumulators)
        part = _segment_sums(m, acc, self.rs_r, tuple(range(1, R + 1)), "rs")
        m.d.comb += [self.res[k].eq(part[k]) for k in range(Y)]
        return m


def _segment_sums(m, terms, seg, lengths, name):
    """``out[k]`` = the sum of ``terms[k*seg : (k+1)*seg]`` (0 when ``k*seg`` is past the end) for a run-time
    segment length ``seg`` in ``lengths`` (a chain from the last row up: ``s(i) = t(i) + s(i+1)`` unless row i+1
    starts a segment)."""
    n = len(terms)
    chain = [None] * n
    for i in reversed(range(n)):
        s = Signal(signed(32), name=f"{name}_seg_{i}")
        if i == n - 1:
            m.d.comb += s.eq(terms[i])
        else:
            nxt_start = Signal(name=f"{name}_start_{i + 1}")
            with m.Switch(seg):
                for r in lengths:
                    with m.Case(r):
                        m.d.comb += nxt_start.eq(1 if (i + 1) % r == 0 else 0)
            m.d.comb += s.eq(terms[i] + Mux(nxt_start, 0, chain[i + 1]))
        chain[i] = s
    out = [Signal(signed(32), name=f"{name}_part_{k}") for k in range(n)]
    for k in range(n):
        with m.Switch(seg):
            for r in lengths:
                with m.Case(r):
                    m.d.comb += out[k].eq(chain[k * r] if k * r < n else 0)
    return out


def _column_ports(sig: dict) -> list[tuple[str, str, int]]:
    """(direction 'i'/'o', Verilog port name, element count or 0 for a scalar) of a column signature."""
    out = []
    for name, member in sig.items():
        d = "i" if member.flow == wiring.In else "o"
        out.append((d, name, member.dimensions[0] if member.dimensions else 0))
    return out


class PEArray(wiring.Component):
    """Array datapath for one dataflow. Ports depend on the dataflow (see module doc)."""

    def __init__(self, p: HWParams):
        self.p = p
        X, Y, df = p.X, p.Y, p.dataflow
        sig = {"a_mode": In(2), "w_mode": In(2), "act_signed": In(1), "row_lanes": In(5).array(Y)}
        if df == "WS":  # dw_act: per-FU act vectors of the depthwise mapping (docs section 8), FU (i, j) at i*X + j
            sig.update({"row_act": In(32).array(Y), "col_wgt": In(32).array(X), "wgt_shift": In(1),
                        "dw": In(1), "dw_act": In(32).array(X * Y), "seg": In(7)})
            n_res = X * Y
        elif df == "OS":
            sig.update({"row_wgt": In(32).array(Y), "col_act": In(32).array(X), "acc_en": In(1),
                        "acc_clear": In(1), "drain_row": In(clog2(Y))})
            n_res = X
        else:
            sig.update({"row_wgt": In(32).array(Y), "port_act": In(32).array(p.n_act_ports), "rs_r": In(7),
                        "rs_seff": In(7), "acc_en": In(1), "acc_clear": In(1)})
            n_res = X * Y
        sig["res"] = Out(signed(32)).array(n_res)
        self.n_res = n_res
        super().__init__(sig)

    @property
    def fu_grid(self) -> tuple[int, int]:
        """(rows, columns) of fusion units: Y x X."""
        return self.p.Y, self.p.X

    def _column(self, m, j):
        """Column ``j``: a :class:`PEColumn` submodule, or an instance of the shared Verilog module."""
        p = self.p
        sig = column_signature(p)
        if not p.extra.get("blackbox", False):
            col = PEColumn(p)
            m.submodules[f"col_{j}"] = col
            return col
        # a port bundle with the column's member names, wired to an Instance of COLUMN_MODULE
        col = wiring.Signature(sig).flip().create(path=(f"col{j}",))
        kw = {"i_clk": ClockSignal(), "i_rst": ResetSignal()}
        for d, name, n in _column_ports(sig):
            v = getattr(col, name)
            if n:
                for e in range(n):
                    kw[f"{d}_{name}__{e}"] = v[e]
            else:
                kw[f"{d}_{name}"] = v
        m.submodules[f"col_{j}"] = Instance(COLUMN_MODULE, **kw)
        return col

    def elaborate(self, platform):
        m = Module()
        p = self.p
        X, Y, df = p.X, p.Y, p.dataflow
        # one precision decoder for the whole array
        ctl = Signal(CTL_BITS)
        build_decoder(m, self.a_mode, self.w_mode, self.act_signed, ctl)
        cols = [self._column(m, j) for j in range(X)]
        for j, col in enumerate(cols):
            m.d.comb += col.ctl.eq(ctl)
            m.d.comb += [col.row_lanes[i].eq(self.row_lanes[i]) for i in range(Y)]
            if df == "WS":
                m.d.comb += [col.row_act[i].eq(Mux(self.dw, self.dw_act[i * X + j], self.row_act[i]))
                             for i in range(Y)]
                m.d.comb += [col.wgt_in.eq(self.col_wgt[j]), col.wgt_shift.eq(self.wgt_shift), col.seg.eq(self.seg)]
                m.d.comb += [self.res[k * X + j].eq(col.res[k]) for k in range(Y)]   # segment k of column j
            elif df == "OS":
                m.d.comb += [col.row_wgt[i].eq(self.row_wgt[i]) for i in range(Y)]
                m.d.comb += [col.act_in.eq(self.col_act[j]), col.acc_en.eq(self.acc_en),
                             col.acc_clear.eq(self.acc_clear), col.drain_row.eq(self.drain_row), self.res[j].eq(col.res)]
            else:
                m.d.comb += [col.row_wgt[i].eq(self.row_wgt[i]) for i in range(Y)]
                m.d.comb += [col.rs_r.eq(self.rs_r), col.acc_en.eq(self.acc_en),
                             col.acc_clear.eq(self.acc_clear)]
                m.d.comb += [self.res[j * Y + k].eq(col.res[k]) for k in range(Y)]
                # diagonal delivery: column j's kernel row kr reads port j*seff + kr
                R, D = p.rmax, p.n_act_ports
                for kr in range(R):
                    with m.Switch(self.rs_seff):
                        for s in range(1, R + 1):
                            idx = j * s + kr
                            with m.Case(s):
                                m.d.comb += col.colv[kr].eq(self.port_act[idx] if idx < D else Const(0, 32))
        return m
