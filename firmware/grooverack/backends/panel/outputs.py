"""Engine events -> DAC codes and GPIO levels, phase by phase.

Engine events are written in phases per instant: falls, then velocity CVs, then rises (so a
velocity CV always settles before its trigger rises), each phase one transaction per DAC chip
(MCP4728 multi-write), then the GPIO pins. Codes come from the calibration, clamped to the
board's safe range.

Accent jacks (board outputs of kind "accent", number n): high with trigger n's rise when the
velocity CV written for that hit reaches `outputs.accent_threshold`, low with its fall (Grids'
accent outputs: a trigger of its own, so a drum without a velocity input can still accent).
`engine.accents.AccentFollower` makes those accent events from the engine's; `--board direct`
and the ES-9 use it too.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from grooverack.backends.panel.hardware import Hardware
from grooverack.boards.board import AnalogOutput, Board, DigitalOutput
from grooverack.config import Settings
from grooverack.engine.accents import AccentFollower
from grooverack.errors import BusDown

log = logging.getLogger(__name__)


PHASES = ("fall", "velocity", "rise")


class PanelOutputs:
    """Engine events -> DAC codes and GPIO levels, phase by phase (falls, velocities, rises)."""

    def __init__(self, board: Board, hw: Hardware, cal: Any, settings: Settings,
                 after_phase: Callable[[], None] | None = None) -> None:
        self.board, self.hw, self.cal = board, hw, cal
        self.velocity_volts = float(settings["outputs.velocity_volts"])
        self.jacks: dict[tuple[str, int], AnalogOutput | DigitalOutput] = {}
        for kind in ("trigger", "velocity", "accent", "clock", "reset"):
            for number, jack in board.output_jacks(kind).items():
                self.jacks[kind, number] = jack
        self.accents = AccentFollower(board.output_jacks("accent"),
                                      float(settings["outputs.accent_threshold"]))
        self.after_phase = after_phase
        self.voice: dict[str, int] = {}     # jack -> voice of its last write (for recorders)
        self.dropped: dict[tuple[str, int], int] = {}
        self.pending: dict[str, dict[int, int]] = {}  # chip -> channel -> code not yet written
        self.writes = 0
        # the writer thread (real time) and the loop thread (retries, zeroing) share the chips
        self.lock = threading.RLock()

    def volts_for(self, event: Any) -> float:
        if event.kind == "velocity":
            return float(event.value) * self.velocity_volts
        return self.board.trigger_volts if event.value > 0 else 0.0

    def write(self, events: Iterable[Any]) -> None:
        """Events of one instant (any order): written falls, velocities, rises."""
        with self.lock:
            self._write(events)

    def _write(self, events: Iterable[Any]) -> None:
        phases: dict[str, list[Any]] = {p: [] for p in PHASES}
        if self.accents.outputs:
            events = self.accents(events)
        for e in events:
            phase = "velocity" if e.kind == "velocity" else ("rise" if e.value > 0 else "fall")
            phases[phase].append(e)
        for phase in PHASES:
            if phases[phase]:
                self._write_phase(phases[phase])

    def _write_phase(self, events: list[Any]) -> None:
        dac: dict[str, list[tuple[int, int]]] = {}
        pins: list[tuple[int, int]] = []
        for e in events:
            jack = self.jacks.get((e.kind, e.output))
            if jack is None:
                key = (e.kind, e.output)
                if key not in self.dropped:
                    level = logging.WARNING if e.kind in ("trigger", "velocity") else logging.INFO
                    log.log(level, "board %s has no %s output %d: its events are dropped",
                            self.board.name, e.kind, e.output)
                self.dropped[key] = self.dropped.get(key, 0) + 1
                continue
            self.voice[jack.name] = getattr(e, "voice", -1)
            if isinstance(jack, DigitalOutput):
                pins.append((jack.pin, 1 if e.value > 0 else 0))
            else:
                code = int(self.cal.to_code(jack.name, self.volts_for(e)))
                dac.setdefault(jack.chip, []).append((jack.channel, code))
        for chip, writes in dac.items():
            self.write_dac(chip, writes)
        for pin, level in pins:
            self.hw.gpio.write(pin, level)
        self.writes += len(events)
        if self.after_phase is not None:
            self.after_phase()

    def write_dac(self, chip: str, writes: list[tuple[int, int]]) -> None:
        """One transaction; on a bus fault the codes wait for the chip to come back."""
        pending = self.pending.pop(chip, {})
        for channel, _code in writes:
            pending.pop(channel, None)
        todo = [*pending.items(), *writes]
        dac = self.hw.dacs[chip]
        try:
            self.hw.guards[chip].call(dac.write_many, todo)
        except BusDown:
            self.pending[chip] = dict(todo)

    def retry_pending(self) -> None:
        with self.lock:
            for chip in list(self.pending):
                self.write_dac(chip, [])

    def zero(self) -> None:
        """Every output to 0 V (through the calibration) and every GPIO output low."""
        with self.lock:
            self._zero()

    def _zero(self) -> None:
        per_chip: dict[str, list[tuple[int, int]]] = {}
        for out in self.board.outputs.values():
            per_chip.setdefault(out.chip, []).append((out.channel, int(self.cal.to_code(out.name, 0.0))))
        for chip, writes in per_chip.items():
            dac = self.hw.dacs[chip]
            try:
                dac.write_many(writes)
            except OSError as exc:
                log.error("%s: could not set outputs to 0 V: %s", chip, exc)
        for pin_out in self.board.gpio_outputs.values():
            self.hw.gpio.write(pin_out.pin, 0)
        self.accents.accented.clear()
