"""BitFusion-compatible mode of the cost model: reproduces BitFusion's published analytical simulator.

The native model (``jaq.hw.model``, docs/execution-model.md) counts exactly what the generated RTL does. This
module instead restates the analytical model of BitFusion's public simulator so that the project's numbers can
be checked against an independent, published implementation:

* Sharma et al., "Bit Fusion: Bit-Level Dynamically Composable Architecture for Accelerating Deep Neural
  Networks", ISCA 2018.
* github.com/hsharma35/bitfusion: ``simulator/accelerator.py`` (fusion-unit throughput, compute cycles),
  ``optimizer/optimizer.py`` (``get_stats_fast``: tile footprints, double buffering, promotion, DRAM traffic,
  fill/drain/stall cycles, on-chip access order; ``_optimize_for_order``: the tiling search),
  ``simulator/stats.py`` (energy), ``simulator/simulator.py`` (buffer banking, CACTI look-ups, core energy and
  area), ``sram/cacti_sweep.csv`` (the CACTI 45 nm figures below). The facts are restated here and in
  docs/cost-model.md; no code of that repository is used.

Mapping of the project's records onto the simulator (docs/cost-model.md, "Mapping"):

* array: ``N`` rows = ``pe_y`` (each row a slice of the input channels), ``M`` columns = ``pe_x`` (output
  channels). ``pf = floor(8/max(a,2)) * floor(8/max(w,2))`` MACs per fusion unit per cycle, fused along input
  channels.
* loops: the simulator's (B, OW, OH, IC, OC) tile loops are our ``LOOP_DIMS`` one to one (``t_ic``/``t_oc``
  per group). ``Layer.batch`` is the simulator's B and :class:`BitFusionTiling` ``t_b`` its batch tile (B is
  tiled in powers of two like the other loops; a plain :class:`~jaq.hw.Tiling` means ``t_b = 1``). The
  simulator's square output ``O`` becomes ``out_h`` x ``out_w``; its search ties the OH and OW tiles (same power
  of two, each clamped to its dimension), evaluation takes them separately. Tiles larger than their dimension are
  clamped to it, and tiles have no upper bound (the simulator's search has none; the project's ``Tiling`` stops
  at 1024 for the native machine).
* groups: a grouped/depthwise layer is ``groups`` independent convolutions of ``in_ch/groups`` ->
  ``out_ch/groups`` channels run one after the other; every count (cycles incl. fill/drain, accesses, energy)
  is the per-group count times ``groups``. (The simulator has no grouped convolution.)
* im2col: the simulator lowers a convolution whose input is the network's input (the tensor no operation
  produces: the first layer, and every branch that reads the image, e.g. AlexNet's two conv1 towers) to a matrix
  product of ``K²·IC`` inputs per output pixel, whatever its channel count; fully connected layers never take
  it. Here it is a per-layer flag (``im2col=`` of the functions below); without it a layer takes the
  channel-wise path. See docs/cost-model.md for what changes.
* accelerator: buffers ``act_buf_kb``/``wgt_buf_kb``/``out_buf_kb`` x 1024 bytes (IBUF/WBUF/OBUF), off-chip
  ``dram_bits_per_cycle`` = the simulator's ``if_width``; ``dataflow`` and ``dram_latency_cycles`` are not used.

Units: cycles (core clock), bits for every access count, pJ for energy, mm² for area, bytes for buffers.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, fields
from typing import Any, Mapping, Sequence

import torch

from jaq.errors import JaqError
from jaq.hw.batch import DTYPE, AccelBatch, CostBatch, LayerBatch, TileBatch
from jaq.hw.objective import objective_value
from jaq.hw.records import (BF_E_CONF, LOOP_DIMS, LOOP_ORDERS, Accelerator, BitFusionConfig, Cost, Layer, Tiling,
                             parse_loop_order)

# ---------------------------------------------------------------------------------------------------------------
# Constants (BitFusion's 45 nm, 500 MHz figures; see docs/cost-model.md for the table with sources)
# ---------------------------------------------------------------------------------------------------------------

#: Highest and lowest precision of a fusion unit (bits); pf = floor(PMAX/max(a,PMIN)) * floor(PMAX/max(w,PMIN)).
PMAX, PMIN = 8, 2
#: Partial sums and outputs are 32-bit words (optimizer.py, ``oprec = 32``).
OUT_BITS = 32
#: Off-chip energy, pJ per bit read or written (stats.py, ``dram_cost = 15e-3`` nJ/bit).
DRAM_PJ_PER_BIT = 15.0
#: Core dynamic energy per fusion unit per cycle, pJ: 235.104 pJ/cycle for the 16x32 array of bf_e_conf,
#: scaled from a synthesized 4x4 BitFusion array (simulator.py scales the 4x4 figures by N*M/16).
E_CORE_PJ_PER_FU = 235.104 / 512
#: Area of one BitFusion fusion unit (8-bit max / 2-bit min), um², 45 nm, 500 MHz (synthesized 4x4 array / 16).
FU_AREA_UM2 = 1734.6
#: SRAM word width of WBUF and IBUF banks (pmax*pmax/pmin bits) and of OBUF banks (32 bits).
BUF_WORD_BITS = {"wgt": PMAX * PMAX // PMIN, "act": PMAX * PMAX // PMIN, "out": OUT_BITS}
#: CACTI port setting per buffer as the simulator queries it (0 for WBUF and IBUF, 1 for OBUF).
BUF_PORT = {"wgt": 0, "act": 0, "out": 1}

#: CACTI 6.5, 45 nm, one bank with a 32-bit (4-byte) word: (bank bytes, read-write port, read pJ/bit,
#: write pJ/bit, area mm²). From hsharma35/bitfusion sram/cacti_sweep.csv (per-access nJ / 32 bits).
CACTI_45NM: tuple[tuple[int, int, float, float, float], ...] = (
    (128, 0, 0.02137, 0.02892, 0.001499),
    (512, 1, 0.03316, 0.07308, 0.007603),
    (1024, 0, 0.03541, 0.10300, 0.008824),
    (2048, 0, 0.05947, 0.11370, 0.015132),
    (4096, 0, 0.10717, 0.13469, 0.030061),
    (4096, 1, 0.12448, 0.15785, 0.048574),
    (8192, 0, 0.19974, 0.17383, 0.057506),
    (16384, 0, 0.31193, 0.26315, 0.108577),
)
#: Largest bank the table covers; a larger bank is split into table-sized sub-banks (see :func:`sram_bank_costs`).
CACTI_MAX_BANK = 16384

#: Dependencies of the operand footprints on the tile loops (optimizer.py ``tile_deps``), columns act, wgt, out,
#: rows in LOOP_DIMS order (B, IC, OC, OH, OW).
_DEPS = {"B": (1, 0, 1), "IC": (1, 1, 0), "OC": (0, 1, 1), "OH": (1, 0, 1), "OW": (1, 0, 1)}
_DEP_TABLE = torch.tensor([_DEPS[d] for d in LOOP_DIMS], dtype=torch.bool)
_ORDER_TABLE = torch.tensor([[LOOP_DIMS.index(d) for d in o] for o in LOOP_ORDERS], dtype=torch.long)

#: On-chip access orders the simulator chooses between per tile (``sram_order`` in the accesses).
SRAM_ORDERS = ("IS", "OS", "WS")


# ---------------------------------------------------------------------------------------------------------------
# Configuration record: BitFusionConfig and BF_E_CONF live in jaq.hw.records (torch-free); re-exported here
# ---------------------------------------------------------------------------------------------------------------

def as_bitfusion_config(acc: "BitFusionConfig | Accelerator") -> BitFusionConfig:
    if isinstance(acc, BitFusionConfig):
        return acc
    if isinstance(acc, Accelerator):
        return BitFusionConfig.from_accelerator(acc)
    raise TypeError(f"expected a BitFusionConfig or an Accelerator, got {type(acc).__name__}")


# ---------------------------------------------------------------------------------------------------------------
# Tilings and batched rows of this mode (batch tile, im2col flag, no tile cap)
# ---------------------------------------------------------------------------------------------------------------

#: Largest tile this mode accepts (elements): the largest dimension a :class:`~jaq.hw.Layer` may have.
TILE_MAX = 1 << 16


@dataclass(frozen=True)
class BitFusionTiling:
    """A tiling in BitFusion mode: :class:`~jaq.hw.Tiling`'s fields (same meaning, tiles 1..65536 elements instead
    of the native search space's 1..1024) plus ``t_b``, the batch tile (images per tile).

    ``t_ic``/``t_oc`` count channels within one group. Tiles larger than their dimension are clamped to it.
    """

    t_ic: int
    t_oc: int
    t_oh: int
    t_ow: int
    loop_order: tuple[str, ...] = ("B", "OC", "OH", "OW", "IC")
    t_b: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "loop_order", parse_loop_order(self.loop_order, "tiling.loop_order"))
        for n in ("t_b", "t_ic", "t_oc", "t_oh", "t_ow"):
            v = getattr(self, n)
            if isinstance(v, bool) or not isinstance(v, int):
                raise JaqError(f"expected an integer, got {v!r}", f"tiling.{n}")
            if not 1 <= v <= TILE_MAX:
                raise JaqError(f"{v} out of range 1..{TILE_MAX}", f"tiling.{n}")

    @classmethod
    def of(cls, t: "Tiling | BitFusionTiling") -> "BitFusionTiling":
        """``t`` itself, or a :class:`~jaq.hw.Tiling` with batch tile 1."""
        if isinstance(t, BitFusionTiling):
            return t
        return cls(t.t_ic, t.t_oc, t.t_oh, t.t_ow, t.loop_order, 1)

    def counts(self, layer: Layer) -> dict[str, int]:
        """Number of tiles along each loop dimension (ceil division)."""
        return {"B": math.ceil(layer.batch / self.t_b), "IC": math.ceil(layer.in_ch_per_group / self.t_ic),
                "OC": math.ceil(layer.out_ch_per_group / self.t_oc), "OH": math.ceil(layer.out_h / self.t_oh),
                "OW": math.ceil(layer.out_w / self.t_ow)}

    def to_dict(self) -> dict[str, Any]:
        """Tiling's keys; ``t_b`` only when it is not 1."""
        d: dict[str, Any] = {"t_ic": self.t_ic, "t_oc": self.t_oc, "t_oh": self.t_oh, "t_ow": self.t_ow,
                             "loop_order": list(self.loop_order)}
        if self.t_b != 1:
            d["t_b"] = self.t_b
        return d


@dataclass
class BitFusionLayerBatch(LayerBatch):
    """:class:`~jaq.hw.batch.LayerBatch` plus this mode's per-layer fields: ``batch`` (images, float; default 1)
    and ``im2col`` (bool: the layer takes the simulator's im2col path; default False). A plain LayerBatch means
    batch 1, no im2col."""

    batch: torch.Tensor | None = None
    im2col: torch.Tensor | None = None

    def __post_init__(self) -> None:
        parent = getattr(super(), "__post_init__", None)
        if parent is not None:
            parent()
        if self.batch is None:
            self.batch = torch.ones_like(self.in_ch)
        if self.im2col is None:
            self.im2col = torch.zeros_like(self.in_ch, dtype=torch.bool)

    @classmethod
    def from_layers(cls, layers: Sequence[Layer], im2col: Sequence[bool] | None = None,
                    device=None) -> "BitFusionLayerBatch":
        flags = _im2col_flags(layers, im2col)
        base = LayerBatch.from_layers(layers, device=device)
        return cls(**{f.name: getattr(base, f.name) for f in fields(LayerBatch)},
                   batch=torch.tensor([float(l.batch) for l in layers], dtype=DTYPE, device=device),
                   im2col=torch.tensor(flags, dtype=torch.bool, device=device))


@dataclass
class BitFusionTileBatch(TileBatch):
    """:class:`~jaq.hw.batch.TileBatch` plus ``t_b``, the batch tile (float; default 1). A plain TileBatch means
    ``t_b = 1``."""

    t_b: torch.Tensor | None = None

    def __post_init__(self) -> None:
        parent = getattr(super(), "__post_init__", None)
        if parent is not None:
            parent()
        if self.t_b is None:
            self.t_b = torch.ones_like(self.t_ic)

    @classmethod
    def from_tilings(cls, tilings: Sequence["Tiling | BitFusionTiling"], device=None) -> "BitFusionTileBatch":
        ts = [BitFusionTiling.of(t) for t in tilings]
        base = TileBatch.from_tilings(ts, device=device)  # reads the same field names
        return cls(**{f.name: getattr(base, f.name) for f in fields(TileBatch)},
                   t_b=torch.tensor([float(t.t_b) for t in ts], dtype=DTYPE, device=device))


#: Keys of one layer in BitFusion's benchmark list (examples/bitfusion_benchmarks.yaml) -> Layer fields.
SIM_LAYER_KEYS = {"IC": "in_ch", "OC": "out_ch", "K": "kernel", "S": "stride", "B": "batch", "iprec": "act_bits",
                  "wprec": "wgt_bits", "name": "name"}


@dataclass(frozen=True)
class SimulatorLayer:
    """A layer of BitFusion's benchmark list as this mode runs it: the :class:`~jaq.hw.Layer` and whether the
    simulator lowers it to a matrix product (``im2col``)."""

    layer: Layer
    im2col: bool


def layer_from_simulator(d: Mapping[str, Any], where: str = "") -> SimulatorLayer:
    """Convert one layer as BitFusion's simulator describes it (``type`` conv|fc, ``K`` kernel, ``O`` output rows =
    columns, ``S`` stride, ``IC``, ``OC``, ``B`` batch, ``I`` input rows (unused), ``iprec``/``wprec`` bits,
    ``im2col``, ``name``). A 1x1 conv becomes ``pointwise``. Bad input: a one-line :class:`JaqError` naming
    the key (``where`` prefixes it); operands other than 2, 4, 8 bits (e.g. SVHN's 1-bit layers) are refused."""
    if not isinstance(d, Mapping):
        raise JaqError("expected a mapping of layer keys (type, K, O, S, IC, OC, B, iprec, wprec, im2col)",
                       where.rstrip(".") or None)
    known = {"type", "O", "I", "im2col", *SIM_LAYER_KEYS}
    unknown = sorted(set(d) - known)
    if unknown:
        raise JaqError(f"unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}",
                       f"{where}{unknown[0]}")
    for k in ("type", "K", "O", "S", "IC", "OC", "iprec", "wprec"):
        if k not in d:
            raise JaqError("missing (required)", f"{where}{k}")
    if d["type"] not in ("conv", "fc"):
        raise JaqError(f"unknown layer type {d['type']!r}; use conv or fc", f"{where}type")
    for k in ("iprec", "wprec"):
        if d[k] not in (2, 4, 8):
            raise JaqError(f"{d[k]!r}-bit operands are not supported (bits must be 2, 4 or 8; BitFusion's own "
                           f"fusion units go down to 2)", f"{where}{k}")
    im2col = d.get("im2col", False)
    if not isinstance(im2col, bool):
        raise JaqError(f"expected true or false, got {im2col!r}", f"{where}im2col")
    kind = "fc" if d["type"] == "fc" else ("pointwise" if d["K"] == 1 else "conv")
    fields_ = {"kind": kind, "out_h": d["O"], "out_w": d["O"],
               **{f: d[k] for k, f in SIM_LAYER_KEYS.items() if k in d}}
    try:
        layer = Layer.from_dict(fields_)
    except JaqError as e:  # name the simulator's key, not the Layer field
        back = {v: k for k, v in SIM_LAYER_KEYS.items()} | {"out_h": "O", "out_w": "O", "kind": "type"}
        raise JaqError(str(e).split(": ", 1)[-1], f"{where}{back.get(e.field or '', e.field or '')}") from None
    return SimulatorLayer(layer, im2col)


def _im2col_flags(layers: Sequence[Layer], im2col: Sequence[bool] | None) -> list[bool]:
    """One bool per layer (``None``: all False)."""
    if im2col is None:
        return [False] * len(layers)
    flags = [bool(f) for f in im2col]
    if len(flags) != len(layers):
        raise ValueError(f"one im2col flag per layer: {len(flags)} flags for {len(layers)} layers")
    return flags


# ---------------------------------------------------------------------------------------------------------------
# Helpers: straight-through integer ops (exact values forward, identity gradients backward)
# ---------------------------------------------------------------------------------------------------------------

def _ceil(x: torch.Tensor) -> torch.Tensor:
    if not x.requires_grad:  # no graph (the search): the plain op, one kernel instead of three
        return torch.ceil(x)
    return x + (torch.ceil(x) - x).detach()


def _floor(x: torch.Tensor) -> torch.Tensor:
    if not x.requires_grad:
        return torch.floor(x)
    return x + (torch.floor(x) - x).detach()


def _cdiv(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return _ceil(a / b)


def _loglog_interp(x: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
    """Piecewise-linear interpolation of log(y) over log(x); the end segments extend beyond the table."""
    lx, lxs, lys = torch.log(x), torch.log(xs), torch.log(ys)
    i = torch.searchsorted(lxs, lx.detach().contiguous()).clamp(1, len(xs) - 1)
    x0, x1, y0, y1 = lxs[i - 1], lxs[i], lys[i - 1], lys[i]
    return torch.exp(y0 + (lx - x0) * (y1 - y0) / (x1 - x0))


def _table(port: int, col: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    rows = sorted(r for r in CACTI_45NM if r[1] == port)
    return (torch.tensor([float(r[0]) for r in rows], dtype=DTYPE, device=device),
            torch.tensor([float(r[col]) for r in rows], dtype=DTYPE, device=device))


def sram_bank_costs(bank_bytes: torch.Tensor, port: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(read pJ/bit, write pJ/bit, area mm²) of one SRAM bank of ``bank_bytes`` bytes (32-bit words, 45 nm).

    Exact CACTI figures at the table's sizes (:data:`CACTI_45NM`). Between them: piecewise-linear in log-log
    over the port-0 rows; port-1 figures are the port-0 curve times the measured port-1/port-0 ratio (at 512 B
    and 4 KB, log-interpolated between and held beyond). Below 128 B: the 128 B-1 KB log-log slope extended.
    Above 16 KB the bank is split into ``ceil(bytes/16 KB)`` equal sub-banks (BitFusion's way of staying inside
    the CACTI sweep): energy per bit of one sub-bank, area of all of them.
    """
    dev = bank_bytes.device
    bank_bytes = bank_bytes.to(DTYPE)
    n_sub = torch.clamp(torch.ceil(bank_bytes.detach() / CACTI_MAX_BANK), min=1.0)
    sub = bank_bytes / n_sub
    out = []
    for col in (2, 3, 4):
        xs0, ys0 = _table(0, col, dev)
        v = _loglog_interp(sub, xs0, ys0)
        if port == 1:
            xs1, ys1 = _table(1, col, dev)
            ratio_pts = ys1 / _loglog_interp(xs1, xs0, ys0)
            r = _loglog_interp(sub.clamp(float(xs1[0]), float(xs1[-1])), xs1, ratio_pts)
            v = v * r
        out.append(v)
    rd, wr, area = out
    return rd, wr, area * n_sub


def buffer_costs(accels: AccelBatch) -> dict[str, dict[str, torch.Tensor]]:
    """Per buffer (``act``, ``wgt``, ``out``): banks, bank bytes, read/write pJ per bit, total area mm².

    Banking as BitFusion's simulator: WBUF one bank per fusion unit (N*M), IBUF one bank per row (N), OBUF one
    bank per column (M).
    """
    N, M = accels.pe_y, accels.pe_x
    res = {}
    for name, kb, banks in (("wgt", accels.wgt_buf_kb, N * M), ("act", accels.act_buf_kb, N),
                            ("out", accels.out_buf_kb, M)):
        bank_bytes = kb * 1024 / banks
        rd, wr, area = sram_bank_costs(bank_bytes, BUF_PORT[name])
        res[name] = {"banks": banks, "bank_bytes": bank_bytes, "rd_pj_bit": rd, "wr_pj_bit": wr,
                     "area_mm2": area * banks}
    return res


def area_bitfusion(accels: AccelBatch) -> dict[str, torch.Tensor]:
    """Area in mm² by component (``core``, ``wgt_buf``, ``act_buf``, ``out_buf``) and ``total``."""
    b = buffer_costs(accels)
    core = accels.pe_x * accels.pe_y * FU_AREA_UM2 * 1e-6
    d = {"core": core, "wgt_buf": b["wgt"]["area_mm2"], "act_buf": b["act"]["area_mm2"],
         "out_buf": b["out"]["area_mm2"]}
    d["total"] = d["core"] + d["wgt_buf"] + d["act_buf"] + d["out_buf"]
    return d


def perf_factor(act_bits: torch.Tensor, wgt_bits: torch.Tensor) -> torch.Tensor:
    """MACs per fusion unit per cycle: floor(8/max(a,2)) * floor(8/max(w,2)) (accelerator.py)."""
    return (_floor(PMAX / torch.clamp(act_bits, min=PMIN)) * _floor(PMAX / torch.clamp(wgt_bits, min=PMIN)))


# ---------------------------------------------------------------------------------------------------------------
# The estimator
# ---------------------------------------------------------------------------------------------------------------

def estimate_bitfusion(layers: LayerBatch, accels: AccelBatch, tiles: TileBatch) -> CostBatch:
    """BitFusion's analytical cost of each (layer, accelerator, tiling) row, vectorised over rows.

    ``layers`` may be a :class:`BitFusionLayerBatch` (batch ``B`` and im2col flag per row) and ``tiles`` a
    :class:`BitFusionTileBatch` (batch tile ``b``); plain batches mean ``B = b = 1`` and the channel-wise path.
    Per row (``get_stats_fast`` semantics, per group; every extensive count is then multiplied by ``groups``):

    * tile footprints in bits: act ``((ow-1)S+K)((oh-1)S+K) * ic * b * a`` (im2col: ``ow*oh * K²ic * b * a``);
      wgt ``ceil(K²ic/(N pf))*N pf * oc * w``; out ``ow*oh*ceil(oc/M)*M * b * 32``. Legal iff each fits in half
      its buffer (double buffering).
    * promotion: walking the tile loops from the innermost out, an operand's volume is multiplied by the trip
      count of every loop it depends on while it still fits in half its buffer (it stays resident: the largest
      such volume is its "first tile"), and by the trip count of every loop once it no longer fits (refetch).
      The final volumes are the DRAM reads (act + wgt + out partial sums) and writes (out).
    * compute cycles ``T * b*oh*ow * ceil(oc/M) * K²*ceil(ic/(N pf))`` (im2col: ``ceil(K²ic/(N pf))``; T tiles);
      fill ``ceil(first tiles/if_width)``; drain ``ceil(first out tile/if_width)``; stall ``max(0, ceil(middle
      DRAM bits/if_width) - compute)``; cycles = compute + stall + fill + drain.
    * on-chip accesses: per tile the cheapest of input-, output- and weight-stationary access orders (by the
      simulator's bit-count estimate; ties IS, then OS) plus the buffer fills and drains from DRAM.
    * energy pJ: compute cycles x N*M x E_FU + buffer bits x CACTI pJ/bit + DRAM bits x 15.

    Batches of one row broadcast to the others' length. Returns a :class:`CostBatch`; ``accesses`` hold bit
    counts (``*_bits``) and cycle parts (``compute_cycles``, ``fill_cycles``, ``drain_cycles``, ``stall_cycles``,
    ``memory_cycles``), ``tiles``, ``macs`` and ``sram_order`` (index into :data:`SRAM_ORDERS`).
    """
    n_rows = max(len(layers), len(accels), len(tiles))
    # per-accelerator figures on the accelerator rows as given (one row when broadcast): banking, CACTI, area
    bufs = buffer_costs(accels)
    area = area_bitfusion(accels)["total"]
    layers, accels, tiles = (b.expand_to(n_rows) if len(b) == 1 and n_rows > 1 else b
                             for b in (layers, accels, tiles))
    if not len(layers) == len(accels) == len(tiles):
        raise ValueError("layers, accels and tiles must have the same number of rows (or one row)")
    return _finish(_tile_terms(layers, accels, tiles), accels, tiles.loop_order, bufs, area)


@dataclass
class _TileTerms:
    """What a row costs before the loop order is known (per group): first-tile footprints ``vols`` (rows, 3: act,
    wgt, out bits), tile counts ``counts`` (rows, 5, LOOP_DIMS order), compute cycles, tiles, on-chip reads (bits)
    and the access order chosen, MACs (all groups) and ``groups``."""

    vols: torch.Tensor
    counts: torch.Tensor
    compute: torch.Tensor
    tiles: torch.Tensor
    act_rd: torch.Tensor
    wgt_rd: torch.Tensor
    out_rw: torch.Tensor
    sram_order: torch.Tensor
    macs: torch.Tensor
    groups: torch.Tensor

    def index(self, idx: torch.Tensor) -> "_TileTerms":
        return _TileTerms(**{f.name: getattr(self, f.name)[idx] for f in fields(self)})


def _field_or(batch, name: str, default: torch.Tensor) -> torch.Tensor:
    """``batch.name`` when the batch carries it (this mode's batches, or shared ones that gain the field), else
    ``default``."""
    v = getattr(batch, name, None)
    return default if v is None else v


def _tile_terms(layers: LayerBatch, accels: AccelBatch, tiles: TileBatch) -> _TileTerms:
    """The loop-order-independent part of :func:`estimate_bitfusion` (accelerator rows: as many or one)."""
    N, M = accels.pe_y, accels.pe_x
    a, w = layers.act_bits, layers.wgt_bits
    K, S, G = layers.kernel, layers.stride, layers.groups
    C, Mo = layers.in_ch / G, layers.out_ch / G
    OH, OW = layers.out_h, layers.out_w
    one = torch.ones_like(C)
    B = _field_or(layers, "batch", one)
    lowered = _field_or(layers, "im2col", torch.zeros_like(C, dtype=torch.bool))
    ic, oc = torch.minimum(tiles.t_ic, C), torch.minimum(tiles.t_oc, Mo)
    oh, ow = torch.minimum(tiles.t_oh, OH), torch.minimum(tiles.t_ow, OW)
    b = torch.minimum(_field_or(tiles, "t_b", one), B)
    n_b, n_ic, n_oc, n_oh, n_ow = _cdiv(B, b), _cdiv(C, ic), _cdiv(Mo, oc), _cdiv(OH, oh), _cdiv(OW, ow)

    pf = perf_factor(a, w)
    npf = N * pf
    KK = K * K
    oc_pad = _cdiv(oc, M) * M
    pix = b * oh * ow  # output pixels of one tile, all its images
    # reduction steps of one output on the array: K² passes over ceil(ic/(N pf)) (im2col: one K²ic-long vector)
    red_steps = torch.where(lowered, _cdiv(KK * ic, npf), KK * _cdiv(ic, npf))

    # first-tile footprints (bits)
    act = torch.where(lowered, pix * KK * ic * a, ((ow - 1) * S + K) * ((oh - 1) * S + K) * ic * b * a)
    wgt = _cdiv(KK * ic, npf) * npf * oc * w
    out = pix * oc_pad * OUT_BITS
    T = n_b * n_ic * n_oc * n_oh * n_ow
    act_rd, wgt_rd, out_rw, order = _onchip_reads(T, pix, KK * ic, oc, oc_pad, red_steps * npf, a, w)
    return _TileTerms(vols=torch.stack([act, wgt, out], 1), counts=torch.stack([n_b, n_ic, n_oc, n_oh, n_ow], 1),
                      compute=T * pix * _cdiv(oc, M) * red_steps, tiles=T, act_rd=act_rd, wgt_rd=wgt_rd,
                      out_rw=out_rw, sram_order=order, macs=G * Mo * OH * OW * C * KK * B, groups=G)


def _finish(t: _TileTerms, accels: AccelBatch, loop_order: torch.Tensor, bufs: dict, area: torch.Tensor
            ) -> CostBatch:
    """The loop-order-dependent part of :func:`estimate_bitfusion`: promotion, DRAM traffic, fill/drain/stall
    cycles, energy. Accelerator rows (and ``bufs``/``area``, from :func:`buffer_costs`/:func:`area_bitfusion`):
    as many as ``t`` or one."""
    N, M = accels.pe_y, accels.pe_x
    vols, first, legal = _promote(t.vols, accels, t.counts, loop_order)
    act_fill, wgt_fill, out_fill = vols.unbind(1)
    dram_rd = act_fill + wgt_fill + out_fill
    dram_wr = out_fill
    ifw = accels.dram_bits_per_cycle
    first_in = first.sum(1)
    last_out = first[:, 2]
    fill = _cdiv(first_in, ifw)
    drain = _cdiv(last_out, ifw)
    memory = _cdiv(dram_rd + dram_wr - first_in - last_out, ifw)
    stall = torch.clamp(memory - t.compute, min=0.0)
    cycles = t.compute + stall + fill + drain

    G = t.groups
    acc = {
        "act_buf_rd_bits": t.act_rd, "act_buf_wr_bits": act_fill,
        "wgt_buf_rd_bits": t.wgt_rd, "wgt_buf_wr_bits": wgt_fill,
        "out_buf_rd_bits": t.out_rw + dram_wr, "out_buf_wr_bits": t.out_rw + out_fill,
        "dram_rd_bits": dram_rd, "dram_wr_bits": dram_wr,
        "compute_cycles": t.compute, "fill_cycles": fill, "drain_cycles": drain, "stall_cycles": stall,
        "memory_cycles": memory, "tiles": t.tiles,
    }
    acc = {k: v * G for k, v in acc.items()}
    acc["macs"] = t.macs
    acc["sram_order"] = t.sram_order.to(DTYPE)
    cycles = cycles * G
    energy = {
        "mac": acc["compute_cycles"] * N * M * E_CORE_PJ_PER_FU,
        "act_buf_rd": acc["act_buf_rd_bits"] * bufs["act"]["rd_pj_bit"],
        "act_buf_wr": acc["act_buf_wr_bits"] * bufs["act"]["wr_pj_bit"],
        "wgt_buf_rd": acc["wgt_buf_rd_bits"] * bufs["wgt"]["rd_pj_bit"],
        "wgt_buf_wr": acc["wgt_buf_wr_bits"] * bufs["wgt"]["wr_pj_bit"],
        "out_buf_rd": acc["out_buf_rd_bits"] * bufs["out"]["rd_pj_bit"],
        "out_buf_wr": acc["out_buf_wr_bits"] * bufs["out"]["wr_pj_bit"],
        "dram": (acc["dram_rd_bits"] + acc["dram_wr_bits"]) * DRAM_PJ_PER_BIT,
    }
    n = len(cycles)
    full = lambda x: x.expand(n) if x.shape[0] != n else x  # noqa: E731
    return CostBatch(cycles=cycles, energy_pj={k: full(v) for k, v in energy.items()}, area_mm2=full(area),
                     accesses=acc, legal=legal, clock_mhz=full(accels.clock_mhz))


def _promote(vols: torch.Tensor, accels: AccelBatch, counts: torch.Tensor, loop_order: torch.Tensor):
    """Promotion through the loop nest, innermost loop first.

    vols: (rows, 3) first-tile footprints in bits (act, wgt, out); counts: (rows, 5) tile counts in LOOP_DIMS
    order. Returns the final volumes (DRAM traffic per operand, bits), the resident "first tile" volumes and
    legality (every first tile fits in half its buffer).
    """
    half = torch.stack([accels.act_buf_kb, accels.wgt_buf_kb, accels.out_buf_kb], 1) * (1024 * 8 / 2)
    half = half.expand_as(vols)
    legal = (vols.detach() <= half).all(1)
    order = _ORDER_TABLE.to(vols.device)[loop_order.long()]
    deps = _DEP_TABLE.to(vols.device)
    first = vols
    promoted = torch.ones_like(vols, dtype=torch.bool)
    for j in range(len(LOOP_DIMS) - 1, -1, -1):
        d = order[:, j]
        n = counts.gather(1, d[:, None])
        dep = deps[d]
        vols = torch.where(~promoted | dep, vols * n, vols)
        fits = (vols.detach() <= half)
        first = torch.where(promoted & dep & fits, vols, first)
        promoted = promoted & ~(dep & ~fits)
    return vols, first, legal


def _onchip_reads(T, pix, red, oc, oc_pad, os_loop, a, w):
    """On-chip bits of all tiles under the cheapest of the simulator's three access orders.

    T tiles; per tile ``pix`` output pixels (batch tile included), reduction length ``red`` = K²·ic, ``oc``
    output channels (``oc_pad`` padded to the columns), ``os_loop`` the padded reduction the simulator's estimate
    uses. Returns (IBUF reads, WBUF reads, OBUF reads = writes, order index into :data:`SRAM_ORDERS`).
    """
    one = torch.ones_like(pix)
    is_loop, ws_loop = oc_pad, pix
    e_is = os_loop * ws_loop * (a + is_loop * (w + OUT_BITS))
    e_os = is_loop * ws_loop * (OUT_BITS + os_loop * (a + w))
    e_ws = os_loop * is_loop * (w + ws_loop * (a + OUT_BITS))
    e_min = torch.minimum(torch.minimum(e_is, e_os), e_ws)
    sel_is = e_is == e_min
    sel_os = ~sel_is & (e_os == e_min)
    sel_ws = ~sel_is & ~sel_os
    act_rd = T * red * pix * a * torch.where(sel_ws | sel_os, oc, one)
    wgt_rd = T * red * oc * w * torch.where(sel_ws, one, pix)
    out_rw = T * oc * pix * OUT_BITS * torch.where(sel_os, one, red)
    return act_rd, wgt_rd, out_rw, torch.where(sel_is, 0, torch.where(sel_os, 1, 2))


def cost_from_batch(cb: CostBatch, i: int) -> Cost:
    """Row ``i`` of a :class:`CostBatch` as a :class:`Cost` record (integer counts rounded)."""
    cycles = int(round(float(cb.cycles[i])))
    clock = float(cb.clock_mhz[i])
    return Cost(cycles=cycles, latency_ms=cycles / (clock * 1e3),
                energy_pj={k: float(v[i]) for k, v in cb.energy_pj.items()}, area_mm2=float(cb.area_mm2[i]),
                accesses={k: int(round(float(v[i]))) for k, v in cb.accesses.items()}, legal=bool(cb.legal[i]))


def _batches(layers: Sequence[Layer], cfg: BitFusionConfig, tilings: Sequence["Tiling | BitFusionTiling"],
             im2col: Sequence[bool] | None = None):
    lb = BitFusionLayerBatch.from_layers(layers, im2col)
    ab = cfg.to_accel_batch().expand_to(len(layers))
    tb = BitFusionTileBatch.from_tilings(tilings)
    return lb, ab, tb


def estimate_bitfusion_one(layer: Layer, acc: "BitFusionConfig | Accelerator", tiling: "Tiling | BitFusionTiling",
                           im2col: bool = False) -> Cost:
    """Cost of one layer under one tiling in BitFusion mode (see :func:`estimate_bitfusion`); ``im2col``: the
    layer takes the simulator's im2col path."""
    cfg = as_bitfusion_config(acc)
    return cost_from_batch(estimate_bitfusion(*_batches([layer], cfg, [tiling], [im2col])), 0)


def estimate_bitfusion_many(layers: Sequence[Layer], acc: "BitFusionConfig | Accelerator",
                            tilings: Sequence["Tiling | BitFusionTiling"],
                            im2col: Sequence[bool] | None = None) -> list[Cost]:
    """Cost of each layer under its tiling in BitFusion mode (one batched call); ``im2col``: one flag per layer
    (default: none takes the im2col path)."""
    if len(layers) != len(tilings):
        raise ValueError("one tiling per layer")
    if not layers:
        return []
    cb = estimate_bitfusion(*_batches(layers, as_bitfusion_config(acc), tilings, im2col))
    return [cost_from_batch(cb, i) for i in range(len(layers))]


def constants_table(acc: "BitFusionConfig | Accelerator | None" = None) -> list[dict[str, Any]]:
    """The BitFusion mode's constants (name, value, unit, source); with a configuration, also its buffers'
    banking and per-bit energies."""
    src = "hsharma35/bitfusion (Sharma et al., ISCA 2018)"
    rows = [
        {"name": "E_core per FU", "value": E_CORE_PJ_PER_FU, "unit": "pJ per fusion unit per cycle",
         "source": f"{src} simulator.py: 235.104 pJ/cycle for 16x32 (synthesized 4x4 array x N*M/16)"},
        {"name": "FU area", "value": FU_AREA_UM2, "unit": "um^2 per fusion unit",
         "source": f"{src}: synthesized 4x4 BitFusion array, 45 nm, 500 MHz"},
        {"name": "DRAM energy", "value": DRAM_PJ_PER_BIT, "unit": "pJ per bit", "source": f"{src} stats.py"},
        {"name": "psum/output word", "value": OUT_BITS, "unit": "bits", "source": f"{src} optimizer.py"},
        {"name": "pmax / pmin", "value": f"{PMAX} / {PMIN}", "unit": "bits", "source": f"{src} accelerator.py"},
    ]
    for size, port, rd, wr, area in CACTI_45NM:
        rows.append({"name": f"CACTI {size} B port {port}", "value": f"{rd} / {wr} / {area}",
                     "unit": "read pJ/bit / write pJ/bit / mm^2 per bank",
                     "source": f"{src} sram/cacti_sweep.csv (CACTI 45 nm, 32-bit word)"})
    if acc is not None:
        cfg = as_bitfusion_config(acc)
        b = buffer_costs(cfg.to_accel_batch())
        for name, label in (("wgt", "WBUF"), ("act", "IBUF"), ("out", "OBUF")):
            x = b[name]
            rows.append({"name": f"{label} of this config", "value":
                         f"{float(x['banks']):g} banks x {float(x['bank_bytes']):g} B: {float(x['rd_pj_bit']):.5f}"
                         f" / {float(x['wr_pj_bit']):.5f} pJ/bit, {float(x['area_mm2']):.4f} mm^2",
                         "unit": "", "source": "banking as simulator.py; CACTI interpolation (sram_bank_costs)"})
    return rows


def render_constants(acc: "BitFusionConfig | Accelerator | None" = None) -> str:
    """:func:`constants_table` as plain text (for ``jaq estimate --explain``)."""
    lines = ["BitFusion-compatible mode constants (45 nm, 500 MHz; jaq.hw.bitfusion)", "-" * 100]
    for r in constants_table(acc):
        v = r["value"]
        v = f"{v:g}" if isinstance(v, float) else str(v)
        lines.append(f"{r['name']:<22} {v:<58} {r['unit']}")
        lines.append(f"{'':<22} source: {r['source']}")
    return "\n".join(lines)


def check_tiling_fits(layer: Layer, acc: "BitFusionConfig | Accelerator", tiling: "Tiling | BitFusionTiling",
                      where: str = "tiling", im2col: bool = False) -> None:
    """Raise a one-line :class:`JaqError` naming the buffer when ``tiling`` does not fit (half-buffer rule)."""
    cfg = as_bitfusion_config(acc)
    t = BitFusionTiling.of(tiling)
    K, S = layer.kernel, layer.stride
    ic, oc = min(t.t_ic, layer.in_ch_per_group), min(t.t_oc, layer.out_ch_per_group)
    oh, ow, b = min(t.t_oh, layer.out_h), min(t.t_ow, layer.out_w), min(t.t_b, layer.batch)
    pf = (PMAX // max(layer.act_bits, PMIN)) * (PMAX // max(layer.wgt_bits, PMIN))
    npf = cfg.rows * pf
    act_px = ow * oh * K * K if im2col else ((ow - 1) * S + K) * ((oh - 1) * S + K)
    need = {"IBUF": (act_px * ic * b * layer.act_bits, cfg.ibuf_bytes),
            "WBUF": (math.ceil(K * K * ic / npf) * npf * oc * layer.wgt_bits, cfg.wbuf_bytes),
            "OBUF": (b * ow * oh * math.ceil(oc / cfg.cols) * cfg.cols * OUT_BITS, cfg.obuf_bytes)}
    for buf, (bits, cap) in need.items():
        if bits > cap * 8 / 2:
            raise JaqError(f"tile needs {bits:,} bits of {buf} but half of its {cap:,} bytes is {cap * 4:,} bits "
                           f"(double buffering); use smaller tiles", where)


# ---------------------------------------------------------------------------------------------------------------
# The tiling search (BitFusion's: all 120 orders x power-of-two tiles, min cycles then min energy)
# ---------------------------------------------------------------------------------------------------------------

@dataclass
class BitFusionChoice:
    """The chosen tiling of one layer, its cost and the objective value it won with (field names as
    ``jaq.hw.batchtile.TileChoice``). ``objective`` is cycles (lexicographic search) or the weighted objective."""

    tiling: BitFusionTiling
    cost: Cost
    objective: float


def _pow2_tiles(dim: int, unit: int = 1) -> list[int]:
    """``min(2^k * unit, dim)`` for k = 0..ceil(log2(ceil(dim/unit))), deduplicated (no upper bound: the
    simulator's search has none)."""
    m = math.ceil(dim / unit)
    kmax = math.ceil(math.log2(m)) if m > 1 else 0
    return sorted({min((1 << k) * unit, dim) for k in range(kmax + 1)})


def _candidate_combos(layer: Layer, cfg: BitFusionConfig, im2col: bool) -> BitFusionTileBatch:
    """The tile sizes of :func:`candidate_tilings` without the loop order (``loop_order`` 0): batch tiles slowest,
    then spatial, IC, OC."""
    o_exp = _pow2_tiles(max(layer.out_h, layer.out_w))
    sp = torch.tensor(sorted({(min(t, layer.out_h), min(t, layer.out_w)) for t in o_exp}), dtype=DTYPE)
    axes = [torch.tensor(_pow2_tiles(layer.batch), dtype=DTYPE), torch.arange(len(sp), dtype=DTYPE),
            torch.tensor(_pow2_tiles(layer.in_ch_per_group), dtype=DTYPE),
            torch.tensor(_pow2_tiles(layer.out_ch_per_group, 1 if im2col else cfg.cols), dtype=DTYPE)]
    c = torch.cartesian_prod(*axes).reshape(-1, len(axes))
    hw = sp[c[:, 1].long()]
    return BitFusionTileBatch(t_ic=c[:, 2], t_oc=c[:, 3], t_oh=hw[:, 0], t_ow=hw[:, 1],
                              loop_order=torch.zeros(len(c), dtype=torch.long), t_b=c[:, 0])


def candidate_tilings(layer: Layer, acc: "BitFusionConfig | Accelerator", im2col: bool = False) -> BitFusionTileBatch:
    """BitFusion's search space for one layer: 120 loop orders x batch tiles ``min(2^k, B)`` x OH=OW power-of-two
    tiles x IC power-of-two tiles x OC tiles (``min(2^k·M, OC)``: whole column groups; im2col layers
    ``min(2^k, OC)``), each clamped to its dimension. Orders vary slowest, then batch, spatial, IC, OC tiles."""
    combos = _candidate_combos(layer, as_bitfusion_config(acc), im2col)
    n_orders = len(LOOP_ORDERS)
    rows = combos.index(torch.arange(len(combos)).repeat(n_orders))
    rows.loop_order = torch.arange(n_orders, dtype=torch.long).repeat_interleave(len(combos))
    return rows


@functools.lru_cache(maxsize=1)
def _canonical_orders() -> torch.Tensor:
    """(32, 120) bool: ``[m, o]`` is True when loop order ``o`` has the lowest index among the orders that place the
    loops of mask ``m`` (bit d: ``LOOP_DIMS[d]`` has more than one tile) in the same relative order. The other
    loops multiply nothing, so every order of a class costs the same."""
    table = torch.zeros(1 << len(LOOP_DIMS), len(LOOP_ORDERS), dtype=torch.bool)
    for m in range(1 << len(LOOP_DIMS)):
        seen: set[tuple[str, ...]] = set()
        for i, order in enumerate(LOOP_ORDERS):
            key = tuple(d for d in order if m >> LOOP_DIMS.index(d) & 1)
            if key not in seen:
                seen.add(key)
                table[m, i] = True
    return table


def _segment_min(keys: torch.Tensor, seg: torch.Tensor, n: int) -> torch.Tensor:
    out = torch.full((n,), math.inf, dtype=keys.dtype)
    return out.scatter_reduce(0, seg, keys, reduce="amin", include_self=True)


def search_bitfusion(layers: Sequence[Layer], acc: "BitFusionConfig | Accelerator",
                     weights: tuple[float, float, float] | None = None,
                     im2col: Sequence[bool] | None = None) -> list[BitFusionChoice]:
    """Best tiling of every layer in BitFusion mode, all layers' candidates evaluated in batched calls.

    ``weights=None``: BitFusion's objective, minimum cycles and then minimum energy (ties: lowest loop-order
    index, then smallest batch, spatial, IC, OC tiles). ``weights=(lE, lL, lA)``: minimum of
    ``lE*energy_mJ + lL*latency_ms + lA*area_mm2`` (the paper's Eq. 9 in these units; area is the same for every
    tiling). ``im2col``: one flag per layer (default none), the layers the simulator lowers to a matrix product.
    Raises :class:`JaqError` naming the layer when no tiling fits.
    """
    cfg = as_bitfusion_config(acc)
    layers = list(layers)
    if not layers:
        return []
    flags = _im2col_flags(layers, im2col)
    combos = [_candidate_combos(l, cfg, f) for l, f in zip(layers, flags)]
    n_orders = len(LOOP_ORDERS)
    # chunks of whole layers, each evaluated in one batched call (bounded memory for large networks)
    out: list[BitFusionChoice] = []
    start = 0
    while start < len(layers):
        stop, rows = start, 0
        while stop < len(layers) and (stop == start or rows + n_orders * len(combos[stop]) <= MAX_ROWS_PER_CALL):
            rows += n_orders * len(combos[stop])
            stop += 1
        try:
            out += _search_chunk(layers[start:stop], flags[start:stop], combos[start:stop], cfg, weights)
        except JaqError as e:
            if e.field and e.field.startswith("layers["):
                j = int(e.field[7:e.field.index("]")])
                raise JaqError(str(e).split(": ", 1)[1], f"layers[{start + j}]") from None
            raise
        start = stop
    return out


#: Largest number of candidate rows evaluated in one call by :func:`search_bitfusion`.
MAX_ROWS_PER_CALL = 400_000


def _search_chunk(layers: list[Layer], flags: list[bool], combos: list[BitFusionTileBatch], cfg: BitFusionConfig,
                  weights) -> list[BitFusionChoice]:
    """Evaluate every (loop order, tile sizes) row of the layers in one call: the order-independent terms once per
    tile-size combination, the promotion and what follows per row. Rows of a layer: orders slowest (the order of
    :func:`candidate_tilings`)."""
    n_orders = len(LOOP_ORDERS)
    sizes = [len(c) for c in combos]
    tb = BitFusionTileBatch(**{f.name: torch.cat([getattr(c, f.name) for c in combos])
                               for f in fields(BitFusionTileBatch)})
    lb = BitFusionLayerBatch.from_layers(layers, flags).index(torch.arange(len(layers)).repeat_interleave(
        torch.tensor(sizes)))
    offsets = [0]
    for n in sizes[:-1]:
        offsets.append(offsets[-1] + n)
    row_combo = torch.cat([off + torch.arange(n).repeat(n_orders) for off, n in zip(offsets, sizes)])
    row_order = torch.cat([torch.arange(n_orders).repeat_interleave(n) for n in sizes])
    seg = torch.arange(len(layers)).repeat_interleave(torch.tensor(sizes) * n_orders)
    ab = cfg.to_accel_batch()  # one row, broadcast
    with torch.no_grad():
        terms = _tile_terms(lb, ab, tb)
        # drop every order that a lower-index order equals on this combination (same loops of >1 tile, same
        # relative order): identical cost, and the tie-break would pick the lower index anyway
        multi = ((terms.counts > 1).long() << torch.arange(len(LOOP_DIMS))).sum(1)
        keep = _canonical_orders()[multi[row_combo], row_order]
        row_combo, row_order, seg = row_combo[keep], row_order[keep], seg[keep]
        cb = _finish(terms.index(row_combo), ab, row_order, buffer_costs(ab), area_bitfusion(ab)["total"])
    inf = torch.tensor(math.inf, dtype=DTYPE)
    energy = cb.energy_total_pj
    if weights is None:
        k1 = torch.where(cb.legal, cb.cycles, inf)
        m1 = _segment_min(k1, seg, len(layers))
        k2 = torch.where((k1 == m1[seg]) & torch.isfinite(k1), energy, inf)
        m2 = _segment_min(k2, seg, len(layers))
        win = (k2 == m2[seg]) & torch.isfinite(k2)
        objective = cb.cycles
    else:
        objective = objective_value(energy, cb.cycles, cb.clock_mhz, cb.area_mm2, tuple(float(x) for x in weights))
        k1 = torch.where(cb.legal, objective, inf)
        m1 = _segment_min(k1, seg, len(layers))
        win = (k1 == m1[seg]) & torch.isfinite(k1)
    idx = torch.where(win, torch.arange(len(seg), dtype=DTYPE), inf)
    best = _segment_min(idx, seg, len(layers))
    out = []
    for li, b in enumerate(best.tolist()):
        if not math.isfinite(b):
            raise JaqError(f"no tiling fits the buffers (IBUF {cfg.ibuf_bytes:,} B, WBUF {cfg.wbuf_bytes:,} B, "
                           f"OBUF {cfg.obuf_bytes:,} B, each half usable); use larger buffers",
                           f"layers[{li}]")
        b = int(b)
        j = int(row_combo[b])
        t = BitFusionTiling(int(tb.t_ic[j]), int(tb.t_oc[j]), int(tb.t_oh[j]), int(tb.t_ow[j]),
                            LOOP_ORDERS[int(row_order[b])], int(tb.t_b[j]))
        out.append(BitFusionChoice(tiling=t, cost=cost_from_batch(cb, b), objective=float(objective[b])))
    return out


__all__ = ["BitFusionConfig", "BF_E_CONF", "BitFusionChoice", "BitFusionTiling", "BitFusionLayerBatch",
           "BitFusionTileBatch", "TILE_MAX", "SimulatorLayer", "layer_from_simulator", "estimate_bitfusion",
           "estimate_bitfusion_one", "estimate_bitfusion_many", "constants_table", "render_constants",
           "search_bitfusion", "candidate_tilings", "check_tiling_fits", "cost_from_batch", "area_bitfusion",
           "buffer_costs", "sram_bank_costs", "perf_factor", "as_bitfusion_config", "CACTI_45NM",
           "E_CORE_PJ_PER_FU", "FU_AREA_UM2", "DRAM_PJ_PER_BIT", "SRAM_ORDERS", "PMAX", "PMIN", "OUT_BITS"]
