"""The flow's child processes: the Verilator model build and Yosys synthesis run beside the retrain step, with an
optional wall-clock budget on an injectable clock (tests advance it by hand)."""

from __future__ import annotations

import multiprocessing as mp
import time
from pathlib import Path
from typing import Any, Callable

from jaq.flow.record import fmt_s

def synth_child(build: str, q) -> None:  # pragma: no cover - runs in a child process
    """Synthesize BUILD's Verilog with Yosys (rtl_gen.synth) and write BUILD/synth/report.{json,txt}, as
    ``jaq emit-rtl --synth`` does."""
    _die_with_parent()
    try:
        from jaq.io import atomic_write_json, atomic_write_text, load_json
        from rtl_gen.synth import synthesize
        b = Path(build)
        man = load_json(b / "manifest.json")
        conf = load_json(b / "config.json")
        vtext = "".join((b / v).read_text() for v in man["verilog"])
        mem_bits = 32 * sum(int(conf["buffers"][n]["words32"]) for n in ("act", "wgt", "out"))
        rep = synthesize(vtext, man.get("toplevel") or conf.get("top") or "jaq_accel", b / "synth",
                         memory_bits=mem_bits)
        atomic_write_text(b / "synth" / "report.txt", rep.text())
        atomic_write_json(b / "synth" / "report.json", rep.to_dict())
        q.put(("ok", f"logic area {rep.logic_area_um2 * 1e-6:.4f} mm^2, {sum(rep.cells.values())} cells "
                     f"(+ {mem_bits // 8192} KB of buffers as SRAM macros)"))
    except BaseException as e:  # noqa: BLE001 - reported to the parent as a line
        q.put(("error", f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"))


def _die_with_parent() -> None:  # pragma: no cover - runs in a child process
    """Linux: have the kernel send SIGTERM to this process when the flow's process dies (killed flow, no orphan
    Yosys left running). Elsewhere a no-op."""
    try:
        import ctypes
        import signal
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGTERM))  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def prebuild_child(build: str, q) -> None:  # pragma: no cover - runs in a child process
    """Build the Verilator model of BUILD's Verilog into sim's content-hash cache (the simulate step then finds
    it; sim.verilator's file lock makes a concurrent request wait for this build instead of repeating it)."""
    _die_with_parent()
    try:
        import os
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        from sim.build_dir import load_build_dir
        from sim.harness import build_accelerator
        b = load_build_dir(build)
        sb = build_accelerator(b.accel, b.layers, verilog=b.verilog)
        q.put(("ok", f"Verilator model {'built' if sb.built else 'cached'} ({sb.build_dir})"))
    except BaseException as e:  # noqa: BLE001 - the simulate step reports a real failure itself
        q.put(("error", f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"))


class Background:
    """A function run in a child process (``spawn``: a clean interpreter) with an optional wall-clock budget.

    ``clock`` (seconds, default :func:`time.perf_counter`) and ``timer`` (a :class:`threading.Timer`-like factory
    ``timer(interval, fn)`` with ``daemon``, ``start()`` and ``cancel()``; default :class:`threading.Timer`) are
    injectable, so tests can run the budget on a clock they advance by hand."""

    def __init__(self, target, build: Path, timeout: float | None = None, nice: int = 0, *,
                 clock: Callable[[], float] = time.perf_counter, timer: Callable[..., Any] | None = None):
        if timer is None:
            import threading
            timer = threading.Timer
        self.target, self.build, self.timeout, self.nice = target, build, timeout, nice
        self.clock, self.make_timer = clock, timer
        self.timer = None
        self.timed_out: float | None = None  # seconds at which the budget ended the child
        self.proc = None
        self.q = None
        self.t0 = 0.0

    def elapsed(self) -> float:
        """Seconds since :meth:`start` on the job's clock."""
        return self.clock() - self.t0

    def start(self) -> None:
        ctx = mp.get_context("spawn")  # no torch threads or Verilator state inherited
        self.q = ctx.Queue()
        self.proc = ctx.Process(target=_niced, args=(self.nice, self.target, str(self.build), self.q), daemon=True)
        self.t0 = self.clock()
        self.proc.start()
        self._arm()

    def set_timeout(self, timeout: float | None) -> None:
        """A new budget (seconds from :meth:`start`); a started job's timer is re-armed for what is left of it."""
        self.timeout = timeout
        if self.proc is not None:
            self._arm()

    def _arm(self) -> None:
        """(Re)start the timer that ends the child when the budget runs out -- even while the flow is busy
        elsewhere."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.timeout is not None:
            self.timer = self.make_timer(max(0.0, self.timeout - self.elapsed()), self._expire)
            self.timer.daemon = True
            self.timer.start()

    def _expire(self) -> None:
        if self.proc is not None and self.proc.is_alive():
            if self.timed_out is None:
                self.timed_out = self.elapsed()
            self.proc.terminate()

    def finish(self, wait: bool = True) -> tuple[str | None, str, float]:
        """(status "ok"/"error"/"timeout"/None when never started, message, seconds since start)."""
        if self.proc is None:
            return None, "", 0.0
        if not wait:
            self.proc.join(0)
        elif self.timeout is None:
            self.proc.join()
        else:  # the budget's timer ends the child (and sets timed_out) when the budget runs out
            while self.timed_out is None and self.proc.is_alive():
                self.proc.join(0.1)
        if self.proc.is_alive():
            self._expire()
        if self.timer is not None:
            self.timer.cancel()
        if self.timed_out is not None:
            self.proc.join(5)
            return "timeout", "", self.timed_out
        secs = self.elapsed()
        try:
            status, msg = self.q.get(timeout=5)
        except Exception:  # noqa: BLE001
            return "error", f"ended without a result (exit code {self.proc.exitcode})", secs
        return status, msg, secs


def _niced(nice: int, target, build: str, q) -> None:  # pragma: no cover - runs in a child process
    if nice:
        import os
        try:
            os.nice(nice)
        except OSError:
            pass
    target(build, q)


class Synth:
    """Yosys synthesis of a build directory in a child process (niced: the flow's own steps come first). It is
    "affordable" when it ends while the other steps run or within ``grace`` seconds after them (``--synth
    auto``); ``--synth yes`` waits for it however long it takes."""

    def __init__(self, build: Path, mode: str, grace: float, *, clock: Callable[[], float] = time.perf_counter,
                 timer: Callable[..., Any] | None = None):
        self.mode = mode
        self.grace = grace
        self.job = Background(synth_child, build, None, nice=10, clock=clock, timer=timer)  # clock/timer: tests
        self.reused = False  # a previous run's synth/report.json is kept (--resume)

    def start(self) -> None:
        if self.mode != "no":
            self.job.start()

    def finish(self) -> tuple[str, float]:
        """Wait (within the budget) and return (one-line outcome, seconds)."""
        if self.mode == "no":
            return "synthesis skipped (--synth no)", 0.0
        if self.mode == "auto" and self.job.proc is not None:
            self.job.set_timeout(self.job.elapsed() + self.grace)  # from now: the grace
        status, msg, secs = self.job.finish()
        if status is None:
            return "synthesis not started", 0.0
        if status == "timeout":
            return (f"synthesis dropped: not done {self.grace:.0f} s after the other steps ({fmt_s(secs)} in all; "
                    f"run `jaq emit-rtl ... --synth` alone or raise --synth-timeout)"), secs
        return (msg if status == "ok" else f"synthesis failed: {msg}"), secs
