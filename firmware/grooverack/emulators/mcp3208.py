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

from grooverack.emulators.base import ProtocolError, hexbytes


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
        bits_in = [(byte >> (7 - i)) & 1 for byte in data for i in range(8)]
        try:
            start = bits_in.index(1)
        except ValueError:
            raise ProtocolError(f"MCP3208: no start bit in {hexbytes(data)}") from None
        need = start + 1 + 4 + 1 + 1 + 12  # start, SGL D2 D1 D0, sample, null, B11..B0
        if len(bits_in) < need:
            raise ProtocolError(
                f"MCP3208: frame {hexbytes(data)} ends before B0 ({len(bits_in)} clocks, "
                f"start bit at clock {start + 1} needs {need}); CS rising early aborts the conversion")
        single = bool(bits_in[start + 1])
        d = bits_in[start + 2] << 2 | bits_in[start + 3] << 1 | bits_in[start + 4]
        code = self.convert(single, d)
        self.conversions += 1
        self.last_channel = d if single else None
        out = [0] * len(bits_in)
        null = start + 6
        msb_first = [(code >> (11 - i)) & 1 for i in range(12)]
        lsb_first = [(code >> i) & 1 for i in range(1, 12)]  # B1..B11 after B0
        for i, bit in enumerate(msb_first + lsb_first):
            if null + 1 + i < len(out):
                out[null + 1 + i] = bit
        reply = bytearray()
        for k in range(0, len(out), 8):
            byte = 0
            for bit in out[k:k + 8]:
                byte = byte << 1 | bit
            reply.append(byte)
        return bytes(reply)
