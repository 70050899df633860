"""A `spidev.SpiDev`-like device whose far end is a chip emulator.

Checks what a real SPI slave cares about (mode, clock speed within the part's limit) and offers
fault injection: transfers that fail with OSError (EIO) and a MISO line stuck high or low.
"""

from __future__ import annotations

import errno
from typing import Protocol

from grooverack.errors import ProtocolError


class SpiChip(Protocol):
    name: str
    modes: tuple[int, ...]
    max_speed_hz: int

    def transfer(self, data: bytes) -> bytes: ...


class SpiDeviceEmulator:
    """spidev API subset: open, close, mode, max_speed_hz, bits_per_word, xfer2, xfer, writebytes."""

    def __init__(self, chip: SpiChip, bus: int = 0, device: int = 0) -> None:
        self.chip = chip
        self.bus, self.device = bus, device
        self.mode = 0
        self.max_speed_hz = 500_000
        self.bits_per_word = 8
        self.lsbfirst = False
        self.cshigh = False
        self._open = False
        self.transfers = 0
        self.faults = 0
        self._fail_next = 0
        self.miso_stuck: int | None = None  # 0x00 or 0xFF: MISO held low/high (dead chip)

    def open(self, bus: int, device: int) -> None:
        if (bus, device) != (self.bus, self.device):
            raise FileNotFoundError(errno.ENOENT, f"/dev/spidev{bus}.{device}: no such device "
                                    f"(emulated {self.chip.name} is on spidev{self.bus}.{self.device})")
        self._open = True

    def close(self) -> None:
        self._open = False

    def fail_next(self, count: int) -> None:
        """The next `count` transfers fail with OSError(EIO), as an ioctl on a sick bus does."""
        self._fail_next = count

    def xfer2(self, data: list[int], speed_hz: int = 0, delay_usecs: int = 0,
              bits_per_word: int = 0) -> list[int]:
        if not self._open:
            raise OSError(errno.EBADF, f"spidev{self.bus}.{self.device} ({self.chip.name}) is not open")
        if self._fail_next > 0:
            self._fail_next -= 1
            self.faults += 1
            raise OSError(errno.EIO, f"spidev{self.bus}.{self.device}: injected transfer failure")
        speed = speed_hz or self.max_speed_hz
        if self.mode not in self.chip.modes:
            raise ProtocolError(f"{self.chip.name}: SPI mode {self.mode} not supported; "
                                f"the part accepts modes {self.chip.modes}")
        if speed > self.chip.max_speed_hz:
            raise ProtocolError(f"{self.chip.name}: SCLK {speed} Hz above the part's limit "
                                f"{self.chip.max_speed_hz} Hz at its supply voltage")
        if (bits_per_word or self.bits_per_word) != 8 or self.lsbfirst or self.cshigh:
            raise ProtocolError(f"{self.chip.name}: needs 8-bit words, MSB first, CS active low")
        if any(not 0 <= int(b) <= 255 for b in data):
            raise ValueError(f"spidev: bytes must be 0..255, got {list(data)}")
        self.transfers += 1
        reply = self.chip.transfer(bytes(int(b) for b in data))
        if self.miso_stuck is not None:
            reply = bytes([self.miso_stuck]) * len(reply)
        return list(reply)

    def xfer(self, data: list[int], *args: int) -> list[int]:
        # spidev's xfer releases CS between bytes: every byte is its own frame
        return [self.xfer2([b], *args)[0] for b in data]

    def writebytes(self, data: list[int]) -> None:
        self.xfer2(list(data))
