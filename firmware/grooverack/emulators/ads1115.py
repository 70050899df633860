"""ADS1115: 16-bit delta-sigma ADC with PGA and 4-input mux on I2C (TI SBAS444), emulated.

Registers behind a pointer byte (P1:P0): 00 conversion (read only), 01 config, 10 Lo_thresh,
11 Hi_thresh. A write is [pointer] or [pointer, MSB, LSB]; a read returns the pointed register
MSB first. Config bits: 15 OS (write 1 in power-down: start one conversion; read 0 while
converting), 14:12 MUX, 11:9 PGA (FSR 6.144/4.096/2.048/1.024/0.512/0.256 V), 8 MODE
(0 continuous, 1 single-shot/power-down), 7:5 DR (8..860 SPS), 4 COMP_MODE, 3 COMP_POL,
2 COMP_LAT, 1:0 COMP_QUE (11 = comparator disabled). Reset value 0x8583.

Conversions take 1/DR of virtual time. The result is the input at the end of the conversion:
code = floor(32768 * (AINP - AINN) / FSR) in two's complement, clipped to 0x8000..0x7FFF; pins
are clamped to GND - 0.3 V .. VDD + 0.3 V by the input diodes. The ALERT/RDY pin is not emulated;
in continuous mode OS reads 1 here (the driver does not rely on it there).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from grooverack.emulators.base import hexbytes
from grooverack.errors import ProtocolError

FSR = (6.144, 4.096, 2.048, 1.024, 0.512, 0.256, 0.256, 0.256)
DATA_RATES = (8, 16, 32, 64, 128, 250, 475, 860)
# MUX -> (AINP, AINN); None = GND
MUX = ((0, 1), (0, 3), (1, 3), (2, 3), (0, None), (1, None), (2, None), (3, None))
RESET_CONFIG = 0x8583


def ads_code(volts: float, fsr: float) -> int:
    if not math.isfinite(volts):
        return 0
    return max(-32768, min(32767, math.floor(32768 * volts / fsr + 1e-9)))


class ADS1115Emulator:
    name = "ADS1115"

    def __init__(self, address: int = 0x48, vdd: float = 3.3,
                 clock: Callable[[], float] = lambda: 0.0) -> None:
        if address not in (0x48, 0x49, 0x4A, 0x4B):
            raise ValueError(f"ADS1115: address 0x{address:02x} not strappable (0x48..0x4b)")
        self.address, self.vdd, self.clock = address, vdd, clock
        self.volts = [0.0] * 4
        self.pointer = 0
        self.config = RESET_CONFIG
        self.lo_thresh, self.hi_thresh = 0x8000, 0x7FFF
        self.conversion = 0
        self._busy_until: float | None = None   # single-shot conversion in flight
        self._next_done: float | None = None     # continuous mode: next conversion end
        self.conversions = 0

    # --- the analogue side
    def set_input(self, channel: int, volts: float) -> None:
        self._catch_up()  # conversions that ended before now used the old value
        self.volts[channel] = float(volts)

    def _pin(self, ain: int | None) -> float:
        if ain is None:
            return 0.0
        return min(max(self.volts[ain], -0.3), self.vdd + 0.3)

    def _convert(self) -> None:
        p, n = MUX[self.config >> 12 & 7]
        self.conversion = ads_code(self._pin(p) - self._pin(n), FSR[self.config >> 9 & 7]) & 0xFFFF
        self.conversions += 1

    def _period(self) -> float:
        return 1.0 / DATA_RATES[self.config >> 5 & 7]

    def _catch_up(self) -> None:
        now = self.clock()
        if self._busy_until is not None and now >= self._busy_until:
            self._convert()
            self._busy_until = None
            self.config |= 0x8000  # OS reads 1: idle (powered down)
        if self._next_done is not None and now >= self._next_done:
            self._convert()
            period = self._period()
            self._next_done += period * (math.floor((now - self._next_done) / period) + 1)

    # --- the I2C side
    def i2c_write(self, data: bytes) -> None:
        self._catch_up()
        if len(data) not in (1, 3):
            raise ProtocolError(f"ADS1115@0x{self.address:02x}: write of {len(data)} bytes "
                                f"({hexbytes(data)}); expected [pointer] or [pointer, MSB, LSB]")
        if data[0] & 0xFC:
            raise ProtocolError(f"ADS1115@0x{self.address:02x}: pointer byte 0x{data[0]:02x} has "
                                "bits 7:2 set; they must be 0")
        self.pointer = data[0] & 3
        if len(data) == 1:
            return
        value = data[1] << 8 | data[2]
        if self.pointer == 0:
            raise ProtocolError(f"ADS1115@0x{self.address:02x}: the conversion register is read only")
        if self.pointer == 2:
            self.lo_thresh = value
        elif self.pointer == 3:
            self.hi_thresh = value
        else:
            self._write_config(value)

    def _write_config(self, value: int) -> None:
        now = self.clock()
        converting = self._busy_until is not None
        start = bool(value & 0x8000)
        keep_os = self.config & 0x8000
        self.config = (value & 0x7FFF) | keep_os
        if not value & 0x0100:  # MODE 0: continuous conversion from now on
            self._busy_until = None
            self._next_done = now + self._period()
            self.config |= 0x8000
        else:
            self._next_done = None
            if start and not converting:
                self._busy_until = now + self._period()
                self.config &= 0x7FFF  # OS reads 0 while converting

    def i2c_read(self, length: int) -> bytes:
        self._catch_up()
        if length not in (1, 2):
            raise ProtocolError(f"ADS1115@0x{self.address:02x}: read of {length} bytes; "
                                "registers are 2 bytes")
        value = (self.conversion, self.config, self.lo_thresh, self.hi_thresh)[self.pointer]
        return bytes([value >> 8, value & 0xFF])[:length]

    def general_call(self, data: bytes) -> None:
        if data == b"\x06":  # general call reset: registers to their reset values
            self.pointer, self.config = 0, RESET_CONFIG
            self.lo_thresh, self.hi_thresh = 0x8000, 0x7FFF
            self.conversion = 0
            self._busy_until = self._next_done = None
