"""GPIO pins through the `RPi.GPIO` API (RPi.GPIO on Pi <= 4, rpi-lgpio on Pi 5, or the emulator):
the fallback where libgpiod v2 (`drivers.gpiod_pins.GpiodPins`, kernel-stamped edges) is missing.

Inputs report edges with a timestamp taken first thing in the callback (the earliest the API
allows: RPi.GPIO does not pass the kernel's timestamp) together with the level read right after.
`reader="callback"`: `on_edge` runs in the library's callback thread. `reader="wait"` (the Pi
loop, as with libgpiod): the callback only stamps the edge and wakes `wait(timeout)`, which hands
it to `on_edge` on the waiting thread, at its stamped time.
Outputs are plain push-pull pins (triggers, clock out, LEDs) driven through buffers on the board.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable
from typing import Any

PULLS = ("off", "up", "down")
EDGES = ("rising", "falling", "both")
READERS = ("callback", "wait")


def open_rpi_gpio() -> Any:
    """The real `RPi.GPIO` module (rpi-lgpio provides the same name on a Pi 5)."""
    try:
        import RPi.GPIO as GPIO  # noqa: N814
    except ImportError as exc:
        raise OSError(f"RPi.GPIO is not importable ({exc}); on a Pi install python3-rpi.gpio or, "
                      "on a Pi 5, rpi-lgpio") from None
    except RuntimeError as exc:  # RPi.GPIO itself on a Pi 5: "Cannot determine SOC peripheral..."
        raise OSError(f"RPi.GPIO fails to load ({exc}); on a Pi 5 use libgpiod "
                      "(pip install 'gpiod>=2.1') or rpi-lgpio") from None
    return GPIO


class GPIOPins:
    """The board's pins in BCM numbering; `clock` is the back end's timeline."""

    library = "RPi.GPIO"

    def __init__(self, gpio: Any, clock: Callable[[], float] = time.monotonic,
                 reader: str = "callback") -> None:
        if reader not in READERS:
            raise ValueError(f"reader {reader!r} not one of {READERS}")
        self.gpio, self.clock, self.reader = gpio, clock, reader
        gpio.setwarnings(False)
        gpio.setmode(gpio.BCM)
        self.inputs: list[int] = []
        self.outputs: dict[int, int] = {}
        # reader "wait": edges stamped in the callback, handed on by `wait` (a queue.Queue: its
        # get(timeout) returns after a signal handler, SimpleQueue's may not on CPython 3.11)
        self.edges: queue.Queue[tuple[Callable[[int, int, float], None], int, int, float]] = \
            queue.Queue()

    def _pull(self, pull: str) -> int:
        g = self.gpio
        try:
            return {"off": g.PUD_OFF, "up": g.PUD_UP, "down": g.PUD_DOWN}[pull]
        except KeyError:
            raise ValueError(f"pull {pull!r} not one of {PULLS}") from None

    def add_input(self, pin: int, *, pull: str = "off", edge: str = "both",
                  on_edge: Callable[[int, int, float], None] | None = None,
                  bouncetime_ms: int | None = None) -> None:
        """`on_edge(pin, level, t)`; `t` is read before anything else in the callback."""
        g = self.gpio
        g.setup(pin, g.IN, pull_up_down=self._pull(pull))
        self.inputs.append(pin)
        if on_edge is None:
            return
        try:
            kind = {"rising": g.RISING, "falling": g.FALLING, "both": g.BOTH}[edge]
        except KeyError:
            raise ValueError(f"edge {edge!r} not one of {EDGES}") from None
        clock, read = self.clock, g.input
        if self.reader == "wait":
            put = self.edges.put

            def callback(channel: int) -> None:
                t = clock()
                put((on_edge, channel, read(channel), t))
        else:
            def callback(channel: int) -> None:
                t = clock()
                on_edge(channel, read(channel), t)

        if bouncetime_ms:
            g.add_event_detect(pin, kind, callback=callback, bouncetime=bouncetime_ms)
        else:
            g.add_event_detect(pin, kind, callback=callback)

    def add_output(self, pin: int, initial: int = 0) -> None:
        g = self.gpio
        g.setup(pin, g.OUT, initial=g.HIGH if initial else g.LOW)
        self.outputs[pin] = int(bool(initial))

    def read(self, pin: int) -> int:
        return int(self.gpio.input(pin))

    def write(self, pin: int, level: int) -> None:
        level = int(bool(level))
        self.gpio.output(pin, self.gpio.HIGH if level else self.gpio.LOW)
        self.outputs[pin] = level

    def wait(self, timeout: float) -> int:
        """Reader "wait": block until an edge comes in (at most `timeout` seconds), then hand
        every edge waiting to its `on_edge` on this thread; how many. Reader "callback": the
        callbacks already ran, this only waits."""
        if self.reader != "wait":
            if timeout > 0:
                time.sleep(timeout)
            return 0
        try:
            first = self.edges.get(timeout=timeout) if timeout > 0 else self.edges.get_nowait()
        except queue.Empty:
            return 0
        n = 0
        while True:
            on_edge, pin, level, t = first
            on_edge(pin, level, t)
            n += 1
            try:
                first = self.edges.get_nowait()
            except queue.Empty:
                return n

    def poll(self) -> int:
        """Edges waiting now, handed on (reader "wait"); with callbacks they already ran."""
        return self.wait(0.0)

    def all_low(self) -> None:
        for pin in self.outputs:
            self.write(pin, 0)

    def close(self) -> None:
        self.all_low()
        for pin in self.inputs:
            try:
                self.gpio.remove_event_detect(pin)
            except (RuntimeError, ValueError):
                pass
        self.gpio.cleanup()
