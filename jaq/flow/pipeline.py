"""``jaq flow`` as a list of step objects (:data:`PIPELINE`): each has a ``name`` (one of
:data:`jaq.flow.record.STEPS`), ``skip(ctx)`` (a reason, or None to run), ``prepare(ctx)`` (untimed work before
the step: waiting for a background job) and ``run(ctx) -> (status, summary)``; :func:`run_pipeline` runs them in
order through :func:`jaq.flow.record.run_step` (timing, flow.json)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

from jaq.flow.background import Background, Synth, prebuild_child
from jaq.flow.record import OUTPUTS, STEPS, Flow, fmt_s, run_step
from jaq.flow.steps import step_cosearch, step_emit, step_retrain, step_simulate


@dataclass
class Context:
    """What the steps share: the resolved config, the run and build folders, the parsed arguments, the flow
    record, and the two background jobs the emit step starts (Yosys synthesis, the Verilator prebuild)."""

    cfg: dict
    run: Path
    build: Path
    args: Any
    flow: Flow
    log: Callable[[str], None] = print
    synth: Synth | None = None
    prebuild: Background | None = None


class FlowStep(Protocol):
    name: str

    def skip(self, ctx: Context) -> str | None: ...

    def prepare(self, ctx: Context) -> None: ...

    def run(self, ctx: Context) -> tuple[str, str]: ...


class _Step:
    name = ""

    def skip(self, ctx: Context) -> str | None:
        return None

    def prepare(self, ctx: Context) -> None:
        return None


class CoSearch(_Step):
    name = "co-search"

    def run(self, ctx: Context) -> tuple[str, str]:
        return step_cosearch(ctx.cfg, ctx.run, ctx.args)


class EmitRtl(_Step):
    """Emits the RTL, then starts synthesis and (unless ``--skip-sim``) the Verilator build in the background."""

    name = "emit-rtl"

    def run(self, ctx: Context) -> tuple[str, str]:
        ctx.synth = Synth(ctx.build, ctx.args.synth, ctx.args.synth_timeout)
        ctx.prebuild = Background(prebuild_child, ctx.build)
        status, summary = step_emit(ctx.run, ctx.build, ctx.args)
        if status == "reused" and (ctx.build / "synth" / "report.json").is_file():
            ctx.synth.reused = True
        else:
            ctx.synth.start()
        if not ctx.args.skip_sim:
            ctx.prebuild.start()  # the Verilator model builds while retrain trains
        return status, summary


class Retrain(_Step):
    name = "retrain"

    def run(self, ctx: Context) -> tuple[str, str]:
        return step_retrain(ctx.run, ctx.args)


class Simulate(_Step):
    name = "simulate"

    def skip(self, ctx: Context) -> str | None:
        return "--skip-sim" if ctx.args.skip_sim else None

    def run(self, ctx: Context) -> tuple[str, str]:
        pstatus, pmsg, psecs = ctx.prebuild.finish() if ctx.prebuild is not None else ("none", "", 0.0)
        status, summary = step_simulate(ctx.run, ctx.build, ctx.args, ctx.flow)
        if pstatus == "ok":
            summary += f"; {pmsg.split(' (')[0]} beside retrain in {fmt_s(psecs)}"
        return status, summary


class Report(_Step):
    """Renders the report, after waiting for synthesis (its outcome joins the emit step's summary)."""

    name = "report"

    def prepare(self, ctx: Context) -> None:
        _finish_synthesis(ctx)

    def run(self, ctx: Context) -> tuple[str, str]:
        from jaq.report import build_report
        res = build_report(ctx.run)
        missing = [m for m in res.missing if m != "flow"]
        return "done", f"{res.html} ({len(res.figures)} figures)" + (
            f"; not run: {', '.join(missing)}" if missing else "")


def _finish_synthesis(ctx: Context) -> None:
    if ctx.synth is None:
        return
    msg, secs = ctx.synth.finish()
    if ctx.synth.reused:
        msg, secs = f"synthesis reused ({ctx.build / 'synth' / 'report.json'})", 0.0
    emit_st = ctx.flow.step("emit-rtl")
    emit_st.summary += f"; {msg}" + (f" ({fmt_s(secs)} in the background)" if secs and "dropped" not in msg
                                     else "")
    emit_st.outputs = [o for o in OUTPUTS["emit-rtl"] if (ctx.run / o).exists()]
    ctx.flow.extra["synthesis"] = {"outcome": msg, "seconds": round(secs, 2)}
    ctx.log(f"    yosys: {msg}")
    ctx.flow.save()


#: The flow, in order (names equal :data:`jaq.flow.record.STEPS`).
PIPELINE: tuple[FlowStep, ...] = (CoSearch(), EmitRtl(), Retrain(), Simulate(), Report())
assert tuple(s.name for s in PIPELINE) == STEPS


def run_pipeline(ctx: Context, steps: tuple[FlowStep, ...] = PIPELINE) -> None:
    """Run ``steps`` in order; a skipped step is recorded as such with its reason."""
    for step in steps:
        reason = step.skip(ctx)
        if reason is not None:
            st = ctx.flow.step(step.name)
            st.status, st.summary, st.seconds = "skipped", reason, 0.0
            ctx.log(f"[{STEPS.index(step.name) + 1}/{len(STEPS)}] {step.name}: skipped ({reason})")
            continue
        step.prepare(ctx)
        run_step(ctx.flow, step.name, lambda s=step: s.run(ctx))
