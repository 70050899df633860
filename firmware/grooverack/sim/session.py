"""`grooverack sim`: render the module on a virtual patch in virtual time, faster than real time.

A sequencer source (the built-in line, `euclid:K:N`, or a MIDI file) becomes jack voltages
(`grooverack.sim.patch`); a *patch board* turns them into engine calls and writes the engine's
outputs as volts into an `OutputRecorder`; `grooverack.sim.render` writes the files.

Patch board seam (ARCHITECTURE.md, "Virtual patch contract"): `start(t)`, `apply(t, jack, value)`,
`advance(t_until)` (every output before `t_until` written to the recorder) and `finish(t_end)`
(trailing trigger falls). By default the patch drives the `sim` board of `hw/boards/`: jack volts
-> emulated ADC/GPIO -> the Pi's panel code and calibration -> engine -> emulated DACs/GPIO ->
recorder (`backends.panel.simboard.patch_board`). `--board direct` uses `DirectBoard` here instead: the engine
straight from the jacks (the panel's edge and pitch-settle logic in a few lines, exact volts).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import wave
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from grooverack.backends.panel.simboard import patch_board
from grooverack.boards.board import load_board
from grooverack.config import CONTROLS, SCHEMA, Settings, make_settings
from grooverack.controls import SchmittGate
from grooverack.drums.kit import output_voice_sets
from grooverack.engine.engine import Engine
from grooverack.engine.seam import EngineSeam
from grooverack.errors import SourceError
from grooverack.runtime.serve import make_engine
from grooverack.sim.direct import SCHMITT_FALL, SCHMITT_RISE, DirectBoard
from grooverack.sim.patch import (
    FILL_JACK,
    OutputRecorder,
    VirtualPatch,
    build_patch,
    pot_value,
)
from grooverack.sim.render import lane_labels, output_notes, write_render
from grooverack.sim.sources import HeardAudio, Source, load_controls, load_source
from grooverack.voices import VOICE_NAMES

DEFAULT_BARS = 8
MAX_BARS = 10_000  # a render holds every output in memory: about 300 bytes a bar


def check_bars(bars: float, what: str = "--bars") -> float:
    """`bars` if it is a usable render length, else a SourceError naming what is allowed."""
    if not math.isfinite(bars) or bars <= 0 or bars > MAX_BARS:
        raise SourceError(f"{what}: {bars:g} bars is not allowed; allowed: a number of bars "
                          f"above 0 and at most {MAX_BARS:,}")
    return bars


def choose_bpm(bpm: float | None, source: Source | HeardAudio, settings: Settings) -> float:
    """The patch tempo: `--bpm`, else the source's own (a MIDI file's), else config `tempo`;
    refused, naming the schema's range, when it is outside it (`--bpm 0` included)."""
    key = SCHEMA["tempo"]
    if bpm is not None:
        value, where = bpm, "--bpm"
    elif source.bpm is not None:
        value, where = source.bpm, f"the tempo of {source.name}; set --bpm"
    else:
        return round(float(settings["tempo"]), 3)
    value = float(key.validate(float(value), where))
    return round(value, 3)


def make_patch(args: argparse.Namespace, settings: Settings, *, bars: float | None = None
               ) -> VirtualPatch:
    """The patch of `--input/--bars/--bpm/--controls/--clock`; sets `tempo` to the patch's BPM."""
    loaded = load_source(args.input, settings)
    if isinstance(loaded, HeardAudio):  # onsets in seconds: steps once the tempo is known
        bpm = choose_bpm(args.bpm, loaded, settings)
        source = loaded.at(bpm)
        if bars is None:
            bars = args.bars or loaded.bars(bpm)
    else:
        source = loaded
        bpm = choose_bpm(args.bpm, source, settings)
    settings.set("tempo", bpm)
    if bars is None:
        bars = args.bars or (source.bars if source.bpm is not None else DEFAULT_BARS)
    check_bars(bars, "--bars" if args.bars else f"{source.name} (its length)")
    if source.drum and settings["input.velocity_mode"] == SCHEMA["input.velocity_mode"].default:
        settings.set("input.velocity_mode", "cv")  # a drum track carries its own velocities
    changes = load_controls(args.controls) if args.controls else []
    ppqn = settings["clock.ppqn"] if args.clock else None
    return build_patch(source, bpm=bpm, bars=bars, changes=changes, clock_ppqn=ppqn,
                       controls={k: settings[k] for k in CONTROLS},
                       velocity_cv_volts=settings["input.velocity_cv_volts"])


def make_board(settings: Settings, recorder: OutputRecorder, engine: EngineSeam, board: str = "direct"
               ) -> Any:
    if board == "direct":
        return DirectBoard(engine, settings, recorder)

    loaded = load_board(board)
    if loaded.kind not in ("sim", "pi"):
        raise SourceError(f"board {loaded.name!r} is kind {loaded.kind!r}: a virtual patch "
                          "plays a panel board over emulated chips (kind 'sim' or 'pi') or "
                          "'direct'")
    return PotlessControls(patch_board(loaded, settings, recorder, engine), engine)


class PotlessControls:
    """A panel board whose front has no pot for some controls (e.g. `quantize`), no fill
    jack (a GPIO pin or an ADC channel with role "fill"), or no button for an action (e.g.
    `save_preset` on a six-button panel): patch changes of those reach the engine directly, as
    a MIDI CC or note, the web page or the configuration would set them."""

    def __init__(self, board: Any, engine: EngineSeam) -> None:
        self.board, self.engine = board, engine
        panel = getattr(board, "board", None)
        self.pots = set(getattr(panel, "controls", {}) or ())
        inputs = [*(getattr(panel, "gpio_inputs", {}) or {}).values(),
                  *(getattr(panel, "inputs", {}) or {}).values()]
        self.fill_jack = any(i.role == "fill" for i in inputs)
        self.fill_gate = SchmittGate(SCHMITT_RISE, SCHMITT_FALL)
        # every action the panel itself can press: a button, SHIFT + a button, a group mute
        self.panel_actions = {*(getattr(board, "buttons", {}) or {}),
                              *(getattr(board, "shift_actions", {}) or {}),
                              *(getattr(board, "group_mutes", {}) or {})}
        self.panel_holds = set(getattr(board, "buttons", {}) or {})

    def apply(self, t: float, jack: str, value: float) -> None:
        if jack in CONTROLS and jack not in self.pots:
            self.board.advance(t)
            self.engine.set_control(jack, pot_value(jack, value))
        elif jack == FILL_JACK and not self.fill_jack:
            self.board.advance(t)
            high = self.fill_gate.update(value)
            if high is not None:
                self.engine.fill(t, high)
        elif ((jack.startswith("press.") and jack[6:] not in self.panel_actions)
              or (jack.startswith("hold.") and jack[5:] not in self.panel_holds)):
            if value >= 0.5:  # a button this panel lacks: pressed as the engine knows it
                self.board.advance(t)
                self.engine.press(jack.split(".", 1)[1])
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
    release = getattr(board, "release", None)  # the sim board's emulated lines (descriptors)
    if release is not None:
        release()
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


def summary(patch: VirtualPatch, recorder: OutputRecorder, settings: Settings,
            out_dir: Path | None, seconds: float, written: Iterable[Path] | None = None) -> str:
    """What a render played and wrote; `written`: the files (default: the four without
    drums.wav)."""
    hits = recorder.hits(settings["outputs.velocity_volts"])
    per_voice = Counter(h.voice for h in hits if h.voice is not None)
    per_output = Counter(h.output for h in hits)
    lines = [f"grooverack sim: {patch.source}, {patch.bars:g} bars at {patch.bpm:g} BPM "
             f"({patch.duration:.1f} s) rendered in {seconds:.2f} s "
             f"({patch.duration / max(seconds, 1e-9):.0f}x real time)",
             f"  onsets in: {len(patch.gate_rises())}   hits out: {len(hits)}"]
    lines.extend(f"  note: {remark}" for remark in patch.remarks)
    if getattr(recorder, "played_by", ""):
        lines.append(f"  played by: {recorder.played_by}")
    if per_voice:
        lines.append("  per voice: " + "  ".join(f"{name} {per_voice.get(i, 0)}"
                                                   for i, name in enumerate(VOICE_NAMES)))
    else:
        lines.append("  per output: " + "  ".join(f"{o} {n}" for o, n in sorted(per_output.items())))
    if out_dir is not None:
        files = list(written) if written is not None else [
            out_dir / name for name in ("outputs.csv", "drums.mid", "input.mid", "roll.png")]
        lines.append(f"  wrote {out_dir}/{', '.join(p.name for p in files)}")
        lines.extend(f"  {wav_summary(p)}" for p in files if p.suffix == ".wav" and p.exists())
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
    recorder.played_by = played_by(engine, settings)
    return patch, recorder, settings, time.perf_counter() - started


def played_by(engine: Engine, settings: Settings) -> str:
    """Who made the patterns of a render: the model, or rule patterns and why."""
    gen = engine.generator
    if settings["generation.mode"] == "rules":
        return "rule patterns (generation.mode = rules)"
    if gen.problem:
        return f"rule patterns, no model: {gen.problem}"
    variant = gen.runner.variant
    model = f"the model ({variant})" if variant else "the model"
    if gen.model_serial and not gen.started_with_model:
        return f"rule patterns until the model loaded, then {model}"
    if gen.model_serial:
        return f"{model}, replaced while playing by the files copied over it"
    return model


def drum_voices(settings: Settings) -> dict[int, tuple[str, ...]]:
    """Output -> the drum voices patched to it, from the voice map
    (`drums.kit.output_voice_sets`: crash and ride share jack 8 with 8 outputs)."""
    return output_voice_sets({name: settings[f"map.{name}"] for name in VOICE_NAMES},
                             int(settings["outputs.count"]))


def write_files(out_dir: Path, patch: VirtualPatch, recorder: OutputRecorder,
                settings: Settings, seed: int, *, wav: bool = True) -> dict[str, Path]:
    """The render files of a performance (drums.wav too unless `wav` is False)."""
    outputs = settings["outputs.count"]
    title = (f"grooverack  {patch.source}  {patch.bpm:g} BPM  seed {seed}  "
             f"follow {settings['follow']:.2f}")
    drums = ((int(settings["audio.rate"]), drum_voices(settings),
              float(settings["outputs.velocity_volts"])) if wav else None)
    return write_render(out_dir, rows=recorder.rows,
                        hits=recorder.hits(settings["outputs.velocity_volts"]),
                        notes=patch.onsets, bpm=patch.bpm, duration=patch.duration,
                        lanes=lane_labels(settings, outputs),
                        output_note=output_notes(settings, outputs), title=title, wav=drums)


def wav_summary(path: Path) -> str:
    """`drums.wav: 48000 Hz 16-bit stereo, 19.0 s, peak -6.1 dBFS` of a written file."""
    with wave.open(str(path), "rb") as w:
        rate, channels, frames = w.getframerate(), w.getnchannels(), w.getnframes()
        samples = np.frombuffer(w.readframes(frames), dtype="<i2")
    peak = int(np.max(np.abs(samples.astype(np.int32)))) if samples.size else 0
    level = f"peak {20 * math.log10(peak / 32768):.1f} dBFS" if peak else "silent"
    layout = {1: "mono", 2: "stereo"}.get(channels, f"{channels} channels")
    return f"{path.name}: {rate} Hz 16-bit {layout}, {frames / rate:.1f} s, {level}"
