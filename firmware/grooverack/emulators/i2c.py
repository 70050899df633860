"""An `smbus2.SMBus`-like bus whose devices are chip emulators, dispatched by 7-bit address.

A message to an address nobody answers raises OSError(EREMOTEIO, 121) like the Linux i2c-dev
driver does on a NACK. Fault injection: NACK bursts (the next N transactions, optionally for one
address) and a stuck bus (SDA held low: every transaction times out with ETIMEDOUT).
"""

from __future__ import annotations

import errno
from typing import Protocol

from smbus2 import i2c_msg

from grooverack.errors import ProtocolError

I2C_M_RD = 0x0001
GENERAL_CALL = 0x00


class I2CChip(Protocol):
    name: str
    address: int

    def i2c_write(self, data: bytes) -> None: ...

    def i2c_read(self, length: int) -> bytes: ...

    def general_call(self, data: bytes) -> None: ...


class I2CBusEmulator:
    """smbus2.SMBus API subset: i2c_rdwr, write/read_i2c_block_data, write_byte, read_byte."""

    def __init__(self, bus: int = 1) -> None:
        self.bus = bus
        self.devices: dict[int, I2CChip] = {}
        self.transactions = 0
        self.nacks = 0
        self.timeouts = 0
        self._nack_left = 0
        self._nack_address: int | None = None
        self.stuck = False
        self.closed = False

    def attach(self, chip: I2CChip) -> I2CChip:
        if chip.address in self.devices:
            raise ValueError(f"i2c-{self.bus}: address 0x{chip.address:02x} already used by "
                             f"{self.devices[chip.address].name}")
        self.devices[chip.address] = chip
        return chip

    # --- fault injection
    def nack_burst(self, count: int, address: int | None = None) -> None:
        """The next `count` transactions (to `address`, or any) are not acknowledged."""
        self._nack_left, self._nack_address = count, address

    def set_stuck(self, stuck: bool = True) -> None:
        self.stuck = stuck

    # --- transport
    def _nack(self, address: int, why: str) -> OSError:
        self.nacks += 1
        return OSError(errno.EREMOTEIO, f"i2c-{self.bus}: address 0x{address:02x} {why}")

    def _begin(self, address: int) -> I2CChip | None:
        if self.closed:
            raise OSError(errno.EBADF, f"i2c-{self.bus} is closed")
        if self.stuck:
            self.timeouts += 1
            raise OSError(errno.ETIMEDOUT, f"i2c-{self.bus}: bus stuck (SDA held low), timed out")
        if self._nack_left > 0 and self._nack_address in (None, address):
            self._nack_left -= 1
            raise self._nack(address, "did not acknowledge (injected NACK)")
        if address == GENERAL_CALL:
            return None
        chip = self.devices.get(address)
        if chip is None:
            raise self._nack(address, "did not acknowledge (no device)")
        return chip

    def i2c_rdwr(self, *msgs: i2c_msg) -> None:
        """Combined transaction: repeated START between messages, STOP at the end."""
        if not msgs:
            raise ValueError("i2c_rdwr needs at least one message")
        self.transactions += 1
        for msg in msgs:
            address = int(msg.addr)
            chip = self._begin(address)
            if msg.flags & I2C_M_RD:
                if chip is None:
                    raise ProtocolError(f"i2c-{self.bus}: a read from the general call address "
                                        "0x00 is not defined")
                data = chip.i2c_read(int(msg.len))
                if len(data) != msg.len:
                    raise AssertionError(f"{chip.name} returned {len(data)} bytes for {msg.len}")
                for i, b in enumerate(data):
                    msg.buf[i] = bytes([b])
            else:
                data = bytes(msg)
                if chip is None:
                    for dev in list(self.devices.values()):
                        handler = getattr(dev, "general_call", None)
                        if handler is not None:
                            handler(data)
                else:
                    chip.i2c_write(data)

    def write_i2c_block_data(self, i2c_addr: int, register: int, data: list[int],
                             force: bool | None = None) -> None:
        self.i2c_rdwr(i2c_msg.write(i2c_addr, [register, *data]))

    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int,
                            force: bool | None = None) -> list[int]:
        w, r = i2c_msg.write(i2c_addr, [register]), i2c_msg.read(i2c_addr, length)
        self.i2c_rdwr(w, r)
        return list(bytes(r))

    def write_byte(self, i2c_addr: int, value: int, force: bool | None = None) -> None:
        self.i2c_rdwr(i2c_msg.write(i2c_addr, [value]))

    def read_byte(self, i2c_addr: int, force: bool | None = None) -> int:
        r = i2c_msg.read(i2c_addr, 1)
        self.i2c_rdwr(r)
        return bytes(r)[0]

    def close(self) -> None:
        self.closed = True
