"""Lambda sweeps: one co-search per lambda under ``OUT/lambda_<value>/``, then ``OUT/sweep.json`` (accuracy vs
EDAP, one point per lambda) and ``OUT/pareto.png``.

Accuracy is the retrained subnet's test accuracy when ``retrain`` is set (``jaq co-search --retrain``), else
the supernet's accuracy on the architecture split at the end of the search (labelled as such in the points).
With ``resume``, finished runs (accel.json present) are reused and interrupted ones continue from their
checkpoints.
"""

from __future__ import annotations

import json
from pathlib import Path

from jaq.errors import JaqError
from jaq.io import atomic_write_json


def run_sweep(cfg: dict, out: str | Path, lambdas: list[float], *, resume: bool = False, force: bool = False,
              device: str = "cpu", quiet: bool = False, retrain: bool = False) -> dict:
    from jaq.search import artifact, plots
    from jaq.search.cosearch import run_cosearch
    from jaq.search.retrain import run_retrain
    from jaq.search.rundir import ACCEL, CHECKPOINT, prepare_run_dir

    out = Path(out)
    if not resume:
        prepare_run_dir(out, resume=False, force=force)
    elif not out.is_dir():
        raise JaqError(f"nothing to resume: {out} does not exist", "--resume")
    points = []
    for lam in lambdas:
        sub = out / f"lambda_{lam:g}"
        c = json.loads(json.dumps(cfg))
        c["search"]["lambda"] = float(lam)
        c["sweep_lambda"] = None
        c["name"] = f"{cfg['name']}-lambda{lam:g}"
        if resume and (sub / ACCEL).is_file():
            pass
        else:
            run_cosearch(c, sub, resume=resume and (sub / CHECKPOINT).is_file(), force=False, device=device,
                         quiet=quiet)
        spec = artifact.read_accel(sub / ACCEL)
        acc_d = spec.accuracy or {}
        if retrain and "top1" not in acc_d:
            run_retrain(sub, device=device, quiet=quiet)
            spec = artifact.read_accel(sub / ACCEL)
            acc_d = spec.accuracy or {}
        kind = "test accuracy (retrained)" if "top1" in acc_d else "supernet accuracy (arch split)"
        acc = acc_d.get("top1", acc_d.get("supernet_arch_split"))
        t = spec.totals
        points.append({"lambda": float(lam), "run": str(sub), "accuracy": float(acc), "accuracy_kind": kind,
                       "edap": t.edap, "energy_mj": t.energy_mj, "latency_ms": t.latency_ms, "area_mm2": t.area_mm2,
                       "bits": [[l.act_bits, l.wgt_bits] for l in spec.layers],
                       "accelerator": spec.accelerator.to_dict()})
    atomic_write_json(out / "sweep.json", {"points": points})
    plots.pareto_plot(out / "pareto.png", points)
    return {"points": points}
