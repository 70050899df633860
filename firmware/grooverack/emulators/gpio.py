"""A Raspberry Pi GPIO header with the `RPi.GPIO` module API, in virtual time.

The program side is RPi.GPIO's: setmode/getmode/setwarnings/setup/input/output/cleanup,
add_event_detect (with callback and bouncetime)/add_event_callback/remove_event_detect/
event_detected, gpio_function. The world side drives pins (`drive(pin, level)`; None = released,
the pull decides) and reads outputs (`level(pin)`, `history`). Callbacks run synchronously at the
virtual time of the edge, so a callback that reads the clock sees the edge's own time.
Constants carry RPi.GPIO's values. Pins are BCM numbers inside; BOARD mode maps header pins.
"""

from __future__ import annotations

from collections.abc import Callable

from grooverack.emulators.base import VirtualClock

BOARD, BCM = 10, 11
OUT, IN = 0, 1
LOW, HIGH = 0, 1
PUD_OFF, PUD_DOWN, PUD_UP = 20, 21, 22
RISING, FALLING, BOTH = 31, 32, 33
HARD_PWM, SERIAL, I2C, SPI, UNKNOWN = 43, 40, 42, 41, -1
VERSION = "emulated"
RPI_INFO = {"P1_REVISION": 3, "TYPE": "emulated Pi (40-pin header)"}

# 40-pin header: physical pin -> BCM GPIO (power and ground pins are absent)
BOARD_TO_BCM: dict[int, int] = {
    3: 2, 5: 3, 7: 4, 8: 14, 10: 15, 11: 17, 12: 18, 13: 27, 15: 22, 16: 23, 18: 24, 19: 10,
    21: 9, 22: 25, 23: 11, 24: 8, 26: 7, 27: 0, 28: 1, 29: 5, 31: 6, 32: 12, 33: 13, 35: 19,
    36: 16, 37: 26, 38: 20, 40: 21,
}
BCM_TO_BOARD = {v: k for k, v in BOARD_TO_BCM.items()}


class GPIOEmulator:
    """One instance is one header; pass it where the `RPi.GPIO` module would go."""

    BOARD, BCM, OUT, IN, LOW, HIGH = BOARD, BCM, OUT, IN, LOW, HIGH
    PUD_OFF, PUD_DOWN, PUD_UP = PUD_OFF, PUD_DOWN, PUD_UP
    RISING, FALLING, BOTH = RISING, FALLING, BOTH
    HARD_PWM, SERIAL, I2C, SPI, UNKNOWN = HARD_PWM, SERIAL, I2C, SPI, UNKNOWN
    VERSION, RPI_INFO = VERSION, RPI_INFO

    def __init__(self, clock: VirtualClock | None = None) -> None:
        self.clock = clock or VirtualClock()
        self.mode: int | None = None
        self.warnings = True
        self.direction: dict[int, int] = {}
        self.pull: dict[int, int] = {}
        self.out_level: dict[int, int] = {}
        self.external: dict[int, int | None] = {}
        self.edge: dict[int, int] = {}
        self.callbacks: dict[int, list[Callable[[int], None]]] = {}
        self.bounce: dict[int, float] = {}
        self.last_callback: dict[int, float] = {}
        self.detected: dict[int, bool] = {}
        self.history: list[tuple[float, int, int]] = []   # (t, bcm pin, level) of outputs
        self.edges: list[tuple[float, int, int]] = []     # (t, bcm pin, level) of inputs
        self.listeners: list[Callable[[float, int, int], None]] = []  # output watchers
        # input watchers (t, bcm pin, level): the same header seen through another API
        # (`emulators.gpiod`, the libgpiod character device) learns of every input change
        self.input_listeners: list[Callable[[float, int, int], None]] = []

    # --- numbering
    def setmode(self, mode: int) -> None:
        if mode not in (BOARD, BCM):
            raise ValueError("An invalid mode was passed to setmode()")
        if self.mode is not None and self.mode != mode:
            raise ValueError("A different mode has already been set!")
        self.mode = mode

    def getmode(self) -> int | None:
        return self.mode

    def setwarnings(self, flag: bool) -> None:
        self.warnings = bool(flag)

    def _bcm(self, channel: int) -> int:
        if self.mode is None:
            raise RuntimeError("Please set pin numbering mode using GPIO.setmode(GPIO.BOARD) or "
                               "GPIO.setmode(GPIO.BCM)")
        if self.mode == BOARD:
            if channel not in BOARD_TO_BCM:
                raise ValueError("The channel sent is invalid on a Raspberry Pi")
            return BOARD_TO_BCM[channel]
        if not 0 <= channel <= 27:
            raise ValueError("The channel sent is invalid on a Raspberry Pi")
        return channel

    # --- program side
    def setup(self, channel: int | list[int] | tuple[int, ...], direction: int,
              pull_up_down: int = PUD_OFF, initial: int = -1) -> None:
        for ch in channel if isinstance(channel, list | tuple) else [channel]:
            pin = self._bcm(ch)
            if direction not in (IN, OUT):
                raise ValueError("An invalid direction was passed to setup()")
            if direction == OUT and pull_up_down != PUD_OFF:
                raise ValueError("pull_up_down parameter is not valid for outputs")
            if pull_up_down not in (PUD_OFF, PUD_DOWN, PUD_UP):
                raise ValueError("Invalid value for pull_up_down - should be either PUD_OFF, "
                                 "PUD_UP or PUD_DOWN")
            self.direction[pin] = direction
            self.pull[pin] = pull_up_down
            if direction == OUT:
                self._set_output(pin, 0 if initial == -1 else int(bool(initial)))

    def _check_setup(self, pin: int, want: int | None = None) -> None:
        if pin not in self.direction:
            raise RuntimeError("You must setup() the GPIO channel first")
        if want == OUT and self.direction[pin] != OUT:
            raise RuntimeError("The GPIO channel has not been set up as an OUTPUT")
        if want == IN and self.direction[pin] != IN:
            raise RuntimeError("You must setup() the GPIO channel as an input first")

    def input(self, channel: int) -> int:
        pin = self._bcm(channel)
        self._check_setup(pin)
        if self.direction[pin] == OUT:
            return self.out_level.get(pin, 0)
        return self._input_level(pin)

    def output(self, channel: int | list[int] | tuple[int, ...],
               value: int | bool | list[int] | tuple[int, ...]) -> None:
        chans = list(channel) if isinstance(channel, list | tuple) else [channel]
        values = list(value) if isinstance(value, list | tuple) else [value] * len(chans)
        if len(values) != len(chans):
            raise RuntimeError("Number of channels != number of values")
        for ch, v in zip(chans, values, strict=True):
            pin = self._bcm(ch)
            self._check_setup(pin, OUT)
            self._set_output(pin, int(bool(v)))

    def _set_output(self, pin: int, level: int) -> None:
        if self.out_level.get(pin) != level:
            self.out_level[pin] = level
            t = self.clock()
            self.history.append((t, pin, level))
            for listener in self.listeners:
                listener(t, pin, level)

    def add_event_detect(self, channel: int, edge: int, callback: Callable[[int], None] | None = None,
                         bouncetime: int | None = None) -> None:
        pin = self._bcm(channel)
        self._check_setup(pin, IN)
        if edge not in (RISING, FALLING, BOTH):
            raise ValueError("The edge must be set to RISING, FALLING or BOTH")
        if pin in self.edge:
            raise RuntimeError("Conflicting edge detection already enabled for this GPIO channel")
        self.edge[pin] = edge
        self.callbacks[pin] = [] if callback is None else [callback]
        self.bounce[pin] = (bouncetime or 0) / 1000.0
        self.detected[pin] = False

    def add_event_callback(self, channel: int, callback: Callable[[int], None]) -> None:
        pin = self._bcm(channel)
        if pin not in self.edge:
            raise RuntimeError("Add event detection using add_event_detect first before adding "
                               "a callback")
        self.callbacks[pin].append(callback)

    def remove_event_detect(self, channel: int) -> None:
        pin = self._bcm(channel)
        for table in (self.edge, self.callbacks, self.bounce, self.detected, self.last_callback):
            table.pop(pin, None)

    def event_detected(self, channel: int) -> bool:
        pin = self._bcm(channel)
        hit = self.detected.get(pin, False)
        if pin in self.detected:
            self.detected[pin] = False
        return hit

    def gpio_function(self, channel: int) -> int:
        pin = self._bcm(channel)
        return self.direction.get(pin, IN)

    def cleanup(self, channel: int | list[int] | None = None) -> None:
        pins = (list(self.direction) if channel is None else
                [self._bcm(c) for c in (channel if isinstance(channel, list | tuple) else [channel])])
        for pin in pins:
            if self.direction.get(pin) == OUT:
                self._set_output(pin, 0)  # cleanup returns channels to inputs: output released
            self.direction.pop(pin, None)
            self.pull.pop(pin, None)
            self.out_level.pop(pin, None)
            for table in (self.edge, self.callbacks, self.bounce, self.detected, self.last_callback):
                table.pop(pin, None)
        if channel is None:
            self.mode = None

    # --- world side
    def _input_level(self, pin: int) -> int:
        ext = self.external.get(pin)
        if ext is not None:
            return ext
        return 1 if self.pull.get(pin) == PUD_UP else 0  # floating reads as low here

    def drive(self, pin: int, level: int | None, t: float | None = None,
              at: float | None = None) -> None:
        """An external circuit drives BCM `pin` (None releases it); edges fire callbacks.
        `at`: when the pin really changed, if before the clock's now (a wall-clock run whose
        emulated world was moved ahead for outputs): edges are stamped then, as a kernel would."""
        if t is not None:
            self.clock.advance_to(t)
        before = self._input_level(pin) if self.direction.get(pin) == IN else None
        self.external[pin] = None if level is None else int(bool(level))
        if before is None:
            return
        after = self._input_level(pin)
        if after == before:
            return
        now = self.clock() if at is None else min(float(at), self.clock())
        self.edges.append((now, pin, after))
        for listener in self.input_listeners:
            listener(now, pin, after)
        edge = self.edge.get(pin)
        if edge is None or (edge == RISING and not after) or (edge == FALLING and after):
            return
        bounce = self.bounce.get(pin, 0.0)
        last = self.last_callback.get(pin)
        if bounce and last is not None and now - last < bounce:
            return
        self.last_callback[pin] = now
        self.detected[pin] = True
        for callback in list(self.callbacks.get(pin, [])):
            callback(BCM_TO_BOARD[pin] if self.mode == BOARD else pin)

    def level(self, pin: int) -> int:
        """What a circuit on BCM `pin` sees: the output level, or the input level."""
        if self.direction.get(pin) == OUT:
            return self.out_level.get(pin, 0)
        return self._input_level(pin)
