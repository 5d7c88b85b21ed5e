"""The flow's steps (co-search, emit-rtl, retrain, simulate): each returns (status, one-line summary) and decides
with ``--resume`` whether a finished result can be reused; :mod:`jaq.commands.flow` runs them in order."""

from __future__ import annotations

import argparse
from pathlib import Path

from jaq.errors import JaqError
from jaq.flow.record import FLOW_JSON, Flow

def newer(a: Path, b: Path) -> bool:
    """``a`` exists and is at least as new as ``b``."""
    return a.exists() and b.exists() and a.stat().st_mtime >= b.stat().st_mtime


def cmd_args(module, argv: list[str]) -> argparse.Namespace:
    """Parse ``argv`` with ``module``'s own argument definitions (so defaults stay the command's)."""
    p = argparse.ArgumentParser(prog=f"jaq {module.NAME}")
    module.add_arguments(p)
    return p.parse_args(argv)


def step_cosearch(cfg: dict, run: Path, args) -> tuple[str, str]:
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
    from jaq.accel_json import load_spec
    if not ((run / "retrained.pt").is_file() and (run / "weights" / "network.json").is_file()):
        return False
    spec = load_spec(run / "accel.json")
    return "top1" in (spec.accuracy or {})


def step_retrain(run: Path, args) -> tuple[str, str]:
    from jaq.search.retrain import run_retrain

    if not (run / "accel.json").is_file():
        raise JaqError(f"retrain needs {run / 'accel.json'}: the co-search step has not finished "
                       f"(jaq flow --config CONFIG --out {run} --resume)", "retrain")
    if args.resume and _retrained(run):
        from jaq.accel_json import load_spec
        acc = load_spec(run / "accel.json").accuracy or {}
        return "reused", f"test accuracy {100 * acc['top1']:.2f}% (retrained.pt, weights/ exist)"
    r = run_retrain(run, device=args.device, quiet=args.quiet)
    s = f"{r['epochs']} epochs: test accuracy {100 * r['test_acc']:.2f}%"
    if r.get("integer_test_acc") is not None:
        s += f", integer model {100 * r['integer_test_acc']:.2f}%"
    return "done", s


def _build_matches(run: Path, build: Path) -> bool:
    """The build in ``build`` was emitted for the accelerator, layers and tilings of ``run/accel.json``."""
    from jaq.accel_json import load_spec
    if not (build / "manifest.json").is_file() or not (build / "accel.json").is_file():
        return False
    try:
        a, b = load_spec(run / "accel.json"), load_spec(build / "accel.json")
    except JaqError:
        return False
    if a.accelerator is None or b.accelerator is None or a.accelerator.to_dict() != b.accelerator.to_dict():
        return False
    if [l.to_dict() for l in a.layers] != [l.to_dict() for l in b.layers]:
        return False
    return all(ta is None or (tb is not None and ta.to_dict() == tb.to_dict())
               for ta, tb in zip(a.tilings, b.tilings))


def step_emit(run: Path, build: Path, args) -> tuple[str, str]:
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
    rc = emit_rtl.run(cmd_args(emit_rtl, [str(accel), "-o", str(build), "--force"]))
    if rc:
        raise JaqError(f"jaq emit-rtl exited with {rc}", "emit-rtl")
    v = sum(f.stat().st_size for f in (build / "rtl").glob("*.v")) if (build / "rtl").is_dir() else 0
    n = len(list((build / "programs").glob("*.hex"))) if (build / "programs").is_dir() else 0
    return "done", f"{build}: {v / 1e6:.2f} MB of Verilog, {n} layer programs"


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
        rc = simulate.run(cmd_args(simulate, [str(build)]))
    rep = load_json(build / "sim" / "report.json")
    n = len(rep.get("layers", []))
    exact = sum(bool(l.get("bit_exact")) for l in rep.get("layers", []))
    cnt = sum(bool(l.get("counters_ok")) and bool(l.get("monitor_ok")) for l in rep.get("layers", []))
    return rc == 0, (f"every layer (random data): {exact}/{n} bit-exact, counters equal {cnt}/{n}; "
                     f"{rep.get('simulated_cycles')} cycles in {rep.get('sim_seconds')} s")


def step_simulate(run: Path, build: Path, args, flow: Flow) -> tuple[str, str]:
    if not (build / "manifest.json").is_file():
        raise JaqError(f"simulate needs the RTL build {build} (emit-rtl step): "
                       f"jaq emit-rtl {run / 'accel.json'} -o {build}", "simulate")
    sim_dir = build / "sim"
    network = (run / "retrained.pt").is_file()
    out = sim_dir / ("network.json" if network else "report.json")
    newest_input = max((p for p in (build / "manifest.json", run / "retrained.pt") if p.exists()),
                       key=lambda p: p.stat().st_mtime)
    if args.resume and newer(out, newest_input):
        from jaq.io import load_json
        ok = bool(load_json(out).get("ok"))
        flow.ok &= ok
        return "reused", f"{out} ({'agrees' if ok else 'MISMATCH'})"
    ok, summary = _simulate_network(run, build) if network else _simulate_layers(build)
    flow.ok &= ok
    return ("done" if ok else "mismatch"), summary
