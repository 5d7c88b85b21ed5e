"""``jaq report RUN_DIR``: regenerate a run's report (HTML page + PNG figures + Markdown) from its files alone."""

from __future__ import annotations

NAME = "report"
HELP = "write RUN/report/report.html, report.md and figures/ from a run directory"
DESCRIPTION = """\
Reads a run directory (config.yaml, accel.json, metrics.jsonl, checkpoint history, retrain metrics, sweep.json,
RUN/build with the RTL and its Yosys area report, RUN/build/sim/*.json simulation reports) and writes:

  RUN/report/report.html   static page (inline CSS, figures as relative PNG files; --embed: base64 inside)
  RUN/report/report.md     Markdown summary
  RUN/report/figures/*.png the figures

Parts that have not been run (no retraining, no RTL, no simulation, no lambda sweep) are shown as "not run" with
the command that produces them. See docs/report.md.

examples:
  jaq report runs/demo
  jaq report runs/tiny --build build/ -o /tmp/tiny-report --embed
"""


def add_arguments(p) -> None:
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory (jaq co-search / jaq flow --out)")
    p.add_argument("-o", "--out", help="output folder (default RUN_DIR/report)")
    p.add_argument("--build", metavar="DIR", help="RTL build directory (default RUN_DIR/build)")
    p.add_argument("--sim", metavar="DIR", help="folder of the simulation reports (default BUILD/sim)")
    p.add_argument("--embed", action="store_true", help="embed the figures in the HTML as base64 (one file)")


def run(args) -> int:
    from jaq.cli_types import check_writable_dir
    from jaq.report import build_report
    if args.out is not None:  # report.html, report.md and figures/ are refreshed in place
        check_writable_dir(args.out, flag="--out")
    res = build_report(args.run_dir, args.out, build_dir=args.build, sim_dir=args.sim, embed=args.embed)
    print(f"report: {res.html}")
    print(f"        {res.markdown}, {len(res.figures)} figures in {res.out_dir / 'figures'}")
    if res.missing:
        print(f"  not run yet: {', '.join(res.missing)} (the page says which command produces each)")
    return 0
