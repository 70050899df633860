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
from grooverack.engine.engine import Engine
from grooverack.runtime.hooks import LoopHook
from grooverack.runtime.listen import AudioListener
from grooverack.runtime.priority import realtime, short_gil_slices
from grooverack.runtime.scheduler import TimedScheduler
from grooverack.runtime.serve import Lifecycle, make_engine, serve

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


class PanelRun:
    """The Pi's panel in real time as `runtime.serve.Backend`: the loop on the main thread, the
    scanner and the writer in threads of their own."""

    def __init__(self, board: Board, settings: Settings, engine: Engine, hw: Any,
                 args: argparse.Namespace, hook: LoopHook | None = None) -> None:
        self.board, self.settings, self.engine, self.hw = board, settings, engine, hw
        self.hook = hook  # the web page's link: called between the loop's passes
        self.clock = clock = time.monotonic
        self.duration: float | None = getattr(args, "duration", None)
        try:
            self.panel = PanelBackend(board, settings, engine, hw,
                                      calibration_for(board, settings), clock)
        except BaseException:
            hw.close()
            raise
        # controls and errors from the scanner and the writer (the loop only drains it: it
        # waits on the GPIO lines)
        self.inbox: queue.Queue[tuple[Any, ...]] = queue.Queue()
        # direct: a group already due (the step on an edge just in) is written at once from the
        # loop's thread, not after a hand-over to the writer's
        self.writer: TimedScheduler[list[Any]] = TimedScheduler(
            self._write, clock=clock, name="grooverack-writer", direct=True)
        self.stop = threading.Event()
        self.started, self.report_file = time.time(), faults_path(settings, board.name)
        self.scanner = threading.Thread(
            target=_scanner, args=(self.panel, self.inbox, self.stop, clock, self.report),
            name="grooverack-scan", daemon=True)
        # input.source = audio: onsets heard by the detector on its own thread
        self.listener = (AudioListener(settings, clock)
                         if settings["input.source"] == "audio" else None)

    def _write(self, group: list[Any], due: float, actual: float) -> None:
        try:
            self.panel.write(group)
        except Exception as exc:  # a driver bug: the loop stops and zeroes
            self.inbox.put(("error", exc))

    def report(self) -> None:
        save_faults(self.report_file, self.board.name, self.panel.faults(), self.started)

    def start(self, beat: Callable[[], None]) -> str:
        if self.hook is not None:  # the web page's link: bus faults counted per chip
            self.hook.attach(self.engine, lambda: bus_faults(self.panel))
        self.panel.start(self.clock())
        self.panel.scan_thread = True
        if self.listener is not None:
            self.listener.start()
        return f"board {self.board.name} up"

    def run(self, life: Lifecycle) -> None:
        panel, writer, inbox, clock, hw = self.panel, self.writer, self.inbox, self.clock, self.hw
        hook = self.hook
        short_gil_slices()  # the loop and the writer never wait long behind the scanner or
        writer.start()      # the generator
        self.scanner.start()
        realtime(writer=writer.thread)
        end = clock() + self.duration if self.duration else float("inf")
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
                if self.listener is not None:  # onsets heard in audio, at their sample's time
                    for t, velocity in self.listener.drain():
                        self.engine.onset(t, velocity=velocity)
                now = clock()
                panel.tick(now)
                for group in group_instants(self.engine.advance(now + LOOKAHEAD_S)):
                    writer.schedule(group[0].time, group)  # already due: written now, from here
                life.beat()
                if hook is not None:
                    hook.between(now)
                # idle: wait on the lines for the next edge, at most to the next sample/debounce
                # or IDLE_S (the writer keeps the time). An edge ends the wait at once and is
                # applied here at its stamped time; the next pass fires and writes the step on it.
                idle = min(panel.next_deadline(), clock() + IDLE_S) - clock()
                hw.gpio.wait(max(idle, 0.0))
        finally:
            self.stop.set()
            if self.scanner.is_alive():
                self.scanner.join(1.0)
            if self.listener is not None:
                self.listener.stop()

    def outputs_to_zero(self) -> None:
        self.writer.stop()  # nothing queued may rise after the zeroing
        self.panel.close()

    def close(self) -> None:
        """The bus-fault report, written once more after the state."""
        try:
            self.report()
        except OSError as exc:
            log.warning("bus-fault report not written: %s", exc)


def run_backend(board: Board, settings: Settings, args: argparse.Namespace,
                hook: LoopHook | None = None) -> int:
    """`grooverack run --board NAME` on a Raspberry Pi: real buses, wall clock, until a stop
    signal, the end of `--duration` or an error, in `runtime.serve.serve`.

    The loop waits on the gate/clock/reset/button lines themselves (`hw.gpio.wait`: libgpiod's
    edge-event descriptors, or RPi.GPIO's callbacks, which only stamp the edge): an edge wakes it
    at once and reaches `on_edge` on this thread with its kernel (or callback) stamp, so the
    engine places it at the time the jack changed, however late the loop woke. The scanner
    thread posts control moves to a queue that each pass drains. The loop samples onsets and
    hands each instant's engine events to the shared `TimedScheduler`: what is already due (the
    step on the edge just in) is written at once from this thread, the rest at its time by the
    scheduler's (DAC transactions, then GPIO pins). Outputs to 0 V, then the state saved."""
    try:
        hw = open_hardware(board, time.monotonic, wait=True)  # edges come in via `hw.gpio.wait`
    except OSError as exc:
        print(f"grooverack run: board {board.name!r} ({board.path}): cannot open its hardware: "
              f"{exc}\n  `grooverack doctor --board {board.name}` checks every part",
              file=sys.stderr)
        return 2
    try:
        engine = make_engine(settings, threaded=True)
    except BaseException:
        hw.close()
        raise
    return serve(settings, lambda e: PanelRun(board, settings, e, hw, args, hook), engine=engine)
