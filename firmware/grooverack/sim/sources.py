"""Sequencer sources for the virtual patch: what a sequencer would send into the module.

A source is a list of `InputNote`s in musical time (16th steps, micro-timing as fractional steps)
plus the length of its cycle; `grooverack.sim.patch.build_patch` turns it into jack voltages over
virtual time. Sources:

- `line` (the default): a Metropolix-like stage sequencer line: 2-octave melody, varied pulse
  counts, gate modes (single / multi / hold / rest), ratchets and gate lengths, with an accumulator
  transposing odd stages on the second pass (a 4-bar cycle);
- `euclid:K:N[:R]`: K onsets spread over N 16ths, rotated by R, the first onset accented an octave up;
- a MIDI file: a monophonic track (the busiest non-drum track) becomes gate + pitch CV; a drum
  track (channel 10, or a polyphonic track of GM drum notes) becomes a groove with velocities;
- an audio file (WAV, FLAC, OGG through soundfile): the onsets the detector (grooverack.onsets)
  hears in it, each a trigger with its velocity, at the time of its own sample (`HeardAudio`;
  its steps depend on the tempo, so `HeardAudio.at(bpm)` makes the Source).
"""

from __future__ import annotations

import bisect
import csv
import logging
import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from grooverack.config import BUTTONS, CONTROLS, CV_JACKS, CV_VOLTS, SCHEMA, Settings
from grooverack.errors import ConfigError, SourceError
from grooverack.onsets import OnsetParams, check_rate, detect
from grooverack.storage import read_text_bounded
from grooverack.voices import NOTE_TO_VOICE, STEPS_PER_BAR

if TYPE_CHECKING:
    import mido

DRUM_CHANNEL = 9  # MIDI channel 10, counted from 0
DEFAULT_TEMPO_US = 500_000  # a MIDI file's tempo before its first tempo event: 120 BPM
log = logging.getLogger(__name__)
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".aif", ".aiff")
HEARD_NOTE = 38  # input.mid: each onset heard in audio is this GM drum note (channel 10)


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

def _file_notes(midi: mido.MidiFile) -> tuple[dict[tuple[int, int], list[tuple[int, int, int, int]]],
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


# ---------------------------------------------------------------------------------------------
# Audio files: the onsets heard

@dataclass(frozen=True)
class HeardAudio:
    """The onsets the detector heard in an audio file, in seconds (the tempo is not known yet)."""

    name: str
    onsets: tuple[tuple[float, float], ...]  # (seconds, velocity 0..1), in time order
    seconds: float  # the file's length
    remarks: tuple[str, ...] = ()
    bpm: float | None = None
    drum: bool = True

    def at(self, bpm: float) -> Source:
        """The onsets as a drum Source at `bpm` (one cycle = the file's length in whole bars)."""
        per_step = bpm * 4 / 60.0
        notes = tuple(InputNote(t * per_step, 0.25, HEARD_NOTE, v, True) for t, v in self.onsets)
        steps = self.seconds * per_step
        cycle = max(1, math.ceil(steps / STEPS_PER_BAR - 1e-6)) * STEPS_PER_BAR
        return Source(self.name, notes, float(cycle), drum=True, remarks=self.remarks)

    def bars(self, bpm: float) -> float:
        return max(self.seconds * bpm * 4 / 60.0 / STEPS_PER_BAR, 1.0 / STEPS_PER_BAR)


def _sniff(path: Path) -> str:
    """What a file that is not readable audio seems to be, for the error message."""
    try:
        head = path.read_bytes()[:12]
    except OSError as exc:
        return f"cannot read it ({exc.strerror or exc})"
    known = {b"MThd": "a MIDI file", b"ID3": "an MP3 file", b"\xff\xfb": "an MP3 file",
             b"fLaC": "a FLAC file", b"OggS": "an Ogg file", b"RIFF": "a RIFF file",
             b"FORM": "an AIFF file", b"PK": "a zip archive", b"%PDF": "a PDF"}
    for magic, what in known.items():
        if head.startswith(magic):
            return what
    if not head:
        return "an empty file"
    return f"a file starting {head[:8]!r}"


def read_audio(path: str | Path, channel: int = 1) -> tuple[np.ndarray, int, str]:
    """(samples of channel `channel` (1-based) as float64, sample rate, a description) of an
    audio file; SourceError naming the file and what was found when it cannot be used."""
    import soundfile

    path = Path(path)
    if not path.is_file():
        raise SourceError(f"{path}: audio file not found")
    try:
        info = soundfile.info(str(path))
        data, rate = soundfile.read(str(path), dtype="float64", always_2d=True)
    except (RuntimeError, soundfile.LibsndfileError, TypeError, ValueError) as exc:
        raise SourceError(f"{path}: not a readable audio file ({_why(exc)}); found: "
                          f"{_sniff(path)}; allowed: WAV, FLAC or OGG audio, or a MIDI file") from None
    check_rate(rate, str(path))
    channels = data.shape[1]
    if not 1 <= channel <= channels:
        raise SourceError(f"{path}: input.audio_channel = {channel} but the file has {channels} "
                          f"channel(s); allowed: 1 to {channels}")
    what = (f"{info.format} {info.subtype}, {rate} Hz, {channels} channel(s), "
            f"{len(data) / rate:.2f} s")
    return data[:, channel - 1], int(rate), what


def audio_source(path: str | Path, params: OnsetParams | None = None, channel: int = 1
                 ) -> HeardAudio:
    """The onsets heard in an audio file, streamed through the detector as a device would be."""
    path = Path(path)
    samples, rate, what = read_audio(path, channel)
    onsets = detect(samples, rate, params)
    remarks = [f"{path.name}: {what}; heard {len(onsets)} onset(s) on channel {channel}"]
    peak = float(np.abs(samples).max()) if len(samples) else 0.0
    if peak >= 0.999:
        clipped = float(np.mean(np.abs(samples) >= 0.999))
        remarks.append(f"{path.name}: clipped ({clipped:.2%} of the samples at full scale); "
                       "onsets are still found, velocities of the loudest hits are flattened")
    if not onsets:
        level = f"peak {20 * np.log10(peak):.1f} dBFS" if peak > 0 else "digital silence"
        log.warning("%s: no onsets heard (%s): the groove stays empty and the module plays "
                    "its latents A/B", path, level)
    return HeardAudio(path.name, tuple((o.time, o.velocity) for o in onsets),
                      len(samples) / rate, tuple(remarks))


def source_at(loaded: Source | HeardAudio, bpm: float) -> Source:
    """A loaded source as the Source to tile at `bpm` (audio onsets become steps)."""
    return loaded.at(bpm) if isinstance(loaded, HeardAudio) else loaded


def load_source(spec: str | None, settings: Settings | None = None) -> Source | HeardAudio:
    """`line` (or None), `euclid:K:N[:R]`, a path to a MIDI file, or to an audio file (heard
    with the onset detector's settings and `input.audio_channel` of `settings`)."""
    if spec is None or spec == "line":
        return builtin_line()
    if spec.startswith("euclid:"):
        return euclid_source(spec)
    path = Path(spec)
    suffix = path.suffix.lower()
    if suffix in AUDIO_SUFFIXES or (path.is_file() and suffix not in (".mid", ".midi")
                                    and _sniff(path) != "a MIDI file"):
        params = OnsetParams.from_settings(settings) if settings is not None else None
        channel = int(settings["input.audio_channel"]) if settings is not None else 1
        return audio_source(path, params, channel)
    if suffix in (".mid", ".midi") or path.exists():
        if not path.is_file():
            raise SourceError(f"{path}: MIDI file not found")
        return midi_source(path)
    raise SourceError(f"unknown source {spec!r}; allowed: line, euclid:HITS:STEPS[:ROTATE], "
                      f"a .mid file, or an audio file ({', '.join(AUDIO_SUFFIXES)})")


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
        if self.bar is not None:
            return (self.bar - 1.0) * 4 * 60.0 / bpm
        raise ValueError(f"{self.where}: a control change needs seconds or a bar")




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
        in_seconds = when.endswith("s")
        try:
            moment = float(when[:-1] if in_seconds else when)
        except ValueError:
            raise SourceError(f"{where}: time {when!r} is neither seconds (2.5s) nor a bar (3)") from None
        if not math.isfinite(moment):
            raise SourceError(f"{where}: time {when!r} is not a finite number; allowed: seconds "
                              "(2.5s) from 0, or a bar (3) from 1")
        seconds, bar = (moment, None) if in_seconds else (None, moment)
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
