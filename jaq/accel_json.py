"""``accel.json``: the hand-off from the co-search to the hardware tools (DESIGN.md, contract 2).

Schema ``jaq.accel/1`` (one JSON object; YAML with the same structure is accepted by :func:`load_spec`)::

    schema_version: "jaq.accel/1"            # required in .json files written by jaq; optional when hand-written
    provenance: {config, config_sha256, seed, code_version, created, command, notes, extra}   # all optional
    mode: native | bitfusion                 # the cost-model mode of the predictions (default native)
    network:
      name, dataset                          # optional labels
      input_shape: [C, H, W]                 # optional; checked against the first layer's in_ch
      layers:                                # in execution order
        - kind, in_ch, out_ch, out_h, out_w, kernel, stride, groups, act_bits, wgt_bits, act_signed, name
                                             # = jaq.hw.Layer fields (kind, in_ch, out_ch, out_h, out_w required)
          in_h, in_w, padding                # optional unpadded input extents + padding: checked (kernel must
                                             # fit, out_h/out_w must follow); out_h/out_w derived when omitted
          op, block, role                    # optional labels (FBNet op choice, block index, part of the block)
          tiling: {t_ic, t_oc, t_oh, t_ow, loop_order}   # optional pinned tiling; missing -> BatchTile
          predicted: {mode, cycles, latency_ms, energy_pj{...}, area_mm2, accesses{...}, legal}   # optional
          weights: path                      # optional: integer weights of a retrained run (relative to file)
          scales: path or data               # optional: requantization scales of a retrained run
    layers: [...]                            # shortcut for network.layers (hand-written files)
    accelerator: {pe_x, pe_y, act_buf_kb, wgt_buf_kb, out_buf_kb, dataflow, loop_order, clock_mhz,
                  dram_bits_per_cycle, dram_latency_cycles, out_unit_lines, double_buffer}  # = jaq.hw.Accelerator
    bitfusion: {rows, cols, wbuf_bytes, ibuf_bytes, obuf_bytes, if_width, clock_mhz}
                                             # optional BitFusion-simulator configuration (compatibility mode;
                                             # may lie outside the accelerator search space)
    objective_weights: [lE, lL, lA]          # optional BatchTile weights the tilings were chosen with
    totals: {mode, cycles, latency_ms, energy_mj, area_mm2, edap}    # optional; edap in J*s*mm²
    accuracy: {top1, dataset, split, ...}    # optional, where measured

At least one of ``accelerator`` and ``bitfusion`` is required. Every problem is a one-line
:class:`~jaq.errors.JaqError` naming the field (``layers[3].kernel: ...``).

Required hardware fields. In a hand-off document -- a ``.json`` file, or any document that gives
``schema_version`` (every file jaq writes) -- the fields that define the hardware are required, never defaulted:
every field of ``accelerator`` (and of ``bitfusion`` when given) and each layer's ``kernel``, ``stride``,
``act_bits`` and ``wgt_bits``. Files written by jaq have always carried all of them, so they still load under
``jaq.accel/1``; only hand-written ``.json`` files that leaned on the defaults must now spell them out. A
hand-written YAML sketch without ``schema_version`` (``examples/*.yaml``) may still leave them to the
:class:`~jaq.hw.records.Layer` / :class:`~jaq.hw.records.Accelerator` defaults (``kernel 1, stride 1, 8/8 bits``,
16x16 PEs, 128 KB buffers...).

Numbers are checked for type and range (NaN, infinities and out-of-range values are refused naming the field
and the range); free-form values (``scales``, ``provenance.extra``) must be small plain data
(:func:`jaq.io.check_plain`); labels are one-line text.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping, Sequence

from jaq import __version__
from jaq.errors import JaqError
from jaq.hw.records import COST_MODES, LAYER_KINDS, Accelerator, BitFusionConfig, Cost, Layer, Tiling
from jaq.io import atomic_write_text, check_plain, load_structured

SCHEMA_VERSION = "jaq.accel/1"
MODES = COST_MODES

_TOP_KEYS = ("schema_version", "provenance", "mode", "network", "layers", "accelerator", "bitfusion",
             "objective_weights", "totals", "accuracy")
_NET_KEYS = ("name", "dataset", "input_shape", "layers")
_LAYER_LABELS = ("op", "block", "role", "tiling", "predicted", "weights", "scales", "in_h", "in_w", "padding",
                 "index")
_PROV_KEYS = ("config", "config_sha256", "seed", "code_version", "created", "command", "notes", "extra")
_TOTAL_KEYS = ("mode", "cycles", "latency_ms", "energy_mj", "area_mm2", "edap")
#: Fields a hand-off document must give (see the module docstring).
_LAYER_HW_KEYS = ("kernel", "stride", "act_bits", "wgt_bits")

#: Largest count (cycles, accesses) and physical quantity (ms, pJ, mJ, mm², J*s*mm²) a file may hold.
MAX_COUNT = (1 << 63) - 1
MAX_QUANTITY = 1e30
#: Longest label (names, ops, roles) and longest other text (paths, notes, commands), in characters.
MAX_LABEL = 4096
MAX_TEXT = 65_536
#: Most layers a network may have.
MAX_LAYERS = 100_000


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _mapping(v: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(v, Mapping):
        raise JaqError(f"expected a mapping, got {type(v).__name__}", where)
    for k in v:
        if not isinstance(k, str):
            raise JaqError(f"keys must be strings, got {k!r}", where)
    return v


def _unknown(d: Mapping[str, Any], known: Sequence[str], where: str) -> None:
    bad = sorted(set(d) - set(known))
    if bad:
        raise JaqError(f"unknown field {bad[0]!r}; known: {', '.join(known)}", f"{where}{bad[0]}")


def _show(v: Any) -> str:
    """A short repr of a user value for a one-line message."""
    r = repr(v) if not isinstance(v, int) or abs(v) < 1 << 64 else f"a {v.bit_length()}-bit integer"
    return r if len(r) <= 60 else r[:57] + "..."


def _opt_str(d: Mapping[str, Any], k: str, where: str, limit: int = MAX_LABEL) -> str | None:
    """An optional one-line text field of at most ``limit`` characters."""
    v = d.get(k)
    if v is not None and not (isinstance(v, str) and len(v) <= limit and v.isprintable()):
        raise JaqError(f"expected one-line text of at most {limit} characters, got {_show(v)}", f"{where}{k}")
    return v


def _number(v: Any, field_name: str, hi: float = MAX_QUANTITY, lo: float = 0.0) -> float:
    """A finite number in [lo, hi] (physical quantities: ms, pJ, mm²...)."""
    if not _is_num(v) or not (lo <= v <= hi):
        raise JaqError(f"expected a finite number in {lo:g}..{hi:g}, got {_show(v)}", field_name)
    return float(v)


def _count(v: Any, field_name: str, hi: int = MAX_COUNT) -> int:
    """A non-negative integer count (cycles, accesses) up to ``hi``."""
    if not _is_int(v) or not (0 <= v <= hi):
        raise JaqError(f"expected an integer count in 0..{hi}, got {_show(v)}", field_name)
    return int(v)


def _required(d: Mapping[str, Any], keys: Sequence[str], where: str, what: str) -> None:
    """Hand-off documents give every hardware field (module docstring): name the first one missing."""
    for k in keys:
        if k not in d:
            raise JaqError(f"missing (required in a hand-off file: {what} are never defaulted)", f"{where}{k}")


# ---------------------------------------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------------------------------------

@dataclass
class Provenance:
    """Where a file came from: config path and SHA-256, seed, jaq version, creation time (ISO 8601, UTC)."""

    config: str | None = None
    config_sha256: str | None = None
    seed: int | None = None
    code_version: str | None = None
    created: str | None = None
    command: str | None = None
    notes: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def now(cls, config: str | os.PathLike | None = None, seed: int | None = None, command: str | None = None,
            **extra: Any) -> "Provenance":
        """Provenance for a file written now by this jaq (hashes ``config`` when it is a readable file)."""
        sha = None
        if config is not None and Path(config).is_file():
            sha = hashlib.sha256(Path(config).read_bytes()).hexdigest()
        created = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
        return cls(config=str(config) if config is not None else None, config_sha256=sha, seed=seed,
                   code_version=f"jaq {__version__}", created=created, command=command, extra=dict(extra))

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in _PROV_KEYS if k != "extra" and getattr(self, k) is not None}
        if self.extra:
            d["extra"] = dict(self.extra)
        return d

    @classmethod
    def from_dict(cls, d: Any, where: str = "provenance.") -> "Provenance":
        d = _mapping(d, where.rstrip("."))
        _unknown(d, _PROV_KEYS, where)
        seed = d.get("seed")
        if seed is not None and not (_is_int(seed) and 0 <= seed < 1 << 63):
            raise JaqError(f"expected an integer in 0..{(1 << 63) - 1}, got {_show(seed)}", f"{where}seed")
        extra = d.get("extra") or {}
        _mapping(extra, f"{where}extra")
        extra = check_plain(extra, f"{where}extra")
        return cls(seed=seed, extra=extra,
                   **{k: _opt_str(d, k, where, MAX_TEXT) for k in _PROV_KEYS if k not in ("seed", "extra")})


def _small_mapping(d: Mapping[str, Any], k: str, where: str, limit: int = 256) -> Mapping[str, Any]:
    """``d[k]`` (default empty): a mapping of at most ``limit`` named values."""
    m = _mapping(d.get(k, {}), f"{where}{k}")
    if len(m) > limit:
        raise JaqError(f"{len(m)} entries; at most {limit}", f"{where}{k}")
    return m


@dataclass
class Predicted:
    """The cost model's prediction for one layer (or the whole network) and the mode that produced it."""

    mode: str
    cost: Cost

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, **self.cost.to_dict()}

    @classmethod
    def from_dict(cls, d: Any, where: str) -> "Predicted":
        d = _mapping(d, where.rstrip("."))
        known = ("mode", "cycles", "latency_ms", "energy_pj", "energy_total_pj", "area_mm2", "accesses", "legal")
        _unknown(d, known, where)
        mode = d.get("mode", "native")
        if mode not in MODES:
            raise JaqError(f"unknown mode {mode!r}; use native or bitfusion", f"{where}mode")
        if "cycles" not in d:
            raise JaqError("missing (required)", f"{where}cycles")
        cycles = _count(d["cycles"], f"{where}cycles")
        latency, area = (_number(d.get(k, 0.0), f"{where}{k}") for k in ("latency_ms", "area_mm2"))
        if "energy_total_pj" in d:
            _number(d["energy_total_pj"], f"{where}energy_total_pj")
        energy = {k: _number(v, f"{where}energy_pj.{k}") for k, v in _small_mapping(d, "energy_pj", where).items()}
        accesses = {k: _count(v if not (isinstance(v, float) and v.is_integer()) else int(v), f"{where}accesses.{k}")
                    for k, v in _small_mapping(d, "accesses", where).items()}
        legal = d.get("legal", True)
        if not isinstance(legal, bool):
            raise JaqError("expected true or false", f"{where}legal")
        cost = Cost(cycles=cycles, latency_ms=latency, energy_pj=energy, area_mm2=area, accesses=accesses,
                    legal=legal)
        return cls(mode=mode, cost=cost)


@dataclass
class LayerEntry:
    """One layer of the network in execution order: the cost-model record plus labels, pinned tiling,
    prediction and (for retrained runs) the path of its integer weights.

    ``in_h``/``in_w``/``padding``: optional unpadded input extents and zero padding as written by hand (they
    are checked against ``kernel``/``stride``/``out_h``/``out_w`` on load and kept for round trips).
    """

    layer: Layer
    op: str | None = None
    block: int | None = None
    role: str | None = None
    tiling: Tiling | None = None
    predicted: Predicted | None = None
    weights: str | None = None
    scales: Any = None
    in_h: int | None = None
    in_w: int | None = None
    padding: int | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        for k in ("op", "block", "role"):
            if getattr(self, k) is not None:
                d[k] = getattr(self, k)
        d.update(self.layer.to_dict())
        for k in ("in_h", "in_w", "padding"):
            if getattr(self, k) is not None:
                d[k] = getattr(self, k)
        if self.tiling is not None:
            d["tiling"] = self.tiling.to_dict()
        if self.predicted is not None:
            d["predicted"] = self.predicted.to_dict()
        if self.weights is not None:
            d["weights"] = self.weights
        if self.scales is not None:
            d["scales"] = self.scales
        return d


@dataclass
class Network:
    """The network as the accelerator runs it: input shape [C, H, W] and the layers in execution order."""

    layers: list[LayerEntry]
    input_shape: tuple[int, int, int] | None = None
    name: str | None = None
    dataset: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        if self.name is not None:
            d["name"] = self.name
        if self.dataset is not None:
            d["dataset"] = self.dataset
        if self.input_shape is not None:
            d["input_shape"] = list(self.input_shape)
        d["layers"] = [e.to_dict() for e in self.layers]
        return d


@dataclass
class Totals:
    """Whole-network figures: cycles, latency (ms), energy (mJ), area (mm²), EDAP (J·s·mm²)."""

    mode: str
    cycles: int
    latency_ms: float
    energy_mj: float
    area_mm2: float
    edap: float

    @classmethod
    def from_costs(cls, costs: Sequence[Cost], mode: str, area_mm2: float | None = None) -> "Totals":
        """Sum per-layer costs (layers run one after another); area is the accelerator's (one chip)."""
        cycles = sum(int(c.cycles) for c in costs)
        latency = sum(float(c.latency_ms) for c in costs)
        energy_mj = sum(c.energy_total_pj for c in costs) * 1e-9
        area = float(area_mm2 if area_mm2 is not None else (costs[0].area_mm2 if costs else 0.0))
        return cls(mode=mode, cycles=cycles, latency_ms=latency, energy_mj=energy_mj, area_mm2=area,
                   edap=energy_mj * 1e-3 * latency * 1e-3 * area)

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in _TOTAL_KEYS}

    @classmethod
    def from_dict(cls, d: Any, where: str = "totals.") -> "Totals":
        d = _mapping(d, where.rstrip("."))
        _unknown(d, _TOTAL_KEYS, where)
        for k in _TOTAL_KEYS[1:]:
            if k not in d:
                raise JaqError("missing (required)", f"{where}{k}")
        mode = d.get("mode", "native")
        if mode not in MODES:
            raise JaqError(f"unknown mode {_show(mode)}; use native or bitfusion", f"{where}mode")
        return cls(mode=mode, cycles=_count(d["cycles"], f"{where}cycles"),
                   **{k: _number(d[k], f"{where}{k}") for k in _TOTAL_KEYS[2:]})


@dataclass
class AccelSpec:
    """A parsed, validated ``accel.json`` (or the equivalent YAML). ``source`` is the file it came from (not
    serialised; relative ``weights`` paths resolve against its folder)."""

    network: Network
    accelerator: Accelerator | None = None
    bitfusion: BitFusionConfig | None = None
    mode: str = "native"
    provenance: Provenance = field(default_factory=Provenance)
    objective_weights: tuple[float, float, float] | None = None
    totals: Totals | None = None
    accuracy: dict[str, Any] | None = None
    schema_version: str = SCHEMA_VERSION
    source: Path | None = None

    @property
    def layers(self) -> list[Layer]:
        return [e.layer for e in self.network.layers]

    @property
    def tilings(self) -> list[Tiling | None]:
        return [e.tiling for e in self.network.layers]

    def bitfusion_config(self) -> BitFusionConfig:
        """The BitFusion configuration: the file's ``bitfusion`` section, else derived from ``accelerator``."""
        if self.bitfusion is not None:
            return self.bitfusion
        assert self.accelerator is not None
        return BitFusionConfig.from_accelerator(self.accelerator)

    def resolve(self, path: str) -> Path:
        """A path written in the file (e.g. a layer's ``weights``), relative to the file's folder."""
        p = Path(path)
        if p.is_absolute() or self.source is None:
            return p
        return self.source.parent / p

    def to_dict(self) -> dict[str, Any]:
        return dump(self)


# ---------------------------------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------------------------------

def _parse_scales(v: Any, where: str) -> Any:
    """A layer's ``scales``: a path (text) or small plain data (a list or mapping of numbers)."""
    if v is None or isinstance(v, str):
        return _opt_str({"scales": v}, "scales", where)
    if not isinstance(v, (list, Mapping)):
        raise JaqError(f"expected a path, a list or a mapping, got {type(v).__name__}", f"{where}scales")
    return check_plain(v, f"{where}scales", max_items=1 << 18, max_depth=4, max_str=MAX_LABEL)


def _parse_layer(d: Any, i: int, acc: Accelerator | None, hand_off: bool = False) -> LayerEntry:
    where = f"layers[{i}]."
    d = _mapping(d, f"layers[{i}]")
    d = dict(d)
    labels = {k: d.pop(k) for k in _LAYER_LABELS if k in d}
    if "kind" in d and d["kind"] not in LAYER_KINDS:
        raise JaqError(f"unknown op kind {_show(d['kind'])}; use one of {', '.join(LAYER_KINDS)}", f"{where}kind")
    if hand_off:
        _required(d, _LAYER_HW_KEYS, where, "a layer's kernel, stride and bits")
    for k in ("in_h", "in_w", "padding"):
        v = labels.get(k)
        lo = 0 if k == "padding" else 1
        if v is not None and (not _is_int(v) or not lo <= v <= 1 << 16):
            raise JaqError(f"expected an integer in {lo}..{1 << 16}, got {_show(v)}", f"{where}{k}")
    # channels first: a zero or negative channel count gets its own message
    for k in ("in_ch", "out_ch"):
        if k in d and _is_int(d[k]) and d[k] <= 0:
            raise JaqError(f"{_show(d[k])} channels out of range 1..{1 << 16}; a layer needs at least 1",
                           f"{where}{k}")
    # unpadded input extents: the kernel must fit, the output extents follow (or are derived)
    pad = labels.get("padding") or 0
    k_ = d.get("kernel", 1)
    s_ = d.get("stride", 1)
    if _is_int(k_) and _is_int(s_) and k_ >= 1 and s_ >= 1:
        for src, dst in (("in_h", "out_h"), ("in_w", "out_w")):
            n_in = labels.get(src)
            if n_in is None:
                continue
            if k_ > n_in + 2 * pad:
                raise JaqError(f"{k_} larger than the padded input ({src} {n_in} + 2 x padding {pad} = "
                               f"{n_in + 2 * pad})", f"{where}kernel")
            expect = (n_in + 2 * pad - k_) // s_ + 1
            if dst not in d:
                d[dst] = expect
            elif d[dst] != expect:
                raise JaqError(f"{d[dst]!r} does not follow from {src} {n_in}, padding {pad}, kernel {k_}, "
                               f"stride {s_} (expected {expect})", f"{where}{dst}")
    layer = Layer.from_dict(d, where)
    entry = LayerEntry(layer=layer, in_h=labels.get("in_h"), in_w=labels.get("in_w"),
                       padding=labels.get("padding"))
    for k in ("op", "role"):
        setattr(entry, k, _opt_str(labels, k, where))
    b = labels.get("block")
    if b is not None and not (_is_int(b) and 0 <= b <= 1 << 16):
        raise JaqError(f"expected a block index in 0..{1 << 16}, got {_show(b)}", f"{where}block")
    entry.block = b
    t = labels.get("tiling")
    if t is not None and t != "auto":
        t = dict(_mapping(t, f"{where}tiling"))
        if "loop_order" not in t and acc is not None:
            t["loop_order"] = list(acc.loop_order)
        tiling = Tiling.from_dict(t, f"{where}tiling.")
        td = layer.tile_dims  # a depthwise layer tiles its channels as OC (docs/execution-model.md section 8)
        dims = {"t_ic": (td["IC"], "input channels per group"),
                "t_oc": (td["OC"], "channels" if layer.depthwise else "output channels per group"),
                "t_oh": (layer.out_h, "output rows"), "t_ow": (layer.out_w, "output columns")}
        for k, (n, what) in dims.items():
            if getattr(tiling, k) > n:
                raise JaqError(f"{getattr(tiling, k)} larger than the layer's {n} {what}", f"{where}tiling.{k}")
        entry.tiling = tiling
    if labels.get("predicted") is not None:
        entry.predicted = Predicted.from_dict(labels["predicted"], f"{where}predicted.")
    entry.weights = _opt_str(labels, "weights", where)
    entry.scales = _parse_scales(labels.get("scales"), where)
    return entry


def is_hand_off(obj: Mapping[str, Any], source: str | os.PathLike | None = None) -> bool:
    """A hand-off document (module docstring): it gives ``schema_version`` or comes from a ``.json`` file."""
    return "schema_version" in obj or (source is not None and str(source).endswith(".json"))


def _hardware(obj: Mapping[str, Any], hand_off: bool) -> tuple[Accelerator | None, BitFusionConfig | None]:
    """The ``accelerator`` and ``bitfusion`` sections (all fields required in hand-off documents)."""
    acc = bf = None
    if obj.get("accelerator") is not None:
        acc = Accelerator.from_dict(obj["accelerator"], "accelerator.")
        if hand_off:
            _required(obj["accelerator"], [f.name for f in fields(Accelerator)], "accelerator.",
                      "the accelerator's fields")
    if obj.get("bitfusion") is not None:
        bf = BitFusionConfig.from_dict(obj["bitfusion"], "bitfusion.")
        if hand_off:
            _required(obj["bitfusion"], [f.name for f in fields(BitFusionConfig)], "bitfusion.",
                      "the BitFusion configuration's fields")
    return acc, bf


def parse_spec(obj: Any, source: str | os.PathLike | None = None, *, hand_off: bool | None = None) -> AccelSpec:
    """Validate a loaded JSON/YAML object as an accel spec (see the module docstring for the schema).

    ``hand_off``: require every hardware field (default: :func:`is_hand_off`)."""
    if not isinstance(obj, Mapping):
        raise JaqError(f"expected a mapping at the top of {source or 'the file'}, got "
                       f"{type(obj).__name__}; see docs/cost-model.md for the accel.json schema")
    _mapping(obj, "(top level)")
    _unknown(obj, _TOP_KEYS, "")
    version = obj.get("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise JaqError(f"{_show(version)} is not supported by this jaq (it reads {SCHEMA_VERSION!r})",
                       "schema_version")
    mode = obj.get("mode", "native")
    if mode not in MODES:
        raise JaqError(f"unknown mode {_show(mode)}; use native or bitfusion", "mode")
    if hand_off is None:
        hand_off = is_hand_off(obj, source)

    acc, bf = _hardware(obj, hand_off)
    if acc is None and bf is None:
        raise JaqError("missing (required): give the accelerator's fields (or a bitfusion: configuration)",
                       "accelerator")

    if "network" in obj and "layers" in obj:
        raise JaqError("give the layers either under network: or at the top level, not both", "layers")
    net = obj.get("network")
    if net is None:
        net = {"layers": obj.get("layers")}
    net = _mapping(net, "network")
    _unknown(net, _NET_KEYS, "network.")
    layers = net.get("layers")
    if layers is None:
        raise JaqError("missing (required): the network's layers in execution order", "layers")
    if not isinstance(layers, list) or not layers:
        raise JaqError("expected a non-empty list of layers", "layers")
    if len(layers) > MAX_LAYERS:
        raise JaqError(f"{len(layers)} layers; at most {MAX_LAYERS}", "layers")
    entries = [_parse_layer(d, i, acc, hand_off) for i, d in enumerate(layers)]
    shape = net.get("input_shape")
    if shape is not None:
        if not (isinstance(shape, (list, tuple)) and len(shape) == 3
                and all(_is_int(v) and 0 < v <= 1 << 16 for v in shape)):
            raise JaqError(f"expected [C, H, W] of integers in 1..{1 << 16}, got {_show(shape)}",
                           "network.input_shape")
        shape = tuple(shape)
        if entries[0].layer.in_ch != shape[0]:
            raise JaqError(f"{entries[0].layer.in_ch} does not match network.input_shape C = {shape[0]}",
                           "layers[0].in_ch")
        for src, n in (("in_h", shape[1]), ("in_w", shape[2])):
            v = getattr(entries[0], src)
            if v is not None and v != n:
                raise JaqError(f"{v} does not match network.input_shape ({n})", f"layers[0].{src}")
    network = Network(layers=entries, input_shape=shape, name=_opt_str(net, "name", "network."),
                      dataset=_opt_str(net, "dataset", "network."))

    ow = obj.get("objective_weights")
    if ow is not None:
        if not (isinstance(ow, (list, tuple)) and len(ow) == 3):
            raise JaqError(f"expected [lE, lL, lA] of non-negative numbers, got {_show(ow)}", "objective_weights")
        ow = tuple(_number(v, f"objective_weights[{i}]", hi=1e6) for i, v in enumerate(ow))
    acc_m = obj.get("accuracy")
    if acc_m is not None:
        acc_m = dict(_small_mapping(obj, "accuracy", ""))
        for k, v in acc_m.items():
            if isinstance(v, str) or v is None:
                _opt_str(acc_m, k, "accuracy.")
            elif not (_is_int(v) and abs(v) < 1 << 63 or isinstance(v, float) and math.isfinite(v)):
                raise JaqError(f"expected a finite number or a string, got {_show(v)}", f"accuracy.{k}")
    return AccelSpec(
        network=network, accelerator=acc, bitfusion=bf, mode=mode,
        provenance=Provenance.from_dict(obj.get("provenance") or {}),
        objective_weights=ow,
        totals=Totals.from_dict(obj["totals"]) if obj.get("totals") is not None else None,
        accuracy=acc_m, schema_version=version, source=Path(source) if source is not None else None)


def load_spec(path: str | os.PathLike, *, hand_off: bool | None = None) -> AccelSpec:
    """Load an ``accel.json`` (``.json``) or a YAML file of the same structure ("layers + accelerator").

    ``hand_off=True`` requires every hardware field even in a YAML sketch (default: :func:`is_hand_off`)."""
    return parse_spec(load_structured(path), path, hand_off=hand_off)


def build_spec(layers: Sequence[Layer], accelerator: Accelerator | None = None, *,
               tilings: Sequence[Tiling | None] | None = None, costs: Sequence[Cost] | None = None,
               mode: str = "native", labels: Sequence[Mapping[str, Any]] | None = None,
               input_shape: Sequence[int] | None = None, provenance: Provenance | None = None,
               objective_weights: Sequence[float] | None = None, accuracy: Mapping[str, Any] | None = None,
               bitfusion: BitFusionConfig | None = None, name: str | None = None,
               dataset: str | None = None) -> AccelSpec:
    """Assemble an :class:`AccelSpec` from the co-search's (or any tool's) results and validate it exactly as a
    loaded file would be (so what :func:`save` writes always loads again).

    ``tilings``/``costs``: per layer (``None`` entries allowed for tilings); costs become each layer's
    ``predicted`` (in ``mode``) and the network ``totals``. ``labels``: per layer a mapping with any of ``op``,
    ``block``, ``role``, ``weights``, ``scales``.
    """
    n = len(layers)
    for what, seq in (("tilings", tilings), ("costs", costs), ("labels", labels)):
        if seq is not None and len(seq) != n:
            raise ValueError(f"{what}: {len(seq)} entries for {n} layers")
    entries = []
    for i, layer in enumerate(layers):
        lab = dict(labels[i]) if labels is not None else {}
        unknown = set(lab) - {"op", "block", "role", "weights", "scales"}
        if unknown:
            raise ValueError(f"labels[{i}]: unknown key(s) {sorted(unknown)}")
        e = LayerEntry(layer=layer, tiling=tilings[i] if tilings is not None else None, **lab)
        if costs is not None:
            e.predicted = Predicted(mode=mode, cost=costs[i])
        entries.append(e)
    spec = AccelSpec(
        network=Network(layers=entries, input_shape=tuple(input_shape) if input_shape is not None else None,
                        name=name, dataset=dataset),
        accelerator=accelerator, bitfusion=bitfusion, mode=mode,
        provenance=provenance if provenance is not None else Provenance.now(),
        objective_weights=tuple(float(v) for v in objective_weights) if objective_weights is not None else None,
        totals=Totals.from_costs(list(costs), mode) if costs else None,
        accuracy=dict(accuracy) if accuracy is not None else None)
    parse_spec(json.loads(dumps(spec)))  # the same validation as a loaded file
    return spec


# ---------------------------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------------------------

def dump(spec: AccelSpec) -> dict[str, Any]:
    """The JSON-ready mapping of ``spec`` (keys in schema order; empty optional parts left out)."""
    d: dict[str, Any] = {"schema_version": SCHEMA_VERSION}
    prov = spec.provenance.to_dict()
    if prov:
        d["provenance"] = prov
    d["mode"] = spec.mode
    d["network"] = spec.network.to_dict()
    if spec.accelerator is not None:
        d["accelerator"] = spec.accelerator.to_dict()
    if spec.bitfusion is not None:
        d["bitfusion"] = spec.bitfusion.to_dict()
    if spec.objective_weights is not None:
        d["objective_weights"] = list(spec.objective_weights)
    if spec.totals is not None:
        d["totals"] = spec.totals.to_dict()
    if spec.accuracy is not None:
        d["accuracy"] = dict(spec.accuracy)
    return d


def dumps(spec: AccelSpec) -> str:
    return json.dumps(dump(spec), indent=2) + "\n"


def save(spec: AccelSpec, path: str | os.PathLike) -> Path:
    """Write ``spec`` as JSON atomically (temp file + rename); returns the path."""
    path = Path(path)
    atomic_write_text(path, dumps(spec))
    return path


__all__ = ["SCHEMA_VERSION", "MODES", "AccelSpec", "Network", "LayerEntry", "Predicted", "Provenance", "Totals",
           "build_spec", "is_hand_off", "load_spec", "parse_spec", "dump", "dumps", "save"]
