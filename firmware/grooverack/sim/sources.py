"""Sequencer sources for the virtual patch: what a sequencer would send into the module.

A source is a list of `InputNote`s in musical time (16th steps, micro-timing as fractional steps)
plus the length of its cycle; `grooverack.sim.patch.build_patch` turns it into jack voltages over
virtual time. Sources:

- `line` (the default): a Metropolix-like stage sequencer line: 2-octave melody, varied pulse
  counts, gate modes (single / multi / hold / rest), ratchets and gate lengths, with an accumulator
  transposing odd stages on the second pass (a 4-bar cycle);
- `euclid:K:N[:R]`: K onsets spread over N 16ths, rotated by R, the first onset accented an octave up;
- a MIDI file: a monophonic track (the busiest non-drum track) becomes gate + pitch CV; a drum
  track (channel 10, or a polyphonic track of GM drum notes) becomes a groove with velocities.
"""

from __future__ import annotations

import bisect
import csv
import logging
import math
import struct
from dataclasses import dataclass
from pathlib import Path

from grooverack.config import BUTTONS, CONTROLS, CV_JACKS, CV_VOLTS, SCHEMA
from grooverack.errors import ConfigError, SourceError
from grooverack.storage import read_text_bounded
from grooverack.voices import NOTE_TO_VOICE, STEPS_PER_BAR

DRUM_CHANNEL = 9  # MIDI channel 10, counted from 0
DEFAULT_TEMPO_US = 500_000  # a MIDI file's tempo before its first tempo event: 120 BPM
log = logging.getLogger(__name__)
BUILTIN = ("line",)


@dataclass(frozen=True)
class InputNote:
    """One note of the sequencer: a gate of `length` steps from `step`, at a MIDI `note`.

    For a melodic source the pitch CV is `(note - 60) / 12` volts (1 V/oct, 0 V = C4); for a drum
    source `note` is the GM drum note and only the onset and `velocity` reach the module.
    """

    step: float
    length: float
    note: int
    velocity: float = 0.8
    drum: bool = False


@dataclass(frozen=True)
class Source:
    name: str
    notes: tuple[InputNote, ...]  # sorted by step
    cycle_steps: float  # the notes repeat every this many steps
    drum: bool = False
    bpm: float | None = None  # a MIDI file's own tempo (the one in effect at its first note)
    remarks: tuple[str, ...] = ()  # what a person should know about how the file was read

    @property
    def bars(self) -> int:
        return max(1, math.ceil(self.cycle_steps / STEPS_PER_BAR - 1e-9))


# ---------------------------------------------------------------------------------------------
# The built-in line

# (note, pulses, gate mode, ratchets, gate length): one pass is 32 steps (2 bars).
_STAGES: tuple[tuple[int, int, str, int, float], ...] = (
    (48, 4, "single", 1, 0.5),
    (55, 2, "multi", 1, 0.4),
    (63, 3, "hold", 1, 0.9),
    (60, 1, "single", 3, 0.5),
    (58, 2, "single", 1, 0.5),
    (67, 4, "multi", 1, 0.3),
    (48, 3, "single", 1, 0.6),
    (72, 1, "single", 2, 0.5),
    (51, 4, "hold", 1, 0.75),
    (55, 2, "single", 1, 0.5),
    (62, 2, "multi", 1, 0.5),
    (65, 1, "rest", 1, 0.5),
    (60, 3, "single", 4, 0.5),
)
_LOW, _HIGH = 48, 72  # C3..C5: two octaves


def builtin_line() -> Source:
    """The default input: a 4-bar stage-sequencer line (two passes, the second transposed)."""
    notes: list[InputNote] = []
    step = 0
    for accumulate in (0, 5):  # second pass: odd stages up a fourth, folded into two octaves
        for index, (note, pulses, mode, ratchets, length) in enumerate(_STAGES):
            if index % 2 and accumulate:
                note += accumulate
                if note > _HIGH:
                    note -= 12
            if mode == "hold":
                notes.append(InputNote(step, pulses * length, note))
            elif mode in ("single", "multi"):
                for pulse in range(pulses if mode == "multi" else 1):
                    part = 1.0 / ratchets
                    for r in range(ratchets):
                        notes.append(InputNote(step + pulse + r * part, part * length, note))
            step += pulses
    return Source("line", tuple(notes), float(step))


def euclid(hits: int, steps: int, rotate: int = 0) -> list[bool]:
    """`hits` onsets spread as evenly as possible over `steps` (Bjorklund's pattern), rotated."""
    if not 1 <= steps <= 64:
        raise SourceError(f"euclid: steps must be 1..64, got {steps}")
    if not 0 <= hits <= steps:
        raise SourceError(f"euclid: hits must be 0..{steps}, got {hits}")
    pattern = [(i * hits) % steps < hits for i in range(steps)]
    rotate %= steps
    return pattern[-rotate:] + pattern[:-rotate] if rotate else pattern


def euclid_source(spec: str) -> Source:
    parts = spec.split(":")
    try:
        numbers = [int(p) for p in parts[1:]]
    except ValueError:
        numbers = []
    if len(numbers) not in (2, 3):
        raise SourceError(f"source {spec!r}: expected euclid:HITS:STEPS or euclid:HITS:STEPS:ROTATE")
    pattern = euclid(*numbers)
    first = pattern.index(True) if any(pattern) else -1
    notes = tuple(InputNote(float(i), 0.5, 72 if i == first else 60)
                  for i, on in enumerate(pattern) if on)
    return Source(spec, notes, float(numbers[1]))


# ---------------------------------------------------------------------------------------------
# MIDI files

def _file_notes(midi) -> tuple[dict[tuple[int, int], list[tuple[int, int, int, int]]],
                              list[tuple[int, int]], list[tuple[int, int, int]]]:
    """{(track, channel): [(start_tick, end_tick, note, velocity)]}, the tempo events
    [(tick, microseconds per beat)] and the time signatures [(tick, numerator, denominator)],
    both sorted by tick (tempo events of every track: they apply to the whole file)."""
    lanes: dict[tuple[int, int], list[tuple[int, int, int, int]]] = {}
    tempos: list[tuple[int, int]] = []
    meters: list[tuple[int, int, int]] = []
    for index, track in enumerate(midi.tracks):
        tick = 0
        open_notes: dict[tuple[int, int], tuple[int, int]] = {}
        for msg in track:
            tick += msg.time
            if msg.type == "set_tempo":
                tempos.append((tick, msg.tempo))
            elif msg.type == "time_signature":
                meters.append((tick, msg.numerator, msg.denominator))
            elif msg.type == "note_on" and msg.velocity > 0:
                key = (msg.channel, msg.note)
                if key in open_notes:  # re-struck before its note-off: close the old one
                    start, vel = open_notes.pop(key)
                    lanes.setdefault((index, msg.channel), []).append((start, tick, msg.note, vel))
                open_notes[key] = (tick, msg.velocity)
            elif msg.type in ("note_off", "note_on"):
                key = (msg.channel, msg.note)
                if key in open_notes:
                    start, vel = open_notes.pop(key)
                    lanes.setdefault((index, msg.channel), []).append((start, tick, msg.note, vel))
        for (channel, note), (start, vel) in open_notes.items():
            lanes.setdefault((index, channel), []).append((start, tick, note, vel))
    for notes in lanes.values():
        notes.sort()
    tempos.sort(key=lambda e: e[0])
    meters.sort(key=lambda e: e[0])
    return lanes, tempos, meters


class TempoMap:
    """Ticks -> 16th steps at one reference tempo, through a file's tempo changes: a note's step
    times the step length at `bpm` is its time in seconds, as the file plays it."""

    def __init__(self, tempos: list[tuple[int, int]], ticks_per_beat: int, reference_us: int
                 ) -> None:
        self.per_step = ticks_per_beat / 4.0
        self.reference_us = reference_us
        self.ticks: list[int] = [0]
        self.tempo_us: list[int] = [DEFAULT_TEMPO_US]
        for tick, tempo in tempos:
            if tick == self.ticks[-1]:
                self.tempo_us[-1] = tempo
            else:
                self.ticks.append(tick)
                self.tempo_us.append(tempo)
        self.steps: list[float] = [0.0]  # step (at the reference tempo) where each segment starts
        for i in range(1, len(self.ticks)):
            self.steps.append(self.steps[-1] + self._span(i - 1, self.ticks[i] - self.ticks[i - 1]))

    def _span(self, segment: int, ticks: int) -> float:
        if self.tempo_us[segment] == self.reference_us:  # exact when the file keeps one tempo
            return ticks / self.per_step
        return ticks / self.per_step * self.tempo_us[segment] / self.reference_us

    @property
    def uniform(self) -> bool:
        """One tempo (the reference) throughout: ticks map to steps as plain ticks per 16th."""
        return all(t == self.reference_us for t in self.tempo_us)

    def tempo_at(self, tick: int) -> int:
        return self.tempo_us[bisect.bisect_right(self.ticks, tick) - 1]

    def step(self, tick: int) -> float:
        i = bisect.bisect_right(self.ticks, tick) - 1
        return self.steps[i] + self._span(i, tick - self.ticks[i])


def _is_drum_lane(channel: int, notes: list[tuple[int, int, int, int]]) -> bool:
    if channel == DRUM_CHANNEL:
        return True
    if not all(n[2] in NOTE_TO_VOICE for n in notes):
        return False
    starts = [n[0] for n in notes]
    return len(set(starts)) < len(starts)  # chords of drum notes: a kit, not a bass line


def midi_source(path: str | Path) -> Source:
    """A MIDI file -> a Source: the drum lanes if any, else the busiest lane made monophonic."""
    import mido

    path = Path(path)
    try:
        midi = mido.MidiFile(str(path))
    except (OSError, EOFError, ValueError, KeyError, IndexError, TypeError, struct.error) as exc:
        raise SourceError(f"{path}: not a readable MIDI file ({_why(exc)})") from None
    if midi.type == 2:
        raise SourceError(f"{path}: MIDI type 2 (independent sequences) is not supported; "
                          "allowed: type 0 or 1")
    if midi.ticks_per_beat < 0:
        raise SourceError(f"{path}: the file is timed in SMPTE frames (division "
                          f"0x{midi.ticks_per_beat & 0xFFFF:04x}), which is not supported; "
                          "allowed: a file timed in ticks per beat (what sequencers export)")
    if midi.ticks_per_beat == 0:
        raise SourceError(f"{path}: the file says 0 ticks per beat, so its notes have no time; "
                          "allowed: 1 to 32767 ticks per beat")
    lanes, tempos, meters = _file_notes(midi)
    if not lanes:
        raise SourceError(f"{path}: the file has no notes")
    first_tick = min(n[0] for notes in lanes.values() for n in notes)
    plain = TempoMap(tempos, midi.ticks_per_beat, DEFAULT_TEMPO_US)
    reference = plain.tempo_at(first_tick)
    tmap = TempoMap(tempos, midi.ticks_per_beat, reference)
    bpm = mido.tempo2bpm(reference) if tempos else None
    remarks = []
    last_tick = max(n[1] for notes in lanes.values() for n in notes)
    played = [reference]  # the tempi the notes are played at, in order
    for tick, tempo in zip(tmap.ticks, tmap.tempo_us, strict=True):
        if first_tick < tick < last_tick and tempo != played[-1]:
            played.append(tempo)
    if len(played) > 1:
        seen = " -> ".join(f"{mido.tempo2bpm(t):.4g}" for t in played)
        remarks.append(f"{path.name}: the tempo changes {len(played) - 1} time(s) ({seen} BPM); "
                       f"placed at {bpm:.4g} BPM (the tempo at the first note) with every change "
                       "converted to seconds")
    odd = sorted({(num, den) for _, num, den in meters if (num, den) != (4, 4)})
    if odd:
        names = ", ".join(f"{num}/{den}" for num, den in odd)
        remarks.append(f"{path.name}: time signature {names}; the render counts bars of 4/4 "
                       f"({STEPS_PER_BAR} 16ths), so --bars and bar numbers are 4/4 bars")
    for remark in remarks:
        log.warning(remark)
    drums = [notes for (_, ch), notes in lanes.items() if _is_drum_lane(ch, notes)]
    if drums:
        merged = sorted(n for notes in drums for n in notes)
        notes = tuple(_input_note(tmap, s, e, note, vel, True) for s, e, note, vel in merged)
        drum = True
    else:
        busiest = max(lanes.values(), key=len)
        notes = tuple(_monophonic(busiest, tmap))
        drum = False
    end = max(n.step + n.length for n in notes)
    cycle = max(1, math.ceil(end / STEPS_PER_BAR - 1e-6)) * STEPS_PER_BAR
    return Source(path.name, notes, float(cycle), drum=drum, bpm=bpm, remarks=tuple(remarks))


def _why(exc: BaseException) -> str:
    """What went wrong reading a file, never empty."""
    text = str(exc).strip()
    if isinstance(exc, EOFError):
        return f"the file ends early{': ' + text if text else ''}"
    return text or type(exc).__name__


def _input_note(tmap: TempoMap, start: int, end: int, note: int, vel: int, drum: bool = False
                ) -> InputNote:
    if tmap.uniform:
        return InputNote(start / tmap.per_step, max(end - start, 1) / tmap.per_step, note,
                         vel / 127.0, drum)
    step = tmap.step(start)
    return InputNote(step, tmap.step(max(end, start + 1)) - step, note, vel / 127.0, drum)


def _monophonic(notes: list[tuple[int, int, int, int]], tmap: TempoMap) -> list[InputNote]:
    """Highest note of each chord; a note ends where the next one starts (one gate, one pitch)."""
    by_start: dict[int, tuple[int, int, int, int]] = {}
    for n in notes:
        if n[0] not in by_start or n[2] > by_start[n[0]][2]:
            by_start[n[0]] = n
    starts = sorted(by_start)
    out = []
    for i, start in enumerate(starts):
        _, end, note, vel = by_start[start]
        if i + 1 < len(starts):
            end = min(end, starts[i + 1])
        out.append(_input_note(tmap, start, end, note, vel))
    return out


def load_source(spec: str | None) -> Source:
    """`line` (or None), `euclid:K:N[:R]`, or a path to a MIDI file."""
    if spec is None or spec == "line":
        return builtin_line()
    if spec.startswith("euclid:"):
        return euclid_source(spec)
    path = Path(spec)
    if path.suffix.lower() in (".mid", ".midi") or path.exists():
        if not path.is_file():
            raise SourceError(f"{path}: MIDI file not found")
        return midi_source(path)
    raise SourceError(f"unknown source {spec!r}; allowed: line, euclid:HITS:STEPS[:ROTATE], "
                      f"or a .mid file")


# ---------------------------------------------------------------------------------------------
# Panel changes over time

@dataclass(frozen=True)
class ControlChange:
    """`key` set to `value` (schema units) at `seconds`, or at `bar` (counted from 1)."""

    key: str
    value: float
    seconds: float | None = None
    bar: float | None = None
    where: str = ""  # the file and row it came from, for messages

    @property
    def when(self) -> str:
        return f"{self.seconds:g} s" if self.seconds is not None else f"bar {self.bar:g}"

    def time(self, bpm: float) -> float:
        if self.seconds is not None:
            return self.seconds
        return (self.bar - 1.0) * 4 * 60.0 / bpm




MAX_CONTROLS_BYTES = 4 * 1024 * 1024
MAX_CONTROL_ROWS = 100_000  # a change every 10 ms for 16 minutes: more is a mistake


def load_controls(path: str | Path) -> list[ControlChange]:
    """A CSV of `time_or_bar,key,value` rows: `2.5s,follow,0.3` (seconds) or `5,morph,1` (bar 5,
    counted from 1; `5.5` is half-way through bar 5). `press,BUTTON` rows press a panel button;
    `hold,BUTTON` ... `release,BUTTON` hold one down (`hold,shift`: pots work the shift layer).
    `cv.follow`, `cv.morph`, `cv.uncertainty`, `cv.density` rows set a CV jack, in volts.
    `fill` rows set the fill gate: `5,fill,1` high from bar 5, `6.5,fill,0` low again (the fill
    ends on the next bar line).
    Blank lines, `#` comments and a `time,key,value` header are skipped."""
    path = Path(path)
    # bounded (not /dev/zero for ever); Excel's "CSV UTF-8" (a BOM, CRLF line ends) accepted
    text = read_text_bounded(path, "controls file", SourceError, MAX_CONTROLS_BYTES)
    lines = text.splitlines()
    if len(lines) > MAX_CONTROL_ROWS:
        raise SourceError(f"controls file {path}: {len(lines):,} lines; allowed: at most "
                          f"{MAX_CONTROL_ROWS:,} rows of time_or_bar,key,value")
    changes = []
    for lineno, row in enumerate(csv.reader(lines), 1):
        row = [cell.strip() for cell in row]
        if not row or not row[0] or row[0].startswith("#"):
            continue
        if lineno == 1 and row[0].lower() in ("time", "time_or_bar", "bar", "when"):
            continue
        where = f"{path}:{lineno}"
        if len(row) != 3:
            raise SourceError(f"{where}: expected time_or_bar,key,value, found {','.join(row)!r}")
        when, key, raw = row
        try:
            seconds, bar = (float(when[:-1]), None) if when.endswith("s") else (None, float(when))
        except ValueError:
            raise SourceError(f"{where}: time {when!r} is neither seconds (2.5s) nor a bar (3)") from None
        if not math.isfinite(seconds if seconds is not None else bar):
            raise SourceError(f"{where}: time {when!r} is not a finite number; allowed: seconds "
                              "(2.5s) from 0, or a bar (3) from 1")
        if (seconds is not None and seconds < 0) or (bar is not None and bar < 1):
            raise SourceError(f"{where}: time {when!r} is before the start (bars count from 1)")
        if key in ("press", "hold", "release"):
            if raw not in BUTTONS:
                raise SourceError(f"{where}: button {raw!r} unknown; allowed: {', '.join(BUTTONS)}")
            if key == "press":
                changes.append(ControlChange(f"press.{raw}", 1.0, seconds, bar, where))
            else:  # a button held down until its release row (SHIFT and its layer)
                changes.append(ControlChange(f"hold.{raw}", float(key == "hold"), seconds, bar,
                                             where))
            continue
        if key == "fill":
            level = {"1": 1.0, "0": 0.0, "on": 1.0, "off": 0.0, "high": 1.0, "low": 0.0}.get(
                raw.lower())
            if level is None:
                raise SourceError(f"{where}: fill = {raw!r} is not allowed; allowed: 1 (the gate "
                                  "high) or 0 (low), also on/off, high/low")
            changes.append(ControlChange(key, level, seconds, bar, where))
            continue
        if key in CV_JACKS:
            try:
                volts = float(raw)
            except ValueError:
                volts = math.nan
            if not -CV_VOLTS <= volts <= CV_VOLTS:  # also refuses nan
                raise SourceError(f"{where}: {key} = {raw!r} is not allowed; allowed: volts from "
                                  f"{-CV_VOLTS:g} to {CV_VOLTS:g}")
            changes.append(ControlChange(key, volts, seconds, bar, where))
            continue
        if key not in CONTROLS:
            raise SourceError(f"{where}: {key!r} is not a panel control; allowed: "
                              f"{', '.join(CONTROLS)}, {', '.join(CV_JACKS)} (volts), fill "
                              "(1/0), press, hold, release")
        try:
            value = SCHEMA[key].validate(raw, where)
        except ConfigError as exc:
            raise SourceError(str(exc)) from None
        changes.append(ControlChange(key, float(value), seconds, bar, where))
    return changes
