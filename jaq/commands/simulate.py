"""``jaq simulate BUILD_DIR``: run the generated accelerator on Verilator (cocotb) layer by layer and check it.

Per layer: outputs bit-exact against the integer reference, RTL counters equal to the schedule walk, the model
equal to the walk (docs/verification.md). Exit 0 when everything agrees, 1 on any mismatch, 2 for a user error
(missing or invalid build directory).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from jaq.cli_types import bounded_int, check_output_file
from jaq.errors import JaqError

NAME = "simulate"
HELP = "simulate a `jaq emit-rtl` build on Verilator: bit-exact outputs, counters == cost model"
DESCRIPTION = __doc__


def add_arguments(p) -> None:
    p.add_argument("build_dir", help="directory written by `jaq emit-rtl` (accel.json, Verilog, programs)")
    p.add_argument("--layer", type=bounded_int(0, 10 ** 6), action="append", metavar="N",
                   help="simulate only layer N (0-based; repeatable); default: every layer")
    p.add_argument("--waves", action="store_true", help="record FST waves (needs liblz4-dev) into the report dir")
    p.add_argument("--stall", action="store_true",
                   help="stalling memory (random backpressure, delayed responses): outputs checked, cycles not")
    p.add_argument("--json", action="store_true", help="print the JSON report on stdout instead of the table")
    p.add_argument("--report", metavar="PATH", help="write the JSON report here (default BUILD_DIR/sim/report.json)")
    p.add_argument("--seed", type=bounded_int(0, 2 ** 31 - 1), default=0,
                   help="seed of the random layer data (0 .. 2^31-1, default 0)")


def run(args) -> int:
    from sim.build_dir import load_build_dir
    from sim.harness import LayerCase, print_report, simulate_layers, write_report

    b = load_build_dir(args.build_dir)
    out_dir = Path(args.build_dir) / "sim"
    report_path = Path(args.report) if args.report else out_dir / "report.json"
    check_output_file(report_path, force=True, flag="--report")  # a report is refreshed on every run
    idx = list(range(len(b.layers)))
    if args.layer:
        for n in args.layer:
            if not 0 <= n < len(b.layers):
                raise JaqError(f"layer {n} out of range 0..{len(b.layers) - 1}", "--layer")
        idx = sorted(set(args.layer))
    cases = [LayerCase(b.layers[i], b.tilings[i], name=b.layers[i].name or f"layer{i}") for i in idx]
    programs = [b.programs[i] for i in idx] if b.programs is not None else None
    report = simulate_layers(b.accel, cases, verilog=b.verilog, toplevel=b.toplevel, programs=programs,
                             stall=args.stall, waves=args.waves, workdir=out_dir / "work" if args.waves else None,
                             seed=args.seed, log_dir=out_dir)
    write_report(report, report_path)
    if args.json:
        json.dump(report.to_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print_report(report)
        print(f"report: {report_path}")
    return 0 if report.ok else 1
