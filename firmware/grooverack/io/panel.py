"""The Raspberry Pi back end: the panel's jacks, pots and buttons <-> the Engine, through the
board's chips (`hw/boards/*.toml`). The same code runs over real buses on a Pi (`run_backend`)
and over the byte-exact emulators in virtual time (`patch_board`, the `sim` board).

- Gate, clock and reset arrive as GPIO edges, timestamped first thing in the callback. A gate's
  rising edge becomes an onset whose pitch (or velocity CV) is read `input.pitch_settle_ms` later.
- Pots and CV inputs are scanned at the board's `scan_hz` (>= 100 Hz), each ADC chip read in
  one burst; pot positions are low-pass filtered and pass a hysteresis band, so a resting pot
  never moves a control (and never causes a regeneration). Controls = pot + CV, scaled.
- Buttons are debounced (stable for `debounce_ms`) and become `engine.press(action)`.
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

import argparse
import json
import logging
import math
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grooverack.config import Settings
from grooverack.drivers.ads1115 import ADS1115
from grooverack.drivers.gpio import GPIOPins
from grooverack.drivers.mcp3208 import MCP3208
from grooverack.drivers.mcp4728 import MCP4728
from grooverack.drivers.mcp4922 import MCP4922
from grooverack.io.board import AnalogOutput, Board, DigitalOutput, load_board

log = logging.getLogger(__name__)

PHASES = ("fall", "velocity", "rise")
RETRIES = 2                 # extra attempts of a failed bus operation, right away
RETRY_SLEEP_S = 0.0002      # pause before a retry on real hardware
BACKOFF_S = 0.002           # a failing chip is left alone this long, doubling...
BACKOFF_MAX_S = 0.25        # ...up to this
TAIL_S = 0.02               # finish(): trigger falls still collected this long after the end


class BusDown(Exception):
    """A chip did not answer (after retries) or is backing off; the operation was skipped."""


def calibration_for(board: Board, settings: Settings) -> Any:
    """The board's calibration file under the state directory, else the nominal scaling."""
    from grooverack.calibration import Calibration, default_path

    state = settings["state.dir"]
    if not state:
        try:
            from grooverack.state import state_dir
            state = str(state_dir(settings))
        except (ImportError, OSError):
            state = ""
    if state:
        return Calibration.load(default_path(state, board.name), board)
    return Calibration.nominal(board)


FAULTS_SAVE_S = 10.0        # a running module rewrites its bus-fault report this often


def faults_path(settings: Settings, board_name: str) -> Path:
    """`<state dir>/bus-faults-<board>.json`: the running module's fault counters for doctor."""
    from grooverack.state import state_dir

    return state_dir(settings) / f"bus-faults-{board_name}.json"


def save_faults(path: Path, board: str, faults: dict[str, dict[str, Any]], started: float) -> None:
    """Atomically write the counters (wall-clock `started`/`updated` in seconds since the epoch)."""
    from grooverack.storage import atomic_write_text

    report = {"board": board, "started": started, "updated": time.time(), "chips": faults}
    atomic_write_text(path, json.dumps(report, indent=1, sort_keys=True) + "\n")


# --------------------------------------------------------------------------------------------
# bus faults


@dataclass
class FaultCounter:
    """One chip's bus health: what `grooverack doctor` and the reliability checks read."""

    chip: str
    where: str
    ok: int = 0             # operations that succeeded
    faults: int = 0         # failed attempts (each retry counts)
    failed: int = 0         # operations given up after retries
    skipped: int = 0        # operations not tried while backing off
    bursts: int = 0         # separate runs of failures
    recoveries: int = 0
    last_error: str = ""
    down_since: float | None = None
    retry_at: float = 0.0
    streak: int = 0         # failed attempts in the current burst
    burst_failed: int = 0   # operations given up in the current burst (sets the back-off)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()
                if k not in ("retry_at", "streak", "burst_failed")}


class ChipGuard:
    """Runs a chip's bus operations: retries, back-off in time, counting, one log per burst."""

    def __init__(self, chip: str, where: str, clock: Callable[[], float],
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.counter = FaultCounter(chip, where)
        self.clock, self.sleep = clock, sleep
        self.lock = threading.Lock()

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """`fn(*args)` on the bus, or BusDown (after retries, or while backing off)."""
        with self.lock:  # one operation at a time on this chip (loop and scanner threads)
            c = self.counter
            now = self.clock()
            if c.down_since is not None and now < c.retry_at:
                c.skipped += 1
                raise BusDown(c.chip)
            for attempt in range(RETRIES + 1):
                try:
                    result = fn(*args)
                except OSError as exc:
                    c.faults += 1
                    c.streak += 1
                    c.last_error = f"{type(exc).__name__}: {exc}"
                    # a NACK is worth an immediate retry; a timeout (stuck bus) already cost
                    # its timeout: back off instead of blocking the loop again
                    if attempt < RETRIES and not isinstance(exc, TimeoutError):
                        self.sleep(RETRY_SLEEP_S * (attempt + 1))
                        continue
                    break
                else:
                    c.ok += 1
                    if c.down_since is not None:
                        c.recoveries += 1
                        log.warning("%s (%s): answering again after %.3f s, %d failed "
                                    "attempts in this burst", c.chip, c.where, now - c.down_since,
                                    c.streak)
                        c.down_since = None
                    c.streak = 0
                    return result
            c.failed += 1
            if c.down_since is None:
                c.down_since = now
                c.bursts += 1
                c.burst_failed = 0
                log.error("%s (%s): bus fault (%s); retrying with back-off, the module keeps "
                          "playing", c.chip, c.where, c.last_error)
            c.burst_failed += 1
            c.retry_at = now + min(BACKOFF_S * 2 ** min(c.burst_failed - 1, 16), BACKOFF_MAX_S)
            raise BusDown(c.chip)


# --------------------------------------------------------------------------------------------
# the board's chips through their drivers


@dataclass
class Hardware:
    board: Board
    adcs: dict[str, Any]
    dacs: dict[str, Any]
    gpio: GPIOPins
    guards: dict[str, ChipGuard]
    closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        for close in self.closers:
            try:
                close()
            except OSError as exc:
                log.warning("closing: %s", exc)


def build_hardware(board: Board, *, spi: Callable[[Any], Any], i2c: Callable[[int], Any],
                   gpio_module: Any, clock: Callable[[], float],
                   sleep_for: Callable[[Any], Callable[[float], None]],
                   retry_sleep: Callable[[float], None] = time.sleep) -> Hardware:
    """Drivers for every chip of `board` over the buses `spi(chip)` / `i2c(bus_number)`."""
    pins = GPIOPins(gpio_module, clock)
    adcs: dict[str, Any] = {}
    dacs: dict[str, Any] = {}
    guards: dict[str, ChipGuard] = {}
    buses: dict[int, Any] = {}
    closers: list[Callable[[], None]] = []
    for chip in board.chips.values():
        if chip.bus == "spi":
            dev = spi(chip)
            closers.append(dev.close)
        else:
            if chip.bus_number not in buses:
                buses[chip.bus_number] = i2c(chip.bus_number)
                closers.append(buses[chip.bus_number].close)
            dev = buses[chip.bus_number]
        if chip.part == "mcp3208":
            adcs[chip.name] = MCP3208(dev, chip.max_speed_hz)
        elif chip.part == "ads1115":
            adcs[chip.name] = ADS1115(dev, chip.device, fsr=chip.fsr, data_rate=chip.data_rate,
                                      sleep=sleep_for(chip))
        elif chip.part == "mcp4728":
            dacs[chip.name] = MCP4728(dev, chip.device)
        else:
            dacs[chip.name] = MCP4922(dev, gain=chip.gain, max_speed_hz=chip.max_speed_hz,
                                      gpio=gpio_module if chip.ldac_pin is not None else None,
                                      ldac_pin=chip.ldac_pin)
        guards[chip.name] = ChipGuard(chip.name, chip.where, clock, retry_sleep)
    return Hardware(board, adcs, dacs, pins, guards, closers)


def open_hardware(board: Board, clock: Callable[[], float] = time.monotonic) -> Hardware:
    """The real buses of a Pi: spidev, smbus2, RPi.GPIO (imported here, on the Pi only)."""
    from grooverack.drivers.gpio import open_rpi_gpio

    def spi(chip: Any) -> Any:
        try:
            import spidev
        except ImportError as exc:
            raise OSError(f"spidev is not importable ({exc}); on a Pi: pip install spidev") from None
        dev = spidev.SpiDev()
        dev.open(chip.bus_number, chip.device)
        return dev

    def i2c(number: int) -> Any:
        from smbus2 import SMBus
        return SMBus(number)

    return build_hardware(board, spi=spi, i2c=i2c, gpio_module=open_rpi_gpio(), clock=clock,
                          sleep_for=lambda chip: time.sleep)


# --------------------------------------------------------------------------------------------
# pots and CVs


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
        adc = self.hw.adcs[chip]
        channels = [p[2] for p in self.plan[chip]]
        if isinstance(adc, ADS1115):
            return [adc.read_single(ch) for ch in channels]
        return adc.read_many(channels)

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


# --------------------------------------------------------------------------------------------
# outputs


class OutputWriter:
    """Engine events -> DAC codes and GPIO levels, phase by phase (falls, velocities, rises)."""

    def __init__(self, board: Board, hw: Hardware, cal: Any, settings: Settings,
                 after_phase: Callable[[], None] | None = None) -> None:
        self.board, self.hw, self.cal = board, hw, cal
        self.velocity_volts = float(settings["outputs.velocity_volts"])
        self.jacks: dict[tuple[str, int], AnalogOutput | DigitalOutput] = {}
        for kind in ("trigger", "velocity", "clock", "reset"):
            for number, jack in board.output_jacks(kind).items():
                self.jacks[kind, number] = jack
        self.after_phase = after_phase
        self.voice: dict[str, int] = {}     # jack -> voice of its last write (for recorders)
        self.dropped: dict[tuple[str, int], int] = {}
        self.pending: dict[str, dict[int, int]] = {}  # chip -> channel -> code not yet written
        self.writes = 0

    def volts_for(self, event: Any) -> float:
        if event.kind == "velocity":
            return float(event.value) * self.velocity_volts
        return self.board.trigger_volts if event.value > 0 else 0.0

    def write(self, events: Iterable[Any]) -> None:
        """Events of one instant (any order): written falls, velocities, rises."""
        phases: dict[str, list[Any]] = {p: [] for p in PHASES}
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
            if isinstance(dac, MCP4728):
                self.hw.guards[chip].call(dac.multi_write, todo)
            else:
                self.hw.guards[chip].call(dac.write_many, todo)
        except BusDown:
            self.pending[chip] = dict(todo)

    def retry_pending(self) -> None:
        for chip in list(self.pending):
            self.write_dac(chip, [])

    def zero(self) -> None:
        """Every output to 0 V (through the calibration) and every GPIO output low."""
        per_chip: dict[str, list[tuple[int, int]]] = {}
        for out in self.board.outputs.values():
            per_chip.setdefault(out.chip, []).append((out.channel, int(self.cal.to_code(out.name, 0.0))))
        for chip, writes in per_chip.items():
            dac = self.hw.dacs[chip]
            try:
                if isinstance(dac, MCP4728):
                    dac.multi_write(writes)
                else:
                    dac.write_many(writes)
            except OSError as exc:
                log.error("%s: could not set outputs to 0 V: %s", chip, exc)
        for out in self.board.gpio_outputs.values():
            self.hw.gpio.write(out.pin, 0)


# --------------------------------------------------------------------------------------------
# the back end


class PanelBackend:
    """Panel <-> Engine. Loop-thread methods: `start`, `on_edge`, `tick`, `write`, `close`."""

    def __init__(self, board: Board, settings: Settings, engine: Any, hw: Hardware, cal: Any,
                 clock: Callable[[], float], after_phase: Callable[[], None] | None = None) -> None:
        self.board, self.settings, self.engine, self.hw, self.cal = board, settings, engine, hw, cal
        self.clock = clock
        self.scanner = ControlScanner(board, hw, cal, settings)
        self.writer = OutputWriter(board, hw, cal, settings, after_phase)
        self.settle_s = float(settings["input.pitch_settle_ms"]) / 1000.0
        self.velocity_cv = settings["input.velocity_mode"] == "cv"
        self.pending_onsets: list[tuple[float, float]] = []  # (sample time, edge time)
        self.next_scan = 0.0
        self.by_pin = {i.pin: i for i in board.gpio_inputs.values()}
        self.buttons: dict[int, list[Any]] = {}  # pin -> [accepted active, candidate, since]
        self.last_volts: dict[str, float] = {}
        self.onsets = self.clock_pulses = self.resets = self.presses = 0
        self.controls_set = 0
        self.control_log: list[tuple[float, str, float]] = []  # (time, control, value)
        self.started = False
        self.scan_thread = False  # True: a thread scans and posts controls (real time)

    # --- lifetime
    def open(self) -> None:
        """Configure the chips, outputs to 0 V, inputs armed (edge callbacks -> `on_edge`)."""
        for name, dac in self.hw.dacs.items():
            if isinstance(dac, MCP4728):
                try:
                    self.hw.guards[name].call(dac.configure)
                except BusDown:
                    # every multi-write carries VREF and gain again: the chip works once it answers
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
        fn = adc.read_single if isinstance(adc, ADS1115) else adc.read
        return self.cal.to_volts(name, self.hw.guards[item.chip].call(fn, item.channel))

    def _sample_onset(self, edge_t: float) -> None:
        """The onset of a gate edge, with the pitch (or, in velocity-CV mode, the velocity CV)
        read now, a settle time after the edge; the engine turns volts into velocity."""
        self.onsets += 1
        name = "velocity_cv" if self.velocity_cv else "pitch"
        if name in self.board.inputs:
            try:
                self.last_volts[name] = self.read_input(name)
            except BusDown:
                pass  # the last reading stands in
        self.engine.onset(edge_t, pitch_volts=self.last_volts.get(name))

    def _scan(self, t: float) -> None:
        for name, value in self.scanner.scan():
            self.set_control(t, name, value)
        self.writer.retry_pending()

    def set_control(self, t: float, name: str, value: float) -> None:
        self.controls_set += 1
        if len(self.control_log) < 10_000:
            self.control_log.append((t, name, value))
        self.engine.set_control(name, value)

    def _buttons(self, t: float) -> None:
        for pin, state in self.buttons.items():
            accepted, candidate, since = state
            item = self.by_pin[pin]
            if candidate != accepted and t >= since + item.debounce_ms / 1000.0:
                # (compared as next_deadline computes it, so the deadline always clears)
                # stable long enough: a real level change (bounces re-arm `since`)
                if bool(self.hw.gpio.read(pin)) ^ item.active_low == candidate:
                    state[0] = candidate
                    if candidate:
                        self.presses += 1
                        self.engine.press(item.action)
                        self._leds()

    def _leds(self) -> None:
        """The record LED is lit while onsets are captured (record mode record or overdub)."""
        settings = getattr(self.engine, "settings", None) or self.settings
        try:
            capturing = settings["record"] != "off"
        except (KeyError, TypeError):
            return
        for out in self.board.gpio_outputs.values():
            if out.kind == "led":
                self.hw.gpio.write(out.pin, int(capturing))

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


# --------------------------------------------------------------------------------------------
# the sim board: virtual patch -> emulated chips -> this back end -> emulated outputs


class SimPanelBoard:
    """The patch-board seam of `grooverack sim` over emulated chips (ARCHITECTURE.md, "Sim board
    seam"): `start(t)`, `apply(t, jack, value)`, `advance(t_until)` (alias `step`, `advance_to`),
    `finish(t_end)`; outputs read back from the emulated DACs/GPIO into `recorder` as
    `(time, output, kind, volts, voice)`."""

    def __init__(self, board: Board | str, settings: Settings, recorder: Any, engine: Any) -> None:
        from grooverack.emulators.world import EmulatedWorld

        self.board = load_board(board) if isinstance(board, str) else board
        if not self.board.is_panel:
            raise ValueError(f"board {self.board.name!r} is kind {self.board.kind!r}; the panel "
                             "back end runs 'pi' and 'sim' boards")
        self.settings, self.recorder, self.engine = settings, recorder, engine
        self.world = EmulatedWorld(self.board)
        self.clock = self.world.clock
        self.hw = build_hardware(self.board, spi=self.world.spi, i2c=self.world.i2c,
                                 gpio_module=self.world.gpio, clock=self.clock,
                                 sleep_for=self.world.sleep_for, retry_sleep=lambda s: None)
        self.cal = calibration_for(self.board, settings) if settings["state.dir"] else None
        if self.cal is None:
            from grooverack.calibration import Calibration
            self.cal = Calibration.nominal(self.board)
        self.panel = PanelBackend(self.board, settings, engine, self.hw, self.cal, self.clock,
                                  after_phase=self._capture)
        jacks = dict(self.board.emulation.get("jacks", {}))
        self.jacks = jacks or {n: n for n in [*self.board.inputs, *self.board.gpio_inputs]}
        self.buttons = {i.action: n for n, i in self.board.gpio_inputs.items() if i.role == "button"}
        for control in self.board.controls.values():  # pots start where the configuration is
            value = float(settings[control.name])
            self.world.set_pot(control.pot, (value - control.low) / (control.high - control.low))

    def _capture(self) -> None:
        for t, out, volts in self.world.drain_outputs():
            if out.kind == "led":
                continue
            voice = self.panel.writer.voice.get(out.name)
            self.recorder.write(t, out.output, out.kind, volts,
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
        if target in self.board.gpio_inputs:
            self.world.set_digital(target, value)
        elif target in self.board.inputs:
            self.world.set_cv(target, value)
        elif jack in self.board.controls:
            self.world.set_pot(self.board.controls[jack].pot, value)
        elif jack.startswith("press."):
            name = self.buttons.get(jack[len("press."):])
            if name is None:
                raise ValueError(f"board {self.board.name!r} has no {jack[6:]!r} button; "
                                 f"buttons: {', '.join(self.buttons) or 'none'}")
            if value >= 0.5:
                self.world.press(name)
        elif jack in ("velocity_cv", "clock", "reset", "pitch", "gate"):
            log.debug("board %s has no %s jack: ignored", self.board.name, jack)
        else:
            from grooverack.config import CONTROLS
            if jack in CONTROLS:
                log.debug("board %s has no %s pot: ignored", self.board.name, jack)
                return
            raise ValueError(f"unknown jack {jack!r} for board {self.board.name!r}")
        # an edge's handlers ran inside the GPIO callback; anything due now runs now
        self.panel.tick(t, inclusive=True)

    def _engine_to(self, t: float) -> None:
        for group in group_instants(self.engine.advance(t)):
            self.clock.advance_to(group[0].time)
            self.panel.write(group)

    def _run_to(self, t_until: float, inclusive: bool) -> None:
        while True:
            nxt = min(self.panel.next_deadline(), self.world.next_event())
            if nxt > t_until or (nxt == t_until and not inclusive):
                break
            self._engine_to(nxt)
            self.clock.advance_to(nxt)
            self.world.run_due(nxt)
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

    def faults(self) -> dict[str, dict[str, Any]]:
        return self.panel.faults()


def patch_board(board: Board | str, settings: Settings, recorder: Any, engine: Any) -> SimPanelBoard:
    """The seam `grooverack sim --board sim` uses (io/sim.py `make_board`)."""
    return SimPanelBoard(board, settings, recorder, engine)


# --------------------------------------------------------------------------------------------
# real time on a Pi


LOOKAHEAD_S = 0.010   # engine events asked for this far ahead, each spun to at its time
SPIN_S = 0.0005       # sleep to this long before an event, then spin
IDLE_S = 0.002        # longest idle sleep between passes


def _wait_until(deadline: float, clock: Callable[[], float]) -> None:
    remaining = deadline - clock()
    if remaining > SPIN_S:
        time.sleep(remaining - SPIN_S)
    while clock() < deadline:
        pass


def _scanner(panel: PanelBackend, inbox: queue.SimpleQueue[tuple[Any, ...]],
             stop: threading.Event, clock: Callable[[], float],
             report: Callable[[], None] | None = None) -> None:
    """The I/O thread that scans pots and CVs at the board's rate and posts control moves;
    every FAULTS_SAVE_S it also rewrites the bus-fault report (file I/O stays off the loop)."""
    period = panel.scanner.period
    next_t = clock()
    next_report = next_t + FAULTS_SAVE_S
    while not stop.is_set():
        if report is not None and clock() >= next_report:
            next_report += FAULTS_SAVE_S
            try:
                report()
            except OSError as exc:
                log.warning("bus-fault report not written: %s", exc)
        try:
            for name, value in panel.scanner.scan():
                inbox.put(("control", name, value, clock()))
        except Exception as exc:  # a driver bug: hand it to the loop, which stops and zeroes
            inbox.put(("error", exc))
            return
        next_t += period
        delay = next_t - clock()
        if delay < 0:
            next_t = clock()  # fell behind (a slow bus): skip, do not burst
        else:
            stop.wait(delay)


def run_backend(board: Board, settings: Settings, args: argparse.Namespace) -> int:
    """`grooverack run --board NAME` on a Raspberry Pi: real buses, wall clock, until SIGTERM.

    Threads post to one queue consumed by this loop: GPIO callbacks (the library's thread) only
    timestamp and post edges; the scanner thread posts control moves. The loop applies them,
    samples onsets, and writes each engine event at its time. Outputs go to 0 V on exit,
    SIGTERM/SIGINT (service shutdown) and on an unhandled error."""
    from grooverack.io.sim import make_engine
    from grooverack.service import supervise
    from grooverack.state import StateKeeper

    clock = time.monotonic
    try:
        hw = open_hardware(board, clock)
    except OSError as exc:
        print(f"grooverack run: board {board.name!r} ({board.path}): cannot open its hardware: "
              f"{exc}\n  `grooverack doctor --board {board.name}` checks every part",
              file=sys.stderr)
        return 2
    panel: PanelBackend | None = None
    inbox: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
    try:
        cal = calibration_for(board, settings)
        engine = make_engine(settings, threaded=True)
        panel = PanelBackend(board, settings, engine, hw, cal, clock)
        direct_edge = panel.on_edge
        panel.on_edge = lambda pin, level, t: inbox.put(("edge", pin, level, t))  # type: ignore[method-assign]
        panel.start(clock())
        panel.scan_thread = True
    except BaseException:
        if panel is not None:
            panel.close()
        else:
            hw.close()
        raise
    stop = threading.Event()
    started, report_file = time.time(), faults_path(settings, board.name)

    def report() -> None:
        save_faults(report_file, board.name, panel.faults(), started)

    scanner = threading.Thread(target=_scanner, args=(panel, inbox, stop, clock, report),
                               name="grooverack-scan", daemon=True)
    keeper = StateKeeper(settings, engine)  # presets + last performance (issue 6)
    keeper.restore()
    svc = supervise(engine, status=f"board {board.name} up", outputs_to_zero=panel.close,
                    save_state=keeper.save_all)
    keeper.start_background()
    svc.on_shutdown(report)
    # short GIL slices: the loop must not wait long behind the scanner or the generator thread
    if sys.getswitchinterval() > 0.0005:
        sys.setswitchinterval(0.0005)
    scanner.start()
    svc.realtime()
    duration = getattr(args, "duration", None)
    end = clock() + duration if duration else float("inf")
    try:
        while not svc.stopping and clock() < end:
            while True:
                try:
                    item = inbox.get_nowait()
                except queue.Empty:
                    break
                if item[0] == "edge":
                    direct_edge(*item[1:])
                elif item[0] == "control":
                    panel.set_control(item[3], item[1], item[2])
                else:
                    raise item[1]
            now = clock()
            panel.tick(now)
            for group in group_instants(engine.advance(now + LOOKAHEAD_S)):
                _wait_until(group[0].time, clock)
                panel.write(group)
            svc.beat("loop")
            # idle: sleep (no spinning) to the next sample/debounce, at most 2 ms; output events
            # are spun to above, inside the look-ahead window
            idle = min(panel.next_deadline(), clock() + IDLE_S) - clock()
            if idle > 0:
                time.sleep(idle)
        stop.set()
        scanner.join(1.0)
        status = svc.shutdown()
    except BaseException:
        log.exception("panel loop stopped by an error: outputs to 0 V")
        stop.set()
        scanner.join(1.0)
        svc.shutdown()
        raise
    finally:
        stop_engine = getattr(engine, "close", None)
        if stop_engine is not None:
            stop_engine()
        svc.restore_signal_handlers()
    return status


# --------------------------------------------------------------------------------------------
# calibration rig (grooverack calibrate)


class CalibrationRig:
    """Raw codes in and out for `grooverack calibrate`; over emulators `patch`/`loopback` set the
    emulated jacks, on a Pi they are what the person was asked to do."""

    def __init__(self, board: Board, hw: Hardware, world: Any = None) -> None:
        self.board, self.hw, self.world = board, hw, world
        self.loops: dict[str, str] = {}
        for dac in hw.dacs.values():
            if isinstance(dac, MCP4728):
                dac.configure()

    def read_code(self, channel: str, n: int) -> list[float]:
        item = self.board.inputs[channel]
        if self.world is not None:
            for out, inp in self.loops.items():
                if inp == channel:
                    self.world.set_cv(inp, self.world.output_volts(out))
        adc = self.hw.adcs[item.chip]
        fn = adc.read_single if isinstance(adc, ADS1115) else adc.read
        return [float(fn(item.channel)) for _ in range(n)]

    def write_code(self, channel: str, code: float) -> None:
        out = self.board.outputs[channel]
        dac = self.hw.dacs[out.chip]
        writes = [(out.channel, int(code))]
        dac.multi_write(writes) if isinstance(dac, MCP4728) else dac.write_many(writes)

    def patch(self, channel: str, volts: float | None) -> None:
        if self.world is not None:
            self.world.set_cv(channel, 0.0 if volts is None else volts)

    def loopback(self, output: str, input_: str | None) -> None:
        if input_ is None:
            self.loops.pop(output, None)
            if self.world is not None:
                for name in self.board.inputs:
                    self.world.set_cv(name, 0.0)
        else:
            self.loops = {output: input_}

    def close(self) -> None:
        for out in self.board.outputs.values():
            try:
                self.write_code(out.name, 0 if out.offset == 0 else
                                round((0.0 - out.offset) / out.gain))
            except OSError as exc:
                log.error("%s: could not set to 0 V: %s", out.name, exc)
        self.hw.close()


def open_calibration_rig(board: Board, settings: Settings) -> CalibrationRig:
    if board.kind == "sim":
        from grooverack.emulators.world import EmulatedWorld

        world = EmulatedWorld(board)
        hw = build_hardware(board, spi=world.spi, i2c=world.i2c, gpio_module=world.gpio,
                            clock=world.clock, sleep_for=world.sleep_for, retry_sleep=lambda s: None)
        return CalibrationRig(board, hw, world)
    return CalibrationRig(board, open_hardware(board))
