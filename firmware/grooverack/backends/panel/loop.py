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
from grooverack.runtime.hooks import LoopHook
from grooverack.runtime.listen import AudioListener
from grooverack.runtime.priority import realtime, short_gil_slices
from grooverack.runtime.scheduler import TimedScheduler
from grooverack.runtime.serve import Lifecycle, make_engine

log = logging.getLogger(__name__)


LOOKAHEAD_S = 0.010   # engine events are taken this far ahead and written by the scheduler
#                       (what sits on an external clock's next edge waits for that edge)
IDLE_S = 0.002        # longest idle wait between passes (a control or an error from another
#                       thread waits at most this long; an edge wakes the loop at once)


def _scanner(panel: PanelBackend, inbox: queue.Queue[tuple[Any, ...]],
             stop: threading.Event, clock: Callable[[], float],
             report: Callable[[], None] | None = None) -> None:
    """The I/O thread that scans pots and CVs at the board's rate and posts control moves and
    the edges of an ADC fill input; every FAULTS_SAVE_S it also rewrites the bus-fault report
    (file I/O stays off the loop)."""
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
            for high in panel.scanner.take_fill_edges():
                inbox.put(("fill", high, clock()))
        except Exception as exc:  # a driver bug: hand it to the loop, which stops and zeroes
            inbox.put(("error", exc))
            return
        next_t += period
        delay = next_t - clock()
        if delay < 0:
            next_t = clock()  # fell behind (a slow bus): skip, do not burst
        else:
            stop.wait(delay)


def bus_faults(panel: PanelBackend | None) -> dict[str, int]:
    """Failed bus operations per chip, for a hook's thread."""
    if panel is None:
        return {}
    return {name: int(counts.get("faults", 0)) for name, counts in panel.faults().items()}


def run_backend(board: Board, settings: Settings, args: argparse.Namespace,
                hook: LoopHook | None = None) -> int:
    """`grooverack run --board NAME` on a Raspberry Pi: real buses, wall clock, until SIGTERM.

    The loop waits on the gate/clock/reset/button lines themselves (`hw.gpio.wait`: libgpiod's
    edge-event descriptors, or RPi.GPIO's callbacks, which only stamp the edge): an edge wakes it
    at once and reaches `on_edge` on this thread with its kernel (or callback) stamp, so the
    engine places it at the time the jack changed, however late the loop woke. The scanner
    thread posts control moves to a queue that each pass drains. The loop samples onsets and
    hands each instant's engine events to the shared `TimedScheduler`: what is already due (the
    step on the edge just in) is written at once from this thread, the rest at its time by the
    scheduler's (DAC transactions, then GPIO pins). The lifecycle is
    `runtime.serve.Lifecycle`: state restored, READY + watchdog, outputs to 0 V then state saved
    on SIGTERM/SIGINT, at the end of `--duration` and on an unhandled error."""
    clock = time.monotonic
    try:
        hw = open_hardware(board, clock, wait=True)  # edges come in through `hw.gpio.wait`
    except OSError as exc:
        print(f"grooverack run: board {board.name!r} ({board.path}): cannot open its hardware: "
              f"{exc}\n  `grooverack doctor --board {board.name}` checks every part",
              file=sys.stderr)
        return 2
    panel: PanelBackend | None = None
    listener = AudioListener(settings, clock) if settings["input.source"] == "audio" else None
    # controls and errors from the scanner and the writer (the loop only drains it: it waits
    # on the GPIO lines)
    inbox: queue.Queue[tuple[Any, ...]] = queue.Queue()
    try:
        cal = calibration_for(board, settings)
        engine = make_engine(settings, threaded=True)
        panel = PanelBackend(board, settings, engine, hw, cal, clock)
        life = Lifecycle(settings, engine)
        life.restore()  # presets + last performance, before the first step plays
        if hook is not None:  # the web page's link: bus faults counted per chip
            hook.attach(engine, lambda: bus_faults(panel))
        panel.start(clock())
        panel.scan_thread = True
        if listener is not None:  # input.source = audio: the detector's own thread
            listener.start()
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

    # direct: a group already due (the step on an edge just in) is written at once from the
    # loop's thread, not after a hand-over to the writer's
    writer: TimedScheduler[list[Any]] = TimedScheduler(write, clock=clock,
                                                        name="grooverack-writer", direct=True)
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
    try:
        while not life.stopping and clock() < end:
            while True:
                try:
                    item = inbox.get_nowait()
                except queue.Empty:
                    break
                if item[0] == "control":
                    panel.set_control(item[3], item[1], item[2])
                elif item[0] == "fill":
                    panel.fill(item[2], item[1])
                else:
                    raise item[1]
            if listener is not None:  # onsets heard in audio, at their own sample's time
                for t, velocity in listener.drain():
                    engine.onset(t, velocity=velocity)
            now = clock()
            panel.tick(now)
            for group in group_instants(engine.advance(now + LOOKAHEAD_S)):
                writer.schedule(group[0].time, group)  # already due: written now, from here
            life.beat()
            if hook is not None:
                hook.between(now)
            # idle: wait on the lines for the next edge, at most to the next sample/debounce or
            # IDLE_S (the writer keeps the time). An edge ends the wait at once and is applied
            # here at its stamped time; the next pass fires and writes the step on it.
            idle = min(panel.next_deadline(), clock() + IDLE_S) - clock()
            hw.gpio.wait(max(idle, 0.0))
        stop.set()
        scanner.join(1.0)
        if listener is not None:
            listener.stop()
        return life.shutdown()
    except BaseException:
        log.exception("panel loop stopped by an error: outputs to 0 V")
        stop.set()
        scanner.join(1.0)
        if listener is not None:
            listener.stop()
        life.shutdown()
        raise
