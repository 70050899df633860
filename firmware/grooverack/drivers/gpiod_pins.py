"""GPIO pins through libgpiod v2 (`gpiod` >= 2.1): the GPIO character device, on every Pi.

The same interface as `drivers.gpio.GPIOPins` (add_input/add_output/read/write/all_low/close,
`on_edge(pin, level, t)`), but an edge's `t` is the kernel's timestamp of the edge
(`EdgeEvent.timestamp_ns`, CLOCK_MONOTONIC), not the time a callback got to run: a gate is applied
at its stamped time whatever the reader's wake-up latency. It also works on a Pi 5, where RPi.GPIO
cannot map the SoC ("Cannot determine SOC peripheral base address").

Pins are BCM numbers: on the header's chip (gpiochip0 on a Pi <= 4, "pinctrl-rp1" on a Pi 5)
line offsets are the BCM numbers. One line request per pin (libgpiod cannot add lines to a
request). Edges are read in one of three ways:
- `reader="wait"` (the Pi loop): the loop itself blocks in `wait(timeout)` on every edge request's
  descriptor at once and is woken by the edge; the edge's `on_edge` runs on the loop's thread, so
  a step on that edge is computed and written with no hand-over between threads;
- `reader="thread"`: a reader thread of its own waits on the descriptors and calls `on_edge`;
- `reader="poll"` (the sim board, virtual time): whoever calls `poll()` after each change of the
  emulated world (`wait(0)`: one look at every descriptor).
"""

from __future__ import annotations

import glob
import os
import re
import select
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

PULLS = ("off", "up", "down")
EDGES = ("rising", "falling", "both")
READERS = ("thread", "wait", "poll")
# the header's chip, by label, in order of preference (a Pi 5 also has the SoC's own
# "pinctrl-bcm2712" chips, which reach no header pin)
HEADER_LABELS = ("pinctrl-rp1", "pinctrl-bcm2711", "pinctrl-bcm2835")
CONSUMER = "grooverack"


def open_gpiod() -> Any:
    """The real `gpiod` module, v2 API (`request_lines`); OSError naming the fix otherwise."""
    try:
        import gpiod
    except ImportError as exc:
        raise OSError(f"gpiod is not importable ({exc}); on a Pi: pip install 'gpiod>=2.1'") from None
    if not hasattr(gpiod, "request_lines"):
        raise OSError(f"gpiod {getattr(gpiod, '__version__', '?')} is the v1 API; "
                      "grooverack needs libgpiod v2: pip install 'gpiod>=2.1'")
    return gpiod


def chip_paths(dev: str = "/dev") -> list[str]:
    """The GPIO character devices, gpiochip0 first (numerically, not as strings)."""
    found = glob.glob(os.path.join(dev, "gpiochip*"))
    return sorted(found, key=lambda p: int(m.group()) if (m := re.search(r"\d+$", p)) else -1)


def header_chip(gpiod: Any, paths: list[str] | None = None) -> str:
    """The chip that carries the 40-pin header, found by its label (OSError if none does)."""
    paths = chip_paths() if paths is None else paths
    labels: dict[str, str] = {}
    problems: list[str] = []
    for path in paths:
        try:
            with gpiod.Chip(path) as chip:
                labels[path] = chip.get_info().label
        except OSError as exc:
            problems.append(f"{path}: {exc.strerror or exc}")
    for wanted in HEADER_LABELS:
        for path, label in labels.items():
            if label == wanted:
                return path
    seen = ", ".join([f"{p} ({label})" for p, label in labels.items()] + problems) or "none"
    raise OSError(f"no GPIO chip labelled {' or '.join(HEADER_LABELS)} (found: {seen}); "
                  "not a Raspberry Pi, or no read/write access to /dev/gpiochip* (group gpio)")



def _readable(fds: list[int], timeout: float) -> list[int]:
    """The descriptors of `fds` readable within `timeout` seconds: poll(2), which, unlike
    select(2), takes descriptors above 1023 (a long-running process may hold that many)."""
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN | select.POLLPRI)
    return [fd for fd, _ in poller.poll(max(timeout, 0.0) * 1000.0)]

class GpiodPins:
    """The board's pins in BCM numbering over `gpiod` (the module, or `emulators.gpiod`).

    `clock` is the back end's timeline; `event_clock` the timeline of the kernel's stamps
    (CLOCK_MONOTONIC, which is `time.monotonic` on Linux). When they differ, stamps are moved onto
    `clock` by the offset between the two measured at open."""

    library = "libgpiod"

    def __init__(self, gpiod: Any, chip: str | None = None,
                 clock: Callable[[], float] = time.monotonic, *,
                 event_clock: Callable[[], float] = time.monotonic, reader: str = "thread",
                 consumer: str = CONSUMER) -> None:
        if reader not in READERS:
            raise ValueError(f"reader {reader!r} not one of {READERS}")
        self.gpiod, self.clock, self.reader, self.consumer = gpiod, clock, reader, consumer
        self.chip = chip if chip is not None else header_chip(gpiod)
        self.offset_s = 0.0 if clock is event_clock else clock() - event_clock()
        line = gpiod.line
        self._line = line
        self._rising = gpiod.EdgeEvent.Type.RISING_EDGE
        self.requests: dict[int, Any] = {}
        self.handlers: dict[int, Callable[[int, int, float], None]] = {}
        self.inputs: list[int] = []
        self.outputs: dict[int, int] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._wake: tuple[int, int] | None = None
        self._by_fd: dict[int, Any] | None = None  # descriptor -> edge request, listed once

    # --- setup
    def _request(self, pin: int, settings: Any) -> Any:
        old = self.requests.pop(pin, None)
        if old is not None:  # set up again (as RPi.GPIO allows): the new settings replace it
            with self._lock:
                self.handlers.pop(pin, None)
                self._by_fd = None
            old.release()
        try:
            request = self.gpiod.request_lines(self.chip, consumer=self.consumer,
                                               config={pin: settings})
        except OSError as exc:
            raise OSError(exc.errno, f"{self.chip} line {pin} (GPIO {pin}): "
                          f"{exc.strerror or exc}; another program may hold it (gpioinfo shows "
                          "the consumer)") from None
        self.requests[pin] = request
        return request

    def add_input(self, pin: int, *, pull: str = "off", edge: str = "both",
                  on_edge: Callable[[int, int, float], None] | None = None,
                  bouncetime_ms: int | None = None) -> None:
        """`on_edge(pin, level, t)`: `t` is the kernel's stamp of the edge on `clock`."""
        line = self._line
        try:
            bias = {"off": line.Bias.DISABLED, "up": line.Bias.PULL_UP,
                    "down": line.Bias.PULL_DOWN}[pull]
        except KeyError:
            raise ValueError(f"pull {pull!r} not one of {PULLS}") from None
        try:
            kind = {"rising": line.Edge.RISING, "falling": line.Edge.FALLING,
                    "both": line.Edge.BOTH}[edge]
        except KeyError:
            raise ValueError(f"edge {edge!r} not one of {EDGES}") from None
        settings = self.gpiod.LineSettings(
            direction=line.Direction.INPUT, bias=bias,
            edge_detection=kind if on_edge is not None else line.Edge.NONE,
            debounce_period=timedelta(milliseconds=bouncetime_ms or 0),
            event_clock=line.Clock.MONOTONIC)
        self._request(pin, settings)
        self.outputs.pop(pin, None)
        if pin not in self.inputs:
            self.inputs.append(pin)
        if on_edge is None:
            return
        with self._lock:
            self.handlers[pin] = on_edge
            self._by_fd = None
        if self.reader == "thread":
            self._start_reader()

    def add_output(self, pin: int, initial: int = 0) -> None:
        line = self._line
        level = int(bool(initial))
        self._request(pin, self.gpiod.LineSettings(
            direction=line.Direction.OUTPUT,
            output_value=line.Value.ACTIVE if level else line.Value.INACTIVE))
        if pin in self.inputs:
            self.inputs.remove(pin)
        self.outputs[pin] = level

    # --- levels
    def _req(self, pin: int) -> Any:
        try:
            return self.requests[pin]
        except KeyError:
            raise RuntimeError(f"GPIO {pin} is not set up: add_input or add_output first") from None

    def read(self, pin: int) -> int:
        return int(self._req(pin).get_value(pin) == self._line.Value.ACTIVE)

    def write(self, pin: int, level: int) -> None:
        level = int(bool(level))
        self._req(pin).set_value(pin, self._line.Value.ACTIVE if level else self._line.Value.INACTIVE)
        self.outputs[pin] = level

    def all_low(self) -> None:
        for pin in self.outputs:
            if pin in self.requests:  # (not after close)
                self.write(pin, 0)

    # --- edges
    def stamp(self, timestamp_ns: int) -> float:
        """An event's kernel stamp on the pins' clock."""
        return timestamp_ns / 1e9 + self.offset_s if self.offset_s else timestamp_ns / 1e9

    def _dispatch(self, events: list[Any]) -> int:
        # one request per pin: oldest first across them (a stable sort keeps each line's order)
        events.sort(key=lambda e: e.timestamp_ns)
        for event in events:
            with self._lock:
                handler = self.handlers.get(event.line_offset)
            if handler is not None:
                handler(event.line_offset, int(event.event_type == self._rising),
                        self.stamp(event.timestamp_ns))
        return len(events)

    def _edge_requests(self) -> list[Any]:
        with self._lock:
            return [self.requests[p] for p in self.handlers if p in self.requests]

    def _descriptors(self) -> dict[int, Any]:
        """Descriptor -> request of every line with an `on_edge` (listed again after a change)."""
        with self._lock:
            by_fd = self._by_fd
        if by_fd is None:
            by_fd = {}
            for request in self._edge_requests():
                try:
                    by_fd[request.fd] = request
                except Exception:  # released meanwhile (RequestReleasedError): gone next time
                    continue
            with self._lock:
                self._by_fd = by_fd
        return by_fd

    def wait(self, timeout: float) -> int:
        """Block until an edge comes in on any input (at most `timeout` seconds), then hand every
        edge waiting to its `on_edge` on this thread, at its stamped time; how many (0: none
        came). The caller wakes on the edge itself, not on its next look."""
        by_fd = self._descriptors()
        if not by_fd:
            if timeout > 0:
                time.sleep(timeout)
            return 0
        try:
            ready = _readable(list(by_fd), timeout)
        except (OSError, ValueError):  # a descriptor closed under us: list them again
            with self._lock:
                self._by_fd = None
            return 0
        events: list[Any] = []
        for fd in ready:
            try:
                events += by_fd[fd].read_edge_events()
            except Exception:  # released meanwhile: list them again next time
                with self._lock:
                    self._by_fd = None
        return self._dispatch(events) if events else 0

    def poll(self) -> int:
        """Hand every edge waiting now to its `on_edge`, at its stamped time; how many."""
        return self.wait(0.0)

    def _start_reader(self) -> None:
        if self._thread is None:
            self._wake = os.pipe()
            self._stop.clear()
            self._thread = threading.Thread(target=self._read_loop, name="grooverack-gpiod",
                                            daemon=True)
            self._thread.start()
        else:
            self._poke()

    def _poke(self) -> None:
        if self._wake is not None:
            os.write(self._wake[1], b"w")

    def _read_loop(self) -> None:
        """The reader thread: wait on every edge request's descriptor, hand the edges on."""
        assert self._wake is not None
        wake = self._wake[0]
        while not self._stop.is_set():
            by_fd = {}
            for request in self._edge_requests():
                try:
                    by_fd[request.fd] = request
                except Exception:  # released meanwhile (RequestReleasedError): gone next pass
                    continue
            try:
                ready = _readable([wake, *by_fd], 1.0)
            except (OSError, ValueError):  # a descriptor closed under us: list them again
                continue
            if wake in ready:
                os.read(wake, 64)
            events: list[Any] = []
            for fd in ready:
                if fd in by_fd:
                    try:
                        events += by_fd[fd].read_edge_events()
                    except Exception:  # released meanwhile
                        continue
            if events and not self._stop.is_set():
                self._dispatch(events)

    def close(self) -> None:
        """Outputs low, the reader stopped, every line released. Safe to call twice."""
        try:
            self.all_low()
        finally:
            self.release()

    def release_inputs(self) -> None:
        """The reader stopped and every input line with an edge handler released (their event
        descriptors closed); outputs stay requested and writable. Safe to call twice."""
        self._stop_reader()
        with self._lock:
            pins = [p for p in self.handlers if p in self.requests]
        for pin in pins:
            request = self.requests.pop(pin)
            if request not in self.requests.values():  # one request may hold several lines
                request.release()
        with self._lock:
            for pin in pins:
                self.handlers.pop(pin, None)
            self._by_fd = None

    def _stop_reader(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._poke()
            self._thread.join(2.0)
            self._thread = None
        if self._wake is not None:
            for end in self._wake:
                os.close(end)
            self._wake = None

    def release(self) -> None:
        """The reader stopped and every line released (their descriptors closed), outputs left as
        they are. Safe to call twice."""
        self._stop_reader()
        for request in self.requests.values():
            request.release()
        self.requests.clear()
        with self._lock:
            self.handlers.clear()
            self._by_fd = None

    def rpi_gpio_view(self) -> PinsAsRPiGPIO:
        """The few RPi.GPIO calls a chip driver makes on a control pin (the MCP4922's LDAC)."""
        return PinsAsRPiGPIO(self)


class PinsAsRPiGPIO:
    """`setup(pin, OUT, initial=)` and `output(pin, level)` over any pins object."""

    OUT, IN, LOW, HIGH = 0, 1, 0, 1

    def __init__(self, pins: Any) -> None:
        self.pins = pins

    def setup(self, pin: int, direction: int, initial: int = 0, **_: Any) -> None:
        if direction != self.OUT:
            raise ValueError("only outputs go through this view")
        self.pins.add_output(pin, initial)

    def output(self, pin: int, level: int) -> None:
        self.pins.write(pin, level)
