"""Typed records of the hardware contract (DESIGN.md contract 1): Layer, Accelerator, Tiling, Cost.

One record feeds the PyTorch builder (jaq.nn derives Layers), the cost model (jaq.hw), the RTL generator
(rtl_gen reads Accelerator) and the testbench (sim reads Layer + Tiling). Units are in the field names or
docstrings: cycles, pJ, bytes (B), kilobytes (KB = 1024 B), mm², MHz.

Conventions
-----------
* Batch is 1 (the paper's accelerator runs one image at a time); ``Layer.batch`` > 1 exists for BitFusion mode
  only (jaq.hw.bitfusion) and the native model refuses it.
* ``in_h``/``in_w`` are the *padded* input extents as stored off-chip: ``(out - 1) * stride + kernel``.
  The host (or the previous layer's consumer) stores activations zero-padded; see docs/execution-model.md.
* PE array: ``pe_y`` rows x ``pe_x`` columns of fusion units. Which loop dimension maps to rows and columns is
  the dataflow's choice (docs/execution-model.md).
* Loop orders are tuples of the five dims in :data:`LOOP_DIMS`, outermost first.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Mapping

from jaq.errors import JaqError


#: The cost-model modes (jaq.hw.model.COST_MODELS): the machine the RTL implements, and BitFusion's simulator.
COST_MODES: tuple[str, ...] = ("native", "bitfusion")


def is_depthwise(in_ch, out_ch, groups):
    """Whether a layer takes the depthwise mapping (docs/execution-model.md section 8): ``groups == in_ch ==
    out_ch > 1``. Works on ints and on tensors (elementwise)."""
    return (groups == in_ch) & (groups == out_ch) & (groups > 1)

#: The five tile-loop dimensions (batch, input channel, output channel, output row, output column).
LOOP_DIMS: tuple[str, ...] = ("B", "IC", "OC", "OH", "OW")
#: All 120 loop orders, outermost first, in lexicographic order of LOOP_DIMS indices. Index = ``loop_order_id``.
LOOP_ORDERS: tuple[tuple[str, ...], ...] = tuple(itertools.permutations(LOOP_DIMS))
LOOP_ORDER_INDEX: dict[tuple[str, ...], int] = {o: i for i, o in enumerate(LOOP_ORDERS)}

LAYER_KINDS: tuple[str, ...] = ("conv", "depthwise", "pointwise", "fc")
DATAFLOWS: tuple[str, ...] = ("WS", "OS", "RS")
BITS: tuple[int, ...] = (2, 4, 8)
#: OBUF lines per cycle an output unit may be built for (``Accelerator.out_unit_lines``; docs/execution-model.md
#: section 7.4).
OUT_UNIT_LINES: tuple[int, ...] = (1, 2, 4, 8, 16)
#: Widths of a layer's final outputs: the consumer's activation bits, or 32 (accumulators / logits).
OUT_BITS: tuple[int, ...] = (2, 4, 8, 32)

#: Accelerator search-space bounds (paper, "Search Space").
PE_MIN, PE_MAX = 3, 64
BUF_KB_MIN, BUF_KB_MAX, BUF_KB_STEP = 64, 528, 16
#: Largest tile exponent: tiles are 2^0 .. 2^10 (paper, "Search Space").
TILE_EXP_MAX = 10


def parse_loop_order(value: Any, field_name: str = "loop_order") -> tuple[str, ...]:
    """Accept an index 0..119, a string like ``"B,OC,OH,IC,OW"`` / ``"B OC OH IC OW"``, or a sequence of dims."""
    if isinstance(value, bool):
        raise JaqError("expected an index 0..119 or a permutation of B,IC,OC,OH,OW", field_name)
    if isinstance(value, int):
        if not 0 <= value < len(LOOP_ORDERS):
            raise JaqError(f"loop order index {value} out of range 0..119", field_name)
        return LOOP_ORDERS[value]
    if isinstance(value, str):
        parts = [p for p in value.replace(",", " ").replace(">", " ").split() if p]
    elif isinstance(value, (list, tuple)):
        parts = [str(p) for p in value]
    else:
        raise JaqError("expected an index 0..119 or a permutation of B,IC,OC,OH,OW", field_name)
    parts = [p.strip().upper() for p in parts]
    if sorted(parts) != sorted(LOOP_DIMS):
        raise JaqError(f"{value!r} is not a permutation of B,IC,OC,OH,OW (outermost first)", field_name)
    return tuple(parts)


def _check_int(name: str, value: Any, lo: int, hi: int | None = None, where: str = "") -> None:
    f = f"{where}{name}"
    rng = f"{lo}..{hi}" if hi is not None else f">= {lo}"
    if isinstance(value, bool) or not isinstance(value, int):
        raise JaqError(f"expected an integer in {rng}, got {value!r}", f)
    if value < lo or (hi is not None and value > hi):
        shown = value if abs(value) < 1 << 64 else f"a {value.bit_length()}-bit integer"
        raise JaqError(f"{shown} out of range {rng}", f)


@dataclass(frozen=True)
class Layer:
    """One convolution-like layer as the accelerator runs it (batch 1).

    kind: ``conv`` (any KxK, groups allowed), ``depthwise`` (groups == in_ch == out_ch), ``pointwise`` (1x1),
    ``fc`` (1x1 on a 1x1 map). Channels count all groups; ``groups`` splits both. Bits: activations ``act_bits``
    (unsigned unless ``act_signed``), weights ``wgt_bits`` (always signed), each in {2, 4, 8}.
    """

    kind: str
    in_ch: int
    out_ch: int
    out_h: int
    out_w: int
    kernel: int = 1
    stride: int = 1
    groups: int = 1
    act_bits: int = 8
    wgt_bits: int = 8
    act_signed: bool = False
    name: str = ""
    #: Images per layer invocation (BitFusion mode only; the native machine runs batch 1).
    batch: int = 1
    #: Width and signedness of the layer's final outputs as the output unit writes them (the consumer's
    #: activation bits; 32: signed accumulators or logits). docs/execution-model.md section 7.
    out_bits: int = 32
    out_signed: bool = True
    #: Global average pooling of the final outputs (the head): the output unit sums each channel over the
    #: OH x OW pixels and writes one pixel; the out tile covers every pixel (t_oh = OH, t_ow = OW).
    #: docs/execution-model.md section 7.2.
    pool: bool = False
    #: Bits of the residual operand the output unit adds (the block input of an MBConv block's last conv, as
    #: stored: 2/4/8) and its signedness; 0: no residual. docs/execution-model.md section 7.3.
    res_bits: int = 0
    res_signed: bool = False

    def __post_init__(self) -> None:
        self.validate()

    # -- derived quantities -------------------------------------------------------------------------------
    @property
    def in_h(self) -> int:
        """Padded input rows as stored off-chip: (out_h - 1) * stride + kernel."""
        return (self.out_h - 1) * self.stride + self.kernel

    @property
    def in_w(self) -> int:
        """Padded input columns as stored off-chip."""
        return (self.out_w - 1) * self.stride + self.kernel

    @property
    def in_ch_per_group(self) -> int:
        return self.in_ch // self.groups

    @property
    def out_ch_per_group(self) -> int:
        return self.out_ch // self.groups

    @property
    def depthwise(self) -> bool:
        """One input and one output channel per group, more than one group: the depthwise mapping of
        docs/execution-model.md section 8 (channels become a tiled dimension, groups are no longer serial)."""
        return is_depthwise(self.in_ch, self.out_ch, self.groups)

    @property
    def tile_groups(self) -> int:
        """Iterations of the serial group loop of the program: 1 for a depthwise layer, else ``groups``."""
        return 1 if self.depthwise else self.groups

    @property
    def tile_dims(self) -> dict[str, int]:
        """Extents of the tiled dimensions IC, OC, OH, OW: per group (Cg, Mg), or (1, channels) for a depthwise
        layer, whose channel tile is the OC tile (section 8)."""
        ic, oc = (1, self.out_ch) if self.depthwise else (self.in_ch_per_group, self.out_ch_per_group)
        return {"IC": ic, "OC": oc, "OH": self.out_h, "OW": self.out_w}

    @property
    def macs(self) -> int:
        """Multiply-accumulates of the layer (batch 1)."""
        return self.out_ch * self.out_h * self.out_w * self.in_ch_per_group * self.kernel * self.kernel

    @property
    def weight_count(self) -> int:
        return self.out_ch * self.in_ch_per_group * self.kernel * self.kernel

    def validate(self, where: str = "") -> None:
        """Raise :class:`JaqError` naming the field if the layer is impossible."""
        if self.kind not in LAYER_KINDS:
            raise JaqError(f"unknown op kind {self.kind!r}; use one of {', '.join(LAYER_KINDS)}", f"{where}kind")
        for n in ("in_ch", "out_ch", "out_h", "out_w", "kernel", "stride", "groups", "batch"):
            _check_int(n, getattr(self, n), 1, 1 << 16, where)
        for n in ("act_bits", "wgt_bits"):
            v = getattr(self, n)
            if v not in BITS:
                raise JaqError(f"{v!r} not supported; bits must be one of 2, 4, 8", f"{where}{n}")
        for n in ("act_signed", "out_signed", "pool", "res_signed"):
            if not isinstance(getattr(self, n), bool):
                raise JaqError("expected true or false", f"{where}{n}")
        if self.out_bits not in OUT_BITS:
            raise JaqError(f"{self.out_bits!r} not supported; output bits must be one of 2, 4, 8, 32",
                           f"{where}out_bits")
        if self.res_bits not in (0,) + BITS:
            raise JaqError(f"{self.res_bits!r} not supported; residual bits must be 0 (none), 2, 4 or 8",
                           f"{where}res_bits")
        if self.res_bits and self.pool:
            raise JaqError("a pooled layer has no residual operand; set res_bits: 0", f"{where}res_bits")
        if self.out_bits == 32 and not self.out_signed:
            raise JaqError("32-bit outputs are signed; set out_signed: true", f"{where}out_signed")
        if not isinstance(self.name, str) or len(self.name) > 256 or not self.name.isprintable():
            raise JaqError(f"expected a one-line text label of at most 256 characters, got {self.name!r:.40}",
                           f"{where}name")
        if self.in_ch % self.groups or self.out_ch % self.groups:
            raise JaqError(f"groups={self.groups} must divide in_ch={self.in_ch} and out_ch={self.out_ch}",
                           f"{where}groups")
        if self.kind == "depthwise" and not (self.groups == self.in_ch == self.out_ch):
            raise JaqError("a depthwise layer needs groups == in_ch == out_ch", f"{where}groups")
        if self.kind in ("pointwise", "fc") and self.kernel != 1:
            raise JaqError(f"a {self.kind} layer has kernel 1, got {self.kernel}", f"{where}kernel")
        if self.kind == "fc" and (self.out_h, self.out_w, self.stride) != (1, 1, 1):
            raise JaqError("an fc layer has out_h = out_w = stride = 1", f"{where}out_h")
        if self.stride > self.kernel and self.kind != "pointwise":
            # A stride larger than the kernel skips input pixels; allowed for 1x1 (downsampling shortcut) only.
            raise JaqError(f"stride {self.stride} larger than kernel {self.kernel}", f"{where}stride")

    def with_bits(self, act_bits: int, wgt_bits: int) -> "Layer":
        return replace(self, act_bits=act_bits, wgt_bits=wgt_bits)

    def to_dict(self) -> dict[str, Any]:
        """The fields as a dict; ``batch``, ``out_bits``, ``out_signed``, ``pool`` and ``res_*`` only when they
        differ from their defaults (files of layers that use none of them stay as they were)."""
        d = asdict(self)
        for k in ("batch", "out_bits", "out_signed", "pool", "res_bits", "res_signed"):
            if d[k] == self.__dataclass_fields__[k].default:
                del d[k]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "") -> "Layer":
        if not isinstance(d, Mapping):
            raise JaqError("expected a mapping of layer fields", where.rstrip(".") or None)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known - _LAYER_EXTRA_KEYS)
        if unknown:
            raise JaqError(f"unknown layer field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}",
                           f"{where}{unknown[0]}")
        for req in ("kind", "in_ch", "out_ch", "out_h", "out_w"):
            if req not in d:
                raise JaqError("missing (required)", f"{where}{req}")
        kw = {k: d[k] for k in known if k in d}
        obj = object.__new__(cls)
        for k in known:
            default = cls.__dataclass_fields__[k].default
            object.__setattr__(obj, k, kw.get(k, default))
        obj.validate(where)
        return obj


#: Keys that may sit beside a layer's fields in files (per-layer tiling, predictions, weights...).
_LAYER_EXTRA_KEYS = frozenset({"tiling", "predicted", "op", "block", "weights", "scales", "index", "role"})


@dataclass(frozen=True)
class Accelerator:
    """A BitFusion-style accelerator: the paper's 7 searched parameters plus the fixed technology assumptions.

    pe_x: fusion-unit columns, pe_y: fusion-unit rows (3..64 each).
    act_buf_kb / wgt_buf_kb / out_buf_kb: on-chip buffer capacities in KB (64..528, step 16).
    dataflow: WS / OS / RS. loop_order: default tile-loop order (outermost first) for every layer.
    clock_mhz: core clock in MHz. dram_bits_per_cycle: off-chip bandwidth in bits per core cycle (multiple of 32).
    dram_latency_cycles: cycles from a read request to its data, 1..100000 (reads are pipelined, one beat per
    cycle).
    out_unit_lines: OBUF lines the output unit finishes per cycle (docs/execution-model.md section 7.4).
    double_buffer: every buffer holds two tiles, so loads, compute and stores overlap (section 9).
    """

    pe_x: int = 16
    pe_y: int = 16
    act_buf_kb: int = 128
    wgt_buf_kb: int = 128
    out_buf_kb: int = 128
    dataflow: str = "WS"
    loop_order: tuple[str, ...] = ("B", "OC", "OH", "OW", "IC")
    clock_mhz: float = 500.0
    dram_bits_per_cycle: int = 128
    dram_latency_cycles: int = 20
    out_unit_lines: int = 4
    double_buffer: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "loop_order", parse_loop_order(self.loop_order, "accelerator.loop_order"))
        self.validate()

    @property
    def num_pe(self) -> int:
        return self.pe_x * self.pe_y

    @property
    def loop_order_id(self) -> int:
        return LOOP_ORDER_INDEX[self.loop_order]

    def validate(self, where: str = "accelerator.") -> None:
        _check_int("pe_x", self.pe_x, PE_MIN, PE_MAX, where)
        _check_int("pe_y", self.pe_y, PE_MIN, PE_MAX, where)
        for n in ("act_buf_kb", "wgt_buf_kb", "out_buf_kb"):
            v = getattr(self, n)
            _check_int(n, v, BUF_KB_MIN, BUF_KB_MAX, where)
            if (v - BUF_KB_MIN) % BUF_KB_STEP:
                raise JaqError(f"{v} KB is not on the 16 KB grid 64, 80, ..., 528", f"{where}{n}")
        if self.dataflow not in DATAFLOWS:
            raise JaqError(f"unknown dataflow {self.dataflow!r}; use WS, OS or RS", f"{where}dataflow")
        if isinstance(self.clock_mhz, bool) or not isinstance(self.clock_mhz, (int, float)) or not (
                0 < self.clock_mhz <= 10_000):
            raise JaqError(f"{self.clock_mhz!r} must be a clock in MHz in (0, 10000]", f"{where}clock_mhz")
        _check_int("dram_bits_per_cycle", self.dram_bits_per_cycle, 32, 4096, where)
        if self.dram_bits_per_cycle % 32:
            raise JaqError(f"{self.dram_bits_per_cycle} must be a multiple of 32", f"{where}dram_bits_per_cycle")
        # >= 1: the RTL and the memory model cannot answer a read in the request's own cycle (docs/rtl.md)
        _check_int("dram_latency_cycles", self.dram_latency_cycles, 1, 100_000, where)
        if type(self.out_unit_lines) is not int or self.out_unit_lines not in OUT_UNIT_LINES:
            raise JaqError(f"{self.out_unit_lines!r} must be one of {', '.join(map(str, OUT_UNIT_LINES))}",
                           f"{where}out_unit_lines")
        if type(self.double_buffer) is not bool:
            raise JaqError(f"{self.double_buffer!r} must be true or false", f"{where}double_buffer")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["loop_order"] = list(self.loop_order)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "accelerator.") -> "Accelerator":
        if not isinstance(d, Mapping):
            raise JaqError("expected a mapping of accelerator fields", where.rstrip("."))
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise JaqError(f"unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}",
                           f"{where}{unknown[0]}")
        kw = dict(d)
        if "loop_order" in kw:
            kw["loop_order"] = parse_loop_order(kw["loop_order"], f"{where}loop_order")
        obj = object.__new__(cls)
        for k in known:
            object.__setattr__(obj, k, kw.get(k, cls.__dataclass_fields__[k].default))
        obj.validate(where)
        return obj


@dataclass(frozen=True)
class BitFusionConfig:
    """An accelerator as BitFusion's simulator describes it (its ``.ini`` files), validated on wide ranges.

    rows: N, fusion-unit rows (input channels; our ``pe_y``). cols: M, columns (output channels; ``pe_x``).
    wbuf_bytes / ibuf_bytes / obuf_bytes: weight / input / output buffer capacities in bytes (each double
    buffered: a tile may use half). if_width: off-chip bits per cycle. clock_mhz: core clock in MHz.

    The project's :class:`~jaq.hw.Accelerator` admits only the paper's search space (PE 3..64, buffers 64..528
    KB); BitFusion's own configuration ``bf_e_conf`` (IBUF 32 KB, OBUF 16 KB) lies outside it, hence this record.
    """

    rows: int = 16
    cols: int = 32
    wbuf_bytes: int = 65536
    ibuf_bytes: int = 32768
    obuf_bytes: int = 16384
    if_width: int = 192
    clock_mhz: float = 500.0

    def __post_init__(self) -> None:
        self.validate()

    def validate(self, where: str = "bitfusion.") -> None:
        for n, lo, hi in (("rows", 1, 1024), ("cols", 1, 1024), ("wbuf_bytes", 64, 1 << 30),
                          ("ibuf_bytes", 64, 1 << 30), ("obuf_bytes", 64, 1 << 30), ("if_width", 1, 1 << 16)):
            v = getattr(self, n)
            if isinstance(v, bool) or not isinstance(v, int):
                raise JaqError(f"expected an integer, got {v!r}", f"{where}{n}")
            if not lo <= v <= hi:
                raise JaqError(f"{v} out of range {lo}..{hi}", f"{where}{n}")
        c = self.clock_mhz
        if isinstance(c, bool) or not isinstance(c, (int, float)) or not 0 < c <= 10_000:
            raise JaqError(f"{c!r} must be a clock in MHz in (0, 10000]", f"{where}clock_mhz")

    @classmethod
    def from_accelerator(cls, acc: Accelerator) -> "BitFusionConfig":
        """N = pe_y, M = pe_x, buffers KB x 1024, if_width = dram_bits_per_cycle."""
        return cls(rows=acc.pe_y, cols=acc.pe_x, wbuf_bytes=acc.wgt_buf_kb * 1024, ibuf_bytes=acc.act_buf_kb * 1024,
                   obuf_bytes=acc.out_buf_kb * 1024, if_width=acc.dram_bits_per_cycle, clock_mhz=acc.clock_mhz)

    def to_accel_batch(self, device=None):
        """One-row :class:`~jaq.hw.batch.AccelBatch` (:meth:`AccelBatch.from_bitfusion
        <jaq.hw.batch.AccelBatch.from_bitfusion>`)."""
        from jaq.hw.batch import AccelBatch  # import cost only: records stay torch-free (accel.json readers)

        return AccelBatch.from_bitfusion(self, device=device)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "bitfusion.") -> "BitFusionConfig":
        if not isinstance(d, Mapping):
            raise JaqError("expected a mapping of BitFusion configuration fields", where.rstrip("."))
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise JaqError(f"unknown field(s) {', '.join(unknown)}; known: {', '.join(known)}",
                           f"{where}{unknown[0]}")
        obj = object.__new__(cls)
        for k in known:
            object.__setattr__(obj, k, d.get(k, cls.__dataclass_fields__[k].default))
        obj.validate(where)
        return obj


#: BitFusion's ``bf_e_conf.ini`` (the configuration of its paper's comparison with Eyeriss), the reference case.
BF_E_CONF = BitFusionConfig()


@dataclass(frozen=True)
class Tiling:
    """Tile sizes (elements) of one layer and its tile-loop order. Batch tile is always 1.

    ``t_ic``/``t_oc`` count channels *within one group*; edge tiles may be partial (ceil division).
    """

    t_ic: int
    t_oc: int
    t_oh: int
    t_ow: int
    loop_order: tuple[str, ...] = ("B", "OC", "OH", "OW", "IC")

    def __post_init__(self) -> None:
        object.__setattr__(self, "loop_order", parse_loop_order(self.loop_order, "tiling.loop_order"))
        for n in ("t_ic", "t_oc", "t_oh", "t_ow"):
            _check_int(n, getattr(self, n), 1, 1 << TILE_EXP_MAX, "tiling.")

    def counts(self, layer: Layer) -> dict[str, int]:
        """Number of tiles along each loop dimension of :attr:`Layer.tile_dims` (ceil division; B is 1)."""
        d = layer.tile_dims
        return {"B": 1, "IC": -(-d["IC"] // self.t_ic), "OC": -(-d["OC"] // self.t_oc),
                "OH": -(-d["OH"] // self.t_oh), "OW": -(-d["OW"] // self.t_ow)}

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["loop_order"] = list(self.loop_order)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "tiling.") -> "Tiling":
        if not isinstance(d, Mapping):
            raise JaqError("expected a mapping with t_ic, t_oc, t_oh, t_ow, loop_order", where.rstrip("."))
        unknown = sorted(set(d) - {"t_ic", "t_oc", "t_oh", "t_ow", "loop_order"})
        if unknown:
            raise JaqError(f"unknown field(s) {', '.join(unknown)}", f"{where}{unknown[0]}")
        for req in ("t_ic", "t_oc", "t_oh", "t_ow"):
            if req not in d:
                raise JaqError("missing (required)", f"{where}{req}")
            _check_int(req, d[req], 1, 1 << TILE_EXP_MAX, where)
        lo = parse_loop_order(d.get("loop_order", cls.__dataclass_fields__["loop_order"].default),
                              f"{where}loop_order")
        return cls(d["t_ic"], d["t_oc"], d["t_oh"], d["t_ow"], lo)


@dataclass
class Cost:
    """Cost of one layer (or a sum of layers) on one accelerator under one tiling.

    cycles: core clock cycles. latency_ms: cycles / clock. energy_pj: pJ by component (``mac``, ``act_buf_rd``,
    ``act_buf_wr``, ``wgt_buf_rd``, ``wgt_buf_wr``, ``out_buf_rd``, ``out_buf_wr``, ``dram``). area_mm2: mm² of
    the whole accelerator. accesses: counts by name (``*_vectors``/``*_words`` in accesses, ``*_bits`` in bits,
    ``dram_rd_bits``, ``dram_wr_bits``, ``macs``, ``fu_cycles``...). ``legal`` is False when the tiling does not
    fit (then the other numbers are meaningless).
    """

    cycles: int
    latency_ms: float
    energy_pj: dict[str, float]
    area_mm2: float
    accesses: dict[str, int] = field(default_factory=dict)
    legal: bool = True

    @property
    def energy_total_pj(self) -> float:
        return float(sum(self.energy_pj.values()))

    @property
    def edap(self) -> float:
        """Energy-delay-area product in J·s·mm² (the paper reports it x 1e-18... see docs/cost-model.md)."""
        return self.energy_total_pj * 1e-12 * self.latency_ms * 1e-3 * self.area_mm2

    def to_dict(self) -> dict[str, Any]:
        return {"cycles": int(self.cycles), "latency_ms": float(self.latency_ms),
                "energy_pj": {k: float(v) for k, v in self.energy_pj.items()},
                "energy_total_pj": self.energy_total_pj, "area_mm2": float(self.area_mm2),
                "accesses": {k: int(v) for k, v in self.accesses.items()}, "legal": bool(self.legal)}
