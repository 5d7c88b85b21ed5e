"""``jaq flow``: one command from a config to verified hardware and a report.

Steps (each calls the other commands' Python entry points in this process, no shell):

1. **co-search** (:func:`jaq.search.cosearch.run_cosearch`) -> RUN/accel.json, metrics.jsonl, checkpoint.pt
2. **emit-rtl** (``jaq emit-rtl RUN/accel.json -o RUN/build``) -> Verilog, per-layer programs. It needs only the
   search's accelerator, layers and tilings, so it comes before retraining, and two child processes start here:
   the Verilator model build (into sim's content-hash cache) and Yosys synthesis (``--synth``, niced; waited
   for at most ``--synth-timeout`` seconds once the other steps are done), both running while the next step trains
3. **retrain** (:func:`jaq.search.retrain.run_retrain`) -> accuracy in accel.json, RUN/weights/, retrained.pt
4. **simulate** -> the whole retrained network on the Verilator model of the emitted RTL, one real test image,
   host-side requantization between layers (:mod:`sim.network`; RUN/build/sim/network.json); without a retrained
   network, every layer with random data (``jaq simulate RUN/build``; RUN/build/sim/report.json)
5. **report** (:func:`jaq.report.build_report`) -> RUN/report/report.html, report.md, figures/

RUN/flow.json records every step (status, seconds, one-line summary). ``--resume`` continues a run: finished
steps are reused (the build when it was emitted for the same accelerator/layers/tilings, the simulation when its
report is newer than the build and the retrained weights), an interrupted search continues from its checkpoint.
Exit status: 0 when everything ran and the RTL agrees with the model, 1 when the simulation found a mismatch (the
report says where), 2 for a user error (one line naming what is missing and how to make it).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import multiprocessing as mp
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from jaq.cli_types import bounded_int, finite_float
from jaq.commands.co_search import add_set_argument, named_overrides
from jaq.errors import JaqError

NAME = "flow"
HELP = "config -> co-search -> emit-rtl -> retrain -> simulate -> report, in one command"
DESCRIPTION = __doc__ + """
examples:
  jaq flow --config configs/tiny.yaml --out runs/demo --force
  jaq flow --config configs/tiny.yaml --out runs/demo --resume          # continue / redo what is missing
  jaq flow --config configs/tiny.yaml --out runs/quick --epochs 2 --retrain-epochs 2 --max-steps 4 --skip-sim
"""

#: Step order. emit-rtl needs only the search's accel.json (accelerator, layers, tilings), not the retrained
#: weights, so it runs before retrain and the Verilator build + Yosys run in child processes while retrain trains.
STEPS = ("co-search", "emit-rtl", "retrain", "simulate", "report")
#: What each step leaves in the run directory (listed in flow.json when present).
OUTPUTS = {"co-search": ("config.yaml", "accel.json", "metrics.jsonl", "checkpoint.pt", "subnet.json", "plots"),
           "retrain": ("retrained.pt", "retrain_metrics.jsonl", "weights"),
           "emit-rtl": ("build/rtl", "build/programs", "build/manifest.json", "build/synth/report.json"),
           "simulate": ("build/sim/network.json", "build/sim/report.json"),
           "report": ("report/report.html", "report/report.md", "report/figures")}
FLOW_JSON = "flow.json"


def add_arguments(p) -> None:
    p.add_argument("--config", help="YAML config (configs/*.yaml); with --resume the run's own config is used "
                                    "when omitted")
    p.add_argument("--out", help="run directory (default runs/<config name>)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--force", action="store_true",
                   help="start again in a non-empty --out that jaq created (.jaq-run marker): deletes only jaq's "
                        "files there; never the current directory or one holding --config")
    g.add_argument("--resume", action="store_true", help="reuse finished steps, continue an interrupted search")
    p.add_argument("--skip-sim", action="store_true", help="do not simulate the RTL (the report says 'not run')")
    p.add_argument("--synth", choices=("auto", "yes", "no"), default="auto",
                   help="Yosys area of the emitted RTL, in a child process while retrain and simulate run: "
                        "auto (default) = wait at most --synth-timeout seconds once the other steps are done, "
                        "else drop it; yes = wait for it; no = skip")
    p.add_argument("--synth-timeout", type=finite_float(0, 1e6), default=60.0, metavar="S",
                   help="with --synth auto: seconds to wait for synthesis after simulate (default 60)")
    p.add_argument("--epochs", type=bounded_int(1, 10 ** 6), help="override search.epochs")
    p.add_argument("--retrain-epochs", type=bounded_int(0, 10 ** 6), help="override retrain.epochs")
    p.add_argument("--max-steps", type=bounded_int(1, 10 ** 9), metavar="N",
                   help="override search/retrain max_steps_per_epoch (quick runs)")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda or auto (search and retrain)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_set_argument(p)


#: Named flags of this command -> the config key(s) each one sets (shorthands for --set).
FLAGS = {"epochs": "search.epochs", "retrain_epochs": "retrain.epochs",
         "max_steps": ("search.max_steps_per_epoch", "retrain.max_steps_per_epoch")}


# ---------------------------------------------------------------------------------------------------------------
# Bookkeeping
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class Step:
    """One step's record in flow.json: status done / reused / skipped / failed, wall seconds, a summary line."""

    name: str
    status: str = "pending"
    seconds: float | None = None
    summary: str = ""
    outputs: list[str] = field(default_factory=list)


@dataclass
class Flow:
    run: Path
    config: str | None
    steps: list[Step]
    started: str
    t0: float
    log: Callable[[str], None] = print
    ok: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def step(self, name: str) -> Step:
        return next(s for s in self.steps if s.name == name)

    def save(self, finished: bool = False) -> None:
        from jaq.io import atomic_write_json
        if not self.run.is_dir():
            return
        d = {"config": self.config, "command": "jaq " + " ".join(sys.argv[1:]) if sys.argv else None,
             "started": self.started,
             "finished": _now() if finished else None, "total_seconds": round(time.perf_counter() - self.t0, 2),
             "ok": self.ok, "steps": [asdict(s) for s in self.steps], **self.extra}
        atomic_write_json(self.run / FLOW_JSON, d)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def _fmt_s(s: float) -> str:
    return f"{int(s // 60)} min {s % 60:04.1f} s" if s >= 60 else f"{s:.1f} s"


def _run_step(flow: Flow, name: str, fn: Callable[[], tuple[str, str]]) -> None:
    """Run ``fn`` -> (status, summary) as step ``name``: header line, timing, summary line, flow.json update."""
    i = STEPS.index(name) + 1
    st = flow.step(name)
    flow.log(f"[{i}/{len(STEPS)}] {name} ...")
    t = time.perf_counter()
    try:
        status, summary = fn()
    except BaseException as e:
        st.status = "interrupted" if isinstance(e, KeyboardInterrupt) else "failed"
        st.seconds = round(time.perf_counter() - t, 2)
        st.summary = str(e).splitlines()[0][:300] if str(e) else type(e).__name__
        flow.ok = False
        flow.save()
        raise
    st.status, st.summary, st.seconds = status, summary, round(time.perf_counter() - t, 2)
    st.outputs = [o for o in OUTPUTS[name] if (flow.run / o).exists()]
    flow.save()
    flow.log(f"[{i}/{len(STEPS)}] {name}: {status} in {_fmt_s(st.seconds)} -- {summary}")


def _newer(a: Path, b: Path) -> bool:
    """``a`` exists and is at least as new as ``b``."""
    return a.exists() and b.exists() and a.stat().st_mtime >= b.stat().st_mtime


def _cmd_args(module, argv: list[str]) -> argparse.Namespace:
    """Parse ``argv`` with ``module``'s own argument definitions (so defaults stay the command's)."""
    p = argparse.ArgumentParser(prog=f"jaq {module.NAME}")
    module.add_arguments(p)
    return p.parse_args(argv)


# ---------------------------------------------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------------------------------------------
def _resolve_config(args) -> tuple[dict, Path, str | None]:
    from jaq.search.config import apply_overrides, resolve_run_config

    cfg = apply_overrides(resolve_run_config(args.config, args.out, args.resume), named_overrides(args, FLAGS))
    if cfg.get("sweep_lambda"):
        raise JaqError("jaq flow runs one search; run the sweep with `jaq co-search --sweep-lambda ...` and pass "
                       "one of its runs to the later steps (or set sweep_lambda: null)", "sweep_lambda")
    out = Path(args.out or f"runs/{cfg['name']}")
    from jaq.commands.co_search import preflight
    preflight(cfg, args.device)
    _check_out(out, args)
    return cfg, out, args.config


def _check_out(out: Path, args) -> None:
    """--out against --force / --resume before anything is written (a finished or checkpointed run resumes; a
    marked run directory that failed early starts again)."""
    from jaq.search.rundir import check_run_dir
    if args.resume:
        return  # _step_cosearch decides between reuse, resume and a fresh start
    check_run_dir(out, resume=False, force=args.force, keep=[args.config] if args.config else [])


# ---------------------------------------------------------------------------------------------------------------
# Steps
# ---------------------------------------------------------------------------------------------------------------
def _step_cosearch(cfg: dict, run: Path, args) -> tuple[str, str]:
    from jaq.search.cosearch import run_cosearch
    from jaq.search.rundir import ACCEL, CHECKPOINT, MARKER

    if args.resume and (run / ACCEL).is_file():
        _check_same_config(cfg, run)
        return "reused", f"{run / ACCEL} exists (delete it or use --force to search again)"
    resume = bool(args.resume and (run / CHECKPOINT).is_file())
    if args.resume and not resume and run.is_dir() and any(run.iterdir()):
        # a run directory without a checkpoint: only our own flow.json/report may be there
        leftovers = [p.name for p in run.iterdir() if p.name not in (FLOW_JSON, "config.yaml", "report", MARKER)]
        if leftovers:
            raise JaqError(f"cannot resume {run}: no {CHECKPOINT} and not empty ({', '.join(sorted(leftovers)[:3])}); "
                           f"use --force to start again", "--resume")
    force = args.force or (args.resume and not resume)
    res = run_cosearch(cfg, run, resume=resume, force=force, device=args.device, quiet=args.quiet)
    spec = res.get("accel")
    if spec is None:
        raise JaqError(f"the co-search stopped without writing {run / ACCEL}; resume with --resume", "co-search")
    a, t = spec.accelerator, spec.totals
    return ("resumed" if resume else "done"), (
        f"{len(spec.layers)} layers, {a.pe_x}x{a.pe_y} {a.dataflow}, buffers {a.act_buf_kb}/{a.wgt_buf_kb}/"
        f"{a.out_buf_kb} KB; latency {t.latency_ms:.4g} ms, energy {t.energy_mj:.4g} mJ, area {t.area_mm2:.4g} "
        f"mm^2, EDAP {t.edap:.4g} J*s*mm^2")


def _check_same_config(cfg: dict, run: Path) -> None:
    """--resume reuses a finished search only for the same (resolved) config."""
    from jaq.search.config import config_diff, validate_config
    from jaq.search.rundir import read_config
    if not (run / "config.yaml").is_file():
        return
    saved = validate_config(read_config(run), str(run / "config.yaml"))
    diff = config_diff(saved, cfg)
    if diff:
        raise JaqError(f"differs from {run / 'config.yaml'} ({', '.join(diff[:4])}); resume with the run's own "
                       f"config (omit --config and the overrides) or start again with --force", diff[0])


def _retrained(run: Path) -> bool:
    from jaq.accel_json import load_accel_json
    if not ((run / "retrained.pt").is_file() and (run / "weights" / "network.json").is_file()):
        return False
    spec = load_accel_json(run / "accel.json")
    return "top1" in (spec.accuracy or {})


def _step_retrain(run: Path, args) -> tuple[str, str]:
    from jaq.search.retrain import run_retrain

    if not (run / "accel.json").is_file():
        raise JaqError(f"retrain needs {run / 'accel.json'}: the co-search step has not finished "
                       f"(jaq flow --config CONFIG --out {run} --resume)", "retrain")
    if args.resume and _retrained(run):
        from jaq.accel_json import load_accel_json
        acc = load_accel_json(run / "accel.json").accuracy or {}
        return "reused", f"test accuracy {100 * acc['top1']:.2f}% (retrained.pt, weights/ exist)"
    r = run_retrain(run, device=args.device, quiet=args.quiet)
    s = f"{r['epochs']} epochs: test accuracy {100 * r['test_acc']:.2f}%"
    if r.get("integer_test_acc") is not None:
        s += f", integer model {100 * r['integer_test_acc']:.2f}%"
    return "done", s


def _build_matches(run: Path, build: Path) -> bool:
    """The build in ``build`` was emitted for the accelerator, layers and tilings of ``run/accel.json``."""
    from jaq.accel_json import load_accel_json
    if not (build / "manifest.json").is_file() or not (build / "accel.json").is_file():
        return False
    try:
        a, b = load_accel_json(run / "accel.json"), load_accel_json(build / "accel.json")
    except JaqError:
        return False
    if a.accelerator is None or b.accelerator is None or a.accelerator.to_dict() != b.accelerator.to_dict():
        return False
    if [l.to_dict() for l in a.layers] != [l.to_dict() for l in b.layers]:
        return False
    return all(ta is None or (tb is not None and ta.to_dict() == tb.to_dict())
               for ta, tb in zip(a.tilings, b.tilings))


def _step_emit(run: Path, build: Path, args) -> tuple[str, str]:
    from jaq.commands import emit_rtl

    accel = run / "accel.json"
    if not accel.is_file():
        raise JaqError(f"emit-rtl needs {accel}: the co-search step has not finished "
                       f"(jaq flow --config CONFIG --out {run} --resume)", "emit-rtl")
    if args.resume and _build_matches(run, build):
        return "reused", f"{build} was emitted for this accel.json"
    if build.is_dir() and not (build / "manifest.json").is_file() and any(build.iterdir()):
        import shutil
        shutil.rmtree(build)  # RUN/build of a marked run directory without a manifest: an old, broken build
    rc = emit_rtl.run(_cmd_args(emit_rtl, [str(accel), "-o", str(build), "--force"]))
    if rc:
        raise JaqError(f"jaq emit-rtl exited with {rc}", "emit-rtl")
    v = sum(f.stat().st_size for f in (build / "rtl").glob("*.v")) if (build / "rtl").is_dir() else 0
    n = len(list((build / "programs").glob("*.hex"))) if (build / "programs").is_dir() else 0
    return "done", f"{build}: {v / 1e6:.2f} MB of Verilog, {n} layer programs"


# -- synthesis in a child process (runs beside the simulation) --------------------------------------------------
def _synth_child(build: str, q) -> None:  # pragma: no cover - runs in a child process
    """Synthesize BUILD's Verilog with Yosys (rtl_gen.synth) and write BUILD/synth/report.{json,txt}, as
    ``jaq emit-rtl --synth`` does."""
    _die_with_parent()
    try:
        from jaq.io import atomic_write_json, atomic_write_text, load_json
        from rtl_gen.synth import synthesize
        b = Path(build)
        man = load_json(b / "manifest.json")
        conf = load_json(b / "config.json")
        vtext = "".join((b / v).read_text() for v in man["verilog"])
        mem_bits = 32 * sum(int(conf["buffers"][n]["words32"]) for n in ("act", "wgt", "out"))
        rep = synthesize(vtext, man.get("toplevel") or conf.get("top") or "jaq_accel", b / "synth",
                         memory_bits=mem_bits)
        atomic_write_text(b / "synth" / "report.txt", rep.text())
        atomic_write_json(b / "synth" / "report.json", rep.to_dict())
        q.put(("ok", f"logic area {rep.logic_area_um2 * 1e-6:.4f} mm^2, {sum(rep.cells.values())} cells "
                     f"(+ {mem_bits // 8192} KB of buffers as SRAM macros)"))
    except BaseException as e:  # noqa: BLE001 - reported to the parent as a line
        q.put(("error", f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"))


def _die_with_parent() -> None:  # pragma: no cover - runs in a child process
    """Linux: have the kernel send SIGTERM to this process when the flow's process dies (killed flow, no orphan
    Yosys left running). Elsewhere a no-op."""
    try:
        import ctypes
        import signal
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGTERM))  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _prebuild_child(build: str, q) -> None:  # pragma: no cover - runs in a child process
    """Build the Verilator model of BUILD's Verilog into sim's content-hash cache (the simulate step then finds
    it; sim.verilator's file lock makes a concurrent request wait for this build instead of repeating it)."""
    _die_with_parent()
    try:
        import os
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        from sim.build_dir import load_build_dir
        from sim.harness import build_accelerator
        b = load_build_dir(build)
        sb = build_accelerator(b.accel, b.layers, verilog=b.verilog)
        q.put(("ok", f"Verilator model {'built' if sb.built else 'cached'} ({sb.build_dir})"))
    except BaseException as e:  # noqa: BLE001 - the simulate step reports a real failure itself
        q.put(("error", f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"))


class Background:
    """A function run in a child process (``spawn``: a clean interpreter) with an optional wall-clock budget.

    ``clock`` (seconds, default :func:`time.perf_counter`) and ``timer`` (a :class:`threading.Timer`-like factory
    ``timer(interval, fn)`` with ``daemon``, ``start()`` and ``cancel()``; default :class:`threading.Timer`) are
    injectable, so tests can run the budget on a clock they advance by hand."""

    def __init__(self, target, build: Path, timeout: float | None = None, nice: int = 0, *,
                 clock: Callable[[], float] = time.perf_counter, timer: Callable[..., Any] | None = None):
        if timer is None:
            import threading
            timer = threading.Timer
        self.target, self.build, self.timeout, self.nice = target, build, timeout, nice
        self.clock, self.make_timer = clock, timer
        self.timer = None
        self.timed_out: float | None = None  # seconds at which the budget ended the child
        self.proc = None
        self.q = None
        self.t0 = 0.0

    def elapsed(self) -> float:
        """Seconds since :meth:`start` on the job's clock."""
        return self.clock() - self.t0

    def start(self) -> None:
        ctx = mp.get_context("spawn")  # no torch threads or Verilator state inherited
        self.q = ctx.Queue()
        self.proc = ctx.Process(target=_niced, args=(self.nice, self.target, str(self.build), self.q), daemon=True)
        self.t0 = self.clock()
        self.proc.start()
        self._arm()

    def set_timeout(self, timeout: float | None) -> None:
        """A new budget (seconds from :meth:`start`); a started job's timer is re-armed for what is left of it."""
        self.timeout = timeout
        if self.proc is not None:
            self._arm()

    def _arm(self) -> None:
        """(Re)start the timer that ends the child when the budget runs out -- even while the flow is busy
        elsewhere."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.timeout is not None:
            self.timer = self.make_timer(max(0.0, self.timeout - self.elapsed()), self._expire)
            self.timer.daemon = True
            self.timer.start()

    def _expire(self) -> None:
        if self.proc is not None and self.proc.is_alive():
            if self.timed_out is None:
                self.timed_out = self.elapsed()
            self.proc.terminate()

    def finish(self, wait: bool = True) -> tuple[str | None, str, float]:
        """(status "ok"/"error"/"timeout"/None when never started, message, seconds since start)."""
        if self.proc is None:
            return None, "", 0.0
        if not wait:
            self.proc.join(0)
        elif self.timeout is None:
            self.proc.join()
        else:  # the budget's timer ends the child (and sets timed_out) when the budget runs out
            while self.timed_out is None and self.proc.is_alive():
                self.proc.join(0.1)
        if self.proc.is_alive():
            self._expire()
        if self.timer is not None:
            self.timer.cancel()
        if self.timed_out is not None:
            self.proc.join(5)
            return "timeout", "", self.timed_out
        secs = self.elapsed()
        try:
            status, msg = self.q.get(timeout=5)
        except Exception:  # noqa: BLE001
            return "error", f"ended without a result (exit code {self.proc.exitcode})", secs
        return status, msg, secs


def _niced(nice: int, target, build: str, q) -> None:  # pragma: no cover - runs in a child process
    if nice:
        import os
        try:
            os.nice(nice)
        except OSError:
            pass
    target(build, q)


class Synth:
    """Yosys synthesis of a build directory in a child process (niced: the flow's own steps come first). It is
    "affordable" when it ends while the other steps run or within ``grace`` seconds after them (``--synth
    auto``); ``--synth yes`` waits for it however long it takes."""

    def __init__(self, build: Path, mode: str, grace: float, *, clock: Callable[[], float] = time.perf_counter,
                 timer: Callable[..., Any] | None = None):
        self.mode = mode
        self.grace = grace
        self.job = Background(_synth_child, build, None, nice=10, clock=clock, timer=timer)  # clock/timer: tests
        self.reused = False  # a previous run's synth/report.json is kept (--resume)

    def start(self) -> None:
        if self.mode != "no":
            self.job.start()

    def finish(self) -> tuple[str, float]:
        """Wait (within the budget) and return (one-line outcome, seconds)."""
        if self.mode == "no":
            return "synthesis skipped (--synth no)", 0.0
        if self.mode == "auto" and self.job.proc is not None:
            self.job.set_timeout(self.job.elapsed() + self.grace)  # from now: the grace
        status, msg, secs = self.job.finish()
        if status is None:
            return "synthesis not started", 0.0
        if status == "timeout":
            return (f"synthesis dropped: not done {self.grace:.0f} s after the other steps ({_fmt_s(secs)} in all; "
                    f"run `jaq emit-rtl ... --synth` alone or raise --synth-timeout)"), secs
        return (msg if status == "ok" else f"synthesis failed: {msg}"), secs


# -- simulation ------------------------------------------------------------------------------------------------
def _simulate_network(run: Path, build: Path) -> tuple[bool, str]:
    """The retrained integer network on the emitted RTL (one real test image), RUN/build/sim/network.json."""
    from jaq.io import atomic_write_json
    from sim.build_dir import load_build_dir
    from sim.network import load_run, run_integer_net

    b = load_build_dir(build)
    inet, accel, tilings, image = load_run(run)
    if accel.to_dict() != b.accel.to_dict():
        raise JaqError(f"{build / 'accel.json'} describes another accelerator than {run / 'accel.json'}; "
                       f"re-run emit-rtl (jaq flow ... --resume after deleting {build})", "simulate")
    res = run_integer_net(inet, b.accel, b.tilings, image, verilog=b.verilog)
    d = res.to_dict()
    label = _first_test_label(run)
    d.update({"image": "first test image", "label": label,
              "predicted_class": int(res.logits_rtl.reshape(-1).argmax()) if res.logits_rtl.size else None,
              "build_dir": str(build)})
    atomic_write_json(build / "sim" / "network.json", d)
    n = len(res.layer_reports)
    exact = sum(r.bit_exact for r in res.layer_reports)
    cnt = sum(r.counters_ok and r.monitor_ok for r in res.layer_reports)
    s = (f"whole network on the RTL: logits {'equal' if res.logits_equal else 'DIFFER'}; {exact}/{n} layers "
         f"bit-exact, counters equal {cnt}/{n}, {res.host_ops} host operations; {res.simulated_cycles} cycles in "
         f"{res.sim_seconds:.1f} s "
         f"(Verilator build {res.build_seconds:.1f} s)")
    return res.ok, s


def _first_test_label(run: Path) -> int | None:
    try:
        from jaq.data import load_data
        from jaq.search.config import validate_config
        from jaq.search.rundir import read_config
        cfg = validate_config(read_config(run), str(run / "config.yaml"))
        data = load_data(cfg["data"], seed=cfg["seed"])
        for _, y in data.test.batches(1, shuffle=False):
            return int(y[0])
    except Exception:  # noqa: BLE001 - the label is decoration
        return None
    return None


def _simulate_layers(build: Path) -> tuple[bool, str]:
    """Every layer with random data (``jaq simulate BUILD``), BUILD/sim/report.json."""
    import contextlib
    import io

    from jaq.commands import simulate
    from jaq.io import load_json

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = simulate.run(_cmd_args(simulate, [str(build)]))
    rep = load_json(build / "sim" / "report.json")
    n = len(rep.get("layers", []))
    exact = sum(bool(l.get("bit_exact")) for l in rep.get("layers", []))
    cnt = sum(bool(l.get("counters_ok")) and bool(l.get("monitor_ok")) for l in rep.get("layers", []))
    return rc == 0, (f"every layer (random data): {exact}/{n} bit-exact, counters equal {cnt}/{n}; "
                     f"{rep.get('simulated_cycles')} cycles in {rep.get('sim_seconds')} s")


def _step_simulate(run: Path, build: Path, args, flow: Flow) -> tuple[str, str]:
    if not (build / "manifest.json").is_file():
        raise JaqError(f"simulate needs the RTL build {build} (emit-rtl step): "
                       f"jaq emit-rtl {run / 'accel.json'} -o {build}", "simulate")
    sim_dir = build / "sim"
    network = (run / "retrained.pt").is_file()
    out = sim_dir / ("network.json" if network else "report.json")
    newest_input = max((p for p in (build / "manifest.json", run / "retrained.pt") if p.exists()),
                       key=lambda p: p.stat().st_mtime)
    if args.resume and _newer(out, newest_input):
        from jaq.io import load_json
        ok = bool(load_json(out).get("ok"))
        flow.ok &= ok
        return "reused", f"{out} ({'agrees' if ok else 'MISMATCH'})"
    ok, summary = _simulate_network(run, build) if network else _simulate_layers(build)
    flow.ok &= ok
    return ("done" if ok else "mismatch"), summary


# ---------------------------------------------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------------------------------------------
def run_flow(args, log: Callable[[str], None] = print) -> int:
    """Run the flow for parsed ``args`` (see :func:`add_arguments`); returns the exit status."""
    t0 = time.perf_counter()
    cfg, run, cfg_path = _resolve_config(args)
    flow = Flow(run=run, config=cfg_path or str(run / "config.yaml"), steps=[Step(n) for n in STEPS],
                started=_now(), t0=t0, log=log)
    build = run / "build"
    log(f"jaq flow: {cfg['name']} -> {run}")
    try:
        return _steps(flow, cfg, run, build, args, log)
    except JaqError:
        _report_after_failure(flow, run, log)
        raise


def _report_after_failure(flow: Flow, run: Path, log) -> None:
    """After a failed step, still render what exists (the page marks the rest 'not run')."""
    from jaq.report.collect import is_run_dir
    if not is_run_dir(run):
        return
    try:
        from jaq.report import build_report
        res = build_report(run)
        log(f"report (partial, after the failure): {res.html}")
    except Exception as e:  # noqa: BLE001 - the original error is what the user needs to see
        log(f"(no partial report: {type(e).__name__}: {e})")


def _steps(flow: Flow, cfg: dict, run: Path, build: Path, args, log) -> int:
    t0 = flow.t0
    _run_step(flow, "co-search", lambda: _step_cosearch(cfg, run, args))
    synth = Synth(build, args.synth, args.synth_timeout)
    prebuild = Background(_prebuild_child, build)

    def emit():
        status, s = _step_emit(run, build, args)
        if status == "reused" and (build / "synth" / "report.json").is_file():
            synth.reused = True
        else:
            synth.start()
        if not args.skip_sim:
            prebuild.start()  # the Verilator model builds while retrain trains
        return status, s

    _run_step(flow, "emit-rtl", emit)
    _run_step(flow, "retrain", lambda: _step_retrain(run, args))
    if args.skip_sim:
        st = flow.step("simulate")
        st.status, st.summary, st.seconds = "skipped", "--skip-sim", 0.0
        log(f"[{STEPS.index('simulate') + 1}/{len(STEPS)}] simulate: skipped (--skip-sim)")
    else:
        def simulate():
            pstatus, pmsg, psecs = prebuild.finish()
            status, summary = _step_simulate(run, build, args, flow)
            if pstatus == "ok":
                summary += f"; {pmsg.split(' (')[0]} beside retrain in {_fmt_s(psecs)}"
            return status, summary
        _run_step(flow, "simulate", simulate)
    msg, secs = synth.finish()
    if synth.reused:
        msg, secs = f"synthesis reused ({build / 'synth' / 'report.json'})", 0.0
    emit_st = flow.step("emit-rtl")
    emit_st.summary += f"; {msg}" + (f" ({_fmt_s(secs)} in the background)" if secs and "dropped" not in msg
                                     else "")
    emit_st.outputs = [o for o in OUTPUTS["emit-rtl"] if (run / o).exists()]
    flow.extra["synthesis"] = {"outcome": msg, "seconds": round(secs, 2)}
    log(f"    yosys: {msg}")
    flow.save()

    def report():
        from jaq.report import build_report
        res = build_report(run)
        missing = [m for m in res.missing if m != "flow"]
        return "done", f"{res.html} ({len(res.figures)} figures)" + (
            f"; not run: {', '.join(missing)}" if missing else "")

    _run_step(flow, "report", report)
    flow.save(finished=True)
    total = time.perf_counter() - t0
    log(f"jaq flow: finished in {_fmt_s(total)}: " + ", ".join(
        f"{s.name} {_fmt_s(s.seconds or 0.0)}" for s in flow.steps))
    log(f"report: {run / 'report' / 'report.html'}")
    if not flow.ok:
        log("jaq flow: the RTL does NOT agree with the model on every layer (see the report's 'Model vs RTL')")
        return 1
    return 0


def run(args) -> int:
    return run_flow(args)
