"""`grooverack run`: the module in real time on a board.

`--board sim` plays the virtual patch of `grooverack sim` on the wall clock, with the threads
the style guide asks for: the loop thread applies each input change when its time comes and
asks the engine for the outputs of the next 20 ms (`advance`); a writer thread only moves data:
it sleeps to ~0.5 ms before each queued output, spins to its time, writes it and records the
scheduled and actual times (`--timing FILE`); the engine generates in its own worker thread
(`Engine(threaded=True)`). `--rt` gives the three threads SCHED_FIFO (writer > loop > worker) and
locks memory, as the Pi service does. Other boards are run by the back end module of their kind
(`pi` -> io.panel, `es9` -> io.es9, `midi` -> io.midi), each of which provides
`run_backend(board, settings, args) -> int`.
"""

from __future__ import annotations

import argparse
import gc
import heapq
import importlib
import itertools
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from grooverack.config import CONTROLS, SCHEMA, Settings
from grooverack.io.patch import OutputRecorder, OutputRow, build_patch, pot_position
from grooverack.io.sim import (
    DirectBoard,
    add_patch_arguments,
    make_board,
    make_engine,
    make_settings,
)
from grooverack.io.sources import SourceError, load_controls, load_source

SPIN_S = 0.0005  # sleep to this long before a deadline, then spin (sleep overshoots ~0.1 ms)
RT_SPIN_S = 0.0003  # under SCHED_FIFO a sleep overshoots far less (p99 ~60 us here)
SPIN_MIN_S = 0.0001  # the adaptive spin: 2 x the worst of the last WAKES sleep overshoots,
WAKES = 64  # within SPIN_MIN_S..the starting spin
LOOKAHEAD_S = 0.020  # the loop asks the engine for events this far ahead
WAKE_MARGIN_S = 0.008  # and wakes (plain sleep, no spin) this long before the end of that
START_DELAY_S = 0.05  # time 0 of the patch is this long after the loop is ready
SWITCH_S = 0.0001  # GIL hand-over interval: the loop waits at most this long for the worker
GENERATOR_THREAD = "grooverack-generator"  # the engine's worker thread (engine/generator.py)
BACKENDS = {"pi": "grooverack.io.panel", "es9": "grooverack.io.es9", "midi": "grooverack.io.midi"}

_clock = time.perf_counter  # CLOCK_MONOTONIC on Linux, ns resolution


class OutputWriter(OutputRecorder):
    """The output side of the real-time loop: a thread that only moves data.

    `write(time, ...)` (called by the board from the loop thread, ahead of time) queues an
    output; the writer thread sleeps to `spin` before each queued output's time (patch time 0 =
    `t0` on `perf_counter`; `spin` adapts to twice the worst recent sleep overshoot, at most its
    starting value), spins to it, writes it (here: records it) and keeps the
    `(scheduled, actual)` patch times in `timing`. The loop's engine work never delays a write
    by more than one GIL hand-over.
    """

    def __init__(self, t0: float, spin: float = SPIN_S, priority: int | None = None) -> None:
        super().__init__()
        self.t0 = t0
        self.spin = spin
        self.priority = priority
        self.timing: list[tuple[float, float]] = []
        self._queue: list[tuple[float, int, OutputRow]] = []
        self._seq = 0
        self._cond = threading.Condition()
        self._closing = False
        self.cpu_s = 0.0
        self._thread = threading.Thread(target=self._run, name="grooverack-writer", daemon=True)
        self._thread.start()

    def write(self, time: float, output: int, kind: str, volts: float,
              voice: int | None = None) -> None:
        row = OutputRow(float(time), int(output), str(kind), float(volts), voice)
        with self._cond:
            earliest = not self._queue or row.time < self._queue[0][0]
            heapq.heappush(self._queue, (row.time, self._seq, row))
            self._seq += 1
            if earliest:  # the writer may be asleep waiting for a later one
                self._cond.notify()

    def close(self) -> None:
        """Write everything queued, then stop the thread."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join()

    def _run(self) -> None:
        if self.priority is not None:
            set_fifo(self.priority, "output writer")
        cond, queue, t0, spin = self._cond, self._queue, self.t0, self.spin
        overshoots: deque[float] = deque([spin / 2] * WAKES, maxlen=WAKES)
        cpu0 = time.thread_time()
        while True:
            with cond:
                while not queue and not self._closing:
                    cond.wait()
                if not queue:
                    break
                deadline = t0 + queue[0][0]
                remaining = deadline - _clock()
                if remaining > spin:  # woken early by a sooner output, or on time: look again
                    wake = deadline - spin
                    if not cond.wait(remaining - spin):  # timed out: learn how late it woke
                        overshoots.append(_clock() - wake)
                        spin = min(max(2 * max(overshoots), SPIN_MIN_S), self.spin)
                    continue
            now = _clock()
            while now < deadline:
                now = _clock()
            with cond:
                _, _, row = heapq.heappop(queue)
            actual = _clock() - t0
            self.rows.append(row)
            self.timing.append((row.time, actual))
        self.cpu_s = time.thread_time() - cpu0


def set_fifo(priority: int, what: str, native_id: int = 0) -> bool:
    """SCHED_FIFO `priority` for a thread (0 = the calling one); says so when not permitted."""
    try:
        os.sched_setscheduler(native_id, os.SCHED_FIFO, os.sched_param(priority))
    except (OSError, AttributeError) as exc:
        print(f"grooverack run: {what} stays at normal priority ({exc})", file=sys.stderr)
        return False
    return True


def realtime() -> bool:
    """Locks memory and gives the loop thread SCHED_FIFO one step below the writer, and the
    engine's generator worker one more step below: a worker at normal priority that other
    processes preempt while it holds the GIL would hold up the loop and the writer too
    (priority inversion through the GIL). Returns whether the loop got SCHED_FIFO."""
    from grooverack.service import RT_PRIORITY, Service

    Service.lock_memory()
    if not Service().realtime(RT_PRIORITY - 5):
        return False
    for thread in threading.enumerate():
        if thread.name == GENERATOR_THREAD and thread.native_id is not None:
            set_fifo(RT_PRIORITY - 10, "generator thread", thread.native_id)
    return True


def timeline(args: argparse.Namespace, settings: Settings, duration: float | None
             ) -> tuple[Iterator[tuple[float, str, float]], float, str]:
    """Input changes of the patch, cycling for ever (or to `duration`), with the controls file.

    Returns (changes sorted by time, bpm, source name). One cycle of the source is built once
    and replayed, so an unbounded run needs no more memory than one cycle.
    """
    source = load_source(args.input)
    bpm = args.bpm or source.bpm or settings["tempo"]
    bpm = float(SCHEMA["tempo"].validate(round(float(bpm), 3), "--bpm"))
    settings.set("tempo", bpm)
    if source.drum and settings["input.velocity_mode"] == SCHEMA["input.velocity_mode"].default:
        settings.set("input.velocity_mode", "cv")
    ppqn = settings["clock.ppqn"] if args.clock else None
    cycle = build_patch(source, bpm=bpm, bars=source.bars, clock_ppqn=ppqn,
                        velocity_cv_volts=settings["input.velocity_cv_volts"])
    period = cycle.duration
    notes = [c for c in cycle.changes if c[1] != "reset"]
    resets = [c for c in cycle.changes if c[1] == "reset"]  # one reset, at the very start

    def replay() -> Iterator[tuple[float, str, float]]:
        for k in itertools.count():
            for t, jack, value in notes:
                yield t + k * period, jack, value

    controls = [(0.0, key, pot_position(key, settings[key])) for key in CONTROLS]
    for change in (load_controls(args.controls) if args.controls else []):
        value = 1.0 if change.key.startswith("press.") else pot_position(change.key, change.value)
        controls.append((change.time(bpm), change.key, value))
    controls.sort(key=lambda c: c[0])
    merged = heapq.merge(controls, resets, replay(), key=lambda c: c[0])
    if duration is not None:
        merged = itertools.takewhile(lambda c: c[0] < duration, merged)
    return merged, bpm, source.name


def run_sim(args: argparse.Namespace, settings: Settings, launched: float) -> int:
    duration = args.duration
    changes, bpm, name = timeline(args, settings, duration)
    engine = make_engine(settings, threaded=True)
    # short GIL slices: the loop must not wait behind the generator thread's Python work
    if sys.getswitchinterval() > SWITCH_S:
        sys.setswitchinterval(SWITCH_S)
    fifo = realtime() if args.rt else False
    gc.freeze()  # what start-up made is never collected again: no long collections while playing
    t0 = _clock() + START_DELAY_S
    from grooverack.service import RT_PRIORITY

    writer = OutputWriter(t0, RT_SPIN_S if fifo else SPIN_S, RT_PRIORITY if fifo else None)
    board = (DirectBoard(engine, settings, writer) if args.direct
             else make_board(settings, writer, engine, args.board or "sim"))
    # the service (issue 6): READY, watchdog while the loop and the generator are alive,
    # SIGTERM/SIGINT -> every output to 0 V (after the last falls) and the state saved
    from grooverack.io.sim import TAIL_S
    from grooverack.service import supervise
    from grooverack.state import StateKeeper

    keeper = StateKeeper(settings, engine)  # presets and the last performance from the state dir
    keeper.restore()
    stopped_at: list[float] = []

    def outputs_to_zero() -> None:
        t = (stopped_at[0] if stopped_at else max(_clock() - t0, 0.0)) + TAIL_S
        for output in range(1, int(settings["outputs.count"]) + 1):
            writer.write(t, output, "trigger", 0.0)
            writer.write(t, output, "velocity", 0.0)

    svc = supervise(engine, status=f"board sim up ({name}, {bpm:g} BPM)",
                    outputs_to_zero=outputs_to_zero, save_state=keeper.save_all)
    keeper.start_background()  # presets saved from the panel reach the disk within 1 s
    ready_s = _clock() - launched
    print(f"grooverack run: ready in {ready_s:.3f} s (board sim, {name}, {bpm:g} BPM"
          f"{f', {duration:g} s' if duration else ', Ctrl-C to stop'})", file=sys.stderr,
          flush=True)
    cpu0, loop_cpu0 = os.times(), time.thread_time()
    applied: list[tuple[float, float]] = []
    board.start(0.0)
    pending = next(changes, None)
    end = duration if duration is not None else float("inf")
    try:
        while not svc.stopping:
            svc.beat("loop")
            now = _clock() - t0
            if pending is not None and pending[0] <= now:
                # An input is applied once its time has come and carries that time, as a
                # kernel edge timestamp would; the engine may already be past it.
                board.apply(*pending)
                applied.append((pending[0], now))
                pending = next(changes, None)
                continue
            horizon = min(now + LOOKAHEAD_S, end)
            board.advance(horizon)
            if horizon >= end:
                break
            wake = horizon - WAKE_MARGIN_S
            if pending is not None:
                wake = min(wake, pending[0])
            pause = t0 + wake - _clock()
            if pause > 0:
                time.sleep(pause)
    except KeyboardInterrupt:
        end = _clock() - t0
    if svc.stopping:
        end = min(end, _clock() - t0)
    board.finish(end)
    stopped_at.append(end)
    svc.shutdown()  # outputs to 0 V (queued after the last falls), state saved
    writer.close()
    wall = _clock() - t0
    cpu1, loop_cpu = os.times(), time.thread_time() - loop_cpu0
    stop = getattr(engine, "close", None) or getattr(engine, "shutdown", None)
    if stop is not None:
        stop()
    process_cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    patterns = float(getattr(getattr(engine, "pattern", None), "serial", float("nan")))
    report = timing_report(writer.timing)
    print(f"grooverack run: {wall:.1f} s, {len(writer.timing)} output writes, "
          f"{len(applied)} input changes, {patterns:.0f} patterns; lateness median "
          f"{report['median_ms']:.3f} ms, "
          f"p99 {report['p99_ms']:.3f} ms, max {report['max_ms']:.3f} ms; CPU "
          f"{100 * process_cpu / wall:.1f} % of a core (loop thread {100 * loop_cpu / wall:.1f} %, "
          f"writer thread {100 * writer.cpu_s / wall:.1f} %)",
          file=sys.stderr)
    if args.timing:
        write_timing(Path(args.timing), writer, applied, ready_s=ready_s, wall_s=wall,
                     process_cpu_s=process_cpu, loop_cpu_s=loop_cpu, writer_cpu_s=writer.cpu_s,
                     patterns=patterns)
    if args.out:
        from grooverack.io.sim import write_files

        patch = build_patch(load_source(args.input), bpm=bpm, bars=max(wall, 0.001) / (240 / bpm),
                            clock_ppqn=settings["clock.ppqn"] if args.clock else None)
        write_files(Path(args.out), patch, writer, settings, settings["generation.seed"])
    return 0


def timing_report(timing: list[tuple[float, float]]) -> dict[str, float]:
    import numpy as np

    if not timing:
        return {"count": 0, "median_ms": float("nan"), "p99_ms": float("nan"),
                "max_ms": float("nan")}
    late = np.array([a - s for s, a in timing]) * 1000.0
    return {"count": len(late), "median_ms": float(np.median(late)),
            "p99_ms": float(np.percentile(late, 99)), "max_ms": float(late.max())}


def write_timing(path: Path, recorder: OutputWriter, applied: list[tuple[float, float]],
                 **totals: float) -> None:
    """CSV of every output write and input change: scheduled and actual patch times."""
    lines = ["# " + " ".join(f"{k}={v:.6f}" for k, v in totals.items()),
             "what,scheduled_s,actual_s,output,kind,volts"]
    for row, (sched, actual) in zip(recorder.rows, recorder.timing, strict=True):
        lines.append(f"output,{sched:.6f},{actual:.6f},{row.output},{row.kind},{row.volts:.4f}")
    for sched, actual in applied:
        lines.append(f"input,{sched:.6f},{actual:.6f},,,")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from grooverack.cli import add_common

    add_common(parser)
    parser.add_argument("--board", metavar="NAME",
                        help="sim (the virtual patch on the wall clock), a board in hw/boards/ or "
                             "a TOML path (default: config key board)")
    parser.add_argument("--duration", type=float, metavar="SECONDS",
                        help="stop after this long (default: until Ctrl-C)")
    add_patch_arguments(parser)
    parser.add_argument("--direct", action="store_true",
                        help="board sim: drive the engine straight from the patch, without the "
                             "emulated chips and panel code")
    parser.add_argument("--rt", action="store_true",
                        help="board sim: SCHED_FIFO for the loop thread and locked memory, when "
                             "permitted (as the Pi service runs)")
    parser.add_argument("--timing", metavar="FILE",
                        help="board sim: write scheduled vs actual time of every event (CSV)")
    parser.add_argument("--out", metavar="DIR", help="board sim: also write the render files")


def run(args: argparse.Namespace) -> int:
    from grooverack.model.runner import ModelError

    launched = _clock()
    if args.duration is not None and args.duration <= 0:
        print(f"grooverack run: --duration must be positive, got {args.duration:g}",
              file=sys.stderr)
        return 2
    settings = make_settings(args)
    name = args.board or settings["board"]
    if name == "sim":
        try:
            return run_sim(args, settings, launched)
        except (SourceError, ModelError) as exc:
            print(f"grooverack run: {exc}", file=sys.stderr)
            return 2
    from grooverack.io.board import load_board

    board: Any = load_board(name)
    if board.kind == "sim":
        return run_sim(args, settings, launched)
    module_name = BACKENDS.get(board.kind)
    try:
        module = importlib.import_module(module_name) if module_name else None
    except ImportError as exc:
        print(f"grooverack run: board {board.name} ({board.kind}): back end {module_name} not "
              f"available ({exc})", file=sys.stderr)
        return 2
    if module is None or not hasattr(module, "run_backend"):
        print(f"grooverack run: board {board.name}: no back end runs kind {board.kind!r}",
              file=sys.stderr)
        return 2
    return int(module.run_backend(board, settings, args) or 0)
