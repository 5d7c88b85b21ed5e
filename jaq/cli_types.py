"""Command-line checks shared by every subcommand: argparse ``type=`` helpers and output-path checks.

* ``finite_float`` / ``bounded_int`` / ``finite_float_list`` / ``verilog_identifier``: argparse turns the
  :class:`argparse.ArgumentTypeError` they raise into ``jaq CMD: error: argument --FLAG: ...`` on one line, exit
  code 2, before the command does anything (``--lambda nan`` fails at once, not after a minute).
* ``check_output_file`` / ``check_output_dir``: an output path that is a directory where a file is expected (or
  the reverse), a dangling symbolic link, unwritable, an existing output without ``--force``, or a folder holding
  the command's input is a one-line :class:`jaq.errors.JaqError`, raised before anything is written.
"""

from __future__ import annotations

import argparse
import math
import os
import re
from pathlib import Path
from typing import Callable, Iterable

from jaq.errors import JaqError

#: Largest seed any of the generators takes (torch, numpy and Python's ``random`` all accept 63 bits).
SEED_MAX = 2 ** 63 - 1
#: Verilog-2005 simple identifier without ``$`` (it also names a file in the build and appears in run.sh, so no
#: path separators, dots or shell characters).
VERILOG_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}\Z")
#: Verilog-2005 keywords most likely to be tried as a module name (a top module cannot be called so).
VERILOG_KEYWORDS = frozenset(
    "always and assign begin buf case default defparam disable else end endcase endfunction endmodule endtask "
    "for forever function if initial inout input integer module nand negedge nor not or output parameter posedge "
    "reg repeat signed supply0 supply1 task time tri wait wand while wire wor xnor xor generate endgenerate "
    "genvar localparam".split())


def _range_text(lo, hi) -> str:
    if lo is not None and hi is not None:
        return f"between {lo:g} and {hi:g}"
    if lo is not None:
        return f">= {lo:g}"
    return f"<= {hi:g}" if hi is not None else "finite"


def finite_float(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False
                 ) -> Callable[[str], float]:
    """A type accepting a finite float in ``[lo, hi]`` (``(lo, hi]`` with ``lo_open``); NaN/Infinity refused."""

    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(v):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number; give one {_range_text(lo, hi)}")
        if lo is not None and (v < lo or (lo_open and v == lo)):
            raise argparse.ArgumentTypeError(f"{text} is out of range: give a number {'>' if lo_open else '>='} "
                                             f"{lo:g}" + (f" and <= {hi:g}" if hi is not None else ""))
        if hi is not None and v > hi:
            raise argparse.ArgumentTypeError(f"{text} is out of range: give a number {_range_text(lo, hi)}")
        return v

    parse.__name__ = "number"  # argparse names the type in "invalid <name> value" messages
    return parse


def bounded_int(lo: int | None = None, hi: int | None = None) -> Callable[[str], int]:
    """A type accepting a decimal integer in ``[lo, hi]``."""

    def parse(text: str) -> int:
        t = text.strip()
        if not re.fullmatch(r"[+-]?\d{1,40}", t):
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number")
        v = int(t)
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            rng = (f"between {lo} and {hi}" if lo is not None and hi is not None
                   else f">= {lo}" if lo is not None else f"<= {hi}")
            raise argparse.ArgumentTypeError(f"{text} is out of range: give a whole number {rng}")
        return v

    parse.__name__ = "integer"
    return parse


def finite_float_list(lo: float | None = None, hi: float | None = None) -> Callable[[str], list[float]]:
    """A type accepting ``"0.05,0.5,2"``: one or more finite floats in ``[lo, hi]``."""
    one = finite_float(lo, hi)

    def parse(text: str) -> list[float]:
        parts = [x for x in text.replace(" ", "").split(",") if x]
        if not parts:
            raise argparse.ArgumentTypeError("needs one or more comma-separated numbers")
        return [one(x) for x in parts]

    parse.__name__ = "list"
    return parse


def verilog_identifier(text: str) -> str:
    """A Verilog module name (``[A-Za-z_][A-Za-z0-9_]*``, at most 128 characters, not a keyword): it also names
    files in the build, so ``../x`` and other paths are refused."""
    if not VERILOG_IDENT.match(text) or text in VERILOG_KEYWORDS:
        raise argparse.ArgumentTypeError(f"{text!r} is not a Verilog identifier: use letters, digits and _, "
                                         f"starting with a letter or _, not a keyword (e.g. jaq_accel)")
    return text


def _contains(outer: Path, inner: Path) -> bool:
    return inner == outer or outer in inner.parents


def _check_parent_writable(path: Path, flag: str) -> None:
    """The nearest existing ancestor of ``path`` is a writable directory (no dangling link on the way)."""
    q = path.parent
    while not q.exists():
        if q.is_symlink():
            raise JaqError(f"{q} is a dangling symbolic link, so {path} cannot be written; fix the link or choose "
                           f"another path", flag)
        q = q.parent
    if not q.is_dir():
        raise JaqError(f"{q} is a file, so {path} cannot be created; choose another path", flag)
    if not os.access(q, os.W_OK | os.X_OK):
        raise JaqError(f"{q} is not writable; choose another path", flag)


def check_output_file(path: str | os.PathLike, *, force: bool, flag: str) -> Path:
    """An output file: not a directory, not a dangling link, writable; an existing file only with ``force``."""
    p = Path(path)
    if p.is_symlink() and not p.exists():
        raise JaqError(f"{p} is a dangling symbolic link; remove it or choose another path", flag)
    if p.is_dir():
        raise JaqError(f"{p} is a directory; give a file path", flag)
    if p.exists():
        if not force:
            raise JaqError(f"{p} exists; pass --force to overwrite it or choose another path", flag)
        if not os.access(p, os.W_OK) and not os.access(p.parent, os.W_OK):
            raise JaqError(f"{p} is not writable; choose another path", flag)
    _check_parent_writable(p, flag)
    return p


def check_output_dir(path: str | os.PathLike, *, force: bool, flag: str, inputs: Iterable[str | os.PathLike] = (),
                     owned: Callable[[Path], bool] | None = None, what: str = "jaq output") -> Path:
    """An output directory that a command replaces as a whole. Refused: a file or dangling link, a folder holding
    an input or the current directory, a non-empty folder without ``force``, and with ``force`` one that
    ``owned`` (when given) does not recognise as ``what``."""
    p = Path(path)
    _check_dir_kind(p, flag)
    rp = p.resolve()
    for i in inputs:
        if _contains(rp, Path(i).resolve()):
            raise JaqError(f"{p} holds the input {i}, which writing the output would replace; choose another "
                           f"directory", flag)
    if _contains(rp, Path.cwd().resolve()):
        raise JaqError(f"{p} is the current directory or holds it; choose a directory of its own", flag)
    if p.is_dir() and any(p.iterdir()):
        if not force:
            raise JaqError(f"{p} is not empty; pass --force to replace it or choose another directory", flag)
        if owned is not None and not owned(p):
            raise JaqError(f"{p} is not a {what}, so --force will not replace it: delete it yourself or choose "
                           f"another directory", flag)
    _check_parent_writable(p, flag)
    return p


def _check_dir_kind(p: Path, flag: str) -> None:
    if p.is_symlink() and not p.exists():
        raise JaqError(f"{p} is a dangling symbolic link; remove it or choose another directory", flag)
    if p.exists() and not p.is_dir():
        raise JaqError(f"{p} exists and is not a directory; choose another directory", flag)


def check_writable_dir(path: str | os.PathLike, *, flag: str) -> Path:
    """A directory files are written into (kept, not replaced): a folder or creatable, writable, no dangling
    link."""
    p = Path(path)
    _check_dir_kind(p, flag)
    if p.is_dir():
        if not os.access(p, os.W_OK | os.X_OK):
            raise JaqError(f"{p} is not writable; choose another directory", flag)
    else:
        _check_parent_writable(p, flag)
    return p


__all__ = ["finite_float", "bounded_int", "finite_float_list", "verilog_identifier", "check_output_file",
           "check_output_dir", "check_writable_dir", "SEED_MAX"]
