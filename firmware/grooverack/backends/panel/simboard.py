"""The sim board: virtual patch -> emulated chips -> the panel back end -> emulated outputs.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from grooverack.backends.panel.backend import PanelBackend, calibration_for, group_instants
from grooverack.backends.panel.hardware import open_hardware
from grooverack.backends.panel.scanner import GROUPS
from grooverack.boards.board import Board, load_board
from grooverack.calibration import Calibration
from grooverack.config import CONTROLS, Settings
from grooverack.controls import ControlRange
from grooverack.emulators.world import BUTTON_HOLD_S, EmulatedWorld
from grooverack.engine.seam import EngineSeam

log = logging.getLogger(__name__)


TAIL_S = 0.02               # finish(): trigger falls still collected this long after the end
SHIFT_LEAD_S = 0.03         # a shift-layer press: SHIFT goes down this long before the button
#                             (longer than a button's debounce, so SHIFT is held when it counts)
GROUP_SETTLE_S = 0.25       # a group mute through `mute_group`: the group_select pot is turned
#                             this long before the button (its smoothing has settled by then)


class SimPanelBoard:
    """The patch-board seam of `grooverack sim` over emulated chips (ARCHITECTURE.md, "Sim board
    seam"): `start(t)`, `apply(t, jack, value)`, `advance(t_until)` (alias `step`, `advance_to`),
    `finish(t_end)`; outputs read back from the emulated DACs/GPIO into `recorder` as
    `(time, output, kind, volts, voice)`."""

    def __init__(self, board: Board | str, settings: Settings, recorder: Any, engine: EngineSeam) -> None:

        self.board = load_board(board) if isinstance(board, str) else board
        if not self.board.is_panel:
            raise ValueError(f"board {self.board.name!r} is kind {self.board.kind!r}; the panel "
                             "back end runs 'pi' and 'sim' boards")
        self.settings, self.recorder, self.engine = settings, recorder, engine
        self._shift = 0.0  # added to the recorded time of outputs (see `_engine_to`)
        self.world = EmulatedWorld(self.board)
        self.clock = self.world.clock
        self.hw = open_hardware(self.board, world=self.world)
        self.cal = calibration_for(self.board, settings) if settings["state.dir"] else None
        if self.cal is None:
            self.cal = Calibration.nominal(self.board)
        self.panel = PanelBackend(self.board, settings, engine, self.hw, self.cal, self.clock,
                                  after_phase=self._capture)
        jacks = dict(self.board.emulation.get("jacks", {}))
        self.jacks = jacks or {n: n for n in [*self.board.inputs, *self.board.gpio_inputs]}
        # action -> button (the board file gives every button an action)
        self.buttons = {i.action: n for n, i in self.board.gpio_inputs.items()
                        if i.role == "button" and i.action is not None}
        self.held: set[str] = set()  # buttons a `hold.<action>` jack holds down
        # actions only the shift layer has: press.<action> holds SHIFT around that button
        self.shift_actions = {a: n for n, a in self.board.shift_buttons.items()
                              if a not in self.buttons}
        # mutes that no button has: SHIFT + the group_select pot turned to the group + the
        # `mute_group` button (the budget board: three buttons for five groups)
        self.group_pot = next((p for p, t in self.board.shift_pots.items()
                               if t == "group_select"), None)
        self.group_mutes: dict[str, int] = {}
        if "mute_group" in self.shift_actions and self.group_pot is not None:
            self.group_mutes = {f"mute_{g}": i for i, g in enumerate(GROUPS)
                                if f"mute_{g}" not in {*self.buttons, *self.shift_actions}}
        for control in self.board.controls.values():  # pots start where the configuration is
            rng = ControlRange.for_key(control.name, control.low, control.high)
            self.world.set_pot(control.pot, rng.position(settings[control.name]))

    def _capture(self) -> None:
        shift = self._shift
        for t, out, volts in self.world.drain_outputs():
            if out.kind == "led":
                continue
            voice = self.panel.writer.voice.get(out.name)
            self.recorder.write(t + shift, out.output, out.kind, volts,
                                voice if out.kind in ("trigger", "velocity") else None)

    def start(self, t: float) -> None:
        self.clock.advance_to(t)
        self.panel.start(t)
        self.world.drain_outputs()  # power-on zeroing is not music

    def apply(self, t: float, jack: str, value: float) -> None:
        """Input `jack` of the virtual patch changes to `value` at `t` (after `advance(t)`)."""
        self._run_to(t, inclusive=True)
        self.clock.advance_to(t)
        target = self.jacks.get(jack)
        if target is None and jack.startswith("cv."):
            # `cv.<control>`: the CV input the board sums into that control
            control = self.board.controls.get(jack[len("cv."):])
            target = control.cv if control is not None else None
            if target is None:
                log.debug("board %s has no %s jack: ignored", self.board.name, jack)
                return
        if target in self.board.gpio_inputs:
            # stamped at t: on the wall clock the emulated world already ran ahead for outputs
            self.world.set_digital(target, value, at=t)
        elif target in self.board.inputs:
            self.world.set_cv(target, value)
        elif jack in self.board.controls:
            self.world.set_pot(self.board.controls[jack].pot, value)
        elif jack.startswith("press."):
            action = jack[len("press."):]
            name = self.buttons.get(action)
            if name is None and action in self.shift_actions:
                if value >= 0.5:
                    self._shift_press(self.shift_actions[action])
            elif name is None and action in self.group_mutes:
                if value >= 0.5:
                    self._group_press(self.group_mutes[action])
            elif name is None:
                known = [*self.buttons, *self.shift_actions, *self.group_mutes]
                raise ValueError(f"board {self.board.name!r} has no {jack[6:]!r} button; "
                                 f"buttons: {', '.join(known) or 'none'}")
            elif value >= 0.5:
                self.world.press(name)
        elif jack.startswith("hold."):
            name = self.buttons.get(jack[len("hold."):])
            if name is None:
                raise ValueError(f"board {self.board.name!r} has no {jack[5:]!r} button; "
                                 f"buttons: {', '.join(self.buttons) or 'none'}")
            self.world.set_button(name, value >= 0.5)
            (self.held.add if value >= 0.5 else self.held.discard)(name)
        elif jack in ("velocity_cv", "clock", "reset", "pitch", "gate"):
            log.debug("board %s has no %s jack: ignored", self.board.name, jack)
        else:
            if jack in CONTROLS:
                log.debug("board %s has no %s pot: ignored", self.board.name, jack)
                return
            raise ValueError(f"unknown jack {jack!r} for board {self.board.name!r}")
        # the edges the change made reach `on_edge` now (gpiod: read here, at their stamps;
        # RPi.GPIO: their callbacks already ran); anything due now runs now
        self.hw.gpio.poll()
        self.panel.tick(t, inclusive=True)
        if target in self.board.gpio_inputs:
            # a step on this edge fires from it at once (as the Pi loop writes it the moment
            # the edge is in), not on the next advance
            self._engine_to(math.nextafter(t, math.inf))

    def _shift_press(self, button: str) -> None:
        """SHIFT + `button`: SHIFT down now, the button pressed SHIFT_LEAD_S later, SHIFT up once
        the button is up again (a SHIFT already held stays held)."""
        shift = self.buttons["shift"]
        now = self.clock()
        self.world.set_button(shift, True)
        self.world.at(now + SHIFT_LEAD_S, lambda: self.world.press(button))
        if shift not in self.held:
            self.world.at(now + 2 * SHIFT_LEAD_S + BUTTON_HOLD_S,
                          lambda: self.world.set_button(shift, False))

    def _group_press(self, group: int) -> None:
        """SHIFT down, the group_select pot turned to voice group number `group` (the middle of
        its part of the travel), the `mute_group` button pressed once the pot has settled, the
        pot turned back where it was while SHIFT is still down (its control picks up there), and
        SHIFT up (a SHIFT already held stays held): what a player does to mute a group that has
        no button of its own."""
        assert self.group_pot is not None
        shift, button, pot = self.buttons["shift"], self.shift_actions["mute_group"], self.group_pot
        back = self.world.pot_positions.get(pot, 0.0)
        turn = self.clock() + SHIFT_LEAD_S
        press = turn + GROUP_SETTLE_S
        turn_back = press + BUTTON_HOLD_S + SHIFT_LEAD_S
        self.world.set_button(shift, True)
        self.world.at(turn, lambda: self.world.set_pot(pot, (group + 0.5) / len(GROUPS)))
        self.world.at(press, lambda: self.world.press(button))
        self.world.at(turn_back, lambda: self.world.set_pot(pot, back))
        if shift not in self.held:
            self.world.at(turn_back + GROUP_SETTLE_S, lambda: self.world.set_button(shift, False))

    def _engine_to(self, t: float) -> None:
        for group in group_instants(self.engine.advance(t)):
            when = group[0].time
            self.clock.advance_to(when)
            # a group behind the world's time: on the wall clock the world ran ahead for the
            # outputs before an edge came in, and that edge's step is due at the edge. Its
            # writes are recorded from its own time (bus time kept), as a real board would
            # write them the moment the edge is in, not when the emulation had got to.
            self._shift = min(0.0, when - self.clock())
            try:
                self.panel.write(group)
            finally:
                self._shift = 0.0

    def _run_to(self, t_until: float, inclusive: bool) -> None:
        self.hw.gpio.poll()  # edges of pins driven from outside (tests drive `world.gpio`)
        while True:
            nxt = min(self.panel.next_deadline(), self.world.next_event())
            if nxt > t_until or (nxt == t_until and not inclusive):
                break
            self._engine_to(nxt)
            self.clock.advance_to(nxt)
            self.world.run_due(nxt)
            self.hw.gpio.poll()
            self.panel.tick(nxt)
        self._engine_to(t_until)

    def advance(self, t_until: float) -> None:
        """Run scans, onsets, debouncing and the engine to `t_until`, writing every output."""
        self._run_to(t_until, inclusive=False)
        self.clock.advance_to(t_until)

    step = advance
    advance_to = advance

    def finish(self, t_end: float) -> None:
        """To `t_end`, then the falls of triggers that rose before it."""
        self.advance(t_end)
        tail = [e for e in self.engine.advance(t_end + TAIL_S)
                if e.kind != "velocity" and e.value == 0.0]
        for group in group_instants(tail):
            self.clock.advance_to(group[0].time)
            self.panel.write(group)

    def close(self) -> None:
        self.panel.close()

    def release(self) -> None:
        """After `finish`: the emulated input lines released (their event descriptors closed),
        nothing written, the outputs still there for `close`: a process that renders many times
        must not keep every render's descriptors open."""
        release = getattr(self.panel.hw.gpio, "release_inputs", None)
        if release is not None:
            release()

    def faults(self) -> dict[str, dict[str, Any]]:
        return self.panel.faults()


def patch_board(board: Board | str, settings: Settings, recorder: Any, engine: EngineSeam) -> SimPanelBoard:
    """The seam `grooverack sim --board sim` uses (`sim.session.make_board`)."""
    return SimPanelBoard(board, settings, recorder, engine)
