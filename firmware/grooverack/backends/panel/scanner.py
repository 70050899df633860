"""Pots and CV inputs -> panel control values (the board's `scan_hz` scan of every ADC).
"""

from __future__ import annotations

import math
from typing import Any

from grooverack.backends.panel.hardware import Hardware
from grooverack.boards.board import Board
from grooverack.config import Settings
from grooverack.errors import BusDown


class ControlScanner:
    """cv_reader: ADC codes -> smoothed pot positions and CV volts -> panel control values."""

    def __init__(self, board: Board, hw: Hardware, cal: Any, settings: Settings) -> None:
        self.board, self.hw, self.cal = board, hw, cal
        self.period = 1.0 / board.scan_hz
        self.alpha = 1.0 - math.exp(-2 * math.pi * board.pot_smoothing_hz * self.period)
        self.hysteresis = board.pot_hysteresis
        cv_names = {c.cv for c in board.controls.values() if c.cv}
        self.plan: dict[str, list[tuple[str, str, int]]] = {}  # chip -> (kind, name, channel)
        for pot in board.pots.values():
            self.plan.setdefault(pot.chip, []).append(("pot", pot.name, pot.channel))
        for name in sorted(cv_names):
            item = board.inputs[name]
            self.plan.setdefault(item.chip, []).append(("cv", name, item.channel))
        for chip in self.plan:
            self.plan[chip].sort(key=lambda p: p[2])
        self.smooth: dict[str, float] = {}
        self.reported: dict[str, float] = {}
        for control in board.controls.values():  # start where the configuration is
            value = float(settings[control.name])
            self.reported[control.name] = (value - control.low) / (control.high - control.low)
        self.first = True
        self.scans = 0

    def read_chip(self, chip: str) -> list[int]:
        return self.hw.adcs[chip].read_many([p[2] for p in self.plan[chip]])

    def scan(self) -> list[tuple[str, float]]:
        """One scan; returns the controls that moved, with their new values."""
        self.scans += 1
        for chip, items in self.plan.items():
            try:
                codes = self.hw.guards[chip].call(self.read_chip, chip)
            except BusDown:
                continue  # keep the last values
            for (kind, name, _), code in zip(items, codes, strict=True):
                if kind == "pot":
                    x = min(max(code / self.board.pots[name].code_max, 0.0), 1.0)
                else:
                    x = self.cal.to_volts(name, code)
                key = f"{kind}:{name}"
                y = self.smooth.get(key)
                self.smooth[key] = x if y is None else y + self.alpha * (x - y)
        moved = []
        for control in self.board.controls.values():
            pot = self.smooth.get(f"pot:{control.pot}")
            if pot is None:
                continue
            p = pot + control.cv_per_volt * self.smooth.get(f"cv:{control.cv}", 0.0)
            p = min(max(p, 0.0), 1.0)
            h = self.hysteresis
            if p <= h:
                p = 0.0
            elif p >= 1.0 - h:
                p = 1.0
            r = self.reported.get(control.name)
            if r is None or abs(p - r) > h or (p in (0.0, 1.0) and p != r and not self.first):
                self.reported[control.name] = p
                moved.append((control.name, control.low + (control.high - control.low) * p))
        self.first = False
        return moved
