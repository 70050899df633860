"""The board's chips over their buses: drivers per chip, real or emulated buses picked in one
place (`open_hardware`), and the bus-fault guard every operation goes through.

Bus faults (OSError: NACK, timeout): retried, then the chip backs off (2 ms doubling to 0.25 s)
while the engine keeps playing; counted per chip, logged once per burst (`faults()`).
A timeout (stuck bus) is not retried at once: it already cost its timeout.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grooverack.boards.board import Board
from grooverack.config import Settings
from grooverack.drivers import ADC, DAC
from grooverack.drivers.ads1115 import ADS1115
from grooverack.drivers.gpio import GPIOPins, open_rpi_gpio
from grooverack.drivers.gpiod_pins import GpiodPins, header_chip, open_gpiod
from grooverack.drivers.mcp3208 import MCP3208
from grooverack.drivers.mcp4728 import MCP4728
from grooverack.drivers.mcp4922 import MCP4922
from grooverack.emulators.world import EmulatedWorld
from grooverack.errors import BusDown, ConfigError
from grooverack.state import state_dir
from grooverack.storage import atomic_write_text

log = logging.getLogger(__name__)


RETRIES = 2                 # extra attempts of a failed bus operation, right away
RETRY_SLEEP_S = 0.0002      # pause before a retry on real hardware
BACKOFF_S = 0.002           # a failing chip is left alone this long, doubling...
BACKOFF_MAX_S = 0.25        # ...up to this


FAULTS_SAVE_S = 10.0        # a running module rewrites its bus-fault report this often

GPIO_ENV = "GROOVERACK_GPIO"                # which GPIO library: the one override
GPIO_CHOICES = ("auto", "gpiod", "rpigpio")  # auto: libgpiod v2 if it works here, else RPi.GPIO


def faults_path(settings: Settings, board_name: str) -> Path:
    """`<state dir>/bus-faults-<board>.json`: the running module's fault counters for doctor."""

    return state_dir(settings) / f"bus-faults-{board_name}.json"


def save_faults(path: Path, board: str, faults: dict[str, dict[str, Any]], started: float) -> None:
    """Atomically write the counters (wall-clock `started`/`updated` in seconds since the epoch)."""

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
    adcs: dict[str, ADC]
    dacs: dict[str, DAC]
    gpio: GPIOPins | GpiodPins
    guards: dict[str, ChipGuard]
    closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        for close in self.closers:
            try:
                close()
            except OSError as exc:
                log.warning("closing: %s", exc)


def build_hardware(board: Board, *, spi: Callable[[Any], Any], i2c: Callable[[int], Any],
                   gpio_module: Any = None, clock: Callable[[], float],
                   sleep_for: Callable[[Any], Callable[[float], None]],
                   retry_sleep: Callable[[float], None] = time.sleep,
                   pins: GPIOPins | GpiodPins | None = None) -> Hardware:
    """Drivers for every chip of `board` over the buses `spi(chip)` / `i2c(bus_number)`; the
    pins are `pins`, or `GPIOPins` over the RPi.GPIO-API `gpio_module`."""
    if pins is None:
        pins = GPIOPins(gpio_module, clock)
    # the MCP4922's LDAC pin: RPi.GPIO calls, on the module or through the gpiod pins
    ldac_gpio = pins.gpio if isinstance(pins, GPIOPins) else pins.rpi_gpio_view()
    adcs: dict[str, ADC] = {}
    dacs: dict[str, DAC] = {}
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
                                      gpio=ldac_gpio if chip.ldac_pin is not None else None,
                                      ldac_pin=chip.ldac_pin)
        guards[chip.name] = ChipGuard(chip.name, chip.where, clock, retry_sleep)
    return Hardware(board, adcs, dacs, pins, guards, closers)


def gpio_choice(env: dict[str, str] | None = None, choice: str | None = None) -> str:
    """`choice` if given, else `GROOVERACK_GPIO` (auto, gpiod or rpigpio; unset: auto)."""
    value = choice or (os.environ if env is None else env).get(GPIO_ENV, "").strip().lower() \
        or "auto"
    if value not in GPIO_CHOICES:
        where = f"GPIO library {value!r}" if choice else \
            f"environment variable {GPIO_ENV}={value!r}"
        raise ConfigError(f"{where}: not one of {', '.join(GPIO_CHOICES)}")
    return value


def open_pins(clock: Callable[[], float] = time.monotonic, choice: str | None = None, *,
              gpiod: Callable[[], Any] = open_gpiod, rpi_gpio: Callable[[], Any] = open_rpi_gpio,
              chips: list[str] | None = None, wait: bool = False) -> GPIOPins | GpiodPins:
    """A Pi's pins: libgpiod v2 (kernel-stamped edges, every Pi including the 5) when it is
    importable and a header chip answers, else RPi.GPIO / rpi-lgpio. `choice` (default
    `GROOVERACK_GPIO`) forces one; `gpiod`, `rpi_gpio`, `chips` stand in for the real ones.
    `wait`: edges reach `on_edge` on the thread that calls `pins.wait(timeout)` (the Pi loop),
    else on a thread of the library's (RPi.GPIO) or of the pins' own (libgpiod)."""
    choice = gpio_choice(choice=choice)
    if choice in ("auto", "gpiod"):
        try:
            module = gpiod()
            return GpiodPins(module, header_chip(module, chips), clock,
                             reader="wait" if wait else "thread")
        except OSError as exc:
            if choice == "gpiod":
                raise
            log.info("libgpiod not usable (%s): GPIO through RPi.GPIO", exc)
    return GPIOPins(rpi_gpio(), clock, reader="wait" if wait else "callback")


def open_hardware(board: Board, clock: Callable[[], float] = time.monotonic, *,
                  world: EmulatedWorld | None = None, gpio: str | None = None,
                  wait: bool = False) -> Hardware:
    """The one place that picks the buses, as gpiozero picks its pin factory: over an emulated
    world (a `sim` board, or `world` given: its chips, its virtual clock) or the real buses of a
    Pi (spidev, smbus2, libgpiod or RPi.GPIO: imported here, on the Pi only). `gpio` (default
    `GROOVERACK_GPIO`): auto, gpiod or rpigpio; an emulated world offers both, gpiod by default
    (read by `poll()`, which the sim board calls after each change of the world). `wait` (real
    buses): the edges are read by whoever calls `hw.gpio.wait(timeout)` (`open_pins`)."""
    if world is not None or board.kind == "sim":
        world = world if world is not None else EmulatedWorld(board)
        if gpio_choice(choice=gpio) == "rpigpio":
            return build_hardware(board, spi=world.spi, i2c=world.i2c, gpio_module=world.gpio,
                                  clock=world.clock, sleep_for=world.sleep_for,
                                  retry_sleep=lambda s: None)
        pins = GpiodPins(world.gpiod, world.gpiod_chip, world.clock, event_clock=world.clock,
                         reader="poll")
        return build_hardware(board, spi=world.spi, i2c=world.i2c, pins=pins,
                              clock=world.clock, sleep_for=world.sleep_for,
                              retry_sleep=lambda s: None)

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

    return build_hardware(board, spi=spi, i2c=i2c, pins=open_pins(clock, gpio, wait=wait),
                          clock=clock, sleep_for=lambda chip: time.sleep)
