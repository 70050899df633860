"""Pots and CV inputs -> panel control values (the board's `scan_hz` scan of every ADC).
"""

from __future__ import annotations

from typing import Any

from grooverack.backends.panel.hardware import Hardware
from grooverack.boards.board import Board
from grooverack.config import Settings
from grooverack.controls import ControlRange, ControlReader, smoothing_alpha
from grooverack.errors import BusDown


class ControlScanner:
    """cv_reader: ADC codes -> pot positions and CV volts, handed to one `controls.ControlReader`
    per control (summing, smoothing, hysteresis, the range: `grooverack.controls`)."""

    def __init__(self, board: Board, hw: Hardware, cal: Any, settings: Settings) -> None:
        self.board, self.hw, self.cal = board, hw, cal
        self.period = 1.0 / board.scan_hz
        alpha = smoothing_alpha(board.pot_smoothing_hz, self.period)
        cv_names = {c.cv for c in board.controls.values() if c.cv}
        self.plan: dict[str, list[tuple[str, str, int]]] = {}  # chip -> (kind, name, channel)
        for pot in board.pots.values():
            self.plan.setdefault(pot.chip, []).append(("pot", pot.name, pot.channel))
        for name in sorted(cv_names):
            item = board.inputs[name]
            self.plan.setdefault(item.chip, []).append(("cv", name, item.channel))
        for chip in self.plan:
            self.plan[chip].sort(key=lambda p: p[2])
        # one reader per control (the door: summing, smoothing, hysteresis), starting where the
        # configuration is
        self.readers = {
            c.name: ControlReader(ControlRange.for_key(c.name, c.low, c.high, f"board {board.path}"),
                                  cv_per_volt=c.cv_per_volt, alpha=alpha,
                                  hysteresis=board.pot_hysteresis, start=settings[c.name])
            for c in board.controls.values()}
        self.scans = 0

    def read_chip(self, chip: str) -> list[int]:
        return self.hw.adcs[chip].read_many([p[2] for p in self.plan[chip]])

    def scan(self) -> list[tuple[str, float]]:
        """One scan; returns the controls that moved, with their new values."""
        self.scans += 1
        pots: dict[str, float] = {}
        cvs: dict[str, float] = {}
        for chip, items in self.plan.items():
            try:
                codes = self.hw.guards[chip].call(self.read_chip, chip)
            except BusDown:
                continue  # keep the last values
            for (kind, name, _), code in zip(items, codes, strict=True):
                if kind == "pot":
                    pots[name] = code / self.board.pots[name].code_max
                else:
                    cvs[name] = self.cal.to_volts(name, code)
        moved = []
        for control in self.board.controls.values():
            reader = self.readers[control.name]
            if control.pot in pots:
                reader.pot(pots[control.pot])
            if control.cv in cvs:
                reader.cv(cvs[control.cv])
            value = reader.read()
            if value is not None:
                moved.append((control.name, value))
        return moved
