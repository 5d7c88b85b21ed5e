"""Verilator lint of the generated Verilog at every corner of the search space, with generation/lint times.

Covers what tests/test_rtl_lint.py leaves out for time: the 64x64 array in every dataflow (minutes each) and the
thin arrays in every dataflow. Run: python benchmarks/bench_lint.py [--only 64x64-WS ...]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from jaq.hw.records import Accelerator  # noqa: E402
from rtl_gen.top import emit_verilog  # noqa: E402
from test_rtl_lint import lint  # noqa: E402

CORNERS = {}
for (x, y) in ((3, 3), (3, 64), (64, 3), (64, 64)):
    for df in ("WS", "OS", "RS"):
        for kb in (64, 528):
            CORNERS[f"{x}x{y}-{df}-{kb}KB"] = dict(pe_x=x, pe_y=y, dataflow=df, act_buf_kb=kb, wgt_buf_kb=kb,
                                                    out_buf_kb=kb)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", help="substrings of corner names to run (default: all)")
    args = ap.parse_args(argv)
    names = [n for n in CORNERS if not args.only or any(s in n for s in args.only)]
    fails = 0
    for n in names:
        t0 = time.time()
        text = emit_verilog(Accelerator(**CORNERS[n]))
        t1 = time.time()
        with tempfile.TemporaryDirectory(prefix="jaq_lint_") as d:
            try:
                lint(text, Path(d))
                ok = "ok"
            except AssertionError as e:
                ok, fails = f"FAIL {str(e)[-300:]}", fails + 1
        print(f"{n:<22} verilog {len(text) / 1e6:6.2f} MB  generate {t1 - t0:6.1f} s  lint {time.time() - t1:6.1f} s"
              f"  {ok}", flush=True)
    return 1 if fails else 0


if __name__ == "__main__":
    raise SystemExit(main())
