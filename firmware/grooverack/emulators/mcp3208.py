"""MCP3208: 8-channel 12-bit SAR ADC on SPI (Microchip DS21298), emulated bit by bit.

One conversion per chip-select frame. DIN, clocked in on rising edges: leading zeros, the start
bit (first 1), SGL/DIFF, D2, D1, D0. The sample period ends one clock after D0; DOUT then gives
a null bit (0) and B11..B0, MSB first; further clocks give B1..B11 LSB first, then zeros. Before
the null bit DOUT is high impedance (read here as 0).

Code = floor(4096 * VIN / VREF), clipped to 0..4095; pseudo-differential pairs use IN+ - IN-.
SCLK limit: 2 MHz at VDD = 5 V, 1 MHz at VDD = 2.7 V (the lower figure below 5 V).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from grooverack.emulators.base import hexbytes
from grooverack.errors import ProtocolError

_REVERSED_11 = [int(f"{i:011b}"[::-1], 2) for i in range(2048)]


def adc_code(volts: float, vref: float, bits: int = 12) -> int:
    """Ideal unipolar SAR transfer: floor(2**bits * v / vref), clipped to the code range."""
    top = (1 << bits) - 1
    if not math.isfinite(volts):
        return 0
    return max(0, min(top, math.floor((1 << bits) * volts / vref + 1e-9)))


class MCP3208Emulator:
    name = "MCP3208"
    modes = (0, 3)  # SPI mode 0,0 and 1,1

    def __init__(self, vref: float = 3.3, vdd: float = 3.3,
                 inputs: Callable[[int], float] | None = None) -> None:
        if not 0.25 <= vref <= vdd + 0.1:
            raise ValueError(f"MCP3208: VREF {vref} V outside 0.25 V..VDD ({vdd} V)")
        self.vref, self.vdd = vref, vdd
        self.max_speed_hz = 2_000_000 if vdd >= 4.5 else 1_000_000
        self.volts = [0.0] * 8          # voltage at CH0..CH7 pins
        self.source = inputs            # optional live source (ch -> volts), overrides self.volts
        self.conversions = 0
        self.last_channel: int | None = None

    def set_input(self, channel: int, volts: float) -> None:
        self.volts[channel] = float(volts)

    def pin_volts(self, channel: int) -> float:
        v = self.source(channel) if self.source else self.volts[channel]
        # input protection diodes clamp the pin to the rails
        return min(max(v, -0.3), self.vdd + 0.3)

    def convert(self, single: bool, d: int) -> int:
        if single:
            return adc_code(self.pin_volts(d), self.vref)
        plus, minus = (d & 6) | (d & 1), (d & 6) | (1 - (d & 1))
        return adc_code(self.pin_volts(plus) - self.pin_volts(minus), self.vref)

    def transfer(self, data: bytes) -> bytes:
        nbits = 8 * len(data)
        din = int.from_bytes(data, "big")
        if din == 0:
            raise ProtocolError(f"MCP3208: no start bit in {hexbytes(data)}")
        start = nbits - din.bit_length()           # clocks before the start bit
        need = start + 1 + 4 + 1 + 1 + 12          # start, SGL D2 D1 D0, sample, null, B11..B0
        if nbits < need:
            raise ProtocolError(
                f"MCP3208: frame {hexbytes(data)} ends before B0 ({nbits} clocks, "
                f"start bit at clock {start + 1} needs {need}); CS rising early aborts the conversion")
        bits = din >> (nbits - start - 5) & 0xF    # SGL/DIFF D2 D1 D0
        single, d = bool(bits & 8), bits & 7
        code = self.convert(single, d)
        self.conversions += 1
        self.last_channel = d if single else None
        # DOUT after the null bit: B11..B0, then B1..B11 (LSB first), then zeros
        stream = code << 11 | _REVERSED_11[code >> 1]
        after = nbits - (start + 7)                # clocks after the null bit
        out = stream << (after - 23) if after >= 23 else stream >> (23 - after)
        return out.to_bytes(len(data), "big")
