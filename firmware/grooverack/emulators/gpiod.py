"""The Pi's GPIO header through the libgpiod v2 Python API (`gpiod`), over a `GPIOEmulator`.

One header, two program-side APIs: `GPIOEmulator` speaks RPi.GPIO, `GpiodEmulator(header)` speaks
`gpiod` (`request_lines`, `Chip`, `LineSettings`, `line.Direction/Edge/Bias/Value/Clock`,
`LineRequest.get_value/set_value/wait_edge_events/read_edge_events/fd/release`, `EdgeEvent`).
The world side stays the header's (`drive`, `level`, `history`): every input change it makes
becomes an edge event on the requesting line, stamped (`timestamp_ns`) at the header's clock
when the line changed, as the kernel stamps it, however late the program reads it.

The types are the real package's when it is importable (so a value made here is the one libgpiod
would give), else stand-ins with the same names and values. `debounce_period` drops an edge that
follows the line's last reported edge by less than the period (the kernel instead waits for the
line to settle). Only the header chip has lines; other chips (`chips=`) answer `get_info()`.
"""

from __future__ import annotations

import errno
import os
import threading
from dataclasses import dataclass
from datetime import timedelta
from enum import Enum
from types import SimpleNamespace
from typing import Any

from grooverack.emulators import gpio as rpi

try:  # the real types where the package is installed (it is on a Pi and in the dev extra)
    from gpiod import EdgeEvent, LineSettings
    from gpiod import line as _line
    from gpiod.chip_info import ChipInfo
    from gpiod.exception import RequestReleasedError
    REAL_TYPES = True
except ImportError:  # stand-ins: same names, same values as gpiod 2.x
    REAL_TYPES = False

    class _Direction(Enum):
        AS_IS, INPUT, OUTPUT = 1, 2, 3

    class _Edge(Enum):
        NONE, RISING, FALLING, BOTH = 1, 2, 3, 4

    class _Bias(Enum):
        AS_IS, UNKNOWN, DISABLED, PULL_UP, PULL_DOWN = 1, 2, 3, 4, 5

    class _Drive(Enum):
        PUSH_PULL, OPEN_DRAIN, OPEN_SOURCE = 1, 2, 3

    class _Value(Enum):
        INACTIVE, ACTIVE = 0, 1

    class _Clock(Enum):
        MONOTONIC, REALTIME, HTE = 1, 2, 3

    _line = SimpleNamespace(Direction=_Direction, Edge=_Edge, Bias=_Bias, Drive=_Drive,  # type: ignore[assignment]
                            Value=_Value, Clock=_Clock)

    @dataclass(repr=False)
    class LineSettings:  # type: ignore[no-redef]
        direction: Any = _Direction.AS_IS
        edge_detection: Any = _Edge.NONE
        bias: Any = _Bias.AS_IS
        drive: Any = _Drive.PUSH_PULL
        active_low: bool = False
        debounce_period: timedelta = timedelta()
        event_clock: Any = _Clock.MONOTONIC
        output_value: Any = _Value.INACTIVE

    class EdgeEvent:  # type: ignore[no-redef]
        class Type(Enum):
            RISING_EDGE, FALLING_EDGE = 1, 2

        def __init__(self, event_type: int, timestamp_ns: int, line_offset: int,
                     global_seqno: int, line_seqno: int) -> None:
            self.event_type = EdgeEvent.Type(event_type)
            self.timestamp_ns, self.line_offset = timestamp_ns, line_offset
            self.global_seqno, self.line_seqno = global_seqno, line_seqno

    @dataclass(frozen=True, repr=False)
    class ChipInfo:  # type: ignore[no-redef]
        name: str
        label: str
        num_lines: int

    class RequestReleasedError(Exception):  # type: ignore[no-redef]
        def __init__(self) -> None:
            super().__init__("GPIO lines have been released")

line = _line
Direction, Edge, Bias, Value, Clock = (line.Direction, line.Edge, line.Bias, line.Value,
                                       line.Clock)
HEADER_CHIP = "/dev/gpiochip0"
HEADER_LINES = 54  # the BCM2711's bank 0 and 1; offsets 0..27 reach the header
PULLS = {Bias.PULL_UP: rpi.PUD_UP, Bias.PULL_DOWN: rpi.PUD_DOWN}


def _seconds(timeout: timedelta | float | None) -> float | None:
    return timeout.total_seconds() if isinstance(timeout, timedelta) else timeout


class EmulatedLineRequest:
    """One `request_lines` call: its lines belong to it until `release()`."""

    def __init__(self, emu: GpiodEmulator, chip_name: str, config: dict[int, Any],
                 consumer: str | None) -> None:
        self.emu, self.chip_name, self.consumer = emu, chip_name, consumer
        self.settings = config
        self.offsets = list(config)
        self.num_lines = len(self.offsets)
        self.lines = list(self.offsets)
        self.events: list[Any] = []
        self.line_seqno: dict[int, int] = {}
        self.last_edge: dict[int, float] = {}
        self.released = False
        self.cond = threading.Condition()
        self._pipe: tuple[int, int] | None = None

    def _check(self, offset: int | None = None) -> None:
        if self.released:
            raise RequestReleasedError()
        if offset is not None and offset not in self.settings:
            raise ValueError(f"line {offset!r} is not in this request (offsets {self.offsets})")

    # --- program side
    def get_value(self, offset: int) -> Any:
        self._check(offset)
        return Value.ACTIVE if self.emu.header.level(offset) else Value.INACTIVE

    def set_value(self, offset: int, value: Any) -> None:
        self._check(offset)
        if self.settings[offset].direction != Direction.OUTPUT:
            raise PermissionError(errno.EPERM, f"line {offset} is an input")
        self.emu.header._set_output(offset, int(value == Value.ACTIVE))

    @property
    def fd(self) -> int:
        """A descriptor readable while events wait (a pipe here, the request's fd in the kernel)."""
        self._check()
        with self.cond:
            if self._pipe is None:
                self._pipe = os.pipe()
                os.set_blocking(self._pipe[0], False)
                if self.events:
                    os.write(self._pipe[1], b"e")
            return self._pipe[0]

    def wait_edge_events(self, timeout: timedelta | float | None = None) -> bool:
        self._check()
        with self.cond:
            return self.cond.wait_for(lambda: bool(self.events) or self.released,
                                      _seconds(timeout)) and bool(self.events)

    def read_edge_events(self, max_events: int | None = None) -> list[Any]:
        """The waiting events, oldest first (blocks until there is one, as the kernel read does)."""
        self._check()
        with self.cond:
            self.cond.wait_for(lambda: bool(self.events) or self.released)
            n = len(self.events) if max_events is None else max_events
            out, self.events = self.events[:n], self.events[n:]
            if self._pipe is not None and not self.events:
                try:
                    while os.read(self._pipe[0], 64):
                        pass
                except BlockingIOError:
                    pass
            return out

    def release(self) -> None:
        if self.released:
            return
        self.emu._release(self)
        with self.cond:
            self.released = True
            self.cond.notify_all()
            if self._pipe is not None:
                for end in self._pipe:
                    os.close(end)
                self._pipe = None

    def __del__(self) -> None:  # an unreleased request must not keep its pipe open
        pipe = getattr(self, "_pipe", None)
        if pipe is not None:
            for end in pipe:
                try:
                    os.close(end)
                except OSError:
                    pass

    def __enter__(self) -> EmulatedLineRequest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    # --- world side
    def _edge(self, t: float, offset: int, level: int) -> None:
        settings = self.settings[offset]
        wanted = settings.edge_detection
        if wanted == Edge.NONE or (wanted == Edge.RISING and not level) or \
                (wanted == Edge.FALLING and level):
            return
        debounce = settings.debounce_period.total_seconds()
        last = self.last_edge.get(offset)
        if debounce and last is not None and t - last < debounce:
            return
        self.last_edge[offset] = t
        self.line_seqno[offset] = self.line_seqno.get(offset, 0) + 1
        self.emu.seqno += 1
        kind = EdgeEvent.Type.RISING_EDGE if level else EdgeEvent.Type.FALLING_EDGE
        event = EdgeEvent(kind.value, round(t * 1e9), offset, self.emu.seqno,
                          self.line_seqno[offset])
        with self.cond:
            self.events.append(event)
            if self._pipe is not None and len(self.events) == 1:
                os.write(self._pipe[1], b"e")
            self.cond.notify_all()


class EmulatedChip:
    def __init__(self, emu: GpiodEmulator, path: str) -> None:
        if path not in emu.chips:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        self.emu, self.path = emu, path

    def get_info(self) -> Any:
        lines = HEADER_LINES if self.path == self.emu.header_chip else 0
        return ChipInfo(os.path.basename(self.path), self.emu.chips[self.path], lines)

    def request_lines(self, config: dict[Any, Any], consumer: str | None = None,
                      event_buffer_size: int | None = None,
                      output_values: dict[Any, Any] | None = None) -> EmulatedLineRequest:
        return self.emu._request(self.path, config, consumer, output_values)

    def close(self) -> None:
        pass

    def __enter__(self) -> EmulatedChip:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class GpiodEmulator:
    """Pass it where the `gpiod` module would go; `header` is the pins' state (a `GPIOEmulator`,
    shared with its RPi.GPIO API). `chips`: path -> label; lines live on `header_chip`."""

    line = line
    LineSettings, EdgeEvent, ChipInfo = LineSettings, EdgeEvent, ChipInfo
    RequestReleasedError = RequestReleasedError

    def __init__(self, header: rpi.GPIOEmulator, *, chips: dict[str, str] | None = None,
                 header_chip: str = HEADER_CHIP) -> None:
        self.header = header
        self.chips = dict(chips or {header_chip: "pinctrl-bcm2711"})
        self.header_chip = header_chip
        self.owner: dict[int, EmulatedLineRequest] = {}
        self.requests: list[EmulatedLineRequest] = []
        self.seqno = 0
        header.input_listeners.append(self._input_changed)

    @property
    def paths(self) -> list[str]:
        return sorted(self.chips)

    def Chip(self, path: str) -> EmulatedChip:  # noqa: N802 (gpiod's name)
        return EmulatedChip(self, path)

    def request_lines(self, path: str, *args: Any, **kwargs: Any) -> EmulatedLineRequest:
        with self.Chip(path) as chip:
            return chip.request_lines(*args, **kwargs)

    # --- inside
    def _request(self, path: str, config: dict[Any, Any], consumer: str | None,
                 output_values: dict[Any, Any] | None) -> EmulatedLineRequest:
        flat: dict[int, Any] = {}
        for key, settings in config.items():
            for offset in key if isinstance(key, tuple) else (key,):
                if not isinstance(offset, int):
                    raise ValueError(f"line {offset!r}: the emulated chip has no line names")
                if path != self.header_chip or not 0 <= offset < HEADER_LINES:
                    raise ValueError(f"line offset {offset} out of range on {path}")
                flat[offset] = settings if settings is not None else LineSettings()
        for offset in flat:
            if offset in self.owner:
                raise OSError(errno.EBUSY, "Device or resource busy",
                              f"{path} line {offset} (held by {self.owner[offset].consumer!r})")
        for offset, value in (output_values or {}).items():
            if offset in flat:
                s = flat[offset]
                flat[offset] = LineSettings(direction=s.direction, edge_detection=s.edge_detection,
                                            bias=s.bias, drive=s.drive, active_low=s.active_low,
                                            debounce_period=s.debounce_period,
                                            event_clock=s.event_clock, output_value=value)
        request = EmulatedLineRequest(self, path, flat, consumer)
        for offset, settings in flat.items():
            if settings.active_low:
                raise NotImplementedError("active_low lines are not emulated (the firmware "
                                          "inverts in software)")
            self.owner[offset] = request
            self._configure(offset, settings)
        self.requests.append(request)
        return request

    def _configure(self, offset: int, settings: Any) -> None:
        h = self.header
        if settings.direction == Direction.OUTPUT:
            h.direction[offset], h.pull[offset] = rpi.OUT, rpi.PUD_OFF
            h._set_output(offset, int(settings.output_value == Value.ACTIVE))
        elif settings.direction == Direction.INPUT:
            if h.direction.get(offset) == rpi.OUT:
                h.out_level.pop(offset, None)
            h.direction[offset] = rpi.IN
            h.pull[offset] = PULLS.get(settings.bias, rpi.PUD_OFF)

    def _release(self, request: EmulatedLineRequest) -> None:
        h = self.header
        for offset in request.offsets:
            if self.owner.get(offset) is request:
                del self.owner[offset]
                if h.direction.get(offset) == rpi.OUT:
                    h._set_output(offset, 0)  # as RPi.GPIO's cleanup: the output is let go
                h.direction.pop(offset, None)
                h.pull.pop(offset, None)
                h.out_level.pop(offset, None)
        if request in self.requests:
            self.requests.remove(request)

    def _input_changed(self, t: float, pin: int, level: int) -> None:
        request = self.owner.get(pin)
        if request is not None:
            request._edge(t, pin, level)

