"""The compiler's schedule: (layer, accelerator, tiling) -> instruction program, and its golden walker.

The program is the one of docs/execution-model.md section 4:

    SET_LAYER
    for g in range(G):                       # groups outermost
      for the 5 tile loops in the tiling's loop order (outermost first; B has one iteration):
        1. STORE_OUT the previous out tile   if the out tile (g, oc, oh, ow) changed (not on the first iteration);
           a final store (the tile's last ic) is preceded by LOAD_SCALE (and SET_RES for a residual layer)
           and goes through the output unit
        2. LOAD_ACT                          if the act tile (g, ic, oh, ow) changed (or first iteration)
        3. LOAD_WGT                          if the wgt tile (g, ic, oc) changed (or first)
        4. LOAD_PSUM                         if the out tile changed (or first) and ic > 0
        5. COMPUTE (acc = ic > 0)
    STORE_OUT the last out tile
    END

Every instruction record carries everything the RTL controller needs, explicitly (no field has to be derived
from another instruction): tile indices, tile extents (c', m', h', w' and the input extents ih', iw'), the
off-chip element address of the first element, the strides between runs, the run length, beats per run and the
total beats. Off-chip memory is element-addressed per tensor (docs section 2):

* activations (padded input): ``[IH][IW][in_ch]``, element (y, x, ch) at ``(y*IW + x)*in_ch + ch``;
* partial sums (32-bit) and final outputs (``out_bits``, the out tensor): ``[OH][OW][out_ch]``, element (y, x, ch)
  at ``(y*OW + x)*out_ch + ch``;
* output-unit constants: arranged per out tile by :func:`arrange_scales` (docs section 7.1);
* weights: pre-arranged per tile by :func:`arrange_weights`: tiles in (g, oc-tile, ic-tile) order, each tile
  ``[m'][K][K][c']`` contiguous (window vectors under the depthwise mapping, docs section 8);
  ``LoadWgt.dram_base`` is the tile's first element.

A run covers ``run_len`` consecutive elements and costs ``beats_per_run = ceil(run_len / E_b)`` beats; runs are
visited in row-major order of their 2-D index (act: input row, input column; out: output row, output column;
wgt: (oc, kh, kw) with a single stride). Each run starts on a fresh buffer line; the run with index ``r`` starts
at buffer line ``r * beats_per_run`` (single buffering: every tile sits at line 0 of its buffer).

:func:`walk` executes the program abstractly and returns the golden counters (cycles and every access count)
that both the analytical model (:mod:`jaq.hw.model`) and the RTL's performance counters must reproduce exactly.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field
from typing import Iterator, Sequence

import numpy as np

from jaq.errors import JaqError
from jaq.hw import timing as T
from jaq.hw.packing import window_vectors
from jaq.hw.placement import Placement, arranged_weight_count, single_layer
from jaq.hw.records import Accelerator, Layer, Tiling

# ----------------------------------------------------------------------------------------------------------------
# Instruction records
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SetLayer:
    """Layer constants for the whole program. ``pf`` lanes per vector; ``e_act``/``e_wgt``/``e_out`` elements per
    beat; ``rs_passes``/``rs_q``/``rs_last_rows`` the row-stationary geometry (unused by WS/OS)."""

    kind: str
    in_ch: int
    out_ch: int
    groups: int
    cg: int  # input channels per group
    mg: int  # output channels per group
    in_h: int
    in_w: int
    out_h: int
    out_w: int
    kernel: int
    stride: int
    act_bits: int
    wgt_bits: int
    act_signed: bool
    dataflow: str
    pe_x: int
    pe_y: int
    pf: int
    e_act: int
    e_wgt: int
    e_out: int
    bus_bits: int
    dram_latency: int
    pipeline_depth: int
    rs_passes: int
    rs_q: int
    rs_last_rows: int
    t_ic: int
    t_oc: int
    t_oh: int
    t_ow: int
    n_ic: int
    n_oc: int
    n_oh: int
    n_ow: int
    loop_order: tuple[str, ...]
    out_bits: int = 32
    out_signed: bool = True
    e_fin: int = 0  # final outputs per beat, W / out_bits
    store_lines: int = 1  # n_u: OBUF lines per output-unit step of the final stores (section 7.4)
    overlap: bool = False  # double-buffered: DMA instructions run beside COMPUTE (section 9)
    op: str = "SET_LAYER"


@dataclass(frozen=True)
class LoadAct:
    """Load the activation tile (g, ic, oh, ow): ih' x iw' runs of c' channels. Run (y, x) starts at
    ``dram_base + y*row_stride + x*col_stride`` (elements) and at buffer line ``(y*iw + x)*beats_per_run``."""

    g: int
    ic: int
    oh: int
    ow: int
    c: int
    h: int
    w: int
    ih: int
    iw: int
    dram_base: int
    row_stride: int
    col_stride: int
    run_len: int
    n_runs: int
    beats_per_run: int
    beats: int
    half: int = 0  #: buffer half written (double buffering, section 9)
    op: str = "LOAD_ACT"


@dataclass(frozen=True)
class LoadWgt:
    """Load the weight tile (g, ic, oc): m'*K*K runs of c' weights, contiguous (run r at ``dram_base + r*c'``),
    buffer line ``r*beats_per_run``; run r = (oc_local*K + kh)*K + kw."""

    g: int
    ic: int
    oc: int
    c: int
    m: int
    dram_base: int
    run_stride: int
    run_len: int
    n_runs: int
    beats_per_run: int
    beats: int
    half: int = 0  #: buffer half written (double buffering, section 9)
    op: str = "LOAD_WGT"


@dataclass(frozen=True)
class _OutTileTransfer:
    """Fields shared by the out-tile transfers: tile (g, oc, oh, ow) of h' x w' runs of m' 32-bit words;
    run (y, x) at ``dram_base + y*row_stride + x*col_stride``, buffer line ``(y*w + x)*beats_per_run``."""

    g: int
    oc: int
    oh: int
    ow: int
    m: int
    h: int
    w: int
    dram_base: int
    row_stride: int
    col_stride: int
    run_len: int
    n_runs: int
    beats_per_run: int
    beats: int
    half: int = 0  #: OBUF half (double buffering, section 9)


@dataclass(frozen=True)
class LoadPsum(_OutTileTransfer):
    """Load a partial-sum tile back into the output buffer (addressing of :class:`_OutTileTransfer`)."""

    op: str = "LOAD_PSUM"


@dataclass(frozen=True)
class StoreOut(_OutTileTransfer):
    """Store the out tile (addressing of :class:`_OutTileTransfer`). ``final`` False: a partial sum, 32-bit words
    to the psum tensor. ``final`` True (the tile's last contribution had the last ic index): through the output
    unit to the out tensor at the layer's ``out_bits``; ``run_len``/``beats_per_run``/``beats`` then count output
    elements and write beats, and ``lines`` the OBUF lines read (h' * w' * ceil(m'/E_o); docs section 7.1). A
    pooled layer's final store writes one run (``n_runs`` 1: the pooled pixel; docs section 7.2)."""

    final: bool = True
    lines: int = 0
    steps: int = 0  #: output-unit steps of a final store (h' * w' * ceil(m'/(n_u E_o)); section 7.4)
    res_beats: int = 0  #: residual beats read beside a final store (h' * w' * ceil(m'/E_r); section 7.3)
    op: str = "STORE_OUT"


@dataclass(frozen=True)
class LoadScale:
    """Load the output-unit constants of out tile (g, oc): one run of ``run_len`` 32-bit words at ``dram_base``
    of the scale tensor (:func:`arrange_scales`), ``beats`` = 3 * ceil(m'/E_o)."""

    g: int
    oc: int
    m: int
    dram_base: int
    run_len: int
    beats: int
    op: str = "LOAD_SCALE"


@dataclass(frozen=True)
class SetRes:
    """The residual view of out tile (g, oc, oh, ow) for the final store that follows: run (y, x) of the tile's
    residual operand starts at element ``dram_base + y*row_stride + x*col_stride`` of the residual view."""

    g: int
    oc: int
    oh: int
    ow: int
    dram_base: int
    row_stride: int
    col_stride: int
    op: str = "SET_RES"


@dataclass(frozen=True)
class Compute:
    """Run the array on the resident tiles: extents c', m', h', w', ``cv = ceil(c'/pf)`` channel vectors;
    ``acc`` False: the first contribution overwrites the OBUF words (ic == 0), True: accumulate. ``steps`` is
    the dataflow's step count (docs section 5), given for the controller's convenience."""

    g: int
    ic: int
    oc: int
    oh: int
    ow: int
    c: int
    m: int
    h: int
    w: int
    cv: int
    acc: bool
    steps: int
    act_half: int = 0  #: buffer halves read and accumulated into (double buffering, section 9)
    wgt_half: int = 0
    out_half: int = 0
    op: str = "COMPUTE"


@dataclass(frozen=True)
class Sync:
    """Wait until the engine and the DMA are idle (double-buffered programs, before the epilogue; section 9)."""

    op: str = "SYNC"


@dataclass(frozen=True)
class End:
    op: str = "END"


Instruction = SetLayer | LoadAct | LoadWgt | LoadPsum | LoadScale | SetRes | StoreOut | Compute | Sync | End
OPS: tuple[str, ...] = ("SET_LAYER", "LOAD_ACT", "LOAD_WGT", "LOAD_PSUM", "LOAD_SCALE", "SET_RES", "STORE_OUT",
                        "COMPUTE", "SYNC", "END")
#: Instructions the DMA executes (one at a time, in program order); the others are barriers in a double-buffered
#: program (section 9).
DMA_OPS: frozenset[str] = frozenset({"LOAD_ACT", "LOAD_WGT", "LOAD_PSUM", "LOAD_SCALE", "SET_RES", "STORE_OUT"})


@dataclass
class Program:
    """An instruction program for one layer. ``instructions[0]`` is SET_LAYER, the last one END."""

    layer: Layer
    accel: Accelerator
    tiling: Tiling
    instructions: list = field(default_factory=list)
    #: where the tensors live (jaq.hw.placement); the records' addresses are element offsets from its views
    placement: Placement | None = None

    def __len__(self) -> int:
        return len(self.instructions)

    def __iter__(self) -> Iterator:
        return iter(self.instructions)

    def counts_by_op(self) -> dict[str, int]:
        out = {op: 0 for op in OPS}
        for ins in self.instructions:
            out[ins.op] += 1
        return out

    def listing(self, limit: int | None = None) -> str:
        """A readable listing, one instruction per line (``limit``: at most that many lines, then a summary)."""
        lines = [f"# layer {self.layer.name or self.layer.kind}: {self.layer.to_dict()}",
                 f"# tiling {self.tiling.to_dict()}  dataflow {self.accel.dataflow}  "
                 f"PE {self.accel.pe_y}x{self.accel.pe_x}  W={self.accel.dram_bits_per_cycle} "
                 f"L={self.accel.dram_latency_cycles}"]
        for i, ins in enumerate(self.instructions):
            if limit is not None and i >= limit:
                lines.append(f"... {len(self.instructions) - limit} more instructions")
                break
            d = asdict(ins)
            op = d.pop("op")
            if op == "SET_LAYER":
                keep = ("kernel", "stride", "act_bits", "wgt_bits", "pf", "e_act", "e_wgt", "e_out", "groups",
                        "cg", "mg", "dataflow", "pipeline_depth")
                d = {k: d[k] for k in keep}
            body = " ".join(f"{k}={int(v) if isinstance(v, bool) else v}" for k, v in d.items())
            lines.append(f"{i:6d}  {op:<9s} {body}")
        return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------------
# Compiler
# ----------------------------------------------------------------------------------------------------------------
def _extent(dim: int, tile: int, idx: int) -> int:
    return min(tile, dim - idx * tile)


def check_tiling(layer: Layer, accel: Accelerator, tiling: Tiling) -> None:
    """Raise :class:`JaqError` naming the field if ``tiling`` is illegal for ``layer`` on ``accel`` (section 3)."""
    dims = {"t_" + k.lower(): v for k, v in layer.tile_dims.items()}
    for n, d in dims.items():
        t = getattr(tiling, n)
        if t > d:
            raise JaqError(f"tile {t} larger than its dimension {d}; use at most {d}", f"tiling.{n}")
    if layer.depthwise and tiling.t_oc > 1 and not T.uses_dw_mapping(accel.dataflow, True):
        raise JaqError(f"a depthwise layer runs one channel per tile on {accel.dataflow} arrays (the depthwise "
                       f"mapping is WS's, docs/execution-model.md section 8); use t_oc=1", "tiling.t_oc")
    if layer.pool and (tiling.t_oh, tiling.t_ow) != (layer.out_h, layer.out_w):
        raise JaqError(f"a pooled layer's out tile covers every pixel: use t_oh={layer.out_h}, t_ow={layer.out_w}",
                       "tiling.t_oh")
    W = accel.dram_bits_per_cycle
    e_a, e_w, e_o = (T.elems_per_beat(W, b) for b in (layer.act_bits, layer.wgt_bits, T.OUT_BITS))
    act, wgt, out = T.footprints(tiling.t_ic, tiling.t_oc, tiling.t_oh, tiling.t_ow, layer.kernel, layer.stride,
                                 e_a, e_w, e_o, layer.depthwise, T.uses_dw_mapping(accel.dataflow, layer.depthwise),
                                 T.fusion_factor(layer.act_bits, layer.wgt_bits))
    for name, need, kb in (("act", act, accel.act_buf_kb), ("wgt", wgt, accel.wgt_buf_kb),
                           ("out", out, accel.out_buf_kb)):
        have = T.usable_lines(T.buffer_lines(kb, W), accel.double_buffer)
        if need > have:
            what = f"half of the {name} buffer has" if accel.double_buffer else f"the {name} buffer has"
            raise JaqError(f"the {name} tile needs {need} lines of {W} bits but {what} {have} "
                           f"({kb} KB); use smaller tiles or a larger buffer", f"tiling ({name}_buf_kb)")


def weight_tile_elems(layer: Layer, c: int, m: int, dataflow: str) -> int:
    """Elements of one arranged weight tile of extents (c', m'): ``m' * K^2 * c'``, or under the depthwise
    mapping ``n_g * m' * pf`` (window vectors, section 8)."""
    if T.uses_dw_mapping(dataflow, layer.depthwise):
        pf = T.fusion_factor(layer.act_bits, layer.wgt_bits)
        return T.dw_groups(layer.kernel, pf) * m * pf
    return m * layer.kernel * layer.kernel * c


def weight_tile_bases(layer: Layer, tiling: Tiling, dataflow: str) -> np.ndarray:
    """Element address of each weight tile in the pre-arranged weight array, shape (G, n_oc, n_ic) with G the
    serial groups (:attr:`~jaq.hw.records.Layer.tile_groups`); tiles are stored in (g, oc-tile, ic-tile) order,
    each :func:`weight_tile_elems` long."""
    n = tiling.counts(layer)
    G = layer.tile_groups
    Cg, Mg = layer.tile_dims["IC"], layer.tile_dims["OC"]
    bases = np.zeros((G, n["OC"], n["IC"]), dtype=np.int64)
    addr = 0
    for g in range(G):
        for oc in range(n["OC"]):
            m = _extent(Mg, tiling.t_oc, oc)
            for ic in range(n["IC"]):
                bases[g, oc, ic] = addr
                addr += weight_tile_elems(layer, _extent(Cg, tiling.t_ic, ic), m, dataflow)
    return bases


def arrange_weights(weights: np.ndarray, layer: Layer, tiling: Tiling, dataflow: str) -> tuple[np.ndarray, np.ndarray]:
    """Lay out integer weights for off-chip memory, per tile (docs section 2).

    ``weights``: integer array ``[out_ch][in_ch/groups][K][K]`` (PyTorch's conv layout; fc: ``[out][in]`` or
    ``[out][in][1][1]``). Returns ``(flat, bases)``: ``flat`` the 1-D array of :func:`~jaq.hw.placement.arranged_weight_count`
    elements (same dtype), tiles in (g, oc-tile, ic-tile) order, each ``[m'][kh][kw][c']`` (under the depthwise
    mapping of ``dataflow``: ``[n_g][m'][pf]`` window vectors, section 8); ``bases`` the (G, n_oc, n_ic) array
    of each tile's first element (what ``LoadWgt.dram_base`` holds)."""
    w = np.asarray(weights)
    K, G = layer.kernel, layer.tile_groups
    Cg, Mg = layer.tile_dims["IC"], layer.tile_dims["OC"]
    if w.ndim == 2:
        w = w.reshape(w.shape[0], w.shape[1], 1, 1)
    if w.shape != (layer.out_ch, Cg, K, K):
        raise JaqError(f"weights have shape {w.shape}, expected {(layer.out_ch, Cg, K, K)}", "weights")
    bases = weight_tile_bases(layer, tiling, dataflow)
    n = tiling.counts(layer)
    dw_mapped = T.uses_dw_mapping(dataflow, layer.depthwise)
    pf = T.fusion_factor(layer.act_bits, layer.wgt_bits)
    flat = np.zeros(arranged_weight_count(layer), dtype=w.dtype)
    for g in range(G):
        for oc in range(n["OC"]):
            o0 = g * Mg + oc * tiling.t_oc
            m = _extent(Mg, tiling.t_oc, oc)
            for ic in range(n["IC"]):
                c0 = ic * tiling.t_ic
                c = _extent(Cg, tiling.t_ic, ic)
                blk = w[o0:o0 + m, c0:c0 + c, :, :]
                blk = window_vectors(blk[:, 0], pf) if dw_mapped else blk.transpose(0, 2, 3, 1)
                b = int(bases[g, oc, ic])
                flat[b:b + blk.size] = blk.reshape(-1)
    return flat, bases


def scale_tile_bases(layer: Layer, tiling: Tiling, bus_bits: int) -> np.ndarray:
    """Word address of each out tile's constants in the arranged scale tensor, shape (G, n_oc): tiles in
    (g, oc-tile) order, each ``3 * E_o * ceil(m'/E_o)`` words (docs section 7.1)."""
    n = tiling.counts(layer)
    e_o = T.elems_per_beat(bus_bits, T.OUT_BITS)
    bases = np.zeros((layer.tile_groups, n["OC"]), dtype=np.int64)
    addr = 0
    for g in range(layer.tile_groups):
        for oc in range(n["OC"]):
            bases[g, oc] = addr
            addr += T.scale_tile_beats(_extent(layer.tile_dims["OC"], tiling.t_oc, oc), e_o) * e_o
    return bases


def arrange_scales(mult, bias, layer: Layer, tiling: Tiling, bus_bits: int) -> np.ndarray:
    """The scale tensor of the output unit: per (g, oc-tile), per chunk of ``E_o`` channels, ``E_o`` multipliers,
    ``E_o`` low and ``E_o`` high words of the 64-bit biases (lanes beyond the tile zero). ``mult``/``bias``: one
    integer per output channel (:class:`jaq.hw.requant.Requant`). Returns signed 32-bit words as int64."""
    mult, bias = np.asarray(mult, dtype=np.int64), np.asarray(bias, dtype=np.int64)
    if mult.shape != (layer.out_ch,) or bias.shape != (layer.out_ch,):
        raise JaqError(f"{mult.shape[0]} multipliers / {bias.shape[0]} biases for {layer.out_ch} channels",
                       "requant")
    e_o = T.elems_per_beat(bus_bits, T.OUT_BITS)
    Mg, n = layer.tile_dims["OC"], tiling.counts(layer)
    words = []
    for g in range(layer.tile_groups):
        for oc in range(n["OC"]):
            o0, m = g * Mg + oc * tiling.t_oc, _extent(Mg, tiling.t_oc, oc)
            for j in range(T.ceil_div(m, e_o)):
                lanes = np.zeros((3, e_o), dtype=np.int64)
                k = min(e_o, m - j * e_o)
                ch = slice(o0 + j * e_o, o0 + j * e_o + k)
                lanes[0, :k] = mult[ch]
                lanes[1, :k] = _signed32(bias[ch] & 0xFFFFFFFF)
                lanes[2, :k] = bias[ch] >> 32
                words.append(lanes.reshape(-1))
    return np.concatenate(words) if words else np.zeros(0, dtype=np.int64)


def _signed32(u: np.ndarray) -> np.ndarray:
    return np.where(u >= 1 << 31, u - (1 << 32), u)


class _Iteration:
    """One tile iteration of the loop nest: indices, extents, which operand tiles differ from the previous
    iteration's (``*_new``) and the buffer halves it uses."""

    __slots__ = ("g", "ic", "oc", "oh", "ow", "c", "m", "h", "w", "act_key", "wgt_key", "out_key", "act_new",
                 "wgt_new", "out_new", "act_half", "wgt_half", "out_half", "prev")

    def __init__(self, g, ic, oc, oh, ow, c, m, h, w, dw: bool, prev: "_Iteration | None"):
        self.g, self.ic, self.oc, self.oh, self.ow, self.c, self.m, self.h, self.w = g, ic, oc, oh, ow, c, m, h, w
        self.act_key = (g, oc, oh, ow) if dw else (g, ic, oh, ow)  # section 8: a depthwise act tile follows oc
        self.wgt_key, self.out_key = (g, ic, oc), (g, oc, oh, ow)
        self.prev = prev
        self.act_new = prev is None or self.act_key != prev.act_key
        self.wgt_new = prev is None or self.wgt_key != prev.wgt_key
        self.out_new = prev is None or self.out_key != prev.out_key
        self.act_half = self.wgt_half = self.out_half = 0


def compile_layer(layer: Layer, accel: Accelerator, tiling: Tiling, placement: Placement | None = None) -> Program:
    """Compile one layer into its instruction program (raises :class:`JaqError` for an illegal tiling).

    ``placement``: where its tensors live (default :func:`jaq.hw.placement.single_layer`); the row pitches of its
    act and out views set the strides, the records hold element offsets from the views' origins."""
    check_tiling(layer, accel, tiling)
    if placement is None:
        placement = single_layer(layer, tiling, accel.dram_bits_per_cycle)[0]
    placement.check(layer, f"layer {layer.name or layer.kind}: ")
    act_row, out_row = placement.act.row_elems, placement.out.row_elems
    res_row = placement.res.row_elems if placement.res is not None else 0
    n = tiling.counts(layer)
    K, S, G = layer.kernel, layer.stride, layer.tile_groups
    Cg, Mg = layer.tile_dims["IC"], layer.tile_dims["OC"]
    dw = layer.depthwise  # section 8: the channel tile is the OC tile; act tiles follow it
    W = accel.dram_bits_per_cycle
    e_a, e_w, e_o = (T.elems_per_beat(W, b) for b in (layer.act_bits, layer.wgt_bits, T.OUT_BITS))
    e_f = T.elems_per_beat(W, layer.out_bits)
    pf = T.fusion_factor(layer.act_bits, layer.wgt_bits)
    passes, q, last_rows = T.rs_geometry(K, S, accel.pe_y)
    params = T.ComputeParams(K, S, accel.pe_x, accel.pe_y, pf, layer.act_bits)
    step_terms = T.compute_terms(accel.dataflow, params, dw)["steps"]
    IW, OW = layer.in_w, layer.out_w
    prog = Program(layer, accel, tiling, placement=placement)
    ins = prog.instructions
    n_u = T.store_lines_per_step(accel.out_unit_lines, layer.out_bits, layer.res_bits)
    ins.append(SetLayer(
        kind=layer.kind, in_ch=layer.in_ch, out_ch=layer.out_ch, groups=layer.groups, cg=layer.in_ch_per_group,
        mg=layer.out_ch_per_group, in_h=layer.in_h,
        in_w=IW, out_h=layer.out_h, out_w=OW, kernel=K, stride=S, act_bits=layer.act_bits,
        wgt_bits=layer.wgt_bits, act_signed=layer.act_signed, dataflow=accel.dataflow, pe_x=accel.pe_x,
        pe_y=accel.pe_y, pf=pf, e_act=e_a, e_wgt=e_w, e_out=e_o, bus_bits=W,
        dram_latency=accel.dram_latency_cycles, pipeline_depth=T.pipeline_depth(accel.dataflow),
        rs_passes=passes, rs_q=q, rs_last_rows=last_rows, t_ic=tiling.t_ic, t_oc=tiling.t_oc,
        t_oh=tiling.t_oh, t_ow=tiling.t_ow, n_ic=n["IC"], n_oc=n["OC"], n_oh=n["OH"], n_ow=n["OW"],
        loop_order=tiling.loop_order, out_bits=layer.out_bits, out_signed=layer.out_signed, e_fin=e_f,
        store_lines=n_u, overlap=accel.double_buffer))
    wbases = weight_tile_bases(layer, tiling, accel.dataflow)
    dw_mapped = T.uses_dw_mapping(accel.dataflow, dw)
    sbases = scale_tile_bases(layer, tiling, W)
    order = tiling.loop_order
    ranges = [range(n[d]) for d in order]

    def out_instr(cls, key, **extra):
        g, oc, oh, ow = key
        m, h, w = _extent(Mg, tiling.t_oc, oc), _extent(layer.out_h, tiling.t_oh, oh), _extent(OW, tiling.t_ow, ow)
        final = bool(extra.get("final"))
        e = e_f if final else e_o
        row = out_row if final else OW * layer.out_ch  # final outputs: the consumer's pitch; psums: their own
        base = oh * tiling.t_oh * row + ow * tiling.t_ow * layer.out_ch + g * Mg + oc * tiling.t_oc
        if final:
            extra["lines"] = T.out_tile_beats(m, h, w, e_o)
            extra["steps"] = T.final_store_steps(m, h, w, e_o, n_u)
            if layer.res_bits:
                extra["res_beats"] = T.out_tile_beats(m, h, w, T.elems_per_beat(W, layer.res_bits))
        if final and layer.pool:  # the unit sums the tile's h' x w' pixels into one output pixel (section 7.2)
            return cls(g=g, oc=oc, oh=oh, ow=ow, m=m, h=h, w=w, dram_base=base, row_stride=0, col_stride=0,
                       run_len=m, n_runs=1, beats_per_run=T.ceil_div(m, e), beats=T.ceil_div(m, e), **extra)
        return cls(g=g, oc=oc, oh=oh, ow=ow, m=m, h=h, w=w, dram_base=base, row_stride=row,
                   col_stride=layer.out_ch, run_len=m, n_runs=h * w, beats_per_run=T.ceil_div(m, e),
                   beats=T.out_tile_beats(m, h, w, e), **extra)

    halves = {"act": 0, "wgt": 0, "out": 0}  # loads (visits) of each operand so far; the half is their parity

    def store(it, half: int) -> None:
        key, final = it.out_key, it.ic == n["IC"] - 1
        if final:
            g, oc = key[0], key[1]
            m = _extent(Mg, tiling.t_oc, oc)
            beats = T.scale_tile_beats(m, e_o)
            ins.append(LoadScale(g=g, oc=oc, m=m, dram_base=int(sbases[g, oc]), run_len=beats * e_o, beats=beats))
            if layer.res_bits:
                _, _, oh, ow = key
                ins.append(SetRes(g=g, oc=oc, oh=oh, ow=ow, dram_base=oh * tiling.t_oh * res_row + ow * tiling.t_ow
                                  * layer.out_ch + g * Mg + oc * tiling.t_oc, row_stride=res_row,
                                  col_stride=layer.out_ch))
        ins.append(out_instr(StoreOut, key, final=final, half=half))

    def load_act(it) -> None:
        oh, ow, h, w = it.oh, it.ow, it.h, it.w
        ih, iw = T.in_extent(h, K, S), T.in_extent(w, K, S)
        ch0, run = (it.oc * tiling.t_oc, it.m) if dw else (it.g * Cg + it.ic * tiling.t_ic, it.c)
        base = oh * tiling.t_oh * S * act_row + ow * tiling.t_ow * S * layer.in_ch + ch0
        ins.append(LoadAct(g=it.g, ic=it.ic, oh=oh, ow=ow, c=run, h=h, w=w, ih=ih, iw=iw, dram_base=base,
                           row_stride=act_row, col_stride=layer.in_ch, run_len=run, n_runs=ih * iw,
                           beats_per_run=T.ceil_div(run, e_a), beats=T.act_tile_beats(run, h, w, K, S, e_a),
                           half=it.act_half))

    def load_wgt(it) -> None:
        run, n_runs = (it.m * pf, T.dw_groups(K, pf)) if dw_mapped else (it.c, it.m * K * K)
        ins.append(LoadWgt(g=it.g, ic=it.ic, oc=it.oc, c=it.c, m=it.m, dram_base=int(wbases[it.g, it.oc, it.ic]),
                           run_stride=run, run_len=run, n_runs=n_runs, beats_per_run=T.ceil_div(run, e_w),
                           beats=T.wgt_tile_beats(it.c, it.m, K, e_w, dw_mapped, pf), half=it.wgt_half))

    def loads(it) -> None:
        if it.act_new:
            load_act(it)
        if it.wgt_new:
            load_wgt(it)
        if it.out_new and it.ic > 0:
            ins.append(out_instr(LoadPsum, it.out_key, half=it.out_half))

    def compute(it) -> None:
        ins.append(Compute(g=it.g, ic=it.ic, oc=it.oc, oh=it.oh, ow=it.ow, c=it.c, m=it.m, h=it.h, w=it.w,
                           cv=T.ceil_div(it.c, pf), acc=it.ic > 0, steps=T.sum_terms(step_terms, it.c, it.m, it.h,
                                                                                    it.w),
                           act_half=it.act_half, wgt_half=it.wgt_half, out_half=it.out_half))

    prev = None
    for g in range(G):
        group = []
        for idx in itertools.product(*ranges):
            pos = dict(zip(order, idx))
            it = _Iteration(g, pos["IC"], pos["OC"], pos["OH"], pos["OW"], _extent(Cg, tiling.t_ic, pos["IC"]),
                            _extent(Mg, tiling.t_oc, pos["OC"]), _extent(layer.out_h, tiling.t_oh, pos["OH"]),
                            _extent(OW, tiling.t_ow, pos["OW"]), dw, prev)
            for k in ("act", "wgt", "out"):
                halves[k] += getattr(it, f"{k}_new")
            it.act_half, it.wgt_half, it.out_half = ((halves[k] - 1) % 2 if accel.double_buffer else 0
                                                     for k in ("act", "wgt", "out"))
            group.append(it)
            prev = it
        if not accel.double_buffer:  # section 4: store the previous out tile, load what changed, compute
            for i, it in enumerate(group):
                if it.out_new and it.prev is not None:
                    store(it.prev, it.prev.out_half)
                loads(it)
                compute(it)
            continue
        # section 9: each group a pipeline of stages, its own prologue and epilogue
        loads(group[0])
        for i, it in enumerate(group):
            compute(it)
            if i > 0 and it.out_new:
                store(group[i - 1], group[i - 1].out_half)
            if i + 1 < len(group):
                loads(group[i + 1])
        ins.append(Sync())
        store(group[-1], group[-1].out_half)
        prev = None  # the next group starts a new pipeline: its first tiles are all loaded
    if not accel.double_buffer:
        store(prev, prev.out_half)
    ins.append(End())
    return prog


# ----------------------------------------------------------------------------------------------------------------
# Golden walker
# ----------------------------------------------------------------------------------------------------------------
#: Counter names walk() returns (the model's ``accesses`` use the same names). Units in the names:
#: ``*_vectors`` fusion-unit operands, ``*_lines`` W-bit buffer lines, ``*_words`` 32-bit words, ``*_beats``
#: W-bit off-chip transfers, ``*_bits`` bits, ``cycles*`` core cycles, ``n_*`` instruction counts.
COUNTERS: tuple[str, ...] = (
    "cycles", "macs", "fu_active_cycles", "compute_steps",
    "act_buf_rd_vectors", "wgt_buf_rd_vectors", "out_buf_rd_words", "out_buf_wr_words",
    "act_buf_wr_lines", "wgt_buf_wr_lines", "out_buf_wr_lines", "out_buf_rd_lines",
    "act_buf_rd_bits", "act_buf_wr_bits", "wgt_buf_rd_bits", "wgt_buf_wr_bits", "out_buf_rd_bits",
    "out_buf_wr_bits",
    "dram_rd_beats", "dram_wr_beats", "dram_rd_bits", "dram_wr_bits",
    "act_load_beats", "wgt_load_beats", "psum_load_beats", "scale_load_beats", "store_beats",
    "final_store_beats", "final_store_lines", "final_store_steps", "scale_buf_wr_lines", "scale_buf_rd_lines",
    "out_unit_lanes", "res_load_beats",
    "n_set_layer", "n_load_act", "n_load_wgt", "n_load_psum", "n_load_scale", "n_store_out", "n_store_final",
    "n_set_res", "n_store_res", "n_compute", "n_sync", "n_end",
    "cycles_set_layer", "cycles_load_act", "cycles_load_wgt", "cycles_load_psum", "cycles_load_scale",
    "cycles_set_res", "cycles_store_out", "cycles_compute", "cycles_sync", "cycles_end",
)


def derive_counters(c: dict) -> dict:
    """Fill the derived counters (bits, DRAM totals, cycles) from the primary ones, in place; ints or tensors.

    Primary: the ``n_*`` counts, the ``*_load_beats``, ``store_beats``, ``final_store_*`` volumes, the compute
    counters and the layer's bit widths
    under the keys ``_act_vec_bits``, ``_wgt_vec_bits``, ``_bus_bits``, ``_latency``, ``_depth`` (removed)."""
    W, L, D = c.pop("_bus_bits"), c.pop("_latency"), c.pop("_depth")
    avb, wvb = c.pop("_act_vec_bits"), c.pop("_wgt_vec_bits")
    partial_beats = c["store_beats"] - c["final_store_beats"]
    c["act_buf_wr_lines"] = c["act_load_beats"]
    c["wgt_buf_wr_lines"] = c["wgt_load_beats"]
    c["out_buf_wr_lines"] = c["psum_load_beats"]
    c["out_buf_rd_lines"] = partial_beats + c["final_store_lines"]
    c["scale_buf_wr_lines"] = c["scale_load_beats"]
    c["scale_buf_rd_lines"] = c["final_store_lines"] * T.SCALE_BEATS_PER_CHUNK  # three scale memories per line
    c["out_unit_lanes"] = c["final_store_lines"] * T.elems_per_beat(W, T.OUT_BITS)
    c["act_buf_rd_bits"] = c["act_buf_rd_vectors"] * avb
    c["wgt_buf_rd_bits"] = c["wgt_buf_rd_vectors"] * wvb
    c["act_buf_wr_bits"] = c["act_buf_wr_lines"] * W
    c["wgt_buf_wr_bits"] = c["wgt_buf_wr_lines"] * W
    c["out_buf_rd_bits"] = c["out_buf_rd_words"] * T.OUT_BITS + c["out_buf_rd_lines"] * W
    c["out_buf_wr_bits"] = c["out_buf_wr_words"] * T.OUT_BITS + c["out_buf_wr_lines"] * W
    c["dram_rd_beats"] = (c["act_load_beats"] + c["wgt_load_beats"] + c["psum_load_beats"] + c["scale_load_beats"]
                          + c["res_load_beats"])
    c["dram_wr_beats"] = c["store_beats"]
    c["dram_rd_bits"] = c["dram_rd_beats"] * W
    c["dram_wr_bits"] = c["dram_wr_beats"] * W
    c["cycles_set_layer"] = c["n_set_layer"] * T.set_layer_cycles()
    c["cycles_end"] = c["n_end"] * T.end_cycles()
    c["cycles_load_act"] = c["n_load_act"] * T.load_cycles(0, L) + c["act_load_beats"]
    c["cycles_load_wgt"] = c["n_load_wgt"] * T.load_cycles(0, L) + c["wgt_load_beats"]
    c["cycles_load_psum"] = c["n_load_psum"] * T.load_cycles(0, L) + c["psum_load_beats"]
    c["cycles_load_scale"] = c["n_load_scale"] * T.load_cycles(0, L) + c["scale_load_beats"]
    c["cycles_set_res"] = c["n_set_res"] * T.ISSUE_CYCLES
    c["cycles_store_out"] = ((c["n_store_out"] - c["n_store_final"]) * T.store_cycles(0) + partial_beats
                             + c["n_store_final"] * T.final_store_cycles(0) + c["final_store_steps"]
                             + c["n_store_res"] * T.residual_wait_cycles(L))
    c["cycles_compute"] = c["n_compute"] * T.compute_cycles(0, D) + c["compute_steps"]
    c["cycles_sync"] = c["n_sync"] * T.sync_cycles()
    # the sum of every instruction's issue + body: the wall clock of a single-buffered program (section 5); a
    # double-buffered one's producer replaces it by its overlapped cycles (section 9)
    c["cycles"] = (c["cycles_set_layer"] + c["cycles_load_act"] + c["cycles_load_wgt"] + c["cycles_load_psum"]
                   + c["cycles_load_scale"] + c["cycles_set_res"] + c["cycles_store_out"] + c["cycles_compute"]
                   + c["cycles_sync"] + c["cycles_end"])
    return c


def walk(program: Program, layer: Layer | None = None, accel: Accelerator | None = None) -> dict[str, int]:
    """Golden counts of ``program``: executes it instruction by instruction (pure Python ints) and returns every
    counter of :data:`COUNTERS`. Cycles add each instruction's own cost from :mod:`jaq.hw.timing`."""
    layer = layer or program.layer
    accel = accel or program.accel
    W, L = accel.dram_bits_per_cycle, accel.dram_latency_cycles
    D = T.pipeline_depth(accel.dataflow)
    pf = T.fusion_factor(layer.act_bits, layer.wgt_bits)
    params = T.ComputeParams(layer.kernel, layer.stride, accel.pe_x, accel.pe_y, pf, layer.act_bits)
    terms = T.compute_terms(accel.dataflow, params, layer.depthwise)
    c = {k: 0 for k in COUNTERS}
    clock = _Controller(program.instructions[0].overlap if program.instructions else False)
    for ins in program.instructions:
        op = ins.op
        if op == "SET_LAYER":
            c["n_set_layer"] += 1
            cost = T.set_layer_cycles()
        elif op == "END":
            c["n_end"] += 1
            cost = T.end_cycles()
        elif op == "SYNC":
            c["n_sync"] += 1
            cost = T.sync_cycles()
        elif op == "LOAD_ACT":
            c["n_load_act"] += 1
            c["act_load_beats"] += ins.beats
            cost = T.load_cycles(ins.beats, L)
        elif op == "LOAD_WGT":
            c["n_load_wgt"] += 1
            c["wgt_load_beats"] += ins.beats
            cost = T.load_cycles(ins.beats, L)
        elif op == "LOAD_PSUM":
            c["n_load_psum"] += 1
            c["psum_load_beats"] += ins.beats
            cost = T.load_cycles(ins.beats, L)
        elif op == "LOAD_SCALE":
            c["n_load_scale"] += 1
            c["scale_load_beats"] += ins.beats
            cost = T.load_cycles(ins.beats, L)
        elif op == "SET_RES":
            c["n_set_res"] += 1
            cost = T.ISSUE_CYCLES
        elif op == "STORE_OUT":
            c["n_store_out"] += 1
            c["store_beats"] += ins.beats
            if ins.final:
                c["n_store_final"] += 1
                c["final_store_beats"] += ins.beats
                c["final_store_lines"] += ins.lines
                c["final_store_steps"] += ins.steps
                cost = T.final_store_cycles(ins.steps)
                if ins.res_beats:
                    c["n_store_res"] += 1
                    c["res_load_beats"] += ins.res_beats
                    cost += T.residual_wait_cycles(L)
            else:
                cost = T.store_cycles(ins.beats)
        elif op == "COMPUTE":
            c["n_compute"] += 1
            k = {name: T.sum_terms(ts, ins.c, ins.m, ins.h, ins.w) for name, ts in terms.items()}
            assert k["steps"] == ins.steps
            c["compute_steps"] += k["steps"]
            c["act_buf_rd_vectors"] += k["act_vectors"]
            c["wgt_buf_rd_vectors"] += k["wgt_vectors"]
            c["out_buf_rd_words"] += k["out_words"]
            c["out_buf_wr_words"] += k["out_words"]
            c["fu_active_cycles"] += k["fu_active"]
            c["macs"] += k["macs"]
            cost = T.compute_cycles(k["steps"], D)
        else:  # pragma: no cover
            raise ValueError(f"unknown instruction {op}")
        clock.issue(op, cost)
    avb, wvb = T.read_bits(layer.act_bits, layer.wgt_bits, T.uses_dw_mapping(accel.dataflow, layer.depthwise))
    c.update(_act_vec_bits=avb, _wgt_vec_bits=wvb, _bus_bits=W, _latency=L, _depth=D)
    derive_counters(c)
    if clock.overlap:
        c["cycles"] = clock.now
    assert c["cycles"] == clock.now, (c["cycles"], clock.now)
    return c


class _Controller:
    """The controller's issue rule (docs/execution-model.md sections 5 and 9), in cycles. Single-buffered: every
    instruction waits until the previous one is done. Double-buffered (``overlap``): a DMA instruction waits for the
    DMA only; COMPUTE, SYNC, SET_LAYER and END wait for the engine and the DMA."""

    def __init__(self, overlap: bool):
        self.overlap = bool(overlap)
        self.now = 0  # the next cycle the controller can issue in
        self.engine_free = 0
        self.dma_free = 0

    def issue(self, op: str, cost: int) -> None:
        if not self.overlap:
            self.now += cost
            return
        if op in DMA_OPS:
            start = max(self.now, self.dma_free)
            self.dma_free = start + cost
        else:
            start = max(self.now, self.engine_free, self.dma_free)
            if op == "COMPUTE":
                self.engine_free = start + cost
            else:
                self.now = start + cost
                return
        self.now = start + T.ISSUE_CYCLES


def walk_layers(layers: Sequence[Layer], accel: Accelerator, tilings: Sequence[Tiling]) -> list[dict[str, int]]:
    """:func:`walk` of each layer's compiled program."""
    return [walk(compile_layer(l, accel, t)) for l, t in zip(layers, tilings)]
