"""``jaq flow``: one command from a config to verified hardware and a report.

Steps (each calls the other commands' Python entry points in this process, no shell):

1. **co-search** (:func:`jaq.search.cosearch.run_cosearch`) -> RUN/accel.json, metrics.jsonl, checkpoint.pt
2. **emit-rtl** (``jaq emit-rtl RUN/accel.json -o RUN/build``) -> Verilog, per-layer programs. It needs only the
   search's accelerator, layers and tilings, so it comes before retraining, and two child processes start here:
   the Verilator model build (into sim's content-hash cache) and Yosys synthesis (``--synth``, niced; waited
   for at most ``--synth-timeout`` seconds once the other steps are done), both running while the next step trains
3. **retrain** (:func:`jaq.search.retrain.run_retrain`) -> accuracy in accel.json, RUN/weights/, retrained.pt
4. **simulate** -> the whole retrained network on the Verilator model of the emitted RTL, one real test image,
   one program stream from the image to the logits (:mod:`sim.network`; RUN/build/sim/network.json); without a retrained
   network, every layer with random data (``jaq simulate RUN/build``; RUN/build/sim/report.json)
5. **report** (:func:`jaq.report.build_report`) -> RUN/report/report.html, report.md, figures/

RUN/flow.json records every step (status, seconds, one-line summary). ``--resume`` continues a run: finished
steps are reused (the build when it was emitted for the same accelerator/layers/tilings, the simulation when its
report is newer than the build and the retrained weights), an interrupted search continues from its checkpoint.
Exit status: 0 when everything ran and the RTL agrees with the model, 1 when the simulation found a mismatch (the
report says where), 2 for a user error (one line naming what is missing and how to make it).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from jaq.cli_types import bounded_int, finite_float
from jaq.commands.co_search import add_set_argument, named_overrides
from jaq.errors import JaqError
from jaq.flow.pipeline import Context, run_pipeline
from jaq.flow.record import STEPS, Flow, Step, fmt_s, now

NAME = "flow"
HELP = "config -> co-search -> emit-rtl -> retrain -> simulate -> report, in one command"
DESCRIPTION = __doc__ + """
examples:
  jaq flow --config configs/tiny.yaml --out runs/demo --force
  jaq flow --config configs/tiny.yaml --out runs/demo --resume          # continue / redo what is missing
  jaq flow --config configs/tiny.yaml --out runs/quick --epochs 2 --retrain-epochs 2 --max-steps 4 --skip-sim
"""

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
        return  # step_cosearch decides between reuse, resume and a fresh start
    check_run_dir(out, resume=False, force=args.force, keep=[args.config] if args.config else [])


# ---------------------------------------------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------------------------------------------
def run_flow(args, log: Callable[[str], None] = print) -> int:
    """Run the flow for parsed ``args`` (see :func:`add_arguments`); returns the exit status."""
    t0 = time.perf_counter()
    cfg, run, cfg_path = _resolve_config(args)
    flow = Flow(run=run, config=cfg_path or str(run / "config.yaml"), steps=[Step(n) for n in STEPS],
                started=now(), t0=t0, log=log)
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
    run_pipeline(Context(cfg=cfg, run=run, build=build, args=args, flow=flow, log=log))
    flow.save(finished=True)
    total = time.perf_counter() - flow.t0
    log(f"jaq flow: finished in {fmt_s(total)}: " + ", ".join(
        f"{s.name} {fmt_s(s.seconds or 0.0)}" for s in flow.steps))
    log(f"report: {run / 'report' / 'report.html'}")
    if not flow.ok:
        log("jaq flow: the RTL does NOT agree with the model on every layer (see the report's 'Model vs RTL')")
        return 1
    return 0


def run(args) -> int:
    return run_flow(args)
