"""Run directories: ``runs/NAME/`` with config.yaml, metrics.jsonl, checkpoint.pt, plots/, accel.json.

* A non-empty run directory is never overwritten by accident: ``prepare_run_dir`` refuses unless ``resume``
  (continue from ``checkpoint.pt``) or ``force`` (wipe and start again).
* Checkpoints are written atomically (temporary file + fsync + rename, :func:`jaq.io.atomic_write_bytes`), so a
  run killed at any moment leaves either the previous or the new checkpoint, never a torn one.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

import torch
import yaml

from jaq.errors import JaqError
from jaq.io import atomic_write_bytes, atomic_write_text

CONFIG = "config.yaml"
METRICS = "metrics.jsonl"
CHECKPOINT = "checkpoint.pt"
ACCEL = "accel.json"


def prepare_run_dir(out: str | Path, *, resume: bool, force: bool) -> Path:
    """Create/check the run directory. Non-empty without ``resume``/``force`` -> JaqError (exit 2)."""
    p = Path(out)
    if p.exists() and not p.is_dir():
        raise JaqError(f"{p} exists and is not a directory; choose another --out", "--out")
    nonempty = p.is_dir() and any(p.iterdir())
    if resume:
        if not (p / CHECKPOINT).is_file():
            raise JaqError(f"nothing to resume: {p / CHECKPOINT} does not exist (drop --resume to start a run)",
                           "--resume")
        return p
    if nonempty:
        if not force:
            raise JaqError(f"run directory {p} is not empty; pass --resume to continue it or --force to "
                           f"overwrite it", "--out")
        for child in p.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    p.mkdir(parents=True, exist_ok=True)
    return p


def write_config(run: Path, cfg: dict) -> None:
    atomic_write_text(run / CONFIG, yaml.safe_dump(cfg, sort_keys=False))


def read_config(run: Path) -> dict:
    from jaq.io import load_yaml
    return load_yaml(run / CONFIG)


def save_checkpoint(run: Path, state: dict[str, Any]) -> None:
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(run / CHECKPOINT, buf.getvalue())


def load_checkpoint(run: Path, map_location="cpu") -> dict[str, Any]:
    f = run / CHECKPOINT
    try:
        return torch.load(f, map_location=map_location, weights_only=False)
    except FileNotFoundError:
        raise JaqError(f"checkpoint {f} not found", "--resume") from None
    except Exception as e:  # noqa: BLE001 - a damaged pickle is a user-facing problem
        raise JaqError(f"cannot read checkpoint {f}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                       ) from None


def write_metrics(run: Path, records: list[dict]) -> None:
    """Rewrite metrics.jsonl from the full record list (kept in the checkpoint, so resume stays consistent)."""
    atomic_write_text(run / METRICS, "".join(json.dumps(r, sort_keys=False) + "\n" for r in records))
