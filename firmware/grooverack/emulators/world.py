"""A board's hardware as emulators, with the outside world attached: jacks, pots and buttons.

`EmulatedWorld(board)` builds one emulator per chip of a Pi board (`grooverack.boards.board`) on
emulated buses and a GPIO header, all on one virtual clock. The program side gets what the real
back end would open (`spi(chip)`, `i2c(bus)`, `gpio` or `gpiod` over one header,
`sleep_for(chip)`); the world side sets jack
voltages through the board's nominal front ends (plus the `[emulation.front_end]` errors of a sim
board), turns pots, presses buttons, and reads back what the outputs really do: DAC pin voltages
through the output stage and GPIO levels times the buffer's output level.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Any

from grooverack.controls import SchmittGate
from grooverack.emulators.ads1115 import ADS1115Emulator
from grooverack.emulators.base import VirtualClock
from grooverack.emulators.gpio import GPIOEmulator
from grooverack.emulators.gpiod import HEADER_CHIP, GpiodEmulator
from grooverack.emulators.i2c import I2CBusEmulator
from grooverack.emulators.mcp3208 import MCP3208Emulator
from grooverack.emulators.mcp4728 import MCP4728Emulator
from grooverack.emulators.mcp4922 import MCP4922Emulator
from grooverack.emulators.spi import SpiDeviceEmulator

SCHMITT_RISE, SCHMITT_FALL = 1.77, 0.64  # gate/clock/reset comparator thresholds (hw/README.md), volts
BUTTON_HOLD_S = 0.08                    # a `press` holds the button this long


class ThreadClock:
    """The clock of a chip scanned by its own I/O thread: the shared virtual time plus the time
    that thread has spent waiting (an ADS1115 conversion), so waiting never moves everyone."""

    def __init__(self, clock: VirtualClock) -> None:
        self.clock, self.spent = clock, 0.0

    def __call__(self) -> float:
        return self.clock.now + self.spent

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.spent += seconds


class EmulatedWorld:
    def __init__(self, board: Any, clock: VirtualClock | None = None) -> None:
        self.board = board
        self.clock = clock or VirtualClock()
        self.gpio = GPIOEmulator(self.clock)         # the header, RPi.GPIO's API...
        self.gpiod = GpiodEmulator(self.gpio)         # ...and libgpiod's, on the same pins
        self.gpiod_chip = HEADER_CHIP
        self.buses: dict[int, I2CBusEmulator] = {}
        self.spis: dict[str, SpiDeviceEmulator] = {}
        self.chips: dict[str, Any] = {}
        self.thread_clocks: dict[str, ThreadClock] = {}
        for chip in board.chips.values():
            self._make(chip)
        self.front_end: dict[str, tuple[float, float]] = dict(
            getattr(board, "emulation", {}).get("front_end", {}))
        self.jack_volts: dict[str, float] = {}
        self.pot_positions: dict[str, float] = {}  # pot -> where it was last turned (0..1)
        self.comparator: dict[str, SchmittGate] = {}
        self._world: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = 0
        self._seen: dict[str, int] = {name: 0 for name in self.chips}
        self._gpio_changes: list[tuple[float, int, int]] = []
        self.gpio.listeners.append(lambda t, pin, level: self._gpio_changes.append((t, pin, level)))
        self.dac_jacks = {(o.chip, o.channel): o for o in board.outputs.values()}
        self.pin_jacks = {o.pin: o for o in board.gpio_outputs.values()}
        for name in board.inputs:  # nothing patched: the jack's switch grounds the input
            self.set_cv(name, 0.0)
        for name, item in board.gpio_inputs.items():  # nothing patched: comparators low
            self.comparator[name] = SchmittGate(SCHMITT_RISE, SCHMITT_FALL)
            self.gpio.external[item.pin] = int(item.active_low)
            if item.role == "button":
                self.gpio.external[item.pin] = None  # released: the pull-up decides

    def _make(self, chip: Any) -> None:
        if chip.part == "mcp3208":
            emu: Any = MCP3208Emulator(vref=chip.vref, vdd=chip.vdd)
        elif chip.part == "mcp4922":
            emu = MCP4922Emulator(vref=(chip.vref, chip.vref), vdd=chip.vdd, clock=self.clock,
                                  ldac_tied_low=chip.ldac_pin is None)
            if chip.ldac_pin is not None:
                pin, target = chip.ldac_pin, emu
                self.gpio.listeners.append(lambda t, p, level: p == pin and target.set_ldac(level))
        elif chip.part == "ads1115":
            tc = self.thread_clocks[chip.name] = ThreadClock(self.clock)
            emu = ADS1115Emulator(chip.device, vdd=chip.vdd, clock=tc)
        elif chip.part == "mcp4728":
            emu = MCP4728Emulator(chip.device, vdd=chip.vdd, clock=self.clock)
        else:
            raise ValueError(f"no emulator for part {chip.part!r} (chip {chip.name!r})")
        self.chips[chip.name] = emu
        if chip.bus == "spi":
            self.spis[chip.name] = SpiDeviceEmulator(emu, chip.bus_number, chip.device)
        else:
            bus = self.buses.setdefault(chip.bus_number, I2CBusEmulator(chip.bus_number))
            bus.attach(emu)

    # --- what the program opens
    def spi(self, chip: Any) -> SpiDeviceEmulator:
        dev = self.spis[chip.name]
        dev.open(chip.bus_number, chip.device)
        return dev

    def i2c(self, bus_number: int) -> I2CBusEmulator:
        try:
            return self.buses[bus_number]
        except KeyError:
            raise FileNotFoundError(f"/dev/i2c-{bus_number}: no emulated bus") from None

    def sleep_for(self, chip: Any) -> Callable[[float], None]:
        tc = self.thread_clocks.get(chip.name)
        return tc.sleep if tc is not None else (lambda s: None)

    # --- analogue inputs
    def _lsb(self, chip_name: str) -> float:
        chip = self.board.chips[chip_name]
        return chip.vref / 4096 if chip.part == "mcp3208" else chip.fsr / 32768

    def _set_pin(self, chip_name: str, channel: int, volts: float) -> None:
        self.chips[chip_name].set_input(channel, volts)

    def set_cv(self, name: str, volts: float) -> None:
        """Volts at CV input jack `name` (through its front end onto the ADC pin)."""
        item = self.board.inputs[name]
        self.jack_volts[name] = float(volts)
        gain_error, offset_volts = self.front_end.get(name, (1.0, 0.0))
        seen = volts * gain_error + offset_volts
        self._set_pin(item.chip, item.channel, self._lsb(item.chip) * (seen - item.offset) / item.gain)

    def set_pot(self, name: str, position: float) -> None:
        """Pot `name` turned to `position` (0..1 of its travel)."""
        item = self.board.pots[name]
        position = min(max(float(position), 0.0), 1.0)
        self.pot_positions[name] = position
        self._set_pin(item.chip, item.channel, self._lsb(item.chip) * position * item.code_max)

    def set_digital(self, name: str, volts: float, at: float | None = None) -> None:
        """Volts at gate/clock/reset jack `name`, through the Schmitt comparator onto its pin
        (`at`: when it changed, if before the clock's now; see `GPIOEmulator.drive`)."""
        item = self.board.gpio_inputs[name]
        self.jack_volts[name] = float(volts)
        high = self.comparator[name].update(float(volts))
        if high is not None:
            self.gpio.drive(item.pin, int(high) ^ int(item.active_low), at=at)

    def set_button(self, name: str, pressed: bool) -> None:
        item = self.board.gpio_inputs[name]
        if pressed:
            self.gpio.drive(item.pin, 0 if item.active_low else 1)
        else:
            self.gpio.drive(item.pin, None if item.pull != "off" else int(item.active_low))

    def press(self, name: str, hold_s: float = BUTTON_HOLD_S) -> None:
        """Press button `name` now and release it `hold_s` later (virtual time)."""
        self.set_button(name, True)
        self.at(self.clock.now + hold_s, lambda: self.set_button(name, False))

    def at(self, t: float, action: Callable[[], None]) -> None:
        self._seq += 1
        heapq.heappush(self._world, (t, self._seq, action))

    def next_event(self) -> float:
        return self._world[0][0] if self._world else float("inf")

    def run_due(self, t: float) -> None:
        while self._world and self._world[0][0] <= t:
            when, _, action = heapq.heappop(self._world)
            self.clock.advance_to(when)
            action()

    # --- outputs, read back
    def dac_pin_volts(self, chip_name: str, channel: int) -> float:
        return float(self.chips[chip_name].volts(channel))

    def output_stage(self, out: Any, pin_volts: float) -> float:
        """Jack volts for DAC pin volts through the board's output stage (nominal, times the
        `[emulation.front_end]` gain error, plus its offset)."""
        chip = self.board.chips[out.chip]
        lsb = 4.096 / 4096 if chip.part == "mcp4728" else chip.vref * chip.gain / 4096
        gain_error, offset_volts = self.front_end.get(out.name, (1.0, 0.0))
        return (out.gain * (pin_volts / lsb) + out.offset) * gain_error + offset_volts

    def output_volts(self, name: str) -> float:
        """What a meter on output jack `name` reads now."""
        if name in self.board.outputs:
            out = self.board.outputs[name]
            return self.output_stage(out, self.dac_pin_volts(out.chip, out.channel))
        out = self.board.gpio_outputs[name]
        return out.volts * self.gpio.level(out.pin)

    def drain_outputs(self) -> list[tuple[float, Any, float]]:
        """Output jacks that changed since the last call: (time, board output, jack volts)."""
        rows: list[tuple[float, Any, float]] = []
        for name, emu in self.chips.items():
            history = getattr(emu, "history", None)
            if history is None:
                continue
            for t, channel, _code, volts in history[self._seen[name]:]:
                out = self.dac_jacks.get((name, channel))
                if out is not None:
                    rows.append((t, out, self.output_stage(out, volts)))
            _trim(history)
            self._seen[name] = len(history)
        _trim(self.gpio.history)
        _trim(self.gpio.edges)
        for t, pin, level in self._gpio_changes:
            out = self.pin_jacks.get(pin)
            if out is not None:
                rows.append((t, out, out.volts * level))
        self._gpio_changes.clear()
        rows.sort(key=lambda r: r[0])
        return rows


HISTORY_LIMIT = 100_000   # emulator logs kept for tests; a long render must not grow without bound
HISTORY_KEEP = 10_000


def _trim(history: list) -> None:
    """Drop the oldest entries of an emulator log once it is long (already drained here)."""
    if len(history) > HISTORY_LIMIT:
        del history[:-HISTORY_KEEP]
