"""`grooverack sim`: render the module on a virtual patch in virtual time, faster than real time.

A sequencer source (the built-in line, `euclid:K:N`, or a MIDI file) becomes jack voltages
(`grooverack.io.patch`); a *patch board* turns them into engine calls and writes the engine's
outputs as volts into an `OutputRecorder`; `grooverack.io.render` writes the files.

Patch board seam (ARCHITECTURE.md, "Virtual patch contract"): `start(t)`, `apply(t, jack, value)`,
`advance(t_until)` (every output before `t_until` written to the recorder) and `finish(t_end)`
(trailing trigger falls). By default the patch drives the `sim` board of `hw/boards/`: jack volts
-> emulated ADC/GPIO -> the Pi's panel code and calibration -> engine -> emulated DACs/GPIO ->
recorder (`io.panel.patch_board`). `--board direct` uses `DirectBoard` here instead: the engine
straight from the jacks (the panel's edge and pitch-settle logic in a few lines, exact volts).
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from grooverack.config import CONTROLS, SCHEMA, Settings, load_settings
from grooverack.io.patch import (
    GATE_HIGH_VOLTS,
    OutputRecorder,
    VirtualPatch,
    build_patch,
    pot_value,
)
from grooverack.io.sources import SourceError, load_controls, load_source
from grooverack.voices import VOICE_NAMES

DEFAULT_OUT = "grooverack-render"
DEFAULT_BARS = 8
SCHMITT_RISE, SCHMITT_FALL = 1.5, 0.5  # volts, like the module's comparator inputs
TRIGGER_VOLTS = GATE_HIGH_VOLTS  # trigger/clock/reset output level without a board definition
TAIL_S = 0.02  # after the end, still collect the falls of triggers that rose before it


class DirectBoard:
    """Patch jacks -> Engine calls -> volts into a recorder, with no chips in between.

    Gate, clock and reset are read through a Schmitt trigger; on a gate's rising edge the pitch
    (or, in velocity-CV mode, `velocity_cv`) is sampled `input.pitch_settle_ms` later, as the
    panel does, and the onset is given to the engine with the edge's time.
    """

    def __init__(self, engine: Any, settings: Settings, recorder: OutputRecorder, *,
                 trigger_volts: float = TRIGGER_VOLTS) -> None:
        self.engine = engine
        self.settings = settings
        self.recorder = recorder
        self.trigger_volts = trigger_volts
        self.jacks: dict[str, float] = {"gate": 0.0, "pitch": 0.0, "clock": 0.0, "reset": 0.0,
                                        "velocity_cv": 0.0}
        self.high: dict[str, bool] = {"gate": False, "clock": False, "reset": False}
        self.pending: list[tuple[float, float]] = []  # (sample time, edge time) of onsets
        self.settle_s = settings["input.pitch_settle_ms"] / 1000.0
        self.onsets = 0

    def start(self, t: float) -> None:
        self.engine.start(t)

    def apply(self, t: float, jack: str, value: float) -> None:
        """The input `jack` changes to `value` at `t` (call `advance(t)` first)."""
        self._take_pending(t, inclusive=True)
        if jack in self.high:
            rising = self._schmitt(jack, value)
            if rising and jack == "gate":
                self.pending.append((t + self.settle_s, t))
            elif rising and jack == "clock":
                self.engine.clock_pulse(t)
            elif rising and jack == "reset":
                self.engine.reset(t)
            self.jacks[jack] = value
        elif jack in self.jacks:
            self.jacks[jack] = value
        elif jack in CONTROLS:
            self.engine.set_control(jack, pot_value(jack, value))
        elif jack.startswith("press."):
            if value >= 0.5:
                self.engine.press(jack[len("press."):])
        else:
            raise ValueError(f"unknown jack {jack!r}")

    def _schmitt(self, jack: str, volts: float) -> bool:
        was = self.high[jack]
        now = volts >= SCHMITT_RISE if not was else volts > SCHMITT_FALL
        self.high[jack] = now
        return now and not was

    def _take_pending(self, t: float, inclusive: bool) -> None:
        while self.pending and (self.pending[0][0] < t or (inclusive and self.pending[0][0] == t)):
            sample_t, edge_t = self.pending.pop(0)
            self._write(self.engine.advance(sample_t))
            self.onsets += 1
            # in velocity-CV mode the engine reads the volts as a velocity CV
            jack = "velocity_cv" if self.settings["input.velocity_mode"] == "cv" else "pitch"
            self.engine.onset(edge_t, pitch_volts=self.jacks[jack])

    def advance(self, t_until: float) -> None:
        """Run the engine to `t_until`, writing every output event before it."""
        self._take_pending(t_until, inclusive=False)
        self._write(self.engine.advance(t_until))

    def finish(self, t_end: float) -> None:
        """Write the falls of triggers that rose before `t_end` (nothing new starts after it)."""
        self.advance(t_end)
        tail = self.engine.advance(t_end + TAIL_S)
        self._write([e for e in tail if e.kind != "velocity" and e.value == 0.0])

    def volts(self, event: Any) -> float:
        if event.kind == "velocity":
            return float(event.value) * self.settings["outputs.velocity_volts"]
        return float(event.value) * self.trigger_volts

    def _write(self, events: Any) -> None:
        for e in events:
            voice = e.voice if e.kind in ("velocity", "trigger") else None
            self.recorder.write(e.time, e.output, e.kind, self.volts(e), voice)


def make_settings(args: argparse.Namespace) -> Settings:
    settings = load_settings(args.config, args.overrides)
    if getattr(args, "seed", None) is not None:
        settings.set("generation.seed", args.seed, "--seed")
    return settings


def make_patch(args: argparse.Namespace, settings: Settings, *, bars: float | None = None
               ) -> VirtualPatch:
    """The patch of `--input/--bars/--bpm/--controls/--clock`; sets `tempo` to the patch's BPM."""
    source = load_source(args.input)
    bpm = args.bpm or source.bpm or settings["tempo"]
    bpm = float(SCHEMA["tempo"].validate(round(float(bpm), 3), "--bpm"))
    settings.set("tempo", bpm)
    if bars is None:
        bars = args.bars or (source.bars if source.bpm is not None else DEFAULT_BARS)
    if source.drum and settings["input.velocity_mode"] == SCHEMA["input.velocity_mode"].default:
        settings.set("input.velocity_mode", "cv")  # a drum track carries its own velocities
    changes = load_controls(args.controls) if args.controls else []
    ppqn = settings["clock.ppqn"] if args.clock else None
    return build_patch(source, bpm=bpm, bars=bars, changes=changes, clock_ppqn=ppqn,
                       controls={k: settings[k] for k in CONTROLS},
                       velocity_cv_volts=settings["input.velocity_cv_volts"])


def make_engine(settings: Settings, *, threaded: bool = False) -> Any:
    from grooverack.engine.engine import Engine
    from grooverack.model.runner import ModelRunner

    runner = ModelRunner(settings["model.path"] or None, settings["model.variant"])
    return Engine(settings, runner, threaded=threaded)


def make_board(settings: Settings, recorder: OutputRecorder, engine: Any, board: str = "direct"
               ) -> Any:
    if board == "direct":
        return DirectBoard(engine, settings, recorder)
    from grooverack.io import panel  # the sim board over emulated chips
    from grooverack.io.board import load_board

    loaded = load_board(board)
    if loaded.kind not in ("sim", "pi"):
        raise SourceError(f"board {loaded.name!r} is kind {loaded.kind!r}: a virtual patch "
                          "plays a panel board over emulated chips (kind 'sim' or 'pi') or "
                          "'direct'")
    return PotlessControls(panel.patch_board(loaded, settings, recorder, engine), engine)


class PotlessControls:
    """A panel board whose front has no pot for some controls (e.g. `quantize`): patch changes
    of those reach the engine directly, as a MIDI CC or the configuration would set them."""

    def __init__(self, board: Any, engine: Any) -> None:
        self.board, self.engine = board, engine
        self.pots = set(getattr(getattr(board, "board", None), "controls", {}) or ())

    def apply(self, t: float, jack: str, value: float) -> None:
        if jack in CONTROLS and jack not in self.pots:
            self.board.advance(t)
            self.engine.set_control(jack, pot_value(jack, value))
        else:
            self.board.apply(t, jack, value)

    def __getattr__(self, name: str) -> Any:  # start, advance, finish, close, faults ...
        return getattr(self.board, name)


def render(patch: VirtualPatch, board: Any,
           progress: Callable[[float], None] | None = None) -> None:
    """Drive `board` through every change of `patch` in virtual time, then to its end."""
    board.start(0.0)
    bar_s = patch.step_seconds * 16
    last_bar = -1
    for t, jack, value in patch.changes:
        board.advance(t)
        board.apply(t, jack, value)
        if progress is not None and int(t // bar_s) != last_bar:
            last_bar = int(t // bar_s)
            progress(t)
    board.finish(patch.duration)
    if progress is not None:
        progress(patch.duration)


class Progress:
    """A text progress bar on stderr, shown only once a render has taken over a second."""

    def __init__(self, total_s: float, bar_s: float, stream: Any = None) -> None:
        self.total, self.bar_s = total_s, bar_s
        self.stream = stream if stream is not None else sys.stderr
        self.started = time.perf_counter()
        self.shown = False
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.last_tenth = -1

    def __call__(self, t: float) -> None:
        if time.perf_counter() - self.started < 1.0 and not self.shown:
            return
        frac = min(t / self.total, 1.0) if self.total else 1.0
        bars = math.ceil(self.total / self.bar_s - 1e-9)
        text = (f"rendering [{'#' * int(frac * 30):<30}] bar {min(int(t / self.bar_s) + 1, bars)}"
                f"/{bars}")
        if self.tty:
            self.stream.write("\r" + text + ("\n" if frac >= 1.0 else ""))
        elif int(frac * 10) != self.last_tenth:
            self.last_tenth = int(frac * 10)
            self.stream.write(text + "\n")
        self.stream.flush()
        self.shown = True


def summary(patch: VirtualPatch, recorder: OutputRecorder, settings: Settings, out_dir: Path | None, seconds: float) -> str:
    hits = recorder.hits(settings["outputs.velocity_volts"])
    per_voice = Counter(h.voice for h in hits if h.voice is not None)
    per_output = Counter(h.output for h in hits)
    lines = [f"grooverack sim: {patch.source}, {patch.bars:g} bars at {patch.bpm:g} BPM "
             f"({patch.duration:.1f} s) rendered in {seconds:.2f} s "
             f"({patch.duration / max(seconds, 1e-9):.0f}x real time)",
             f"  onsets in: {len(patch.gate_rises())}   hits out: {len(hits)}"]
    if per_voice:
        lines.append("  per voice: " + "  ".join(f"{name} {per_voice.get(i, 0)}"
                                                   for i, name in enumerate(VOICE_NAMES)))
    else:
        lines.append("  per output: " + "  ".join(f"{o} {n}" for o, n in sorted(per_output.items())))
    if out_dir is not None:
        lines.append(f"  wrote {out_dir}/outputs.csv, drums.mid, input.mid, roll.png")
    return "\n".join(lines)


def simulate(args: argparse.Namespace, settings: Settings | None = None
             ) -> tuple[VirtualPatch, OutputRecorder, Settings, float]:
    """Build the patch, engine and board of `args` and render; returns what render files need."""
    settings = settings if settings is not None else make_settings(args)
    patch = make_patch(args, settings)
    engine = make_engine(settings, threaded=False)
    recorder = OutputRecorder()
    board = make_board(settings, recorder, engine, getattr(args, "board", "sim"))
    started = time.perf_counter()
    progress = None if getattr(args, "quiet", False) else Progress(
        patch.duration, patch.step_seconds * 16)
    render(patch, board, progress)
    return patch, recorder, settings, time.perf_counter() - started


def write_files(out_dir: Path, patch: VirtualPatch, recorder: OutputRecorder,
                settings: Settings, seed: int) -> dict[str, Path]:
    from grooverack.io.render import lane_labels, output_notes, write_render

    outputs = settings["outputs.count"]
    title = (f"grooverack  {patch.source}  {patch.bpm:g} BPM  seed {seed}  "
             f"follow {settings['follow']:.2f}")
    return write_render(out_dir, rows=recorder.rows,
                        hits=recorder.hits(settings["outputs.velocity_volts"]),
                        notes=patch.onsets, bpm=patch.bpm, duration=patch.duration,
                        lanes=lane_labels(settings, outputs),
                        output_note=output_notes(settings, outputs), title=title)


def add_patch_arguments(parser: argparse.ArgumentParser) -> None:
    """The patch options shared by `sim` and `run --board sim`."""
    parser.add_argument("--input", metavar="SOURCE", default="line",
                        help="line (built-in Metropolix-like line), euclid:HITS:STEPS[:ROTATE], "
                             "or a MIDI file (default: line)")
    parser.add_argument("--bpm", type=float, help="tempo (default: the file's, else config tempo)")
    parser.add_argument("--seed", type=int, help="generation seed (config generation.seed)")
    parser.add_argument("--controls", metavar="FILE",
                        help="CSV of panel changes over time: time_or_bar,key,value")
    parser.add_argument("--clock", action="store_true",
                        help="patch a clock (clock.ppqn) and a reset instead of the internal clock")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from grooverack.cli import add_common

    add_common(parser)
    add_patch_arguments(parser)
    parser.add_argument("--bars", type=float,
                        help=f"length in bars (default {DEFAULT_BARS}; a MIDI file: its length)")
    parser.add_argument("--out", metavar="DIR", default=DEFAULT_OUT,
                        help=f"output folder (default ./{DEFAULT_OUT}/)")
    parser.add_argument("--board", default="sim",
                        help="sim (the reference board over emulated chips: drivers, panel code "
                             "and calibration as on a Pi), another kind = \"sim\" board, or "
                             "direct (the engine straight from the patch) (default: sim)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")


def run(args: argparse.Namespace) -> int:
    from grooverack.model.runner import ModelError

    if args.bars is not None and args.bars <= 0:
        print(f"grooverack sim: --bars must be positive, got {args.bars:g}", file=sys.stderr)
        return 2
    if not getattr(args, "verbose", False):  # the board's start-up notes are for `-v`
        logging.getLogger("grooverack.io.panel").setLevel(logging.WARNING)
    try:
        patch, recorder, settings, seconds = simulate(args)
    except (SourceError, ModelError) as exc:
        print(f"grooverack sim: {exc}", file=sys.stderr)
        return 2
    out_dir = Path(args.out)
    write_files(out_dir, patch, recorder, settings, settings["generation.seed"])
    if not args.quiet:
        print(summary(patch, recorder, settings, out_dir, seconds))
    return 0
