"""``jaq estimate FILE``: per-layer cycles, energy, access counts and tilings of a network on an accelerator.

FILE is an ``accel.json`` or a "layers + accelerator" YAML of the same structure (jaq.accel_json). Layers with a
pinned ``tiling`` are evaluated as given; the others (all of them with ``--search-tiles``) get BatchTile's choice
(native mode: jaq.hw.batchtile over the accelerator's dataflow and loop order; bitfusion mode: BitFusion's own
search, jaq.hw.bitfusion.search_bitfusion). docs/cost-model.md explains both modes.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass, field
from typing import Any, Sequence

from jaq.cli_types import check_output_file
from jaq.accel_json import MODES, AccelSpec, LayerEntry, Predicted, Provenance, Totals, load_spec, save
from jaq.errors import JaqError
from jaq.hw.objective import DEFAULT_WEIGHTS
from jaq.hw.records import Cost, Layer, Tiling

NAME = "estimate"
HELP = "predict cycles, energy, access counts and area of a network's layers (accel.json or YAML)"
DESCRIPTION = """\
Predict per-layer cycles, energy, access counts and tilings, and the network's totals (latency, energy, area,
EDAP), for the network and accelerator of FILE (an accel.json, or a YAML with `layers:` and `accelerator:`).

Pinned per-layer tilings are evaluated as given; layers without one get BatchTile's best tiling
(--search-tiles: every layer). --mode picks the cost model: `native` (the execution model the generated RTL
implements, docs/execution-model.md) or `bitfusion` (a reproduction of BitFusion's published simulator,
docs/cost-model.md). Bad input is reported on one line naming the field (exit code 2).

examples:
  jaq estimate examples/small_net.accel.json
  jaq estimate examples/bitfusion_reference.yaml --search-tiles
  jaq estimate examples/mobilenet_block.yaml --mode bitfusion --json
  jaq estimate runs/demo/accel.json --explain
"""



def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", metavar="FILE", help="accel.json or a YAML file with layers + accelerator")
    p.add_argument("--mode", choices=MODES, default=None,
                   help="cost model: native (RTL's execution model) or bitfusion (BitFusion simulator); "
                        "default: the file's `mode`, else native")
    p.add_argument("--search-tiles", action="store_true",
                   help="run BatchTile for every layer, ignoring pinned tilings")
    p.add_argument("--weights", metavar="lE,lL,lA", default=None,
                   help="BatchTile objective lE*E[mJ] + lL*L[ms] + lA*A[mm2] (default: the file's "
                        "objective_weights, else 0.33,0.33,0.33; bitfusion mode without --weights uses "
                        "BitFusion's objective: minimum cycles, then energy)")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of tables")
    p.add_argument("--explain", action="store_true",
                   help="also print the energy/area constants with their sources and native vs bitfusion "
                        "results side by side")
    p.add_argument("-o", "--output", metavar="PATH", default=None,
                   help="write FILE back as accel.json with the tilings, predictions and totals filled in "
                        "(an existing PATH only with --force)")
    p.add_argument("--force", action="store_true", help="with -o: overwrite an existing PATH")


# ---------------------------------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------------------------------

@dataclass
class LayerResult:
    index: int
    entry: LayerEntry
    tiling: Tiling
    cost: Cost
    source: str  # "pinned" or "BatchTile"


@dataclass
class Evaluation:
    mode: str
    layers: list[LayerResult]
    totals: Totals
    note: str = ""
    hardware: dict[str, Any] = field(default_factory=dict)


def parse_weights(text: str | None) -> tuple[float, float, float] | None:
    if text is None:
        return None
    parts = [p for p in text.replace(" ", "").split(",") if p != ""]
    try:
        vals = tuple(float(p) for p in parts)
    except ValueError:
        raise JaqError(f"{text!r} is not three numbers lE,lL,lA (e.g. 0.33,0.33,0.33)", "--weights") from None
    if len(vals) != 3 or any(v < 0 or math.isnan(v) or math.isinf(v) for v in vals) or not any(vals):
        raise JaqError(f"{text!r} must be three non-negative numbers lE,lL,lA, not all zero", "--weights")
    return vals  # type: ignore[return-value]


def _hw_dict(spec: AccelSpec, mode: str) -> dict[str, Any]:
    if mode == "bitfusion":
        return {"bitfusion": spec.bitfusion_config().to_dict()}
    return {"accelerator": spec.accelerator.to_dict()} if spec.accelerator is not None else {}


def evaluate(spec: AccelSpec, mode: str, search_tiles: bool = False,
             weights: tuple[float, float, float] | None = None) -> Evaluation:
    """Cost of every layer of ``spec`` in ``mode`` (pinned tilings as given, the others searched)."""
    layers = spec.layers
    pinned = {} if search_tiles else {i: t for i, t in enumerate(spec.tilings) if t is not None}
    if mode == "bitfusion":
        results = _evaluate_bitfusion(spec, layers, pinned, weights)
        area = results[0].cost.area_mm2
    else:
        if spec.accelerator is None:
            raise JaqError("missing: native mode needs an accelerator in the search space (this file has only a "
                           "bitfusion: configuration); add accelerator: or use --mode bitfusion", "accelerator")
        from jaq.hw.batchtile import batch_tile
        choices = batch_tile(layers, spec.accelerator, weights=weights or DEFAULT_WEIGHTS, mode="native",
                             loop_orders="accel", dataflows="accel", pinned=pinned)
        results = [LayerResult(i, e, c.tiling, c.cost, "pinned" if i in pinned else "BatchTile")
                   for i, (e, c) in enumerate(zip(spec.network.layers, choices))]
        area = results[0].cost.area_mm2
    totals = Totals.from_costs([r.cost for r in results], mode=mode, area_mm2=area)
    return Evaluation(mode=mode, layers=results, totals=totals, hardware=_hw_dict(spec, mode))


def _evaluate_bitfusion(spec: AccelSpec, layers: Sequence[Layer], pinned: dict[int, Tiling],
                        weights) -> list[LayerResult]:
    from jaq.hw.bitfusion import check_tiling_fits, estimate_bitfusion_many, search_bitfusion
    cfg = spec.bitfusion_config()
    for i, t in pinned.items():
        check_tiling_fits(layers[i], cfg, t, f"layers[{i}].tiling")
    out: list[LayerResult | None] = [None] * len(layers)
    pin_idx = sorted(pinned)
    if pin_idx:
        costs = estimate_bitfusion_many([layers[i] for i in pin_idx], cfg, [pinned[i] for i in pin_idx])
        for i, c in zip(pin_idx, costs):
            out[i] = LayerResult(i, spec.network.layers[i], pinned[i], c, "pinned")
    todo = [i for i in range(len(layers)) if i not in pinned]
    if todo:
        try:
            choices = search_bitfusion([layers[i] for i in todo], cfg, weights=weights)
        except JaqError as e:  # re-number the layer in the error to the file's index
            if e.field and e.field.startswith("layers["):
                j = int(e.field[7:e.field.index("]")])
                raise JaqError(str(e).split(": ", 1)[1], f"layers[{todo[j]}]") from None
            raise
        for i, c in zip(todo, choices):
            out[i] = LayerResult(i, spec.network.layers[i], c.tiling, c.cost, "BatchTile")
    return out  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------------------------

def _order_str(t: Tiling) -> str:
    return ">".join(t.loop_order)


def _tiling_str(t: Tiling) -> str:
    return f"ic{t.t_ic} oc{t.t_oc} {t.t_oh}x{t.t_ow} {_order_str(t)}"


def _onchip_bits(c: Cost) -> int:
    return sum(v for k, v in c.accesses.items() if k.endswith("_bits") and "_buf_" in k)


def _layer_label(r: LayerResult) -> str:
    from rich.markup import escape

    e = r.entry
    return escape(e.layer.name or (f"{e.op}" if e.op else "") or f"layer{r.index}")


def _shape_str(l: Layer) -> str:
    g = f" g{l.groups}" if l.groups > 1 else ""
    return f"{l.kind} {l.in_ch}->{l.out_ch} {l.out_h}x{l.out_w} k{l.kernel}s{l.stride}{g} a{l.act_bits}w{l.wgt_bits}"


def _fmt_int(v: float) -> str:
    return f"{int(v):,}"


def result_dict(ev: Evaluation, path: str) -> dict[str, Any]:
    return {
        "file": path, "mode": ev.mode, **ev.hardware,
        "layers": [{"index": r.index, "name": r.entry.layer.name, "op": r.entry.op, "block": r.entry.block,
                    "layer": r.entry.layer.to_dict(), "tiling": r.tiling.to_dict(), "tiling_source": r.source,
                    "cost": r.cost.to_dict()} for r in ev.layers],
        "totals": ev.totals.to_dict(),
    }


def _print_tables(ev: Evaluation, path: str, console) -> None:
    from rich.table import Table

    from rich.markup import escape

    t = Table(title=escape(f"{path} — {ev.mode} mode"), title_justify="left")
    for col, just in (("#", "right"), ("layer", "left"), ("shape", "left"), ("tiling (tiles, loop order)", "left"),
                      ("src", "left"), ("cycles", "right"), ("energy uJ", "right"), ("DRAM rd bits", "right"),
                      ("DRAM wr bits", "right"), ("on-chip bits", "right")):
        t.add_column(col, justify=just)
    for r in ev.layers:
        c = r.cost
        t.add_row(str(r.index), _layer_label(r), _shape_str(r.entry.layer), _tiling_str(r.tiling), r.source,
                  _fmt_int(c.cycles), f"{c.energy_total_pj * 1e-6:,.3f}", _fmt_int(c.accesses.get("dram_rd_bits", 0)),
                  _fmt_int(c.accesses.get("dram_wr_bits", 0)), _fmt_int(_onchip_bits(c)))
    console.print(t)
    tot = ev.totals
    # energy by component over all layers
    comp: dict[str, float] = {}
    for r in ev.layers:
        for k, v in r.cost.energy_pj.items():
            comp[k] = comp.get(k, 0.0) + v
    parts = ", ".join(f"{k} {v * 1e-6:,.3f}" for k, v in comp.items())
    console.print(f"totals ({ev.mode}): {tot.cycles:,} cycles = {tot.latency_ms:.6f} ms, energy "
                  f"{tot.energy_mj:.6f} mJ, area {tot.area_mm2:.4f} mm², EDAP {tot.edap:.4e} J·s·mm²")
    console.print(f"energy by component (uJ): {parts}")


def _explain(spec: AccelSpec, ev: Evaluation, args, weights_arg, console, as_json: bool) -> dict[str, Any]:
    """Constants with sources and native vs bitfusion side by side for the file's layers (each mode with the
    weights ``run`` would give it)."""
    from jaq.hw import bitfusion as BF
    from jaq.hw import constants as C

    other_mode = "bitfusion" if ev.mode == "native" else "native"
    note = ""
    if other_mode == "native" and spec.accelerator is None:
        # validated-off path: the native model on the BitFusion configuration, at the bitfusion mode's tilings
        other = _native_offspace(spec, ev)
        note = ("native figures on the BitFusion configuration (outside the accelerator search space: evaluated "
                "directly on the batched model, dataflow WS, DRAM latency 0) at the bitfusion mode's tilings")
    else:
        w = weights_arg if other_mode == "bitfusion" else (weights_arg or spec.objective_weights)
        other = evaluate(spec, other_mode, search_tiles=args.search_tiles, weights=w)
    by_mode = {ev.mode: ev, other.mode: other}
    nat, bf = by_mode["native"], by_mode["bitfusion"]
    cfg = spec.bitfusion_config()
    data = {"native": result_dict(nat, args.file), "bitfusion": result_dict(bf, args.file), "note": note,
            "constants": {"native": [vars(c) for c in C.all_constants()],
                          "bitfusion": BF.constants_table(cfg)}}
    if as_json:
        return data
    console.print()
    console.print(C.render_table(spec.accelerator) if spec.accelerator is not None else C.render_table(),
                  markup=False, highlight=False)
    console.print()
    console.print(BF.render_constants(cfg), markup=False, highlight=False)
    console.print()
    from rich.table import Table
    t = Table(title="native vs bitfusion (each mode: pinned tilings as given, others its own search)",
              title_justify="left")
    for col in ("#", "layer", "cycles native", "cycles bitfusion", "uJ native", "uJ bitfusion",
                "DRAM bits native", "DRAM bits bitfusion", "tiling native", "tiling bitfusion"):
        t.add_column(col, justify="left" if col in ("layer", "tiling native", "tiling bitfusion") else "right")
    for rn, rb in zip(nat.layers, bf.layers):
        dn = rn.cost.accesses.get("dram_rd_bits", 0) + rn.cost.accesses.get("dram_wr_bits", 0)
        db = rb.cost.accesses.get("dram_rd_bits", 0) + rb.cost.accesses.get("dram_wr_bits", 0)
        t.add_row(str(rn.index), _layer_label(rn), _fmt_int(rn.cost.cycles), _fmt_int(rb.cost.cycles),
                  f"{rn.cost.energy_total_pj * 1e-6:,.3f}", f"{rb.cost.energy_total_pj * 1e-6:,.3f}",
                  _fmt_int(dn), _fmt_int(db), _tiling_str(rn.tiling), _tiling_str(rb.tiling))
    console.print(t)
    for ev_ in (nat, bf):
        tt = ev_.totals
        console.print(f"{ev_.mode:>9}: {tt.cycles:,} cycles, {tt.latency_ms:.6f} ms, {tt.energy_mj:.6f} mJ, "
                      f"{tt.area_mm2:.4f} mm², EDAP {tt.edap:.4e} J·s·mm²")
    if note:
        console.print(f"note: {note}")
    console.print("why they differ: docs/cost-model.md, section \"Native vs BitFusion mode\" (overlap and double "
                  "buffering, array fill/drain, access counting, halo reuse, bank energies, area overhead).")
    return data


def _native_offspace(spec: AccelSpec, ev_bf: Evaluation) -> Evaluation:
    import torch

    from jaq.hw.batch import AccelBatch, LayerBatch, TileBatch
    from jaq.hw.batch import DTYPE
    from jaq.hw.model import cost_row, estimate

    cfg = spec.bitfusion_config()
    ab = cfg.to_accel_batch()
    ab = AccelBatch(**{**{k: getattr(ab, k) for k in AccelBatch.__dataclass_fields__},
                       "dram_latency_cycles": torch.zeros(1, dtype=DTYPE)})
    tilings = [r.tiling for r in ev_bf.layers]
    cb = estimate(LayerBatch.from_layers(spec.layers), ab, TileBatch.from_tilings(tilings), mode="native")
    res = []
    for r in ev_bf.layers:
        c = cost_row(cb, r.index)
        if not c.legal:
            raise JaqError(f"the bitfusion mode's tiling {_tiling_str(r.tiling)} does not fit the native model's "
                           "single-buffered lines on this configuration; give an accelerator: for --explain",
                           f"layers[{r.index}].tiling")
        res.append(LayerResult(r.index, r.entry, r.tiling, c, r.source))
    totals = Totals.from_costs([r.cost for r in res], mode="native", area_mm2=res[0].cost.area_mm2)
    return Evaluation(mode="native", layers=res, totals=totals, hardware={"bitfusion": cfg.to_dict()})


def _write_back(spec: AccelSpec, ev: Evaluation, path: str, weights) -> None:
    for r in ev.layers:
        r.entry.tiling = r.tiling
        r.entry.predicted = Predicted(mode=ev.mode, cost=r.cost)
    spec.mode = ev.mode
    spec.totals = ev.totals
    if weights is not None:
        spec.objective_weights = weights
    if spec.provenance.created is None:
        fresh = Provenance.now(command="jaq estimate")
        spec.provenance.created, spec.provenance.code_version = fresh.created, fresh.code_version
    save(spec, path)


def run(args: argparse.Namespace) -> int:
    import torch

    # The batches here are element-wise work on <= 400k rows: one thread is as fast on an idle machine and far
    # faster on a loaded one (intra-op threads spin against other processes). Restored afterwards.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _run(args)
    finally:
        torch.set_num_threads(threads)


def _run(args: argparse.Namespace) -> int:
    weights_arg = parse_weights(args.weights)
    if args.output:
        check_output_file(args.output, force=args.force, flag="--output")
    spec = load_spec(args.file)
    mode = args.mode or spec.mode
    # native BatchTile always uses weights; bitfusion uses BitFusion's lexicographic objective unless asked
    weights = weights_arg or (spec.objective_weights if mode == "native" else None)
    ev = evaluate(spec, mode, search_tiles=args.search_tiles, weights=weights)
    from rich.console import Console
    console = Console(file=sys.stdout, width=200 if not sys.stdout.isatty() else None)
    doc = result_dict(ev, args.file)
    if not args.json:
        _print_tables(ev, args.file, console)
    if args.explain:
        expl = _explain(spec, ev, args, weights_arg, console, args.json)
        doc["explain"] = expl
    if args.output:
        _write_back(spec, ev, args.output, weights)
        if not args.json:
            console.print(f"wrote {args.output}", markup=False)
    if args.json:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    return 0
