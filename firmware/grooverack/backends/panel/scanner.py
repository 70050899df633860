"""Pots and CV inputs -> panel control values (the board's `scan_hz` scan of every ADC).

The shift layer (a board's `[shift.pots]`): while the shift button is held (`shift = True`, set
by the back end), each pot listed there moves its shift target instead of its control. Either
way a layer switch never jumps a value: after a switch, a control follows its pot only once the
pot has come to where the control is (pickup: the pot crosses the value, or comes within
PICKUP of it), as on a hardware synth's shifted knobs (a CV summed with a shifted pot waits
with it). `group_select` points at a voice group
(voices.VOICE_GROUPS over its travel, no pickup: it only chooses); `group_density` moves the
`density.<voice>` of each voice of that group, `group_velocity` the `outputs.scale.<n>` of the
outputs they play on (`map.<voice>`); a `mute_group` button mutes the group it points at
(`selected_group`).

An ADC input with role "fill" (the reference board's FILL jack on MCP3208 #2) is a gate read at
the scan rate through a software Schmitt trigger (`SchmittGate`, the board's `rise_volts` /
`fall_volts`): each scan that changes its level queues the new level in `fill_edges`, which the
back end hands to `engine.fill` (a scan period, 4 ms at 250 Hz, is nothing for a bar-level gate).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from grooverack.backends.panel.hardware import Hardware
from grooverack.boards.board import Board
from grooverack.config import Settings
from grooverack.controls import ControlRange, ControlReader, SchmittGate, smoothing_alpha
from grooverack.errors import BusDown
from grooverack.voices import VOICE_GROUPS

PICKUP = 0.02   # a waiting control picks up when its pot comes this close to its value (0..1)
GROUPS = tuple(VOICE_GROUPS)
# the schema key whose range a group target reads over (every voice's is the same)
_GROUP_RANGE = {"group_density": "density.kick", "group_velocity": "outputs.scale.1"}


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
        # fill gates on ADC channels: read with the controls, edges queued for the back end
        self.gates = {i.name: SchmittGate(i.rise_volts, i.fall_volts)
                      for i in board.inputs.values() if i.role == "fill"}
        for name in self.gates:
            item = board.inputs[name]
            self.plan.setdefault(item.chip, []).append(("gate", name, item.channel))
        self.fill_edges: list[bool] = []  # levels the gates changed to, oldest first
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
        # the shift layer: pot -> reader over its target's range (group_select: 0..1)
        self.shift_targets = dict(board.shift_pots)
        self.shift_readers = {
            pot: ControlReader(ControlRange("group_select", 0.0, 1.0) if target == "group_select"
                               else ControlRange.for_key(_GROUP_RANGE.get(target, target)),
                               alpha=alpha, hysteresis=board.pot_hysteresis)
            for pot, target in self.shift_targets.items()}
        self.shift = False          # asked for by the back end: the shift button is held
        self._shifted = False       # the layer the scans use now
        self.group = GROUPS[0]      # the voice group the group_* targets act on
        self._waiting: dict[str, float] = {}  # reader key -> side of its value it was on
        # a control's value now (pickup compares the pot with it): the engine's, once the back
        # end points this at it; the configuration until then
        self.current: Callable[[str], Any] = settings.__getitem__

    def read_chip(self, chip: str) -> list[int]:
        return self.hw.adcs[chip].read_many([p[2] for p in self.plan[chip]])

    def take_fill_edges(self) -> list[bool]:
        """The fill levels queued by the scans since the last call (each a change)."""
        edges, self.fill_edges = self.fill_edges, []
        return edges

    def scan(self) -> list[tuple[str, float]]:
        """One scan; returns the controls that moved, with their new values (fill gate edges
        go to `fill_edges`)."""
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
                elif kind == "gate":
                    level = self.gates[name].update(self.cal.to_volts(name, code))
                    if level is not None:
                        self.fill_edges.append(level)
                else:
                    cvs[name] = self.cal.to_volts(name, code)
        if self.shift != self._shifted:
            self._switch_layer(self.shift)
        moved = []
        for control in self.board.controls.values():
            reader = self.readers[control.name]
            if control.pot in pots:
                reader.pot(pots[control.pot])
            if control.cv in cvs:
                reader.cv(cvs[control.cv])
            if self._shifted and control.pot in self.shift_targets:
                continue  # the pot works the shift layer now
            if not self._picked_up(control.name, reader, control.name):
                continue
            value = reader.read()
            if value is not None:
                moved.append((control.name, value))
        for pot, reader in self.shift_readers.items():
            if pot in pots:
                reader.pot(pots[pot])
            if self._shifted:
                moved.extend(self._shift_moved(pot, reader))
        return moved

    # --- the shift layer
    def _switch_layer(self, shifted: bool) -> None:
        """Every reader of the layer coming in waits for its pot to reach its value."""
        self._shifted = shifted
        self._waiting.clear()
        if shifted:
            for pot, reader in self.shift_readers.items():
                if self.shift_targets[pot] == "group_select":
                    reader.first, reader.reported = True, None  # read where it points at once
                else:
                    self._wait(f"shift.{pot}", reader, self._target_value(self.shift_targets[pot]))
        else:
            for name, reader in self.readers.items():
                if self.board.controls[name].pot in self.shift_targets:
                    self._wait(name, reader, self.current(name))

    def _wait(self, key: str, reader: ControlReader, value: Any) -> None:
        p = reader.position()
        if p is not None:
            self._waiting[key] = p - reader.range.position(value)

    def _picked_up(self, key: str, reader: ControlReader, name: str | None,
                   value: Any = None) -> bool:
        """False while `key` waits for its pot; on pickup the reader starts from the value."""
        if key not in self._waiting:
            return True
        p = reader.position()
        if p is None:
            return False
        at = reader.range.position(self.current(name) if name is not None else value)
        side = self._waiting[key]
        if abs(p - at) > PICKUP and (p - at) * side > 0:
            return False
        del self._waiting[key]
        reader.first, reader.reported = False, at
        return True

    def selected_group(self) -> str:
        """The voice group the `group_select` pot points at now (read from its pot, so a
        `mute_group` press right after SHIFT goes down still gets it), else the last chosen."""
        for pot, target in self.shift_targets.items():
            if target == "group_select":
                p = self.shift_readers[pot].position()
                if p is not None:
                    return group_at(p)
        return self.group

    def _group_keys(self, target: str) -> list[str]:
        voices = VOICE_GROUPS[self.group]
        if target == "group_density":
            return [f"density.{v}" for v in voices]
        outputs = sorted({int(self.current(f"map.{v}")) for v in voices} - {0})
        return [f"outputs.scale.{n}" for n in outputs]

    def _target_value(self, target: str) -> Any:
        if target in _GROUP_RANGE:
            keys = self._group_keys(target)
            return self.current(keys[0]) if keys else 0.0
        return self.current(target)

    def _shift_moved(self, pot: str, reader: ControlReader) -> list[tuple[str, Any]]:
        target = self.shift_targets[pot]
        key = f"shift.{pot}"
        if target == "group_select":
            p = reader.position()
            if p is None or reader.read() is None:
                return []
            group = group_at(p)
            if group != self.group:
                self.group = group  # the group targets pick up at the new group's values
                for other, t in self.shift_targets.items():
                    if t in _GROUP_RANGE:
                        self._wait(f"shift.{other}", self.shift_readers[other],
                                   self._target_value(t))
            return []
        if not self._picked_up(key, reader, None, self._target_value(target)):
            return []
        value = reader.read()
        if value is None:
            return []
        if target in _GROUP_RANGE:
            return [(k, value) for k in self._group_keys(target)]
        return [(target, value)]


def group_at(position: float) -> str:
    """The voice group at a 0..1 position of the `group_select` pot (equal parts of its travel)."""
    return GROUPS[min(int(position * len(GROUPS)), len(GROUPS) - 1)]
