"""jaq flow: argument and input errors (one line, exit 2), and the orchestration on a real tiny run.

The whole flow on configs/tiny.yaml is `make demo` (minutes); here a real micro search (2 epochs of 1 step on a
digits subset) is run once, its accelerator replaced by a small one (BatchTile re-tiles every layer, the real
accel.json writer saves it) so that emit-rtl is quick, then `jaq flow --resume` runs emit-rtl -> retrain ->
report with the search reused. The whole-network simulation on Verilator is the `verilator`-marked test at the
end.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from jaq import cli
from jaq.errors import JaqError

MICRO = """\
name: micro
seed: 0
threads: 1
data: {dataset: digits, augment: false, arch_fraction: 0.2, train_subset: 192, test_subset: 48}
space: tiny
search: {epochs: 2, warmup_epochs: 1, batch_size: 32, max_steps_per_epoch: 1, lambda: 0.1}
retrain: {epochs: 2, batch_size: 32, lr: 0.05, max_steps_per_epoch: 2}
"""


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("jaq flow: error:")
    return err


# ---------------------------------------------------------------------------------------------------------------
# Errors before anything runs
# ---------------------------------------------------------------------------------------------------------------
def test_needs_a_config(tmp_path, capsys):
    assert cli.main(["flow", "--out", str(tmp_path / "r")]) == 2
    assert "--config" in _one_line_error(capsys)


def test_resume_needs_something_to_resume(tmp_path, capsys):
    assert cli.main(["flow", "--resume", "--out", str(tmp_path / "none")]) == 2
    assert "nothing to resume" in _one_line_error(capsys)


def test_force_and_resume_exclude_each_other(tmp_path):
    with pytest.raises(SystemExit) as e:
        cli.main(["flow", "--config", "configs/tiny.yaml", "--out", str(tmp_path), "--force", "--resume"])
    assert e.value.code == 2


def test_non_empty_out_is_kept(tmp_path, capsys):
    cfg = tmp_path / "micro.yaml"
    cfg.write_text(MICRO)
    out = tmp_path / "run"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    assert cli.main(["flow", "--config", str(cfg), "--out", str(out), "--quiet"]) == 2
    err = _one_line_error(capsys)
    assert "--resume" in err and "--force" in err
    assert (out / "precious.txt").read_text() == "keep me"


def test_sweep_configs_are_refused(tmp_path, capsys):
    cfg = tmp_path / "sweep.yaml"
    cfg.write_text(MICRO + "sweep_lambda: [0.1, 1.0]\n")
    assert cli.main(["flow", "--config", str(cfg), "--out", str(tmp_path / "r")]) == 2
    assert "sweep_lambda" in _one_line_error(capsys)


def test_bad_config_value(tmp_path, capsys):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(MICRO.replace("epochs: 2, warmup", "epochs: 0, warmup"))
    assert cli.main(["flow", "--config", str(cfg), "--out", str(tmp_path / "r")]) == 2
    assert "search.epochs" in _one_line_error(capsys)


def test_each_step_names_its_missing_input(tmp_path):
    from jaq.commands import flow
    from jaq.flow import record, steps

    args = steps.cmd_args(flow, ["--config", "x.yaml", "--resume"])
    run = tmp_path / "run"
    run.mkdir()
    with pytest.raises(JaqError, match=r"retrain needs .*accel\.json: the co-search step has not finished"):
        steps.step_retrain(run, args)
    with pytest.raises(JaqError, match=r"emit-rtl needs .*accel\.json"):
        steps.step_emit(run, run / "build", args)
    f = record.Flow(run=run, config=None, steps=[record.Step(n) for n in record.STEPS], started="", t0=0.0)
    with pytest.raises(JaqError, match=r"simulate needs the RTL build .*build .*jaq emit-rtl"):
        steps.step_simulate(run, run / "build", args, f)


# ---------------------------------------------------------------------------------------------------------------
# The orchestration on a real micro run
# ---------------------------------------------------------------------------------------------------------------
def _small_accelerator(run: Path) -> None:
    """Replace the searched accelerator by a 4x4 one: BatchTile re-tiles every layer, costs and totals follow."""
    from jaq import accel_json as aj
    from jaq.hw.batchtile import batch_tile
    from jaq.hw.records import Accelerator

    spec = aj.load_spec(run / "accel.json")
    acc = Accelerator(pe_x=4, pe_y=4, act_buf_kb=64, wgt_buf_kb=64, out_buf_kb=64, dataflow="WS",
                      loop_order=("B", "OC", "OH", "OW", "IC"), clock_mhz=spec.accelerator.clock_mhz,
                      dram_bits_per_cycle=spec.accelerator.dram_bits_per_cycle,
                      dram_latency_cycles=spec.accelerator.dram_latency_cycles)
    choices = batch_tile(spec.layers, acc, weights=spec.objective_weights or (0.33, 0.33, 0.33))
    for e, c in zip(spec.network.layers, choices):
        e.tiling, e.predicted = c.tiling, aj.Predicted("native", c.cost)
    spec.accelerator = acc
    spec.totals = aj.Totals.from_costs([c.cost for c in choices], "native")
    aj.save(spec, run / "accel.json")


@pytest.fixture(scope="module")
def searched(tmp_path_factory) -> Path:
    from jaq.search.config import load_config
    from jaq.search.cosearch import run_cosearch

    d = tmp_path_factory.mktemp("flow")
    (d / "micro.yaml").write_text(MICRO)
    run = d / "run"
    run_cosearch(load_config(d / "micro.yaml"), run, quiet=True)
    _small_accelerator(run)
    return run


def test_flow_resume_runs_the_remaining_steps(searched, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(searched, run)
    argv = ["flow", "--out", str(run), "--resume", "--skip-sim", "--synth", "no", "--quiet"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    for i, name in enumerate(("co-search", "emit-rtl", "retrain"), 1):
        assert f"[{i}/5] {name}: " in out
    assert "[1/5] co-search: reused" in out and "[2/5] emit-rtl: done" in out and "[3/5] retrain: done" in out
    assert "[4/5] simulate: skipped (--skip-sim)" in out
    assert out.strip().splitlines()[-1] == f"report: {run / 'report' / 'report.html'}"
    fj = json.loads((run / "flow.json").read_text())
    assert [s["name"] for s in fj["steps"]] == ["co-search", "emit-rtl", "retrain", "simulate", "report"]
    assert [s["status"] for s in fj["steps"]] == ["reused", "done", "done", "skipped", "done"]
    assert all(s["seconds"] is not None for s in fj["steps"]) and fj["finished"] and fj["ok"]
    assert (run / "weights" / "network.json").is_file() and (run / "build" / "manifest.json").is_file()
    assert len(list((run / "build" / "programs").glob("*.hex"))) == len(
        json.loads((run / "accel.json").read_text())["network"]["layers"])
    html = (run / "report" / "report.html").read_text()
    assert 'id="flow"' in html and "emit-rtl" in html and "skipped" in html
    assert f"jaq simulate {run}/build" in html  # the simulation is "not run", with its command

    # again: everything is reused, the report is regenerated
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "[2/5] emit-rtl: reused" in out and "[3/5] retrain: reused" in out
    assert [s["status"] for s in json.loads((run / "flow.json").read_text())["steps"]] == [
        "reused", "reused", "reused", "skipped", "done"]


def test_failed_step_leaves_a_partial_report(searched, tmp_path, capsys, monkeypatch):
    """A step that fails is recorded in flow.json and the report of what exists is still written."""
    from jaq.commands import emit_rtl

    run = tmp_path / "run"
    shutil.copytree(searched, run)

    def broken(args):
        raise JaqError("the accelerator does not fit the instruction format (test)", "network.layers[0]")

    monkeypatch.setattr(emit_rtl, "run", broken)
    assert cli.main(["flow", "--out", str(run), "--resume", "--skip-sim", "--synth", "no", "--quiet"]) == 2
    cap = capsys.readouterr()
    assert "instruction format" in cap.err and len(cap.err.strip().splitlines()) == 1
    assert "report (partial, after the failure)" in cap.out
    fj = json.loads((run / "flow.json").read_text())
    assert [s["status"] for s in fj["steps"]] == ["reused", "failed", "pending", "pending", "pending"]
    assert not fj["ok"] and fj["finished"] is None
    assert (run / "report" / "report.html").is_file()


@pytest.mark.slow
@pytest.mark.verilator
def test_flow_simulates_the_whole_network(searched, tmp_path, capsys):
    """emit-rtl + the retrained network end to end on Verilator: logits equal, every layer bit-exact."""
    run = tmp_path / "run"
    shutil.copytree(searched, run)
    assert cli.main(["flow", "--out", str(run), "--resume", "--synth", "no", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "[4/5] simulate: done" in out and "logits equal" in out
    net = json.loads((run / "build" / "sim" / "network.json").read_text())
    assert net["ok"] and net["logits_equal"]
    n = len(json.loads((run / "accel.json").read_text())["network"]["layers"])
    assert len(net["layers"]) == n and all(l["bit_exact"] and l["counters_ok"] for l in net["layers"])
    html = (run / "report" / "report.html").read_text()
    assert f"{n}/{n} bit-exact" in html and "logits <span class=\"badge ok\">equal" in html


def test_resume_refuses_another_config(searched, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(searched, run)
    cfg = tmp_path / "micro.yaml"
    cfg.write_text(MICRO)
    assert cli.main(["flow", "--config", str(cfg), "--out", str(run), "--resume", "--epochs", "3", "--quiet"]) == 2
    err = _one_line_error(capsys)
    assert "search.epochs" in err and "--force" in err
    assert not (run / "retrained.pt").exists()


def _blocker(build: str, q) -> None:
    """A background job that never answers: it blocks on an event nobody sets, until the parent ends it."""
    import threading
    threading.Event().wait()


def _answer(build: str, q) -> None:
    """A background job that answers at once (with ``build``, the string the Background passes)."""
    q.put(("ok", f"answered {build}"))


class _Clock:
    """A clock the test advances by hand (Background's ``clock``)."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class _Timer:
    """Background's ``timer``: records its interval; ``fire()`` advances the clock by it and runs the callback, as
    the real timer does when the budget runs out. ``fire_on_start``: the budget runs out as soon as it is armed
    (nothing else happens meanwhile)."""

    made: list["_Timer"]

    def __init__(self, clock: _Clock, interval: float, fn, fire_on_start: bool = False) -> None:
        self.clock, self.interval, self.fn, self.fire_on_start = clock, interval, fn, fire_on_start
        self.daemon = self.started = self.cancelled = False

    @classmethod
    def factory(cls, clock: _Clock, fire_on_start: bool = False):
        made: list[_Timer] = []

        def make(interval, fn):
            made.append(cls(clock, interval, fn, fire_on_start))
            return made[-1]
        return make, made

    def start(self) -> None:
        self.started = True
        if self.fire_on_start:
            self.fire()

    def fire(self) -> None:
        assert self.started and not self.cancelled
        self.clock.t += self.interval
        self.fn()

    def cancel(self) -> None:
        self.cancelled = True


def test_background_job_budget():
    """A child over its budget is ended when the budget runs out (by the timer, not when the flow next looks) and
    reports a timeout at the budget; a quick one under its budget reports its message. Clock and timer are fakes
    advanced by hand: nothing here depends on how fast the machine is."""
    from jaq.flow.background import Background

    clock = _Clock()
    make, timers = _Timer.factory(clock)
    slow = Background(_blocker, Path("slow"), timeout=1.0, clock=clock, timer=make)
    fast = Background(_answer, Path("fast"), timeout=60.0, clock=clock, timer=make)
    slow.start()
    fast.start()
    assert [(t.interval, t.daemon, t.started) for t in timers] == [(1.0, True, True), (60.0, True, True)]
    assert slow.proc.is_alive()  # blocked on its event: over its budget once the budget runs out
    timers[0].fire()  # the budget runs out while the flow is busy elsewhere
    slow.proc.join()  # ended by the timer: nobody called finish
    assert slow.proc.exitcode is not None and slow.proc.exitcode < 0  # terminated, not returned
    clock.t += 5.0  # the flow looks later: the timeout is still reported at the budget
    assert slow.finish() == ("timeout", "", 1.0)
    assert timers[0].cancelled
    status, msg, secs = fast.finish()  # its timer never fires: it answers well inside its budget
    assert (status, msg, secs) == ("ok", "answered fast", 6.0) and timers[1].cancelled


def test_synthesis_grace_after_the_other_steps():
    """--synth auto: a synthesis still running when the other steps are done gets --synth-timeout more seconds
    (from then, not from its start), then is dropped with a line saying so; one that answers within the grace
    reports its result. Fake clock and timer (see test_background_job_budget)."""
    from jaq.flow.background import Synth

    clock = _Clock()
    make, timers = _Timer.factory(clock, fire_on_start=True)
    s = Synth(Path("x"), "auto", 1.0, clock=clock, timer=make)
    s.job.target = _blocker
    s.start()
    assert timers == []  # no budget while the other steps run
    clock.t += 100.0  # the other steps take 100 s
    assert s.job.proc.is_alive()
    msg, secs = s.finish()
    assert [t.interval for t in timers] == [1.0]  # the grace, armed when the other steps are done
    assert secs == 101.0 and not s.job.proc.is_alive()
    assert msg.startswith("synthesis dropped: not done 1 s after the other steps") and "--synth" in msg

    make, timers = _Timer.factory(clock)  # this grace never runs out
    s = Synth(Path("quick"), "auto", 1.0, clock=clock, timer=make)
    s.job.target = _answer
    s.start()
    clock.t += 3.0
    assert s.finish() == ("answered quick", 3.0) and timers[0].cancelled
    assert Synth(Path("x"), "no", 1.0).finish() == ("synthesis skipped (--synth no)", 0.0)


def test_pipeline_is_the_step_list_and_records_skips(tmp_path):
    """jaq flow is PIPELINE in STEPS order; run_pipeline runs prepare/run per step and records a skip's reason."""
    from types import SimpleNamespace

    from jaq.flow.pipeline import PIPELINE, Context, run_pipeline
    from jaq.flow.record import STEPS, Flow, Step

    assert tuple(s.name for s in PIPELINE) == STEPS
    calls = []

    class Fake:
        def __init__(self, name, skip=None):
            self.name, self._skip = name, skip

        def skip(self, ctx):
            return self._skip

        def prepare(self, ctx):
            calls.append(("prepare", self.name))

        def run(self, ctx):
            calls.append(("run", self.name))
            return "done", f"{self.name} ok"

    flow = Flow(run=tmp_path, config=None, steps=[Step(n) for n in STEPS], started="t", t0=0.0,
                log=lambda s: None)
    steps = tuple(Fake(n, "--skip-sim" if n == "simulate" else None) for n in STEPS)
    run_pipeline(Context(cfg={}, run=tmp_path, build=tmp_path / "build", args=SimpleNamespace(), flow=flow,
                         log=lambda s: None), steps)
    ran = [n for n in STEPS if n != "simulate"]
    assert calls == [c for n in ran for c in (("prepare", n), ("run", n))]
    assert flow.step("simulate").status == "skipped" and flow.step("simulate").summary == "--skip-sim"
    assert [flow.step(n).status for n in ran] == ["done"] * len(ran)
    assert json.loads((tmp_path / "flow.json").read_text())["steps"][0]["summary"] == "co-search ok"
