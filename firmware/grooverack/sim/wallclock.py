"""`grooverack run --board sim`: the virtual patch of `grooverack sim` on the wall clock.

The threads the style guide asks for: the loop thread applies each input change when its time
comes and asks the engine for the outputs of the next 20 ms (`advance`); the shared
`runtime.scheduler.TimedScheduler` thread only moves data: it sleeps to just before each queued
output, spins to its time, records it and its scheduled and actual times (`--timing FILE`); the
engine generates in its own worker thread (`Engine(threaded=True)`). `--rt` gives the three
threads SCHED_FIFO (writer > loop > worker) and locks memory, as the Pi service does.
`--audio [DEVICE]` plays the drum voices through a sound card (`backends.speaker`, a process of
its own): the loop thread only writes each output write into its pipe (non-blocking), the sound
process's audio callback renders. The
skeleton (state restored, READY + watchdog, outputs to 0 V and state saved on SIGHUP/SIGTERM/
SIGINT or an error in the loop) is `runtime.serve.serve`, as on every board.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from grooverack.config import CONTROLS, SCHEMA, Settings
from grooverack.engine.engine import Engine
from grooverack.errors import PathError
from grooverack.runtime.hooks import LoopHook
from grooverack.runtime.listen import AudioListener
from grooverack.runtime.priority import WRITER_PRIORITY, realtime, short_gil_slices
from grooverack.runtime.scheduler import RT_SPIN_S, SPIN_S, TimedScheduler
from grooverack.runtime.serve import Lifecycle, serve
from grooverack.sim.direct import TAIL_S, DirectBoard
from grooverack.sim.patch import (
    OutputRecorder,
    OutputRow,
    PatchNote,
    build_patch,
    jack_value,
    pot_position,
)
from grooverack.sim.session import choose_bpm, drum_voices, make_board, write_files
from grooverack.sim.sources import HEARD_NOTE, load_controls, load_source, source_at
from grooverack.storage import atomic_write_text

LOOKAHEAD_S = 0.020  # the loop asks the engine for events this far ahead
WAKE_MARGIN_S = 0.008  # and wakes (plain sleep, no spin) this long before the end of that
START_DELAY_S = 0.05  # time 0 of the patch is this long after the loop is ready

_clock = time.perf_counter  # CLOCK_MONOTONIC on Linux, ns resolution
log = logging.getLogger(__name__)


def timeline(args: argparse.Namespace, settings: Settings, duration: float | None
             ) -> tuple[Iterator[tuple[float, str, float]], float, str]:
    """Input changes of the patch, cycling for ever (or to `duration`), with the controls file.

    Returns (changes sorted by time, bpm, source name). One cycle of the source is built once
    and replayed, so an unbounded run needs no more memory than one cycle.
    """
    loaded = load_source(args.input, settings)
    bpm = choose_bpm(args.bpm, loaded, settings)
    source = source_at(loaded, bpm)
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
    late = []  # one warning that counts them, not one per row
    for change in (load_controls(args.controls) if args.controls else []):
        value = jack_value(change.key, change.value)
        if duration is not None and change.time(bpm) >= duration:
            late.append(change)
        controls.append((change.time(bpm), change.key, value))
    if late:
        first = late[0]
        log.warning("%s control change%s at or after the end of the run (--duration %g s at %g "
                    "BPM) %s ignored; the first: %s%s at %s", f"{len(late):,}",
                    "s" if len(late) > 1 else "", duration, bpm,
                    "are" if len(late) > 1 else "is",
                    f"{first.where}: " if first.where else "", first.key, first.when)
    controls.sort(key=lambda c: c[0])
    merged: Iterator[tuple[float, str, float]] = heapq.merge(controls, resets, replay(),
                                                              key=lambda c: c[0])
    if duration is not None:
        merged = itertools.takewhile(lambda c: c[0] < duration, merged)
    return merged, bpm, source.name


class RecordingWriter(OutputRecorder):
    """The wall-clock sim's outputs: each write goes through the shared `TimedScheduler` (the
    same sleep-then-spin thread that writes the Pi's DACs) and is recorded when it leaves, with
    its scheduled and actual patch times in `timing`."""

    def __init__(self, t0: float | None = None, spin: float = SPIN_S,
                 priority: int | None = None,
                 listener: Callable[[float, int, str, float, int | None], None] | None = None
                 ) -> None:
        super().__init__()
        self.timing: list[tuple[float, float]] = []
        # `--audio`: each write is also pushed, when it is handed to the scheduler (up to
        # LOOKAHEAD_S early), to the speaker's queue (`backends.speaker.Speaker.push`)
        self.listener = listener
        # direct: the writes of a step due at an edge that just came in leave at once from the
        # loop's thread, without waiting for this thread to get the GIL (a real board's bus
        # write happens the moment the loop makes it)
        self.scheduler: TimedScheduler[OutputRow] = TimedScheduler(
            self._emit, clock=_clock, t0=0.0, spin=spin, priority=priority, direct=True)
        if t0 is not None:
            self.begin(t0)

    def begin(self, t0: float) -> None:
        """Patch time 0 is `t0` on the wall clock: the thread starts writing (what was written
        before waits for it)."""
        self.scheduler.t0 = t0
        self.scheduler.start()

    def write(self, time: float, output: int, kind: str, volts: float,
              voice: int | None = None) -> None:
        row = OutputRow(float(time), int(output), str(kind), float(volts), voice)
        self.scheduler.schedule(row.time, row)
        if self.listener is not None:
            self.listener(row.time, row.output, row.kind, row.volts, row.voice)

    def _emit(self, row: OutputRow, due: float, actual: float) -> None:
        self.rows.append(row)
        self.timing.append((due, actual))

    @property
    def cpu_s(self) -> float:
        return self.scheduler.cpu_s

    def close(self) -> None:
        """Write everything queued, then stop the thread."""
        self.scheduler.close()


LATE_S = 0.001  # a write this late counts as a fault in what a hook is shown
HOOK_GUARD_S = 0.002  # a hook runs only in passes with no input change due sooner than this


def late_writes(writer: RecordingWriter) -> Callable[[], dict[str, int]]:
    """A fault reader for a hook's thread: writes that left more than `LATE_S` late, counted
    over the entries added since its last call (the loop's thread never runs it)."""
    seen, late = 0, 0

    def read() -> dict[str, int]:
        nonlocal seen, late
        timing = writer.timing
        end = len(timing)
        late += sum(1 for due, actual in timing[seen:end] if actual - due > LATE_S)
        seen = end
        return {"writes_late_over_1ms": late, "writes": end}

    return read


class WallClockSim:
    """The virtual patch on the wall clock as a `runtime.serve.Backend`: the loop thread applies
    each input change at its time and asks for the next LOOKAHEAD_S of outputs; the writer
    records them at theirs (and hands them to `--audio`'s speaker); `hook` (the web page's link)
    is called between the loop's passes."""

    def __init__(self, args: argparse.Namespace, settings: Settings, engine: Engine,
                 changes: Iterator[tuple[float, str, float]], bpm: float, name: str,
                 launched: float, hook: LoopHook | None = None) -> None:
        self.args, self.settings, self.engine, self.hook = args, settings, engine, hook
        self.changes, self.bpm, self.name, self.launched = changes, bpm, name, launched
        self.duration: float | None = args.duration
        short_gil_slices()  # the loop must not wait behind the generator thread's Python work
        fifo = realtime() if args.rt else False
        self.speaker = open_speaker(args, settings)
        speaker = self.speaker
        self.writer = RecordingWriter(None, RT_SPIN_S if fifo else SPIN_S,
                                      WRITER_PRIORITY if fifo else None,
                                      listener=speaker.push if speaker is not None else None)
        self.board = (DirectBoard(engine, settings, self.writer) if args.direct
                      else make_board(settings, self.writer, engine, args.board or "sim"))
        self.stopped_at: float | None = None
        self.t0 = _clock() + START_DELAY_S  # fixed again once ready (`run`)
        self.ready_s = 0.0
        self.wall = 0.0
        self.applied: list[tuple[float, float]] = []
        self.cpu0, self.loop_cpu0 = os.times(), 0.0
        # input.source = audio: the onsets heard on input.audio_device (the detector's own
        # thread), on the patch's time; the patch's gate changes play nothing (`run_sim`)
        self.listener = (AudioListener(settings, lambda: _clock() - self.t0)
                         if settings["input.source"] == "audio" else None)

    def start(self, beat: Callable[[], None]) -> str:
        if self.hook is not None:  # (the state is restored by now)
            self.hook.attach(self.engine, late_writes(self.writer))
        if self.listener is not None:  # a wrong input.audio_device is an error before the
            self.listener.start()      # patch starts (a later t0 only lowers the time base)
        return f"board sim up ({self.name}, {self.bpm:g} BPM)"

    def run(self, life: Lifecycle) -> None:
        # patch time 0 (the first downbeat) is fixed only now, with the board built, the state
        # restored and READY sent: the first step is as punctual as every other
        board, writer, changes, hook = self.board, self.writer, self.changes, self.hook
        t0 = self.t0 = _clock() + START_DELAY_S
        writer.begin(t0)
        if self.speaker is not None:
            self.speaker.begin(t0)
        self.ready_s = _clock() - self.launched
        duration = self.duration
        print(f"grooverack run: ready in {self.ready_s:.3f} s (board sim, {self.name}, "
              f"{self.bpm:g} BPM{f', {duration:g} s' if duration else ', Ctrl-C to stop'})",
              file=sys.stderr, flush=True)
        self.cpu0, self.loop_cpu0 = os.times(), time.thread_time()
        applied = self.applied
        board.start(0.0)
        listener, engine = self.listener, self.engine
        pending = next(changes, None)
        end = duration if duration is not None else float("inf")
        while not life.stopping:
            life.beat()
            now = _clock() - t0
            if pending is not None and pending[0] <= now:
                # An input is applied once its time has come and carries that time, as a
                # kernel edge timestamp would; the engine may already be past it.
                board.apply(*pending)
                applied.append((pending[0], now))
                pending = next(changes, None)
                continue
            if listener is not None:  # heard in audio, at their own sample's time
                for t, velocity in listener.drain():
                    engine.onset(t, velocity=velocity)
            horizon = min(now + LOOKAHEAD_S, end)
            board.advance(horizon)
            if horizon >= end:
                break
            if hook is not None and (pending is None or pending[0] - now > HOOK_GUARD_S):
                # after this pass's writes, never just before an input change is due
                hook.between(now)
            wake = horizon - WAKE_MARGIN_S
            if pending is not None and pending[0] <= wake:
                # the patch's next change is applied at its time, as a kernel stamps an edge:
                # sleep to just before it, then spin (a plain sleep overshoots ~0.1-0.5 ms)
                pause = t0 + pending[0] - SPIN_S - _clock()
                if pause > 0:
                    if hook is None:
                        time.sleep(pause)
                    elif hook.sleep(pause):
                        continue  # a command came in: the next pass applies it
                while _clock() - t0 < pending[0]:
                    pass
                continue
            pause = t0 + wake - _clock()
            if pause > 0:
                if hook is not None:
                    hook.sleep(pause)  # ends early when the page has a command for the loop
                else:
                    time.sleep(pause)
        if life.stopping:
            end = min(end, _clock() - t0)
        board.finish(end)
        self.stopped_at = end

    def outputs_to_zero(self) -> None:
        """Every output to 0 V, queued after the last falls."""
        stopped = self.stopped_at
        t = (stopped if stopped is not None else max(_clock() - self.t0, 0.0)) + TAIL_S
        for output in range(1, int(self.settings["outputs.count"]) + 1):
            self.writer.write(t, output, "trigger", 0.0)
            self.writer.write(t, output, "velocity", 0.0)

    def close(self) -> None:
        if self.listener is not None:
            self.listener.stop()
        self.writer.close()  # everything queued written, at its time
        self.wall = _clock() - self.t0
        if self.speaker is not None:
            stopped = self.stopped_at
            self.speaker.drain(stopped if stopped is not None else self.wall)  # the last hits
            self.speaker.stop()

    def report(self) -> None:
        """The summary line, and `--timing` / `--out` files."""
        args, writer, settings = self.args, self.writer, self.settings
        wall = self.wall
        cpu1, loop_cpu = os.times(), time.thread_time() - self.loop_cpu0
        process_cpu = (cpu1.user - self.cpu0.user) + (cpu1.system - self.cpu0.system)
        patterns = float(self.engine.pattern.serial)
        report = timing_report(writer.timing)
        print(f"grooverack run: {wall:.1f} s, {len(writer.timing)} output writes, "
              f"{len(self.applied)} input changes, {patterns:.0f} patterns; lateness median "
              f"{report['median_ms']:.3f} ms, "
              f"p99 {report['p99_ms']:.3f} ms, max {report['max_ms']:.3f} ms; CPU "
              f"{100 * process_cpu / wall:.1f} % of a core (loop thread "
              f"{100 * loop_cpu / wall:.1f} %, writer thread {100 * writer.cpu_s / wall:.1f} %)",
              file=sys.stderr)
        if self.speaker is not None:
            print(f"grooverack run: {self.speaker.report()}", file=sys.stderr)
        listener = self.listener
        if listener is not None:
            print(f"grooverack run: audio in ({listener.device or 'the default input'}): "
                  f"{listener.heard} onsets heard, "
                  f"{int((np.asarray(self.engine.groove)[:, 0] > 0).sum())} hit steps in the "
                  f"groove; the device went away {listener.lost} time(s), {listener.xruns} "
                  "missed JACK cycle(s)", file=sys.stderr)
        failed: list[str] = []  # a full disk under one file does not cost the other's
        if args.timing:
            try:
                write_timing(Path(args.timing), writer, self.applied, ready_s=self.ready_s,
                             wall_s=wall, process_cpu_s=process_cpu, loop_cpu_s=loop_cpu,
                             writer_cpu_s=writer.cpu_s, patterns=patterns,
                             t0_monotonic=self.t0)
            except PathError as exc:
                failed.append(f"--timing {exc}")
        if args.out:
            bpm = self.bpm
            patch = build_patch(source_at(load_source(args.input, settings), bpm), bpm=bpm,
                                bars=max(wall, 0.001) / (240 / bpm),
                                clock_ppqn=settings["clock.ppqn"] if args.clock else None)
            if listener is not None:  # input.mid: the onsets heard, not the patch's gates
                patch.onsets = [PatchNote(t, 0.05, HEARD_NOTE, v, True)
                                for t, v in listener.recent]
            try:
                write_files(Path(args.out), patch, writer, settings, settings["generation.seed"],
                            wav=getattr(args, "wav", True))
            except PathError as exc:
                failed.append(f"--out {exc}")
        if failed:
            raise PathError("\n  ".join(failed))


def run_sim(args: argparse.Namespace, settings: Settings, launched: float,
            hook: LoopHook | None = None) -> int:
    """`grooverack run --board sim`: the patch on the wall clock in `runtime.serve.serve`
    until its end, a signal or an error; `hook` (the web page's link) is attached before the
    loop is ready and called between its passes."""
    changes, bpm, name = timeline(args, settings, args.duration)
    if settings["input.source"] == "audio":  # one source of onsets: the audio's
        changes = (c for c in changes if c[1] != "gate")
    built: list[WallClockSim] = []

    def build(engine: Engine) -> WallClockSim:
        built.append(WallClockSim(args, settings, engine, changes, bpm, name, launched, hook))
        return built[0]

    status = serve(settings, build)
    built[0].report()
    return status


def run_board(board: Any, settings: Settings, args: argparse.Namespace,
              hook: LoopHook | None = None) -> int:
    """A board file of kind "sim" (`commands.backends` registry): as `--board sim`."""
    return run_sim(args, settings, getattr(args, "launched", time.perf_counter()), hook=hook)


def open_speaker(args: argparse.Namespace, settings: Settings) -> Any:
    """`--audio [DEVICE]`: the drum voices through the sound card (`backends.speaker`), open
    and playing silence; None without `--audio`. A device that is missing is one warning."""
    device = getattr(args, "audio", None)
    if device is None:
        return None
    from grooverack.backends.speaker import SpeakerProcess

    speaker = SpeakerProcess(drum_voices(settings), rate=int(settings["audio.rate"]),
                      velocity_volts=float(settings["outputs.velocity_volts"]),
                      device=device or settings["audio.device"],
                      delay_ms=float(settings["audio.delay_ms"]), clock=_clock)
    if speaker.start():
        speaker.wait_delay()
        print(f"grooverack run: {speaker.describe()}", file=sys.stderr, flush=True)
    return speaker


def timing_report(timing: list[tuple[float, float]]) -> dict[str, float]:
    if not timing:
        return {"count": 0, "median_ms": float("nan"), "p99_ms": float("nan"),
                "max_ms": float("nan")}
    late = np.array([a - s for s, a in timing]) * 1000.0
    return {"count": len(late), "median_ms": float(np.median(late)),
            "p99_ms": float(np.percentile(late, 99)), "max_ms": float(late.max())}


def write_timing(path: Path, recorder: RecordingWriter, applied: list[tuple[float, float]],
                 **totals: float) -> None:
    """CSV of every output write and input change: scheduled and actual patch times."""
    lines = ["# " + " ".join(f"{k}={v:.6f}" for k, v in totals.items()),
             "what,scheduled_s,actual_s,output,kind,volts"]
    for row, (sched, actual) in zip(recorder.rows, recorder.timing, strict=True):
        lines.append(f"output,{sched:.6f},{actual:.6f},{row.output},{row.kind},{row.volts:.4f}")
    for sched, actual in applied:
        lines.append(f"input,{sched:.6f},{actual:.6f},,,")
    text = "\n".join(lines) + "\n"
    try:
        atomic_write_text(path, text)
    except PathError as exc:  # the run cannot be repeated: keep its timing somewhere
        spare = Path(tempfile.gettempdir()) / f"grooverack-timing-{os.getpid()}.csv"
        try:
            atomic_write_text(spare, text)
        except PathError:
            raise PathError(f"{exc}; the timing could not be kept anywhere (the summary "
                            "above has its figures)") from exc
        raise PathError(f"{exc}; the timing was kept in {spare}") from exc
