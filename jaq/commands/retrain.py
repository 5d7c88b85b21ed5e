"""``jaq retrain RUN_DIR``: train the derived subnet at its fixed bits; accuracy -> accel.json, weights/."""

from __future__ import annotations

from jaq.cli_types import bounded_int

NAME = "retrain"
HELP = "retrain a co-search run's derived subnet (QAT); records test accuracy, exports integer weights"
DESCRIPTION = """\
Rebuilds the subnet recorded in RUN_DIR/subnet.json at its searched bits and trains it from scratch on the whole
training split (SGD momentum, cosine from retrain.lr = 0.01 over retrain.epochs). Writes RUN_DIR/retrained.pt,
RUN_DIR/retrain_metrics.jsonl, the integer weights + scales under RUN_DIR/weights/ (for jaq simulate), and the
test accuracy into RUN_DIR/accel.json (accuracy.top1).

example:
  jaq retrain runs/tiny --epochs 30
"""


def add_arguments(p) -> None:
    p.add_argument("run_dir", metavar="RUN_DIR", help="a finished co-search run directory")
    p.add_argument("--epochs", type=bounded_int(0, 10 ** 6), help="override retrain.epochs")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args) -> int:
    from jaq.search.retrain import run_retrain
    r = run_retrain(args.run_dir, epochs=args.epochs, device=args.device, quiet=args.quiet)
    print(f"retrained {r['epochs']} epochs in {r['seconds']:.1f} s: test accuracy {100 * r['test_acc']:.2f}%")
    if r.get("weights"):
        print(f"  integer weights + scales: {args.run_dir}/weights/")
    return 0
