"""MCP3208 8-channel 12-bit ADC on SPI (mode 0, <= 1 MHz at 3.3 V).

One conversion per chip-select frame of 3 bytes: `0x06 | ch >> 2`, `(ch & 3) << 6`, `0x00`;
the code is the low nibble of byte 1 and all of byte 2. CS has to rise between conversions, so
a scan of several channels is one `xfer2` per channel, back to back.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol


class SpiLike(Protocol):
    mode: int
    max_speed_hz: int

    def xfer2(self, data: list[int]) -> list[int]: ...


class MCP3208:
    def __init__(self, spi: SpiLike, max_speed_hz: int = 1_000_000) -> None:
        self.spi = spi
        spi.mode = 0
        spi.max_speed_hz = max_speed_hz

    @staticmethod
    def frame(channel: int, single: bool = True) -> list[int]:
        if not 0 <= channel < 8:
            raise ValueError(f"MCP3208 channel {channel} outside 0..7")
        return [0x04 | (0x02 if single else 0) | channel >> 2, (channel & 3) << 6, 0x00]

    def read(self, channel: int, single: bool = True) -> int:
        """Raw 12-bit code of `channel` (single-ended, or the pseudo-differential pair)."""
        reply = self.spi.xfer2(self.frame(channel, single))
        return (reply[1] & 0x0F) << 8 | reply[2]

    def read_many(self, channels: Iterable[int]) -> list[int]:
        return [self.read(ch) for ch in channels]
