"""Run reports: a static HTML page, its figures as PNG files and a Markdown summary, from a run directory alone.

Public API::

    from jaq.report import build_report
    res = build_report("runs/demo")          # -> ReportResult(html=..., markdown=..., figures={...})

Layout written (default ``RUN/report/``)::

    report.html      self-contained page: inline CSS, images referenced as relative PNG files (or embedded base64
                     with ``embed=True``); no network access
    report.md        Markdown summary (same tables, same figures)
    figures/*.png    every figure (matplotlib, Agg)

See docs/report.md for what each section shows and where its data comes from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from jaq.report.collect import collect, is_run_dir


@dataclass
class ReportResult:
    """Paths written by :func:`build_report` and the collected data (``data``)."""

    out_dir: Path
    html: Path
    markdown: Path
    figures: dict[str, Path] = field(default_factory=dict)
    data: dict = field(default_factory=dict, repr=False)
    missing: list[str] = field(default_factory=list)


def build_report(run_dir: str | Path, out_dir: str | Path | None = None, *, build_dir: str | Path | None = None,
                 sim_dir: str | Path | None = None, embed: bool = False) -> ReportResult:
    """Collect ``run_dir`` (:func:`jaq.report.collect.collect`), draw the figures and write ``report.html`` +
    ``report.md`` into ``out_dir`` (default ``RUN/report``). ``embed``: images as base64 in the HTML."""
    from jaq.io import atomic_write_text
    from jaq.report.figures import make_figures
    from jaq.report.render import render_html, render_markdown, view_model

    d = collect(run_dir, build_dir=build_dir, sim_dir=sim_dir)
    out = Path(out_dir) if out_dir is not None else Path(run_dir) / "report"
    out.mkdir(parents=True, exist_ok=True)
    figs = make_figures(d, out / "figures")
    html_p, md_p = out / "report.html", out / "report.md"
    atomic_write_text(html_p, render_html(d, figs, out, embed=embed))
    atomic_write_text(md_p, render_markdown(d, figs, out))
    _readable(html_p, md_p)
    present = view_model(d, {})["present"]
    missing = [k for k, v in present.items() if not v]
    return ReportResult(out_dir=out, html=html_p, markdown=md_p, figures=figs, data=d, missing=missing)


def _readable(*paths: Path) -> None:
    """Pages are for reading and serving: the usual file mode (0666 less the umask), not the temp file's 0600."""
    import os
    mask = os.umask(0)
    os.umask(mask)
    for p in paths:
        os.chmod(p, 0o666 & ~mask)


__all__ = ["build_report", "ReportResult", "collect", "is_run_dir"]
