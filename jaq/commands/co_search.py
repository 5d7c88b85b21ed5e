"""``jaq co-search``: joint search of network, bits and accelerator -> RUN/accel.json (+ checkpoints, plots)."""

from __future__ import annotations

from pathlib import Path

from jaq.cli_types import SEED_MAX, bounded_int, finite_float, finite_float_list
from jaq.errors import JaqError

NAME = "co-search"
HELP = "search network + mixed precision + accelerator jointly; writes RUN/accel.json"
DESCRIPTION = """\
Bilevel differentiable co-search (JAQ, AAAI 2025): supernet weights on 80% of the training split, alpha/beta and
the hardware generator on the other 20%, loss CE + lambda * E_HW. Writes into --out: config.yaml (resolved),
metrics.jsonl, checkpoint.pt (every epoch, atomic), plots/, subnet.json and accel.json, plus the run marker
.jaq-run. An existing non-empty --out is refused unless --resume (continue it) or --force (empty it and start
again); --force empties only a directory jaq created (it carries .jaq-run), deletes only what jaq wrote there,
and refuses the current directory or a run directory holding the --config file.

examples:
  jaq co-search --config configs/tiny.yaml --out runs/tiny
  jaq co-search --config configs/tiny.yaml --out runs/tiny --resume
  jaq co-search --config configs/cifar10.yaml --data-root ~/data --out runs/c10 --device cuda
  jaq co-search --config configs/tiny.yaml --out runs/sweep --sweep-lambda 0.05,0.5,2
  torchrun --nproc_per_node=4 -m jaq co-search --config configs/cifar100.yaml --out runs/c100 --device cuda
"""


def add_arguments(p) -> None:
    p.add_argument("--config", help="YAML config (configs/*.yaml); with --resume the run's own config is used")
    p.add_argument("--data-root", help="data folder (overrides data.root)")
    p.add_argument("--out", help="run directory (default runs/<config name>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--force", action="store_true",
                   help="start again in a non-empty --out that jaq created (.jaq-run marker): deletes only jaq's "
                        "files there; never the current directory or one holding --config")
    p.add_argument("--epochs", type=bounded_int(1, 10 ** 6), help="override search.epochs")
    p.add_argument("--lambda", dest="lam", type=finite_float(0, 1e9), metavar="LAMBDA",
                   help="override search.lambda (hardware-cost weight, finite, >= 0)")
    p.add_argument("--seed", type=bounded_int(0, SEED_MAX), help="override seed (0 .. 2^63-1)")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    p.add_argument("--threads", type=bounded_int(1, 1024), help="torch CPU threads per process (overrides threads)")
    p.add_argument("--sweep-lambda", type=finite_float_list(0, 1e9), metavar="L1,L2,...",
                   help="comma-separated lambdas: one run per value under --out, plus sweep.json and pareto.png")
    p.add_argument("--retrain", action="store_true", help="retrain each derived subnet after the search "
                                                          "(implied for sweeps' accuracy when set)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_set_argument(p)


def add_set_argument(p) -> None:
    """``--set KEY=VALUE`` (repeatable): any config field, typed and range-checked like the YAML file."""
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config field, dotted and repeatable (e.g. --set search.lr=0.05 --set "
                        "retrain.epochs=10); checked like the YAML; applied after the named flags")


def named_overrides(args, flags: dict[str, str | tuple[str, ...]]) -> dict:
    """{dotted key: value} of the named flags given (``flags``: attribute -> key or keys) and then of every
    ``--set``: the named flags are shorthands for ``--set``, with the same rule
    (:func:`jaq.search.config.apply_overrides`)."""
    from jaq.search.config import parse_set
    out = {}
    for attr, keys in flags.items():
        if getattr(args, attr, None) is not None:
            out.update({k: getattr(args, attr) for k in ((keys,) if isinstance(keys, str) else keys)})
    for text in getattr(args, "sets", None) or []:
        key, value = parse_set(text)
        out[key] = value
    return out


#: Named flags of this command -> the config key each one sets.
FLAGS = {"data_root": "data.root", "epochs": "search.epochs", "lam": "search.lambda", "seed": "seed",
         "threads": "threads"}


def _overrides(args, cfg: dict) -> dict:
    from jaq.search.config import apply_overrides
    return apply_overrides(cfg, named_overrides(args, FLAGS))


def preflight(cfg: dict, device: str | None) -> None:
    """Checks that need no data: the search space (preset and fields) and the device. Runs before the run
    directory is created, so a mistake here leaves nothing behind that would refuse the corrected re-run."""
    from jaq.search import model_api as api
    from jaq.search.cosearch import resolve_device

    api.make_space(cfg["space"])
    resolve_device(device)


def check_out(out: Path, args, sweep: bool) -> None:
    """--out, --resume and --force against the run directory, before anything is written."""
    from jaq.search.rundir import check_run_dir
    if sweep and args.resume:
        if not out.is_dir():
            raise JaqError(f"nothing to resume: {out} does not exist", "--resume")
        return
    check_run_dir(out, resume=args.resume and not sweep, force=args.force,
                  keep=[args.config] if args.config else [])


def run(args) -> int:
    from jaq.search.config import resolve_run_config
    from jaq.search.cosearch import run_cosearch
    from jaq.search.sweep import run_sweep

    if args.resume and args.force:
        raise JaqError("--resume and --force exclude each other", "--resume")
    cfg = resolve_run_config(args.config, args.out, args.resume)
    cfg = _overrides(args, cfg)
    preflight(cfg, args.device)
    out = Path(args.out or f"runs/{cfg['name']}")
    sweep = args.sweep_lambda or cfg.get("sweep_lambda")
    check_out(out, args, bool(sweep))
    if sweep:
        res = run_sweep(cfg, out, sweep, resume=args.resume, force=args.force, device=args.device,
                        quiet=args.quiet, retrain=args.retrain)
        print(f"sweep: {len(res['points'])} runs under {out}; {out / 'sweep.json'}, {out / 'pareto.png'}")
        for p in res["points"]:
            print(f"  lambda {p['lambda']:g}: {p['accuracy_kind']} {100 * p['accuracy']:.2f}%  "
                  f"EDAP {p['edap']:.4g} J*s*mm^2  bits {p['bits']}")
        return 0
    res = run_cosearch(cfg, out, resume=args.resume, force=args.force, device=args.device, quiet=args.quiet)
    spec = res.get("accel")
    if spec is not None:
        t = spec.totals
        a = spec.accelerator
        print(f"co-search done: {out / 'accel.json'}")
        print(f"  accelerator: {a.pe_x}x{a.pe_y} PEs, buffers act/wgt/out {a.act_buf_kb}/{a.wgt_buf_kb}/"
              f"{a.out_buf_kb} KB, {a.dataflow}, loop order {'>'.join(a.loop_order)}")
        print(f"  latency {t.latency_ms:.4g} ms, energy {t.energy_mj:.4g} mJ, area {t.area_mm2:.4g} mm^2, "
              f"EDAP {t.edap:.4g} J*s*mm^2")
        print("  bits (act/wgt per layer): " + " ".join(f"{l.act_bits}/{l.wgt_bits}" for l in spec.layers))
    if args.retrain:
        from jaq.search.retrain import run_retrain
        r = run_retrain(out, device=args.device, quiet=args.quiet)
        print(f"  retrained {r['epochs']} epochs: test accuracy {100 * r['test_acc']:.2f}%")
    return 0
