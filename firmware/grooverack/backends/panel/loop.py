"""Real time on a Pi: `grooverack run --board reference` (or any board of kind "pi").
"""

from __future__ import annotations

import argparse
import logging
import queue
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from grooverack.backends.panel.backend import PanelBackend, calibration_for, group_instants
from grooverack.backends.panel.hardware import (
    FAULTS_SAVE_S,
    faults_path,
    open_hardware,
    save_faults,
)
from grooverack.boards.board import Board
from grooverack.config import Settings
from grooverack.runtime.priority import realtime, short_gil_slices
from grooverack.runtime.scheduler import TimedScheduler
from grooverack.runtime.serve import Lifecycle, make_engine

log = logging.getLogger(__name__)


LOOKAHEAD_S = 0.010   # engine events are taken this far ahead and written by the scheduler
#                       (what sits on an external clock's next edge waits for that edge)
IDLE_S = 0.002        # longest idle sleep between passes


def _scanner(panel: PanelBackend, inbox: queue.Queue[tuple[Any, ...]],
             stop: threading.Event, clock: Callable[[], float],
             report: Callable[[], None] | None = None) -> None:
    """The I/O thread that scans pots and CVs at the board's rate and posts control moves;
    every FAULTS_SAVE_S it also rewrites the bus-fault report (file I/O stays off the loop)."""
    period = panel.scanner.period
    next_t = clock()
    next_report = next_t + FAULTS_SAVE_S
    while not stop.is_set():
        if report is not None and clock() >= next_report:
            next_report += FAULTS_SAVE_S
            try:
                report()
            except OSError as exc:
                log.warning("bus-fault report not written: %s", exc)
        try:
            for name, value in panel.scanner.scan():
                inbox.put(("control", name, value, clock()))
        except Exception as exc:  # a driver bug: hand it to the loop, which stops and zeroes
            inbox.put(("error", exc))
            return
        next_t += period
        delay = next_t - clock()
        if delay < 0:
            next_t = clock()  # fell behind (a slow bus): skip, do not burst
        else:
            stop.wait(delay)


def run_backend(board: Board, settings: Settings, args: argparse.Namespace) -> int:
    """`grooverack run --board NAME` on a Raspberry Pi: real buses, wall clock, until SIGTERM.

    Threads post to one queue consumed by this loop: GPIO callbacks (the library's thread) only
    timestamp and post edges; the scanner thread posts control moves. The loop applies them,
    samples onsets, and hands each instant's engine events to the shared `TimedScheduler`,
    whose thread writes them at their time (DAC transactions, then GPIO pins). The lifecycle is
    `runtime.serve.Lifecycle`: state restored, READY + watchdog, outputs to 0 V then state saved
    on SIGTERM/SIGINT, at the end of `--duration` and on an unhandled error."""
    clock = time.monotonic
    try:
        hw = open_hardware(board, clock)
    except OSError as exc:
        print(f"grooverack run: board {board.name!r} ({board.path}): cannot open its hardware: "
              f"{exc}\n  `grooverack doctor --board {board.name}` checks every part",
              file=sys.stderr)
        return 2
    panel: PanelBackend | None = None
    # a queue.Queue, not a SimpleQueue: CPython 3.11's SimpleQueue.get(timeout) interrupted by a
    # signal whose handler outlasts the timeout waits again with a negative timeout, i.e. for
    # ever (the loop's 2 ms idle wait stuck at SIGTERM until the next item came in)
    inbox: queue.Queue[tuple[Any, ...]] = queue.Queue()
    try:
        cal = calibration_for(board, settings)
        engine = make_engine(settings, threaded=True)
        panel = PanelBackend(board, settings, engine, hw, cal, clock)
        direct_edge = panel.on_edge
        panel.on_edge = lambda pin, level, t: inbox.put(("edge", pin, level, t))  # type: ignore[method-assign]
        life = Lifecycle(settings, engine)
        life.restore()  # presets + last performance, before the first step plays
        panel.start(clock())
        panel.scan_thread = True
    except BaseException:
        if panel is not None:
            panel.close()
        else:
            hw.close()
        raise

    def write(group: list[Any], due: float, actual: float) -> None:
        try:
            panel.write(group)
        except Exception as exc:  # a driver bug: the loop stops and zeroes
            inbox.put(("error", exc))

    writer: TimedScheduler[list[Any]] = TimedScheduler(write, clock=clock,
                                                        name="grooverack-writer")
    stop = threading.Event()
    started, report_file = time.time(), faults_path(settings, board.name)

    def report() -> None:
        save_faults(report_file, board.name, panel.faults(), started)

    def outputs_to_zero() -> None:
        writer.stop()  # nothing queued may rise after the zeroing
        panel.close()

    scanner = threading.Thread(target=_scanner, args=(panel, inbox, stop, clock, report),
                               name="grooverack-scan", daemon=True)
    life.ready(f"board {board.name} up", outputs_to_zero=outputs_to_zero, after=[report])
    short_gil_slices()  # the loop and the writer never wait long behind the scanner or generator
    writer.start()
    scanner.start()
    realtime(writer=writer.thread)
    duration = getattr(args, "duration", None)
    end = clock() + duration if duration else float("inf")
    woke: tuple[Any, ...] | None = None  # what ended the last idle wait
    try:
        while not life.stopping and clock() < end:
            while True:
                if woke is not None:
                    item, woke = woke, None
                else:
                    try:
                        item = inbox.get_nowait()
                    except queue.Empty:
                        break
                if item[0] == "edge":
                    direct_edge(*item[1:])
                elif item[0] == "control":
                    panel.set_control(item[3], item[1], item[2])
                else:
                    raise item[1]
            now = clock()
            panel.tick(now)
            for group in group_instants(engine.advance(now + LOOKAHEAD_S)):
                writer.schedule(group[0].time, group)
            life.beat()
            # idle: wait for the next edge or control, the next sample/debounce, at most 2 ms
            # (the writer keeps the time). An edge wakes the loop at once: a step on a clock
            # edge is written as soon as the edge is in, with its kernel/callback timestamp.
            idle = min(panel.next_deadline(), clock() + IDLE_S) - clock()
            if idle > 0:
                try:
                    woke = inbox.get(timeout=idle)
                except queue.Empty:
                    pass
        stop.set()
        scanner.join(1.0)
        return life.shutdown()
    except BaseException:
        log.exception("panel loop stopped by an error: outputs to 0 V")
        stop.set()
        scanner.join(1.0)
        life.shutdown()
        raise
