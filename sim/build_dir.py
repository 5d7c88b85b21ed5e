"""Reading a ``jaq emit-rtl`` build directory: the accelerator spec, the Verilog and the per-layer programs.

Expected contents (docs/rtl.md is the writer's side): ``accel.json`` (the spec with a tiling for every layer),
Verilog sources (``*.v``/``*.sv`` in the directory or in ``rtl/``), and per-layer instruction programs
(``$readmemh`` hex, one ``INSTR_BITS``-bit word per line) in ``programs/``, in layer order. A ``manifest.json``
(keys ``accel_json``, ``verilog``, ``programs``, ``toplevel``: paths relative to the build dir) takes precedence
over the globbing when present. When the manifest lists file hashes (``sha256``: {path: hex}, written last by
``jaq emit-rtl``), every listed file must exist and match, else the build is refused as "incomplete or stale"
(an interrupted or edited build is never simulated as if it were the design). Every problem is a one-line
:class:`JaqError` (exit code 2 in the CLI).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from jaq.errors import JaqError
from jaq.hw.records import Accelerator, Layer, Tiling


@dataclass
class BuildDir:
    """A loaded build: accelerator, layers with their tilings, Verilog sources and programs (None: compile)."""

    path: Path
    accel: Accelerator
    layers: list[Layer]
    tilings: list[Tiling]
    verilog: dict[str, str]
    toplevel: str | None
    programs: list[list[int]] | None
    spec: object


def _natural_key(p: Path):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)]


def verify_hashes(root: Path, man: dict) -> None:
    """Every file the manifest's ``sha256`` lists exists in ``root`` and has that hash (JaqError otherwise)."""
    hashes = man.get("sha256")
    if hashes is None:
        return  # a build from before the hashes, or assembled by hand: nothing to verify
    if not isinstance(hashes, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in hashes.items()):
        raise JaqError(f"{root / 'manifest.json'}: sha256 must map file names to hex digests; re-run emit-rtl")
    for rel, want in hashes.items():
        f = root / rel
        if ".." in Path(rel).parts or Path(rel).is_absolute():
            raise JaqError(f"{root / 'manifest.json'}: {rel!r} is outside the build; re-run emit-rtl")
        if not f.is_file():
            raise JaqError(f"incomplete or stale build {root}: {rel} is missing; re-run emit-rtl")
        if hashlib.sha256(f.read_bytes()).hexdigest() != want:
            raise JaqError(f"incomplete or stale build {root}: {rel} differs from what emit-rtl wrote; "
                           f"re-run emit-rtl")


def load_build_dir(path) -> BuildDir:
    """Load and validate a build directory (see module docstring)."""
    from jaq.accel_json import load_spec
    from jaq.io import load_json

    root = Path(path)
    if not root.exists():
        raise JaqError(f"build directory not found: {root} (run `jaq emit-rtl ACCEL_JSON -o {root}` first)")
    if not root.is_dir():
        raise JaqError(f"{root} is not a directory (pass the folder `jaq emit-rtl` wrote)")
    manifest = root / "manifest.json"
    man = load_json(manifest) if manifest.is_file() else {}
    if not isinstance(man, dict):
        raise JaqError(f"{manifest}: expected a JSON object")
    verify_hashes(root, man)
    spec_path = root / man.get("accel_json", "accel.json")
    if not spec_path.is_file():
        raise JaqError(f"{root} has no accel.json: not a `jaq emit-rtl` build directory")
    spec = load_spec(spec_path)
    if spec.accelerator is None:
        raise JaqError(f"{spec_path}: no 'accelerator' section; the native accelerator is what gets simulated",
                       "accelerator")
    if not spec.layers:
        raise JaqError(f"{spec_path}: the network has no layers", "network.layers")
    tilings = []
    for i, (layer, t) in enumerate(zip(spec.layers, spec.tilings)):
        if t is None:
            raise JaqError(f"layer {i} has no tiling; `jaq emit-rtl` pins one per layer (re-run it)",
                           f"layers[{i}].tiling")
        tilings.append(t)
    if "verilog" in man:
        vfiles = [root / v for v in man["verilog"]]
    else:
        vfiles = sorted(list(root.glob("*.v")) + list(root.glob("*.sv")) + list(root.glob("rtl/*.v"))
                        + list(root.glob("rtl/*.sv")))
    if not vfiles:
        raise JaqError(f"{root} holds no Verilog (*.v): re-run `jaq emit-rtl`")
    verilog = {}
    for f in vfiles:
        if not f.is_file():
            raise JaqError(f"Verilog file listed in the manifest is missing: {f}")
        verilog[f.name] = f.read_text(encoding="utf-8", errors="replace")
    programs = None
    if "programs" in man:
        pfiles = [root / p for p in man["programs"]]
    else:
        pfiles = sorted((root / "programs").glob("*.hex"), key=_natural_key) if (root / "programs").is_dir() else []
    if pfiles:
        from rtl_gen.isa import from_hex

        if len(pfiles) != len(spec.layers):
            raise JaqError(f"{root}: {len(pfiles)} programs for {len(spec.layers)} layers; re-run `jaq emit-rtl`")
        programs = []
        for f in pfiles:
            if not f.is_file():
                raise JaqError(f"program file missing: {f}")
            try:
                programs.append(from_hex(f.read_text()))
            except ValueError:
                raise JaqError(f"{f}: not a hex program (one instruction word per line)") from None
    return BuildDir(root, spec.accelerator, spec.layers, tilings, verilog, man.get("toplevel"), programs, spec)


__all__ = ["BuildDir", "load_build_dir"]
