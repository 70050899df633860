"""`--board direct`: the engine straight from the virtual patch, no chips in between.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from grooverack.config import CONTROLS, CV_JACKS, Settings
from grooverack.controls import SchmittGate
from grooverack.engine.accents import AccentFollower
from grooverack.engine.seam import EngineSeam
from grooverack.sim.patch import (
    GATE_HIGH_VOLTS,
    OutputRecorder,
    pot_position,
    pot_value,
)

SCHMITT_RISE, SCHMITT_FALL = 1.5, 0.5  # volts, like the module's comparator inputs
TRIGGER_VOLTS = GATE_HIGH_VOLTS  # trigger/clock/reset output level without a board definition
TAIL_S = 0.02  # after the end, still collect the falls of triggers that rose before it
CV_PER_VOLT = 0.1  # a `cv.<control>` jack: pot + this x volts, as on the reference board
ACCENT_OUTPUTS = (1, 2, 3)  # accent jacks of trigger outputs 1..3, as the reference board's ACC 1..3


class DirectBoard:
    """Patch jacks -> Engine calls -> volts into a recorder, with no chips in between.

    Gate, clock and reset are read through a Schmitt trigger; on a gate's rising edge the pitch
    (or, in velocity-CV mode, `velocity_cv`) is sampled `input.pitch_settle_ms` later, as the
    panel does, and the onset is given to the engine with the edge's time.

    Accent n (`accents`, default ACC 1..3 like the reference board) goes to `trigger_volts` with
    trigger n when that hit's velocity reaches `outputs.accent_threshold`, and falls with it
    (`engine.accents.AccentFollower`, what the Pi boards' writer uses).
    """

    def __init__(self, engine: EngineSeam, settings: Settings, recorder: OutputRecorder, *,
                 trigger_volts: float = TRIGGER_VOLTS,
                 accents: Iterable[int] = ACCENT_OUTPUTS) -> None:
        self.engine = engine
        self.settings = settings
        self.recorder = recorder
        self.trigger_volts = trigger_volts
        self.accents = AccentFollower(accents, float(settings["outputs.accent_threshold"]))
        self.jacks: dict[str, float] = {"gate": 0.0, "pitch": 0.0, "clock": 0.0, "reset": 0.0,
                                        "velocity_cv": 0.0}
        self.gates = {jack: SchmittGate(SCHMITT_RISE, SCHMITT_FALL)
                      for jack in ("gate", "clock", "reset", "fill")}
        self.pending: list[tuple[float, float]] = []  # (sample time, edge time) of onsets
        self.settle_s = settings["input.pitch_settle_ms"] / 1000.0
        self.onsets = 0
        self.pots: dict[str, float] = {}  # control -> its pot position (0..1)
        self.cvs: dict[str, float] = {}   # control -> volts at its `cv.<control>` jack

    def start(self, t: float) -> None:
        self.engine.start(t)

    def apply(self, t: float, jack: str, value: float) -> None:
        """The input `jack` changes to `value` at `t` (call `advance(t)` first)."""
        self._take_pending(t, inclusive=True)
        if jack in self.gates:
            level = self.gates[jack].update(value)
            rising = level is True
            if jack == "fill" and level is not None:  # a gate: both edges matter
                self.engine.fill(t, level)
            elif rising and jack == "gate":
                self.pending.append((t + self.settle_s, t))
            elif rising and jack == "clock":
                self.engine.clock_pulse(t)
            elif rising and jack == "reset":
                self.engine.reset(t)
            self.jacks[jack] = value
        elif jack in self.jacks:
            self.jacks[jack] = value
        elif jack in CONTROLS and jack not in self.cvs:
            self.pots[jack] = value
            self.engine.set_control(jack, pot_value(jack, value))
        elif jack in CONTROLS or jack in CV_JACKS:
            control = jack.removeprefix("cv.")
            if jack in CV_JACKS:
                self.cvs[control] = value
            else:
                self.pots[control] = value
            pot = self.pots.get(control, pot_position(control, self.settings[control]))
            position = min(max(pot + CV_PER_VOLT * self.cvs[control], 0.0), 1.0)
            self.engine.set_control(control, pot_value(control, position))
        elif jack.startswith("press."):
            if value >= 0.5:
                self.engine.press(jack[len("press."):])
        elif jack.startswith("hold."):
            pass  # no panel, no layers: a shift-layer control is set by its own name here
        else:
            raise ValueError(f"unknown jack {jack!r}")

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
        for e in self.accents(events):
            voice = e.voice if e.kind in ("velocity", "trigger") else None
            self.recorder.write(e.time, e.output, e.kind, self.volts(e), voice)
