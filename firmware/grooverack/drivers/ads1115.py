"""ADS1115 16-bit ADC with PGA on I2C (address 0x48..0x4b).

Registers behind a pointer: 0 conversion, 1 config, 2 Lo_thresh, 3 Hi_thresh. Config written
here: OS (start), MUX (AINx vs GND, or differential pairs), PGA, MODE (single-shot or
continuous), DR, comparator disabled (COMP_QUE = 11). A single-shot read starts a conversion,
waits 1/DR through the injected `sleep`, polls OS and reads the two's complement result.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Protocol

from smbus2 import i2c_msg

FSR = {6.144: 0, 4.096: 1, 2.048: 2, 1.024: 3, 0.512: 4, 0.256: 5}
DATA_RATES = {8: 0, 16: 1, 32: 2, 64: 3, 128: 4, 250: 5, 475: 6, 860: 7}
SINGLE_ENDED_MUX = {0: 0b100, 1: 0b101, 2: 0b110, 3: 0b111}
DIFF_MUX = {(0, 1): 0b000, (0, 3): 0b001, (1, 3): 0b010, (2, 3): 0b011}
COMP_DISABLED = 0b11


class I2CLike(Protocol):
    """What the I2C drivers use of an `smbus2.SMBus` (or the emulated bus)."""

    def i2c_rdwr(self, *msgs: i2c_msg) -> None: ...


class ADS1115:
    def __init__(self, bus: I2CLike, address: int = 0x48, *, fsr: float = 4.096, data_rate: int = 860,
                 sleep: Callable[[float], None] = time.sleep, max_polls: int = 20) -> None:
        if address not in (0x48, 0x49, 0x4A, 0x4B):
            raise ValueError(f"ADS1115 address 0x{address:02x} outside 0x48..0x4b")
        if fsr not in FSR:
            raise ValueError(f"ADS1115 full scale {fsr} V not one of {sorted(FSR)}")
        if data_rate not in DATA_RATES:
            raise ValueError(f"ADS1115 data rate {data_rate} SPS not one of {sorted(DATA_RATES)}")
        self.bus, self.address, self.fsr, self.data_rate = bus, address, fsr, data_rate
        self.sleep, self.max_polls = sleep, max_polls

    def config_word(self, mux: int, *, start: bool, continuous: bool) -> int:
        return (int(start) << 15 | mux << 12 | FSR[self.fsr] << 9 | int(not continuous) << 8
                | DATA_RATES[self.data_rate] << 5 | COMP_DISABLED)

    @staticmethod
    def mux_for(channel: int | tuple[int, int]) -> int:
        if isinstance(channel, tuple):
            mux, allowed = DIFF_MUX.get(channel), str(sorted(DIFF_MUX))
        else:
            mux, allowed = SINGLE_ENDED_MUX.get(channel), str(sorted(SINGLE_ENDED_MUX))
        if mux is None:
            raise ValueError(f"ADS1115 input {channel!r} not one of {allowed}")
        return mux

    def write_register(self, pointer: int, value: int) -> None:
        self.bus.i2c_rdwr(i2c_msg.write(self.address, [pointer, value >> 8, value & 0xFF]))

    def read_register(self, pointer: int) -> int:
        w, r = i2c_msg.write(self.address, [pointer]), i2c_msg.read(self.address, 2)
        self.bus.i2c_rdwr(w, r)
        hi, lo = bytes(r)
        return hi << 8 | lo

    @staticmethod
    def signed(raw: int) -> int:
        return raw - 0x10000 if raw & 0x8000 else raw

    def read_single(self, channel: int | tuple[int, int]) -> int:
        """One single-shot conversion: signed code (-32768..32767)."""
        self.write_register(1, self.config_word(self.mux_for(channel), start=True, continuous=False))
        self.sleep(1.0 / self.data_rate)
        for _ in range(self.max_polls):
            if self.read_register(1) & 0x8000:
                return self.signed(self.read_register(0))
            self.sleep(0.1 / self.data_rate)
        raise TimeoutError(f"ADS1115@0x{self.address:02x}: conversion not done after "
                           f"{self.max_polls} polls")

    def read(self, channel: int | tuple[int, int]) -> int:
        """The ADC interface: one single-shot conversion."""
        return self.read_single(channel)

    def read_many(self, channels: Iterable[int | tuple[int, int]]) -> list[int]:
        """The ADC interface: one single-shot conversion per channel, in order."""
        return [self.read_single(ch) for ch in channels]

    def start_continuous(self, channel: int | tuple[int, int]) -> None:
        self.write_register(1, self.config_word(self.mux_for(channel), start=False, continuous=True))

    def read_latest(self) -> int:
        """The last completed conversion (continuous mode)."""
        return self.signed(self.read_register(0))

    def volts(self, code: int) -> float:
        """Volts at the pins for a code (chip transfer only; calibration maps jack volts)."""
        return code * self.fsr / 32768.0
