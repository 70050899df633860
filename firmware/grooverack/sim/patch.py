"""The virtual patch: jack voltages and panel positions over virtual time, and captured outputs.

This is the "Virtual patch contract" of ARCHITECTURE.md. A `VirtualPatch` holds piecewise-constant
inputs as `(time_s, jack, value)` changes sorted by time; a board (the `sim` board over emulated
chips, or `DirectBoard` straight into the engine) consumes them with `apply(time, jack, value)` and
writes what it outputs into an `OutputRecorder` as `(time_s, output, kind, volts)`.

Jacks: `gate`, `pitch`, `clock`, `reset`, `velocity_cv` in volts; panel controls by config name
(`follow`, `morph`, ..., see `config.CONTROLS`) as 0..1 pot positions; `press.<button>` = 1.0 for a
button press; `hold.<button>` = 1.0 / 0.0 holds a button down / lets it go (`hold.shift`: the
panel's shift layer); `cv.follow`, `cv.morph`, `cv.uncertainty`, `cv.density` in volts (summed with
the pot as the board says); `fill` in volts, a gate (Schmitt trigger like `gate`: while high the
drums play a fill, which ends on the next bar line after it falls). At equal times, CV jacks
change before the gate (a sequencer settles pitch first).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from grooverack.config import CONTROLS
from grooverack.controls import ControlRange
from grooverack.sim.sources import ControlChange, InputNote, Source
from grooverack.voices import STEPS_PER_BAR, STEPS_PER_BEAT

GATE_HIGH_VOLTS = 5.0  # what the virtual sequencer sends: a +5 V gate
GATE_MIN_LOW_S = 0.001  # legato notes still get a 1 ms low so every note is a new rising edge
DRUM_GATE_S = 0.005  # a drum onset is a 5 ms trigger
DRUM_MERGE_STEPS = 0.1  # drum notes closer than this (a chord, a flam) make one onset
VELOCITY_CV_VOLTS = 5.0  # velocity_cv at velocity 1.0: the default of `input.velocity_cv_volts`
CLOCK_PULSE_S = 0.005
JACKS = ("gate", "pitch", "clock", "reset", "velocity_cv", "fill")
FILL_JACK = "fill"  # the fill gate: while high the drums play a fill (ends on the next bar line)
log = logging.getLogger(__name__)

# Order of changes at one instant: controls and CVs first, then falling, then rising edges.
_ORDER = {"pitch": 1, "velocity_cv": 1, "gate": 3, "clock": 3, "reset": 2, "fill": 3}


def note_volts(note: int) -> float:
    """1 V/oct, 0 V = C4 (MIDI 60)."""
    return (note - 60) / 12.0


def volts_note(volts: float) -> int:
    return int(round(60 + 12.0 * volts))


def pot_position(key: str, value: float) -> float:
    """A control value in schema units -> the 0..1 position of its pot (`controls.ControlRange`)."""
    return ControlRange.for_key(key).position(value)


def jack_value(jack: str, value: float) -> float:
    """A --controls change (schema units, volts for a CV jack) -> the value its jack takes."""
    if jack.startswith("press."):
        return 1.0
    if jack == FILL_JACK:  # a --controls row says 1 (high) or 0 (low): a +5 V gate or 0 V
        return GATE_HIGH_VOLTS if value >= 0.5 else 0.0
    if jack.startswith(("hold.", "cv.")):
        return float(value)
    return pot_position(jack, value)


def pot_value(key: str, position: float) -> float:
    """A 0..1 pot position -> the control value in schema units (`controls.ControlRange`)."""
    return ControlRange.for_key(key).value(position)


@dataclass(frozen=True)
class PatchNote:
    """An input note on the virtual timeline (for `input.mid` and the piano roll)."""

    time: float
    duration: float
    note: int
    velocity: float
    drum: bool


@dataclass
class VirtualPatch:
    changes: list[tuple[float, str, float]]  # sorted by time (then CVs before gates)
    duration: float  # seconds
    bpm: float
    onsets: list[PatchNote] = field(default_factory=list)
    source: str = ""
    drum: bool = False
    remarks: tuple[str, ...] = ()  # the source's notes for a person (tempo changes, meter ...)

    @property
    def step_seconds(self) -> float:
        return 60.0 / self.bpm / STEPS_PER_BEAT

    @property
    def bars(self) -> float:
        return self.duration / (self.step_seconds * STEPS_PER_BAR)

    def gate_rises(self) -> list[float]:
        """Times of the gate's rising edges (the onsets the module should hear)."""
        rises, level = [], 0.0
        for t, jack, value in self.changes:
            if jack == "gate":
                if value >= 1.5 > level:
                    rises.append(t)
                level = value
        return rises


def build_patch(source: Source, *, bpm: float, bars: float,
                controls: Mapping[str, float] | None = None,
                changes: Iterable[ControlChange] = (), clock_ppqn: int | None = None,
                velocity_cv_volts: float = VELOCITY_CV_VOLTS) -> VirtualPatch:
    """Tile `source` over `bars` bars at `bpm`, with the panel at `controls` (schema units) at time
    0, `changes` over time, and optionally a clock (`clock_ppqn` pulses per quarter, a reset pulse
    at 0). A drum source's velocities go out on `velocity_cv` (`velocity_cv_volts` = 1.0)."""
    if not 20.0 <= bpm <= 300.0:
        raise ValueError(f"bpm {bpm:g} out of range; allowed: 20 to 300")
    if bars <= 0:
        raise ValueError(f"bars must be positive, got {bars:g}")
    step_s = 60.0 / bpm / STEPS_PER_BEAT
    duration = bars * STEPS_PER_BAR * step_s
    cycles = math.ceil(bars * STEPS_PER_BAR / source.cycle_steps) if source.notes else 0
    notes: list[PatchNote] = []
    for cycle in range(cycles):
        base = cycle * source.cycle_steps
        for n in source.notes:
            t = (base + n.step) * step_s
            if t < duration - 1e-9:  # a note held past the end is cut there
                length = min(n.length * step_s, duration - t)
                notes.append(PatchNote(t, length, n.note, n.velocity, n.drum))
    out: list[tuple[float, int, str, float]] = []  # (time, order, jack, value)
    for key, value in (controls or {}).items():
        if key in CONTROLS:
            out.append((0.0, 0, key, pot_position(key, value)))
    for change in changes:
        t = change.time(bpm)
        if t < duration:
            jack = change.key
            value = jack_value(jack, change.value)
            out.append((t, 0, jack, value))
        else:
            log.warning("%scontrol change %s at %s is at or after the end of the render "
                        "(%.2f s = %g bars at %g BPM); it is ignored (render longer with --bars)",
                        f"{change.where}: " if change.where else "", change.key, change.when,
                        duration, bars, bpm)
    if source.drum:
        _drum_gates(notes, step_s, velocity_cv_volts, out)
    else:
        _melodic_gates(notes, out)
    # nothing after the end: a held note's gate (and a trigger's fall) is cut at `duration`
    out = [(min(t, duration), order, jack, v) if jack == "gate" and v == 0.0 else (t, order, jack, v)
           for t, order, jack, v in out]
    if clock_ppqn:
        period = 60.0 / bpm / clock_ppqn
        out.append((0.0, _ORDER["reset"], "reset", GATE_HIGH_VOLTS))
        out.append((CLOCK_PULSE_S, _ORDER["reset"], "reset", 0.0))
        for i in range(math.ceil(duration / period)):
            t = i * period
            out.append((t, _ORDER["clock"], "clock", GATE_HIGH_VOLTS))
            out.append((min(t + min(CLOCK_PULSE_S, period / 2), duration), 2, "clock", 0.0))
    out.sort(key=lambda c: (c[0], c[1]))
    return VirtualPatch([(t, jack, v) for t, _, jack, v in out], duration, bpm, notes,
                        source.name, source.drum, tuple(getattr(source, "remarks", ())))


def _melodic_gates(notes: list[PatchNote], out: list[tuple[float, int, str, float]]) -> None:
    last_pitch = None
    for i, n in enumerate(notes):
        end = n.time + n.duration
        if i + 1 < len(notes):
            end = min(end, notes[i + 1].time - GATE_MIN_LOW_S)
        end = max(end, n.time + GATE_MIN_LOW_S)
        volts = note_volts(n.note)
        if volts != last_pitch:
            out.append((n.time, _ORDER["pitch"], "pitch", volts))
            last_pitch = volts
        out.append((n.time, _ORDER["gate"], "gate", GATE_HIGH_VOLTS))
        out.append((end, 2, "gate", 0.0))


def _drum_gates(notes: list[PatchNote], step_s: float, full_volts: float,
                out: list[tuple[float, int, str, float]]) -> None:
    merge_s = DRUM_MERGE_STEPS * step_s
    onsets: list[list[float]] = []  # [time, velocity]
    for n in notes:
        if onsets and n.time - onsets[-1][0] < merge_s:
            onsets[-1][1] = max(onsets[-1][1], n.velocity)
        else:
            onsets.append([n.time, n.velocity])
    for i, (t, velocity) in enumerate(onsets):
        width = DRUM_GATE_S
        if i + 1 < len(onsets):
            width = min(width, (onsets[i + 1][0] - t) / 2)
        out.append((t, _ORDER["velocity_cv"], "velocity_cv", velocity * full_volts))
        out.append((t, _ORDER["gate"], "gate", GATE_HIGH_VOLTS))
        out.append((t + width, 2, "gate", 0.0))


class OutputRow(NamedTuple):
    time: float
    output: int
    kind: str
    volts: float
    voice: int | None = None  # the model voice behind a trigger/velocity, when the board knows it


class OutputRecorder:
    """Collects what a board writes to its outputs, in the order written."""

    def __init__(self) -> None:
        self.rows: list[OutputRow] = []
        self.played_by = ""  # who made the patterns (`sim.session.played_by`), for the summary

    def write(self, time: float, output: int, kind: str, volts: float,
              voice: int | None = None) -> None:
        self.rows.append(OutputRow(float(time), int(output), str(kind), float(volts), voice))

    def __len__(self) -> int:
        return len(self.rows)

    def hits(self, velocity_full_volts: float) -> list[Hit]:
        """Each trigger rise with the velocity CV its output held at that moment (0..1)."""
        level: dict[int, float] = {}
        hits = []
        high: dict[int, bool] = {}
        for row in sorted(self.rows, key=lambda r: r.time):
            if row.kind == "velocity":
                level[row.output] = row.volts
            elif row.kind == "trigger":
                rising = row.volts > 0.5 and not high.get(row.output, False)
                high[row.output] = row.volts > 0.5
                if rising:
                    volts = level.get(row.output, velocity_full_volts)
                    velocity = min(max(volts / velocity_full_volts, 0.0), 1.0) if velocity_full_volts else 1.0
                    hits.append(Hit(row.time, row.output, velocity, row.voice))
        return hits


class Hit(NamedTuple):
    time: float
    output: int
    velocity: float
    voice: int | None


__all__ = [
    "InputNote", "PatchNote", "VirtualPatch", "OutputRecorder", "OutputRow", "Hit",
    "build_patch", "note_volts", "volts_note", "pot_position", "pot_value", "jack_value", "JACKS",
]
