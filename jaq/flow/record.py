"""The flow's bookkeeping: step order, what each step leaves, and RUN/flow.json (status, seconds, summary)."""

from __future__ import annotations

import datetime as _dt
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

#: Step order. emit-rtl needs only the search's accel.json (accelerator, layers, tilings), not the retrained
#: weights, so it runs before retrain and the Verilator build + Yosys run in child processes while retrain trains.
STEPS = ("co-search", "emit-rtl", "retrain", "simulate", "report")
#: What each step leaves in the run directory (listed in flow.json when present).
OUTPUTS = {"co-search": ("config.yaml", "accel.json", "metrics.jsonl", "checkpoint.pt", "subnet.json", "plots"),
           "retrain": ("retrained.pt", "retrain_metrics.jsonl", "weights"),
           "emit-rtl": ("build/rtl", "build/programs", "build/manifest.json", "build/synth/report.json"),
           "simulate": ("build/sim/network.json", "build/sim/report.json"),
           "report": ("report/report.html", "report/report.md", "report/figures")}
FLOW_JSON = "flow.json"


@dataclass
class Step:
    """One step's record in flow.json: status done / reused / skipped / failed, wall seconds, a summary line."""

    name: str
    status: str = "pending"
    seconds: float | None = None
    summary: str = ""
    outputs: list[str] = field(default_factory=list)


@dataclass
class Flow:
    run: Path
    config: str | None
    steps: list[Step]
    started: str
    t0: float
    log: Callable[[str], None] = print
    ok: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def step(self, name: str) -> Step:
        return next(s for s in self.steps if s.name == name)

    def save(self, finished: bool = False) -> None:
        from jaq.io import atomic_write_json
        if not self.run.is_dir():
            return
        d = {"config": self.config, "command": "jaq " + " ".join(sys.argv[1:]) if sys.argv else None,
             "started": self.started,
             "finished": now() if finished else None, "total_seconds": round(time.perf_counter() - self.t0, 2),
             "ok": self.ok, "steps": [asdict(s) for s in self.steps], **self.extra}
        atomic_write_json(self.run / FLOW_JSON, d)


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def fmt_s(s: float) -> str:
    return f"{int(s // 60)} min {s % 60:04.1f} s" if s >= 60 else f"{s:.1f} s"


def run_step(flow: Flow, name: str, fn: Callable[[], tuple[str, str]]) -> None:
    """Run ``fn`` -> (status, summary) as step ``name``: header line, timing, summary line, flow.json update."""
    i = STEPS.index(name) + 1
    st = flow.step(name)
    flow.log(f"[{i}/{len(STEPS)}] {name} ...")
    t = time.perf_counter()
    try:
        status, summary = fn()
    except BaseException as e:
        st.status = "interrupted" if isinstance(e, KeyboardInterrupt) else "failed"
        st.seconds = round(time.perf_counter() - t, 2)
        st.summary = str(e).splitlines()[0][:300] if str(e) else type(e).__name__
        flow.ok = False
        flow.save()
        raise
    st.status, st.summary, st.seconds = status, summary, round(time.perf_counter() - t, 2)
    st.outputs = [o for o in OUTPUTS[name] if (flow.run / o).exists()]
    flow.save()
    flow.log(f"[{i}/{len(STEPS)}] {name}: {status} in {fmt_s(st.seconds)} -- {summary}")
