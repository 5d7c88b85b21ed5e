"""Search-space configuration: the network half of the JAQ search space (paper, "Search Space").

A :class:`SpaceConfig` is built from a plain dict (the ``space:`` section of a YAML config, loaded by others) with
:meth:`SpaceConfig.from_dict`, or from a built-in preset (:func:`preset`): ``cifar`` (FBNet's CIFAR adaptation,
32x32, 22 blocks), ``imagenet`` (FBNet's ImageNet space, 224x224, 22 blocks) and ``tiny`` (sklearn digits, 8x8
grey, 5 blocks; a search + retrain runs in a couple of minutes on 2 CPU cores). A dict may name a ``preset`` and
override any field::

    SpaceConfig.from_dict({"preset": "cifar", "num_classes": 100, "csq": {"k_percent": 5}})

Every validation failure raises :class:`jaq.errors.JaqError` naming the field (``space.csq.k_percent``...).
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

from jaq.errors import JaqError
from jaq.hw.records import BITS

#: FBNet candidate ops (Wu et al., CVPR 2019, Table 2): kernel, expansion, groups of the 1x1 convs; plus skip.
OP_SPECS: dict[str, tuple[int, int, int]] = {
    "k3_e1": (3, 1, 1),
    "k3_e1_g2": (3, 1, 2),
    "k3_e3": (3, 3, 1),
    "k3_e6": (3, 6, 1),
    "k5_e1": (5, 1, 1),
    "k5_e1_g2": (5, 1, 2),
    "k5_e3": (5, 3, 1),
    "k5_e6": (5, 6, 1),
}
SKIP = "skip"
ALL_OPS: tuple[str, ...] = tuple(OP_SPECS) + (SKIP,)
ALLOWED_BITS: tuple[int, ...] = BITS  # the one definition: jaq.hw.records.BITS
CSQ_MODES: tuple[str, ...] = ("csq", "full", "channel0", "hetero", "none")


def op_spec(name: str) -> tuple[int, int, int] | None:
    """(kernel, expansion, groups) of an MBConv op, or None for ``skip``."""
    return OP_SPECS.get(name)


@dataclass(frozen=True)
class StemConfig:
    """Stem: a KxK conv + BN + ReLU. channels: output channels; stride: 1 or 2; kernel: 3 by default."""

    channels: int
    stride: int = 1
    kernel: int = 3


@dataclass(frozen=True)
class StageConfig:
    """A stage of ``blocks`` searchable blocks with ``channels`` output channels; the first block has ``stride``."""

    channels: int
    blocks: int
    stride: int = 1


@dataclass(frozen=True)
class CSQConfig:
    """Activation quantization during the search (paper Eq. 6-8).

    mode: ``csq`` (top-K% channels by BN importance, paper), ``full`` (every channel, every bit candidate: the
    memory-hungry baseline of Eq. 5), ``channel0`` (fixed selection of the first ceil(K% C) channels: the paper's
    "Channel 0" ablation), ``hetero`` (Auto-NBA-style heterogeneous sampling: one hard-sampled bit width, all
    channels), ``none`` (float activations; weights still mixed-quantized). k_percent: K in (0, 100].
    """

    mode: str = "csq"
    k_percent: float = 3.0


@dataclass(frozen=True)
class GumbelConfig:
    """Gumbel-softmax temperature schedule tau(epoch) = max(tau_min, tau0 * decay**epoch) (paper: tau0 = 5)."""

    tau0: float = 5.0
    tau_min: float = 0.1
    decay: float = 0.956

    def tau(self, epoch: float) -> float:
        """Temperature at (possibly fractional) ``epoch`` >= 0."""
        return max(self.tau_min, self.tau0 * self.decay ** max(0.0, float(epoch)))


@dataclass(frozen=True)
class FixedBits:
    """Bits of the non-searched layers (stem conv, head 1x1 conv, classifier fc): activations and weights."""

    act: int = 8
    wgt: int = 8


@dataclass(frozen=True)
class SpaceConfig:
    """The network search space. Sizes in pixels / channels; see module docstring for the presets."""

    name: str
    input_size: int
    in_channels: int
    num_classes: int
    stem: StemConfig
    stages: tuple[StageConfig, ...]
    head_channels: int
    ops: tuple[str, ...] = ALL_OPS
    bits: tuple[int, ...] = ALLOWED_BITS
    csq: CSQConfig = field(default_factory=CSQConfig)
    gumbel: GumbelConfig = field(default_factory=GumbelConfig)
    fixed_bits: FixedBits = field(default_factory=FixedBits)
    bn_momentum: float = 0.1
    act_momentum: float = 0.1

    # -- derived -------------------------------------------------------------------------------------------
    @property
    def num_blocks(self) -> int:
        return sum(s.blocks for s in self.stages)

    def block_specs(self) -> list[tuple[int, int, int, int]]:
        """Per searchable block: (in_ch, out_ch, stride, in_size) where in_size is the input resolution."""
        out = []
        c = self.stem.channels
        size = conv_out_size(self.input_size, self.stem.kernel, self.stem.stride)
        for st in self.stages:
            for j in range(st.blocks):
                s = st.stride if j == 0 else 1
                out.append((c, st.channels, s, size))
                c = st.channels
                size = conv_out_size(size, 3, s)
        return out

    @property
    def final_size(self) -> int:
        """Spatial size of the last block's output (= head conv resolution)."""
        specs = self.block_specs()
        if not specs:
            return conv_out_size(self.input_size, self.stem.kernel, self.stem.stride)
        _, _, s, size = specs[-1]
        return conv_out_size(size, 3, s)

    def tau(self, epoch: float) -> float:
        return self.gumbel.tau(epoch)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["stages"] = [asdict(s) for s in self.stages]
        d["ops"] = list(self.ops)
        d["bits"] = list(self.bits)
        return d

    # -- construction -------------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None, where: str = "space.") -> "SpaceConfig":
        """Validate and build. ``d`` may hold ``preset: cifar|imagenet|tiny`` plus overrides of any field."""
        if d is None:
            d = {}
        if not isinstance(d, Mapping):
            raise JaqError("expected a mapping of search-space fields", where.rstrip("."))
        d = dict(d)
        base: dict[str, Any] = {}
        if "preset" in d:
            p = d.pop("preset")
            if p not in PRESETS:
                raise JaqError(f"unknown preset {p!r}; use one of {', '.join(PRESETS)}", f"{where}preset")
            base = copy.deepcopy(PRESETS[p])
        known = {"name", "input_size", "in_channels", "num_classes", "stem", "stages", "head_channels", "ops",
                 "bits", "csq", "gumbel", "fixed_bits", "bn_momentum", "act_momentum"}
        unknown = sorted(set(d) - known)
        if unknown:
            raise JaqError(f"unknown field(s) {', '.join(unknown)}; known: preset, {', '.join(sorted(known))}",
                           f"{where}{unknown[0]}")
        for k, v in d.items():  # shallow merge; sub-mappings merge one level deep
            if isinstance(v, Mapping) and isinstance(base.get(k), Mapping):
                merged = dict(base[k])
                merged.update(v)
                base[k] = merged
            else:
                base[k] = v
        return _build(base, where)


def conv_out_size(size: int, kernel: int, stride: int) -> int:
    """Output size of a conv with 'same' padding kernel//2: floor((size + 2*(k//2) - k) / stride) + 1."""
    return (size + 2 * (kernel // 2) - kernel) // stride + 1


def _int(d: Mapping, key: str, where: str, lo: int, hi: int, default: Any = None) -> int:
    if key not in d:
        if default is None:
            raise JaqError("missing (required)", f"{where}{key}")
        return default
    v = d[key]
    if isinstance(v, bool) or not isinstance(v, int):
        raise JaqError(f"expected an integer, got {v!r}", f"{where}{key}")
    if not lo <= v <= hi:
        raise JaqError(f"{v} out of range {lo}..{hi}", f"{where}{key}")
    return v


def _num(d: Mapping, key: str, where: str, default: float, lo: float, hi: float, lo_open: bool = False) -> float:
    v = d.get(key, default)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise JaqError(f"expected a number, got {v!r}", f"{where}{key}")
    if (v <= lo if lo_open else v < lo) or v > hi:
        rng = f"({lo}, {hi}]" if lo_open else f"[{lo}, {hi}]"
        raise JaqError(f"{v} out of range {rng}", f"{where}{key}")
    return float(v)


def _sub(d: Mapping, key: str, where: str, allowed: set[str]) -> Mapping:
    v = d.get(key, {})
    if v is None:
        v = {}
    if not isinstance(v, Mapping):
        raise JaqError("expected a mapping", f"{where}{key}")
    unknown = sorted(set(v) - allowed)
    if unknown:
        raise JaqError(f"unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(allowed))}",
                       f"{where}{key}.{unknown[0]}")
    return v


def _build(d: dict[str, Any], where: str) -> SpaceConfig:
    name = d.get("name", "custom")
    if not isinstance(name, str) or not name:
        raise JaqError("expected a non-empty string", f"{where}name")
    input_size = _int(d, "input_size", where, 1, 4096)
    in_channels = _int(d, "in_channels", where, 1, 64)
    num_classes = _int(d, "num_classes", where, 2, 100_000)
    head_channels = _int(d, "head_channels", where, 1, 1 << 14)

    sd = _sub(d, "stem", where, {"channels", "stride", "kernel"})
    sw = f"{where}stem."
    stem = StemConfig(_int(sd, "channels", sw, 1, 4096), _int(sd, "stride", sw, 1, 2, 1),
                      _int(sd, "kernel", sw, 1, 7, 3))
    if stem.kernel % 2 == 0:
        raise JaqError(f"kernel {stem.kernel} must be odd (same padding)", f"{sw}kernel")

    stages_raw = d.get("stages")
    if not isinstance(stages_raw, (list, tuple)) or not stages_raw:
        raise JaqError("expected a non-empty list of {channels, blocks, stride}", f"{where}stages")
    stages = []
    for i, st in enumerate(stages_raw):
        w = f"{where}stages[{i}]."
        if not isinstance(st, Mapping):
            raise JaqError("expected a mapping {channels, blocks, stride}", f"{where}stages[{i}]")
        unknown = sorted(set(st) - {"channels", "blocks", "stride"})
        if unknown:
            raise JaqError(f"unknown field(s) {', '.join(unknown)}; known: blocks, channels, stride",
                           f"{w}{unknown[0]}")
        stages.append(StageConfig(_int(st, "channels", w, 1, 4096), _int(st, "blocks", w, 1, 64),
                                  _int(st, "stride", w, 1, 2, 1)))

    ops_raw = d.get("ops", list(ALL_OPS))
    if isinstance(ops_raw, str) or not isinstance(ops_raw, (list, tuple)) or not ops_raw:
        raise JaqError(f"expected a non-empty list of op names from {', '.join(ALL_OPS)}", f"{where}ops")
    for i, o in enumerate(ops_raw):
        if o not in ALL_OPS:
            raise JaqError(f"unknown op {o!r}; use names from {', '.join(ALL_OPS)}", f"{where}ops[{i}]")
    if len(set(ops_raw)) != len(ops_raw):
        raise JaqError("duplicate op names", f"{where}ops")
    ops = tuple(ops_raw)

    bits_raw = d.get("bits", list(ALLOWED_BITS))
    if isinstance(bits_raw, (str, int)) or not isinstance(bits_raw, (list, tuple)) or not bits_raw:
        raise JaqError("expected a non-empty list of bit widths from 2, 4, 8", f"{where}bits")
    for i, b in enumerate(bits_raw):
        if isinstance(b, bool) or b not in ALLOWED_BITS:
            raise JaqError(f"{b!r} not supported; bits must be a subset of 2, 4, 8", f"{where}bits[{i}]")
    if len(set(bits_raw)) != len(bits_raw):
        raise JaqError("duplicate bit widths", f"{where}bits")
    bits = tuple(sorted(bits_raw))

    cd = _sub(d, "csq", where, {"mode", "k_percent"})
    mode = cd.get("mode", "csq")
    if mode not in CSQ_MODES:
        raise JaqError(f"unknown mode {mode!r}; use one of {', '.join(CSQ_MODES)}", f"{where}csq.mode")
    csq = CSQConfig(mode, _num(cd, "k_percent", f"{where}csq.", 3.0, 0.0, 100.0, lo_open=True))

    gd = _sub(d, "gumbel", where, {"tau0", "tau_min", "decay"})
    gw = f"{where}gumbel."
    gumbel = GumbelConfig(_num(gd, "tau0", gw, 5.0, 0.0, 1e4, lo_open=True),
                          _num(gd, "tau_min", gw, 0.1, 0.0, 1e4, lo_open=True),
                          _num(gd, "decay", gw, 0.956, 0.0, 1.0, lo_open=True))
    if gumbel.tau_min > gumbel.tau0:
        raise JaqError(f"tau_min {gumbel.tau_min} larger than tau0 {gumbel.tau0}", f"{gw}tau_min")

    fd = _sub(d, "fixed_bits", where, {"act", "wgt"})
    fixed = []
    for k in ("act", "wgt"):
        v = fd.get(k, 8)
        if isinstance(v, bool) or v not in ALLOWED_BITS:
            raise JaqError(f"{v!r} not supported; bits must be one of 2, 4, 8", f"{where}fixed_bits.{k}")
        fixed.append(v)

    cfg = SpaceConfig(name=name, input_size=input_size, in_channels=in_channels, num_classes=num_classes,
                      stem=stem, stages=tuple(stages), head_channels=head_channels, ops=ops, bits=bits, csq=csq,
                      gumbel=gumbel, fixed_bits=FixedBits(*fixed),
                      bn_momentum=_num(d, "bn_momentum", where, 0.1, 0.0, 1.0, lo_open=True),
                      act_momentum=_num(d, "act_momentum", where, 0.1, 0.0, 1.0, lo_open=True))
    _check_consistency(cfg, where)
    return cfg


def _check_consistency(cfg: SpaceConfig, where: str) -> None:
    """Shapes that must agree: resolutions stay >= 1, grouped ops need even widths, skip needs a sane path."""
    size = conv_out_size(cfg.input_size, cfg.stem.kernel, cfg.stem.stride)
    if size < 1:
        raise JaqError(f"input_size {cfg.input_size} too small for the stem stride", f"{where}input_size")
    c = cfg.stem.channels
    grouped = any(OP_SPECS.get(o, (0, 0, 1))[2] > 1 for o in cfg.ops)
    if grouped and c % 2:
        raise JaqError(f"stem width {c} must be even for grouped ops ({', '.join(o for o in cfg.ops if 'g2' in o)})",
                       f"{where}stem.channels")
    for i, st in enumerate(cfg.stages):
        if grouped and st.channels % 2:
            raise JaqError(f"width {st.channels} must be even for grouped ops (_g2), or drop them from ops",
                           f"{where}stages[{i}].channels")
        if st.channels < c and i > 0 and st.channels * 4 < c:
            raise JaqError(f"width {st.channels} shrinks more than 4x from {c}; inconsistent stage widths",
                           f"{where}stages[{i}].channels")
        if size == 1 and st.stride == 2:
            raise JaqError("stride 2 on a 1x1 feature map; input_size too small for this many stride-2 stages",
                           f"{where}stages[{i}].stride")
        size = conv_out_size(size, 3, st.stride)
        c = st.channels
    if cfg.ops == (SKIP,):
        raise JaqError("only 'skip' in ops: the network would have no searchable conv", f"{where}ops")


#: Built-in presets (plain dicts, so that YAML overrides merge into them).
PRESETS: dict[str, dict[str, Any]] = {
    # FBNet's space adapted to CIFAR (32x32): FBNet's ImageNet widths/blocks (Wu et al. 2019, Table 1) with the
    # stem stride and the second stage's stride set to 1, so the 32x32 input ends at 4x4; head 1504 as in the
    # paper's CIFAR code base (Auto-NBA's FBNet-CIFAR); 22 searchable blocks.
    "cifar": {
        "name": "cifar", "input_size": 32, "in_channels": 3, "num_classes": 10,
        "stem": {"channels": 16, "stride": 1},
        "stages": [{"channels": 16, "blocks": 1, "stride": 1}, {"channels": 24, "blocks": 4, "stride": 1},
                   {"channels": 32, "blocks": 4, "stride": 2}, {"channels": 64, "blocks": 4, "stride": 2},
                   {"channels": 112, "blocks": 4, "stride": 1}, {"channels": 184, "blocks": 4, "stride": 2},
                   {"channels": 352, "blocks": 1, "stride": 1}],
        "head_channels": 1504,
    },
    # FBNet's ImageNet space (Wu et al. 2019, Table 1): 224x224, stem 3x3/16 stride 2, 22 blocks, head 1x1/1984.
    "imagenet": {
        "name": "imagenet", "input_size": 224, "in_channels": 3, "num_classes": 1000,
        "stem": {"channels": 16, "stride": 2},
        "stages": [{"channels": 16, "blocks": 1, "stride": 1}, {"channels": 24, "blocks": 4, "stride": 2},
                   {"channels": 32, "blocks": 4, "stride": 2}, {"channels": 64, "blocks": 4, "stride": 2},
                   {"channels": 112, "blocks": 4, "stride": 1}, {"channels": 184, "blocks": 4, "stride": 2},
                   {"channels": 352, "blocks": 1, "stride": 1}],
        "head_channels": 1984,
    },
    # sklearn digits (8x8 grey, 10 classes): 5 blocks, small widths; K = 25% so that several channels are
    # quantized in these narrow layers; fast Gumbel decay for short searches.
    "tiny": {
        "name": "tiny", "input_size": 8, "in_channels": 1, "num_classes": 10,
        "stem": {"channels": 8, "stride": 1},
        "stages": [{"channels": 8, "blocks": 1, "stride": 1}, {"channels": 16, "blocks": 2, "stride": 2},
                   {"channels": 24, "blocks": 2, "stride": 2}],
        "head_channels": 64,
        "csq": {"mode": "csq", "k_percent": 25.0},
        "gumbel": {"tau0": 5.0, "tau_min": 0.5, "decay": 0.8},
    },
}


def preset(name: str, **overrides: Any) -> SpaceConfig:
    """A built-in space (``cifar``, ``imagenet``, ``tiny``) with optional field overrides."""
    return SpaceConfig.from_dict({"preset": name, **overrides})
