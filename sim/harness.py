"""Simulation harness: generated accelerator on Verilator, layer programs, model <-> RTL comparison, reports.

Flow for one accelerator configuration and a list of layer cases (layer, tiling, integer data):

1. emit the Verilog of ``rtl_gen.top.JaqAccelerator(accel)`` (or take it from a ``jaq emit-rtl`` build dir)
   and build it once with Verilator inside the testbench wrapper (:func:`sim.verilator.wrapped_build`:
   content-hash cache);
2. per layer: compile the program (:func:`jaq.hw.schedule.compile_layer`), encode it (``rtl_gen.isa``), build
   the memory images (:mod:`sim.memory_image`), write a job file;
3. run all jobs in one simulator process (:mod:`testbench.accel_tb`);
4. compare, per layer: output region bit-exact vs :mod:`sim.reference`; RTL counters == the golden walk
   (:func:`jaq.hw.schedule.walk`) (exact; under ``stall`` the cycle counter is reported, not compared); the
   testbench memory monitor's beats per tensor == the walk's; the closed-form model
   (:func:`jaq.hw.model.estimate_one`) == the walk;
5. return a :class:`SimReport` (JSON-able) and print a table.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from jaq.errors import JaqError
from jaq.hw.records import Accelerator, Layer, Tiling
from rtl_gen.protocol import COUNTER_WALK_NAMES, COUNTERS
from sim.memory_image import FlatImage, extract_output, layer_job_image, mismatch_summary
from sim.reference import LayerData, random_layer_data
from sim.verilator import SimBuild, ensure_importable, run_cocotb, wrapped_build

#: RTL counter port -> golden walk counter (jaq.hw.schedule.COUNTERS); the one table is rtl_gen.protocol's.
COUNTER_MAP: dict[str, str] = COUNTER_WALK_NAMES
#: Testbench memory-monitor counts -> walk counters (independent of the RTL's own counters).
MONITOR_MAP: dict[str, str] = {"act": "act_load_beats", "wgt": "wgt_load_beats", "psum": "psum_load_beats",
                               "scale": "scale_load_beats", "res": "res_load_beats"}
TOPLEVEL = "jaq_accel"


@dataclass
class LayerCase:
    """One layer to simulate: its record, tiling and integer data (``data`` None: random at the layer's bits)."""

    layer: Layer
    tiling: Tiling
    data: LayerData | None = None
    name: str = ""
    #: the output unit's constants (jaq.hw.requant.Requant); None: the identity for 32-bit outputs, random
    #: constants (sim.reference.random_requant) for narrower ones
    requant: Any = None


@dataclass
class LayerReport:
    """Per-layer outcome. Counters are dicts keyed by the RTL port name; ``expected`` holds the walk's values."""

    name: str
    layer: dict
    tiling: dict
    bit_exact: bool
    finished: bool
    mismatches: int
    first_mismatches: list[str]
    counters_rtl: dict[str, int]
    counters_expected: dict[str, int]
    counter_diffs: dict[str, list[int]]
    monitor_beats: dict[str, int]
    monitor_ok: bool
    model_cycles: int
    walk_cycles: int
    model_ok: bool
    model_diffs: dict[str, list[int]]
    stall: bool
    errors: list[str] = field(default_factory=list)

    @property
    def counters_ok(self) -> bool:
        return not self.counter_diffs

    @property
    def ok(self) -> bool:
        return (self.bit_exact and self.finished and self.counters_ok and self.monitor_ok and self.model_ok
                and not self.errors)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["counters_ok"] = self.counters_ok
        d["ok"] = self.ok
        return d


@dataclass
class SimReport:
    """All layers of one run plus build/run figures (seconds, simulated cycles per wall second)."""

    accel: dict
    layers: list[LayerReport]
    build_seconds: float
    build_cached: bool
    build_dir: str
    sim_seconds: float
    simulated_cycles: int
    stall: bool
    waves: str | None = None
    errors: list[str] = field(default_factory=list)
    #: per layer, the RTL's final output region as ``[OH][OW][out_ch]`` int64 (not serialised)
    outputs: list = field(default_factory=list, repr=False)

    @property
    def ok(self) -> bool:
        return bool(self.layers) and all(l.ok for l in self.layers) and not self.errors

    @property
    def cycles_per_second(self) -> float:
        return self.simulated_cycles / self.sim_seconds if self.sim_seconds > 0 else 0.0

    def to_dict(self) -> dict:
        return {"ok": self.ok, "accel": self.accel, "stall": self.stall, "build_dir": self.build_dir,
                "build_seconds": round(self.build_seconds, 3), "build_cached": self.build_cached,
                "sim_seconds": round(self.sim_seconds, 3), "simulated_cycles": self.simulated_cycles,
                "cycles_per_second": round(self.cycles_per_second, 1), "waves": self.waves,
                "errors": self.errors, "layers": [l.to_dict() for l in self.layers]}


# ------------------------------------------------------------------------------------------------------------
# RTL side (rtl_gen): Verilog of the top level and program encoding
# ------------------------------------------------------------------------------------------------------------
def accel_verilog(accel: Accelerator, layers: Sequence[Layer] = ()) -> dict[str, str]:
    """``{file name: Verilog}`` of the generated accelerator, sized to cover ``layers`` (rtl_gen.top)."""
    from rtl_gen import top as rtl_top

    return {f"{TOPLEVEL}.v": rtl_top.verilog_for(accel, layers=list(layers), name=TOPLEVEL)}


def encode_program(program, accel: Accelerator, requant=None) -> list[int]:
    """Instruction words of a compiled :class:`jaq.hw.schedule.Program` (rtl_gen.isa is the encoding); ``requant``
    gives SET_LAYER's output-unit constants (None: the identity unit)."""
    from rtl_gen import isa

    return [int(w) for w in isa.encode_program(program, accel, requant)]


# ------------------------------------------------------------------------------------------------------------
# Comparison
# ------------------------------------------------------------------------------------------------------------
def with_unit_constants(words: Sequence[int], requant) -> list[int]:
    """``words`` with every SET_LAYER's output-unit constants (``shift``, ``relu``, ``res_mult``) set from ``requant``, its other
    fields untouched: an emitted program leaves them to the data it runs with (the trained network's, or a
    test's random constants)."""
    from rtl_gen import isa

    out = []
    for w in words:
        ins = isa.decode(int(w))
        if ins.op == "SET_LAYER":
            w = isa.encode("SET_LAYER", **{**ins.fields, "shift": requant.shift, "relu": int(requant.relu),
                                           "res_mult": requant.res_mult & 0xFFFFFFFF})
        out.append(int(w))
    return out


def case_requant(case: LayerCase, seed: int = 0):
    """The output-unit constants a case runs with (see :class:`LayerCase`)."""
    from jaq.hw.requant import Requant
    from sim.reference import random_requant

    if case.requant is not None:
        return case.requant
    if case.layer.out_bits == 32:
        return Requant.identity(case.layer.out_ch)
    return random_requant(case.layer, seed)


def _compare(case: LayerCase, out: np.ndarray, expected_final: np.ndarray, res, walk_c: dict, model_cost,
             stall: bool) -> LayerReport:
    """One layer run on its own: ``out`` the RTL's out region (flat), ``res`` the testbench result."""
    return compare_layer(case.layer, case.tiling, case.name or case.layer.name or case.layer.kind, out,
                         expected_final, res.counters, res.finished, monitor_ok(res.mem, [walk_c]), res.mem, walk_c,
                         model_cost, stall)


def monitor_ok(mem: dict, walks: Sequence[dict]) -> bool:
    """The memory monitor's beats per tensor tag over one program stream == the sum of its layers' walks."""
    rd = mem.get("rd_beats", {})
    ok = all(int(rd.get(k, 0)) == sum(w[v] for w in walks) for k, v in MONITOR_MAP.items())
    return ok and int(mem.get("wr_beats", 0)) == sum(w["store_beats"] for w in walks)


def compare_layer(layer: Layer, tiling: Tiling, name: str, out: np.ndarray, expected: np.ndarray,
                  counters: dict, finished: bool, monitor_ok: bool, mem: dict, walk_c: dict, model_cost,
                  stall: bool) -> LayerReport:
    """A layer's report: its outputs (flat) vs ``expected``, its RTL ``counters`` vs the walk (the cycle counter
    only without ``stall``), the closed-form model vs the walk; ``monitor_ok``/``mem``: what the memory monitor
    saw over the program stream the layer ran in (its violations fail the layer)."""
    expected_c = {port: int(walk_c[key]) for port, key in COUNTER_MAP.items()}
    diffs = {}
    for port, exp in expected_c.items():
        if stall and port == "cnt_cycles":
            continue
        if port not in counters:
            diffs[port] = [None, exp]
        elif counters[port] != exp:
            diffs[port] = [counters[port], exp]
    mon = {k: int(v) for k, v in mem.get("rd_beats", {}).items()}
    mon["wr"] = int(mem.get("wr_beats", 0))
    model_diffs = {}
    if int(round(model_cost.cycles)) != walk_c["cycles"]:
        model_diffs["cycles"] = [int(round(model_cost.cycles)), walk_c["cycles"]]
    for k, v in model_cost.accesses.items():
        if k in walk_c and int(round(v)) != walk_c[k]:
            model_diffs[k] = [int(round(v)), walk_c[k]]
    mism = int(np.count_nonzero(out != expected))
    return LayerReport(
        name=name, layer=layer.to_dict(), tiling=tiling.to_dict(), bit_exact=finished and mism == 0,
        finished=finished, mismatches=mism,
        first_mismatches=mismatch_summary(layer, out, expected) if mism else [],
        counters_rtl=dict(counters), counters_expected=expected_c, counter_diffs=diffs, monitor_beats=mon,
        monitor_ok=monitor_ok, model_cycles=int(round(model_cost.cycles)), walk_cycles=int(walk_c["cycles"]),
        model_ok=not model_diffs, model_diffs=model_diffs, stall=stall, errors=list(mem.get("violations", [])))


# ------------------------------------------------------------------------------------------------------------
# Running
# ------------------------------------------------------------------------------------------------------------
def generator_key(accel: Accelerator, layers: Sequence[Layer] = ()) -> str:
    """Hash of what determines the generated Verilog: the accelerator, the covered layer limits, the generator's
    source code and testbench wrapper (:func:`_source_digest`) and the Amaranth version. Lets a cached build skip Verilog generation."""
    import hashlib

    import amaranth

    from rtl_gen.params import MaxLayer

    ml = MaxLayer.covering(layers, floor=MaxLayer()) if layers else MaxLayer()
    h = hashlib.sha256(json.dumps({"accel": accel.to_dict(), "max_layer": [ml.max_kernel, ml.max_stride,
                                                                           ml.max_in_ch],
                                   "amaranth": amaranth.__version__, "top": TOPLEVEL}, sort_keys=True).encode())
    h.update(_source_digest().encode())
    return h.hexdigest()


def _source_digest() -> str:
    """Hash of what makes a build besides the accelerator: the generator's sources (rtl_gen/, jaq/hw/), the
    testbench wrapper and transactor, and the build recipe (sim/verilator.py), as they are on disk now."""
    import hashlib

    h = hashlib.sha256()
    root = Path(__file__).resolve().parent.parent
    files = [f for sub in ("rtl_gen", "jaq/hw") for f in sorted((root / sub).glob("*.py"))]
    files += [root / "testbench" / "wrapper.py", root / "testbench" / "hdl" / "transactor.cpp",
              root / "sim" / "verilator.py"]
    for f in files:
        h.update(f.name.encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


#: The generator's sources when this process started using them: if they change on disk later, the modules in
#: memory are older than the files, and the generator-level index is neither read nor written (a build keyed by
#: the Verilog text itself is always right).
_SOURCES_AT_IMPORT = _source_digest()


def build_accelerator(accel: Accelerator, layers: Sequence[Layer] = (), *, verilog: dict[str, str] | None = None,
                      toplevel: str | None = None, waves: bool = False, cache_dir=None) -> SimBuild:
    """Verilator model of the accelerator (cached by content hash); ``verilog`` overrides the generator.

    Without ``verilog``, a generator-level index (:func:`generator_key` -> build) lets a cached configuration
    skip Amaranth's Verilog generation too (seconds to tens of seconds for the larger arrays)."""
    from sim.verilator import STAMP, default_cache_dir

    if verilog is not None:
        return wrapped_build(verilog, toplevel or _top_name(verilog), waves=waves, cache_dir=cache_dir)
    t0 = time.perf_counter()
    if _source_digest() != _SOURCES_AT_IMPORT:  # edited under a running process: generate, skip the index
        return wrapped_build(accel_verilog(accel, layers), TOPLEVEL, waves=waves, cache_dir=cache_dir)
    root = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    index = root / "gen" / f"{generator_key(accel, layers)}{'-waves' if waves else ''}.json"
    if index.is_file():
        try:
            d = json.loads(index.read_text())
            bdir = Path(d["build_dir"])
            if (bdir / STAMP).is_file() and (bdir / d["toplevel"]).is_file():
                return SimBuild(bdir, d["toplevel"], d["key"], False, time.perf_counter() - t0, waves)
        except (ValueError, KeyError, OSError):
            pass
    b = wrapped_build(accel_verilog(accel, layers), TOPLEVEL, waves=waves, cache_dir=cache_dir)
    index.parent.mkdir(parents=True, exist_ok=True)
    from jaq.io import atomic_write_json

    atomic_write_json(index, {"build_dir": str(b.build_dir), "toplevel": b.toplevel, "key": b.key})
    b.seconds = time.perf_counter() - t0
    return b


def _top_name(sources: dict[str, str]) -> str:
    """The top module of ``sources``: the only module no other module instantiates (else ``jaq_accel``)."""
    import re

    text = "\n".join(sources.values())
    names = [n.lstrip("\\") for n in re.findall(r"^\s*module\s+(\\\S+|[A-Za-z_][\w$]*)", text, flags=re.M)]
    if not names:
        raise JaqError("no Verilog module found in the build's sources")
    tops = [n for n in names if len(re.findall(rf"(?<![\w$.]){re.escape(n)}(?![\w$.])", text)) == 1]
    if len(tops) == 1:
        return tops[0]
    return TOPLEVEL if TOPLEVEL in names else names[-1]


def simulate_layers(accel: Accelerator, cases: Sequence[LayerCase], *, build: SimBuild | None = None,
                    verilog: dict[str, str] | None = None, toplevel: str | None = None, programs: Sequence[Sequence[int]] | None = None,
                    stall: bool = False, waves: bool = False, workdir=None, seed: int = 0,
                    cache_dir=None, log_dir=None) -> SimReport:
    """Simulate ``cases`` on one accelerator configuration (one build, one simulator process).

    ``programs``: pre-encoded instruction words per case (from a build dir); default: compile + encode here.
    ``workdir``: where job files, logs and waves go (default: a temporary directory, removed afterwards unless
    ``waves``). ``log_dir``: where the simulator log is kept when the simulator crashed and ``workdir`` was
    temporary (default: a fresh temporary folder that is not removed); the report's errors name its real path.
    Returns a :class:`SimReport`; never raises for a mismatch (``report.ok`` says).
    """
    from jaq.hw.model import estimate_one
    from jaq.hw.schedule import compile_layer, walk
    from testbench.env import Job, TbResult, result_path


    ensure_importable()
    layers = [c.layer for c in cases]
    t0 = time.perf_counter()
    if build is None:
        build = build_accelerator(accel, layers, verilog=verilog, toplevel=toplevel, waves=waves,
                                  cache_dir=cache_dir)
    build_s = time.perf_counter() - t0
    tmp = None
    if workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="jaq_sim_")
        workdir = Path(tmp.name)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    prepared = []
    job_paths = []
    for i, case in enumerate(cases):
        data = case.data if case.data is not None else random_layer_data(case.layer, rng=seed + i)
        rq = case_requant(case, seed + 2000 + i)
        img = layer_job_image(data, case.tiling, rq, accel, seed=seed + 1000 + i)
        prog = compile_layer(case.layer, accel, case.tiling, img.placement)
        wc = walk(prog)
        mc = estimate_one(case.layer, accel, case.tiling)
        words = list(programs[i]) if programs is not None else encode_program(prog, accel, rq)
        if programs is not None:  # an emitted program: SET_LAYER carries this run's output-unit constants
            words = with_unit_constants(words, rq)
        budget = (wc["cycles"] * (8 if stall else 2)) + 2000
        job = Job(memory=img.memory, width_bits=accel.dram_bits_per_cycle, latency=accel.dram_latency_cycles,
                  program=words, expected=img.expected, mask=img.mask, stall=stall, seed=seed + 17 * i + 1,
                  max_cycles=budget, counters=COUNTERS, name=case.name or f"layer{i}")
        p = job.save(workdir / f"job{i:03d}.npz")
        job_paths.append(p)
        prepared.append((case, data, img, wc, mc))
    jobs_file = workdir / "jobs.txt"
    jobs_file.write_text("".join(f"{p}\n" for p in job_paths))
    t1 = time.perf_counter()
    r = run_cocotb(build, "testbench.accel_tb", workdir, extra_env={"JAQ_TB_JOBS": str(jobs_file)},
                   waves=waves)
    sim_s = time.perf_counter() - t1
    reports, errors, outputs = [], [], []
    sim_cycles = 0
    crashed = r.tests == 0 or any(not result_path(p).is_file() for p in job_paths)
    log_file = r.log_file
    if crashed and tmp is not None:  # the temporary work directory goes away: keep the log
        log_file = keep_log(r.log_file, log_dir) or "(none: the simulator wrote no log)"
    for (case, data, img, wc, mc), p in zip(prepared, job_paths):
        rp = result_path(p)
        if not rp.is_file():
            errors.append(f"{case.name or case.layer.kind}: no result (simulator crashed?); log: {log_file}")
            continue
        res = TbResult.load(rp)
        sim_cycles += res.tb_cycles
        out = FlatImage.get(res.memory, img.regions["out"])
        outputs.append(extract_output(case.layer, out))
        reports.append(_compare(case, out, img.expected_out.reshape(-1), res, wc, mc, stall))
    if r.tests == 0:
        errors.append(f"the simulator did not report results (log: {log_file}); log tail:\n{r.log_tail(20)}")
    wave_file = None
    if waves:
        for cand in ("dump.fst", "dump.vcd"):
            if (workdir / cand).is_file():
                wave_file = str(workdir / cand)
    rep = SimReport(accel=accel.to_dict(), layers=reports, build_seconds=build_s, build_cached=not build.built,
                    build_dir=str(build.build_dir), sim_seconds=sim_s, simulated_cycles=sim_cycles, stall=stall,
                    waves=wave_file, errors=errors, outputs=outputs)
    if tmp is not None and not waves:
        tmp.cleanup()
    return rep


def keep_log(log_file: Path, log_dir=None) -> Path | None:
    """Copy the simulator log out of a temporary work directory (about to be removed) into ``log_dir`` (default:
    a new temporary folder that stays); returns the kept path, None when the simulator wrote no log."""
    import shutil

    src = Path(log_file)
    if not src.is_file():
        return None
    dest_dir = Path(log_dir) if log_dir is not None else Path(tempfile.mkdtemp(prefix="jaq_sim_log_"))
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / "sim.log"
    shutil.copyfile(src, dest)
    return dest


# ------------------------------------------------------------------------------------------------------------
# Output
# ------------------------------------------------------------------------------------------------------------
def print_report(report: SimReport, console=None) -> None:
    """A rich table: per layer, bit-exactness, cycles RTL / walk / model and counter agreement."""
    from rich.console import Console
    from rich.table import Table

    if console is None:
        console = Console()
        if not console.is_terminal:
            console = Console(width=160)
    t = Table(title=f"jaq simulate: {report.accel.get('dataflow')} {report.accel.get('pe_y')}x"
                    f"{report.accel.get('pe_x')}, W={report.accel.get('dram_bits_per_cycle')} "
                    f"L={report.accel.get('dram_latency_cycles')}" + (" (stalling memory)" if report.stall else ""))
    for col in ("layer", "shape", "bits", "tiling ic/oc/oh/ow order", "bit-exact", "cycles RTL", "cycles walk", "cycles model",
                "counters", "result"):
        t.add_column(col)
    for l in report.layers:
        L = l.layer
        shape = f"{L['kind']} {L['in_ch']}->{L['out_ch']} {L['out_h']}x{L['out_w']} k{L['kernel']}s{L['stride']}" + (
            f" g{L['groups']}" if L["groups"] > 1 else "")
        T = l.tiling
        til = f"{T['t_ic']}/{T['t_oc']}/{T['t_oh']}/{T['t_ow']} {'>'.join(d for d in T['loop_order'] if d != 'B')}"
        cnt = "equal" if l.counters_ok and l.monitor_ok else ", ".join(
            f"{k} {v[0]}!={v[1]}" for k, v in list(l.counter_diffs.items())[:3]) or "monitor differs"
        t.add_row(l.name, shape, f"a{L['act_bits']}w{L['wgt_bits']}", til,
                  "yes" if l.bit_exact else f"NO ({l.mismatches})", str(l.counters_rtl.get("cnt_cycles", "-")),
                  str(l.walk_cycles), str(l.model_cycles), cnt, "[green]ok[/]" if l.ok else "[red]FAIL[/]")
    console.print(t)
    console.print(f"build {report.build_seconds:.1f} s ({'cached' if report.build_cached else 'built'}), "
                  f"simulation {report.sim_seconds:.1f} s, {report.simulated_cycles} cycles "
                  f"({report.cycles_per_second:,.0f} cycles/s)" + (f", waves: {report.waves}" if report.waves else ""))
    for e in report.errors:
        console.print(f"[red]error:[/] {e}")
    for l in report.layers:
        for m in l.first_mismatches:
            console.print(f"[red]{l.name}[/] output {m}")
        for e in l.errors[:3]:
            console.print(f"[red]{l.name}[/] {e}")


def write_report(report: SimReport, path) -> None:
    from jaq.io import atomic_write_json

    atomic_write_json(path, report.to_dict())


__all__ = ["LayerCase", "LayerReport", "SimReport", "simulate_layers", "build_accelerator", "accel_verilog",
           "encode_program", "print_report", "write_report", "COUNTER_MAP", "TOPLEVEL"]
