"""``jaq`` command line: a thin dispatcher; each subcommand lives in ``jaq.commands.<name>``.

Every command module defines ``NAME``, ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``.
User errors are :class:`jaq.errors.JaqError`: printed on one line, exit code 2, no traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from jaq import __version__
from jaq.errors import EXIT_USAGE, JaqError

#: Subcommands in the order of the data path (config -> search -> hardware -> verification -> report).
COMMANDS = ("co_search", "retrain", "estimate", "emit_rtl", "simulate", "report", "flow")

DESCRIPTION = """\
JAQ: joint search of network architecture (FBNet supernet), low-bit mixed precision (2/4/8-bit weights and
activations) and a BitFusion-style accelerator, carried to Verilog and checked on Verilator.

data path:  config.yaml --co-search--> runs/NAME/accel.json --emit-rtl--> build/ --simulate--> report

outputs are never overwritten by accident: an existing non-empty output is refused unless --force
(co-search, flow: --out, a run directory jaq created, and only jaq's files are deleted; emit-rtl: -o, an
earlier build, replaced as a whole; estimate: -o FILE). Checkpoints are loaded as tensors only, never as code.
"""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors and exit code 2 (argparse's own convention)."""

    def error(self, message: str) -> None:  # noqa: D401
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _load_commands():
    return [importlib.import_module(f"jaq.commands.{name}") for name in COMMANDS]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="jaq", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"jaq {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for mod in _load_commands():
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=getattr(mod, "DESCRIPTION", mod.HELP),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args._run(args) or 0)
    except JaqError as e:
        print(f"jaq {args.command}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"jaq {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
