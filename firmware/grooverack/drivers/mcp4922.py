"""MCP4922 dual 12-bit DAC on SPI (mode 0, <= 20 MHz).

One 16-bit word per write: bit 15 A/B, 14 BUF, 13 GA (1 = 1x, 0 = 2x), 12 SHDN (1 = on),
11..0 data. With an LDAC pin, both channels are written and then moved to the outputs together
by an LDAC low pulse; without one (LDAC tied low) each word reaches its output at CS rising.
"""

from __future__ import annotations

from typing import Any

from grooverack.drivers.mcp3208 import SpiLike


class MCP4922:
    def __init__(self, spi: SpiLike, *, gain: int = 1, buffered: bool = False,
                 max_speed_hz: int = 10_000_000, gpio: Any = None, ldac_pin: int | None = None) -> None:
        if gain not in (1, 2):
            raise ValueError(f"MCP4922 gain must be 1 or 2, got {gain!r}")
        self.spi, self.gain, self.buffered = spi, gain, buffered
        spi.mode = 0
        spi.max_speed_hz = max_speed_hz
        self.gpio, self.ldac_pin = gpio, ldac_pin
        if ldac_pin is not None:
            gpio.setup(ldac_pin, gpio.OUT, initial=gpio.HIGH)

    def word(self, channel: int, code: int, active: bool = True) -> int:
        if channel not in (0, 1):
            raise ValueError(f"MCP4922 channel {channel} is not 0 (A) or 1 (B)")
        if not 0 <= code <= 4095:
            raise ValueError(f"MCP4922 code {code} outside 0..4095")
        return (channel << 15 | int(self.buffered) << 14 | (1 if self.gain == 1 else 0) << 13
                | int(active) << 12 | code)

    def configure(self) -> None:
        """The DAC interface: nothing to set up (gain and buffering travel in every word)."""

    def write(self, channel: int, code: int, active: bool = True) -> None:
        w = self.word(channel, code, active)
        self.spi.xfer2([w >> 8, w & 0xFF])
        self._latch()

    def write_many(self, writes: list[tuple[int, int]]) -> None:
        """(channel, code) pairs in this order; with LDAC both outputs then change together."""
        for channel, code in writes:
            w = self.word(channel, code)
            self.spi.xfer2([w >> 8, w & 0xFF])
        self._latch()

    def shutdown(self, channel: int) -> None:
        self.write(channel, 0, active=False)

    def _latch(self) -> None:
        if self.ldac_pin is not None:
            self.gpio.output(self.ldac_pin, self.gpio.LOW)
            self.gpio.output(self.ldac_pin, self.gpio.HIGH)
