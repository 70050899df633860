"""MCP4922: dual 12-bit DAC on SPI (Microchip DS21897), emulated from the 16-bit write command.

Word, MSB first: bit 15 A/B (0 = DAC A, 1 = DAC B), 14 BUF (VREF input buffered), 13 GA
(1 = 1x, 0 = 2x), 12 SHDN (1 = active, 0 = output off), 11..0 data. CS rising after 16 clocks
latches the input register; clocks past 16 are ignored; CS rising before 16 clocks aborts the
write (refused here: it is always a driver bug). Double buffered: LDAC low moves the input
registers to the outputs; with LDAC tied low every latched word reaches its output at once.
VOUT = VREF * G * D / 4096, limited to the rails (0..VDD). There is no SDO: MISO reads 0.
"""

from __future__ import annotations

from collections.abc import Callable

from grooverack.emulators.base import hexbytes
from grooverack.errors import ProtocolError


class MCP4922Emulator:
    name = "MCP4922"
    modes = (0, 3)
    max_speed_hz = 20_000_000

    def __init__(self, vref: tuple[float, float] = (4.096, 4.096), vdd: float = 5.0,
                 clock: Callable[[], float] = lambda: 0.0, ldac_tied_low: bool = True) -> None:
        self.vref, self.vdd, self.clock = vref, vdd, clock
        self.ldac_low = ldac_tied_low
        # (buffered, gain 1|2, active, code) per channel: input and output registers
        self.input = [(False, 1, False, 0), (False, 1, False, 0)]
        self.output = [(False, 1, False, 0), (False, 1, False, 0)]
        self.history: list[tuple[float, int, int, float]] = []  # (t, channel, code, volts)
        self.words = 0

    def transfer(self, data: bytes) -> bytes:
        if len(data) < 2:
            raise ProtocolError(f"MCP4922: {len(data) * 8} clocks ({hexbytes(data)}); a write "
                                "needs 16 and is aborted when CS rises early")
        word = data[0] << 8 | data[1]
        channel = word >> 15
        self.input[channel] = (bool(word >> 14 & 1), 1 if word >> 13 & 1 else 2,
                               bool(word >> 12 & 1), word & 0x0FFF)
        self.words += 1
        if self.ldac_low:
            self._update(channel)
        return bytes(len(data))

    def set_ldac(self, level: int) -> None:
        """The LDAC pin (driven by a GPIO): low transfers both input registers to the outputs."""
        falling = self.ldac_low is False and not level
        self.ldac_low = not level
        if falling:
            self._update(0)
            self._update(1)

    def _update(self, channel: int) -> None:
        if self.output[channel] != self.input[channel]:
            self.output[channel] = self.input[channel]
            self.history.append((self.clock(), channel, self.input[channel][3], self.volts(channel)))

    def volts(self, channel: int) -> float:
        _, gain, active, code = self.output[channel]
        if not active:
            return 0.0  # shutdown: output pulled to ground through ~500 kOhm
        return min(max(self.vref[channel] * gain * code / 4096.0, 0.0), self.vdd)

    def code(self, channel: int) -> int:
        return self.output[channel][3]
