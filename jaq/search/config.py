"""Co-search configuration: one YAML file -> a validated, fully resolved dict.

The schema is a nested mapping with four sections (``data``, ``space``, ``search``, ``hardware``, ``retrain``)
plus ``name``, ``seed`` and the optional ``sweep_lambda`` list. Every key has a default (below); unknown keys and
wrong types are one-line :class:`jaq.errors.JaqError` naming the dotted field (``search.epochs: ...``).

Units: learning rates are per step; ``lambda`` multiplies the normalised hardware cost (docs/co-search.md);
``lambda_e/l/a`` weight its energy / latency / area terms (paper Eq. 9); epochs and batch sizes are counts.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Mapping

from jaq.errors import JaqError
from jaq.io import load_yaml

DATASETS = ("digits", "cifar10", "cifar100", "imagefolder")

#: Defaults; the paper's settings where it states them (Experimental Settings): lr 0.01 cosine, Gumbel tau 5,
#: 80/20 weight/architecture split, K = 3, lambda_E = lambda_L = lambda_A = 0.33.
DEFAULTS: dict[str, Any] = {
    "name": "run",
    "seed": 0,
    "threads": None,                # torch intra-op CPU threads per process; None = torch's default
    "plots": True,                  # write RUN/plots/*.png at the end of the search
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
    },
    "hardware": {
        "clock_mhz": 500.0,
        "dram_bits_per_cycle": 128,
        "dram_latency_cycles": 20,
        "generator_hidden": 64,     # width of the generator's residual blocks
        "generator_blocks": 5,      # residual blocks (paper: 5)
        "loop_order_candidates": 8,  # loop orders evaluated per step for the loop-order head's gradient
        "candidate_tiling": "exact",  # exact | shared: BatchTile per candidate layer and bit pair, or per layer
    },
    "retrain": {
        "epochs": 600,
        "batch_size": 128,
        "lr": 0.01,
        "momentum": 0.9,
        "weight_decay": 4.0e-5,
        "max_steps_per_epoch": None,
    },
    "sweep_lambda": None,           # list of lambdas: `jaq co-search` then runs one search per value
}

_TYPES: dict[str, tuple] = {
    "name": (str,), "seed": (int,), "threads": (int, type(None)), "plots": (bool,),
    "data.dataset": (str,), "data.root": (str, type(None)), "data.image_size": (int, type(None)),
    "data.arch_fraction": (float, int), "data.train_subset": (int, type(None)),
    "data.test_subset": (int, type(None)), "data.augment": (bool,), "data.num_workers": (int,),
    "data.cache_dir": (str, type(None)),
    "search.epochs": (int,), "search.batch_size": (int,), "search.lr": (float, int),
    "search.momentum": (float, int), "search.weight_decay": (float, int), "search.arch_lr": (float, int),
    "search.arch_weight_decay": (float, int), "search.hw_lr": (float, int), "search.lambda": (float, int), "search.lambda_e": (float, int),
    "search.lambda_l": (float, int), "search.lambda_a": (float, int),    "search.warmup_epochs": (int,), "search.max_steps_per_epoch": (int, type(None)),
    "search.grad_clip": (float, int, type(None)), "search.log_every_steps": (int,),
    "hardware.clock_mhz": (float, int), "hardware.dram_bits_per_cycle": (int,),
    "hardware.dram_latency_cycles": (int,), "hardware.generator_hidden": (int,),
    "hardware.generator_blocks": (int,), "hardware.loop_order_candidates": (int,),
    "hardware.candidate_tiling": (str,),
    "retrain.epochs": (int,), "retrain.batch_size": (int,), "retrain.lr": (float, int),
    "retrain.momentum": (float, int), "retrain.weight_decay": (float, int),
    "retrain.max_steps_per_epoch": (int, type(None)),
}

# (field, lower bound, upper bound or None, inclusive lower?)
_RANGES = [
    ("seed", 0, None), ("threads", 1, 1024), ("data.image_size", 4, 1024), ("data.train_subset", 1, None),
    ("data.test_subset", 1, None), ("data.num_workers", 0, 64),
    ("search.epochs", 1, None), ("search.batch_size", 1, None), ("search.lr", 0, 10), ("search.momentum", 0, 1),
    ("search.weight_decay", 0, 1), ("search.arch_lr", 0, 10), ("search.arch_weight_decay", 0, 1),
    ("search.hw_lr", 0, 10), ("search.lambda", 0, None), ("search.lambda_e", 0, None), ("search.lambda_l", 0, None),
    ("search.lambda_a", 0, None), ("search.warmup_epochs", 0, None),
    ("search.max_steps_per_epoch", 1, None), ("search.grad_clip", 0, None), ("search.log_every_steps", 0, None),
    ("hardware.clock_mhz", 1e-3, 10000), ("hardware.dram_bits_per_cycle", 32, 4096),
    ("hardware.dram_latency_cycles", 0, 100000), ("hardware.generator_hidden", 4, 4096),
    ("hardware.generator_blocks", 1, 64), ("hardware.loop_order_candidates", 1, 120),
    ("retrain.epochs", 0, None), ("retrain.batch_size", 1, None), ("retrain.lr", 0, 10),
    ("retrain.momentum", 0, 1), ("retrain.weight_decay", 0, 1), ("retrain.max_steps_per_epoch", 1, None),
]


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


def validate_config(raw: Any, source: str = "config") -> dict[str, Any]:
    """Merge ``raw`` over :data:`DEFAULTS` and check every field; returns the resolved config (a new dict)."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise JaqError(f"{source} must be a YAML mapping of sections (data, space, search, hardware, retrain)")
    cfg = _merge(DEFAULTS, raw, "")
    for dotted, types in _TYPES.items():
        v = _get(cfg, dotted)
        if isinstance(v, bool) and bool not in types:
            raise JaqError(f"expected {'/'.join(t.__name__ for t in types)}, got {v!r}", dotted)
        if not isinstance(v, types):
            raise JaqError(f"expected {'/'.join(t.__name__ for t in types)}, got {v!r}", dotted)
    for dotted, lo, hi in _RANGES:
        v = _get(cfg, dotted)
        if v is None:
            continue
        if v < lo or (hi is not None and v > hi):
            rng = f"{lo}..{hi}" if hi is not None else f">= {lo}"
            raise JaqError(f"{v} out of range {rng}", dotted)
    if cfg["data"]["dataset"] not in DATASETS:
        raise JaqError(f"unknown data set {cfg['data']['dataset']!r}; use one of {', '.join(DATASETS)}",
                       "data.dataset")
    af = cfg["data"]["arch_fraction"]
    if not 0 < af < 1:
        raise JaqError(f"{af} must be strictly between 0 and 1", "data.arch_fraction")
    if cfg["search"]["warmup_epochs"] >= cfg["search"]["epochs"]:
        raise JaqError(f"{cfg['search']['warmup_epochs']} must be smaller than search.epochs "
                       f"({cfg['search']['epochs']})", "search.warmup_epochs")
    if cfg["hardware"]["candidate_tiling"] not in ("exact", "shared"):
        raise JaqError(f"{cfg['hardware']['candidate_tiling']!r}; use exact or shared", "hardware.candidate_tiling")
    sp = cfg["space"]
    if not isinstance(sp, (str, Mapping)):
        raise JaqError("expected a preset name (tiny, cifar, imagenet) or a mapping", "space")
    sw = cfg["sweep_lambda"]
    if sw is not None:
        if not isinstance(sw, list) or not sw or not all(
                isinstance(x, (int, float)) and not isinstance(x, bool) and x >= 0 for x in sw):
            raise JaqError("expected a non-empty list of lambdas >= 0", "sweep_lambda")
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


def parse_lambda_list(text: str) -> list[float]:
    """``"0.0005,0.001"`` -> [0.0005, 0.001]; errors name ``--sweep-lambda``."""
    try:
        vals = [float(x) for x in text.replace(" ", "").split(",") if x]
    except ValueError:
        raise JaqError(f"{text!r} is not a comma-separated list of numbers", "--sweep-lambda") from None
    if not vals or any(v < 0 for v in vals):
        raise JaqError("needs one or more lambdas >= 0", "--sweep-lambda")
    return vals
