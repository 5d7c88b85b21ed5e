"""Co-search configuration: one YAML file -> a validated, fully resolved dict.

The schema is a nested mapping with four sections (``data``, ``space``, ``search``, ``hardware``, ``retrain``)
plus ``name``, ``seed`` and the optional ``sweep_lambda`` list. Every key has a default (below); unknown keys and
wrong types are one-line :class:`jaq.errors.JaqError` naming the dotted field (``search.epochs: ...``). Every
number has a finite range (:data:`_RANGES`; NaN and infinities are refused), ``name`` is a plain file name
(letters, digits, ``._+-``; no ``..``, no path separators) and ``space`` is checked (preset name or plain,
bounded mapping; built against the data set's shape where that is known) before anything runs.

Units: learning rates are per step; ``lambda`` multiplies the normalised hardware cost (docs/co-search.md);
``lambda_e/l/a`` weight its energy / latency / area terms (paper Eq. 9); epochs and batch sizes are counts.
"""

from __future__ import annotations

import copy
import math
import re
from pathlib import Path
from typing import Any, Mapping

from jaq.errors import JaqError
from jaq.io import check_plain, load_yaml
from jaq.hw.records import OUT_UNIT_LINES

DATASETS = ("digits", "cifar10", "cifar100", "imagefolder")

#: Defaults; the paper's settings where it states them (Experimental Settings): lr 0.01 cosine, Gumbel tau 5,
#: 80/20 weight/architecture split, K = 3, lambda_E = lambda_L = lambda_A = 0.33.
DEFAULTS: dict[str, Any] = {
    "name": "run",
    "seed": 0,
    "threads": None,                # torch intra-op CPU threads per process; None = torch's default
    "plots": True,                  # write RUN/plots/*.png at the end of the search
    "precision": "auto",            # training matmul/conv precision: auto (bf16 autocast on CUDA, fp32 on CPU) | fp32 | bf16
    "compile": "off",               # torch.compile of the retrained subnet: off | inductor | eager (tests)
    "data": {
        "dataset": "digits",        # digits (embedded, sklearn) | cifar10 | cifar100 | imagefolder
        "root": None,               # folder of the data set (torchvision layout or ImageFolder / JPEG archives)
        "image_size": None,         # input side in pixels; None = the data set's native size
        "arch_fraction": 0.2,       # share of the training split used for the architecture step (paper: 20 %)
        "train_subset": None,       # use only this many training images (benchmarks); None = all
        "test_subset": None,        # use only this many test images; None = all
        "augment": True,            # random crop + horizontal flip for the CIFAR/ImageNet-like sets
        "num_workers": 0,           # DataLoader workers for on-disk ImageFolder data
        "cache_dir": None,          # where JPEG archives are extracted/decoded; None = ~/.cache/jaq
        "cutout": 0,                # side (pixels) of one zeroed square per training image; 0 = off
        "channels_last": False,     # NHWC batches and model (fast depthwise/pointwise convs on CPUs)
    },
    "space": "tiny",                # a jaq.nn.space preset name or a mapping for SpaceConfig.from_dict
    "search": {
        "epochs": 90,
        "batch_size": 128,
        "lr": 0.01,                 # SGD (momentum) learning rate of the supernet weights, cosine-annealed
        "momentum": 0.9,
        "weight_decay": 4.0e-5,
        "arch_lr": 0.01,            # Adam learning rate of alpha/beta (cosine-annealed like the weights)
        "arch_weight_decay": 0.0,
        "hw_lr": 0.01,              # Adam learning rate of the hardware generator
        "lambda": 0.002,            # Lagrange multiplier of the hardware cost (paper Eq. 4)
        "lambda_e": 0.33,           # paper Eq. 9 weights of energy, latency, area
        "lambda_l": 0.33,
        "lambda_a": 0.33,
        "warmup_epochs": 0,         # epochs that train only the weights before alpha/beta/generator move
        "max_steps_per_epoch": None,  # cap on steps per epoch (tests, benchmarks); None = whole split
        "grad_clip": 5.0,
        "log_every_steps": 10,      # also write a "step" record to metrics.jsonl every this many steps (0: off)
        "sampling": "soft",         # soft: every candidate computed (paper); hard: only the Gumbel-sampled op/bits
        "warmup_sampling": None,    # sampling of the weight-only warm-up epochs (None: as sampling); argmax:
                                    # one held path (argmax of alpha, the first op at init), e.g. before hard
        "sample_blocks": None,      # hard sampling: Gumbel-sample only this many random blocks per step, the
                                    # others on their argmax op/bits (None: every block)
        "path_prior": 0.0,          # logit added at init to alpha of the first op and to beta of the lowest bits
                                    # (the held warm-up path starts as the favourite instead of by a tie)
    },
    "hardware": {
        "clock_mhz": 500.0,
        "dram_bits_per_cycle": 128,
        "dram_latency_cycles": 20,
        "out_unit_lines": 4,        # OBUF lines the output unit finishes per cycle: 1, 2, 4, 8 or 16
        "double_buffer": False,     # two tiles per buffer, loads/compute/stores overlapped (cost model only:
                                    # jaq emit-rtl does not build it yet; docs/execution-model.md section 9)
        "generator_hidden": 64,     # width of the generator's residual blocks
        "generator_blocks": 5,      # residual blocks (paper: 5)
        "loop_order_candidates": 8,  # loop orders evaluated per step for the loop-order head's gradient
        "candidate_tiling": "exact",  # exact | shared: BatchTile per candidate layer and bit pair, or per layer
        "resample_every": 1,        # draw the generator's Gumbel noise every this many steps (1: every step)
        "threads": None,            # torch CPU threads of the hardware step; None = the run's threads
    },
    "retrain": {
        "epochs": 600,
        "batch_size": 128,
        "lr": 0.01,
        "momentum": 0.9,
        "weight_decay": 4.0e-5,
        "max_steps_per_epoch": None,
        "label_smoothing": 0.0,     # cross-entropy label smoothing of the retrain (0: off)
        "warmup_epochs": 0,         # linear lr warm-up (per step) before a per-step cosine; 0: per-epoch cosine
        "nesterov": False,          # Nesterov momentum for the retrain's SGD
        "budget_minutes": None,     # plan the epochs from a timing probe so the retrain fits this wall time
                                    # (at most retrain.epochs); None: exactly retrain.epochs
    },
    "sweep_lambda": None,           # list of lambdas: `jaq co-search` then runs one search per value
}

_TYPES: dict[str, tuple] = {
    "name": (str,), "seed": (int,), "threads": (int, type(None)), "plots": (bool,), "precision": (str,),
    "compile": (str,),
    "data.dataset": (str,), "data.root": (str, type(None)), "data.image_size": (int, type(None)),
    "data.arch_fraction": (float, int), "data.train_subset": (int, type(None)),
    "data.test_subset": (int, type(None)), "data.augment": (bool,), "data.num_workers": (int,),
    "data.cache_dir": (str, type(None)), "data.cutout": (int,), "data.channels_last": (bool,),
    "search.sampling": (str,), "search.warmup_sampling": (str, type(None)),
    "hardware.resample_every": (int,), "hardware.threads": (int, type(None)),
    "retrain.label_smoothing": (float, int), "search.sample_blocks": (int, type(None)),
    "retrain.warmup_epochs": (float, int), "retrain.nesterov": (bool,), "search.path_prior": (float, int),
    "retrain.budget_minutes": (float, int, type(None)),
    "search.epochs": (int,), "search.batch_size": (int,), "search.lr": (float, int),
    "search.momentum": (float, int), "search.weight_decay": (float, int), "search.arch_lr": (float, int),
    "search.arch_weight_decay": (float, int), "search.hw_lr": (float, int), "search.lambda": (float, int), "search.lambda_e": (float, int),
    "search.lambda_l": (float, int), "search.lambda_a": (float, int),    "search.warmup_epochs": (int,), "search.max_steps_per_epoch": (int, type(None)),
    "search.grad_clip": (float, int, type(None)), "search.log_every_steps": (int,),
    "hardware.clock_mhz": (float, int), "hardware.dram_bits_per_cycle": (int,),
    "hardware.dram_latency_cycles": (int,), "hardware.out_unit_lines": (int,), "hardware.double_buffer": (bool,), "hardware.generator_hidden": (int,),
    "hardware.generator_blocks": (int,), "hardware.loop_order_candidates": (int,),
    "hardware.candidate_tiling": (str,),
    "retrain.epochs": (int,), "retrain.batch_size": (int,), "retrain.lr": (float, int),
    "retrain.momentum": (float, int), "retrain.weight_decay": (float, int),
    "retrain.max_steps_per_epoch": (int, type(None)),
}

# Bounds shared with the command-line flags (jaq/commands/co_search.py, flow.py: --epochs, --lambda, ...)
_BIG = 2 ** 31 - 1     # counts (images, steps): a 32-bit bound keeps every loop and tensor size sane
_EPOCHS = 10 ** 6
_WEIGHT = 1e9          # lambdas, gradient clip: far above any useful value, far below float overflow
# (field, lower bound, upper bound): inclusive; every field has both, so NaN, infinities and huge values fail
_RANGES = [
    ("seed", 0, 2 ** 63 - 1), ("threads", 1, 1024), ("data.image_size", 4, 1024), ("data.train_subset", 1, _BIG),
    ("data.test_subset", 1, _BIG), ("data.num_workers", 0, 64),
    ("search.epochs", 1, _EPOCHS), ("search.batch_size", 1, 65536), ("search.lr", 0, 10), ("search.momentum", 0, 1),
    ("search.weight_decay", 0, 1), ("search.arch_lr", 0, 10), ("search.arch_weight_decay", 0, 1),
    ("search.hw_lr", 0, 10), ("search.lambda", 0, _WEIGHT), ("search.lambda_e", 0, _WEIGHT),
    ("search.lambda_l", 0, _WEIGHT), ("search.lambda_a", 0, _WEIGHT), ("search.warmup_epochs", 0, _EPOCHS),
    ("search.max_steps_per_epoch", 1, _BIG), ("search.grad_clip", 0, _WEIGHT), ("search.log_every_steps", 0, _BIG),
    ("hardware.clock_mhz", 1e-3, 10000), ("hardware.dram_bits_per_cycle", 32, 4096),
    # >= 1: the generated RTL and its memory model cannot answer a read in the request's own cycle (docs/rtl.md)
    ("hardware.dram_latency_cycles", 1, 100000), ("hardware.out_unit_lines", 1, 16),
    ("hardware.generator_hidden", 4, 4096),
    ("hardware.generator_blocks", 1, 64), ("hardware.loop_order_candidates", 1, 120),
    ("retrain.epochs", 0, _EPOCHS), ("retrain.batch_size", 1, 65536), ("retrain.lr", 0, 10),
    ("retrain.momentum", 0, 1), ("retrain.weight_decay", 0, 1), ("retrain.max_steps_per_epoch", 1, _BIG),
    ("data.cutout", 0, 1024), ("hardware.resample_every", 1, _BIG), ("hardware.threads", 1, 1024),
    ("retrain.label_smoothing", 0, 0.99), ("search.sample_blocks", 1, _BIG), ("retrain.warmup_epochs", 0, _EPOCHS),
    ("search.path_prior", 0, 100), ("retrain.budget_minutes", 0.1, 1e6),
]
#: ``name`` becomes a folder name (``runs/<name>``): a plain file name, no ``..``, no separators.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")
#: Longest path accepted in ``data.root`` / ``data.cache_dir`` (characters).
_MAX_PATH = 4096
#: Input shape (channels, side) and classes of the data sets whose shape is known before loading them.
_DATA_SHAPES = {"digits": (1, 8, 10), "cifar10": (3, 32, 10), "cifar100": (3, 32, 100)}


def _get(cfg: Mapping, dotted: str):
    cur: Any = cfg
    for p in dotted.split("."):
        cur = cur[p]
    return cur


def _merge(base: dict, over: Mapping, where: str) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        key = f"{where}{k}"
        if not isinstance(k, str):
            raise JaqError(f"keys must be strings, got {k!r}", key)
        if k not in base:
            raise JaqError(f"unknown key; known here: {', '.join(sorted(base))}", key)
        if isinstance(base[k], dict) and k != "space":
            if not isinstance(v, Mapping):
                raise JaqError(f"expected a mapping, got {type(v).__name__}", key)
            out[k] = _merge(base[k], v, f"{key}.")
        else:
            out[k] = copy.deepcopy(v)
    return out


def _show(v: Any) -> str:
    """A short repr of a user value for a one-line message."""
    r = repr(v) if not isinstance(v, int) or abs(v) < 1 << 64 else f"a {v.bit_length()}-bit integer"
    return r if len(r) <= 60 else r[:57] + "..."


def _check_types(cfg: Mapping) -> None:
    ranges = {dotted: (lo, hi) for dotted, lo, hi in _RANGES}
    for dotted, types in _TYPES.items():
        v = _get(cfg, dotted)
        if (isinstance(v, bool) and bool not in types) or not isinstance(v, types):
            rng = f" in {ranges[dotted][0]}..{ranges[dotted][1]}" if dotted in ranges else ""
            raise JaqError(f"expected {'/'.join(t.__name__ for t in types)}{rng}, got {_show(v)}", dotted)


def _check_ranges(cfg: Mapping) -> None:
    for dotted, lo, hi in _RANGES:
        v = _get(cfg, dotted)
        if v is None:
            continue
        if (isinstance(v, float) and not math.isfinite(v)) or not lo <= v <= hi:
            rng = f"{lo:g}..{hi:g}" if isinstance(lo, float) or isinstance(hi, float) else f"{lo}..{hi}"
            raise JaqError(f"{_show(v)} out of range {rng}", dotted)


def _check_texts(cfg: Mapping) -> None:
    name = cfg["name"]
    if not _NAME.match(name) or ".." in name:
        raise JaqError(f"{_show(name)} is not a plain run name: use letters, digits and ._+- (at most 128, no "
                       f"'..', no path separators); it names the folder runs/<name>", "name")
    for k in ("root", "cache_dir"):
        v = cfg["data"][k]
        if v is not None and (not v or len(v) > _MAX_PATH or not v.isprintable()):
            raise JaqError(f"expected a one-line path of 1..{_MAX_PATH} characters, got {_show(v)}", f"data.{k}")


def _check_space(cfg: Mapping) -> Any:
    """``space``: a preset name or a small plain mapping, built now (with the data set's shape where it is known)
    so that a bad space fails before any data is loaded or anything is written; returns the checked value."""
    from jaq.nn.space import PRESETS, SpaceConfig

    sp = cfg["space"]
    if isinstance(sp, str):
        if sp not in PRESETS:
            raise JaqError(f"unknown preset {_show(sp)}; use one of {', '.join(PRESETS)} or a mapping", "space")
        return sp
    if not isinstance(sp, Mapping):
        raise JaqError(f"expected a preset name ({', '.join(PRESETS)}) or a mapping", "space")
    sp = check_plain(sp, "space", max_items=10_000, max_depth=4, max_str=256)
    shape = _DATA_SHAPES.get(cfg["data"]["dataset"])
    if shape is not None:
        c, h, ncls = shape
        d = dict(sp)
        d.setdefault("in_channels", c)
        d.setdefault("input_size", cfg["data"]["image_size"] or h)
        d.setdefault("num_classes", ncls)
        SpaceConfig.from_dict(d)
    elif "preset" in sp:
        SpaceConfig.from_dict({"preset": sp["preset"]})
    return sp


def validate_config(raw: Any, source: str = "config") -> dict[str, Any]:
    """Merge ``raw`` over :data:`DEFAULTS` and check every field; returns the resolved config (a new dict)."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise JaqError(f"{source} must be a YAML mapping of sections (data, space, search, hardware, retrain)")
    cfg = _merge(DEFAULTS, raw, "")
    _check_types(cfg)
    _check_ranges(cfg)
    _check_texts(cfg)
    if cfg["data"]["dataset"] not in DATASETS:
        raise JaqError(f"unknown data set {cfg['data']['dataset']!r}; use one of {', '.join(DATASETS)}",
                       "data.dataset")
    af = cfg["data"]["arch_fraction"]
    if not 0 < af < 1:
        raise JaqError(f"{af} must be strictly between 0 and 1", "data.arch_fraction")
    if cfg["search"]["warmup_epochs"] >= cfg["search"]["epochs"]:
        raise JaqError(f"{cfg['search']['warmup_epochs']} must be smaller than search.epochs "
                       f"({cfg['search']['epochs']})", "search.warmup_epochs")
    if cfg["hardware"]["out_unit_lines"] not in OUT_UNIT_LINES:
        raise JaqError(f"{cfg['hardware']['out_unit_lines']}; use one of {', '.join(map(str, OUT_UNIT_LINES))}",
                       "hardware.out_unit_lines")
    if cfg["precision"] not in ("auto", "fp32", "bf16"):
        raise JaqError(f"{cfg['precision']!r}; use auto, fp32 or bf16", "precision")
    if cfg["compile"] not in ("off", "inductor", "eager"):
        raise JaqError(f"{cfg['compile']!r}; use off, inductor or eager", "compile")
    if cfg["search"]["sampling"] not in ("soft", "hard"):
        raise JaqError(f"{cfg['search']['sampling']!r}; use soft or hard", "search.sampling")
    if cfg["search"]["warmup_sampling"] not in (None, "soft", "hard", "argmax"):
        raise JaqError(f"{cfg['search']['warmup_sampling']!r}; use soft, hard or argmax (or null)",
                       "search.warmup_sampling")
    if cfg["search"]["sample_blocks"] is not None and cfg["search"]["sampling"] != "hard":
        raise JaqError(f"{cfg['search']['sample_blocks']} needs search.sampling: hard (soft sampling computes "
                       f"every block's candidates); set sampling: hard or sample_blocks: null", "search.sample_blocks")
    if cfg["retrain"]["warmup_epochs"] >= max(1, cfg["retrain"]["epochs"]) and cfg["retrain"]["warmup_epochs"] > 0:
        raise JaqError(f"{cfg['retrain']['warmup_epochs']} must be smaller than retrain.epochs "
                       f"({cfg['retrain']['epochs']})", "retrain.warmup_epochs")
    if cfg["hardware"]["candidate_tiling"] not in ("exact", "shared"):
        raise JaqError(f"{cfg['hardware']['candidate_tiling']!r}; use exact or shared", "hardware.candidate_tiling")
    cfg["space"] = _check_space(cfg)
    sw = cfg["sweep_lambda"]
    if sw is not None:
        if not isinstance(sw, list) or not 1 <= len(sw) <= 64:
            raise JaqError("expected a list of 1..64 lambdas", "sweep_lambda")
        for i, x in enumerate(sw):
            if isinstance(x, bool) or not isinstance(x, (int, float)) or not 0 <= x <= _WEIGHT:
                raise JaqError(f"{_show(x)} out of range 0..{_WEIGHT:g} (a lambda)", f"sweep_lambda[{i}]")
    for k in ("lambda_e", "lambda_l", "lambda_a"):
        cfg["search"][k] = float(cfg["search"][k])
    return cfg


def load_config(path: str | Path) -> dict[str, Any]:
    """Load and validate a co-search config file (YAML)."""
    return validate_config(load_yaml(path), str(path))


def resolve_run_config(config: str | Path | None, out: str | Path | None, resume: bool) -> dict[str, Any]:
    """The config a command runs with: ``config`` when given, else (with ``resume``) the run's own config.yaml.

    Shared by ``jaq co-search`` and ``jaq flow``; a missing or invalid choice is a one-line :class:`JaqError`."""
    from jaq.search.rundir import read_config

    if config is None and not resume:
        raise JaqError("missing: pass --config FILE (e.g. configs/tiny.yaml)", "--config")
    if config is not None:
        return load_config(config)
    if not out:
        raise JaqError("--resume without --config needs --out RUN_DIR", "--out")
    cfg_p = Path(out) / "config.yaml"
    if not cfg_p.is_file():
        raise JaqError(f"nothing to resume: {cfg_p} does not exist (start with --config FILE)", "--resume")
    return validate_config(read_config(Path(out)), str(cfg_p))


def parse_set(text: str) -> tuple[str, Any]:
    """``--set KEY=VALUE`` -> (dotted key, value); VALUE is read as a YAML scalar (``3``, ``0.5``, ``true``,
    ``null``, ``hard``), its type and range are checked by :func:`validate_config` like the file's."""
    import yaml

    key, sep, val = text.partition("=")
    key = key.strip()
    if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*", key):
        raise JaqError(f"{_show(text)}: use KEY=VALUE with a dotted config key, e.g. search.epochs=3", "--set")
    try:
        value = yaml.safe_load(val) if val.strip() else None
    except yaml.YAMLError:
        raise JaqError(f"{_show(val)} is not a YAML scalar (number, true/false, null or text)", key) from None
    if isinstance(value, (dict, list)):
        raise JaqError(f"{_show(val)}: --set takes one scalar; give mappings and lists in the config file", key)
    return key, value


def apply_overrides(cfg: Mapping, overrides: Mapping[str, Any], source: str = "command line") -> dict[str, Any]:
    """``cfg`` with dotted ``overrides`` set (``{"search.epochs": 3}``; the named flags of ``jaq co-search`` and
    ``jaq flow`` and ``--set KEY=VALUE`` all come here), validated again. One rule for every command: overriding
    ``search.epochs`` (and not ``search.warmup_epochs``) lowers the warm-up to at most ``epochs - 1``."""
    raw = copy.deepcopy(dict(cfg))
    for key, value in overrides.items():
        parts = key.split(".")
        node, base = raw, DEFAULTS
        for i, part in enumerate(parts):
            if not isinstance(base, dict) or part not in base or (i < len(parts) - 1 and part == "space"):
                known = ", ".join(sorted(base)) if isinstance(base, dict) else "-"
                raise JaqError(f"unknown config key; known here: {known}", ".".join(parts[:i + 1]))
            if i == len(parts) - 1:
                if isinstance(base[part], dict) and part != "space":
                    raise JaqError("a section, not a value: set one of its keys (e.g. search.epochs=3)", key)
                node[part] = value
            else:
                node = node.setdefault(part, {})
                base = base[part]
    if "search.epochs" in overrides and "search.warmup_epochs" not in overrides:
        ep, wu = raw["search"].get("epochs"), raw["search"].get("warmup_epochs", 0)
        if isinstance(ep, int) and not isinstance(ep, bool) and isinstance(wu, int) and ep >= 1:
            raw["search"]["warmup_epochs"] = min(wu, ep - 1)
    return validate_config(raw, source)


def config_diff(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two resolved configs (sorted)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += config_diff(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return [] if a == b else [prefix.rstrip(".")]


def parse_lambda_list(text: str) -> list[float]:
    """``"0.0005,0.001"`` -> [0.0005, 0.001]; errors name ``--sweep-lambda``."""
    try:
        vals = [float(x) for x in text.replace(" ", "").split(",") if x]
    except ValueError:
        raise JaqError(f"{text!r} is not a comma-separated list of numbers", "--sweep-lambda") from None
    if not 1 <= len(vals) <= 64 or not all(0 <= v <= _WEIGHT for v in vals):
        raise JaqError(f"needs 1..64 lambdas in 0..{_WEIGHT:g} (NaN and infinities are refused)", "--sweep-lambda")
    return vals
