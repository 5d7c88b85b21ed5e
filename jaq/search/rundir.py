"""Run directories: ``runs/NAME/`` with config.yaml, metrics.jsonl, checkpoint.pt, plots/, accel.json.

* A non-empty run directory is never overwritten by accident: ``prepare_run_dir`` refuses unless ``resume``
  (continue from ``checkpoint.pt``) or ``force`` (wipe and start again).
* ``--force`` empties only a directory that carries jaq's run marker (:data:`MARKER`, written when the run
  directory is created), and deletes only what jaq writes there (:data:`JAQ_OUTPUTS`); a directory holding the
  current directory or the config file in use is refused.
* Checkpoints are written atomically (temporary file + fsync + rename, :func:`jaq.io.atomic_write_bytes`), so a
  run killed at any moment leaves either the previous or the new checkpoint, never a torn one.
* Checkpoints are read with ``torch.load(weights_only=True)`` (:func:`safe_torch_load`): tensors and plain
  containers only, so a run directory someone sends you cannot run code when it is reported or resumed.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import shutil
from pathlib import Path
from typing import Any, Iterable

import torch

from jaq.errors import JaqError
from jaq.io import atomic_write_bytes, atomic_write_text, dump_yaml

CONFIG = "config.yaml"
METRICS = "metrics.jsonl"
CHECKPOINT = "checkpoint.pt"
ACCEL = "accel.json"
#: Run marker: written into every run directory jaq creates; ``--force`` empties only directories carrying it.
MARKER = ".jaq-run"
#: What jaq writes into a run directory (co-search, retrain, flow, report, sweep); ``--force`` deletes only these
#: (plus sub-runs of a sweep, which carry their own marker, and atomic-write leftovers ``.NAME.*.tmp``).
JAQ_OUTPUTS = frozenset({CONFIG, METRICS, CHECKPOINT, ACCEL, MARKER, "subnet.json", "plots", "retrained.pt",
                         "retrain_metrics.jsonl", "weights", "flow.json", "build", "report", "sweep.json",
                         "pareto.png"})


def _contains(outer: Path, inner: Path) -> bool:
    """``inner`` is ``outer`` or lies below it (both resolved)."""
    return inner == outer or outer in inner.parents


def _refuse_force(p: Path, keep: Iterable[str | os.PathLike]) -> None:
    """Raise JaqError when ``--force`` must not empty ``p`` (see the module docstring)."""
    rp = p.resolve()
    if _contains(rp, Path.cwd().resolve()):
        raise JaqError(f"{p} is the current directory or holds it; --force would empty it: choose a run directory "
                       f"such as runs/NAME", "--out")
    if not (p / MARKER).is_file():
        raise JaqError(f"{p} is not a jaq run directory (no {MARKER} marker), so --force will not empty it: delete "
                       f"it yourself or choose another --out", "--out")
    for k in keep:
        if _contains(rp, Path(k).resolve()):
            raise JaqError(f"{k} is inside {p}, which --force would empty: copy the config out of the run "
                           f"directory first", "--force")


def _is_jaq_tmp(child: Path) -> bool:
    """A leftover of :func:`jaq.io.atomic_write_bytes` (``.NAME.XXXX.tmp``) killed before its rename."""
    return child.name.startswith(".") and child.name.endswith(".tmp") and child.is_file()


def _is_jaq_output(child: Path) -> bool:
    return child.name in JAQ_OUTPUTS or _is_jaq_tmp(child)


def clear_run_dir(p: Path) -> None:
    """Delete what jaq wrote in run directory ``p`` (sub-runs with their own marker recursively); keep the rest."""
    for child in p.iterdir():
        if child.is_dir() and not child.is_symlink() and (child / MARKER).is_file():
            clear_run_dir(child)
            if not any(child.iterdir()):
                child.rmdir()
        elif _is_jaq_output(child) and child.name != MARKER:
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()


def write_marker(p: Path) -> None:
    """Mark ``p`` as a jaq run directory (JSON: who created it)."""
    from jaq import __version__
    if not (p / MARKER).is_file():
        atomic_write_text(p / MARKER, json.dumps({"created_by": "jaq", "version": __version__}) + "\n")


def prepare_run_dir(out: str | Path, *, resume: bool, force: bool,
                    keep: Iterable[str | os.PathLike] = ()) -> Path:
    """Create/check the run directory and mark it (:data:`MARKER`). Non-empty without ``resume``/``force`` ->
    JaqError (exit 2); ``force`` empties only a marked run directory, never one holding a path in ``keep`` (the
    config file in use) or the current directory."""
    p = check_run_dir(out, resume=resume, force=force, keep=keep)
    if resume:
        return p
    if p.is_dir() and any(p.iterdir()) and (p / MARKER).is_file():
        clear_run_dir(p)
    try:
        p.mkdir(parents=True, exist_ok=True)
        write_marker(p)
    except OSError as e:
        raise JaqError(f"cannot write the run directory {p}: {e.strerror or e} (choose a writable --out)",
                       "--out") from None
    return p


def check_run_dir(out: str | Path, *, resume: bool, force: bool, keep: Iterable[str | os.PathLike] = ()) -> Path:
    """Every check of :func:`prepare_run_dir`, writing nothing (commands call it before loading data)."""
    p = Path(out)
    if p.is_symlink() and not p.exists():
        raise JaqError(f"{p} is a dangling symbolic link; remove it or choose another --out", "--out")
    if p.exists() and not p.is_dir():
        raise JaqError(f"{p} exists and is not a directory; choose another --out", "--out")
    if resume:
        if not (p / CHECKPOINT).is_file():
            raise JaqError(f"nothing to resume: {p / CHECKPOINT} does not exist (drop --resume to start a run)",
                           "--resume")
        return p
    if _started(p):
        if not force:
            raise JaqError(f"run directory {p} is not empty; pass --resume to continue it or --force to "
                           f"overwrite it", "--out")
        _refuse_force(p, keep)
    _check_writable(p)
    return p


def _started(p: Path) -> bool:
    """``p`` holds something: a marked run directory holding only its marker and config.yaml (a run that failed
    before its first checkpoint, e.g. on a wrong data root) counts as empty, so the corrected re-run may start."""
    if not p.is_dir():
        return False
    if not (p / MARKER).is_file():
        return any(p.iterdir())
    return any(c.name not in (MARKER, CONFIG) and not _is_jaq_tmp(c) for c in p.iterdir())


def _check_writable(p: Path) -> None:
    """The directory ``p`` (or its nearest existing parent) accepts new files."""
    q = p
    while not q.exists():
        if q.is_symlink():
            raise JaqError(f"{q} is a dangling symbolic link; remove it or choose another --out", "--out")
        q = q.parent
    if not q.is_dir():
        raise JaqError(f"{q} is not a directory, so {p} cannot be created; choose another --out", "--out")
    if not os.access(q, os.W_OK | os.X_OK):
        raise JaqError(f"{q} is not writable; choose another --out", "--out")


def write_config(run: Path, cfg: dict) -> None:
    atomic_write_text(run / CONFIG, dump_yaml(cfg))  # reloads equal under jaq's strict YAML loader


def read_config(run: Path) -> dict:
    from jaq.io import load_yaml
    return load_yaml(run / CONFIG)


def save_checkpoint(run: Path, state: dict[str, Any]) -> None:
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(run / CHECKPOINT, buf.getvalue())


def load_checkpoint(run: Path, map_location="cpu") -> dict[str, Any]:
    f = run / CHECKPOINT
    if not f.is_file():
        raise JaqError(f"checkpoint {f} not found", "--resume")
    st = safe_torch_load(f, map_location=map_location)
    if not isinstance(st, dict):
        raise JaqError(f"{f} is not a jaq checkpoint (expected a dict of states); start again with --force",
                       "--resume")
    return st


def _legacy_safe_globals() -> list:
    """numpy's ndarray reconstruction (uint32 only): checkpoints before the RNG state was stored as a tensor
    keep numpy's Mersenne-Twister key as an ndarray. Only the array type and its dtype are allowed, no callable
    that could run code."""
    import numpy as np
    core = getattr(np, "_core", None) or np.core
    return [core.multiarray._reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]


class UnsafeFileError(JaqError):
    """A ``.pt`` file holding pickled objects other than tensors and plain data (never loaded)."""


def safe_torch_load(path: str | os.PathLike, map_location="cpu") -> Any:
    """``torch.load(path, weights_only=True)``: tensors and plain containers only, never code from the file.

    A file holding anything else (a pickled object whose loading would run code) is a one-line JaqError."""
    f = Path(path)
    try:
        with torch.serialization.safe_globals(_legacy_safe_globals()):
            return torch.load(f, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise JaqError(f"{f} not found") from None
    except pickle.UnpicklingError:
        raise UnsafeFileError(f"{f} holds Python objects other than tensors and plain data; jaq does not load such a file "
                       f"(it could run code): delete it, or re-create it with jaq") from None
    except Exception as e:  # noqa: BLE001 - a damaged file is a user-facing problem
        first = str(e).splitlines()[0] if str(e) else ""
        raise JaqError(f"cannot read {f}: {type(e).__name__}: {first} (damaged or not written by jaq)") from None


def write_metrics(run: Path, records: list[dict]) -> None:
    """Rewrite metrics.jsonl from the full record list (kept in the checkpoint, so resume stays consistent)."""
    atomic_write_text(run / METRICS, "".join(json.dumps(r, sort_keys=False) + "\n" for r in records))
