"""The Raspberry Pi back end: the panel's jacks, pots and buttons <-> the Engine, through the
board's chips (`hw/boards/*.toml`). The same code runs over real buses on a Pi (`run_backend`)
and over the byte-exact emulators in virtual time (`patch_board`, the `sim` board).

- Gate, clock and reset arrive as GPIO edges, stamped by the kernel (libgpiod) or first thing in
  the callback (the RPi.GPIO fallback), and are applied at that time. A gate's
  rising edge becomes an onset whose pitch (or velocity CV) is read `input.pitch_settle_ms` later.
- Pots and CV inputs are scanned at the board's `scan_hz` (>= 100 Hz), each ADC chip read in
  one burst; pot positions are low-pass filtered and pass a hysteresis band, so a resting pot
  never moves a control (and never causes a regeneration). Controls = pot + CV, scaled.
- The fill gate is a GPIO pin (both edges, stamped like gate) or an ADC channel read with the
  scan through a software Schmitt trigger (the reference board's FILL on MCP3208 #2): either way
  `engine.fill(t, high)`, at the edge's time or the scan's.
- Buttons are debounced (stable for `debounce_ms`) and become `engine.press(action)`; while the
  button with action "shift" is held, the board's `[shift]` layer applies (`[shift.buttons]`
  actions, `[shift.pots]` targets; `scanner.ControlScanner`).
- Engine events are written in phases per instant: falls, then velocity CVs, then rises (so a
  velocity CV always settles before its trigger rises), each phase one transaction per DAC chip
  (MCP4728 multi-write), then the GPIO pins. Codes come from the calibration, clamped to the
  board's safe range.
- Bus faults (OSError: NACK, timeout): retried, then the chip backs off (2 ms doubling to 0.25 s)
  while the engine keeps playing; counted per chip, logged once per burst (`faults()`).
  A timeout (stuck bus) is not retried at once: it already cost its timeout.
- Outputs go to 0 V on exit, on SIGTERM and on an unhandled error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from grooverack.backends.panel.hardware import Hardware
from grooverack.backends.panel.outputs import PanelOutputs
from grooverack.backends.panel.scanner import ControlScanner
from grooverack.boards.board import Board
from grooverack.calibration import Calibration, default_path
from grooverack.config import Settings
from grooverack.engine.engine import Engine
from grooverack.engine.seam import EngineSeam
from grooverack.errors import BusDown
from grooverack.state import state_dir

log = logging.getLogger(__name__)
LED_BLINK_S = 0.5   # fallback (no model): the record LED flips once every this long ...
LED_FLICK_S = 0.1   # ... for this long


def calibration_for(board: Board, settings: Settings) -> Any:
    """The board's calibration file under the state directory, else the nominal scaling."""

    state = settings["state.dir"]
    if not state:
        try:
            state = str(state_dir(settings))
        except (ImportError, OSError):
            state = ""
    if state:
        return Calibration.load(default_path(state, board.name), board)
    return Calibration.nominal(board)


class PanelBackend:
    """Panel <-> Engine. Loop-thread methods: `start`, `on_edge`, `tick`, `write`, `close`."""

    def __init__(self, board: Board, settings: Settings, engine: EngineSeam, hw: Hardware, cal: Any,
                 clock: Callable[[], float], after_phase: Callable[[], None] | None = None) -> None:
        self.board, self.settings, self.engine, self.hw, self.cal = board, settings, engine, hw, cal
        self.clock = clock
        self.scanner = ControlScanner(board, hw, cal, settings)
        self.scanner.current = lambda name: engine.settings[name]  # pickup reads what plays
        self.writer = PanelOutputs(board, hw, cal, settings, after_phase)
        self.settle_s = float(settings["input.pitch_settle_ms"]) / 1000.0
        self.velocity_cv = settings["input.velocity_mode"] == "cv"
        # input.source = audio: the onsets heard in audio are the only ones (the gate jack's
        # edges are counted in `gates_ignored` and play nothing)
        self.gate_onsets = settings["input.source"] != "audio"
        self.gates_ignored = 0
        self.pending_onsets: list[tuple[float, float]] = []  # (sample time, edge time)
        self.next_scan = 0.0
        self.by_pin = {i.pin: i for i in board.gpio_inputs.values()}
        self.buttons: dict[int, list[Any]] = {}  # pin -> [accepted active, candidate, since]
        self.last_volts: dict[str, float] = {}
        self.onsets = self.clock_pulses = self.resets = self.presses = self.fill_edges = 0
        self.control_log: list[tuple[float, str, float]] = []  # (time, control, value)
        self.started = False
        self.scan_thread = False  # True: a thread scans and posts controls (real time)
        # the record LED blinks while rule patterns stand in for a model that did not load: the
        # Engine says what plays (a scripted test engine plays nothing of its own)
        self.plays: Engine | None = engine if isinstance(engine, Engine) else None
        self.led: bool | None = None  # the record LED as last written

    # --- lifetime
    def open(self) -> None:
        """Configure the chips, outputs to 0 V, inputs armed (edge callbacks -> `on_edge`)."""
        for name, dac in self.hw.dacs.items():
            try:
                self.hw.guards[name].call(dac.configure)
            except BusDown:
                # every write carries the chip's settings again: it works once it answers
                log.error("%s does not answer at start: its outputs stay silent until it does",
                          name)
        for out in self.board.gpio_outputs.values():
            self.hw.gpio.add_output(out.pin, 0)
        self.writer.zero()
        for item in self.board.gpio_inputs.values():
            if item.role == "button":
                self.hw.gpio.add_input(item.pin, pull=item.pull, edge="both", on_edge=self.on_edge)
                active = bool(self.hw.gpio.read(item.pin)) ^ item.active_low
                self.buttons[item.pin] = [active, active, 0.0]
            elif item.role == "fill":  # a gate held: its rise and its fall both count
                self.hw.gpio.add_input(item.pin, pull=item.pull, edge="both", on_edge=self.on_edge)
            else:
                edge = "falling" if item.active_low else "rising"  # the jack's rising edge
                self.hw.gpio.add_input(item.pin, pull=item.pull, edge=edge, on_edge=self.on_edge)

    def start(self, t: float) -> None:
        self.open()
        self._scan(t)
        self.next_scan = t + self.scanner.period
        self.engine.start(t)
        self._leds()
        self.started = True

    def close(self) -> None:
        """Outputs to 0 V, pins released, buses closed. Safe to call twice."""
        try:
            self.writer.zero()
        finally:
            try:
                self.hw.gpio.close()
            finally:
                self.hw.close()

    # --- inputs
    def on_edge(self, pin: int, level: int, t: float) -> None:
        item = self.by_pin.get(pin)
        if item is None:
            return
        if item.role == "button":
            state = self.buttons[pin]
            state[1], state[2] = bool(level) ^ item.active_low, t
            return
        if item.role == "gate":
            self.pending_onsets.append((t + self.settle_s, t))
        elif item.role == "fill":
            self.fill(t, bool(level) ^ item.active_low)
        elif item.role == "clock":
            self.clock_pulses += 1
            self.engine.clock_pulse(t)
        elif item.role == "reset":
            self.resets += 1
            self.engine.reset(t)

    def read_input(self, name: str) -> float:
        """Volts at a CV input now (one conversion); raises BusDown."""
        item = self.board.inputs[name]
        adc = self.hw.adcs[item.chip]
        return self.cal.to_volts(name, self.hw.guards[item.chip].call(adc.read, item.channel))

    def _sample_onset(self, edge_t: float) -> None:
        """The onset of a gate edge, with the pitch (or, in velocity-CV mode, the velocity CV)
        read now, a settle time after the edge; the engine turns volts into velocity."""
        if not self.gate_onsets:
            self.gates_ignored += 1
            return
        self.onsets += 1
        name = "velocity_cv" if self.velocity_cv else "pitch"
        if name in self.board.inputs:
            try:
                self.last_volts[name] = self.read_input(name)
            except BusDown:
                pass  # the last reading stands in
        self.engine.onset(edge_t, pitch_volts=self.last_volts.get(name))

    def fill(self, t: float, high: bool) -> None:
        """The fill gate's level from `t` (a GPIO edge, or a scan of an ADC fill input)."""
        self.fill_edges += 1
        self.engine.fill(t, high)

    def _scan(self, t: float) -> None:
        for name, value in self.scanner.scan():
            self.set_control(t, name, value)
        for high in self.scanner.take_fill_edges():
            self.fill(t, high)
        self.writer.retry_pending()

    def set_control(self, t: float, name: str, value: float) -> None:
        if len(self.control_log) < 10_000:
            self.control_log.append((t, name, value))
        self.engine.set_control(name, value)

    def _buttons(self, t: float) -> None:
        for pin, state in self.buttons.items():
            accepted, candidate, since = state
            item = self.by_pin[pin]
            # stable long enough (compared as next_deadline computes it, so the deadline always
            # clears): a real level change (bounces re-arm `since`)
            if candidate != accepted and t >= since + item.debounce_ms / 1000.0 \
                    and bool(self.hw.gpio.read(pin)) ^ item.active_low == candidate:
                state[0] = candidate
                if item.action == "shift":  # held: the scanner's layer, both edges
                    self.presses += int(candidate)
                    self.scanner.shift = candidate
                elif candidate:
                    self.presses += 1
                    pressed = self.action(item.name, item.action)
                    if pressed is not None:  # always: the board file gives a button an action
                        self.engine.press(pressed)
                    self._leds()

    def action(self, button: str, action: str | None) -> str | None:
        """What button `button` does now: its [shift.buttons] action while shift is held
        (`mute_group`: mute_<the group the group_select pot points at>)."""
        if self.scanner.shift:
            action = self.board.shift_buttons.get(button, action)
            if action == "mute_group":
                return f"mute_{self.scanner.selected_group()}"
        return action

    def _leds(self, t: float | None = None) -> None:
        """The record LED is lit while onsets are captured (record mode record or overdub).
        While the model is missing or failed to load (rule patterns play: the fallback) it flips
        for LED_FLICK_S every LED_BLINK_S, so it still shows the record mode (mostly on or mostly
        off) and says "no model" at a glance. Written only when it changes."""
        lit = self.engine.settings["record"] != "off"
        if (t is not None and self.plays is not None and self.plays.generation == "fallback"
                and t % LED_BLINK_S < LED_FLICK_S):
            lit = not lit
        if t is not None and lit == self.led:
            return
        self.led = lit
        for out in self.board.gpio_outputs.values():
            if out.kind == "led":
                self.hw.gpio.write(out.pin, int(lit))

    def next_deadline(self) -> float:
        times = [float("inf") if self.scan_thread else self.next_scan]
        if self.pending_onsets:
            times.append(self.pending_onsets[0][0])
        for pin, (accepted, candidate, since) in self.buttons.items():
            if candidate != accepted:
                times.append(since + self.by_pin[pin].debounce_ms / 1000.0)
        return min(times)

    def tick(self, t: float, inclusive: bool = True) -> None:
        """Everything due at or before `t` (before `t` with inclusive=False)."""
        def due(x: float) -> bool:
            return x <= t if inclusive else x < t

        while self.pending_onsets and due(self.pending_onsets[0][0]):
            self._sample_onset(self.pending_onsets.pop(0)[1])
        self._buttons(t)
        if self.scan_thread:
            self.writer.retry_pending()
        elif due(self.next_scan):
            self._scan(t)
            self.next_scan += self.scanner.period
            if self.next_scan <= t:  # fell behind (a slow bus): skip, do not burst
                self.next_scan = t + self.scanner.period
        if self.plays is not None and self.started:
            self._leds(t)

    # --- outputs
    def write(self, events: Iterable[Any]) -> None:
        self.writer.write(events)

    def faults(self) -> dict[str, dict[str, Any]]:
        return {name: g.counter.as_dict() for name, g in self.hw.guards.items()}


def group_instants(events: Iterable[Any]) -> list[list[Any]]:
    """Events sorted by time -> lists of events sharing one time."""
    groups: list[list[Any]] = []
    for e in events:
        if groups and groups[-1][0].time == e.time:
            groups[-1].append(e)
        else:
            groups.append([e])
    return groups
