"""File helpers shared by every command: atomic writes and strict YAML/JSON loading with one-line errors."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

from jaq.errors import JaqError


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def load_json(path: str | os.PathLike) -> Any:
    """Load a JSON file; a missing or malformed file is a one-line :class:`JaqError`."""
    path = Path(path)
    if not path.is_file():
        raise JaqError(f"file not found: {path} (check the path)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise JaqError(f"malformed JSON in {path} at line {e.lineno} column {e.colno}: {e.msg}") from None
    except UnicodeDecodeError:
        raise JaqError(f"{path} is not a UTF-8 text file") from None


def load_yaml(path: str | os.PathLike) -> Any:
    """Load a YAML file; a missing or malformed file is a one-line :class:`JaqError`."""
    path = Path(path)
    if not path.is_file():
        raise JaqError(f"file not found: {path} (check the path)")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise JaqError(f"malformed YAML in {path}{where}: {problem}") from None
    except UnicodeDecodeError:
        raise JaqError(f"{path} is not a UTF-8 text file") from None


def load_structured(path: str | os.PathLike) -> Any:
    """Load ``.json`` as JSON and anything else as YAML."""
    return load_json(path) if str(path).endswith(".json") else load_yaml(path)
